// Process mode through the real server: reactor threads hold the connections, workers get
// complete messages by dispatch_mode; worker crashes and reloads drop no connection.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <map>
#include <set>
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


// A process-mode server: the probe module on {port}, echo on a length-framed {port2}, udp,
// unix stream, tcp6 ({port3}) and unixgram listeners.
struct process_server : srv::server_under_test {
  explicit process_server(const std::string& dispatch, int workers_ = 3, const std::string& extra = "")
      : server_under_test("mode = \"process\"\nworkers = " + std::to_string(workers_) +
                              "\nreactor_threads = 2\ntask_workers = 1\ndispatch_mode = \"" + dispatch +
                              "\"\nmax_wait_time = \"2s\"\n" + extra,
                          R"([[listen]]
url = "tcp://127.0.0.1:{port}"
module = "probe"
framing = { type = "eof", delimiter = "\n" }
[[listen]]
url = "tcp://127.0.0.1:{port2}"
module = "echo"
framing = { type = "length", length_size = 4, body_offset = 4, max_length = "16MiB" }
[[listen]]
url = "udp://127.0.0.1:{udp}"
module = "echo"
[[listen]]
url = "unix://{dir}/echo.sock"
module = "echo"
framing = { type = "eof", delimiter = "\n" }
[[listen]]
url = "tcp://[::1]:{port3}"
module = "echo"
framing = { type = "eof", delimiter = "\n" }
[[listen]]
url = "unixgram://{dir}/echo.dgram"
module = "echo"
)"),
        workers(workers_) {}
  ~process_server() {
    auto pids = all_pids(stats());
    proc->signal(SIGTERM);
    CHECK(proc->wait(10s) == 0);
    for (int p : pids) CHECK(::kill(p, 0) != 0);  // nothing left behind
  }
  std::vector<int> worker_pids() { return server_under_test::worker_pids(stats()); }

  int workers;
  std::uint16_t& echo_port = port2;
  std::uint16_t& v6_port = port3;
  std::string unix_path = dir.file("echo.sock").string();
  std::string dgram_path = dir.file("echo.dgram").string();
};

std::string frame(const std::string& body) {
  std::string f(4, '\0');
  std::uint32_t n = htonl(static_cast<std::uint32_t>(body.size()));
  std::memcpy(f.data(), &n, 4);
  return f + body;
}

bool send_all(int fd, const std::string& data) {
  std::size_t off = 0;
  while (off < data.size()) {
    auto n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<std::size_t>(n);
  }
  return true;
}

std::string recv_exact(int fd, std::size_t n) {
  std::string out(n, '\0');
  std::size_t off = 0;
  while (off < n) {
    auto r = ::recv(fd, out.data() + off, n - off, 0);
    if (r <= 0) return out.substr(0, off);
    off += static_cast<std::size_t>(r);
  }
  return out;
}

}  // namespace

