#include "reactor.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <deque>
#include <future>
#include <unordered_map>

#include <asio/generic/datagram_protocol.hpp>
#include <asio/generic/stream_protocol.hpp>
#include <asio/write.hpp>

#include "net_util.hpp"
#include "stream_conn.hpp"
#include "swactor/actors/errors.hpp"
#include "swactor/actors/listen_url.hpp"
#include "swactor/core/log.hpp"
#include "swactor/ipc/link.hpp"
#include "swactor/protocols/framing.hpp"

namespace swactor::detail {
namespace {

using namespace std::chrono_literals;
using stream_proto = asio::generic::stream_protocol;
using dgram_proto = asio::generic::datagram_protocol;
constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A connection held by this reactor, plus what dispatch needs.
struct conn final : stream_conn {
  std::uint64_t ip_hash = 0;
  int connect_worker = -1;  // where on_connect went: close goes there too (round_robin, idle)
  using stream_conn::stream_conn;
};

struct worker_link {
  std::shared_ptr<ipc::link> link;          // current process of this worker id
  std::deque<ipc::message> backlog;         // waiting for a live link
};

}  // namespace

struct reactor_thread::impl {
  int id;
  app_config app;
  server_state* state;
  loop lp{{.on_stall = stall_action::log}};
  std::vector<worker_link> workers;
  std::unordered_map<std::uint64_t, std::shared_ptr<conn>> conns;
  std::vector<std::unique_ptr<dgram_proto::socket>> dgrams;  // by listener index
  std::vector<protocols::framing_options> framing;
  std::uint64_t rr = 0;
  bool stopping = false;
  std::size_t max_backlog = 100000;
  // The reactor waits for connections handed over by the acceptor: nothing of its own is
  // pending in between, so keep the loop running until stop().
  asio::executor_work_guard<asio::io_context::executor_type> keep_alive{lp.context().get_executor()};

  impl(int i, const app_config& a, server_state* s) : id(i), app(a), state(s) {
    workers.resize(static_cast<std::size_t>(app.server.workers));
    dgrams.resize(app.listen.size());
    for (auto& l : app.listen) framing.push_back(to_framing_options(l.framing));
  }

  // -- dispatch ------------------------------------------------------------------------

  bool alive(int w) const {
    auto& l = workers[static_cast<std::size_t>(w)].link;
    return l && l->is_open();
  }

  int pick(const conn* c, std::uint64_t session) {
    int n = app.server.workers;
    const auto& mode = app.server.dispatch_mode;
    if (mode == "connection") return static_cast<int>(session % static_cast<std::uint64_t>(n));
    if (mode == "ip" && c) return static_cast<int>(c->ip_hash % static_cast<std::uint64_t>(n));
    if (mode == "uid" && c) {
      return static_cast<int>((c->uid ? c->uid : session) % static_cast<std::uint64_t>(n));
    }
    if (mode == "idle") {
      // Fewest handlers running (from the shared counters), round-robin among equals.
      int best = -1;
      std::uint32_t best_load = 0;
      for (int k = 0; k < n; ++k) {
        int w = static_cast<int>((rr + static_cast<std::uint64_t>(k)) % static_cast<std::uint64_t>(n));
        if (!alive(w)) continue;
        auto load = state->procs[w].in_flight.load(std::memory_order_relaxed);
        if (best < 0 || load < best_load) {
          best = w;
          best_load = load;
        }
      }
      ++rr;
      return best >= 0 ? best : static_cast<int>(rr % static_cast<std::uint64_t>(n));
    }
    // round_robin (and ip/uid without a connection): next live worker.
    for (int k = 0; k < n; ++k) {
      int w = static_cast<int>(rr++ % static_cast<std::uint64_t>(n));
      if (alive(w)) return w;
    }
    return static_cast<int>(rr % static_cast<std::uint64_t>(n));
  }

