#pragma once
// The HTTP handler API: what `module_base::on_request(ctx, request, response)` gets. The
// same in base and process mode (in process mode the reactor parses and frames; the
// worker sees the same request, and its response is framed there). A handler gets the
// whole body in body(), or, on a route with `stream_body = true`, reads it piece by piece
// with read_body().
//
//   task<void> on_request(context& ctx, http::request& req, http::response& res) override {
//     if (req.method() == "GET") co_return (void)res.header("Content-Type", "text/plain").end("hi\n");
//     res.status(405);
//     (void)res.end();
//   }
//
// A handler that throws, or returns without end(), gets a 500 (and a log line naming the
// module, method and path); the worker goes on.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "swactor/actors/errors.hpp"
#include "swactor/actors/module.hpp"
#include "swactor/core/coro.hpp"
#include "swactor/core/error.hpp"
#include "swactor/protocols/compression.hpp"
#include "swactor/protocols/http1.hpp"

namespace swactor::http {

using protocols::http1::header;
using protocols::http1::header_list;
using param_list = std::vector<std::pair<std::string, std::string>>;

// Percent-decoding ('+' is a space only in query strings and forms). False on a malformed
// escape ("%zz", "%4"): the text is then kept as it is.
bool percent_decode(std::string_view in, std::string& out, bool plus_is_space);
// RFC 3986 §5.2.4: "/a/./b/../c" -> "/a/c"; never climbs above "/".
std::string remove_dot_segments(std::string_view path);
// "a=1&b=2&a=3" -> [(a,1),(b,2),(a,3)] (decoded, repeated keys kept in order).
param_list parse_query(std::string_view query);
// "Cookie: a=1; b=2" values -> [(a,1),(b,2)].
void parse_cookies(std::string_view header_value, param_list& out);

// A file part of a multipart/form-data body. Small ones (up to the listener's
// upload_memory_size) stay in `content`; bigger ones are written as they arrive to a
// temporary file in upload_tmp_dir (`temp_path`), removed when the request ends unless
// the handler keeps it (request::keep_file).
struct uploaded_file {
  std::string name;          // the form field name
  std::string filename;      // as the client sent it (filename* decoded); never use it as a path
  std::string content_type;  // "text/plain" when the part had none
  std::uint64_t size = 0;
  std::string temp_path;     // "" while the file is in `content`
  std::string content;
};

// Limits and places for a multipart/form-data body (the listener's keys).
struct form_options {
  std::string upload_tmp_dir = "/tmp";
  std::uint64_t upload_memory_size = 64 * 1024;
  std::size_t max_parts = 128;
  std::uint64_t max_part_size = 1ull << 30;
  std::uint64_t max_field_size = 1u << 20;
  std::size_t max_header_size = 16 * 1024;
};

// Sees each file of a multipart body as its bytes arrive (request::read_form), e.g. to
// hash or forward them without reading the temporary file again.
struct upload_observer {
  virtual void on_file_begin(const uploaded_file& f) { (void)f; }
  virtual void on_file_data(const uploaded_file& f, std::string_view data) = 0;
  virtual void on_file_end(const uploaded_file& f) { (void)f; }

 protected:
  ~upload_observer() = default;
};

// The HTTP status for a read_form() error: 413 for a limit (parts, part or field size),
// 408 for a timeout, 500 for a disk error, 400 for a malformed body.
int form_error_status(std::error_code ec) noexcept;

class request {
 public:
  request() = default;
  request(protocols::http1::request_head head, session_id s, std::string remote);
  // The head in place (no temporary head moved in): from its wire form (false: malformed,
  // the request is to be dropped), or from the codec's typed form in base mode.
  [[nodiscard]] bool decode_head(std::string_view wire);
  void assign_head(const protocols::http1::request_parts& parts);
  void set_origin(session_id s, std::string_view remote) {
    session_ = s;
    protocols::replace_with(remote_, remote);
  }
  // Empties the request for the engine to fill again (its buffers keep their capacity,
  // within bounds): a worker reuses the request object of a request answered inline.
  void clear_for_reuse();
  ~request();
  // One owner of the temporary files: moves only.
  request(request&&) = default;
  request& operator=(request&&) = default;
  request(const request&) = delete;
  request& operator=(const request&) = delete;

