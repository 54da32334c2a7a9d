// libFuzzer target for the IPC envelope decoder.
// Input: byte 0 picks a feed step (1..64 bytes per feed, or the whole input at once when
// it is 0), the rest is the byte stream. Checks, beyond "no crash / no leak":
// - feeding in pieces and feeding at once give the same messages and the same error;
// - every decoded message re-encodes (chunked) and decodes back to itself.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "swactor/ipc/envelope.hpp"

using namespace swactor::ipc;

namespace {

codec_options fuzz_options() {
  codec_options o;
  o.chunk_size = 7;  // re-encoding chunks every message of more than 7 bytes
  o.max_frame_size = 1 << 20;
  o.max_message_size = 4 << 20;
  o.max_partial = 64;
  o.max_partial_bytes = 8 << 20;
  return o;
}

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t step = data[0] % 65;
  std::string_view stream(reinterpret_cast<const char*>(data + 1), size - 1);
  const auto opts = fuzz_options();

  decoder whole(opts);
  std::vector<message> a;
  auto ea = whole.feed(stream, a);

  decoder pieces(opts);
  std::vector<message> b;
  std::error_code eb;
  for (std::size_t off = 0; off < stream.size() && !eb;) {
    std::size_t n = step == 0 ? stream.size() : std::min(step, stream.size() - off);
    eb = pieces.feed(stream.substr(off, n), b);
    off += n;
  }
  check(ea == eb);
  check(a == b);
  check(whole.bytes_consumed() == pieces.bytes_consumed());
  if (ea) check(!whole.reason().empty());
  if (!ea) (void)whole.finish();

  for (const auto& m : a) {
    check((m.flags & flag::chunk_mask) == 0);
    std::string bytes;
    check(!encode(m, bytes, opts));
    check(bytes.size() == encoded_size(m.payload.size(), opts));
    decoder again(opts);
    std::vector<message> back;
    check(!again.feed(bytes, back));
    check(back.size() == 1 && back[0] == m);
    check(again.idle() && !again.finish());
  }
  return 0;
}
