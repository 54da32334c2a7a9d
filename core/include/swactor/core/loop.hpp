#pragma once
// One loop per thread: an asio::io_context, the CAF actor system whose actors are scheduled
// on it (a custom coordinator posts each actor's resume into the io_context, and actor
// timeouts run on the loop's timers), the Timer API and the stall report.
// CAF headers stay out of here; include swactor/core/actors.hpp where actors are used.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <caf/fwd.hpp>

#include "swactor/core/coro.hpp"
#include "swactor/core/timers.hpp"

namespace swactor {

namespace detail {
class remote_inbox;
}

enum class stall_action {
  stop,    // log the report and stop the loop: run() returns exit code 1 (standalone runs)
  log,     // log the report once and keep waiting (servers: something external may still come)
};

struct loop_options {
  stall_action on_stall = stall_action::stop;
  std::size_t actor_max_throughput = 256;  // messages an actor handles before yielding
  // Only this loop's thread touches its sockets, timers and queue (a worker process, a
  // reactor thread): asio then takes no locks at all (ASIO_CONCURRENCY_HINT_UNSAFE: about
  // 200 instructions per round trip). Other threads reach it only through its remote inbox
  // (post_any(), and CAF's actors and clock on their own); never through asio::post.
  bool single_thread_io = false;
  // 0: look for a stall before every block (reported at once; costs a second epoll_wait
  // per wake-up). Above 0: only after the loop was idle this long (servers: one epoll_wait
  // per wake-up; a stall is reported that much later; an idle loop checks once and then
  // sleeps until something happens). Such a loop runs until stop(), also with nothing left
  // to do.
  std::chrono::milliseconds stall_check_after{0};
  // Above 0 (with stall_check_after > 0): after its last handler the loop keeps polling
  // (epoll_wait with no timeout, yielding the CPU between polls) up to this long before it
  // blocks; the window adapts (poll_window()): it shrinks to 0 over sleeps longer than this
  // and grows back when events come within it.
  // A client that writes to a sleeping server pays for waking its CPU (on a VM an IPI and a
  // halted vCPU: about a microsecond of the client's kernel time per request here); a polling
  // server is found awake. Costs a busy core while traffic comes, and a few shrinking windows
  // once it stops: for dedicated cores only ([server] busy_poll_us).
  std::chrono::microseconds busy_poll{0};
};

struct stall_report {
  coro_stats stats;
  std::vector<coro_info> coroutines;
  std::string to_string() const;
};

class loop {
 public:
  explicit loop(loop_options opts = {});
  ~loop();
  loop(const loop&) = delete;
  loop& operator=(const loop&) = delete;

  asio::io_context& context() noexcept { return ctx_; }
  asio::io_context::executor_type executor() noexcept { return ctx_.get_executor(); }

  // The actor system of this loop, created on first use.
  caf::actor_system& actors();
  bool has_actors() const noexcept { return static_cast<bool>(system_); }

  swactor::timers& timers();

  // Runs until stop(), until nothing is left to do, or until a stall (see loop_options).
  // Returns 0, or 1 after a stall with stall_action::stop.
  int run();
  void stop();
  // From any thread: `f` runs on this loop. Another thread's call reaches a
  // single_thread_io loop through its remote inbox, others through asio's queue.
  void post_any(std::function<void()> f);

  bool stalled() const noexcept { return stalled_; }
  const stall_report& last_stall() const noexcept { return last_stall_; }
  coro_stats coroutine_stats();
  // stall_check_after > 0: how often the idle timer fired (once per idle period, not once
  // per interval while idle).
  std::uint64_t idle_checks() const noexcept { return idle_checks_; }
  // busy_poll > 0: how long the loop polls after its next burst of handlers (0 .. busy_poll).
  std::chrono::microseconds poll_window() const noexcept { return poll_window_; }
  // busy_poll > 0: polls inside a window that found nothing to do.
  std::uint64_t empty_polls() const noexcept { return empty_polls_; }

  // The loop running on the calling thread, or nullptr.
  static loop* current() noexcept;

 private:
  bool check_stall();
  void arm_idle_timer();
  std::size_t run_polling();
  void adapt_poll_window(std::chrono::steady_clock::duration slept);

  loop_options opts_;
  asio::io_context ctx_;  // concurrency hint 1 (or UNSAFE): only this loop's thread runs it
  std::unique_ptr<detail::remote_inbox> inbox_;  // single_thread_io: other threads' way in
  std::unique_ptr<caf::actor_system_config> config_;
  std::unique_ptr<caf::actor_system> system_;
  std::unique_ptr<swactor::timers> timers_;
  bool stalled_ = false;
  // stall_check_after > 0: the idle timer and what it compares.
  std::unique_ptr<asio::steady_timer> idle_timer_;
  bool idle_stop_ = false;  // the idle timer stopped run(): an interval passed
  // stop() was called (and not only the idle timer's stop). Atomic: another thread may stop
  // a loop that is not single_thread_io.
  std::atomic<bool> stop_asked_{false};
  std::uint64_t idle_checks_ = 0;
  std::chrono::microseconds poll_window_{opts_.busy_poll};
  std::uint64_t empty_polls_ = 0;
  // Set while the idle timer waits for activity instead of firing every interval.
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> parked_;
  stall_report last_stall_;
};

}  // namespace swactor
