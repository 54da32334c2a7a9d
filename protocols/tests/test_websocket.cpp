// The WebSocket frame codec on byte strings: every frame type, 7/16/64-bit lengths, masks,
// input split at every byte, and each violation with its close code.
#include <catch2/catch.hpp>
#include <zlib.h>

#include <string>
#include <vector>

#include "swactor/protocols/websocket.hpp"

namespace ws = swactor::protocols::websocket;
using swactor::protocols::event;

namespace {

struct collected {
  std::uint8_t kind;
  std::string data;
  bool operator==(const collected&) const = default;
};

struct sink final : swactor::protocols::event_sink {
  std::vector<collected> events;
  bool on_event(const event& e) override {
    events.push_back({e.kind, std::string(e.data)});
    return true;
  }
};

// A client frame: masked with `mask`, the shortest length form unless `len_form` forces one.
std::string client_frame(std::uint8_t b0, std::string_view payload, std::uint32_t mask = 0x37fa213d,
                         int len_form = 0, bool masked = true) {
  std::string f;
  f.push_back(static_cast<char>(b0));
  auto n = payload.size();
  char mbit = masked ? char(0x80) : 0;
  int form = len_form ? len_form : (n < 126 ? 7 : n <= 0xFFFF ? 16 : 64);
  if (form == 7) {
    f.push_back(static_cast<char>(mbit | static_cast<char>(n)));
  } else if (form == 16) {
    f.push_back(static_cast<char>(mbit | 126));
    f.push_back(static_cast<char>(n >> 8));
    f.push_back(static_cast<char>(n));
  } else {
    f.push_back(static_cast<char>(mbit | 127));
    for (int k = 7; k >= 0; --k) f.push_back(static_cast<char>(static_cast<std::uint64_t>(n) >> (8 * k)));
  }
  std::uint8_t m[4] = {std::uint8_t(mask >> 24), std::uint8_t(mask >> 16), std::uint8_t(mask >> 8), std::uint8_t(mask)};
  if (masked) f.append(reinterpret_cast<char*>(m), 4);
  for (std::size_t i = 0; i < n; ++i) f.push_back(masked ? static_cast<char>(payload[i] ^ static_cast<char>(m[i & 3])) : payload[i]);
  return f;
}

constexpr std::uint8_t fin = 0x80;
constexpr std::uint8_t text = 0x1, binary = 0x2, cont = 0x0, close_op = 0x8, ping = 0x9, pong = 0xA;

std::string close_payload(std::uint16_t code, std::string_view reason = {}) {
  std::string p;
  p.push_back(static_cast<char>(code >> 8));
  p.push_back(static_cast<char>(code));
  p.append(reason);
  return p;
}

// Feeds `wire` in pieces of `step` bytes (0 = all at once), keeping unconsumed bytes as the
// connection does.
sink feed(ws::codec& c, const std::string& wire, std::size_t step = 0) {
  sink s;
  std::string pending;
  std::size_t at = 0;
  while (at < wire.size()) {
    auto n = step ? std::min(step, wire.size() - at) : wire.size() - at;
    pending.append(wire, at, n);
    at += n;
    auto used = c.decode(pending, s);
    pending.erase(0, used);
    if (c.failed()) break;
  }
  return s;
}

std::string output_of(ws::codec& c) {
  std::string out;
  c.take_output(out);
  return out;
}

// The close code of a server close frame at the start of `wire` (0 if none / empty).
int close_code_of(const std::string& wire) {
  if (wire.size() < 2 || static_cast<std::uint8_t>(wire[0]) != 0x88) return -1;
  if (wire[1] == 0) return 0;
  return (static_cast<std::uint8_t>(wire[2]) << 8) | static_cast<std::uint8_t>(wire[3]);
}

void expect_violation(const std::string& wire, int code, ws::options o = {}) {
  for (std::size_t step : {std::size_t(0), std::size_t(1)}) {
    ws::codec c(o);
    auto s = feed(c, wire, step);
    INFO("step " << step);
    REQUIRE(c.failed());
    CHECK(c.error().value() == code);
    CHECK(&c.error().category() == &ws::error_category());
    CHECK(close_code_of(output_of(c)) == code);
    CHECK(c.done());
    for (auto& e : s.events) CHECK(e.kind != static_cast<std::uint8_t>(ws::ev::text));
  }
}

}  // namespace

TEST_CASE("websocket: text and binary at 7-, 16- and 64-bit lengths, split at every byte", "[websocket]") {
  for (std::size_t n : {0, 1, 125, 126, 127, 1000, 65535, 65536, 70000}) {
    std::string payload(n, 'a');
    for (std::size_t i = 0; i < n; ++i) payload[i] = static_cast<char>('a' + i % 26);
    auto wire = client_frame(fin | text, payload) + client_frame(fin | binary, std::string(n, '\xff'), 0x01020304);
    for (std::size_t step : {std::size_t(0), std::size_t(1), std::size_t(7), std::size_t(4096)}) {
      if (step == 1 && n > 1000) continue;  // byte by byte is covered by the smaller ones
      INFO("n " << n << " step " << step);
      ws::codec c;
      auto s = feed(c, wire, step);
      REQUIRE_FALSE(c.failed());
      REQUIRE(s.events.size() == 2);
      CHECK(s.events[0] == collected{16, payload});
      CHECK(s.events[1] == collected{17, std::string(n, '\xff')});
      CHECK_FALSE(c.done());
    }
  }
}

