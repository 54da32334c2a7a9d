// Resident memory an idle TCP connection adds to the server, against a single-threaded
// epoll echo server.
//
// For each server: start it, connect and close a few hundred connections (so the allocators
// have grown once), take the baseline RSS, open N idle connections (nothing is sent), wait
// until the server reports all of them, and take the RSS again. The figure is
// (RSS after - baseline) / N, summed over the server's whole process tree (the master and
// every descendant, VmRSS from /proc/PID/status). Kernel socket buffers are not in RSS.
//   (a) swactor_test_echo (raw epoll, one thread)         = the reference
//   (b) swactor run, base mode, 2 workers, echo module (raw framing)
//   (c) swactor run, process mode, 1 reactor thread, 2 workers
// swactor's count is `swactor stats --pid-file F` connection_num; the reference has no stats,
// so its count is the number of its open descriptors, polled until it is stable.
// The target is <= 1 KiB per connection (absolute, not a ratio).
//
// HTTP (idle keep-alive connections): every connection sends one
// `GET / HTTP/1.1\r\nHost: x\r\n\r\n` and reads the response, then stays open, idle:
//   (d) nginx (/usr/sbin/nginx or $NGINX, one process, `return 200`)   = the HTTP reference
//   (e) swactor run, base mode, 1 worker, http:// listener, module http_hello
//   (f) swactor run, process mode, 1 reactor thread, 1 worker
// Slow clients (http_partial_*): every connection sends the first part of a request head
// (`GET /some/path?q=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: slo`) and nothing more; the
// listener's header_timeout is raised so that none expires during the measurement.
// nginx's count is its open descriptors, like (a). A server that is missing or does not start
// (no http_hello yet) is reported as skipped.
//
// WebSocket (idle upgraded connections): every connection upgrades (GET + Upgrade, a 101),
// exchanges one 100-byte text message with ws_echo, then stays open, idle; swactor run,
// ws:// listener, module ws_echo:
//   (g) base mode, 1 worker, no extension offered
//   (h) process mode, 1 reactor thread, 1 worker, no extension offered
//   (i) base mode, 1 worker, permessage-deflate offered and accepted (the message goes
//       compressed both ways, so both zlib streams exist, with context takeover)
//   (j) base mode, 1 worker, listener `no_context_takeover = true`, the client offers
//       `client_no_context_takeover` too: no compression context is kept between messages
//   (k) base mode, 1 worker, listener `no_context_takeover = true`, the client offers only
//       `client_max_window_bits` (as a browser does): it keeps its context, so the server
//       keeps an inflate stream, with the 9-bit window it asks such a client for
// The target is <= 1 KiB per connection without deflate; (i) to (k) are reported.
//
// $SWACTOR_BENCH_IDLE_ONLY=PREFIX measures only the variants whose name starts with it (and
// the reference): ws for the WebSocket ones, http, base, process.
// N: $SWACTOR_BENCH_IDLE_CONNS (default 10000), lowered when RLIMIT_NOFILE's hard limit is
// too small. Binaries: $SWACTOR_BIN and $SWACTOR_TEST_ECHO, else found relative to this
// program in the build tree.
#include <dirent.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench_process.hpp"
#include "bench_report.hpp"
#include "swactor/protocols/websocket.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using swactor::bench::child;
using swactor::bench::clock_type;
using swactor::bench::process_tree;
using swactor::bench::read_text;

constexpr int warmup_conns = 300;
// Descriptors the client and the server need beside the connections (listeners, logs, IPC).
constexpr rlim_t fd_slack = 256;

// Summed VmRSS of the tree, in bytes.
std::uint64_t tree_rss(pid_t root, int* procs = nullptr) {
  std::uint64_t total = 0;
  auto tree = process_tree(root);
  for (pid_t p : tree) {
    std::ifstream in("/proc/" + std::to_string(p) + "/status");
    for (std::string line; std::getline(in, line);)
      if (line.rfind("VmRSS:", 0) == 0) total += std::strtoull(line.c_str() + 6, nullptr, 10) * 1024;
  }
  if (procs) *procs = static_cast<int>(tree.size());
  return total;
}

