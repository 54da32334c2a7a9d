// WebSocket groups and process-mode restarts against the real server, with the Python
// clients in tests/integration/ws (ws_groups.py): 1,000 connections over two workers get
// 100 broadcasts in order; join / leave / broadcast from a worker and from a task worker;
// a worker killed with SIGKILL and a reload under load drop no WebSocket; a client that
// never reads meets the listener's on_output_full.
#include <signal.h>

#include "server_helpers.hpp"

using namespace std::chrono_literals;
namespace t = swactor::testing;
using namespace swactor::testing::server;

namespace {

std::string script() { return std::string(SWACTOR_WS_SCRIPTS) + "/ws_groups.py"; }

std::string server_keys(const std::string& mode, int workers) {
  return "mode = \"" + mode + "\"\nworkers = " + std::to_string(workers) + "\ntask_workers = 1\n";
}

const char* kChat = R"(
[modules.chat]
type = "ws_chat"

[modules.probe]

[[listen]]
url = "ws://127.0.0.1:{port}"
module = "chat"

[[listen]]
url = "tcp://127.0.0.1:{port2}"
module = "probe"
framing = { type = "eof", delimiter = "\n" }
)";

std::string target(const server_under_test&, std::uint16_t port) { return "127.0.0.1:" + std::to_string(port); }

}  // namespace

TEST_CASE("websocket groups: 1,000 connections over two workers get 100 broadcasts in order",
          "[websocket][groups]") {
  auto mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  server_under_test srv(server_keys(mode, 2), kChat);
  auto r = t::run({"python3", script(), "scale", "--target", target(srv, srv.port), "--probe", target(srv, srv.port2),
                   "--clients", "1000", "--messages", "100", "--workers", "2"},
                  200s);
  INFO(r.out << r.err << server_under_test::tail(srv.log()));
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("1000/1000 clients got all 100 broadcasts in order") != std::string::npos);
  srv.stop_and_check();
}

TEST_CASE("websocket groups: join, leave and broadcast from a worker and a task worker", "[websocket][groups]") {
  auto mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  server_under_test srv(server_keys(mode, 2), kChat);
  auto r = t::run({"python3", script(), "api", "--target", target(srv, srv.port), "--probe", target(srv, srv.port2)},
                  120s);
  INFO(r.out << r.err << server_under_test::tail(srv.log()));
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("FAIL") == std::string::npos);
  CHECK(r.out.find("ok   rooms are separate") != std::string::npos);
  srv.stop_and_check();
}

TEST_CASE("websocket groups: process mode keeps every WebSocket through SIGKILL of a worker and a reload",
          "[websocket][groups][process]") {
  server_under_test srv(server_keys("process", 2) + "max_wait_time = \"3s\"\n", kChat);
  auto stats = srv.stats();
  auto workers = srv.worker_pids(stats);
  REQUIRE(workers.size() == 2);
  auto r = t::run({"python3", script(), "survive", "--target", target(srv, srv.port), "--clients", "20", "--seconds",
                   "8", "--kill", std::to_string(workers[0]), "--reload", std::to_string(srv.proc->pid())},
                  120s);
  INFO(r.out << r.err << server_under_test::tail(srv.log()));
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("20/20 clients heard everyone after the restarts") != std::string::npos);
  // Both restarts really happened: new processes for both worker ids.
  auto after = srv.worker_pids(srv.stats());
  REQUIRE(after.size() == 2);
  CHECK(after[0] != workers[0]);
  CHECK(after[1] != workers[1]);
  CHECK(srv.count_log("open WebSocket\\(s\\) handed to the new process of worker") >= 2);
  srv.stop_and_check();
}

