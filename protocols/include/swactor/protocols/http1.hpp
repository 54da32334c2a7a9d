#pragma once
// HTTP/1.1 server codec (RFC 9110/9112), sans-I/O, parsing with llhttp in strict mode.
//
// Bytes in -> events out:
//   kind request: a request head, encoded (request_head::encode). When the whole body is
//                 already here and not larger than body_chunk_size, it rides along
//                 (complete = true) and no body/end events follow. A sink that takes
//                 objects gets it as request_parts (event::object) instead.
//   kind body:    the next piece of the decoded body (chunked framing removed).
//   kind end:     the body is complete; data = the trailer fields, encoded (header_list).
// Typed replies in -> bytes out (stream_codec::encode kinds):
//   raw:          bytes as they are (not used by the HTTP layer)
//   whole:        response_head::encode + body: a complete response (or, in the same
//                 process, a response_reply through encode_object)
//   head:         response_head::encode: status and headers of a streamed response
//   body:         a piece of a streamed body (chunked on the wire when the client speaks 1.1)
//   end:          end of a streamed response; data = trailers (header_list::encode)
//   continue_100: "100 Continue" for the oldest request that expects it
//   ws_accept:    the oldest request (an upgrade) becomes a WebSocket: data = u8 flags
//                 (1 permessage-deflate, 2 server_no_context_takeover, 4
//                 client_no_context_takeover), u8 server_max_window_bits, u8
//                 client_max_window_bits, then the 101 head as bytes; the codec writes the
//                 head and hands over to a websocket::codec (take_successor)
//   kind_file:    (codec.hpp) a piece of a streamed body that the connection writes from a
//                 file; the codec frames it (frame_file: a chunk header when chunked,
//                 nothing after a HEAD or a 304)
//
// The codec validates everything a request smuggler could use (see http1.cpp), answers
// protocol errors itself (400, 408, 413, 417, 431, 501, 505, then close), adds the framing
// headers of responses (Content-Length / Transfer-Encoding, Connection, Server), drops the
// body of a response to HEAD, and answers pipelined requests strictly in order.

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "swactor/protocols/ascii.hpp"
#include "swactor/protocols/codec.hpp"
#include "swactor/protocols/websocket.hpp"

namespace swactor::protocols::http2 {
struct options;
}
namespace swactor::wire {
class placed_writer;
}

namespace swactor::protocols::http1 {

// event::kind values
enum class ev : std::uint8_t { request = 1, body = 2, end = 3 };
// encode() kinds
enum class out : std::uint8_t { raw = 0, whole = 1, head = 2, body = 3, end = 4, continue_100 = 5, ws_accept = 6 };

struct header {
  // A constructor (not only an aggregate): emplace_back(name, value) builds one in place
  // with every compiler, including those without C++20's parenthesized aggregate init.
  header() = default;
  template <class N, class V>
    requires std::constructible_from<std::string, N&&> && std::constructible_from<std::string, V&&>
  header(N&& n, V&& v) : name(std::forward<N>(n)), value(std::forward<V>(v)) {}
  std::string name;  // as received (lookups are case-insensitive)
  std::string value;
};

// Header fields in arrival order, repeated names kept.
struct header_list {
  std::vector<header> items;

  // First value of `name` (ASCII case-insensitive), or nullptr.
  const std::string* find(std::string_view name) const noexcept;
  void add(std::string name, std::string value) { items.emplace_back(std::move(name), std::move(value)); }

  // Wire form between processes: u32 count, then per field u32 name size, name, u32 value
  // size, value (little endian). decode() returns false on a malformed input.
  void encode_to(std::string& out) const;
  std::string encode() const {
    std::string s;
    encode_to(s);
    return s;
  }
  // The wire form's size, and the form written into space sized with it (swactor/core/wire.hpp).
  std::size_t encoded_size() const noexcept;
  void encode_to(swactor::wire::placed_writer& w) const;
  // Reads from `in` and advances it past what it read.
  bool decode_from(std::string_view& in);
};

using protocols::ascii_iequals;
// Header names and tokens compare case-insensitively (ASCII).
[[gnu::always_inline]] constexpr inline bool iequals(std::string_view a, std::string_view b) noexcept {
  return ascii_iequals(a, b);
}

// Where a field's name and value sit in a buffer of the codec (offsets and sizes).
struct field_span {
  std::uint32_t name_off, name_len, value_off, value_len;
};

// A request head as views into the codec's buffers: the typed form of an ev::request event
// (event::object) for a sink in the same process; valid during the sink call only.
// encode_to() writes its wire form (request_head::encode_to's layout).
struct request_parts final : event_object {
  std::string_view method, target, authority;
  std::uint8_t version_minor = 1;
  bool keep_alive = true, expect_continue = false, chunked = false, complete = true;
  std::int64_t content_length = -1;
  std::string_view body;
  const char* field_base = nullptr;  // the fields' names and values are in here
  const field_span* fields = nullptr;
  std::size_t field_count = 0;

