// The server's process lifecycle in base mode: crash and restart, max_request recycling,
// reload, stop, stats, max_connections and heartbeat.
#include <atomic>
#include <fstream>
#include <mutex>
#include <regex>
#include <set>

#include "server_helpers.hpp"

using namespace std::chrono_literals;
namespace t = swactor::testing;
using namespace swactor::testing::server;

namespace {

// A probe on {port} (eof "\n") and a raw echo on {port2} (for `swactor bench -f long_tcp`).
const char* kProbeAndEcho = R"(
[[listen]]
url = "tcp://127.0.0.1:{port}"
module = "probe"
framing = { type = "eof", delimiter = "\n" }

[[listen]]
url = "tcp://127.0.0.1:{port2}"
module = "echo"
)";


// `whoami` on a fresh connection.
std::optional<std::pair<int, pid_t>> whoami(std::uint16_t port) {
  auto c = connect_tcp("127.0.0.1", port);
  if (!c) return std::nullopt;
  return parse_whoami(c.ask("whoami"));
}

// Polls stats until `pred(stats)` holds; returns the elapsed time or nullopt.
template <class Pred>
std::optional<std::chrono::milliseconds> poll_stats(const server_under_test& srv, Pred pred, t::duration timeout,
                                                    t::duration every = 10ms) {
  const auto t0 = clock_type::now();
  for (;;) {
    auto s = srv.stats();
    if (s.is_object() && pred(s)) return std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t0);
    if (clock_type::now() - t0 >= timeout) return std::nullopt;
    std::this_thread::sleep_for(every);
  }
}

bool disjoint(const std::vector<pid_t>& a, const std::vector<pid_t>& b) {
  for (auto x : a)
    for (auto y : b)
      if (x == y) return false;
  return true;
}

bool all_serving(const json& s) {
  for (const char* k : {"workers", "task_workers"})
    for (auto& w : s.at(k)) {
      auto st = w.at("state").get<std::string>();
      if (st != "idle" && st != "busy") return false;
    }
  return true;
}

}  // namespace

TEST_CASE("server: kill -9 of a worker under load: replaced within 1 s, still serving", "[server][supervision]") {
  server_under_test srv("workers = 2", kProbeAndEcho);
  // Bounded load on the echo listener for the whole test: 4 connections, 2 s.
  t::process load({t::swactor_bin(), "bench", "-s", "tcp://127.0.0.1:" + std::to_string(srv.port2), "-f",
                   "long_tcp", "-c", "4", "-d", "2s", "--timeout", "1s"});
  std::this_thread::sleep_for(300ms);
  auto before = srv.stats();
  const auto victim = srv.worker_pids(before).at(0);
  const auto other = srv.worker_pids(before).at(1);
  REQUIRE(::kill(victim, SIGKILL) == 0);
  auto took = poll_stats(srv, [&](const json& s) {
    auto p = s.at("workers").at(0).at("pid").get<pid_t>();
    return p != 0 && p != victim;
  }, 3s, 5ms);
  REQUIRE(took);
  WARN("replacement pid visible in stats after " << took->count() << " ms");
  CHECK(took->count() <= 1500);
  auto after = srv.stats();
  CHECK(after.at("workers").at(0).at("restarts").get<int>() == 1);
  CHECK(after.at("workers").at(1).at("pid").get<pid_t>() == other);
  CHECK(srv.wait_log("worker#0 \\(pid " + std::to_string(victim) + "\\) exited unexpectedly", 2s));
  // The replacement serves: new connections are answered (by either worker) and worker 0
  // answers eventually.
  REQUIRE(poll_stats(srv, all_serving, 3s));
  std::set<int> ids;
  for (int i = 0; i < 40; ++i) {
    auto w = whoami(srv.port);
    REQUIRE(w);
    ids.insert(w->first);
    CHECK(w->second != victim);
  }
  auto load_rc = load.wait(10s);
  REQUIRE(load_rc);
  INFO("bench: " << load.stdout_text() << load.stderr_text());
  CHECK(srv.count_log("exited unexpectedly") == 1);
  srv.extra_pids.push_back(victim);
  srv.stop_and_check();
}

