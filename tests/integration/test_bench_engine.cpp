// The bench engine in-process: argument parsing, and the runner on a caller's loop (the
// way the `bench` module will embed it) with stop() from another thread.
#include <thread>

#include <catch2/catch.hpp>

#include "args.hpp"
#include "harness.hpp"
#include "runner.hpp"
#include "swactor/core/loop.hpp"

using namespace std::chrono_literals;
namespace t = swactor::testing;
namespace b = swactor::bench;

namespace {

b::parsed_args parse(std::vector<std::string> args) { return b::parse_args(args); }

struct echo_proc {
  t::process proc{{t::echo_server_bin(), "--tcp", "127.0.0.1:0"}};
  std::string port;
  echo_proc() {
    auto p = proc.wait_for("^port=(\\d+)$", 5s);
    REQUIRE(p);
    port = *p;
  }
};

}  // namespace

TEST_CASE("bench args: a full command line") {
  auto p = parse({"-s", "tcp://127.0.0.1:9501", "-f", "length", "-n", "500", "-c", "7", "-t",
                  "2", "--size", "100", "--pipeline", "3", "--rate", "250.5", "--verify",
                  "--timeout", "750ms", "--json", "/tmp/x.json", "--length-size", "2",
                  "--length-offset", "1", "--body-offset", "4", "--little-endian", "--signed"});
  INFO(p.message);
  REQUIRE(p.config);
  const auto& s = *p.config;
  CHECK(s.server.kind == b::scheme::tcp);
  CHECK(s.server.host == "127.0.0.1");
  CHECK(s.server.port == 9501);
  CHECK(s.mode == "length");
  CHECK(s.requests == 500);
  CHECK(s.connections == 7);
  CHECK(s.threads == 2);
  CHECK(s.size == 100);
  CHECK(s.pipeline == 3);
  CHECK(s.rate == Approx(250.5));
  CHECK(s.verify);
  CHECK(s.timeout == 750ms);
  CHECK(s.json_file == "/tmp/x.json");
  CHECK(s.frame.length_size == 2);
  CHECK(s.frame.length_offset == 1);
  CHECK(s.frame.body_offset == 4);
  CHECK(s.frame.length_order == swactor::protocols::byte_order::little);
  CHECK(s.frame.length_signed);
}

TEST_CASE("bench args: the server's framing options, defaults and validation") {
  // Defaults are [[listen]].framing's: body_offset 4 whatever the field size.
  auto p = parse({"-s", "tcp://127.0.0.1:1", "-f", "length", "-n", "1", "--length-size", "2"});
  REQUIRE(p.config);
  const swactor::protocols::framing_options server_defaults;
  CHECK(p.config->frame.body_offset == server_defaults.body_offset);
  CHECK(p.config->frame.max_length == server_defaults.max_length);
  // so an 8-byte field needs a body offset, as it does in app.toml
  p = parse({"-s", "tcp://127.0.0.1:1", "-f", "length", "-n", "1", "--length-size", "8"});
  CHECK_FALSE(p.config);
  CHECK(p.message.find("body_offset") != std::string::npos);
  // 0: the length counts the whole frame
  p = parse({"-s", "tcp://127.0.0.1:1", "-f", "length", "-n", "1", "--body-offset", "0"});
  REQUIRE(p.config);
  CHECK(p.config->frame.body_offset == 0);
  // Swoole's letters
  p = parse({"-s", "tcp://127.0.0.1:1", "-f", "length", "-n", "1", "--length-type", "v"});
  REQUIRE(p.config);
  CHECK(p.config->frame.length_size == 2);
  CHECK(p.config->frame.length_order == swactor::protocols::byte_order::little);
  // sizes as in app.toml; frames beyond max_length are refused before the run
  p = parse({"-s", "tcp://127.0.0.1:1", "-f", "length", "-n", "1", "--size", "4MiB",
             "--max-length", "5MiB"});
  REQUIRE(p.config);
  CHECK(p.config->size == 4u << 20);
  CHECK(p.config->frame.max_length == 5u << 20);
  p = parse({"-s", "tcp://127.0.0.1:1", "-f", "eof", "-n", "1", "--size", "4MiB"});
  CHECK_FALSE(p.config);
  CHECK(p.message.find("--max-length") != std::string::npos);
}

