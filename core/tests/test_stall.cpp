#include <catch2/catch.hpp>

#include "swactor/core/channel.hpp"
#include "swactor/core/loop.hpp"
#include "swactor/core/wait_group.hpp"

#include <ctime>
#include <thread>

#include <asio/post.hpp>

using namespace std::chrono_literals;
using swactor::task;

TEST_CASE("a loop whose coroutines all wait on each other reports a stall", "[stall]") {
  swactor::loop lp;
  swactor::channel<int> a(0), b(0);
  // Classic deadlock: each pops what only the other would push afterwards.
  swactor::spawn(lp.context(), [&]() -> task<void> {
    auto v = co_await a.pop();
    (void)co_await b.push(v ? *v : 0);
  }, "first");
  swactor::spawn(lp.context(), [&]() -> task<void> {
    auto v = co_await b.pop();
    (void)co_await a.push(v ? *v : 0);
  }, "second");
  REQUIRE(lp.run() == 1);  // standalone: non-zero exit
  CHECK(lp.stalled());
  const auto& r = lp.last_stall();
  REQUIRE(r.coroutines.size() == 2);
  auto text = r.to_string();
  CHECK_THAT(text, Catch::Contains("deadlock"));
  CHECK_THAT(text, Catch::Contains("'first'"));
  CHECK_THAT(text, Catch::Contains("'second'"));
  CHECK_THAT(text, Catch::Contains("test_stall.cpp"));
}

TEST_CASE("a wait group nobody finishes is a stall too", "[stall]") {
  swactor::loop lp;
  swactor::wait_group wg(1);
  swactor::spawn(lp.context(), [&]() -> task<void> { (void)co_await wg.wait(); });
  CHECK(lp.run() == 1);
  CHECK(lp.last_stall().coroutines.size() == 1);
}

TEST_CASE("no stall while a timer or a deadline can still wake someone", "[stall]") {
  swactor::loop lp;
  swactor::channel<int> ch(0);
  int got = 0;
  swactor::spawn(lp.context(), [&]() -> task<void> {
    auto v = co_await ch.pop();  // parked without deadline ...
    if (v) got = *v;
  });
  lp.timers().after(20ms, [&] { ch.try_push(7); });  // ... but a timer will push
  swactor::spawn(lp.context(), [&]() -> task<void> {
    co_await swactor::sleep(10ms);  // and a sleeping coroutine is not parked
  });
  REQUIRE(lp.run() == 0);
  CHECK_FALSE(lp.stalled());
  CHECK(got == 7);
}

TEST_CASE("a stall with stall_action::log keeps the loop alive", "[stall]") {
  swactor::loop lp({.on_stall = swactor::stall_action::log});
  swactor::channel<int> ch(0);
  swactor::spawn(lp.context(), [&]() -> task<void> { (void)co_await ch.pop(); });
  // Something outside the kit (here another thread) wakes the loop later.
  std::thread t([&] {
    std::this_thread::sleep_for(30ms);
    asio::post(lp.context(), [&] { ch.try_push(1); });
  });
  CHECK(lp.run() == 0);
  t.join();
  CHECK(lp.stalled());
}

TEST_CASE("an idle server loop checks once and sleeps, and still finds a stall that comes later", "[stall]") {
  swactor::loop lp({.on_stall = swactor::stall_action::stop, .stall_check_after = 5ms});
  swactor::channel<int> ch(0);
  swactor::spawn(lp.context(), [&]() -> task<void> {
    co_await swactor::sleep(150ms);  // idle, but a deadline can still wake it: no stall
    (void)co_await ch.pop();         // then nothing can: a stall
  }, "late");
  REQUIRE(lp.run() == 1);
  CHECK(lp.stalled());
  REQUIRE(lp.last_stall().coroutines.size() == 1);
  CHECK(lp.last_stall().coroutines[0].name == "late");
  // Once during the sleep and once after the pop; an idle timer that kept firing every
  // interval would have fired about 30 times.
  CHECK(lp.idle_checks() >= 2);
  CHECK(lp.idle_checks() <= 4);
}

TEST_CASE("a server loop with nothing left to do still runs until stop()", "[stall]") {
  swactor::loop lp({.on_stall = swactor::stall_action::log, .stall_check_after = 5ms});
  bool stopped_by_us = false;
  std::thread t([&] {
    std::this_thread::sleep_for(60ms);
    lp.post_any([&] {
      stopped_by_us = true;
      lp.stop();
    });
  });
  CHECK(lp.run() == 0);
  t.join();
  CHECK(stopped_by_us);
  CHECK(lp.idle_checks() <= 2);
}

