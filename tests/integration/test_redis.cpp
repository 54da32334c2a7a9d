// The Redis-protocol server end to end: the real server with redis_kv on a shared table, in
// both modes, against redis-cli (RESP2 and -3), redis-benchmark, raw sockets, and the Python
// scripts in tests/integration/redis/ (a differential test against a real redis-server,
// protocol edge cases, pub/sub across workers).
#include <filesystem>

#include "server_helpers.hpp"

using namespace std::chrono_literals;
namespace t = swactor::testing;
using namespace swactor::testing::server;

namespace {

const char* kKv = R"(
# Values up to 256 KiB (the edge cases store 200 KiB); rows are only touched as far as
# their values reach, so the segment stays mostly unmapped.
[tables.kv]
size = 4096
columns = [ { name = "type", type = "int" }, { name = "expire", type = "int" },
            { name = "value", type = "string", size = 262144 } ]

[modules.kv]
type = "redis_kv"
table = "kv"

[[listen]]
url = "redis://127.0.0.1:{port}"
module = "kv"
)";

std::string server_keys(const std::string& mode, int workers) {
  return "mode = \"" + mode + "\"\nworkers = " + std::to_string(workers);
}

bool have(const std::string& program) {
  auto r = t::run({"sh", "-c", "command -v " + program}, 10s);
  return r.exit_code == 0;
}

// The Python scripts live next to this file (SWACTOR_REDIS_SCRIPTS).
std::string script(const std::string& name) { return std::string(SWACTOR_REDIS_SCRIPTS) + "/" + name; }

t::run_result cli(std::uint16_t port, std::vector<std::string> args, bool resp3 = false) {
  std::vector<std::string> argv = {"redis-cli", "-h", "127.0.0.1", "-p", std::to_string(port)};
  if (resp3) argv.push_back("-3");
  argv.insert(argv.end(), args.begin(), args.end());
  return t::run(argv, 20s);
}

// Sends raw bytes and reads until `expect` bytes arrived (or the timeout).
std::string exchange(conn& c, std::string_view out, std::size_t expect) {
  REQUIRE(c.send_all(out));
  auto got = c.read_exact(expect, 3s);
  return got ? *got : c.buffer();
}

}  // namespace

TEST_CASE("redis: redis-cli in RESP2 and RESP3, pipelined raw commands, protocol errors", "[redis]") {
  REQUIRE(have("redis-cli"));  // scripts/install-deps.sh installs redis-tools
  auto mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  server_under_test srv(server_keys(mode, 2), kKv);

  auto r = cli(srv.port, {"SET", "greeting", "hello world"});
  CHECK(r.out == "OK\n");
  r = cli(srv.port, {"GET", "greeting"});
  CHECK(r.out == "hello world\n");
  r = cli(srv.port, {"INCRBYFLOAT", "f", "0.1"});
  r = cli(srv.port, {"INCRBYFLOAT", "f", "0.2"});
  CHECK(r.out == "0.3\n");
  r = cli(srv.port, {"HSET", "h", "a", "1", "b", "2"});
  CHECK(r.out == "2\n");
  r = cli(srv.port, {"HGETALL", "h"}, true);  // RESP3: a map (raw output: "key value" lines)
  CHECK(r.out == "a 1\nb 2\n");
  r = cli(srv.port, {"HGETALL", "h"});
  CHECK(r.out == "a\n1\nb\n2\n");
  r = cli(srv.port, {"NOSUCH", "x", "y"});
  CHECK(r.out == "ERR unknown command 'NOSUCH', with args beginning with: 'x' 'y' \n\n");

  // Pipelining: 100 commands in one write, replies in order.
  auto c = connect_tcp("127.0.0.1", srv.port);
  REQUIRE(c);
  std::string batch, expect;
  for (int i = 0; i < 100; ++i) {
    batch += "*2\r\n$4\r\nINCR\r\n$3\r\nctr\r\n";
    expect += ":" + std::to_string(i + 1) + "\r\n";
  }
  CHECK(exchange(c, batch, expect.size()) == expect);
  // Inline commands with quotes.
  CHECK(exchange(c, "SET \"a b\" 'c d'\r\nGET \"a b\"\r\n", 14) == "+OK\r\n$3\r\nc d\r\n");
  // A protocol error: the earlier command is answered, then Redis's error, then the close.
  std::string bad = "*1\r\n$4\r\nPING\r\n*1\r\n$x\r\n";
  std::string want = "+PONG\r\n-ERR Protocol error: invalid bulk length\r\n";
  CHECK(exchange(c, bad, want.size()) == want);
  CHECK(c.wait_closed(3s));
  srv.stop_and_check();
}

