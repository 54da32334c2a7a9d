// `swactor bench -f redis`: the RESP2 reply parser, --mix, the request encoder and the
// arguments in-process; then the real binary against a real redis-server (skipped with a
// WARN when it is not installed, as the nginx tests do; scripts/install-deps.sh installs it).
#include <unistd.h>

#include <set>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "args.hpp"
#include "bench_run.hpp"
#include "harness.hpp"
#include "mode.hpp"
#include "resp.hpp"

using namespace std::chrono_literals;
namespace t = swactor::testing;
namespace b = swactor::bench;
namespace resp = swactor::bench::resp;
using nlohmann::json;

TEST_CASE("bench redis: RESP2 reply parser") {
  struct whole {
    std::string in;
    std::ptrdiff_t size;
    bool error;
  };
  const std::vector<whole> cases = {
      {"+OK\r\n", 5, false},
      {"+PONG\r\n+OK\r\n", 7, false},  // only the first reply
      {"-ERR unknown command 'FOO'\r\n", 28, true},
      {"-NOAUTH Authentication required.\r\n", 34, true},
      {":0\r\n", 4, false},
      {":-42\r\n", 6, false},
      {":1000\r\n:1\r\n", 7, false},
      {":9223372036854775807\r\n", 22, false},
      {":-9223372036854775808\r\n", 23, false},
      {"$3\r\nxxx\r\n", 9, false},
      {"$0\r\n\r\n", 6, false},
      {"$-1\r\n", 5, false},            // nil
      {"$4\r\na\r\nb\r\n", 10, false},  // CRLF inside a bulk string is data
      {"*0\r\n", 4, false},
      {"*-1\r\n", 5, false},
      {"*2\r\n$3\r\nfoo\r\n$-1\r\n", 18, false},
      {"*3\r\n:1\r\n*2\r\n+a\r\n-ERR x\r\n$1\r\nz\r\n", 31, false},  // nested; inner error is data
      {"*1\r\n*1\r\n*0\r\n:5\r\n", 12, false},
  };
  for (const auto& c : cases) {
    INFO(c.in);
    const auto r = resp::parse_reply(c.in);
    CHECK(r.size == c.size);
    CHECK(r.error == c.error);
    // Every proper prefix needs more bytes.
    for (std::size_t n = 0; n < static_cast<std::size_t>(c.size); ++n) {
      INFO("prefix " << n);
      CHECK(resp::parse_reply(std::string_view(c.in).substr(0, n)).size == 0);
    }
  }
  const std::vector<std::string> malformed = {
      "HTTP/1.1 200 OK\r\n",
      "%1\r\n",
      "_\r\n",
      ":abc\r\n",
      ":\r\n",
      ":+1\r\n",
      "$-2\r\n",
      "$x\r\n",
      "$3\r\nxxxx\r\n",
      "*-2\r\n",
      "*1\r\n!x\r\n",
      "$1000000000\r\n",
      ":12345678901234567890\r\n",
      ":9223372036854775808\r\n",
  };
  for (const auto& m : malformed) {
    INFO(m);
    CHECK(resp::parse_reply(m).size == -1);
  }
  // A line that never ends is refused once it passes the limit, not buffered forever.
  CHECK(resp::parse_reply("+" + std::string(1000, 'a')).size == 0);
  CHECK(resp::parse_reply("+" + std::string(resp::max_line_len + 10, 'a')).size == -1);
}

TEST_CASE("bench redis: --mix") {
  std::vector<resp::weighted> mix;
  REQUIRE(resp::parse_mix("get", mix).empty());
  REQUIRE(mix.size() == 1);
  CHECK(mix[0].cmd == resp::command::get);
  CHECK(mix[0].weight == 1);
  REQUIRE(resp::parse_mix("get:8,set:2", mix).empty());
  REQUIRE(mix.size() == 2);
  CHECK((mix[0].cmd == resp::command::get && mix[0].weight == 8));
  CHECK((mix[1].cmd == resp::command::set && mix[1].weight == 2));
  REQUIRE(resp::parse_mix(" SET , Incr:3 ,ping", mix).empty());
  REQUIRE(mix.size() == 3);
  CHECK((mix[1].cmd == resp::command::incr && mix[1].weight == 3));
  CHECK(mix[2].cmd == resp::command::ping);
  for (const char* bad : {"", ",", "get,", "foo", "get:0", "get:-1", "get:x", "get:", "get:2000000",
                          "get,get:2", "get:1:2"}) {
    INFO(bad);
    CHECK_FALSE(resp::parse_mix(bad, mix).empty());
  }
}

