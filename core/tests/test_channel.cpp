#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "swactor/core/channel.hpp"
#include "swactor/core/loop.hpp"

using namespace std::chrono_literals;
using swactor::channel;
using swactor::errc;
using swactor::task;

TEST_CASE("buffered channel keeps FIFO order and reports stats", "[channel]") {
  swactor::loop lp;
  channel<int> ch(4);
  std::vector<int> got;
  swactor::spawn(lp.context(), [&]() -> task<void> {
    for (int i = 0; i < 10; ++i) {
      auto pushed = co_await ch.push(i);
      REQUIRE_FALSE(pushed);
    }
    ch.close();
  });
  swactor::spawn(lp.context(), [&]() -> task<void> {
    for (;;) {
      auto v = co_await ch.pop();
      if (!v) {
        CHECK(v.error() == errc::closed);
        break;
      }
      got.push_back(*v);
    }
  });
  REQUIRE(lp.run() == 0);
  REQUIRE(got == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  auto s = ch.stats();
  CHECK(s.capacity == 4);
  CHECK(s.size == 0);
  CHECK(s.closed);
}

TEST_CASE("stats count waiting producers and consumers", "[channel]") {
  swactor::loop lp;
  channel<int> full(1), empty(1);
  REQUIRE(full.try_push(1));
  for (int i = 0; i < 3; ++i)
    swactor::spawn(lp.context(), [&]() -> task<void> { co_await full.push(2, 50ms); });
  for (int i = 0; i < 2; ++i)
    swactor::spawn(lp.context(), [&]() -> task<void> { (void)co_await empty.pop(50ms); });
  swactor::channel_stats a, b;
  lp.timers().after(10ms, [&] {
    a = full.stats();
    b = empty.stats();
  });
  lp.run();
  CHECK(a.waiting_producers == 3);
  CHECK(a.size == 1);
  CHECK(b.waiting_consumers == 2);
  CHECK(full.stats().waiting_producers == 0);
}

TEST_CASE("pop times out on an empty channel, push times out on a full one", "[channel]") {
  swactor::loop lp;
  channel<int> ch(1);
  std::error_code pop_ec, push_ec;
  auto t0 = std::chrono::steady_clock::now();
  swactor::spawn(lp.context(), [&]() -> task<void> {
    auto v = co_await ch.pop(30ms);
    pop_ec = v.error();
    {
      auto pushed = co_await ch.push(1);
      REQUIRE_FALSE(pushed);
    }
    push_ec = co_await ch.push(2, 30ms);
  });
  REQUIRE(lp.run() == 0);
  CHECK(pop_ec == errc::timeout);
  CHECK(push_ec == errc::timeout);
  CHECK(std::chrono::steady_clock::now() - t0 >= 60ms);
  CHECK(ch.size() == 1);  // the timed-out value was not inserted
}

TEST_CASE("close wakes every waiter on both sides with closed", "[channel]") {
  swactor::loop lp;
  channel<int> consumers_side(1), producers_side(1);
  REQUIRE(producers_side.try_push(0));
  int closed_consumers = 0, closed_producers = 0;
  for (int i = 0; i < 5; ++i) {
    swactor::spawn(lp.context(), [&]() -> task<void> {
      auto v = co_await consumers_side.pop();
      if (v.error() == errc::closed) ++closed_consumers;
    });
    swactor::spawn(lp.context(), [&]() -> task<void> {
      auto ec = co_await producers_side.push(1);
      if (ec == errc::closed) ++closed_producers;
    });
  }
  lp.timers().after(5ms, [&] {
    CHECK(consumers_side.stats().waiting_consumers == 5);
    CHECK(producers_side.stats().waiting_producers == 5);
    consumers_side.close();
    producers_side.close();
  });
  REQUIRE(lp.run() == 0);
  CHECK(closed_consumers == 5);
  CHECK(closed_producers == 5);
  // After close: push fails, pop drains what was buffered, then reports closed.
  CHECK_FALSE(producers_side.try_push(9));
  CHECK(producers_side.try_pop() == 0);
}

TEST_CASE("unbuffered channel hands off: push waits for a consumer", "[channel]") {
  swactor::loop lp;
  channel<std::string> ch(0);
  std::vector<std::string> log;
  swactor::spawn(lp.context(), [&]() -> task<void> {
    log.push_back("push start");
    {
      auto pushed = co_await ch.push("a");
      REQUIRE_FALSE(pushed);
    }
    log.push_back("push done");
  });
  swactor::spawn(lp.context(), [&]() -> task<void> {
    co_await swactor::sleep(10ms);
    log.push_back("pop start");
    auto v = co_await ch.pop();
    REQUIRE(v);
    log.push_back("got " + *v);
  });
  REQUIRE(lp.run() == 0);
  REQUIRE(log.size() == 4);
  CHECK(log[0] == "push start");
  CHECK(log[1] == "pop start");
  // the consumer has the value before the producer resumes
  CHECK(log[2] == "got a");
  CHECK(log[3] == "push done");
  CHECK_FALSE(ch.try_push("x"));  // nobody waiting: an unbuffered push cannot complete now
}

TEST_CASE("many producers and consumers move every value exactly once", "[channel]") {
  swactor::loop lp;
  channel<int> ch(3);
  constexpr int producers = 8, per_producer = 500, consumers = 5;
  std::vector<int> seen(producers * per_producer, 0);
  int finished_producers = 0;
  for (int p = 0; p < producers; ++p) {
    swactor::spawn(lp.context(), [&, p]() -> task<void> {
      for (int i = 0; i < per_producer; ++i) {
      auto pushed = co_await ch.push(p * per_producer + i);
      REQUIRE_FALSE(pushed);
    }
      if (++finished_producers == producers) ch.close();
    });
  }
  for (int c = 0; c < consumers; ++c) {
    swactor::spawn(lp.context(), [&]() -> task<void> {
      for (;;) {
        auto v = co_await ch.pop();
        if (!v) break;
        ++seen[*v];
      }
    });
  }
  REQUIRE(lp.run() == 0);
  for (int n : seen) REQUIRE(n == 1);
}

TEST_CASE("cancelling a coroutine parked on a channel wakes it with cancelled", "[channel]") {
  swactor::loop lp;
  channel<int> ch(0);
  std::error_code ec;
  auto h = swactor::spawn(lp.context(), [&]() -> task<void> {
    auto v = co_await ch.pop();
    ec = v.error();
  });
  lp.timers().after(5ms, [&] { CHECK(h.cancel()); });
  REQUIRE(lp.run() == 0);
  CHECK(ec == errc::cancelled);
  CHECK(h.done());
  CHECK(ch.stats().waiting_consumers == 0);
  CHECK_FALSE(h.cancel());
}
