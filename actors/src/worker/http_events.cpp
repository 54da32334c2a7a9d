// HTTP requests through module handlers: the worker side of an HTTP listener, the same in
// both modes. The codec (here in base mode, in a reactor in process mode) sends a request
// head, body pieces and an end; this assembles them per session (one request at a time:
// the runner delivers a session's events in order), routes the request to a module, and
// runs its on_request with a response whose replies the codec frames.

#include <fcntl.h>
#include <unistd.h>

#include <deque>

#include <fmt/format.h>

#include "http/router.hpp"
#include "swactor/actors/http.hpp"
#include "swactor/protocols/field_lists.hpp"
#include "swactor/protocols/http2.hpp"
#include "swactor/core/log.hpp"
#include "swactor/core/wait_queue.hpp"
#include "swactor/ipc/envelope.hpp"
#include "swactor/protocols/multipart.hpp"
#include "worker/runtime.hpp"

namespace swactor::http::detail {
// The engine's access to a response's field vector (http_now lends it a spare one).
struct response_fields {
  static std::vector<protocols::http1::header>& of(response& r) noexcept { return r.head_.headers.items; }
};
}  // namespace swactor::http::detail

namespace swactor::detail {
namespace {

namespace h1 = protocols::http1;
namespace cz = protocols::compression;
namespace h2 = protocols::http2;

}  // namespace

// A reply of `kind`; on an HTTP/2 connection it names its stream first (the codec answers
// streams in any order).
std::error_code send_reply(session_port& port, session_id s, std::uint32_t stream, std::uint8_t kind,
                           std::string_view data) {
  if (stream == 0) return port.send(s, data, kind);
  thread_local std::string buf;
  thread_local bool busy = false;
  std::string local;
  std::string& b = busy ? local : buf;  // a send that closes may run another reply on this thread
  const bool mine = !busy;
  busy = true;
  b.clear();
  h2::put_stream(b, stream);
  b.append(data);
  auto ec = port.send(s, b, kind);
  if (mine) busy = false;
  return ec;
}

namespace {

// A reply piece that did not fit (the connection's output limit; in process mode the link to
// the reactor): the writer waits for the output to drain and tries again.
bool no_room(std::error_code ec) {
  return ec == server_errc::output_buffer_full || ec == make_error_code(ipc::errc::queue_full);
}

// The listener's send_timeout as a wait bound (0: none).
duration send_wait_of(const listen_config& lc) {
  return lc.send_timeout.count() == 0 ? no_timeout : duration(lc.send_timeout);
}

// A listener's defaults: what a reply made without a listener at hand is held to.
const listen_config& default_listener() {
  static const listen_config lc;
  return lc;
}

// The replies of an HTTP/2 stream from a file onwards. HTTP/2 frames file bytes as DATA
// through nghttp2, so the connection cannot sendfile(2) them: the file is read and sent as
// body pieces by a coroutine of its own that waits for the output to drain (the handler's
// sendfile() returns at once, as for HTTP/1.1 where the connection reads the file); what
// the handler sends after the file waits here behind it.
struct stream_pump {
  session_port& port;
  session_id s;
  std::uint32_t stream;
  duration timeout;  // each wait for the client (send_timeout)
  struct item {
    std::uint8_t kind;
    std::string data;
  };
  std::deque<item> queue;
  bool running = false;
};

task<void> run_pump(std::shared_ptr<stream_pump> p) {
  constexpr std::size_t kPiece = 64 * 1024;
  const auto kTimeout = p->timeout;
  auto send = [&](std::uint8_t kind, std::string_view data) -> task<std::error_code> {
    auto ec = send_reply(p->port, p->s, p->stream, kind, data);
    // Sibling streams written at the same time share the room: a wake-up does not promise it.
    while (no_room(ec)) {
      if (auto wait = co_await p->port.drained(p->s, kTimeout)) co_return wait;
      ec = send_reply(p->port, p->s, p->stream, kind, data);
    }
    co_return ec;
  };
  std::error_code ec;
  std::string piece;
  while (!p->queue.empty() && !ec) {
    auto it = std::move(p->queue.front());
    p->queue.pop_front();
    if (it.kind != protocols::kind_file) {
      ec = co_await send(it.kind, it.data);
      continue;
    }
    protocols::file_range fr;
    if (!fr.decode(it.data)) {
      ec = make_error_code(std::errc::invalid_argument);
      break;
    }
    int fd = ::open(fr.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      ec = {errno, std::system_category()};
      break;
    }
    std::size_t unacked = 0;
    while (fr.length > 0 && !ec) {
      piece.resize(static_cast<std::size_t>(std::min<std::uint64_t>(fr.length, kPiece)));
      auto n = ::pread(fd, piece.data(), piece.size(), static_cast<off_t>(fr.offset));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        ec = n < 0 ? std::error_code(errno, std::system_category()) : make_error_code(std::errc::io_error);
        break;
      }
      piece.resize(static_cast<std::size_t>(n));
      ec = co_await send(static_cast<std::uint8_t>(h1::out::body), piece);
      fr.offset += static_cast<std::uint64_t>(n);
      fr.length -= static_cast<std::uint64_t>(n);
      // Backpressure as response::write(): wait until the client took most of it.
      if (!ec && (unacked += piece.size()) >= 256 * 1024) {
        unacked = 0;
        ec = co_await p->port.drained(p->s, kTimeout);
      }
    }
    ::close(fd);
  }
  p->queue.clear();
  p->running = false;
  if (ec && ec != server_errc::session_not_found) {
    log::warning("session {}: HTTP/2 stream {}: file reply not sent: {}; the stream is reset", p->s, p->stream,
                 ec.message());
    (void)send_reply(p->port, p->s, p->stream, h2::kReplyReset, {});
  }
}

// The body of an end() too large to queue at once (response::take_paced()), sent in pieces
// as the client takes them, then the end with its trailers: write()'s pacing, after the
// handler (its head went out already).
task<std::error_code> send_paced(http::response_channel& ch, const http::response::paced_body& p,
                                 duration kTimeout) {
  const std::size_t piece = std::min<std::size_t>(ch.max_piece(), 256 * 1024);
  const std::size_t window = ch.max_piece();  // a quarter of the output limit at most
  std::size_t unacked = 0;
  for (std::size_t off = 0; off < p.body.size(); off += piece) {
    const auto part = std::string_view(p.body).substr(off, piece);
    auto ec = ch.send(static_cast<std::uint8_t>(h1::out::body), part);
    while (no_room(ec)) {
      if (auto wait = co_await ch.drained(kTimeout)) co_return wait;
      ec = ch.send(static_cast<std::uint8_t>(h1::out::body), part);
    }
    if (ec) co_return ec;
    if ((unacked += part.size()) >= window) {
      unacked = 0;
      if (auto wait = co_await ch.drained(kTimeout)) co_return wait;
    }
  }
  co_return ch.send(static_cast<std::uint8_t>(h1::out::end), p.trailers);
}

class session_channel final : public http::response_channel {
 public:
  // `lc`: the listener. A piece is at most a quarter of its output limit, and the pacing
  // writers wait for the drain (to half of it) at least that often: the queue stays under
  // the limit also in process mode, where a send cannot see the reactor's queue.
  session_channel(session_port& port, session_id s, worker_runtime* rt = nullptr, std::uint32_t stream = 0,
                  const listen_config& lc = default_listener())
      : port_(port), s_(s), rt_(rt), lc_(lc), stream_(stream) {}
  std::size_t max_piece() const noexcept override {
    return std::clamp<std::size_t>(lc_.output_buffer_size / 4, min_piece, 1u << 20);
  }
  std::error_code send(std::uint8_t kind, std::string_view data) override {
    if (pump_ && pump_->running) {
      pump_->queue.push_back({kind, std::string(data)});
      return {};
    }
    if (kind == protocols::kind_file && stream_ != 0) {
      // Replies made without a handler (rt_ null: 404, 405, 415, 503, a refused handshake)
      // never carry a file.
      if (!rt_) return make_error_code(server_errc::not_supported);
      if (!pump_) pump_ = std::make_shared<stream_pump>(stream_pump{port_, s_, stream_, send_wait_of(lc_), {}, false});
      pump_->queue.push_back({kind, std::string(data)});
      pump_->running = true;
      rt_->spawn_beside(run_pump(pump_), "HTTP/2 file reply");
      return {};
    }
    return send_reply(port_, s_, stream_, kind, data);
  }
  std::error_code send_object(std::uint8_t kind, const protocols::reply_object& r) override {
    // A file reply's pump keeps the order: bytes behind it. HTTP/2 replies name their stream.
    if (pump_ && pump_->running) return http::response_channel::send_object(kind, r);
    if (stream_ != 0) return port_.send_object(s_, h2::stream_reply(stream_, r), kind);
    return port_.send_object(s_, r, kind);
  }
  task<std::error_code> drained(duration timeout) override { return port_.drained(s_, timeout); }
  bool paces() const noexcept override { return rt_ != nullptr; }
  result<http::response_handle> detach() override {
    // An HTTP/2 stream's replies name their stream: the holding worker keeps it (the handle
    // need not carry it).
    if (!rt_) return make_error_code(server_errc::not_supported);
    auto h = rt_->http_detach(s_, stream_);
    if (h) detached_ = h->request;
    return h;
  }
  std::uint64_t detached_request() const noexcept { return detached_; }

