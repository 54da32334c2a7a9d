// Shared tables ([tables.NAME]) and user processes through the real server: the `kv`
// module keeps its data in a table every worker sees, and runs a user process the manager
// supervises.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "harness.hpp"
#include "line_client.hpp"
#include "server_helpers.hpp"

using namespace std::chrono_literals;
namespace t = swactor::testing;
using nlohmann::json;
using swactor::testing::line_client;
namespace srv = swactor::testing::server;

namespace {


// The kv module on a shared table, with its snapshot user process.
struct kv_server : srv::server_under_test {
  kv_server()
      : server_under_test("workers = 2", R"([tables.kv]
size = 4096
columns = [{ name = "value", type = "string", size = 32 }, { name = "n", type = "int" }]
[[listen]]
url = "tcp://127.0.0.1:{port}"
module = "kv"
framing = { type = "eof", delimiter = "\n" }
[modules.kv]
snapshot_interval = "1h"
)") {
    REQUIRE(wait_log("user process of module kv", 10s));
  }
  ~kv_server() {
    proc->signal(SIGTERM);
    CHECK(proc->wait(10s) == 0);
  }
};

}  // namespace

TEST_CASE("kv: every worker sees the same shared table", "[kv][tables]") {
  kv_server srv;
  {
    line_client c(srv.port);
    REQUIRE(c.ok());
    CHECK(c.call("SET greeting hello world") == "OK");
    CHECK(c.call("SET toolong " + std::string(33, 'x')).rfind("ERR", 0) == 0);  // refused, not truncated
  }
  // New connections land on both workers (which one accepts is the kernel's choice: keep
  // connecting, a bounded number of times, until both have served); all read the same row.
  int workers_used = 0;
  for (int round = 0; round < 20 && workers_used < 2; ++round) {
    for (int i = 0; i < 10; ++i) {
      line_client c(srv.port);
      REQUIRE(c.ok());
      CHECK(c.call("GET greeting") == "hello world");
      CHECK(c.call("GET toolong") == "(nil)");
    }
    auto s = srv.stats();
    REQUIRE(s.is_object());
    workers_used = 0;
    for (auto& w : s["workers"]) workers_used += w["messages"].get<int>() > 0;
  }
  CHECK(workers_used == 2);
}

TEST_CASE("kv: concurrent INCR from both workers is exact", "[kv][tables]") {
  kv_server srv;
  constexpr int clients = 8, each = 250;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int i = 0; i < clients; ++i)
    threads.emplace_back([&] {
      line_client c(srv.port);
      if (!c.ok()) {
        ++failures;
        return;
      }
      for (int k = 0; k < each; ++k)
        if (c.call("INCR hits").rfind("ERR", 0) == 0) ++failures;
    });
  for (auto& th : threads) th.join();
  CHECK(failures == 0);
  line_client c(srv.port);
  CHECK(c.call("INCR hits") == std::to_string(clients * each + 1));
}

TEST_CASE("user process: reachable from workers, restarted when killed", "[kv][user_process]") {
  kv_server srv;
  {
    line_client c(srv.port);
    REQUIRE(c.ok());
    CHECK(c.call("SNAPSHOT") == "OK");
  }
  REQUIRE(srv.wait_log("snapshot \\(requested by worker", 5s));
  auto s = srv.stats();
  REQUIRE(s.is_object());
  REQUIRE(s["user_processes"].size() == 1);
  auto pid = s["user_processes"][0]["pid"].get<int>();
  REQUIRE(pid > 0);
  REQUIRE(::kill(pid, SIGKILL) == 0);
  int new_pid = 0;
  for (int i = 0; i < 150 && (new_pid == 0 || new_pid == pid); ++i) {
    std::this_thread::sleep_for(20ms);
    auto now = srv.stats();
    if (now.is_object() && !now["user_processes"].empty()) new_pid = now["user_processes"][0]["pid"].get<int>();
  }
  CHECK(new_pid != pid);
  CHECK(new_pid > 0);
  CHECK(srv.wait_log("user#0 \\(pid " + std::to_string(pid) + "\\) exited unexpectedly", 2s));
  // The replacement serves messages too.
  line_client c(srv.port);
  CHECK(c.call("SNAPSHOT") == "OK");
}
