#include "swactor/ipc/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <linux/close_range.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>

#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/experimental/as_tuple.hpp>

#include "swactor/core/log.hpp"

extern char** environ;

namespace swactor::ipc {
namespace {

constexpr auto as_tuple_awaitable = asio::experimental::as_tuple(asio::use_awaitable);
constexpr const char* channel_env = "SWACTOR_CHANNEL_FD";

std::error_code sys_error(int e = errno) { return {e, std::system_category()}; }

std::error_code closed_error() { return swactor::make_error_code(swactor::errc::closed); }
std::error_code timeout_error() { return swactor::make_error_code(swactor::errc::timeout); }

// Runs `op` with a deadline unless there is none (saves a timer on the common path).
template <class T>
task<result<T>> timed(task<T> op, duration timeout) {
  if (timeout == no_timeout) co_return result<T>(co_await std::move(op));
  co_return co_await with_timeout(std::move(op), timeout);
}

// io results travel as a struct: result<std::error_code> would be ambiguous.
struct io_outcome {
  std::error_code ec;
};

bool is_eof(const std::error_code& ec) {
  return ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::broken_pipe;
}

}  // namespace

// -- exit_status --------------------------------------------------------------------------

exit_status exit_status::from_wait_status(int st) noexcept {
  exit_status s;
  if (WIFEXITED(st)) {
    s.code = WEXITSTATUS(st);
  } else if (WIFSIGNALED(st)) {
    s.signal = WTERMSIG(st);
    s.core_dumped = WCOREDUMP(st);
  }
  return s;
}

std::string exit_status::to_string() const {
  if (signal == 0) return "exit code " + std::to_string(code);
  std::string out = "killed by signal " + std::to_string(signal);
  if (const char* n = sigabbrev_np(signal)) out += std::string(" (SIG") + n + ")";
  if (core_dumped) out += ", core dumped";
  return out;
}

// -- message_channel ----------------------------------------------------------------------

struct message_channel::state {
  // A socket (not a plain descriptor) so that writes use MSG_NOSIGNAL: a dead peer is an
  // error code, not a SIGPIPE.
  asio::local::stream_protocol::socket sock;
  std::string rx;  // bytes received and not yet returned
  std::size_t max_message;
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);  // send(): is the channel still here

  state(asio::any_io_executor ex, int fd, std::size_t max)
      : sock(std::move(ex)), max_message(max) {
    std::error_code ec;
    sock.assign(asio::local::stream_protocol(), fd, ec);
    if (ec) ::close(fd);
  }

  // A complete message from rx, if there is one; errors for an oversized header.
  std::optional<result<std::string>> take() {
    if (rx.size() < 4) return std::nullopt;
    std::uint32_t len;
    std::memcpy(&len, rx.data(), 4);
    if (len > max_message) return result<std::string>(make_error_code(shm_errc::message_too_large));
    if (rx.size() < 4 + std::size_t(len)) return std::nullopt;
    std::string msg = rx.substr(4, len);
    rx.erase(0, 4 + std::size_t(len));
    return result<std::string>(std::move(msg));
  }
};

message_channel::message_channel(asio::any_io_executor ex, int fd, std::size_t max_message)
    : s_(std::make_unique<state>(std::move(ex), fd, max_message)) {}

message_channel::~message_channel() = default;

void message_channel::close() noexcept {
  std::error_code ec;
  s_->sock.close(ec);
}

bool message_channel::is_open() const noexcept { return s_->sock.is_open(); }

int message_channel::native_handle() const noexcept {
  return s_->sock.is_open() ? s_->sock.native_handle() : -1;
}

namespace {
task<io_outcome> write_frame(asio::local::stream_protocol::socket& sock, std::uint32_t len,
                             std::string_view msg) {
  std::array<asio::const_buffer, 2> bufs{asio::buffer(&len, 4), asio::buffer(msg)};
  auto [ec, n] = co_await asio::async_write(sock, bufs, as_tuple_awaitable);
  co_return io_outcome{ec};
}

task<result<std::string>> read_frame(message_channel::state* s) {
  std::array<char, 16384> buf;
  for (;;) {
    if (auto m = s->take()) co_return std::move(*m);
    if (!s->sock.is_open()) co_return closed_error();
    auto [ec, n] = co_await s->sock.async_read_some(asio::buffer(buf), as_tuple_awaitable);
    // Cancelled: the channel may be gone with its state (a destroyed process object).
    if (ec == asio::error::operation_aborted) co_return ec;
    s->rx.append(buf.data(), n);
    if (ec) {
      if (auto m = s->take()) co_return std::move(*m);
      co_return is_eof(ec) ? closed_error() : ec;
    }
  }
}
}  // namespace

