#pragma once
// The load-test engine. Every connection is a coroutine; connections are spread over
// loops (one per thread). Standalone: run() owns `threads` loops. Embedded (the `bench`
// module): co_await run_here() runs every connection on the caller's loop.
//
//   bench::settings s;  s.server = ...;  s.mode = "long_tcp";  s.requests = 10000;
//   bench::runner r(s);            // throws std::invalid_argument on bad settings
//   bench::results res = r.run();  // blocks; r.stop() from any thread ends it early
//
// -n counts exactly: a request is counted once it ends, as ok or as one error kind; after
// stop() requests still in flight are dropped (results.interrupted). With -d no request
// starts after the deadline; those in flight get min(timeout, 1 s) to finish.

#include <functional>
#include <memory>

#include "results.hpp"
#include "settings.hpp"
#include "swactor/core/coro.hpp"

namespace swactor::bench {

// Every semantic check of `s` (mode exists and fits the URL, -n xor -d, ranges, the mode's
// own limits). Empty when fine, else a one-line reason.
std::string validate(const settings& s);

class runner {
 public:
  explicit runner(settings s);
  ~runner();
  runner(const runner&) = delete;
  runner& operator=(const runner&) = delete;

  // Runs on settings.threads loops of its own (capped at the connection count) and
  // returns the merged results. `on_tick` runs on the calling thread about every
  // `tick` while the run goes on (progress display, signal polling).
  results run(const std::function<void(const progress&)>& on_tick = {},
               std::chrono::milliseconds tick = std::chrono::milliseconds(100));

  // Runs every connection on the current coroutine's loop; settings.threads is ignored.
  task<results> run_here();

  // Ends the run early: no new requests, in-flight I/O is cancelled. Any thread; idempotent.
  void stop();

  // Live counters; any thread.
  progress snapshot() const;

  const settings& config() const noexcept;

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace swactor::bench
