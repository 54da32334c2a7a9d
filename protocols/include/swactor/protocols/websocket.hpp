#pragma once
// WebSocket (RFC 6455), server side, as a sans-I/O codec: client frames in, messages and
// control events out; the module's messages in, server frames out. Frames are taken as their
// bytes arrive (a payload is unmasked and, for text, UTF-8-checked piece by piece), so a bad
// byte closes the connection at once, before the rest of its frame is read.
//
// What the codec enforces, each with its close code (RFC 6455 §7.4.1):
//   1002  unmasked client frame; reserved bits without a negotiated extension; unknown
//         opcode; control frame over 125 bytes or fragmented; continuation without a message
//         or a data frame inside one; a length not in its shortest form or with the top bit
//         set; a close frame of 1 byte or with an invalid code
//   1007  text (or a close reason) that is not UTF-8
//   1009  a frame over max_frame_size, a message over max_message_size
// It answers pings with pongs and a close with a close (take_output), and is done() once
// the close handshake is complete (or after an error close).
//
// Event kinds (what crosses IPC in process mode):
//   text, binary   one whole message (fragments reassembled)
//   ping, pong     only with options::deliver_control
//   close          data = u16 code (big-endian, absent when the peer sent none) + reason
// Reply kinds for encode(): text, binary, ping, pong, close (data = u16 code + reason, or
// empty), and raw (0) bytes as every codec.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "swactor/protocols/codec.hpp"

namespace swactor::protocols::websocket {

// Kinds start at 16 so that they never collide with HTTP/1's (1..5) on a connection that
// was upgraded: in process mode the worker tells the two apart by the kind alone.
enum class ev : std::uint8_t { text = 16, binary = 17, ping = 18, pong = 19, close = 20 };
using reply = ev;  // encode() kinds: the same numbers

enum class opcode : std::uint8_t { continuation = 0, text = 1, binary = 2, close = 8, ping = 9, pong = 10 };

// Close codes this codec sends.
inline constexpr std::uint16_t close_normal = 1000;
inline constexpr std::uint16_t close_going_away = 1001;
inline constexpr std::uint16_t close_protocol_error = 1002;
inline constexpr std::uint16_t close_invalid_payload = 1007;
inline constexpr std::uint16_t close_policy = 1008;
inline constexpr std::uint16_t close_too_big = 1009;
inline constexpr std::uint16_t close_internal_error = 1011;

// A code a peer may send in a close frame: 1000-1003, 1007-1011, 3000-4999 (1004-1006 and
// 1015 are reserved for local use; 1012-1014 and 1016-2999 are unassigned to clients).
bool valid_close_code(std::uint16_t code) noexcept;

// permessage-deflate (RFC 7692) as negotiated for one connection.
struct deflate_params {
  bool server_no_context_takeover = false;  // we reset our compressor after each message
  bool client_no_context_takeover = false;  // the client resets its own: we may reset our decompressor
  int server_max_window_bits = 15;          // our compressor's window (8 is sent as 9: zlib's limit)
  int client_max_window_bits = 15;          // the client's window: our decompressor's
};

struct options {
  std::uint64_t max_frame_size = 16 << 20;    // one frame's payload
  std::uint64_t max_message_size = 16 << 20;  // a reassembled message (inflated, when compressed)
  bool deliver_control = false;               // pings and pongs as events too
  bool rsv1_allowed = false;                  // RSV1 on data frames (set by `deflate`, its only user)
  bool deflate = false;                       // permessage-deflate was negotiated with `deflate_with`
  deflate_params deflate_with;
  std::size_t deflate_min_size = 64;          // smaller outgoing messages go uncompressed
  std::uint32_t close_timeout_ms = 5000;      // after our close, how long the peer has to answer
  // Liveness: after ping_interval_ms without a byte from the peer we send a ping; after
  // idle_timeout_ms without one we close with 1001 "idle timeout". 0 turns either off.
  std::uint32_t ping_interval_ms = 0;
  std::uint32_t idle_timeout_ms = 0;
};

// The codec fails with error codes of this category whose value is the close code it sent.
const std::error_category& error_category() noexcept;

// Incremental UTF-8 validation (RFC 3629: no overlongs, no surrogates, nothing above
// U+10FFFF), fed piece by piece; ASCII runs are checked eight bytes at a time.
class utf8_validator {
 public:
  // False at the first byte that cannot be part of valid UTF-8 (sticky).
  bool feed(std::string_view bytes) noexcept;
  // True when everything fed so far is valid and no sequence is left open.
  bool complete() const noexcept { return ok_ && need_ == 0; }
  bool ok() const noexcept { return ok_; }
  void reset() noexcept { *this = {}; }

