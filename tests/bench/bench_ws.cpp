// WebSocket echo: swactor's ws_echo against Node `ws` 8 running the same echo.
//
// Servers (each pinned to CPU 0, the load generator to CPU 1 when there are two CPUs and
// taskset), all started once and running side by side (idle ones cost nothing):
//   node      node tests/integration/node/ws_echo_server.js PORT --deflate: ws 8's
//             WebSocketServer echoing each message with its opcode; permessage-deflate
//             accepted when offered (threshold 64 B = ws_echo's deflate_min_size, zlib's
//             default level, context takeover, as ws_echo)                  = the reference
//   base      swactor run, base mode, 1 worker, ws:// listener, module ws_echo (defaults:
//             permessage-deflate accepted when offered)
//   process   swactor run, process mode, 1 reactor thread, 1 worker
// Node runs JavaScript on one thread (zlib on its small thread pool), so one swactor worker
// is the fair match; both are on CPU 0 either way.
//
// Load: swactor bench -f websocket -c 100 -t 1 --pipeline 1 -d S --size N [--deflate]:
// 100 connections, each upgraded once, one message in flight per connection (send, wait for
// the echo, send the next). Cases: 64 B, 1 KiB, 64 KiB plain; 64 B, 1 KiB, 64 KiB with
// --deflate (every client message compressed, the server's replies compressed from 64 B up).
// S = $SWACTOR_BENCH_SECONDS (default 3). Every case against every server in turn
// (node, base, process, then the next case), 2 rounds; medians.
//   - msg/s: the load generator's completed echoes per second.
//   - server CPU per message: utime+stime of the server's process tree (/proc/PID/stat)
//     before and after the run, divided by the completed echoes.
//   - load generator busy: its CPU time (wait4) over the run's wall time; near 1.0 the
//     client, not the server, sets the msg/s.
// Target (issue 12): base 64 B msg/s >= 1.5 x node's. Never asserts a figure: the exit
// status is 1 only when a server does not start or a run fails.
//
// Binaries: $SWACTOR_BIN (else the build tree's), node from PATH, the ws package from
// $SWACTOR_NODE_DIR/node_modules (else the build's node/, where scripts/install-deps.sh
// puts it).
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench_process.hpp"
#include "bench_report.hpp"

#ifndef SWACTOR_NODE_SCRIPTS
#define SWACTOR_NODE_SCRIPTS ""
#endif
#ifndef SWACTOR_NODE_DIR
#define SWACTOR_NODE_DIR ""
#endif

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using swactor::bench::child;
using swactor::bench::median;
using swactor::bench::clock_type;
using swactor::bench::free_port;
using swactor::bench::join;
using swactor::bench::pinned;
using swactor::bench::read_text;
using swactor::bench::which;

constexpr int rounds = 2;
constexpr int connections = 100;

struct tools {
  std::string swactor, node, taskset, scripts;
  bool pin = false;
};

std::string last_lines(const std::string& s, std::size_t n = 400) {
  return s.size() <= n ? s : "..." + s.substr(s.size() - n);
}