int open_fds(pid_t pid) {
  int n = 0;
  std::error_code ec;
  for (auto it = fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != fs::directory_iterator(); it.increment(ec))
    ++n;
  return n;
}

int connect_one(int port) { return swactor::bench::connect_loopback(port); }

constexpr char http_request[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

// One keep-alive GET on `fd` and its whole response (Content-Length bodies only).
bool http_exchange(int fd) {
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::write(fd, http_request, sizeof http_request - 1) != static_cast<ssize_t>(sizeof http_request - 1))
    return false;
  std::string in;
  char buf[1024];
  for (;;) {
    const auto end = in.find("\r\n\r\n");
    if (end != std::string::npos) {
      std::size_t body = 0;
      for (const char* name : {"Content-Length:", "content-length:"})
        if (auto at = in.find(name); at != std::string::npos && at < end)
          body = std::strtoul(in.c_str() + at + std::strlen(name), nullptr, 10);
      if (in.size() >= end + 4 + body) return in.compare(0, 7, "HTTP/1.") == 0;
    }
    const auto n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return false;
    in.append(buf, static_cast<std::size_t>(n));
  }
}

// A slow client: the first part of a request head, nothing more (the server keeps it until
// the rest comes or header_timeout passes).
bool send_partial_head(int fd) {
  static constexpr char part[] = "GET /some/path?q=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: slo";
  return ::write(fd, part, sizeof part - 1) == static_cast<ssize_t>(sizeof part - 1);
}

bool http_probe(int port) {
  int fd = connect_one(port);
  if (fd < 0) return false;
  const bool ok = http_exchange(fd);
  ::close(fd);
  return ok;
}

