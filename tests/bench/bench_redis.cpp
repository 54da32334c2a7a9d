// Redis GET/SET: swactor's redis_kv module on a shared table against redis-server.
//
// Servers (each pinned to CPU 0, every client to CPU 1 when there are two CPUs and taskset),
// all started once and running side by side (idle ones cost nothing):
//   redis        redis-server --save '' --appendonly no, its own port       = the reference
//   swactor      swactor run, base mode, 1 worker, [[listen]] redis:// module redis_kv on
//                [tables.kv]
//   swactor w2   the same with 2 workers (both on CPU 0 too)
//   swactor poll the 1-worker server with [server] busy_poll_us = 100: the worker polls
//                100 us before it sleeps, so redis-benchmark (the bottleneck at -P 1) seldom
//                pays for waking CPU 0 (docs/benchmarks.md); its server CPU per command
//                counts the polling
// A swactor variant that does not start (the config is refused, nothing answers PING) is
// reported as skipped, with the last lines of its stderr; redis-server or redis-benchmark
// missing skips the program.
//
// Measurements (S = $SWACTOR_BENCH_SECONDS, default 3, per case):
//   1. redis-benchmark -c 50 -r 10000 -t CMD -P P, CMD in set, get and P in 1, 16, each
//      case against every server in turn (redis, swactor, swactor w2, then the next case;
//      the reverse order in the second round), 3 rounds; medians of req/s. -n is sized once from a short calibration run against
//      redis so that a case takes about S seconds there; every server gets the same -n.
//   2. Server CPU per command: utime+stime of the server's process tree (/proc/PID/stat)
//      before and after each redis-benchmark run, divided by its -n; medians.
//   3. The load tester as a second client: swactor bench -f redis -c 50 --mix CMD
//      --pipeline P -n N, once per case and server after the rounds. On redis it is compared
//      with redis-benchmark's median (is the load tester a fair client?); on swactor with
//      its own figure on redis. It costs less CPU per request than redis-benchmark, which
//      on a 2-core machine is the bottleneck at -P 1 (docs/benchmarks.md): these rows show
//      what the servers do when the client is not.
// Never asserts a figure: the exit status is 1 only when redis or a client fails.
//
// Binaries: $SWACTOR_BIN, $REDIS_SERVER, $REDIS_BENCHMARK (default: found in PATH).
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <netinet/in.h>
#include <sys/socket.h>

#include <nlohmann/json.hpp>

#include "bench_process.hpp"
#include "bench_report.hpp"

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
using swactor::bench::env_or;

constexpr int rounds = 3;  // a true median: one disturbed run does not move it
constexpr int clients = 50;
constexpr int keyspace = 10000;  // -r; well inside the table's 65536 rows

struct tools {
  std::string swactor, redis_server, redis_benchmark, taskset;
  bool pin = false;
};

// The last `n` non-empty lines of `s`, joined by " | ": where a failing server says why.
std::string last_lines(const std::string& s, int n = 5) {
  std::vector<std::string> ls;
  std::size_t at = 0;
  while (at < s.size()) {
    auto nl = s.find('\n', at);
    if (nl == std::string::npos) nl = s.size();
    if (nl > at) ls.push_back(s.substr(at, std::min<std::size_t>(nl - at, 300)));
    at = nl + 1;
  }
  std::string out;
  for (std::size_t i = ls.size() > static_cast<std::size_t>(n) ? ls.size() - n : 0; i < ls.size();
       ++i)
    out += (out.empty() ? "" : " | ") + ls[i];
  return out.empty() ? "(no output)" : out;
}

// Whether a RESP PING on 127.0.0.1:port gets +PONG within 200 ms.
bool redis_probe(int port) { return swactor::bench::probe_reply(port, "*1\r\n$4\r\nPING\r\n", "+PONG"); }

// -- servers ------------------------------------------------------------------------------

struct server {
  std::string name, label;
  std::unique_ptr<child> proc;
  int port = 0;
  std::string skipped;  // why, when it did not start
  // medians' inputs, by case name
  std::map<std::string, std::vector<double>> rps, cpu_us;
};

bool wait_up(server& s) {
  const auto until = clock_type::now() + 10s;
  while (clock_type::now() < until && s.proc->running()) {
    if (redis_probe(s.port)) {
      std::this_thread::sleep_for(200ms);  // every worker up (the probe needed only one)
      return true;
    }
    std::this_thread::sleep_for(20ms);
  }
  const bool exited = !s.proc->running();
  s.proc->stop();
  s.skipped = std::string(exited ? "exited with " + std::to_string(s.proc->status.value_or(-1))
                                 : "no PONG within 10 s") +
              "; stderr: " + last_lines(read_text(s.proc->err)) +
              "; stdout: " + last_lines(read_text(s.proc->out));
  return false;
}

