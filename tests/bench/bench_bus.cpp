// The message bus between workers, against the same payloads over a bare Unix-socket pair
// between two processes (one write() per message, the reader reads what is there).
//
//   publish -> 1 subscriber in another worker: messages/s and p99 latency (64 B, 1 KiB)
//   publish -> 4 subscribers (fan-out): deliveries/s
//   request/reply round trips/s between two workers (64 B)
//
// swactor runs `bus_bench` (apps/modules/bus_bench.hpp) in a base-mode server with 5 workers;
// the module publishes from worker 0 and its subscribers time what they handle. The issue's
// target: >= 0.5x the reference for 64-byte messages.
//
//   build/tests/bench/bench_bus            (SWACTOR_BUS_N: messages per run, default 200000)

#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "bench_process.hpp"
#include "bench_report.hpp"
#include "swactor/core/histogram.hpp"

namespace {

using namespace std::chrono_literals;
using swactor::bench::child;
using swactor::bench::clock_type;

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now().time_since_epoch()).count());
}

struct run_figures {
  double per_second = 0;  // messages (or deliveries, or round trips) per second
  double p99_us = 0;
  std::uint64_t received = 0;
};

// -- the reference: a socketpair, a forked reader ------------------------------------------------

bool write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    auto w = ::write(fd, p, n);
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

// Messages are [u32 length][payload], the payload's first 8 bytes the send time. The reader
// reports (count, last receive ns, p99 ns) on its pipe back.
run_figures reference_stream(std::size_t n, std::size_t size, bool paced = false) {
  int sv[2];
  ::socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
  int back[2];
  if (::pipe(back) != 0) return {};
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(sv[0]);
    swactor::histogram h;
    std::vector<char> buf(1 << 16);
    std::string pending;
    std::uint64_t count = 0, last = 0;
    while (count < n) {
      auto r = ::read(sv[1], buf.data(), buf.size());
      if (r <= 0) break;
      pending.append(buf.data(), static_cast<std::size_t>(r));
      std::size_t at = 0;
      auto t = now_ns();
      while (pending.size() - at >= 4) {
        std::uint32_t len = 0;
        std::memcpy(&len, pending.data() + at, 4);
        if (pending.size() - at - 4 < len) break;
        std::uint64_t sent = 0;
        std::memcpy(&sent, pending.data() + at + 4, 8);
        h.record(t > sent ? t - sent : 0);
        ++count;
        last = t;
        at += 4 + len;
      }
      pending.erase(0, at);
    }
    std::uint64_t out[3] = {count, last, h.percentile(99)};
    (void)!::write(back[1], out, sizeof out);
    ::_exit(0);
  }
  ::close(sv[1]);
  std::string msg(4 + std::max<std::size_t>(size, 8), 'x');
  std::uint32_t len = static_cast<std::uint32_t>(msg.size() - 4);
  std::memcpy(msg.data(), &len, 4);
  auto start = now_ns();
  for (std::size_t i = 0; i < n; ++i) {
    auto t = now_ns();
    std::memcpy(msg.data() + 4, &t, 8);
    if (!write_all(sv[0], msg.data(), msg.size())) break;
    if (paced) ::sched_yield();
  }
  std::uint64_t in[3] = {0, 0, 0};
  (void)!::read(back[0], in, sizeof in);
  ::close(sv[0]);
  ::waitpid(pid, nullptr, 0);
  ::close(back[0]);
  ::close(back[1]);
  run_figures f;
  f.received = in[0];
  f.per_second = in[1] > start ? static_cast<double>(in[0]) / (static_cast<double>(in[1] - start) / 1e9) : 0;
  f.p99_us = static_cast<double>(in[2]) / 1000;
  return f;
}

run_figures reference_round_trips(std::size_t n, std::size_t size) {
  int sv[2];
  ::socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(sv[0]);
    std::vector<char> buf(size);
    for (std::size_t i = 0; i < n; ++i) {
      std::size_t got = 0;
      while (got < size) {
        auto r = ::read(sv[1], buf.data() + got, size - got);
        if (r <= 0) ::_exit(1);
        got += static_cast<std::size_t>(r);
      }
      if (!write_all(sv[1], buf.data(), size)) ::_exit(1);
    }
    ::_exit(0);
  }
  ::close(sv[1]);
  std::vector<char> buf(size, 'x');
  swactor::histogram h;
  auto start = now_ns();
  for (std::size_t i = 0; i < n; ++i) {
    auto t0 = now_ns();
    if (!write_all(sv[0], buf.data(), size)) break;
    std::size_t got = 0;
    while (got < size) {
      auto r = ::read(sv[0], buf.data() + got, size - got);
      if (r <= 0) break;
      got += static_cast<std::size_t>(r);
    }
    h.record(now_ns() - t0);
  }
  auto elapsed = now_ns() - start;
  ::close(sv[0]);
  ::waitpid(pid, nullptr, 0);
  run_figures f;
  f.received = n;
  f.per_second = static_cast<double>(n) / (static_cast<double>(elapsed) / 1e9);
  f.p99_us = static_cast<double>(h.percentile(99)) / 1000;
  return f;
}

// -- swactor ----------------------------------------------------------------------------------


// One command line, one reply line.
std::string ask(int fd, const std::string& line) {
  if (!write_all(fd, line.data(), line.size())) return {};
  std::string out;
  char c;
  while (::read(fd, &c, 1) == 1 && c != '\n') out.push_back(c);
  return out;
}

