#include "mode.hpp"

#include <algorithm>
#include <array>

namespace swactor::bench {

// -- the mode table: one line per mode --------------------------------------------------

std::unique_ptr<mode> make_long_tcp_mode(const settings&);
std::unique_ptr<mode> make_short_tcp_mode(const settings&);
std::unique_ptr<mode> make_udp_mode(const settings&);
std::unique_ptr<mode> make_unix_mode(const settings&);
std::unique_ptr<mode> make_eof_mode(const settings&);
std::unique_ptr<mode> make_length_mode(const settings&);
std::unique_ptr<mode> make_connect_mode(const settings&);
std::unique_ptr<mode> make_http_mode(const settings&);
std::unique_ptr<mode> make_http_short_mode(const settings&);
std::unique_ptr<mode> make_redis_mode(const settings&);
std::unique_ptr<mode> make_h2_mode(const settings&);
std::unique_ptr<mode> make_websocket_mode(const settings&);
std::unique_ptr<mode> make_websocket_connect_mode(const settings&);

namespace {
struct entry {
  mode_info info;
  std::unique_ptr<mode> (*make)(const settings&);
};

const entry table[] = {
    {{"long_tcp", "persistent connections, request/response (raw echo)"}, make_long_tcp_mode},
    {{"short_tcp", "connect, one exchange, close"}, make_short_tcp_mode},
    {{"udp", "datagram request/response (udp://)"}, make_udp_mode},
    {{"unix", "persistent Unix stream connections (unix:///path)"}, make_unix_mode},
    {{"eof", "messages ending with --eof DELIM"}, make_eof_mode},
    {{"length", "length-prefixed messages (--length-size/-offset, --body-offset)"},
     make_length_mode},
    {{"connect", "connection rate only: connect and close"}, make_connect_mode},
    {{"http", "HTTP/1.1 keep-alive (http://HOST:PORT/path; --method --header --body)"},
     make_http_mode},
    {{"http_short", "HTTP/1.1, one connection per request (Connection: close)"},
     make_http_short_mode},
    {{"h2",
      "HTTP/2 (http:// or h2c:// by prior knowledge, https:// with ALPN h2): --pipeline "
      "(-m, --streams) concurrent streams per connection, as h2load -m; --method --path "
      "--header --body as the http mode"},
     make_h2_mode},
    {{"redis",
      "RESP2 commands (redis://HOST:PORT; --mix --keyspace --value-size; --pipeline N "
      "in rounds, as redis-benchmark -P)"},
     make_redis_mode},
    {{"websocket",
      "WebSocket echo (ws://HOST:PORT/path): upgrade once per connection, then one masked "
      "text frame of --size bytes and its echo per request; --pipeline N in flight"},
     make_websocket_mode},
    {{"websocket_connect",
      "WebSocket sessions: connect, upgrade, one echo, close frame 1000 and the server's "
      "close, per request"},
     make_websocket_connect_mode},
};
}  // namespace

std::unique_ptr<mode> make_mode(const settings& s) {
  for (const auto& e : table)
    if (e.info.name == s.mode) return e.make(s);
  return nullptr;
}

std::vector<mode_info> mode_list() {
  std::vector<mode_info> out;
  for (const auto& e : table) out.push_back(e.info);
  return out;
}

// -- payloads ---------------------------------------------------------------------------

payload::payload(std::size_t size, std::string_view avoid) : size_(size) {
  static constexpr std::string_view all =
      "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  for (char c : all)
    if (avoid.find(c) == std::string_view::npos) alphabet_ += c;
  radix_ = alphabet_.size();
  if (radix_ == 0) return;
  pattern_.reserve(size_ + radix_);
  while (pattern_.size() < size_ + radix_) pattern_ += alphabet_;
}

void payload::fill(std::string& out, std::uint64_t conn, std::uint64_t seq) const {
  out.clear();
  append(out, conn, seq);
}

void payload::append(std::string& out, std::uint64_t conn, std::uint64_t seq) const {
  if (radix_ == 0) return;
  std::string head;
  const auto tail = split(head, conn, seq);
  out += head;
  out += tail;
}

std::string_view payload::split(std::string& head, std::uint64_t conn, std::uint64_t seq) const {
  head.clear();
  if (radix_ == 0) return {};
  // The pattern is shifted by (seq, conn) so payloads differ everywhere; the first bytes
  // spell seq then conn, so a stale or misrouted reply never matches.
  const std::size_t shift = static_cast<std::size_t>((seq * 7 + conn * 13) % radix_);
  const std::size_t n = std::min<std::size_t>(size_, 12);
  head.resize(n);
  std::size_t i = 0;
  for (std::uint64_t v = seq; i < n && i < 8; ++i, v /= radix_) head[i] = alphabet_[v % radix_];
  for (std::uint64_t v = conn; i < n; ++i, v /= radix_) head[i] = alphabet_[v % radix_];
  return std::string_view(pattern_).substr(shift + n, size_ - n);
}

}  // namespace swactor::bench
