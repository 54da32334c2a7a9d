// The module API through the `probe` module: tasks (timeouts, failures, wait_all), pipe
// messages between workers, session info and bind, close and reset.
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
