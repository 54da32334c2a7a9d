#pragma once
// The IPC envelope: a fixed-size, versioned, little-endian frame header followed by a
// payload. Messages larger than one chunk travel as several frames (chunk_begin,
// chunk_continue..., chunk_end) and the decoder reassembles them; it never hands out a
// partial message. No I/O here: the link (link.hpp) moves the bytes.
//
// Wire layout (header_size = 48 bytes, all integers little-endian):
//
//   off size field
//     0    2 magic          0x5753 (bytes 'S' 'W')
//     2    1 version        protocol_version (1)
//     3    1 type           message_type
//     4    2 flags          frame_flags: chunk bits + error + application bits
//     6    2 reserved       sent as 0, ignored by the decoder (room for v1 extensions)
//     8    4 length         payload bytes in this frame
//    12    4 reactor_id
//    16    8 session_id     connection / session id
//    24    8 message_id
//    32    4 src_worker     no_worker (0xffffffff) when the sender is not a worker
//    36    4 dst_worker     no_worker when not addressed to one worker
//    40    8 total_length   payload bytes of the whole message (== length if unchunked)
//
// Chunking: exactly one of chunk_begin / chunk_continue / chunk_end is set on a frame of a
// chunked message, none on an unchunked one. A chunked message is identified by
// (src_worker, reactor_id, session_id, message_id): chunks of different messages may be
// interleaved on one stream, but a sender must not interleave two messages with the same key.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <vector>

#include "swactor/core/error.hpp"

namespace swactor::ipc {

// -- errors ---------------------------------------------------------------------------------

enum class errc {
  ok = 0,
  bad_magic = 1,        // header does not start with the magic: not our protocol / desync
  bad_version,          // peer speaks another envelope version
  bad_flags,            // several chunk bits set at once
  bad_length,           // length fields disagree (total vs chunk sum, unchunked total != length)
  frame_too_large,      // one frame's payload above codec_options::max_frame_size
  message_too_large,    // a message's total size above codec_options::max_message_size
  chunk_out_of_order,   // continue/end without begin, duplicate begin, fields changed mid-message
  too_many_partial,     // too many chunked messages (or bytes) reassembling at once
  truncated,            // the stream ended inside a frame or a chunked message
  queue_full,           // link: send queue above link_options::max_queued_bytes
  bad_message,          // messages.hpp: a payload that does not match its type's layout
};

const std::error_category& ipc_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), ipc_category()};
}

// -- the message ----------------------------------------------------------------------------

inline constexpr std::uint16_t magic = 0x5753;
inline constexpr std::uint8_t protocol_version = 1;
inline constexpr std::size_t header_size = 48;
inline constexpr std::uint32_t no_worker = 0xffffffffu;

// What a message means. Values are wire-stable: append new ones, never renumber. Unknown
// values are delivered as they are (the receiver decides), so a newer peer can add types.
enum class message_type : std::uint8_t {
  none = 0,
  connect = 1,        // reactor -> worker: a connection was accepted
  receive = 2,        // reactor -> worker: a complete framed message from a connection
  close = 3,          // either way: a connection closed / close it
  send = 4,           // worker -> reactor: bytes to send on a connection
  task = 5,           // worker -> task worker
  task_result = 6,    // task worker -> worker
  pipe_message = 7,   // worker -> worker (sendMessage)
  control = 8,        // manager <-> process: start/stop/reload/ping...
  stats = 9,          // stats report / request
  bus = 10,           // module bus publish / point-to-point
  packet = 11,        // UDP datagram
  pause = 12,         // flow control: pause / resume reading a connection
  resume = 13,
  // One value per message struct of messages.hpp that no value above already means.
  conn_close = 14,    // worker -> reactor: close a connection
  conn_bind = 15,     // worker -> reactor: bind a connection to a uid
  datagram_out = 16,  // worker -> reactor: send a datagram
  drain = 17,         // worker -> reactor: send me nothing more
  drained = 18,       // reactor -> worker: everything before this was sent
  ready = 19,         // process -> master: serving
  stop = 20,          // master -> process: stop gracefully
  conn_watch = 21,    // worker -> reactor: say when a connection's output has drained
  conn_writable = 22, // reactor -> worker: it has (streamed replies: backpressure)
  bus_subscribe = 23, // process -> master: (un)subscribe a module instance to a bus pattern
  conn_upgrade = 24,  // worker -> reactor: a connection became a WebSocket of a module
  conn_adopt = 25,    // reactor -> worker: an open WebSocket the worker's new process takes over
  group_op = 26,      // worker -> reactor: a connection joins / leaves a group
  group_send = 27,    // worker -> reactor: a typed reply to every member of a group
  user = 128,         // first value free for applications
};