TEST_CASE("bench redis: requests follow the mix and the keyspace") {
  std::vector<resp::weighted> mix;
  REQUIRE(resp::parse_mix("get:3,set:1", mix).empty());
  const resp::encoder enc(mix, 100, 5);
  std::string req, again;
  int gets = 0, sets = 0;
  std::set<std::string> keys;
  for (std::uint64_t seq = 0; seq < 4000; ++seq) {
    enc.make(seq % 7, seq, req);
    enc.make(seq % 7, seq, again);
    REQUIRE(req == again);  // deterministic in (conn, seq)
    INFO(req);
    // Every request is one whole RESP array of bulk strings (the reply parser reads it too).
    REQUIRE(resp::parse_reply(req).size == static_cast<std::ptrdiff_t>(req.size()));
    if (resp::encoder::command_of(req) == resp::command::get) {
      ++gets;
      REQUIRE(req.rfind("*2\r\n$3\r\nGET\r\n$16\r\nkey:", 0) == 0);
    } else {
      ++sets;
      REQUIRE(resp::encoder::command_of(req) == resp::command::set);
      REQUIRE(req.rfind("*3\r\n$3\r\nSET\r\n$16\r\nkey:", 0) == 0);
      REQUIRE(req.substr(req.size() - 13) == "\r\n$5\r\nxxxxx\r\n");
    }
    const auto key = req.substr(req.find("key:"), 16);
    CHECK(std::stoul(key.substr(4)) < 100);
    keys.insert(key);
  }
  CHECK(gets > 2700);  // 3000 expected
  CHECK(gets < 3300);
  CHECK(keys.size() == 100);
  CHECK(keys.count("key:000000000000") == 1);

  REQUIRE(resp::parse_mix("incr,ping", mix).empty());
  const resp::encoder enc2(mix, 10, 3);
  bool saw_incr = false, saw_ping = false;
  for (std::uint64_t seq = 0; seq < 100; ++seq) {
    enc2.make(1, seq, req);
    if (resp::encoder::command_of(req) == resp::command::incr) {
      saw_incr = true;
      CHECK(req.rfind("*2\r\n$4\r\nINCR\r\n$20\r\ncounter:00000000000", 0) == 0);
    } else {
      saw_ping = true;
      CHECK(req == "*1\r\n$4\r\nPING\r\n");
    }
  }
  CHECK(saw_incr);
  CHECK(saw_ping);
}

