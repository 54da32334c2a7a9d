#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "swactor/core/loop.hpp"
#include "swactor/core/timers.hpp"

using namespace std::chrono_literals;
using swactor::task;
using swactor::timer_id;

TEST_CASE("after() timers fire in due order, FIFO among equal deadlines", "[timers]") {
  swactor::loop lp;
  auto& t = lp.timers();
  std::vector<int> order;
  // Registered out of order, 100 ms apart: a thread descheduled between two calls (a loaded
  // CI machine) shifts a deadline by that long before the order could change.
  t.after(300ms, [&] { order.push_back(3); });
  t.after(100ms, [&] { order.push_back(1); });
  t.after(200ms, [&] { order.push_back(2); });
  t.after(200ms, [&] { order.push_back(22); });
  REQUIRE(lp.run() == 0);
  CHECK(order == std::vector<int>{1, 2, 22, 3});
  CHECK(t.stats().count == 0);
  CHECK(t.stats().fired == 4);
}

TEST_CASE("tick repeats until cleared, info reports exec count and interval", "[timers]") {
  swactor::loop lp;
  auto& t = lp.timers();
  int ticks = 0;
  auto id = t.tick(5ms, [&](timer_id) { ++ticks; });
  t.after(58ms, [&] {
    auto info = t.info(id);
    REQUIRE(info);
    CHECK(info->repeating);
    CHECK(info->interval == 5ms);
    CHECK(info->exec_count == static_cast<std::uint64_t>(ticks));
    CHECK(t.exists(id));
    CHECK(t.list() == std::vector<timer_id>{id});
    CHECK(t.clear(id));
  });
  REQUIRE(lp.run() == 0);
  // 58 ms / 5 ms: about 11, with slack for a loaded machine but never more than 11.
  CHECK(ticks >= 5);
  CHECK(ticks <= 11);
  CHECK_FALSE(t.exists(id));
  CHECK_FALSE(t.clear(id));
  CHECK_FALSE(t.info(id));
}

TEST_CASE("a tick can clear itself from its own callback", "[timers]") {
  swactor::loop lp;
  auto& t = lp.timers();
  int ticks = 0;
  t.tick(2ms, [&](timer_id self) {
    if (++ticks == 3) CHECK(t.clear(self));
  });
  REQUIRE(lp.run() == 0);  // returns: nothing is left once the tick is gone
  CHECK(ticks == 3);
  CHECK(t.stats().count == 0);
}

TEST_CASE("clear before due, clear_all, and coroutine callbacks", "[timers]") {
  swactor::loop lp;
  auto& t = lp.timers();
  bool fired_cleared = false, fired_coro = false;
  auto a = t.after(10ms, [&] { fired_cleared = true; });
  CHECK(t.clear(a));
  t.after(5ms, [&]() -> task<void> {
    co_await swactor::sleep(1ms);
    fired_coro = true;
  });
  REQUIRE(lp.run() == 0);
  CHECK_FALSE(fired_cleared);
  CHECK(fired_coro);

  int n = 0;
  t.tick(1ms, [&] { ++n; });
  t.tick(1ms, [&] { ++n; });
  CHECK(t.stats().count == 2);
  t.clear_all();
  CHECK(t.stats().count == 0);
  REQUIRE(lp.run() == 0);
  CHECK(n == 0);
}

// -- manual clock --------------------------------------------------------------------------

TEST_CASE("manual clock: advance runs due entries in order and ticks once per interval", "[timers]") {
  swactor::loop lp;
  auto& t = lp.timers();
  t.use_manual_clock();
  REQUIRE(t.manual_clock());
  std::vector<std::string> order;
  t.after(250ms, [&] { order.push_back("after250"); });
  auto tick = t.tick(100ms, [&](timer_id) { order.push_back("tick"); });
  t.after(100ms, [&] { order.push_back("after100"); });  // same due as the first tick: FIFO

  CHECK(t.advance(99ms) == 0);
  CHECK(order.empty());
  CHECK(t.info(tick)->remaining == 1ms);
  CHECK(t.advance(1ms) == 2);
  CHECK(order == std::vector<std::string>{"tick", "after100"});
  order.clear();
  // 100 -> 420: ticks at 200, 300, 400 and the one-shot at 250, in due order.
  CHECK(t.advance(320ms) == 4);
  CHECK(order == std::vector<std::string>{"tick", "after250", "tick", "tick"});
  CHECK(t.info(tick)->exec_count == 4);
  CHECK(t.info(tick)->remaining == 80ms);
  CHECK(t.list() == std::vector<timer_id>{tick});
}

TEST_CASE("manual clock: nothing fires in real time, and a cleared entry never runs", "[timers]") {
  swactor::loop lp;
  auto& t = lp.timers();
  t.use_manual_clock();
  int fired = 0;
  t.after(1ms, [&] { ++fired; });
  auto gone = t.after(5ms, [&] { fired += 100; });
  CHECK(t.clear(gone));
  // No asio timer is armed: the loop has nothing to wait for and returns at once.
  REQUIRE(lp.run() == 0);
  CHECK(fired == 0);
  CHECK(t.advance(10ms) == 1);
  CHECK(fired == 1);
  CHECK(t.stats().count == 0);
}

TEST_CASE("manual clock: coroutines spawned by callbacks run before advance returns", "[timers]") {
  swactor::loop lp;
  auto& t = lp.timers();
  t.use_manual_clock();
  std::vector<int> seen;
  t.tick(10ms, [&](timer_id id) -> task<void> {
    seen.push_back(static_cast<int>(t.info(id)->exec_count));
    co_return;
  });
  // A callback adding an entry: it follows the manual clock too.
  t.after(15ms, [&] { t.after(20ms, [&] { seen.push_back(-1); }); });
  CHECK(t.advance(30ms) == 4);  // ticks at 10, 20, 30; the after at 15
  CHECK(seen == std::vector<int>{1, 2, 3});
  CHECK(t.advance(5ms) == 1);  // 35: the entry added at 15 for +20
  CHECK(seen == std::vector<int>{1, 2, 3, -1});
}

TEST_CASE("advance does nothing on the real clock", "[timers]") {
  swactor::loop lp;
  auto& t = lp.timers();
  int fired = 0;
  t.after(1ms, [&] { ++fired; });
  CHECK_FALSE(t.manual_clock());
  CHECK(t.advance(1000ms) == 0);
  CHECK(fired == 0);
  REQUIRE(lp.run() == 0);  // the real timer still fires
  CHECK(fired == 1);
}