  session_id session() const noexcept { return session_; }
  const std::string& method() const noexcept { return head_.method; }
  // The request-target as received ("/a%20b?x=1", "http://h/a", "*").
  const std::string& target() const noexcept { return head_.target; }
  // The path: percent-decoded, dot-segments removed ("/a b"); "*" for OPTIONS *.
  const std::string& path() const noexcept { return path_; }
  // The raw query string (after '?', not decoded), "" when none.
  std::string_view query() const noexcept { return query_; }
  // Decoded query parameters, repeated keys kept in order.
  const param_list& query_params() const;
  std::optional<std::string_view> query_param(std::string_view name) const;
  // "HTTP/1.1" or "HTTP/1.0".
  // "HTTP/1.0", "HTTP/1.1" or "HTTP/2".
  std::string_view version() const noexcept {
    return head_.version_minor == 0 ? "HTTP/1.0" : head_.version_minor == 2 ? "HTTP/2" : "HTTP/1.1";
  }
  int version_minor() const noexcept { return head_.version_minor; }
  // The Host (or the authority of an absolute-form target, which wins).
  const std::string& host() const noexcept { return head_.authority; }

  // Header fields (lookup is case-insensitive; repeated fields are kept in order).
  const header_list& headers() const noexcept { return head_.headers; }
  const std::string* header(std::string_view name) const noexcept { return head_.headers.find(name); }
  // Engine side: the body was (whole) or will be (streamed) inflated from its
  // Content-Encoding: that header goes, Content-Length becomes the inflated size (whole) or
  // goes (streamed), so the handler sees the body as if it had been sent plain.
  void mark_inflated(bool whole);
  std::vector<std::string_view> header_values(std::string_view name) const;
  // Cookies from every Cookie header.
  const param_list& cookies() const;
  std::optional<std::string_view> cookie(std::string_view name) const;

  // The whole body (routes without stream_body). With stream_body the handler runs as soon
  // as the head is here, body() stays empty, and read_body() hands out the pieces.
  const std::string& body() const noexcept { return head_.body; }
  std::string& body() noexcept { return head_.body; }
  // Fields of an application/x-www-form-urlencoded or (once read) multipart/form-data
  // body; empty for other types.
  const param_list& form() const;
  // -- multipart/form-data -------------------------------------------------------------
  // A whole-body route gets a multipart/form-data body already parsed (body() stays empty,
  // the engine answers 400 / 413 itself); a stream_body route reads it with read_form().
  bool is_multipart() const noexcept { return static_cast<bool>(form_opts_); }
  // The uploaded files, in the order they came.
  const std::vector<uploaded_file>& files() const noexcept { return files_; }
  // Reads a streamed multipart body to its end: form() gets the fields, files() the
  // files; `observer` (may be null) sees each file's bytes as they arrive. Once: a later
  // call (or one on a whole-body route, which the engine read) returns at once. Errors: the
  // multipart errors (protocols::multipart::errc; form_error_status() maps them),
  // errc::timeout, session_not_found (the client went away), invalid_argument (not a
  // multipart request), a disk error.
  [[nodiscard]] swactor::task<std::error_code> read_form(upload_observer* observer = nullptr,
                                                          duration timeout = std::chrono::seconds(60));
  // Moves file `index`'s temporary file to `path` (same file system) so that it outlives
  // the request; a file still in memory is written there. The file then has temp_path "".
  [[nodiscard]] std::error_code keep_file(std::size_t index, const std::string& path);
  // Worker side: a multipart/form-data request gets the listener's limits.
  void set_form_options(form_options o) { form_opts_ = std::make_unique<form_options>(std::move(o)); }
  // Trailer fields of a chunked body.
  const header_list& trailers() const noexcept { return trailers_; }
  header_list& trailers() noexcept { return trailers_; }
  bool keep_alive() const noexcept { return head_.keep_alive; }

  // -- streamed bodies (a route with stream_body = true) --------------------------------
  bool body_streamed() const noexcept { return static_cast<bool>(stream_); }
  // The next piece of the body as it arrives; "" once it is complete (trailers() are then
  // set). errc::timeout when nothing arrives within `timeout`, session_not_found when the
  // client went away. The connection stops reading while unread pieces pile up (more than
  // four body_chunk_size pieces), so a slow handler holds the client, not memory. The first
  // call answers `Expect: 100-continue`.
  [[nodiscard]] swactor::task<result<std::string>> read_body(duration timeout = std::chrono::seconds(60));
  // Worker side: where read_body() takes its pieces from.
  struct body_source;
  void set_body_source(std::shared_ptr<body_source> s) { stream_ = std::move(s); }

  // Where the client is ("ip:port", "[v6]:port", or a unix path) and where it connected.
  const std::string& remote_address() const noexcept { return remote_; }
  const std::string& local_address() const;  // looked up on first use
  // Worker side: where local_address() comes from (a getsockname per use in base mode,
  // the reactor's note in process mode: not paid by requests that never ask).
  struct address_lookup {
    virtual std::string local_address(session_id s) = 0;

   protected:
    ~address_lookup() = default;
  };
  void set_address_lookup(address_lookup* l) noexcept { lookup_ = l; }