TEST_CASE("bench redis: arguments and the mode's replies") {
  auto p = b::parse_args({"-s", "redis://127.0.0.1", "-f", "redis", "-n", "10"});
  INFO(p.message);
  REQUIRE(p.config);
  CHECK(p.config->server.port == 6379);
  CHECK(p.config->server.redis);
  CHECK(p.config->redis.mix == "set:1,get:1");
  CHECK(p.config->redis.keyspace == 10000);
  CHECK(p.config->redis.value_size == 3);
  CHECK(p.config->pipeline == 1);

  p = b::parse_args({"-s", "tcp://127.0.0.1:7000", "-f", "redis", "-n", "10", "--mix",
                     "get:8,set:2", "--keyspace", "50", "--value-size", "1KiB", "--pipeline",
                     "16"});
  INFO(p.message);
  REQUIRE(p.config);
  CHECK(p.config->redis.keyspace == 50);
  CHECK(p.config->redis.value_size == 1024);
  CHECK(p.config->pipeline == 16);
  CHECK(b::parse_args({"-s", "redis://127.0.0.1:7000/", "-f", "redis", "-n", "1"}).config);
  CHECK(b::parse_args({"-s", "unix:///tmp/redis.sock", "-f", "redis", "-n", "1"}).config);

  for (const std::vector<std::string>& bad : std::vector<std::vector<std::string>>{
           {"-s", "redis://127.0.0.1:1", "-f", "long_tcp", "-n", "1"},  // redis:// is for redis
           {"-s", "redis://127.0.0.1:1", "-f", "http", "-n", "1"},
           {"-s", "http://127.0.0.1:1", "-f", "redis", "-n", "1"},
           {"-s", "udp://127.0.0.1:1", "-f", "redis", "-n", "1"},
           {"-s", "redis://127.0.0.1:1/2", "-f", "redis", "-n", "1"},
           {"-s", "redis://user:pw@127.0.0.1:1", "-f", "redis", "-n", "1"},
           {"-s", "redis://127.0.0.1:1", "-f", "redis", "-n", "1", "--mix", "del"},
           {"-s", "redis://127.0.0.1:1", "-f", "redis", "-n", "1", "--keyspace", "0"},
           {"-s", "redis://127.0.0.1:1", "-f", "redis", "-n", "1", "--value-size", "1GiB"},
           {"-s", "redis://127.0.0.1:1", "-f", "redis", "-n", "1", "--value-size", "lots"},
       }) {
    std::string joined;
    for (auto& a : bad) joined += a + " ";
    auto r = b::parse_args(bad);
    INFO(joined << " -> " << r.message);
    CHECK_FALSE(r.config);
    CHECK(r.exit_code == 2);
  }
  auto help = b::parse_args({"--help"});
  CHECK(help.message.find("redis") != std::string::npos);
  CHECK(help.message.find("--mix") != std::string::npos);

  // An error reply is whole (the connection goes on) but failed; --verify checks types.
  b::settings s;
  s.mode = "redis";
  auto m = b::make_mode(s);
  REQUIRE(m);
  CHECK(m->pipeline_rounds());
  auto c = m->cut_reply("-ERR wrong\r\n+OK\r\n", "", false);
  CHECK(c.size == 12);
  CHECK(c.failed);
  c = m->cut_reply("$-1\r\n", "", false);
  CHECK(c.size == 5);
  CHECK_FALSE(c.failed);
  CHECK(m->cut_reply("+O", "", true).size == -1);
  CHECK(m->matches("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n", "+OK\r\n"));
  CHECK_FALSE(m->matches("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n", ":1\r\n"));
  CHECK(m->matches("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", "$-1\r\n"));
  CHECK_FALSE(m->matches("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", "+OK\r\n"));
  CHECK(m->matches("*2\r\n$4\r\nINCR\r\n$1\r\nk\r\n", ":7\r\n"));
  CHECK(m->matches("*1\r\n$4\r\nPING\r\n", "+PONG\r\n"));
}

namespace {

constexpr const char* redis_server_bin = "/usr/bin/redis-server";

// redis-server on a free loopback port, nothing persisted, its files in a temp dir.
struct redis_proc {
  t::temp_dir dir{"swactor-redis"};
  std::string port = std::to_string(t::free_tcp_port());
  std::optional<t::process> proc;

  explicit redis_proc(std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {redis_server_bin,
                                     "--port",
                                     port,
                                     "--bind",
                                     "127.0.0.1",
                                     "--save",
                                     "",
                                     "--appendonly",
                                     "no",
                                     "--dir",
                                     dir.path().string(),
                                     "--daemonize",
                                     "no",
                                     "--logfile",
                                     ""};
    argv.insert(argv.end(), extra.begin(), extra.end());
    proc.emplace(argv);
    auto up = proc->wait_for("Ready to accept connections", 10s);
    INFO("redis-server: " << proc->stdout_text() << proc->stderr_text());
    REQUIRE(up);
  }
  std::string url() const { return "redis://127.0.0.1:" + port; }
  // One command through redis-cli (redis-tools), its output without the newline; "" when
  // redis-cli is missing.
  std::string cli(std::vector<std::string> args) const {
    if (::access("/usr/bin/redis-cli", X_OK) != 0) return {};
    std::vector<std::string> argv = {"/usr/bin/redis-cli", "-h", "127.0.0.1", "-p", port};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = t::run(argv, 10s);
    while (!r.out.empty() && (r.out.back() == '\n' || r.out.back() == '\r')) r.out.pop_back();
    return r.out;
  }
  ~redis_proc() {
    if (proc) proc->terminate();
  }
};

void require_clean(const t::bench_run& r, std::uint64_t n) {
  INFO("stdout: " << r.r.out << "\nstderr: " << r.r.err << "\nreport: " << r.report.dump(1));
  CHECK(r.r.exit_code == 0);
  CHECK(r.report.at("requests").get<std::uint64_t>() == n);
  CHECK(r.report.at("ok").get<std::uint64_t>() == n);
  CHECK(r.report.at("error_total").get<std::uint64_t>() == 0);
  CHECK(r.report.at("rps").get<double>() > 0);
  CHECK(r.report.at("latency_us").at("p50").get<double>() > 0);
  CHECK(r.report.at("settings").at("mode") == "redis");
}

}  // namespace

