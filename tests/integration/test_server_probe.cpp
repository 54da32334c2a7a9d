// The module API through the `probe` module: tasks (timeouts, failures, wait_all), pipe
// messages between workers, session info and bind, close and reset.
#include <signal.h>

#include <cstdio>

#include "server_helpers.hpp"

using namespace std::chrono_literals;
namespace t = swactor::testing;
using namespace swactor::testing::server;

TEST_CASE("server: probe task_wait: timeout, then the next call gets its own result", "[server][probe][tasks]") {
  server_under_test srv("workers = 1\ntask_workers = 1", kProbe);
  auto c = connect_tcp("127.0.0.1", srv.port);
  REQUIRE(c);
  CHECK(c.ask("task_wait 2000 plain") == "plain");
  CHECK(c.ask("task_wait 2000 sleep:10:slept") == "slept");

  auto timed_out = c.ask("task_wait 100 sleep:600:stale");
  REQUIRE(timed_out);
  CHECK(timed_out->rfind("error: ", 0) == 0);
  // The stale result arrives while the next call waits: it must not be taken for it.
  CHECK(c.ask("task_wait 2000 sleep:700:fresh") == "fresh");
  CHECK(c.ask("task_wait 2000 again") == "again");

  auto failed = c.ask("task_wait 2000 fail:boom");
  REQUIRE(failed);
  CHECK(failed->rfind("error: ", 0) == 0);
  CHECK(srv.wait_log("failed in on_task .*boom", 2s));
  CHECK(c.ask("task_wait 2000 after-failure") == "after-failure");
  srv.stop_and_check();
}

TEST_CASE("server: probe task_wait_all returns partial results in order", "[server][probe][tasks]") {
  server_under_test srv("workers = 1\ntask_workers = 2", kProbe);
  auto c = connect_tcp("127.0.0.1", srv.port);
  REQUIRE(c);
  CHECK(c.ask("task_wait_all 2000 a b c") == "a b c");
  const auto t0 = clock_type::now();
  CHECK(c.ask("task_wait_all 400 one sleep:1500:slow three fail:x sleep:20:five") == "one timeout three error five");
  const auto took = clock_type::now() - t0;
  CHECK(took < 1400ms);  // one deadline for the batch, not one per task
  CHECK(c.ask("task_wait_all 2000 x y") == "x y");
  srv.stop_and_check();
}

TEST_CASE("server: probe without task workers reports the error", "[server][probe][tasks]") {
  server_under_test srv("workers = 1", kProbe);
  auto c = connect_tcp("127.0.0.1", srv.port);
  auto r = c.ask("task_wait 500 x");
  REQUIRE(r);
  CHECK(r->rfind("error: ", 0) == 0);
  CHECK(c.ask("nonsense").value_or("").rfind("error: unknown command", 0) == 0);
  srv.stop_and_check();
}

TEST_CASE("server: probe send_message between two workers", "[server][probe][pipe]") {
  server_under_test srv("workers = 2", kProbe);
  // Open connections until both workers hold one (the kernel picks the accepting worker).
  std::optional<conn> on[2];
  for (int i = 0; i < 200 && (!on[0] || !on[1]); ++i) {
    auto c = connect_tcp("127.0.0.1", srv.port);
    auto w = parse_whoami(c.ask("whoami"));
    REQUIRE(w);
    if (!on[w->first]) on[w->first].emplace(std::move(c));
  }
  REQUIRE(on[0]);
  REQUIRE(on[1]);
  CHECK(on[1]->ask("inbox") == "");
  CHECK(on[0]->ask("send_message 1 hello from zero") == "ok");
  CHECK(on[0]->ask("send_message 1 second") == "ok");
  CHECK(on[1]->ask("send_message 0 back") == "ok");
  std::optional<std::string> inbox1, inbox0;
  for (int i = 0; i < 100; ++i) {
    inbox1 = on[1]->ask("inbox");
    inbox0 = on[0]->ask("inbox");
    if (inbox1 == "0:hello from zero|0:second" && inbox0 == "1:back") break;
    std::this_thread::sleep_for(10ms);
  }
  CHECK(inbox1 == "0:hello from zero|0:second");
  CHECK(inbox0 == "1:back");
  CHECK(on[0]->ask("send_message 7 nowhere").value_or("").rfind("error: ", 0) == 0);
  srv.stop_and_check();
}

