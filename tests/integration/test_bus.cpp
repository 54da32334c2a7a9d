// The message bus end to end, through the probe module, in both server modes: fan-out to
// every kind of process, wildcards, request/reply with timeouts and late replies, 100,000
// messages in per-publisher order, a subscriber killed and restarted, mailbox overflow,
// unknown tags and garbage payloads, and `swactor bus publish|stats`.
#include "server_helpers.hpp"

using namespace std::chrono_literals;
namespace t = swactor::testing;
using namespace swactor::testing::server;

namespace {


std::string server_keys(const std::string& mode, const std::string& more) {
  return "mode = \"" + mode + "\"\n" + more;
}

// A probe in any worker: the bus reaches every process from any of them.
conn probe(const server_under_test& srv) {
  auto c = connect_tcp("127.0.0.1", srv.port);
  REQUIRE(c);
  return c;
}

// Asks process `proc`'s probe over the bus (through whichever worker `c` reached).
std::string ask_over_bus(conn& c, int proc, const std::string& text, int ms = 2000) {
  auto r = c.ask("request " + std::to_string(proc) + " " + text + " " + std::to_string(ms),
                 std::chrono::milliseconds(ms + 3000));
  REQUIRE(r);
  return *r;
}

// Polls `proc`'s bus_summary until it reports `total` messages (or 60 s).
std::string wait_total(conn& c, int proc, std::uint64_t total) {
  std::string last;
  const auto until = clock_type::now() + 60s;
  while (clock_type::now() < until) {
    last = ask_over_bus(c, proc, "summary");
    if (last.rfind("total=" + std::to_string(total) + " ", 0) == 0 || last == "total=" + std::to_string(total))
      return last;
    std::this_thread::sleep_for(50ms);
  }
  return last;
}

json bus_stats(const server_under_test& srv) {
  auto r = t::run({t::swactor_bin(), "bus", "stats", "--pid-file", srv.pid_file}, 5s);
  REQUIRE(r.exit_code == 0);
  return json::parse(r.out);
}

}  // namespace

TEST_CASE("bus: a publish reaches every worker, task worker and user process, wildcards", "[bus]") {
  auto mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  // Processes: workers 0, 1; task worker 2; user process 3.
  server_under_test srv(server_keys(mode, "workers = 2\ntask_workers = 1"),
                        std::string(kProbe) + "[modules.probe]\nuser_processes = 1\nsubscribe = [\"room.*\"]\n");
  auto c = probe(srv);
  auto me = c.ask("whoami");
  REQUIRE(me);
  // Every process answers on the bus before the publish: the server is ready when its
  // workers are, and a user process may still be starting (its `subscribe` option goes to
  // the router ahead of its first reply, on the same link).
  for (int proc = 0; proc < 4; ++proc) {
    INFO("process " << proc);
    std::string first;
    const auto until = clock_type::now() + 30s;
    while ((first = ask_over_bus(c, proc, "summary")).rfind("total=", 0) != 0 && clock_type::now() < until)
      std::this_thread::sleep_for(50ms);
    REQUIRE(first.rfind("total=0", 0) == 0);
  }
  CHECK(c.ask("publish room.lobby hello") == "ok");
  for (int proc = 0; proc < 4; ++proc) {
    INFO("process " << proc);
    auto inbox = wait_total(c, proc, 1);
    CHECK(inbox.find("total=1") == 0);
    auto items = ask_over_bus(c, proc, "inbox");
    // "SENDER SEQ TOPIC TEXT": the sender is the worker that published.
    CHECK(items.find(" room.lobby hello") != std::string::npos);
  }
  // '*' is one token: room.a.b does not match room.*; '>' takes the rest.
  CHECK(c.ask("publish room.a.b deep") == "ok");
  CHECK(ask_over_bus(c, 2, "subscribe:room.>") == "ok");
  CHECK(c.ask("publish room.a.b deeper") == "ok");
  CHECK(c.ask("publish room lone") == "ok");  // matches neither pattern
  auto tw = wait_total(c, 2, 2);
  CHECK(tw.find("total=2") == 0);
  auto items = ask_over_bus(c, 2, "inbox");
  CHECK(items.find("deeper") != std::string::npos);
  CHECK(items.find("deep|") == std::string::npos);
  CHECK(items.find("lone") == std::string::npos);
  // A publish that both of its patterns match arrives once.
  CHECK(c.ask("publish room.x once") == "ok");
  CHECK(wait_total(c, 2, 3).find("total=3") == 0);
  // Bad topics and patterns are refused at the call.
  CHECK(c.ask("publish room..x no")->rfind("error: invalid bus topic", 0) == 0);
  CHECK(c.ask("publish room.* no")->rfind("error: invalid bus topic", 0) == 0);
  CHECK(c.ask("subscribe a.>.b")->rfind("error: invalid bus topic", 0) == 0);
  srv.stop_and_check();
}