task<std::error_code> message_channel::send(std::string_view msg, duration timeout) {
  if (!s_->sock.is_open()) co_return closed_error();
  if (msg.size() > s_->max_message) co_return make_error_code(shm_errc::message_too_large);
  std::weak_ptr<bool> alive = s_->alive;
  auto r = co_await timed(write_frame(s_->sock, static_cast<std::uint32_t>(msg.size()), msg),
                          timeout);
  std::error_code ec = r ? r->ec : r.error();
  if (alive.expired()) co_return ec;  // the channel went while the write waited
  if (ec) {
    // Part of a frame may be out: the stream cannot be resynchronised.
    close();
    if (is_eof(ec)) ec = closed_error();
  }
  co_return ec;
}

task<result<std::string>> message_channel::recv(duration timeout) {
  auto r = co_await timed(read_frame(s_.get()), timeout);
  if (!r) co_return r.error();
  co_return std::move(*r);
}

std::error_code message_channel::send_sync(std::string_view msg) {
  if (!s_->sock.is_open()) return closed_error();
  if (msg.size() > s_->max_message) return make_error_code(shm_errc::message_too_large);
  int fd = s_->sock.native_handle();
  auto len = static_cast<std::uint32_t>(msg.size());
  std::string frame(reinterpret_cast<const char*>(&len), 4);
  frame.append(msg);
  std::size_t off = 0;
  while (off < frame.size()) {
    ssize_t n = ::send(fd, frame.data() + off, frame.size() - off, MSG_NOSIGNAL);
    if (n >= 0) {
      off += static_cast<std::size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {  // asio may have made the socket non-blocking
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, -1);
      continue;
    }
    int e = errno;
    close();
    return e == EPIPE || e == ECONNRESET ? closed_error() : sys_error(e);
  }
  return {};
}

result<std::string> message_channel::recv_sync(duration timeout) {
  using clock = std::chrono::steady_clock;
  const auto deadline =
      timeout == no_timeout ? clock::time_point::max() : clock::now() + timeout;
  char buf[16384];
  for (;;) {
    if (auto m = s_->take()) return std::move(*m);
    if (!s_->sock.is_open()) return closed_error();
    int fd = s_->sock.native_handle();
    int ms = -1;
    if (deadline != clock::time_point::max()) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - clock::now()).count();
      if (left <= 0) return timeout_error();
      ms = static_cast<int>(std::min<long long>(left, 1 << 30));
    }
    pollfd p{fd, POLLIN, 0};
    int pr = ::poll(&p, 1, ms);
    if (pr < 0 && errno != EINTR) return sys_error();
    if (pr <= 0) continue;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      s_->rx.append(buf, static_cast<std::size_t>(n));
    } else if (n == 0) {
      return closed_error();
    } else if (errno != EINTR && errno != EAGAIN) {
      return errno == ECONNRESET ? closed_error() : sys_error();
    }
  }
}

int inherited_channel_fd() noexcept {
  const char* v = std::getenv(channel_env);
  if (!v || !*v) return -1;
  char* end = nullptr;
  long fd = std::strtol(v, &end, 10);
  if (*end != 0 || fd < 0 || fd > 1 << 20) return -1;
  return ::fcntl(static_cast<int>(fd), F_GETFD) < 0 ? -1 : static_cast<int>(fd);
}

// -- child_context ------------------------------------------------------------------------

child_context::child_context(std::size_t index, int channel_fd, std::size_t max_message)
    : index_(index), fd_(channel_fd), max_message_(max_message) {}

child_context::~child_context() = default;

asio::io_context& child_context::io() {
  if (!io_) io_ = std::make_unique<asio::io_context>();
  return *io_;
}

message_channel& child_context::channel() {
  if (!channel_) {
    if (fd_ < 0) throw std::logic_error("process started without a message channel");
    channel_ = std::make_unique<message_channel>(io().get_executor(), fd_, max_message_);
  }
  return *channel_;
}

// -- process ------------------------------------------------------------------------------