  const protocols::http1::request_head& head() const noexcept { return head_; }

 private:
  void split_target();  // path_ and query_ from head_.target
  void remove_temp_files() noexcept;  // the files kept on disk for this request's uploads
  protocols::http1::request_head head_;
  session_id session_;
  std::string remote_;
  mutable std::optional<std::string> local_;
  address_lookup* lookup_ = nullptr;
  std::string path_;
  std::string_view query_;
  header_list trailers_;
  mutable std::optional<param_list> query_params_, cookies_, form_;
  std::shared_ptr<body_source> stream_;
  std::unique_ptr<form_options> form_opts_;
  std::vector<uploaded_file> files_;
  bool form_read_ = false;
};

// The pieces of a streamed body between the worker (which adds them as they arrive) and
// read_body() (which takes them).
struct request::body_source {
  virtual ~body_source() = default;
  // The next piece, "" at the end.
  virtual swactor::task<result<std::string>> next(request& req, duration timeout) = 0;
};

struct cookie {
  std::string name;
  std::string value;
  std::optional<std::chrono::system_clock::time_point> expires;
  std::optional<std::int64_t> max_age;  // seconds
  std::string domain;
  std::string path;
  bool secure = false;
  bool http_only = false;
  std::string same_site;  // "Strict", "Lax", "None" or "" (not sent)
  bool partitioned = false;
  // The Set-Cookie value.
  std::string to_string() const;
};

// An HTTP date (RFC 9110 §5.6.7): "Sun, 06 Nov 1994 08:49:37 GMT".
std::string format_http_date(std::chrono::system_clock::time_point t);

// A response handed to another process by response::detach(): which request of which
// connection, and the worker that holds it. Its text form goes into a task payload.
struct response_handle {
  session_id session;
  std::uint64_t request = 0;  // the holding worker's request number
  int worker = -1;            // the process that holds the request
  std::uint32_t pid = 0;      // its pid: a reload's replacement of `worker` does not hold it
  // "swactor-response:WORKER:SESSION:REQUEST:PID" (PID may be left out: 0)
  std::string encode() const;
  static std::optional<response_handle> decode(std::string_view text);
};

// How a response reaches its connection (the worker implements it).
class response_channel {
 public:
  // A reply of http1::out kind `kind` for the session.
  virtual std::error_code send(std::uint8_t kind, std::string_view data) = 0;
  // The same reply in typed form (a whole response): a channel to a connection of this
  // process hands it over as it is; the default sends its wire form.
  virtual std::error_code send_object(std::uint8_t kind, const protocols::reply_object& r) {
    return send(kind, protocols::reply_wire(r).view());
  }
  // Waits until the session's queued output drained below half its limit (streaming
  // backpressure); errc::timeout after `timeout`, session_not_found when it is gone.
  virtual swactor::task<std::error_code> drained(duration timeout) = 0;
  // Hands the response to another process (response::detach); not_supported by default.
  virtual result<response_handle> detach() { return make_error_code(server_errc::not_supported); }
  // The largest piece one send() may carry (a channel between processes has a bound); never
  // below min_piece, so a body that small never asks.
  static constexpr std::size_t min_piece = 4096;
  virtual std::size_t max_piece() const noexcept { return 1u << 20; }
  // Whether the engine sends a large body that end() was given after the handler, paced by
  // the client (response::take_paced()); otherwise end() sends every piece at once.
  virtual bool paces() const noexcept { return false; }

 protected:
  ~response_channel() = default;
};

namespace detail {
struct response_fields;  // the engine lends a response a spare field vector (http_events.cpp)
}

class response {
  friend struct detail::response_fields;

 public:
  explicit response(response_channel& ch) : ch_(&ch) {}
  // A response that owns its channel (context::http_response: answered from another process).
  explicit response(std::shared_ptr<response_channel> ch) : ch_(ch.get()), owned_(std::move(ch)) {}

  response& status(int code, std::string reason = {});
  int status_code() const noexcept { return head_.status; }
  // Replaces every field of that name; header() adds one more.
  response& set_header(std::string name, std::string value);
  response& header(std::string name, std::string value);
  const header_list& headers() const noexcept { return head_.headers; }
  response& set_cookie(const cookie& c) { return header("Set-Cookie", c.to_string()); }
  // Compression of this response (on by default where the listener's `compression` table
  // allows it and the client asks; see docs/config.md [listen.compression]). false before
  // the first write()/end() sends it as it is, e.g. for a body the handler compressed itself.
  response& compress(bool on) noexcept {
    compress_allowed_ = on;
    return *this;
  }
  // Engine side: the listener's options and the coding the request's Accept-Encoding chose
  // (identity = none acceptable: only Vary is added then). Not called for HEAD.
  void set_compression(const protocols::compression::options* o, protocols::compression::coding c) noexcept {
    compression_ = o;
    coding_ = c;
  }
  // Asks to close the connection after this response.
  response& close() noexcept {
    head_.close = true;
    return *this;
  }

