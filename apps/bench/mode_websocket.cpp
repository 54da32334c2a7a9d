// websocket, websocket_connect: WebSocket (RFC 6455) clients against an echoing server
// (ws://HOST:PORT/path, e.g. swactor's ws_echo).
//   websocket:         every connection upgrades once (GET + Upgrade, a 101 with the right
//                      Sec-WebSocket-Accept), then each request is one masked text frame of
//                      --size bytes and its reply the echoed message; --pipeline N keeps N
//                      in flight.
//   websocket_connect: every request is a session of its own: connect, upgrade, one
//                      message round trip, a close frame (1000) and the server's close
//                      frame (or EOF); the latency covers all of it.
// A handshake the server refuses is error_kind::handshake (the first reason goes into the
// report). Replies: server pings and pongs before the message are skipped (the server
// only pings idle clients, and a loaded client is not idle); a close frame instead of the
// message is a server_error and ends the connection. --verify compares the echoed payload.
// --deflate: permessage-deflate offered (and required in the answer), every message sent
// compressed on its own, compressed replies (RSV1) accepted.
#include <zlib.h>

#include <array>
#include <cstring>
#include <random>

#include "mode.hpp"
#include "swactor/protocols/ascii.hpp"
#include "swactor/protocols/websocket.hpp"
#include "ws_client.hpp"