 private:
  bool ok_ = true;
  std::uint8_t need_ = 0;   // continuation bytes still expected
  std::uint8_t lo_ = 0x80;  // bounds of the next continuation byte (overlong / surrogate /
  std::uint8_t hi_ = 0xBF;  // range checks of the lead byte)
};

// XORs `data` with the 4-byte `mask` starting at mask byte `offset` (0..3), a word at a time.
// Returns the offset for the byte after `data`.
std::size_t unmask(char* data, std::size_t n, const std::uint8_t mask[4], std::size_t offset) noexcept;

// Appends one unmasked server frame (FIN set) with the shortest length form.
void write_frame(std::string& out, opcode op, std::string_view payload, bool rsv1 = false);
// A close frame: `code` 0 sends an empty close.
void write_close(std::string& out, std::uint16_t code, std::string_view reason);

// One connection's permessage-deflate state: zlib streams made on first use (an idle
// connection pays nothing), reset after each message where no_context_takeover says so.
// Memory when in use: about 7 KiB + a window of 2^client_max_window_bits for inflating (with
// a client window of 9 bits or less only that window, up to 512 B, is kept: the thread's
// shared stream inflates with it as dictionary), about 2^(server_max_window_bits + 2) +
// 128 KiB (zlib memLevel 8: 256 KiB at 15 bits) for deflating; a side without context
// takeover uses the thread's shared stream and keeps nothing.
class deflater {
 public:
  explicit deflater(const deflate_params& p) : params_(p) {}
  ~deflater();
  deflater(const deflater&) = delete;
  deflater& operator=(const deflater&) = delete;

  // Inflates one message's compressed payload (the 0x00 0x00 0xff 0xff tail added here) and
  // appends it to `out`; false when the data is not valid deflate or inflates past `limit`
  // bytes (`too_big` then set: a deflate bomb).
  bool inflate_message(std::string_view in, std::string& out, std::size_t limit, bool& too_big);
  // The same as the message arrives: begin, parts (payload bytes as they come, in order),
  // end (the tail). Each appends what it inflated to `out`, which holds this message only
  // (it starts empty); `out` never grows past `limit`. Between begin and end the deflater
  // holds an inflate stream (the thread's shared one when free); abort or the destructor
  // gives it back.
  bool begin_inflate();
  bool inflate_part(std::string_view in, std::string& out, std::size_t limit, bool& too_big);
  bool end_inflate(std::string& out, std::size_t limit, bool& too_big);
  void abort_inflate() noexcept;
  // Compresses one message for a frame with RSV1 (the sync-flush tail removed).
  void deflate_message(std::string_view in, std::string& out);

 private:
  deflate_params params_;
  void* inflate_ = nullptr;  // z_stream*, kept out of this header
  void* deflate_ = nullptr;
  // A client window of 9 bits or less with context takeover: the client's last 2^bits bytes
  // (what its next message may refer to), inflated with the thread's shared stream.
  std::string window_;
  // The message being inflated: its stream (inflate_, the thread's shared one, or one of its
  // own when another connection holds the shared one) and whether any payload came.
  enum class stream_kind : std::uint8_t { none, own, shared, temporary };
  void* active_ = nullptr;
  stream_kind active_kind_ = stream_kind::none;
  bool fed_ = false;
  bool run_inflate(const unsigned char* data, std::size_t n, std::string& out, std::size_t limit, bool& too_big);
  void release_inflate(bool ok) noexcept;
};

class codec final : public stream_codec {
 public:
  // Options of one's own (tests, fuzzers): o.deflate and o.deflate_with say what was negotiated.
  explicit codec(const options& o = {});
  // A listener's options, shared by its connections (their deflate fields are not read), and
  // what this connection negotiated: an idle connection keeps a pointer, not a copy.
  codec(std::shared_ptr<const options> shared, bool deflate, const deflate_params& negotiated);
  ~codec() override;