bool echo_probe(int port) {
  int fd = connect_one(port);
  if (fd < 0) return false;
  timeval tv{0, 200000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  bool ok = false;
  char ch;
  if (::write(fd, "x", 1) == 1 && ::read(fd, &ch, 1) == 1) ok = true;
  ::close(fd);
  return ok;
}

// -- WebSocket clients -----------------------------------------------------------------------

enum class ws_offer { none, deflate, deflate_no_context };

// Reads exactly n bytes (the socket has a receive timeout).
bool read_exact(int fd, char* p, std::size_t n) {
  while (n > 0) {
    const auto got = ::read(fd, p, n);
    if (got <= 0) return false;
    p += got;
    n -= static_cast<std::size_t>(got);
  }
  return true;
}

// Upgrades `fd` (checking that the extension was accepted exactly when offered), sends one
// 100-byte masked text message (compressed when deflate was negotiated) and reads its echo.
bool ws_exchange(int fd, ws_offer offer) {
  namespace pws = swactor::protocols::websocket;
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string req =
      "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
  if (offer == ws_offer::deflate) req += "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";
  if (offer == ws_offer::deflate_no_context)
    req += "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n";
  req += "\r\n";
  if (::write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) return false;
  std::string in;
  char buf[1024];
  while (in.find("\r\n\r\n") == std::string::npos) {
    const auto n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return false;
    in.append(buf, static_cast<std::size_t>(n));
  }
  const auto head_end = in.find("\r\n\r\n") + 4;
  const bool deflate = in.find("permessage-deflate") < head_end;
  if (in.rfind("HTTP/1.1 101 ", 0) != 0 || deflate != (offer != ws_offer::none)) return false;
  in.erase(0, head_end);  // nothing follows the 101 before our message

  // The message: the same text every time (its content does not matter to memory).
  std::string text(100, 'x');  // over deflate_min_size (64), under 126 (a 7-bit length)
  for (std::size_t i = 0; i < text.size(); ++i) text[i] = static_cast<char>('a' + i % 26);
  std::string payload = text;
  if (deflate) {
    // One compressor for every connection, reset per message: the client keeps no context.
    static pws::deflater z([] {
      pws::deflate_params p;
      p.server_no_context_takeover = true;  // "server" = the compressing side here
      return p;
    }());
    payload.clear();
    z.deflate_message(text, payload);
  }
  std::string frame(1, static_cast<char>(deflate ? 0xc1 : 0x81));
  frame += static_cast<char>(0x80 | payload.size());  // < 126 bytes either way
  const char mask[4] = {0x11, 0x22, 0x33, 0x44};
  frame.append(mask, 4);
  for (std::size_t i = 0; i < payload.size(); ++i) frame += static_cast<char>(payload[i] ^ mask[i & 3]);
  if (::write(fd, frame.data(), frame.size()) != static_cast<ssize_t>(frame.size())) return false;
  // The echo: one unmasked frame (under 126 bytes on the wire).
  char h[2];
  if (in.size() >= 2) {
    h[0] = in[0];
    h[1] = in[1];
    in.erase(0, 2);
  } else if (!in.empty() || !read_exact(fd, h, 2)) {
    return false;
  }
  const std::size_t len = static_cast<std::uint8_t>(h[1]) & 0x7f;
  if ((static_cast<std::uint8_t>(h[0]) & 0x0f) != 0x1 || len >= 126) return false;
  std::string body(len, '\0');
  const auto have = std::min(in.size(), len);
  std::copy_n(in.data(), have, body.data());
  return read_exact(fd, body.data() + have, len - have);
}

bool ws_probe(int port) {
  int fd = connect_one(port);
  if (fd < 0) return false;
  const bool ok = ws_exchange(fd, ws_offer::none);
  ::close(fd);
  return ok;
}

// A running server and how to ask it how many connections it holds.
struct server {
  std::string name;
  std::unique_ptr<child> proc;
  int port = 0;
  bool http = false;  // each connection makes one keep-alive request, then idles
  bool partial_head = false;  // http: each connection sends a head's first part, then idles
  std::optional<ws_offer> ws;  // each connection upgrades and echoes one message, then idles
  std::function<int()> connections;  // -1 when it cannot tell
  bool counts_exactly = false;       // swactor's stats; the reference's descriptor count may lag
};

bool wait_for_count(server& s, int want, clock_type::duration timeout) {
  const auto until = clock_type::now() + timeout;
  int last = -2, same = 0;
  while (clock_type::now() < until && s.proc->running()) {
    int n = s.connections();
    if (n == want) {
      // The descriptor count reaches N at accept(); two more equal polls let the epoll
      // registration that follows it finish.
      if (s.counts_exactly || (n == last && ++same >= 2)) return true;
    } else {
      same = 0;
    }
    last = n;
    std::this_thread::sleep_for(s.counts_exactly ? 50ms : 150ms);
  }
  return false;
}

std::optional<server> start_reference(const std::string& echo, const fs::path& dir) {
  server s;
  s.name = "reference";
  s.proc = std::make_unique<child>(std::vector<std::string>{echo, "--tcp", "127.0.0.1:0"}, dir, "echo");
  if (!s.proc->wait_text("ready", 1, false, 5s)) {
    std::fprintf(stderr, "bench_idle_rss: echo server did not start\n");
    return std::nullopt;
  }
  auto out = read_text(s.proc->out);
  s.port = std::atoi(out.c_str() + out.find("port=") + 5);
  const pid_t pid = s.proc->pid;
  const int idle_fds = open_fds(pid);
  s.connections = [pid, idle_fds] { return open_fds(pid) - idle_fds; };
  return s;
}

// nullopt and the reason when the master refuses the config or does not come up.
// `ws`: a ws:// listener on ws_echo whose connections make `ws`'s offer; `ws_options`: its
// websocket = { ... } table's contents.
std::optional<server> start_swactor(const std::string& swactor, const fs::path& dir, const std::string& name,
                                    const std::string& server_keys, int max_conns, std::string& why_not,
                                    bool http = false, std::optional<ws_offer> ws = std::nullopt,
                                    const std::string& ws_options = "", const std::string& listen_keys = "") {
  server s;
  s.name = name;
  s.http = http;
  s.ws = ws;
  s.port = swactor::bench::free_port();
  const auto pid_file = (dir / (name + ".pid")).string();
  auto cfg = dir / (name + ".toml");
  const char* scheme = ws ? "ws" : http ? "http" : "tcp";
  const char* module = ws ? "ws_echo" : http ? "hello" : "echo";
  std::ofstream(cfg) << "[server]\n"
                     << server_keys << "log_level = \"warning\"\npid_file = \"" << pid_file
                     << "\"\nadmin_socket = \"" << (dir / (name + ".sock")).string()
                     << "\"\n\n[[listen]]\nurl = \"" << scheme << "://127.0.0.1:" << s.port
                     << "\"\nmodule = \"" << module << "\"\nbacklog = 4096\nmax_connections = "
                     << max_conns << "\n" << listen_keys << (http ? "\n[modules.hello]\ntype = \"http_hello\"\n" : "")
                     << (ws ? "websocket = { " + ws_options + " }\n" : "");
  s.proc = std::make_unique<child>(std::vector<std::string>{swactor, "run", cfg.string()}, dir, name);
  s.counts_exactly = true;
  // Each poll is a `swactor stats` process; its output replaces the previous one's.
  auto stats = [swactor, pid_file, dir, name]() -> std::optional<nlohmann::json> {
    child c({swactor, "stats", "--pid-file", pid_file}, dir, name + "-stats");
    auto st = c.wait(5s);
    if (!st || *st != 0) return std::nullopt;
    auto j = nlohmann::json::parse(read_text(c.out), nullptr, false);
    if (j.is_discarded()) return std::nullopt;
    return j;
  };
  s.connections = [stats] {
    auto j = stats();
    return j ? j->value("connection_num", -1) : -1;
  };
  // Up once a connection gets its echo back and every worker reports idle.
  const auto until = clock_type::now() + 15s;
  while (clock_type::now() < until && s.proc->running()) {
    if (ws ? ws_probe(s.port) : http ? http_probe(s.port) : echo_probe(s.port)) {
      if (auto j = stats(); j && j->contains("workers")) {
        bool all_idle = !j->at("workers").empty();
        for (const auto& w : j->at("workers")) all_idle = all_idle && w.value("state", "") == "idle";
        if (all_idle) return s;
      }
    }
    std::this_thread::sleep_for(50ms);
  }
  s.proc->stop();
  why_not = "did not start (exit " + (s.proc->status ? std::to_string(*s.proc->status) : std::string("?")) +
            "): " + read_text(s.proc->err);
  while (!why_not.empty() && why_not.back() == '\n') why_not.pop_back();
  return std::nullopt;
}

// nginx as one process in the foreground (its connection count: open descriptors).
std::optional<server> start_nginx(const std::string& nginx, const fs::path& dir, int max_conns, std::string& why_not) {
  server s;
  s.name = "nginx";
  s.http = true;
  s.port = swactor::bench::free_port();
  const auto d = (dir / "nginx").string();
  fs::create_directories(d);
  const auto conf = fs::path(d) / "nginx.conf";
  std::ofstream(conf) << "daemon off;\nmaster_process off;\nworker_processes 1;\nworker_rlimit_nofile "
                      << max_conns + 1000 << ";\npid " << d << "/nginx.pid;\nerror_log " << d
                      << "/error.log warn;\nevents { worker_connections " << max_conns
                      << "; }\nhttp {\n  access_log off;\n  keepalive_requests 1000000;\n"
                      << "  keepalive_timeout 600s;\n  client_body_temp_path " << d << "/body;\n  proxy_temp_path "
                      << d << "/proxy;\n  fastcgi_temp_path " << d << "/fastcgi;\n  uwsgi_temp_path " << d
                      << "/uwsgi;\n  scgi_temp_path " << d << "/scgi;\n  server {\n    listen 127.0.0.1:" << s.port
                      << " backlog=4096;\n    location / { return 200 \"Hello World\"; }\n  }\n}\n";
  s.proc = std::make_unique<child>(std::vector<std::string>{nginx, "-p", d, "-e", d + "/error.log", "-c", conf.string()},
                                   dir, "nginx");
  const auto until = clock_type::now() + 10s;
  while (clock_type::now() < until && s.proc->running()) {
    if (http_probe(s.port)) {
      std::this_thread::sleep_for(300ms);  // the probe's connection closed and forgotten
      const pid_t pid = s.proc->pid;
      const int idle_fds = open_fds(pid);
      s.connections = [pid, idle_fds] { return open_fds(pid) - idle_fds; };
      return s;
    }
    std::this_thread::sleep_for(20ms);
  }
  s.proc->stop();
  why_not = "did not start: " + read_text(fs::path(d) / "error.log") + read_text(s.proc->err);
  while (!why_not.empty() && why_not.back() == '\n') why_not.pop_back();
  return std::nullopt;
}

void close_all(std::vector<int>& fds) {
  for (int fd : fds) ::close(fd);
  fds.clear();
}

struct measurement {
  double bytes_per_conn = 0;
  std::uint64_t baseline = 0, loaded = 0;
  int procs = 0;
};

// Warm-up, baseline, N idle connections, RSS; then closes them and stops the server.
std::optional<measurement> measure(server& s, int n) {
  std::vector<int> fds;
  fds.reserve(static_cast<std::size_t>(n));
  auto fail = [&](const char* what) -> std::optional<measurement> {
    std::fprintf(stderr, "bench_idle_rss: %s: %s (server reports %d)\n", s.name.c_str(), what, s.connections());
    close_all(fds);
    s.proc->stop();
    return std::nullopt;
  };

  for (int i = 0; i < std::min(warmup_conns, n); ++i) {
    int fd = connect_one(s.port);
    if (fd < 0) return fail("warm-up connect failed");
    fds.push_back(fd);
    if (s.http && !(s.partial_head ? send_partial_head(fd) : http_exchange(fd))) return fail("warm-up request failed");
    if (s.ws && !ws_exchange(fd, *s.ws)) return fail("warm-up WebSocket exchange failed");
  }
  if (!wait_for_count(s, static_cast<int>(fds.size()), 20s)) return fail("warm-up connections not reported");
  close_all(fds);
  if (!wait_for_count(s, 0, 20s)) return fail("warm-up connections not closed");
  std::this_thread::sleep_for(300ms);  // let the processes settle (freed memory, timers)

  measurement m;
  m.baseline = tree_rss(s.proc->pid);
  const auto t0 = clock_type::now();
  for (int i = 0; i < n; ++i) {
    int fd = connect_one(s.port);
    if (fd < 0) {
      std::fprintf(stderr, "bench_idle_rss: %s: connect %d failed: %s\n", s.name.c_str(), i, std::strerror(errno));
      return fail("connect failed");
    }
    fds.push_back(fd);
    if (s.http && !(s.partial_head ? send_partial_head(fd) : http_exchange(fd))) {
      std::fprintf(stderr, "bench_idle_rss: %s: request on connection %d failed\n", s.name.c_str(), i);
      return fail("request failed");
    }
    if (s.ws && !ws_exchange(fd, *s.ws)) {
      std::fprintf(stderr, "bench_idle_rss: %s: WebSocket exchange on connection %d failed\n", s.name.c_str(), i);
      return fail("WebSocket exchange failed");
    }
  }
  if (!wait_for_count(s, n, 60s)) return fail("connections not reported");
  std::this_thread::sleep_for(300ms);  // accepted and counted is not quite registered and parked
  m.loaded = tree_rss(s.proc->pid, &m.procs);
  const double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  m.bytes_per_conn = (static_cast<double>(m.loaded) - static_cast<double>(m.baseline)) / n;
  std::printf("  %-14s %d processes, baseline %.1f MiB, with %d connections %.1f MiB (%.1f s) -> %.0f B/connection\n",
              s.name.c_str(), m.procs, m.baseline / 1048576.0, n, m.loaded / 1048576.0, secs, m.bytes_per_conn);

  close_all(fds);
  int rc = s.proc->stop(10s);
  if (rc != 0) std::fprintf(stderr, "bench_idle_rss: %s: server exited with %d\n", s.name.c_str(), rc);
  return m;
}

}  // namespace

