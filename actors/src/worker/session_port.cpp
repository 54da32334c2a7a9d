#include "worker/session_port.hpp"

#include <asio/generic/datagram_protocol.hpp>

#include "net/conn_host.hpp"
#include "net_util.hpp"
#include "swactor/actors/errors.hpp"
#include "swactor/ipc/link.hpp"
#include "swactor/ipc/messages.hpp"
#include "worker/event_runner.hpp"

namespace swactor::detail {
namespace {

class local_port final : public session_port {
 public:
  local_port(net::conn_host& h, int worker, drain_waits& waits) : host_(h), worker_(worker), waits_(waits) {}
  std::error_code send(session_id s, std::string_view data, std::uint8_t kind) override {
    return host_.send(s.value(), data, kind);
  }
  std::error_code send_object(session_id s, const protocols::reply_object& r, std::uint8_t kind) override {
    auto* c = host_.find(s.value());
    return c ? c->send_object(r, kind) : make_error_code(server_errc::session_not_found);
  }
  task<std::error_code> drained(session_id s, duration timeout) override {
    auto* c = host_.find(s.value());
    if (!c || c->closed()) co_return make_error_code(server_errc::session_not_found);
    // Replies a handler sent inline, from inside the connection's decode(), wait in the
    // loop's deferred set until decode() returns: they are queued output too (a streaming
    // handler started inline would otherwise never wait and run into output_buffer_full).
    if (c->queued_bytes() + host_.deferred_replies().data.size() <= c->output_limit() / 2)
      co_return std::error_code();
    c->watch_drain();  // the worker's sink wakes us (on_drained / on_closed)
    co_return co_await waits_.wait(s, timeout);
  }
  std::error_code upgraded(session_id s, int module, std::string_view) override {
    return host_.set_websocket(s.value(), module);
  }
  std::error_code group(session_id s, std::string_view name, bool join) override {
    return join ? host_.join(s.value(), name) : host_.leave(s.value(), name);
  }
  std::error_code broadcast(std::string_view name, std::string_view data, std::uint8_t kind) override {
    (void)host_.broadcast(name, data, kind);
    return {};
  }
  bool reaches_connections() const override { return true; }
  std::error_code close(session_id s, bool reset) override { return host_.close(s.value(), reset); }
  std::error_code bind(session_id s, user_id uid) override { return host_.bind(s.value(), uid.value()); }
  void pause_reading(session_id s) override {
    if (auto* c = host_.find(s.value())) c->pause();
  }
  void resume_reading(session_id s) override {
    if (auto* c = host_.find(s.value())) c->resume();
  }
  std::error_code sendto(const std::string& address, std::string_view data, int listener) override {
    return host_.sendto(address, data, listener);
  }
  std::string_view remote_of(session_id s) override {
    auto* c = host_.find(s.value());
    return c ? std::string_view(c->remote) : std::string_view();
  }
  bool is_open(session_id s) override {
    auto* c = host_.find(s.value());
    return c && !c->closed();
  }
  result<session_info> info(session_id s) override {
    auto* c = host_.find(s.value());
    if (!c) return make_error_code(server_errc::session_not_found);
    session_info i;
    i.id = s;
    i.remote = c->remote;
    i.local = local_address(c->native_handle());
    i.listener = c->listener();
    i.connect_time_ms = c->connect_ms;
    i.last_receive_ms = c->last_receive_ms();
    i.worker = worker_;
    i.reactor = -1;
    i.uid = user_id(c->uid);
    if (const auto* t = c->tls()) i.tls = std::make_shared<const tls_info>(*t);
    i.protocol = c->codec().name();
    return i;
  }

 private:
  net::conn_host& host_;
  int worker_;
  drain_waits& waits_;
};

class remote_port final : public session_port {
 public:
  remote_port(const app_config& app, int worker, std::vector<std::unique_ptr<ipc::link>>& reactors,
              event_runner& runner, const std::atomic<std::uint64_t>& next_session, drain_waits& waits)
      : app_(app), worker_(worker), reactors_(reactors), runner_(runner), next_session_(next_session), waits_(waits) {}