struct process::state {
  asio::any_io_executor ex;
  pid_t pid = 0;
  bool reaped = false;
  exit_status status;
  bool kill_on_destroy = true;
  std::optional<asio::posix::stream_descriptor> pidfd;
  std::optional<asio::posix::stream_descriptor> in, out;
  std::unique_ptr<message_channel> chan;
  // Without a pidfd a waiter polls on its own timer, which the state's end does not cancel:
  // it checks this first (a pidfd wait is cancelled by the descriptor's close instead).
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);

  explicit state(asio::any_io_executor e) : ex(std::move(e)) {}

  // Non-blocking reap; true once the child is gone (status cached).
  bool try_reap() noexcept {
    if (reaped) return true;
    int st = 0;
    pid_t r;
    do r = ::waitpid(pid, &st, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == pid) {
      status = exit_status::from_wait_status(st);
      reaped = true;
    } else if (r < 0) {
      // ECHILD: someone else reaped it (a waitpid(-1) elsewhere); the status is lost.
      reaped = true;
      log::warning("ipc: child {} was reaped elsewhere; exit status unknown", pid);
    }
    return reaped;
  }

  int send_signal(int sig) noexcept {
    if (pidfd && pidfd->is_open())
      return static_cast<int>(
          ::syscall(SYS_pidfd_send_signal, pidfd->native_handle(), sig, nullptr, 0));
    return ::kill(pid, sig);
  }
};

process::process(std::unique_ptr<state> s) : s_(std::move(s)) {}
process::process(process&&) noexcept = default;
process& process::operator=(process&& o) noexcept {
  if (this != &o) {
    if (s_ && s_->kill_on_destroy && !s_->reaped) kill_and_reap();
    s_ = std::move(o.s_);
  }
  return *this;
}

process::~process() {
  if (s_ && s_->kill_on_destroy && !s_->reaped) kill_and_reap();
}

pid_t process::pid() const noexcept { return s_ ? s_->pid : 0; }
bool process::running() const noexcept { return s_ && !s_->reaped; }

std::error_code process::kill(int sig) {
  if (!s_ || s_->reaped) return make_error_code(shm_errc::not_running);
  if (s_->send_signal(sig) != 0) return sys_error();
  return {};
}

exit_status process::kill_and_reap() noexcept {
  if (!s_) return {};
  if (!s_->reaped) {
    s_->send_signal(SIGKILL);
    int st = 0;
    pid_t r;
    do r = ::waitpid(s_->pid, &st, 0);
    while (r < 0 && errno == EINTR);
    if (r == s_->pid) s_->status = exit_status::from_wait_status(st);
    s_->reaped = true;
  }
  return s_->status;
}

namespace {
task<result<std::string>> read_some(asio::posix::stream_descriptor* d) {
  std::array<char, 16384> buf;
  auto [ec, n] = co_await d->async_read_some(asio::buffer(buf), as_tuple_awaitable);
  if (n > 0) co_return std::string(buf.data(), n);
  if (ec) co_return is_eof(ec) ? closed_error() : ec;
  co_return std::string();
}

task<result<std::string>> read_to_eof(asio::posix::stream_descriptor* d) {
  std::string all;
  std::array<char, 16384> buf;
  for (;;) {
    auto [ec, n] = co_await d->async_read_some(asio::buffer(buf), as_tuple_awaitable);
    all.append(buf.data(), n);
    if (ec) {
      if (is_eof(ec)) co_return all;
      co_return ec;
    }
  }
}

task<io_outcome> write_all(asio::posix::stream_descriptor* d, std::string_view data) {
  auto [ec, n] = co_await asio::async_write(*d, asio::buffer(data), as_tuple_awaitable);
  co_return io_outcome{ec};
}

task<result<exit_status>> wait_exit(process::state* s) {
  for (;;) {
    if (s->try_reap()) co_return s->status;
    if (s->pidfd && s->pidfd->is_open()) {
      auto [ec] = co_await s->pidfd->async_wait(asio::posix::descriptor_base::wait_read,
                                                as_tuple_awaitable);
      if (ec) co_return ec;
    } else {
      std::weak_ptr<bool> alive = s->alive;
      asio::steady_timer t(s->ex, std::chrono::milliseconds(10));
      auto [ec] = co_await t.async_wait(as_tuple_awaitable);
      if (ec) co_return ec;
      if (alive.expired()) co_return make_error_code(asio::error::operation_aborted);
    }
  }
}
}  // namespace