void start_redis(const tools& t, const fs::path& dir, server& s) {
  s.port = free_port();
  const auto d = dir / "redis";
  fs::create_directories(d);
  s.proc = std::make_unique<child>(
      pinned(t.pin, t.taskset, 0,
             {t.redis_server, "--port", std::to_string(s.port), "--bind", "127.0.0.1", "--save", "",
              "--appendonly", "no", "--dir", d.string(), "--daemonize", "no", "--logfile", ""}),
      dir, s.name);
  wait_up(s);
}

// swactor run with the redis_kv module on a [tables.kv] table behind a redis:// listener.
void start_swactor(const tools& t, const fs::path& dir, server& s, int workers, int busy_poll_us = 0) {
  s.port = free_port();
  const auto cfg = dir / (s.name + ".toml");
  std::ofstream(cfg)
      << "[server]\nmode = \"base\"\nworkers = " << workers
      // (only when set: an older binary, for a before/after comparison, refuses the key)
      << (busy_poll_us ? "\nbusy_poll_us = " + std::to_string(busy_poll_us) : std::string())
      << "\nlog_level = \"warning\"\nadmin_socket = \"" << (dir / (s.name + ".sock")).string()
      << "\"\n\n[tables.kv]\nsize = 65536\ncolumns = [ {name=\"type\",type=\"int\"}, "
         "{name=\"expire\",type=\"int\"}, {name=\"value\",type=\"string\",size=256} ]\n\n"
         "[modules.kv]\ntype = \"redis_kv\"\ntable = \"kv\"\n\n[[listen]]\nurl = "
         "\"redis://127.0.0.1:"
      << s.port << "\"\nmodule = \"kv\"\nbacklog = 4096\n";
  s.proc = std::make_unique<child>(pinned(t.pin, t.taskset, 0, {t.swactor, "run", cfg.string()}), dir, s.name);
  wait_up(s);
}

// -- clients ------------------------------------------------------------------------------

struct case_def {
  std::string cmd;  // set, get
  int pipeline;
  std::string name() const { return cmd + " -P " + std::to_string(pipeline); }
};

