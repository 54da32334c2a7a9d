// Core runtime benchmarks (issue: foundation). Each figure is measured next to its
// reference in the same run; see docs/benchmarks.md.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <unistd.h>

#include <asio/experimental/channel.hpp>
#include <caf/all.hpp>

#include "bench_report.hpp"
#include "swactor/core/channel.hpp"
#include "swactor/core/loop.hpp"
#include "swactor/core/timers.hpp"
#include "swactor/core/wait_group.hpp"

using namespace std::chrono_literals;
using swactor::task;
using clock_type = std::chrono::steady_clock;

namespace {

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

long rss_bytes() {
  std::ifstream in("/proc/self/statm");
  long size = 0, resident = 0;
  in >> size >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

// 1. spawn-and-complete rate.
double swactor_spawn_rate(int n) {
  swactor::loop lp;
  int done = 0;
  auto t0 = clock_type::now();
  for (int i = 0; i < n; ++i)
    swactor::spawn(lp.context(), [&]() -> task<void> {
      ++done;
      co_return;
    });
  lp.run();
  return done / seconds_since(t0);
}

double asio_spawn_rate(int n) {
  asio::io_context ctx;
  int done = 0;
  auto t0 = clock_type::now();
  for (int i = 0; i < n; ++i)
    asio::co_spawn(ctx, [&]() -> task<void> {
      ++done;
      co_return;
    }, asio::detached);
  ctx.run();
  return done / seconds_since(t0);
}

// 2. channel ping-pong: two coroutines, two channels of capacity 1.
double swactor_pingpong(int rounds) {
  swactor::loop lp;
  swactor::channel<int> ping(1), pong(1);
  auto t0 = clock_type::now();
  swactor::spawn(lp.context(), [&]() -> task<void> {
    for (int i = 0; i < rounds; ++i) {
      (void)co_await ping.push(i);
      (void)co_await pong.pop();
    }
  });
  swactor::spawn(lp.context(), [&]() -> task<void> {
    for (int i = 0; i < rounds; ++i) {
      auto v = co_await ping.pop();
      (void)co_await pong.push(*v);
    }
  });
  lp.run();
  return rounds / seconds_since(t0);
}

double asio_pingpong(int rounds) {
  asio::io_context ctx;
  using chan = asio::experimental::channel<void(std::error_code, int)>;
  chan ping(ctx, 1), pong(ctx, 1);
  auto t0 = clock_type::now();
  asio::co_spawn(ctx, [&]() -> task<void> {
    for (int i = 0; i < rounds; ++i) {
      co_await ping.async_send(std::error_code{}, i, asio::use_awaitable);
      (void)co_await pong.async_receive(asio::use_awaitable);
    }
  }, asio::detached);
  asio::co_spawn(ctx, [&]() -> task<void> {
    for (int i = 0; i < rounds; ++i) {
      int v = co_await ping.async_receive(asio::use_awaitable);
      co_await pong.async_send(std::error_code{}, v, asio::use_awaitable);
    }
  }, asio::detached);
  ctx.run();
  return rounds / seconds_since(t0);
}

// 3. typed request/response between two actors on one loop.
using ping_atom = caf::atom_constant<caf::atom("ping")>;
using ponger = caf::typed_actor<caf::replies_to<ping_atom, int>::with<int>>;

double caf_request_rate(int rounds) {
  swactor::loop lp;
  auto& sys = lp.actors();
  auto pong = sys.spawn([]() -> ponger::behavior_type {
    return {[](ping_atom, int x) { return x + 1; }};
  });
  clock_type::time_point t0;
  int done = 0;
  sys.spawn([&, pong](caf::event_based_actor* self) {
    t0 = clock_type::now();
    auto step = std::make_shared<std::function<void(int)>>();
    *step = [self, pong, step, &done, &lp, rounds](int x) {
      if (x == rounds) {
        done = x;
        self->send_exit(pong, caf::exit_reason::user_shutdown);
        self->quit();
        lp.stop();
        return;
      }
      self->request(pong, caf::infinite, ping_atom::value, x).then([step](int y) { (*step)(y); });
    };
    (*step)(0);
  });
  lp.run();
  return done / seconds_since(t0);
}

// 4. a million parked coroutines. Each waits on one shared wait group (a latch) that is
// released only once all of them are parked, so the RSS sample sees every frame alive and
// no figure depends on how fast this machine creates them (a fixed sleep did: on a slow
// machine the first ones finished while the last were still being created).
struct parked_result {
  double create_s = 0;       // spawn all and run each up to its wait
  std::uint64_t live = 0;    // coroutines alive when RSS was sampled
  double rss_per_coro = 0;   // RSS growth / live
  double finish_s = 0;       // release the latch, resume and finish all
  std::uint64_t woke = 0;
};
parked_result million_parked(int n) {
  swactor::loop lp;
  swactor::wait_group gate(1);
  const long rss0 = rss_bytes();
  parked_result r;
  auto t0 = clock_type::now();
  for (int i = 0; i < n; ++i)
    swactor::spawn(lp.context(), [&]() -> task<void> {
      (void)co_await gate.wait();
      ++r.woke;
    });
  // No time limit: nothing completes before the gate opens, so polling until every
  // coroutine is parked always terminates.
  while (gate.waiting() < static_cast<std::size_t>(n) && lp.context().poll_one() > 0) {
  }
  r.create_s = seconds_since(t0);
  r.live = lp.coroutine_stats().live;
  const long rss1 = rss_bytes();
  r.rss_per_coro = r.live ? double(rss1 - rss0) / double(r.live) : 0;
  auto t1 = clock_type::now();
  (void)gate.done();
  lp.run();
  r.finish_s = seconds_since(t1);
  return r;
}

// 5. a million after() timers.
double timers_rate(int n) {
  swactor::loop lp;
  int fired = 0;
  auto t0 = clock_type::now();
  for (int i = 0; i < n; ++i) lp.timers().after(std::chrono::milliseconds(1 + i % 100), [&] { ++fired; });
  lp.run();
  return fired / seconds_since(t0);
}

double asio_timers_rate(int n) {
  asio::io_context ctx;
  int fired = 0;
  std::vector<std::unique_ptr<asio::steady_timer>> timers;
  timers.reserve(n);
  auto t0 = clock_type::now();
  for (int i = 0; i < n; ++i) {
    timers.push_back(std::make_unique<asio::steady_timer>(ctx, std::chrono::milliseconds(1 + i % 100)));
    timers.back()->async_wait([&](std::error_code) { ++fired; });
  }
  ctx.run();
  return fired / seconds_since(t0);
}

}  // namespace

int main() {
  swactor::bench::report rep("core");
  const int spawn_n = 1'000'000, rounds = 1'000'000;

  rep.add({"spawn+complete trivial coroutines", swactor_spawn_rate(spawn_n), "coro/s",
           asio_spawn_rate(spawn_n), "bare asio::co_spawn", std::nullopt});

  double bare = asio_pingpong(rounds);
  rep.add({"Channel ping-pong round trips", swactor_pingpong(rounds), "rt/s", bare,
           "asio::experimental::channel ping-pong", 0.8});
  rep.add({"CAF typed request/response (one loop)", caf_request_rate(rounds / 2), "rt/s", bare,
           "asio::experimental::channel ping-pong", 0.6});

  const int parked_n = 1'000'000;
  auto s = million_parked(parked_n);
  if (s.live != static_cast<std::uint64_t>(parked_n) || s.woke != s.live)
    std::fprintf(stderr, "bench_core: %llu of %d coroutines live at the RSS sample, %llu woke\n",
                 static_cast<unsigned long long>(s.live), parked_n,
                 static_cast<unsigned long long>(s.woke));
  rep.add({"1M parked coroutines: create and park", s.create_s * 1000, "ms", std::nullopt, "",
           std::nullopt});
  rep.add({"1M parked coroutines: live at RSS sample", double(s.live), "coros", std::nullopt, "",
           std::nullopt});
  rep.add({"1M parked coroutines: RSS per live coroutine", s.rss_per_coro, "bytes", 1024.0,
           "target 1 KiB (Swoole reserves 2 MiB C stack + 8 KiB PHP stack)", std::nullopt});
  rep.add({"1M parked coroutines: release, wake+finish all", s.finish_s * 1000, "ms",
           std::nullopt, "", std::nullopt});

  rep.add({"1M after() timers added and fired", timers_rate(1'000'000), "timers/s",
           asio_timers_rate(1'000'000), "1M bare asio::steady_timer", std::nullopt});
  rep.finish();
  return 0;
}
