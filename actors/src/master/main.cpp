// `swactor run FILE`: the master process. It owns what every other process inherits (the
// shared state, the config memfd, the listening sockets, the tables), and composes the
// roles: the supervisor (processes), the router (messages between them), the admin
// endpoint, and in process mode the acceptor and reactor threads. The manager actor is
// the typed front door for reload, stop and stats (signals and the admin socket use it).

#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include <asio/signal_set.hpp>
#include <nlohmann/json.hpp>

#include "master/admin.hpp"
#include "master/reactors.hpp"
#include "master/router.hpp"
#include "master/supervisor.hpp"
#include "net/tls.hpp"
#include "net_util.hpp"
#include "swactor/actors/server.hpp"
#include "swactor/core/actors.hpp"
#include "swactor/core/log.hpp"
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

std::optional<std::string> read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// What the master process holds for its children, created before any of them starts.
class master_resources {
 public:
  master_resources(const app_config& app, std::string text) : app_(app), text_(std::move(text)) {}
  ~master_resources() { cleanup(); }

  int setup() {
    // The session registry after the counters: room for every stream listener's
    // max_connections open at once.
    std::uint64_t max_open = 0;
    for (const auto& l : app_.listen)
      if (l.endpoint.stream()) max_open += static_cast<std::uint64_t>(l.max_connections);
    const auto slots = server_state::session_slots_for(max_open);
    auto region =
        ipc::shm_region::create("swactor-state", sizeof(server_state) + server_state::session_registry_bytes(slots));
    if (!region) {
      log::error("cannot create the shared state: {}", region.error().message());
      return 1;
    }
    state_region_ = std::move(*region);
    state_ = new (state_region_.data()) server_state();
    state_->session_slots = slots;  // the entries are zero: a fresh memfd reads as zeros
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
    if (app_.listen.size() > static_cast<std::size_t>(kMaxListeners)) {
      log::error("at most {} listeners", kMaxListeners);
      return 1;
    }
    for (const auto& lc : app_.listen) {
      std::string err;
      auto fd = detail::open_listener(lc.endpoint, lc, err);
      if (!fd) {
        log::error("cannot listen on {}: {}", lc.url, err);
        return 1;
      }
      listen_fds_.push_back(*fd);
      if (lc.routes.empty())
        log::info("listening on {} (module {})", lc.url, lc.module);
      else
        log::info("listening on {} ({} routes)", lc.url, lc.routes.size());
    }
    for (const auto& tc : app_.tables) {
      auto t = ipc::table::create(tc.name, tc.schema);
      if (!t) {
        log::error("cannot create table {}: {}", tc.name, t.error().message());
        return 1;
      }
      tables_.push_back(std::move(*t));
    }
    return 0;
  }

  bool write_pid_file(const std::string& admin_path) {
    if (app_.server.pid_file.empty()) return true;
    std::ofstream pf(app_.server.pid_file);
    pf << getpid() << "\n" << admin_path << "\n";
    if (!pf) {
      log::error("cannot write pid_file {}", app_.server.pid_file);
      return false;
    }
    return true;
  }

  void cleanup() {
    if (!app_.server.pid_file.empty()) ::unlink(app_.server.pid_file.c_str());
    for (const auto& lc : app_.listen)
      if (!lc.endpoint.path.empty()) ::unlink(lc.endpoint.path.c_str());
    for (int fd : listen_fds_) ::close(fd);
    listen_fds_.clear();
  }

  server_state& state() { return *state_; }
  detail::spawn_plan plan(const std::string& config_name) const {
    detail::spawn_plan p;
    p.exe = self_exe();
    p.config_name = config_name;
    p.config_fd = config_region_.fd();
    p.state_fd = state_region_.fd();
    p.listen_fds = listen_fds_;
    for (auto& t : tables_) p.table_fds.push_back(t.fd());
    return p;
  }
  const std::vector<int>& listen_fds() const { return listen_fds_; }

