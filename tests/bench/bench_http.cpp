// HTTP hello-world: swactor's http_hello module against nginx `return 200 "Hello World"`.
//
// Servers (each pinned to CPU 0, every client to CPU 1 when there are two CPUs and taskset):
//   nginx        /usr/sbin/nginx, one process (master_process off), access_log off,
//                keepalive_requests 1000000                          = the reference
//   base         swactor run, base mode, 1 worker, [[listen]] http:// module http_hello
//   process      swactor run, process mode, 1 reactor thread, 1 worker
// A swactor variant that does not start (the config is refused, nothing answers HTTP) is
// reported as skipped with the reason; nginx missing skips the program.
//
// Measurements (S = $SWACTOR_BENCH_SECONDS, default 10):
//   1. wrk -t1 -c100 -dS, 3 rounds interleaved (nginx, base, process, nginx, ...), medians.
//      Targets: base/nginx >= 1.2, process/base >= 0.65.
//   2. Server CPU per request at a fixed offered rate: swactor bench -f http --rate 50000
//      -c 100 -d min(S,5)s; utime+stime of the server's process tree (/proc/PID/stat) over
//      the run / completed requests. nginx and base; target base/nginx <= 0.8. The kernel's
//      part (stime) is reported too: a floor no userland change moves.
//   3. p99 latency at 1000 connections: wrk -t1 -c1000 -dS --latency. nginx and base.
//   4. The load tester itself: swactor bench -f http -c100 -t1 -dS against nginx, against
//      wrk -t1 -c100 -dS run just before on the same nginx. Target >= 0.9. Also each client's
//      own CPU time per request (wait4 rusage), steadier than rates on a busy machine.
//   5. TLS (https://, the same self-signed P-256 certificate, nginx `ssl_session_cache off`):
//      wrk -t1 -c100 -dS keep-alive, 3 rounds interleaved, medians; target base/nginx >= 1.2.
//      A third server in the rounds: base with [server] busy_poll_us = 100 (docs/operations.md).
//      Handshakes: openssl s_time -new (full) and -reuse (ticket resumption; tickets on in
//      both servers) for min(S,5) s each; the figure is connections per second of server CPU
//      (s_time itself is client-bound); target base/nginx >= 1.0.
//   6. gzip level 1 on a 10 KiB JSON body: nginx `gzip on; gzip_comp_level 1` (the body from
//      a file, gzip_types application/json) against swactor http_hello with that body and
//      `compression = { gzip_level = 1, algorithms = ["gzip"] }`, base and process mode;
//      wrk -t1 -c50 -dS -H "Accept-Encoding: gzip"; server CPU (process tree utime+stime) per
//      response. Each server is first checked to answer with Content-Encoding: gzip.
//   7. A 1 MiB static file over plain HTTP (run first): nginx `sendfile on; tcp_nopush on`
//      against http_static in base mode with 1 worker (sendfile(2) as well), wrk -t1 -c10
//      -dS, 3 rounds interleaved, medians; target base/nginx >= 1.0.
//      SWACTOR_BENCH_HTTP_ONLY=static runs only this (=tls only section 5).
// Never asserts a figure: the exit status is 1 only when nginx or a client fails.
//
// Binaries: $SWACTOR_BIN, $NGINX (default /usr/sbin/nginx), $WRK (default wrk in PATH).
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
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
#include <type_traits>
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

constexpr int rounds = 3;
constexpr double fixed_rate = 50000;

struct tools {
  std::string swactor, nginx, wrk, taskset;
  bool pin = false;
};

std::string first_line(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  if (auto nl = s.rfind('\n'); nl != std::string::npos) s = s.substr(nl + 1);  // the last line says why
  return s.size() > 200 ? s.substr(0, 200) + "..." : s;
}

