#pragma once
// `bus_bench`: the bus measured from inside a server (tests/bench/bench_bus.cpp drives it).
// A line protocol (eof framing "\n"), one reply line per command:
//
//   pubsub N SIZE SUBS [PACED] -> this worker publishes N messages of SIZE bytes (>= 8: a monotonic
//                          send timestamp first) to a topic that the SUBS workers after it
//                          subscribe to; answers "sent=N elapsed_us=E received=R p50_us=A
//                          p99_us=B" once every subscriber has handled them (received is the
//                          sum over subscribers; elapsed runs from the first publish to the
//                          last message handled by the slowest subscriber). Flat out, a full
//                          link to the master (send queue full) is waited out and retried;
//                          PACED = 1 yields to the loop after every publish (latency runs)
//   rr N SIZE           -> N request/reply round trips, one at a time, with the next worker;
//                          answers "n=N elapsed_us=E p50_us=A p99_us=B"
//
// Subscribers are told what to expect by a request on the bus, and asked for their counts
// by another one: requests and publishes from one sender reach a subscriber in order, so the
// count request is handled after the last message.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "swactor/actors/context.hpp"
#include "swactor/actors/module.hpp"
#include "swactor/core/histogram.hpp"
#include "swactor/ipc/envelope.hpp"

namespace swactor::apps {

class bus_bench final : public module_base {
 public:
  static constexpr std::string_view kName = "bus_bench";
  static constexpr std::string_view kDoc =
      "Bus benchmark driver (tests/bench/bench_bus): pubsub N SIZE SUBS, rr N SIZE over a line "
      "protocol (eof framing \"\\n\").";
  struct options {
    int workers = 0;
  };
  static config::schema<options> schema() {
    config::schema<options> s;
    s.integer("workers", &options::workers,
              "The server's worker count: peers are the workers after the one that runs a command, "
              "wrapping at this count (0 = no wrap).",
              0, 1024);
    return s;
  }
  explicit bus_bench(options o) : opts_(o) {}

  task<void> on_receive(context& ctx, session_id s, std::string msg) override {
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == '\r')) msg.pop_back();
    std::vector<std::int64_t> args;
    std::string_view rest(msg);
    auto sp = rest.find(' ');
    auto cmd = rest.substr(0, sp);
    rest = sp == std::string_view::npos ? std::string_view() : rest.substr(sp + 1);
    while (!rest.empty()) {
      auto e = rest.find(' ');
      args.push_back(std::stoll(std::string(rest.substr(0, e))));
      rest = e == std::string_view::npos ? std::string_view() : rest.substr(e + 1);
    }
    std::string reply;
    if (cmd == "pubsub" && (args.size() == 3 || args.size() == 4)) {
      reply = co_await pubsub(ctx, args[0], static_cast<std::size_t>(args[1]), static_cast<int>(args[2]),
                              args.size() == 4 && args[3] != 0);
    } else if (cmd == "rr" && args.size() == 2) {
      reply = co_await round_trips(ctx, args[0], static_cast<std::size_t>(args[1]));
    } else {
      reply = "error: expected pubsub N SIZE SUBS or rr N SIZE";
    }
    (void)ctx.send(s, reply + "\n");
  }

  task<void> on_bus_message(context& ctx, const bus::message& m) override {
    if (m.is_request()) {
      if (m.data == "reset") {
        (void)ctx.subscribe("bench.run");
        latency_.reset();
        received_ = 0;
        last_ns_ = 0;
        (void)ctx.reply(m, bus::payload::raw("ok"));
      } else if (m.data == "result") {
        // received, last handled (ns), then the latency histogram's p50 and p99 (ns).
        (void)ctx.reply(m, bus::payload::raw(std::to_string(received_) + " " + std::to_string(last_ns_) + " " +
                                             std::to_string(latency_.percentile(50)) + " " +
                                             std::to_string(latency_.percentile(99))));
      } else {
        (void)ctx.reply(m, bus::payload::raw(m.data));  // echo: round trips
      }
      co_return;
    }
    auto now = now_ns();
    if (m.data.size() >= 8) {
      std::uint64_t sent = 0;
      std::memcpy(&sent, m.data.data(), 8);
      latency_.record(now > sent ? now - sent : 0);
    }
    ++received_;
    last_ns_ = now;
  }

 private:
  static std::uint64_t now_ns() {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count());
  }
  static std::string stamped(std::size_t size) {
    std::string p(std::max<std::size_t>(size, 8), 'x');
    auto t = now_ns();
    std::memcpy(p.data(), &t, 8);
    return p;
  }
  int peer(context& ctx, int k) const {
    int w = ctx.worker_id() + k;
    return opts_.workers > 0 ? w % opts_.workers : w;
  }

  task<std::string> pubsub(context& ctx, std::int64_t n, std::size_t size, int subs, bool paced) {
    using namespace std::chrono_literals;
    std::vector<int> targets;
    for (int k = 1; k <= subs; ++k) targets.push_back(peer(ctx, k));
    for (int w : targets) {
      auto r = co_await ctx.request(bus::target::worker(w), bus::payload::raw("reset"), 5s);
      if (!r) co_return "error: reset worker " + std::to_string(w) + ": " + r.error().message();
    }
    auto start = now_ns();
    for (std::int64_t i = 0; i < n; ++i) {
      // publish only queues: yield now and then so the link writes, and wait out a full queue.
      int tries = 0;
      while (auto ec = ctx.publish("bench.run", bus::payload::raw(stamped(size)))) {
        if (ec != make_error_code(ipc::errc::queue_full) || ++tries > 10000) co_return "error: publish: " + ec.message();
        co_await sleep(1ms);
      }
      if (paced || i % 256 == 255) co_await sleep(0ms);
    }
    std::uint64_t received = 0, last = 0, p50 = 0, p99 = 0;
    for (int w : targets) {
      auto r = co_await ctx.request(bus::target::worker(w), bus::payload::raw("result"), 60s);
      if (!r) co_return "error: result of worker " + std::to_string(w) + ": " + r.error().message();
      std::uint64_t c = 0, l = 0, a = 0, b = 0;
      std::sscanf(r->data.c_str(), "%lu %lu %lu %lu", &c, &l, &a, &b);
      received += c;
      last = std::max(last, l);
      p50 = std::max(p50, a);
      p99 = std::max(p99, b);
    }
    co_return "sent=" + std::to_string(n) + " elapsed_us=" + std::to_string((last > start ? last - start : 0) / 1000) +
        " received=" + std::to_string(received) + " p50_us=" + std::to_string(p50 / 1000) +
        " p99_us=" + std::to_string(p99 / 1000);
  }

  task<std::string> round_trips(context& ctx, std::int64_t n, std::size_t size) {
    using namespace std::chrono_literals;
    histogram h;
    auto start = now_ns();
    std::string payload(size, 'x');
    for (std::int64_t i = 0; i < n; ++i) {
      auto t0 = now_ns();
      auto r = co_await ctx.request(bus::target::worker(peer(ctx, 1)), bus::payload::raw(payload), 5s);
      if (!r) co_return "error: request " + std::to_string(i) + ": " + r.error().message();
      h.record(now_ns() - t0);
    }
    auto elapsed = now_ns() - start;
    co_return "n=" + std::to_string(n) + " elapsed_us=" + std::to_string(elapsed / 1000) +
        " p50_us=" + std::to_string(h.percentile(50) / 1000) + " p99_us=" + std::to_string(h.percentile(99) / 1000);
  }

  options opts_;
  histogram latency_;
  std::uint64_t received_ = 0;
  std::uint64_t last_ns_ = 0;
};

}  // namespace swactor::apps
