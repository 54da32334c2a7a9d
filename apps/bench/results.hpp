#pragma once
// What a run measured: counts, errors by kind, bytes, duration and the latency histogram,
// plus its renderings (final table, JSON report, live progress line).

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "settings.hpp"
#include "swactor/core/histogram.hpp"

namespace swactor::bench {

enum class error_kind : std::uint8_t {
  connect_refused,  // ECONNREFUSED / no such Unix socket / ICMP port unreachable
  timeout,          // a connect, write or read passed --timeout
  reset,            // ECONNRESET, EPIPE, ECONNABORTED
  short_read,       // the peer closed before the whole reply arrived
  mismatch,         // --verify: the reply differs from the request; or a malformed frame
  other,
  server_error,     // a well-formed reply that reports failure (redis: an error reply "-...")
  handshake,        // the session's opening exchange failed (WebSocket: no 101, wrong accept key)
};
inline constexpr std::size_t error_kind_count = 8;
std::string_view error_kind_name(error_kind k);

struct results {
  std::uint64_t requests = 0;  // counted requests: ok + errors (== -n unless interrupted)
  std::uint64_t ok = 0;
  std::array<std::uint64_t, error_kind_count> errors{};
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_received = 0;
  std::uint64_t connections = 0;  // successful connects
  double duration_s = 0;
  bool interrupted = false;       // stop() (SIGINT) ended the run early
  histogram latency_ns;           // successful requests only
  // Modes with a reply status (HTTP): replies by status class, [0] = 1xx .. [4] = 5xx;
  // counted for every whole reply, --verify mismatches included.
  bool has_status = false;
  std::array<std::uint64_t, 5> status{};
  // Why the first failed handshake failed (e.g. "HTTP/1.1 404 Not Found"): a count alone
  // does not say what the server objected to. Empty when none failed.
  std::string handshake_error;
  // Multiplexed modes (h2): the most requests one connection had on the wire at once.
  std::uint64_t peak_in_flight = 0;

  std::uint64_t error_total() const noexcept;
  double rps() const noexcept;          // successful requests per second
  double bytes_per_s() const noexcept;  // sent + received per second
  void merge(const results& other);     // everything but duration_s / interrupted
};

// A live snapshot, readable from any thread while the run goes on.
struct progress {
  std::uint64_t requests = 0;
  std::uint64_t errors = 0;
  double elapsed_s = 0;
};

// {"settings", "environment", "requests", "ok", "errors", "duration_s", "rps",
//  "bytes_per_s", "latency_us": {min, p50, p90, p99, p999, max, mean, stddev}, ...},
// plus "status": {"1xx", .., "5xx"} for modes with a reply status.
nlohmann::json to_json(const settings& s, const results& r);
std::string format_table(const settings& s, const results& r);
// "done N  rate R/s  errors E": `rate` is the caller's current rate.
std::string format_progress(const progress& p, double rate);

}  // namespace swactor::bench