// Whether a WebSocket upgrade on 127.0.0.1:port gets a 101 (the server is up).
bool ws_probe(int port) {
  return swactor::bench::probe_reply(port,
                                     "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                                     "HTTP/1.1 101");
}

// -- servers ------------------------------------------------------------------------------

struct server {
  std::string name, label;
  std::unique_ptr<child> proc;
  int port = 0;
  std::string failed;  // why it did not start
  std::map<std::string, std::vector<double>> rate, cpu_us, client_busy;  // by case name
};

bool wait_up(server& s) {
  const auto until = clock_type::now() + 15s;
  while (clock_type::now() < until && s.proc->running()) {
    if (ws_probe(s.port)) {
      std::this_thread::sleep_for(200ms);
      return true;
    }
    std::this_thread::sleep_for(20ms);
  }
  s.failed = "did not answer an upgrade within 15 s; stderr: " + last_lines(read_text(s.proc->err)) +
             "; stdout: " + last_lines(read_text(s.proc->out));
  s.proc->stop();
  return false;
}

void start_node(const tools& t, const fs::path& dir, server& s) {
  s.port = free_port();
  s.proc = std::make_unique<child>(
      pinned(t.pin, t.taskset, 0, {t.node, t.scripts + "/ws_echo_server.js", std::to_string(s.port), "--deflate"}),
      dir, s.name);
  wait_up(s);
}

void start_swactor(const tools& t, const fs::path& dir, server& s, const std::string& server_keys) {
  s.port = free_port();
  const auto cfg = dir / (s.name + ".toml");
  std::ofstream(cfg) << "[server]\n"
                     << server_keys << "log_level = \"warning\"\nadmin_socket = \""
                     << (dir / (s.name + ".sock")).string() << "\"\n\n[[listen]]\nurl = \"ws://127.0.0.1:" << s.port
                     << "\"\nmodule = \"ws_echo\"\nbacklog = 4096\n";
  s.proc = std::make_unique<child>(pinned(t.pin, t.taskset, 0, {t.swactor, "run", cfg.string()}), dir, s.name);
  wait_up(s);
}

// -- the load ------------------------------------------------------------------------------

struct case_def {
  std::size_t size;
  bool deflate;
  std::string name() const {
    std::string n = size >= 1024 ? std::to_string(size / 1024) + " KiB" : std::to_string(size) + " B";
    return n + (deflate ? " deflate" : "");
  }
};

struct run_result {
  double rate = 0;           // echoes per second
  double server_cpu_us = 0;  // server CPU per echo
  double client_busy = 0;    // the load generator's CPU time / the run's time (1.0 = saturated)
};

std::optional<run_result> run_load(const tools& t, const fs::path& dir, const server& s, const case_def& c,
                                   int seconds, const std::string& tag) {
  const auto json_path = dir / ("load-" + tag + ".json");
  std::vector<std::string> args = {t.swactor, "bench", "-s", "ws://127.0.0.1:" + std::to_string(s.port) + "/",
                                   "-f", "websocket", "-c", std::to_string(connections), "-t", "1",
                                   "--pipeline", "1", "-d", std::to_string(seconds) + "s",
                                   "--size", std::to_string(c.size), "--timeout", "10s",
                                   "--json", json_path.string()};
  if (c.deflate) args.push_back("--deflate");
  auto argv = pinned(t.pin, t.taskset, 1, args);
  std::printf("  %s: %s\n", tag.c_str(), join(argv).c_str());
  std::fflush(stdout);
  const double before = swactor::bench::tree_cpu_seconds(s.proc->pid);
  const auto t0 = clock_type::now();
  child b(argv, dir, "load-" + tag);
  auto st = b.wait(std::chrono::seconds(seconds + 60));
  const double wall = std::chrono::duration<double>(clock_type::now() - t0).count();
  const double after = swactor::bench::tree_cpu_seconds(s.proc->pid);
  const auto text = read_text(json_path);
  if (!st || text.empty()) {
    std::fprintf(stderr, "bench_ws: %s: swactor bench failed (%s): %s\n", tag.c_str(),
                 st ? std::to_string(*st).c_str() : "timeout", last_lines(read_text(b.err)).c_str());
    return std::nullopt;
  }
  const auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  const auto ok = j.value("ok", std::uint64_t{0});
  const auto errors = j.value("error_total", std::uint64_t{0});
  if (errors > 0 || ok == 0) {
    std::fprintf(stderr, "bench_ws: %s: %llu errors, %llu ok: %s\n", tag.c_str(),
                 static_cast<unsigned long long>(errors), static_cast<unsigned long long>(ok),
                 last_lines(read_text(b.out)).c_str());
    return std::nullopt;
  }
  // A load generator near 1.0 is the bottleneck: msg/s then says more about it than about
  // the server, and the server CPU per message is the figure to compare.
  run_result r{j.at("rps").get<double>(), (after - before) * 1e6 / static_cast<double>(ok), b.cpu_seconds() / wall};
  std::printf("    -> %.0f msg/s, server CPU %.2f us/msg, p99 %.0f us, load generator busy %.2f\n", r.rate,
              r.server_cpu_us, j.at("latency_us").at("p99").get<double>(), r.client_busy);
  return r;
}


}  // namespace

