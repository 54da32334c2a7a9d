// Broadcast of a 64-byte WebSocket message to N connections over 2 workers: the time from
// the request until the last connection has the frame (issue 12's broadcast row).
//
// The server runs ws_echo on a ws:// listener and the probe module on a tcp:// one; the
// broadcast is `ws_broadcast * <64 bytes>` sent to the probe (ctx.broadcast to every
// WebSocket of the server, fanned out by each worker in base mode, by the reactor in process
// mode). This program holds the N client connections on one epoll loop, sends the probe
// line, and stops the clock when every connection has read its 66-byte frame. Rounds:
// $SWACTOR_BENCH_ROUNDS (default 20); N: $SWACTOR_BENCH_WS_CONNS (default 10000, lowered
// to fit RLIMIT_NOFILE). Server unpinned (its two workers need both CPUs).
#include <sys/epoll.h>

#include <algorithm>
#include <cstring>

#include "bench_process.hpp"
#include "bench_report.hpp"

using namespace std::chrono_literals;
namespace b = swactor::bench;

namespace {

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    auto n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EAGAIN) {
      std::this_thread::sleep_for(1ms);
      continue;
    }
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

struct result {
  bool ok = false;
  std::string why;
  int conns = 0;
  std::vector<double> ms;  // per round
};

result run_mode(const std::string& bin, const std::string& mode, int n, int rounds, const b::fs::path& dir) {
  result r;
  const int port = b::free_port(), ctl_port = b::free_port();
  auto cfg = dir / ("ws_broadcast_" + mode + ".toml");
  {
    std::ofstream f(cfg);
    f << "[server]\nmode = \"" << mode << "\"\nworkers = 2\n\n"
      << "[modules.ws_echo]\n[modules.probe]\n\n"
      << "[[listen]]\nurl = \"ws://127.0.0.1:" << port << "\"\nmodule = \"ws_echo\"\nbacklog = 4096\n"
      << "websocket = { permessage_deflate = false, ping_interval = \"0s\", idle_timeout = \"0s\" }\n\n"
      << "[[listen]]\nurl = \"tcp://127.0.0.1:" << ctl_port << "\"\nmodule = \"probe\"\n"
      << "framing = { type = \"eof\", delimiter = \"\\n\" }\n";
  }
  b::child srv({bin, "run", cfg.string()}, dir, "ws_broadcast_" + mode);
  if (!srv.wait_text("swactor master started", 1, true, 10s) || !b::probe_reply(ctl_port, "whoami\n", "worker")) {
    r.why = "server did not start: " + b::read_text(srv.err).substr(0, 500);
    return r;
  }
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  std::vector<int> fds;
  const std::string upgrade =
      "GET / HTTP/1.1\r\nHost: b\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  // Connect and upgrade in batches, blocking: simple, and not what is measured.
  for (int i = 0; i < n; ++i) {
    int fd = b::connect_loopback(port);
    if (fd < 0 || !send_all(fd, upgrade)) {
      r.why = "connect/upgrade failed at connection " + std::to_string(i);
      break;
    }
    fds.push_back(fd);
    if (fds.size() % 200 == 0 || i + 1 == n) {
      for (std::size_t k = fds.size() - (fds.size() % 200 == 0 ? 200 : fds.size() % 200); k < fds.size(); ++k) {
        std::string head;
        char buf[512];
        while (head.find("\r\n\r\n") == std::string::npos) {
          auto got = ::recv(fds[k], buf, sizeof buf, 0);
          if (got <= 0) break;
          head.append(buf, static_cast<std::size_t>(got));
        }
        if (head.rfind("HTTP/1.1 101", 0) != 0) {
          r.why = "handshake refused: " + head.substr(0, 40);
          break;
        }
      }
      if (!r.why.empty()) break;
    }
  }
  if (!r.why.empty()) {
    for (int fd : fds) ::close(fd);
    ::close(ep);
    return r;
  }
  for (std::size_t i = 0; i < fds.size(); ++i) {
    int fl = ::fcntl(fds[i], F_GETFL);
    ::fcntl(fds[i], F_SETFL, fl | O_NONBLOCK);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
  }
  r.conns = static_cast<int>(fds.size());
  int ctl = b::connect_loopback(ctl_port);
  const std::string payload(64, 'b');
  const std::size_t frame = 2 + payload.size();
  std::vector<std::size_t> got(fds.size());
  std::vector<epoll_event> events(1024);
  char buf[4096];
  for (int round = 0; round < rounds && r.why.empty(); ++round) {
    std::fill(got.begin(), got.end(), 0);
    std::size_t done = 0;
    auto t0 = b::clock_type::now();
    if (!send_all(ctl, "ws_broadcast * " + payload + "\n")) {
      r.why = "probe connection lost";
      break;
    }
    const auto until = t0 + 30s;
    while (done < fds.size() && b::clock_type::now() < until) {
      int k = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), 100);
      for (int e = 0; e < k; ++e) {
        auto i = events[static_cast<std::size_t>(e)].data.u64;
        for (;;) {
          auto m = ::recv(fds[i], buf, sizeof buf, 0);
          if (m <= 0) break;
          bool was_done = got[i] >= frame;
          got[i] += static_cast<std::size_t>(m);
          if (!was_done && got[i] >= frame) ++done;
        }
      }
    }
    auto t1 = b::clock_type::now();
    // The probe's "ok" (read after the clock stopped, so it is not in the figure).
    std::string line;
    while (line.find('\n') == std::string::npos) {
      auto m = ::recv(ctl, buf, sizeof buf, 0);
      if (m <= 0) break;
      line.append(buf, static_cast<std::size_t>(m));
    }
    if (done < fds.size()) {
      r.why = std::to_string(fds.size() - done) + " connection(s) did not get round " + std::to_string(round);
      break;
    }
    r.ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    std::this_thread::sleep_for(20ms);
  }
  ::close(ctl);
  for (int fd : fds) ::close(fd);
  ::close(ep);
  r.ok = r.why.empty();
  return r;
}

}  // namespace

