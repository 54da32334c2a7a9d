#pragma once
// Counters in shared memory, usable from every process that maps them (Swoole\Atomic and
// Swoole\Atomic\Long). Each object owns a small memfd segment: create() it in the parent,
// use it after fork, or attach(fd) in a fork+exec'd child.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string_view>

#include "swactor/core/error.hpp"
#include "swactor/ipc/shm.hpp"

namespace swactor::ipc {

// 32-bit unsigned counter with futex wait/wakeup across processes.
class atomic {
 public:
  static result<atomic> create(std::uint32_t initial = 0, std::string_view name = "swactor.atomic");
  static result<atomic> attach(int fd);

  std::uint32_t get() const noexcept { return word().load(std::memory_order_acquire); }
  void set(std::uint32_t v) noexcept { word().store(v, std::memory_order_release); }
  // add/sub return the new value (wrapping, like unsigned arithmetic).
  std::uint32_t add(std::uint32_t n = 1) noexcept { return word().fetch_add(n) + n; }
  std::uint32_t sub(std::uint32_t n = 1) noexcept { return word().fetch_sub(n) - n; }
  // Sets `desired` if the value is `expected`; true on success.
  bool cmpset(std::uint32_t expected, std::uint32_t desired) noexcept {
    return word().compare_exchange_strong(expected, desired);
  }

  // Swoole semantics, an event flag: if the value is 1, consume it (set 0) and return at
  // once; otherwise sleep until wakeup() or the timeout (swactor::errc::timeout).
  std::error_code wait(std::chrono::nanoseconds timeout = std::chrono::nanoseconds::max());
  // If the value is 0, set it to 1 and wake up to `n` waiters. Returns how many were woken.
  int wakeup(int n = 1) noexcept;

  // Lower level futex pair: sleep while the value equals `expected` (returns at once if it
  // does not), and wake up to `n` waiters. Spurious returns are possible: re-check.
  std::error_code wait_while(std::uint32_t expected,
                             std::chrono::nanoseconds timeout = std::chrono::nanoseconds::max());
  int notify(int n = 1) noexcept;

  int fd() const noexcept { return region_.fd(); }

 private:
  explicit atomic(shm_region r) : region_(std::move(r)) {}
  std::atomic<std::uint32_t>& word() const noexcept;

  shm_region region_;
};

// 64-bit signed counter (no wait/wakeup: futexes are 32-bit).
class atomic64 {
 public:
  static result<atomic64> create(std::int64_t initial = 0,
                                 std::string_view name = "swactor.atomic64");
  static result<atomic64> attach(int fd);

  std::int64_t get() const noexcept { return word().load(std::memory_order_acquire); }
  void set(std::int64_t v) noexcept { word().store(v, std::memory_order_release); }
  std::int64_t add(std::int64_t n = 1) noexcept { return word().fetch_add(n) + n; }
  std::int64_t sub(std::int64_t n = 1) noexcept { return word().fetch_sub(n) - n; }
  bool cmpset(std::int64_t expected, std::int64_t desired) noexcept {
    return word().compare_exchange_strong(expected, desired);
  }

  int fd() const noexcept { return region_.fd(); }

 private:
  explicit atomic64(shm_region r) : region_(std::move(r)) {}
  std::atomic<std::int64_t>& word() const noexcept;

  shm_region region_;
};

}  // namespace swactor::ipc