  void deliver(int w, ipc::message m) {
    auto& wl = workers[static_cast<std::size_t>(w)];
    if (wl.link && wl.link->is_open() && wl.backlog.empty()) {
      if (!wl.link->send(std::move(m))) return;
      // queue_full or closed: keep it for later rather than lose it
    }
    if (wl.backlog.size() >= max_backlog) {
      log::warning("reactor {}: backlog for worker {} full ({} messages); dropping a {} message", id, w,
                   max_backlog, ipc::type_name(m.type));
      return;
    }
    wl.backlog.push_back(std::move(m));
  }

  void flush_backlog(int w) {
    auto& wl = workers[static_cast<std::size_t>(w)];
    while (!wl.backlog.empty() && wl.link && wl.link->is_open()) {
      if (wl.link->send(wl.backlog.front())) break;
      wl.backlog.pop_front();
    }
  }

  // Connection events carry the listener index in message_id: with round_robin or idle
  // dispatch, the worker that gets a receive may never have seen the connect.
  ipc::message make(ipc::message_type t, std::uint64_t session, std::string payload, int listener = 0) {
    ipc::message m;
    m.type = t;
    m.session_id = session;
    m.message_id = static_cast<std::uint64_t>(listener);
    m.reactor_id = static_cast<std::uint32_t>(id);
    m.payload = std::move(payload);
    return m;
  }

  // -- connections --------------------------------------------------------------------

  void on_new_conn(int fd, int listener, std::uint64_t session) {
    int family = socket_family(fd);
    stream_proto::socket sock(lp.context());
    std::error_code ec;
    sock.assign(stream_proto(family, SOCK_STREAM), fd, ec);
    if (ec) {
      ::close(fd);
      return;
    }
    auto c = std::make_shared<conn>(std::move(sock), framing[static_cast<std::size_t>(listener)],
                                    app.listen[static_cast<std::size_t>(listener)].output_buffer_size);
    c->id = session;
    c->listener = listener;
    auto url = parse_listen_url(app.listen[static_cast<std::size_t>(listener)].url);
    std::error_code rec;
    if (url.kind == listen_kind::tcp) {
      c->remote = format_endpoint(c->sock.remote_endpoint(rec));
      auto colon = c->remote.rfind(':');
      c->ip_hash = std::hash<std::string>{}(c->remote.substr(0, colon));
    } else {
      c->remote = url.path;
    }
    conns[session] = c;
    spawn(lp.context(), [this, c]() -> task<void> { co_await serve(c); }, "reactor session");
  }

  // Payload of a connect message: "listener\nremote\nconnect_ms".
  task<void> serve(std::shared_ptr<conn> c) {
    const auto& lc = app.listen[static_cast<std::size_t>(c->listener)];
    c->connect_worker = pick(c.get(), c->id);
    deliver(c->connect_worker, make(ipc::message_type::connect, c->id,
                                    std::to_string(c->listener) + "\n" + c->remote + "\n" + std::to_string(now_ms()),
                                    c->listener));
    std::vector<char> buf(64 * 1024);
    while (!c->closed) {
      auto [ec, n] = co_await c->sock.async_read_some(asio::buffer(buf), use_tuple);
      if (ec) {
        if (ec != asio::error::eof && ec != asio::error::operation_aborted && ec != asio::error::bad_descriptor)
          c->aborted = true;
        break;
      }
      c->last_activity = std::chrono::steady_clock::now();
      if (c->framer.feed(std::string_view(buf.data(), n))) {
        log::warning("closing session {} from {} on {}: {}", c->id, c->remote, lc.url, c->framer.reason());
        c->aborted = true;
        break;
      }
      while (auto m = c->framer.next())
        deliver(pick(c.get(), c->id), make(ipc::message_type::receive, c->id, std::string(*m), c->listener));
      if (c->framer.failed()) {  // a bad header found by next(): close now, not at the next read
        log::warning("closing session {} from {} on {}: {}", c->id, c->remote, lc.url, c->framer.reason());
        c->aborted = true;
        break;
      }
    }
    finish(*c);
  }

  void finish(conn& c) {
    if (!conns.erase(c.id)) return;
    c.closed = true;
    c.close_now();
    c.out.clear();
    state->listeners[c.listener].connections.fetch_sub(1);
    state->closed.fetch_add(1);
    if (c.aborted) state->aborted.fetch_add(1);
    int w = app.server.dispatch_mode == "round_robin" || app.server.dispatch_mode == "idle" ? c.connect_worker
                                                                                              : pick(&c, c.id);
    if (w < 0) w = c.connect_worker;
    deliver(w, make(ipc::message_type::close, c.id, {}, c.listener));
  }