TEST_CASE("websocket: fragments reassemble, with control frames between them", "[websocket]") {
  auto wire = client_frame(text, "Hel") + client_frame(fin | ping, "are you there") + client_frame(cont, "lo, ") +
              client_frame(fin | pong, "x") + client_frame(fin | cont, "world") + client_frame(fin | binary, "b");
  for (std::size_t step = 0; step <= wire.size(); ++step) {
    INFO("step " << step);
    ws::codec c;
    auto s = feed(c, wire, step);
    REQUIRE_FALSE(c.failed());
    REQUIRE(s.events.size() == 2);
    CHECK(s.events[0] == collected{16, "Hello, world"});
    CHECK(s.events[1] == collected{17, "b"});
    // The ping was answered with a pong carrying its payload (unmasked: server frame).
    auto out = output_of(c);
    std::string pong_frame;
    ws::write_frame(pong_frame, ws::opcode::pong, "are you there");
    CHECK(out == pong_frame);
  }
}

TEST_CASE("websocket: pings and pongs are delivered when asked", "[websocket]") {
  ws::options o;
  o.deliver_control = true;
  ws::codec c(o);
  auto s = feed(c, client_frame(fin | ping, "p") + client_frame(fin | pong, "q"));
  REQUIRE(s.events.size() == 2);
  CHECK(s.events[0] == collected{18, "p"});
  CHECK(s.events[1] == collected{19, "q"});
}

TEST_CASE("websocket: the close handshake, from the client and from the server", "[websocket]") {
  SECTION("client closes with a code and a reason") {
    ws::codec c;
    auto s = feed(c, client_frame(fin | close_op, close_payload(1000, "bye")) + client_frame(fin | text, "late"));
    REQUIRE(s.events.size() == 1);
    CHECK(s.events[0] == collected{20, close_payload(1000, "bye")});
    CHECK_FALSE(c.done());  // the echo is still to be written
    CHECK(close_code_of(output_of(c)) == 1000);
    CHECK(c.done());
    CHECK_FALSE(c.failed());
  }
  SECTION("client closes without a code: an empty close answers") {
    ws::codec c;
    auto s = feed(c, client_frame(fin | close_op, ""));
    REQUIRE(s.events.size() == 1);
    CHECK(s.events[0].data.empty());
    CHECK(close_code_of(output_of(c)) == 0);
  }
  SECTION("server closes first; data after its close is not delivered; the reply completes it") {
    ws::codec c;
    c.start_close(1001, "going away");
    auto out = output_of(c);
    CHECK(close_code_of(out) == 1001);
    CHECK(out.substr(4) == "going away");
    std::string more;
    c.encode(static_cast<std::uint8_t>(ws::reply::text), "dropped", more);
    CHECK(more.empty());
    auto s = feed(c, client_frame(fin | text, "in flight") + client_frame(fin | close_op, close_payload(1001)));
    REQUIRE(s.events.size() == 1);
    CHECK(s.events[0].kind == 20);
    CHECK(output_of(c).empty());  // no second close
    CHECK(c.done());
  }
}

TEST_CASE("websocket: protocol violations close with 1002", "[websocket]") {
  expect_violation(client_frame(fin | text, "x", 0, 0, false), 1002);          // unmasked
  expect_violation(client_frame(fin | 0x40 | text, "x"), 1002);                // RSV1 without extension
  expect_violation(client_frame(fin | 0x20 | text, "x"), 1002);                // RSV2
  expect_violation(client_frame(fin | 0x10 | text, "x"), 1002);                // RSV3
  expect_violation(client_frame(fin | 0x3, "x"), 1002);                        // reserved data opcode
  expect_violation(client_frame(fin | 0xB, "x"), 1002);                        // reserved control opcode
  expect_violation(client_frame(fin | ping, std::string(126, 'p')), 1002);     // control over 125
  expect_violation(client_frame(ping, "p"), 1002);                             // fragmented control
  expect_violation(client_frame(fin | cont, "x"), 1002);                       // continuation, no message
  expect_violation(client_frame(text, "a") + client_frame(fin | text, "b"), 1002);  // data inside a message
  expect_violation(client_frame(fin | binary, "short", 0x11223344, 16), 1002);       // non-minimal 16-bit
  expect_violation(client_frame(fin | binary, "short", 0x11223344, 64), 1002);       // non-minimal 64-bit
  {
    std::string top;  // 64-bit length with the top bit set
    top.push_back(static_cast<char>(fin | binary));
    top.push_back(static_cast<char>(0x80 | 127));
    top.push_back(static_cast<char>(0x80));
    top.append(7, '\0');
    top.append(4, 'm');
    expect_violation(top, 1002);
  }
  expect_violation(client_frame(fin | close_op, "x"), 1002);                   // 1-byte close
  for (std::uint16_t bad : {0, 999, 1004, 1005, 1006, 1012, 1015, 1016, 2000, 2999, 5000})
    expect_violation(client_frame(fin | close_op, close_payload(bad)), 1002);
  ws::options deflate_on;
  deflate_on.deflate = true;
  expect_violation(client_frame(fin | 0x40 | ping, "x"), 1002, deflate_on);  // RSV1 on a control frame
}

TEST_CASE("websocket: valid close codes are accepted", "[websocket]") {
  for (std::uint16_t code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999}) {
    ws::codec c;
    auto s = feed(c, client_frame(fin | close_op, close_payload(code)));
    CHECK_FALSE(c.failed());
    CHECK(close_code_of(output_of(c)) == code);
  }
}

