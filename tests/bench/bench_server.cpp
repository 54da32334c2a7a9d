// TCP echo throughput of the server, against a single-threaded epoll echo server.
//
// Every variant is driven by the same `swactor bench` command (the real binary, a separate
// process): long_tcp, 64-byte messages, 100 long-lived connections, one client thread, for
// $SWACTOR_BENCH_SECONDS (default 3) seconds:
//   (a) swactor_test_echo (raw epoll, one thread)      = the reference
//   (b) swactor run, base mode, 1 worker, echo module (raw framing)
//   (c) swactor run, base mode, 2 workers
//   (d) swactor run, process mode, 2 workers          (skipped when the master refuses it)
// Ratios are rps / rps(a); targets: base 1 worker >= 0.8, process >= 0.5.
//
// Binaries: $SWACTOR_BIN and $SWACTOR_TEST_ECHO (scripts/run-benchmarks.sh sets SWACTOR_BIN),
// else found relative to this program in the build tree (../../apps/swactor,
// ../support/swactor_test_echo).
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <netinet/in.h>
#include <sys/socket.h>

#include "bench_process.hpp"
#include "bench_report.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using swactor::bench::child;
using swactor::bench::clock_type;
using swactor::bench::free_port;
using swactor::bench::read_text;

struct bench_result {
  double rps = 0;
  std::uint64_t ok = 0, errors = 0;
  std::string summary;
};

std::optional<bench_result> run_bench(const std::string& swactor, const fs::path& dir, const std::string& name,
                                      int port, const std::string& seconds) {
  auto json_path = dir / (name + ".json");
  std::vector<std::string> argv = {swactor, "bench", "-s", "tcp://127.0.0.1:" + std::to_string(port), "-f", "long_tcp",
                                   "-c", "100", "-t", "1", "--size", "64", "-d", seconds + "s", "--timeout", "2s",
                                   "--json", json_path.string()};
  std::string cmd;
  for (auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
  std::printf("  %s: %s\n", name.c_str(), cmd.c_str());
  child c(argv, dir, "bench-" + name);
  auto st = c.wait(std::chrono::seconds(std::atoi(seconds.c_str()) + 15));
  if (!st) {
    std::fprintf(stderr, "bench_server: %s: the bench client did not finish\n", name.c_str());
    return std::nullopt;
  }
  auto text = read_text(json_path);
  if (text.empty()) {
    std::fprintf(stderr, "bench_server: %s: no report (exit %d): %s\n", name.c_str(), *st, read_text(c.err).c_str());
    return std::nullopt;
  }
  auto j = nlohmann::json::parse(text);
  bench_result r;
  r.rps = j.at("rps").get<double>();
  r.ok = j.at("ok").get<std::uint64_t>();
  r.errors = j.at("error_total").get<std::uint64_t>();
  char buf[256];
  std::snprintf(buf, sizeof buf, "%.0f rps, %llu ok, %llu errors, p50 %.0f us, p99 %.0f us", r.rps,
                static_cast<unsigned long long>(r.ok), static_cast<unsigned long long>(r.errors),
                j.at("latency_us").at("p50").get<double>(), j.at("latency_us").at("p99").get<double>());
  r.summary = buf;
  std::printf("    -> %s\n", r.summary.c_str());
  return r;
}

// Starts `swactor run` with `workers` workers in `mode`; nullopt (and the reason) when the
// master refuses or fails to start.
std::optional<bench_result> run_swactor(const std::string& swactor, const fs::path& dir, const std::string& name,
                                        const std::string& mode, int workers, const std::string& seconds,
                                        std::string& why_not) {
  const int port = free_port();
  auto cfg = dir / (name + ".toml");
  std::ofstream(cfg) << "[server]\nmode = \"" << mode << "\"\nworkers = " << workers
                     << "\nlog_level = \"warning\"\nadmin_socket = \"" << (dir / (name + ".sock")).string()
                     << "\"\n\n[[listen]]\nurl = \"tcp://127.0.0.1:" << port
                     << "\"\nmodule = \"echo\"\nbacklog = 1024\n";
  // log_level warning hides the start line: watch for the admin socket and the workers instead.
  child srv({swactor, "run", cfg.string()}, dir, name);
  const auto until = clock_type::now() + 10s;
  bool up = false;
  while (clock_type::now() < until && srv.running()) {
    // Serving once a connection gets its echo back.
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval tv{0, 200000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && ::write(fd, "x", 1) == 1) {
      char ch;
      if (::read(fd, &ch, 1) == 1) up = true;
    }
    ::close(fd);
    if (up) break;
    std::this_thread::sleep_for(20ms);
  }
  if (!up) {
    srv.stop();
    why_not = "did not start (exit " + (srv.status ? std::to_string(*srv.status) : std::string("?")) +
              "): " + read_text(srv.err);
    while (!why_not.empty() && why_not.back() == '\n') why_not.pop_back();
    return std::nullopt;
  }
  std::this_thread::sleep_for(200ms);  // every worker up (the probe above needed only one)
  auto r = run_bench(swactor, dir, name, port, seconds);
  int rc = srv.stop();
  if (rc != 0) std::fprintf(stderr, "bench_server: %s: swactor run exited with %d\n", name.c_str(), rc);
  if (!r) why_not = "bench failed";
  return r;
}

}  // namespace