  void queue_send(std::uint64_t session, std::string data) {
    auto it = conns.find(session);
    if (it == conns.end()) return;  // closed meanwhile: the worker learns it from on_close
    auto size = data.size();
    if (it->second->queue(data) == server_errc::output_buffer_full)
      log::warning("session {}: output buffer full ({} bytes queued, limit {}); reply of {} bytes dropped", session,
                   it->second->out_bytes, it->second->out_limit, size);
  }

  void close_conn(std::uint64_t session, bool reset) {
    if (auto it = conns.find(session); it != conns.end()) it->second->close(reset);
  }

  // -- worker links ----------------------------------------------------------------------

  void attach(int w, int fd) {
    ipc::link_options lo;
    lo.name = "reactor" + std::to_string(id) + "->worker#" + std::to_string(w);
    auto l = ipc::link::from_fd(lp.context().get_executor(), fd, lo);
    if (!l) {
      log::error("reactor {}: bad link for worker {}: {}", id, w, l.error().message());
      return;
    }
    auto shared = std::make_shared<ipc::link>(std::move(*l));
    // The previous process of this id keeps its own link until it exits, so replies to
    // what it is still working on reach their clients.
    workers[static_cast<std::size_t>(w)].link = shared;
    spawn(lp.context(), [this, shared, w]() -> task<void> { co_await read_worker(shared, w); }, "reactor link");
    flush_backlog(w);
  }

  task<void> read_worker(std::shared_ptr<ipc::link> l, int w) {
    for (;;) {
      auto r = co_await l->receive();
      if (!r) co_return;
      auto& m = *r;
      switch (m.type) {
        case ipc::message_type::send: queue_send(m.session_id, std::move(m.payload)); break;
        case ipc::message_type::close: close_conn(m.session_id, m.payload == "reset"); break;
        case ipc::message_type::control:
          if (m.payload == "drain") {
            // The worker is stopping: nothing more goes to it (its id's messages wait in the
            // backlog for the replacement, or go to other workers). Everything sent before
            // "drained" is already in the link, so the worker handles it before leaving.
            if (workers[static_cast<std::size_t>(w)].link == l) workers[static_cast<std::size_t>(w)].link.reset();
            ipc::message ack;
            ack.type = ipc::message_type::control;
            ack.reactor_id = static_cast<std::uint32_t>(id);
            ack.payload = "drained";
            (void)l->send(std::move(ack));
          } else if (m.payload.rfind("bind:", 0) == 0) {
            if (auto it = conns.find(m.session_id); it != conns.end())
              it->second->uid = std::stoull(m.payload.substr(5));
          }
          break;
        case ipc::message_type::packet: send_datagram(m); break;
        default: break;
      }
    }
  }

  // -- datagrams (reactor 0 serves every datagram listener) -------------------------------

  void serve_dgram(int listener, int fd) {
    auto s = std::make_unique<dgram_proto::socket>(lp.context());
    std::error_code ec;
    s->assign(dgram_proto(socket_family(fd), SOCK_DGRAM), fd, ec);
    if (ec) return;
    dgrams[static_cast<std::size_t>(listener)] = std::move(s);
    spawn(lp.context(), [this, listener]() -> task<void> { co_await dgram_loop(listener); }, "reactor dgram");
  }

  // Packet payload: "address\n" + data; session_id carries the listener index.
  task<void> dgram_loop(int listener) {
    auto& sock = *dgrams[static_cast<std::size_t>(listener)];
    const auto& lc = app.listen[static_cast<std::size_t>(listener)];
    std::vector<char> buf(lc.max_packet_size + 1);
    for (;;) {
      dgram_proto::endpoint from;
      auto [ec, n] = co_await sock.async_receive_from(asio::buffer(buf), from, use_tuple);
      if (ec) {
        if (stopping || ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) co_return;
        continue;
      }
      if (n > lc.max_packet_size) {
        log::warning("listener {}: dropped a datagram larger than max_packet_size", lc.url);
        continue;
      }
      auto m = make(ipc::message_type::packet, static_cast<std::uint64_t>(listener),
                    format_endpoint(from) + "\n" + std::string(buf.data(), n));
      deliver(pick(nullptr, 0), std::move(m));
    }
  }