TEST_CASE("websocket: invalid UTF-8 closes with 1007, at the first bad byte", "[websocket]") {
  expect_violation(client_frame(fin | text, "ok \xc0\xaf"), 1007);             // overlong
  expect_violation(client_frame(fin | text, "\xed\xa0\x80"), 1007);            // surrogate
  expect_violation(client_frame(fin | text, "\xf4\x90\x80\x80"), 1007);        // above U+10FFFF
  expect_violation(client_frame(fin | text, "\xe2\x82"), 1007);                // ends inside a sequence
  expect_violation(client_frame(text, "\xce") + client_frame(fin | cont, "x"), 1007);  // across fragments
  expect_violation(client_frame(fin | close_op, close_payload(1000, "\xff")), 1007);   // close reason
  // Valid text split inside a sequence across fragments is fine.
  {
    ws::codec c;
    auto s = feed(c, client_frame(text, "\xce") + client_frame(fin | cont, "\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"));
    CHECK_FALSE(c.failed());
    REQUIRE(s.events.size() == 1);
  }
  // Fail fast: the header and the first bad byte are enough, the rest of the frame has not come.
  {
    ws::codec c;
    auto wire = client_frame(fin | text, std::string("\xff") + std::string(1000, 'a'));
    auto s = feed(c, wire.substr(0, 2 + 2 + 4 + 1));
    CHECK(c.failed());
    CHECK(c.error().value() == 1007);
  }
}

TEST_CASE("websocket: frames over max_frame_size and messages over max_message_size close with 1009", "[websocket]") {
  ws::options o;
  o.max_frame_size = 1000;
  o.max_message_size = 1500;
  expect_violation(client_frame(fin | binary, std::string(1001, 'x')), 1009, o);
  expect_violation(client_frame(binary, std::string(1000, 'x')) + client_frame(fin | cont, std::string(501, 'x')), 1009, o);
  // Exactly at the limits is fine; many tiny fragments are fine too.
  ws::codec c(o);
  std::string many = client_frame(binary, std::string(1000, 'x'));
  for (int i = 0; i < 499; ++i) many += client_frame(cont, "y");
  many += client_frame(fin | cont, "z");
  auto s = feed(c, many);
  CHECK_FALSE(c.failed());
  REQUIRE(s.events.size() == 1);
  CHECK(s.events[0].data.size() == 1500);
}

TEST_CASE("websocket: UTF-8 validator", "[websocket]") {
  auto ok = [](std::string_view s) {
    ws::utf8_validator v;
    return v.feed(s) && v.complete();
  };
  CHECK(ok(""));
  CHECK(ok("plain ascii, long enough to take the eight-byte path twice"));
  CHECK(ok("\xc2\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf \xef\xbf\xbf"));
  for (std::string_view bad : {"\x80", "\xc1\xbf", "\xe0\x9f\xbf", "\xed\xbf\xbf", "\xf0\x8f\xbf\xbf", "\xf5\x80\x80\x80",
                               "\xff", "abc\xc2", "\xe2\x28\xa1"})
    CHECK_FALSE(ok(bad));
  // Byte by byte gives the same answers.
  ws::utf8_validator v;
  for (char c : std::string_view("\xf0\x9f\x98\x80")) CHECK(v.feed(std::string_view(&c, 1)));
  CHECK(v.complete());
}

TEST_CASE("websocket: unmask a word at a time equals byte by byte", "[websocket]") {
  const std::uint8_t mask[4] = {0xde, 0xad, 0xbe, 0xef};
  for (std::size_t off = 0; off < 4; ++off)
    for (std::size_t n = 0; n < 70; ++n) {
      std::string a(n, '\0'), b;
      for (std::size_t i = 0; i < n; ++i) a[i] = static_cast<char>(i * 7 + 1);
      b = a;
      auto next = ws::unmask(a.data(), n, mask, off);
      for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<char>(b[i] ^ static_cast<char>(mask[(off + i) % 4]));
      CHECK(a == b);
      CHECK(next == (off + n) % 4);
    }
}

TEST_CASE("websocket: server frames use the shortest length and no mask", "[websocket]") {
  ws::codec c;
  for (std::size_t n : {0, 125, 126, 65535, 65536}) {
    std::string out;
    c.encode(static_cast<std::uint8_t>(ws::reply::binary), std::string(n, 'z'), out);
    std::size_t header = n < 126 ? 2 : n <= 0xFFFF ? 4 : 10;
    CHECK(out.size() == header + n);
    CHECK(static_cast<std::uint8_t>(out[0]) == 0x82);
    CHECK((static_cast<std::uint8_t>(out[1]) & 0x80) == 0);
  }
}

