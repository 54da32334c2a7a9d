#pragma once
// What one load-test run does: the target, the mode, the load shape and the framing.
// Filled by parse_args() for the CLI, or directly by a module embedding the runner.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json_fwd.hpp>

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

// The server's framing options (Swoole's open_eof_check / open_length_check).
// length: the frame is body_offset + value bytes, value read from length_size bytes at
// length_offset (body_offset defaults to length_offset + length_size).
struct framing {
  std::string eof = "\r\n";
  unsigned length_size = 4;  // 1, 2, 4 or 8
  std::size_t length_offset = 0;
  std::optional<std::size_t> body_offset;
  bool big_endian = true;
  bool is_signed = false;

  std::size_t header_size() const {
    return body_offset ? *body_offset : length_offset + length_size;
  }
};

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
  framing frame;
  std::string json_file;                          // --json
  bool progress = false;                          // live line once per second (CLI: on a TTY)
};

// Escapes as used in --eof: \r \n \t \0 \\ \xHH. Returns false on a bad escape.
bool unescape(const std::string& in, std::string& out);
std::string escape(const std::string& in);

// "10s", "500ms", "2m", "1.5", "250us": a duration; false when malformed or negative.
bool parse_duration(const std::string& text, std::chrono::nanoseconds& out);

nlohmann::json to_json(const settings& s);

}  // namespace swactor::bench