TEST_CASE("bench args: urls, durations, escapes") {
  auto p = parse({"-s", "unix:///run/x.sock", "-f", "unix", "-d", "1.5s"});
  REQUIRE(p.config);
  CHECK(p.config->server.kind == b::scheme::unix_stream);
  CHECK(p.config->server.path == "/run/x.sock");
  CHECK(p.config->duration == 1500ms);

  p = parse({"-s", "udp://[::1]:53", "-f", "udp", "-d", "2m"});
  REQUIRE(p.config);
  CHECK(p.config->server.host == "::1");
  CHECK(p.config->server.port == 53);
  CHECK(p.config->duration == std::chrono::minutes(2));

  // A bare number is milliseconds, as in app.toml (config::parse_duration).
  p = parse({"-s", "tcp://127.0.0.1:1", "-f", "long_tcp", "-d", "500", "--timeout", "250"});
  REQUIRE(p.config);
  CHECK(p.config->duration == 500ms);
  CHECK(p.config->timeout == 250ms);

  p = parse({"-s", "tcp://127.0.0.1:1", "-f", "eof", "-n", "1", "--eof", "\\r\\n\\x00\\t\\\\"});
  REQUIRE(p.config);
  CHECK(p.config->frame.eof == std::string("\r\n\0\t\\", 5));
  CHECK(b::escape(p.config->frame.eof) == "\\r\\n\\x00\\t\\\\");

  p = parse({"-s", "tcp://127.0.0.1:1", "-f", "long_tcp", "-n", "1"});
  REQUIRE(p.config);
  CHECK(p.config->frame.eof == "\r\n");  // default
  CHECK(p.config->timeout == 5s);        // default
}

TEST_CASE("bench args: every error is one line and exit 2") {
  const std::vector<std::vector<std::string>> bad = {
      {},
      {"-f", "long_tcp", "-n", "1"},
      {"-s", "tcp://127.0.0.1:1", "-n", "1"},
      {"-s", "tcp://127.0.0.1:1", "-f", "nope", "-n", "1"},
      {"-s", "tcp://127.0.0.1:99999", "-f", "long_tcp", "-n", "1"},
      {"-s", "127.0.0.1:1", "-f", "long_tcp", "-n", "1"},
      {"-s", "unix://relative.sock", "-f", "unix", "-n", "1"},
      {"-s", "tcp://127.0.0.1:1", "-f", "unix", "-n", "1"},
      {"-s", "tcp://127.0.0.1:1", "-f", "long_tcp"},
      {"-s", "tcp://127.0.0.1:1", "-f", "long_tcp", "-n", "1", "-d", "1s"},
      {"-s", "tcp://127.0.0.1:1", "-f", "long_tcp", "-d", "-3s"},
      {"-s", "tcp://127.0.0.1:1", "-f", "long_tcp", "-d", "3 parsecs"},
      {"-s", "tcp://127.0.0.1:1", "-f", "long_tcp", "-n", "1", "--size", "12 bananas"},
      {"-s", "tcp://127.0.0.1:1", "-f", "length", "-n", "1", "--length-type", "X"},
      {"-s", "tcp://127.0.0.1:1", "-f", "length", "-n", "1", "--length-type", "N",
       "--length-size", "2"},
      {"-s", "tcp://127.0.0.1:1", "-f", "eof", "-n", "1", "--eof", "123456789"},
      {"-s", "tcp://127.0.0.1:1", "-f", "long_tcp", "-n", "1", "--timeout", "0"},
      {"-s", "tcp://127.0.0.1:1", "-f", "long_tcp", "-n", "1", "-t", "0"},
      {"-s", "tcp://127.0.0.1:1", "-f", "long_tcp", "-n", "1", "--pipeline", "0"},
      {"-s", "tcp://127.0.0.1:1", "-f", "long_tcp", "-n", "1", "--size", "0"},
      {"-s", "tcp://127.0.0.1:1", "-f", "long_tcp", "-n", "1", "--rate", "-1"},
      {"-s", "udp://127.0.0.1:1", "-f", "udp", "-n", "1", "--pipeline", "2"},
      {"-s", "udp://127.0.0.1:1", "-f", "udp", "-n", "1", "--size", "70000"},
      {"-s", "tcp://127.0.0.1:1", "-f", "connect", "-n", "1", "--pipeline", "2"},
      {"-s", "tcp://127.0.0.1:1", "-f", "eof", "-n", "1", "--eof", ""},
      {"-s", "tcp://127.0.0.1:1", "-f", "eof", "-n", "1", "--eof", "\\x4"},
      {"-s", "tcp://127.0.0.1:1", "-f", "length", "-n", "1", "--length-size", "5"},
      {"-s", "tcp://127.0.0.1:1", "-f", "length", "-n", "1", "--length-offset", "4",
       "--body-offset", "6"},
      {"-s", "tcp://127.0.0.1:1", "-f", "length", "-n", "1", "--length-size", "1", "--size", "300"},
      {"-s", "tcp://127.0.0.1:1", "-f", "length", "-n", "1", "--length-size", "1", "--signed",
       "--size", "128"},
      {"-s", "tcp://127.0.0.1:1", "-f", "long_tcp", "-n", "1", "extra"},
  };
  for (const auto& args : bad) {
    std::string joined;
    for (auto& a : args) joined += a + " ";
    auto p = parse(args);
    INFO("args: " << joined << " -> " << p.message);
    CHECK_FALSE(p.config);
    CHECK(p.exit_code == 2);
    CHECK(p.message.rfind("swactor bench: ", 0) == 0);
    CHECK(p.message.find('\n') == std::string::npos);
  }
  auto help = parse({"--help"});
  CHECK_FALSE(help.config);
  CHECK(help.exit_code == 0);
  CHECK(help.message.find("long_tcp") != std::string::npos);
}

