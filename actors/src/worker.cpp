// A worker or task worker process (`swactor worker ...`, exec'd by the master).
//
// Base mode: the worker accepts on the listening sockets it inherited and owns its
// connections: a reader coroutine per connection frames the bytes and calls the module's
// handlers one message at a time (in order); a writer coroutine per connection flushes the
// bounded output queue with gathered writes. Datagram listeners have one receive loop.
// Everything that leaves the process (tasks, pipe messages, control) goes over the IPC link
// to the master.

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <deque>
#include <memory>
#include <random>
#include <sstream>
#include <unordered_map>

#include <asio/generic/datagram_protocol.hpp>
#include <asio/generic/stream_protocol.hpp>
#include <asio/signal_set.hpp>
#include <asio/write.hpp>
#include <nlohmann/json.hpp>

#include "atoms.hpp"
#include "net_util.hpp"
#include "stream_conn.hpp"
#include "swactor/actors/app_config.hpp"
#include "swactor/actors/context.hpp"
#include "swactor/actors/listen_url.hpp"
#include "swactor/actors/server.hpp"
#include "swactor/actors/server_state.hpp"
#include "swactor/core/actors.hpp"
#include "swactor/core/channel.hpp"
#include "swactor/core/log.hpp"
#include "swactor/core/wait_group.hpp"
#include "swactor/ipc/link.hpp"
#include "swactor/ipc/shm.hpp"
#include "swactor/ipc/table.hpp"
#include "swactor/protocols/framing.hpp"

namespace swactor {
namespace {

using namespace std::chrono_literals;
using stream_proto = asio::generic::stream_protocol;
using dgram_proto = asio::generic::datagram_protocol;
constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

// Task envelope flag: the sender wants on_finish (task()), not a waiting coroutine.
constexpr std::uint16_t kTaskWantsFinish = 0x0100;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class worker_runtime;

// -- sessions -------------------------------------------------------------------------

// Base mode: a connection of this worker, plus what info() reports.
struct session final : detail::stream_conn {
  std::int64_t connect_ms = 0;
  std::int64_t last_receive_ms = 0;
  using stream_conn::stream_conn;
};

struct listener_rt {
  int index = 0;
  listen_config cfg;
  listen_url url;
  protocols::framing_options framing;
  int module = -1;
  std::unique_ptr<asio::basic_socket_acceptor<stream_proto>> acceptor;
  std::unique_ptr<dgram_proto::socket> dgram;
};

// -- the module context -----------------------------------------------------------------

class server_context final : public context {
 public:
  server_context(worker_runtime& rt, int module, swactor::loop& lp, std::string role, int id)
      : context(lp, std::move(role), id), rt_(rt), module_(module) {}

  std::error_code send(session_id s, std::string_view data) override;
  std::error_code sendto(const std::string& address, std::string_view data, int listener) override;
  std::error_code close(session_id s, bool reset) override;
  result<session_info> info(session_id s) override;
  std::error_code bind(session_id s, std::uint64_t uid) override;
  result<task_id> task(std::string payload, int dst) override;
  swactor::task<result<std::string>> task_wait(std::string payload, duration timeout, int dst) override;
  swactor::task<std::vector<result<std::string>>> task_wait_all(std::vector<std::string> payloads,
                                                               duration timeout) override;
  std::error_code send_message(int worker_id, std::string payload) override;
  std::string stats() override;
  ipc::table* table(std::string_view name) override;
  int user_process_id(int index) const override;

 private:
  worker_runtime& rt_;
  int module_;
};

// -- the runtime ----------------------------------------------------------------------

class worker_runtime {
 public:
  worker_runtime(swactor::loop& lp, const worker_args& args, app_config app, server_state* state,
                 ipc::link link, const module_registry& reg)
      : lp_(lp), args_(args), app_(std::move(app)), state_(state), link_(std::move(link)) {
    is_task_ = args.role == "task";
    is_user_ = args.role == "user";
    slot_ = &state_->procs[args.id];
    for (std::size_t i = 0; i < app_.modules.size(); ++i) {
      const auto& mc = app_.modules[i];
      config::diagnostics d;
      auto m = reg.find(mc.type)->make(mc.options, d, "modules." + mc.instance);
      m->set_instance_name(mc.instance);
      modules_.push_back(std::move(m));
      contexts_.push_back(std::make_unique<server_context>(*this, static_cast<int>(i), lp_,
                                                           is_task_ ? "task" : "worker", args.id));
    }
    if (app_.server.max_request > 0 && !is_task_) {
      std::mt19937_64 rng(std::random_device{}() ^ static_cast<unsigned>(getpid()));
      std::int64_t grace = app_.server.max_request_grace;
      max_request_ = app_.server.max_request +
                     (grace > 0 ? static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(grace + 1)) : 0);
    }
  }

  task<void> start();
  void begin_stop(std::string why);
  int exit_code() const noexcept { return exit_code_; }
  std::string stats_json();

