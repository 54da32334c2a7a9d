// The master process of `swactor run`: creates the listening sockets, the shared state and
// the config memfd, then the manager actor fork+execs every worker and task worker, routes
// IPC between them (tasks, task results, pipe messages), supervises (restart in place with
// back-off), reloads (replacements first, old ones drain), stops, and serves stats on the
// admin socket.

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fcntl.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <optional>
#include <unordered_map>

#include <asio/generic/stream_protocol.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/read_until.hpp>
#include <asio/signal_set.hpp>
#include <asio/streambuf.hpp>
#include <asio/write.hpp>
#include <nlohmann/json.hpp>

#include "atoms.hpp"
#include "net_util.hpp"
#include "reactor.hpp"
#include "swactor/actors/app_config.hpp"
#include "swactor/actors/listen_url.hpp"
#include "swactor/actors/server.hpp"
#include "swactor/actors/server_state.hpp"
#include "swactor/core/actors.hpp"
#include "swactor/core/log.hpp"
#include "swactor/core/wait_group.hpp"
#include "swactor/ipc/link.hpp"
#include "swactor/ipc/process.hpp"
#include "swactor/ipc/shm.hpp"
#include "swactor/ipc/table.hpp"

namespace swactor {
namespace {

using namespace std::chrono_literals;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string self_exe() {
  char buf[4096];
  auto n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "swactor";
  std::string path(buf, static_cast<std::size_t>(n));
  // After a rebuild the old inode shows as "(deleted)"; exec the path, which now holds the
  // new binary: that is how a reload picks up new code.
  constexpr std::string_view deleted = " (deleted)";
  if (path.size() > deleted.size() && path.ends_with(deleted)) path.resize(path.size() - deleted.size());
  return path;
}

struct proc_handle {
  int id = 0;
  bool is_task = false;
  std::optional<ipc::process> proc;
  std::optional<ipc::link> link;
  pid_t pid = 0;
  bool retiring = false;
  wait_group ready{1};
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
};

struct slot {
  std::shared_ptr<proc_handle> current;
  int crash_streak = 0;
};

class master {
 public:
  master(loop& lp, app_config app, std::string config_text) : lp_(lp), app_(std::move(app)), text_(std::move(config_text)) {}

  int setup();
  void start_all();
  task<void> reload(bool tasks_only);
  task<void> shutdown(std::string why);
  std::string stats_json();
  task<void> admin_loop();
  void set_manager(detail::manager_actor a) { manager_ = std::move(a); }
  int exit_code() const { return exit_code_; }
  void cleanup_files();

 private:
  int first_user() const { return app_.server.workers + app_.server.task_workers; }
  std::string name_of(int id) const {
    if (id < app_.server.workers) return "worker#" + std::to_string(id);
    if (id < first_user()) return "task#" + std::to_string(id - app_.server.workers);
    return "user#" + std::to_string(id - first_user());
  }
  std::shared_ptr<proc_handle> spawn_proc(int id);
  task<void> supervise(std::shared_ptr<proc_handle> h);
  task<void> link_loop(std::shared_ptr<proc_handle> h);
  void route_task(proc_handle& from, ipc::message m);
  void route_result(ipc::message m);
  void fail_routes_of(int task_worker_id);
  void release_connections(proc_handle& h);
  task<void> admin_session(asio::local::stream_protocol::socket sock);

  loop& lp_;
  app_config app_;
  std::string text_;
  ipc::shm_region state_region_;
  ipc::shm_region config_region_;
  server_state* state_ = nullptr;
  std::vector<int> listen_fds_;
  std::vector<ipc::table> tables_;
  std::vector<slot> slots_;
  std::unordered_map<proc_handle*, std::weak_ptr<proc_handle>> handles_;  // every live process
  std::string exe_;
  std::string admin_path_;
  std::unique_ptr<asio::local::stream_protocol::acceptor> admin_;
  detail::manager_actor manager_;
  bool stopping_ = false;
  bool reloading_ = false;
  int exit_code_ = 0;
  struct route {
    std::weak_ptr<proc_handle> origin;
    std::uint64_t origin_id;
    int task_worker;
  };
  std::unordered_map<std::uint64_t, route> routes_;
  std::uint64_t next_route_ = 0;
  std::vector<int> task_load_;
  int task_rr_ = 0;
  // process mode
  bool process_mode() const { return app_.server.mode == "process"; }
  std::vector<std::unique_ptr<detail::reactor_thread>> reactors_;
  std::vector<detail::reactor_actor> reactor_actors_;
  std::vector<std::unique_ptr<asio::basic_socket_acceptor<asio::generic::stream_protocol>>> acceptors_;
  task<void> accept_loop(asio::basic_socket_acceptor<asio::generic::stream_protocol>& acc, int listener);

