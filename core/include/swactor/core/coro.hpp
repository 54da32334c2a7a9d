#pragma once
// The coroutine kit on asio::awaitable: spawn (Swoole's `go`), cancellation by handle,
// sleep, with_timeout, defer, and live/peak coroutine counters per loop.

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <source_location>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>

#include "swactor/core/error.hpp"

namespace swactor {

template <class T = void>
using task = asio::awaitable<T>;

using duration = std::chrono::steady_clock::duration;
inline constexpr duration no_timeout = duration::max();

namespace detail {
struct coro_record;
}

// -- counters and the registry of live coroutines (one per io_context) ------------------

struct coro_stats {
  std::uint64_t live = 0;          // spawned and not finished
  std::uint64_t peak = 0;          // highest `live` seen
  std::uint64_t spawned = 0;       // total ever spawned
  std::uint64_t parked = 0;        // parked on a channel / wait group without a deadline
  std::uint64_t timed = 0;         // waits with a deadline pending (sleep, with_timeout, ...)
};

struct coro_info {
  std::uint64_t id;
  std::string name;                // given name, or empty
  std::string location;            // file:line of the spawn call
};

class coro_registry;

// The registry of `ctx`, created on first use (an asio service, so it lives as long as ctx).
coro_registry& registry_of(asio::execution_context& ctx);
coro_registry& registry_of(const asio::any_io_executor& ex);

class coro_registry {
 public:
  coro_stats stats() const noexcept { return stats_; }
  std::vector<coro_info> list() const;

  // -- used by the kit ------------------------------------------------------------
  void add(detail::coro_record* r) noexcept;
  void remove(detail::coro_record* r) noexcept;
  void park() noexcept { ++stats_.parked; }
  void unpark() noexcept { --stats_.parked; }
  void timed_begin() noexcept { ++stats_.timed; }
  void timed_end() noexcept { --stats_.timed; }

 private:
  coro_stats stats_;
  detail::coro_record* head_ = nullptr;
};

// -- spawn ------------------------------------------------------------------------

// A handle to a spawned coroutine. Copyable; outliving the coroutine is fine.
class coro_handle {
 public:
  coro_handle() = default;
  explicit coro_handle(std::shared_ptr<detail::coro_record> r) : rec_(std::move(r)) {}

  // Requests cancellation: the coroutine's current wait completes with an
  // operation_aborted / errc::cancelled error. Must be called on the coroutine's loop.
  // Returns false when the coroutine has already finished.
  bool cancel();
  bool done() const noexcept;
  std::uint64_t id() const noexcept;

 private:
  std::shared_ptr<detail::coro_record> rec_;
};

namespace detail {
struct coro_record {
  std::uint64_t id = 0;
  const char* name = nullptr;  // static storage
  std::source_location where;
  bool done = false;
  asio::cancellation_signal signal;
  coro_registry* owner = nullptr;
  coro_record* prev = nullptr;
  coro_record* next = nullptr;
};

std::shared_ptr<coro_record> make_record(coro_registry& reg, const char* name,
                                         const std::source_location& where);
void finish_record(coro_record& r, std::exception_ptr ep) noexcept;
}  // namespace detail

// Starts `body` on `ex` (Swoole's `go`). An exception escaping the coroutine is logged
// with its name and spawn location, never rethrown into the loop. `name` must be a string
// with static storage duration (a literal).
template <class Executor>
coro_handle spawn(const Executor& ex, task<void> body, const char* name = nullptr,
                  std::source_location where = std::source_location::current()) {
  auto& reg = registry_of(asio::any_io_executor(ex));
  auto rec = detail::make_record(reg, name, where);
  auto* raw = rec.get();
  asio::co_spawn(ex, std::move(body),
                 asio::bind_cancellation_slot(
                     raw->signal.slot(),
                     [keep = rec](std::exception_ptr ep) { detail::finish_record(*keep, ep); }));
  return coro_handle(std::move(rec));
}

inline coro_handle spawn(asio::io_context& ctx, task<void> body, const char* name = nullptr,
                         std::source_location where = std::source_location::current()) {
  return spawn(ctx.get_executor(), std::move(body), name, where);
}

// Starts a coroutine lambda. Prefer this form: the callable (and what it captures) is kept
// alive inside the coroutine, so `spawn(ex, [&, x]() -> task<void> {...})` is safe, while
// `spawn(ex, [x]() -> task<void> {...}())` would leave the frame with a dead closure.
template <class Executor, class F>
  requires std::is_invocable_r_v<task<void>, F&>
coro_handle spawn(const Executor& ex, F fn, const char* name = nullptr,
                  std::source_location where = std::source_location::current()) {
  auto& reg = registry_of(asio::any_io_executor(ex));
  auto rec = detail::make_record(reg, name, where);
  auto* raw = rec.get();
  asio::co_spawn(ex, std::move(fn),
                 asio::bind_cancellation_slot(
                     raw->signal.slot(),
                     [keep = rec](std::exception_ptr ep) { detail::finish_record(*keep, ep); }));
  return coro_handle(std::move(rec));
}

template <class F>
  requires std::is_invocable_r_v<task<void>, F&>
coro_handle spawn(asio::io_context& ctx, F fn, const char* name = nullptr,
                  std::source_location where = std::source_location::current()) {
  return spawn(ctx.get_executor(), std::move(fn), name, where);
}

// Runs the callable at scope exit; several defers run in reverse order (LIFO), like Go.
template <class F>
class [[nodiscard]] defer {
 public:
  explicit defer(F f) : f_(std::move(f)) {}
  defer(const defer&) = delete;
  defer& operator=(const defer&) = delete;
  ~defer() {
    if (armed_) f_();
  }
  void dismiss() noexcept { armed_ = false; }

 private:
  F f_;
  bool armed_ = true;
};

// -- sleep, with_timeout, defer ---------------------------------------------------------

// Suspends for `d`. Returns errc::cancelled if the coroutine was cancelled meanwhile.
task<std::error_code> sleep(duration d);

// Runs `op` with a deadline: its value, or errc::timeout (the operation is cancelled).
template <class T>
task<result<T>> with_timeout(task<T> op, duration d) {
  using namespace asio::experimental::awaitable_operators;
  auto ex = co_await asio::this_coro::executor;
  auto& reg = registry_of(ex);
  reg.timed_begin();
  defer end([&reg] { reg.timed_end(); });
  asio::steady_timer timer(ex);
  timer.expires_after(d);
  auto r = co_await (std::move(op) ||
                     timer.async_wait(asio::experimental::as_tuple(asio::use_awaitable)));
  if (r.index() == 0) co_return result<T>(std::move(std::get<0>(r)));
  co_return result<T>(errc::timeout);
}

// void operations: the error code (empty on success).
task<std::error_code> with_timeout(task<void> op, duration d);

}  // namespace swactor