  // -- context operations -----------------------------------------------------------
  std::error_code send(session_id id, std::string_view data);
  std::error_code sendto(const std::string& address, std::string_view data, int listener);
  std::error_code close(session_id id, bool reset);
  result<session_info> info(session_id id);
  std::error_code bind(session_id id, std::uint64_t uid);
  result<task_id> start_task(int module, std::string payload, int dst, bool wants_finish,
                             std::shared_ptr<channel<result<std::string>>> waiter);
  std::error_code send_message(int module, int dst, std::string payload);
  void forget_task(task_id id) { pending_tasks_.erase(id); }
  ipc::table* find_table(std::string_view name) {
    for (auto& [n, t] : tables_)
      if (n == name) return &t;
    return nullptr;
  }
  int user_process_id(int module, int index) const {
    for (std::size_t k = 0; k < app_.user_procs.size(); ++k)
      if (app_.user_procs[k] == std::pair<int, int>{module, index})
        return app_.server.workers + app_.server.task_workers + static_cast<int>(k);
    return -1;
  }
  void attach_tables(const std::vector<int>& fds) {
    for (std::size_t i = 0; i < fds.size() && i < app_.tables.size(); ++i) {
      auto t = ipc::table::attach(fds[i]);
      if (!t) {
        log::error("cannot attach table {}: {}", app_.tables[i].name, t.error().message());
        continue;
      }
      tables_.emplace_back(app_.tables[i].name, std::move(*t));
    }
  }

 private:
  task<void> invoke(int module, const char* event, session_id sid, swactor::task<void> t);
  task<void> accept_loop(listener_rt& l);
  task<void> serve(std::shared_ptr<session> s, listener_rt& l);
  task<void> datagram_loop(listener_rt& l);
  task<void> ipc_loop();
  task<void> heartbeat_loop(listener_rt& l);
  task<void> run_task(ipc::message m);
  task<void> stop_sequence(std::string why);
  void count_message();  // stats: a message arrived
  void note_message();   // max_request: a message was handled
  // During a reload the old and the new process share the slot of their id: only the one
  // the master registered (the newest) writes its state.
  bool owns_slot() const { return slot_->pid.load(std::memory_order_relaxed) == self_pid_; }
  void set_state(proc_state st) {
    if (owns_slot()) slot_->state.store(static_cast<std::uint32_t>(st));
  }
  pid_t self_pid_ = ::getpid();
  void finish_close(session& s);