// Whether an HTTP/1.1 GET on 127.0.0.1:port gets an HTTP response within 200 ms.
bool http_probe(int port) { return swactor::bench::probe_reply(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1."); }

// -- servers ------------------------------------------------------------------------------

// The 10 KiB JSON body of the compression runs (the same bytes for every server).
const std::string& json_body() {
  static const std::string body = [] {
    std::string s = "[";
    for (int i = 0; s.size() < 10 * 1024 - 120; ++i)
      s += (i ? "," : "") + std::string("{\"id\":") + std::to_string(i) + ",\"name\":\"item " + std::to_string(i * 37 % 1000) +
           "\",\"price\":" + std::to_string(i * 13 % 500) + ".5,\"tags\":[\"red\",\"blue\"],\"stock\":" +
           std::to_string(i * 7 % 90) + "}";
    return s + "]";
  }();
  return body;
}

// Whether a GET with Accept-Encoding: gzip gets a response head with Content-Encoding: gzip.
bool answers_gzip(int port) {
  int fd = swactor::bench::connect_loopback(port);
  if (fd < 0) return false;
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  const std::string req = "GET / HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n";
  std::string got;
  if (::write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
    char buf[4096];
    for (ssize_t n; got.find("\r\n\r\n") == std::string::npos && (n = ::read(fd, buf, sizeof buf)) > 0;)
      got.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  auto head = got.substr(0, got.find("\r\n\r\n"));
  for (auto& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return head.find("\r\ncontent-encoding: gzip") != std::string::npos;
}

struct server {
  std::string name;
  std::unique_ptr<child> proc;
  int port = 0;
  std::string path = "/";
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port) + path; }
};

bool wait_up(server& s, std::string& why_not) {
  const auto until = clock_type::now() + 10s;
  while (clock_type::now() < until && s.proc->running()) {
    if (http_probe(s.port)) {
      std::this_thread::sleep_for(200ms);  // every worker up (the probe needed only one)
      return true;
    }
    std::this_thread::sleep_for(20ms);
  }
  s.proc->stop();
  why_not = "did not start (exit " + (s.proc->status ? std::to_string(*s.proc->status) : std::string("?")) +
            "): " + first_line(read_text(s.proc->err) + read_text(s.proc->out));
  return false;
}

// nginx.conf up to the server block: one process in the foreground, everything it writes
// in `d`, no access log, keep-alive without a request cap.
std::string nginx_prelude(const std::string& d) {
  return "daemon off;\nmaster_process off;\nworker_processes 1;\nworker_rlimit_nofile 20000;\npid " + d +
         "/nginx.pid;\nerror_log " + d + "/error.log warn;\nevents { worker_connections 16384; }\nhttp {\n"
         "  access_log off;\n  keepalive_requests 1000000;\n  default_type text/plain;\n  client_body_temp_path " +
         d + "/body;\n  proxy_temp_path " + d + "/proxy;\n  fastcgi_temp_path " + d + "/fastcgi;\n  uwsgi_temp_path " +
         d + "/uwsgi;\n  scgi_temp_path " + d + "/scgi;\n";
}

// nginx, one process in the foreground, everything it writes in `dir`.
// `gzip`: a 10 KiB JSON body through nginx's gzip filter; `static_root`: serve files from
// there (`sendfile on`) instead of the fixed answer.
std::optional<server> start_nginx(const tools& t, const fs::path& dir, std::string& why_not, bool gzip = false,
                                  const std::string& static_root = {}) {
  server s;
  s.name = "nginx";
  s.port = free_port();
  const auto d = (dir / "nginx").string();
  fs::create_directories(d);
  // The JSON is too long for a `return` string (nginx caps a parameter at 4 KiB): a file,
  // read per request (nginx's gzip filter does not sendfile).
  if (gzip) std::ofstream(fs::path(d) / "body.json") << json_body();
  const std::string location =
      gzip ? "location / { gzip on; gzip_comp_level 1; gzip_types application/json; default_type application/json; "
             "root " + d + "; rewrite ^ /body.json break; }"
           : "location / { return 200 \"Hello World\"; }";
  const auto conf = fs::path(d) / "nginx.conf";
  std::ofstream(conf) << nginx_prelude(d) << "  server {\n    listen 127.0.0.1:" << s.port
                      << " backlog=4096;\n"
                      << (!static_root.empty() ? "    sendfile on;\n    tcp_nopush on;\n    location / { root " +
                                                     static_root + "; }\n"
                                               : "    " + location + "\n")
                      << "  }\n}\n";
  s.proc = std::make_unique<child>(
      pinned(t.pin, t.taskset, 0, {t.nginx, "-p", d, "-e", d + "/error.log", "-c", conf.string()}), dir, "nginx");
  if (!wait_up(s, why_not)) {
    why_not += " " + first_line(read_text(fs::path(d) / "error.log"));
    return std::nullopt;
  }
  return s;
}

std::optional<server> start_swactor(const tools& t, const fs::path& dir, const std::string& name,
                                    const std::string& server_keys, std::string& why_not, bool gzip = false,
                                    const std::string& static_root = {}) {
  server s;
  s.name = name;
  s.port = free_port();
  const auto cfg = dir / (name + ".toml");
  std::ofstream(cfg) << "[server]\n"
                     << server_keys << "log_level = \"warning\"\nadmin_socket = \""
                     << (dir / (name + ".sock")).string() << "\"\n\n[[listen]]\nurl = \"http://127.0.0.1:" << s.port
                     << "\"\nmodule = \"" << (static_root.empty() ? "hello" : "files") << "\"\nbacklog = 4096\n"
                     << (gzip ? "compression = { gzip_level = 1, algorithms = [\"gzip\"] }\n" : "")
                     << "\n[modules.hello]\ntype = \"http_hello\"\n"
                     << (gzip ? "content_type = \"application/json\"\nbody = '" + json_body() + "'\n" : "")
                     << "\n[modules.files]\ntype = \"http_static\"\nroot = \""
                     << (static_root.empty() ? dir.string() : static_root) << "\"\n";
  s.proc = std::make_unique<child>(pinned(t.pin, t.taskset, 0, {t.swactor, "run", cfg.string()}), dir, name);
  if (!wait_up(s, why_not)) return std::nullopt;
  return s;
}

void stop(server& s) {
  const int rc = s.proc->stop(10s);
  if (rc != 0 && !(s.name == "nginx" && rc == 128 + SIGTERM))
    std::fprintf(stderr, "bench_http: %s exited with %d\n", s.name.c_str(), rc);
}

// -- clients ------------------------------------------------------------------------------

struct wrk_result {
  double rps = 0;
  double cpu_us_per_request = 0;  // wrk's own CPU time / requests
  double requests = 0;
  std::optional<double> p99_ms;
  std::string errors;  // wrk's socket errors / non-2xx lines, when any
};

double to_ms(double v, const std::string& unit) {
  if (unit == "us") return v / 1000.0;
  if (unit == "s") return v * 1000.0;
  if (unit == "m") return v * 60000.0;
  return v;  // ms
}

std::optional<wrk_result> run_wrk(const tools& t, const fs::path& dir, const server& s, int conns,
                                  int seconds, bool latency, const std::string& tag,
                                  const std::vector<std::string>& extra = {}) {
  std::vector<std::string> argv = {t.wrk, "-t1", "-c" + std::to_string(conns), "-d" + std::to_string(seconds) + "s"};
  if (latency) argv.push_back("--latency");
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back(s.url());
  argv = pinned(t.pin, t.taskset, 1, argv);
  std::printf("  %s: %s\n", tag.c_str(), join(argv).c_str());
  std::fflush(stdout);
  child c(argv, dir, "wrk-" + tag);
  auto st = c.wait(std::chrono::seconds(seconds + 30));
  const auto out = read_text(c.out);
  if (!st || *st != 0) {
    std::fprintf(stderr, "bench_http: %s: wrk failed (%s): %s\n", tag.c_str(),
                 st ? std::to_string(*st).c_str() : "timeout", first_line(read_text(c.err)).c_str());
    return std::nullopt;
  }
  wrk_result r;
  std::smatch m;
  if (std::regex_search(out, m, std::regex(R"(Requests/sec:\s+([0-9.]+))"))) r.rps = std::stod(m[1]);
  if (std::regex_search(out, m, std::regex(R"((\d+) requests in)")) && std::stod(m[1]) > 0) {
    r.requests = std::stod(m[1]);
    r.cpu_us_per_request = c.cpu_seconds() * 1e6 / r.requests;
  }
  if (std::regex_search(out, m, std::regex(R"(\n\s*99%\s+([0-9.]+)(us|ms|s|m)\b)")))
    r.p99_ms = to_ms(std::stod(m[1]), m[2]);
  for (const char* what : {"Socket errors:[^\n]*", "Non-2xx or 3xx responses:[^\n]*"})
    if (std::regex_search(out, m, std::regex(what))) r.errors += (r.errors.empty() ? "" : "; ") + m[0].str();
  char p99[48] = "";
  if (r.p99_ms) std::snprintf(p99, sizeof p99, ", p99 %.2f ms", *r.p99_ms);
  std::printf("    -> %.0f req/s%s, client CPU %.2f us/request%s%s\n", r.rps, p99, r.cpu_us_per_request,
              r.errors.empty() ? "" : ", ", r.errors.c_str());
  return r;
}

struct bench_result {
  double rps = 0;
  double cpu_us_per_request = 0;  // the client's own CPU time / requests
  std::uint64_t ok = 0, errors = 0;
  double p99_ms = 0;
};

std::optional<bench_result> run_swactor_bench(const tools& t, const fs::path& dir, const server& s,
                                              int seconds, double rate, const std::string& tag) {
  const auto json_path = dir / ("bench-" + tag + ".json");
  std::vector<std::string> argv = {t.swactor, "bench", "-s", s.url(), "-f", "http", "-c", "100", "-t", "1",
                                   "-d", std::to_string(seconds) + "s", "--timeout", "2s", "--json",
                                   json_path.string()};
  if (rate > 0) {
    argv.push_back("--rate");
    argv.push_back(std::to_string(static_cast<long>(rate)));
  }
  argv = pinned(t.pin, t.taskset, 1, argv);
  std::printf("  %s: %s\n", tag.c_str(), join(argv).c_str());
  std::fflush(stdout);
  child c(argv, dir, "bench-" + tag);
  auto st = c.wait(std::chrono::seconds(seconds + 30));
  const auto text = read_text(json_path);
  if (!st || text.empty()) {
    std::fprintf(stderr, "bench_http: %s: swactor bench failed (%s): %s\n", tag.c_str(),
                 st ? std::to_string(*st).c_str() : "timeout", first_line(read_text(c.err)).c_str());
    return std::nullopt;
  }
  const auto j = nlohmann::json::parse(text);
  bench_result r;
  r.rps = j.at("rps").get<double>();
  r.ok = j.at("ok").get<std::uint64_t>();
  r.errors = j.at("error_total").get<std::uint64_t>();
  r.p99_ms = j.at("latency_us").at("p99").get<double>() / 1000.0;
  const auto n = j.at("requests").get<std::uint64_t>();
  if (n > 0) r.cpu_us_per_request = c.cpu_seconds() * 1e6 / static_cast<double>(n);
  std::printf("    -> %.0f req/s, %llu ok, %llu errors, p99 %.2f ms, client CPU %.2f us/request\n", r.rps,
              static_cast<unsigned long long>(r.ok), static_cast<unsigned long long>(r.errors), r.p99_ms,
              r.cpu_us_per_request);
  return r;
}

struct cpu_result {
  double us_per_request = 0;
  double kernel_us_per_request = 0;  // of which in the kernel (what no userland change can cut)
  double achieved_rps = 0;  // below fixed_rate when the server (or the machine) cannot keep up
};

// Server CPU time per completed request while the bench client offers `fixed_rate`.
std::optional<cpu_result> cpu_per_request(const tools& t, const fs::path& dir, const server& s, int seconds,
                                          const std::string& tag) {
  const auto before = swactor::bench::tree_cpu_times(s.proc->pid);
  auto r = run_swactor_bench(t, dir, s, seconds, fixed_rate, tag);
  const auto after = swactor::bench::tree_cpu_times(s.proc->pid);
  if (!r || r->ok == 0) return std::nullopt;
  const double n = static_cast<double>(r->ok);
  cpu_result out{(after.total() - before.total()) * 1e6 / n, (after.kernel - before.kernel) * 1e6 / n, r->rps};
  std::printf("    -> server CPU %.2f s (user %.2f, kernel %.2f) for %llu requests: %.2f us/request\n",
              after.total() - before.total(), after.user - before.user, after.kernel - before.kernel,
              static_cast<unsigned long long>(r->ok), out.us_per_request);
  return out;
}


// -- TLS (https://) -----------------------------------------------------------------------
// Both servers get the same self-signed P-256 certificate, TLS 1.2 and 1.3, and answer the
// same 11 bytes. nginx: `ssl_session_cache off` (its default keeps no server-side cache
// either) and `ssl_session_tickets` on or off; swactor: `session_tickets` on or off.

// A TLS server is up once it accepts TCP connections (a plain probe gets no HTTP answer).
bool wait_accepting(server& s, std::string& why_not) {
  const auto until = clock_type::now() + 10s;
  while (clock_type::now() < until && s.proc->running()) {
    if (int fd = swactor::bench::connect_loopback(s.port); fd >= 0) {
      ::close(fd);
      std::this_thread::sleep_for(300ms);
      return true;
    }
    std::this_thread::sleep_for(20ms);
  }
  s.proc->stop();
  why_not = "did not start: " + first_line(read_text(s.proc->err) + read_text(s.proc->out));
  return false;
}

std::optional<server> start_nginx_tls(const tools& t, const fs::path& dir, bool tickets, std::string& why_not) {
  server s;
  s.name = tickets ? "nginx-tls-tickets" : "nginx-tls";
  s.port = free_port();
  const auto d = (dir / s.name).string();
  fs::create_directories(d);
  const auto conf = fs::path(d) / "nginx.conf";
  std::ofstream(conf) << nginx_prelude(d) << "  server {\n    listen 127.0.0.1:" << s.port
                      << " ssl backlog=4096;\n    ssl_certificate " << (dir / "tls.pem").string()
                      << ";\n    ssl_certificate_key " << (dir / "tls.key").string()
                      << ";\n    ssl_protocols TLSv1.2 TLSv1.3;\n    ssl_session_cache off;\n"
                      << "    ssl_session_tickets " << (tickets ? "on" : "off")
                      << ";\n    location / { return 200 \"Hello World\"; }\n  }\n}\n";
  s.proc = std::make_unique<child>(
      pinned(t.pin, t.taskset, 0, {t.nginx, "-p", d, "-e", d + "/error.log", "-c", conf.string()}), dir, s.name);
  if (!wait_accepting(s, why_not)) {
    why_not += " " + first_line(read_text(fs::path(d) / "error.log"));
    return std::nullopt;
  }
  return s;
}

std::optional<server> start_swactor_tls(const tools& t, const fs::path& dir, bool tickets, std::string& why_not,
                                        int busy_poll_us = 0) {
  server s;
  s.name = std::string(tickets ? "base-tls-tickets" : "base-tls") + (busy_poll_us ? "-poll" : "");
  s.port = free_port();
  const auto cfg = dir / (s.name + ".toml");
  // (busy_poll_us only when set: an older binary, for a before/after comparison, refuses it)
  std::ofstream(cfg) << "[server]\nmode = \"base\"\nworkers = 1\n"
                     << (busy_poll_us ? "busy_poll_us = " + std::to_string(busy_poll_us) + "\n" : std::string())
                     << "log_level = \"warning\"\nadmin_socket = \""
                     << (dir / (s.name + ".sock")).string() << "\"\n\n[[listen]]\nurl = \"https://127.0.0.1:"
                     << s.port << "\"\nmodule = \"hello\"\nbacklog = 4096\ntls = { cert = \""
                     << (dir / "tls.pem").string() << "\", key = \"" << (dir / "tls.key").string()
                     << "\", session_tickets = " << (tickets ? "true" : "false")
                     << " }\n\n[modules.hello]\ntype = \"http_hello\"\n";
  s.proc = std::make_unique<child>(pinned(t.pin, t.taskset, 0, {t.swactor, "run", cfg.string()}), dir, s.name);
  if (!wait_accepting(s, why_not)) return std::nullopt;
  return s;
}

// `openssl s_time` (one client, pinned to CPU 1): a new connection with a full handshake
// (or, with `reuse`, a resumed one) and one GET per connection, for `seconds`. Its rate is
// bounded by the client's own handshake work, so the figure to compare is the server's CPU
// time per handshake (the inverse is the handshakes/s one server core sustains).
struct handshake_result {
  double per_second = 0;        // what s_time achieved
  double server_us_per_conn = 0;  // server CPU time / connections
};

std::optional<handshake_result> run_s_time(const tools& t, const fs::path& dir, const server& s, int seconds,
                                           bool reuse, const std::string& tag) {
  std::vector<std::string> argv = {"openssl", "s_time", "-connect", "127.0.0.1:" + std::to_string(s.port),
                                   reuse ? "-reuse" : "-new", "-time", std::to_string(seconds), "-www", "/"};
  argv = pinned(t.pin, t.taskset, 1, argv);
  std::printf("  %s: %s\n", tag.c_str(), join(argv).c_str());
  std::fflush(stdout);
  const double before = swactor::bench::tree_cpu_seconds(s.proc->pid);
  const auto t0 = clock_type::now();
  child c(argv, dir, "s_time-" + tag);
  auto st = c.wait(std::chrono::seconds(seconds + 30));
  const double wall = std::chrono::duration<double>(clock_type::now() - t0).count();
  const double after = swactor::bench::tree_cpu_seconds(s.proc->pid);
  const auto out = read_text(c.out);
  std::smatch m;
  // "1234 connections in 6 real seconds, 123 bytes read per connection" (whole seconds: the
  // rate comes from our own wall clock around the run instead)
  if (!st || *st != 0 || !std::regex_search(out, m, std::regex(R"((\d+) connections in \d+ real seconds)"))) {
    std::fprintf(stderr, "bench_http: %s: openssl s_time failed: %s\n", tag.c_str(),
                 first_line(out + read_text(c.err)).c_str());
    return std::nullopt;
  }
  const double conns = std::stod(m[1]);
  if (conns <= 0 || wall <= 0) return std::nullopt;
  handshake_result r{conns / wall, (after - before) * 1e6 / conns};
  std::printf("    -> %.0f connections/s, server CPU %.1f us/connection\n", r.per_second, r.server_us_per_conn);
  return r;
}

struct tls_figures {
  std::map<std::string, std::vector<double>> rps;     // keep-alive wrk, per server name
  std::map<std::string, std::vector<double>> cpu_us;  // server CPU per keep-alive request
  std::map<std::string, handshake_result> full, resumed;
  std::string skipped;
};

tls_figures tls_section(const tools& t, const fs::path& dir, int seconds) {
  tls_figures f;
  if (!swactor::bench::make_test_certificate(dir)) {
    f.skipped = "openssl could not make a certificate";
    return f;
  }
  std::printf("bench_http: TLS (https://, TLS 1.3, P-256 certificate)\n");
  std::fflush(stdout);
  // 0: nginx, 1: swactor, 2: swactor with busy_poll_us = 100 (docs/operations.md)
  for (int round = 1; round <= rounds; ++round)
    for (int which : {0, 1, 2}) {
      const bool ours = which > 0;
      std::string why;
      auto s = ours ? start_swactor_tls(t, dir, true, why, which == 2 ? 100 : 0) : start_nginx_tls(t, dir, true, why);
      if (!s) {
        if (which == 2) continue;  // the rows of the others stand without it
        f.skipped = why;
        return f;
      }
      server w = std::move(*s);
      w.name = which == 0 ? "nginx" : which == 1 ? "base" : "base-poll";
      const std::string url = "https://127.0.0.1:" + std::to_string(w.port) + "/";
      std::vector<std::string> argv = pinned(t.pin, t.taskset, 1,
                                             {t.wrk, "-t1", "-c100", "-d" + std::to_string(seconds) + "s", url});
      std::printf("  %s-https-r%d: %s\n", w.name.c_str(), round, join(argv).c_str());
      std::fflush(stdout);
      const double cpu0 = swactor::bench::tree_cpu_seconds(w.proc->pid);
      child c(argv, dir, "wrk-https");
      auto st = c.wait(std::chrono::seconds(seconds + 30));
      const double cpu = swactor::bench::tree_cpu_seconds(w.proc->pid) - cpu0;
      std::smatch m, n;
      const auto out = read_text(c.out);
      if (st && *st == 0 && std::regex_search(out, m, std::regex(R"(Requests/sec:\s+([0-9.]+))")) &&
          std::regex_search(out, n, std::regex(R"((\d+) requests in)")) && std::stod(n[1]) > 0) {
        // wrk -t1 with TLS is near its own core's limit: the server's CPU per request says
        // what the rate cannot (the server's core is not always full).
        const double us = cpu * 1e6 / std::stod(n[1]);
        f.rps[w.name].push_back(std::stod(m[1]));
        f.cpu_us[w.name].push_back(us);
        std::printf("    -> %s req/s, server CPU %.2f us/request (%.0f %% of a core)\n", m[1].str().c_str(), us,
                    cpu * 100 / seconds);
      }
      stop(w);
    }
  const int hs_seconds = std::min(seconds, 5);
  for (bool tickets : {false, true})
    for (bool ours : {false, true}) {
      std::string why;
      auto s = ours ? start_swactor_tls(t, dir, tickets, why) : start_nginx_tls(t, dir, tickets, why);
      if (!s) continue;
      const std::string name = ours ? "base" : "nginx";
      if (auto r = run_s_time(t, dir, *s, hs_seconds, tickets, name + (tickets ? "-resumed" : "-full")))
        (tickets ? f.resumed : f.full)[name] = *r;
      stop(*s);
    }
  return f;
}

// The TLS rows of the report (none when the section was skipped).
void tls_rows(swactor::bench::report& rep, const tls_figures& tls) {
  if (!tls.skipped.empty()) return;
  auto add = [&](const std::string& metric, std::optional<double> value, const char* unit, std::optional<double> ref,
                 const std::string& ref_name, std::optional<double> target) {
    rep.add({metric + (value ? "" : " (failed)"), value.value_or(0), unit, value ? ref : std::nullopt, ref_name, target});
  };
  auto tls_med = [&](const char* name) -> std::optional<double> {
    auto it = tls.rps.find(name);
    if (it == tls.rps.end() || it->second.empty()) return std::nullopt;
    return median(it->second);
  };
  const std::string https = "rps https wrk -t1 -c100, median of " + std::to_string(rounds) + ": ";
  const auto nginx_tls = tls_med("nginx");
  add(https + "nginx (reference)", nginx_tls, "req/s", std::nullopt, "", std::nullopt);
  add(https + "base 1 worker", tls_med("base"), "req/s", nginx_tls, "nginx", 1.2);
  if (tls.rps.count("base-poll"))
    add(https + "base 1 worker, busy_poll_us 100", tls_med("base-poll"), "req/s", nginx_tls, "nginx", 1.2);
  auto cpu_med = [&](const char* name) -> std::optional<double> {
    auto it = tls.cpu_us.find(name);
    if (it == tls.cpu_us.end() || it->second.empty()) return std::nullopt;
    return median(it->second);
  };
  add("https keep-alive server CPU per request: nginx", cpu_med("nginx"), "us", std::nullopt, "", std::nullopt);
  add("https keep-alive server CPU per request: base", cpu_med("base"), "us", cpu_med("nginx"), "nginx",
      std::nullopt);
  if (tls.cpu_us.count("base-poll"))
    add("https keep-alive server CPU per request: base, busy_poll_us 100", cpu_med("base-poll"), "us",
        cpu_med("nginx"), "nginx", std::nullopt);
  // Handshakes per second of server CPU (1e6 / CPU us per connection): what one core sustains.
  for (const auto* which_hs : {&tls.full, &tls.resumed}) {
    const std::string kind = which_hs == &tls.full ? "full handshake" : "resumed (ticket)";
    auto cap = [&](const char* name) -> std::optional<double> {
      auto it = which_hs->find(name);
      if (it == which_hs->end() || it->second.server_us_per_conn <= 0) return std::nullopt;
      return 1e6 / it->second.server_us_per_conn;
    };
    auto seen = [&](const char* name) -> std::optional<double> {
      auto it = which_hs->find(name);
      if (it == which_hs->end()) return std::nullopt;
      return it->second.per_second;
    };
    add("TLS " + kind + " + GET per server CPU second: nginx", cap("nginx"), "conn/s", std::nullopt, "", std::nullopt);
    add("TLS " + kind + " + GET per server CPU second: base", cap("base"), "conn/s", cap("nginx"), "nginx", 1.0);
    add("TLS " + kind + " openssl s_time rate (client-bound): nginx", seen("nginx"), "conn/s", std::nullopt, "",
        std::nullopt);
    add("TLS " + kind + " openssl s_time rate (client-bound): base", seen("base"), "conn/s", seen("nginx"), "nginx",
        std::nullopt);
  }
}

}  // namespace

int main() {
  ::signal(SIGPIPE, SIG_IGN);
  const auto self = fs::read_symlink("/proc/self/exe").parent_path();
  tools t;
  t.swactor = swactor::bench::find_bin("bench_http", "SWACTOR_BIN", {self / ".." / ".." / "apps" / "swactor"},
                                       "swactor");
  const char* nginx_env = std::getenv("NGINX");
  t.nginx = nginx_env && *nginx_env ? nginx_env : "/usr/sbin/nginx";
  const char* wrk_env = std::getenv("WRK");
  t.wrk = wrk_env && *wrk_env ? wrk_env : which("wrk");
  t.taskset = which("taskset");
  if (::access(t.nginx.c_str(), X_OK) != 0 || t.wrk.empty()) {
    std::printf("bench_http: skipped: needs nginx (%s) and wrk (install nginx-light and wrk)\n", t.nginx.c_str());
    return 0;
  }
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  t.pin = !t.taskset.empty() && ::sched_getaffinity(0, sizeof cpus, &cpus) == 0 && CPU_ISSET(0, &cpus) &&
          CPU_ISSET(1, &cpus);
  int seconds = 10;
  if (const char* s = std::getenv("SWACTOR_BENCH_SECONDS"); s && std::atoi(s) > 0) seconds = std::atoi(s);
  const int rate_seconds = std::min(seconds, 5);

  // wrk -c1000 and the servers each hold a descriptor per connection.
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &rl);

  char tmpl[] = "/tmp/bench-http-XXXXXX";
  if (!::mkdtemp(tmpl)) return 1;
  const fs::path dir = tmpl;
  std::printf("bench_http: hello world over HTTP/1.1 keep-alive, %d s per run, %s\n", seconds,
              t.pin ? "servers on CPU 0, clients on CPU 1" : "not pinned (needs taskset and CPUs 0 and 1)");

  struct variant {
    std::string name, label, keys;
    std::vector<double> rps;
    std::string skipped;  // why, when it did not start
  };
  std::vector<variant> vs = {
      {"nginx", "nginx 1 process", "", {}, {}},
      {"base", "base mode, 1 worker", "mode = \"base\"\nworkers = 1\n", {}, {}},
      {"process", "process mode, 1 reactor, 1 worker", "mode = \"process\"\nworkers = 1\nreactor_threads = 1\n", {}, {}},
  };
  auto start = [&](variant& v) -> std::optional<server> {
    std::string why;
    auto s = v.name == "nginx" ? start_nginx(t, dir, why) : start_swactor(t, dir, v.name, v.keys, why);
    if (!s) {
      v.skipped = why;
      std::printf("  %s: skipped: %s\n", v.name.c_str(), why.c_str());
    }
    return s;
  };

  int status = 0;
  const char* only = std::getenv("SWACTOR_BENCH_HTTP_ONLY");
  const bool static_only = only && std::string(only) == "static";
  if (only && std::string(only) == "tls") {
    const auto tls = tls_section(t, dir, seconds);
    if (!tls.skipped.empty()) std::printf("  TLS: skipped: %s\n", tls.skipped.c_str());
    swactor::bench::report rep("bench_http");
    tls_rows(rep, tls);
    rep.finish();
    std::error_code ec;
    fs::remove_all(dir, ec);
    return tls.skipped.empty() ? status : 1;
  }

  // 7. A 1 MiB static file: nginx `sendfile on` against http_static (sendfile(2) too), wrk
  // -t1 -c10, interleaved rounds, medians. Target: base/nginx >= 1.0.
  std::vector<double> static_rps[2];
  auto med_of = [](const std::vector<double>& v) -> std::optional<double> {
    if (v.empty()) return std::nullopt;
    return median(v);
  };
  {
    const auto root = dir / "www";
    fs::create_directories(root);
    {
      std::ofstream f(root / "1mib.bin", std::ios::binary);
      std::string block(4096, '\0');
      for (int i = 0; i < 256; ++i) {
        for (std::size_t k = 0; k < block.size(); ++k) block[k] = static_cast<char>((i * 31 + k) & 0xff);
        f.write(block.data(), static_cast<std::streamsize>(block.size()));
      }
    }
    for (int round = 1; round <= rounds; ++round) {
      for (int which = 0; which < 2; ++which) {
        std::string why;
        auto s = which == 0 ? start_nginx(t, dir, why, false, root.string())
                            : start_swactor(t, dir, "static", "mode = \"base\"\nworkers = 1\n", why, false, root.string());
        if (!s) {
          std::printf("  static %s: skipped: %s\n", which == 0 ? "nginx" : "base", why.c_str());
          status = 1;
          continue;
        }
        s->path = "/1mib.bin";
        if (auto r = run_wrk(t, dir, *s, 10, seconds, false,
                             std::string(which == 0 ? "nginx" : "base") + "-static-1mib-r" + std::to_string(round)))
          static_rps[which].push_back(r->rps);
        else
          status = 1;
        stop(*s);
      }
    }
  }
  if (static_only) {
    swactor::bench::report rep("bench_http");
    const std::string label = "1 MiB static file wrk -t1 -c10, median of " + std::to_string(rounds) + ": ";
    if (auto n = med_of(static_rps[0])) rep.add({label + "nginx sendfile on (reference)", *n, "req/s", std::nullopt, "", std::nullopt});
    if (auto b = med_of(static_rps[1])) rep.add({label + "http_static base 1 worker", *b, "req/s", med_of(static_rps[0]), "nginx", 1.0});
    rep.finish();
    std::error_code ec;
    fs::remove_all(dir, ec);
    return status;
  }

  // 1. Throughput, interleaved rounds. A variant that failed to start is not retried.
  for (int round = 1; round <= rounds; ++round) {
    for (auto& v : vs) {
      if (!v.skipped.empty()) continue;
      auto s = start(v);
      if (!s) continue;
      if (auto r = run_wrk(t, dir, *s, 100, seconds, false, v.name + "-c100-r" + std::to_string(round)))
        v.rps.push_back(r->rps);
      else
        status = 1;
      stop(*s);
    }
  }
  if (!vs[0].skipped.empty()) {
    std::fprintf(stderr, "bench_http: nginx did not start: %s\n", vs[0].skipped.c_str());
    return 1;
  }

  // 2. CPU per request at a fixed rate, 3. p99 at 1000 connections, 4. the load tester.
  std::map<std::string, cpu_result> cpu;
  std::map<std::string, double> p99_ms;
  std::optional<bench_result> ours_on_nginx;
  std::optional<double> wrk_on_nginx, wrk_cpu_on_nginx;
  for (variant* v : {&vs[0], &vs[1]}) {
    variant& var = *v;
    if (!var.skipped.empty()) continue;
    auto s = start(var);
    if (!s) continue;
    if (auto c = cpu_per_request(t, dir, *s, rate_seconds, var.name + "-rate")) cpu[var.name] = *c;
    if (auto r = run_wrk(t, dir, *s, 1000, seconds, true, var.name + "-c1000"); r && r->p99_ms)
      p99_ms[var.name] = *r->p99_ms;
    if (var.name == "nginx") {
      // Back to back on the same server, so both clients see the same machine.
      if (auto w = run_wrk(t, dir, *s, 100, seconds, false, "nginx-c100-pair")) {
        wrk_on_nginx = w->rps;
        wrk_cpu_on_nginx = w->cpu_us_per_request;
      }
      ours_on_nginx = run_swactor_bench(t, dir, *s, seconds, 0, "nginx-swactor-bench");
      if (!ours_on_nginx || !wrk_on_nginx) status = 1;
    }
    stop(*s);
  }

  // 5. TLS: keep-alive over https, full and resumed handshakes.
  const auto tls = tls_section(t, dir, seconds);
  if (!tls.skipped.empty()) std::printf("  TLS: skipped: %s\n", tls.skipped.c_str());

  // 6. gzip level 1 on a 10 KiB JSON body: server CPU per response.
  std::map<std::string, double> gzip_cpu;
  std::map<std::string, std::string> gzip_skipped;
  for (const auto& v : vs) {
    if (!v.skipped.empty()) continue;
    std::string why;
    auto s = v.name == "nginx" ? start_nginx(t, dir, why, true) : start_swactor(t, dir, v.name + "-gzip", v.keys, why, true);
    if (!s) {
      gzip_skipped[v.name] = why;
      std::printf("  %s gzip: skipped: %s\n", v.name.c_str(), why.c_str());
      continue;
    }
    if (!answers_gzip(s->port)) {
      gzip_skipped[v.name] = "no Content-Encoding: gzip in its answer";
      std::printf("  %s gzip: skipped: %s\n", v.name.c_str(), gzip_skipped[v.name].c_str());
      stop(*s);
      continue;
    }
    const double before = swactor::bench::tree_cpu_seconds(s->proc->pid);
    auto r = run_wrk(t, dir, *s, 50, seconds, false, v.name + "-gzip1-json10k", {"-H", "Accept-Encoding: gzip"});
    const double after = swactor::bench::tree_cpu_seconds(s->proc->pid);
    if (r && r->requests > 0) {
      gzip_cpu[v.name] = (after - before) * 1e6 / r->requests;
      std::printf("    -> server CPU %.2f s for %.0f responses: %.2f us/response\n", after - before, r->requests,
                  gzip_cpu[v.name]);
    } else {
      status = 1;
    }
    stop(*s);
  }

  swactor::bench::report rep("bench_http");
  auto med = [](const variant& v) -> std::optional<double> {
    if (v.rps.empty()) return std::nullopt;
    return median(v.rps);
  };
  // A skipped variant gets a row of zeros without a reference (its reason is printed above).
  auto row = [&](const std::string& metric, const variant& v, std::optional<double> value, const char* unit,
                 std::optional<double> ref, const std::string& ref_name, std::optional<double> target) {
    if (!v.skipped.empty() || !value) {
      rep.add({metric + (v.skipped.empty() ? " (failed)" : " (skipped: did not start)"), 0, unit, std::nullopt,
               ref_name, target});
      return;
    }
    rep.add({metric, *value, unit, ref, ref_name, target});
  };
  auto get = [](const auto& m, const std::string& k) -> std::optional<double> {
    auto it = m.find(k);
    if (it == m.end()) return std::nullopt;
    if constexpr (std::is_same_v<std::decay_t<decltype(it->second)>, cpu_result>)
      return it->second.us_per_request;
    else
      return it->second;
  };
  const auto nginx_rps = med(vs[0]);
  const auto base_rps = med(vs[1]);
  const std::string wrk100 = "rps wrk -t1 -c100, median of " + std::to_string(rounds) + ": ";
  row(wrk100 + "nginx (reference)", vs[0], nginx_rps, "req/s", std::nullopt, "", std::nullopt);
  row(wrk100 + "base 1 worker", vs[1], base_rps, "req/s", nginx_rps, "nginx", 1.2);
  row(wrk100 + "process 1r 1w", vs[2], med(vs[2]), "req/s", base_rps, "base 1 worker", 0.65);
  const std::string at = " at --rate " + std::to_string(static_cast<long>(fixed_rate)) + ": ";
  row("server CPU/request" + at + "nginx", vs[0], get(cpu, "nginx"), "us/req", std::nullopt, "", std::nullopt);
  row("server CPU/request" + at + "base (lower is better)", vs[1], get(cpu, "base"), "us/req", get(cpu, "nginx"),
      "nginx", 0.8);
  // The kernel's part (recv, send, epoll_wait): a floor under the ratio above.
  for (const auto* v : {&vs[0], &vs[1]}) {
    auto it = cpu.find(v->name);
    row("server kernel CPU/request" + at + v->name, *v,
        it == cpu.end() ? std::nullopt : std::optional<double>(it->second.kernel_us_per_request), "us/req",
        std::nullopt, "", std::nullopt);
  }
  for (const auto* v : {&vs[0], &vs[1]}) {
    auto it = cpu.find(v->name);
    row("achieved rps" + at + v->name, *v,
        it == cpu.end() ? std::nullopt : std::optional<double>(it->second.achieved_rps), "req/s", std::nullopt, "",
        std::nullopt);
  }
  row("p99 latency wrk -t1 -c1000: nginx", vs[0], get(p99_ms, "nginx"), "ms", std::nullopt, "", std::nullopt);
  row("p99 latency wrk -t1 -c1000: base (lower is better)", vs[1], get(p99_ms, "base"), "ms", get(p99_ms, "nginx"),
      "nginx", std::nullopt);
  row("rps swactor bench -f http -c100 -t1 on nginx", vs[0],
      ours_on_nginx ? std::optional<double>(ours_on_nginx->rps) : std::nullopt, "req/s", wrk_on_nginx,
      "wrk -t1 -c100 on nginx, run just before", 0.9);
  // Steadier than the rates on a busy machine: what each client spends per request.
  row("client CPU/request swactor bench (lower is better)", vs[0],
      ours_on_nginx ? std::optional<double>(ours_on_nginx->cpu_us_per_request) : std::nullopt, "us/req",
      wrk_cpu_on_nginx, "wrk, same runs", std::nullopt);
  tls_rows(rep, tls);
  const std::string gz = "server CPU/response, gzip level 1, 10 KiB JSON, wrk -t1 -c50: ";
  for (const auto& v : vs) {
    variant gv = v;
    if (auto it = gzip_skipped.find(v.name); it != gzip_skipped.end()) gv.skipped = it->second;
    const bool ref = v.name == "nginx";
    row(gz + v.name + (ref ? " (reference)" : " (lower is better)"), gv, get(gzip_cpu, v.name), "us/resp",
        ref ? std::nullopt : get(gzip_cpu, "nginx"), ref ? "" : "nginx", std::nullopt);
  }
  {
    const std::string label = "1 MiB static file wrk -t1 -c10, median of " + std::to_string(rounds) + ": ";
    const auto n = med_of(static_rps[0]);
    const auto b = med_of(static_rps[1]);
    row(label + "nginx sendfile on (reference)", vs[0], n, "req/s", std::nullopt, "", std::nullopt);
    row(label + "http_static base 1 worker", vs[1], b, "req/s", n, "nginx", 1.0);
  }
  for (const auto& v : vs)
    if (v.rps.size() > 1) {
      std::string all;
      for (double r : v.rps) all += (all.empty() ? "" : ", ") + std::to_string(static_cast<long>(r));
      std::printf("  %s rounds: %s\n", v.name.c_str(), all.c_str());
    }
  rep.finish();
  std::error_code ec;
  fs::remove_all(dir, ec);
  return status;
}
