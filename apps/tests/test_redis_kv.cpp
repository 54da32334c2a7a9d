// redis_kv on the module test kit, with a real shared-memory table: the exact reply bytes of
// redis-server 7.0.15 for each command family (checked against a real server), expiry,
// INCRBYFLOAT formatting, hash order, RESP3, AUTH and the table's limits.
#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "modules/redis_kv.hpp"
#include "swactor/actors/testing.hpp"
#include "swactor/ipc/table.hpp"

namespace kit = swactor::test_kit;
using swactor::apps::redis_kv;
namespace ipc = swactor::ipc;

namespace {

ipc::table make_table(std::size_t rows, std::size_t value_size, bool good = true) {
  ipc::table_schema sc;
  sc.size = rows;
  sc.column("type", ipc::column_type::int64);
  if (good)
    sc.column("expire", ipc::column_type::int64);
  else
    sc.column("expire", ipc::column_type::string, 8);
  sc.column("value", ipc::column_type::string, value_size);
  auto t = ipc::table::create("kv", sc);
  if (!t) throw std::runtime_error("table::create: " + t.error().message());
  return std::move(t).value();
}

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

struct rig {
  ipc::table table;
  std::unique_ptr<kit::module_harness<redis_kv>> h;
  swactor::session_id s;

  explicit rig(redis_kv::options o = {}, std::size_t rows = 256, std::size_t value_size = 128)
      : table(make_table(rows, value_size)) {
    h = std::make_unique<kit::module_harness<redis_kv>>(std::move(o));
    h->ctx().add_table("kv", table);
    h->start();
    s = h->connect();
  }
  std::string operator()(std::vector<std::string> args) { return h->command(s, std::move(args)); }
  std::string on(swactor::session_id other, std::vector<std::string> args) {
    return h->command(other, std::move(args));
  }
};

struct step {
  std::vector<std::string> args;
  std::string reply;
};

std::string show(const std::vector<std::string>& a) {
  std::string out;
  for (auto& x : a) out += (out.empty() ? "" : " ") + x;
  return out;
}

void run(rig& r, const std::vector<step>& steps) {
  for (const auto& st : steps) {
    INFO(show(st.args));
    CHECK(r(st.args) == st.reply);
  }
}

const std::string kWrongType = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
const std::string kNotInt = "-ERR value is not an integer or out of range\r\n";
const std::string kSyntax = "-ERR syntax error\r\n";
const std::string kNull = "$-1\r\n";
const std::string kOK = "+OK\r\n";

}  // namespace

TEST_CASE("redis_kv: strings", "[redis_kv]") {
  rig r;
  run(r, {
             {{"GET", "k"}, kNull},
             {{"SET", "k", "v"}, kOK},
             {{"GET", "k"}, "$1\r\nv\r\n"},
             {{"get", "k"}, "$1\r\nv\r\n"},
             {{"SET", "k", "v", "NX", "XX"}, kSyntax},
             {{"SET", "k", "v", "EX", "0"}, "-ERR invalid expire time in 'set' command\r\n"},
             {{"SET", "k", "v", "EX", "abc"}, kNotInt},
             {{"SET", "k", "v", "EX", "10", "PX", "100"}, kSyntax},
             {{"SET", "k", "v", "KEEPTTL", "EX", "10"}, kSyntax},
             {{"SET", "k", "v", "FOO"}, kSyntax},
             {{"SET", "k", "w", "NX"}, kNull},
             {{"SET", "k", "w", "NX", "GET"}, "$1\r\nv\r\n"},
             {{"SET", "k", "w", "XX", "GET"}, "$1\r\nv\r\n"},
             {{"SET", "nk", "w", "XX"}, kNull},
             {{"SET", "nk", "x", "GET"}, kNull},
             {{"GET", "nk"}, "$1\r\nx\r\n"},
             {{"SETNX", "nk", "y"}, ":0\r\n"},
             {{"SETNX", "nk2", "y"}, ":1\r\n"},
             {{"SET"}, "-ERR wrong number of arguments for 'set' command\r\n"},
             {{"GET", "a", "b"}, "-ERR wrong number of arguments for 'get' command\r\n"},
             {{"MSET", "a", "1", "b", "2"}, kOK},
             {{"MSET", "a"}, "-ERR wrong number of arguments for 'mset' command\r\n"},
             {{"MSET", "a", "1", "b"}, "-ERR wrong number of arguments for 'mset' command\r\n"},
             {{"MGET", "a", "b", "zz"}, "*3\r\n$1\r\n1\r\n$1\r\n2\r\n$-1\r\n"},
             {{"MSETNX", "a", "9", "c", "3"}, ":0\r\n"},
             {{"MSETNX", "c", "3", "d", "4"}, ":1\r\n"},
             {{"GETSET", "a", "10"}, "$1\r\n1\r\n"},
             {{"GETSET", "new", "1"}, kNull},
             {{"GETDEL", "new"}, "$1\r\n1\r\n"},
             {{"GETDEL", "new"}, kNull},
             {{"APPEND", "ap", "Hello"}, ":5\r\n"},
             {{"APPEND", "ap", " World"}, ":11\r\n"},
             {{"STRLEN", "ap"}, ":11\r\n"},
             {{"STRLEN", "none"}, ":0\r\n"},
             {{"GETRANGE", "ap", "0", "4"}, "$5\r\nHello\r\n"},
             {{"GETRANGE", "ap", "-5", "-1"}, "$5\r\nWorld\r\n"},
             {{"GETRANGE", "ap", "-1", "-5"}, "$0\r\n\r\n"},
             {{"GETRANGE", "ap", "5", "100"}, "$6\r\n World\r\n"},
             {{"GETRANGE", "ap", "a", "1"}, kNotInt},
             {{"GETRANGE", "none", "0", "1"}, "$0\r\n\r\n"},
             {{"SETRANGE", "ap", "6", "Redis"}, ":11\r\n"},
             {{"GET", "ap"}, "$11\r\nHello Redis\r\n"},
             {{"SETRANGE", "sr", "3", "ab"}, ":5\r\n"},
             {{"GET", "sr"}, std::string("$5\r\n\0\0\0ab\r\n", 11)},
             {{"SETRANGE", "sr2", "3", ""}, ":0\r\n"},
             {{"EXISTS", "sr2"}, ":0\r\n"},
             {{"SETRANGE", "k", "-1", "x"}, "-ERR offset is out of range\r\n"},
             {{"HSET", "h", "a", "1"}, ":1\r\n"},
             {{"SET", "h", "x", "GET"}, kWrongType},
             {{"GET", "h"}, kWrongType},
             {{"GETSET", "h", "x"}, kWrongType},
             {{"APPEND", "h", "x"}, kWrongType},
             {{"STRLEN", "h"}, kWrongType},
             {{"MGET", "h", "a"}, "*2\r\n$-1\r\n$2\r\n10\r\n"},
             {{"SET", "h", "plain"}, kOK},
             {{"GET", "h"}, "$5\r\nplain\r\n"},
         });
}