  swactor::loop& lp_;
  worker_args args_;
  app_config app_;
  server_state* state_;
  proc_slot* slot_;
  ipc::link link_;
  bool is_task_ = false;
  bool is_user_ = false;
  coro_handle user_coro_;
  std::vector<std::pair<std::string, ipc::table>> tables_;
  std::vector<std::unique_ptr<module_base>> modules_;
  std::vector<std::unique_ptr<server_context>> contexts_;
  std::vector<std::unique_ptr<listener_rt>> listeners_;
  std::unordered_map<session_id, std::shared_ptr<session>> sessions_;
  // Process mode: connections live in the master's reactor threads; we see their events
  // over one link per reactor, and keep what info() needs plus an ordered event queue.
  struct remote_session {
    int listener = 0;
    std::string remote;
    std::int64_t connect_ms = 0;
    std::int64_t last_receive_ms = 0;
    std::uint64_t uid = 0;
    std::deque<ipc::message> events;
    bool running = false;
  };
  std::vector<std::unique_ptr<ipc::link>> reactors_;
  wait_group drained_;  // process mode stop: one "drained" per reactor
  std::unordered_map<session_id, remote_session> remote_;
  bool process_mode() const { return app_.server.mode == "process"; }
  ipc::link* reactor_of(session_id id) {
    if (reactors_.empty()) return nullptr;
    return reactors_[id % reactors_.size()].get();
  }
  task<void> reactor_loop(ipc::link& l);
  task<void> drain_session(session_id id);
  task<void> handle_packet(ipc::message m);
  struct pending_task {
    int module;
    bool wants_finish;
    std::shared_ptr<channel<result<std::string>>> waiter;
  };
  std::unordered_map<task_id, pending_task> pending_tasks_;
  task_id next_task_ = 0;
  wait_group in_flight_;
  std::int64_t max_request_ = 0;
  std::int64_t handled_ = 0;
  bool stopping_ = false;
  int exit_code_ = 0;
};

// -- context forwarding ---------------------------------------------------------------

std::error_code server_context::send(session_id s, std::string_view data) { return rt_.send(s, data); }
std::error_code server_context::sendto(const std::string& a, std::string_view d, int l) {
  return rt_.sendto(a, d, l);
}
std::error_code server_context::close(session_id s, bool reset) { return rt_.close(s, reset); }
result<session_info> server_context::info(session_id s) { return rt_.info(s); }
std::error_code server_context::bind(session_id s, std::uint64_t uid) { return rt_.bind(s, uid); }
result<task_id> server_context::task(std::string payload, int dst) {
  return rt_.start_task(module_, std::move(payload), dst, true, nullptr);
}
swactor::task<result<std::string>> server_context::task_wait(std::string payload, duration timeout,
                                                             int dst) {
  auto ch = std::make_shared<channel<result<std::string>>>(1);
  auto id = rt_.start_task(module_, std::move(payload), dst, false, ch);
  if (!id) co_return id.error();
  auto r = co_await ch->pop(timeout);
  if (!r) {
    rt_.forget_task(*id);  // a late result is dropped, never handed to a later call
    co_return r.error();
  }
  co_return std::move(*r);
}
swactor::task<std::vector<result<std::string>>> server_context::task_wait_all(
    std::vector<std::string> payloads, duration timeout) {
  std::vector<std::pair<result<task_id>, std::shared_ptr<channel<result<std::string>>>>> started;
  for (auto& p : payloads) {
    auto ch = std::make_shared<channel<result<std::string>>>(1);
    auto id = rt_.start_task(module_, std::move(p), -1, false, ch);
    started.emplace_back(std::move(id), std::move(ch));
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<result<std::string>> out;
  for (auto& [id, ch] : started) {
    if (!id) {
      out.emplace_back(id.error());
      continue;
    }
    // One deadline for the whole batch: later tasks get what is left of it.
    auto left = timeout == no_timeout
                    ? no_timeout
                    : std::max<duration>(deadline - std::chrono::steady_clock::now(), 0ms);
    if (left == 0ms) {
      if (auto v = ch->try_pop()) {
        out.push_back(std::move(*v));
      } else {
        rt_.forget_task(*id);
        out.emplace_back(errc::timeout);
      }
      continue;
    }
    auto got = co_await ch->pop(left);
    if (got) {
      out.push_back(std::move(*got));
    } else {
      rt_.forget_task(*id);
      out.emplace_back(got.error());
    }
  }
  co_return out;
}
std::error_code server_context::send_message(int worker_id, std::string payload) {
  return rt_.send_message(module_, worker_id, std::move(payload));
}
std::string server_context::stats() { return rt_.stats_json(); }
ipc::table* server_context::table(std::string_view name) { return rt_.find_table(name); }
int server_context::user_process_id(int index) const { return rt_.user_process_id(module_, index); }

// -- runtime: start and stop ------------------------------------------------------------

task<void> worker_runtime::start() {
  slot_->pid.store(getpid());
  set_state(proc_state::starting);
  slot_->started_ms.store(now_ms());
  spawn(lp_.context(), [this]() -> task<void> { co_await ipc_loop(); }, "ipc reader");
  if (is_user_) {
    auto k = static_cast<std::size_t>(args_.id - app_.server.workers - app_.server.task_workers);
    if (k >= app_.user_procs.size()) {
      log::error("no user process #{}", k);
      begin_stop("unknown user process");
      co_return;
    }
    auto [mod, index] = app_.user_procs[k];
    set_state(proc_state::busy);
    log::info("user process of module {} (#{}) started (pid {})", modules_[mod]->instance_name(), index, getpid());
    ipc::message ready;
    ready.type = ipc::message_type::control;
    ready.payload = "ready";
    link_.send(std::move(ready));
    // Its own coroutine, so that a stop can cancel it (a user process usually loops forever).
    int m = mod, i = index;
    user_coro_ = spawn(lp_.context(), [this, m, i]() -> task<void> {
      co_await invoke(m, "on_user_process", 0, modules_[m]->on_user_process(*contexts_[m], i));
      if (!stopping_) begin_stop("on_user_process returned");
    }, "user process");
    co_return;
  }
  for (std::size_t i = 0; i < modules_.size(); ++i)
    co_await invoke(static_cast<int>(i), "on_worker_start", 0,
                    modules_[i]->on_worker_start(*contexts_[i]));
  if (!is_task_ && process_mode()) {
    for (std::size_t r = 0; r < args_.reactor_fds.size(); ++r) {
      ipc::link_options lo;
      lo.name = "worker#" + std::to_string(args_.id) + "<-reactor" + std::to_string(r);
      auto l = ipc::link::from_fd(lp_.context().get_executor(), args_.reactor_fds[r], lo);
      if (!l) {
        log::error("bad reactor link {}: {}", r, l.error().message());
        continue;
      }
      reactors_.push_back(std::make_unique<ipc::link>(std::move(*l)));
    }
    for (auto& l : reactors_) {
      auto* lp = l.get();
      spawn(lp_.context(), [this, lp]() -> task<void> { co_await reactor_loop(*lp); }, "reactor link");
    }
  }
  if (!is_task_ && !process_mode()) {
    for (std::size_t i = 0; i < app_.listen.size(); ++i) {
      auto l = std::make_unique<listener_rt>();
      l->index = static_cast<int>(i);
      l->cfg = app_.listen[i];
      l->url = parse_listen_url(l->cfg.url);
      l->framing = to_framing_options(l->cfg.framing);
      l->module = app_.module_index(l->cfg.module);
      int fd = i < args_.listen_fds.size() ? args_.listen_fds[i] : -1;
      if (fd < 0) continue;
      int family = detail::socket_family(fd);
      std::error_code ec;
      if (l->url.stream()) {
        l->acceptor = std::make_unique<asio::basic_socket_acceptor<stream_proto>>(lp_.context());
        l->acceptor->assign(stream_proto(family, SOCK_STREAM), fd, ec);
      } else {
        l->dgram = std::make_unique<dgram_proto::socket>(lp_.context());
        l->dgram->assign(dgram_proto(family, SOCK_DGRAM), fd, ec);
      }
      if (ec) {
        log::error("listener {}: cannot adopt inherited socket: {}", l->cfg.url, ec.message());
        continue;
      }
      listeners_.push_back(std::move(l));
    }
    for (auto& lp : listeners_) {
      auto* l = lp.get();
      if (l->acceptor) {
        spawn(lp_.context(), [this, l]() -> task<void> { co_await accept_loop(*l); }, "accept loop");
        if (l->cfg.heartbeat_idle_time.count() > 0)
          spawn(lp_.context(), [this, l]() -> task<void> { co_await heartbeat_loop(*l); }, "heartbeat");
      } else {
        spawn(lp_.context(), [this, l]() -> task<void> { co_await datagram_loop(*l); }, "datagram loop");
      }
    }
  }
  set_state(proc_state::idle);
  // Tell the manager we serve: a reload retires the old process only after this.
  ipc::message ready;
  ready.type = ipc::message_type::control;
  ready.src_worker = static_cast<std::uint32_t>(args_.id);
  ready.payload = "ready";
  link_.send(std::move(ready));
  log::info("{} #{} started (pid {}, {} listener(s), {} module(s))", is_task_ ? "task worker" : "worker",
            args_.id, getpid(), listeners_.size(), modules_.size());
}

void worker_runtime::begin_stop(std::string why) {
  if (stopping_) return;
  stopping_ = true;
  spawn(lp_.context(), [this, why]() -> task<void> { co_await stop_sequence(why); }, "stop");
}

task<void> worker_runtime::stop_sequence(std::string why) {
  log::info("stopping: {}", why);
  set_state(proc_state::stopping);
  auto deadline = std::chrono::steady_clock::now() + app_.server.max_wait_time;
  auto left = [&] {
    return std::max<duration>(deadline - std::chrono::steady_clock::now(), 1ms);
  };
  // No new work: stop accepting and receiving datagrams.
  for (auto& l : listeners_) {
    std::error_code ec;
    if (l->acceptor) l->acceptor->close(ec);
    if (l->dgram) l->dgram->close(ec);
  }
  // A user process is told to stop by cancelling its coroutine.
  user_coro_.cancel();
  // Process mode: the reactors stop sending to us; what they sent before is still handled.
  if (!reactors_.empty()) {
    drained_.add(static_cast<std::int64_t>(reactors_.size()));
    for (auto& r : reactors_) {
      ipc::message m;
      m.type = ipc::message_type::control;
      m.src_worker = static_cast<std::uint32_t>(args_.id);
      m.payload = "drain";
      if (r->send(std::move(m))) drained_.done();
    }
    if (co_await drained_.wait(left())) log::warning("a reactor did not confirm the drain in time");
  }
  // Base mode: existing connections keep being served until their clients close them (or
  // max_wait_time): closing them now could drop a request already on its way.
  while (!sessions_.empty() && std::chrono::steady_clock::now() < deadline) co_await sleep(5ms);
  // Finish the handlers that are running.
  auto ec = co_await in_flight_.wait(left());
  if (ec) log::warning("{} handler(s) still running after max_wait_time", in_flight_.count());
  if (!is_user_)
    for (std::size_t i = 0; i < modules_.size(); ++i)
      co_await invoke(static_cast<int>(i), "on_worker_stop", 0, modules_[i]->on_worker_stop(*contexts_[i]));
  // Let queued output reach the clients, then close the connections.
  std::vector<std::shared_ptr<session>> all;
  for (auto& [id, s] : sessions_) all.push_back(s);
  for (auto& s : all) s->close(false);
  while (!sessions_.empty() && std::chrono::steady_clock::now() < deadline) co_await sleep(5ms);
  for (auto& [id, s] : sessions_) s->close_now();
  // Process mode: events already queued for sessions are finished by the drains above
  // (they hold in_flight); make sure our replies reach the reactors.
  for (auto& r : reactors_) (void)co_await r->flush(500ms);
  lp_.timers().clear_all();
  (void)co_await link_.flush(200ms);
  set_state(proc_state::exited);
  if (owns_slot()) slot_->in_flight.store(0);
  lp_.stop();
}

task<void> worker_runtime::invoke(int module, const char* event, session_id sid, swactor::task<void> t) {
  in_flight_.add();
  slot_->in_flight.fetch_add(1);
  set_state(stopping_ ? proc_state::stopping : proc_state::busy);
  try {
    co_await std::move(t);
  } catch (const std::system_error& e) {
    // Cancellation is how a stop interrupts a handler; not a failure.
    if (e.code() != asio::error::operation_aborted && e.code() != errc::cancelled)
      log::error("module {} failed in {}{}: {}", modules_[module]->instance_name(), event,
                 sid ? " (session " + std::to_string(sid) + ")" : std::string(), e.what());
  } catch (const std::exception& e) {
    if (sid)
      log::error("module {} failed in {} (session {}): {}", modules_[module]->instance_name(), event, sid, e.what());
    else
      log::error("module {} failed in {}: {}", modules_[module]->instance_name(), event, e.what());
  } catch (...) {
    log::error("module {} failed in {}: non-standard exception", modules_[module]->instance_name(), event);
  }
  if (slot_->in_flight.fetch_sub(1) == 1 && !stopping_)
    set_state(proc_state::idle);
  in_flight_.done();
}

void worker_runtime::count_message() {
  slot_->messages.fetch_add(1, std::memory_order_relaxed);
  state_->messages.fetch_add(1, std::memory_order_relaxed);
}

void worker_runtime::note_message() {
  // Called once the handler is done, so a recycle never races the reply it is sending.
  if (max_request_ > 0 && ++handled_ >= max_request_ && !stopping_) {
    exit_code_ = 0;
    begin_stop("max_request reached (" + std::to_string(handled_) + " messages)");
  }
}

// -- stream listeners -------------------------------------------------------------------

task<void> worker_runtime::accept_loop(listener_rt& l) {
  for (;;) {
    auto [ec, sock] = co_await l.acceptor->async_accept(use_tuple);
    if (ec) {
      if (stopping_ || ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) co_return;
      log::warning("listener {}: accept failed: {}", l.cfg.url, ec.message());
      co_await sleep(50ms);  // EMFILE and friends: do not spin
      continue;
    }
    auto& open = state_->listeners[l.index].connections;
    if (open.fetch_add(1) >= l.cfg.max_connections) {
      open.fetch_sub(1);
      state_->refused.fetch_add(1);
      std::error_code ignored;
      auto remote = sock.remote_endpoint(ignored);
      log::warning("listener {}: max_connections ({}) reached, refusing {}", l.cfg.url,
                   l.cfg.max_connections, detail::format_endpoint(remote));
      sock.close(ignored);
      continue;
    }
    std::error_code opt_ec;
    if (l.url.kind == listen_kind::tcp) {
      int one = 1;
      if (l.cfg.tcp_nodelay) ::setsockopt(sock.native_handle(), IPPROTO_TCP, 1 /*TCP_NODELAY*/, &one, sizeof one);
      if (l.cfg.keepalive) ::setsockopt(sock.native_handle(), SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    }
    auto s = std::make_shared<session>(std::move(sock), l.framing, l.cfg.output_buffer_size);
    s->id = state_->next_session.fetch_add(1);
    s->listener = l.index;
    s->connect_ms = now_ms();
    std::error_code rec;
    s->remote = l.url.kind == listen_kind::tcp ? detail::format_endpoint(s->sock.remote_endpoint(rec)) : l.url.path;
    sessions_[s->id] = s;
    state_->accepted.fetch_add(1);
    slot_->connections.fetch_add(1);
    slot_->listener_connections[l.index].fetch_add(1);
    spawn(lp_.context(), [this, s, &l]() -> task<void> { co_await serve(s, l); }, "session");
  }
}

task<void> worker_runtime::serve(std::shared_ptr<session> s, listener_rt& l) {
  int mod = l.module;
  co_await invoke(mod, "on_connect", s->id, modules_[mod]->on_connect(*contexts_[mod], s->id));
  std::vector<char> buf(64 * 1024);
  std::string reason = "closed by peer";
  while (!s->closed) {
    auto [ec, n] = co_await s->sock.async_read_some(asio::buffer(buf), use_tuple);
    if (ec) {
      if (ec == asio::error::eof) reason = "closed by peer";
      else if (ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) reason = "closed by server";
      else {
        reason = ec.message();
        s->aborted = true;
      }
      break;
    }
    s->last_receive_ms = now_ms();
    s->last_activity = std::chrono::steady_clock::now();
    if (auto fe = s->framer.feed(std::string_view(buf.data(), n))) {
      log::warning("closing session {} from {} on {}: {}", s->id, s->remote, l.cfg.url, s->framer.reason());
      s->aborted = true;
      reason = s->framer.reason();
      break;
    }
    while (auto m = s->framer.next()) {
      std::string msg(*m);
      count_message();
      co_await invoke(mod, "on_receive", s->id, modules_[mod]->on_receive(*contexts_[mod], s->id, std::move(msg)));
      note_message();  // after the handler: a max_request stop must not race its reply
      if (s->closed) break;
    }
    // next() finds a bad header too (the frame is complete enough to judge): close now,
    // not at the next read.
    if (s->framer.failed()) {
      log::warning("closing session {} from {} on {}: {}", s->id, s->remote, l.cfg.url, s->framer.reason());
      s->aborted = true;
      reason = s->framer.reason();
      break;
    }
  }
  finish_close(*s);
  log::debug("session {} from {} closed: {}", s->id, s->remote, reason);
  co_await invoke(mod, "on_close", s->id, modules_[mod]->on_close(*contexts_[mod], s->id));
}

void worker_runtime::finish_close(session& s) {
  if (!sessions_.erase(s.id)) return;
  s.closed = true;
  s.close_now();
  s.out.clear();
  s.out_bytes = 0;
  state_->listeners[s.listener].connections.fetch_sub(1);
  slot_->connections.fetch_sub(1);
  slot_->listener_connections[s.listener].fetch_sub(1);
  state_->closed.fetch_add(1);
  if (s.aborted) state_->aborted.fetch_add(1);
}

task<void> worker_runtime::heartbeat_loop(listener_rt& l) {
  auto idle = l.cfg.heartbeat_idle_time;
  auto every = l.cfg.heartbeat_check_interval.count() > 0 ? l.cfg.heartbeat_check_interval : idle / 2;
  if (every < 1ms) every = 1ms;
  while (!stopping_) {
    co_await sleep(every);
    auto now = std::chrono::steady_clock::now();
    std::vector<session_id> victims;
    for (auto& [id, s] : sessions_)
      if (s->listener == l.index && now - s->last_activity >= idle) victims.push_back(id);
    for (auto id : victims) {
      log::info("closing idle session {} (no data for {} ms)", id, idle.count());
      (void)close(id, false);
    }
  }
}

// -- datagram listeners -----------------------------------------------------------------

task<void> worker_runtime::datagram_loop(listener_rt& l) {
  std::vector<char> buf(l.cfg.max_packet_size + 1);
  int mod = l.module;
  for (;;) {
    dgram_proto::endpoint from;
    auto [ec, n] = co_await l.dgram->async_receive_from(asio::buffer(buf), from, use_tuple);
    if (ec) {
      if (stopping_ || ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) co_return;
      log::warning("listener {}: receive failed: {}", l.cfg.url, ec.message());
      continue;
    }
    if (n > l.cfg.max_packet_size) {
      log::warning("listener {}: dropped a datagram larger than max_packet_size ({} bytes)", l.cfg.url,
                   l.cfg.max_packet_size);
      continue;
    }
    count_message();
    packet_info p{detail::format_endpoint(from), l.index};
    co_await invoke(mod, "on_packet", 0, modules_[mod]->on_packet(*contexts_[mod], p, std::string(buf.data(), n)));
    note_message();
  }
}

// -- context operations -----------------------------------------------------------------

std::error_code worker_runtime::send(session_id id, std::string_view data) {
  if (process_mode()) {
    auto* l = reactor_of(id);
    if (!l) return server_errc::not_supported;
    // A session id never handed out, or (when every event of a session comes to this
    // worker) one we saw close, is an error now; otherwise the reactor drops the reply.
    if (id == 0 || id >= state_->next_session.load(std::memory_order_relaxed)) return server_errc::session_not_found;
    const auto& dm = app_.server.dispatch_mode;
    if ((dm == "connection" || dm == "ip") && !remote_.count(id)) return server_errc::session_not_found;
    ipc::message m;
    m.type = ipc::message_type::send;
    m.session_id = id;
    m.src_worker = static_cast<std::uint32_t>(args_.id);
    m.payload.assign(data);
    return l->send(std::move(m));
  }
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return server_errc::session_not_found;
  return it->second->queue(data);
}

std::error_code worker_runtime::sendto(const std::string& address, std::string_view data, int listener) {
  dgram_proto::endpoint ep;
  if (!detail::parse_address(address, ep)) return server_errc::bad_address;
  if (process_mode()) {
    // Datagram listeners live in reactor 0 of the master.
    if (listener < 0) {
      for (std::size_t i = 0; i < app_.listen.size() && listener < 0; ++i)
        if (!parse_listen_url(app_.listen[i].url).stream()) listener = static_cast<int>(i);
    }
    if (listener < 0 || reactors_.empty()) return server_errc::not_supported;
    ipc::message m;
    m.type = ipc::message_type::packet;
    m.session_id = static_cast<std::uint64_t>(listener);
    m.payload = address + "\n" + std::string(data);
    return reactors_[0]->send(std::move(m));
  }
  for (auto& l : listeners_) {
    if (!l->dgram || (listener >= 0 && l->index != listener)) continue;
    if (listener < 0 && l->dgram->local_endpoint().protocol().family() != ep.protocol().family()) continue;
    std::error_code ec;
    l->dgram->send_to(asio::buffer(data.data(), data.size()), ep, 0, ec);
    return ec;
  }
  return server_errc::not_supported;
}

std::error_code worker_runtime::close(session_id id, bool reset) {
  if (process_mode()) {
    auto* l = reactor_of(id);
    if (!l) return server_errc::not_supported;
    ipc::message m;
    m.type = ipc::message_type::close;
    m.session_id = id;
    m.payload = reset ? "reset" : "";
    return l->send(std::move(m));
  }
  auto it = sessions_.find(id);
  if (it == sessions_.end() || it->second->closed) return server_errc::session_not_found;
  it->second->close(reset);
  return {};
}

result<session_info> worker_runtime::info(session_id id) {
  if (process_mode()) {
    auto rit = remote_.find(id);
    if (rit == remote_.end()) return make_error_code(server_errc::session_not_found);
    auto& r = rit->second;
    return session_info{id, r.remote, r.listener, r.connect_ms, r.last_receive_ms, args_.id,
                        static_cast<int>(id % std::max<std::size_t>(reactors_.size(), 1)), r.uid};
  }
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return make_error_code(server_errc::session_not_found);
  auto& s = *it->second;
  return session_info{s.id, s.remote, s.listener, s.connect_ms, s.last_receive_ms, args_.id, -1, s.uid};
}

std::error_code worker_runtime::bind(session_id id, std::uint64_t uid) {
  if (process_mode()) {
    auto* l = reactor_of(id);
    if (!l) return server_errc::not_supported;
    if (auto rit = remote_.find(id); rit != remote_.end()) rit->second.uid = uid;
    ipc::message m;
    m.type = ipc::message_type::control;
    m.session_id = id;
    m.payload = "bind:" + std::to_string(uid);
    return l->send(std::move(m));
  }
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return server_errc::session_not_found;
  it->second->uid = uid;
  return {};
}

result<task_id> worker_runtime::start_task(int module, std::string payload, int dst, bool wants_finish,
                                           std::shared_ptr<channel<result<std::string>>> waiter) {
  if (is_task_) return make_error_code(server_errc::not_supported);
  if (app_.server.task_workers == 0) return make_error_code(server_errc::no_task_workers);
  if (dst >= app_.server.task_workers) return make_error_code(server_errc::worker_not_found);
  auto id = ++next_task_;
  ipc::message m;
  m.type = ipc::message_type::task;
  m.message_id = id;
  m.src_worker = static_cast<std::uint32_t>(args_.id);
  m.dst_worker = dst < 0 ? ipc::no_worker : static_cast<std::uint32_t>(app_.server.workers + dst);
  m.reactor_id = static_cast<std::uint32_t>(module);
  m.flags = wants_finish ? kTaskWantsFinish : 0;
  m.payload = std::move(payload);
  if (auto ec = link_.send(std::move(m))) return ec;
  pending_tasks_[id] = {module, wants_finish, std::move(waiter)};
  slot_->tasks.fetch_add(1, std::memory_order_relaxed);
  return id;
}

std::error_code worker_runtime::send_message(int module, int dst, std::string payload) {
  int total = app_.server.workers + app_.server.task_workers + static_cast<int>(app_.user_procs.size());
  if (dst < 0 || dst >= total) return server_errc::worker_not_found;
  ipc::message m;
  m.type = ipc::message_type::pipe_message;
  m.src_worker = static_cast<std::uint32_t>(args_.id);
  m.dst_worker = static_cast<std::uint32_t>(dst);
  m.reactor_id = static_cast<std::uint32_t>(module);
  m.payload = std::move(payload);
  return link_.send(std::move(m));
}

std::string worker_runtime::stats_json() {
  nlohmann::json j;
  j["start_time"] = state_->start_ms.load() / 1000;
  j["connection_num"] = [&] {
    std::int64_t n = 0;
    for (std::size_t i = 0; i < app_.listen.size(); ++i) n += state_->listeners[i].connections.load();
    return n;
  }();
  j["accept_count"] = state_->accepted.load();
  j["close_count"] = state_->closed.load();
  j["request_count"] = state_->messages.load();
  j["worker_id"] = args_.id;
  j["worker_request_count"] = slot_->messages.load();
  j["worker_connections"] = slot_->connections.load();
  return j.dump();
}

// -- process mode: events from the reactors ------------------------------------------------

task<void> worker_runtime::reactor_loop(ipc::link& l) {
  for (;;) {
    auto r = co_await l.receive();
    if (!r) {
      if (!stopping_) {
        log::error("lost a reactor link ({}); stopping", l.reason());
        exit_code_ = 1;
        begin_stop("reactor link closed");
      }
      co_return;
    }
    auto& m = *r;
    if (m.type == ipc::message_type::control) {
      if (m.payload == "drained") drained_.done();
      continue;
    }
    if (m.type == ipc::message_type::packet) {
      spawn(lp_.context(), [this, m = std::move(m)]() mutable -> task<void> { co_await handle_packet(std::move(m)); },
            "packet");
      continue;
    }
    if (m.type != ipc::message_type::connect && m.type != ipc::message_type::receive &&
        m.type != ipc::message_type::close)
      continue;
    auto id = m.session_id;
    auto& rs = remote_[id];
    rs.events.push_back(std::move(m));
    if (!rs.running) {
      rs.running = true;
      // One drain per session keeps its events in order, one handler at a time.
      in_flight_.add();
      spawn(lp_.context(), [this, id]() -> task<void> {
        co_await drain_session(id);
        in_flight_.done();
      }, "session events");
    }
  }
}

task<void> worker_runtime::drain_session(session_id id) {
  for (;;) {
    auto it = remote_.find(id);
    if (it == remote_.end()) co_return;
    if (it->second.events.empty()) {
      it->second.running = false;
      co_return;
    }
    auto m = std::move(it->second.events.front());
    it->second.events.pop_front();
    // The listener decides the module; every event carries its index.
    int listener = static_cast<int>(m.message_id);
    it->second.listener = listener;
    if (m.type == ipc::message_type::connect) {
      std::istringstream in(m.payload);
      std::string l, remote, ms;
      std::getline(in, l);
      std::getline(in, remote);
      std::getline(in, ms);
      it->second.remote = remote;
      it->second.connect_ms = std::atoll(ms.c_str());
    }
    if (listener < 0 || listener >= static_cast<int>(app_.listen.size())) continue;
    int mod = app_.module_index(app_.listen[static_cast<std::size_t>(listener)].module);
    if (mod < 0) continue;
    switch (m.type) {
      case ipc::message_type::connect:
        co_await invoke(mod, "on_connect", id, modules_[mod]->on_connect(*contexts_[mod], id));
        break;
      case ipc::message_type::receive:
        it->second.last_receive_ms = now_ms();
        count_message();
        co_await invoke(mod, "on_receive", id, modules_[mod]->on_receive(*contexts_[mod], id, std::move(m.payload)));
        note_message();
        break;
      case ipc::message_type::close: {
        co_await invoke(mod, "on_close", id, modules_[mod]->on_close(*contexts_[mod], id));
        auto again = remote_.find(id);
        if (again != remote_.end() && again->second.events.empty()) {
          remote_.erase(again);
          co_return;
        }
        break;
      }
      default: break;
    }
  }
}

task<void> worker_runtime::handle_packet(ipc::message m) {
  auto nl = m.payload.find('\n');
  auto listener = static_cast<int>(m.session_id);
  if (nl == std::string::npos || listener >= static_cast<int>(app_.listen.size())) co_return;
  int mod = app_.module_index(app_.listen[static_cast<std::size_t>(listener)].module);
  if (mod < 0) co_return;
  count_message();
  packet_info p{m.payload.substr(0, nl), listener};
  co_await invoke(mod, "on_packet", 0, modules_[mod]->on_packet(*contexts_[mod], p, m.payload.substr(nl + 1)));
  note_message();
}

// -- IPC from the master ----------------------------------------------------------------

task<void> worker_runtime::ipc_loop() {
  for (;;) {
    auto r = co_await link_.receive();
    if (!r) {
      if (!stopping_) {
        log::error("lost the link to the master ({}); stopping", link_.reason());
        exit_code_ = 1;
        begin_stop("master link closed");
      }
      co_return;
    }
    auto& m = *r;
    switch (m.type) {
      case ipc::message_type::control:
        if (m.payload == "stop") begin_stop("asked by the manager");
        break;
      case ipc::message_type::task:
        spawn(lp_.context(), [this, m = std::move(m)]() mutable -> task<void> { co_await run_task(std::move(m)); },
              "task");
        break;
      case ipc::message_type::task_result: {
        auto it = pending_tasks_.find(m.message_id);
        if (it == pending_tasks_.end()) {
          log::debug("late result of task {} dropped", m.message_id);
          break;
        }
        auto pt = std::move(it->second);
        pending_tasks_.erase(it);
        result<std::string> value = m.has_error() ? result<std::string>(make_error_code(server_errc::task_failed))
                                                  : result<std::string>(std::move(m.payload));
        if (pt.waiter) {
          pt.waiter->try_push(std::move(value));
        } else if (pt.wants_finish && value) {
          auto mod = pt.module;
          auto id = m.message_id;
          spawn(lp_.context(), [this, mod, id, v = std::move(*value)]() mutable -> task<void> {
            co_await invoke(mod, "on_finish", 0, modules_[mod]->on_finish(*contexts_[mod], id, std::move(v)));
          }, "on_finish");
        }
        break;
      }
      case ipc::message_type::pipe_message: {
        int mod = static_cast<int>(m.reactor_id);
        if (is_user_) {
          auto k = static_cast<std::size_t>(args_.id - app_.server.workers - app_.server.task_workers);
          if (k < app_.user_procs.size()) mod = app_.user_procs[k].first;
        }
        if (mod < 0 || mod >= static_cast<int>(modules_.size())) break;
        int src = static_cast<int>(m.src_worker);
        spawn(lp_.context(), [this, mod, src, p = std::move(m.payload)]() mutable -> task<void> {
          co_await invoke(mod, "on_pipe_message", 0, modules_[mod]->on_pipe_message(*contexts_[mod], src, std::move(p)));
        }, "on_pipe_message");
        break;
      }
      default:
        log::warning("unexpected {} message from the master; ignored", ipc::type_name(m.type));
    }
  }
}

task<void> worker_runtime::run_task(ipc::message m) {
  ipc::message reply;
  reply.type = ipc::message_type::task_result;
  reply.message_id = m.message_id;
  reply.src_worker = static_cast<std::uint32_t>(args_.id);
  reply.dst_worker = m.src_worker;
  reply.reactor_id = m.reactor_id;
  int mod = static_cast<int>(m.reactor_id);
  if (mod < 0 || mod >= static_cast<int>(modules_.size())) {
    reply.flags = ipc::flag::error;
    reply.payload = "no module #" + std::to_string(mod);
  } else {
    in_flight_.add();
    slot_->in_flight.fetch_add(1);
    set_state(proc_state::busy);
    try {
      reply.payload = co_await modules_[mod]->on_task(*contexts_[mod], m.message_id,
                                                      static_cast<int>(m.src_worker), std::move(m.payload));
    } catch (const std::exception& e) {
      log::error("module {} failed in on_task (task {} from worker {}): {}", modules_[mod]->instance_name(),
                 m.message_id, m.src_worker, e.what());
      reply.flags = ipc::flag::error;
      reply.payload = e.what();
    }
    slot_->tasks.fetch_add(1, std::memory_order_relaxed);
    if (slot_->in_flight.fetch_sub(1) == 1 && !stopping_)
      set_state(proc_state::idle);
    in_flight_.done();
  }
  (void)link_.send(std::move(reply));
}

// Reads the config text the master put in a memfd: [u64 length][text].
std::optional<std::string> read_config_text(int fd) {
  auto region = ipc::shm_region::attach(fd);
  if (!region) return std::nullopt;
  std::uint64_t len = 0;
  std::memcpy(&len, region->data(), sizeof len);
  if (len + sizeof len > region->size()) return std::nullopt;
  return std::string(static_cast<const char*>(region->data()) + sizeof len, len);
}

}  // namespace

int run_worker(const worker_args& args, const module_registry& reg) {
  std::string tag = args.role == "task" ? "task#" : args.role == "user" ? "user#" : "worker#";
  // Ctrl-C in a terminal reaches the whole process group: the master decides, not us.
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGPIPE, SIG_IGN);
  auto text = read_config_text(args.config_fd);
  if (!text) {
    std::fprintf(stderr, "swactor worker: cannot read the config from fd %d\n", args.config_fd);
    return 1;
  }
  config::diagnostics diag;
  auto root = config::load_string(*text, args.config_name, diag);
  std::optional<app_config> app;
  if (root) app = parse_app_config(*root, args.config_name, reg, diag);
  if (!app) {
    std::fprintf(stderr, "%s", diag.to_string().c_str());
    return 1;
  }
  auto shared_root = std::make_shared<const toml::table>(std::move(*root));
  app = parse_app_config(*shared_root, args.config_name, reg, diag);
  app->root = shared_root;
  compute_user_procs(*app, reg);
  int index = args.role == "task"   ? args.id - app->server.workers
              : args.role == "user" ? args.id - app->server.workers - app->server.task_workers
                                    : args.id;
  try {
    log::init(*log::parse_level(app->server.log_level), app->server.log_file, tag + std::to_string(index));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "swactor worker: %s\n", e.what());
    return 1;
  }
  auto region = ipc::shm_region::attach(args.state_fd);
  if (!region || region->size() < sizeof(server_state)) {
    log::error("cannot map the server state (fd {})", args.state_fd);
    return 1;
  }
  auto* state = static_cast<server_state*>(region->data());
  if (args.id < 0 || args.id >= kMaxProcesses) return 1;

