// HTTP requests through module handlers: the worker side of an HTTP listener, the same in
// both modes. The codec (here in base mode, in a reactor in process mode) sends a request
// head, body pieces and an end; this assembles them per session (one request at a time:
// the runner delivers a session's events in order), routes the request to a module, and
// runs its on_request with a response whose replies the codec frames.

#include <fmt/format.h>

#include "http/router.hpp"
#include "swactor/actors/http.hpp"
#include "swactor/core/log.hpp"
#include "worker/runtime.hpp"

namespace swactor::detail {
namespace {

namespace h1 = protocols::http1;

class session_channel final : public http::response_channel {
 public:
  session_channel(session_port& port, session_id s) : port_(port), s_(s) {}
  std::error_code send(std::uint8_t kind, std::string_view data) override { return port_.send(s_, data, kind); }
  task<std::error_code> drained(duration timeout) override { return port_.drained(s_, timeout); }

 private:
  session_port& port_;
  session_id s_;
};

// A reply the worker makes without a handler (404, 405, 503, 500, 400).
void answer(session_port& port, session_id s, int status, std::string_view body, const char* allow = nullptr,
            bool close = false) {
  session_channel ch(port, s);
  http::response res(ch);
  res.status(status).set_header("Content-Type", "text/plain; charset=utf-8");
  if (allow) res.set_header("Allow", allow);
  if (status == 503) res.set_header("Retry-After", "1");
  if (close) res.close();
  (void)res.end(body);
}

}  // namespace

std::optional<task<void>> worker_runtime::http_event(std::uint8_t kind, session_id s, int listener,
                                                      std::string& data) {
  const auto& lc = app_.listen[static_cast<std::size_t>(listener)];
  switch (static_cast<h1::ev>(kind)) {
    case h1::ev::request: {
      h1::request_head head;
      if (!head.decode(data)) {
        log::warning("session {}: malformed HTTP request from the codec; closing", s);
        (void)port_->close(s, true);
        return std::nullopt;
      }
      auto info = port_->info(s);
      http_exchange x;
      x.req = std::make_unique<http::request>(std::move(head), s, info ? info->remote : std::string());
      const auto& path = x.req->path();
      if (path.find('\0') != std::string::npos) {
        x.status = 400;
        x.reason = "NUL in the decoded path";
      } else {
        auto r = match_route(lc, path, x.req->method());
        x.module = r.module;
        x.status = r.status;
        x.allow = std::move(r.allow);
      }
      if (x.status == 0 && http_in_flight_ >= lc.max_concurrency) x.status = 503;
      if (x.req->head().complete) return serve_http(std::move(x), listener);
      // The body follows: ask for it only when a handler will read it.
      if (x.status == 0 && x.req->head().expect_continue)
        (void)port_->send(s, {}, static_cast<std::uint8_t>(h1::out::continue_100));
      http_partials_[s] = std::move(x);
      return std::nullopt;
    }
    case h1::ev::body: {
      auto it = http_partials_.find(s);
      if (it == http_partials_.end()) return std::nullopt;
      // A request that will be refused does not keep its body.
      if (it->second.status == 0) it->second.req->body().append(data);
      return std::nullopt;
    }
    case h1::ev::end: {
      auto it = http_partials_.find(s);
      if (it == http_partials_.end()) return std::nullopt;
      auto x = std::move(it->second);
      http_partials_.erase(it);
      std::string_view in = data;
      if (!x.req->trailers().decode_from(in)) x.req->trailers().items.clear();
      return serve_http(std::move(x), listener);
    }
  }
  log::warning("session {}: unknown HTTP event kind {}; dropped", s, kind);
  return std::nullopt;
}

task<void> worker_runtime::serve_http(http_exchange x, int listener) {
  (void)listener;
  auto s = x.req->session();
  if (x.status != 0) {
    switch (x.status) {
      case 404: answer(*port_, s, 404, "Not Found\n"); break;
      case 405: answer(*port_, s, 405, "Method Not Allowed\n", x.allow.c_str()); break;
      case 503: answer(*port_, s, 503, "Service Unavailable: too many requests in this worker\n"); break;
      default:
        log::info("session {}: {} {}: {}", s, x.req->method(), x.req->target(), x.reason);
        answer(*port_, s, x.status, "Bad Request\n", nullptr, true);
        break;
    }
    co_return;
  }
  ++http_in_flight_;
  auto mod = x.module;
  session_channel ch(*port_, s);
  http::response res(ch);
  std::exception_ptr error;
  try {
    co_await modules_[static_cast<std::size_t>(mod)]->on_request(*contexts_[static_cast<std::size_t>(mod)], *x.req,
                                                                  res);
  } catch (...) {
    error = std::current_exception();
  }
  --http_in_flight_;
  if (error || !res.ended()) {
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
    log::error("module {} failed in on_request for {} {} (session {}): {}",
               modules_[static_cast<std::size_t>(mod)]->instance_name(), x.req->method(), x.req->path(), s, what);
    if (!res.started())
      answer(*port_, s, 500, "Internal Server Error\n");
    else
      (void)port_->close(s, true);  // a half-sent body must not look complete
  }
}

void worker_runtime::http_closed(session_id s) { http_partials_.erase(s); }

}  // namespace swactor::detail