  std::string_view name() const noexcept override { return "websocket"; }
  std::size_t decode(std::string_view in, event_sink& out) override;
  void encode(std::uint8_t kind, std::string_view data, std::string& out) override;
  bool take_output(std::string& out) override;
  bool done() const noexcept override { return closed_ && output_.empty(); }
  // After our close frame: the peer's reply is due within close_timeout_ms. Before it, the
  // liveness phases: quiet for ping_interval_ms (then a ping goes out), then for the rest of
  // idle_timeout_ms (then the close). Every byte from the peer starts over.
  deadline timeout() const noexcept override;
  // Ends a phase: a ping (the connection goes on), the idle close, or (no close reply) the end.
  std::string_view expire(std::string& out) override;
  // Stop and reload: close with 1001 "going away"; the reply is due within close_timeout.
  bool go_away(std::string& out) override;

  // Sends close (`code`, `reason`) now if it was not sent yet: a server-initiated close
  // (stop, idle timeout, the module's disconnect). Further input is only read for the
  // peer's close reply.
  void start_close(std::uint16_t code, std::string_view reason);
  bool close_sent() const noexcept { return close_sent_; }
  bool close_received() const noexcept { return close_received_; }

 private:
  enum class phase : std::uint8_t { header, payload };
  bool on_frame_start(std::uint8_t b0, std::uint64_t len);
  bool finish_frame(event_sink& out, bool& stop);
  bool inflate_payload(std::string_view masked);
  void protocol_error(std::uint16_t code, std::string why);
  bool ping_next() const noexcept;
  void flush_before_reply(std::string& out);

  bool deflate_on() const noexcept { return (deflate_flags_ & kDeflateOn) != 0; }
  deflater& deflate_state();