namespace swactor::bench {

namespace ws {

namespace {

constexpr char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64(const unsigned char* p, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; i += 3) {
    const std::uint32_t v = (std::uint32_t{p[i]} << 16) | (i + 1 < n ? std::uint32_t{p[i + 1]} << 8 : 0) |
                            (i + 2 < n ? std::uint32_t{p[i + 2]} : 0);
    out += b64[(v >> 18) & 63];
    out += b64[(v >> 12) & 63];
    out += i + 1 < n ? b64[(v >> 6) & 63] : '=';
    out += i + 2 < n ? b64[v & 63] : '=';
  }
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Whether the comma-separated header value `list` has `token` (case-insensitive).
bool has_token(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    const auto comma = list.find(',');
    if (protocols::ascii_iequals(trim(list.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

void unmask(char* p, std::size_t n, const unsigned char mask[4]) {
  for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<char>(p[i] ^ mask[i & 3]);
}

}  // namespace

std::string make_key() {
  // One generator per thread: the mode is shared by every loop thread.
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::array<unsigned char, 16> raw;
  for (std::size_t i = 0; i < raw.size(); i += 8) {
    const auto v = rng();
    std::memcpy(raw.data() + i, &v, 8);
  }
  return base64(raw.data(), raw.size());
}

std::string upgrade_request(std::string_view host, std::string_view path, std::string_view key,
                            bool deflate) {
  std::string out;
  out.reserve(160 + host.size() + path.size());
  out += "GET ";
  out += path;
  out += " HTTP/1.1\r\nHost: ";
  out += host;
  out += "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ";
  out += key;
  out += "\r\nSec-WebSocket-Version: 13\r\n";
  if (deflate) out += "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";
  out += "\r\n";
  return out;
}

std::ptrdiff_t upgrade_reply(std::string_view in, std::string_view accept, std::string& why, bool deflate) {
  const auto end = in.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    if (in.size() <= max_head) return 0;
    why = "the upgrade answer's head is over 16 KiB";
    return -1;
  }
  const auto head = in.substr(0, end + 2);  // every line ends with CRLF
  auto eol = head.find("\r\n");
  const auto status_line = head.substr(0, eol);
  if (status_line.size() < 12 || status_line.substr(0, 7) != "HTTP/1." ||
      status_line.substr(8, 4) != " 101") {
    why = "the server answered the upgrade with \"" + std::string(status_line.substr(0, 200)) +
          "\", not 101 Switching Protocols";
    return -1;
  }
  bool upgrade = false, connection = false, got_accept = false, got_deflate = false;
  std::string_view accept_value, extensions;
  for (auto pos = eol + 2; pos < head.size(); pos = eol + 2) {
    eol = head.find("\r\n", pos);
    const auto line = head.substr(pos, eol - pos);
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    const auto name = trim(line.substr(0, colon));
    const auto value = trim(line.substr(colon + 1));
    if (protocols::ascii_iequals(name, "upgrade"))
      upgrade = upgrade || has_token(value, "websocket");
    else if (protocols::ascii_iequals(name, "connection"))
      connection = connection || has_token(value, "upgrade");
    else if (protocols::ascii_iequals(name, "sec-websocket-accept")) {
      got_accept = true;
      accept_value = value;
    } else if (protocols::ascii_iequals(name, "sec-websocket-extensions")) {
      extensions = value;
      // The extension's name, before its parameters.
      got_deflate = got_deflate || trim(value.substr(0, value.find(';'))) == "permessage-deflate";
    }
  }
  if (!upgrade) why = "101 without \"Upgrade: websocket\"";
  else if (!connection) why = "101 without \"Connection: Upgrade\"";
  else if (!got_accept) why = "101 without Sec-WebSocket-Accept";
  else if (accept_value != accept)
    why = "wrong Sec-WebSocket-Accept \"" + std::string(accept_value.substr(0, 64)) + "\" (expected \"" +
          std::string(accept) + "\")";
  else if (deflate && !got_deflate)
    why = "the server did not accept permessage-deflate (--deflate)";
  else if (!deflate && !extensions.empty())
    why = "the server answered with extension \"" + std::string(extensions.substr(0, 64)) + "\", none was offered";
  else
    return static_cast<std::ptrdiff_t>(end + 4);
  return -1;
}

std::ptrdiff_t parse_head(std::string_view in, frame_head& h, bool rsv1_ok) {
  if (in.size() < 2) return 0;
  const auto b0 = static_cast<std::uint8_t>(in[0]);
  const auto b1 = static_cast<std::uint8_t>(in[1]);
  // RSV bits: only RSV1, on a text or binary frame, and only with permessage-deflate.
  if ((b0 & 0x30) != 0) return -1;
  if ((b0 & 0x40) != 0 && (!rsv1_ok || ((b0 & 0x0f) != op_text && (b0 & 0x0f) != op_binary))) return -1;
  if (b1 & 0x80) return -1;         // a server never masks
  h.fin = (b0 & 0x80) != 0;
  h.opcode = b0 & 0x0f;
  const bool control = h.opcode >= 8;
  if (h.opcode > op_binary && !control) return -1;
  if (control && h.opcode > op_pong) return -1;
  std::uint64_t len = b1 & 0x7f;
  std::size_t header = 2;
  if (len == 126) {
    if (in.size() < 4) return 0;
    len = (std::uint64_t{static_cast<std::uint8_t>(in[2])} << 8) | static_cast<std::uint8_t>(in[3]);
    header = 4;
  } else if (len == 127) {
    if (in.size() < 10) return 0;
    len = 0;
    for (int i = 2; i < 10; ++i) len = (len << 8) | static_cast<std::uint8_t>(in[static_cast<std::size_t>(i)]);
    header = 10;
  }
  if (control && (!h.fin || len > 125)) return -1;
  if (len > max_payload) return -1;
  h.header = header;
  h.length = len;
  return static_cast<std::ptrdiff_t>(header);
}

message_cut cut_message(std::string_view in, bool rsv1_ok) {
  std::size_t pos = 0;
  bool in_message = false;  // a data frame without FIN came: continuations follow
  for (;;) {
    frame_head h;
    const auto n = parse_head(in.substr(pos), h, rsv1_ok);
    if (n <= 0) return {n};
    if (in.size() - pos - h.header < h.length) return {};
    const auto next = pos + h.header + static_cast<std::size_t>(h.length);
    switch (h.opcode) {
      case op_ping:
      case op_pong:
        break;  // skipped; a message may be interleaved with them
      case op_close:
        return {static_cast<std::ptrdiff_t>(next), true};
      case op_continuation:
        if (!in_message) return {-1};
        if (h.fin) return {static_cast<std::ptrdiff_t>(next)};
        break;
      default:  // text, binary
        if (in_message) return {-1};
        if (h.fin) return {static_cast<std::ptrdiff_t>(next)};
        in_message = true;
        break;
    }
    pos = next;
  }
}

std::string message_payload(std::string_view reply, std::uint8_t* opcode, bool rsv1_ok) {
  std::string out;
  bool first = true;
  for (std::size_t pos = 0; pos < reply.size();) {
    frame_head h;
    if (parse_head(reply.substr(pos), h, rsv1_ok) <= 0) break;
    const auto body = reply.substr(pos + h.header, static_cast<std::size_t>(h.length));
    if (h.opcode < 8) {
      if (first && opcode) *opcode = h.opcode;
      first = false;
      out += body;
    }
    pos += h.header + static_cast<std::size_t>(h.length);
  }
  return out;
}

void append_client_frame(std::string& out, std::uint8_t opcode, std::string_view payload,
                         std::uint32_t mask, bool rsv1) {
  const auto n = payload.size();
  out += static_cast<char>(0x80 | (rsv1 ? 0x40 : 0) | opcode);
  if (n < 126) {
    out += static_cast<char>(0x80 | n);
  } else if (n <= 0xffff) {
    out += static_cast<char>(0x80 | 126);
    out += static_cast<char>(n >> 8);
    out += static_cast<char>(n & 0xff);
  } else {
    out += static_cast<char>(0x80 | 127);
    for (int shift = 56; shift >= 0; shift -= 8) out += static_cast<char>((std::uint64_t{n} >> shift) & 0xff);
  }
  unsigned char m[4];
  std::memcpy(m, &mask, 4);
  out.append(reinterpret_cast<const char*>(m), 4);
  const auto at = out.size();
  out += payload;
  unmask(out.data() + at, n, m);  // XOR both ways
}

std::string client_payload(std::string_view frame) {
  if (frame.size() < 2 || !(static_cast<std::uint8_t>(frame[1]) & 0x80)) return {};
  std::uint64_t len = static_cast<std::uint8_t>(frame[1]) & 0x7f;
  std::size_t header = 2;
  if (len == 126 && frame.size() >= 4) {
    len = (std::uint64_t{static_cast<std::uint8_t>(frame[2])} << 8) | static_cast<std::uint8_t>(frame[3]);
    header = 4;
  } else if (len == 127 && frame.size() >= 10) {
    len = 0;
    for (std::size_t i = 2; i < 10; ++i) len = (len << 8) | static_cast<std::uint8_t>(frame[i]);
    header = 10;
  }
  if (frame.size() != header + 4 + len) return {};
  unsigned char m[4];
  std::memcpy(m, frame.data() + header, 4);
  std::string out(frame.substr(header + 4));
  unmask(out.data(), out.size(), m);
  return out;
}

void deflate_message(std::string_view in, std::string& out) {
  struct stream {
    z_stream z{};
    bool ok = false;
    stream() {
      // Raw deflate (negative window bits) with a 512 B window: the smallest a server may ask
      // for with client_max_window_bits (RFC 7692; swactor does with no_context_takeover), so
      // the stream suits whatever the server answered to our offer. memLevel 1 keeps the hash
      // table at 512 B, which deflateReset() clears for every message.
      ok = deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, -9, 1, Z_DEFAULT_STRATEGY) == Z_OK;
    }
    ~stream() {
      if (ok) deflateEnd(&z);
    }
  };
  thread_local stream s;
  auto& z = s.z;
  deflateReset(&z);  // no context from earlier messages
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  const auto start = out.size();
  // A sync flush of n bytes needs at most deflateBound() plus the 4-5 byte empty block.
  out.resize(start + deflateBound(&z, static_cast<uLong>(in.size())) + 16);
  z.next_out = reinterpret_cast<Bytef*>(out.data() + start);
  z.avail_out = static_cast<uInt>(out.size() - start);
  deflate(&z, Z_SYNC_FLUSH);
  auto end = out.size() - z.avail_out;
  static constexpr char tail[4] = {0, 0, static_cast<char>(0xff), static_cast<char>(0xff)};
  if (end - start >= 4 && std::memcmp(out.data() + end - 4, tail, 4) == 0) end -= 4;
  out.resize(end);
}

std::ptrdiff_t cut_close(std::string_view in, bool rsv1_ok) {
  for (std::size_t pos = 0;;) {
    frame_head h;
    const auto n = parse_head(in.substr(pos), h, rsv1_ok);
    if (n <= 0) return n;
    if (in.size() - pos - h.header < h.length) return 0;
    pos += h.header + static_cast<std::size_t>(h.length);
    if (h.opcode == op_close) return static_cast<std::ptrdiff_t>(pos);
  }
}

}  // namespace ws

namespace {

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

class websocket_mode final : public mode {
 public:
  websocket_mode(const settings& s, bool one_shot)
      : one_shot_(one_shot), deflate_(s.deflate), payload_(s.size), path_(websocket_path(s)) {
    const auto& t = s.server;
    host_ = t.host.find(':') != std::string::npos ? "[" + t.host + "]" : t.host;
    host_ += ":" + std::to_string(t.port);
    // Close 1000, masked with a fixed key: the bytes never change.
    const char code[2] = {static_cast<char>(0x03), static_cast<char>(0xe8)};
    ws::append_client_frame(goodbye_, ws::op_close, std::string_view(code, 2), 0x5a17c3e1u);
  }

