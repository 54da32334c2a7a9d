#include "swactor/protocols/http_range.hpp"

#include <algorithm>

#include "swactor/protocols/ascii.hpp"
#include "swactor/protocols/field_lists.hpp"

namespace swactor::protocols {
namespace {


void skip_ows(std::string_view s, std::size_t& i) noexcept {
  while (i < s.size() && is_ows(s[i])) ++i;
}

// 1*DIGIT; false on no digit or a value that does not fit in 63 bits.
bool read_number(std::string_view s, std::size_t& i, std::uint64_t& out) noexcept {
  std::size_t start = i;
  std::uint64_t v = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
    if (v > (UINT64_C(1) << 62) / 10) return false;
    v = v * 10 + static_cast<std::uint64_t>(s[i] - '0');
    ++i;
  }
  out = v;
  return i > start;
}

}  // namespace

range_result parse_range(std::string_view value, std::uint64_t size, std::size_t max_ranges) {
  range_result r;
  constexpr std::string_view unit = "bytes=";
  if (value.size() < unit.size() || !ascii_iequals(value.substr(0, unit.size()), unit)) return r;
  std::size_t i = unit.size();
  std::size_t specs = 0;
  std::vector<byte_range> out;
  bool any = false;  // at least one range-spec (empty list elements do not count)
  for (;;) {
    skip_ows(value, i);
    if (i < value.size() && value[i] == ',') {  // RFC 9110 §5.6.1: empty list elements
      ++i;
      continue;
    }
    if (i >= value.size()) break;
    if (++specs > max_ranges) return {};
    std::uint64_t first = 0, last = 0;
    if (value[i] == '-') {
      ++i;
      if (!read_number(value, i, last)) return {};
      any = true;
      // suffix-range: the last N bytes; "-0" is never satisfiable.
      if (last > 0 && size > 0) out.push_back({last >= size ? 0 : size - last, size - 1});
    } else {
      if (!read_number(value, i, first)) return {};
      if (i >= value.size() || value[i] != '-') return {};
      ++i;
      bool open = true;
      if (i < value.size() && value[i] >= '0' && value[i] <= '9') {
        if (!read_number(value, i, last)) return {};
        open = false;
        if (last < first) return {};  // invalid int-range: the whole field is ignored
      }
      any = true;
      if (first < size) out.push_back({first, open || last >= size ? size - 1 : last});
    }
    skip_ows(value, i);
    if (i >= value.size()) break;
    if (value[i] != ',') return {};
    ++i;
  }
  if (!any) return {};
  if (out.empty()) {
    r.status = range_status::unsatisfiable;
    return r;
  }
  std::sort(out.begin(), out.end(), [](const byte_range& a, const byte_range& b) { return a.first < b.first; });
  for (const auto& br : out) {
    if (!r.ranges.empty() && br.first <= r.ranges.back().last + 1)
      r.ranges.back().last = std::max(r.ranges.back().last, br.last);
    else
      r.ranges.push_back(br);
  }
  r.status = range_status::satisfiable;
  return r;
}

}  // namespace swactor::protocols