 private:
  session_port& port_;
  session_id s_;
  worker_runtime* rt_;
  const listen_config& lc_;
  std::uint64_t detached_ = 0;
  std::uint32_t stream_;
  std::shared_ptr<stream_pump> pump_;  // HTTP/2: a file reply being sent, and what follows it
};

// A reply the worker makes without a handler (404, 405, 503, 500, 400).
void answer(session_port& port, session_id s, int status, std::string_view body, const char* allow = nullptr,
            bool close = false, std::uint32_t stream = 0) {
  session_channel ch(port, s, nullptr, stream);
  http::response res(ch);
  res.status(status).set_header("Content-Type", "text/plain; charset=utf-8");
  if (allow) res.set_header("Allow", allow);
  if (status == 503) res.set_header("Retry-After", "1");
  if (close) res.close();
  (void)res.end(body);
}

// The methods some route of the listener takes, for `OPTIONS *`'s Allow: the common ones
// when a route (or the listener's module) takes every method.
std::string listener_methods(const listen_config& lc) {
  static constexpr std::string_view kCommon[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
  std::vector<std::string> methods;
  const bool every = lc.routes.empty() ||
                     std::any_of(lc.routes.begin(), lc.routes.end(), [](const auto& r) { return r.methods.empty(); });
  if (every) methods.assign(std::begin(kCommon), std::end(kCommon));
  for (const auto& r : lc.routes)
    for (const auto& m : r.methods)
      if (std::find(methods.begin(), methods.end(), m) == methods.end()) methods.push_back(m);
  std::string out;
  for (const auto& m : methods) out += (out.empty() ? "" : ", ") + m;
  return out;
}

// The request's Content-Encoding (every field, a list each): one coding this engine
// inflates, or a refusal with 415 (`status`, `reason`). identity entries count as none.
void request_coding(const http::request& req, cz::coding& inflate, int& status, std::string& reason) {
  if (req.head().complete && req.body().empty()) return;  // no body: nothing to inflate
  std::vector<std::string_view> codings;
  for (auto v : req.header_values("content-encoding"))
    protocols::any_list_item(v, [&](std::string_view t) {
      if (!h1::iequals(t, "identity")) codings.push_back(t);
      return false;
    });
  if (codings.empty()) return;
  auto c = cz::parse_coding(codings[0]);
  if (codings.size() > 1 || !c) {
    status = 415;
    reason = codings.size() > 1 ? "request body with more than one content coding"
                                   : fmt::format("request body in an unknown content coding {:?}", codings[0]);
    return;
  }
  inflate = *c;
}

// A streamed body whose pieces are inflated as read_body() takes them.
struct inflating_source final : http::request::body_source {
  std::shared_ptr<http::request::body_source> inner;
  std::unique_ptr<cz::decoder> decoder;
  bool done = false;

  inflating_source(std::shared_ptr<http::request::body_source> in, std::unique_ptr<cz::decoder> d)
      : inner(std::move(in)), decoder(std::move(d)) {}

  task<result<std::string>> next(http::request& req, duration timeout) override {
    while (!done) {
      auto piece = co_await inner->next(req, timeout);
      if (!piece) co_return piece;
      std::string out;
      auto st = piece->empty() ? decoder->finish() : decoder->feed(*piece, out);
      if (st != cz::decode_status::ok) {
        log::info("session {}: {} {}: the request body {}", req.session(), req.method(), req.target(),
                  st == cz::decode_status::too_large ? "inflates past max_body_size" : "is not valid compressed data");
        co_return make_error_code(st == cz::decode_status::too_large ? server_errc::body_too_large
                                                                      : server_errc::bad_body_encoding);
      }
      if (piece->empty()) done = true;
      else if (!out.empty()) co_return out;
    }
    co_return std::string();
  }
};

}  // namespace

// The body of one request as it arrives: pieces in, read_body() (or serve_http, for
// whole bodies) takes them. HTTP/1: unread bytes of a session above a bound stop its
// connection from reading until the handler catches up. HTTP/2: each piece taken (or
// dropped) is acknowledged to the codec (kind_consumed), which opens that stream's window:
// the client's window, not a pause of the whole connection, bounds what waits here.
struct worker_runtime::body_pipe final : http::request::body_source {
  worker_runtime& rt;
  session_id s;
  std::deque<std::string> pieces;
  h1::header_list trailers;
  detail::wait_queue waiters;
  bool ended = false;
  bool gone = false;     // the connection closed
  bool taken = false;    // its request head reached a handler (or a refusal)
  bool discard = false;  // refused request: pieces are dropped
  bool continue_owed = false;
  std::uint32_t stream = 0;  // HTTP/2 stream id, 0 = HTTP/1