 private:
  const app_config& app_;
  std::string text_;
  ipc::shm_region state_region_;
  ipc::shm_region config_region_;
  server_state* state_ = nullptr;
  std::vector<int> listen_fds_;
  std::vector<ipc::table> tables_;
};

std::string stats_json(const app_config& app, const server_state& st, const detail::supervisor& sup,
                       const detail::router& rt) {
  const auto& layout = sup.layout();
  nlohmann::json j;
  j["start_time"] = st.start_ms.load() / 1000;
  j["mode"] = to_string(app.server.mode_kind);
  const auto& rl = sup.last_reload();
  j["reload"] = {{"seq", rl.seq}, {"state", rl.state}, {"reason", rl.error}, {"replaced", rl.replaced}};
  j["connection_num"] = st.open_connections(app.listen.size());
  j["accept_count"] = st.total_accepted();
  j["close_count"] = st.total_closed();
  j["abort_count"] = st.total_aborted();
  j["refused_count"] = st.total_refused();
  j["request_count"] = st.total_messages();
  j["stream_count"] = st.total_streams();
  j["stream_reset_count"] = st.total_streams_reset();
  j["tasking_num"] = st.tasks_in_flight.load();
  j["task_count"] = st.tasks_done.load();
  static const char* names[] = {"empty", "starting", "idle", "busy", "stopping", "exited"};
  auto procs = [&](int from, int to) {
    nlohmann::json arr = nlohmann::json::array();
    int idle = 0;
    for (int id = from; id < to; ++id) {
      const auto& p = st.procs[id];
      auto stv = p.state.load();
      if (stv == static_cast<std::uint32_t>(proc_state::idle)) ++idle;
      arr.push_back({{"id", id},
                     {"pid", sup.pid_of(id)},
                     {"state", stv < 6 ? names[stv] : "?"},
                     {"messages", p.messages.load()},
                     {"connections", p.conns.open.load()},
                     {"streams", p.conns.streams.load()},
                     {"tasks", p.tasks.load()},
                     {"restarts", p.restarts.load()}});
    }
    return std::make_pair(arr, idle);
  };
  auto [workers, idle_workers] = procs(0, layout.workers());
  auto [tasks, idle_tasks] = procs(layout.first_task(), layout.first_user());
  auto [users, idle_users] = procs(layout.first_user(), layout.total());
  (void)idle_users;
  j["workers"] = workers;
  j["task_workers"] = tasks;
  j["user_processes"] = users;
  j["worker_num"] = layout.workers();
  j["task_worker_num"] = layout.task_workers();
  j["idle_worker_num"] = idle_workers;
  j["task_idle_worker_num"] = idle_tasks;
  j["bus"] = rt.bus().stats();
  return j.dump();
}

}  // namespace

