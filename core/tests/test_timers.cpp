#include <catch2/catch.hpp>

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
  t.after(30ms, [&] { order.push_back(3); });
  t.after(10ms, [&] { order.push_back(1); });
  t.after(20ms, [&] { order.push_back(2); });
  t.after(20ms, [&] { order.push_back(22); });
  REQUIRE(lp.run() == 0);
  CHECK(order == std::vector<int>{1, 2, 22, 3});
  CHECK(t.stats().count == 0);
  CHECK(t.stats().fired == 4);
}

TEST_CASE("tick repeats until cleared; info reports exec count and interval", "[timers]") {
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