  std::string_view name() const override { return one_shot_ ? "websocket_connect" : "websocket"; }
  session pattern() const override { return one_shot_ ? session::one_shot : session::persistent; }
  bool accepts(const target& t) const override { return t.websocket && t.kind == scheme::tcp; }

  std::string check(const settings& s) const override {
    if (one_shot_ && s.pipeline > 1) return "--pipeline needs a persistent mode, not websocket_connect";
    // Checking a compressed echo would need the server's compression context per connection.
    if (deflate_ && s.verify) return "--verify does not work with --deflate";
    if (path_.empty() || path_[0] != '/' || path_.find_first_of(" \r\n\t") != std::string::npos)
      return "ws:// path '" + path_ + "' is not a request target";
    return {};
  }

  bool make_handshake(std::uint64_t, std::string& out, std::string& state) const override {
    const auto key = ws::make_key();
    out = ws::upgrade_request(host_, path_, key, deflate_);
    state = protocols::websocket::accept_key(key);
    return true;
  }
  std::ptrdiff_t handshake_reply(std::string_view in, std::string_view state,
                                 std::string& why) const override {
    return ws::upgrade_reply(in, state, why, deflate_);
  }

  std::string_view goodbye() const override { return one_shot_ ? std::string_view(goodbye_) : std::string_view(); }
  std::ptrdiff_t goodbye_reply(std::string_view in) const override { return ws::cut_close(in, deflate_); }

