// Answering an HTTP request from another process (Swoole's Response::create($fd)).
//
// The worker that ran the handler holds the request: response::detach() registers it
// (session + a request number of this worker) and serve_http waits for it to end, so the
// connection's next request keeps its place in line. The answering process (a task
// worker, another worker) claims the request from that worker over the bus (a request:
// the claim can fail with a clear error), then sends each reply piece as a one-way bus
// message; the holding worker puts them on its connection (its own port, so this is the
// same in base and process mode). Streaming backpressure is a bus request that returns
// when the connection's output drained. Bus messages from one process to another keep
// their order, so pieces never overtake each other.

#include <unistd.h>

#include <algorithm>
#include <charconv>

#include "swactor/actors/http.hpp"
#include "swactor/core/log.hpp"
#include "swactor/core/wire.hpp"
#include "worker/runtime.hpp"

namespace swactor {

swactor::task<result<std::unique_ptr<http::response>>> context::http_response(const http::response_handle&,
                                                                               duration) {
  co_return make_error_code(server_errc::not_supported);
}

namespace http {

std::string response_handle::encode() const {
  return "swactor-response:" + std::to_string(worker) + ":" + std::to_string(session.value()) + ":" +
         std::to_string(request) + ":" + std::to_string(pid);
}

std::optional<response_handle> response_handle::decode(std::string_view text) {
  constexpr std::string_view prefix = "swactor-response:";
  if (!text.starts_with(prefix)) return std::nullopt;
  text.remove_prefix(prefix.size());
  // Three numbers, or four with the pid (a handle of an older version has none).
  std::uint64_t v[4] = {};
  const int fields = std::count(text.begin(), text.end(), ':') == 3 ? 4 : 3;
  for (int i = 0; i < fields; ++i) {
    auto end = i < fields - 1 ? text.find(':') : text.size();
    if (end == std::string_view::npos || end == 0) return std::nullopt;
    auto [p, ec] = std::from_chars(text.data(), text.data() + end, v[i]);
    if (ec != std::errc() || p != text.data() + end) return std::nullopt;
    text.remove_prefix(std::min(text.size(), end + 1));
  }
  if (v[0] > 1u << 20 || v[3] > 0xffffffffu) return std::nullopt;
  response_handle h;
  h.worker = static_cast<int>(v[0]);
  h.session = session_id(v[1]);
  h.request = v[2];
  h.pid = static_cast<std::uint32_t>(v[3]);
  return h;
}

result<response_handle> response::detach() {
  if (started_ || ended_ || detached_) return make_error_code(server_errc::not_supported);
  auto h = ch_->detach();
  if (h) {
    detached_ = true;
    ended_ = true;  // nothing more goes out through this object
  }
  return h;
}

}  // namespace http

namespace detail {
namespace {

constexpr std::string_view kClaimTag = "swactor.http_claim";  // request: u64 request, u64 session
constexpr std::string_view kSendTag = "swactor.http_send";    // u64 request, u8 kind, str data
constexpr std::string_view kDrainTag = "swactor.http_drain";  // request: u64 request, u64 timeout ms
// Replies: u8 status (0 ok, 1 gone, 2 timeout).
enum class remote_status : std::uint8_t { ok = 0, gone = 1, timeout = 2 };

namespace h1 = protocols::http1;

// The process holding a detached request: by pid, so that a reload's replacement of its
// worker id (which knows nothing of it) is not asked instead.
bus::target holder_of(const http::response_handle& h) {
  auto t = bus::target::worker(h.worker);
  t.pid = h.pid;
  return t;
}

// The answering side's channel: each piece to the holding worker over the bus.
class remote_channel final : public http::response_channel {
 public:
  remote_channel(worker_runtime& rt, int module, http::response_handle h) : rt_(rt), module_(module), h_(h) {}

  std::error_code send(std::uint8_t kind, std::string_view data) override {
    bus::payload p;
    p.tag = std::string(kSendTag);
    wire::writer w(p.data);
    w.u64(h_.request);
    w.u8(kind);
    w.str(data);
    return rt_.bus().send(module_, holder_of(h_), std::move(p));
  }