TEST_CASE("redis_kv: counters and INCRBYFLOAT formatting", "[redis_kv]") {
  rig r;
  run(r, {
             {{"INCR", "n"}, ":1\r\n"},
             {{"INCRBY", "n", "10"}, ":11\r\n"},
             {{"DECR", "n"}, ":10\r\n"},
             {{"DECRBY", "n", "20"}, ":-10\r\n"},
             {{"SET", "k", "v"}, kOK},
             {{"INCR", "k"}, kNotInt},
             {{"SET", "n", "9223372036854775807"}, kOK},
             {{"INCR", "n"}, "-ERR increment or decrement would overflow\r\n"},
             {{"INCRBY", "n", "+1"}, kNotInt},
             {{"INCRBY", "n", " 1"}, kNotInt},
             {{"INCRBY", "n", "01"}, kNotInt},
             {{"INCRBY", "n", "99999999999999999999"}, kNotInt},
             {{"DECRBY", "n", "-9223372036854775808"}, "-ERR decrement would overflow\r\n"},
             {{"SET", "m", "-9223372036854775808"}, kOK},
             {{"DECR", "m"}, "-ERR increment or decrement would overflow\r\n"},
             {{"SET", "z", "007"}, kOK},
             {{"INCR", "z"}, kNotInt},
             {{"SET", "f", "10.5"}, kOK},
             {{"INCRBYFLOAT", "f", "0.1"}, "$4\r\n10.6\r\n"},
             {{"SET", "f", "5.0e3"}, kOK},
             {{"INCRBYFLOAT", "f", "2.0e2"}, "$4\r\n5200\r\n"},
             {{"SET", "f", "0.1"}, kOK},
             {{"INCRBYFLOAT", "f", "0.2"}, "$3\r\n0.3\r\n"},
             {{"INCRBYFLOAT", "nf", "1e-20"}, "$1\r\n0\r\n"},
             {{"INCRBYFLOAT", "nf2", "-0"}, "$1\r\n0\r\n"},
             {{"INCRBYFLOAT", "nf3", "3"}, "$1\r\n3\r\n"},
             {{"INCRBYFLOAT", "nf3", "-1.5"}, "$3\r\n1.5\r\n"},
             {{"INCRBYFLOAT", "f", "abc"}, "-ERR value is not a valid float\r\n"},
             {{"INCRBYFLOAT", "f", " 1"}, "-ERR value is not a valid float\r\n"},
             {{"INCRBYFLOAT", "f", "1 "}, "-ERR value is not a valid float\r\n"},
             {{"INCRBYFLOAT", "f", "inf"}, "-ERR increment would produce NaN or Infinity\r\n"},
             {{"INCRBYFLOAT", "f", "nan"}, "-ERR value is not a valid float\r\n"},
             {{"INCRBYFLOAT", "k", "1"}, "-ERR value is not a valid float\r\n"},
             {{"GET", "f"}, "$3\r\n0.3\r\n"},
             {{"HSET", "h", "a", "1"}, ":1\r\n"},
             {{"INCR", "h"}, kWrongType},
             {{"INCRBYFLOAT", "h", "1"}, kWrongType},
         });
}

