// How close does `swactor bench -f long_tcp` get to a minimal hand-written epoll client?
// Both drive swactor_test_echo (raw epoll echo server) with the same connections, threads,
// message size and strict request/response; the ratio is engine rps / raw client rps
// (target >= 0.9).
//
// Server and client are pinned to CPUs 0 and 1 (when there are two).
// The echo server is found through $SWACTOR_TEST_ECHO, else the path compiled in by
// tests/support/CMakeLists.txt, else next to this binary (./ or ../support/).
// $SWACTOR_BENCH_SECONDS sets each measurement's length (default 0.5 s) and
// $SWACTOR_BENCH_REPS the number of interleaved measurements per side (default 5, median).
#include <fcntl.h>
#include <sched.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "bench_report.hpp"
#include "runner.hpp"

namespace {

using swactor::bench::median;

using clock_type = std::chrono::steady_clock;
namespace fs = std::filesystem;

std::string find_echo() {
  if (const char* e = std::getenv("SWACTOR_TEST_ECHO"); e && *e) return e;
#ifdef SWACTOR_TEST_ECHO
  if (fs::exists(SWACTOR_TEST_ECHO)) return SWACTOR_TEST_ECHO;
#endif
  const auto self = fs::read_symlink("/proc/self/exe").parent_path();
  for (auto p : {self / "swactor_test_echo", self / ".." / "support" / "swactor_test_echo"})
    if (fs::exists(p)) return p.string();
  std::fprintf(stderr, "bench_bench_overhead: swactor_test_echo not found; set SWACTOR_TEST_ECHO\n");
  std::exit(1);
}

// Server on CPU 0, client threads on CPU 1 (threads inherit the affinity of the thread
// that creates them): a ping-pong's speed otherwise depends on where the scheduler happens
// to place the two sides, which varies from run to run far more than any client overhead.
void pin_to_cpu(int cpu) {
  if (std::thread::hardware_concurrency() < 2) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof set, &set);
}

// Starts the echo server and reads its port; killed by pid at the end.
struct echo_server {
  pid_t pid = -1;
  int port = 0;
  explicit echo_server(const std::string& bin) {
    int fds[2];
    if (pipe(fds) != 0) std::exit(1);
    pid = fork();
    if (pid == 0) {
      pin_to_cpu(0);
      dup2(fds[1], 1);
      close(fds[0]);
      close(fds[1]);
      execl(bin.c_str(), bin.c_str(), "--tcp", "127.0.0.1:0", static_cast<char*>(nullptr));
      _exit(127);
    }
    close(fds[1]);
    std::string out;
    char buf[256];
    ssize_t n;
    while (out.find("ready\n") == std::string::npos && (n = read(fds[0], buf, sizeof buf)) > 0)
      out.append(buf, static_cast<std::size_t>(n));
    close(fds[0]);
    auto at = out.find("port=");
    if (at == std::string::npos) {
      std::fprintf(stderr, "echo server did not start: %s\n", out.c_str());
      std::exit(1);
    }
    port = std::atoi(out.c_str() + at + 5);
  }
  ~echo_server() {
    if (pid > 0) {
      kill(pid, SIGTERM);
      waitpid(pid, nullptr, 0);
    }
  }
};

// -- the reference: a minimal epoll request/response client -----------------------------

// CPU seconds (user + system) of this process so far: the echo server is another
// process, so this is the client's cost, and unlike requests/s it barely moves when other
// programs load the machine.
double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto tv = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return tv(ru.ru_utime) + tv(ru.ru_stime);
}

struct measurement {
  double rps = 0;
  double cpu_us_per_request = 0;
};

struct raw_conn {
  int fd;
  std::size_t got = 0;
};