// A worker killed with open connections never runs finish_close for them: the shared
// per-listener connection counter (stats connection_num, and the max_connections check)
// must still drop back.
TEST_CASE("server: connections of a killed worker are released from connection_num", "[server][supervision]") {
  server_under_test srv("workers = 1", kProbe);
  std::vector<conn> cs;
  for (int i = 0; i < 5; ++i) {
    cs.push_back(connect_tcp("127.0.0.1", srv.port));
    REQUIRE(parse_whoami(cs.back().ask("whoami")));
  }
  CHECK(srv.stats().at("connection_num").get<int>() == 5);
  const auto victim = srv.worker_pids(srv.stats()).at(0);
  REQUIRE(::kill(victim, SIGKILL) == 0);
  for (auto& c : cs) CHECK(c.wait_closed(2s));
  cs.clear();
  REQUIRE(poll_stats(srv, [&](const json& s) {
    auto p = s.at("workers").at(0).at("pid").get<pid_t>();
    return p != victim && all_serving(s);
  }, 3s));
  auto c = connect_tcp("127.0.0.1", srv.port);
  REQUIRE(parse_whoami(c.ask("whoami")));
  auto ok = poll_stats(srv, [](const json& s) { return s.at("connection_num").get<int>() == 1; }, 2s);
  INFO("stats: " << srv.stats().dump());
  CHECK(ok);
  srv.extra_pids.push_back(victim);
  srv.stop_and_check();
}

namespace {

struct recycle_run {
  int replies = 0;
  std::vector<std::string> failed;
  std::set<pid_t> pids;
};

// `clients` threads, `per_client` requests each, one connection per request.
recycle_run whoami_per_connection(std::uint16_t port, int clients, int per_client) {
  recycle_run out;
  std::mutex mu;
  auto client = [&](int who) {
    for (int i = 0; i < per_client; ++i) {
      auto c = connect_tcp("127.0.0.1", port);
      std::optional<std::string> r;
      if (c) r = c.ask("whoami", 3s);
      auto w = parse_whoami(r);
      std::lock_guard lk(mu);
      if (w) {
        ++out.replies;
        out.pids.insert(w->second);
      } else {
        out.failed.push_back("client " + std::to_string(who) + " request " + std::to_string(i) +
                             (c ? " (connected, no reply)" : " (no connection)"));
      }
    }
  };
  std::vector<std::thread> ts;
  for (int k = 0; k < clients; ++k) ts.emplace_back(client, k);
  for (auto& th : ts) th.join();
  return out;
}

int total_restarts(const json& s) {
  int n = 0;
  for (auto& w : s.at("workers")) n += w.at("restarts").get<int>();
  return n;
}

}  // namespace

TEST_CASE("server: max_request recycles workers, restarts visible in stats", "[server][supervision]") {
  server_under_test srv("workers = 2\nmax_request = 50", kProbe);
  // One client, one connection per request.
  auto r = whoami_per_connection(srv.port, 1, 400);
  // 400 messages, 50 per worker life: at least 6 recycles in total.
  auto s = srv.stats();
  INFO("stats: " << s.dump() << "\npids seen: " << r.pids.size() << ", replies " << r.replies);
  CHECK(total_restarts(s) >= 6);
  CHECK(r.pids.size() >= 7);
  CHECK(srv.count_log("max_request reached") >= 6);
  CHECK(srv.count_log("exited unexpectedly") == 0);
  // Still serving afterwards.
  auto c = connect_tcp("127.0.0.1", srv.port);
  CHECK(parse_whoami(c.ask("whoami")));
  srv.stop_and_check();
}

// Regression guard, fixed bug of the former worker.cpp: serve() called note_message() before invoke(on_receive). When the
// message reaches max_request, begin_stop() spawns stop_sequence, and asio's co_spawn
// dispatches it inline (we are on the loop thread): it runs at once up to its
// in_flight_.wait(), which sees 0 because the triggering message's handler is not counted
// yet, so it marks every session close_requested and closes the idle ones -- including the
// one whose message is about to be handled. The handler's send() then fails with "session is
// closed or unknown": every recycle loses exactly one reply (the client sees EOF). Fix: count
// the message in in_flight_ before note_message (or post the stop). With concurrent
// clients, messages read after close_requested is set are lost the same way.
TEST_CASE("server: max_request recycling loses no reply", "[server][supervision]") {
  server_under_test srv("workers = 2\nmax_request = 50", kProbe);
  for (int clients : {1, 2}) {
    auto r = whoami_per_connection(srv.port, clients, 400 / clients);
    INFO(clients << " client(s); failures: " << r.failed.size()
                 << (r.failed.empty() ? "" : ", first: " + r.failed.front()));
    INFO("send failures in the log: " << srv.count_log("send to session [0-9]+ failed"));
    CHECK(r.replies == 400);
    CHECK(r.failed.empty());
  }
  srv.stop_and_check();
}