TEST_CASE("a server loop woken from its idle sleep again and again, with nothing else pending, runs until stop()",
          "[stall]") {
  // Re-arming the idle timer after a wake-up released the idle guard first: with no other
  // work pending, asio's count of work touched 0 and stopped the loop.
  swactor::loop lp({.on_stall = swactor::stall_action::log, .stall_check_after = 5ms});
  int seen = 0;
  std::thread t([&] {
    for (int i = 0; i < 3; ++i) {
      std::this_thread::sleep_for(40ms);
      lp.post_any([&] { ++seen; });
    }
    std::this_thread::sleep_for(40ms);
    lp.post_any([&] { lp.stop(); });
  });
  CHECK(lp.run() == 0);
  t.join();
  CHECK(seen == 3);
}

namespace {
std::chrono::microseconds thread_cpu() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::microseconds(ts.tv_nsec / 1000);
}
}  // namespace

TEST_CASE("a polling server loop polls after its work, then sleeps, and still stops and finds stalls", "[stall]") {
  SECTION("a 20 ms window after the last handler, then sleep until stop()") {
    swactor::loop lp({.on_stall = swactor::stall_action::log,
                      .stall_check_after = 5ms,
                      .busy_poll = std::chrono::microseconds(20'000)});
    bool first = false, stopped_by_us = false;
    asio::post(lp.context(), [&] { first = true; });
    std::thread t([&] {
      std::this_thread::sleep_for(150ms);
      lp.post_any([&] {
        stopped_by_us = true;
        lp.stop();
      });
    });
    const auto cpu0 = thread_cpu();
    CHECK(lp.run() == 0);
    const auto cpu = thread_cpu() - cpu0;
    t.join();
    CHECK(first);
    CHECK(stopped_by_us);
    // It polled after the first handler (how often depends on what else wants this CPU: it
    // yields between polls) ...
    CHECK(lp.empty_polls() > 0);
    // ... and then slept: polling the whole 150 ms would cost about that much CPU.
    CHECK(cpu <= 90ms);
  }
  SECTION("the window shrinks to 0 over sleeps longer than busy_poll and grows over shorter gaps") {
    swactor::loop lp({.on_stall = swactor::stall_action::log,
                      .stall_check_after = 5ms,
                      .busy_poll = std::chrono::microseconds(40'000)});
    CHECK(lp.poll_window() == 40ms);
    std::chrono::microseconds after_lulls{-1}, after_gaps{-1};
    std::thread t([&] {
      // Sleeps of 150 ms (> 40 ms): 40 -> 20 -> 10 -> 5 (an eighth) -> 0.
      for (int i = 0; i < 6; ++i) {
        std::this_thread::sleep_for(150ms);
        lp.post_any([] {});
      }
      lp.post_any([&] { after_lulls = lp.poll_window(); });
      // Gaps of 5 ms after a closed window (< 40 ms): polling longer would have caught them.
      for (int i = 0; i < 4; ++i) {
        std::this_thread::sleep_for(5ms);
        lp.post_any([] {});
      }
      std::this_thread::sleep_for(5ms);
      lp.post_any([&] {
        after_gaps = lp.poll_window();
        lp.stop();
      });
    });
    CHECK(lp.run() == 0);
    t.join();
    CHECK(after_lulls == std::chrono::microseconds(0));
    CHECK(after_gaps > std::chrono::microseconds(0));
    CHECK(after_gaps <= 40ms);
  }
  SECTION("timers fire and a stall is found as without polling") {
    swactor::loop lp({.on_stall = swactor::stall_action::stop,
                      .stall_check_after = 5ms,
                      .busy_poll = std::chrono::microseconds(500)});
    swactor::channel<int> ch(0);
    int fired = 0;
    lp.timers().after(20ms, [&] { ++fired; });
    swactor::spawn(lp.context(), [&]() -> task<void> {
      co_await swactor::sleep(60ms);
      (void)co_await ch.pop();  // nothing can push: a stall
    }, "polled");
    REQUIRE(lp.run() == 1);
    CHECK(fired == 1);
    CHECK(lp.stalled());
    REQUIRE(lp.last_stall().coroutines.size() == 1);
    CHECK(lp.last_stall().coroutines[0].name == "polled");
  }
}