  std::string_view name(const field_span& f) const noexcept { return {field_base + f.name_off, f.name_len}; }
  std::string_view value(const field_span& f) const noexcept { return {field_base + f.value_off, f.value_len}; }
  void encode_to(std::string& out) const override;
};

struct request_head {
  std::string method;     // "GET", as received (methods are case-sensitive)
  std::string target;     // request-target as received ("/a?b", "http://h/a", "*", "h:443")
  std::string authority;  // Host, or the authority of an absolute-form target (it wins)
  std::uint8_t version_minor = 1;  // HTTP/1.<minor>; 2 = HTTP/2 (a stream of the h2 codec)
  header_list headers;
  bool keep_alive = true;        // the connection stays open after this response
  bool expect_continue = false;  // "Expect: 100-continue" and a body follows
  bool chunked = false;          // Transfer-Encoding: chunked
  std::int64_t content_length = -1;  // -1 = none given (0 for no body, or chunked)
  bool complete = true;          // body below is the whole body
  std::string body;

  // Wire form between processes (encode_to appends). decode() is strict: false on any
  // truncated or inconsistent input (it comes from another process: never trusted); the
  // head is then half-filled and to be dropped.
  void encode_to(std::string& out) const;
  std::string encode() const {
    std::string s;
    encode_to(s);
    return s;
  }
  bool decode(std::string_view in);
  // Copies a head the codec handed over in typed form.
  void assign(const request_parts& p);
  // The target of an encoded head without decoding the rest (a quick look before deciding
  // whether to decode it); empty when `in` is too short to hold one.
  static std::string_view peek_target(std::string_view in) noexcept;
};

struct response_head {
  int status = 200;
  std::string reason;  // empty = the standard phrase for status
  header_list headers;  // the handler's; the codec adds framing, Connection, Server
  // For out::head: the body length when known (Content-Length), -1 = streamed (chunked
  // for 1.1 clients, close-delimited for 1.0). Ignored for out::whole (the body's size).
  std::int64_t content_length = -1;
  bool close = false;  // the handler asks to close the connection after this response

  void encode_to(std::string& out) const;
  std::string encode() const {
    std::string s;
    encode_to(s);
    return s;
  }
  // Reads a head from the front of `in` and advances `in` past it (the body follows for
  // out::whole).
  bool decode_from(std::string_view& in);
};

// A whole response (out::whole) in typed form, from a handler in the same process.
struct response_reply final : reply_object {
  const response_head& head;
  std::string_view body;

  response_reply(const response_head& h, std::string_view b) noexcept
      : reply_object(form::http1_response), head(h), body(b) {}
  void encode_to(std::string& out) const override;  // response_head::encode_to, then the body
  std::size_t wire_size() const noexcept override;
};

// The standard reason phrase ("Not Found"), or "Unknown".
std::string_view reason_phrase(int status) noexcept;

// The codec fails with error codes of this category whose value is the HTTP status it
// answered with (400, 413, 431, 501, 505, ...); message() is the reason phrase.
const std::error_category& error_category() noexcept;

// Limits and behaviour, from the [[listen]] entry. Times are milliseconds (0 = none).
struct options {
  std::size_t max_header_size = 16 * 1024;  // request line + header fields -> 431
  std::size_t max_headers = 100;            // header field count -> 431
  std::uint64_t max_body_size = 8u << 20;   // Content-Length or chunked total -> 413
  std::size_t body_chunk_size = 64 * 1024;  // bodies up to this size ride with the request
  std::uint32_t max_pipelined = 16;         // requests parsed ahead of their responses
  std::uint64_t max_requests_per_connection = 0;  // 0 = unlimited
  std::uint32_t header_timeout_ms = 10000;   // the whole head must arrive within it -> 408
  std::uint32_t keepalive_timeout_ms = 60000;  // idle between requests -> quiet close
  std::uint32_t body_timeout_ms = 60000;     // no body progress -> 408
  std::string server_name = "swactor";       // Server header; empty = none
  // The WebSocket codec's options after an accepted upgrade; null = this listener does not
  // upgrade (ws_accept is ignored). Shared, not copied: every connection holds its options.
  std::shared_ptr<const websocket::options> websocket;
  // HTTP/2 on this cleartext listener (h2c: the client preface at the start of a connection,
  // or an `Upgrade: h2c` request); null = HTTP/1.1 only.
  std::shared_ptr<const http2::options> h2c;
  // With h2c: every connection is HTTP/2 from its first byte (prior knowledge only), so a
  // bad preface gets HTTP/2's GOAWAY PROTOCOL_ERROR, not an HTTP/1.1 400 or 501.
  bool h2c_only = false;
};

// The codec for one connection. It keeps a pointer to `opts` (a listener's options live as
// long as the process; every connection holding a copy cost 128 bytes each): `opts` must
// outlive the codec.
std::unique_ptr<stream_codec> make_server_codec(const options& opts);

}  // namespace swactor::protocols::http1
