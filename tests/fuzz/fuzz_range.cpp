// libFuzzer target for the Range header parser (protocols/http_range.hpp).
// Input: 8 bytes of representation size (little endian, top bits masked so sizes near the
// 64-bit limit are reached), then the field value.
// Checks: satisfiable <=> ranges non-empty; every range lies inside the representation,
// first <= last; ranges are sorted, disjoint and not adjacent; at most max_ranges of them.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "swactor/protocols/http_range.hpp"

using namespace swactor::protocols;

namespace {
void check(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 8) return 0;
  std::uint64_t len = 0;
  for (int i = 7; i >= 0; --i) len = (len << 8) | data[i];
  len &= (UINT64_C(1) << 63) - 1;
  if (data[0] & 1) len &= 0xffff;  // small files too, where ranges actually overlap
  std::string_view value(reinterpret_cast<const char*>(data + 8), size - 8);
  auto r = parse_range(value, len, 8);
  check((r.status == range_status::satisfiable) == !r.ranges.empty());
  check(r.ranges.size() <= 8);
  for (std::size_t i = 0; i < r.ranges.size(); ++i) {
    check(r.ranges[i].first <= r.ranges[i].last);
    check(r.ranges[i].last < len);
    if (i > 0) check(r.ranges[i - 1].last + 1 < r.ranges[i].first);
  }
  return 0;
}