TEST_CASE("process mode: echo over length-framed tcp (8 MiB byte-exact), udp and unix", "[process]") {
  // connection dispatch: replies of one connection keep their order (with round_robin two
  // workers answer alternate messages, so replies may overtake each other, as in Swoole).
  // Reactor threads and workers poll before they sleep (busy_poll_us): the same answers.
  process_server srv("connection", 2, "busy_poll_us = 50\n");
  // length framing, a large message byte-exact
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(srv.echo_port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  std::string big(8 << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 131 + 7);
  auto f = frame(big);
  std::thread writer([&] { CHECK(send_all(fd, f)); });
  auto back = recv_exact(fd, f.size());
  writer.join();
  CHECK(back.size() == f.size());
  CHECK(back == f);
  // many small frames in one write
  std::string burst;
  for (int i = 0; i < 300; ++i) burst += frame("m" + std::to_string(i));
  REQUIRE(send_all(fd, burst));
  CHECK(recv_exact(fd, burst.size()) == burst);
  ::close(fd);

  // udp
  int u = ::socket(AF_INET, SOCK_DGRAM, 0);
  ::setsockopt(u, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  a.sin_port = htons(srv.udp_port);
  const char dgram[] = "datagram";
  REQUIRE(::sendto(u, dgram, sizeof dgram - 1, 0, reinterpret_cast<sockaddr*>(&a), sizeof a) == sizeof dgram - 1);
  char buf[64];
  auto n = ::recv(u, buf, sizeof buf, 0);
  CHECK(std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0) == "datagram");
  ::close(u);

  // unix stream
  int x = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ::setsockopt(x, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  std::strncpy(un.sun_path, srv.unix_path.c_str(), sizeof un.sun_path - 1);
  REQUIRE(::connect(x, reinterpret_cast<sockaddr*>(&un), sizeof un) == 0);
  REQUIRE(send_all(x, "over unix\n"));
  CHECK(recv_exact(x, 10) == "over unix\n");
  ::close(x);

  // tcp6
  int v6 = ::socket(AF_INET6, SOCK_STREAM, 0);
  ::setsockopt(v6, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in6 a6{};
  a6.sin6_family = AF_INET6;
  a6.sin6_port = htons(srv.v6_port);
  a6.sin6_addr = in6addr_loopback;
  REQUIRE(::connect(v6, reinterpret_cast<sockaddr*>(&a6), sizeof a6) == 0);
  REQUIRE(send_all(v6, "over ipv6\n"));
  CHECK(recv_exact(v6, 10) == "over ipv6\n");
  ::close(v6);

  // unixgram: the client binds a path so the reply has somewhere to go
  int g = ::socket(AF_UNIX, SOCK_DGRAM, 0);
  ::setsockopt(g, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_un me{};
  me.sun_family = AF_UNIX;
  auto my_path = srv.dir.file("client.dgram").string();
  std::strncpy(me.sun_path, my_path.c_str(), sizeof me.sun_path - 1);
  REQUIRE(::bind(g, reinterpret_cast<sockaddr*>(&me), sizeof me) == 0);
  sockaddr_un to{};
  to.sun_family = AF_UNIX;
  std::strncpy(to.sun_path, srv.dgram_path.c_str(), sizeof to.sun_path - 1);
  const char gram[] = "unix datagram";
  REQUIRE(::sendto(g, gram, sizeof gram - 1, 0, reinterpret_cast<sockaddr*>(&to), sizeof to) == sizeof gram - 1);
  n = ::recv(g, buf, sizeof buf, 0);
  CHECK(std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0) == "unix datagram");
  ::close(g);
}

TEST_CASE("process mode: dispatch_mode connection keeps a connection on one worker", "[process][dispatch]") {
  process_server srv("connection");
  std::set<int> used;
  for (int i = 0; i < 12; ++i) {
    line_client c(srv.port);
    REQUIRE(c.ok());
    int w = c.whoami();
    REQUIRE(w >= 0);
    used.insert(w);
    for (int k = 0; k < 5; ++k) CHECK(c.whoami() == w);
  }
  CHECK(used.size() == 3);  // consecutive session ids spread over all workers
}

TEST_CASE("process mode: dispatch_mode round_robin spreads one connection's messages", "[process][dispatch]") {
  process_server srv("round_robin");
  line_client c(srv.port);
  REQUIRE(c.ok());
  std::map<int, int> count;
  for (int k = 0; k < 30; ++k) ++count[c.whoami()];
  CHECK(count.size() == 3);
  for (auto& [w, n] : count) CHECK(n == 10);
}

TEST_CASE("process mode: dispatch_mode ip sends every connection of one address to one worker",
          "[process][dispatch]") {
  process_server srv("ip");
  std::set<int> used;
  for (int i = 0; i < 8; ++i) {
    line_client c(srv.port);
    REQUIRE(c.ok());
    used.insert(c.whoami());
    used.insert(c.whoami());
  }
  CHECK(used.size() == 1);
}

TEST_CASE("process mode: dispatch_mode uid routes by the bound uid", "[process][dispatch]") {
  process_server srv("uid");
  for (int uid : {3, 4, 5, 7}) {
    line_client c(srv.port);
    REQUIRE(c.ok());
    REQUIRE(c.call("bind " + std::to_string(uid)) == "ok");
    for (int k = 0; k < 4; ++k) CHECK(c.whoami() == uid % 3);
  }
}

TEST_CASE("process mode: dispatch_mode idle prefers workers that are not busy", "[process][dispatch]") {
  process_server srv("idle");
  // One connection keeps a worker busy; the other connections' requests go elsewhere.
  line_client busy(srv.port);
  REQUIRE(busy.ok());
  std::thread sleeper([&] { busy.call("sleep 1500"); });
  std::this_thread::sleep_for(200ms);
  int busy_worker = -1;
  auto s = srv.stats();
  REQUIRE(s.is_object());
  for (auto& w : s["workers"])
    if (w["state"] == "busy") busy_worker = w["id"].get<int>();
  REQUIRE(busy_worker >= 0);
  std::set<int> used;
  for (int i = 0; i < 10; ++i) {
    line_client c(srv.port);
    REQUIRE(c.ok());
    used.insert(c.whoami());
  }
  sleeper.join();
  CHECK(used.count(busy_worker) == 0);
  CHECK(used.size() == 2);
}

TEST_CASE("process mode: kill -9 of a worker under load keeps every client connection", "[process][crash]") {
  process_server srv("connection");
  constexpr int n = 12;
  std::vector<std::unique_ptr<line_client>> clients;
  for (int i = 0; i < n; ++i) {
    clients.push_back(std::make_unique<line_client>(srv.port));
    REQUIRE(clients.back()->ok());
    REQUIRE(clients.back()->whoami() >= 0);
  }
  auto before = srv.worker_pids();
  REQUIRE(before.size() == 3);
  REQUIRE(::kill(before[1], SIGKILL) == 0);
  auto t0 = std::chrono::steady_clock::now();
  std::vector<int> after;
  for (;;) {
    after = srv.worker_pids();
    if (after.size() == 3 && after[1] != before[1] && after[1] > 0) break;
    REQUIRE(std::chrono::steady_clock::now() - t0 < 3s);
    std::this_thread::sleep_for(10ms);
  }
  auto took = std::chrono::steady_clock::now() - t0;
  INFO("replacement after " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
  CHECK(took < 1s);
  // Every connection, including those served by the killed worker, still works.
  for (auto& c : clients) CHECK(c->whoami() >= 0);
  CHECK(srv.wait_log("exited unexpectedly: killed by signal 9", 1s));
}

TEST_CASE("process mode: SIGUSR1 during a bounded load fails no request", "[process][reload]") {
  process_server srv("round_robin");
  auto before = srv.worker_pids();
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::thread> load;
  for (int i = 0; i < 4; ++i)
    load.emplace_back([&, i] {
      line_client c(srv.port);
      if (!c.ok()) {
        ++failed;
        return;
      }
      for (int k = 0; k < 3000 && !stop; ++k) {
        auto w = c.whoami();
        (w >= 0 ? ok : failed)++;
      }
      (void)i;
    });
  std::this_thread::sleep_for(150ms);
  auto pid = std::stoi(t::read_file(srv.pid_file));
  REQUIRE(::kill(pid, SIGUSR1) == 0);
  REQUIRE(srv.wait_log("reload done", 10s));
  std::this_thread::sleep_for(100ms);
  stop = true;
  for (auto& th : load) th.join();
  CHECK(failed == 0);
  CHECK(ok > 100);
  auto after = srv.worker_pids();
  REQUIRE(after.size() == before.size());
  for (std::size_t i = 0; i < after.size(); ++i) CHECK(after[i] != before[i]);
}

TEST_CASE("process mode: after a reload, an open connection is served by the new process", "[process][reload]") {
  // connection dispatch: the connection stays with worker id 0 or 1, whose process changes.
  process_server srv("connection", 2);
  line_client c(srv.port);
  REQUIRE(c.ok());
  const auto first = c.call("whoami");  // "worker N pid P"
  REQUIRE(first.rfind("worker ", 0) == 0);
  auto pid = std::stoi(t::read_file(srv.pid_file));
  REQUIRE(::kill(pid, SIGUSR1) == 0);
  REQUIRE(srv.wait_log("reload done", 10s));
  // The new process of that worker id answers, over the same connection. It once handled the
  // line and could not reply ("session is closed or unknown"): the client waited forever.
  const auto second = c.call("whoami");
  INFO(first << " then " << second);
  REQUIRE(second.rfind("worker ", 0) == 0);
  CHECK(second.substr(0, 9) == first.substr(0, 9));  // the same worker id
  CHECK(second != first);                            // another pid
  CHECK(srv.wait_log("open connection\\(s\\) handed to the new process of worker", 5s));
  CHECK(srv.count_log("session is closed or unknown") == 0);
}

TEST_CASE("process mode: max_request recycles workers without losing a message", "[process][max_request]") {
  process_server srv("round_robin", 2, "max_request = 40\n");
  line_client c(srv.port);
  REQUIRE(c.ok());
  int answered = 0;
  for (int k = 0; k < 300; ++k) answered += c.whoami() >= 0;
  CHECK(answered == 300);
  auto s = srv.stats();
  REQUIRE(s.is_object());
  int restarts = 0;
  for (auto& w : s["workers"]) restarts += w["restarts"].get<int>();
  CHECK(restarts >= 4);  // 300 messages / 2 workers / 40 per life
}
