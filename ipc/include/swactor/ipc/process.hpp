#pragma once
// Child processes (Swoole\Process) and a supervised pool of them (Swoole\Process\Pool).
//
// A child either runs a callable after fork() or execs a program (argv, no shell). The
// parent can pipe the child's stdin/stdout and exchange framed messages (4-byte length +
// bytes) over a Unix socket pair. Everything the parent awaits takes a timeout.
//
// Exit is watched through a pidfd (pidfd_open) registered with the loop: it needs no
// process-wide SIGCHLD handler (which would belong to the manager and could reap other
// code's children), cannot confuse a recycled pid, and any loop can wait for any of its
// children. Where pidfd_open is unavailable, wait() polls waitpid(WNOHANG) on a timer.
//
// fork() copies only the calling thread: a callable child of a multi-threaded parent must
// restrict itself accordingly (prefer exec there). A callable child must not touch the
// parent's loop; it builds its own if it needs one.

#include <sys/types.h>

#include <csignal>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/io_context.hpp>

#include "swactor/core/coro.hpp"
#include "swactor/core/error.hpp"
#include "swactor/ipc/shm_error.hpp"

namespace swactor::ipc {

inline constexpr std::size_t default_max_message = std::size_t{64} << 20;

struct exit_status {
  int code = -1;     // exit code, when the process exited
  int signal = 0;    // the signal that terminated it, 0 if it exited
  bool core_dumped = false;

  bool exited() const noexcept { return signal == 0; }
  bool success() const noexcept { return signal == 0 && code == 0; }
  std::string to_string() const;
  static exit_status from_wait_status(int status) noexcept;
};

// -- framed messages ----------------------------------------------------------------------

// 4-byte length (host order: both ends are on this host) + bytes, over a stream socket.
// Partial reads are buffered, so a recv() that times out loses nothing. A send() that times
// out mid-message closes the channel (the peer could not find the next frame otherwise).
class message_channel {
 public:
  // Takes ownership of `fd`.
  message_channel(asio::any_io_executor ex, int fd, std::size_t max_message = default_max_message);
  ~message_channel();
  message_channel(const message_channel&) = delete;
  message_channel& operator=(const message_channel&) = delete;

  // Errors: swactor::errc::timeout, swactor::errc::closed, shm_errc::message_too_large, or
  // a system error.
  task<std::error_code> send(std::string_view msg, duration timeout = no_timeout);
  task<result<std::string>> recv(duration timeout = no_timeout);

  // Blocking variants, for a child that runs no loop.
  std::error_code send_sync(std::string_view msg);
  result<std::string> recv_sync(duration timeout = no_timeout);

  void close() noexcept;
  bool is_open() const noexcept;
  int native_handle() const noexcept;

  struct state;  // opaque (named by the implementation's coroutines)

 private:
  std::unique_ptr<state> s_;
};

// The channel descriptor an exec'd child inherited (from SWACTOR_CHANNEL_FD), or -1.
int inherited_channel_fd() noexcept;

// -- process ------------------------------------------------------------------------------

struct process_options {
  bool pipe_stdin = false;        // the parent writes with write() / close_stdin()
  bool pipe_stdout = false;       // the parent reads with read() / read_all()
  bool stderr_to_stdout = false;  // with pipe_stdout: stderr goes to the same pipe
  bool channel = true;            // a socket pair for send()/recv() messages
  // exec: descriptors kept open, same numbers, in the new program (e.g. a table's fd()).
  std::vector<int> inherit_fds;
  // exec: "NAME=value" entries added to (or replacing in) the inherited environment.
  std::vector<std::string> env;
  // Descriptors the child closes first (the pool passes its other children's channels).
  std::vector<int> close_in_child;
  bool kill_on_destroy = true;    // ~process sends SIGKILL and reaps a child still running
  bool die_with_parent = true;    // PR_SET_PDEATHSIG(SIGKILL) in the child
  std::size_t max_message = default_max_message;
};

// What a callable child gets: its index (pool) and its end of the message channel.
class child_context {
 public:
  child_context(std::size_t index, int channel_fd, std::size_t max_message);
  ~child_context();
  std::size_t index() const noexcept { return index_; }
  // The child's end of the channel (blocking *_sync calls work without a loop; the async
  // calls need io() to be run). Throws std::logic_error if the channel was disabled.
  message_channel& channel();
  asio::io_context& io();

