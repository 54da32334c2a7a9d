#pragma once
// Helpers for the HTTP integration tests (test_http*.cpp): the server modes every case runs
// in, an HTTP listener config, a small strict response parser over server::conn, base64.
//
//   auto mode = GENERATE(as<std::string>{}, "base", "process");
//   server_under_test srv(http::server_keys(mode), http::echo_listener("max_headers = 10"));
//   auto c = connect_tcp("127.0.0.1", srv.port);
//   c.send_all(http::get("/a"));
//   auto r = http::read_response(c);   // nullopt on timeout / EOF before a whole response

#include <algorithm>
#include <cctype>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "server_helpers.hpp"

namespace swactor::testing::http {

using namespace std::chrono_literals;
using server::conn;
using server::json;

// `text` as JSON, null when it is not JSON.
inline json as_json(std::string_view text) {
  try {
    return json::parse(text);
  } catch (...) {
    return json();
  }
}

// -- server modes ------------------------------------------------------------------------

// "base": one worker does its own I/O; "process": one reactor thread hands requests to two
// workers (dispatch by connection); "process_rr": the same with round_robin dispatch, so
// consecutive requests of one connection land on different workers.
inline std::string server_keys(const std::string& mode) {
  if (mode == "base") return "mode = \"base\"\nworkers = 1";
  if (mode == "process") return "mode = \"process\"\nreactor_threads = 1\nworkers = 2";
  if (mode == "process_rr")
    return "mode = \"process\"\nreactor_threads = 1\nworkers = 2\ndispatch_mode = \"round_robin\"";
  FAIL("unknown mode " << mode);
  return {};
}

// The http_echo and http_hello modules, for `rest` after the listeners.
inline const char* kModules = R"(
[modules.echo]
type = "http_echo"

[modules.hello]
type = "http_hello"
)";

// One HTTP listener on {port} where every path goes to http_echo; `extra` adds listener keys.
inline std::string echo_listener(const std::string& extra = {}) {
  return "[[listen]]\nurl = \"http://127.0.0.1:{port}\"\nroutes = [ { path = \"/\", module = \"echo\" } ]\n" +
         extra + "\n" + kModules;
}

// -- requests ------------------------------------------------------------------------------

inline std::string get(const std::string& target, const std::string& extra_headers = {}) {
  return "GET " + target + " HTTP/1.1\r\nHost: localhost\r\n" + extra_headers + "\r\n";
}
inline std::string post(const std::string& target, const std::string& body, const std::string& extra_headers = {}) {
  return "POST " + target + " HTTP/1.1\r\nHost: localhost\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n" + extra_headers + "\r\n" + body;
}

// -- responses -----------------------------------------------------------------------------

inline bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

struct response {
  std::string version;  // "HTTP/1.1"
  int status = 0;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // chunked framing removed
  bool chunked = false;

  const std::string* header(std::string_view name) const {
    for (const auto& [n, v] : headers)
      if (iequals(n, name)) return &v;
    return nullptr;
  }
  // The body as JSON (http_echo), null when it is not JSON.
  json echo() const { return as_json(body); }
};

// Parses one complete response from the front of `buf`: its length, or 0 when more bytes are
// needed, or npos when `buf` does not start with a well-formed response. `head_request`: the
// request was HEAD (no body whatever the headers say). A response without Content-Length or
// chunked framing is delimited by the close: complete only when `at_eof`.
inline std::size_t parse_response(std::string_view buf, response& out, bool head_request = false, bool at_eof = false) {
  constexpr auto bad = std::string_view::npos;
  out = response{};
  auto head_end = buf.find("\r\n\r\n");
  if (head_end == std::string_view::npos) return buf.size() > 64 * 1024 ? bad : 0;
  auto head = buf.substr(0, head_end + 2);
  auto eol = head.find("\r\n");
  auto line = head.substr(0, eol);
  if (line.size() < 12 || line.substr(0, 5) != "HTTP/" || line[8] != ' ') return bad;
  out.version = std::string(line.substr(0, 8));
  for (int i = 9; i < 12; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(line[i]))) return bad;
    out.status = out.status * 10 + (line[i] - '0');
  }
  out.reason = line.size() > 13 ? std::string(line.substr(13)) : std::string();
  for (auto at = eol + 2; at < head.size();) {
    auto e = head.find("\r\n", at);
    auto field = head.substr(at, e - at);
    auto colon = field.find(':');
    if (colon == std::string_view::npos || colon == 0) return bad;
    auto value = field.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    out.headers.emplace_back(std::string(field.substr(0, colon)), std::string(value));
    at = e + 2;
  }
  std::size_t at = head_end + 4;
  if (head_request || out.status / 100 == 1 || out.status == 204 || out.status == 304) return at;
  const auto* te = out.header("Transfer-Encoding");
  if (te && iequals(*te, "chunked")) {
    out.chunked = true;
    for (;;) {
      auto e = buf.find("\r\n", at);
      if (e == std::string_view::npos) return 0;
      std::size_t size = 0;
      auto digits = buf.substr(at, e - at);
      if (auto semi = digits.find(';'); semi != std::string_view::npos) digits = digits.substr(0, semi);
      if (digits.empty()) return bad;
      for (char c : digits) {
        if (!std::isxdigit(static_cast<unsigned char>(c))) return bad;
        size = size * 16 + static_cast<std::size_t>(std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : (std::tolower(c) - 'a' + 10));
      }
      at = e + 2;
      if (size == 0) {
        // Trailer fields (ignored) up to the empty line.
        for (;;) {
          auto te2 = buf.find("\r\n", at);
          if (te2 == std::string_view::npos) return 0;
          bool empty = te2 == at;
          at = te2 + 2;
          if (empty) return at;
        }
      }
      if (buf.size() < at + size + 2) return 0;
      out.body.append(buf.substr(at, size));
      if (buf.substr(at + size, 2) != "\r\n") return bad;
      at += size + 2;
    }
  }
  if (const auto* cl = out.header("Content-Length")) {
    std::size_t n = 0;
    for (char c : *cl) {
      if (!std::isdigit(static_cast<unsigned char>(c))) return bad;
      n = n * 10 + static_cast<std::size_t>(c - '0');
    }
    if (buf.size() < at + n) return 0;
    out.body = std::string(buf.substr(at, n));
    return at + n;
  }
  if (!at_eof) return 0;
  out.body = std::string(buf.substr(at));
  return buf.size();
}