TEST_CASE("server: reload replaces worker pids and keeps serving", "[server][reload]") {
  server_under_test srv("workers = 2\ntask_workers = 1\nmax_wait_time = \"1s\"", kProbe);
  auto check_serving = [&] {
    auto c = connect_tcp("127.0.0.1", srv.port);
    REQUIRE(c);
    CHECK(parse_whoami(c.ask("whoami")));
    CHECK(c.ask("task_wait 2000 after-reload") == "after-reload");
  };
  auto s0 = srv.stats();
  const auto w0 = srv.worker_pids(s0), t0 = srv.worker_pids(s0, "task_workers");
  srv.extra_pids.insert(srv.extra_pids.end(), w0.begin(), w0.end());
  srv.extra_pids.insert(srv.extra_pids.end(), t0.begin(), t0.end());

  // `swactor reload --pid-file`: workers and task workers.
  auto r = t::run({t::swactor_bin(), "reload", "--pid-file", srv.pid_file}, 30s);
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);  // slow: see the next test
  // Answered once the new code was tried and accepted.
  CHECK(r.out.find("\"ok\":true") != std::string::npos);
  CHECK((r.out.find("\"state\":\"reloading\"") != std::string::npos ||
         r.out.find("\"state\":\"done\"") != std::string::npos));
  REQUIRE(srv.wait_log("reload done", 10s));
  auto s1 = srv.stats();
  const auto w1 = srv.worker_pids(s1), t1 = srv.worker_pids(s1, "task_workers");
  CHECK(disjoint(w0, w1));
  CHECK(disjoint(t0, t1));
  for (auto p : w0) CHECK_FALSE(pid_alive(p));
  for (auto p : t0) CHECK_FALSE(pid_alive(p));
  check_serving();
  srv.extra_pids.insert(srv.extra_pids.end(), w1.begin(), w1.end());
  srv.extra_pids.insert(srv.extra_pids.end(), t1.begin(), t1.end());

  // SIGUSR1: the same.
  REQUIRE(srv.proc->signal(SIGUSR1));
  REQUIRE(poll_stats(srv, [&](const json& s) {
    return disjoint(w1, srv.worker_pids(s)) && srv.count_log("reload done") >= 2;
  }, 10s));
  auto s2 = srv.stats();
  const auto w2 = srv.worker_pids(s2), t2 = srv.worker_pids(s2, "task_workers");
  CHECK(disjoint(t1, t2));
  check_serving();

  // SIGUSR2: task workers only.
  REQUIRE(srv.proc->signal(SIGUSR2));
  REQUIRE(poll_stats(srv, [&](const json&) { return srv.count_log("reload done") >= 3; }, 10s));
  auto s3 = srv.stats();
  CHECK(srv.worker_pids(s3) == w2);
  CHECK(disjoint(t2, srv.worker_pids(s3, "task_workers")));
  check_serving();
  srv.extra_pids.insert(srv.extra_pids.end(), t2.begin(), t2.end());
  srv.stop_and_check();
}

// Regression guards for fixed bugs seen on reload (base mode; the files named are former ones):
// 1. `swactor reload` waits ~5 s (its receive timeout) for the reply to end: the admin
//    session's accepted socket has no FD_CLOEXEC (master.cpp admin_loop / asio accept) and
//    the replacement workers fork+exec'd while it is open inherit it, so the client sees no
//    EOF until they exit.
// 2. Afterwards `swactor stats` shows the new workers as "exited": the retiring process's
//    stop_sequence (worker.cpp) writes proc_state::exited (and in_flight = 0) into the shared
//    per-id slot that the replacement already owns; its connection/messages counters land
//    there too.
TEST_CASE("server: reload answers at once and stats shows the new workers serving", "[server][reload]") {
  server_under_test srv("workers = 2\ntask_workers = 1\nmax_wait_time = \"1s\"", kProbe);
  const auto before = srv.all_pids(srv.stats());
  srv.extra_pids = before;
  auto r = t::run({t::swactor_bin(), "reload", "--pid-file", srv.pid_file}, 10s);
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.elapsed_s < 2.0);
  REQUIRE(srv.wait_log("reload done", 10s));
  auto ok = poll_stats(srv, [&](const json& s) { return disjoint(before, srv.all_pids(s)) && all_serving(s); }, 2s);
  INFO("stats: " << srv.stats().dump());
  CHECK(ok);
  CHECK(srv.stats().at("idle_worker_num") == 2);
  srv.stop_and_check();
}