int main() {
  ::signal(SIGPIPE, SIG_IGN);
  const auto self = fs::read_symlink("/proc/self/exe").parent_path();
  const auto swactor =
      swactor::bench::find_bin("bench_server", "SWACTOR_BIN", {self / ".." / ".." / "apps" / "swactor"}, "swactor");
  const auto echo =
      swactor::bench::find_bin("bench_server", "SWACTOR_TEST_ECHO",
                               {self / ".." / "support" / "swactor_test_echo", self / "swactor_test_echo"},
                               "swactor_test_echo");
  std::string seconds = "3";
  if (const char* s = std::getenv("SWACTOR_BENCH_SECONDS"); s && std::atoi(s) > 0) seconds = std::to_string(std::atoi(s));

  char tmpl[] = "/tmp/bench-server-XXXXXX";
  if (!::mkdtemp(tmpl)) return 1;
  const fs::path dir = tmpl;
  std::printf("bench_server: long_tcp, 64-byte messages, 100 connections, 1 client thread, %s s each\n",
              seconds.c_str());

  // (a) the reference.
  std::optional<bench_result> ref;
  {
    child e({echo, "--tcp", "127.0.0.1:0"}, dir, "echo");
    if (!e.wait_text("ready", 1, false, 5s)) {
      std::fprintf(stderr, "bench_server: echo server did not start\n");
      return 1;
    }
    auto out = read_text(e.out);
    int port = std::atoi(out.c_str() + out.find("port=") + 5);
    ref = run_bench(swactor, dir, "epoll_echo", port, seconds);
  }
  if (!ref) return 1;

  swactor::bench::report rep("bench_server");
  const std::string ref_name = "swactor_test_echo (epoll, 1 thread)";
  rep.add({"tcp echo rps: swactor_test_echo (reference)", ref->rps, "req/s", std::nullopt, "", std::nullopt});
  int status = 0;
  struct variant {
    std::string name, metric, mode;
    int workers;
    std::optional<double> target;
  };
  for (const auto& v : std::vector<variant>{{"base_1", "tcp echo rps: base mode, 1 worker", "base", 1, 0.8},
                                            {"base_2", "tcp echo rps: base mode, 2 workers", "base", 2, std::nullopt},
                                            {"process_2", "tcp echo rps: process mode, 2 workers", "process", 2, 0.5}}) {
    std::string why;
    auto r = run_swactor(swactor, dir, v.name, v.mode, v.workers, seconds, why);
    if (!r) {
      std::printf("  %s: skipped: %s\n", v.name.c_str(), why.c_str());
      rep.add({v.metric + " (skipped: " + (v.mode == "process" ? "mode not available" : "failed") + ")", 0, "req/s",
               std::nullopt, "", v.target});
      if (v.mode != "process") status = 1;
      continue;
    }
    rep.add({v.metric, r->rps, "req/s", ref->rps, ref_name, v.target});
  }
  rep.finish();
  std::error_code ec;
  fs::remove_all(dir, ec);
  return status;
}
