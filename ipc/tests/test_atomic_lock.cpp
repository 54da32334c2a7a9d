#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <mutex>
#include <thread>

#include "fork_helpers.hpp"
#include "swactor/ipc/atomic.hpp"
#include "swactor/ipc/lock.hpp"

using namespace swactor::ipc;
using namespace std::chrono_literals;
using swactor::ipc::testing::fork_child;
using swactor::ipc::testing::reap;
using swactor::ipc::testing::run_children;
using clock_type = std::chrono::steady_clock;

TEST_CASE("atomic and atomic64 operations", "[atomic]") {
  auto a = atomic::create(5);
  REQUIRE(a);
  CHECK(a->get() == 5);
  CHECK(a->add(3) == 8);
  CHECK(a->sub() == 7);
  CHECK(a->cmpset(7, 1));
  CHECK_FALSE(a->cmpset(7, 2));
  a->set(0);
  CHECK(a->sub() == 0xffffffffu);  // unsigned wrap

  auto b = atomic64::create(-5);
  REQUIRE(b);
  CHECK(b->get() == -5);
  CHECK(b->add(10) == 5);
  CHECK(b->sub(20) == -15);
  CHECK(b->cmpset(-15, std::int64_t(1) << 40));
  CHECK(b->get() == std::int64_t(1) << 40);

  // attach by fd maps the same word; the wrong kind is refused
  auto a2 = atomic::attach(a->fd());
  REQUIRE(a2);
  a2->set(77);
  CHECK(a->get() == 77);
  CHECK(atomic64::attach(a->fd()).error() == shm_errc::bad_segment);
}

TEST_CASE("atomics count exactly across processes", "[atomic][multiprocess]") {
  auto a = atomic::create(0);
  auto b = atomic64::create(0);
  REQUIRE(a);
  REQUIRE(b);
  auto codes = run_children(4, [&](int) {
    for (int i = 0; i < 200000; ++i) {
      a->add();
      b->sub(2);
    }
    return 0;
  });
  for (int c : codes) CHECK(c == 0);
  CHECK(a->get() == 800000u);
  CHECK(b->get() == -1600000);
}

TEST_CASE("atomic wait/wakeup across processes, with timeout", "[atomic][multiprocess]") {
  auto a = atomic::create(0);
  REQUIRE(a);
  // The child waits; the parent wakes it after 50 ms.
  pid_t waiter = fork_child([&] {
    auto t0 = clock_type::now();
    auto ec = a->wait(5s);
    if (ec) return 1;
    if (clock_type::now() - t0 < 20ms) return 2;  // it really slept
    return 0;
  });
  std::this_thread::sleep_for(50ms);
  a->wakeup();
  int st = reap(waiter, 10s);
  CHECK((WIFEXITED(st) && WEXITSTATUS(st) == 0));
  CHECK(a->get() == 0);  // the waiter consumed the wakeup

  // Nobody wakes it: a timeout, after about the requested time.
  auto t0 = clock_type::now();
  auto ec = a->wait(60ms);
  auto waited = clock_type::now() - t0;
  CHECK(ec == swactor::errc::timeout);
  CHECK(waited >= 55ms);
  CHECK(waited < 2s);

  // A wakeup before the wait is not lost.
  CHECK(a->wakeup() == 0);  // nobody sleeping, but the flag is set
  CHECK_FALSE(a->wait(10ms));

  // wakeup(n) wakes several sleepers across processes via notify/wait_while.
  a->set(0);
  std::vector<pid_t> sleepers;
  for (int i = 0; i < 3; ++i)
    sleepers.push_back(fork_child([&] {
      auto deadline = clock_type::now() + 5s;
      while (a->get() == 0) {
        if (clock_type::now() > deadline) return 1;
        a->wait_while(0, 1s);
      }
      return 0;
    }));
  std::this_thread::sleep_for(50ms);
  a->set(9);
  a->notify(-1);
  for (pid_t p : sleepers) {
    int s = reap(p, 10s);
    CHECK((WIFEXITED(s) && WEXITSTATUS(s) == 0));
  }
}