TEST_CASE("bus: request/reply, timeouts, late replies, no reply, failures, any worker", "[bus]") {
  auto mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  server_under_test srv(server_keys(mode, "workers = 2\ntask_workers = 1"), kProbe);
  auto c = probe(srv);
  CHECK(c.ask("request 1 ping 2000") == "1:ping");
  CHECK(c.ask("request 2 ping 2000") == "2:ping");  // a task worker answers too
  // A reply that comes after the timeout is dropped, never given to the next request.
  auto late = c.ask("request 1 sleep:600 150", 3s);
  REQUIRE(late);
  CHECK(*late == "error: operation timed out");
  CHECK(c.ask("request 1 fresh 3000", 5s) == "1:fresh");
  CHECK(c.ask("request 0 noreply 2000") == "error: the request's handler returned without replying");
  CHECK(c.ask("request 0 fail 2000") == "error: the request's handler failed");
  CHECK(srv.wait_log("failed in on_bus_message.*asked to fail", 2s));
  CHECK(c.ask("request 9 x 2000") == "error: no such worker id");
  // Any worker: round robin over workers 0 and 1.
  std::set<std::string> answered;
  for (int i = 0; i < 4; ++i) {
    auto r = c.ask("request -1 rr 2000");
    REQUIRE(r);
    answered.insert(r->substr(0, 2));
  }
  CHECK(answered == std::set<std::string>{"0:", "1:"});
  srv.stop_and_check();
}

TEST_CASE("bus: least_loaded picks the worker running the fewest handlers", "[bus]") {
  auto mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  server_under_test srv(server_keys(mode, "workers = 3"), kProbe);
  auto c = probe(srv);
  auto me = c.ask("whoami");
  REQUIRE(me);
  int self = std::stoi(me->substr(7));
  // This worker runs the command's handler; `busy` runs a bus handler for 2 s; `idle` nothing.
  int busy = (self + 1) % 3, idle = (self + 2) % 3;
  CHECK(c.ask("bus_send " + std::to_string(busy) + " sleep:2000") == "ok");
  std::this_thread::sleep_for(200ms);
  for (int i = 0; i < 3; ++i) CHECK(c.ask("request -2 ll 1500") == std::to_string(idle) + ":ll");
  srv.stop_and_check();
}

TEST_CASE("bus: 100,000 messages from 2 publishers to 3 subscribers arrive complete and in order", "[bus][load]") {
  auto mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  // Publishers: workers 0 and 1. Subscribers: task workers 2, 3, 4.
  server_under_test srv(server_keys(mode, "workers = 2\ntask_workers = 3"),
                        std::string(kProbe) + "[bus]\nmailbox_limit = 200000\n");
  auto c = probe(srv);
  for (int proc : {2, 3, 4}) CHECK(ask_over_bus(c, proc, "subscribe:load.>") == "ok");
  // Both publishers at once: the requests go out before either answer is read.
  REQUIRE(c.send_all("request 0 burst:load.a:50000 30000\nrequest 1 burst:load.b:50000 30000\n"));
  auto r1 = c.read_line(35s);
  auto r2 = c.read_line(35s);
  CHECK(r1 == "ok 50000");
  CHECK(r2 == "ok 50000");
  for (int proc : {2, 3, 4}) {
    INFO("subscriber " << proc);
    CHECK(wait_total(c, proc, 100000) == "total=100000 0:50000:ordered 1:50000:ordered");
  }
  auto st = bus_stats(srv);
  CHECK(st.at("dropped").get<std::uint64_t>() == 0);
  CHECK(st.at("topics").at("load.a").at("published").get<std::uint64_t>() == 50000);
  CHECK(st.at("topics").at("load.b").at("delivered").get<std::uint64_t>() == 150000);
  srv.stop_and_check();
}