  void send_datagram(const ipc::message& m) {
    auto nl = m.payload.find('\n');
    if (nl == std::string::npos) return;
    dgram_proto::endpoint ep;
    if (!parse_address(m.payload.substr(0, nl), ep)) return;
    auto idx = static_cast<std::size_t>(m.session_id);
    dgram_proto::socket* s = idx < dgrams.size() ? dgrams[idx].get() : nullptr;
    if (!s) return;
    std::error_code ec;
    s->send_to(asio::buffer(m.payload.data() + nl + 1, m.payload.size() - nl - 1), ep, 0, ec);
  }

  // -- heartbeat ------------------------------------------------------------------------

  task<void> heartbeat() {
    // The shortest check interval of any listener with a heartbeat (default idle / 2).
    duration every = duration::max();
    for (const auto& l : app.listen) {
      if (l.heartbeat_idle_time.count() <= 0) continue;
      duration d = l.heartbeat_check_interval.count() > 0 ? duration(l.heartbeat_check_interval)
                                                          : duration(l.heartbeat_idle_time / 2);
      every = std::min(every, std::max<duration>(d, 1ms));
    }
    if (every == duration::max()) co_return;  // no listener wants heartbeats
    while (!stopping) {
      co_await sleep(every);
      auto now = std::chrono::steady_clock::now();
      std::vector<std::uint64_t> idle;
      for (auto& [sid, c] : conns) {
        auto t = app.listen[static_cast<std::size_t>(c->listener)].heartbeat_idle_time;
        if (t.count() > 0 && now - c->last_activity >= t) idle.push_back(sid);
      }
      for (auto sid : idle) {
        log::info("closing idle session {}", sid);
        close_conn(sid, false);
      }
    }
  }

  void stop() {
    stopping = true;
    keep_alive.reset();
    std::vector<std::shared_ptr<conn>> all;
    for (auto& [sid, c] : conns) all.push_back(c);
    for (auto& c : all) close_conn(c->id, false);
    for (auto& d : dgrams) {
      std::error_code ignored;
      if (d) d->close(ignored);
    }
    spawn(lp.context(), [this]() -> task<void> {
      for (int i = 0; i < 100 && !conns.empty(); ++i) co_await sleep(10ms);
      for (auto& w : workers) {
        if (w.link) (void)co_await w.link->flush(500ms);
      }
      lp.stop();
    }, "reactor stop");
  }
};

reactor_thread::reactor_thread(int id, const app_config& app, server_state* state)
    : id_(id), impl_(std::make_unique<impl>(id, app, state)) {}

reactor_thread::~reactor_thread() { join(); }

reactor_actor reactor_thread::start() {
  std::promise<reactor_actor> ready;
  auto fut = ready.get_future();
  thread_ = std::thread([this, &ready] {
    log::debug("reactor {} running", id_);
    auto* im = impl_.get();
    auto a = im->lp.actors().spawn([im](reactor_actor::pointer) -> reactor_actor::behavior_type {
      return {
          [im](conn_atom, int fd, int listener, std::uint64_t session) { im->on_new_conn(fd, listener, session); },
          [im](attach_atom, int worker, int fd) { im->attach(worker, fd); },
          [im](dgram_atom, int listener, int fd) { im->serve_dgram(listener, fd); },
          [im](stop_atom) { im->stop(); },
      };
    });
    spawn(im->lp.context(), [im]() -> task<void> { co_await im->heartbeat(); }, "reactor heartbeat");
    ready.set_value(a);
    im->lp.run();
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    im->lp.context().restart();
    im->lp.context().poll();
  });
  return fut.get();
}

void reactor_thread::join() {
  if (thread_.joinable()) thread_.join();
}

}  // namespace swactor::detail