TEST_CASE("redis_kv: keys, expiry and TTLs", "[redis_kv]") {
  rig r;
  run(r, {
             {{"SET", "k", "v"}, kOK},
             {{"TTL", "k"}, ":-1\r\n"},
             {{"PTTL", "nokey"}, ":-2\r\n"},
             {{"EXPIRE", "k", "100"}, ":1\r\n"},
             {{"TTL", "k"}, ":100\r\n"},
             {{"EXPIRE", "k", "10", "NX", "XX"},
              "-ERR NX and XX, GT or LT options at the same time are not compatible\r\n"},
             {{"EXPIRE", "k", "10", "GT", "LT"}, "-ERR GT and LT options at the same time are not compatible\r\n"},
             {{"EXPIRE", "k", "10", "FOO"}, "-ERR Unsupported option FOO\r\n"},
             {{"EXPIRE", "k", "9223372036854775807"}, "-ERR invalid expire time in 'expire' command\r\n"},
             {{"PEXPIRE", "k", "9223372036854775807"}, "-ERR invalid expire time in 'pexpire' command\r\n"},
             {{"EXPIRE", "k", "x"}, kNotInt},
             {{"EXPIRE", "k", "50", "NX"}, ":0\r\n"},
             {{"EXPIRE", "k", "50", "GT"}, ":0\r\n"},
             {{"EXPIRE", "k", "50", "LT"}, ":1\r\n"},
             {{"TTL", "k"}, ":50\r\n"},
             {{"EXPIRE", "k", "200", "XX"}, ":1\r\n"},
             {{"PERSIST", "k"}, ":1\r\n"},
             {{"PERSIST", "k"}, ":0\r\n"},
             {{"EXPIRE", "k", "50", "XX"}, ":0\r\n"},
             {{"EXPIRE", "k", "50", "GT"}, ":0\r\n"},
             {{"EXPIRE", "nokey", "50"}, ":0\r\n"},
             {{"SET", "k", "v", "EX", "100"}, kOK},
             {{"SET", "k", "w", "KEEPTTL"}, kOK},
             {{"TTL", "k"}, ":100\r\n"},
             {{"SET", "k", "w"}, kOK},
             {{"TTL", "k"}, ":-1\r\n"},
             {{"SETEX", "k", "0", "v"}, "-ERR invalid expire time in 'setex' command\r\n"},
             {{"SETEX", "k", "30", "v"}, kOK},
             {{"TTL", "k"}, ":30\r\n"},
             {{"GETEX", "k", "PERSIST"}, "$1\r\nv\r\n"},
             {{"TTL", "k"}, ":-1\r\n"},
             {{"GETEX", "k", "PERSIST", "EX", "10"}, kSyntax},
             {{"GETEX", "nokey", "EX", "-1"}, kNull},
             {{"GETEX", "k", "EX", "-1"}, "-ERR invalid expire time in 'getex' command\r\n"},
             {{"GETEX", "k", "EX", "20"}, "$1\r\nv\r\n"},
             {{"TTL", "k"}, ":20\r\n"},
             {{"GETEX", "k", "PXAT", "1"}, "$1\r\nv\r\n"},
             {{"EXISTS", "k"}, ":0\r\n"},
             {{"SET", "k", "v"}, kOK},
             {{"PEXPIREAT", "k", "1"}, ":1\r\n"},  // in the past: deleted now
             {{"GET", "k"}, kNull},
             {{"SET", "k", "v"}, kOK},
             {{"EXPIRE", "k", "-1"}, ":1\r\n"},
             {{"EXISTS", "k"}, ":0\r\n"},
             {{"SET", "a", "1"}, kOK},
             {{"SET", "b", "2"}, kOK},
             {{"HSET", "h", "f", "v"}, ":1\r\n"},
             {{"EXISTS", "a", "b", "a", "zz"}, ":3\r\n"},
             {{"TYPE", "a"}, "+string\r\n"},
             {{"TYPE", "h"}, "+hash\r\n"},
             {{"TYPE", "zz"}, "+none\r\n"},
             {{"DBSIZE"}, ":3\r\n"},
             {{"DEL", "a", "b", "zz"}, ":2\r\n"},
             {{"UNLINK", "h"}, ":1\r\n"},
             {{"DBSIZE"}, ":0\r\n"},
             {{"RANDOMKEY"}, kNull},
             {{"SET", "only", "1"}, kOK},
             {{"RANDOMKEY"}, "$4\r\nonly\r\n"},
             {{"RENAME", "nokey", "x"}, "-ERR no such key\r\n"},
             {{"EXPIRE", "only", "100"}, ":1\r\n"},
             {{"RENAME", "only", "other"}, kOK},
             {{"TTL", "other"}, ":100\r\n"},
             {{"EXISTS", "only"}, ":0\r\n"},
             {{"RENAME", "other", "other"}, kOK},
             {{"SET", "x", "1"}, kOK},
             {{"RENAMENX", "other", "x"}, ":0\r\n"},
             {{"RENAMENX", "other", "y"}, ":1\r\n"},
             {{"FLUSHALL", "FOO"}, kSyntax},
             {{"FLUSHDB", "ASYNC"}, kOK},
             {{"DBSIZE"}, ":0\r\n"},
         });
  // TTL arithmetic in milliseconds.
  CHECK(r({"SET", "p", "v", "PX", "100000"}) == kOK);
  auto pttl = r({"PTTL", "p"});
  REQUIRE(pttl.size() > 3);
  auto ms = std::stoll(pttl.substr(1));
  CHECK(ms > 99000);
  CHECK(ms <= 100000);
  auto at = now_ms() + 500000;
  CHECK(r({"PEXPIREAT", "p", std::to_string(at)}) == ":1\r\n");
  CHECK(r({"PEXPIRETIME", "p"}) == ":" + std::to_string(at) + "\r\n");
}

TEST_CASE("redis_kv: a row whose expire time has passed is absent everywhere and erased", "[redis_kv]") {
  rig r;
  const auto past = now_ms() - 1000;
  REQUIRE_FALSE(r.table.set("old", {{"type", std::int64_t{1}}, {"expire", past}, {"value", "stale"}}));
  REQUIRE_FALSE(r.table.set("old2", {{"type", std::int64_t{1}}, {"expire", past}, {"value", "stale"}}));
  CHECK(r.table.count() == 2);
  CHECK(r({"GET", "old"}) == kNull);
  CHECK_FALSE(r.table.exists("old"));  // erased on access
  CHECK(r({"EXISTS", "old2"}) == ":0\r\n");
  CHECK(r({"TTL", "old2"}) == ":-2\r\n");
  CHECK(r({"KEYS", "*"}) == "*0\r\n");
  CHECK(r({"SETNX", "old2", "new"}) == ":1\r\n");
  CHECK(r({"TTL", "old2"}) == ":-1\r\n");

  // The sweep (worker 0) erases expired rows nobody reads.
  REQUIRE_FALSE(r.table.set("old3", {{"type", std::int64_t{1}}, {"expire", past}, {"value", "stale"}}));
  REQUIRE(r.table.exists("old3"));
  r.h->advance(std::chrono::milliseconds(100 * 300));
  CHECK_FALSE(r.table.exists("old3"));
  CHECK(r.table.exists("old2"));
}

