// HTTP/2: swactor's http_hello module against Debian's nghttpd serving the same bytes.
//
// Servers (each pinned to CPU 0, h2load to CPU 1 when there are two CPUs and taskset):
//   nghttpd      /usr/sbin/nghttpd (nghttp2-server), one worker, -d www (www/hello holds
//                "Hello World", www/big 1 MiB); --no-tls for h2c, KEY CERT for h2   = the reference
//   base         swactor run, base mode, 1 worker
//   process      swactor run, process mode, 1 reactor thread, 1 worker
//   base-poll    base mode with [server] busy_poll_us = 100: the worker polls 100 us before
//                it sleeps, so h2load seldom pays for waking CPU 0 (docs/operations.md). Not
//                in process mode: its reactor and worker share CPU 0 here, and one's polling
//                takes time the other needs (measured: 0.9x of process mode without it).
// swactor listens on http:// (h2c by prior knowledge) and https:// (alpn = ["h2"]) with
// routes /big (http_hello with a 1 MiB body), /files/ (http_static on nghttpd's www, so
// /files/big is the same file nghttpd serves; in process mode the reactor answers it) and /
// (http_hello, "Hello World").
// Both TLS servers use the same self-signed P-256 certificate made by openssl here.
//
// Measurements (S = $SWACTOR_BENCH_SECONDS, default 10), 3 rounds interleaved (nghttpd,
// base, process, nghttpd, ...), medians:
//   1. h2c, 11-byte body: h2load -t1 -c100 -m10 -D S; req/s (target base/nghttpd >= 1.0), p99
//      latency (from h2load --log-file, one line per request), server CPU per request
//      (utime + stime of the server's process tree from /proc/PID/stat over the run / the
//      succeeded requests: the steady figure on a busy machine).
//   2. h2 over TLS, the same.
//   3. h2c, 1 MiB body: h2load -t1 -c10 -m1 -D S; MiB/s and server CPU per MiB.
//   4. h2c, the 1 MiB file: the same, swactor's http_static against nghttpd's file.
// SWACTOR_BENCH_H2_ONLY=h2c|tls|big|file runs one section. Never asserts a figure: the exit
// status is 1 only when a server or h2load fails.
//
// Binaries: $SWACTOR_BIN, $NGHTTPD (default /usr/sbin/nghttpd), $H2LOAD (default h2load in PATH).
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
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
#include <regex>
#include <string>
#include <thread>
#include <vector>

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

constexpr int rounds = 3;
constexpr std::size_t big_size = 1 << 20;

struct tools {
  std::string swactor, nghttpd, h2load, taskset;
  bool pin = false;
};

std::string last_line(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  if (auto nl = s.rfind('\n'); nl != std::string::npos) s = s.substr(nl + 1);
  return s.size() > 200 ? s.substr(0, 200) + "..." : s;
}


// -- servers ------------------------------------------------------------------------------

struct server {
  std::string name;  // nghttpd, base, process
  std::unique_ptr<child> proc;
  int h2c_port = 0, tls_port = 0;  // nghttpd: two processes, see `tls_proc`
  std::unique_ptr<child> tls_proc;
  pid_t pid_for(bool tls) const { return tls && tls_proc ? tls_proc->pid : proc->pid; }
};