// redis-benchmark's --csv row for its one test: "SET","123456.79",... -> req/s.
std::optional<double> csv_rps(const std::string& out) {
  std::smatch m;
  if (std::regex_search(out, m, std::regex(R"re("(SET|GET)[^"]*","([0-9.]+)")re")))
    return std::stod(m[2]);
  return std::nullopt;
}

struct run_result {
  double rps = 0;
  double server_cpu_us = 0;  // server CPU per command
};

std::optional<run_result> run_redis_benchmark(const tools& t, const fs::path& dir, const server& s,
                                              const case_def& c, long n, const std::string& tag) {
  auto argv =
      pinned(t.pin, t.taskset, 1,
             {t.redis_benchmark, "-h", "127.0.0.1", "-p", std::to_string(s.port), "-c",
              std::to_string(clients), "-n", std::to_string(n), "-r", std::to_string(keyspace),
              "-P", std::to_string(c.pipeline), "-t", c.cmd, "--csv"});
  std::printf("  %s: %s\n", tag.c_str(), join(argv).c_str());
  std::fflush(stdout);
  const double before = swactor::bench::tree_cpu_seconds(s.proc->pid);
  child b(argv, dir, "rb-" + tag);
  auto st = b.wait(120s);
  const double after = swactor::bench::tree_cpu_seconds(s.proc->pid);
  const auto out = read_text(b.out);
  auto rps = csv_rps(out);
  if (!st || *st != 0 || !rps) {
    std::fprintf(stderr, "bench_redis: %s: redis-benchmark failed (%s): %s %s\n", tag.c_str(),
                 st ? std::to_string(*st).c_str() : "timeout", last_lines(out, 3).c_str(),
                 last_lines(read_text(b.err), 3).c_str());
    return std::nullopt;
  }
  run_result r{*rps, (after - before) * 1e6 / static_cast<double>(n)};
  std::printf("    -> %.0f req/s, server CPU %.2f us/command\n", r.rps, r.server_cpu_us);
  return r;
}

struct tester_result {
  double rps = 0;
  std::uint64_t errors = 0;
};

std::optional<tester_result> run_swactor_bench(const tools& t, const fs::path& dir, const server& s,
                                               const case_def& c, long n, const std::string& tag) {
  const auto json_path = dir / ("bench-" + tag + ".json");
  auto argv = pinned(t.pin, t.taskset, 1, {t.swactor,    "bench",
                            "-s",         "redis://127.0.0.1:" + std::to_string(s.port),
                            "-f",         "redis",
                            "-c",         std::to_string(clients),
                            "-t",         "1",
                            "-n",         std::to_string(n),
                            "--mix",      c.cmd,
                            "--keyspace", std::to_string(keyspace),
                            "--pipeline", std::to_string(c.pipeline),
                            "--timeout",  "5s",
                            "--json",     json_path.string()});
  std::printf("  %s: %s\n", tag.c_str(), join(argv).c_str());
  std::fflush(stdout);
  child b(argv, dir, "bench-" + tag);
  auto st = b.wait(120s);
  const auto text = read_text(json_path);
  if (!st || text.empty()) {
    std::fprintf(stderr, "bench_redis: %s: swactor bench failed (%s): %s\n", tag.c_str(),
                 st ? std::to_string(*st).c_str() : "timeout",
                 last_lines(read_text(b.err), 3).c_str());
    return std::nullopt;
  }
  const auto j = nlohmann::json::parse(text);
  tester_result r{j.at("rps").get<double>(), j.at("error_total").get<std::uint64_t>()};
  std::printf("    -> %.0f req/s, %llu errors, p99 %.0f us\n", r.rps,
              static_cast<unsigned long long>(r.errors),
              j.at("latency_us").at("p99").get<double>());
  return r;
}


}  // namespace

int main() {
  ::signal(SIGPIPE, SIG_IGN);
  const auto self = fs::read_symlink("/proc/self/exe").parent_path();
  tools t;
  t.swactor = swactor::bench::find_bin("bench_redis", "SWACTOR_BIN",
                                       {self / ".." / ".." / "apps" / "swactor"}, "swactor");
  t.redis_server = env_or("REDIS_SERVER", which("redis-server"));
  t.redis_benchmark = env_or("REDIS_BENCHMARK", which("redis-benchmark"));
  t.taskset = which("taskset");
  if (t.redis_server.empty() || t.redis_benchmark.empty()) {
    std::printf(
        "bench_redis: skipped: needs redis-server and redis-benchmark (install redis-server "
        "redis-tools)\n");
    return 0;
  }
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  t.pin = !t.taskset.empty() && ::sched_getaffinity(0, sizeof cpus, &cpus) == 0 &&
          CPU_ISSET(0, &cpus) && CPU_ISSET(1, &cpus);
  int seconds = 3;
  if (const char* s = std::getenv("SWACTOR_BENCH_SECONDS"); s && std::atoi(s) > 0)
    seconds = std::atoi(s);

  char tmpl[] = "/tmp/bench-redis-XXXXXX";
  if (!::mkdtemp(tmpl)) return 1;
  const fs::path dir = tmpl;
  std::printf(
      "bench_redis: redis-benchmark -c %d -r %d, about %d s per case, %s\n", clients, keyspace,
      seconds,
      t.pin ? "servers on CPU 0, clients on CPU 1" : "not pinned (needs taskset and CPUs 0 and 1)");

  std::vector<server> servers(4);
  servers[0].name = "redis";
  servers[0].label = "redis-server";
  servers[1].name = "swactor";
  servers[1].label = "swactor 1 worker";
  servers[2].name = "swactor-w2";
  servers[2].label = "swactor 2 workers";
  servers[3].name = "swactor-poll";
  servers[3].label = "swactor 1 worker, busy_poll_us 100";
  start_redis(t, dir, servers[0]);
  start_swactor(t, dir, servers[1], 1);
  start_swactor(t, dir, servers[2], 2);
  start_swactor(t, dir, servers[3], 1, 100);
  for (const auto& s : servers)
    if (!s.skipped.empty())
      std::printf("  %s: skipped: did not start: %s\n", s.name.c_str(), s.skipped.c_str());
  if (!servers[0].skipped.empty()) {
    std::fprintf(stderr, "bench_redis: redis-server did not start: %s\n",
                 servers[0].skipped.c_str());
    return 1;
  }

  const std::vector<case_def> cases = {{"set", 1}, {"get", 1}, {"set", 16}, {"get", 16}};
  // -n per pipeline depth: a calibration SET run against redis, scaled to `seconds`.
  std::map<int, long> n_of;
  int status = 0;
  for (int p : {1, 16}) {
    const long probe_n = p == 1 ? 20000 : 200000;
    auto r = run_redis_benchmark(t, dir, servers[0], {"set", p}, probe_n,
                                 "calibrate-P" + std::to_string(p));
    if (!r) return 1;
    n_of[p] = std::max<long>(probe_n, static_cast<long>(r->rps * seconds / 10000) * 10000);
  }

  // 1 and 2: interleaved, every case against every server in turn; the order of the servers
  // is reversed every other round, so no server always runs right after another's load.
  for (int round = 1; round <= rounds; ++round)
    for (const auto& c : cases)
      for (std::size_t k = 0; k < servers.size(); ++k) {
        auto& s = servers[round % 2 == 1 ? k : servers.size() - 1 - k];
        if (!s.skipped.empty()) continue;
        const auto tag =
            s.name + "-" + c.cmd + "-P" + std::to_string(c.pipeline) + "-r" + std::to_string(round);
        if (auto r = run_redis_benchmark(t, dir, s, c, n_of[c.pipeline], tag)) {
          s.rps[c.name()].push_back(r->rps);
          s.cpu_us[c.name()].push_back(r->server_cpu_us);
        } else if (s.name == "redis") {
          status = 1;
        } else if (!s.proc->running()) {
          s.skipped = "exited during the run; stderr: " + last_lines(read_text(s.proc->err));
        }
      }

  // 3. the load tester as the client, on every server that runs.
  std::map<std::string, tester_result> tester;  // by server name + " " + case name
  for (const auto& c : cases)
    for (auto& s : servers) {
      if (!s.skipped.empty()) continue;
      const auto tag = "tester-" + s.name + "-" + c.cmd + "-P" + std::to_string(c.pipeline);
      if (auto r = run_swactor_bench(t, dir, s, c, n_of[c.pipeline], tag))
        tester[s.name + " " + c.name()] = *r;
      else if (s.name == "redis")
        status = 1;
    }

  for (auto& s : servers)
    if (s.proc && !s.proc->status) s.proc->stop(10s);

  swactor::bench::report rep("bench_redis");
  auto med = [](const std::map<std::string, std::vector<double>>& m,
                const std::string& k) -> std::optional<double> {
    auto it = m.find(k);
    if (it == m.end() || it->second.empty()) return std::nullopt;
    return median(it->second);
  };
  for (const auto& c : cases) {
    // redis-benchmark -c 50 -r 10000 -n N -P P -t CMD (see the top of this file)
    const std::string what = "-P" + std::to_string(c.pipeline) + " " + c.cmd + ": ";
    const auto ref_rps = med(servers[0].rps, c.name());
    const auto ref_cpu = med(servers[0].cpu_us, c.name());
    for (const auto& s : servers) {
      const bool ref = s.name == "redis";
      const auto rps = med(s.rps, c.name());
      const auto cpu = med(s.cpu_us, c.name());
      const std::string why = s.skipped.empty() ? " (failed)" : " (skipped)";
      // Issue 14's target: one worker at >= 1.0x redis-server (two workers are reported).
      const bool one_worker = s.name == "swactor" || s.name == "swactor-poll";
      rep.add({"rps " + what + s.label + (rps ? "" : why), rps.value_or(0), "req/s",
               ref || !rps ? std::nullopt : ref_rps, ref ? "" : "redis-server",
               one_worker ? std::optional<double>(1.0) : std::nullopt});
      rep.add({"server CPU/cmd " + what + s.label + (cpu ? "" : why), cpu.value_or(0), "us/cmd",
               ref || !cpu ? std::nullopt : ref_cpu, ref ? "" : "redis-server (lower is better)",
               std::nullopt});
    }
    const auto on_redis = tester.find("redis " + c.name());
    for (const auto& s : servers) {
      const bool ref = s.name == "redis";
      const auto it = tester.find(s.name + " " + c.name());
      std::optional<double> value, reference;
      std::string suffix = s.skipped.empty() ? " (failed)" : " (skipped)";
      if (it != tester.end()) {
        value = it->second.rps;
        suffix = it->second.errors ? " (" + std::to_string(it->second.errors) + " errors)" : "";
        if (ref)
          reference = ref_rps;
        else if (on_redis != tester.end())
          reference = on_redis->second.rps;
      }
      rep.add({"rps " + what + "swactor bench, " + s.label + suffix, value.value_or(0), "req/s",
               reference, ref ? "redis-benchmark on redis-server" : "swactor bench on redis-server",
               std::nullopt});
    }
  }
  for (const auto& s : servers)
    for (const auto& [k, v] : s.rps) {
      std::string all;
      for (double r : v) all += (all.empty() ? "" : ", ") + std::to_string(static_cast<long>(r));
      std::printf("  %s %s rounds: %s\n", s.name.c_str(), k.c_str(), all.c_str());
    }
  std::printf("  -n: %ld at -P 1, %ld at -P 16\n", n_of[1], n_of[16]);
  rep.finish();
  std::error_code ec;
  fs::remove_all(dir, ec);
  return status;
}