  // Sends the whole response (Content-Length = body size). Once per response.
  [[nodiscard]] std::error_code end(std::string_view body = {});
  // Streams: the first write sends the head (chunked for HTTP/1.1 clients unless a
  // Content-Length was set with content_length()), each write one piece. Waits while the
  // client does not read (the output stays under the listener's output_buffer_size).
  [[nodiscard]] swactor::task<std::error_code> write(std::string_view chunk,
                                                      duration timeout = std::chrono::seconds(30));
  // A trailer field, sent by end() after the body (HTTP/1.1: chunked, so a response that has
  // trailers carries no Content-Length; HTTP/2: a last HEADERS frame). An HTTP/1.0 client
  // gets none.
  response& trailer(std::string name, std::string value);
  // Announces the body size of a streamed response (no chunked framing).
  response& content_length(std::uint64_t n) noexcept {
    head_.content_length = static_cast<std::int64_t>(n);
    return *this;
  }
  // -- files: the connection sends them, without reading them into memory -------------------
  // Sends the whole response with bytes [offset, offset + length) of the file at `path` as
  // its body (length npos: to the end of the file; Content-Length is set). Once per
  // response, like end(). The connection writes the file itself (sendfile(2) on a plain
  // socket, pread + write in 16 KiB pieces under TLS; in process mode the reactor does it),
  // reading only as the client takes bytes. Errors: no_such_file_or_directory / the open
  // error, invalid_argument when the range is not inside the file.
  [[nodiscard]] std::error_code sendfile(std::string_view path, std::uint64_t offset = 0,
                                         std::uint64_t length = npos);
  // After write()s (or as the first piece, sending the head): a range of a file as the next
  // piece of a streamed body (multipart/byteranges). Set content_length() first, or the
  // body goes out chunked.
  [[nodiscard]] std::error_code write_file(std::string_view path, std::uint64_t offset, std::uint64_t length);
  static constexpr std::uint64_t npos = ~std::uint64_t(0);

  // 302 (or `code`) with Location and a short body.
  [[nodiscard]] std::error_code redirect(std::string_view location, int code = 302);

  // Hands this response to another process (a task worker, another worker), which gets it
  // back with ctx.http_response(handle) and sends status, headers and body from there; the
  // handler returns at once. The request's connection waits for that answer (up to the
  // listener's detached_response_timeout, then 504 and close). Errors: not_supported
  // when the head already went out or the response ended. Temporary upload files still go
  // when the handler returns: keep_file() what the other process needs.
  [[nodiscard]] result<response_handle> detach();
  bool detached() const noexcept { return detached_; }

  // Engine side: the body of an end() too large to queue at once (and the encoded
  // trailers), which the engine sends after the handler as the client takes it (the head
  // went out already). Null when there is none.
  struct paced_body {
    std::string body;
    std::string trailers;
  };
  std::unique_ptr<paced_body> take_paced() noexcept { return std::move(paced_); }

  bool started() const noexcept { return started_; }  // the head went out
  bool ended() const noexcept { return ended_; }
  // The first error a send of this response met (the engine closes the connection then,
  // so a partial response never looks complete).
  std::error_code error() const noexcept { return error_; }

 private:
  static constexpr std::size_t kLargeBody = 1u << 20;
  std::error_code send_head();
  // At the head: whether and how this response is compressed (adds Content-Encoding, Vary,
  // weakens a strong ETag). size = the whole body's size (streamed: ignored).
  protocols::compression::coding choose_coding(std::uint64_t size, bool streamed);
  std::error_code fail(std::error_code ec) noexcept {
    if (ec && !error_) error_ = ec;
    return ec;
  }

  response_channel* ch_;
  std::shared_ptr<response_channel> owned_;
  protocols::http1::response_head head_;
  header_list trailers_;
  std::uint64_t unacked_ = 0;
  bool started_ = false;
  bool ended_ = false;
  bool compress_allowed_ = true;
  bool detached_ = false;
  std::error_code error_;
  const protocols::compression::options* compression_ = nullptr;
  protocols::compression::coding coding_ = protocols::compression::coding::identity;
  std::unique_ptr<protocols::compression::encoder> encoder_;  // a compressed streamed body
  std::unique_ptr<paced_body> paced_;
};

// The coding `req`'s Accept-Encoding prefers among those `o` offers (identity when it asks
// for none of them, or has no Accept-Encoding).
protocols::compression::coding accepted_coding(const request& req, const protocols::compression::options& o);

}  // namespace swactor::http