int main() {
  ::signal(SIGPIPE, SIG_IGN);
  const auto self = fs::read_symlink("/proc/self/exe").parent_path();
  const auto swactor = swactor::bench::find_bin("bench_idle_rss", "SWACTOR_BIN",
                                                {self / ".." / ".." / "apps" / "swactor"}, "swactor");
  const auto echo =
      swactor::bench::find_bin("bench_idle_rss", "SWACTOR_TEST_ECHO",
                               {self / ".." / "support" / "swactor_test_echo", self / "swactor_test_echo"},
                               "swactor_test_echo");
  int n = 10000;
  if (const char* s = std::getenv("SWACTOR_BENCH_IDLE_CONNS"); s && std::atoi(s) > 0) n = std::atoi(s);

  // The client and the server (which inherits this limit) each hold N descriptors.
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < static_cast<rlim_t>(n) + fd_slack) {
    const int lowered = rl.rlim_max > fd_slack + 100 ? static_cast<int>(rl.rlim_max - fd_slack) : 100;
    std::printf("bench_idle_rss: RLIMIT_NOFILE hard limit is %llu: measuring %d connections instead of %d\n",
                static_cast<unsigned long long>(rl.rlim_max), lowered, n);
    n = lowered;
  }
  rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? static_cast<rlim_t>(n) + fd_slack : rl.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) {
    std::fprintf(stderr, "bench_idle_rss: cannot raise RLIMIT_NOFILE: %s\n", std::strerror(errno));
    return 1;
  }

  char tmpl[] = "/tmp/bench-idle-rss-XXXXXX";
  if (!::mkdtemp(tmpl)) return 1;
  const fs::path dir = tmpl;
  std::printf("bench_idle_rss: %d idle TCP connections per server (after %d connected and closed once)\n", n,
              warmup_conns);

  std::optional<measurement> ref;
  if (auto s = start_reference(echo, dir)) ref = measure(*s, n);
  if (!ref) return 1;

  swactor::bench::report rep("bench_idle_rss");
  const std::string ref_name = "swactor_test_echo (epoll, 1 thread)";
  rep.add({"idle RSS per connection: swactor_test_echo (reference)", ref->bytes_per_conn, "B/conn", std::nullopt, "",
           std::nullopt});
  int status = 0;
  const char* only_env = std::getenv("SWACTOR_BENCH_IDLE_ONLY");
  const std::string only = only_env ? only_env : "";
  auto wanted = [&](const std::string& name) { return name.rfind(only, 0) == 0; };
  struct variant {
    std::string name, metric, keys;
  };
  for (const auto& v : std::vector<variant>{
           {"base_2", "idle RSS per connection: base mode, 2 workers", "mode = \"base\"\nworkers = 2\n"},
           {"process_1r_2w", "idle RSS per connection: process, 1 reactor, 2 workers",
            "mode = \"process\"\nworkers = 2\nreactor_threads = 1\n"}}) {
    if (!wanted(v.name)) continue;
    std::string why;
    auto s = start_swactor(swactor, dir, v.name, v.keys, n + 1000, why);
    std::optional<measurement> m;
    if (s) m = measure(*s, n);
    else std::printf("  %s: skipped: %s\n", v.name.c_str(), why.c_str());
    if (!m) {
      rep.add({v.metric + " (failed)", 0, "B/conn", std::nullopt, "", std::nullopt});
      status = 1;
      continue;
    }
    rep.add({v.metric, m->bytes_per_conn, "B/conn", ref->bytes_per_conn, ref_name, std::nullopt});
  }

  // HTTP: idle keep-alive connections after one request each, against nginx.
  const char* nginx_env = std::getenv("NGINX");
  const std::string nginx = nginx_env && *nginx_env ? nginx_env : "/usr/sbin/nginx";
  std::optional<measurement> http_ref;
  if (wanted("http")) {
    if (::access(nginx.c_str(), X_OK) != 0) {
      std::printf("  nginx: skipped: %s not installed\n", nginx.c_str());
    } else {
      std::string why;
      if (auto s = start_nginx(nginx, dir, n + 1000, why)) http_ref = measure(*s, n);
      else std::printf("  nginx: skipped: %s\n", why.c_str());
    }
    rep.add({"idle HTTP keep-alive RSS per connection: nginx (reference)" + std::string(http_ref ? "" : " (skipped)"),
             http_ref ? http_ref->bytes_per_conn : 0, "B/conn", std::nullopt, "", std::nullopt});
  }
  for (const auto& v : std::vector<variant>{
           {"http_base_1", "idle HTTP keep-alive RSS per connection: base, 1 worker", "mode = \"base\"\nworkers = 1\n"},
           {"http_process_1r_1w", "idle HTTP keep-alive RSS per connection: process, 1 reactor, 1 worker",
            "mode = \"process\"\nworkers = 1\nreactor_threads = 1\n"}}) {
    if (!wanted(v.name)) continue;
    std::string why;
    auto s = start_swactor(swactor, dir, v.name, v.keys, n + 1000, why, true);
    std::optional<measurement> m;
    if (s) m = measure(*s, n);
    else std::printf("  %s: skipped: %s\n", v.name.c_str(), why.c_str());
    // Not started is expected while the http listener is being built: skipped, not failed.
    if (!m) {
      rep.add({v.metric + (s ? " (failed)" : " (skipped: did not start)"), 0, "B/conn", std::nullopt, "", std::nullopt});
      if (s) status = 1;
      continue;
    }
    rep.add({v.metric, m->bytes_per_conn, "B/conn",
             http_ref ? std::optional<double>(http_ref->bytes_per_conn) : std::nullopt, "nginx", std::nullopt});
  }

  // Slow clients: connections that sent part of a head (HTTP keeps it unconsumed until the
  // head is complete; such a connection must cost what it sent, not a read buffer).
  for (const auto& v : std::vector<variant>{
           {"http_partial_base_1", "RSS per connection with a partial HTTP head: base, 1 worker",
            "mode = \"base\"\nworkers = 1\n"},
           {"http_partial_process_1r_1w", "RSS per connection with a partial HTTP head: process, 1 reactor, 1 worker",
            "mode = \"process\"\nworkers = 1\nreactor_threads = 1\n"}}) {
    if (!wanted(v.name)) continue;
    std::string why;
    auto s = start_swactor(swactor, dir, v.name, v.keys, n + 1000, why, true, std::nullopt, "",
                           "header_timeout = \"300s\"\n");
    std::optional<measurement> m;
    if (s) {
      s->partial_head = true;
      m = measure(*s, n);
    } else {
      std::printf("  %s: skipped: %s\n", v.name.c_str(), why.c_str());
    }
    if (!m) {
      rep.add({v.metric + (s ? " (failed)" : " (skipped: did not start)"), 0, "B/conn", std::nullopt, "", std::nullopt});
      if (s) status = 1;
      continue;
    }
    rep.add({v.metric, m->bytes_per_conn, "B/conn", std::nullopt, "", std::nullopt});
  }

  // WebSocket: idle upgraded connections after one message each (see the top of this file).
  struct ws_variant {
    std::string name, metric, keys;
    ws_offer offer;
    std::string options;
  };
  for (const auto& v : std::vector<ws_variant>{
           {"ws_base_1", "idle WebSocket RSS per connection: base, 1 worker", "mode = \"base\"\nworkers = 1\n",
            ws_offer::none, ""},
           {"ws_process_1r_1w", "idle WebSocket RSS per connection: process, 1 reactor, 1 worker",
            "mode = \"process\"\nworkers = 1\nreactor_threads = 1\n", ws_offer::none, ""},
           {"ws_deflate_base_1", "idle WebSocket RSS per connection: base, deflate", "mode = \"base\"\nworkers = 1\n",
            ws_offer::deflate, ""},
           {"ws_deflate_nct_base_1", "idle WebSocket RSS per connection: base, deflate, no_context_takeover",
            "mode = \"base\"\nworkers = 1\n", ws_offer::deflate_no_context, "no_context_takeover = true"},
           {"ws_deflate_nct_browser_base_1",
            "idle WebSocket RSS per connection: base, deflate, no_context_takeover, browser-style offer",
            "mode = \"base\"\nworkers = 1\n", ws_offer::deflate, "no_context_takeover = true"}}) {
    if (!wanted(v.name)) continue;
    std::string why;
    auto s = start_swactor(swactor, dir, v.name, v.keys, n + 1000, why, false, v.offer, v.options);
    std::optional<measurement> m;
    if (s) m = measure(*s, n);
    else std::printf("  %s: skipped: %s\n", v.name.c_str(), why.c_str());
    if (!m) {
      rep.add({v.metric + " (failed)", 0, "B/conn", std::nullopt, "", std::nullopt});
      status = 1;
      continue;
    }
    rep.add({v.metric, m->bytes_per_conn, "B/conn", ref->bytes_per_conn, ref_name, std::nullopt});
  }
  std::printf("target (issue 8): <= 1024 B/connection for swactor; (issue 12) <= 1024 B per idle WebSocket "
              "without deflate\n");
  rep.finish();
  std::error_code ec;
  fs::remove_all(dir, ec);
  return status;
}
