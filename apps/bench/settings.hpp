#pragma once
// What one load-test run does: the target, the mode, the load shape and the framing.
// Filled by parse_args() for the CLI, or directly by a module embedding the runner.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "swactor/protocols/framing.hpp"

namespace swactor::bench {

enum class scheme { tcp, udp, unix_stream };

// A parsed -s URL: tcp://HOST:PORT, udp://HOST:PORT ([v6] hosts allowed), unix:///PATH,
// http://HOST[:PORT][/PATH] (a TCP target that speaks HTTP; port 80 by default),
// http+unix:///PATH (HTTP over a Unix socket; the request path comes from --path) or
// redis://HOST[:PORT] (a TCP target that speaks RESP; port 6379 by default) or
// ws://HOST[:PORT][/PATH] (a TCP target that speaks WebSocket; port 80, path "/" by default),
// https://HOST[:PORT][/PATH] (HTTP over TLS, port 443; the h2 mode) or h2c://HOST[:PORT][/PATH]
// (as http://, for the h2 mode only).
struct target {
  scheme kind = scheme::tcp;
  std::string host;
  std::uint16_t port = 0;
  std::string path;       // unix: the socket
  std::string url;        // as given
  bool http = false;      // http:// or http+unix://: only the http modes run over it
  std::string http_path;  // http:// and ws://: the path after the authority, "" when none
  bool redis = false;     // redis://: only the redis mode runs over it
  bool websocket = false; // ws://: only the websocket modes run over it
  bool tls = false;       // https://: TLS with the mode's ALPN (only the h2 mode runs over it)
  bool h2c = false;       // h2c://: HTTP/2 with prior knowledge (only the h2 mode runs over it)
};

// Parses a URL into `out`; on failure returns the reason (empty on success).
std::string parse_url(const std::string& url, target& out);

// The http modes' request, and what --verify expects of the response.
struct http_options {
  std::string method = "GET";             // --method
  std::string path;                       // --path; empty: the URL's path, else "/"
  std::vector<std::string> headers;       // --header "Name: value", in order
  std::optional<std::string> body;        // --body: sent with its Content-Length
  std::optional<std::string> verify_body; // --verify-body: the response body must be this
};

// The redis mode's commands (mode_redis.cpp).
struct redis_options {
  std::string mix = "set:1,get:1";  // --mix: commands and their weights
  std::uint64_t keyspace = 10000;   // --keyspace: random keys in [0, N) (redis-benchmark -r)
  std::size_t value_size = 3;       // --value-size: SET value bytes (redis-benchmark -d)
};

struct settings {
  target server;
  std::string mode = "long_tcp";
  std::uint64_t requests = 0;                     // -n; 0 = run for `duration`
  std::chrono::nanoseconds duration{0};           // -d; used when requests == 0
  unsigned connections = 10;                      // -c, total over all threads
  unsigned threads = 1;                           // -t, one loop each
  std::size_t size = 64;                          // --size: payload bytes per request
  unsigned pipeline = 1;                          // requests in flight per connection (h2: streams, -m)
  double rate = 0;                                // --rate: total requests/s, 0 = as fast as possible
  bool verify = false;                            // compare every reply with its request
  std::chrono::nanoseconds timeout = std::chrono::seconds(5);  // every connect/read/write
  // eof and length modes: the server's [[listen]].framing, with its defaults and
  // validation, so a flag means what the same key means there (the mode sets `type`).
  protocols::framing_options frame;
  http_options http;                              // http and http_short modes
  redis_options redis;                            // redis mode
  bool deflate = false;                           // websocket modes: permessage-deflate (--deflate)
  std::string json_file;                          // --json
  bool progress = false;                          // live line once per second (CLI: on a TTY)
};

// Escapes as used in --eof: \r \n \t \0 \\ \xHH. Returns false on a bad escape.
bool unescape(const std::string& in, std::string& out);
std::string escape(const std::string& in);

nlohmann::json to_json(const settings& s);

// The http modes' request target: --path, else the URL's path, else "/".
std::string http_path(const settings& s);
// The websocket modes' upgrade request target: the ws:// URL's path, else "/".
std::string websocket_path(const settings& s);

}  // namespace swactor::bench