TEST_CASE("bench runner: run_here on the caller's loop, exact count") {
  echo_proc echo;
  b::settings s;
  REQUIRE(b::parse_url("tcp://127.0.0.1:" + echo.port, s.server).empty());
  s.mode = "long_tcp";
  s.requests = 1000;
  s.connections = 3;
  s.verify = true;
  b::runner r(s);
  swactor::loop lp;
  b::results res;
  bool done = false;
  swactor::spawn(lp.context(), [&]() -> swactor::task<void> {
    res = co_await r.run_here();
    done = true;
  });
  lp.run();
  REQUIRE(done);
  CHECK(res.requests == 1000);
  CHECK(res.ok == 1000);
  CHECK(res.error_total() == 0);
  CHECK(res.latency_ns.count() == 1000);
  CHECK(res.connections == 3);
  CHECK(res.bytes_sent == 1000 * 64);
  CHECK(res.bytes_received == 1000 * 64);
}

TEST_CASE("bench runner: stop() from another thread ends a long run") {
  echo_proc echo;
  b::settings s;
  REQUIRE(b::parse_url("tcp://127.0.0.1:" + echo.port, s.server).empty());
  s.mode = "long_tcp";
  s.duration = 60s;
  s.connections = 4;
  s.threads = 2;
  s.pipeline = 2;
  b::runner r(s);
  std::thread stopper([&] {
    std::this_thread::sleep_for(300ms);
    r.stop();
  });
  const auto t0 = std::chrono::steady_clock::now();
  std::uint64_t ticks = 0;
  auto res = r.run([&](const b::progress&) { ++ticks; });
  stopper.join();
  CHECK(std::chrono::steady_clock::now() - t0 < 3s);
  CHECK(res.interrupted);
  CHECK(res.ok > 0);
  CHECK(res.error_total() == 0);  // requests cut off by stop() are not counted as errors
  CHECK(ticks > 0);
  CHECK(r.snapshot().requests == 0);  // shards are gone after run()
}

TEST_CASE("bench runner: settings that validate() rejects make the constructor throw") {
  b::settings s;
  s.mode = "nope";
  s.requests = 1;
  CHECK_THROWS_AS(b::runner(s), std::invalid_argument);
}