// Up once it accepts TCP connections on `port`.
bool wait_accepting(child& c, int port) {
  const auto until = clock_type::now() + 10s;
  while (clock_type::now() < until && c.running()) {
    if (int fd = swactor::bench::connect_loopback(port); fd >= 0) {
      ::close(fd);
      std::this_thread::sleep_for(300ms);  // every worker up
      return true;
    }
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

bool make_files(const fs::path& dir) {
  fs::create_directories(dir / "www");
  std::ofstream(dir / "www" / "hello") << "Hello World";
  std::ofstream(dir / "www" / "big") << std::string(big_size, 'x');
  return swactor::bench::make_test_certificate(dir);
}

std::optional<server> start_nghttpd(const tools& t, const fs::path& dir, std::string& why) {
  server s;
  s.name = "nghttpd";
  s.h2c_port = free_port();
  s.tls_port = free_port();
  while (s.tls_port == s.h2c_port) s.tls_port = free_port();
  const auto www = (dir / "www").string();
  s.proc = std::make_unique<child>(
      pinned(t.pin, t.taskset, 0, {t.nghttpd, "--no-tls", "-n", "1", "-d", www, std::to_string(s.h2c_port)}), dir,
      "nghttpd");
  s.tls_proc = std::make_unique<child>(pinned(t.pin, t.taskset, 0,
                                              {t.nghttpd, "-n", "1", "-d", www, std::to_string(s.tls_port),
                                               (dir / "tls.key").string(), (dir / "tls.pem").string()}),
                                       dir, "nghttpd-tls");
  if (!wait_accepting(*s.proc, s.h2c_port) || !wait_accepting(*s.tls_proc, s.tls_port)) {
    why = "nghttpd did not start: " + last_line(read_text(s.proc->err) + read_text(s.tls_proc->err));
    return std::nullopt;
  }
  return s;
}

std::optional<server> start_swactor(const tools& t, const fs::path& dir, const std::string& name,
                                    const std::string& keys, std::string& why) {
  server s;
  s.name = name;
  s.h2c_port = free_port();
  s.tls_port = free_port();
  while (s.tls_port == s.h2c_port) s.tls_port = free_port();
  const std::string routes =
      "routes = [ { path = \"/big\", module = \"big\" }, { path = \"/files\", module = \"files\" }, "
      "{ path = \"/\", module = \"hello\" } ]\nbacklog = 4096\n";
  const auto cfg = dir / (name + ".toml");
  std::ofstream(cfg) << "[server]\n"
                     << keys << "log_level = \"warning\"\nadmin_socket = \"" << (dir / (name + ".sock")).string()
                     << "\"\n\n[[listen]]\nurl = \"http://127.0.0.1:" << s.h2c_port << "\"\n"
                     << routes << "\n[[listen]]\nurl = \"https://127.0.0.1:" << s.tls_port << "\"\n"
                     << routes << "tls = { cert = \"" << (dir / "tls.pem").string() << "\", key = \""
                     << (dir / "tls.key").string() << "\", alpn = [\"h2\"] }\n"
                     << "\n[modules.hello]\ntype = \"http_hello\"\n"
                     << "\n[modules.files]\ntype = \"http_static\"\nroot = \"" << (dir / "www").string()
                     << "\"\nstrip_prefix = \"/files/\"\n"
                     << "\n[modules.big]\ntype = \"http_hello\"\nbody = '" << std::string(big_size, 'x') << "'\n";
  s.proc = std::make_unique<child>(pinned(t.pin, t.taskset, 0, {t.swactor, "run", cfg.string()}), dir, name);
  if (!wait_accepting(*s.proc, s.h2c_port) || !wait_accepting(*s.proc, s.tls_port)) {
    s.proc->stop();
    why = "did not start: " + last_line(read_text(s.proc->err) + read_text(s.proc->out));
    return std::nullopt;
  }
  return s;
}

// -- h2load -------------------------------------------------------------------------------

struct load_result {
  double rps = 0;
  double succeeded = 0;
  double failed = 0;
  double p99_ms = 0;
  double server_cpu_s = 0;
};

// h2load against `url` with `args`, pinned to CPU 1; the server's CPU time is counted over
// the run from /proc (`server_pid`'s tree).
std::optional<load_result> run_h2load(const tools& t, const fs::path& dir, pid_t server_pid, const std::string& url,
                                      const std::vector<std::string>& args, int seconds, const std::string& tag) {
  const auto log = dir / ("h2load-" + tag + ".log");
  std::vector<std::string> argv = {t.h2load};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.insert(argv.end(), {"-D", std::to_string(seconds), "--log-file=" + log.string(), url});
  argv = pinned(t.pin, t.taskset, 1, argv);
  std::printf("  %s: %s\n", tag.c_str(), join(argv).c_str());
  std::fflush(stdout);
  const double before = swactor::bench::tree_cpu_seconds(server_pid);
  child c(argv, dir, "h2load-" + tag);
  auto st = c.wait(std::chrono::seconds(seconds + 60));
  const double after = swactor::bench::tree_cpu_seconds(server_pid);
  const auto out = read_text(c.out);
  std::smatch m;
  load_result r;
  r.server_cpu_s = after - before;
  static const std::regex rps_re(R"(finished in [0-9.]+s, ([0-9.]+) req/s)");
  static const std::regex req_re(R"(requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed)");
  if (!st || *st != 0 || !std::regex_search(out, m, rps_re)) {
    std::fprintf(stderr, "bench_h2: %s: h2load failed (%s): %s\n", tag.c_str(),
                 st ? std::to_string(*st).c_str() : "timeout", last_line(read_text(c.err) + out).c_str());
    return std::nullopt;
  }
  r.rps = std::stod(m[1]);
  if (std::regex_search(out, m, req_re)) {
    r.succeeded = std::stod(m[1]);
    r.failed = std::stod(m[2]);
  }
  // The log: one line per request, "start<TAB>status<TAB>microseconds".
  std::vector<double> lat;
  {
    std::ifstream in(log);
    std::string line;
    while (std::getline(in, line)) {
      const auto a = line.find('\t'), b = line.find('\t', a + 1);
      if (a == std::string::npos || b == std::string::npos) continue;
      lat.push_back(std::strtod(line.c_str() + b + 1, nullptr));
    }
  }
  fs::remove(log);
  if (!lat.empty()) {
    const auto k = static_cast<std::size_t>(0.99 * static_cast<double>(lat.size() - 1));
    std::nth_element(lat.begin(), lat.begin() + static_cast<std::ptrdiff_t>(k), lat.end());
    r.p99_ms = lat[k] / 1000.0;
  }
  std::printf("    -> %.0f req/s, %.0f succeeded, %.0f failed, p99 %.2f ms, server CPU %.2f s = %.2f us/request\n",
              r.rps, r.succeeded, r.failed, r.p99_ms, r.server_cpu_s,
              r.succeeded > 0 ? r.server_cpu_s * 1e6 / r.succeeded : 0.0);
  std::fflush(stdout);
  if (r.failed > 0) std::fprintf(stderr, "bench_h2: %s: %.0f requests failed\n", tag.c_str(), r.failed);
  return r;
}

struct section {
  std::string key, title, path;
  bool tls = false;
  std::vector<std::string> args;
  bool big = false;
};

struct figures {
  std::vector<double> rps, p99, cpu;
};

}  // namespace

int main() {
  ::signal(SIGPIPE, SIG_IGN);
  const auto self = fs::read_symlink("/proc/self/exe").parent_path();
  tools t;
  t.swactor = swactor::bench::find_bin("bench_h2", "SWACTOR_BIN", {self / ".." / ".." / "apps" / "swactor"}, "swactor");
  t.nghttpd = swactor::bench::env_or("NGHTTPD", "/usr/sbin/nghttpd");
  t.h2load = swactor::bench::env_or("H2LOAD", which("h2load"));
  t.taskset = which("taskset");
  if (::access(t.nghttpd.c_str(), X_OK) != 0 || t.h2load.empty()) {
    std::printf("bench_h2: skipped: needs nghttpd (%s) and h2load (install nghttp2-server and nghttp2-client)\n",
                t.nghttpd.c_str());
    return 0;
  }
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  t.pin = !t.taskset.empty() && ::sched_getaffinity(0, sizeof cpus, &cpus) == 0 && CPU_ISSET(0, &cpus) &&
          CPU_ISSET(1, &cpus);
  int seconds = 10;
  if (const char* s = std::getenv("SWACTOR_BENCH_SECONDS"); s && std::atoi(s) > 0) seconds = std::atoi(s);
  const char* only = std::getenv("SWACTOR_BENCH_H2_ONLY");

  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &rl);

  char tmpl[] = "/tmp/bench-h2-XXXXXX";
  if (!::mkdtemp(tmpl)) return 1;
  const fs::path dir = tmpl;
  if (!make_files(dir)) {
    std::printf("bench_h2: skipped: openssl could not make a certificate\n");
    return 0;
  }
  std::printf("bench_h2: HTTP/2, %d s per run, %d rounds interleaved, %s\n", seconds, rounds,
              t.pin ? "servers on CPU 0, h2load on CPU 1" : "not pinned (needs taskset and CPUs 0 and 1)");

  std::vector<server> servers;
  std::string why;
  if (auto s = start_nghttpd(t, dir, why)) {
    servers.push_back(std::move(*s));
  } else {
    std::fprintf(stderr, "bench_h2: %s\n", why.c_str());
    return 1;
  }
  const std::vector<std::pair<std::string, std::string>> variants = {
      {"base", "mode = \"base\"\nworkers = 1\n"},
      {"process", "mode = \"process\"\nworkers = 1\nreactor_threads = 1\n"},
      {"base-poll", "mode = \"base\"\nworkers = 1\nbusy_poll_us = 100\n"},
  };
  std::map<std::string, std::string> skipped;
  for (const auto& [name, keys] : variants) {
    if (auto s = start_swactor(t, dir, name, keys, why))
      servers.push_back(std::move(*s));
    else
      skipped[name] = why, std::printf("  %s: skipped: %s\n", name.c_str(), why.c_str());
  }

  const std::vector<section> sections = {
      {"h2c", "h2c (prior knowledge), 11-byte body, h2load -t1 -c100 -m10", "/hello", false,
       {"-t1", "-c100", "-m10"}, false},
      {"tls", "h2 over TLS (ALPN), 11-byte body, h2load -t1 -c100 -m10", "/hello", true, {"-t1", "-c100", "-m10"},
       false},
      {"big", "h2c, 1 MiB body, h2load -t1 -c10 -m1", "/big", false, {"-t1", "-c10", "-m1"}, true},
      {"file", "h2c, 1 MiB file (http_static), h2load -t1 -c10 -m1", "/files/big", false, {"-t1", "-c10", "-m1"},
       true},
  };
  int status = 0;
  swactor::bench::report rep("bench_h2");
  for (const auto& sec : sections) {
    if (only && sec.key != only) continue;
    std::printf("bench_h2: %s\n", sec.title.c_str());
    std::map<std::string, figures> fig;
    for (int round = 0; round < rounds; ++round) {
      for (const auto& s : servers) {
        const int port = sec.tls ? s.tls_port : s.h2c_port;
        // nghttpd serves files: www/hello and www/big; swactor routes /hello to hello, /big
        // to a module's body and /files/big to the file.
        const bool ref = s.name == "nghttpd";
        const std::string url = std::string(sec.tls ? "https" : "http") + "://127.0.0.1:" + std::to_string(port) +
                                (!sec.big ? "/hello" : ref ? "/big" : sec.path);
        auto r = run_h2load(t, dir, s.pid_for(sec.tls), url, sec.args, seconds,
                            sec.key + "-" + s.name + "-" + std::to_string(round + 1));
        if (!r || r->succeeded == 0) {
          status = 1;
          continue;
        }
        auto& f = fig[s.name];
        f.rps.push_back(r->rps);
        f.p99.push_back(r->p99_ms);
        f.cpu.push_back(r->server_cpu_s * 1e6 / (sec.big ? r->succeeded * big_size / double(1 << 20) : r->succeeded));
      }
    }
    const auto ref = fig.count("nghttpd") ? std::optional<figures>(fig["nghttpd"]) : std::nullopt;
    auto ref_of = [&](auto pick) -> std::optional<double> {
      if (!ref) return std::nullopt;
      return median(pick(*ref));
    };
    for (const auto& name : {"nghttpd", "base", "process", "base-poll"}) {
      if (!fig.count(name)) continue;
      const auto& f = fig[name];
      const bool is_ref = std::string(name) == "nghttpd";
      const std::string who = is_ref                              ? std::string(name)
                              : std::string(name) == "base-poll" ? std::string("base (base mode, busy_poll_us 100)")
                                                                  : std::string(name) + " (" + name + " mode)";
      auto ref_val = [&](auto pick) { return is_ref ? std::nullopt : ref_of(pick); };
      if (sec.big) {
        rep.add({sec.key + " 1 MiB: " + who, median(f.rps), "MiB/s",
                 ref_val([](const figures& x) { return x.rps; }), is_ref ? "" : "nghttpd", std::nullopt});
      } else {
        rep.add({sec.key + ": " + who, median(f.rps), "req/s", ref_val([](const figures& x) { return x.rps; }),
                 is_ref ? "" : "nghttpd", is_ref ? std::nullopt : std::optional<double>(1.0)});
        rep.add({sec.key + " p99: " + who, median(f.p99), "ms", ref_val([](const figures& x) { return x.p99; }),
                 is_ref ? "" : "nghttpd", std::nullopt});
      }
      rep.add({sec.key + " server CPU: " + who, median(f.cpu), sec.big ? "us/MiB" : "us/req",
               ref_val([](const figures& x) { return x.cpu; }), is_ref ? "" : "nghttpd", std::nullopt});
    }
  }
  rep.finish();
  for (const auto& [name, w] : skipped) std::printf("  %s skipped: %s\n", name.c_str(), w.c_str());

  for (auto& s : servers) {
    s.proc->stop(10s);
    if (s.tls_proc) s.tls_proc->stop(10s);
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
  return status;
}
