// `swactor bench -f websocket` / `-f websocket_connect`: the client frame codec, the upgrade
// answer check and the arguments in-process; then the real binary against `swactor run` with
// a ws:// ws_echo listener, in both server modes.
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "args.hpp"
#include "bench_run.hpp"
#include "mode.hpp"
#include "server_helpers.hpp"
#include "swactor/protocols/websocket.hpp"
#include "ws_client.hpp"

using namespace std::chrono_literals;
namespace t = swactor::testing;
namespace b = swactor::bench;
namespace bws = swactor::bench::ws;
using namespace swactor::testing::server;

namespace {

// An unmasked server frame with FIN = `fin`.
std::string server_frame(std::uint8_t opcode, std::string_view payload, bool fin = true) {
  std::string f(1, static_cast<char>((fin ? 0x80 : 0) | opcode));
  const auto n = payload.size();
  if (n < 126) {
    f += static_cast<char>(n);
  } else if (n <= 0xffff) {
    f += static_cast<char>(126);
    f += static_cast<char>(n >> 8);
    f += static_cast<char>(n & 0xff);
  } else {
    f += static_cast<char>(127);
    for (int s = 56; s >= 0; s -= 8) f += static_cast<char>((static_cast<std::uint64_t>(n) >> s) & 0xff);
  }
  return f + std::string(payload);
}

}  // namespace

TEST_CASE("bench websocket: server frames are cut at every length form", "[bench][websocket]") {
  for (std::size_t n : {0, 1, 125, 126, 127, 65535, 65536, 70000}) {
    INFO("size " << n);
    const std::string payload(n, 'p');
    const auto f = server_frame(bws::op_text, payload);
    const auto c = bws::cut_message(f + "next");
    CHECK(c.size == static_cast<std::ptrdiff_t>(f.size()));
    CHECK_FALSE(c.close);
    CHECK(bws::message_payload(f) == payload);
    // Every proper prefix needs more bytes.
    for (std::size_t k = 0; k < f.size(); k += (k < 16 ? 1 : 997)) {
      INFO("prefix " << k);
      CHECK(bws::cut_message(std::string_view(f).substr(0, k)).size == 0);
    }
  }
  // Pings and pongs before the message are part of the reply and skipped by the payload.
  const auto with_ping = server_frame(bws::op_ping, "hi") + server_frame(bws::op_pong, "") +
                         server_frame(bws::op_text, "echo");
  CHECK(bws::cut_message(with_ping).size == static_cast<std::ptrdiff_t>(with_ping.size()));
  std::uint8_t op = 0;
  CHECK(bws::message_payload(with_ping, &op) == "echo");
  CHECK(op == bws::op_text);
  // Fragments (with a ping between them) are one message.
  const auto frags = server_frame(bws::op_binary, "ab", false) + server_frame(bws::op_ping, "x") +
                     server_frame(bws::op_continuation, "cd", false) +
                     server_frame(bws::op_continuation, "ef");
  CHECK(bws::cut_message(frags).size == static_cast<std::ptrdiff_t>(frags.size()));
  CHECK(bws::cut_message(frags.substr(0, frags.size() - 1)).size == 0);
  CHECK(bws::message_payload(frags, &op) == "abcdef");
  CHECK(op == bws::op_binary);
  // A close instead of the message.
  const auto close = server_frame(bws::op_close, std::string("\x03\xe9", 2));
  const auto cc = bws::cut_message(close);
  CHECK(cc.size == static_cast<std::ptrdiff_t>(close.size()));
  CHECK(cc.close);
  CHECK(bws::cut_close(server_frame(bws::op_text, "x") + close) ==
        static_cast<std::ptrdiff_t>(close.size() + 3));
  CHECK(bws::cut_close(close.substr(0, 3)) == 0);
  // Malformed: masked, reserved bits, unknown opcode, long or fragmented control frames,
  // continuation without a message, a data frame inside one, an absurd length.
  const std::vector<std::string> bad = {
      std::string("\x81\x80\x00\x00\x00\x00", 6),
      std::string("\xc1\x00", 2),
      std::string("\x83\x00", 2),
      std::string("\x8b\x00", 2),
      server_frame(bws::op_ping, std::string(126, 'x')),
      std::string("\x09\x00", 2),
      server_frame(bws::op_continuation, "x"),
      server_frame(bws::op_text, "a", false) + server_frame(bws::op_text, "b"),
      std::string("\x82\x7f\x7f\xff\xff\xff\xff\xff\xff\xff", 10),
  };
  for (const auto& m : bad) {
    INFO("case " << &m - bad.data());
    CHECK(bws::cut_message(m).size == -1);
  }
}

