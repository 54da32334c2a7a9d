#include "swactor/ipc/lock.hpp"

#include <pthread.h>
#include <time.h>

#include <atomic>
#include <cerrno>
#include <new>

#include "pid_lock.hpp"
#include "segment_kind.hpp"
#include "swactor/core/log.hpp"

namespace swactor::ipc {
namespace {

struct mutex_block {
  detail::segment_header header;
  std::atomic<std::uint64_t> owner_deaths;
  pthread_mutex_t m;
};

struct rwlock_block {
  detail::segment_header header;
  pthread_rwlock_t rw;
};

struct spin_block {
  detail::segment_header header;
  std::atomic<std::uint32_t> word;
  std::atomic<std::uint64_t> owner_deaths;
};

// Absolute CLOCK_MONOTONIC deadline for the pthread clock* calls; false = wait forever.
bool deadline_of(lock_timeout timeout, timespec& ts) {
  if (timeout == wait_forever) return false;
  if (timeout < lock_timeout::zero()) timeout = lock_timeout::zero();
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  auto ns = static_cast<long long>(ts.tv_nsec) + timeout.count() % 1'000'000'000;
  ts.tv_sec += static_cast<time_t>(timeout.count() / 1'000'000'000 + ns / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
  return true;
}

template <class Block>
Block* block_of(const shm_region& r) {
  return static_cast<Block*>(r.data());
}

std::error_code from_errno(int e) { return {e, std::system_category()}; }

}  // namespace

// -- mutex --------------------------------------------------------------------------------

result<mutex> mutex::create(std::string_view name) {
  auto r = shm_region::create(name, sizeof(mutex_block));
  if (!r) return r.error();
  auto* b = new (r->data()) mutex_block{};
  pthread_mutexattr_t a;
  ::pthread_mutexattr_init(&a);
  ::pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  ::pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
  int rc = ::pthread_mutex_init(&b->m, &a);
  ::pthread_mutexattr_destroy(&a);
  if (rc != 0) return from_errno(rc);
  detail::stamp(b, detail::segment_kind::mutex);
  return mutex(std::move(*r));
}

result<mutex> mutex::attach(int fd) {
  auto r = shm_region::attach(fd);
  if (!r) return r.error();
  if (!detail::check(*r, detail::segment_kind::mutex, sizeof(mutex_block)))
    return make_error_code(shm_errc::bad_segment);
  return mutex(std::move(*r));
}

namespace {
// EOWNERDEAD: we hold the lock now; mark it usable again and say so.
int settle(mutex_block* b, int rc) {
  if (rc == EOWNERDEAD) {
    ::pthread_mutex_consistent(&b->m);
    b->owner_deaths.fetch_add(1);
    log::warning("ipc: mutex owner died while holding it; lock recovered by {}",
                 detail::self_pid());
    return 0;
  }
  return rc;
}
}  // namespace

std::error_code mutex::lock(lock_timeout timeout) {
  auto* b = block_of<mutex_block>(region_);
  timespec ts{};
  int rc = deadline_of(timeout, ts) ? ::pthread_mutex_clocklock(&b->m, CLOCK_MONOTONIC, &ts)
                                    : ::pthread_mutex_lock(&b->m);
  rc = settle(b, rc);
  if (rc == 0) return {};
  if (rc == ETIMEDOUT) return swactor::make_error_code(swactor::errc::timeout);
  return from_errno(rc);
}

bool mutex::try_lock() {
  auto* b = block_of<mutex_block>(region_);
  return settle(b, ::pthread_mutex_trylock(&b->m)) == 0;
}

void mutex::unlock() { ::pthread_mutex_unlock(&block_of<mutex_block>(region_)->m); }

std::uint64_t mutex::owner_deaths() const noexcept {
  return block_of<mutex_block>(region_)->owner_deaths.load();
}

// -- rwlock -------------------------------------------------------------------------------

result<rwlock> rwlock::create(std::string_view name) {
  auto r = shm_region::create(name, sizeof(rwlock_block));
  if (!r) return r.error();
  auto* b = new (r->data()) rwlock_block{};
  pthread_rwlockattr_t a;
  ::pthread_rwlockattr_init(&a);
  ::pthread_rwlockattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  // Readers arriving all the time must not starve a writer.
  ::pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  int rc = ::pthread_rwlock_init(&b->rw, &a);
  ::pthread_rwlockattr_destroy(&a);
  if (rc != 0) return from_errno(rc);
  detail::stamp(b, detail::segment_kind::rwlock);
  return rwlock(std::move(*r));
}

result<rwlock> rwlock::attach(int fd) {
  auto r = shm_region::attach(fd);
  if (!r) return r.error();
  if (!detail::check(*r, detail::segment_kind::rwlock, sizeof(rwlock_block)))
    return make_error_code(shm_errc::bad_segment);
  return rwlock(std::move(*r));
}

namespace {
std::error_code rw_result(int rc) {
  if (rc == 0) return {};
  if (rc == ETIMEDOUT) return swactor::make_error_code(swactor::errc::timeout);
  return from_errno(rc);
}
}  // namespace

std::error_code rwlock::lock(lock_timeout timeout) {
  auto* b = block_of<rwlock_block>(region_);
  timespec ts{};
  return rw_result(deadline_of(timeout, ts)
                       ? ::pthread_rwlock_clockwrlock(&b->rw, CLOCK_MONOTONIC, &ts)
                       : ::pthread_rwlock_wrlock(&b->rw));
}

bool rwlock::try_lock() { return ::pthread_rwlock_trywrlock(&block_of<rwlock_block>(region_)->rw) == 0; }

void rwlock::unlock() { ::pthread_rwlock_unlock(&block_of<rwlock_block>(region_)->rw); }

std::error_code rwlock::lock_shared(lock_timeout timeout) {
  auto* b = block_of<rwlock_block>(region_);
  timespec ts{};
  return rw_result(deadline_of(timeout, ts)
                       ? ::pthread_rwlock_clockrdlock(&b->rw, CLOCK_MONOTONIC, &ts)
                       : ::pthread_rwlock_rdlock(&b->rw));
}

bool rwlock::try_lock_shared() {
  return ::pthread_rwlock_tryrdlock(&block_of<rwlock_block>(region_)->rw) == 0;
}

void rwlock::unlock_shared() { ::pthread_rwlock_unlock(&block_of<rwlock_block>(region_)->rw); }

// -- spinlock -----------------------------------------------------------------------------

result<spinlock> spinlock::create(std::string_view name) {
  auto r = shm_region::create(name, sizeof(spin_block));
  if (!r) return r.error();
  auto* b = new (r->data()) spin_block{};
  detail::stamp(b, detail::segment_kind::spinlock);
  return spinlock(std::move(*r));
}

result<spinlock> spinlock::attach(int fd) {
  auto r = shm_region::attach(fd);
  if (!r) return r.error();
  if (!detail::check(*r, detail::segment_kind::spinlock, sizeof(spin_block)))
    return make_error_code(shm_errc::bad_segment);
  return spinlock(std::move(*r));
}

std::error_code spinlock::lock(lock_timeout timeout) {
  auto* b = block_of<spin_block>(region_);
  switch (detail::pid_lock(b->word, timeout, "spinlock")) {
    case detail::lock_outcome::acquired: return {};
    case detail::lock_outcome::recovered: b->owner_deaths.fetch_add(1); return {};
    case detail::lock_outcome::timeout: break;
  }
  return swactor::make_error_code(swactor::errc::timeout);
}

bool spinlock::try_lock() noexcept { return detail::pid_try_lock(block_of<spin_block>(region_)->word); }

void spinlock::unlock() noexcept { detail::pid_unlock(block_of<spin_block>(region_)->word); }

std::uint64_t spinlock::owner_deaths() const noexcept {
  return block_of<spin_block>(region_)->owner_deaths.load();
}

}  // namespace swactor::ipc