  task<std::error_code> drained(session_id s, duration timeout) override {
    // The queue is in the reactor: it answers conn_watch with conn_writable once the
    // connection's output is below half its limit (or the connection is gone).
    auto* l = reactor_of(s);
    if (!l) co_return make_error_code(server_errc::not_supported);
    if (auto ec = check(s)) co_return ec;
    // A link full of this worker's replies (a large response written fast) is waited out:
    // the watch goes behind them.
    if (auto ec = co_await l->send_wait(ipc::encode(ipc::conn_watch{s.value(), static_cast<std::uint32_t>(worker_)}),
                                        timeout))
      co_return ec;
    auto ec = co_await waits_.wait(s, timeout);
    co_return ec ? ec : check(s);  // a close wakes the writer too
  }
  std::error_code send(session_id s, std::string_view data, std::uint8_t kind) override {
    if (auto ec = check(s)) return ec;
    return send_any(s, data, kind);
  }
  std::error_code send_any(session_id s, std::string_view data, std::uint8_t kind) override {
    auto* l = reactor_of(s);
    if (!l) return server_errc::not_supported;
    if (!s || s.value() >= next_session_.load(std::memory_order_relaxed)) return server_errc::session_not_found;
    // Small replies go into the link's buffer as they are; others become a message there.
    return l->try_send_pieces(ipc::pieces_of_conn_send(s.value(), static_cast<std::uint32_t>(worker_), kind, data));
  }
  std::error_code upgraded(session_id s, int module, std::string_view target) override {
    auto* l = reactor_of(s);
    if (!l) return server_errc::not_supported;
    runner_.set_protocol(s, "websocket");
    return l->send(ipc::encode(ipc::conn_upgrade{s.value(), static_cast<std::uint32_t>(worker_),
                                                 static_cast<std::uint32_t>(module), std::string(target)}));
  }
  std::error_code group(session_id s, std::string_view name, bool join) override {
    // The reactor holds the membership; it ignores a session that is gone by then.
    auto* l = reactor_of(s);
    if (!l) return server_errc::not_supported;
    if (!s || s.value() >= next_session_.load(std::memory_order_relaxed) || runner_.closing(s))
      return server_errc::session_not_found;
    return l->send(ipc::encode(ipc::group_op{s.value(), static_cast<std::uint32_t>(worker_), join, std::string(name)}));
  }
  std::error_code broadcast(std::string_view name, std::string_view data, std::uint8_t kind) override {
    if (reactors_.empty()) return server_errc::not_supported;
    std::error_code first;
    for (auto& l : reactors_) {
      ipc::group_send m;
      m.worker = static_cast<std::uint32_t>(worker_);
      m.kind = kind;
      m.group.assign(name);
      m.data.reserve(data.size() + name.size() + ipc::trailer_reserve);
      m.data.assign(data);
      if (auto ec = l->send(ipc::encode(std::move(m))); ec && !first) first = ec;
    }
    return first;
  }
  bool reaches_connections() const override { return !reactors_.empty(); }
  std::error_code close(session_id s, bool reset) override {
    auto* l = reactor_of(s);
    if (!l) return server_errc::not_supported;
    if (auto ec = check(s)) return ec;
    return l->send(ipc::encode(ipc::conn_close{s.value(), reset}));
  }
  std::error_code bind(session_id s, user_id uid) override {
    auto* l = reactor_of(s);
    if (!l) return server_errc::not_supported;
    if (auto ec = check(s)) return ec;
    runner_.bind(s, uid);  // the stand-in info() reports here
    return l->send(ipc::encode(ipc::conn_bind{s.value(), uid.value()}));
  }
  void pause_reading(session_id s) override {
    if (auto* l = reactor_of(s)) (void)l->send(ipc::encode(ipc::conn_pause{s.value(), static_cast<std::uint32_t>(worker_)}));
  }
  void resume_reading(session_id s) override {
    if (auto* l = reactor_of(s)) (void)l->send(ipc::encode(ipc::conn_resume{s.value(), static_cast<std::uint32_t>(worker_)}));
  }
  std::error_code sendto(const std::string& address, std::string_view data, int listener) override {
    asio::generic::datagram_protocol::endpoint ep;
    if (!parse_address(address, ep)) return server_errc::bad_address;
    // Datagram listeners live in reactor 0.
    if (reactors_.empty()) return server_errc::not_supported;
    bool any = false;
    for (const auto& l : app_.listen) any = any || !l.endpoint.stream();
    if (!any) return server_errc::not_supported;
    ipc::datagram_out m;
    m.listener = listener;
    m.to = address;
    m.data.assign(data);
    return reactors_[0]->send(ipc::encode(std::move(m)));
  }
  std::string_view remote_of(session_id s) override { return runner_.remote_of(s); }
  bool is_open(session_id s) override { return runner_.contains(s) && !runner_.closing(s); }
  result<session_info> info(session_id s) override {
    auto i = runner_.info(s);
    if (!i) return make_error_code(server_errc::session_not_found);
    return std::move(*i);
  }