TEST_CASE("bench websocket: client frames are masked and round-trip", "[bench][websocket]") {
  for (std::size_t n : {0, 5, 125, 126, 65535, 65536}) {
    INFO("size " << n);
    std::string payload(n, 'q');
    for (std::size_t i = 0; i < n; ++i) payload[i] = static_cast<char>('a' + i % 26);
    std::string f;
    bws::append_client_frame(f, bws::op_text, payload, 0x12345678u);
    CHECK(static_cast<std::uint8_t>(f[0]) == 0x81);
    CHECK((static_cast<std::uint8_t>(f[1]) & 0x80) != 0);
    const std::size_t header = n < 126 ? 2 : n <= 0xffff ? 4 : 10;
    CHECK(f.size() == header + 4 + n);
    if (n > 0) CHECK(f.substr(header + 4) != payload);  // masked on the wire
    CHECK(bws::client_payload(f) == payload);
  }
}

TEST_CASE("bench websocket: the upgrade answer is checked", "[bench][websocket]") {
  const auto key = bws::make_key();
  CHECK(key.size() == 24);
  CHECK(swactor::protocols::websocket::valid_client_key(key));
  CHECK(bws::make_key() != key);
  const auto req = bws::upgrade_request("127.0.0.1:9", "/chat", key);
  CHECK(req.rfind("GET /chat HTTP/1.1\r\nHost: 127.0.0.1:9\r\n", 0) == 0);
  CHECK(req.find("Sec-WebSocket-Key: " + key + "\r\n") != std::string::npos);
  CHECK(req.find("Sec-WebSocket-Version: 13\r\n") != std::string::npos);

  // RFC 6455's example key and accept value.
  const std::string accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
  CHECK(swactor::protocols::websocket::accept_key("dGhlIHNhbXBsZSBub25jZQ==") == accept);
  const std::string ok =
      "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n"
      "Sec-WebSocket-Accept: " + accept + "\r\n\r\n";
  std::string why;
  CHECK(bws::upgrade_reply(ok + "\x81\x00", accept, why) == static_cast<std::ptrdiff_t>(ok.size()));
  CHECK(bws::upgrade_reply(ok.substr(0, ok.size() - 1), accept, why) == 0);
  why.clear();
  CHECK(bws::upgrade_reply(ok, "AAAAAAAAAAAAAAAAAAAAAAAAAAA=", why) == -1);
  CHECK(why.find("Sec-WebSocket-Accept") != std::string::npos);
  why.clear();
  CHECK(bws::upgrade_reply("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", accept, why) == -1);
  CHECK(why.find("404 Not Found") != std::string::npos);
  CHECK(bws::upgrade_reply("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", accept, why) == -1);
  CHECK(bws::upgrade_reply(std::string(bws::max_head + 10, 'x'), accept, why) == -1);
}

TEST_CASE("bench websocket: arguments", "[bench][websocket]") {
  auto p = b::parse_args({"-s", "ws://127.0.0.1:8080/chat", "-f", "websocket", "-n", "10"});
  INFO(p.message);
  REQUIRE(p.config);
  CHECK(p.config->server.websocket);
  CHECK(p.config->server.port == 8080);
  CHECK(b::websocket_path(*p.config) == "/chat");
  auto d = b::parse_args({"-s", "ws://localhost", "-f", "websocket_connect", "-n", "10"});
  REQUIRE(d.config);
  CHECK(d.config->server.port == 80);
  CHECK(b::websocket_path(*d.config) == "/");
  // The websocket modes need ws://, and ws:// only runs them.
  CHECK_FALSE(b::parse_args({"-s", "tcp://127.0.0.1:1", "-f", "websocket", "-n", "1"}).config);
  CHECK_FALSE(b::parse_args({"-s", "ws://127.0.0.1:1", "-f", "long_tcp", "-n", "1"}).config);
  CHECK_FALSE(b::parse_args({"-s", "ws://127.0.0.1:1", "-f", "http", "-n", "1"}).config);
  CHECK_FALSE(b::parse_args({"-s", "wss://127.0.0.1:1", "-f", "websocket", "-n", "1"}).config);
  CHECK_FALSE(
      b::parse_args({"-s", "ws://127.0.0.1:1", "-f", "websocket_connect", "-n", "1", "--pipeline", "2"}).config);
  CHECK(b::parse_args({"-s", "ws://127.0.0.1:1", "-f", "websocket", "-n", "1", "--pipeline", "8"}).config);
}