TEST_CASE("bench redis: against redis-server") {
  if (::access(redis_server_bin, X_OK) != 0) {
    WARN(redis_server_bin << " not installed: skipped (scripts/install-deps.sh, redis-server)");
    return;
  }
  redis_proc redis;

  SECTION("default mix, pipeline 1, verified") {
    auto r = t::run_bench({"-s", redis.url(), "-f", "redis", "-c", "8", "-n", "5000", "--verify"});
    require_clean(r, 5000);
    CHECK(r.report.at("settings").at("redis").at("mix") == "set:1,get:1");
    CHECK(r.report.at("errors").at("server_error").get<std::uint64_t>() == 0);
  }
  SECTION("pipeline 16 in rounds, weighted mix, bigger values, two threads") {
    auto r = t::run_bench({"-s", redis.url(), "-f", "redis", "-c", "6", "-t", "2", "-n", "10007",
                           "--pipeline", "16", "--mix", "get:8,set:2", "--value-size", "100",
                           "--verify"});
    require_clean(r, 10007);
    CHECK(r.report.at("connections").get<std::uint64_t>() == 6);
  }
  SECTION("tcp:// works too; incr and ping; -d") {
    const auto tcp = "tcp://127.0.0.1:" + redis.port;
    require_clean(t::run_bench({"-s", tcp, "-f", "redis", "-c", "4", "-n", "2000", "--mix",
                                "incr,ping", "--pipeline", "4", "--verify"}),
                  2000);
    auto d = t::run_bench(
        {"-s", redis.url(), "-f", "redis", "-c", "4", "-d", "300ms", "--pipeline", "8"});
    INFO(d.r.out << d.r.err);
    CHECK(d.r.exit_code == 0);
    CHECK(d.report.at("error_total").get<std::uint64_t>() == 0);
    CHECK(d.report.at("requests").get<std::uint64_t>() > 100);
  }
  SECTION("the keys are the keyspace's, the commands reach the server") {
    if (redis.cli({"PING"}) != "PONG") {
      WARN("redis-cli not installed: skipped (redis-tools)");
      return;
    }
    REQUIRE(redis.cli({"FLUSHALL"}) == "OK");
    require_clean(t::run_bench({"-s", redis.url(), "-f", "redis", "-c", "4", "-n", "3000", "--mix",
                                "set", "--keyspace", "50", "--value-size", "7"}),
                  3000);
    CHECK(redis.cli({"DBSIZE"}) == "50");  // 3000 draws leave none of 50 keys out
    CHECK(redis.cli({"STRLEN", "key:000000000049"}) == "7");
    require_clean(t::run_bench({"-s", redis.url(), "-f", "redis", "-c", "3", "-n", "1000", "--mix",
                                "incr", "--keyspace", "1", "--pipeline", "7"}),
                  1000);
    CHECK(redis.cli({"GET", "counter:000000000000"}) == "1000");
  }
}

TEST_CASE("bench redis: error replies are errors, not successes") {
  if (::access(redis_server_bin, X_OK) != 0) {
    WARN(redis_server_bin << " not installed: skipped (scripts/install-deps.sh, redis-server)");
    return;
  }
  // Without AUTH every command is answered "-NOAUTH Authentication required."
  redis_proc redis({"--requirepass", "secret"});
  for (const char* pipeline : {"1", "8"}) {
    INFO("pipeline " << pipeline);
    auto r = t::run_bench(
        {"-s", redis.url(), "-f", "redis", "-c", "2", "-n", "500", "--pipeline", pipeline});
    INFO(r.r.out << r.r.err);
    CHECK(r.r.exit_code == 1);
    CHECK(r.report.at("requests").get<std::uint64_t>() == 500);
    CHECK(r.report.at("ok").get<std::uint64_t>() == 0);
    CHECK(r.report.at("errors").at("server_error").get<std::uint64_t>() == 500);
    CHECK(r.report.at("error_total").get<std::uint64_t>() == 500);
    CHECK(r.report.at("connections").get<std::uint64_t>() ==
          2);  // error replies keep the connection
    CHECK(r.r.out.find("server_error 500") != std::string::npos);
  }
}