std::map<std::string, double> fields(const std::string& reply) {
  std::map<std::string, double> m;
  std::size_t at = 0;
  while (at < reply.size()) {
    auto sp = reply.find(' ', at);
    auto item = reply.substr(at, sp == std::string::npos ? std::string::npos : sp - at);
    auto eq = item.find('=');
    if (eq != std::string::npos) m[item.substr(0, eq)] = std::atof(item.c_str() + eq + 1);
    if (sp == std::string::npos) break;
    at = sp + 1;
  }
  return m;
}

}  // namespace

int main() {
  namespace fs = std::filesystem;
  auto bin = swactor::bench::find_bin("bench_bus", "SWACTOR_BIN", {"apps/swactor", "build/apps/swactor", "../apps/swactor"},
                                      "the swactor binary");
  std::size_t n = 200000;
  if (const char* e = std::getenv("SWACTOR_BUS_N")) n = std::strtoul(e, nullptr, 10);
  auto dir = fs::temp_directory_path() / ("swactor-bench-bus-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  int port = swactor::bench::free_port();
  // 5 workers: the worker a connection lands on publishes to the 4 after it (wrapping).
  std::string cfg = "[server]\nworkers = 5\nlog_level = \"warning\"\n[bus]\nmailbox_limit = 10000000\n"
                    "[modules.bus_bench]\nworkers = 5\n"
                    "[[listen]]\nurl = \"tcp://127.0.0.1:" + std::to_string(port) +
                    "\"\nmodule = \"bus_bench\"\nframing = { type = \"eof\", delimiter = \"\\n\" }\n";
  std::ofstream(dir / "app.toml") << cfg;
  swactor::bench::report rep("bench_bus");
  int status = 0;
  {
    child srv({bin, "run", (dir / "app.toml").string()}, dir, "server");
    int fd = -1;
    for (int i = 0; i < 200 && fd < 0; ++i) {
      std::this_thread::sleep_for(50ms);
      fd = swactor::bench::connect_loopback(port);
    }
    if (fd < 0) {
      std::fprintf(stderr, "bench_bus: the server did not start; see %s\n", srv.err.c_str());
      return 1;
    }
    std::this_thread::sleep_for(500ms);  // every worker up
    (void)ask(fd, "rr 100 64\n");  // warm-up
    auto measure = [&](const std::string& cmd) {
      auto reply = ask(fd, cmd + "\n");
      if (reply.rfind("error", 0) == 0 || reply.empty()) {
        std::fprintf(stderr, "bench_bus: %s -> %s\n", cmd.c_str(), reply.c_str());
        status = 1;
      }
      return fields(reply);
    };
    auto one64 = measure("pubsub " + std::to_string(n) + " 64 1");
    auto one1k = measure("pubsub " + std::to_string(n / 2) + " 1024 1");
    auto paced = measure("pubsub " + std::to_string(n / 10) + " 64 1 1");
    auto fan = measure("pubsub " + std::to_string(n / 4) + " 64 4");
    auto rr = measure("rr " + std::to_string(n / 10) + " 64");
    ::close(fd);
    srv.stop();

    auto ref64 = reference_stream(n, 64);
    auto ref1k = reference_stream(n / 2, 1024);
    auto refrr = reference_round_trips(n / 10, 64);
    auto refpaced = reference_stream(n / 10, 64, true);
    auto rate = [](std::map<std::string, double>& f, const char* count) {
      return f["elapsed_us"] > 0 ? f[count] / (f["elapsed_us"] / 1e6) : 0.0;
    };
    const std::string ref = "same payloads over a Unix socketpair between two processes";
    rep.add({"publish -> 1 subscriber, 64 B: messages/s", rate(one64, "received"), "msg/s", ref64.per_second, ref, 0.5});
    rep.add({"publish -> 1 subscriber, 64 B flat out: p99 latency", one64["p99_us"], "us", ref64.p99_us, ref, {}});
    rep.add({"publish -> 1 subscriber, 64 B paced: messages/s", rate(paced, "received"), "msg/s", refpaced.per_second,
             "socketpair, writer yields after each write", {}});
    rep.add({"publish -> 1 subscriber, 64 B paced: p99 latency", paced["p99_us"], "us", refpaced.p99_us,
             "socketpair, writer yields after each write", {}});
    rep.add({"publish -> 1 subscriber, 1 KiB: messages/s", rate(one1k, "received"), "msg/s", ref1k.per_second, ref, {}});
    rep.add({"publish -> 1 subscriber, 1 KiB flat out: p99 latency", one1k["p99_us"], "us", ref1k.p99_us, ref, {}});
    rep.add({"publish -> 4 subscribers, 64 B: deliveries/s", rate(fan, "received"), "msg/s", ref64.per_second,
             "one socketpair stream (deliveries, not publishes)", {}});
    rep.add({"publish -> 4 subscribers, 64 B: p99 latency", fan["p99_us"], "us", {}, "", {}});
    rep.add({"request/reply between two workers, 64 B: round trips/s", rate(rr, "n"), "rt/s", refrr.per_second,
             "ping-pong over a Unix socketpair", {}});
    rep.add({"request/reply, 64 B: p99 round trip", rr["p99_us"], "us", refrr.p99_us, "ping-pong over a Unix socketpair", {}});
    if (one64["received"] != static_cast<double>(n)) {
      std::fprintf(stderr, "bench_bus: 64 B run received %.0f of %zu\n", one64["received"], n);
      status = 1;
    }
  }
  rep.finish();
  fs::remove_all(dir);
  return status;
}