int main() {
  ::signal(SIGPIPE, SIG_IGN);
  const auto self = b::fs::read_symlink("/proc/self/exe").parent_path();
  const auto bin = b::find_bin("bench_ws_broadcast", "SWACTOR_BIN", {self / ".." / ".." / "apps" / "swactor"}, "swactor");
  int n = env_int("SWACTOR_BENCH_WS_CONNS", 10000);
  const int rounds = env_int("SWACTOR_BENCH_ROUNDS", 20);
  // Client and server each hold n descriptors.
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &rl);
  if (static_cast<rlim_t>(n) + 200 > rl.rlim_cur) n = static_cast<int>(rl.rlim_cur) - 200;
  auto dir = b::fs::temp_directory_path() / ("swactor-bench-wsb-" + std::to_string(::getpid()));
  b::fs::create_directories(dir);
  swactor::bench::report rep("bench_ws_broadcast");
  int status = 0;
  for (const char* mode : {"base", "process"}) {
    auto r = run_mode(bin, mode, n, rounds, dir);
    if (!r.ok) {
      std::fprintf(stderr, "bench_ws_broadcast: %s mode: %s\n", mode, r.why.c_str());
      status = 1;
      continue;
    }
    std::sort(r.ms.begin(), r.ms.end());
    auto median = r.ms[r.ms.size() / 2];
    auto worst = r.ms.back();
    const std::string what = std::string("broadcast 64 B to ") + std::to_string(r.conns) + " WebSockets, 2 workers, " +
                             mode + " mode: until the last has it";
    rep.add({what + " (median of " + std::to_string(r.ms.size()) + ")", median, "ms", std::nullopt, {}, std::nullopt});
    rep.add({what + " (slowest round)", worst, "ms", std::nullopt, {}, std::nullopt});
  }
  rep.finish();
  std::error_code ec;
  b::fs::remove_all(dir, ec);
  return status;
}
