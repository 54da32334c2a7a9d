// libFuzzer target for the WebSocket frame codec (server side).
// Input: 2 option bytes, then the client's byte stream:
//   0 bit 0 deliver_control, bit 1 permessage-deflate, bit 2 client_no_context_takeover,
//     bit 3 server_no_context_takeover, bits 4-6 server_max_window_bits (9 + n % 7),
//     bit 7 every reply compressed (deflate_min_size 0, else 64)
//   1 feed step
// Checks: whole and piecewise feeding agree (events, failure and close code); a failure's
// code is 1002, 1007 or 1009 and the output then ends with a close frame; text messages
// (inflated ones too) are valid UTF-8; no message, inflated or not, is larger than
// max_message_size. With deflate on, the messages are also sent back through encode() in
// order, and a client-side inflater (one context for the whole stream, reset as
// server_no_context_takeover says) must give each one back: the compressor is fuzzed with
// every window size and takeover mode, not only the inflater.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "swactor/protocols/websocket.hpp"

namespace ws = swactor::protocols::websocket;

namespace {
void check(bool ok) {
  if (!ok) std::abort();
}

struct run final : swactor::protocols::event_sink {
  std::vector<std::pair<std::uint8_t, std::string>> events;
  int code = 0;
  std::string output;
  bool on_event(const swactor::protocols::event& e) override {
    events.emplace_back(e.kind, std::string(e.data));
    return true;
  }
};

run feed(const ws::options& o, std::string_view stream, std::size_t step) {
  ws::codec c(o);
  run r;
  std::string pending;
  std::size_t at = 0;
  while (at < stream.size()) {
    auto n = step ? std::min(step, stream.size() - at) : stream.size() - at;
    pending.append(stream.substr(at, n));
    at += n;
    auto used = c.decode(pending, r);
    check(used <= pending.size());
    pending.erase(0, used);
    c.take_output(r.output);
    if (c.failed()) break;
  }
  if (c.failed()) {
    r.code = c.error().value();
    check(r.code == 1002 || r.code == 1007 || r.code == 1009);
    check(!c.reason().empty());
    check(r.output.size() >= 2);
  }
  return r;
}
// One server frame of `wire` at `at`: FIN set, never masked, payload in its shortest form.
struct server_frame {
  std::uint8_t b0 = 0;
  std::string_view payload;
};
server_frame next_server_frame(std::string_view wire, std::size_t& at) {
  check(wire.size() - at >= 2);
  server_frame f;
  f.b0 = static_cast<std::uint8_t>(wire[at]);
  auto b1 = static_cast<std::uint8_t>(wire[at + 1]);
  check((f.b0 & 0x80) && !(b1 & 0x80));
  std::uint64_t n = b1 & 0x7F;
  std::size_t hl = 2;
  if (n >= 126) {
    std::size_t bytes = n == 126 ? 2 : 8;
    check(wire.size() - at >= 2 + bytes);
    n = 0;
    for (std::size_t k = 0; k < bytes; ++k) n = (n << 8) | static_cast<std::uint8_t>(wire[at + 2 + k]);
    check(n >= (bytes == 2 ? 126u : 0x10000u));
    hl += bytes;
  }
  check(wire.size() - at - hl >= n);
  f.payload = wire.substr(at + hl, n);
  at += hl + n;
  return f;
}

// The delivered messages go back out through encode(), as ws_echo sends them; a client
// inflates them in order with one context, as a real one would.
void echo_round_trip(const ws::options& o, const std::vector<std::pair<std::uint8_t, std::string>>& events) {
  ws::codec server(o);
  ws::deflate_params client_side;
  // The client's inflater may only reset between messages when the server promised to.
  client_side.client_no_context_takeover = o.deflate_with.server_no_context_takeover;
  ws::deflater client(client_side);
  for (const auto& [kind, payload] : events) {
    if (kind != static_cast<std::uint8_t>(ws::ev::text) && kind != static_cast<std::uint8_t>(ws::ev::binary)) continue;
    std::string wire;
    server.encode(kind, payload, wire);
    std::size_t at = 0;
    auto f = next_server_frame(wire, at);
    check(at == wire.size());
    bool compressed = f.b0 & 0x40;
    check(compressed == (payload.size() >= o.deflate_min_size));
    if (!compressed) {
      check(f.payload == payload);
      continue;
    }
    // Never empty: a client appends 00 00 ff ff to it, and that alone opens a stored block.
    check(!f.payload.empty());
    std::string back;
    bool too_big = false;
    check(client.inflate_message(f.payload, back, payload.size(), too_big));
    check(back == payload);
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  ws::options o;
  o.deliver_control = data[0] & 1;
  o.deflate = data[0] & 2;
  o.deflate_with.client_no_context_takeover = data[0] & 4;
  o.max_frame_size = 4096;
  o.max_message_size = 8192;
  o.deflate_with.server_no_context_takeover = data[0] & 8;
  o.deflate_with.server_max_window_bits = 9 + ((data[0] >> 4) & 7) % 7;
  o.deflate_min_size = (data[0] & 0x80) ? 0 : 64;
  std::size_t step = data[1] % 17;
  std::string_view stream(reinterpret_cast<const char*>(data + 2), size - 2);
  auto whole = feed(o, stream, 0);
  auto piecewise = feed(o, stream, step == 0 ? 1 : step);
  check(whole.events == piecewise.events);
  check(whole.code == piecewise.code);
  for (const auto& [kind, payload] : whole.events) {
    check(payload.size() <= o.max_message_size);
    if (kind == static_cast<std::uint8_t>(ws::ev::text)) {
      ws::utf8_validator v;
      check(v.feed(payload) && v.complete());
    }
  }
  if (o.deflate) echo_round_trip(o, whole.events);
  return 0;
}