 private:
  std::size_t index_;
  int fd_;
  std::size_t max_message_;
  std::unique_ptr<asio::io_context> io_;
  std::unique_ptr<message_channel> channel_;
};

class process {
 public:
  // The callable's return value is the exit code; an escaping exception exits with 255.
  using body = std::function<int(child_context&)>;

  static result<process> start(asio::any_io_executor ex, body fn, process_options opts = {},
                               std::size_t index = 0);
  // argv[0] is looked up in PATH. shm_errc::exec_failed (logged with the errno) if the
  // program could not be executed.
  static result<process> exec(asio::any_io_executor ex, std::vector<std::string> argv,
                              process_options opts = {});

  process(process&&) noexcept;
  process& operator=(process&&) noexcept;
  ~process();

  pid_t pid() const noexcept;
  bool running() const noexcept;  // not reaped yet

  // shm_errc::not_running once reaped.
  std::error_code kill(int sig = SIGTERM);

  // Some of the child's stdout; swactor::errc::closed at end of file.
  task<result<std::string>> read(duration timeout = no_timeout);
  // Everything until end of file.
  task<result<std::string>> read_all(duration timeout = no_timeout);
  task<std::error_code> write(std::string_view data, duration timeout = no_timeout);
  void close_stdin() noexcept;

  task<std::error_code> send(std::string_view msg, duration timeout = no_timeout);
  task<result<std::string>> recv(duration timeout = no_timeout);
  message_channel* channel() noexcept;

  // The exit status (cached once reaped; several waiters are fine).
  task<result<exit_status>> wait(duration timeout = no_timeout);
  // Sends SIGKILL if needed and reaps, blocking (briefly: SIGKILL cannot be ignored).
  exit_status kill_and_reap() noexcept;

  struct state;  // opaque (named by the implementation's coroutines)

 private:
  explicit process(std::unique_ptr<state> s);
  static result<process> launch(asio::any_io_executor ex, body fn, std::vector<std::string> argv,
                                process_options opts, std::size_t index);
  std::unique_ptr<state> s_;
};

// -- pool ---------------------------------------------------------------------------------

struct pool_options {
  process_options process;
  duration restart_delay = std::chrono::milliseconds(50);  // before restarting a dead child
};

// N children running the same callable (child_context::index() tells them apart). A child
// that exits while the pool runs is restarted with the same index.
class process_pool {
 public:
  process_pool(asio::any_io_executor ex, std::size_t n, process::body fn, pool_options opts = {});
  ~process_pool();  // SIGKILLs and reaps every child
  process_pool(const process_pool&) = delete;
  process_pool& operator=(const process_pool&) = delete;

  // Starts every child and their supervisors (on the executor).
  std::error_code start();
  // SIGTERM to all, SIGKILL after `grace`; no more restarts.
  task<void> stop(duration grace = std::chrono::seconds(1));

  std::size_t size() const noexcept;
  pid_t pid(std::size_t i) const noexcept;            // 0 while not running
  std::uint64_t restarts(std::size_t i) const noexcept;
  // Called on the loop each time child i exits, before it is restarted.
  void on_exit(std::function<void(std::size_t, exit_status)> fn);

  task<std::error_code> send(std::size_t i, std::string_view msg, duration timeout = no_timeout);
  task<result<std::string>> recv(std::size_t i, duration timeout = no_timeout);
  std::error_code kill(std::size_t i, int sig = SIGTERM);

  struct state;  // opaque (shared with the supervisor coroutines)

 private:
  std::shared_ptr<state> s_;
};

}  // namespace swactor::ipc