TEST_CASE("websocket: handshake keys (RFC 6455 section 1.3)", "[websocket]") {
  CHECK(ws::accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  CHECK(ws::valid_client_key("dGhlIHNhbXBsZSBub25jZQ=="));
  CHECK_FALSE(ws::valid_client_key("dGhlIHNhbXBsZSBub25jZQ="));
  CHECK_FALSE(ws::valid_client_key("dGhlIHNhbXBsZSBub25jZR=="));  // 16 bytes leave zero bits
  CHECK_FALSE(ws::valid_client_key("dGhlIHNhbXBsZSBub25j*Q=="));
  CHECK_FALSE(ws::valid_client_key(""));
}

TEST_CASE("websocket: the opening handshake is checked", "[websocket][handshake]") {
  ws::handshake_request r;
  r.method = "GET";
  r.upgrade = "websocket";
  r.connection = "keep-alive, Upgrade";
  r.key = "dGhlIHNhbXBsZSBub25jZQ==";
  r.version = "13";
  r.protocols = "chat, superchat";
  r.extensions = "permessage-deflate; client_max_window_bits, permessage-deflate; server_max_window_bits=10; "
                 "server_no_context_takeover, x-unknown, permessage-deflate; bogus";
  auto c = ws::check_handshake(r);
  REQUIRE(c);
  CHECK(c.accept == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  CHECK(c.protocols == std::vector<std::string>{"chat", "superchat"});
  REQUIRE(c.deflate_offers.size() == 2);  // the malformed third offer is declined
  CHECK(c.deflate_offers[0].client_max_window_bits == -1);
  CHECK(c.deflate_offers[1].server_max_window_bits == 10);
  CHECK(c.deflate_offers[1].server_no_context_takeover);
  auto head = ws::switching_protocols_head(c, "chat");
  CHECK(head ==
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\r\n");
  CHECK(ws::is_upgrade_request(r));

  auto refused = [&](auto edit, int status, std::string_view why) {
    auto x = r;
    edit(x);
    auto k = ws::check_handshake(x);
    CHECK_FALSE(k);
    CHECK(k.status == status);
    CHECK(k.error.find(why) != std::string::npos);
    auto text = ws::refusal(k);
    CHECK(text.rfind("HTTP/1.1 " + std::to_string(status), 0) == 0);
    if (status == 426) CHECK(text.find("Sec-WebSocket-Version: 13\r\n") != std::string::npos);
  };
  refused([](auto& x) { x.method = "POST"; }, 400, "GET");
  refused([](auto& x) { x.version_minor = 0; }, 400, "HTTP/1.1");
  refused([](auto& x) { x.upgrade = "h2c"; }, 400, "Upgrade");
  refused([](auto& x) { x.connection = "keep-alive"; }, 400, "Connection");
  refused([](auto& x) { x.version = "8"; }, 426, "unsupported");
  refused([](auto& x) { x.version = ""; }, 426, "missing");
  refused([](auto& x) { x.key = "short=="; }, 400, "Sec-WebSocket-Key");
  refused([](auto& x) { x.protocols = "chat, bad protocol"; }, 400, "Sec-WebSocket-Protocol");
  // Tokens are case-insensitive and may sit in lists.
  auto y = r;
  y.upgrade = "foo, WebSocket";
  y.connection = "UPGRADE";
  CHECK(ws::check_handshake(y));
  y.upgrade = "http/2";
  CHECK_FALSE(ws::is_upgrade_request(y));
}

TEST_CASE("websocket: permessage-deflate offers are negotiated", "[websocket][deflate]") {
  ws::deflate_params p;
  std::vector<ws::deflate_offer> offers(1);
  CHECK(ws::negotiate_deflate(offers, false, 15, p) == "permessage-deflate");
  offers[0].client_max_window_bits = 12;
  offers[0].client_no_context_takeover = true;
  CHECK(ws::negotiate_deflate(offers, true, 10, p) ==
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; "
        "client_max_window_bits=12");
  CHECK(p.server_no_context_takeover);
  CHECK(p.server_max_window_bits == 10);
  CHECK(p.client_max_window_bits == 12);
  // An offer that insists on an 8-bit server window is declined; the next one is taken.
  std::vector<ws::deflate_offer> two(2);
  two[0].server_max_window_bits = 8;
  CHECK(ws::negotiate_deflate(two, false, 15, p) == "permessage-deflate");
  CHECK(ws::negotiate_deflate({two[0]}, false, 15, p).empty());
}

TEST_CASE("websocket: no_context_takeover asks a client that keeps its context for a 9-bit window",
          "[websocket][deflate]") {
  ws::deflate_params p;
  std::vector<ws::deflate_offer> offers(1);
  offers[0].client_max_window_bits = -1;  // a browser: the parameter without a value
  CHECK(ws::negotiate_deflate(offers, true, 15, p) ==
        "permessage-deflate; server_no_context_takeover; client_max_window_bits=9");
  CHECK(p.client_max_window_bits == 9);
  // A value offered: the same or smaller (8 stays 8).
  offers[0].client_max_window_bits = 12;
  CHECK(ws::negotiate_deflate(offers, true, 15, p) ==
        "permessage-deflate; server_no_context_takeover; client_max_window_bits=9");
  offers[0].client_max_window_bits = 8;
  CHECK(ws::negotiate_deflate(offers, true, 15, p) ==
        "permessage-deflate; server_no_context_takeover; client_max_window_bits=8");
  // Not offered: the parameter must not be sent, the client's window stays 15.
  offers[0].client_max_window_bits = 0;
  CHECK(ws::negotiate_deflate(offers, true, 15, p) == "permessage-deflate; server_no_context_takeover");
  CHECK(p.client_max_window_bits == 15);
  // The client resets its context anyway (the shared stream): nothing to ask.
  offers[0].client_max_window_bits = -1;
  offers[0].client_no_context_takeover = true;
  CHECK(ws::negotiate_deflate(offers, true, 15, p) ==
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
  // Without no_context_takeover the client keeps its full window.
  offers[0].client_no_context_takeover = false;
  CHECK(ws::negotiate_deflate(offers, false, 15, p) == "permessage-deflate");
  CHECK(p.client_max_window_bits == 15);
}

TEST_CASE("websocket: the inflate window is the client's negotiated window", "[websocket][deflate]") {
  ws::options o;
  o.deflate = true;
  o.deflate_with.client_max_window_bits = 9;
  // A client with a 9-bit window that keeps its context: later messages refer to earlier ones.
  ws::deflater client9(ws::deflate_params{false, false, 9, 15});
  std::vector<std::string> texts = {"the same words again and again, ", "the same words again and again, ",
                                    std::string(3000, 'q') + "the same words again and again, "};
  std::string wire;
  for (auto& t : texts) {
    std::string z;
    client9.deflate_message(t, z);
    wire += client_frame(fin | 0x40 | text, z);
  }
  {
    ws::codec c(o);
    auto s = feed(c, wire);
    REQUIRE_FALSE(c.failed());
    REQUIRE(s.events.size() == texts.size());
    for (std::size_t i = 0; i < texts.size(); ++i) CHECK(s.events[i].data == texts[i]);
  }
  // Two such connections interleaved on one thread (both inflate with the thread's stream,
  // each primed with its own kept window): each message refers to its own connection's last.
  {
    ws::codec a(o), b(o);
    ws::deflater ca(ws::deflate_params{false, false, 9, 15}), cb(ws::deflate_params{false, false, 9, 15});
    for (int round = 0; round < 20; ++round) {
      INFO("round " << round);
      const std::string ta = "alpha alpha alpha " + std::to_string(round % 3) + std::string(round * 37, 'a');
      const std::string tb = "bravo bravo bravo " + std::to_string(round % 4) + std::string(round * 53, 'b');
      std::string za, zb;
      ca.deflate_message(ta, za);
      cb.deflate_message(tb, zb);
      auto sa = feed(a, client_frame(fin | 0x40 | text, za));
      auto sb = feed(b, client_frame(fin | 0x40 | binary, zb));
      REQUIRE_FALSE(a.failed());
      REQUIRE_FALSE(b.failed());
      REQUIRE(sa.events.size() == 1);
      REQUIRE(sb.events.size() == 1);
      CHECK(sa.events[0].data == ta);
      CHECK(sb.events[0].data == tb);
    }
  }
  // A client that breaks its word (a 15-bit window: the second message refers to the start
  // of the first, 4000 bytes back) does not fit in the 512-byte window kept between
  // messages: bad compressed data, 1007. The same bytes with a 15-bit window inflate.
  ws::deflater client15(ws::deflate_params{false, false, 15, 15});
  std::string noise;
  std::uint32_t x = 12345;
  for (int i = 0; i < 4000; ++i) {
    x = x * 1103515245 + 12345;
    noise.push_back(static_cast<char>('a' + (x >> 16) % 26));
  }
  std::string z1, z2;
  client15.deflate_message(noise, z1);
  client15.deflate_message(noise.substr(0, 300), z2);
  REQUIRE(z2.size() < 100);  // a back reference, not literals
  const auto two = client_frame(fin | 0x40 | text, z1) + client_frame(fin | 0x40 | text, z2);
  {
    ws::codec c(o);
    feed(c, two);
    REQUIRE(c.failed());
    CHECK(c.error().value() == 1007);
  }
  o.deflate_with.client_max_window_bits = 15;
  ws::codec wide(o);
  auto s = feed(wide, two);
  REQUIRE_FALSE(wide.failed());
  REQUIRE(s.events.size() == 2);
  CHECK(s.events[1].data == noise.substr(0, 300));
}

TEST_CASE("websocket: compressed messages in, compressed replies out", "[websocket][deflate]") {
  for (bool no_takeover : {false, true}) {
    INFO("no_context_takeover " << no_takeover);
    ws::options o;
    o.deflate = true;
    o.deflate_with.server_no_context_takeover = no_takeover;
    o.deflate_with.client_no_context_takeover = no_takeover;
    o.deflate_min_size = 16;
    ws::codec server(o);
    // The client side of the same stream: our own deflater with the roles' params swapped.
    ws::deflater client(ws::deflate_params{no_takeover, no_takeover, 15, 15});
    std::string wire;
    std::vector<std::string> texts = {"hello hello hello hello hello", "κόσμε κόσμε κόσμε κόσμε", std::string(5000, 'z'), ""};
    for (auto& t : texts) {
      std::string z;
      client.deflate_message(t, z);
      wire += client_frame(fin | 0x40 | text, z);
    }
    for (std::size_t step : {std::size_t(0), std::size_t(3)}) {
      ws::codec c(o);
      auto s = feed(c, wire, step);
      REQUIRE_FALSE(c.failed());
      REQUIRE(s.events.size() == texts.size());
      for (std::size_t i = 0; i < texts.size(); ++i) CHECK(s.events[i].data == texts[i]);
    }
    // Replies: at or over deflate_min_size compressed (RSV1), smaller ones plain.
    std::string out;
    server.encode(static_cast<std::uint8_t>(ws::reply::text), std::string(1000, 'a'), out);
    CHECK((static_cast<std::uint8_t>(out[0]) & 0x40) != 0);
    CHECK(out.size() < 100);
    std::string small;
    server.encode(static_cast<std::uint8_t>(ws::reply::text), "tiny", small);
    CHECK((static_cast<std::uint8_t>(small[0]) & 0x40) == 0);
    // The client inflates what we sent.
    ws::deflater reader(ws::deflate_params{no_takeover, no_takeover, 15, 15});
    std::string plain;
    bool too_big = false;
    REQUIRE(reader.inflate_message(std::string_view(out).substr(2), plain, 1 << 20, too_big));
    CHECK(plain == std::string(1000, 'a'));
  }
}

TEST_CASE("websocket: no_context_takeover connections share the thread's zlib streams safely",
          "[websocket][deflate]") {
  // Connections without context takeover use one stream per thread (nothing of a message is
  // left in it afterwards); interleaved with each other, with a context-keeping one, and
  // with a failed inflate (a bomb) in between, every message still comes out right.
  const ws::deflate_params none{true, true, 15, 15};
  const ws::deflate_params keep{false, false, 15, 15};
  ws::deflater a(none), b(none), k(keep);
  ws::deflater client_a(none), client_b(none), client_k(keep);
  ws::deflater reader_a(none), reader_b(none), reader_k(keep);
  for (int round = 0; round < 3; ++round) {
    INFO("round " << round);
    for (auto* pair : {&a, &b, &k}) {
      auto& client = pair == &a ? client_a : pair == &b ? client_b : client_k;
      auto& reader = pair == &a ? reader_a : pair == &b ? reader_b : reader_k;
      std::string text;
      for (int i = 0; i < 50; ++i) text += pair == &a ? "alpha " : pair == &b ? "bravo " : "kilo ";
      text += std::to_string(round);
      std::string z, plain;
      bool too_big = false;
      client.deflate_message(text, z);
      REQUIRE(pair->inflate_message(z, plain, 1 << 20, too_big));
      CHECK(plain == text);
      std::string back;
      pair->deflate_message(text, back);
      std::string again;
      REQUIRE(reader.inflate_message(back, again, 1 << 20, too_big));
      CHECK(again == text);
    }
    // A bomb on `a` fails in the middle of the shared stream; `b` is not affected.
    std::string bomb, plain;
    bool too_big = false;
    ws::deflater(ws::deflate_params{}).deflate_message(std::string(1'000'000, '\0'), bomb);
    CHECK_FALSE(a.inflate_message(bomb, plain, 1000, too_big));
    CHECK(too_big);
  }
}

TEST_CASE("websocket: a deflate bomb closes with 1009, bad deflate data with 1007", "[websocket][deflate]") {
  ws::options o;
  o.deflate = true;
  o.max_message_size = 100000;
  ws::deflater client(ws::deflate_params{});
  std::string bomb;
  client.deflate_message(std::string(10'000'000, '\0'), bomb);  // ~10 KB on the wire
  CHECK(bomb.size() < 20000);
  expect_violation(client_frame(fin | 0x40 | binary, bomb), 1009, o);
  expect_violation(client_frame(fin | 0x40 | binary, "\xff\xff\xff garbage"), 1007, o);
  // Invalid UTF-8 inside a compressed text message.
  std::string z;
  ws::deflater c2(ws::deflate_params{});
  c2.deflate_message("abc\xc0\xaf", z);
  expect_violation(client_frame(fin | 0x40 | text, z), 1007, o);
  // RSV1 on a continuation frame is still an error.
  expect_violation(client_frame(0x40 | text, "a") + client_frame(fin | 0x40 | cont, "b"), 1002, o);
}

TEST_CASE("websocket: compressed messages are inflated as they arrive: UTF-8 fails fast, fragments interleave",
          "[websocket][deflate]") {
  ws::options o;
  o.deflate = true;
  o.deflate_with = ws::deflate_params{true, true, 15, 15};
  // Text of pseudo-random words (compresses to many blocks), invalid UTF-8 at the start.
  std::string body;
  std::uint32_t x = 12345;
  while (body.size() < 200'000) {
    x = x * 1103515245 + 12345;
    body += "word" + std::to_string(x % 100000) + " \xce\xbb ";
  }
  std::string z;
  ws::deflater(o.deflate_with).deflate_message("\xff" + body, z);
  REQUIRE(z.size() > 20'000);
  {
    // Only the first fragment's frame has come: the 0xff it inflates to is enough.
    ws::codec c(o);
    auto s = feed(c, client_frame(0x40 | text, std::string_view(z).substr(0, z.size() / 4)));
    CHECK(c.failed());
    CHECK(c.error().value() == 1007);
    CHECK(close_code_of(output_of(c)) == 1007);
    CHECK(s.events.empty());
  }
  {
    // The same inside one frame of which only the start has arrived.
    ws::codec c(o);
    auto wire = client_frame(fin | 0x40 | text, z);
    auto s = feed(c, wire.substr(0, wire.size() / 3));
    CHECK(c.failed());
    CHECK(c.error().value() == 1007);
  }
  // Valid text: two connections of one thread each inside a fragmented compressed message at
  // once (the second cannot have the thread's shared stream: it gets its own), each fragment
  // a slice of the deflate data cut anywhere (inside UTF-8 sequences too), fed a byte at a
  // time or whole.
  std::string za, zb;
  ws::deflater(o.deflate_with).deflate_message(body, za);
  const std::string other = "other " + body.substr(0, 50'000);
  ws::deflater(o.deflate_with).deflate_message(other, zb);
  for (std::size_t step : {std::size_t(0), std::size_t(7)}) {
    INFO("step " << step);
    ws::codec a(o), b(o);
    sink sa, sb;
    std::string pa, pb;
    auto fragments = [](const std::string& data, int parts) {
      std::vector<std::string> frames;
      for (int i = 0; i < parts; ++i) {
        auto from = data.size() * i / parts, to = data.size() * (i + 1) / parts;
        std::uint8_t b0 = (i == 0 ? 0x40 | text : cont) | (i == parts - 1 ? fin : 0);
        frames.push_back(client_frame(b0, std::string_view(data).substr(from, to - from)));
      }
      return frames;
    };
    auto fa = fragments(za, 5), fb = fragments(zb, 3);
    auto push = [step](ws::codec& c, sink& s, std::string& pending, const std::string& wire) {
      for (std::size_t at = 0; at < wire.size();) {
        auto n = step ? std::min(step, wire.size() - at) : wire.size() - at;
        pending.append(wire, at, n);
        at += n;
        pending.erase(0, c.decode(pending, s));
      }
    };
    for (std::size_t i = 0; i < std::max(fa.size(), fb.size()); ++i) {
      if (i < fa.size()) push(a, sa, pa, fa[i]);
      if (i < fb.size()) push(b, sb, pb, fb[i]);
    }
    REQUIRE_FALSE(a.failed());
    REQUIRE_FALSE(b.failed());
    REQUIRE(sa.events.size() == 1);
    REQUIRE(sb.events.size() == 1);
    CHECK(sa.events[0].data == body);
    CHECK(sb.events[0].data == other);
  }
  // A connection that closes inside a compressed message gives the shared stream back: the
  // next connection's message comes out right.
  {
    auto c = std::make_unique<ws::codec>(o);
    sink s;
    c->decode(client_frame(0x40 | text, std::string_view(za).substr(0, 1000)), s);
    c.reset();
    ws::codec d(o);
    auto t = feed(d, client_frame(fin | 0x40 | text, zb));
    REQUIRE(t.events.size() == 1);
    CHECK(t.events[0].data == other);
  }
}

TEST_CASE("websocket: liveness: a ping after ping_interval, the idle close after idle_timeout", "[websocket]") {
  ws::options o;
  o.ping_interval_ms = 100;
  o.idle_timeout_ms = 300;
  o.close_timeout_ms = 50;
  ws::codec c(o);
  auto d = c.timeout();
  CHECK(d.ms == 100);  // first the ping
  std::string out;
  CHECK(c.expire(out).empty());  // nothing to log
  REQUIRE(out.size() == 2);
  CHECK(static_cast<std::uint8_t>(out[0]) == 0x89);  // FIN | ping, empty
  CHECK_FALSE(c.done());
  auto d2 = c.timeout();
  CHECK(d2.ms == 200);  // the rest of idle_timeout
  CHECK(d2.epoch != d.epoch);
  // Any input (a pong) starts over: a ping is due again, not the close.
  feed(c, client_frame(0x8A, ""));
  auto d3 = c.timeout();
  CHECK(d3.ms == 100);
  CHECK(d3.epoch != d2.epoch);
  out.clear();
  CHECK(c.expire(out).empty());
  // Silence after the ping: the close, with 1001 and the reason.
  out.clear();
  CHECK(c.expire(out) == "idle timeout");
  CHECK(close_code_of(out) == 1001);
  CHECK(out.substr(4) == "idle timeout");
  CHECK(c.close_sent());
  CHECK(c.timeout().ms == 50);  // the client's close reply is due
  CHECK_FALSE(c.done());
  out.clear();
  CHECK(c.expire(out) == "no close reply within close_timeout");
  CHECK(c.done());
  CHECK(c.timeout().ms == 0);
}

TEST_CASE("websocket: liveness: pings only, idle only, neither", "[websocket]") {
  SECTION("no idle limit: it pings on and on") {
    ws::options o;
    o.ping_interval_ms = 100;
    ws::codec c(o);
    for (int i = 0; i < 3; ++i) {
      auto before = c.timeout();
      CHECK(before.ms == 100);
      std::string out;
      CHECK(c.expire(out).empty());
      CHECK(static_cast<std::uint8_t>(out[0]) == 0x89);
      CHECK(c.timeout().epoch != before.epoch);
    }
    CHECK_FALSE(c.close_sent());
  }
  SECTION("no pings: the close after idle_timeout") {
    ws::options o;
    o.idle_timeout_ms = 250;
    ws::codec c(o);
    CHECK(c.timeout().ms == 250);
    std::string out;
    CHECK(c.expire(out) == "idle timeout");
    CHECK(close_code_of(out) == 1001);
  }
  SECTION("a ping interval at or past the idle limit never pings") {
    ws::options o;
    o.ping_interval_ms = 300;
    o.idle_timeout_ms = 300;
    ws::codec c(o);
    CHECK(c.timeout().ms == 300);
    std::string out;
    CHECK(c.expire(out) == "idle timeout");
  }
  SECTION("both off: no deadline until a close is sent") {
    ws::codec c;
    CHECK(c.timeout().ms == 0);
    c.start_close(1000, "");
    CHECK(c.timeout().ms == 5000);
  }
}

TEST_CASE("websocket: go_away closes with 1001 once, then waits for the reply", "[websocket]") {
  ws::codec c;
  std::string out;
  CHECK(c.go_away(out));
  CHECK(close_code_of(out) == 1001);
  CHECK(out.substr(4) == "going away");
  CHECK(c.close_sent());
  CHECK(c.timeout().ms == 5000);
  std::string again;
  CHECK_FALSE(c.go_away(again));  // said once
  CHECK(again.empty());
  feed(c, client_frame(0x88, std::string("\x03\xe9", 2)));
  CHECK(c.done());
}

// Autobahn 5.6-5.8, 5.19, 5.20: a pong must not wait behind the reply to a message whose last
// fragment came after the ping. The connection encodes inline replies after decode() returns
// and takes the codec's own output after them, so the codec puts the pong ahead itself.
TEST_CASE("websocket: a pong for a ping between fragments goes out before the message's reply", "[websocket]") {
  const auto text_kind = static_cast<std::uint8_t>(ws::reply::text);
  std::string pong_frame, echo_frame;
  ws::write_frame(pong_frame, ws::opcode::pong, "ping payload");
  ws::write_frame(echo_frame, ws::opcode::text, "fragment1fragment2");
  auto wire = client_frame(text, "fragment1") + client_frame(fin | ping, "ping payload") +
              client_frame(fin | cont, "fragment2");
  for (std::size_t step : {std::size_t(0), std::size_t(1), std::size_t(5)}) {
    INFO("step " << step);
    ws::codec c;
    // Fed whole, or in pieces with nothing taken between them (one read's worth).
    auto s = feed(c, wire, step);
    REQUIRE(s.events.size() == 1);
    std::string out;
    c.encode(text_kind, s.events[0].data, out);  // the handler's inline echo
    c.take_output(out);
    CHECK(out == pong_frame + echo_frame);
  }
  SECTION("a ping after a whole message is answered after that message's reply") {
    ws::codec c;
    auto s = feed(c, client_frame(fin | text, "first") + client_frame(fin | ping, "ping payload"));
    REQUIRE(s.events.size() == 1);
    std::string out, first;
    c.encode(text_kind, "first", out);
    c.take_output(out);
    ws::write_frame(first, ws::opcode::text, "first");
    CHECK(out == first + pong_frame);
  }
  SECTION("a pong already taken is not sent twice") {
    ws::codec c;
    feed(c, client_frame(text, "a") + client_frame(fin | ping, "ping payload") + client_frame(fin | cont, "b"));
    CHECK(output_of(c) == pong_frame);  // process mode: taken right after decode()
    std::string out, ab;
    c.encode(text_kind, "ab", out);
    ws::write_frame(ab, ws::opcode::text, "ab");
    CHECK(out == ab);
  }
}

// Autobahn 3.2, 3.3, 4.1.3, 4.1.4, 4.2.3, 4.2.4, 5.15 (and 7.1.x with a close): a message and
// a bad frame (or the peer's close) in one read. The message was delivered before the error,
// so its reply still goes out, ahead of the close; nothing goes out after the close.
TEST_CASE("websocket: a reply to a message read before an error or a close precedes our close", "[websocket]") {
  const auto text_kind = static_cast<std::uint8_t>(ws::reply::text);
  std::string echo_frame;
  ws::write_frame(echo_frame, ws::opcode::text, "Hello");
  SECTION("protocol error") {
    ws::codec c;
    auto s = feed(c, client_frame(fin | text, "Hello") + client_frame(fin | 0x20 | text, "Hello") +
                         client_frame(fin | ping, ""));
    REQUIRE(c.failed());
    REQUIRE(s.events.size() == 1);
    std::string out;
    c.encode(text_kind, "Hello", out);
    c.take_output(out);
    REQUIRE(out.size() > echo_frame.size());
    CHECK(out.substr(0, echo_frame.size()) == echo_frame);
    CHECK(close_code_of(out.substr(echo_frame.size())) == 1002);
    CHECK(c.done());
    std::string late;
    c.encode(text_kind, "late", late);
    CHECK(late.empty());
  }
  SECTION("the peer's close") {
    ws::codec c;
    auto s = feed(c, client_frame(fin | text, "Hello") + client_frame(fin | close_op, close_payload(1000)));
    REQUIRE(s.events.size() == 2);
    std::string out;
    c.encode(text_kind, "Hello", out);
    c.take_output(out);
    CHECK(out.substr(0, echo_frame.size()) == echo_frame);
    CHECK(close_code_of(out.substr(echo_frame.size())) == 1000);
    CHECK(c.done());
  }
  SECTION("the close already taken: the late reply is dropped") {
    ws::codec c;
    feed(c, client_frame(fin | text, "Hello") + client_frame(fin | close_op, close_payload(1000)));
    CHECK(close_code_of(output_of(c)) == 1000);
    std::string late;
    c.encode(text_kind, "Hello", late);
    CHECK(late.empty());
  }
}

namespace {
// What a browser or any zlib client does with our compressed frames: one raw inflate stream
// for the connection, the 00 00 ff ff tail appended to every payload (RFC 7692 §7.2.2).
struct zlib_client {
  z_stream z{};
  zlib_client() { REQUIRE(inflateInit2(&z, -15) == Z_OK); }
  ~zlib_client() { inflateEnd(&z); }
  bool inflate_payload(std::string payload, std::string& out) {
    payload.append("\x00\x00\xff\xff", 4);
    z.next_in = reinterpret_cast<Bytef*>(payload.data());
    z.avail_in = static_cast<uInt>(payload.size());
    while (z.avail_in > 0) {
      char buf[4096];
      z.next_out = reinterpret_cast<Bytef*>(buf);
      z.avail_out = sizeof buf;
      int rc = inflate(&z, Z_SYNC_FLUSH);
      out.append(buf, sizeof buf - z.avail_out);
      if (rc != Z_OK && rc != Z_BUF_ERROR) return false;
      if (rc == Z_BUF_ERROR && z.avail_out == sizeof buf) return false;  // stuck mid-block
    }
    // Everything consumed and no block left open: the stream is at a message boundary.
    return true;
  }
};
}  // namespace

// Found by fuzz_websocket's echo round trip: with context takeover, an empty message after
// another compressed one made zlib write nothing (a second sync flush with no input), so the
// frame's payload was empty; a client that appends the tail to it opens a stored block and
// reads the next message's bytes as its lengths.
TEST_CASE("websocket: empty compressed messages keep a zlib client in step", "[websocket][deflate]") {
  for (bool no_takeover : {false, true}) {
    INFO("server_no_context_takeover " << no_takeover);
    ws::options o;
    o.deflate = true;
    o.deflate_min_size = 0;
    o.deflate_with.server_no_context_takeover = no_takeover;
    ws::codec server(o);
    zlib_client client;
    for (std::string m : {"", "a", "", "", "hello hello hello", "", "a"}) {
      std::string wire;
      server.encode(static_cast<std::uint8_t>(ws::reply::text), m, wire);
      REQUIRE(wire.size() >= 2);
      CHECK(static_cast<std::uint8_t>(wire[0]) == (0x80 | 0x40 | text));
      std::size_t n = static_cast<std::uint8_t>(wire[1]);
      REQUIRE(n < 126);
      CHECK(n >= 1);  // never an empty compressed payload
      std::string back;
      REQUIRE(client.inflate_payload(wire.substr(2), back));
      CHECK(back == m);
    }
  }
}

TEST_CASE("websocket: an empty compressed payload from the client is an empty message", "[websocket][deflate]") {
  ws::options o;
  o.deflate = true;
  ws::deflater client(ws::deflate_params{});
  std::string z1, z2;
  client.deflate_message("first first first", z1);
  client.deflate_message("second second", z2);
  auto wire = client_frame(fin | 0x40 | text, z1) + client_frame(fin | 0x40 | text, "") +
              client_frame(fin | 0x40 | binary, "") + client_frame(fin | 0x40 | text, z2);
  ws::codec c(o);
  auto s = feed(c, wire);
  REQUIRE_FALSE(c.failed());
  REQUIRE(s.events.size() == 4);
  CHECK(s.events[0].data == "first first first");
  CHECK(s.events[1] == collected{16, ""});
  CHECK(s.events[2] == collected{17, ""});
  CHECK(s.events[3].data == "second second");
}
