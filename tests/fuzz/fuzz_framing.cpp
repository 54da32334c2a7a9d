// libFuzzer target for the stream framer (raw / eof / length).
// Input: an 8-byte option block, then (eof) the delimiter, then the stream:
//   0 type % 3   1 delimiter length (1..8) or length_size selector   2 bit 0 signed, bit 1 little
//   3 length_offset % 8   4 body_offset % 16   5..6 max_length (1..65536)   7 feed step (0 = whole)
// Checks: invalid options <=> invalid_options error; whole and piecewise feeding agree; messages are
// consecutive slices of the input; eof messages end with their first delimiter; no message
// above max_length.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "swactor/protocols/framing.hpp"

using namespace swactor::protocols;

namespace {
void check(bool ok) {
  if (!ok) std::abort();
}

struct run {
  std::vector<std::string> messages;
  bool failed = false;
  std::error_code error;
  std::size_t buffered = 0;
};

run feed(const framing_options& o, std::string_view stream, std::size_t step) {
  framer f(o);
  run r;
  for (std::size_t off = 0; off < stream.size() || off == 0;) {
    std::size_t n = step == 0 ? stream.size() : std::min(step, stream.size() - off);
    if (f.feed(stream.substr(off, n), r.messages)) break;
    off += n;
    if (n == 0) break;
  }
  r.failed = f.failed();
  r.error = f.error();
  r.buffered = f.buffered();
  if (r.failed) check(!f.reason().empty());
  return r;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 8) return 0;
  framing_options o;
  o.type = static_cast<framing_type>(data[0] % 3);
  static constexpr std::size_t sizes[] = {1, 2, 4, 8, 3};
  o.length_size = sizes[data[1] % 5];
  o.length_signed = data[2] & 1;
  o.length_order = (data[2] & 2) ? byte_order::little : byte_order::big;
  o.length_offset = data[3] % 8;
  o.body_offset = data[4] % 16;
  o.max_length = (std::size_t(data[5]) | std::size_t(data[6]) << 8) + 1;
  const std::size_t step = data[7] % 33;
  std::size_t off = 8;
  if (o.type == framing_type::eof) {
    std::size_t dlen = data[1] % 9;  // 0 is invalid on purpose
    if (size - off < dlen) return 0;
    o.eof.assign(reinterpret_cast<const char*>(data + off), dlen);
    off += dlen;
  }
  std::string_view stream(reinterpret_cast<const char*>(data + off), size - off);

  const bool valid = o.validate().empty();
  auto whole = feed(o, stream, 0);
  check((whole.error == framing_errc::invalid_options) == !valid);
  if (!valid) {
    check(whole.messages.empty());
    return 0;
  }
  auto pieces = feed(o, stream, step);

  // Errors may be detected at different points (an eof buffer reaching max_length before
  // the delimiter arrives), but what was delivered must agree.
  check(whole.failed == pieces.failed);
  if (o.type == framing_type::raw) {
    std::string a, b;  // raw delivers per feed: only the bytes must agree
    for (const auto& m : whole.messages) a += m;
    for (const auto& m : pieces.messages) b += m;
    check(a == b);
  } else {
    check(whole.messages == pieces.messages);
  }
  if (!whole.failed) check(whole.buffered == pieces.buffered);

  std::size_t pos = 0;
  for (const auto& m : whole.messages) {
    check(!m.empty());
    check(stream.substr(pos, m.size()) == m);
    pos += m.size();
    if (o.type == framing_type::raw) continue;
    check(m.size() <= o.max_length);
    if (o.type == framing_type::eof) {
      check(m.size() >= o.eof.size());
      check(std::string_view(m).find(o.eof) == m.size() - o.eof.size());
    }
  }
  if (!whole.failed) check(pos + whole.buffered == stream.size());
  return 0;
}