int main() {
  ::signal(SIGPIPE, SIG_IGN);
  const auto self = fs::read_symlink("/proc/self/exe").parent_path();
  tools t;
  t.swactor =
      swactor::bench::find_bin("bench_ws", "SWACTOR_BIN", {self / ".." / ".." / "apps" / "swactor"}, "swactor");
  t.node = which("node");
  t.taskset = which("taskset");
  t.scripts = SWACTOR_NODE_SCRIPTS;
  fs::path node_dir = SWACTOR_NODE_DIR;
  if (const char* e = std::getenv("SWACTOR_NODE_DIR"); e && *e) node_dir = e;
  if (t.node.empty() || !fs::exists(node_dir / "node_modules" / "ws" / "package.json") ||
      !fs::exists(fs::path(t.scripts) / "ws_echo_server.js")) {
    // make bench runs install-deps first: a missing reference is a broken setup, not a skip.
    std::fprintf(stderr,
                 "bench_ws: needs node and the ws package in %s/node_modules (scripts/install-deps.sh, "
                 "SWACTOR_NODE_DIR=DIR for another build dir)\n",
                 node_dir.c_str());
    return 1;
  }
  ::setenv("NODE_PATH", (node_dir / "node_modules").c_str(), 1);
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  t.pin = !t.taskset.empty() && ::sched_getaffinity(0, sizeof cpus, &cpus) == 0 && CPU_ISSET(0, &cpus) &&
          CPU_ISSET(1, &cpus);
  int seconds = 3;
  if (const char* s = std::getenv("SWACTOR_BENCH_SECONDS"); s && std::atoi(s) > 0) seconds = std::atoi(s);

  char tmpl[] = "/tmp/bench-ws-XXXXXX";
  if (!::mkdtemp(tmpl)) return 1;
  const fs::path dir = tmpl;
  const auto node_version = [&] {
    child v({t.node, "--version"}, dir, "node-version");
    v.wait(10s);
    auto s = read_text(v.out);
    while (!s.empty() && s.back() == '\n') s.pop_back();
    return s;
  }();
  std::printf("bench_ws: echo, %d connections, 1 message in flight each, about %d s per case, node %s, %s\n",
              connections, seconds, node_version.c_str(),
              t.pin ? "servers on CPU 0, load on CPU 1" : "not pinned (needs taskset and CPUs 0 and 1)");

  std::vector<server> servers(3);
  servers[0].name = "node";
  servers[0].label = "node ws 8";
  servers[1].name = "base";
  servers[1].label = "swactor base, 1 worker";
  servers[2].name = "process";
  servers[2].label = "swactor process, 1 reactor, 1 worker";
  start_node(t, dir, servers[0]);
  start_swactor(t, dir, servers[1], "mode = \"base\"\nworkers = 1\n");
  start_swactor(t, dir, servers[2], "mode = \"process\"\nreactor_threads = 1\nworkers = 1\n");
  int status = 0;
  for (const auto& s : servers)
    if (!s.failed.empty()) {
      std::fprintf(stderr, "bench_ws: %s: %s\n", s.name.c_str(), s.failed.c_str());
      status = 1;
    }

  const std::vector<case_def> cases = {{64, false},  {1024, false}, {65536, false},
                                       {64, true},   {1024, true},  {65536, true}};
  for (int round = 1; round <= rounds; ++round)
    for (const auto& c : cases)
      for (auto& s : servers) {
        if (!s.failed.empty()) continue;
        const auto tag = s.name + "-" + std::to_string(c.size) + (c.deflate ? "-deflate" : "") + "-r" +
                         std::to_string(round);
        if (auto r = run_load(t, dir, s, c, seconds, tag)) {
          s.rate[c.name()].push_back(r->rate);
          s.cpu_us[c.name()].push_back(r->server_cpu_us);
          s.client_busy[c.name()].push_back(r->client_busy);
        } else {
          status = 1;
          if (!s.proc->running())
            s.failed = "exited during the run; stderr: " + last_lines(read_text(s.proc->err));
        }
      }
  for (auto& s : servers)
    if (s.proc && !s.proc->status) s.proc->stop(10s);

  swactor::bench::report rep("bench_ws");
  auto med = [](const std::map<std::string, std::vector<double>>& m, const std::string& k) -> std::optional<double> {
    auto it = m.find(k);
    if (it == m.end() || it->second.empty()) return std::nullopt;
    return median(it->second);
  };
  for (const auto& c : cases) {
    const auto ref_rate = med(servers[0].rate, c.name());
    const auto ref_cpu = med(servers[0].cpu_us, c.name());
    for (const auto& s : servers) {
      const bool ref = s.name == "node";
      const auto rate = med(s.rate, c.name());
      const auto cpu = med(s.cpu_us, c.name());
      const std::string why = rate ? "" : " (failed)";
      // The target is on the 64-byte plain echo.
      std::optional<double> target;
      if (!ref && c.size == 64 && !c.deflate) target = 1.5;
      rep.add({"msg/s " + c.name() + ": " + s.label + why, rate.value_or(0), "msg/s",
               ref || !rate ? std::nullopt : ref_rate, ref ? "" : "node ws 8", target});
      rep.add({"server CPU/msg " + c.name() + ": " + s.label + why, cpu.value_or(0), "us/msg",
               ref || !cpu ? std::nullopt : ref_cpu, ref ? "" : "node ws 8 (lower is better)", std::nullopt});
      rep.add({"load generator busy " + c.name() + ": " + s.label + why, med(s.client_busy, c.name()).value_or(0),
               "CPU share", std::nullopt, "", std::nullopt});
    }
  }
  for (const auto& s : servers)
    for (const auto& [k, v] : s.rate) {
      std::string all;
      for (double r : v) all += (all.empty() ? "" : ", ") + std::to_string(static_cast<long>(r));
      std::printf("  %s %s rounds: %s msg/s\n", s.name.c_str(), k.c_str(), all.c_str());
    }
  rep.finish();
  std::error_code ec;
  fs::remove_all(dir, ec);
  return status;
}