  task<std::error_code> drained(duration timeout) override {
    bus::payload p;
    p.tag = std::string(kDrainTag);
    wire::writer w(p.data);
    w.u64(h_.request);
    w.u64(static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()));
    // The holder answers by `timeout`; a second more covers the trip.
    auto r = co_await rt_.bus().request(module_, holder_of(h_), std::move(p),
                                        timeout + std::chrono::seconds(1));
    if (!r) co_return r.error();
    co_return status_error(r->data);
  }

  // Room for the piece's own header inside bus.max_message_size.
  std::size_t max_piece() const noexcept override {
    auto limit = rt_.app().bus.max_message_size;
    return static_cast<std::size_t>(limit > 8192 ? std::min<std::uint64_t>(limit - 4096, 1u << 20) : min_piece);
  }

  static std::error_code status_error(std::string_view data) {
    if (data.size() != 1) return make_error_code(server_errc::response_gone);
    switch (static_cast<remote_status>(data[0])) {
      case remote_status::ok: return {};
      case remote_status::timeout: return make_error_code(errc::timeout);
      case remote_status::gone: break;
    }
    return make_error_code(server_errc::response_gone);
  }

 private:
  worker_runtime& rt_;
  int module_;
  http::response_handle h_;
};

// The holding side's own replies (a 504) straight to its port (HTTP/2: naming the stream).
class port_channel final : public http::response_channel {
 public:
  port_channel(session_port& port, session_id s, std::uint32_t stream) : port_(port), s_(s), stream_(stream) {}
  std::error_code send(std::uint8_t kind, std::string_view data) override {
    return send_reply(port_, s_, stream_, kind, data);
  }
  task<std::error_code> drained(duration timeout) override { return port_.drained(s_, timeout); }

