#include "harness.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace swactor::testing {

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

namespace {

std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// PATH lookup done before fork, so the child only calls async-signal-safe functions.
std::string resolve_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  std::stringstream path(env_or("PATH", "/usr/local/bin:/usr/bin:/bin"));
  std::string dir;
  while (std::getline(path, dir, ':')) {
    auto candidate = fs::path(dir.empty() ? "." : dir) / name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  return name;
}

std::uint16_t free_port(int type) {
  int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    throw std::runtime_error("bind failed");
  }
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace

#ifndef SWACTOR_BIN
#define SWACTOR_BIN "swactor"
#endif
#ifndef SWACTOR_TEST_ECHO
#define SWACTOR_TEST_ECHO "swactor_test_echo"
#endif

std::string swactor_bin() { return env_or("SWACTOR_BIN", SWACTOR_BIN); }
std::string echo_server_bin() { return env_or("SWACTOR_TEST_ECHO", SWACTOR_TEST_ECHO); }

// -- files ---------------------------------------------------------------------------------

temp_dir::temp_dir(std::string_view prefix) {
  std::string tmpl = (fs::path(env_or("TMPDIR", "/tmp")) / (std::string(prefix) + "-XXXXXX")).string();
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed: " + tmpl);
  path_ = tmpl;
}

temp_dir::temp_dir(temp_dir&& other) noexcept : path_(std::move(other.path_)) {
  other.path_.clear();
}

temp_dir::~temp_dir() {
  if (path_.empty()) return;
  std::error_code ec;
  fs::remove_all(path_, ec);
}

fs::path temp_dir::write(std::string_view name, std::string_view content) const {
  auto p = path_ / name;
  write_file(p, content);
  return p;
}

void write_file(const fs::path& p, std::string_view content) {
  if (p.has_parent_path()) fs::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  if (!out) throw std::runtime_error("cannot write " + p.string());
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return {};
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::uint16_t free_tcp_port() { return free_port(SOCK_STREAM); }
std::uint16_t free_udp_port() { return free_port(SOCK_DGRAM); }

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string line;
  while (std::getline(ss, line)) out.push_back(line);
  return out;
}

// -- process -------------------------------------------------------------------------------

process::process(std::vector<std::string> argv, spawn_options opts) {
  if (argv.empty()) throw std::invalid_argument("process: empty argv");
  static std::atomic<unsigned> counter{0};
  fs::path dir = opts.output_dir;
  if (dir.empty()) {
    own_dir_.emplace("swactor-proc");
    dir = own_dir_->path();
  }
  const auto base = fs::path(argv[0]).filename().string() + "-" + std::to_string(getpid()) + "-" +
                    std::to_string(counter++);
  out_path_ = dir / (base + ".out");
  err_path_ = dir / (base + ".err");

  // Everything the child needs is prepared here: after fork only async-signal-safe calls.
  const std::string program = resolve_program(argv[0]);
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) {
    std::string entry(*e);
    const auto name = entry.substr(0, entry.find('='));
    bool overridden = false;
    for (auto& o : opts.env)
      if (o.substr(0, o.find('=')) == name) overridden = true;
    if (!overridden) env_strings.push_back(std::move(entry));
  }
  for (auto& o : opts.env) env_strings.push_back(o);
  std::vector<char*> cenv;
  for (auto& e : env_strings) cenv.push_back(e.data());
  cenv.push_back(nullptr);

