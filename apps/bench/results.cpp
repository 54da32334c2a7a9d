#include "results.hpp"

#include <sys/utsname.h>

#include <algorithm>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

// The build may pass the project version; the fallback keeps the file self-contained.
#ifndef SWACTOR_VERSION
#define SWACTOR_VERSION "0.1.0"
#endif

namespace swactor::bench {

std::string_view error_kind_name(error_kind k) {
  switch (k) {
    case error_kind::connect_refused: return "connect_refused";
    case error_kind::timeout: return "timeout";
    case error_kind::reset: return "reset";
    case error_kind::short_read: return "short_read";
    case error_kind::mismatch: return "mismatch";
    case error_kind::other: return "other";
    case error_kind::server_error: return "server_error";
    case error_kind::handshake: return "handshake";
  }
  return "other";
}

std::uint64_t results::error_total() const noexcept {
  std::uint64_t n = 0;
  for (auto e : errors) n += e;
  return n;
}

double results::rps() const noexcept {
  return duration_s > 0 ? static_cast<double>(ok) / duration_s : 0.0;
}

double results::bytes_per_s() const noexcept {
  return duration_s > 0 ? static_cast<double>(bytes_sent + bytes_received) / duration_s : 0.0;
}

void results::merge(const results& o) {
  requests += o.requests;
  ok += o.ok;
  for (std::size_t i = 0; i < error_kind_count; ++i) errors[i] += o.errors[i];
  bytes_sent += o.bytes_sent;
  bytes_received += o.bytes_received;
  connections += o.connections;
  latency_ns.merge(o.latency_ns);
  has_status = has_status || o.has_status;
  for (std::size_t i = 0; i < status.size(); ++i) status[i] += o.status[i];
  if (handshake_error.empty()) handshake_error = o.handshake_error;
  peak_in_flight = std::max(peak_in_flight, o.peak_in_flight);
}

namespace {

double us(std::uint64_t ns) { return static_cast<double>(ns) / 1000.0; }

std::string kernel_release() {
  utsname u{};
  if (uname(&u) != 0) return "unknown";
  return std::string(u.sysname) + " " + u.release;
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB"};
  int i = 0;
  while (b >= 1024 && i < 3) {
    b /= 1024;
    ++i;
  }
  return fmt::format("{:.2f} {}", b, units[i]);
}

}  // namespace

nlohmann::json to_json(const settings& s, const results& r) {
  nlohmann::json errors = nlohmann::json::object();
  for (std::size_t i = 0; i < error_kind_count; ++i)
    errors[std::string(error_kind_name(static_cast<error_kind>(i)))] = r.errors[i];
  const auto& h = r.latency_ns;
  nlohmann::json j = {
      {"settings", to_json(s)},
      {"environment",
       {{"cores", std::thread::hardware_concurrency()},
        {"kernel", kernel_release()},
        {"swactor_version", SWACTOR_VERSION}}},
      {"requests", r.requests},
      {"ok", r.ok},
      {"errors", errors},
      {"error_total", r.error_total()},
      {"interrupted", r.interrupted},
      {"connections", r.connections},
      {"duration_s", r.duration_s},
      {"rps", r.rps()},
      {"bytes_sent", r.bytes_sent},
      {"bytes_received", r.bytes_received},
      {"bytes_per_s", r.bytes_per_s()},
      {"latency_us",
       {{"min", us(h.min())},
        {"p50", us(h.percentile(50))},
        {"p90", us(h.percentile(90))},
        {"p99", us(h.percentile(99))},
        {"p999", us(h.percentile(99.9))},
        {"max", us(h.max())},
        {"mean", h.mean() / 1000.0},
        {"stddev", h.stddev() / 1000.0}}},
  };
  if (r.has_status) {
    nlohmann::json st = nlohmann::json::object();
    for (std::size_t i = 0; i < r.status.size(); ++i) st[fmt::format("{}xx", i + 1)] = r.status[i];
    j["status"] = std::move(st);
  }
  if (!r.handshake_error.empty()) j["handshake_error"] = r.handshake_error;
  if (s.mode == "h2") j["peak_streams"] = r.peak_in_flight;
  return j;
}

std::string format_table(const settings& s, const results& r) {
  const auto& h = r.latency_ns;
  std::string out;
  // The http modes send a fixed request, redis a command mix: show it instead of a payload size.
  const bool http = s.mode == "http" || s.mode == "http_short" || s.mode == "h2";
  std::string what = fmt::format("size {} B", s.size);
  if (http)
    what = s.http.method + " " + http_path(s);
  else if (s.mode == "websocket" || s.mode == "websocket_connect")
    what = fmt::format("path {}  size {} B{}", websocket_path(s), s.size, s.deflate ? "  permessage-deflate" : "");
  else if (s.mode == "redis")
    what = fmt::format("mix {}  keyspace {}  value {} B", s.redis.mix, s.redis.keyspace,
                       s.redis.value_size);
  out += fmt::format("swactor bench: {} {}  connections {}  threads {}  {}  {} {}{}{}\n",
                     s.mode, s.server.url, s.connections, s.threads, what,
                     s.mode == "h2" ? "streams" : "pipeline", s.pipeline,
                     s.rate > 0 ? fmt::format("  rate {}/s", s.rate) : std::string(),
                     r.interrupted ? "  (interrupted)" : "");
  out += fmt::format("  requests    {:>12}  ok {}  errors {}\n", r.requests, r.ok, r.error_total());
  out += fmt::format("  duration    {:>12.3f} s\n", r.duration_s);
  out += fmt::format("  throughput  {:>12.1f} req/s  {}/s\n", r.rps(), human_bytes(r.bytes_per_s()));
  out += fmt::format("  latency us  {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n", "min",
                     "p50", "p90", "p99", "p99.9", "max", "mean", "stddev");
  out += fmt::format("              {:>9.1f} {:>9.1f} {:>9.1f} {:>9.1f} {:>9.1f} {:>9.1f} {:>9.1f} {:>9.1f}\n",
                     us(h.min()), us(h.percentile(50)), us(h.percentile(90)),
                     us(h.percentile(99)), us(h.percentile(99.9)), us(h.max()),
                     h.mean() / 1000.0, h.stddev() / 1000.0);
  if (r.has_status) {
    out += "  status     ";
    for (std::size_t i = 0; i < r.status.size(); ++i)
      if (r.status[i]) out += fmt::format(" {}xx {}", i + 1, r.status[i]);
    out += "\n";
  }
  if (r.error_total() > 0) {
    out += "  errors     ";
    for (std::size_t i = 0; i < error_kind_count; ++i)
      if (r.errors[i])
        out += fmt::format(" {} {}", error_kind_name(static_cast<error_kind>(i)), r.errors[i]);
    out += "\n";
  }
  if (s.mode == "h2") out += fmt::format("  streams     {:>12}  at most on one connection at once\n", r.peak_in_flight);
  if (!r.handshake_error.empty()) out += "  handshake   failed: " + r.handshake_error + "\n";
  return out;
}

std::string format_progress(const progress& p, double rate) {
  return fmt::format("[{:6.1f}s] done {}  rate {:.0f}/s  errors {}", p.elapsed_s, p.requests,
                     rate, p.errors);
}

}  // namespace swactor::bench
