#pragma once
// What one load-test run does: the target, the mode, the load shape and the framing.
// Filled by parse_args() for the CLI, or directly by a module embedding the runner.

#include <chrono>
#include <cstdint>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "swactor/protocols/framing.hpp"

namespace swactor::bench {

enum class scheme { tcp, udp, unix_stream };

// A parsed -s URL: tcp://HOST:PORT, udp://HOST:PORT ([v6] hosts allowed) or unix:///PATH.
struct target {
  scheme kind = scheme::tcp;
  std::string host;
  std::uint16_t port = 0;
  std::string path;  // unix
  std::string url;   // as given
};

// Parses a URL into `out`; on failure returns the reason (empty on success).
std::string parse_url(const std::string& url, target& out);

struct settings {
  target server;
  std::string mode = "long_tcp";
  std::uint64_t requests = 0;                     // -n; 0 = run for `duration`
  std::chrono::nanoseconds duration{0};           // -d; used when requests == 0
  unsigned connections = 10;                      // -c, total over all threads
  unsigned threads = 1;                           // -t, one loop each
  std::size_t size = 64;                          // --size: payload bytes per request
  unsigned pipeline = 1;                          // requests in flight per connection
  double rate = 0;                                // --rate: total requests/s, 0 = as fast as possible
  bool verify = false;                            // compare every reply with its request
  std::chrono::nanoseconds timeout = std::chrono::seconds(5);  // every connect/read/write
  // eof and length modes: the server's [[listen]].framing, with its defaults and
  // validation, so a flag means what the same key means there (the mode sets `type`).
  protocols::framing_options frame;
  std::string json_file;                          // --json
  bool progress = false;                          // live line once per second (CLI: on a TTY)
};

// Escapes as used in --eof: \r \n \t \0 \\ \xHH. Returns false on a bad escape.
bool unescape(const std::string& in, std::string& out);
std::string escape(const std::string& in);

nlohmann::json to_json(const settings& s);

}  // namespace swactor::bench
