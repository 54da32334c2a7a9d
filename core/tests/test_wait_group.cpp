#include <catch2/catch.hpp>

#include "swactor/core/loop.hpp"
#include "swactor/core/wait_group.hpp"

using namespace std::chrono_literals;
using swactor::errc;
using swactor::task;

TEST_CASE("wait group waits for every done", "[wait_group]") {
  swactor::loop lp;
  swactor::wait_group wg;
  int finished = 0;
  bool waited = false;
  for (int i = 1; i <= 5; ++i) {
    REQUIRE_FALSE(wg.add());
    swactor::spawn(lp.context(), [&, i]() -> task<void> {
      co_await swactor::sleep(std::chrono::milliseconds(i * 2));
      ++finished;
      wg.done();
    });
  }
  swactor::spawn(lp.context(), [&]() -> task<void> {
    auto ec = co_await wg.wait();
    CHECK_FALSE(ec);
    CHECK(finished == 5);
    waited = true;
  });
  REQUIRE(lp.run() == 0);
  CHECK(waited);
  CHECK(wg.count() == 0);
}

TEST_CASE("wait group wait times out and leaves no waiter behind", "[wait_group]") {
  swactor::loop lp;
  swactor::wait_group wg(1);
  std::error_code ec;
  swactor::spawn(lp.context(), [&]() -> task<void> { ec = co_await wg.wait(20ms); });
  REQUIRE(lp.run() == 0);
  CHECK(ec == errc::timeout);
  CHECK(wg.waiting() == 0);
  CHECK(wg.count() == 1);
}

TEST_CASE("a negative wait group counter is an error and changes nothing", "[wait_group]") {
  swactor::wait_group wg;
  CHECK(wg.done() == errc::negative_counter);
  CHECK(wg.count() == 0);
  REQUIRE_FALSE(wg.add(2));
  CHECK(wg.add(-3) == errc::negative_counter);
  CHECK(wg.count() == 2);
}

TEST_CASE("wait on a zero counter returns at once", "[wait_group]") {
  swactor::loop lp;
  swactor::wait_group wg;
  bool done = false;
  swactor::spawn(lp.context(), [&]() -> task<void> {
    auto ec = co_await wg.wait();
    done = !ec;
  });
  REQUIRE(lp.run() == 0);
  CHECK(done);
}
