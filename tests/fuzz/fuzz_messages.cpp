// libFuzzer target for the typed IPC messages (messages.hpp).
// Input: byte 0 is the message_type, bit 0 of byte 1 sets flag::error, the rest is the
// payload; the other header fields are fixed non-zero values. Checks, beyond "no crash /
// no leak / no UB":
// - decode of a copy and decode of an rvalue agree (same value or same error);
// - a failure is errc::bad_message, never another error;
// - a decoded message is canonical: encode() gives back the same type and payload bytes,
//   and decodes again to the same value.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <utility>

#include "swactor/ipc/envelope.hpp"
#include "swactor/ipc/messages.hpp"

using namespace swactor::ipc;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  message m;
  m.type = static_cast<message_type>(data[0]);
  m.flags = (data[1] & 1) ? flag::error : 0;
  m.reactor_id = 3;
  m.session_id = 0x0102030405060708ull;
  m.message_id = 77;
  m.src_worker = 4;
  m.dst_worker = 5;
  m.payload.assign(reinterpret_cast<const char*>(data + 2), size - 2);

  auto copied = decode(m);
  message moved_from = m;
  auto moved = decode(std::move(moved_from));
  check(copied.has_value() == moved.has_value());
  if (!copied) {
    check(copied.error() == make_error_code(errc::bad_message));
    check(moved.error() == copied.error());
    return 0;
  }
  check(*copied == *moved);
  check(!kind_name(*copied).empty());

  auto again = encode(*copied);
  check(again.type == m.type);
  check(again.payload == m.payload);
  auto back = decode(std::move(again));
  check(back && *back == *copied);
  return 0;
}