std::string_view type_name(message_type t) noexcept;

// Frame flag bits. The chunk bits are owned by the codec; the rest travel with the message.
namespace flag {
inline constexpr std::uint16_t chunk_begin = 0x0001;
inline constexpr std::uint16_t chunk_continue = 0x0002;
inline constexpr std::uint16_t chunk_end = 0x0004;
inline constexpr std::uint16_t chunk_mask = 0x0007;
inline constexpr std::uint16_t error = 0x0008;      // payload describes a failure
inline constexpr std::uint16_t user_mask = 0xff00;  // free for applications
}  // namespace flag

// Payload: std::string (message), or std::string_view (message_view: a whole frame as the
// decoder found it in the bytes fed, valid only during the call it is passed to).
template <class Payload>
struct basic_message {
  message_type type = message_type::none;
  std::uint16_t flags = 0;  // without chunk bits (the codec sets and strips them)
  std::uint32_t reactor_id = 0;
  std::uint64_t session_id = 0;
  std::uint64_t message_id = 0;
  std::uint32_t src_worker = no_worker;
  std::uint32_t dst_worker = no_worker;
  Payload payload;

  bool has_error() const noexcept { return (flags & flag::error) != 0; }
  friend bool operator==(const basic_message&, const basic_message&) = default;
};
using message = basic_message<std::string>;
using message_view = basic_message<std::string_view>;
// `m` as a view (valid while `m` is, unchanged).
inline message_view view_of(const message& m) noexcept {
  return {m.type, m.flags, m.reactor_id, m.session_id, m.message_id, m.src_worker, m.dst_worker, m.payload};
}

// -- options --------------------------------------------------------------------------------

struct codec_options {
  std::size_t chunk_size = 64 * 1024;              // encoder: payload bytes per frame
  std::size_t max_frame_size = 16 * 1024 * 1024;   // decoder: largest frame payload accepted
  std::size_t max_message_size = 64 * 1024 * 1024; // both: largest message payload
  std::size_t max_partial = 1024;                  // decoder: chunked messages in progress
  std::size_t max_partial_bytes = 256 * 1024 * 1024;  // decoder: bytes held by those
  std::size_t copy_threshold = 4096;  // encoder: payloads up to this are copied, not referenced
};

// Bytes that `m` takes on the wire with these options (headers included).
std::size_t encoded_size(std::size_t payload_size, const codec_options& opts = {}) noexcept;

// -- encoder --------------------------------------------------------------------------------

// Collects envelopes for one gathered write. Headers and small payloads are written into one
// internal buffer; payloads above copy_threshold are referenced, not copied, so the message
// (its payload string) must stay alive and unchanged until the write is done or clear() is
// called. buffers() are then ready for writev / asio::async_write.
class encoder {
 public:
  explicit encoder(codec_options opts = {}) : opts_(opts) {}

  // Appends `m` as one frame, or as chunk frames if its payload is above chunk_size.
  // errc::message_too_large if the payload is above max_message_size (nothing appended).
  std::error_code append(const message& m);

  // Bytes already encoded elsewhere (append_frame()), `frames` envelopes of them, referenced
  // like a large payload: they must stay alive and unchanged until the write is done.
  void append_encoded(std::span<const std::byte> bytes, std::size_t frames);

  // The buffers to write, in order. Valid until the next append() or clear().
  const std::vector<std::span<const std::byte>>& buffers();
  std::size_t size() const noexcept { return size_; }      // total bytes
  std::size_t frames() const noexcept { return frames_; }  // envelopes appended
  bool empty() const noexcept { return size_ == 0; }
  void clear() noexcept;

  const codec_options& options() const noexcept { return opts_; }

 private:
  struct piece {
    const std::byte* external;  // nullptr: `offset` into arena_
    std::size_t offset;
    std::size_t size;
  };
  void add_local(const void* data, std::size_t n);
  void add_header(const message& m, std::uint16_t flags, std::size_t length, std::size_t total);

  codec_options opts_;
  std::string arena_;
  std::vector<piece> pieces_;
  std::vector<std::span<const std::byte>> buffers_;
  bool buffers_valid_ = false;
  std::size_t size_ = 0;
  std::size_t frames_ = 0;
};

// Appends `m` to `out` as one unchunked frame, header and payload; false (nothing appended)
// when its payload needs chunks (above chunk_size) or is above max_message_size.
bool append_frame(const message& m, std::string& out, const codec_options& opts = {});