TEST_CASE("bus: a subscriber killed with -9 gets what is published after its restart", "[bus]") {
  auto mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  server_under_test srv(server_keys(mode, "workers = 1\ntask_workers = 1"),
                        std::string(kProbe) + "[modules.probe]\nsubscribe = [\"feed.>\"]\n");
  auto c = probe(srv);
  CHECK(c.ask("publish feed.x before") == "ok");
  CHECK(wait_total(c, 1, 1).find("total=1") == 0);
  auto old_pid = srv.worker_pids(srv.stats(), "task_workers").at(0);
  // Mid-stream: a burst is on its way while the subscriber dies.
  CHECK(c.ask("publish_burst feed.mid 2000", 10s) == "ok 2000");
  REQUIRE(::kill(old_pid, SIGKILL) == 0);
  CHECK(c.ask("publish_burst feed.mid 2000", 10s) == "ok 2000");
  // Restarted in place (same id, new pid) with its configured subscription: ready once the
  // master has its subscription (the shared state shows the new pid before that).
  pid_t new_pid = 0;
  const auto until = clock_type::now() + 15s;
  while (clock_type::now() < until && new_pid == 0) {
    auto st = bus_stats(srv);  // kept: a range-for over a temporary's member would dangle
    for (auto& sub : st.at("subscriptions"))
      if (sub.at("process").get<int>() == 1 && sub.at("pid").get<pid_t>() != old_pid) new_pid = sub.at("pid").get<pid_t>();
    std::this_thread::sleep_for(20ms);
  }
  REQUIRE(new_pid > 0);
  CHECK(srv.worker_pids(srv.stats(), "task_workers").at(0) == new_pid);
  // Once it is ready, everything published reaches it, in order.
  for (int i = 0; i < 50; ++i) CHECK(c.ask("publish feed.after a" + std::to_string(i)) == "ok");
  std::string items;
  const auto until2 = clock_type::now() + 15s;
  while (clock_type::now() < until2) {
    items = ask_over_bus(c, 1, "inbox");
    if (items.find("feed.after a49") != std::string::npos) break;
    std::this_thread::sleep_for(20ms);
  }
  INFO("inbox: " << items.size() << " bytes, ends with " << items.substr(items.size() > 300 ? items.size() - 300 : 0));
  std::size_t at = 0;
  for (int i = 0; i < 50; ++i) {
    INFO("a" << i);
    auto next = items.find("feed.after a" + std::to_string(i) + (i == 49 ? "" : "|"), at);
    CHECK(next != std::string::npos);
    if (next != std::string::npos) at = next;
  }
  CHECK(items.find("before") == std::string::npos);  // a new process, a new inbox
  CHECK(ask_over_bus(c, 1, "summary").find(":ordered") != std::string::npos);
  srv.stop_and_check();
}

TEST_CASE("bus: a full mailbox drops the newest and counts them, bad tags and payloads are dropped with a log line",
          "[bus]") {
  auto mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  server_under_test srv(server_keys(mode, "workers = 1\ntask_workers = 1"),
                        std::string(kProbe) + "[bus]\nmailbox_limit = 10\n");
  auto c = probe(srv);
  REQUIRE(ask_over_bus(c, 1, "subscribe:flood") == "ok");
  // The subscriber's handler is busy for 1.5 s; 50 more arrive meanwhile, 10 fit.
  CHECK(c.ask("bus_send 1 sleep:1500") == "ok");
  std::this_thread::sleep_for(200ms);
  CHECK(c.ask("publish_burst flood 50") == "ok 50");
  std::this_thread::sleep_for(1500ms);  // polls before the sleeper is done would be dropped too
  auto sum = wait_total(c, 1, 11);  // the sleeper + the 10 that fit
  CHECK(sum.find("total=11 ") == 0);
  auto st = bus_stats(srv);
  CHECK(st.at("dropped_by_reason").at("mailbox_full").get<std::uint64_t>() == 40);
  CHECK(st.at("processes").at(1).at("dropped_mailbox_full").get<std::uint64_t>() == 40);
  CHECK(srv.wait_log("mailbox of module probe is full", 2s));

  // Typed: the probe accepts probe.note only; a note that does not decode is dropped too.
  CHECK(c.ask("publish_note flood hi") == "ok");
  CHECK(c.ask("publish_tag flood zz.unknown blah") == "ok");
  CHECK(c.ask("publish_tag flood probe.note garbage") == "ok");
  CHECK(c.ask("publish flood after") == "ok");
  auto sum2 = wait_total(c, 1, 13);
  CHECK(sum2.find("total=13 ") == 0);
  auto items = ask_over_bus(c, 1, "inbox");
  CHECK(items.find("note:hi") != std::string::npos);
  CHECK(items.find("blah") == std::string::npos);
  CHECK(items.find("garbage") == std::string::npos);
  CHECK(srv.wait_log("tag \"zz.unknown\".*unknown tag", 2s));
  CHECK(srv.wait_log("tag \"probe.note\".*does not decode", 2s));
  st = bus_stats(srv);
  CHECK(st.at("dropped_by_reason").at("invalid").get<std::uint64_t>() == 2);
  srv.stop_and_check();
}

