#pragma once
// Swoole's Timer API on one loop: tick/after/clear/clear_all/exists/info/list/stats.
// One steady_timer armed at the earliest due time drives a binary heap of entries, so a
// million timers cost a million heap entries, not a million asio timers. Callbacks run on
// the loop; a callback returning task<void> runs as a spawned coroutine. Not thread-safe.
//
// Tests can switch an instance to a manual clock (use_manual_clock): time then only moves
// with advance(), which runs every entry falling due in order (swactor/actors/testing.hpp
// uses it). Only these timers follow it: sleep(), with_timeout() and asio timers stay real.

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <queue>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include "swactor/core/coro.hpp"

namespace swactor {

using timer_id = std::uint64_t;
using milliseconds = std::chrono::milliseconds;

struct timer_info {
  timer_id id = 0;
  milliseconds interval{0};
  bool repeating = false;
  std::uint64_t exec_count = 0;
  std::chrono::steady_clock::time_point next_due;
  milliseconds remaining{0};  // until next_due, from the moment info() was called
};

struct timer_stats {
  std::size_t count = 0;       // active timers
  std::uint64_t rounds = 0;    // times the loop woke up to run due timers
  std::uint64_t fired = 0;     // callbacks run
  std::uint64_t created = 0;
};

class timers {
 public:
  explicit timers(asio::io_context& ctx) : ctx_(ctx), timer_(ctx) {}
  timers(const timers&) = delete;
  timers& operator=(const timers&) = delete;
  ~timers() { clear_all(); }

  // Calls `fn` every `interval` (>= 1 ms). `fn` takes a timer_id or nothing, and returns
  // void or task<void>.
  template <class F>
  timer_id tick(milliseconds interval, F fn) {
    return add(interval, true, wrap(std::move(fn)));
  }
  // Calls `fn` once after `delay` (>= 1 ms).
  template <class F>
  timer_id after(milliseconds delay, F fn) {
    return add(delay, false, wrap(std::move(fn)));
  }

  bool clear(timer_id id);
  void clear_all();
  bool exists(timer_id id) const { return entries_.count(id) != 0; }
  std::optional<timer_info> info(timer_id id) const;
  std::vector<timer_id> list() const;
  timer_stats stats() const;

  // -- manual clock (tests) ----------------------------------------------------------------
  // From now on time moves only by advance(): no asio timer is armed and due times, info()
  // and new entries use the manual clock, which starts at the current steady time (so entries
  // already added keep their remaining time). Cannot be switched back.
  void use_manual_clock();
  bool manual_clock() const noexcept { return manual_; }
  // Moves the manual clock forward by `d`, running each entry as it falls due, in due order
  // (a tick as often as its interval fits), and after each callback runs the loop's ready
  // handlers, so coroutines a callback spawned run until they next suspend. Call it from
  // outside the loop (a test body), never from a callback or coroutine on it. Returns the
  // callbacks run. Without use_manual_clock() it does nothing and returns 0.
  std::uint64_t advance(milliseconds d);
  // The clock the entries follow: steady_clock::now(), or the manual clock.
  std::chrono::steady_clock::time_point now() const {
    return manual_ ? manual_now_ : std::chrono::steady_clock::now();
  }

 private:
  using callback = std::function<void(timer_id)>;

  template <class F>
  callback wrap(F fn) {
    if constexpr (std::is_invocable_v<F, timer_id>) {
      using R = std::invoke_result_t<F, timer_id>;
      if constexpr (std::is_same_v<R, task<void>>) {
        return [this, fn = std::move(fn)](timer_id id) {
          spawn(ctx_.get_executor(), [fn, id]() { return fn(id); }, "timer callback");
        };
      } else {
        return fn;
      }
    } else {
      using R = std::invoke_result_t<F>;
      if constexpr (std::is_same_v<R, task<void>>) {
        return [this, fn = std::move(fn)](timer_id) {
          spawn(ctx_.get_executor(), fn, "timer callback");
        };
      } else {
        return [fn = std::move(fn)](timer_id) { fn(); };
      }
    }
  }

  struct entry {
    milliseconds interval;
    bool repeating;
    std::uint64_t exec_count = 0;
    std::chrono::steady_clock::time_point due;
    callback fn;
  };
  struct heap_item {
    std::chrono::steady_clock::time_point due;
    timer_id id;
    bool operator>(const heap_item& o) const {
      return due != o.due ? due > o.due : id > o.id;  // FIFO among equal due times
    }
  };

  timer_id add(milliseconds interval, bool repeating, callback fn);
  void arm();
  void fire(std::chrono::steady_clock::time_point now);  // runs entries due at or before now

  asio::io_context& ctx_;
  asio::steady_timer timer_;
  std::unordered_map<timer_id, entry> entries_;
  std::priority_queue<heap_item, std::vector<heap_item>, std::greater<>> heap_;
  timer_id next_id_ = 1;
  bool armed_ = false;
  std::chrono::steady_clock::time_point armed_due_{};
  timer_stats stats_;
  bool manual_ = false;
  std::chrono::steady_clock::time_point manual_now_{};
};

}  // namespace swactor