TEST_CASE("redis_kv: KEYS and SCAN", "[redis_kv]") {
  rig r;
  for (auto k : {"alpha", "beta", "gamma", "a*b", "a1", "a2", "b[1]"}) REQUIRE(r({"SET", k, "v"}) == kOK);
  REQUIRE(r({"HSET", "hash", "f", "v"}) == ":1\r\n");
  auto keys = [&](const std::string& pattern) {
    auto reply = r({"KEYS", pattern});
    std::vector<std::string> out;
    // parse *n\r\n$len\r\nkey\r\n...
    std::size_t p = reply.find("\r\n") + 2;
    while (p < reply.size()) {
      auto e = reply.find("\r\n", p);
      auto len = std::stoul(reply.substr(p + 1, e - p - 1));
      out.push_back(reply.substr(e + 2, len));
      p = e + 2 + len + 2;
    }
    std::sort(out.begin(), out.end());
    return out;
  };
  using v = std::vector<std::string>;
  CHECK(keys("*").size() == 8);
  CHECK(keys("a*") == v{"a*b", "a1", "a2", "alpha"});
  CHECK(keys("a?") == v{"a1", "a2"});
  CHECK(keys("a[1-1]") == v{"a1"});
  CHECK(keys("a[^1]") == v{"a2"});
  CHECK(keys("a\\*b") == v{"a*b"});
  CHECK(keys("b\\[1\\]") == v{"b[1]"});
  CHECK(keys("*a") == v{"alpha", "beta", "gamma"});
  CHECK(keys("[ab]*a") == v{"alpha", "beta"});
  CHECK(keys("nothing*") == v{});

  // A full SCAN pass sees every key once; MATCH, TYPE and COUNT options; errors.
  std::vector<std::string> seen;
  std::string cursor = "0";
  int rounds = 0;
  do {
    auto reply = r({"SCAN", cursor, "COUNT", "2"});
    REQUIRE(reply.rfind("*2\r\n$", 0) == 0);
    auto e = reply.find("\r\n", 4);
    auto len = std::stoul(reply.substr(5, e - 5));
    cursor = reply.substr(e + 2, len);
    std::size_t p = e + 2 + len + 2;
    auto e2 = reply.find("\r\n", p);
    auto n = std::stoul(reply.substr(p + 1, e2 - p - 1));
    p = e2 + 2;
    for (std::size_t i = 0; i < n; ++i) {
      auto e3 = reply.find("\r\n", p);
      auto l = std::stoul(reply.substr(p + 1, e3 - p - 1));
      seen.push_back(reply.substr(e3 + 2, l));
      p = e3 + 2 + l + 2;
    }
  } while (cursor != "0" && ++rounds < 10000);
  std::sort(seen.begin(), seen.end());
  CHECK(seen == v{"a*b", "a1", "a2", "alpha", "b[1]", "beta", "gamma", "hash"});
  auto big = std::to_string(r.table.bucket_count() * 2);
  CHECK(r({"SCAN", "0", "COUNT", "1000", "TYPE", "hash"}) == "*2\r\n$1\r\n0\r\n*1\r\n$4\r\nhash\r\n");
  CHECK(r({"SCAN", "0", "COUNT", "1000", "MATCH", "g*"}) == "*2\r\n$1\r\n0\r\n*1\r\n$5\r\ngamma\r\n");
  CHECK(r({"SCAN", big}) == "*2\r\n$1\r\n0\r\n*0\r\n");
  CHECK(r({"SCAN", "abc"}) == "-ERR invalid cursor\r\n");
  CHECK(r({"SCAN", " 1"}) == "-ERR invalid cursor\r\n");
  CHECK(r({"SCAN", "0", "COUNT", "0"}) == kSyntax);
  CHECK(r({"SCAN", "0", "COUNT", "x"}) == kNotInt);
  CHECK(r({"SCAN", "0", "FOO"}) == kSyntax);
  CHECK(r({"SCAN", "0", "MATCH"}) == kSyntax);
}

TEST_CASE("redis_kv: hashes keep insertion order", "[redis_kv]") {
  rig r;
  run(r, {
             {{"HSET", "h", "b", "1", "a", "2", "c", "3"}, ":3\r\n"},
             {{"HSET", "h", "a", "20", "d", "4"}, ":1\r\n"},
             {{"HGETALL", "h"},
              "*8\r\n$1\r\nb\r\n$1\r\n1\r\n$1\r\na\r\n$2\r\n20\r\n$1\r\nc\r\n$1\r\n3\r\n$1\r\nd\r\n$1\r\n4\r\n"},
             {{"HDEL", "h", "a", "zz"}, ":1\r\n"},
             {{"HSET", "h", "a", "5"}, ":1\r\n"},
             {{"HKEYS", "h"}, "*4\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n$1\r\na\r\n"},
             {{"HVALS", "h"}, "*4\r\n$1\r\n1\r\n$1\r\n3\r\n$1\r\n4\r\n$1\r\n5\r\n"},
             {{"HGET", "h", "c"}, "$1\r\n3\r\n"},
             {{"HGET", "h", "zz"}, kNull},
             {{"HGET", "none", "zz"}, kNull},
             {{"HMGET", "h", "b", "zz", "a"}, "*3\r\n$1\r\n1\r\n$-1\r\n$1\r\n5\r\n"},
             {{"HLEN", "h"}, ":4\r\n"},
             {{"HLEN", "none"}, ":0\r\n"},
             {{"HEXISTS", "h", "b"}, ":1\r\n"},
             {{"HEXISTS", "h", "x"}, ":0\r\n"},
             {{"HSTRLEN", "h", "b"}, ":1\r\n"},
             {{"HSETNX", "h", "b", "9"}, ":0\r\n"},
             {{"HSETNX", "h", "e", "9"}, ":1\r\n"},
             {{"HMSET", "h", "f", "6"}, kOK},
             {{"HINCRBY", "h", "b", "10"}, ":11\r\n"},
             {{"HINCRBY", "h", "new", "-3"}, ":-3\r\n"},
             {{"HINCRBY", "h", "b", "x"}, kNotInt},
             {{"HSET", "h", "s", "x"}, ":1\r\n"},
             {{"HINCRBY", "h", "s", "1"}, "-ERR hash value is not an integer\r\n"},
             {{"HINCRBYFLOAT", "h", "s", "1"}, "-ERR hash value is not a float\r\n"},
             {{"HINCRBYFLOAT", "h", "b", "inf"}, "-ERR value is NaN or Infinity\r\n"},
             {{"HINCRBYFLOAT", "h", "fl", "0.1"}, "$3\r\n0.1\r\n"},
             {{"HINCRBYFLOAT", "h", "fl", "0.2"}, "$3\r\n0.3\r\n"},
             {{"HSET", "h", "b"}, "-ERR wrong number of arguments for 'hset' command\r\n"},
             {{"HGETALL", "none"}, "*0\r\n"},
             {{"HKEYS", "none"}, "*0\r\n"},
             {{"SET", "s", "v"}, kOK},
             {{"HSET", "s", "a", "1"}, kWrongType},
             {{"HGET", "s", "a"}, kWrongType},
             {{"HGETALL", "s"}, kWrongType},
             {{"HDEL", "s", "a"}, kWrongType},
             {{"HSET", "one", "f", "v"}, ":1\r\n"},
             {{"HDEL", "one", "f"}, ":1\r\n"},
             {{"EXISTS", "one"}, ":0\r\n"},  // the last field gone: the key is gone
         });
}

