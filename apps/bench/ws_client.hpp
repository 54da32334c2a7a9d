#pragma once
// The websocket modes' protocol pieces (mode_websocket.cpp), apart so they can be tested
// directly: the client side of RFC 6455 as far as a load tester needs it — the upgrade
// request and the check of its answer, masked client frames, and cutting server messages
// out of the byte stream.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace swactor::bench::ws {

// -- the opening handshake ----------------------------------------------------------------

// A fresh Sec-WebSocket-Key: base64 of 16 random bytes (24 characters).
std::string make_key();

// The upgrade request for `path` on `host` (the Host header's value) with `key`; with
// `deflate`, it offers permessage-deflate as browsers do ("permessage-deflate;
// client_max_window_bits").
std::string upgrade_request(std::string_view host, std::string_view path, std::string_view key,
                            bool deflate = false);

// The upgrade answer at the front of `in`: its head's size once whole and acceptable (a
// 101 with Upgrade: websocket and Sec-WebSocket-Accept equal to `accept`), 0 while more
// bytes are needed, -1 otherwise with the reason in `why`. With `deflate` (it was offered)
// the answer must accept permessage-deflate: a benchmark of compressed messages must not
// quietly measure plain ones; without it, an extension in the answer is refused.
inline constexpr std::size_t max_head = 16 * 1024;
std::ptrdiff_t upgrade_reply(std::string_view in, std::string_view accept, std::string& why,
                             bool deflate = false);

// -- frames -------------------------------------------------------------------------------

inline constexpr std::uint8_t op_continuation = 0, op_text = 1, op_binary = 2, op_close = 8,
                              op_ping = 9, op_pong = 10;

// A server frame's header. Largest payload accepted: a load test's messages are far
// smaller; anything bigger means the stream is not what we think it is.
inline constexpr std::uint64_t max_payload = std::uint64_t{1} << 30;
struct frame_head {
  std::uint8_t opcode = 0;
  bool fin = false;
  std::size_t header = 0;    // header bytes (2, 4 or 10; + 4 when masked)
  std::uint64_t length = 0;  // payload bytes
};
// Parses the header at the front of `in`: its size, 0 while incomplete, -1 when it is not
// a valid server frame (masked, reserved bits set, unknown opcode, a control frame
// fragmented or over 125 bytes, a length over max_payload). `rsv1_ok`: permessage-deflate
// was negotiated, so RSV1 (a compressed message) may be set on a data frame.
std::ptrdiff_t parse_head(std::string_view in, frame_head& h, bool rsv1_ok = false);

// One reply to a request: any control frames the server sends first (ping, pong: skipped)
// and then one whole data message (a text or binary frame, with its continuation frames
// up to the one with FIN). A close frame instead ends the reply with `close` set.
struct message_cut {
  std::ptrdiff_t size = 0;  // > 0 whole; 0 more bytes needed; -1 malformed
  bool close = false;       // the server sent a close frame (size includes it)
};
message_cut cut_message(std::string_view in, bool rsv1_ok = false);

// The data message's payload in a reply cut by cut_message() (control frames skipped,
// fragments joined), and its first frame's opcode.
std::string message_payload(std::string_view reply, std::uint8_t* opcode = nullptr, bool rsv1_ok = false);

// A masked client frame (FIN set) of `payload` with `mask` (as sent: byte 0 first),
// appended to `out`; `rsv1` marks a compressed message (permessage-deflate).
void append_client_frame(std::string& out, std::uint8_t opcode, std::string_view payload,
                         std::uint32_t mask, bool rsv1 = false);

// permessage-deflate's client side for a load tester: `in` compressed on its own (no
// context kept from earlier messages, as a client may always do; zlib's fastest level and
// a small hash table, so the client stays cheap) and appended to `out` without the
// trailing 00 00 ff ff (RFC 7692 §7.2.1). One compressor per thread.
void deflate_message(std::string_view in, std::string& out);
// The payload of a client frame made by append_client_frame() (unmasked); empty when it
// is not one.
std::string client_payload(std::string_view frame);

// The size of the first close frame in `in` (frames before it skipped), 0 while more bytes
// are needed, -1 when the stream is malformed.
std::ptrdiff_t cut_close(std::string_view in, bool rsv1_ok = false);

}  // namespace swactor::bench::ws