 public:
  void start_reactors();
  void stop_reactors();
};

void master::start_reactors() {
  if (!process_mode()) return;
  for (int r = 0; r < app_.server.reactor_threads; ++r) {
    reactors_.push_back(std::make_unique<detail::reactor_thread>(r, app_, state_));
    reactor_actors_.push_back(reactors_.back()->start());
  }
  for (std::size_t i = 0; i < app_.listen.size(); ++i) {
    auto url = parse_listen_url(app_.listen[i].url);
    int fd = ::fcntl(listen_fds_[i], F_DUPFD_CLOEXEC, 0);
    if (url.stream()) {
      auto acc = std::make_unique<asio::basic_socket_acceptor<asio::generic::stream_protocol>>(lp_.context());
      std::error_code ec;
      acc->assign(asio::generic::stream_protocol(detail::socket_family(fd), SOCK_STREAM), fd, ec);
      if (ec) {
        log::error("listener {}: {}", app_.listen[i].url, ec.message());
        continue;
      }
      auto* a = acc.get();
      acceptors_.push_back(std::move(acc));
      int idx = static_cast<int>(i);
      spawn(lp_.context(), [this, a, idx]() -> task<void> { co_await accept_loop(*a, idx); }, "acceptor");
    } else {
      // Datagram listeners are served by reactor 0.
      caf::anon_send(reactor_actors_[0], detail::dgram_atom::value, static_cast<int>(i), fd);
    }
  }
  log::info("process mode: {} reactor thread(s), dispatch_mode {}", reactors_.size(), app_.server.dispatch_mode);
}

task<void> master::accept_loop(asio::basic_socket_acceptor<asio::generic::stream_protocol>& acc,
                                int listener) {
  const auto& lc = app_.listen[static_cast<std::size_t>(listener)];
  for (;;) {
    auto [ec, sock] = co_await acc.async_accept(asio::experimental::as_tuple(asio::use_awaitable));
    if (ec) {
      if (stopping_ || ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) co_return;
      log::warning("listener {}: accept failed: {}", lc.url, ec.message());
      co_await sleep(50ms);
      continue;
    }
    auto& open = state_->listeners[listener].connections;
    if (open.fetch_add(1) >= lc.max_connections) {
      open.fetch_sub(1);
      state_->refused.fetch_add(1);
      std::error_code ignored;
      log::warning("listener {}: max_connections ({}) reached, refusing {}", lc.url, lc.max_connections,
                   detail::format_endpoint(sock.remote_endpoint(ignored)));
      sock.close(ignored);
      continue;
    }
    if (parse_listen_url(lc.url).kind == listen_kind::tcp) {
      int one = 1;
      if (lc.tcp_nodelay) ::setsockopt(sock.native_handle(), IPPROTO_TCP, 1 /*TCP_NODELAY*/, &one, sizeof one);
      if (lc.keepalive) ::setsockopt(sock.native_handle(), SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    }
    auto session = state_->next_session.fetch_add(1);
    state_->accepted.fetch_add(1);
    // The reactor is a function of the session id, so a worker finds it without asking.
    auto r = session % reactor_actors_.size();
    int fd = sock.release();
    caf::anon_send(reactor_actors_[r], detail::conn_atom::value, fd, listener, session);
  }
}

void master::stop_reactors() {
  for (auto& a : reactor_actors_) caf::anon_send(a, detail::stop_atom::value);
  for (auto& r : reactors_) r->join();
  reactors_.clear();
}

int master::setup() {
  exe_ = self_exe();
  auto region = ipc::shm_region::create("swactor-state", sizeof(server_state));
  if (!region) {
    log::error("cannot create the shared state: {}", region.error().message());
    return 1;
  }
  state_region_ = std::move(*region);
  state_ = new (state_region_.data()) server_state();
  state_->start_ms.store(now_ms());
  auto cfg = ipc::shm_region::create("swactor-config", text_.size() + sizeof(std::uint64_t));
  if (!cfg) {
    log::error("cannot create the config segment: {}", cfg.error().message());
    return 1;
  }
  config_region_ = std::move(*cfg);
  std::uint64_t len = text_.size();
  std::memcpy(config_region_.data(), &len, sizeof len);
  std::memcpy(static_cast<char*>(config_region_.data()) + sizeof len, text_.data(), text_.size());

  for (const auto& lc : app_.listen) {
    auto url = parse_listen_url(lc.url);
    std::string err;
    auto fd = detail::open_listener(url, lc, err);
    if (!fd) {
      log::error("cannot listen on {}: {}", lc.url, err);
      return 1;
    }
    listen_fds_.push_back(*fd);
    log::info("listening on {} (module {})", lc.url, lc.module);
  }
  if (app_.listen.size() > static_cast<std::size_t>(kMaxListeners)) {
    log::error("at most {} listeners", kMaxListeners);
    return 1;
  }

  admin_path_ = app_.server.admin_socket.empty() ? "/tmp/swactor-" + std::to_string(getpid()) + ".sock"
                                                 : app_.server.admin_socket;
  ::unlink(admin_path_.c_str());
  admin_ = std::make_unique<asio::local::stream_protocol::acceptor>(lp_.context());
  std::error_code ec;
  admin_->open(asio::local::stream_protocol(), ec);
  if (!ec) admin_->bind(asio::local::stream_protocol::endpoint(admin_path_), ec);
  if (!ec) admin_->listen(16, ec);
  if (ec) {
    log::error("cannot open the admin socket {}: {}", admin_path_, ec.message());
    return 1;
  }
  ::chmod(admin_path_.c_str(), 0600);
  if (!app_.server.pid_file.empty()) {
    std::ofstream pf(app_.server.pid_file);
    pf << getpid() << "\n" << admin_path_ << "\n";
    if (!pf) {
      log::error("cannot write pid_file {}", app_.server.pid_file);
      return 1;
    }
  }
  for (const auto& tc : app_.tables) {
    auto t = ipc::table::create(tc.name, tc.schema);
    if (!t) {
      log::error("cannot create table {}: {}", tc.name, t.error().message());
      return 1;
    }
    tables_.push_back(std::move(*t));
  }
  slots_.resize(static_cast<std::size_t>(first_user()) + app_.user_procs.size());
  task_load_.assign(static_cast<std::size_t>(app_.server.task_workers), 0);
  return 0;
}

void master::cleanup_files() {
  if (!app_.server.pid_file.empty()) ::unlink(app_.server.pid_file.c_str());
  if (!admin_path_.empty()) ::unlink(admin_path_.c_str());
  for (const auto& lc : app_.listen) {
    auto url = parse_listen_url(lc.url);
    if (!url.path.empty()) ::unlink(url.path.c_str());
  }
  for (int fd : listen_fds_) ::close(fd);
  listen_fds_.clear();
}

void master::start_all() {
  for (int id = 0; id < static_cast<int>(slots_.size()); ++id) slots_[static_cast<std::size_t>(id)].current = spawn_proc(id);
}

std::shared_ptr<proc_handle> master::spawn_proc(int id) {
  auto h = std::make_shared<proc_handle>();
  h->id = id;
  h->is_task = id >= app_.server.workers && id < first_user();
  bool is_user = id >= first_user();
  auto pair = ipc::socket_pair();
  if (!pair) {
    log::error("socketpair for {}: {}", name_of(id), pair.error().message());
    return nullptr;
  }
  auto [mine, theirs] = *pair;
  std::string fds;
  for (int fd : listen_fds_) fds += (fds.empty() ? "" : ",") + std::to_string(fd);
  std::vector<std::string> argv = {exe_, "worker", "--role", is_user ? "user" : h->is_task ? "task" : "worker",
                                   "--id", std::to_string(id), "--ipc-fd", std::to_string(theirs),
                                   "--config-fd", std::to_string(config_region_.fd()),
                                   "--state-fd", std::to_string(state_region_.fd()),
                                   "--config-name", app_.file};
  ipc::process_options po;
  po.channel = false;
  po.inherit_fds = {theirs, config_region_.fd(), state_region_.fd()};
  if (!tables_.empty()) {
    std::string tfds;
    for (auto& t : tables_) {
      tfds += (tfds.empty() ? "" : ",") + std::to_string(t.fd());
      po.inherit_fds.push_back(t.fd());
    }
    argv.push_back("--table-fds");
    argv.push_back(tfds);
  }
  if (!h->is_task && !is_user && app_.server.mode == "base") {
    argv.push_back("--listen-fds");
    argv.push_back(fds.empty() ? "-" : fds);
    po.inherit_fds.insert(po.inherit_fds.end(), listen_fds_.begin(), listen_fds_.end());
  }
  std::vector<std::pair<int, int>> reactor_pairs;  // (ours, theirs), one per reactor
  if (!h->is_task && !is_user && process_mode()) {
    std::string rfds;
    for (std::size_t r = 0; r < reactor_actors_.size(); ++r) {
      auto rp = ipc::socket_pair();
      if (!rp) continue;
      reactor_pairs.push_back(*rp);
      rfds += (rfds.empty() ? "" : ",") + std::to_string(rp->second);
      po.inherit_fds.push_back(rp->second);
    }
    argv.push_back("--reactor-fds");
    argv.push_back(rfds.empty() ? "-" : rfds);
  }
  po.die_with_parent = true;
  po.kill_on_destroy = true;
  auto p = ipc::process::exec(lp_.context().get_executor(), argv, po);
  ::close(theirs);
  for (auto& [ours, child_end] : reactor_pairs) ::close(child_end);
  if (p) {
    // Each reactor swaps in the new link; the old process keeps its own until it exits.
    for (std::size_t r = 0; r < reactor_pairs.size(); ++r)
      caf::anon_send(reactor_actors_[r], detail::attach_atom::value, id, reactor_pairs[r].first);
  } else {
    for (auto& [ours, child_end] : reactor_pairs) ::close(ours);
  }
  if (!p) {
    ::close(mine);
    log::error("cannot start {}: {}", name_of(id), p.error().message());
    return nullptr;
  }
  h->pid = p->pid();
  h->proc.emplace(std::move(*p));
  handles_[h.get()] = h;
  ipc::link_options lo;
  lo.name = name_of(id);
  auto l = ipc::link::from_fd(lp_.context().get_executor(), mine, lo);
  if (l) h->link.emplace(std::move(*l));
  state_->procs[id].pid.store(h->pid);
  log::info("started {} (pid {})", name_of(id), h->pid);
  spawn(lp_.context(), [this, h]() -> task<void> { co_await link_loop(h); }, "ipc link");
  spawn(lp_.context(), [this, h]() -> task<void> { co_await supervise(h); }, "supervisor");
  return h;
}

task<void> master::supervise(std::shared_ptr<proc_handle> h) {
  auto st = co_await h->proc->wait();
  handles_.erase(h.get());
  auto& sl = slots_[static_cast<std::size_t>(h->id)];
  std::string status = st ? st->to_string() : st.error().message();
  bool crashed = !st || !st->success();
  if (h->link) h->link->close();
  release_connections(*h);
  h->ready.add(0);
  if (h->is_task) fail_routes_of(h->id);
  if (h->retiring || stopping_) {
    log::info("{} (pid {}) finished: {}", name_of(h->id), h->pid, status);
    co_return;
  }
  if (sl.current != h) co_return;
  auto lived = std::chrono::steady_clock::now() - h->started;
  duration delay = 0ms;
  if (crashed) {
    // A process that dies soon after start is probably crashing in a loop: back off.
    sl.crash_streak = lived < 2s ? sl.crash_streak + 1 : 0;
    if (sl.crash_streak > 0) {
      delay = std::min<duration>(100ms * (1 << std::min(sl.crash_streak - 1, 10)), app_.server.restart_backoff_max);
    }
    log::warning("{} (pid {}) exited unexpectedly: {}; restarting in {} ms", name_of(h->id), h->pid, status,
                 std::chrono::duration_cast<std::chrono::milliseconds>(delay).count());
  } else {
    sl.crash_streak = 0;
    log::info("{} (pid {}) exited: {}; starting a new one", name_of(h->id), h->pid, status);
  }
  if (delay > 0ms) co_await sleep(delay);
  if (stopping_ || sl.current != h) co_return;
  state_->procs[h->id].restarts.fetch_add(1);
  sl.current = spawn_proc(h->id);
}

task<void> master::link_loop(std::shared_ptr<proc_handle> h) {
  if (!h->link) co_return;
  for (;;) {
    auto r = co_await h->link->receive();
    if (!r) co_return;
    auto& m = *r;
    switch (m.type) {
      case ipc::message_type::control:
        if (m.payload == "ready") h->ready.done();
        break;
      case ipc::message_type::task:
        route_task(*h, std::move(m));
        break;
      case ipc::message_type::task_result:
        route_result(std::move(m));
        break;
      case ipc::message_type::pipe_message: {
        auto dst = static_cast<std::size_t>(m.dst_worker);
        if (dst < slots_.size() && slots_[dst].current && slots_[dst].current->link) {
          (void)slots_[dst].current->link->send(std::move(m));
        } else {
          log::warning("pipe message from {} to unknown or stopped worker {} dropped", name_of(h->id), m.dst_worker);
        }
        break;
      }
      default:
        log::warning("unexpected {} message from {}; ignored", ipc::type_name(m.type), name_of(h->id));
    }
  }
}

void master::route_task(proc_handle& from, ipc::message m) {
  int n = app_.server.task_workers;
  int chosen = -1;
  if (m.dst_worker != ipc::no_worker) {
    chosen = static_cast<int>(m.dst_worker) - app_.server.workers;
  } else {
    // Least loaded task worker, round-robin among equals (Swoole's task_ipc_mode idle).
    int best_load = 0;
    for (int k = 0; k < n; ++k) {
      int i = (task_rr_ + k) % n;
      auto& sl = slots_[static_cast<std::size_t>(app_.server.workers + i)];
      if (!sl.current || !sl.current->link || !sl.current->link->is_open()) continue;
      if (chosen < 0 || task_load_[static_cast<std::size_t>(i)] < best_load) {
        chosen = i;
        best_load = task_load_[static_cast<std::size_t>(i)];
      }
    }
    task_rr_ = (task_rr_ + 1) % std::max(n, 1);
  }
  auto fail = [&](const std::string& why) {
    ipc::message r;
    r.type = ipc::message_type::task_result;
    r.message_id = m.message_id;
    r.flags = ipc::flag::error;
    r.payload = why;
    if (from.link) (void)from.link->send(std::move(r));
  };
  if (chosen < 0 || chosen >= n) return fail("no task worker available");
  auto& sl = slots_[static_cast<std::size_t>(app_.server.workers + chosen)];
  if (!sl.current || !sl.current->link) return fail("task worker is not running");
  auto rid = ++next_route_;
  // The origin may be a retiring process (a reload in progress): its result still goes
  // back to it, not to its replacement.
  std::weak_ptr<proc_handle> origin;
  if (auto it = handles_.find(&from); it != handles_.end()) origin = it->second;
  if (origin.expired()) return fail("worker is gone");
  routes_[rid] = route{origin, m.message_id, app_.server.workers + chosen};
  ++task_load_[static_cast<std::size_t>(chosen)];
  state_->tasks_started.fetch_add(1);
  state_->tasks_in_flight.fetch_add(1);
  m.message_id = rid;
  if (auto ec = sl.current->link->send(std::move(m))) {
    routes_.erase(rid);
    --task_load_[static_cast<std::size_t>(chosen)];
    state_->tasks_in_flight.fetch_sub(1);
    fail("cannot reach the task worker: " + ec.message());
  }
}

void master::route_result(ipc::message m) {
  auto it = routes_.find(m.message_id);
  if (it == routes_.end()) return;
  auto rt = it->second;
  routes_.erase(it);
  --task_load_[static_cast<std::size_t>(rt.task_worker - app_.server.workers)];
  state_->tasks_done.fetch_add(1);
  state_->tasks_in_flight.fetch_sub(1);
  if (auto origin = rt.origin.lock(); origin && origin->link) {
    m.message_id = rt.origin_id;
    (void)origin->link->send(std::move(m));
  }
}

// A base-mode worker that died (kill -9, crash) never closed its connections: the kernel did.
// Take them off the listener counters so connection_num and max_connections stay true.
void master::release_connections(proc_handle& h) {
  auto& slot = state_->procs[h.id];
  // Only the registered process of the slot owns its counters (a retiring one does not).
  if (slot.pid.load() != h.pid) return;
  std::int64_t total = 0;
  for (std::size_t i = 0; i < app_.listen.size(); ++i) {
    auto n = slot.listener_connections[i].exchange(0);
    if (n <= 0) continue;
    state_->listeners[i].connections.fetch_sub(n);
    total += n;
  }
  slot.connections.store(0);
  if (total > 0) {
    state_->closed.fetch_add(static_cast<std::uint64_t>(total));
    state_->aborted.fetch_add(static_cast<std::uint64_t>(total));
    log::info("{} (pid {}) left {} connection(s) open; released", name_of(h.id), h.pid, total);
  }
}

void master::fail_routes_of(int task_worker_id) {
  for (auto it = routes_.begin(); it != routes_.end();) {
    if (it->second.task_worker != task_worker_id) {
      ++it;
      continue;
    }
    ipc::message r;
    r.type = ipc::message_type::task_result;
    r.message_id = it->first;
    r.flags = ipc::flag::error;
    r.payload = "task worker exited";
    ++it;
    route_result(std::move(r));
  }
}

task<void> master::reload(bool tasks_only) {
  if (stopping_) co_return;
  if (reloading_) {
    log::notice("a reload is already running; ignored");
    co_return;
  }
  reloading_ = true;
  log::notice("reloading {}", tasks_only ? "task workers" : "workers and task workers");
  std::vector<std::shared_ptr<proc_handle>> olds, news;
  int first = tasks_only ? app_.server.workers : 0;
  // User processes are not reloaded (as in Swoole): they restart only when they exit.
  for (int id = first; id < first_user(); ++id) {
    auto& sl = slots_[static_cast<std::size_t>(id)];
    auto old = sl.current;
    auto fresh = spawn_proc(id);
    if (!fresh) continue;
    sl.current = fresh;
    sl.crash_streak = 0;
    news.push_back(fresh);
    if (old) olds.push_back(old);
  }
  // Replacements serve before the old processes stop taking work.
  for (auto& n : news) (void)co_await n->ready.wait(std::max<duration>(app_.server.max_wait_time, 5s));
  for (auto& o : olds) {
    o->retiring = true;
    ipc::message stop;
    stop.type = ipc::message_type::control;
    stop.payload = "stop";
    if (!o->link || o->link->send(std::move(stop))) o->proc->kill(SIGTERM);
  }
  for (auto& o : olds) {
    auto st = co_await o->proc->wait(app_.server.max_wait_time + 500ms);
    if (!st) {
      log::warning("{} (pid {}) did not finish within max_wait_time; killing it", name_of(o->id), o->pid);
      o->proc->kill(SIGKILL);
    }
  }
  log::notice("reload done ({} process(es) replaced)", news.size());
  reloading_ = false;
}

task<void> master::shutdown(std::string why) {
  if (stopping_) co_return;
  stopping_ = true;
  log::notice("{}: stopping {} process(es)", why, slots_.size());
  std::error_code ignored;
  if (admin_) admin_->close(ignored);
  for (auto& a : acceptors_) a->close(ignored);
  std::vector<std::shared_ptr<proc_handle>> all;
  for (auto& sl : slots_)
    if (sl.current) all.push_back(sl.current);
  for (auto& h : all) {
    ipc::message stop;
    stop.type = ipc::message_type::control;
    stop.payload = "stop";
    if (!h->link || !h->link->is_open() || h->link->send(std::move(stop))) h->proc->kill(SIGTERM);
  }
  for (auto& h : all) {
    if (!h->proc || !h->proc->running()) continue;
    auto st = co_await h->proc->wait(app_.server.max_wait_time + 500ms);
    if (!st) {
      log::warning("{} (pid {}) did not stop within max_wait_time; killing it", name_of(h->id), h->pid);
      h->proc->kill(SIGKILL);
      (void)co_await h->proc->wait(2s);
    }
  }
  // Workers are done: their last replies are with the reactors, which flush and close.
  stop_reactors();
  cleanup_files();
  lp_.timers().clear_all();
  log::notice("stopped");
  lp_.stop();
}

std::string master::stats_json() {
  nlohmann::json j;
  j["start_time"] = state_->start_ms.load() / 1000;
  j["mode"] = app_.server.mode;
  std::int64_t conns = 0;
  for (std::size_t i = 0; i < app_.listen.size(); ++i) conns += state_->listeners[i].connections.load();
  j["connection_num"] = conns;
  j["accept_count"] = state_->accepted.load();
  j["close_count"] = state_->closed.load();
  j["abort_count"] = state_->aborted.load();
  j["refused_count"] = state_->refused.load();
  j["request_count"] = state_->messages.load();
  j["tasking_num"] = state_->tasks_in_flight.load();
  j["task_count"] = state_->tasks_done.load();
  static const char* names[] = {"empty", "starting", "idle", "busy", "stopping", "exited"};
  auto procs = [&](int from, int to) {
    nlohmann::json arr = nlohmann::json::array();
    int idle = 0;
    for (int id = from; id < to; ++id) {
      auto& p = state_->procs[id];
      auto stv = p.state.load();
      if (stv == static_cast<std::uint32_t>(proc_state::idle)) ++idle;
      auto& sl = slots_[static_cast<std::size_t>(id)];
      arr.push_back({{"id", id},
                     {"pid", sl.current ? sl.current->pid : 0},
                     {"state", stv < 6 ? names[stv] : "?"},
                     {"messages", p.messages.load()},
                     {"connections", p.connections.load()},
                     {"tasks", p.tasks.load()},
                     {"restarts", p.restarts.load()}});
    }
    return std::make_pair(arr, idle);
  };
  auto [workers, idle_workers] = procs(0, app_.server.workers);
  auto [tasks, idle_tasks] = procs(app_.server.workers, app_.server.workers + app_.server.task_workers);
  j["workers"] = workers;
  j["task_workers"] = tasks;
  auto [users, idle_users] = procs(first_user(), static_cast<int>(slots_.size()));
  (void)idle_users;
  j["user_processes"] = users;
  j["worker_num"] = app_.server.workers;
  j["task_worker_num"] = app_.server.task_workers;
  j["idle_worker_num"] = idle_workers;
  j["task_idle_worker_num"] = idle_tasks;
  return j.dump();
}

task<void> master::admin_loop() {
  for (;;) {
    auto [ec, sock] = co_await admin_->async_accept(asio::experimental::as_tuple(asio::use_awaitable));
    if (ec) co_return;
    spawn(lp_.context(), [this, s = std::make_shared<asio::local::stream_protocol::socket>(std::move(sock))]() -> task<void> {
      co_await admin_session(std::move(*s));
    }, "admin session");
  }
}

task<void> master::admin_session(asio::local::stream_protocol::socket sock) {
  asio::streambuf buf(4096);
  auto read = co_await with_timeout(
      [&]() -> task<std::size_t> { co_return co_await asio::async_read_until(sock, buf, '\n', asio::use_awaitable); }(),
      2s);
  std::string reply;
  if (!read) {
    reply = "{\"error\":\"expected a command line within 2s\"}\n";
  } else {
    std::istream in(&buf);
    std::string cmd;
    std::getline(in, cmd);
    if (!cmd.empty() && cmd.back() == '\r') cmd.pop_back();
    if (cmd == "stats") {
      auto r = co_await request<std::string>(lp_.actors(), manager_, 2s, detail::stats_atom::value);
      reply = (r ? *r : std::string("{\"error\":\"stats request failed\"}")) + "\n";
    } else if (cmd == "reload" || cmd == "reload-tasks") {
      caf::anon_send(manager_, detail::reload_atom::value, cmd == "reload-tasks");
      reply = "{\"ok\":true}\n";
    } else if (cmd == "stop") {
      caf::anon_send(manager_, detail::stop_atom::value);
      reply = "{\"ok\":true}\n";
    } else {
      reply = "{\"error\":\"unknown command; expected stats, reload, reload-tasks or stop\"}\n";
    }
  }
  (void)co_await with_timeout(
      [&]() -> task<void> { co_await asio::async_write(sock, asio::buffer(reply), asio::use_awaitable); }(), 2s);
}

std::optional<std::string> read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

int run_master(const std::string& file, const module_registry& reg) {
  auto text = read_text(file);
  if (!text) {
    std::fprintf(stderr, "swactor: cannot read %s\n", file.c_str());
    return 1;
  }
  config::diagnostics diag;
  auto root = config::load_string(*text, file, diag);
  std::optional<app_config> app;
  std::shared_ptr<const toml::table> shared_root;
  if (root) {
    shared_root = std::make_shared<const toml::table>(std::move(*root));
    app = parse_app_config(*shared_root, file, reg, diag);
  }
  if (!app) {
    std::fprintf(stderr, "%s", diag.to_string().c_str());
    return 1;
  }
  app->root = shared_root;
  compute_user_procs(*app, reg);
  try {
    log::init(*log::parse_level(app->server.log_level), app->server.log_file, "master");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "swactor: %s\n", e.what());
    return 1;
  }
  ::signal(SIGPIPE, SIG_IGN);
  loop lp({.on_stall = stall_action::log});
  master m(lp, *app, *text);
  if (int rc = m.setup()) {
    m.cleanup_files();
    return rc;
  }
  auto& sys = lp.actors();
  master* mp = &m;
  auto manager = sys.spawn([mp, &lp](detail::manager_actor::pointer) -> detail::manager_actor::behavior_type {
    return {
        [mp, &lp](detail::reload_atom, bool tasks_only) {
          spawn(lp.context(), [mp, tasks_only]() -> task<void> { co_await mp->reload(tasks_only); }, "reload");
        },
        [mp, &lp](detail::stop_atom) {
          spawn(lp.context(), [mp]() -> task<void> { co_await mp->shutdown("stop requested"); }, "shutdown");
        },
        [mp](detail::stats_atom) { return mp->stats_json(); },
    };
  });
  m.set_manager(manager);

  asio::signal_set signals(lp.context(), SIGTERM, SIGINT, SIGUSR1);
  signals.add(SIGUSR2);
  std::function<void(std::error_code, int)> on_signal = [&](std::error_code ec, int sig) {
    if (ec) return;
    switch (sig) {
      case SIGUSR1: caf::anon_send(manager, detail::reload_atom::value, false); break;
      case SIGUSR2: caf::anon_send(manager, detail::reload_atom::value, true); break;
      default:
        log::notice("received {}", sig == SIGINT ? "SIGINT" : "SIGTERM");
        caf::anon_send(manager, detail::stop_atom::value);
        return;  // no re-arm: shutdown is already under way
    }
    signals.async_wait(on_signal);
  };
  signals.async_wait(on_signal);
  m.start_reactors();
  m.start_all();
  spawn(lp.context(), [mp]() -> task<void> { co_await mp->admin_loop(); }, "admin");
  log::notice("swactor master started (pid {}), {} worker(s), {} task worker(s)", getpid(), app->server.workers,
              app->server.task_workers);
  lp.run();
  caf::anon_send_exit(manager, caf::exit_reason::user_shutdown);
  lp.context().restart();
  lp.context().poll();
  return m.exit_code();
}

}  // namespace swactor