 private:
  ipc::link* reactor_of(session_id s) {
    if (reactors_.empty()) return nullptr;
    return reactors_[s.value() % reactors_.size()].get();
  }
  // A session id never handed out, one whose close already arrived here, or (when every
  // event of a session comes to this worker) one that closed here, is an error now;
  // otherwise the reactor drops what it cannot use.
  std::error_code check(session_id s) const {
    if (!s || s.value() >= next_session_.load(std::memory_order_relaxed)) return server_errc::session_not_found;
    // With connection or ip dispatch every session of this worker has its stand-in here.
    auto d = app_.server.dispatch;
    if (!runner_.may_send(s, d == dispatch_mode::connection || d == dispatch_mode::ip))
      return server_errc::session_not_found;
    return {};
  }

  const app_config& app_;
  int worker_;
  std::vector<std::unique_ptr<ipc::link>>& reactors_;
  event_runner& runner_;
  const std::atomic<std::uint64_t>& next_session_;
  drain_waits& waits_;
};

}  // namespace

task<std::error_code> drain_waits::wait(session_id s, duration timeout) {
  auto& q = queues_[s];
  if (!q) q = std::make_unique<wait_queue>();
  auto* raw = q.get();
  auto ec = co_await raw->wait(nullptr, timeout, "output drain", std::source_location::current());
  auto it = queues_.find(s);
  if (it != queues_.end() && it->second->empty()) queues_.erase(it);
  co_return ec;
}

void drain_waits::wake(session_id s, std::error_code ec) {
  auto it = queues_.find(s);
  if (it != queues_.end()) it->second->complete_all(ec);
}

void drain_waits::wake_all(std::error_code ec) {
  // Each waiter erases its own emptied queue when it resumes: not while we iterate (it
  // resumes later, from the loop).
  for (auto& [s, q] : queues_) q->complete_all(ec);
}

void drain_waits::wake_one(session_id s) {
  auto it = queues_.find(s);
  if (it != queues_.end()) (void)it->second->complete_front({});
}

std::unique_ptr<session_port> make_local_port(net::conn_host& host, int worker_id, drain_waits& waits) {
  return std::make_unique<local_port>(host, worker_id, waits);
}

std::unique_ptr<session_port> make_remote_port(const app_config& app, int worker_id,
                                               std::vector<std::unique_ptr<ipc::link>>& reactors,
                                               event_runner& runner, const std::atomic<std::uint64_t>& next_session,
                                               drain_waits& waits) {
  return std::make_unique<remote_port>(app, worker_id, reactors, runner, next_session, waits);
}

}  // namespace swactor::detail
