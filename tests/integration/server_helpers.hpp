#pragma once
// Helpers for the server integration tests (test_server_*.cpp): a real `swactor run` with a
// generated app.toml in a temp dir, its stats, a checked stop, and small blocking socket
// clients with timeouts.
//
//   server_under_test srv(R"([[listen]] url = "tcp://127.0.0.1:{port}" module = "echo")");
//   auto c = connect_tcp("127.0.0.1", srv.port);  ...
//   srv.stop_and_check();   // SIGTERM, exit code 0, no worker / task worker pid left alive
//
// In the config text given to server_under_test, {port} {port2} {udp} {dir} are replaced by a
// free TCP port, a second free TCP port, a free UDP port and the temp dir.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "harness.hpp"

namespace swactor::testing::server {

// A `probe` module on {port}, line protocol (eof "\n"): the usual listener of tests that
// drive the module API from outside.
inline constexpr const char* kProbe = R"(
[[listen]]
url = "tcp://127.0.0.1:{port}"
module = "probe"
framing = { type = "eof", delimiter = "\n" }
)";

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using json = nlohmann::json;

inline void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (std::size_t at = 0; (at = s.find(from, at)) != std::string::npos; at += to.size())
    s.replace(at, from.size(), to);
}

inline bool pid_alive(pid_t pid) {
  if (pid <= 0) return false;
  if (::kill(pid, 0) != 0) return errno != ESRCH;
  // A zombie is not running any more.
  std::ifstream st("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(st, line))
    if (line.rfind("State:", 0) == 0) return line.find('Z') == std::string::npos;
  return false;
}

// A /proc/PID/status field in KiB ("VmRSS", "VmHWM"; 0 when unknown).
inline long status_kib(pid_t pid, const std::string& field) {
  std::ifstream st("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(st, line))
    if (line.rfind(field + ":", 0) == 0) return std::atol(line.c_str() + field.size() + 1);
  return 0;
}
// VmRSS of a process in KiB (0 when unknown).
inline long rss_kib(pid_t pid) { return status_kib(pid, "VmRSS"); }

// -- the server -----------------------------------------------------------------------

class server_under_test {
 public:
  // `server_keys`: lines for the [server] table; `rest`: listeners and modules.
  explicit server_under_test(const std::string& server_keys, std::string rest)
      : dir("swactor-srv") {
    pid_file = dir.file("swactor.pid").string();
    // The ports are picked free before the start, so another process (a parallel test's
    // client, which may get any ephemeral port, on 127.0.0.1 or ::1) can take one before the
    // server binds it: then the server refuses to start, and new ports are picked.
    for (int attempt = 1;; ++attempt) {
      port = free_tcp_port();
      port2 = free_tcp_port();
      while (port2 == port) port2 = free_tcp_port();
      port3 = free_tcp_port();
      while (port3 == port || port3 == port2) port3 = free_tcp_port();
      udp_port = free_udp_port();
      std::string text = "[server]\n" + server_keys + "\npid_file = \"" + pid_file + "\"\nadmin_socket = \"" +
                         dir.file("admin.sock").string() + "\"\n\n" + rest;
      replace_all(text, "{port}", std::to_string(port));
      replace_all(text, "{port2}", std::to_string(port2));
      replace_all(text, "{port3}", std::to_string(port3));
      replace_all(text, "{udp}", std::to_string(udp_port));
      replace_all(text, "{dir}", dir.path().string());
      config_text = text;
      config = dir.write("app.toml", text).string();
      proc.emplace(std::vector<std::string>{swactor_bin(), "run", config});
      INFO("config:\n" << text);
      started = wait_log("swactor master started", 10s);
      if (started) break;
      if (attempt < 3 && proc->stderr_text().find("Address already in use") != std::string::npos) continue;
      FAIL("server did not start; stderr:\n" << proc->stderr_text());
    }
    // Workers announce themselves once they serve.
    wait_workers_ready(10s);
  }
  ~server_under_test() {
    // Normally stopped by stop_and_check(); otherwise the harness kills the process group.
  }

  std::string log() const { return proc->stderr_text(); }

  // Waits until the log matches `pattern` (ECMAScript regex, searched in the whole text).
  bool wait_log(const std::string& pattern, duration timeout) const {
    std::regex re(pattern);
    const auto until = clock_type::now() + timeout;
    for (;;) {
      if (std::regex_search(log(), re)) return true;
      if (clock_type::now() >= until) return false;
      std::this_thread::sleep_for(10ms);
    }
  }
  std::size_t count_log(const std::string& pattern) const {
    std::regex re(pattern);
    auto text = log();
    return static_cast<std::size_t>(
        std::distance(std::sregex_iterator(text.begin(), text.end(), re), std::sregex_iterator()));
  }

  // `swactor stats --pid-file` parsed; null json on failure.
  json stats() const {
    auto r = run({swactor_bin(), "stats", "--pid-file", pid_file}, 5s);
    if (r.exit_code != 0) return json();
    try {
      return json::parse(r.out);
    } catch (...) {
      return json();
    }
  }
  std::vector<pid_t> worker_pids(const json& s, const char* which = "workers") const {
    std::vector<pid_t> out;
    if (s.is_object() && s.contains(which))
      for (auto& w : s.at(which)) out.push_back(w.at("pid").get<pid_t>());
    return out;
  }
  std::vector<pid_t> all_pids(const json& s) const {
    auto a = worker_pids(s, "workers");
    auto b = worker_pids(s, "task_workers");
    a.insert(a.end(), b.begin(), b.end());
    return a;
  }

  // Waits until every worker and task worker reports a state other than starting/empty.
  bool wait_workers_ready(duration timeout) {
    const auto until = clock_type::now() + timeout;
    for (;;) {
      auto s = stats();
      bool ok = s.is_object();
      if (ok)
        for (const char* k : {"workers", "task_workers"})
          for (auto& w : s.at(k)) {
            auto st = w.at("state").get<std::string>();
            if (st != "idle" && st != "busy") ok = false;
            if (w.at("pid").get<int>() <= 0) ok = false;
          }
      if (ok) return true;
      if (clock_type::now() >= until) return false;
      std::this_thread::sleep_for(20ms);
    }
  }

  // SIGTERM; the master must exit with 0 and leave no worker or task worker behind.
  void stop_and_check(duration timeout = 10s) {
    auto s = stats();
    auto pids = all_pids(s);
    for (auto p : extra_pids) pids.push_back(p);
    REQUIRE(proc->signal(SIGTERM));
    auto code = proc->wait(timeout);
    INFO("log:\n" << tail(log()));
    REQUIRE(code);
    CHECK(*code == 0);
    // The master waits for its children before it exits; allow a moment for the kernel.
    const auto until = clock_type::now() + 2s;
    for (auto p : pids) {
      while (pid_alive(p) && clock_type::now() < until) std::this_thread::sleep_for(10ms);
      INFO("pid " << p);
      CHECK_FALSE(pid_alive(p));
    }
    CHECK_FALSE(std::filesystem::exists(pid_file));
    // No child died of a crash while the test ran (the master restarts it, so nothing else
    // would show it). A test that crashes a process on purpose sets allow_crashes.
    if (!allow_crashes)
      CHECK(count_log("(exited unexpectedly|finished): killed by signal [0-9]+ \\((SIGSEGV|SIGABRT|SIGILL|SIGBUS|SIGFPE)\\)") == 0);
  }

  static std::string tail(const std::string& text, std::size_t n = 6000) {
    return text.size() <= n ? text : "..." + text.substr(text.size() - n);
  }

  temp_dir dir;
  std::uint16_t port = 0, port2 = 0, port3 = 0, udp_port = 0;
  std::string pid_file, config, config_text;
  std::optional<process> proc;
  bool started = false;
  bool allow_crashes = false;  // stop_and_check: a child killed by SIGSEGV/SIGABRT/... is expected
  std::vector<pid_t> extra_pids;  // pids seen earlier (e.g. before a reload) to check at the end
};

// -- blocking socket clients -------------------------------------------------------------

// An owned fd with a receive timeout.
class conn {
 public:
  conn() = default;
  explicit conn(int fd) : fd_(fd) {}
  ~conn() { reset(); }
  conn(conn&& o) noexcept : fd_(o.fd_), buf_(std::move(o.buf_)) { o.fd_ = -1; }
  conn& operator=(conn&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = o.fd_;
      buf_ = std::move(o.buf_);
      o.fd_ = -1;
    }
    return *this;
  }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int fd() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }

  bool send_all(std::string_view data) {
    while (!data.empty()) {
      auto n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        return false;
      }
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // Reads until `pred(buffer)` gives the length of a complete item (0 = need more); returns
  // that prefix. nullopt on timeout, EOF or error.
  template <class Pred>
  std::optional<std::string> read_until(Pred pred, duration timeout) {
    const auto until = clock_type::now() + timeout;
    for (;;) {
      if (auto n = pred(buf_); n > 0) {
        std::string out = buf_.substr(0, n);
        buf_.erase(0, n);
        return out;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - clock_type::now()).count();
      if (left <= 0) return std::nullopt;
      pollfd p{fd_, POLLIN, 0};
      int r = ::poll(&p, 1, static_cast<int>(left));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return std::nullopt;
      char tmp[65536];
      auto n = ::recv(fd_, tmp, sizeof tmp, 0);
      if (n <= 0) {
        eof_ = true;
        return std::nullopt;
      }
      buf_.append(tmp, static_cast<std::size_t>(n));
    }
  }
  // One line without its "\n".
  std::optional<std::string> read_line(duration timeout = 3s) {
    auto r = read_until([](const std::string& b) -> std::size_t {
      auto nl = b.find('\n');
      return nl == std::string::npos ? 0 : nl + 1;
    }, timeout);
    if (r) r->pop_back();
    return r;
  }
  std::optional<std::string> read_exact(std::size_t n, duration timeout = 3s) {
    return read_until([n](const std::string& b) -> std::size_t { return b.size() >= n ? n : 0; }, timeout);
  }
  // Sends a line and reads the reply line.
  std::optional<std::string> ask(const std::string& line, duration timeout = 3s) {
    if (!send_all(line + "\n")) return std::nullopt;
    return read_line(timeout);
  }
  // True when the peer closed (EOF or reset) within `timeout`.
  bool wait_closed(duration timeout) {
    const auto until = clock_type::now() + timeout;
    while (clock_type::now() < until) {
      pollfd p{fd_, POLLIN, 0};
      int r = ::poll(&p, 1, 20);
      if (r <= 0) continue;
      char tmp[4096];
      auto n = ::recv(fd_, tmp, sizeof tmp, 0);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return true;
      if (n > 0) buf_.append(tmp, static_cast<std::size_t>(n));
    }
    return false;
  }
  bool eof() const noexcept { return eof_; }
  std::string& buffer() noexcept { return buf_; }

 private:
  int fd_ = -1;
  std::string buf_;
  bool eof_ = false;
};

// One WebSocket frame from a server (unmasked): its first byte and payload. nullopt when no
// frame started within `timeout`; a frame that started gets `rest` for the remaining bytes,
// since a half-read frame would put the reader out of step.
struct ws_frame {
  std::uint8_t b0 = 0;
  std::string payload;
};
inline std::optional<ws_frame> read_ws_frame(conn& c, duration timeout, duration rest = std::chrono::seconds(10)) {
  auto h = c.read_exact(2, timeout);
  if (!h) return std::nullopt;
  ws_frame f{static_cast<std::uint8_t>((*h)[0]), {}};
  std::uint64_t n = static_cast<std::uint8_t>((*h)[1]) & 0x7F;
  if (n >= 126) {
    auto ext = c.read_exact(n == 126 ? 2 : 8, rest);
    if (!ext) return std::nullopt;
    n = 0;
    for (char ch : *ext) n = (n << 8) | static_cast<std::uint8_t>(ch);
  }
  if (n == 0) return f;  // read_exact(0) would wait for a byte
  auto p = c.read_exact(static_cast<std::size_t>(n), rest);
  if (!p) return std::nullopt;
  f.payload = std::move(*p);
  return f;
}

inline conn connect_tcp(const std::string& host, std::uint16_t port) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = host.find(':') != std::string::npos ? AF_INET6 : AF_INET;
  if (family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    ::inet_pton(AF_INET, host.c_str(), &a->sin_addr);
    len = sizeof(sockaddr_in);
  } else {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    ::inet_pton(AF_INET6, host.c_str(), &a->sin6_addr);
    len = sizeof(sockaddr_in6);
  }
  int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return conn();
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    ::close(fd);
    return conn();
  }
  return conn(fd);
}

