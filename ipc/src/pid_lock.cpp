#include "pid_lock.hpp"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "swactor/core/log.hpp"

namespace swactor::ipc::detail {

pid_t cached_pid = 0;

namespace {
void after_fork_in_child() { cached_pid = ::getpid(); }

struct pid_cache_init {
  pid_cache_init() {
    cached_pid = ::getpid();
    ::pthread_atfork(nullptr, nullptr, &after_fork_in_child);
  }
} pid_cache_init_instance;

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}
}  // namespace

pid_t refresh_pid() noexcept {
  cached_pid = ::getpid();
  return cached_pid;
}

bool pid_is_dead(std::uint32_t pid) noexcept {
  if (pid == 0) return false;
  if (::kill(static_cast<pid_t>(pid), 0) != 0) return errno == ESRCH;
  // kill() succeeds on a zombie: a killed child whose parent has not reaped it yet holds
  // nothing any more, so look at its state too.
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%u/stat", pid);
  FILE* f = std::fopen(path, "re");
  if (!f) return false;
  char buf[512];
  std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = 0;
  // "pid (comm) S ..." -- comm may contain ')' so take the last one.
  char* close = nullptr;
  for (char* p = buf; *p; ++p)
    if (*p == ')') close = p;
  if (!close || close[1] != ' ') return false;
  return close[2] == 'Z' || close[2] == 'X';
}

lock_outcome pid_lock_slow(std::atomic<std::uint32_t>& w, std::chrono::nanoseconds timeout,
                           const char* what) noexcept {
  using clock = std::chrono::steady_clock;
  constexpr auto dead_check_every = std::chrono::milliseconds(5);
  const bool bounded = timeout != std::chrono::nanoseconds::max();
  clock::time_point start{}, deadline{}, next_check{};
  for (std::uint64_t i = 0;; ++i) {
    std::uint32_t cur = w.load(std::memory_order_relaxed);
    if (cur == 0) {
      if (w.compare_exchange_weak(cur, self_pid(), std::memory_order_acquire,
                                  std::memory_order_relaxed))
        return lock_outcome::acquired;
      continue;
    }
    if (i < 128) {
      cpu_relax();
      continue;
    }
    // The owner may be descheduled (more processes than cores): give it the CPU.
    if (i < 4096) {
      ::sched_yield();
    } else {
      timespec ts{0, 50'000};
      ::nanosleep(&ts, nullptr);
    }
    auto now = clock::now();
    if (start == clock::time_point{}) {
      start = now;
      deadline = bounded ? now + timeout : clock::time_point::max();
      next_check = now + dead_check_every;
    }
    if (now >= next_check) {
      next_check = now + dead_check_every;
      if (cur != self_pid() && pid_is_dead(cur)) {
        std::uint32_t expected = cur;
        if (w.compare_exchange_strong(expected, self_pid(), std::memory_order_acquire,
                                      std::memory_order_relaxed)) {
          log::warning("ipc: {} was held by process {} which died; lock recovered by {}", what,
                       cur, self_pid());
          return lock_outcome::recovered;
        }
      }
    }
    if (bounded && now >= deadline) return lock_outcome::timeout;
  }
}

}  // namespace swactor::ipc::detail