  void make_request(std::uint64_t conn, std::uint64_t seq, std::string& out) const override {
    // The payload is printable ASCII: valid UTF-8 for a text frame.
    payload_.fill(scratch(), conn, seq);
    out.clear();
    const auto mask = static_cast<std::uint32_t>(splitmix64(conn * 0xD1342543DE82EF95ull + seq));
    if (deflate_) {
      // Every message compressed, as a browser does with permessage-deflate.
      auto& z = compressed();
      z.clear();
      ws::deflate_message(scratch(), z);
      ws::append_client_frame(out, ws::op_text, z, mask, true);
      return;
    }
    ws::append_client_frame(out, ws::op_text, scratch(), mask);
  }

  std::ptrdiff_t reply_size(std::string_view in, std::string_view) const override {
    return ws::cut_message(in, deflate_).size;
  }

  // A close frame in place of the echo: the server ends the session (a server_error).
  cut cut_reply(std::string_view in, std::string_view, bool at_close) const override {
    if (at_close) return {-1};
    const auto m = ws::cut_message(in, deflate_);
    cut c;
    c.size = m.size;
    c.failed = m.close;
    c.last = m.close;
    return c;
  }

  bool matches(std::string_view request, std::string_view reply) const override {
    std::uint8_t op = 0;
    const auto got = ws::message_payload(reply, &op);
    return op == ws::op_text && got == ws::client_payload(request);
  }

 private:
  // make_request()'s payload before masking; one per thread (the mode is shared).
  static std::string& scratch() {
    thread_local std::string s;
    return s;
  }
  static std::string& compressed() {
    thread_local std::string s;
    return s;
  }

  bool one_shot_;
  bool deflate_;
  payload payload_;
  std::string path_;
  std::string host_;
  std::string goodbye_;
};

}  // namespace

std::unique_ptr<mode> make_websocket_mode(const settings& s) {
  return std::make_unique<websocket_mode>(s, false);
}
std::unique_ptr<mode> make_websocket_connect_mode(const settings& s) {
  return std::make_unique<websocket_mode>(s, true);
}

}  // namespace swactor::bench
