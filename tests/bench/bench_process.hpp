#pragma once
// Helpers for benchmark programs that start servers and clients as separate processes:
// finding the binaries, free ports, and a child process in its own process group.

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

namespace swactor::bench {

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

// $env if set, else the first candidate that exists; exits when there is none.
inline std::string find_bin(const char* program, const char* env, const std::vector<fs::path>& candidates,
                            const char* what) {
  if (const char* e = std::getenv(env); e && *e) return fs::absolute(e).string();
  for (const auto& p : candidates)
    if (fs::exists(p)) return fs::canonical(p).string();
  std::fprintf(stderr, "%s: %s not found; set %s\n", program, what, env);
  std::exit(1);
}

inline std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Every process under `root` (inclusive), by ppid from /proc/*/stat.
inline std::vector<pid_t> process_tree(pid_t root) {
  std::multimap<pid_t, pid_t> kids;
  if (DIR* d = ::opendir("/proc")) {
    while (dirent* e = ::readdir(d)) {
      char* end = nullptr;
      long pid = std::strtol(e->d_name, &end, 10);
      if (*end != '\0' || pid <= 0) continue;
      auto stat = read_text(fs::path("/proc") / e->d_name / "stat");
      // The command name may hold spaces and parentheses: ppid is the 2nd field after the last ')'.
      auto rp = stat.rfind(')');
      if (rp == std::string::npos) continue;
      char state = 0;
      int ppid = 0;
      if (std::sscanf(stat.c_str() + rp + 1, " %c %d", &state, &ppid) == 2)
        kids.emplace(static_cast<pid_t>(ppid), static_cast<pid_t>(pid));
    }
    ::closedir(d);
  }
  std::vector<pid_t> out{root};
  for (std::size_t i = 0; i < out.size(); ++i) {
    auto [b, e] = kids.equal_range(out[i]);
    for (auto it = b; it != e; ++it) out.push_back(it->second);
  }
  return out;
}

// CPU time (every thread) of the tree under `root`, in seconds, user and kernel apart
// (utime, stime of /proc/PID/stat). Children that exited and were reaped are not in it: take
// it while the servers run.
struct cpu_times {
  double user = 0, kernel = 0;
  double total() const noexcept { return user + kernel; }
};
inline cpu_times tree_cpu_times(pid_t root) {
  const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
  cpu_times t;
  for (pid_t p : process_tree(root)) {
    auto stat = read_text(fs::path("/proc") / std::to_string(p) / "stat");
    auto rp = stat.rfind(')');
    if (rp == std::string::npos) continue;
    // Fields after the command: state(3) ... utime(14) stime(15).
    unsigned long long ut = 0, st = 0;
    if (std::sscanf(stat.c_str() + rp + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2) {
      t.user += static_cast<double>(ut) / tick;
      t.kernel += static_cast<double>(st) / tick;
    }
  }
  return t;
}
inline double tree_cpu_seconds(pid_t root) { return tree_cpu_times(root).total(); }

inline int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// The path of `program` in $PATH ("" when it is not there).
inline std::string which(const char* program) {
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/bin:/bin";
  for (std::size_t at = 0; at <= p.size();) {
    auto colon = p.find(':', at);
    if (colon == std::string::npos) colon = p.size();
    const auto cand = fs::path(p.substr(at, colon - at)) / program;
    if (::access(cand.c_str(), X_OK) == 0) return cand.string();
    at = colon + 1;
  }
  return {};
}

// $name if set and not empty, else `fallback`.
inline std::string env_or(const char* name, const std::string& fallback) {
  const char* e = std::getenv(name);
  return e && *e ? std::string(e) : fallback;
}

// A blocking TCP connection to 127.0.0.1:port; -1 when it fails.
inline int connect_loopback(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Whether `request` sent on 127.0.0.1:port is answered, within 200 ms, with bytes that start
// with `prefix` (a server is up and speaks the protocol).
inline bool probe_reply(int port, std::string_view request, std::string_view prefix) {
  int fd = connect_loopback(port);
  if (fd < 0) return false;
  timeval tv{0, 200000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[32] = {};
  const bool ok = ::write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size()) &&
                  ::read(fd, buf, sizeof buf) >= static_cast<ssize_t>(prefix.size()) &&
                  std::string_view(buf, prefix.size()) == prefix;
  ::close(fd);
  return ok;
}

// argv behind `taskset -c cpu` when pinning is on.
inline std::vector<std::string> pinned(bool pin, const std::string& taskset, int cpu, std::vector<std::string> argv) {
  if (!pin) return argv;
  argv.insert(argv.begin(), {taskset, "-c", std::to_string(cpu)});
  return argv;
}

// A command line for the log ('' for empty arguments).
// A self-signed P-256 certificate for localhost in `dir`: tls.key and tls.pem (openssl req).
inline bool make_test_certificate(const fs::path& dir) {
  const std::string cmd = "cd '" + dir.string() +
                          "' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
                          " -keyout tls.key -out tls.pem -days 2 -subj /CN=localhost >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

inline std::string join(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) out += (out.empty() ? "" : " ") + (a.empty() ? std::string("''") : a);
  return out;
}

// A child process with stdout/stderr in files, in its own process group; killed (group)
// and reaped on destruction.
struct child {
  pid_t pid = -1;
  fs::path out, err;
  std::optional<int> status;
  rusage usage{};  // the child's own CPU time, once it has exited and been reaped

  child(const std::vector<std::string>& argv, const fs::path& dir, const std::string& name) {
    out = dir / (name + ".out");
    err = dir / (name + ".err");
    pid = ::fork();
    if (pid == 0) {
      ::setpgid(0, 0);
      int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int n = ::open("/dev/null", O_RDONLY);
      ::dup2(n, 0);
      ::dup2(o, 1);
      ::dup2(e, 2);
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    ::setpgid(pid, pid);
  }
  child(const child&) = delete;
  child& operator=(const child&) = delete;
  ~child() {
    if (pid > 0 && !status) {
      ::kill(-pid, SIGKILL);
      int st = 0;
      ::waitpid(pid, &st, 0);
    }
  }
  // User + system CPU seconds of the exited child.
  double cpu_seconds() const {
    auto s = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) + tv.tv_usec / 1e6; };
    return s(usage.ru_utime) + s(usage.ru_stime);
  }
  bool running() {
    if (status) return false;
    int st = 0;
    if (::wait4(pid, &st, WNOHANG, &usage) == pid) {
      status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      return false;
    }
    return true;
  }
  std::optional<int> wait(clock_type::duration timeout) {
    using namespace std::chrono_literals;
    const auto until = clock_type::now() + timeout;
    while (running() && clock_type::now() < until) std::this_thread::sleep_for(5ms);
    return status;
  }
  // Waits until `text` appears `count` times in stdout/stderr (or the process exits).
  bool wait_text(const std::string& text, int count, bool in_stderr, clock_type::duration timeout) {
    using namespace std::chrono_literals;
    const auto until = clock_type::now() + timeout;
    for (;;) {
      auto s = read_text(in_stderr ? err : out);
      int n = 0;
      for (std::size_t at = 0; (at = s.find(text, at)) != std::string::npos; at += text.size()) ++n;
      if (n >= count) return true;
      if (!running() || clock_type::now() >= until) return false;
      std::this_thread::sleep_for(10ms);
    }
  }
  // SIGTERM to the process, then SIGKILL to its group (what it left behind, or all of it
  // when it did not stop within `grace`).
  int stop(clock_type::duration grace = std::chrono::seconds(5)) {
    using namespace std::chrono_literals;
    if (status) return *status;
    ::kill(pid, SIGTERM);
    if (auto st = wait(grace)) {
      ::kill(-pid, SIGKILL);
      return *st;
    }
    ::kill(-pid, SIGKILL);
    return wait(2s).value_or(-1);
  }
};

}  // namespace swactor::bench