TEST_CASE("server: probe info in process mode comes from the reactor's conn_open", "[server][probe][process]") {
  server_under_test srv("mode = \"process\"\nworkers = 1\nreactor_threads = 1", kProbe);
  auto c = connect_tcp("127.0.0.1", srv.port);
  REQUIRE(c);
  auto info = c.ask("info");
  REQUIRE(info);
  CHECK_THAT(*info, Catch::Contains("remote=127.0.0.1:") && Catch::Contains("listener=0") &&
                        Catch::Contains("worker=0") && Catch::Contains("reactor=0") && Catch::Contains(" protocol=eof"));
  srv.stop_and_check();
}

TEST_CASE("server: probe info, bind, whoami, close and reset", "[server][probe]") {
  server_under_test srv("workers = 1", kProbe);
  auto c = connect_tcp("127.0.0.1", srv.port);
  auto w = parse_whoami(c.ask("whoami"));
  REQUIRE(w);
  CHECK(w->first == 0);
  CHECK(w->second == srv.worker_pids(srv.stats()).at(0));
  auto info = c.ask("info");
  REQUIRE(info);
  CHECK_THAT(*info, Catch::Contains("remote=127.0.0.1:") && Catch::Contains("listener=0") &&
                        Catch::Contains("worker=0") && Catch::Contains("reactor=-1") && Catch::Contains("uid=0"));
  CHECK_THAT(*info, !Catch::Contains("last_receive_ms=0 ") && !Catch::EndsWith("last_receive_ms=0"));
  CHECK_THAT(*info, Catch::Contains(" protocol=eof"));  // the framing codec's name
  CHECK(c.ask("bind 4242") == "ok");
  CHECK_THAT(c.ask("info").value_or(""), Catch::Contains("uid=4242"));
  CHECK(c.ask("sleep 50") == "slept 50");
  CHECK(c.ask("close") == "bye");
  CHECK(c.wait_closed(2s));

  auto r = connect_tcp("127.0.0.1", srv.port);
  REQUIRE(r.send_all("reset\n"));
  CHECK(r.wait_closed(2s));
  // Both were counted as closed; the reset one as aborted.
  REQUIRE(srv.wait_workers_ready(1s));
  const auto until = clock_type::now() + 2s;
  json s;
  while (clock_type::now() < until) {
    s = srv.stats();
    if (s.at("close_count") == 2) break;
    std::this_thread::sleep_for(10ms);
  }
  CHECK(s.at("close_count") == 2);
  CHECK(s.at("abort_count") == 1);
  srv.stop_and_check();
}

TEST_CASE("server: probe answers datagrams too", "[server][probe]") {
  server_under_test srv("workers = 1", R"(
[[listen]]
url = "udp://127.0.0.1:{udp}"
module = "probe"
)");
  auto c = udp_socket();
  REQUIRE(udp_send(c, srv.udp_port, "whoami"));
  auto r = recv_datagram(c);
  REQUIRE(r);
  CHECK_THAT(*r, Catch::StartsWith("worker 0 pid "));
  srv.stop_and_check();
}

namespace {

std::uint64_t session_of(conn& c) {
  auto info = c.ask("info");
  unsigned long long id = 0;
  if (!info || std::sscanf(info->c_str(), "id=%llu", &id) != 1) return 0;
  return id;
}

// Asks until the answer is `want` (a close or a crash reaches the registry asynchronously).
std::optional<std::string> ask_until(conn& c, const std::string& q, const std::string& want,
                                     std::chrono::milliseconds limit = 5s) {
  std::optional<std::string> got;
  const auto until = clock_type::now() + limit;
  do {
    got = c.ask(q);
    if (got == want) break;
    std::this_thread::sleep_for(10ms);
  } while (clock_type::now() < until);
  return got;
}

}  // namespace