task<result<std::string>> process::read(duration timeout) {
  if (!s_ || !s_->out || !s_->out->is_open()) co_return closed_error();
  auto r = co_await timed(read_some(&*s_->out), timeout);
  if (!r) co_return r.error();
  co_return std::move(*r);
}

task<result<std::string>> process::read_all(duration timeout) {
  if (!s_ || !s_->out || !s_->out->is_open()) co_return closed_error();
  auto r = co_await timed(read_to_eof(&*s_->out), timeout);
  if (!r) co_return r.error();
  co_return std::move(*r);
}

task<std::error_code> process::write(std::string_view data, duration timeout) {
  if (!s_ || !s_->in || !s_->in->is_open()) co_return closed_error();
  auto r = co_await timed(write_all(&*s_->in, data), timeout);
  std::error_code ec = r ? r->ec : r.error();
  if (is_eof(ec)) ec = closed_error();
  co_return ec;
}

void process::close_stdin() noexcept {
  if (s_ && s_->in) {
    std::error_code ec;
    s_->in->close(ec);
  }
}

message_channel* process::channel() noexcept { return s_ ? s_->chan.get() : nullptr; }

task<std::error_code> process::send(std::string_view msg, duration timeout) {
  if (!s_ || !s_->chan) co_return closed_error();
  co_return co_await s_->chan->send(msg, timeout);
}

task<result<std::string>> process::recv(duration timeout) {
  if (!s_ || !s_->chan) co_return closed_error();
  co_return co_await s_->chan->recv(timeout);
}

task<result<exit_status>> process::wait(duration timeout) {
  if (!s_) co_return make_error_code(shm_errc::not_running);
  if (s_->try_reap()) co_return s_->status;
  auto r = co_await timed(wait_exit(s_.get()), timeout);
  if (!r) co_return r.error();
  co_return std::move(*r);
}

result<process> process::start(asio::any_io_executor ex, body fn, process_options opts,
                               std::size_t index) {
  return launch(std::move(ex), std::move(fn), {}, std::move(opts), index);
}

result<process> process::exec(asio::any_io_executor ex, std::vector<std::string> argv,
                              process_options opts) {
  if (argv.empty() || argv[0].empty()) return std::make_error_code(std::errc::invalid_argument);
  return launch(std::move(ex), nullptr, std::move(argv), std::move(opts), 0);
}

namespace {
struct fd_pair {
  int r = -1, w = -1;
  ~fd_pair() { close_both(); }
  void close_both() {
    if (r >= 0) ::close(r);
    if (w >= 0) ::close(w);
    r = w = -1;
  }
  int release_r() { return std::exchange(r, -1); }
  int release_w() { return std::exchange(w, -1); }
};

bool make_pipe(fd_pair& p) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return false;
  p.r = fds[0];
  p.w = fds[1];
  return true;
}
}  // namespace