int run_master(const std::string& file, const module_registry& reg) {
  auto text = read_text(file);
  if (!text) {
    std::fprintf(stderr, "swactor: cannot read %s\n", file.c_str());
    return 1;
  }
  config::diagnostics diag;
  auto parsed = load_app_config_text(*text, file, reg, diag);
  if (!parsed) {
    std::fprintf(stderr, "%s", diag.to_string().c_str());
    return 1;
  }
  const app_config app = std::move(*parsed);
  try {
    log::init(*log::parse_level(app.server.log_level), app.server.log_file, "master");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "swactor: %s\n", e.what());
    return 1;
  }
  ::signal(SIGPIPE, SIG_IGN);
  loop lp({.on_stall = stall_action::log, .stall_check_after = std::chrono::milliseconds(50)});
  master_resources res(app, *text);
  if (int rc = res.setup()) return rc;
  auto& state = res.state();

  // TLS: one set of ticket keys for every process; the master's own contexts serve the
  // reactors in process mode and check new certificates on reload in both modes.
  net::tls_store tls;
  {
    std::string err;
    if (!net::make_ticket_keys(state.tls_ticket_keys)) {
      log::error("cannot make TLS session ticket keys: the random generator failed");
      return 1;
    }
    if (!tls.load(app, &state.tls_ticket_keys, err)) {
      log::error("{}", err);
      return 1;
    }
  }

  detail::router rt(app, state);
  std::unique_ptr<detail::reactor_pool> reactors;
  auto plan = res.plan(app.file);
  if (app.process_mode()) {
    reactors = std::make_unique<detail::reactor_pool>(lp, app, state, &tls);
    auto* pool = reactors.get();
    plan.reactor_links = [pool](int id) { return pool->make_links(id); };
    plan.reactor_links_done = [pool](int id, bool ok) { pool->links_done(id, ok); };
  }
  detail::supervisor sup(lp, app, state, std::move(plan), rt);
  rt.set_supervisor(sup);

  bool stopping = false;
  std::unique_ptr<detail::admin_endpoint> admin;
  auto shutdown = [&](std::string why) -> task<void> {
    if (stopping) co_return;
    stopping = true;
    log::notice("{}: stopping {} process(es)", why, sup.layout().total());
    if (admin) admin->close();
    if (reactors) {
      reactors->stop_accepting();
      reactors->go_away();  // HTTP/2 clients learn it now, while their streams are answered
    }
    co_await sup.stop_all();
    // Workers are done: their last replies are with the reactors, which flush and close.
    if (reactors) reactors->stop();
    if (admin) co_await admin->finish(3s);  // a `swactor reload` may still be polling
    res.cleanup();
    lp.timers().clear_all();
    log::notice("stopped");
    lp.stop();
  };
  auto manager = lp.actors().spawn([&](detail::manager_actor::pointer) -> detail::manager_actor::behavior_type {
    return {
        [&](detail::reload_atom, bool tasks_only) {
          if (!tasks_only && !tls.empty()) {
            // New certificates first: a bad one refuses the reload (base-mode workers would
            // fail to start with it), and everything keeps its current certificates.
            std::string err;
            if (!tls.reload(err)) {
              log::error("reload refused, the running processes keep serving with the certificates they have: {}", err);
              sup.reload_refused("the new TLS certificates did not load: " + err);
              return;
            }
            log::notice("TLS certificates re-read; new connections get them, open ones keep theirs");
          }
          spawn(lp.context(), [&sup, tasks_only]() -> task<void> { co_await sup.reload(tasks_only); }, "reload");
        },
        [&](detail::stop_atom) {
          spawn(lp.context(), [&]() -> task<void> { co_await shutdown("stop requested"); }, "shutdown");
        },
        [&](detail::stats_atom) { return stats_json(app, state, sup, rt); },
        [&](detail::bus_publish_atom, const std::string& topic, const std::string& text) {
          nlohmann::json j;
          if (!bus::valid_topic(topic)) {
            j["error"] = "invalid topic \"" + topic + "\": dot-separated tokens without spaces, '*' or '>'";
          } else if (topic.size() + text.size() > app.bus.max_message_size) {
            j["error"] = "message larger than bus.max_message_size";
          } else {
            j["ok"] = true;
            j["delivered"] = rt.bus().publish_from_operator(topic, text);
          }
          return j.dump();
        },
        [&](detail::bus_stats_atom) { return rt.bus().stats().dump(); },
    };
  });
  admin = std::make_unique<detail::admin_endpoint>(lp, manager);
  std::string err;
  auto admin_path = app.server.admin_socket.empty() ? "/tmp/swactor-" + std::to_string(getpid()) + ".sock"
                                                    : app.server.admin_socket;
  if (admin->open(admin_path, err) || !res.write_pid_file(admin_path)) {
    if (!err.empty()) log::error("{}", err);
    caf::anon_send_exit(manager, caf::exit_reason::user_shutdown);
    return 1;
  }

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
  if (reactors) reactors->start(res.listen_fds());
  sup.start_all();
  admin->start();
  log::notice("swactor master started (pid {}), {} worker(s), {} task worker(s)", getpid(), app.server.workers,
              app.server.task_workers);
  lp.run();
  caf::anon_send_exit(manager, caf::exit_reason::user_shutdown);
  lp.context().restart();
  lp.context().poll();
  return 0;
}

}  // namespace swactor