  loop lp({.on_stall = stall_action::log});
  ipc::link_options lo;
  lo.name = tag + std::to_string(index);
  auto link = ipc::link::from_fd(lp.context().get_executor(), args.ipc_fd, lo);
  if (!link) {
    log::error("bad IPC descriptor {}: {}", args.ipc_fd, link.error().message());
    return 1;
  }
  int code = 0;
  {
    worker_runtime rt(lp, args, std::move(*app), state, std::move(*link), reg);
    rt.attach_tables(args.table_fds);
    // The worker's typed actor: control messages from the manager arrive here.
    auto self = lp.actors().spawn([&rt](detail::worker_actor::pointer) -> detail::worker_actor::behavior_type {
      return {[&rt](detail::stop_atom, const std::string& why) { rt.begin_stop(why); },
              [&rt](detail::stats_atom) { return rt.stats_json(); }};
    });
    asio::signal_set term(lp.context(), SIGTERM);
    term.async_wait([&](std::error_code ec, int) {
      if (!ec) caf::anon_send(self, detail::stop_atom::value, std::string("SIGTERM"));
    });
    spawn(lp.context(), [&]() -> task<void> { co_await rt.start(); }, "worker start");
    lp.run();
    caf::anon_send_exit(self, caf::exit_reason::user_shutdown);
    lp.context().restart();
    lp.context().poll();
    code = rt.exit_code();
  }
  log::info("exited");
  return code;
}

}  // namespace swactor
