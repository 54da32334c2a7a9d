#pragma once
// The lock word used by table buckets and by ipc::spinlock: 0 = free, otherwise the pid of
// the owner. Storing the pid is what makes a dead owner detectable: a waiter that has
// waited a while checks whether that pid still exists and, if not, takes the lock over.

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>

namespace swactor::ipc::detail {

static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

// getpid() is a real syscall in current glibc; the hot path reads this cached copy, which a
// pthread_atfork child handler refreshes.
extern pid_t cached_pid;
pid_t refresh_pid() noexcept;
inline std::uint32_t self_pid() noexcept {
  pid_t p = cached_pid;
  return static_cast<std::uint32_t>(p ? p : refresh_pid());
}

// True when `pid` no longer runs: gone (ESRCH) or a zombie waiting to be reaped.
bool pid_is_dead(std::uint32_t pid) noexcept;

inline void cpu_pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

enum class lock_outcome { acquired, recovered, timeout };

inline bool pid_try_lock(std::atomic<std::uint32_t>& w) noexcept {
  std::uint32_t expected = 0;
  return w.compare_exchange_strong(expected, self_pid(), std::memory_order_acquire,
                                   std::memory_order_relaxed);
}

// Spins, then yields, then sleeps briefly; checks for a dead owner every few milliseconds.
// `what` names the lock in the recovery log line.
lock_outcome pid_lock_slow(std::atomic<std::uint32_t>& w, std::chrono::nanoseconds timeout,
                           const char* what) noexcept;

inline lock_outcome pid_lock(std::atomic<std::uint32_t>& w, std::chrono::nanoseconds timeout,
                             const char* what) noexcept {
  if (pid_try_lock(w)) return lock_outcome::acquired;
  return pid_lock_slow(w, timeout, what);
}

inline void pid_unlock(std::atomic<std::uint32_t>& w) noexcept {
  w.store(0, std::memory_order_release);
}

}  // namespace swactor::ipc::detail