namespace {

const char* kWsEcho = R"(
[[listen]]
url = "ws://127.0.0.1:{port}"
module = "ws_echo"
)";

void require_clean(const t::bench_run& r, std::uint64_t n) {
  INFO("stdout: " << r.r.out << "\nstderr: " << r.r.err);
  CHECK(r.r.exit_code == 0);
  CHECK(r.report.at("requests").get<std::uint64_t>() == n);
  CHECK(r.report.at("ok").get<std::uint64_t>() == n);
  CHECK(r.report.at("error_total").get<std::uint64_t>() == 0);
}

}  // namespace

TEST_CASE("bench websocket: against ws_echo", "[bench][websocket]") {
  auto mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  server_under_test srv("mode = \"" + mode + "\"\nworkers = 2", kWsEcho);
  const auto url = "ws://127.0.0.1:" + std::to_string(srv.port) + "/";

  {
    auto r = t::run_bench({"-s", url, "-f", "websocket", "-c", "4", "-n", "2000", "--verify"});
    require_clean(r, 2000);
    CHECK(r.report.at("connections").get<std::uint64_t>() == 4);
    CHECK(r.report.at("settings").at("websocket").at("path") == "/");
  }
  {
    auto r = t::run_bench({"-s", url, "-f", "websocket_connect", "-c", "2", "-n", "200", "--verify"});
    require_clean(r, 200);
    CHECK(r.report.at("connections").get<std::uint64_t>() == 200);
  }
  {
    // Larger messages (16- and 64-bit length forms) and a pipelined window, two threads.
    auto r = t::run_bench({"-s", url, "-f", "websocket", "-c", "4", "-t", "2", "-n", "1001",
                           "--size", "70000", "--pipeline", "8", "--verify"});
    require_clean(r, 1001);
    auto s = t::run_bench({"-s", url, "-f", "websocket", "-c", "3", "-n", "999", "--size", "300",
                           "--pipeline", "4", "--verify"});
    require_clean(s, 999);
  }
  srv.stop_and_check();
}

TEST_CASE("bench websocket: refused handshakes are errors with a reason", "[bench][websocket]") {
  // The bench sends no Origin: a listener that allows only one refuses it with 403.
  server_under_test srv("mode = \"base\"\nworkers = 1", R"(
[[listen]]
url = "ws://127.0.0.1:{port}"
module = "ws_echo"
websocket = { origins = ["https://good.example"] }
)");
  auto r = t::run_bench({"-s", "ws://127.0.0.1:" + std::to_string(srv.port) + "/", "-f", "websocket",
                         "-c", "2", "-n", "20", "--timeout", "2s"});
  INFO("stdout: " << r.r.out << "\nstderr: " << r.r.err);
  CHECK(r.r.exit_code == 1);
  CHECK(r.report.at("requests").get<std::uint64_t>() == 20);
  CHECK(r.report.at("ok").get<std::uint64_t>() == 0);
  CHECK(r.report.at("errors").at("handshake").get<std::uint64_t>() == 20);
  CHECK(r.report.at("handshake_error").get<std::string>().find("403") != std::string::npos);
  CHECK(r.r.out.find("handshake   failed:") != std::string::npos);
  srv.stop_and_check();
}