 private:
  session_port& port_;
  session_id s_;
  std::uint32_t stream_;
};

std::string status_byte(remote_status s) { return std::string(1, static_cast<char>(s)); }

}  // namespace

task<result<std::unique_ptr<http::response>>> server_context::http_response(const http::response_handle& handle,
                                                                             duration timeout) {
  co_return co_await rt_.http_claim(module_, handle, timeout);
}

result<http::response_handle> worker_runtime::http_detach(session_id s, std::uint32_t h2_stream) {
  if (is_task_ || is_user_) return make_error_code(server_errc::not_supported);
  auto d = std::make_shared<detached_response>();
  d->session = s;
  d->stream = h2_stream;
  const auto id = ++next_http_request_;
  detached_[id] = std::move(d);
  http::response_handle h;
  h.session = s;
  h.request = id;
  h.worker = args_.id;
  h.pid = static_cast<std::uint32_t>(::getpid());
  return h;
}

task<result<std::unique_ptr<http::response>>> worker_runtime::http_claim(int module, const http::response_handle& h,
                                                                         duration timeout) {
  if (h.worker < 0 || h.worker >= app_.server.workers) co_return make_error_code(server_errc::response_gone);
  bus::payload p;
  p.tag = std::string(kClaimTag);
  wire::writer w(p.data);
  w.u64(h.request);
  w.u64(h.session.value());
  auto r = co_await bus_->request(module, holder_of(h), std::move(p), timeout);
  if (!r) {
    if (r.error() == server_errc::no_route || r.error() == server_errc::worker_not_found)
      co_return make_error_code(server_errc::response_gone);
    co_return r.error();
  }
  if (auto ec = remote_channel::status_error(r->data)) co_return ec;
  auto ch = std::make_shared<remote_channel>(*this, module, h);
  co_return std::make_unique<http::response>(std::move(ch));
}

bool worker_runtime::http_remote_message(const ipc::bus_message& m) {
  wire::reader r(m.data);
  const auto request = r.u64();
  auto reply = [&](remote_status st) {
    bus::message req;
    req.kind = bus::kind::request;
    req.sender = static_cast<int>(m.src);
    req.request_id = m.request;
    bus::payload p;
    p.tag = m.tag;
    p.data = status_byte(st);
    if (auto ec = bus_->reply(static_cast<int>(m.dst_module), req, std::move(p)))
      log::warning("bus: reply to {} from process {} not sent: {}", m.tag, m.src, ec.message());
  };
  auto it = detached_.find(request);
  std::shared_ptr<detached_response> d = it == detached_.end() ? nullptr : it->second;
  if (m.tag == kClaimTag && m.op == ipc::bus_op::request) {
    session_id s(r.u64());
    if (!r.done()) {
      log::warning("bus: malformed {} from process {}; dropped", m.tag, m.src);
      reply(remote_status::gone);
      return true;
    }
    if (!d || d->session != s || d->claimed || d->done) {
      log::info("process {} asked for the response to request {} of session {}: {}", m.src, request, s,
                make_error_code(server_errc::response_gone).message());
      reply(remote_status::gone);
      return true;
    }
    d->claimed = true;
    reply(remote_status::ok);
    return true;
  }
  if (m.tag == kSendTag && m.op == ipc::bus_op::direct) {
    auto kind = r.u8();
    auto data = r.str();
    if (!r.done()) {
      log::warning("bus: malformed {} from process {}; dropped", m.tag, m.src);
      return true;
    }
    if (!d || !d->claimed || d->done) {
      log::info("a response piece for request {} from process {} dropped: {}", request, m.src,
                make_error_code(server_errc::response_gone).message());
      return true;
    }
    const bool last = kind == static_cast<std::uint8_t>(h1::out::whole) || kind == static_cast<std::uint8_t>(h1::out::end);
    if (kind == static_cast<std::uint8_t>(h1::out::whole) || kind == static_cast<std::uint8_t>(h1::out::head))
      d->started = true;
    if (auto ec = send_reply(*port_, d->session, d->stream, kind, data)) {
      log::info("session {}: the detached response could not be sent: {}; {}", d->session, ec.message(),
                d->stream ? "its stream is reset" : "closing");
      end_failed(d->session, d->stream);
      d->done = true;
    }
    if (last) d->done = true;
    if (d->done) d->waiters.complete_all({});
    return true;
  }
  if (m.tag == kDrainTag && m.op == ipc::bus_op::request) {
    auto ms = r.u64();
    if (!r.done() || !d || d->done) {
      reply(remote_status::gone);
      return true;
    }
    // Answered when the connection drained: a coroutine of its own (the bus goes on).
    bus::message req;
    req.kind = bus::kind::request;
    req.sender = static_cast<int>(m.src);
    req.request_id = m.request;
    spawn(
        lp_.context(),
        [this, d, ms, req = std::move(req), tag = m.tag, module = static_cast<int>(m.dst_module)]() -> task<void> {
          auto ec = co_await port_->drained(d->session, std::chrono::milliseconds(std::min<std::uint64_t>(ms, 3600000)));
          bus::payload p;
          p.tag = tag;
          p.data = status_byte(!ec ? remote_status::ok
                               : ec == errc::timeout ? remote_status::timeout
                                                     : remote_status::gone);
          (void)bus_->reply(module, req, std::move(p));
        },
        "http drain");
    return true;
  }
  log::warning("bus: unexpected {} from process {}; dropped", m.tag, m.src);
  if (m.op == ipc::bus_op::request) reply(remote_status::gone);
  return true;
}

task<void> worker_runtime::wait_detached(std::uint64_t request, std::chrono::milliseconds timeout,
                                         const http::request& req) {
  auto it = detached_.find(request);
  if (it == detached_.end()) co_return;
  auto d = it->second;
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (!d->done) {
    auto left = until - std::chrono::steady_clock::now();
    if (left <= duration::zero()) break;
    const auto waited = co_await d->waiters.wait(nullptr, left, "detached HTTP response", std::source_location::current());
    if (waited) break;
  }
  detached_.erase(request);
  if (d->done) co_return;
  log::warning("session {}: the detached response to {} {} did not end within {} ms; closing", d->session,
               req.method(), req.target(), timeout.count());
  d->done = true;  // pieces that still come are dropped
  if (!d->started && port_->is_open(d->session)) {
    // Nothing went out yet: a 504 says why.
    port_channel ch(*port_, d->session, d->stream);
    http::response res(ch);
    res.status(504).set_header("Content-Type", "text/plain; charset=utf-8");
    if (!d->stream) res.close();  // HTTP/2: the connection's other streams go on
    (void)res.end("Gateway Timeout: the detached response did not come\n");
  } else {
    end_failed(d->session, d->stream);  // a half-sent body must not look complete
  }
}

}  // namespace detail
}  // namespace swactor