TEST_CASE("bus: swactor bus publish and stats from the command line", "[bus][cli]") {
  auto mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  server_under_test srv(server_keys(mode, "workers = 2"),
                        std::string(kProbe) + "[modules.probe]\nsubscribe = [\"ops.*\"]\n");
  auto c = probe(srv);
  auto r = t::run({t::swactor_bin(), "bus", "publish", "--pid-file", srv.pid_file, "ops.notice", "maintenance at 5"}, 5s);
  CHECK(r.exit_code == 0);
  CHECK(json::parse(r.out).at("delivered").get<int>() == 2);
  for (int proc : {0, 1}) {
    wait_total(c, proc, 1);
    CHECK(ask_over_bus(c, proc, "inbox") == "-1 0 ops.notice maintenance at 5");
  }
  auto bad = t::run({t::swactor_bin(), "bus", "publish", "--pid-file", srv.pid_file, "ops notice", "x"}, 5s);
  CHECK(bad.exit_code == 2);
  CHECK(bad.err.find("invalid topic") != std::string::npos);
  auto st = bus_stats(srv);
  CHECK(st.at("published").get<int>() == 1);
  CHECK(st.at("topics").at("ops.notice").at("delivered").get<int>() == 2);
  CHECK(st.at("subscriptions").size() == 2);
  CHECK(st.at("subscriptions").at(0).at("pattern") == "ops.*");
  auto per = st.at("delivered_per_subscriber");
  REQUIRE(per.size() == 2);
  CHECK(per.at(0).at("delivered").get<int>() == 1);
  // The same object is in `swactor stats`.
  CHECK(srv.stats().at("bus").at("published").get<int>() == 1);
  srv.stop_and_check();
}

TEST_CASE("bus: after a reload every new worker gets each publish once, old ones none", "[bus][reload]") {
  auto mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  server_under_test srv(server_keys(mode, "workers = 2\ntask_workers = 1"),
                        std::string(kProbe) + "[modules.probe]\nsubscribe = [\"news.>\"]\n");
  auto before = srv.all_pids(srv.stats());
  REQUIRE(before.size() == 3);
  auto r = t::run({t::swactor_bin(), "reload", "--pid-file", srv.pid_file}, 5s);
  REQUIRE(r.exit_code == 0);
  // Reloaded when the hub holds a subscription of a new pid for every process.
  const auto until = clock_type::now() + 20s;
  bool ready = false;
  while (clock_type::now() < until && !ready) {
    auto st = bus_stats(srv);
    std::set<int> fresh;
    for (auto& sub : st.at("subscriptions")) {
      auto pid = sub.at("pid").get<pid_t>();
      if (std::find(before.begin(), before.end(), pid) == before.end()) fresh.insert(sub.at("process").get<int>());
    }
    ready = fresh.size() == 3 && st.at("subscriptions").size() == 3;
    if (!ready) std::this_thread::sleep_for(50ms);
  }
  REQUIRE(ready);
  auto c = probe(srv);
  for (int i = 0; i < 20; ++i) CHECK(c.ask("publish news.x n" + std::to_string(i)) == "ok");
  for (int proc = 0; proc < 3; ++proc) {
    INFO("process " << proc);
    CHECK(wait_total(c, proc, 20).find("total=20 ") == 0);
  }
  // Exactly one delivery per subscriber and message: none went to a retiring process.
  auto st = bus_stats(srv);
  CHECK(st.at("topics").at("news.x").at("delivered").get<int>() == 60);
  srv.stop_and_check();
}
