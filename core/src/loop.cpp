#include "swactor/core/loop.hpp"

#include <sched.h>

#include <algorithm>

#include <asio/post.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "coordinator.hpp"
#include "swactor/core/log.hpp"
#include "swactor/core/timers.hpp"

namespace swactor {
namespace {
thread_local loop* current_loop = nullptr;
}

std::string stall_report::to_string() const {
  std::string out = "all coroutines are asleep - deadlock: " + std::to_string(stats.live) +
                    " coroutine(s) parked on channels or wait groups, nothing left to wake them";
  for (const auto& c : coroutines) {
    out += "\n  coroutine #" + std::to_string(c.id);
    if (!c.name.empty()) out += " '" + c.name + "'";
    out += " spawned at " + c.location;
  }
  return out;
}

loop::loop(loop_options opts)
    : opts_(opts),
      ctx_(opts.single_thread_io ? ASIO_CONCURRENCY_HINT_UNSAFE : 1),
      inbox_(opts.single_thread_io ? std::make_unique<detail::remote_inbox>(ctx_) : nullptr) {}

loop::~loop() {
  timers_.reset();
  if (system_) {
    system_.reset();  // stops the coordinator, which drains the printer on this loop
  }
  config_.reset();
}

caf::actor_system& loop::actors() {
  if (!system_) {
    config_ = std::make_unique<caf::actor_system_config>();
    config_->set("scheduler.max-throughput", opts_.actor_max_throughput);
    auto* ctx = &ctx_;
    auto* inbox = inbox_.get();
    config_->module_factories.push_back(
        [ctx, inbox](caf::actor_system& sys) -> caf::actor_system::module* {
          return new detail::loop_coordinator(sys, *ctx, inbox);
        });
    system_ = std::make_unique<caf::actor_system>(*config_);
    // Waiting for actors would block this thread, which is the one that runs them.
    system_->await_actors_before_shutdown(false);
  }
  return *system_;
}

timers& loop::timers() {
  if (!timers_) timers_ = std::make_unique<swactor::timers>(ctx_);
  return *timers_;
}

coro_stats loop::coroutine_stats() { return registry_of(ctx_).stats(); }

loop* loop::current() noexcept { return current_loop; }

void loop::stop() {
  stop_asked_ = true;  // not taken for the idle timer's own stop
  ctx_.stop();
}

void loop::post_any(std::function<void()> f) {
  if (ctx_.get_executor().running_in_this_thread())
    asio::post(ctx_, std::move(f));
  else
    detail::post_from_outside(ctx_, inbox_.get(), std::move(f));
}

void loop::arm_idle_timer() {
  idle_timer_->expires_after(opts_.stall_check_after);
  idle_timer_->async_wait([this](std::error_code ec) {
    if (ec) return;
    ++idle_checks_;
    idle_stop_ = true;
    ctx_.stop();  // run() returns and counts what ran in the interval
  });
  // Only now: the timer's wait is work, so asio's count of it never reaches 0 in between
  // (at 0 asio stops the context, and a loop with nothing else pending ended its run()).
  parked_.reset();
}

bool loop::check_stall() {
  auto& reg = registry_of(ctx_);
  auto s = reg.stats();
  if (s.live == 0 || s.parked < s.live || s.timed > 0) return false;
  if (timers_ && timers_->stats().count > 0) return false;
  if (system_) {
    auto& sched = static_cast<detail::loop_coordinator&>(system_->scheduler());
    if (sched.loop_timers().pending() > 0) return false;
  }
  last_stall_ = stall_report{s, reg.list()};
  return true;
}

// ctx_.run() that polls for the current window after each burst of handlers before it
// blocks. Returns what ran, as run() does, when the context is stopped (the idle timer,
// stop()).
std::size_t loop::run_polling() {
  using clock = std::chrono::steady_clock;
  std::size_t ran = 0;
  auto quiet_since = clock::now();
  while (!ctx_.stopped()) {
    if (const auto n = ctx_.poll(); n > 0) {
      ran += n;
      quiet_since = clock::now();
      continue;
    }
    if (ctx_.stopped()) break;
    if (clock::now() - quiet_since < poll_window_) {
      ++empty_polls_;
      ::sched_yield();  // another task of this CPU (a reactor, a task worker) goes first
      continue;
    }
    const auto slept_from = clock::now();
    ran += ctx_.run_one();  // quiet for the whole window: sleep until the next handler
    if (ctx_.stopped()) break;  // the idle timer's stop or stop(): no event to learn from
    quiet_since = clock::now();
    adapt_poll_window(quiet_since - slept_from);
  }
  return ran;
}

// As the kernel's haltpoll governor adapts its guest polling: an event that came after the
// window closed but within busy_poll doubles the window (polling longer would have caught
// it); a sleep longer than busy_poll halves it, and below an eighth of busy_poll it is 0, so
// a server with occasional requests soon stops polling, until short gaps grow it again.
void loop::adapt_poll_window(std::chrono::steady_clock::duration slept) {
  using std::chrono::microseconds;
  const auto max = opts_.busy_poll;
  const auto floor = std::max(max / 8, microseconds(1));
  if (slept < max) {
    poll_window_ = poll_window_.count() == 0 ? floor : std::min(max, poll_window_ * 2);
  } else {
    poll_window_ /= 2;
    if (poll_window_ < floor) poll_window_ = microseconds(0);
  }
}

int loop::run() {
  auto* previous = current_loop;
  current_loop = this;
  struct restore {
    loop*& slot;
    loop* value;
    ~restore() { slot = value; }
  } restore_current{current_loop, previous};

  if (ctx_.stopped()) ctx_.restart();
  stop_asked_ = false;
  idle_stop_ = false;
  stalled_ = false;
  bool reported = false;
  const bool eager = opts_.stall_check_after.count() <= 0;
  for (;;) {
    if (eager) {
      // Run what is ready; before blocking, make sure something can still wake us.
      auto n = ctx_.poll();
      if (ctx_.stopped()) break;
      if (n > 0) continue;
    } else {
      // run() as long as the loop is busy: asio's per-call setup (and the handler memory it
      // caches per call) is paid once per idle interval, not once per handler as run_one()
      // would. The idle timer stops run() when its interval ends; if its own handler was the
      // only one run meanwhile, the loop was idle and the stall check is worth making.
      if (!idle_timer_) idle_timer_ = std::make_unique<asio::steady_timer>(ctx_);
      if (parked_) {
        // Checked once already: wait for the next handler (the guard keeps run_one() from
        // returning at once), then watch again.
        const bool polling = opts_.busy_poll.count() > 0;
        const auto slept_from = polling ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
        ctx_.run_one();
        if (ctx_.stopped()) break;
        if (polling) adapt_poll_window(std::chrono::steady_clock::now() - slept_from);
      }
      arm_idle_timer();
      const auto n = opts_.busy_poll.count() > 0 ? run_polling() : ctx_.run();
      if (!idle_stop_ || stop_asked_) break;  // stop(), or nothing left to do
      idle_stop_ = false;
      ctx_.restart();
      if (n > 1) continue;  // busy: other handlers ran in the interval
      // Idle. The guard keeps a server loop with nothing left to do running until stop(),
      // as the armed timer did.
      parked_.emplace(ctx_.get_executor());
      if (ctx_.poll() > 0) {
        parked_.reset();
        continue;
      }
      if (ctx_.stopped()) break;
    }
    if (check_stall()) {
      if (!reported) {
        log::error("{}", last_stall_.to_string());
        reported = true;
      }
      stalled_ = true;
      if (opts_.on_stall == stall_action::stop) {
        ctx_.stop();
        return 1;
      }
    } else {
      reported = false;
    }
    if (eager) {
      ctx_.run_one();
      if (ctx_.stopped()) break;
    }
  }
  return 0;
}

}  // namespace swactor