TEST_CASE("redis: redis-benchmark at -P 1 and -P 16 with zero errors", "[redis]") {
  REQUIRE(have("redis-benchmark"));
  auto mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  server_under_test srv(server_keys(mode, 2), kKv);
  for (const char* pipeline : {"1", "16"}) {
    INFO("pipeline " << pipeline);
    auto r = t::run({"redis-benchmark", "-h", "127.0.0.1", "-p", std::to_string(srv.port), "-t",
                     "ping,set,get,incr,hset", "-n", "2000", "-c", "10", "-r", "1000", "-P", pipeline, "-q", "--csv"},
                    120s);
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    // One CSV line per test with its requests per second; an error reply aborts the tool.
    for (const char* name : {"PING_INLINE", "PING_MBULK", "SET", "GET", "INCR", "HSET"})
      CHECK(r.out.find(std::string("\"") + name + "\"") != std::string::npos);
    CHECK(r.err.find("ERR") == std::string::npos);
  }
  auto r = cli(srv.port, {"GET", "counter:__rand_int__"});
  CHECK(r.exit_code == 0);
  srv.stop_and_check();
}

TEST_CASE("redis: differential test against a real redis-server (RESP2 and RESP3)", "[redis]") {
  REQUIRE(have("python3"));
  REQUIRE(std::filesystem::exists("/usr/bin/redis-server"));
  auto mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  server_under_test srv(server_keys(mode, 2), kKv);
  for (const char* resp : {"2", "3"}) {
    auto r = t::run({"python3", script("redis_diff.py"), "--target", "127.0.0.1:" + std::to_string(srv.port),
                     "--redis-server", "/usr/bin/redis-server", "--seed", "7", "--count", "3000", "--resp", resp},
                    240s);
    INFO("resp " << resp << "\n" << r.out << r.err);
    CHECK(r.exit_code == 0);
  }
  srv.stop_and_check();
}

TEST_CASE("redis: redis-py pipelines (MULTI/EXEC) and WATCH-guarded transactions", "[redis]") {
  // Debian's python3-redis lives with Debian's interpreter (scripts/install-deps.sh).
  REQUIRE(std::filesystem::exists("/usr/bin/python3"));
  REQUIRE(t::run({"/usr/bin/python3", "-c", "import redis"}, 30s).exit_code == 0);
  auto mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  // One worker: WATCH then EXEC is isolated only within a worker (docs/modules.md).
  server_under_test srv(server_keys(mode, 1), kKv);
  auto r = t::run({"/usr/bin/python3", script("redis_py.py"), "--target", "127.0.0.1:" + std::to_string(srv.port)},
                  120s);
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("checks passed") != std::string::npos);
  srv.stop_and_check();
}

TEST_CASE("redis: protocol edge cases over raw sockets", "[redis]") {
  REQUIRE(have("python3"));
  auto mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  server_under_test srv(server_keys(mode, 1), kKv);
  auto r = t::run({"python3", script("redis_edge.py"), "--target", "127.0.0.1:" + std::to_string(srv.port)}, 180s);
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  srv.stop_and_check();
}

TEST_CASE("redis: pub/sub across two workers reaches every subscriber", "[redis]") {
  REQUIRE(have("python3"));
  auto mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  server_under_test srv(server_keys(mode, 2), kKv);
  auto r = t::run({"python3", script("redis_pubsub.py"), "--target", "127.0.0.1:" + std::to_string(srv.port),
                   "--clients", "8"},
                  120s);
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  srv.stop_and_check();
}

TEST_CASE("redis: a connection's state stays with one worker under any dispatch mode, and INFO counts every client",
          "[redis]") {
  auto mode = GENERATE(as<std::string>{}, "base", "process_rr");
  INFO("mode " << mode);
  const std::string keys = mode == "base" ? server_keys("base", 2)
                                          : server_keys("process", 2) + "\ndispatch_mode = \"round_robin\"";
  server_under_test srv(keys, kKv);
  // round_robin once sent each command to the next worker: the name was set in one only.
  auto c = connect_tcp("127.0.0.1", srv.port);
  REQUIRE(c);
  CHECK(exchange(c, "CLIENT SETNAME foo\r\n", 5) == "+OK\r\n");
  for (int i = 0; i < 4; ++i) CHECK(exchange(c, "CLIENT GETNAME\r\n", 9) == "$3\r\nfoo\r\n");
  // Subscribed context: every command after it sees it.
  std::string sub = exchange(c, "SUBSCRIBE ch\r\n", 31);
  CHECK(sub == "*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n");
  REQUIRE(c.send_all("GET x\r\n"));
  auto line = c.read_line();
  REQUIRE(line);
  CHECK(line->rfind("-ERR Can't execute 'get'", 0) == 0);
  // Five more connections, spread over the workers (each sends a PING first, so every one is
  // open where it is counted): INFO says 6 wherever it is answered.
  std::vector<conn> more;
  for (int i = 0; i < 5; ++i) {
    more.push_back(connect_tcp("127.0.0.1", srv.port));
    REQUIRE(more.back());
    CHECK(exchange(more.back(), "PING\r\n", 7) == "+PONG\r\n");
  }
  for (auto& m : more) {
    REQUIRE(m.send_all("INFO clients\r\n"));
    // A bulk string: "$N\r\n", N bytes, "\r\n".
    auto bulk = m.read_until([](const std::string& b) -> std::size_t {
      auto nl = b.find("\r\n");
      if (b.empty() || b[0] != '$' || nl == std::string::npos) return 0;
      const auto n = std::stoul(b.substr(1, nl - 1));
      return b.size() >= nl + 2 + n + 2 ? nl + 2 + n + 2 : 0;
    }, 3s);
    REQUIRE(bulk);
    INFO(*bulk);
    CHECK(bulk->find("connected_clients:6\r\n") != std::string::npos);
  }
  srv.stop_and_check();
}