  body_pipe(worker_runtime& r, session_id id) : rt(r), s(id) {}

  swactor::task<result<std::string>> next(http::request& req, duration timeout) override {
    if (continue_owed) {
      continue_owed = false;
      (void)send_reply(*rt.port_, s, stream, static_cast<std::uint8_t>(h1::out::continue_100), {});
    }
    while (pieces.empty() && !ended && !gone) {
      auto ec = co_await waiters.wait(nullptr, timeout, "request body", std::source_location::current());
      if (ec) co_return ec;
    }
    if (!pieces.empty()) {
      auto p = std::move(pieces.front());
      pieces.pop_front();
      took(p.size());
      co_return p;
    }
    if (gone && !ended) co_return make_error_code(server_errc::session_not_found);
    req.trailers() = std::move(trailers);
    co_return std::string();
  }

  // `n` bytes of this body were taken or dropped.
  void took(std::size_t n) {
    if (stream != 0)
      rt.h2_body_taken(s, stream, n);
    else
      rt.http_body_taken(s, n);
  }
  // The rest of the body is not wanted (a refused request): what is here and what comes.
  void drop() {
    discard = true;
    for (auto& p : pieces) took(p.size());
    pieces.clear();
  }
};

void worker_runtime::h2_body_taken(session_id s, std::uint32_t stream, std::size_t n) {
  while (n > 0) {
    protocols::consumed_note note{stream, static_cast<std::uint32_t>(std::min<std::size_t>(n, 1u << 30))};
    n -= note.bytes;
    (void)port_->send(s, note.encode(), protocols::kind_consumed);  // a closed session needs none
  }
}

void worker_runtime::spawn_beside(task<void> t, const char* what) {
  handler_begin();
  spawn(lp_.context(), [this, t = std::move(t)]() mutable -> task<void> {
    co_await std::move(t);
    handler_end();
  }, what);
}

void worker_runtime::http_body_taken(session_id s, std::size_t n) {
  auto it = http_pipes_.find(s);
  if (it == http_pipes_.end()) return;
  auto& st = it->second;
  st.unread -= std::min(st.unread, n);
  if (st.paused && st.unread <= kHttpUnreadLimit / 2) {
    st.paused = false;
    port_->resume_reading(s);
  }
}

void worker_runtime::h2_body_event(session_id s, std::uint8_t kind, std::string_view data) {
  std::uint32_t id = 0;
  if (!h2::take_stream(data, id) || id == 0) return;
  auto& st = http_pipes_[s];
  auto found = st.streams.find(id);
  if (found == st.streams.end()) {
    // A reset (or the rest of a body nobody reads) after its handler is done: nothing waits.
    if (id <= st.h2_taken) return;
    // Before its request reached a handler (the request goes through the runner's queue,
    // body events do not): the request takes this pipe.
    found = st.streams.emplace(id, std::make_shared<body_pipe>(*this, s)).first;
    found->second->stream = id;
  }
  auto p = found->second;
  if (kind == static_cast<std::uint8_t>(h2::ev::reset)) {
    p->gone = true;
    p->pieces.clear();  // the codec gave their window back when the stream closed
  } else if (kind == static_cast<std::uint8_t>(h2::ev::end)) {
    if (!p->trailers.decode_from(data)) p->trailers.items.clear();
    p->ended = true;
  } else if (p->discard) {
    p->took(data.size());
  } else if (!data.empty()) {
    // Unread pieces are bounded by the stream's flow-control window (the codec opens it
    // as they are taken), so the connection keeps reading for its other streams.
    p->pieces.emplace_back(data);
  }
  p->waiters.complete_all({});
  if (p->taken && (p->ended || p->gone)) st.streams.erase(id);
}

void worker_runtime::http_body_event(session_id s, std::uint8_t kind, std::string_view data) {
  if (h2::is_event_kind(kind)) return h2_body_event(s, kind, data);
  auto& st = http_pipes_[s];
  // A piece belongs to the newest request whose body is still arriving.
  if (st.pipes.empty() || st.pipes.back()->ended) st.pipes.push_back(std::make_shared<body_pipe>(*this, s));
  auto& pipe = *st.pipes.back();
  if (kind == static_cast<std::uint8_t>(h1::ev::end)) {
    std::string_view in = data;
    if (!pipe.trailers.decode_from(in)) pipe.trailers.items.clear();
    pipe.ended = true;
  } else if (!pipe.discard && !data.empty()) {
    pipe.pieces.emplace_back(data);
    st.unread += data.size();
  }
  pipe.waiters.complete_all({});
  // Pipes whose request was taken and whose body is complete leave the queue (the request
  // keeps its pipe alive as long as it needs it).
  while (!st.pipes.empty() && st.pipes.front()->taken && st.pipes.front()->ended) st.pipes.pop_front();
  if (st.unread > kHttpUnreadLimit && !st.paused) {
    st.paused = true;
    port_->pause_reading(s);
  }
}

std::optional<task<void>> worker_runtime::http_event(std::uint8_t kind, session_id s, int listener,
                                                      std::string_view data) {
  std::uint32_t h2_stream = 0;
  std::string_view payload = data;
  if (h2::is_event_kind(kind)) {
    // An HTTP/2 stream: the stream id first, then what HTTP/1 events carry.
    if (kind != static_cast<std::uint8_t>(h2::ev::request)) return std::nullopt;  // body events: h2_body_event
    if (!h2::take_stream(payload, h2_stream) || h2_stream == 0) {
      log::warning("session {}: malformed HTTP/2 request event from the codec; closing", s);
      (void)port_->close(s, true);
      return std::nullopt;
    }
    kind = static_cast<std::uint8_t>(h1::ev::request);
  }
  switch (static_cast<h1::ev>(kind)) {
    case h1::ev::request: {
      auto req = take_request();
      if (!req->decode_head(payload)) {
        log::warning("session {}: malformed HTTP request from the codec; closing", s);
        (void)port_->close(s, true);
        return std::nullopt;
      }
      req->set_origin(s, port_->remote_of(s));
      return http_request(std::move(req), listener, h2_stream);
    }
    case h1::ev::body:
    case h1::ev::end:
      // Not through the runner: http_body_event() took them as they arrived.
      return std::nullopt;
  }
  log::warning("session {}: unknown HTTP event kind {}; dropped", s, kind);
  return std::nullopt;
}

std::optional<task<void>> worker_runtime::http_request(std::unique_ptr<http::request> req,
                                                       int listener, std::uint32_t h2_stream) {
  const auto& lc = app_.listen[static_cast<std::size_t>(listener)];
  const session_id s = req->session();
  const bool open = port_->is_open(s);
  http_exchange x;
  x.req = std::move(req);
  x.req->set_address_lookup(this);
  if (auto* ct = x.req->header("content-type"); ct && protocols::multipart::is_form_data(*ct)) {
    http::form_options fo;
    fo.upload_tmp_dir = lc.upload_tmp_dir;
    fo.upload_memory_size = lc.upload_memory_size;
    fo.max_parts = static_cast<std::size_t>(lc.multipart_max_parts);
    fo.max_part_size = lc.multipart_max_part_size;
    fo.max_field_size = lc.multipart_max_field_size;
    fo.max_header_size = static_cast<std::size_t>(lc.max_header_size);
    x.req->set_form_options(std::move(fo));
  }
  const auto& path = x.req->path();
  if (path.find('\0') != std::string::npos) {
    x.status = 400;
    x.reason = "NUL in the decoded path";
  } else if (path == "*") {
    // The asterisk asks about the server, not a resource (RFC 9110 §7.1, §9.3.7): the
    // engine answers what the listener's routes allow; no handler runs.
    if (x.req->method() == "OPTIONS") {
      x.status = 200;
      x.allow = listener_methods(lc);
    } else {
      x.status = 400;
      x.reason = "the target \"*\" is for OPTIONS only";
    }
  } else {
    auto r = match_route(lc, path, x.req->method());
    x.module = r.module;
    x.route = r.route;
    x.status = r.status;
    if (!r.allow.empty()) x.allow = std::move(r.allow);  // 405 only
  }
  if (x.status == 0 && lc.compression_options.inflate_requests)
    request_coding(*x.req, x.inflate, x.status, x.reason);
  if (x.status == 0 && http_in_flight_ >= lc.max_concurrency) x.status = 503;
  x.body_timeout = lc.body_timeout.count() > 0 ? std::chrono::milliseconds(lc.body_timeout)
                                               : std::chrono::milliseconds(std::chrono::hours(24));
  if (x.status == 0 && x.route >= 0)
    x.stream = lc.routes[static_cast<std::size_t>(x.route)].stream_body;
  x.h2_stream = h2_stream;
  if (h2_stream) {
    auto& st = http_pipes_[s];
    st.h2_taken = std::max(st.h2_taken, h2_stream);
    // A whole request needs no pipe; one made for it by an early reset goes.
    if (x.req->head().complete) st.streams.erase(h2_stream);
  }
  if (!x.req->head().complete) {
    // The body follows (body/end events go straight to this request's pipe).
    auto& st = http_pipes_[s];
    std::shared_ptr<body_pipe> pipe;
    if (h2_stream) {
      auto& p = st.streams[h2_stream];
      if (!p) {
        p = std::make_shared<body_pipe>(*this, s);
        p->stream = h2_stream;
      }
      pipe = p;
      if (pipe->ended || pipe->gone) st.streams.erase(h2_stream);
    } else {
      for (auto& p : st.pipes)
        if (!p->taken) {
          pipe = p;
          break;
        }
    }
    if (!pipe) {
      pipe = std::make_shared<body_pipe>(*this, s);
      st.pipes.push_back(pipe);
    }
    pipe->taken = true;
    if (!open) pipe->gone = true;  // closed before its head got here
    // What is already here arrived before the request was taken: keep it.
    x.pipe = pipe;
    if (x.status != 0) {
      pipe->drop();
    } else if (x.req->head().expect_continue) {
      // Ask for the body only when a handler will read it: now for whole bodies, at
      // the first read_body() for streamed ones.
      if (x.stream)
        pipe->continue_owed = true;
      else
        (void)send_reply(*port_, s, h2_stream, static_cast<std::uint8_t>(h1::out::continue_100),
                         {});
    }
    while (!st.pipes.empty() && st.pipes.front()->taken && st.pipes.front()->ended)
      st.pipes.pop_front();
  }
  x.listener = listener;
  if (x.status == 0 && h2_stream == 0 && lc.websocket.enabled && x.module >= 0 &&
      modules_[static_cast<std::size_t>(x.module)]->websocket() && x.req->header("upgrade") &&
      protocols::websocket::is_upgrade_request(
          {x.req->method(), 1, *x.req->header("upgrade"), {}, {}, {}, {}, {}}))
    return serve_ws_handshake(std::move(x));
  // A whole request for a module that answers without waiting: answered right here, no
  // coroutine (runner and serve_http alike).
  if (x.status == 0 && x.module >= 0 && !x.pipe && x.inflate == cz::coding::identity &&
      !x.req->is_multipart() && !now_busy_ &&
      modules_[static_cast<std::size_t>(x.module)]->answers_requests_now() && http_now(x)) {
    // Answered: nothing refers to the request any more (an inline handler cannot keep it).
    x.req->clear_for_reuse();
    spare_request_ = std::move(x.req);
    if (paced_now_.body) [[unlikely]] {
      // Its body goes out as the client reads: after this request, before the next one.
      auto t = paced_reply(s, h2_stream, std::move(paced_now_.body), std::move(paced_now_.what), lc);
      paced_now_ = {};
      if (!h2_stream) return t;
      spawn_beside(std::move(t), "HTTP/2 paced body");
    }
    return std::nullopt;
  }
  if (h2_stream) {
    // The streams of one connection run side by side, as HTTP/2 multiplexes them: a slow
    // handler does not hold its siblings back, and they are answered in any order.
    // h2_max_concurrent_streams bounds how many one connection runs at once. The stream
    // counts against max_concurrency from now, not from when its coroutine starts: a read
    // full of streams must not all pass the check above.
    // It runs on the event runner's pool (no coroutine spawned per stream), and starts
    // inline in base mode as a session's event would.
    bump(slot_->messages);
    const bool counted = x.status == 0;
    if (counted) ++http_in_flight_;
    begin_busy();
    runner_.run_beside(serve_http(std::move(x), true));
    return std::nullopt;
  }
  return serve_http(std::move(x));
}

// A request refused before any handler (x.status): the engine's answer.
void worker_runtime::refuse_http(const http_exchange& x) {
  auto s = x.req->session();
  // A refused request whose body is still on its way: answer and close (reading a body
  // nobody wants would let the client hold the connection).
  const bool body_pending = x.pipe && !x.pipe->ended;
  const auto st = x.h2_stream;
  switch (x.status) {
    case 200: answer(*port_, s, 200, "", x.allow.c_str(), body_pending, st); break;  // OPTIONS *
    case 404: answer(*port_, s, 404, "Not Found\n", nullptr, body_pending, st); break;
    case 405: answer(*port_, s, 405, "Method Not Allowed\n", x.allow.c_str(), body_pending, st); break;
    case 503:
      answer(*port_, s, 503, "Service Unavailable: too many requests in this worker\n", nullptr, body_pending, st);
      break;
    case 415: {
      log::info("session {}: {} {}: {}; 415", s, x.req->method(), x.req->target(), x.reason);
      session_channel ch(*port_, s, nullptr, st);
      http::response res(ch);
      // RFC 9110 §12.5.3: a 415 for a content coding says which ones are accepted.
      res.status(415).set_header("Content-Type", "text/plain; charset=utf-8").set_header("Accept-Encoding", "gzip, deflate, br");
      if (body_pending) res.close();
      (void)res.end("Unsupported Media Type: content coding not supported\n");
      break;
    }
    default:
      log::info("session {}: {} {}: {}", s, x.req->method(), x.req->target(), x.reason);
      answer(*port_, s, x.status, "Bad Request\n", nullptr, true, st);
      break;
  }
}

// The body before the handler runs: a multipart body parsed (files to disk), a whole body
// gathered, a compressed one inflated, a streamed one wired to read_body(). False when the
// request was answered here (refused) or its client went away. Its own coroutine, called
// only for requests that have such a body, so that serve_http's frame stays small enough
// for asio's frame recycling (a frame over about 1 KiB is a malloc and free per request).
task<bool> worker_runtime::prepare_body(http_exchange& x) {
  auto s = x.req->session();
  const auto& lc = app_.listen[static_cast<std::size_t>(x.listener)];
  // A compressed body is inflated as it arrives, never past max_body_size (a zip bomb
  // costs that much memory at most, then 413).
  std::unique_ptr<cz::decoder> inflater;
  if (x.inflate != cz::coding::identity) inflater = cz::make_decoder(x.inflate, lc.max_body_size);
  auto refuse = [&](cz::decode_status st) {
    const bool big = st == cz::decode_status::too_large;
    log::info("session {}: {} {}: the {} request body {}; {} and close", s, x.req->method(), x.req->target(),
              cz::to_string(x.inflate),
              big ? fmt::format("inflates past max_body_size ({} bytes)", lc.max_body_size)
                  : std::string("is not valid compressed data"),
              big ? 413 : 400);
    answer(*port_, s, big ? 413 : 400,
           big ? "Payload Too Large: the body inflates past max_body_size\n" : "Bad Request: invalid compressed body\n",
           nullptr, true, x.h2_stream);
  };
  if (!x.stream && x.req->is_multipart()) {
    // A multipart body is parsed as it arrives (files to disk), never gathered whole.
    if (x.pipe) x.req->set_body_source(x.pipe);
    auto ec = co_await x.req->read_form(nullptr, x.body_timeout);
    x.req->set_body_source(nullptr);
    if (ec) {
      if (ec == server_errc::session_not_found) co_return false;  // the client went away: the files go with x
      if (x.pipe && !x.pipe->ended) {  // the rest of the body is not wanted
        x.pipe->drop();
      }
      int status = http::form_error_status(ec);
      log::info("session {}: {} {}: multipart body refused ({}): {}", s, x.req->method(), x.req->target(), status,
                ec.message());
      const char* text = status == 413 ? "Payload Too Large\n"
                         : status == 408 ? "Request Timeout\n"
                         : status == 400 ? "Bad Request: malformed multipart body\n"
                                         : "Internal Server Error\n";
      answer(*port_, s, status, text, nullptr, true, x.h2_stream);
      co_return false;
    }
  } else if (x.pipe && !x.stream) {
    // A whole body: gather it before the handler runs.
    for (;;) {
      auto piece = co_await x.pipe->next(*x.req, x.body_timeout);
      if (!piece) co_return false;  // the client went away (or stalled: the codec's body_timeout answers)
      if (piece->empty()) break;
      auto st = inflater ? inflater->feed(*piece, x.req->body()) : (x.req->body().append(*piece), cz::decode_status::ok);
      if (st != cz::decode_status::ok) {
        refuse(st);
        co_return false;
      }
    }
  } else if (x.pipe) {
    if (inflater) {
      x.req->set_body_source(std::make_shared<inflating_source>(x.pipe, std::move(inflater)));
      x.req->mark_inflated(false);
    } else {
      x.req->set_body_source(x.pipe);
    }
  } else if (inflater) {
    // The body rode along with the head.
    auto raw = std::move(x.req->body());
    x.req->body().clear();
    if (auto st = inflater->feed(raw, x.req->body()); st != cz::decode_status::ok) {
      refuse(st);
      co_return false;
    }
  }
  if (inflater) {
    if (auto st = inflater->finish(); st != cz::decode_status::ok) {
      refuse(st);
      co_return false;
    }
    x.req->mark_inflated(true);
  }
  co_return true;
}

// After the handler: a response that could not be sent, a handler that threw or returned
// without ending it (500, or the connection closed when the head already went out).
void worker_runtime::http_handler_done(const http_exchange& x, const http::response& res, int mod,
                                        std::exception_ptr error, const char* handler) {
  auto s = x.req->session();
  if (!error && res.error() && res.error() != server_errc::session_not_found) {
    log::warning("module {}: the response to {} {} (session {}) could not be sent: {}; closing the connection",
                 modules_[static_cast<std::size_t>(mod)]->instance_name(), x.req->method(), x.req->path(), s,
                 res.error().message());
    end_failed(s, x.h2_stream);
  } else if (!error && !res.ended() && res.error() == server_errc::session_not_found) {
    // A write found the connection (or the HTTP/2 stream) gone: the client left while the
    // response streamed. Nobody to answer, nothing the module did wrong.
    log::info("session {}: {} {}: the client went away before the response ended", s, x.req->method(),
              x.req->path());
  } else if (!error && !res.ended() && x.pipe && x.pipe->gone) {
    // Its request ended before the body did (the client reset the stream or closed, or
    // h2_idle_stream_timeout): nobody is left to answer, so no failure to log.
    log::debug("session {}: {} {} ended before its body; no response", s, x.req->method(), x.req->path());
  } else if (error || !res.ended()) {
    std::string what = "returned without ending the response";
    if (error) {
      try {
        std::rethrow_exception(error);
      } catch (const std::exception& e) {
        what = std::string("threw: ") + e.what();
      } catch (...) {
        what = "threw a non-standard exception";
      }
    }
    log::error("module {} failed in {} for {} {} (session {}): {}", modules_[static_cast<std::size_t>(mod)]->instance_name(),
               handler, x.req->method(), x.req->path(), s, what);
    if (!res.started())
      answer(*port_, s, 500, "Internal Server Error\n", nullptr, false, x.h2_stream);
    else
      end_failed(s, x.h2_stream);  // a half-sent body must not look complete
  }
}

// `beside`: an HTTP/2 stream run by run_beside(), counted in http_in_flight_ from its event
// (when it was not refused) and ended like a queued event (handler_done) on every way out.
task<void> worker_runtime::serve_http(http_exchange x, bool beside) {
  const auto session = x.req->session();
  const int from = x.listener;
  if (beside && x.status == 0) --http_in_flight_;  // counted again below while it runs
  auto done = [&] {
    if (beside) handler_done(event_kind::message, session, from, nullptr);
  };
  if (x.status != 0) {
    refuse_http(x);
    co_return done();
  }
  ++http_in_flight_;
  if (x.pipe || x.inflate != cz::coding::identity || x.req->is_multipart()) {
    const bool ready = co_await prepare_body(x);
    if (!ready) {
      --http_in_flight_;
      co_return done();
    }
  }
  const auto mod = x.module;
  const auto& lc = app_.listen[static_cast<std::size_t>(x.listener)];
  session_channel ch(*port_, x.req->session(), this, x.h2_stream, lc);
  http::response res(ch);
  negotiate_compression(res, *x.req, x.listener);
  std::exception_ptr error;
  try {
    co_await modules_[static_cast<std::size_t>(mod)]->on_request(*contexts_[static_cast<std::size_t>(mod)], *x.req,
                                                                  res);
  } catch (...) {
    error = std::current_exception();
  }
  --http_in_flight_;
  if (res.detached() && !error) {
    // Another process answers; this session's next request waits for that answer.
    co_await wait_detached(ch.detached_request(),
                           lc.detached_response_timeout.count() > 0 ? lc.detached_response_timeout
                                                                    : std::chrono::milliseconds(std::chrono::hours(24 * 365)),
                           *x.req);
    co_return done();
  }
  if (res.detached()) detached_.erase(ch.detached_request());
  if (auto paced = res.take_paced(); paced && !error)
    co_await finish_paced(ch, *paced, x.req->session(), x.h2_stream, x.req->method() + " " + x.req->path(),
                          send_wait_of(lc));
  http_handler_done(x, res, mod, error);
  done();
}

task<void> worker_runtime::finish_paced(http::response_channel& ch, const http::response::paced_body& p, session_id s,
                                        std::uint32_t h2_stream, std::string what, duration timeout) {
  auto ec = co_await send_paced(ch, p, timeout);
  if (!ec || ec == server_errc::session_not_found) co_return;
  log::warning("session {}: the body of the response to {} ({} bytes) could not be sent: {}; {}", s, what,
               p.body.size(), ec.message(), h2_stream ? "the stream is reset" : "closing the connection");
  end_failed(s, h2_stream);
}

task<void> worker_runtime::paced_reply(session_id s, std::uint32_t h2_stream,
                                       std::unique_ptr<http::response::paced_body> p, std::string what,
                                       const listen_config& lc) {
  session_channel ch(*port_, s, this, h2_stream, lc);
  co_await finish_paced(ch, *p, s, h2_stream, std::move(what), send_wait_of(lc));
}

void worker_runtime::negotiate_compression(http::response& res, const http::request& req, int listener) const {
  const auto& co = app_.listen[static_cast<std::size_t>(listener)].compression_options;
  if (!co.enabled || co.offered.empty() || req.method() == "HEAD") return;
  // Read now, not when a body is sent: the handler may move the request out of its reference.
  res.set_compression(&co, http::accepted_coding(req, co));
}

bool worker_runtime::http_now(http_exchange& x) {
  const auto mod = x.module;
  session_channel ch(*port_, x.req->session(), this, x.h2_stream, app_.listen[static_cast<std::size_t>(x.listener)]);
  http::response res(ch);
  // The response's fields go into the worker's spare vector (its capacity kept from the last
  // response), and it back after.
  auto& fields = http::detail::response_fields::of(res);
  fields.swap(spare_fields_);
  struct give_back {
    std::vector<h1::header>& fields;
    std::vector<h1::header>& spare;
    ~give_back() {
      fields.clear();
      if (fields.capacity() <= 32) fields.swap(spare);
    }
  } back{fields, spare_fields_};
  negotiate_compression(res, *x.req, x.listener);
  ++http_in_flight_;  // while the handler runs (finish() below ends it, also after a throw)
  return run_now(
      [&] {
        return modules_[static_cast<std::size_t>(mod)]->on_request_now(*contexts_[static_cast<std::size_t>(mod)],
                                                                        *x.req, res);
      },
      [&](bool taken, std::exception_ptr error) {
        --http_in_flight_;
        // A response it began is its answer whatever it returned (never a second one).
        if (!(taken || error || res.started() || res.detached())) return false;
        if (res.detached() && !error) {
          // Waiting for another process's answer needs a coroutine: on_request's job.
          detached_.erase(ch.detached_request());
          error = std::make_exception_ptr(std::logic_error("response::detach() needs on_request, not on_request_now"));
        }
        if (!error)
          if (auto paced = res.take_paced())
            paced_now_ = {std::move(paced), x.req->method() + " " + x.req->path()};
        http_handler_done(x, res, mod, error, "on_request_now");
        return true;
      });
}

// A response that cannot end well: HTTP/1 closes the connection, HTTP/2 resets the stream.
void worker_runtime::end_failed(session_id s, std::uint32_t h2_stream) {
  if (h2_stream == 0) (void)port_->close(s, true);
  else (void)send_reply(*port_, s, h2_stream, h2::kReplyReset, {});
}

std::string worker_runtime::local_address(session_id s) {
  auto i = port_->info(s);
  return i ? std::move(i->local) : std::string();
}

void worker_runtime::http_closed(session_id s) {
  for (auto& [id, d] : detached_)
    if (d->session == s && !d->done) {
      d->done = true;
      d->waiters.complete_all({});
    }
  auto it = http_pipes_.find(s);
  if (it == http_pipes_.end()) return;
  for (auto& p : it->second.pipes) {
    p->gone = true;
    p->waiters.complete_all({});
  }
  for (auto& [id, p] : it->second.streams) {
    p->gone = true;
    p->waiters.complete_all({});
  }
  http_pipes_.erase(it);
}

// -- WebSocket ---------------------------------------------------------------------------------

namespace {
// A header's values joined with ", " (repeated fields are one list).
std::string joined(const http::request& req, std::string_view name) {
  std::string out;
  for (auto v : req.header_values(name)) {
    if (!out.empty()) out += ", ";
    out += v;
  }
  return out;
}
bool clean_header(std::string_view s) { return s.find_first_of("\r\n") == std::string_view::npos; }
}  // namespace

task<void> worker_runtime::serve_ws_handshake(http_exchange x) {
  namespace ws = protocols::websocket;
  auto s = x.req->session();
  const auto& wc = app_.listen[static_cast<std::size_t>(x.listener)].websocket;
  auto upgrade = joined(*x.req, "upgrade"), connection = joined(*x.req, "connection"), key = joined(*x.req, "sec-websocket-key"),
       version = joined(*x.req, "sec-websocket-version"), protocols = joined(*x.req, "sec-websocket-protocol"),
       extensions = joined(*x.req, "sec-websocket-extensions");
  ws::handshake_request hr{x.req->method(), x.req->version_minor(), upgrade, connection, key, version, protocols, extensions};
  auto chk = ws::check_handshake(hr);
  if (!chk) {
    log::info("session {}: WebSocket handshake refused ({}): {}", s, chk.status, chk.error);
    session_channel ch(*port_, s);
    http::response res(ch);
    res.status(chk.status).set_header("Content-Type", "text/plain; charset=utf-8");
    if (chk.status == 426) res.set_header("Sec-WebSocket-Version", "13");
    res.close();
    (void)res.end(chk.error + "\n");
    co_return;
  }
  if (!wc.origins.empty()) {
    auto* origin = x.req->header("origin");
    if (!origin || std::find(wc.origins.begin(), wc.origins.end(), *origin) == wc.origins.end()) {
      log::info("session {}: WebSocket handshake refused: origin {} not allowed", s, origin ? *origin : "(none)");
      answer(*port_, s, 403, "Forbidden: origin not allowed\n", nullptr, true);
      co_return;
    }
  }
  auto mod = static_cast<std::size_t>(x.module);
  auto& m = *modules_[mod];
  auto& ctx = *contexts_[mod];
  ws_handshake hs(chk.protocols);
  std::exception_ptr error;
  try {
    co_await m.on_handshake(ctx, *x.req, hs);
  } catch (...) {
    error = std::current_exception();
  }
  if (error) {
    log_failure(x.module, "on_handshake", s, error);
    answer(*port_, s, 500, "Internal Server Error\n", nullptr, true);
    co_return;
  }
  // The module's headers, for the refusal or the 101: the framing ones are the engine's.
  auto usable = [&](const std::string& name, const std::string& value) {
    if (name.empty() || !clean_header(name) || !clean_header(value)) {
      log::warning("module {}: handshake header {:?} dropped (empty, or CR or LF in it)", m.instance_name(), name);
      return false;
    }
    for (std::string_view own : {"content-length", "transfer-encoding", "connection", "upgrade"})
      if (h1::iequals(name, own)) {
        log::warning("module {}: handshake header {:?} dropped (the engine sets it)", m.instance_name(), name);
        return false;
      }
    return true;
  };
  if (int status = hs.refused()) {
    if (status < 300 || status > 599) {
      log::warning("module {}: on_handshake refused with status {}, not 300-599; answering 403", m.instance_name(),
                   status);
      status = 403;
    }
    session_channel ch(*port_, s);
    http::response res(ch);
    res.status(status).set_header("Content-Type", "text/plain; charset=utf-8");
    for (const auto& [name, value] : hs.headers())
      if (usable(name, value)) {
        if (h1::iequals(name, "content-type")) res.set_header(name, value);
        else res.header(name, value);
      }
    res.close();
    (void)res.end(hs.refusal_body().empty() && status == 403 ? std::string_view("Forbidden\n")
                                                             : std::string_view(hs.refusal_body()));
    co_return;
  }
  std::string extra;
  for (const auto& [name, value] : hs.headers())
    if (usable(name, value)) extra += name + ": " + value + "\r\n";
  ws::deflate_params dp;
  std::string ext;
  if (wc.permessage_deflate && !chk.deflate_offers.empty())
    ext = ws::negotiate_deflate(chk.deflate_offers, wc.no_context_takeover, wc.deflate_window_bits, dp);
  std::string accept;
  std::uint8_t flags = 0;
  if (!ext.empty()) flags = static_cast<std::uint8_t>(1 | (dp.server_no_context_takeover ? 2 : 0) |
                                                      (dp.client_no_context_takeover ? 4 : 0));
  accept.push_back(static_cast<char>(flags));
  accept.push_back(static_cast<char>(dp.server_max_window_bits));
  accept.push_back(static_cast<char>(dp.client_max_window_bits));
  accept += ws::switching_protocols_head(chk, hs.protocol(), ext, extra);
  // Before the 101: in process mode the reactor must know whose WebSocket it is by the
  // time the client's first frame can arrive.
  if (auto ec = port_->upgraded(s, x.module, x.req->target())) {
    log::info("session {}: WebSocket upgrade dropped: {}", s, ec.message());
    co_return;
  }
  if (auto ec = port_->send(s, accept, static_cast<std::uint8_t>(h1::out::ws_accept))) {
    log::info("session {}: WebSocket accept not sent: {}", s, ec.message());
    co_return;
  }
  ws_sessions_[s] = ws_session{x.module, false};
  co_await run_ws(x.module, s, "on_open", m.on_open(ctx, s, *x.req));
}

// The runner already counts these as running handlers (they come from handler_for): only
// a failure is this function's business.
task<void> worker_runtime::run_ws(int module, session_id s, const char* event, task<void> t) {
  std::exception_ptr error;
  try {
    co_await std::move(t);
  } catch (...) {
    error = std::current_exception();
  }
  log_failure(module, event, s, error);
}

std::optional<task<void>> worker_runtime::ws_event(std::uint8_t kind, session_id s, std::string& data) {
  namespace ws = protocols::websocket;
  auto it = ws_sessions_.find(s);
  if (it == ws_sessions_.end()) {
    log::warning("session {}: WebSocket event for a session this worker did not upgrade; dropped (use a sticky "
                 "dispatch_mode for WebSocket listeners)", s);
    return std::nullopt;
  }
  int mod = it->second.module;
  auto& m = *modules_[static_cast<std::size_t>(mod)];
  auto& ctx = *contexts_[static_cast<std::size_t>(mod)];
  if (kind == kWsAdopted) {
    h1::request_head head;
    head.method = "GET";
    head.target = std::move(data);
    auto req = std::make_shared<http::request>(std::move(head), s, std::string(port_->remote_of(s)));
    return run_ws(mod, s, "on_adopt", adopt(m, ctx, s, std::move(req)));
  }
  switch (static_cast<ws::ev>(kind)) {
    case ws::ev::text:
    case ws::ev::binary: {
      ws_message msg{kind == static_cast<std::uint8_t>(ws::ev::text) ? ws_opcode::text : ws_opcode::binary,
                     std::move(data)};
      return run_ws(mod, s, "on_message", m.on_message(ctx, s, std::move(msg)));
    }
    case ws::ev::close: {
      if (it->second.close_seen) return std::nullopt;
      it->second.close_seen = true;
      std::uint16_t code = 1005;  // "no status received"
      std::string reason;
      if (data.size() >= 2) {
        code = static_cast<std::uint16_t>((static_cast<unsigned char>(data[0]) << 8) | static_cast<unsigned char>(data[1]));
        reason = data.substr(2);
      }
      return run_ws(mod, s, "on_close", m.on_close(ctx, s, code, std::move(reason)));
    }
    // Only with the listener's deliver_control: the codec answered the ping already.
    case ws::ev::ping: return run_ws(mod, s, "on_ping", m.on_ping(ctx, s, std::move(data)));
    case ws::ev::pong: return run_ws(mod, s, "on_pong", m.on_pong(ctx, s, std::move(data)));
  }
  return std::nullopt;
}

task<void> worker_runtime::adopt(module_base& m, context& ctx, session_id s, std::shared_ptr<http::request> req) {
  co_await m.on_adopt(ctx, s, *req);  // the request lives in this frame while on_adopt runs
}

std::optional<task<void>> worker_runtime::ws_closed(session_id s) {
  auto it = ws_sessions_.find(s);
  if (it == ws_sessions_.end()) return std::nullopt;
  auto st = it->second;
  ws_sessions_.erase(it);
  if (st.close_seen) return std::nullopt;
  // Closed without a close frame (the peer vanished, a protocol error, our close timed out).
  auto& m = *modules_[static_cast<std::size_t>(st.module)];
  auto& ctx = *contexts_[static_cast<std::size_t>(st.module)];
  return run_ws(st.module, s, "on_close", m.on_close(ctx, s, 1006, {}));
}

}  // namespace swactor::detail