std::uint64_t raw_thread(int port, int conns, std::size_t size, clock_type::time_point until) {
  int ep = epoll_create1(0);
  std::vector<raw_conn> cs(static_cast<std::size_t>(conns));
  std::string msg(size, 'x');
  std::vector<char> buf(size);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  for (auto& c : cs) {
    c.fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) std::exit(1);
    fcntl(c.fd, F_SETFL, O_NONBLOCK);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = &c;
    epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
    if (send(c.fd, msg.data(), size, MSG_NOSIGNAL) != static_cast<ssize_t>(size)) std::exit(1);
  }
  std::uint64_t done = 0;
  std::vector<epoll_event> evs(256);
  while (clock_type::now() < until) {
    int n = epoll_wait(ep, evs.data(), static_cast<int>(evs.size()), 100);
    for (int i = 0; i < n; ++i) {
      auto* c = static_cast<raw_conn*>(evs[i].data.ptr);
      ssize_t r = recv(c->fd, buf.data(), size - c->got, 0);
      if (r <= 0) continue;
      c->got += static_cast<std::size_t>(r);
      if (c->got < size) continue;
      c->got = 0;
      ++done;
      if (send(c->fd, msg.data(), size, MSG_NOSIGNAL) != static_cast<ssize_t>(size)) std::exit(1);
    }
  }
  for (auto& c : cs) close(c.fd);
  close(ep);
  return done;
}

measurement raw_run(int port, int conns, int threads, std::size_t size, double seconds) {
  std::atomic<std::uint64_t> total{0};
  const double cpu0 = cpu_seconds();
  const auto t0 = clock_type::now();
  const auto until = t0 + std::chrono::duration_cast<clock_type::duration>(
                              std::chrono::duration<double>(seconds));
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    const int mine = conns / threads + (t < conns % threads ? 1 : 0);
    ts.emplace_back([&, mine] { total += raw_thread(port, mine, size, until); });
  }
  for (auto& t : ts) t.join();
  const double n = static_cast<double>(total);
  return {n / std::chrono::duration<double>(clock_type::now() - t0).count(),
          (cpu_seconds() - cpu0) * 1e6 / n};
}

measurement engine_run(int port, int conns, int threads, std::size_t size, double seconds) {
  swactor::bench::settings s;
  swactor::bench::parse_url("tcp://127.0.0.1:" + std::to_string(port), s.server);
  s.mode = "long_tcp";
  s.connections = static_cast<unsigned>(conns);
  s.threads = static_cast<unsigned>(threads);
  s.size = size;
  s.duration = std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::duration<double>(seconds));
  swactor::bench::runner r(s);
  const double cpu0 = cpu_seconds();
  auto res = r.run();
  const double cpu = cpu_seconds() - cpu0;
  if (res.error_total() > 0) std::fprintf(stderr, "engine: %llu errors\n",
                                          static_cast<unsigned long long>(res.error_total()));
  return {res.rps(), cpu * 1e6 / static_cast<double>(res.ok)};
}


}  // namespace

int main() {
  const char* secs_env = std::getenv("SWACTOR_BENCH_SECONDS");
  const double seconds = secs_env ? std::atof(secs_env) : 0.5;
  const char* reps_env = std::getenv("SWACTOR_BENCH_REPS");
  const int reps = reps_env ? std::max(1, std::atoi(reps_env)) : 5;
  echo_server echo(find_echo());
  pin_to_cpu(1);
  swactor::bench::report report("bench_overhead");
  struct config {
    int conns, threads;
    std::size_t size;
  };
  for (auto cfg : {config{1, 1, 64}, config{32, 1, 64}, config{32, 1, 4096}}) {
    // Short interleaved runs, median of each side: on a small shared machine, load from
    // elsewhere then hits both sides alike instead of one whole measurement.
    std::vector<double> raws, engs, raw_cpu, eng_cpu;
    for (int rep = 0; rep < reps; ++rep) {
      auto r = raw_run(echo.port, cfg.conns, cfg.threads, cfg.size, seconds);
      auto e = engine_run(echo.port, cfg.conns, cfg.threads, cfg.size, seconds);
      raws.push_back(r.rps);
      raw_cpu.push_back(r.cpu_us_per_request);
      engs.push_back(e.rps);
      eng_cpu.push_back(e.cpu_us_per_request);
    }
    char name[128];
    std::snprintf(name, sizeof name, "long_tcp rps c=%d t=%d size=%zu", cfg.conns, cfg.threads,
                  cfg.size);
    report.add({name, median(engs), "req/s", median(raws), "minimal epoll client, same load", 0.9});
    // Client CPU per request: ratio = engine cost / raw cost (1.0 = no overhead).
    std::snprintf(name, sizeof name, "long_tcp client cpu/req c=%d t=%d size=%zu", cfg.conns,
                  cfg.threads, cfg.size);
    report.add({name, median(eng_cpu), "us", median(raw_cpu), "minimal epoll client, same load",
                std::nullopt});
  }
  report.finish();
  return 0;
}
