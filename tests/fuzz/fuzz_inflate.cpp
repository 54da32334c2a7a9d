// libFuzzer target for the HTTP content-coding decoders (protocols/src/compression.cpp):
// what a client's `Content-Encoding: gzip | deflate | br` body goes through.
// Input: byte 0 coding (% 3: gzip, deflate, br), byte 1 feed step (0 = whole), bytes 2..3
// the output limit (little endian, 0 = 64 KiB), then the compressed stream.
// Checks: never more output than the limit (and exactly the limit when too_large); whole
// and piecewise feeding agree on valid data (status and bytes) and on "not ok"; the stream's bytes themselves, compressed and decoded, come back unchanged (and a
// limit one below their size gives too_large with exactly the limit produced).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "swactor/protocols/compression.hpp"

namespace cz = swactor::protocols::compression;

namespace {
void check(bool ok) {
  if (!ok) std::abort();
}

struct run {
  cz::decode_status status = cz::decode_status::ok;
  std::string out;
};

run decode(cz::coding c, std::uint64_t limit, std::string_view in, std::size_t step) {
  auto d = cz::make_decoder(c, limit);
  run r;
  for (std::size_t off = 0; off < in.size() && r.status == cz::decode_status::ok;) {
    std::size_t n = step == 0 ? in.size() : std::min(step, in.size() - off);
    r.status = d->feed(in.substr(off, n), r.out);
    off += n;
    check(r.out.size() <= limit);
    check(d->produced() == r.out.size());
  }
  if (r.status == cz::decode_status::ok) r.status = d->finish();
  return r;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 4) return 0;
  static constexpr cz::coding codings[] = {cz::coding::gzip, cz::coding::deflate, cz::coding::br};
  const auto c = codings[data[0] % 3];
  const std::size_t step = data[1];
  std::uint64_t limit = data[2] | (std::uint64_t{data[3]} << 8);
  if (limit == 0) limit = 64 * 1024;
  std::string_view in(reinterpret_cast<const char*>(data) + 4, size - 4);

  auto whole = decode(c, limit, in, 0);
  auto pieces = decode(c, limit, in, step);
  // Valid data decodes the same however it is cut. Invalid data may show its fault after
  // a different amount of output (brotli flushes its ring buffer at other points when it
  // must wait for input), so then only "not ok" must agree.
  check((whole.status == cz::decode_status::ok) == (pieces.status == cz::decode_status::ok));
  if (whole.status == cz::decode_status::ok) check(whole.out == pieces.out);
  for (const auto* r : {&whole, &pieces})
    if (r->status == cz::decode_status::too_large) check(r->out.size() == limit);

  // Round trip of the raw bytes through our encoder.
  auto z = cz::compress(c, 1 + data[1] % 9, in);
  auto back = decode(c, in.size(), z, step);
  check(back.status == cz::decode_status::ok);
  check(back.out == in);
  if (!in.empty()) {
    auto short_by_one = decode(c, in.size() - 1, z, 0);
    check(short_by_one.status == cz::decode_status::too_large);
    check(short_by_one.out.size() == in.size() - 1);
  }
  return 0;
}