TEST_CASE("redis_kv: RESP3 after HELLO 3", "[redis_kv]") {
  rig r;
  auto hello = r({"HELLO", "3"});
  CHECK(hello == "%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n$5\r\nproto\r\n:3\r\n"
                 "$2\r\nid\r\n:" +
                     std::to_string(r.s.value()) +
                     "\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n");
  CHECK(r.h->redis_protocol(r.s) == 3);
  run(r, {
             {{"GET", "k"}, "_\r\n"},
             {{"HSET", "h", "f", "v", "g", "w"}, ":2\r\n"},
             {{"HGETALL", "h"}, "%2\r\n$1\r\nf\r\n$1\r\nv\r\n$1\r\ng\r\n$1\r\nw\r\n"},
             {{"HGETALL", "none"}, "%0\r\n"},
             {{"HMGET", "h", "x"}, "*1\r\n_\r\n"},
             {{"CLIENT", "GETNAME"}, "_\r\n"},
             {{"HELLO", "4"}, "-NOPROTO unsupported protocol version\r\n"},
         });
  auto two = r({"HELLO", "2"});
  CHECK(two.rfind("*14\r\n$6\r\nserver\r\n", 0) == 0);
  CHECK(r({"GET", "k"}) == kNull);
}

TEST_CASE("redis_kv: connection commands", "[redis_kv]") {
  rig r;
  auto id = std::to_string(r.s.value());
  run(r, {
             {{"PING"}, "+PONG\r\n"},
             {{"PING", "hi"}, "$2\r\nhi\r\n"},
             {{"PING", "a", "b"}, "-ERR wrong number of arguments for 'ping' command\r\n"},
             {{"ECHO", "x"}, "$1\r\nx\r\n"},
             {{"SELECT", "0"}, kOK},
             {{"SELECT", "1"}, "-ERR DB index is out of range\r\n"},
             {{"SELECT", "x"}, kNotInt},
             {{"SELECT", "9999999999"}, "-ERR value is out of range, value must between -2147483648 and 2147483647\r\n"},
             {{"CLIENT", "ID"}, ":" + id + "\r\n"},
             {{"CLIENT", "GETNAME"}, kNull},
             {{"CLIENT", "SETNAME", "a b"}, "-ERR Client names cannot contain spaces, newlines or special characters.\r\n"},
             {{"CLIENT", "SETNAME"}, "-ERR wrong number of arguments for 'client|setname' command\r\n"},
             {{"CLIENT", "SETNAME", "me"}, kOK},
             {{"CLIENT", "GETNAME"}, "$2\r\nme\r\n"},
             {{"CLIENT", "FOO"}, "-ERR unknown subcommand 'FOO'. Try CLIENT HELP.\r\n"},
             {{"CLIENT"}, "-ERR wrong number of arguments for 'client' command\r\n"},
             {{"COMMAND", "FOO"}, "-ERR unknown subcommand 'FOO'. Try COMMAND HELP.\r\n"},
             {{"COMMAND", "DOCS"}, "*0\r\n"},
             {{"FUNCTION", "FLUSH"}, kOK},
             {{"FUNCTION", "FOO"}, "-ERR unknown subcommand 'FOO'. Try FUNCTION HELP.\r\n"},
             {{"AUTH", "x"},
              "-ERR AUTH <password> called without any password configured for the default user. Are you sure your "
              "configuration is correct?\r\n"},
             {{"AUTH", "default", "x"}, kOK},
             {{"AUTH", "a", "b", "c"}, kSyntax},
             {{"HELLO", "x"}, "-ERR Protocol version is not an integer or out of range\r\n"},
             {{"HELLO", "2", "FOO"}, "-ERR Syntax error in HELLO option 'FOO'\r\n"},
             {{"FOO", "bar"}, "-ERR unknown command 'FOO', with args beginning with: 'bar' \r\n"},
         });
  auto count = r({"COMMAND", "COUNT"});
  CHECK(std::stoi(count.substr(1)) > 60);
  // COMMAND lists as many entries as COUNT says, each the 10 fields of Redis 7.
  auto all = r({"COMMAND"});
  CHECK(all.rfind("*" + count.substr(1, count.size() - 3) + "\r\n*10\r\n$4\r\nping\r\n", 0) == 0);
  CHECK(r({"COMMAND", "INFO"}) == all);
  CHECK(r({"COMMAND", "INFO", "get", "nosuch", "MSET"}) ==
        "*3\r\n"
        "*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n"
        "*3\r\n+@read\r\n+@string\r\n+@fast\r\n*0\r\n*0\r\n*0\r\n"
        "$-1\r\n"
        "*10\r\n$4\r\nmset\r\n:-3\r\n*2\r\n+write\r\n+denyoom\r\n:1\r\n:-1\r\n:2\r\n"
        "*3\r\n+@write\r\n+@string\r\n+@slow\r\n*0\r\n*0\r\n*0\r\n");
  CHECK(r({"COMMAND", "INFO", "rename", "publish"}).find("$6\r\nrename\r\n:3\r\n*1\r\n+write\r\n:1\r\n:2\r\n:1\r\n") !=
        std::string::npos);
  // Every command the dispatch table knows is listed, and each listed one is answered.
  auto list = r({"COMMAND", "LIST"});
  CHECK(list.rfind("*" + count.substr(1, count.size() - 3) + "\r\n", 0) == 0);
  for (const char* name : {"get", "hincrbyfloat", "expiretime", "subscribe", "publish", "function"})
    CHECK(list.find(std::string("\r\n") + name + "\r\n") != std::string::npos);
  CHECK(r({"COMMAND", "LIST", "FILTERBY", "PATTERN", "h*get*"}) ==
        "*3\r\n$4\r\nhget\r\n$5\r\nhmget\r\n$7\r\nhgetall\r\n");
  CHECK(r({"COMMAND", "LIST", "FILTERBY", "ACLCAT", "pubsub"}).rfind("*5\r\n", 0) == 0);
  CHECK(r({"COMMAND", "LIST", "FILTERBY", "MODULE", "x"}) == "*0\r\n");
  CHECK(r({"COMMAND", "LIST", "FILTERBY", "COLOR", "x"}) == kSyntax);
  CHECK(r({"COMMAND", "HELP"}).rfind("*15\r\n+COMMAND <subcommand>", 0) == 0);
  CHECK(r({"SET", "k", "v"}) == kOK);
  CHECK(r({"EXPIRE", "k", "100"}) == ":1\r\n");
  auto info = r({"INFO"});
  CHECK(info.find("# Server\r\nredis_version:7.0.15\r\n") != std::string::npos);
  CHECK(info.find("\r\n# Keyspace\r\ndb0:keys=1,expires=1,avg_ttl=") != std::string::npos);
  // avg_ttl: the mean time to live of the keys that expire, in ms (100 s, less what passed).
  auto ks = r({"INFO", "keyspace"});
  std::smatch m;
  REQUIRE(std::regex_search(ks, m, std::regex(R"(# Keyspace\r\ndb0:keys=1,expires=1,avg_ttl=(\d+)\r\n)")));
  CHECK(std::stoll(m[1]) > 95000);
  CHECK(std::stoll(m[1]) <= 100000);
  CHECK(r({"SET", "p", "v"}) == kOK);  // no expiry: not in the mean
  CHECK(r({"SET", "q", "v", "EX", "300"}) == kOK);
  ks = r({"INFO", "keyspace"});
  REQUIRE(std::regex_search(ks, m, std::regex(R"(db0:keys=3,expires=2,avg_ttl=(\d+)\r\n)")));
  CHECK(std::stoll(m[1]) > 195000);  // (100 s + 300 s) / 2
  CHECK(std::stoll(m[1]) <= 200000);
  CHECK(r({"DEL", "p", "q"}) == ":2\r\n");
  CHECK(r({"HELLO"}).rfind("*14\r\n", 0) == 0);
  CHECK(r({"QUIT"}) == kOK);
}