// A transaction (MULTI's queue, WATCHed keys) lives in its worker process: in process mode
// the connection would outlive it, and its next commands would run at once on the new
// process. It ends with its worker instead; nothing of it runs.
TEST_CASE("redis: a worker reload ends a connection inside MULTI, nothing of it runs", "[redis][reload]") {
  auto mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  server_under_test srv(server_keys(mode, 1) + "\nmax_wait_time = \"2s\"", kKv);
  auto tx = connect_tcp("127.0.0.1", srv.port);
  auto plain = connect_tcp("127.0.0.1", srv.port);
  REQUIRE(tx);
  REQUIRE(plain);
  CHECK(exchange(tx, "DEL a b\r\n", 4) == ":0\r\n");
  CHECK(exchange(tx, "MULTI\r\n", 5) == "+OK\r\n");
  CHECK(exchange(tx, "SET a 1\r\n", 9) == "+QUEUED\r\n");
  CHECK(exchange(plain, "PING\r\n", 7) == "+PONG\r\n");
  REQUIRE(::kill(std::stoi(t::read_file(srv.pid_file)), SIGUSR1) == 0);
  REQUIRE(srv.wait_log("reload done", 20s));
  CHECK(tx.wait_closed(10s));
  if (mode == "process") {
    CHECK(srv.wait_log("redis_kv kv: closed 1 connection\\(s\\) whose subscriptions, authentication or transaction", 10s));
    CHECK(exchange(plain, "PING\r\n", 7) == "+PONG\r\n");  // nothing to lose: still served
  }
  auto again = connect_tcp("127.0.0.1", srv.port);
  REQUIRE(again);
  CHECK(exchange(again, "EXISTS a\r\n", 4) == ":0\r\n");
  srv.stop_and_check();
}

TEST_CASE("redis: a worker reload ends subscribers and authenticated connections, keeps the others", "[redis][reload]") {
  auto mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  std::string kv = kKv;
  kv.replace(kv.find("table = \"kv\""), 12, "table = \"kv\"\npassword = \"pw\"");
  server_under_test srv(server_keys(mode, 1) + "\nmax_wait_time = \"2s\"", kv);
  auto sub = connect_tcp("127.0.0.1", srv.port);
  auto plain = connect_tcp("127.0.0.1", srv.port);
  REQUIRE(sub);
  REQUIRE(plain);
  CHECK(exchange(sub, "AUTH pw\r\n", 5) == "+OK\r\n");
  CHECK(exchange(sub, "SUBSCRIBE news\r\n", 33) == "*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n");
  CHECK(exchange(plain, "PING\r\n", 34) == "-NOAUTH Authentication required.\r\n");  // nothing to lose
  REQUIRE(::kill(std::stoi(t::read_file(srv.pid_file)), SIGUSR1) == 0);
  REQUIRE(srv.wait_log("reload done", 20s));
  // The subscriber is told by the end of its connection (it would otherwise wait forever).
  CHECK(sub.wait_closed(10s));
  CHECK(srv.wait_log("redis_kv kv: closed 1 connection\\(s\\) whose subscriptions, authentication or transaction", 10s));
  if (mode == "process") {
    // The connection with nothing to lose is still served, by the new worker.
    CHECK(exchange(plain, "AUTH pw\r\n", 5) == "+OK\r\n");
    CHECK(exchange(plain, "PING\r\n", 7) == "+PONG\r\n");
  }
  auto again = connect_tcp("127.0.0.1", srv.port);
  REQUIRE(again);
  CHECK(exchange(again, "AUTH pw\r\n", 5) == "+OK\r\n");
  CHECK(exchange(again, "PING\r\n", 7) == "+PONG\r\n");
  srv.stop_and_check();
}