// A stop that lands while a reload runs (checking the new code, starting replacements or
// retiring the old processes): the master exits cleanly (no crash at its end: the reload and
// the process watches finish before the supervisor goes) and leaves no process behind, old
// or new. Both modes: process mode also tears down reactor threads with links still open.
TEST_CASE("server: a stop during a reload exits cleanly and leaves no process behind", "[server][stop][reload]") {
  auto mode = GENERATE(as<std::string>{}, "base", "process");
  for (auto delay : {0ms, 30ms, 150ms}) {
    INFO("mode " << mode << ", SIGTERM " << delay.count() << " ms after SIGUSR1");
    server_under_test srv("mode = \"" + mode + "\"\nworkers = 2\ntask_workers = 1\nmax_wait_time = \"1s\"", kProbe);
    auto c = connect_tcp("127.0.0.1", srv.port);
    REQUIRE(c);
    REQUIRE(parse_whoami(c.ask("whoami")));
    srv.extra_pids = srv.all_pids(srv.stats());
    REQUIRE(srv.proc->signal(SIGUSR1));
    std::this_thread::sleep_for(delay);
    srv.stop_and_check();
    // Nothing is started once the stop began (a reload used to start its replacements anyway).
    // (The master's notice; a retiring worker's own "stopping: reload" may come earlier.)
    const auto text = srv.log();
    std::smatch notice;
    REQUIRE(std::regex_search(text, notice, std::regex(R"(stopping [0-9]+ process)")));
    const auto stop_at = static_cast<std::size_t>(notice.position(0));
    INFO(text.substr(stop_at));
    CHECK(std::regex_search(text.substr(stop_at), std::regex(R"(started (worker|task))")) == false);
    // Replacements a reload started are gone too (they name the config in their arguments).
    const auto until = clock_type::now() + 3s;
    auto leftovers = [&] {
      std::vector<std::string> found;
      for (const auto& e : std::filesystem::directory_iterator("/proc")) {
        std::ifstream f(e.path() / "cmdline");
        std::string cmd((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        if (cmd.find(srv.dir.path().string()) != std::string::npos) found.push_back(e.path().filename().string());
      }
      return found;
    };
    while (!leftovers().empty() && clock_type::now() < until) std::this_thread::sleep_for(20ms);
    CHECK(leftovers().empty());
  }
}

TEST_CASE("server: SIGTERM finishes running handlers and leaves no process behind", "[server][stop]") {
  server_under_test srv("workers = 2\ntask_workers = 2", kProbe);
  auto idle = connect_tcp("127.0.0.1", srv.port);
  REQUIRE(parse_whoami(idle.ask("whoami")));
  auto busy = connect_tcp("127.0.0.1", srv.port);
  REQUIRE(busy.send_all("sleep 400\n"));
  std::this_thread::sleep_for(100ms);
  const auto started = clock_type::now();
  srv.stop_and_check();
  // The running handler finished and its reply was written before the connection closed.
  CHECK(busy.read_line(1s) == "slept 400");
  CHECK(idle.wait_closed(1s));
  CHECK(clock_type::now() - started < 5s);
  CHECK(srv.wait_log("stopped", 1s));
}

TEST_CASE("server: `swactor stop --pid-file` stops it too", "[server][stop]") {
  server_under_test srv("workers = 1", kProbe);
  const auto pids = srv.all_pids(srv.stats());
  auto r = t::run({t::swactor_bin(), "stop", "--pid-file", srv.pid_file}, 5s);
  CHECK(r.exit_code == 0);
  auto code = srv.proc->wait(10s);
  REQUIRE(code);
  CHECK(*code == 0);
  for (auto p : pids) {
    const auto until = clock_type::now() + 2s;
    while (pid_alive(p) && clock_type::now() < until) std::this_thread::sleep_for(10ms);
    CHECK_FALSE(pid_alive(p));
  }
}

TEST_CASE("server: stats JSON fields and counters", "[server][stats]") {
  server_under_test srv("workers = 2\ntask_workers = 1", kProbe);
  auto s0 = srv.stats();
  REQUIRE(s0.is_object());
  for (const char* k : {"start_time", "connection_num", "accept_count", "close_count", "abort_count",
                        "refused_count", "request_count", "stream_count", "stream_reset_count", "tasking_num",
                        "task_count", "worker_num",
                        "task_worker_num", "idle_worker_num", "task_idle_worker_num", "workers", "task_workers"}) {
    INFO(k);
    CHECK(s0.contains(k));
  }
  const auto now_s = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch()).count();
  CHECK(std::abs(s0.at("start_time").get<long>() - now_s) < 60);
  CHECK(s0.at("worker_num") == 2);
  CHECK(s0.at("task_worker_num") == 1);
  REQUIRE(s0.at("workers").size() == 2);
  REQUIRE(s0.at("task_workers").size() == 1);
  for (auto& w : s0.at("workers"))
    for (const char* k : {"id", "pid", "state", "messages", "connections", "tasks", "restarts"}) {
      INFO(k);
      CHECK(w.contains(k));
    }
  CHECK(s0.at("workers").at(1).at("id") == 1);
  CHECK(s0.at("task_workers").at(0).at("id") == 2);
  CHECK(s0.at("idle_worker_num") == 2);
  CHECK(s0.at("connection_num") == 0);
  CHECK(s0.at("request_count") == 0);

  {
    auto c = connect_tcp("127.0.0.1", srv.port);
    auto w = parse_whoami(c.ask("whoami"));
    REQUIRE(w);
    for (int i = 0; i < 9; ++i) REQUIRE(c.ask("whoami"));
    CHECK(c.ask("task_wait 2000 t1") == "t1");
    CHECK(c.ask("task_wait 2000 t2") == "t2");
    auto s = srv.stats();
    CHECK(s.at("connection_num") == 1);
    CHECK(s.at("accept_count") == 1);
    CHECK(s.at("request_count") == 12);
    CHECK(s.at("task_count") == 2);
    CHECK(s.at("tasking_num") == 0);
    auto& mine = s.at("workers").at(w->first);
    CHECK(mine.at("pid") == w->second);
    CHECK(mine.at("messages") == 12);
    CHECK(mine.at("connections") == 1);
    CHECK(mine.at("tasks") == 2);  // tasks started by this worker
    CHECK(s.at("task_workers").at(0).at("tasks") == 2);  // tasks run by the task worker
    // The probe's `stats` is the worker's view.
    auto ws = json::parse(c.ask("stats").value_or("null"));
    CHECK(ws.at("worker_id") == w->first);
    CHECK(ws.at("worker_request_count") == 13);
  }
  auto closed = poll_stats(srv, [](const json& s) { return s.at("connection_num") == 0 && s.at("close_count") == 1; }, 2s);
  CHECK(closed);
  CHECK(srv.stats().at("abort_count") == 0);
  srv.stop_and_check();
}

TEST_CASE("server: max_connections refuses beyond the limit, with a log line", "[server][limits]") {
  server_under_test srv("workers = 2", R"(
[[listen]]
url = "tcp://127.0.0.1:{port}"
module = "probe"
max_connections = 3
framing = { type = "eof", delimiter = "\n" }
)");
  std::vector<conn> cs;
  for (int i = 0; i < 3; ++i) {
    cs.push_back(connect_tcp("127.0.0.1", srv.port));
    REQUIRE(parse_whoami(cs.back().ask("whoami")));
  }
  auto extra = connect_tcp("127.0.0.1", srv.port);  // the kernel accepts, the server closes
  REQUIRE(extra);
  CHECK(extra.wait_closed(2s));
  CHECK(srv.wait_log("max_connections \\(3\\) reached, refusing", 2s));
  CHECK(srv.stats().at("refused_count") == 1);
  for (auto& c : cs) CHECK(parse_whoami(c.ask("whoami")));
  // Below the limit again: accepted.
  cs.pop_back();
  REQUIRE(poll_stats(srv, [](const json& s) { return s.at("connection_num") == 2; }, 2s));
  auto again = connect_tcp("127.0.0.1", srv.port);
  CHECK(parse_whoami(again.ask("whoami")));
  srv.stop_and_check();
}

TEST_CASE("server: heartbeat_idle_time closes idle connections only", "[server][limits]") {
  server_under_test srv("workers = 1", R"(
[[listen]]
url = "tcp://127.0.0.1:{port}"
module = "probe"
heartbeat_idle_time = "400ms"
heartbeat_check_interval = "50ms"
framing = { type = "eof", delimiter = "\n" }
)");
  auto idle = connect_tcp("127.0.0.1", srv.port);
  auto active = connect_tcp("127.0.0.1", srv.port);
  REQUIRE(parse_whoami(idle.ask("whoami")));
  const auto t0 = clock_type::now();
  bool idle_closed = false;
  // The active one sends every 100 ms for 1.2 s; the idle one must be closed meanwhile.
  for (int i = 0; i < 12; ++i) {
    CHECK(parse_whoami(active.ask("whoami")));
    if (!idle_closed && idle.wait_closed(100ms)) {
      idle_closed = true;
      auto after = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t0).count();
      INFO("idle connection closed after " << after << " ms");
      CHECK(after >= 350);
    } else if (idle_closed) {
      std::this_thread::sleep_for(100ms);
    }
  }
  CHECK(idle_closed);
  CHECK(parse_whoami(active.ask("whoami")));
  CHECK(srv.wait_log("closing idle session", 1s));
  srv.stop_and_check();
}