TEST_CASE("bench websocket: --deflate offers permessage-deflate, compresses, reads compressed replies",
          "[bench][websocket][deflate]") {
  // The offer, and the answer's check: accepted, declined, answered when not offered.
  const auto key = bws::make_key();
  CHECK(bws::upgrade_request("h", "/", key, true).find(
            "\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n") != std::string::npos);
  CHECK(bws::upgrade_request("h", "/", key).find("Sec-WebSocket-Extensions") == std::string::npos);
  const std::string accept = swactor::protocols::websocket::accept_key(key);
  const std::string head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Accept: " + accept + "\r\n";
  const std::string with_ext = head + "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n\r\n";
  std::string why;
  CHECK(bws::upgrade_reply(with_ext, accept, why, true) == static_cast<std::ptrdiff_t>(with_ext.size()));
  CHECK(bws::upgrade_reply(head + "\r\n", accept, why, true) == -1);
  CHECK(why.find("did not accept permessage-deflate") != std::string::npos);
  why.clear();
  CHECK(bws::upgrade_reply(with_ext, accept, why, false) == -1);
  CHECK(why.find("none was offered") != std::string::npos);

  // RSV1 only on a data frame's first frame, and only when deflate was negotiated.
  const std::string compressed_text("\xc1\x02xy", 4);
  CHECK(bws::cut_message(compressed_text).size == -1);
  CHECK(bws::cut_message(compressed_text, true).size == 4);
  CHECK(bws::cut_message(std::string("\xc9\x00", 2), true).size == -1);  // a "compressed" ping
  CHECK(bws::cut_message(std::string("\xe1\x00", 2), true).size == -1);  // RSV2

  // Each message compresses on its own: the server's inflater (no shared context needed)
  // gets it back, and a compressible payload shrinks.
  namespace pws = swactor::protocols::websocket;
  for (std::size_t n : {1, 64, 1024, 70000}) {
    INFO("size " << n);
    std::string text;
    while (text.size() < n) text += "abcdefgh" + std::to_string(text.size() % 97);
    text.resize(n);
    std::string z;
    bws::deflate_message(text, z);
    if (n >= 1024) CHECK(z.size() < n / 2);
    pws::deflater inflater(pws::deflate_params{});
    std::string back;
    bool too_big = false;
    REQUIRE(inflater.inflate_message(z, back, 1 << 20, too_big));
    CHECK(back == text);
    std::string f;
    bws::append_client_frame(f, bws::op_text, z, 0x01020304u, true);
    CHECK(static_cast<std::uint8_t>(f[0]) == 0xc1);
    CHECK(bws::client_payload(f) == z);
  }

  CHECK_FALSE(b::parse_args({"-s", "ws://127.0.0.1:1", "-f", "websocket", "-n", "1", "--deflate", "--verify"}).config);
  auto p = b::parse_args({"-s", "ws://127.0.0.1:1", "-f", "websocket", "-n", "1", "--deflate"});
  REQUIRE(p.config);
  CHECK(p.config->deflate);
}

TEST_CASE("bench websocket: --deflate against ws_echo, and against a listener that declines it",
          "[bench][websocket][deflate]") {
  auto mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  server_under_test srv("mode = \"" + mode + "\"\nworkers = 2", std::string(kWsEcho) + R"(
[[listen]]
url = "ws://127.0.0.1:{port2}"
module = "ws_echo"
websocket = { permessage_deflate = false }
)");
  for (const char* size : {"64", "1024", "70000"}) {
    INFO("size " << size);
    auto r = t::run_bench({"-s", "ws://127.0.0.1:" + std::to_string(srv.port) + "/", "-f", "websocket", "-c", "4",
                           "-n", "1000", "--size", size, "--deflate"});
    require_clean(r, 1000);
    CHECK(r.report.at("settings").at("websocket").at("deflate") == true);
    // Both directions compressed: the payload is a repeated pattern, so far fewer bytes
    // than 1000 x size went each way (handshakes included).
    if (std::string(size) != "64") {
      const auto plain = 1000 * std::stoull(size);
      CHECK(r.report.at("bytes_sent").get<std::uint64_t>() < plain / 2);
      CHECK(r.report.at("bytes_received").get<std::uint64_t>() < plain / 2);
    }
  }
  auto r = t::run_bench({"-s", "ws://127.0.0.1:" + std::to_string(srv.port2) + "/", "-f", "websocket", "-c", "2",
                         "-n", "10", "--deflate", "--timeout", "2s"});
  INFO("stdout: " << r.r.out << "\nstderr: " << r.r.err);
  CHECK(r.r.exit_code == 1);
  CHECK(r.report.at("errors").at("handshake").get<std::uint64_t>() == 10);
  CHECK(r.report.at("handshake_error").get<std::string>().find("did not accept permessage-deflate") !=
        std::string::npos);
  srv.stop_and_check();
}