// Reads one response from `c` (a 100 Continue is a response too). nullopt on timeout, on EOF
// before it is whole, or on a malformed response (then the bytes stay in c.buffer()).
inline std::optional<response> read_response(conn& c, duration timeout = 5s, bool head_request = false) {
  response r;
  bool malformed = false;
  auto got = c.read_until(
      [&](const std::string& b) -> std::size_t {
        auto n = parse_response(b, r, head_request);
        if (n == std::string_view::npos) {
          malformed = true;
          return 0;
        }
        return n;
      },
      timeout);
  if (!got) return std::nullopt;
  return r;
}

// Everything the peer sends until it closes; `closed` false when `timeout` passed first.
struct drained {
  std::string data;
  bool closed = false;
};
inline drained read_to_eof(conn& c, duration timeout) {
  c.read_until([](const std::string&) -> std::size_t { return 0; }, timeout);
  drained d;
  d.closed = c.eof();
  d.data = std::move(c.buffer());
  c.buffer().clear();
  return d;
}

// Splits a byte stream into responses. `rest` gets what did not parse (a truncated or
// malformed tail); head[i]: the i-th request was HEAD (its response has no body).
inline std::vector<response> split_responses(std::string_view data, std::string* rest = nullptr,
                                             const std::vector<bool>& head = {}, bool at_eof = true) {
  std::vector<response> out;
  for (;;) {
    response r;
    if (data.empty()) break;
    const bool is_head = out.size() < head.size() && head[out.size()];
    auto n = parse_response(data, r, is_head, at_eof);
    if (n == 0 || n == std::string_view::npos) break;
    out.push_back(std::move(r));
    data.remove_prefix(n);
  }
  if (rest) *rest = std::string(data);
  return out;
}

// Sends `data` one byte per send() (the connection has TCP_NODELAY), reading whatever the
// server answers meanwhile into c.buffer() so that an early close does not turn into a reset
// that loses the answer. Stops sending when the server closed; false then.
inline bool send_bytewise(conn& c, std::string_view data) {
  for (char ch : data) {
    for (;;) {
      pollfd p{c.fd(), POLLIN, 0};
      if (::poll(&p, 1, 0) <= 0) break;
      char tmp[4096];
      auto n = ::recv(c.fd(), tmp, sizeof tmp, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return false;
      if (n > 0) c.buffer().append(tmp, static_cast<std::size_t>(n));
    }
    if (!c.send_all(std::string_view(&ch, 1))) return false;
  }
  return true;
}

// -- base64 --------------------------------------------------------------------------------

inline std::string base64_encode(std::string_view in) {
  static constexpr char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    auto v = (std::uint32_t(std::uint8_t(in[i])) << 16) | (std::uint32_t(std::uint8_t(in[i + 1])) << 8) |
             std::uint8_t(in[i + 2]);
    out += {tbl[v >> 18], tbl[(v >> 12) & 63], tbl[(v >> 6) & 63], tbl[v & 63]};
  }
  if (i + 1 == in.size()) {
    auto v = std::uint32_t(std::uint8_t(in[i])) << 16;
    out += {tbl[v >> 18], tbl[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    auto v = (std::uint32_t(std::uint8_t(in[i])) << 16) | (std::uint32_t(std::uint8_t(in[i + 1])) << 8);
    out += {tbl[v >> 18], tbl[(v >> 12) & 63], tbl[(v >> 6) & 63], '='};
  }
  return out;
}

inline std::string base64_decode(std::string_view in) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v = val(c);
    if (v < 0) continue;  // '=' and whitespace
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

// -- tools ---------------------------------------------------------------------------------

// True when `tool` is on PATH (the HTTP client tests skip with a WARN otherwise).
inline bool have_tool(const std::string& tool) {
  auto r = run({"sh", "-c", "command -v " + tool}, 5s);
  return r.exit_code == 0;
}

}  // namespace swactor::testing::http
