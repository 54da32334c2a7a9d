#include "worker/runtime.hpp"

#include "swactor/core/wire.hpp"

#include <fcntl.h>
#include <sys/socket.h>

#include <chrono>
#include <random>

#include <asio/generic/datagram_protocol.hpp>
#include <nlohmann/json.hpp>

#include "net_util.hpp"
#include "swactor/core/log.hpp"
#include "swactor/protocols/http1.hpp"
#include "swactor/protocols/http2.hpp"

namespace swactor::detail {
namespace {

using namespace std::chrono_literals;
using stream_proto = asio::generic::stream_protocol;
using dgram_proto = asio::generic::datagram_protocol;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The TLS fields of a conn_open or conn_adopt (null for a plain connection), moved out.
template <class M>
std::shared_ptr<const tls_info> tls_of(M& v) {
  if (!v.tls) return nullptr;
  return std::make_shared<const tls_info>(tls_info{std::move(v.tls_version), std::move(v.tls_cipher),
                                                   std::move(v.tls_sni), std::move(v.tls_alpn),
                                                   std::move(v.tls_peer_subject), std::move(v.tls_peer_fingerprint),
                                                   v.tls_resumed});
}

}  // namespace

worker_runtime::worker_runtime(swactor::loop& lp, const worker_args& args, app_config app, server_state* state,
                               ipc::link link, const module_registry& /*reg: module types come resolved in app_config*/)
    : lp_(lp),
      args_(args),
      app_(std::move(app)),
      layout_(app_),
      state_(state),
      slot_(&state->procs[args.id]),
      link_(std::move(link)),
      runner_(lp.context(), *this) {
  is_task_ = args.role == proc_role::task;
  is_user_ = args.role == proc_role::user;
  runner_.set_worker(args.id);
  // Each module instance is built once, here, in the process that runs it.
  for (std::size_t i = 0; i < app_.modules.size(); ++i) {
    const auto& mc = app_.modules[i];
    config::diagnostics d;
    auto m = mc.resolved->make(mc.options, d, "modules." + mc.instance);
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
  bus_ = std::make_unique<bus_endpoint>(lp_, app_, args.id, link_, *slot_, static_cast<bus_host&>(*this));
  // How handlers reach connections is decided once, here. Handlers start inline in both
  // modes (process mode: from the IPC link's reader; posting each start cost a scheduler
  // turn, and ~900 instructions and 0.4 system calls per TCP echo round trip in all).
  runner_.set_inline_start(true);
  runner_.set_keep_stand_ins(app_.process_mode());
  if (app_.process_mode()) {
    port_ = make_remote_port(app_, args.id, reactors_, runner_, state_->next_session, drain_waits_);
  } else {
    host_ = std::make_unique<net::conn_host>(lp_.context(), app_, *state_, slot_->conns,
                                             static_cast<net::connection_sink&>(*this));
    port_ = make_local_port(*host_, args.id, drain_waits_);
  }
}

worker_runtime::~worker_runtime() {
  // Connections hold a reference to the host: close them before it goes, without running
  // handlers (the loop has stopped).
  destroying_ = true;
  stopping_ = true;
  if (host_) host_->abort_all();
  // The coroutines reading the links must see them close while this object still exists
  // (otherwise the loop's final drain resumes them after it is gone).
  link_.close();
  for (auto& r : reactors_) r->close();
  if (bus_) bus_->close();
  // Coroutines waiting for a client to drain (an "http drain" for another process) likewise:
  // woken now, they end before drain_waits_ and the port go.
  drain_waits_.wake_all(server_errc::session_not_found);
  lp_.context().restart();
  lp_.context().poll();
}

void worker_runtime::attach_tables(const std::vector<int>& fds) {
  for (std::size_t i = 0; i < fds.size() && i < app_.tables.size(); ++i) {
    auto t = ipc::table::attach(fds[i]);
    if (!t) {
      log::error("cannot attach table {}: {}", app_.tables[i].name, t.error().message());
      continue;
    }
    tables_.emplace_back(app_.tables[i].name, std::move(*t));
  }
}

ipc::table* worker_runtime::find_table(std::string_view name) {
  for (auto& [n, t] : tables_)
    if (n == name) return &t;
  return nullptr;
}

int worker_runtime::user_process_id(int module, int index) const {
  for (std::size_t k = 0; k < app_.user_procs.size(); ++k)
    if (app_.user_procs[k] == std::pair<int, int>{module, index})
      return layout_.id_of(proc_role::user, static_cast<int>(k));
  return -1;
}

// -- start and stop ---------------------------------------------------------------------------

task<void> worker_runtime::start() {
  slot_->pid.store(getpid());
  set_state(proc_state::starting);
  slot_->started_ms.store(now_ms());
  spawn(lp_.context(), [this]() -> task<void> { co_await master_loop(); }, "master link");
  if (is_user_) {
    auto k = static_cast<std::size_t>(layout_.index_of(args_.id));
    if (k >= app_.user_procs.size()) {
      log::error("no user process #{}", k);
      begin_stop("unknown user process");
      co_return;
    }
    auto [mod, index] = app_.user_procs[k];
    bus_->open({mod});
    bus_->start();
    set_state(proc_state::busy);
    log::info("user process of module {} (#{}) started (pid {})", modules_[mod]->instance_name(), index, getpid());
    (void)link_.send(ipc::encode(ipc::ready{static_cast<std::uint32_t>(args_.id)}));
    // Its own coroutine, so that a stop can cancel it (a user process usually loops forever).
    int m = mod, i = index;
    user_coro_ = spawn(lp_.context(), [this, m, i]() -> task<void> {
      co_await invoke(m, "on_user_process", {}, modules_[m]->on_user_process(*contexts_[m], i));
      if (!stopping_) begin_stop("on_user_process returned");
    }, "user process");
    co_return;
  }
  // Configured subscriptions go first, so nothing published after `ready` is missed; the
  // mailboxes fill meanwhile and their handlers start after on_worker_start.
  std::vector<int> all(modules_.size());
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int>(i);
  bus_->open(std::move(all));
  for (std::size_t i = 0; i < modules_.size(); ++i)
    co_await invoke(static_cast<int>(i), "on_worker_start", {}, modules_[i]->on_worker_start(*contexts_[i]));
  bus_->start();
  if (!is_task_) {
    if (app_.process_mode())
      start_reactor_links();
    else
      start_listeners();
  }
  set_state(proc_state::idle);
  // Tell the manager we serve: a reload retires the old process only after this.
  (void)link_.send(ipc::encode(ipc::ready{static_cast<std::uint32_t>(args_.id)}));
  log::info("{} #{} started (pid {}, {} listener(s), {} module(s))", is_task_ ? "task worker" : "worker", args_.id,
            getpid(), acceptors_.size(), modules_.size());
}

void worker_runtime::start_listeners() {
  // Certificates are read here, at each (re)start: a reload gives new workers new ones.
  if (std::string err; !tls_.load(app_, &state_->tls_ticket_keys, err)) {
    log::error("{}; stopping", err);
    exit_code_ = 1;
    begin_stop("TLS setup failed");
    return;
  }
  host_->set_tls(&tls_);
  for (std::size_t i = 0; i < app_.listen.size(); ++i) {
    const auto& lc = app_.listen[i];
    int fd = i < args_.listen_fds.size() ? args_.listen_fds[i] : -1;
    if (fd < 0) continue;
    int family = socket_family(fd);
    std::error_code ec;
    int index = static_cast<int>(i);
    if (lc.endpoint.stream()) {
      auto acc = std::make_unique<net::stream_acceptor>(lp_.context());
      acc->assign(stream_proto(family, SOCK_STREAM), fd, ec);
      if (ec) {
        log::error("listener {}: cannot adopt inherited socket: {}", lc.url, ec.message());
        continue;
      }
      auto* a = acc.get();
      acceptors_.push_back(std::move(acc));
      spawn(lp_.context(), [this, a, index]() -> task<void> {
        const auto& l = app_.listen[static_cast<std::size_t>(index)];
        co_await net::accept_loop(*a, l, index, *state_, slot_->conns,
                                  [this, index](int fd, std::string remote) {
                                    host_->adopt(fd, index,
                                                 // The id says which worker holds it (pushes from others).
                                                 ((state_->next_session.fetch_add(1) + 1) << kSessionWorkerBits) |
                                                     static_cast<std::uint64_t>(args_.id),
                                                 std::move(remote));
                                  });
      }, "accept loop");
    } else {
      host_->serve_datagrams(index, fd);
    }
  }
  host_->start_heartbeat();
}

void worker_runtime::start_reactor_links() {
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
  // Callback mode: each event goes straight to the runner, no queue or coroutine per message.
  for (auto& l : reactors_) {
    auto* lp = l.get();
    // conn_data, nearly every message of a reactor, is read in place from the link's buffer:
    // no message object, no payload copy (one is made only if the event is queued).
    lp->set_view_handler([this](const ipc::message_view& m) {
      auto v = ipc::view_conn_data(m);
      if (!v) return false;  // other kinds, and malformed ones (the message path reports them)
      reactor_data(*v, nullptr);
      return true;
    });
    lp->set_handler([this](ipc::message&& m) { on_reactor_message(std::move(m)); },
                    [this, lp](std::error_code) {
                      if (stopping_) return;
                      log::error("lost a reactor link ({}); stopping", lp->reason());
                      exit_code_ = 1;
                      begin_stop("reactor link closed");
                    });
  }
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
  auto left = [&] { return std::max<duration>(deadline - std::chrono::steady_clock::now(), 1ms); };
  // No new work: stop accepting and receiving datagrams.
  for (auto& a : acceptors_) {
    std::error_code ec;
    a->close(ec);
  }
  if (host_) {
    host_->stop_datagrams();
    // Upgraded connections never end by themselves: say goodbye (WebSocket 1001) and let
    // the clients finish the close handshake while the rest drains.
    if (auto n = host_->go_away_all()) log::info("told {} connection(s) the server is going away", n);
  }
  // A user process is told to stop by cancelling its coroutine.
  user_coro_.cancel();
  // The bus takes no more mail; what is queued is still handled (below).
  bus_->close();
  // Process mode: the reactors stop sending to us; what they sent before is still handled.
  if (!reactors_.empty()) {
    drained_.add(static_cast<std::int64_t>(reactors_.size()));
    for (auto& r : reactors_)
      if (r->send(ipc::encode(ipc::drain{static_cast<std::uint32_t>(args_.id)}))) drained_.done();
    if (auto late = co_await drained_.wait(left())) log::warning("a reactor did not confirm the drain in time");
  }
  // Base mode: open connections keep being served until their clients close them (or
  // max_wait_time): closing them now could drop a request already on its way.
  while (host_ && host_->size() > 0 && std::chrono::steady_clock::now() < deadline) co_await sleep(5ms);
  // Finish the handlers that are running (and the events queued for them).
  if (auto late = co_await runner_.running().wait(left()))
    log::warning("{} session(s) still have handlers running after max_wait_time", runner_.running().count());
  if (auto late = co_await in_flight_.wait(left()))
    log::warning("{} handler(s) still running after max_wait_time", in_flight_.count());
  if (auto late = co_await bus_->wait(left())) log::warning("bus mailboxes not emptied after max_wait_time");
  if (!is_user_)
    for (std::size_t i = 0; i < modules_.size(); ++i)
      co_await invoke(static_cast<int>(i), "on_worker_stop", {}, modules_[i]->on_worker_stop(*contexts_[i]));
  // Let queued output reach the clients, then close the connections.
  if (host_) {
    host_->stop_heartbeat();
    host_->close_all();
    while (host_->size() > 0 && std::chrono::steady_clock::now() < deadline) co_await sleep(5ms);
    host_->abort_all();
  }
  for (auto& r : reactors_) (void)co_await r->flush(500ms);
  lp_.timers().clear_all();
  (void)co_await link_.flush(200ms);
  set_state(proc_state::exited);
  if (owns_slot()) slot_->in_flight.store(0);
  lp_.stop();
}

// -- running handlers -------------------------------------------------------------------------

// The shared slot shows how many handlers run (dispatch_mode idle reads it) and whether
// the worker is busy. Written only by this process: plain stores, and the state only when
// it changes.
void worker_runtime::begin_busy() {
  auto n = ++busy_;
  slot_->in_flight.store(static_cast<std::uint32_t>(n), std::memory_order_relaxed);
  if (n == 1 && !stopping_) set_state(proc_state::busy);
}

void worker_runtime::end_busy() {
  auto n = --busy_;
  slot_->in_flight.store(static_cast<std::uint32_t>(n), std::memory_order_relaxed);
  if (n == 0 && !stopping_) set_state(proc_state::idle);
}

void worker_runtime::handler_begin() {
  in_flight_.add();
  begin_busy();
}

void worker_runtime::handler_end() {
  end_busy();
  in_flight_.done();
}

void worker_runtime::log_failure(int module, const char* event, session_id sid, std::exception_ptr error) {
  if (!error) return;
  std::string where = sid ? fmt::format(" (session {})", sid) : std::string();
  try {
    std::rethrow_exception(error);
  } catch (const std::system_error& e) {
    // Cancellation is how a stop interrupts a handler; not a failure.
    if (e.code() != asio::error::operation_aborted && e.code() != errc::cancelled)
      log::error("module {} failed in {}{}: {}", modules_[module]->instance_name(), event, where, e.what());
  } catch (const std::exception& e) {
    log::error("module {} failed in {}{}: {}", modules_[module]->instance_name(), event, where, e.what());
  } catch (...) {
    log::error("module {} failed in {}{}: non-standard exception", modules_[module]->instance_name(), event, where);
  }
}

task<void> worker_runtime::invoke(int module, const char* event, session_id sid, swactor::task<void> t) {
  handler_begin();
  std::exception_ptr error;
  try {
    co_await std::move(t);
  } catch (...) {
    error = std::current_exception();
  }
  log_failure(module, event, sid, error);
  handler_end();
}

int worker_runtime::session_owner(session_id s) const {
  if (app_.process_mode()) return -1;
  auto w = static_cast<int>(s.value() & ((1u << kSessionWorkerBits) - 1));
  return w < app_.server.workers ? w : -1;
}

namespace {
// Runtime messages between workers over the bus (never seen by modules).
constexpr std::string_view kWsForwardTag = "swactor.ws_send";     // u64 session, u8 kind, str data
constexpr std::string_view kWsGroupTag = "swactor.ws_group";       // u64 session, bool join, str group
constexpr std::string_view kWsBroadcastTag = "swactor.ws_cast";    // u8 kind, str group, str data
constexpr int kRelayWorker = 0;  // process mode: the worker that relays for task workers
}  // namespace

// Where a send / group operation for `s` goes when this process cannot do it itself: the
// owning worker (base mode), or in process mode a worker that has reactor links.
int worker_runtime::relay_for(session_id s) const {
  if (app_.process_mode()) return port_->reaches_connections() ? -1 : kRelayWorker;
  const int owner = session_owner(s);
  return owner == args_.id ? -1 : owner;
}

std::error_code worker_runtime::forward_ws(int module, session_id s, std::uint8_t kind, std::string_view data) {
  const int to = relay_for(s);
  if (to < 0) return server_errc::session_not_found;
  bus::payload p;
  p.tag = std::string(kWsForwardTag);
  wire::writer w(p.data);
  w.u64(s.value());
  w.u8(kind);
  w.str(data);
  return bus_->send(module, bus::target::worker(to), std::move(p));
}

std::error_code worker_runtime::ws_group(int module, session_id s, std::string_view name, bool join) {
  if (!app_.process_mode() && session_owner(s) < 0) return server_errc::session_not_found;
  const int to = relay_for(s);
  if (to < 0) return port_->group(s, name, join);
  bus::payload p;
  p.tag = std::string(kWsGroupTag);
  wire::writer w(p.data);
  w.u64(s.value());
  w.boolean(join);
  w.str(name);
  return bus_->send(module, bus::target::worker(to), std::move(p));
}

std::error_code worker_runtime::ws_broadcast(int module, std::string_view name, std::uint8_t kind,
                                             std::string_view data) {
  // Every loop that holds connections gets it once: the reactors (process mode, through a
  // worker from a task worker), or each worker's own connections (base mode).
  std::vector<int> relays;
  std::error_code first;
  if (app_.process_mode()) {
    if (port_->reaches_connections()) return port_->broadcast(name, data, kind);
    relays.push_back(kRelayWorker);
  } else {
    if (!is_task_ && !is_user_) first = port_->broadcast(name, data, kind);
    for (int w = 0; w < app_.server.workers; ++w)
      if (w != args_.id || is_task_ || is_user_) relays.push_back(w);
  }
  for (int to : relays) {
    bus::payload p;
    p.tag = std::string(kWsBroadcastTag);
    wire::writer w(p.data);
    w.u8(kind);
    w.str(name);
    w.str(data);
    if (auto ec = bus_->send(module, bus::target::worker(to), std::move(p)); ec && !first) first = ec;
  }
  return first;
}

bool worker_runtime::runtime_message(const ipc::bus_message& m) {
  if (m.tag.starts_with("swactor.http_")) return http_remote_message(m);
  wire::reader r(m.data);
  if (m.tag == kWsForwardTag) {
    session_id s(r.u64());
    auto kind = r.u8();
    auto data = r.str();
    if (!r.done()) {
      log::warning("bus: malformed {} from process {}; dropped", m.tag, m.src);
      return true;
    }
    // Process mode: the session may be any worker's; the reactor drops it if it is gone.
    auto ec = app_.process_mode() ? port_->send_any(s, data, kind) : port_->send(s, data, kind);
    if (ec) log::debug("WebSocket send forwarded to session {}: {}", s, ec.message());
    return true;
  }
  if (m.tag == kWsGroupTag) {
    session_id s(r.u64());
    bool join = r.boolean();
    auto name = r.str();
    if (!r.done()) {
      log::warning("bus: malformed {} from process {}; dropped", m.tag, m.src);
      return true;
    }
    if (auto ec = port_->group(s, name, join))
      log::debug("group {} {} for session {}: {}", join ? "join" : "leave", name, s, ec.message());
    return true;
  }
  if (m.tag == kWsBroadcastTag) {
    auto kind = r.u8();
    auto name = r.str();
    auto data = r.str();
    if (!r.done()) {
      log::warning("bus: malformed {} from process {}; dropped", m.tag, m.src);
      return true;
    }
    (void)port_->broadcast(name, data, kind);
    return true;
  }
  return false;
}

task<bool> worker_runtime::run_bus_handler(int module, const bus::message& m) {
  handler_begin();
  std::exception_ptr error;
  try {
    co_await modules_[static_cast<std::size_t>(module)]->on_bus_message(*contexts_[static_cast<std::size_t>(module)], m);
  } catch (...) {
    error = std::current_exception();
  }
  log_failure(module, "on_bus_message", {}, error);
  handler_end();
  co_return !error;
}

void worker_runtime::note_message() {
  // Called once the handler is done, so a recycle never races the reply it is sending.
  if (max_request_ > 0 && ++handled_ >= max_request_ && !stopping_) {
    exit_code_ = 0;
    begin_stop("max_request reached (" + std::to_string(handled_) + " messages)");
  }
}

namespace {

const char* event_name(event_kind k) {
  return k == event_kind::open ? "on_connect" : k == event_kind::message ? "on_receive" : "on_close";
}

}  // namespace

std::optional<task<void>> worker_runtime::handler_for(event_kind k, std::uint8_t kind, session_id s, int listener,
                                                      std::string& data) {
  if (listener >= 0 && listener < static_cast<int>(app_.listen.size()) &&
      app_.listen[static_cast<std::size_t>(listener)].http()) {
    // HTTP listeners: requests go to on_request of the routed module (no connect/close
    // handlers: a connection carries many requests, maybe for different modules).
    if (k == event_kind::closed) {
      http_closed(s);
      if (auto t = ws_closed(s)) {
        begin_busy();
        return t;
      }
    }
    if (k != event_kind::message) return std::nullopt;
    // An upgraded connection's events are WebSocket kinds (16 and up), never HTTP's.
    auto t = kind >= static_cast<std::uint8_t>(protocols::websocket::ev::text) ? ws_event(kind, s, data)
                                                                              : http_event(kind, s, listener, data);
    if (t) {
      begin_busy();
      bump(slot_->messages);
    }
    return t;
  }
  int mod = module_of(listener);
  if (mod < 0) return std::nullopt;
  // The runner's running() count covers these for stop; only the shared slot is told.
  begin_busy();
  auto& m = *modules_[static_cast<std::size_t>(mod)];
  auto& ctx = *contexts_[static_cast<std::size_t>(mod)];
  switch (k) {
    case event_kind::open: return m.on_connect(ctx, s);
    case event_kind::message:
      bump(slot_->messages);
      if (protocols::redis::is_command_kind(kind) && app_.listen[static_cast<std::size_t>(listener)].is_redis())
        return serve_redis(mod, s, std::move(data), kind);
      return m.on_receive(ctx, s, std::move(data));
    case event_kind::closed: return m.on_close(ctx, s);
  }
  return std::nullopt;
}

// Both on the path of every message: inlined into their callers (all in this file).
[[gnu::always_inline]] inline bool worker_runtime::receive_now(int mod, session_id s, std::string_view data) {
  if (mod < 0 || now_busy_ || !modules_[static_cast<std::size_t>(mod)]->answers_messages_now() ||
      !runner_.idle_for_inline(s))
    return false;
  return run_now(
      [&] {
        return modules_[static_cast<std::size_t>(mod)]->on_receive_now(*contexts_[static_cast<std::size_t>(mod)], s,
                                                                       data);
      },
      [&](bool taken, std::exception_ptr error) {
        if (!error) return taken;
        log_failure(mod, "on_receive_now", s, error);
        return true;  // as with on_receive: logged, and the message is not handled again
      });
}

[[gnu::always_inline]] inline bool worker_runtime::event_now(int listener, session_id s, std::uint8_t kind,
                                                              std::string_view data) {
  // One look at the listener's config per event (this runs for every message of both modes).
  if (listener < 0 || listener >= static_cast<int>(app_.listen.size())) return false;
  const auto& lc = app_.listen[static_cast<std::size_t>(listener)];
  switch (lc.endpoint.protocol) {
    case listen_protocol::redis:
      return protocols::redis::is_command_kind(kind) && redis_now(listener, s, data, kind);
    case listen_protocol::http:
      if (kind != static_cast<std::uint8_t>(protocols::http1::ev::request) || now_busy_ || !runner_.idle_for_inline(s))
        return false;
      http_arrived(s, listener, kind, http_event(kind, s, listener, data));
      return true;
    case listen_protocol::framed: break;
  }
  return receive_now(lc.module_index, s, data);
}

void worker_runtime::handler_done(event_kind k, session_id s, int listener, std::exception_ptr error) {
  if (error && module_of(listener) >= 0) log_failure(module_of(listener), event_name(k), s, error);
  end_busy();
  if (k == event_kind::message) note_message();  // after the handler: a recycle never races its reply
}

task<void> worker_runtime::handle_packet(int listener, std::string from, std::string data) {
  int mod = module_of(listener);
  if (mod < 0) co_return;
  bump(slot_->messages);
  packet_info p{std::move(from), listener};
  co_await invoke(mod, "on_packet", {}, modules_[mod]->on_packet(*contexts_[mod], p, std::move(data)));
  note_message();
}

void worker_runtime::queue_low(session_id s) { port_->resume_reading(s); }

// -- base mode: this loop's connections ---------------------------------------------------------

void worker_runtime::on_open(net::connection& c) {
  runner_.open(session_id(c.id()), c.listener(), c.remote, c.connect_ms, -1);
}

inline void worker_runtime::http_arrived(session_id s, int listener, std::uint8_t kind, std::optional<task<void>>&& t) {
  // Its session is idle, so its turn is now: routed already, answered inline when its module
  // could (http_now, no task left), else its handler runs in the session's order, as the
  // runner would have run it (handler_for's accounting, then handler_done's).
  if (!t) return;
  begin_busy();
  bump(slot_->messages);
  (void)runner_.run_next(s, listener, kind, std::move(*t));
}

// Only the HTTP codecs hand objects: request heads as views (HTTP/1's, and HTTP/2's with
// their stream). One whose turn is now is built straight from them; an HTTP/1 request that
// must wait in the session's queue goes as bytes.
bool worker_runtime::on_object_event(net::connection& c, const protocols::event& typed) {
  session_id s(c.id());
  auto request_of = [&](const protocols::http1::request_parts& head) {
    auto req = take_request();
    req->assign_head(head);
    req->set_origin(s, c.remote);
    return req;
  };
  if (typed.kind == static_cast<std::uint8_t>(protocols::http2::ev::request) && is_http(c.listener())) {
    // An HTTP/2 stream runs beside its siblings (see on_event): routed at once, always.
    const auto& o = static_cast<const protocols::http2::request_object&>(*typed.object);
    (void)http_request(request_of(o.head), c.listener(), o.stream);
    return !c.paused();
  }
  if (typed.kind == static_cast<std::uint8_t>(protocols::http1::ev::request) && is_http(c.listener()) &&
      !now_busy_ && runner_.idle_for_inline(s)) {
    if (auto t = http_request(request_of(static_cast<const protocols::http1::request_parts&>(*typed.object)),
                              c.listener(), 0))
      http_arrived(s, c.listener(), typed.kind, std::move(t));
    return !c.paused();
  }
  std::string bytes;
  typed.object->encode_to(bytes);
  return on_event(c, protocols::event{typed.kind, bytes});
}

bool worker_runtime::on_event(net::connection& c, const protocols::event& e) {
  if (e.object) [[unlikely]]
    return on_object_event(c, e);
  session_id s(c.id());
  if (is_body_event(e.kind) && is_http(c.listener())) {
    http_body_event(s, e.kind, e.data);
    return !c.paused();
  }
  if (e.kind == static_cast<std::uint8_t>(protocols::http2::ev::request) && is_http(c.listener())) {
    // An HTTP/2 stream runs beside its siblings (http_event hands it to run_beside): it needs
    // no turn in the session's queue, whose runner would only pass it on.
    (void)http_event(e.kind, s, c.listener(), e.data);
    return !c.paused();
  }
  if (event_now(c.listener(), s, e.kind, e.data)) return !c.paused();
  // An HTTP request's handler only reads the event's bytes (it decodes the head): they are
  // lent to a runner taking them inline. Other handlers take ownership of theirs (a module's
  // message), for which one copy made here is the cheapest.
  auto depth = e.kind == static_cast<std::uint8_t>(protocols::http1::ev::request) && is_http(c.listener())
                   ? runner_.message_lent(s, c.listener(), e.data, e.kind)
                   : runner_.message(s, c.listener(), std::string(e.data), e.kind);
  if (depth < app_.listen[static_cast<std::size_t>(c.listener())].max_queued_messages) return true;
  runner_.note_paused(s);
  return false;
}

// Pipelined redis commands: the module may prefetch what they will touch (redis_events.cpp).
void worker_runtime::on_ahead(net::connection& c, std::span<const protocols::event> upcoming) {
  if (app_.listen[static_cast<std::size_t>(c.listener())].is_redis()) redis_ahead(c.listener(), session_id(c.id()), upcoming);
}

void worker_runtime::on_drained(net::connection& c) { drain_waits_.wake(session_id(c.id())); }

void worker_runtime::on_closed(net::connection& c, std::string_view) {
  if (destroying_) return;
  if (c.watching_drain()) drain_waits_.wake(session_id(c.id()), server_errc::session_not_found);
  if (is_http(c.listener())) http_closed(session_id(c.id()));  // a handler reading the body learns now
  runner_.closed(session_id(c.id()), c.listener());
}

void worker_runtime::on_datagram(int listener, std::string from, std::string_view data) {
  spawn(lp_.context(), [this, listener, f = std::move(from), d = std::string(data)]() mutable -> task<void> {
    co_await handle_packet(listener, std::move(f), std::move(d));
  }, "datagram");
}

// -- process mode: events from the reactors -------------------------------------------------------

void worker_runtime::on_reactor_message(ipc::message&& raw) {
  auto m = ipc::decode(std::move(raw));
  if (!m) {
    log::warning("dropped a message from a reactor: {}", m.error().message());
    return;
  }
  std::visit([&](auto& v) {
    using T = std::decay_t<decltype(v)>;
    if constexpr (std::is_same_v<T, ipc::conn_open>) {
      runner_.open(session_id(v.session), static_cast<int>(v.listener), std::move(v.remote), v.connect_ms,
                   static_cast<int>(v.reactor), std::move(v.local), tls_of(v), v.protocol);
    } else if constexpr (std::is_same_v<T, ipc::conn_adopt>) {
      // An open WebSocket of this worker id that an earlier process of it upgraded (reload,
      // crash): serve it from here on, with no new on_open (the client saw no new handshake).
      if (v.module >= modules_.size() || !modules_[v.module]->websocket()) {
        log::warning("session {}: adopted WebSocket of unknown module {}; dropped", v.session, v.module);
        return;
      }
      session_id s(v.session);
      runner_.open(s, static_cast<int>(v.listener), std::move(v.remote), v.connect_ms, static_cast<int>(v.reactor),
                   std::move(v.local), tls_of(v), "websocket");
      ws_sessions_[s] = ws_session{static_cast<int>(v.module), false};
      // on_adopt runs as the session's first event, so its messages wait for it.
      runner_.message(s, static_cast<int>(v.listener), std::move(v.target),
                      kWsAdopted);
    } else if constexpr (std::is_same_v<T, ipc::conn_data>) {
      reactor_data(ipc::conn_data_view{v.session, v.listener, v.reactor, v.kind, v.data}, &v.data);
    } else if constexpr (std::is_same_v<T, ipc::conn_closed>) {
      // A handler waiting for a body learns it now, not behind itself in the queue.
      if (is_http(static_cast<int>(v.listener))) http_closed(session_id(v.session));
      runner_.closed(session_id(v.session), static_cast<int>(v.listener));
    } else if constexpr (std::is_same_v<T, ipc::datagram_in>) {
      on_datagram(static_cast<int>(v.listener), std::move(v.from), v.data);
    } else if constexpr (std::is_same_v<T, ipc::conn_writable>) {
      // HTTP/2: the reactor answers each writer's watch once, and several streams may write at
      // once here; one answer lets one of them go on. Other protocols: one answer for all.
      session_id s(v.session);
      if (auto it = http_pipes_.find(s); it != http_pipes_.end() && it->second.h2_taken > 0)
        drain_waits_.wake_one(s);
      else
        drain_waits_.wake(s);
    } else if constexpr (std::is_same_v<T, ipc::drained>) {
      drained_.done();
    } else {
      log::warning("unexpected {} message from a reactor; dropped", ipc::kind_name(*m));
    }
  }, *m);
}

void worker_runtime::reactor_data(const ipc::conn_data_view& v, std::string* owned) {
  const int l = static_cast<int>(v.listener);
  const session_id s(v.session);
  if (is_body_event(v.kind) && is_http(l)) {
    http_body_event(s, v.kind, v.data);
    return;
  }
  if (v.kind == static_cast<std::uint8_t>(protocols::http2::ev::request) && is_http(l)) {
    // As in base mode (on_event): an HTTP/2 stream runs beside its siblings (http_event
    // hands it to run_beside), so it takes no turn in the session's queue, and its bytes
    // are read in place.
    runner_.note_received(s, l, v.kind);
    (void)http_event(v.kind, s, l, v.data);
    return;
  }
  if (event_now(l, s, v.kind, v.data)) return;
  runner_.message(s, l, owned ? std::move(*owned) : std::string(v.data), v.kind);
}

// -- the link to the master -----------------------------------------------------------------------

task<void> worker_runtime::master_loop() {
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
    auto m = ipc::decode(std::move(*r));
    if (!m) {
      log::warning("dropped a message from the master: {}", m.error().message());
      continue;
    }
    on_master_message(std::move(*m));
  }
}

void worker_runtime::on_master_message(ipc::any_message msg) {
  std::visit([&](auto& v) {
    using T = std::decay_t<decltype(v)>;
    if constexpr (std::is_same_v<T, ipc::stop>) {
      begin_stop(v.reason.empty() ? std::string("asked by the manager") : v.reason);
    } else if constexpr (std::is_same_v<T, ipc::task_request>) {
      spawn(lp_.context(), [this, t = std::move(v)]() mutable -> task<void> { co_await run_task(std::move(t)); },
            "task");
    } else if constexpr (std::is_same_v<T, ipc::task_result>) {
      auto it = pending_tasks_.find(task_id(v.task));
      if (it == pending_tasks_.end()) {
        log::debug("late result of task {} dropped", v.task);
        return;
      }
      auto pt = std::move(it->second);
      pending_tasks_.erase(it);
      result<std::string> value = v.failed ? result<std::string>(make_error_code(server_errc::task_failed))
                                           : result<std::string>(std::move(v.payload));
      if (pt.waiter) {
        pt.waiter->try_push(std::move(value));
      } else if (pt.wants_finish && value) {
        auto mod = pt.module;
        task_id id(v.task);
        spawn(lp_.context(), [this, mod, id, r = std::move(*value)]() mutable -> task<void> {
          co_await invoke(mod, "on_finish", {}, modules_[mod]->on_finish(*contexts_[mod], id, std::move(r)));
        }, "on_finish");
      }
    } else if constexpr (std::is_same_v<T, ipc::bus_message>) {
      bus_->on_message(std::move(v));
    } else if constexpr (std::is_same_v<T, ipc::pipe_message>) {
      int mod = static_cast<int>(v.module);
      if (is_user_) {
        auto k = static_cast<std::size_t>(layout_.index_of(args_.id));
        if (k < app_.user_procs.size()) mod = app_.user_procs[k].first;
      }
      if (mod < 0 || mod >= static_cast<int>(modules_.size())) {
        log::warning("pipe message for unknown module #{} dropped", mod);
        return;
      }
      int src = static_cast<int>(v.src);
      spawn(lp_.context(), [this, mod, src, p = std::move(v.payload)]() mutable -> task<void> {
        co_await invoke(mod, "on_pipe_message", {}, modules_[mod]->on_pipe_message(*contexts_[mod], src, std::move(p)));
      }, "on_pipe_message");
    } else {
      log::warning("unexpected {} message from the master; dropped", ipc::kind_name(msg));
    }
  }, msg);
}

task<void> worker_runtime::run_task(ipc::task_request t) {
  ipc::task_result reply;
  reply.task = t.task;
  reply.src = static_cast<std::uint32_t>(args_.id);
  reply.dst = t.src;
  reply.module = t.module;
  int mod = static_cast<int>(t.module);
  if (mod < 0 || mod >= static_cast<int>(modules_.size())) {
    reply.failed = true;
    reply.payload = "no module #" + std::to_string(mod);
  } else {
    handler_begin();
    try {
      reply.payload = co_await modules_[mod]->on_task(*contexts_[mod], task_id(t.task), static_cast<int>(t.src),
                                                      std::move(t.payload));
    } catch (const std::exception& e) {
      log::error("module {} failed in on_task (task {} from worker {}): {}", modules_[mod]->instance_name(), t.task,
                 t.src, e.what());
      reply.failed = true;
      reply.payload = e.what();
    }
    bump(slot_->tasks);
    handler_end();
  }
  (void)link_.send(ipc::encode(std::move(reply)));
}

result<task_id> worker_runtime::start_task(int module, std::string payload, int dst, bool wants_finish,
                                           std::shared_ptr<channel<result<std::string>>> waiter) {
  if (is_task_) return make_error_code(server_errc::not_supported);
  if (layout_.task_workers() == 0) return make_error_code(server_errc::no_task_workers);
  if (dst >= layout_.task_workers()) return make_error_code(server_errc::worker_not_found);
  task_id id(++next_task_);
  ipc::task_request m;
  m.task = id.value();
  m.src = static_cast<std::uint32_t>(args_.id);
  m.dst = dst < 0 ? ipc::no_worker : static_cast<std::uint32_t>(layout_.id_of(proc_role::task, dst));
  m.module = static_cast<std::uint32_t>(module);
  m.wants_finish = wants_finish;
  m.payload = std::move(payload);
  if (auto ec = link_.send(ipc::encode(std::move(m)))) return ec;
  pending_tasks_[id] = {module, wants_finish, std::move(waiter)};
  bump(slot_->tasks);
  return id;
}

std::error_code worker_runtime::send_message(int module, int dst, std::string payload) {
  if (!layout_.valid(dst)) return server_errc::worker_not_found;
  ipc::pipe_message m;
  m.src = static_cast<std::uint32_t>(args_.id);
  m.dst = static_cast<std::uint32_t>(dst);
  m.module = static_cast<std::uint32_t>(module);
  m.payload = std::move(payload);
  return link_.send(ipc::encode(std::move(m)));
}

std::string worker_runtime::stats_json() {
  nlohmann::json j;
  j["start_time"] = state_->start_ms.load() / 1000;
  j["connection_num"] = state_->open_connections(app_.listen.size());
  auto& per = j["listener_connections"] = nlohmann::json::array();
  for (std::size_t i = 0; i < app_.listen.size() && i < static_cast<std::size_t>(kMaxListeners); ++i)
    per.push_back(state_->listeners[i].connections.load(std::memory_order_relaxed));
  j["accept_count"] = state_->total_accepted();
  j["close_count"] = state_->total_closed();
  j["request_count"] = state_->total_messages();
  j["stream_count"] = state_->total_streams();
  j["worker_id"] = args_.id;
  j["worker_request_count"] = slot_->messages.load();
  j["worker_connections"] = host_ ? host_->size() : runner_.opened_sessions();
  return j.dump();
}

}  // namespace swactor::detail