TEST_CASE("server: ctx.exists answers for sessions of every process", "[server][probe][exists]") {
  auto mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  server_under_test srv("mode = \"" + mode + "\"\nworkers = 2\ntask_workers = 1", kProbe);
  // One connection handled by each worker (the kernel or the dispatch mode picks).
  std::optional<conn> on[2];
  std::vector<conn> others;
  for (int i = 0; i < 200 && (!on[0] || !on[1]); ++i) {
    auto c = connect_tcp("127.0.0.1", srv.port);
    auto w = parse_whoami(c.ask("whoami"));
    REQUIRE(w);
    if (!on[w->first])
      on[w->first].emplace(std::move(c));
    else
      others.push_back(std::move(c));
  }
  REQUIRE(on[0]);
  REQUIRE(on[1]);
  const auto a = session_of(*on[0]), b = session_of(*on[1]);
  REQUIRE(a != 0);
  REQUIRE(b != 0);
  CHECK(on[0]->ask("exists " + std::to_string(b)) == "yes");
  CHECK(on[1]->ask("exists " + std::to_string(a)) == "yes");
  CHECK(on[0]->ask("exists " + std::to_string(a)) == "yes");
  // A task worker holds no connection and never saw an event of these sessions.
  CHECK(on[0]->ask("task_wait 2000 exists:" + std::to_string(b)) == "yes");
  CHECK(on[0]->ask("exists 987654321987") == "no");
  CHECK(on[0]->ask("exists 0") == "no");

  // A closed session is gone for everyone.
  auto third = connect_tcp("127.0.0.1", srv.port);
  const auto c3 = session_of(third);
  REQUIRE(c3 != 0);
  CHECK(on[0]->ask("exists " + std::to_string(c3)) == "yes");
  CHECK(third.ask("close") == "bye");
  CHECK(third.wait_closed(2s));
  CHECK(ask_until(*on[0], "exists " + std::to_string(c3), "no") == "no");
  CHECK(ask_until(*on[1], "task_wait 2000 exists:" + std::to_string(c3), "no") == "no");

  // A worker killed with SIGKILL: in base mode its connections died with it and the master
  // clears them; in process mode the reactor holds them and they stay open.
  auto pids = srv.worker_pids(srv.stats());
  REQUIRE(pids.size() == 2);
  REQUIRE(::kill(pids[1], SIGKILL) == 0);
  if (mode == "base") {
    CHECK(on[1]->wait_closed(5s));
    CHECK(ask_until(*on[0], "exists " + std::to_string(b), "no") == "no");
  } else {
    REQUIRE(srv.wait_workers_ready(10s));
    CHECK(on[0]->ask("exists " + std::to_string(b)) == "yes");
    CHECK(on[1]->ask("exists " + std::to_string(a)) == "yes");
  }
  CHECK(on[0]->ask("exists " + std::to_string(a)) == "yes");
  REQUIRE(srv.wait_workers_ready(10s));
  srv.stop_and_check();
}

TEST_CASE("server: on_receive_now answers inline, queues behind a running handler, survives a throw",
          "[server][probe][now]") {
  for (std::string mode : {"base", "process"}) {
    INFO("mode " << mode);
    server_under_test srv("mode = \"" + mode + "\"\nworkers = 1\nreactor_threads = 1", kProbe);
    auto c = connect_tcp("127.0.0.1", srv.port);
    REQUIRE(c);
    CHECK(c.ask("now a") == "now a inline");
    // Pipelined behind a handler that suspends: the second line must wait for it (and so
    // goes through on_receive), and the replies keep the order of the requests.
    REQUIRE(c.send_all("sleep 30\nnow b\nnow c\n"));
    CHECK(c.read_line() == "slept 30");
    CHECK(c.read_line() == "now b queued");
    auto third = c.read_line();
    REQUIRE(third);
    CHECK((*third == "now c queued" || *third == "now c inline"));
    // A declined line goes to on_receive on the same connection.
    CHECK(c.ask("whoami").value_or("").rfind("worker 0 pid ", 0) == 0);
    // A throw is logged with the handler's name; the message is not handled twice and the
    // connection and the worker go on.
    REQUIRE(c.send_all("now_fail\n"));
    CHECK(srv.wait_log("on_receive_now.*now_fail asked", 3s));
    CHECK(c.ask("now d") == "now d inline");
    srv.stop_and_check();
  }
}
