#pragma once
// HTTP/2 server codec (RFC 9113), sans-I/O: an nghttp2 server session fed with
// nghttp2_session_mem_recv and drained with nghttp2_session_mem_send. nghttp2 parses frames,
// HPACK and the stream state machine; this codec turns streams into the same request events
// and reply kinds as the HTTP/1.1 codec (http1.hpp), each prefixed by the stream id, so the
// handler API and the IPC messages of process mode are the same for both versions.
//
// Bytes in -> events out (data = u32 stream id, little endian, then):
//   request: http1::request_head wire form with version byte 2 ("HTTP/2"); the body rides
//            along (complete) when END_STREAM came with the head, else body/end events follow
//   body:    a piece of the request body
//   end:     the body is complete; the trailer fields (http1::header_list wire form)
//   reset:   the stream is gone before its response ended (RST_STREAM, timeout): nothing
// Typed replies in (data = u32 stream id, then the HTTP/1 payload of the same kind):
//   http1::out::whole, head, body, end (trailers become a HEADERS frame), continue_100,
//   and kReplyReset. A whole response from this process comes as a stream_reply object
//   (encode_object), and may be encoded while decode() runs (a handler answering inline):
//   nghttp2 takes submissions from inside its callbacks; its frames come out of
//   take_output() after decode() returns.
//
// Flow control is end to end: a request body piece handed to the sink as a body event is
// acknowledged to the peer (WINDOW_UPDATE, stream and connection) only when the sink says
// its handler took it (consumed(), kind_consumed). A stream nobody reads stops at its
// window (initial_window_size) and holds that much of the connection's window
// (connection_window_size), so unread bodies of one connection never exceed that; other
// streams go on. Bytes the codec keeps or drops itself (a small body riding with its
// request, a refused stream's body) are acknowledged at once, and a stream that closes
// gives back what its handler never took. A response that completes while its request body
// is still arriving ends the stream with RST_STREAM(NO_ERROR) (RFC 9113 §8.1).
//
// The defences that nghttp2 leaves to its user: streams reset by the peer
// (max_resets_per_second, CVE-2023-44487) and PING/SETTINGS/PRIORITY and empty DATA frames
// (max_control_frames_per_second) each draw from a token bucket holding one second's worth,
// refilled from options::clock_ms (read only when a bucket runs dry, never per request);
// CONTINUATION frames per header block, and the decoded header list size
// (max_header_list_size). A trip sends GOAWAY(ENHANCE_YOUR_CALM) and ends the connection; a
// stream idle for idle_stream_timeout (zero window included) is reset.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "swactor/protocols/codec.hpp"
#include "swactor/protocols/http1.hpp"

namespace swactor::protocols::http2 {

// event::kind values (between HTTP/1's 1..3 and WebSocket's 16..)
enum class ev : std::uint8_t { request = 8, body = 9, end = 10, reset = 11 };

// Reply kind (after http1::out's): reset the stream (INTERNAL_ERROR), e.g. a handler that
// failed after its response started.
inline constexpr std::uint8_t kReplyReset = 7;

inline constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

inline bool is_event_kind(std::uint8_t k) noexcept { return k >= 8 && k <= 11; }

struct options {
  std::uint32_t max_concurrent_streams = 128;
  std::uint32_t initial_window_size = 65535;       // per stream, what we let the peer send
  std::uint32_t connection_window_size = 1u << 20; // the whole connection's receive window
  std::uint32_t max_frame_size = 16384;
  std::uint32_t max_header_list_size = 64 * 1024;
  std::uint32_t idle_stream_timeout_ms = 60000;
  std::uint32_t max_resets_per_second = 1000;
  std::uint32_t max_control_frames_per_second = 1000;
  std::uint32_t max_continuations = 32;  // CONTINUATION frames in one header block
  std::uint64_t max_body_size = 8u << 20;
  std::size_t body_chunk_size = 64 * 1024;  // bodies up to this size ride with the request
  std::uint32_t keepalive_timeout_ms = 60000;  // no stream open for this long -> GOAWAY, close
  std::string server_name = "swactor";
  // Monotonic milliseconds for the rate limits (the connection layer's clock; a codec does
  // not read one itself). Null: the codec's one-second ticks stand in (tests, fuzzing).
  std::uint64_t (*clock_ms)() = nullptr;
};

// A codec for a connection that starts with the client preface (prior knowledge, ALPN h2).
std::unique_ptr<stream_codec> make_server_codec(const options& opts);

// The codec after an HTTP/1.1 `Upgrade: h2c` request (RFC 7540 §3.2): `settings` is the
// decoded HTTP2-Settings payload, `request` the upgrade request (its body, if any, was
// complete), answered on stream 1. Null when the settings payload is invalid.
std::unique_ptr<stream_codec> make_upgrade_codec(const options& opts, std::string_view settings,
                                                 const http1::request_head& request, bool head_method);

// u32 little-endian stream id + payload: how replies and events carry their stream.
void put_stream(std::string& out, std::uint32_t stream);
bool take_stream(std::string_view& in, std::uint32_t& stream);

// An ev::request in typed form (event::object), for a sink that takes objects: the stream
// and its request head as views into the codec's buffers (valid during the sink call).
// encode_to() writes the event's bytes: the stream, then the head's wire form.
struct request_object final : event_object {
  std::uint32_t stream = 0;
  http1::request_parts head;
  void encode_to(std::string& out) const override {
    put_stream(out, stream);
    head.encode_to(out);
  }
};

// A reply for one stream in typed form, from a handler in the same process: `inner` is what
// the HTTP/1 codec would get (for http1::out::whole, an http1::response_reply). The codec
// hands a whole response's fields to nghttp2 without a wire form in between; encode_to()
// writes the bytes form (the stream, then the inner reply's wire form) for any other path.
struct stream_reply final : reply_object {
  std::uint32_t stream;
  const reply_object& inner;

  stream_reply(std::uint32_t s, const reply_object& r) noexcept
      : reply_object(form::http2_stream), stream(s), inner(r) {}
  void encode_to(std::string& out) const override {
    put_stream(out, stream);
    inner.encode_to(out);
  }
  std::size_t wire_size() const noexcept override { return 4 + inner.wire_size(); }
};

}  // namespace swactor::protocols::http2