inline sockaddr_un unix_addr(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path.data(), std::min(path.size(), sizeof a.sun_path - 1));
  return a;
}

inline conn connect_unix(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  auto a = unix_addr(path);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return conn();
  }
  return conn(fd);
}

// A datagram socket bound to `bind_path` (unixgram) or to an ephemeral 127.0.0.1 port (udp).
inline conn udp_socket() {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  ::inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  return conn(fd);
}
inline bool udp_send(conn& c, std::uint16_t port, std::string_view data) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  return ::sendto(c.fd(), data.data(), data.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a) ==
         static_cast<ssize_t>(data.size());
}
inline conn unixgram_socket(const std::string& bind_path) {
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ::unlink(bind_path.c_str());
  auto a = unix_addr(bind_path);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return conn();
  }
  return conn(fd);
}
inline bool unixgram_send(conn& c, const std::string& path, std::string_view data) {
  auto a = unix_addr(path);
  return ::sendto(c.fd(), data.data(), data.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a) ==
         static_cast<ssize_t>(data.size());
}
// One datagram (nullopt on timeout).
inline std::optional<std::string> recv_datagram(conn& c, duration timeout = 3s) {
  pollfd p{c.fd(), POLLIN, 0};
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count();
  if (::poll(&p, 1, static_cast<int>(ms)) <= 0) return std::nullopt;
  std::string buf(70000, '\0');
  auto n = ::recv(c.fd(), buf.data(), buf.size(), 0);
  if (n < 0) return std::nullopt;
  buf.resize(static_cast<std::size_t>(n));
  return buf;
}

// A 4-byte big-endian length header followed by the body.
inline std::string length_frame(std::string_view body) {
  auto n = static_cast<std::uint32_t>(body.size());
  std::string out(4, '\0');
  out[0] = static_cast<char>(n >> 24);
  out[1] = static_cast<char>(n >> 16);
  out[2] = static_cast<char>(n >> 8);
  out[3] = static_cast<char>(n);
  out.append(body);
  return out;
}

// Parses "worker ID pid PID" (probe's whoami).
inline std::optional<std::pair<int, pid_t>> parse_whoami(const std::optional<std::string>& line) {
  if (!line) return std::nullopt;
  int id = -1, pid = -1;
  if (std::sscanf(line->c_str(), "worker %d pid %d", &id, &pid) != 2) return std::nullopt;
  return std::make_pair(id, static_cast<pid_t>(pid));
}

}  // namespace swactor::testing::server