  const int out_fd = open(out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int err_fd = open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (out_fd < 0 || err_fd < 0 || null_fd < 0) throw std::runtime_error("process: cannot open output files");
  const std::string cwd = opts.cwd.string();
  const pid_t parent = getpid();

  // An exec failure is reported through a close-on-exec pipe: EOF means exec succeeded.
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) throw std::runtime_error("process: pipe failed");

  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("process: fork failed");
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // the parent died before prctl
    dup2(null_fd, 0);
    dup2(out_fd, 1);
    dup2(err_fd, 2);
    // The child starts with default signal handling and nothing blocked.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    ::signal(SIGINT, SIG_DFL);
    if (!cwd.empty() && chdir(cwd.c_str()) != 0) {
      int e = errno;
      (void)!write(report[1], &e, sizeof e);
      _exit(127);
    }
    execve(program.c_str(), cargv.data(), cenv.data());
    int e = errno;
    (void)!write(report[1], &e, sizeof e);
    _exit(127);
  }
  setpgid(pid, pid);  // also from the parent, so the group exists before we might kill it
  close(out_fd);
  close(err_fd);
  close(null_fd);
  close(report[1]);
  int child_errno = 0;
  ssize_t n;
  do {
    n = read(report[0], &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  close(report[0]);
  pid_ = pid;
  if (n > 0) {
    reap_blocking();
    pid_ = -1;
    throw std::runtime_error("process: cannot start " + program + ": " + std::strerror(child_errno));
  }
}

process::process(process&& other) noexcept
    : own_dir_(std::move(other.own_dir_)),
      out_path_(std::move(other.out_path_)),
      err_path_(std::move(other.err_path_)),
      pid_(other.pid_),
      status_(other.status_) {
  other.pid_ = -1;
  other.own_dir_.reset();
}

process::~process() {
  if (pid_ <= 0) return;
  if (!status_) {
    kill();
  } else {
    // The child is gone; processes it left in its group go too (pids are not reused
    // while the group exists).
    ::kill(-pid_, SIGKILL);
  }
}

void process::reap_blocking() {
  int st = 0;
  while (waitpid(pid_, &st, 0) < 0) {
    if (errno != EINTR) {
      status_ = -1;
      return;
    }
  }
  status_ = decode_status(st);
}

bool process::running() {
  if (pid_ <= 0 || status_) return false;
  int st = 0;
  pid_t r = waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = decode_status(st);
    return false;
  }
  return r == 0;
}

std::optional<int> process::wait(duration timeout) {
  const auto until = clock_type::now() + timeout;
  while (running()) {
    if (clock_type::now() >= until) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return status_;
}

bool process::signal(int sig) {
  if (pid_ <= 0 || status_) return false;
  return ::kill(pid_, sig) == 0;
}

int process::kill() {
  if (pid_ <= 0) return -1;
  if (!status_) {
    ::kill(-pid_, SIGKILL);  // the whole group: workers the child started die too
    ::kill(pid_, SIGKILL);
    reap_blocking();
  }
  return *status_;
}

int process::terminate(duration grace) {
  if (pid_ <= 0) return -1;
  if (status_) return *status_;
  ::kill(pid_, SIGTERM);
  if (auto st = wait(grace)) {
    ::kill(-pid_, SIGKILL);  // stragglers of the group, if any
    return *st;
  }
  return kill();
}

std::string process::stdout_text() const { return read_file(out_path_); }
std::string process::stderr_text() const { return read_file(err_path_); }

std::optional<std::vector<std::string>> process::wait_for_line(const std::regex& re,
                                                               duration timeout) {
  const auto until = clock_type::now() + timeout;
  for (;;) {
    const bool alive = running();  // before reading: a final read after exit sees everything
    const auto text = stdout_text();
    std::size_t start = 0;
    for (std::size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1) {
      const std::string line = text.substr(start, nl - start);
      std::smatch m;
      if (std::regex_search(line, m, re)) {
        std::vector<std::string> groups;
        for (const auto& g : m) groups.push_back(g.str());
        return groups;
      }
    }
    if (!alive || clock_type::now() >= until) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::optional<std::string> process::wait_for(const std::string& pattern, duration timeout) {
  auto m = wait_for_line(std::regex(pattern), timeout);
  if (!m) return std::nullopt;
  return m->size() > 1 ? (*m)[1] : (*m)[0];
}

run_result run(std::vector<std::string> argv, duration timeout, spawn_options opts) {
  const auto t0 = clock_type::now();
  process p(std::move(argv), std::move(opts));
  run_result r;
  if (auto st = p.wait(timeout)) {
    r.exit_code = *st;
  } else {
    r.timed_out = true;
    r.exit_code = p.kill();
  }
  r.elapsed_s = std::chrono::duration<double>(clock_type::now() - t0).count();
  r.out = p.stdout_text();
  r.err = p.stderr_text();
  return r;
}

}  // namespace swactor::testing
