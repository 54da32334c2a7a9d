// Redis pieces of the server layer without processes: the listener config, the command
// object a handler gets (split, protocol, reply), Redis's error texts and its glob.

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "config_helpers.hpp"
#include "swactor/actors/app_config.hpp"
#include "swactor/actors/redis.hpp"

using namespace swactor;
namespace pr = swactor::protocols::redis;

namespace {

std::optional<app_config> parse(const std::string& text, config::diagnostics& diag) {
  return test::parse_plain(text, diag);
}

std::string mbulk(std::vector<std::string> args) {
  std::string out = "*" + std::to_string(args.size()) + "\r\n";
  for (auto& a : args) out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  return out;
}

constexpr auto k_command = static_cast<std::uint8_t>(pr::ev::command);
constexpr auto k_inline = static_cast<std::uint8_t>(pr::ev::inline_command);

}  // namespace

TEST_CASE("redis config: URLs, limits and a misplaced redis table", "[redis][config]") {
  auto u = parse_listen_url("redis://127.0.0.1:6379");
  CHECK(u);
  CHECK(u.kind == listen_kind::tcp);
  CHECK(u.protocol == listen_protocol::redis);
  CHECK(u.port == 6379);
  auto x = parse_listen_url("redis+unix:///tmp/r.sock");
  CHECK(x);
  CHECK(x.kind == listen_kind::unix_stream);
  CHECK(x.protocol == listen_protocol::redis);
  CHECK(x.path == "/tmp/r.sock");
  CHECK_FALSE(parse_listen_url("rediss://127.0.0.1:1"));

  config::diagnostics diag;
  auto app = parse(R"(
[[listen]]
url = "redis://127.0.0.1:6379"
module = "plain"
redis = { proto_max_bulk_len = "1MiB", max_inline_len = 1024 }
[[listen]]
url = "redis://127.0.0.1:6380"
module = "plain"
)", diag);
  INFO(diag.to_string());
  REQUIRE(app);
  CHECK(app->listen[0].is_redis());
  CHECK(app->listen[0].redis_options.max_bulk_len == 1u << 20);
  CHECK(app->listen[0].redis_options.max_inline_len == 1024);
  CHECK(app->listen[0].redis_options.max_multibulk_len == 2147483647);
  CHECK(app->listen[1].redis_options.max_bulk_len == std::size_t{512} << 20);  // Redis's default
  CHECK(app->listen[1].redis_options.max_inline_len == 64 * 1024);

  config::diagnostics bad;
  CHECK_FALSE(parse(R"(
[[listen]]
url = "tcp://127.0.0.1:6379"
module = "plain"
redis = { max_inline_len = 1024 }
)", bad));
  CHECK(bad.to_string().find("listen[0].redis") != std::string::npos);
  CHECK(bad.to_string().find("redis is for Redis listeners") != std::string::npos);
  config::diagnostics bad2;
  CHECK_FALSE(parse(R"(
[[listen]]
url = "redis://127.0.0.1:6379"
module = "plain"
redis = { max_multibulk_len = 0 }
)", bad2));
  CHECK(bad2.to_string().find("max_multibulk_len") != std::string::npos);
}

TEST_CASE("redis command: args from multibulk and inline, protocol, reply kinds", "[redis]") {
  redis::command a(mbulk({"SET", "k", std::string("v\0\r\n", 4)}), k_command);
  REQUIRE(a.valid());
  CHECK(a.size() == 3);
  CHECK(a.is("set"));
  CHECK(a[2] == std::string_view("v\0\r\n", 4));
  CHECK(a.protocol() == 2);
  a.reply().null();
  CHECK(a.reply_bytes() == "$-1\r\n");

  redis::command b("get \"a b\" 'c\\'d'", k_inline | pr::resp3_flag);
  REQUIRE(b.valid());
  CHECK(b.protocol() == 3);
  CHECK(b.args() == std::vector<std::string_view>{"get", "a b", "c'd"});
  b.reply().null();
  CHECK(b.reply_bytes() == "_\r\n");

  redis::command h(mbulk({"HELLO", "3"}), k_command);
  CHECK(h.protocol() == 2);
  h.switch_protocol(3);
  CHECK(h.protocol() == 3);
  CHECK(h.switched_protocol() == 3);
  h.reply().map(0);  // the reply is already RESP3
  CHECK(h.reply_bytes() == "%0\r\n");

  redis::command q(mbulk({"QUIT"}), k_command);
  CHECK_FALSE(q.closes());
  q.close_after_reply();
  CHECK(q.closes());

  redis::command bad("*2\r\n$3\r\nGET\r\n", k_command);  // not a whole command
  CHECK_FALSE(bad.valid());
}

TEST_CASE("redis errors: Redis 7.0's texts for unknown commands and arity", "[redis]") {
  redis::command a(mbulk({"NOSUCH", "x", "y"}), k_command);
  redis::reply_unknown_command(a);
  CHECK(a.reply_bytes() == "-ERR unknown command 'NOSUCH', with args beginning with: 'x' 'y' \r\n");
  // Arguments are cut at 128 bytes in all (each at 128 minus what is there: 103 -> 25),
  // newlines become spaces,
  // and an argument ends at a NUL (Redis formats them as C strings).
  redis::command b(mbulk({"x\ny", std::string(100, 'a'), std::string(100, 'b'), "c"}), k_command);
  redis::reply_unknown_command(b);
  CHECK(b.reply_bytes() == "-ERR unknown command 'x y', with args beginning with: '" + std::string(100, 'a') + "' '" +
                               std::string(25, 'b') + "' \r\n");
  redis::command z(mbulk({"foo", std::string("a\0b", 3)}), k_command);
  redis::reply_unknown_command(z);
  CHECK(z.reply_bytes() == "-ERR unknown command 'foo', with args beginning with: 'a' \r\n");
  redis::command c(mbulk({"GeT"}), k_command);
  CHECK_FALSE(redis::arity_ok(c, 2));
  CHECK(redis::arity_ok(c, -1));
  redis::reply_wrong_arity(c);
  CHECK(c.reply_bytes() == "-ERR wrong number of arguments for 'get' command\r\n");
}

TEST_CASE("redis glob: Redis's KEYS/PSUBSCRIBE patterns", "[redis]") {
  struct row {
    const char* pattern;
    const char* text;
    bool match;
  };
  const row rows[] = {
      {"*", "", true},          {"*", "anything", true},   {"h?llo", "hello", true},  {"h?llo", "hllo", false},
      {"h*llo", "heeeello", true}, {"h[ae]llo", "hallo", true}, {"h[ae]llo", "hillo", false},
      {"h[^e]llo", "hallo", true}, {"h[^e]llo", "hello", false}, {"h[a-b]llo", "hbllo", true},
      {"h[b-a]llo", "hallo", true},  // a reversed range still matches
      {"h\\*llo", "h*llo", true},  {"h\\*llo", "hello", false}, {"a*b*c", "axxbyyc", true},
      {"a*b*c", "axxbyy", false}, {"*.log", "x.log.gz", false}, {"**a", "bba", true},
      {"news.*", "news.art", true}, {"[abc", "a", true},  // an unterminated class ends at the pattern's end
      {"abc", "ABC", false},
  };
  for (const auto& r : rows) {
    INFO(r.pattern << " ~ " << r.text);
    CHECK(redis::glob_match(r.pattern, r.text) == r.match);
  }
  CHECK(redis::glob_match("abc", "ABC", true));
  CHECK(redis::iequals("PiNg", "ping"));
  CHECK_FALSE(redis::iequals("ping", "pong"));
}

TEST_CASE("redis command_table: handlers by name in any case, Redis's arity rule", "[redis]") {
  struct entry {
    int id;
    int arity;
  };
  redis::command_table<entry> t = {{"get", {1, 2}}, {"MSET", {2, -3}}};
  t.add("Ping", {3, -1});
  CHECK(t.size() == 3);
  REQUIRE(t.find("GeT"));
  CHECK(t.find("GeT")->id == 1);
  CHECK(t.find("ping")->id == 3);
  CHECK(t.find("mset")->id == 2);
  CHECK_FALSE(t.find("nope"));
  CHECK_FALSE(t.find(std::string(100, 'a')));

  redis::command ok(mbulk({"MsEt", "a", "1"}), k_command);
  REQUIRE(t.route(ok));
  CHECK(t.route(ok)->id == 2);
  CHECK_FALSE(ok.replied());
  redis::command few(mbulk({"mset", "a"}), k_command);
  CHECK_FALSE(t.route(few));
  CHECK(few.reply_bytes() == "-ERR wrong number of arguments for 'mset' command\r\n");
  redis::command unknown(mbulk({"frob", "x"}), k_command);
  CHECK_FALSE(t.route(unknown));
  CHECK(unknown.reply_bytes() == "-ERR unknown command 'frob', with args beginning with: 'x' \r\n");
}
