#pragma once
// Locks in shared memory, usable across processes (Swoole\Lock): mutex, rwlock, spinlock.
// Each object owns a small memfd segment: create() it in the parent, use it after fork, or
// attach(fd) in a fork+exec'd child.
//
// Dead owners: the mutex is a robust pthread mutex; if its owner dies, the next locker
// takes it over (logged, counted in owner_deaths()). The spinlock stores the owner's pid
// and a waiter recovers it the same way. The rwlock (pthread, process-shared) has no robust
// variant: a process that dies holding it leaves it held, and lock(timeout) times out.
//
// lock() with the default timeout waits forever; all three satisfy BasicLockable /
// Lockable, so std::lock_guard / std::unique_lock work.

#include <chrono>
#include <cstdint>
#include <string_view>
#include <system_error>

#include "swactor/core/error.hpp"
#include "swactor/ipc/shm.hpp"

namespace swactor::ipc {

using lock_timeout = std::chrono::nanoseconds;
inline constexpr lock_timeout wait_forever = lock_timeout::max();

class mutex {
 public:
  static result<mutex> create(std::string_view name = "swactor.mutex");
  static result<mutex> attach(int fd);

  // swactor::errc::timeout when the deadline passes; success also when the lock was taken over from
  // a dead owner (logged).
  std::error_code lock(lock_timeout timeout = wait_forever);
  bool try_lock();
  void unlock();

  // How many times a lock was taken over from a dead owner (all processes).
  std::uint64_t owner_deaths() const noexcept;
  int fd() const noexcept { return region_.fd(); }

 private:
  explicit mutex(shm_region r) : region_(std::move(r)) {}
  shm_region region_;
};

class rwlock {
 public:
  static result<rwlock> create(std::string_view name = "swactor.rwlock");
  static result<rwlock> attach(int fd);

  std::error_code lock(lock_timeout timeout = wait_forever);  // exclusive
  bool try_lock();
  void unlock();
  std::error_code lock_shared(lock_timeout timeout = wait_forever);
  bool try_lock_shared();
  void unlock_shared();

  int fd() const noexcept { return region_.fd(); }

 private:
  explicit rwlock(shm_region r) : region_(std::move(r)) {}
  shm_region region_;
};

// Busy-waiting lock for very short critical sections (spins, then yields).
class spinlock {
 public:
  static result<spinlock> create(std::string_view name = "swactor.spinlock");
  static result<spinlock> attach(int fd);

  std::error_code lock(lock_timeout timeout = wait_forever);
  bool try_lock() noexcept;
  void unlock() noexcept;

  std::uint64_t owner_deaths() const noexcept;
  int fd() const noexcept { return region_.fd(); }

 private:
  explicit spinlock(shm_region r) : region_(std::move(r)) {}
  shm_region region_;
};

}  // namespace swactor::ipc