// A message given as its header (`head`, payload ignored) and its payload in pieces, in
// order: what a sender of a small, hot message kind passes instead of building a payload
// string (messages.hpp: pieces_of; link::try_send_pieces copies them once, into its buffer).
struct message_pieces {
  message head;
  std::string_view bulk;           // the kind's bulk bytes
  char fields[16] = {};            // then its own fields, encoded
  std::uint8_t fields_size = 0;
  std::size_t size() const noexcept { return bulk.size() + fields_size; }
  std::string_view fields_view() const noexcept { return {fields, fields_size}; }
  // The message as send() would take it (the payload built).
  message assemble() const;
};
// append_frame() for pieces.
bool append_frame(const message_pieces& m, std::string& out, const codec_options& opts = {});

// Encodes `m` by copy, appending to `out` (tests, tools, small control messages).
std::error_code encode(const message& m, std::string& out, const codec_options& opts = {});

// Where feed() offers whole frames in place: fn(ctx, view) returns true when it took the
// frame (no message is made of it), false to have it appended to `out` as usual.
struct view_sink {
  bool (*fn)(void*, const message_view&) = nullptr;
  void* ctx = nullptr;
};

// -- decoder --------------------------------------------------------------------------------

// Streaming decoder: feed() bytes in any split; complete messages come out. The first
// protocol error is sticky: feed() then consumes nothing and returns it again, error() and
// reason() tell what happened so the link can disconnect and log.
class decoder {
 public:
  explicit decoder(codec_options opts = {}) : opts_(opts) {}

  // Consumes all of `bytes`, appending complete messages to `out` (in completion order).
  // Messages completed before an error are still appended.
  std::error_code feed(std::span<const std::byte> bytes, std::vector<message>& out);
  std::error_code feed(std::string_view bytes, std::vector<message>& out) {
    return feed(std::as_bytes(std::span(bytes.data(), bytes.size())), out);
  }
  // The same, offering each unchunked frame that lies whole in `bytes` to `sink` first, in
  // place (no payload copy), while nothing is waiting in `out` (so the order of all frames
  // is kept: a frame after one appended to `out` is appended too).
  std::error_code feed(std::span<const std::byte> bytes, std::vector<message>& out, view_sink sink);

  // To call at end of stream: errc::truncated if a frame or a chunked message is unfinished.
  std::error_code finish();

  std::error_code error() const noexcept { return error_; }
  const std::string& reason() const noexcept { return reason_; }
  bool failed() const noexcept { return static_cast<bool>(error_); }

  // True between frames with no chunked message waiting for more chunks.
  bool idle() const noexcept { return header_fill_ == 0 && !in_payload_ && partial_.empty(); }
  std::size_t partial_messages() const noexcept { return partial_.size(); }
  std::uint64_t bytes_consumed() const noexcept { return consumed_; }
  std::uint64_t messages_decoded() const noexcept { return decoded_; }

  // Forgets everything (error included).
  void reset();

 private:
  struct key {
    std::uint32_t src_worker;
    std::uint32_t reactor_id;
    std::uint64_t session_id;
    std::uint64_t message_id;
    bool operator==(const key&) const = default;
  };
  struct key_hash {
    std::size_t operator()(const key& k) const noexcept;
  };
  struct partial {
    message msg;
    std::uint64_t total;
  };
  struct frame_header {
    std::uint8_t type;
    std::uint16_t flags;
    std::uint32_t length;
    std::uint32_t reactor_id;
    std::uint64_t session_id;
    std::uint64_t message_id;
    std::uint32_t src_worker;
    std::uint32_t dst_worker;
    std::uint64_t total;
  };

  std::error_code fail(errc e, std::string why);
  std::error_code on_header(std::vector<message>& out);
  void on_payload_done(std::vector<message>& out);
  // A whole unchunked, valid frame at `p` (at least a header's worth): appends its message
  // and advances past it; false (nothing consumed) for anything else.
  bool take_whole_frame(const std::byte*& p, std::size_t& left, std::vector<message>& out, view_sink sink);

  codec_options opts_;
  std::error_code error_;
  std::string reason_;
  std::byte header_buf_[header_size];
  std::size_t header_fill_ = 0;
  frame_header hdr_{};
  bool in_payload_ = false;
  std::size_t payload_left_ = 0;
  std::string* target_ = nullptr;  // where the current frame's payload goes
  message single_;                  // the unchunked message being filled
  key target_key_{};
  std::unordered_map<key, partial, key_hash> partial_;
  std::size_t partial_bytes_ = 0;
  std::uint64_t consumed_ = 0;
  std::uint64_t decoded_ = 0;
};

}  // namespace swactor::ipc

namespace std {
template <>
struct is_error_code_enum<swactor::ipc::errc> : true_type {};
}  // namespace std