  // Every idle connection holds one codec: the members are ordered so that it has no
  // padding, and the small ones packed.
  std::shared_ptr<const options> opts_;
  std::uint64_t left_ = 0;  // payload bytes still to read of the frame being read
  // The message being reassembled (data frames) and the control frame being read.
  std::string message_;
  std::string control_;
  std::string output_;  // pongs and closes the codec answers by itself
  std::unique_ptr<deflater> deflate_;  // made on the first compressed message
  std::uint32_t epoch_ = 0;    // changes when a liveness phase starts (input, ping, close)
  // Bytes at the front of output_ queued before the last message was delivered: a reply to
  // that message is encoded after them (a pong answering a ping between two fragments goes
  // out before the echo of the message), the rest of output_ after the reply.
  std::uint32_t output_before_event_ = 0;
  std::uint8_t mask_[4] = {0, 0, 0, 0};
  utf8_validator utf8_;
  std::uint8_t mask_off_ = 0;
  // permessage-deflate as negotiated: kDeflate* flags; our and the client's window bits
  // (high and low nibble).
  static constexpr std::uint8_t kDeflateOn = 1, kServerNoTakeover = 2, kClientNoTakeover = 4;
  std::uint8_t deflate_flags_ = 0;
  std::uint8_t deflate_bits_ = 0xff;
  bool ping_pending_ = false;  // we pinged after ping_interval_ms and heard nothing since
  phase phase_ = phase::header;
  // The frame being read.
  opcode op_ = opcode::continuation;
  bool fin_ = false;
  bool rsv1_ = false;
  bool in_message_ = false;
  opcode message_op_ = opcode::text;
  bool message_rsv1_ = false;
  bool close_sent_ = false;
  // Our close is on its way to the wire (written by encode()/expire()/go_away(), or taken
  // from output_). Until then replies to messages delivered before it may still go ahead
  // of it: a peer's close or a protocol error read in the same input as a message does
  // not swallow that message's reply.
  bool close_out_ = false;
  bool close_received_ = false;
  bool closed_ = false;  // no more input: the handshake is complete or an error close went out
};

// -- the opening handshake (RFC 6455 §4.2), on an HTTP request already parsed ---------------------

// The request's fields that matter (views into the request; header values as received,
// repeated headers joined with ", ").
struct handshake_request {
  std::string_view method;
  int version_minor = 1;  // HTTP/1.x
  std::string_view upgrade;
  std::string_view connection;
  std::string_view key;         // Sec-WebSocket-Key
  std::string_view version;     // Sec-WebSocket-Version
  std::string_view protocols;   // Sec-WebSocket-Protocol (may be empty)
  std::string_view extensions;  // Sec-WebSocket-Extensions (may be empty)
};

// A permessage-deflate offer (RFC 7692 §7.1), as the client sent it.
struct deflate_offer {
  bool server_no_context_takeover = false;
  bool client_no_context_takeover = false;
  int server_max_window_bits = 15;   // 8..15
  int client_max_window_bits = 0;    // 0 = the client did not offer the parameter; -1 = offered without a value
};

struct handshake_check {
  int status = 101;       // 101: go ahead; else 400 (bad handshake) or 426 (unsupported version)
  std::string error;      // why, for the log line and the response body
  std::string accept;     // Sec-WebSocket-Accept, when status is 101
  std::vector<std::string> protocols;       // offered subprotocols, in the client's order
  std::vector<deflate_offer> deflate_offers;  // well-formed permessage-deflate offers, in order
  explicit operator bool() const noexcept { return status == 101; }
};

// True when the request asks for a WebSocket at all (Upgrade: websocket); check it only
// then — any other request is plain HTTP.
bool is_upgrade_request(const handshake_request& r) noexcept;
// Validates an upgrade request: GET, HTTP/1.1 or later, an `Upgrade` list with
// `websocket`, a `Connection` list with `upgrade`, a well-formed key, version 13 (426
// otherwise, answered with `Sec-WebSocket-Version: 13`), well-formed subprotocol tokens.
handshake_check check_handshake(const handshake_request& r);
// The 101 response head: Upgrade, Connection, Sec-WebSocket-Accept, and the chosen
// subprotocol and extension response when not empty; `extra` is more header lines, each
// ending with CRLF.
std::string switching_protocols_head(const handshake_check& c, std::string_view protocol,
                                     std::string_view extension_response = {}, std::string_view extra = {});
// The refusal for a failed check (400, or 426 with Sec-WebSocket-Version: 13), with the
// reason as a text body, closing the connection.
std::string refusal(const handshake_check& c);

// The client window asked for (client_max_window_bits) by a server with no_context_takeover
// from a client that offered the parameter but keeps its context: 512 B instead of 32 KiB.
inline constexpr int kSmallClientWindowBits = 9;

// The response to the first acceptable permessage-deflate offer, given the server's wishes
// (`no_context_takeover`: ask for server_no_context_takeover, and for client_max_window_bits=9
// when the client offered that parameter without client_no_context_takeover;
// `max_window_bits` 9..15 for our compressor). Fills `out` with what both sides use; "" when
// no offer is acceptable.
std::string negotiate_deflate(const std::vector<deflate_offer>& offers, bool no_context_takeover,
                              int max_window_bits, deflate_params& out);

// The handshake's Sec-WebSocket-Accept for a client's Sec-WebSocket-Key (SHA-1 + base64).
std::string accept_key(std::string_view client_key);
// A Sec-WebSocket-Key is base64 of 16 bytes: 22 base64 characters and "==".
bool valid_client_key(std::string_view key) noexcept;

}  // namespace swactor::protocols::websocket