TEST_CASE("mutex excludes across processes, lock times out, dead owner recovered", "[lock][multiprocess]") {
  auto m = mutex::create();
  auto counter = atomic64::create(0);
  REQUIRE(m);
  REQUIRE(counter);
  // A non-atomic read-modify-write protected by the lock stays exact.
  auto codes = run_children(4, [&](int) {
    for (int i = 0; i < 20000; ++i) {
      std::lock_guard g(*m);
      auto v = counter->get();
      counter->set(v + 1);
    }
    return 0;
  });
  for (int c : codes) CHECK(c == 0);
  CHECK(counter->get() == 80000);

  auto held = atomic::create(0);
  REQUIRE(held);
  pid_t owner = fork_child([&] {
    if (m->lock()) return 1;
    held->set(1);
    held->notify();
    ::pause();
    return 0;
  });
  while (held->get() == 0) held->wait_while(0, 100ms);
  CHECK_FALSE(m->try_lock());
  auto t0 = clock_type::now();
  CHECK(m->lock(50ms) == swactor::errc::timeout);
  CHECK(clock_type::now() - t0 >= 45ms);
  ::kill(owner, SIGKILL);
  reap(owner);
  CHECK_FALSE(m->lock(2s));  // robust: taken over from the dead owner
  CHECK(m->owner_deaths() == 1);
  m->unlock();
  CHECK(m->try_lock());
  m->unlock();
}

TEST_CASE("rwlock: readers share, a writer waits and times out", "[lock][multiprocess]") {
  auto rw = rwlock::create();
  REQUIRE(rw);
  auto held = atomic::create(0);
  REQUIRE(held);
  pid_t reader = fork_child([&] {
    if (rw->lock_shared()) return 1;
    held->set(1);
    held->notify();
    ::pause();
    return 0;
  });
  while (held->get() == 0) held->wait_while(0, 100ms);
  CHECK(rw->try_lock_shared());  // a second reader gets in
  rw->unlock_shared();
  CHECK_FALSE(rw->try_lock());
  CHECK(rw->lock(50ms) == swactor::errc::timeout);
  ::kill(reader, SIGKILL);
  reap(reader);
  // not robust: the dead reader's share is never released (documented)
  CHECK(rw->lock(20ms) == swactor::errc::timeout);

  auto rw2 = rwlock::create();
  REQUIRE(rw2);
  CHECK_FALSE(rw2->lock(10ms));
  // (the same thread would get EDEADLK; another process waits and times out)
  pid_t other = fork_child([&] { return rw2->lock_shared(20ms) == swactor::errc::timeout ? 0 : 1; });
  int st = reap(other, 10s);
  CHECK((WIFEXITED(st) && WEXITSTATUS(st) == 0));
  rw2->unlock();
  CHECK_FALSE(rw2->lock_shared(10ms));
  rw2->unlock_shared();
}

TEST_CASE("spinlock: exclusion, timeout, dead owner recovered", "[lock][multiprocess]") {
  auto sl = spinlock::create();
  auto counter = atomic64::create(0);
  REQUIRE(sl);
  REQUIRE(counter);
  auto codes = run_children(4, [&](int) {
    for (int i = 0; i < 50000; ++i) {
      std::lock_guard g(*sl);
      counter->set(counter->get() + 1);
    }
    return 0;
  });
  for (int c : codes) CHECK(c == 0);
  CHECK(counter->get() == 200000);

  auto held = atomic::create(0);
  REQUIRE(held);
  pid_t owner = fork_child([&] {
    sl->lock();
    held->set(1);
    held->notify();
    ::pause();
    return 0;
  });
  while (held->get() == 0) held->wait_while(0, 100ms);
  CHECK_FALSE(sl->try_lock());
  CHECK(sl->lock(30ms) == swactor::errc::timeout);
  ::kill(owner, SIGKILL);
  reap(owner);
  CHECK_FALSE(sl->lock(2s));
  CHECK(sl->owner_deaths() == 1);
  sl->unlock();
  CHECK(mutex::attach(sl->fd()).error() == shm_errc::bad_segment);
}
