#include "swactor/ipc/atomic.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <new>

#include "segment_kind.hpp"

namespace swactor::ipc {
namespace {

struct atomic32_block {
  detail::segment_header header;
  std::atomic<std::uint32_t> value;
};

struct atomic64_block {
  detail::segment_header header;
  alignas(8) std::atomic<std::int64_t> value;
};

// No FUTEX_PRIVATE_FLAG: the waiters are in other processes.
long futex(std::atomic<std::uint32_t>* addr, int op, std::uint32_t val, const timespec* ts) {
  return ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(addr), op, val, ts, nullptr, 0);
}

timespec to_timespec(std::chrono::nanoseconds d) {
  if (d < std::chrono::nanoseconds::zero()) d = std::chrono::nanoseconds::zero();
  auto s = std::chrono::duration_cast<std::chrono::seconds>(d);
  return timespec{static_cast<time_t>(s.count()), static_cast<long>((d - s).count())};
}

}  // namespace

// -- atomic -------------------------------------------------------------------------------

result<atomic> atomic::create(std::uint32_t initial, std::string_view name) {
  auto r = shm_region::create(name, sizeof(atomic32_block));
  if (!r) return r.error();
  auto* b = new (r->data()) atomic32_block{};
  b->value.store(initial);
  detail::stamp(b, detail::segment_kind::atomic32);
  return atomic(std::move(*r));
}

result<atomic> atomic::attach(int fd) {
  auto r = shm_region::attach(fd);
  if (!r) return r.error();
  if (!detail::check(*r, detail::segment_kind::atomic32, sizeof(atomic32_block)))
    return make_error_code(shm_errc::bad_segment);
  return atomic(std::move(*r));
}

std::atomic<std::uint32_t>& atomic::word() const noexcept {
  return static_cast<atomic32_block*>(region_.data())->value;
}

std::error_code atomic::wait_while(std::uint32_t expected, std::chrono::nanoseconds timeout) {
  timespec ts{};
  const timespec* tsp = nullptr;
  if (timeout != std::chrono::nanoseconds::max()) {
    ts = to_timespec(timeout);
    tsp = &ts;
  }
  if (futex(&word(), FUTEX_WAIT, expected, tsp) == 0) return {};
  if (errno == ETIMEDOUT) return swactor::make_error_code(swactor::errc::timeout);
  // EAGAIN: the value already differs; EINTR: a signal. Both mean "re-check".
  return {};
}

int atomic::notify(int n) noexcept {
  long r = futex(&word(), FUTEX_WAKE, static_cast<std::uint32_t>(n < 0 ? INT_MAX : n), nullptr);
  return r < 0 ? 0 : static_cast<int>(r);
}

std::error_code atomic::wait(std::chrono::nanoseconds timeout) {
  using clock = std::chrono::steady_clock;
  const bool bounded = timeout != std::chrono::nanoseconds::max();
  const auto deadline = bounded ? clock::now() + timeout : clock::time_point::max();
  for (;;) {
    if (cmpset(1, 0)) return {};
    auto left = std::chrono::nanoseconds::max();
    if (bounded) {
      left = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - clock::now());
      if (left <= std::chrono::nanoseconds::zero()) return swactor::make_error_code(swactor::errc::timeout);
    }
    std::uint32_t v = get();
    if (v == 1) continue;
    // Sleeps only while the value is still what we just read; a wakeup() in between
    // changes it and the futex returns at once.
    auto ec = wait_while(v, left);
    if (ec == swactor::errc::timeout && !cmpset(1, 0)) return ec;
    if (ec == swactor::errc::timeout) return {};
  }
}

int atomic::wakeup(int n) noexcept {
  if (!cmpset(0, 1)) return 0;
  return notify(n);
}

// -- atomic64 -----------------------------------------------------------------------------

result<atomic64> atomic64::create(std::int64_t initial, std::string_view name) {
  auto r = shm_region::create(name, sizeof(atomic64_block));
  if (!r) return r.error();
  auto* b = new (r->data()) atomic64_block{};
  b->value.store(initial);
  detail::stamp(b, detail::segment_kind::atomic64);
  return atomic64(std::move(*r));
}

result<atomic64> atomic64::attach(int fd) {
  auto r = shm_region::attach(fd);
  if (!r) return r.error();
  if (!detail::check(*r, detail::segment_kind::atomic64, sizeof(atomic64_block)))
    return make_error_code(shm_errc::bad_segment);
  return atomic64(std::move(*r));
}

std::atomic<std::int64_t>& atomic64::word() const noexcept {
  return static_cast<atomic64_block*>(region_.data())->value;
}

}  // namespace swactor::ipc