result<process> process::launch(asio::any_io_executor ex, body fn, std::vector<std::string> argv,
                                process_options opts, std::size_t index) {
  const bool is_exec = !argv.empty();
  fd_pair chan, in, out, err;  // chan: r = parent end, w = child end
  if (opts.channel) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return sys_error();
    chan.r = sv[0];
    chan.w = sv[1];
  }
  if (opts.pipe_stdin && !make_pipe(in)) return sys_error();
  if (opts.pipe_stdout && !make_pipe(out)) return sys_error();
  if (is_exec && !make_pipe(err)) return sys_error();

  // Everything exec needs is built before fork: the child may only make async-signal-safe
  // calls (the parent can be multi-threaded).
  std::vector<char*> cargv;
  std::vector<std::string> env;
  std::vector<char*> cenv;
  if (is_exec) {
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    std::string prefix = std::string(channel_env) + "=";
    auto overridden = [&](const char* e) {
      if (std::strncmp(e, prefix.c_str(), prefix.size()) == 0) return true;
      for (const auto& x : opts.env) {
        auto eq = x.find('=');
        auto name = std::string_view(x).substr(0, eq == std::string::npos ? x.size() : eq + 1);
        if (std::strncmp(e, name.data(), name.size()) == 0) return true;
      }
      return false;
    };
    for (char** e = environ; e && *e; ++e)
      if (!overridden(*e)) env.emplace_back(*e);
    for (const auto& x : opts.env) env.push_back(x);
    if (opts.channel) env.push_back(prefix + std::to_string(chan.w));
    for (auto& e : env) cenv.push_back(e.data());
    cenv.push_back(nullptr);
  }
  const pid_t parent = ::getpid();
  std::fflush(nullptr);  // or a callable child would write the parent's buffered output again

  pid_t pid = ::fork();
  if (pid < 0) return sys_error();
  if (pid == 0) {
    // -- child ------------------------------------------------------------------------
    if (opts.die_with_parent) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(1);  // the parent died before prctl
    }
    for (int fd : opts.close_in_child) ::close(fd);
    if (chan.r >= 0) ::close(chan.r);
    if (in.w >= 0) ::close(in.w);
    if (out.r >= 0) ::close(out.r);
    if (err.r >= 0) ::close(err.r);
    if (in.r >= 0) {
      ::dup2(in.r, 0);
      if (in.r != 0) ::close(in.r);
    }
    if (out.w >= 0) {
      ::dup2(out.w, 1);
      if (opts.stderr_to_stdout) ::dup2(out.w, 2);
      if (out.w != 1 && out.w != 2) ::close(out.w);
    }
    if (is_exec) {
      sigset_t none;
      ::sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      struct sigaction dfl {};
      dfl.sa_handler = SIG_DFL;
      ::sigaction(SIGPIPE, &dfl, nullptr);  // servers ignore it; programs expect the default
      // Only what is asked for crosses exec: descriptors the parent opened without
      // O_CLOEXEC (asio's accepted sockets, for one) would otherwise leak into the child and
      // keep, say, a client connection open after the parent closed it.
      ::syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC);
      if (chan.w >= 0) ::fcntl(chan.w, F_SETFD, 0);
      for (int fd : opts.inherit_fds) ::fcntl(fd, F_SETFD, 0);
      ::execvpe(cargv[0], cargv.data(), cenv.data());
      int e = errno;
      [[maybe_unused]] auto n = ::write(err.w, &e, sizeof e);
      ::_exit(127);
    }
    // Handlers belong to the parent (an asio signal_set would even forward the child's
    // signals to the parent's loop through its pipe): start from the defaults. Ignored
    // signals stay ignored, as across exec.
    for (int sig = 1; sig < NSIG; ++sig) {
      struct sigaction old {};
      if (::sigaction(sig, nullptr, &old) != 0) continue;
      if (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN) {
        struct sigaction dfl {};
        dfl.sa_handler = SIG_DFL;
        ::sigaction(sig, &dfl, nullptr);
      }
    }
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    int code = 255;
    try {
      child_context ctx(index, chan.w, opts.max_message);
      code = fn(ctx);
    } catch (const std::exception& e) {
      log::error("ipc: child process {} (index {}) threw: {}", ::getpid(), index, e.what());
    } catch (...) {
      log::error("ipc: child process {} (index {}) threw", ::getpid(), index);
    }
    std::fflush(nullptr);
    ::_exit(code);
  }

  // -- parent ---------------------------------------------------------------------------
  if (chan.w >= 0) ::close(chan.release_w());
  if (in.r >= 0) ::close(in.release_r());
  if (out.w >= 0) ::close(out.release_w());
  if (is_exec) {
    ::close(err.release_w());
    int e = 0;
    ssize_t n;
    do n = ::read(err.r, &e, sizeof e);
    while (n < 0 && errno == EINTR);
    if (n == static_cast<ssize_t>(sizeof e)) {
      int st;
      while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
      }
      log::error("ipc: exec of '{}' failed: {}", argv[0], std::strerror(e));
      return make_error_code(shm_errc::exec_failed);
    }
  }

  auto s = std::make_unique<state>(ex);
  s->pid = pid;
  s->kill_on_destroy = opts.kill_on_destroy;
  int pfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pfd >= 0) s->pidfd.emplace(ex, pfd);
  if (in.w >= 0) s->in.emplace(ex, in.release_w());
  if (out.r >= 0) s->out.emplace(ex, out.release_r());
  if (chan.r >= 0)
    s->chan = std::make_unique<message_channel>(ex, chan.release_r(), opts.max_message);
  return process(std::move(s));
}

}  // namespace swactor::ipc