TEST_CASE("redis_kv: AUTH with a password", "[redis_kv]") {
  redis_kv::options o;
  o.password = "secret";
  rig r(o);
  run(r, {
             {{"GET", "k"}, "-NOAUTH Authentication required.\r\n"},
             {{"PING"}, "-NOAUTH Authentication required.\r\n"},
             {{"FOO"}, "-ERR unknown command 'FOO', with args beginning with: \r\n"},
             {{"GET"}, "-ERR wrong number of arguments for 'get' command\r\n"},
             {{"HELLO", "3"},
              "-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH "
              "<user> <pass> option can be used to authenticate the client and select the RESP protocol version at "
              "the same time\r\n"},
             // A container's subcommand is checked before AUTH, as Redis does.
             {{"CLIENT", "FOO"}, "-ERR unknown subcommand 'FOO'. Try CLIENT HELP.\r\n"},
             {{"CLIENT", "ID", "x"}, "-ERR wrong number of arguments for 'client|id' command\r\n"},
             {{"COMMAND", "FOO"}, "-ERR unknown subcommand 'FOO'. Try COMMAND HELP.\r\n"},
             {{"CLIENT", "ID"}, "-NOAUTH Authentication required.\r\n"},
             {{"AUTH", "wrong"}, "-WRONGPASS invalid username-password pair or user is disabled.\r\n"},
             {{"AUTH", "other", "secret"}, "-WRONGPASS invalid username-password pair or user is disabled.\r\n"},
             {{"GET", "k"}, "-NOAUTH Authentication required.\r\n"},
             {{"AUTH", "secret"}, kOK},
             {{"GET", "k"}, kNull},
         });
  auto s2 = r.h->connect();
  CHECK(r.on(s2, {"SET", "k", "v"}) == "-NOAUTH Authentication required.\r\n");
  CHECK(r.on(s2, {"HELLO", "3", "AUTH", "default", "nope"}) ==
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
  CHECK(r.on(s2, {"HELLO", "3", "AUTH", "default", "secret", "SETNAME", "cli"}).rfind("%7\r\n", 0) == 0);
  CHECK(r.on(s2, {"CLIENT", "GETNAME"}) == "$3\r\ncli\r\n");
  CHECK(r.on(s2, {"GET", "k"}) == "_\r\n");
  auto s3 = r.h->connect();
  CHECK(r.on(s3, {"QUIT"}) == kOK);
}

TEST_CASE("redis_kv: the table's limits: value size, key size, capacity", "[redis_kv]") {
  rig r({}, 4, 16);
  const std::string big(17, 'x');
  const std::string too_large = "-ERR value too large for the table's value column (16 bytes)\r\n";
  const std::string long_key(64, 'k');
  run(r, {
             {{"SET", "k", big}, too_large},
             {{"EXISTS", "k"}, ":0\r\n"},
             {{"SET", "k", std::string(16, 'x')}, kOK},
             {{"APPEND", "k", "y"}, too_large},
             {{"STRLEN", "k"}, ":16\r\n"},
             {{"SETRANGE", "k", "16", "y"}, too_large},
             {{"MSET", "a", "1", "b", big}, too_large},
             {{"EXISTS", "a"}, ":0\r\n"},
             {{"HSET", "h", "field", "0123456789"}, too_large},
             {{"EXISTS", "h"}, ":0\r\n"},
             {{"SET", long_key, "v"}, "-ERR key too long: the table's keys are at most 63 bytes\r\n"},
             {{"SET", std::string(63, 'k'), "v"}, kOK},
             {{"SET", "c", "1"}, kOK},
             {{"SET", "d", "1"}, kOK},
         });
  CHECK(r.table.count() == 4);
  auto full = r({"SET", "e", "1"});
  CHECK(full.rfind("-OOM command not allowed: the table is full", 0) == 0);
  CHECK(r({"EXISTS", "e"}) == ":0\r\n");
  CHECK(r({"SET", "c", "2"}) == kOK);  // an update needs no new row
}

TEST_CASE("redis_kv: without a usable table every data command says why", "[redis_kv]") {
  kit::log_capture logs;
  {
    kit::module_harness<redis_kv> h;
    h.start();
    auto s = h.connect();
    CHECK(h.command(s, {"GET", "k"}).rfind("-ERR redis_kv: no usable table", 0) == 0);
    CHECK(h.command(s, {"PING"}) == "+PONG\r\n");
    CHECK(logs.contains("no table \"kv\""));
  }
  {
    auto t = make_table(16, 16, false);
    kit::module_harness<redis_kv> h;
    h.ctx().add_table("kv", t);
    h.start();
    auto s = h.connect();
    CHECK(h.command(s, {"SET", "k", "v"}).rfind("-ERR redis_kv: no usable table", 0) == 0);
    CHECK(logs.contains("column `expire` is string, expected int"));
  }
}

TEST_CASE("redis_kv: MULTI, EXEC, DISCARD and RESET answer as redis-server 7.0 does", "[redis_kv]") {
  rig r;
  // Every expected reply below is redis-server 7.0.15's for the same commands.
  run(r, {
             {{"EXEC"}, "-ERR EXEC without MULTI\r\n"},
             {{"DISCARD"}, "-ERR DISCARD without MULTI\r\n"},
             {{"MULTI"}, kOK},
             {{"MULTI"}, "-ERR MULTI calls can not be nested\r\n"},  // the transaction goes on
             {{"SET", "a", "1"}, "+QUEUED\r\n"},
             {{"INCR", "a"}, "+QUEUED\r\n"},
             {{"SET", "b", "x"}, "+QUEUED\r\n"},
             {{"INCR", "b"}, "+QUEUED\r\n"},
             {{"GET", "a"}, "+QUEUED\r\n"},
             {{"PING"}, "+QUEUED\r\n"},
             // An error of one command is its element; the others ran.
             {{"EXEC"}, "*6\r\n+OK\r\n:2\r\n+OK\r\n" + kNotInt + "$1\r\n2\r\n+PONG\r\n"},
             {{"EXEC"}, "-ERR EXEC without MULTI\r\n"},
             {{"MULTI"}, kOK},
             {{"EXEC"}, "*0\r\n"},
             // A refused command (unknown, arity, subcommand) makes EXEC abort; nothing runs.
             {{"MULTI"}, kOK},
             {{"SET", "a", "9"}, "+QUEUED\r\n"},
             {{"FOO"}, "-ERR unknown command 'FOO', with args beginning with: \r\n"},
             {{"GET"}, "-ERR wrong number of arguments for 'get' command\r\n"},
             {{"CLIENT", "FOO"}, "-ERR unknown subcommand 'FOO'. Try CLIENT HELP.\r\n"},
             {{"EXEC"}, "-EXECABORT Transaction discarded because of previous errors.\r\n"},
             {{"GET", "a"}, "$1\r\n2\r\n"},
             // A refused EXEC ends the transaction and says why.
             {{"MULTI"}, kOK},
             {{"EXEC", "x"}, "-EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command\r\n"},
             {{"EXEC"}, "-ERR EXEC without MULTI\r\n"},
             // DISCARD drops the queue; WATCH inside MULTI is refused without aborting.
             {{"MULTI"}, kOK},
             {{"SET", "a", "9"}, "+QUEUED\r\n"},
             {{"WATCH", "a"}, "-ERR WATCH inside MULTI is not allowed\r\n"},
             {{"DISCARD"}, kOK},
             {{"GET", "a"}, "$1\r\n2\r\n"},
             {{"MULTI"}, kOK},
             {{"WATCH", "a"}, "-ERR WATCH inside MULTI is not allowed\r\n"},
             {{"EXEC"}, "*0\r\n"},
             // Subscriptions and a protocol switch inside EXEC are refused (redis-server queues them).
             {{"MULTI"}, kOK},
             {{"SUBSCRIBE", "ch"}, "-ERR Command not allowed inside a transaction\r\n"},
             {{"HELLO", "3"}, "-ERR Command not allowed inside a transaction\r\n"},
             {{"EXEC"}, "-EXECABORT Transaction discarded because of previous errors.\r\n"},
             // PUBLISH is queued and runs in EXEC (one worker here: no subscriber, 0).
             {{"MULTI"}, kOK},
             {{"PUBLISH", "ch", "x"}, "+QUEUED\r\n"},
             {{"PUBLISH", "ch"}, "-ERR wrong number of arguments for 'publish' command\r\n"},
             {{"DISCARD"}, kOK},
             {{"MULTI"}, kOK},
             {{"PUBLISH", "ch", "x"}, "+QUEUED\r\n"},
             {{"INCR", "a"}, "+QUEUED\r\n"},
             {{"EXEC"}, "*2\r\n:0\r\n:3\r\n"},
             // RESET ends a transaction at once, inside MULTI too.
             {{"MULTI"}, kOK},
             {{"UNWATCH"}, "+QUEUED\r\n"},
             {{"RESET"}, "+RESET\r\n"},
             {{"EXEC"}, "-ERR EXEC without MULTI\r\n"},
         });
  // RESET after HELLO 3 and a name: RESP2 again, no name.
  CHECK(r({"HELLO", "3", "SETNAME", "x"}).rfind("%7\r\n", 0) == 0);
  CHECK(r({"MULTI"}) == kOK);
  CHECK(r({"HGETALL", "nokey"}) == "+QUEUED\r\n");
  CHECK(r({"GET", "nokey"}) == "+QUEUED\r\n");
  CHECK(r({"EXEC"}) == "*2\r\n%0\r\n_\r\n");  // RESP3 elements
  CHECK(r({"RESET"}) == "+RESET\r\n");
  CHECK(r({"CLIENT", "GETNAME"}) == kNull);
  CHECK(r({"GET", "nokey"}) == kNull);
}

TEST_CASE("redis_kv: WATCH aborts EXEC when a watched key changed", "[redis_kv]") {
  rig r;
  auto other = r.h->connect();
  run(r, {
             {{"SET", "w", "1"}, kOK},
             {{"WATCH", "w", "absent"}, kOK},
             {{"MULTI"}, kOK},
             {{"GET", "w"}, "+QUEUED\r\n"},
             {{"EXEC"}, "*1\r\n$1\r\n1\r\n"},  // nothing changed
         });
  // Another connection changes a watched key between WATCH and EXEC: EXEC answers a null
  // array and runs nothing; EXEC unwatched everything.
  CHECK(r({"WATCH", "w"}) == kOK);
  CHECK(r.on(other, {"SET", "w", "2"}) == kOK);
  CHECK(r({"MULTI"}) == kOK);
  CHECK(r({"SET", "w", "mine"}) == "+QUEUED\r\n");
  CHECK(r({"EXEC"}) == "*-1\r\n");
  CHECK(r({"GET", "w"}) == "$1\r\n2\r\n");
  // A key that did not exist and then does; its expiry set; its type changed: each aborts.
  for (std::vector<std::string> change : {std::vector<std::string>{"SET", "absent", "now"},
                                          std::vector<std::string>{"EXPIRE", "w", "100"},
                                          std::vector<std::string>{"HSET", "w2", "f", "v"}}) {
    INFO(show(change));
    CHECK(r({"WATCH", "absent", "w", "w2"}) == kOK);
    CHECK(r.on(other, change) != "");
    CHECK(r({"MULTI"}) == kOK);
    CHECK(r({"PING"}) == "+QUEUED\r\n");
    CHECK(r({"EXEC"}) == "*-1\r\n");
  }
  // UNWATCH forgets; a change after it does not abort.
  CHECK(r({"WATCH", "w"}) == kOK);
  CHECK(r({"UNWATCH"}) == kOK);
  CHECK(r.on(other, {"SET", "w", "3"}) == kOK);
  CHECK(r({"MULTI"}) == kOK);
  CHECK(r({"GET", "w"}) == "+QUEUED\r\n");
  CHECK(r({"EXEC"}) == "*1\r\n$1\r\n3\r\n");
  // A change on the watching connection itself aborts too (redis-server: any write).
  CHECK(r({"WATCH", "w"}) == kOK);
  CHECK(r({"SET", "w", "4"}) == kOK);
  CHECK(r({"MULTI"}) == kOK);
  CHECK(r({"EXEC"}) == "*-1\r\n");
}

TEST_CASE("redis_kv: a transaction larger than multi_max_bytes is refused", "[redis_kv]") {
  redis_kv::options o;
  o.multi_max_bytes = 1024;
  rig r(o);
  CHECK(r({"MULTI"}) == kOK);
  CHECK(r({"SET", "a", std::string(600, 'x')}) == "+QUEUED\r\n");
  CHECK(r({"SET", "b", std::string(600, 'y')}) ==
        "-ERR the transaction is too large: redis_kv holds at most 1024 bytes of queued commands and watched "
        "keys per connection (the module's multi_max_bytes)\r\n");
  CHECK(r({"EXEC"}) == "-EXECABORT Transaction discarded because of previous errors.\r\n");
  CHECK(r({"EXISTS", "a", "b"}) == ":0\r\n");
  // Watched keys count against the same budget (a key's name and its bookkeeping).
  std::vector<std::string> watch{"WATCH"};
  for (int i = 0; i < 40; ++i) watch.push_back("key:" + std::to_string(i));
  CHECK(r(watch).rfind("-ERR too many watched keys: redis_kv holds at most 1024 bytes", 0) == 0);
  CHECK(r({"UNWATCH"}) == kOK);
  // An EXEC whose replies pass multi_max_reply runs every command, answers an error instead
  // of the array and closes the connection.
  redis_kv::options big;
  big.multi_max_reply = 1024;
  rig b(big);
  CHECK(b({"SET", "v", std::string(100, 'v')}) == kOK);
  CHECK(b({"MULTI"}) == kOK);
  for (int i = 0; i < 12; ++i) CHECK(b({"GET", "v"}) == "+QUEUED\r\n");
  CHECK(b({"INCR", "n"}) == "+QUEUED\r\n");
  CHECK(b({"EXEC"}) ==
        "-ERR the replies of this EXEC exceed redis_kv's multi_max_reply (1024 bytes): every command ran; closing "
        "the connection\r\n");
  auto s2 = b.h->connect();
  CHECK(b.on(s2, {"GET", "n"}) == "$1\r\n1\r\n");  // the last command ran
  // MULTI needs authentication like any command; queued commands are checked for it.
  redis_kv::options p;
  p.password = "pw";
  rig q(p);
  CHECK(q({"MULTI"}) == "-NOAUTH Authentication required.\r\n");
  // A refused EXEC is worded for EXEC, in or out of MULTI (redis-server's rejectCommand).
  CHECK(q({"EXEC"}) == "-EXECABORT Transaction discarded because of: NOAUTH Authentication required.\r\n");
  CHECK(q({"RESET"}) == "+RESET\r\n");  // allowed before AUTH, as in redis-server
  CHECK(r({"EXEC", "x"}) ==
        "-EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command\r\n");
}

TEST_CASE("redis_kv: WATCH needs a single worker", "[redis_kv]") {
  rig r;
  r.h->ctx().set_workers(2);
  CHECK(r({"WATCH", "k"}) ==
        "-ERR WATCH needs a single worker with redis_kv (this server has 2): another worker's write could land "
        "between EXEC's check and its commands\r\n");
  // MULTI/EXEC without WATCH works with any number of workers.
  CHECK(r({"MULTI"}) == kOK);
  CHECK(r({"INCR", "k"}) == "+QUEUED\r\n");
  CHECK(r({"EXEC"}) == "*1\r\n:1\r\n");
}

TEST_CASE("redis_kv: options", "[redis_kv]") {
  CHECK(kit::option_errors<redis_kv>(kit::toml_text{"table = \"t\"\npassword = \"p\"\nsweep_interval = \"1s\"\nsweep_keys = 50"})
            .empty());
  CHECK_FALSE(kit::option_errors<redis_kv>(kit::toml_text{"sweep_keys = 0"}).empty());
  CHECK_FALSE(kit::option_errors<redis_kv>(kit::toml_text{"nope = 1"}).empty());
}