TEST_CASE("websocket: a client that never reads meets on_output_full, memory stays bounded", "[websocket][groups]") {
  auto mode = GENERATE(as<std::string>{}, "base", "process");
  auto policy = GENERATE(as<std::string>{}, "error", "close");
  INFO("mode " << mode << ", on_output_full " << policy);
  server_under_test srv(server_keys(mode, 1), std::string(R"(
[modules.chat]
type = "ws_chat"

[modules.probe]

[[listen]]
url = "ws://127.0.0.1:{port}"
module = "chat"
output_buffer_size = "256KiB"
websocket = { on_output_full = ")") + policy + R"(", permessage_deflate = false }

[[listen]]
url = "tcp://127.0.0.1:{port2}"
module = "probe"
framing = { type = "eof", delimiter = "\n" }
)");
  // The client upgrades, then does not read. (Its receive buffer keeps the default: shrunk
  // after connect, the window it advertises stays under one loopback MSS, and once it reads
  // again the transfer crawls at the pace of the sender's persist timer. The kernel's
  // buffers hold a few MiB of the 64 MiB offered; the server's own queue still fills.)
  auto c = connect_tcp("127.0.0.1", srv.port);
  REQUIRE(c);
  REQUIRE(c.send_all("GET /chat/quiet?nick=sleepy HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"));
  auto head = c.read_until([](const std::string& b) -> std::size_t {
    auto e = b.find("\r\n\r\n");
    return e == std::string::npos ? 0 : e + 4;
  }, 5s);
  REQUIRE(head);
  REQUIRE(head->rfind("HTTP/1.1 101", 0) == 0);
  // ws_chat's welcome names the session (for ctx.push below); from here on nothing is read.
  std::uint64_t session = 0;
  while (!session) {
    auto f = read_ws_frame(c, 5s);
    REQUIRE(f);
    std::smatch m;
    if (std::regex_search(f->payload, m, std::regex("\"type\":\"welcome\".*\"id\":([0-9]+)|\"id\":([0-9]+).*\"type\":\"welcome\"")))
      session = std::stoull(m[1].matched ? m[1].str() : m[2].str());
  }
  auto probe = connect_tcp("127.0.0.1", srv.port2);
  REQUIRE(probe);
  auto line = [&](const std::string& cmd) {
    REQUIRE(probe.send_all(cmd + "\n"));
    auto r = probe.read_until([](const std::string& b) -> std::size_t {
      auto e = b.find('\n');
      return e == std::string::npos ? 0 : e + 1;
    }, 10s);
    REQUIRE(r);
    return r->substr(0, r->size() - 1);
  };
  // The only WebSocket of the server, so every broadcast to all of them is for it.
  // Every process of the server: the master (the reactor in process mode holds the queue)
  // and the workers.
  auto total_rss = [&] {
    long sum = rss_kib(srv.proc->pid());
    for (auto p : srv.all_pids(srv.stats())) sum += rss_kib(p);
    return sum;
  };
  const long rss_before = total_rss();
  const std::string chunk(16 * 1024, 'x');
  // 64 MiB offered to a peer that reads nothing: the server keeps at most its 256 KiB limit.
  // (Process mode: the link to the reactor is bounded too; a full one says so and the
  // probe tries again a moment later.)
  for (int i = 0; i < 4096; ++i) {
    auto r = line("ws_broadcast * " + chunk);
    for (int k = 0; k < 500 && r == "error: send queue full"; ++k) {
      std::this_thread::sleep_for(2ms);
      r = line("ws_broadcast * " + chunk);
    }
    REQUIRE(r == "ok");
  }
  std::this_thread::sleep_for(300ms);
  const long rss_after = total_rss();
  INFO("RSS before " << rss_before << " KiB, after " << rss_after << " KiB");
  CHECK(rss_after - rss_before < 16 * 1024);
  CHECK(srv.count_log("output buffer (is )?full") >= 1);
  if (policy == "close") {
    CHECK(srv.wait_log("closing with 1008", 5s));
  } else {
    // Pushes to the full connection (ctx.push, not a broadcast) for a while: in process mode
    // the reactor drops each and says so at most once a second, with a count of the others.
    const auto push_start = std::chrono::steady_clock::now();
    int pushes = 0;
    while (pushes < 300 || std::chrono::steady_clock::now() - push_start < 1500ms) {
      auto r = line("ws_push " + std::to_string(session) + " " + chunk);
      for (int k = 0; k < 500 && r == "error: send queue full"; ++k) {
        std::this_thread::sleep_for(2ms);
        r = line("ws_push " + std::to_string(session) + " " + chunk);
      }
      // Base mode knows at once; process mode finds out in the reactor.
      REQUIRE((r == "ok" || r.find("output buffer") != std::string::npos));
      ++pushes;
    }
    std::this_thread::sleep_for(300ms);
    const double push_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - push_start).count();
    const auto drop_lines = srv.count_log("WebSocket message of [0-9]+ bytes dropped");
    INFO(pushes << " pushes in " << push_seconds << " s, " << drop_lines << " drop line(s)");
    CHECK(drop_lines <= static_cast<std::size_t>(push_seconds) + 2);
    CHECK(srv.count_log("reply of [0-9]+ bytes dropped") == 0);
    if (mode == "process") {
      CHECK(drop_lines >= 1);
      CHECK(srv.count_log("\\([1-9][0-9]* more dropped on this reactor") >= 1);
    }
    // Still open: once the client reads, what was queued arrives whole, and then a message
    // sent after it started reading.
    const std::string fresh = "fresh after reading";
    int queued = 0, sent_fresh = 0;
    bool got_fresh = false;
    const auto until = std::chrono::steady_clock::now() + 30s;
    while (!got_fresh && std::chrono::steady_clock::now() < until) {
      auto f = read_ws_frame(c, 500ms);
      if (!f) {
        // Quiet: what was queued is read (or the output has room), so a new message fits.
        // Sent again on each quiet spell, in case the last one met a still-full output.
        REQUIRE_FALSE(c.eof());
        REQUIRE(line("ws_broadcast * " + fresh) == "ok");
        ++sent_fresh;
        continue;
      }
      REQUIRE(f->b0 == 0x81);  // whole text frames only: the stream is in step
      if (f->payload == chunk) ++queued;
      else if (f->payload == fresh) got_fresh = true;
    }
    INFO(queued << " queued messages read, the new one sent " << sent_fresh << " time(s)");
    // The 256 KiB output limit held about 16 of the 16 KiB messages, the socket buffers more.
    CHECK(queued >= 8);
    CHECK(got_fresh);
  }
  srv.stop_and_check();
}
