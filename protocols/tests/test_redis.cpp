// The RESP codec on byte strings: commands whole and split at every byte, each protocol
// error with redis-server 7.0's text, HELLO and the RESP3 flag, replies in order with a
// held error after them; split_multibulk/split_inline; the writer in RESP2 and RESP3.
#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "swactor/protocols/redis.hpp"

namespace redis = swactor::protocols::redis;
using swactor::protocols::event;
using swactor::protocols::stream_codec;

using namespace std::string_literals;

namespace {

constexpr std::uint8_t k_command = 48, k_inline = 49, k_command3 = 52, k_inline3 = 53;
constexpr auto reply = static_cast<std::uint8_t>(redis::out::reply);

struct collected {
  std::uint8_t kind;
  std::string data;
  bool operator==(const collected&) const = default;
};

struct sink final : swactor::protocols::event_sink {
  std::vector<collected> events;
  std::size_t stop_after = 0;  // 0 = never stop
  bool on_event(const event& e) override {
    events.push_back({e.kind, std::string(e.data)});
    return stop_after == 0 || events.size() % stop_after != 0;
  }
};

struct outcome {
  std::vector<collected> events;
  std::string output;
  std::string pending;  // bytes not consumed
  bool failed = false;
  bool done = false;
  std::string reason;
};

// Feeds `stream` `step` bytes at a time (0 = all at once), the way a connection does:
// unconsumed bytes are presented again with the new ones appended.
outcome feed(std::string_view stream, std::size_t step, const redis::options& o = {}) {
  auto codec = redis::make_server_codec(o);
  sink s;
  outcome r;
  std::size_t at = 0;
  while (at < stream.size()) {
    auto n = step ? std::min(step, stream.size() - at) : stream.size() - at;
    r.pending.append(stream.substr(at, n));
    at += n;
    auto used = codec->decode(r.pending, s);
    REQUIRE(used <= r.pending.size());
    r.pending.erase(0, used);
    codec->take_output(r.output);
    if (codec->failed()) break;
  }
  r.events = s.events;
  r.failed = codec->failed();
  r.done = codec->done();
  r.reason = codec->reason();
  return r;
}

std::string mbulk(std::initializer_list<std::string_view> args) {
  std::string s = "*" + std::to_string(args.size()) + "\r\n";
  for (auto a : args) {
    s += "$" + std::to_string(a.size()) + "\r\n";
    s.append(a);
    s += "\r\n";
  }
  return s;
}

std::vector<std::string> args_of(const collected& e) {
  std::vector<std::string> out;
  if (e.kind == k_command || e.kind == k_command3) {
    std::vector<std::string_view> v;
    REQUIRE(redis::split_multibulk(e.data, v));
    for (auto a : v) out.emplace_back(a);
  } else {
    auto v = redis::split_inline(e.data);
    REQUIRE(v);
    out = *v;
  }
  return out;
}

}  // namespace

TEST_CASE("redis: a multibulk command is one event with its raw bytes", "[redis]") {
  auto cmd = mbulk({"SET", "key", "va\r\nl\0ue"s});
  auto r = feed(cmd, 0);
  REQUIRE(r.events.size() == 1);
  CHECK(r.events[0].kind == k_command);
  CHECK(r.events[0].data == cmd);
  CHECK(r.pending.empty());
  CHECK(args_of(r.events[0]) == std::vector<std::string>{"SET", "key", "va\r\nl\0ue"s});
  CHECK_FALSE(r.failed);
}

TEST_CASE("redis: an inline command is its line without the line end", "[redis]") {
  auto r = feed("SET a \"b c\"\r\nGET a\nPING\r\r\n", 0);
  REQUIRE(r.events.size() == 3);
  CHECK(r.events[0] == collected{k_inline, "SET a \"b c\""});
  CHECK(r.events[1] == collected{k_inline, "GET a"});
  CHECK(r.events[2] == collected{k_inline, "PING\r"});  // only one CR is stripped, as Redis does
  CHECK(args_of(r.events[0]) == std::vector<std::string>{"SET", "a", "b c"});
  CHECK(args_of(r.events[2]) == std::vector<std::string>{"PING"});
}

TEST_CASE("redis: empty commands are skipped and consumed", "[redis]") {
  auto r = feed("\r\n   \t\r\n\n*0\r\n*-1\r\n" + mbulk({"PING"}), 0);
  REQUIRE(r.events.size() == 1);
  CHECK(r.events[0].data == mbulk({"PING"}));
  CHECK(r.pending.empty());
  CHECK_FALSE(r.failed);
}

TEST_CASE("redis: pipelined commands split at every byte give the same events", "[redis]") {
  std::string stream = mbulk({"SET", "k", std::string(300, 'x')}) + "PING\r\n" +
                       mbulk({"GET", "k"}) + "\r\n*0\r\n" + "ECHO \"a\\x41\\n\" 'b\\'c'\n" +
                       mbulk({"", "\r\n"}) + mbulk({"DEL", "a", "b", "c"}) + "*1\r\n$4\r\nPI";
  auto whole = feed(stream, 0);
  REQUIRE(whole.events.size() == 6);
  CHECK(whole.pending == "*1\r\n$4\r\nPI");
  CHECK(args_of(whole.events[3]) == std::vector<std::string>{"ECHO", "aA\n", "b'c"});
  CHECK(args_of(whole.events[4]) == std::vector<std::string>{"", "\r\n"});
  for (std::size_t step : {1, 2, 3, 7, 64}) {
    INFO("step " << step);
    auto split = feed(stream, step);
    CHECK(split.events == whole.events);
    CHECK(split.pending == whole.pending);
    CHECK_FALSE(split.failed);
  }
}

TEST_CASE("redis: the sink stops decoding after the event it refuses", "[redis]") {
  auto codec = redis::make_server_codec({});
  sink s;
  s.stop_after = 1;
  std::string in = mbulk({"A"}) + "B\r\n" + mbulk({"C"});
  auto used = codec->decode(in, s);
  CHECK(used == mbulk({"A"}).size());
  REQUIRE(s.events.size() == 1);
  in.erase(0, used);
  used = codec->decode(in, s);
  CHECK(used == 3);
  in.erase(0, used);
  CHECK(codec->decode(in, s) == in.size());
  CHECK(s.events.size() == 3);
  CHECK(codec->outstanding() == 3);
}

TEST_CASE("redis: a bulk's two trailing bytes are skipped unchecked, as Redis does", "[redis]") {
  // Redis reads "\r" + any byte as a header line end and skips the two bytes after a bulk.
  std::string odd = "*2\rx$4\ryPINGab$1\r\nzcd";
  auto r = feed(odd, 0);
  REQUIRE(r.events.size() == 1);
  CHECK(r.events[0].data == odd);
  CHECK(args_of(r.events[0]) == std::vector<std::string>{"PING", "z"});
  CHECK(feed(odd, 1).events == r.events);
}

TEST_CASE("redis: a large bulk fed in pieces is one command", "[redis]") {
  std::string big(3 * 1024 * 1024 + 17, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 31 + 7);
  auto cmd = mbulk({"SET", "big", big});
  auto stream = cmd + mbulk({"GET", "big"});
  auto r = feed(stream, 4096);
  REQUIRE(r.events.size() == 2);
  CHECK(r.events[0].data == cmd);
  auto args = args_of(r.events[0]);
  REQUIRE(args.size() == 3);
  CHECK(args[2] == big);
  CHECK(r.pending.empty());
}

TEST_CASE("redis: a partial command consumes nothing", "[redis]") {
  auto cmd = mbulk({"SET", "k", "value"});
  for (std::size_t n = 0; n < cmd.size(); ++n) {
    auto codec = redis::make_server_codec({});
    sink s;
    CHECK(codec->decode(std::string_view(cmd).substr(0, n), s) == 0);
    CHECK(s.events.empty());
    CHECK_FALSE(codec->failed());
  }
}

TEST_CASE("redis: protocol errors carry redis-server's texts", "[redis]") {
  redis::options small;
  small.max_inline_len = 16;
  small.max_bulk_len = 100;
  small.max_multibulk_len = 10;
  struct row {
    std::string in;
    redis::options opts;
    std::string text;
  };
  const std::vector<row> rows = {
      {std::string(64 * 1024 + 1, 'a'), {}, "too big inline request"},
      {std::string(17, 'a'), small, "too big inline request"},
      {"SET \"a\r\n", {}, "unbalanced quotes in request"},
      {"SET 'a\n", {}, "unbalanced quotes in request"},
      {"SET \"a\"b\r\n", {}, "unbalanced quotes in request"},
      {"SET 'a'b\r\n", {}, "unbalanced quotes in request"},
      {"SET \"a\\\"\r\n", {}, "unbalanced quotes in request"},
      {"*" + std::string(16, '1'), small, "too big mbulk count string"},
      {"*" + std::string(64 * 1024, '1'), {}, "too big mbulk count string"},
      {"*abc\r\n", {}, "invalid multibulk length"},
      {"*\r\n", {}, "invalid multibulk length"},
      {"*+1\r\n", {}, "invalid multibulk length"},
      {"*01\r\n", {}, "invalid multibulk length"},
      {"*-0\r\n", {}, "invalid multibulk length"},
      {"*1 \r\n", {}, "invalid multibulk length"},
      {"*2147483648\r\n", {}, "invalid multibulk length"},
      {"*99999999999999999999\r\n", {}, "invalid multibulk length"},
      {"*11\r\n", small, "invalid multibulk length"},
      {"*1\r\nX3\r\nfoo\r\n", {}, "expected '$', got 'X'"},
      {"*2\r\n$1\r\na\r\n:1\r\n", {}, "expected '$', got ':'"},
      {"*1\r\n\r\n", {}, "expected '$', got ' '"},  // line ends in errors become spaces
      {"*1\r\n$" + std::string(16, '1'), small, "too big bulk count string"},
      {"*1\r\n$" + std::string(64 * 1024, '1'), {}, "too big bulk count string"},
      {"*1\r\n$-1\r\n", {}, "invalid bulk length"},
      {"*1\r\n$\r\n", {}, "invalid bulk length"},
      {"*1\r\n$x\r\n", {}, "invalid bulk length"},
      {"*1\r\n$01\r\n", {}, "invalid bulk length"},
      {"*1\r\n$101\r\n", small, "invalid bulk length"},
      {"*1\r\n$536870913\r\n", {}, "invalid bulk length"},
  };
  for (const auto& row : rows) {
    for (std::size_t step : {0, 1}) {
      INFO(row.in.substr(0, 40) << " step " << step);
      auto r = feed(row.in, step, row.opts);
      CHECK(r.events.empty());
      CHECK(r.failed);
      CHECK(r.done);
      CHECK(r.reason == "Protocol error: " + row.text);
      CHECK(r.output == "-ERR Protocol error: " + row.text + "\r\n");
    }
  }
}

TEST_CASE("redis: limits are inclusive like Redis's", "[redis]") {
  redis::options o;
  o.max_inline_len = 16;
  o.max_bulk_len = 5;
  o.max_multibulk_len = 2;
  // Exactly max_inline_len pending without a line end waits; the line may then complete.
  auto r = feed(std::string(16, 'a') + "\n", 1, o);
  CHECK_FALSE(r.failed);
  REQUIRE(r.events.size() == 1);
  // A line end arriving with the rest is fine even when the line is longer (Redis checks
  // the limit only while no line end is there).
  r = feed(std::string(40, 'a') + "\n", 0, o);
  CHECK_FALSE(r.failed);
  CHECK(r.events.size() == 1);
  r = feed(mbulk({"ab", "12345"}), 0, o);
  CHECK_FALSE(r.failed);
  CHECK(r.events.size() == 1);
}

TEST_CASE("redis: a NUL byte hides the line end, as strchr does in Redis", "[redis]") {
  redis::options o;
  o.max_inline_len = 32;
  auto r = feed("PI\0NG\r\nPING\r\n"s, 0, o);
  CHECK(r.events.empty());
  CHECK_FALSE(r.failed);
  r = feed("PI\0NG\r\nPING\r\n"s + std::string(40, 'x'), 1, o);
  CHECK(r.failed);
  CHECK(r.reason == "Protocol error: too big inline request");
  // In a bulk's data a NUL is just data.
  r = feed(mbulk({"a\0b"s}), 1, o);
  CHECK(r.events.size() == 1);
}

TEST_CASE("redis: a held protocol error goes out after the earlier replies", "[redis]") {
  auto codec = redis::make_server_codec({});
  sink s;
  std::string in = mbulk({"PING"}) + "PING\r\n*x\r\n" + mbulk({"NEVER"});
  auto used = codec->decode(in, s);
  CHECK(used == mbulk({"PING"}).size() + 6);
  CHECK(s.events.size() == 2);
  CHECK(codec->failed());
  CHECK(codec->reason() == "Protocol error: invalid multibulk length");
  CHECK_FALSE(codec->done());
  CHECK(codec->blocked());
  CHECK(codec->outstanding() == 2);
  std::string out;
  CHECK_FALSE(codec->take_output(out));
  CHECK(codec->decode(std::string_view(in).substr(used), s) == 0);  // errors are sticky
  CHECK(s.events.size() == 2);

  std::string wire;
  codec->encode(reply, "+PONG\r\n", wire);
  CHECK_FALSE(codec->take_output(wire));
  CHECK_FALSE(codec->done());
  codec->encode(reply, "+PONG\r\n", wire);
  CHECK(codec->take_output(wire));
  CHECK(wire == "+PONG\r\n+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n");
  CHECK(codec->done());
  CHECK(codec->outstanding() == 0);
  // Nothing follows the last words.
  codec->encode(reply, "+LATE\r\n", wire);
  CHECK(wire == "+PONG\r\n+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n");
}

TEST_CASE("redis: outstanding counts commands minus replies, raw and push do not count", "[redis]") {
  auto codec = redis::make_server_codec({});
  sink s;
  std::string in = "A\r\nB\r\nC\r\n" + mbulk({"D"});
  CHECK(codec->decode(in, s) == in.size());
  CHECK(codec->outstanding() == 4);
  std::string wire;
  codec->encode(static_cast<std::uint8_t>(redis::out::raw), "+raw\r\n", wire);
  codec->encode(static_cast<std::uint8_t>(redis::out::push), ">2\r\n$1\r\na\r\n$1\r\nb\r\n", wire);
  CHECK(codec->outstanding() == 4);
  codec->encode(reply, ":1\r\n", wire);
  CHECK(codec->outstanding() == 3);
  codec->encode(static_cast<std::uint8_t>(redis::out::reply_resp2), ":2\r\n", wire);
  codec->encode(static_cast<std::uint8_t>(redis::out::reply_resp3), ":3\r\n", wire);
  CHECK(codec->outstanding() == 1);
  CHECK_FALSE(codec->done());
  codec->encode(static_cast<std::uint8_t>(redis::out::reply_close), "+OK\r\n", wire);
  CHECK(codec->outstanding() == 0);
  CHECK(codec->done());
  CHECK(wire == "+raw\r\n>2\r\n$1\r\na\r\n$1\r\nb\r\n:1\r\n:2\r\n:3\r\n+OK\r\n");
  CHECK(codec->decode("PING\r\n", s) == 0);  // closing: nothing more is read
  CHECK(s.events.size() == 4);
}

TEST_CASE("redis: reply_close ends the connection after its reply", "[redis]") {
  auto codec = redis::make_server_codec({});
  sink s;
  std::string in = "QUIT\r\nPING\r\n";
  // Nothing after a QUIT is decoded until it is answered (redis-server runs nothing
  // pipelined behind it).
  CHECK(codec->decode(in, s) == 6);
  CHECK(s.events.size() == 1);
  CHECK(codec->blocked());
  std::string wire;
  codec->encode(static_cast<std::uint8_t>(redis::out::reply_close), "+OK\r\n", wire);
  CHECK(codec->done());
  codec->encode(reply, "+PONG\r\n", wire);
  CHECK(wire == "+OK\r\n");
  CHECK(codec->decode(std::string_view(in).substr(6), s) == 0);
  CHECK(s.events.size() == 1);
}

TEST_CASE("redis: a QUIT answered with a plain reply lets decoding go on", "[redis]") {
  auto codec = redis::make_server_codec({});
  sink s;
  std::string in = mbulk({"quit"}) + "PING\r\n";
  CHECK(codec->decode(in, s) == 14);
  CHECK(codec->blocked());
  std::string wire;
  codec->encode(reply, "-ERR not now\r\n", wire);
  CHECK_FALSE(codec->blocked());
  CHECK(codec->decode(std::string_view(in).substr(14), s) == 6);
  CHECK(s.events.size() == 2);
}

TEST_CASE("redis: HELLO blocks decoding until answered and sets the protocol", "[redis]") {
  auto codec = redis::make_server_codec({});
  sink s;
  std::string in = "PING\r\nhello 3\r\nPING\r\n" + mbulk({"HeLLo", "2"}) + mbulk({"GET", "k"});
  auto used = codec->decode(in, s);
  CHECK(used == 6 + 9);
  REQUIRE(s.events.size() == 2);
  CHECK(s.events[1] == collected{k_inline, "hello 3"});
  CHECK(codec->blocked());
  CHECK(codec->outstanding() == 2);
  in.erase(0, used);
  CHECK(codec->decode(in, s) == 0);  // still blocked: decode emits nothing
  CHECK(s.events.size() == 2);

  std::string wire;
  codec->encode(reply, "+PONG\r\n", wire);
  CHECK(codec->blocked());  // the HELLO is not answered yet
  codec->encode(static_cast<std::uint8_t>(redis::out::reply_resp3), "%0\r\n", wire);
  CHECK_FALSE(codec->blocked());
  CHECK(codec->outstanding() == 0);

  used = codec->decode(in, s);
  REQUIRE(s.events.size() == 4);
  CHECK(s.events[2] == collected{k_inline3, "PING"});
  CHECK(s.events[3].kind == k_command3);
  CHECK(args_of(s.events[3]) == std::vector<std::string>{"HeLLo", "2"});
  CHECK(codec->blocked());
  in.erase(0, used);
  codec->encode(reply, "+PONG\r\n", wire);
  codec->encode(static_cast<std::uint8_t>(redis::out::reply_resp2), "*0\r\n", wire);
  CHECK_FALSE(codec->blocked());
  CHECK(codec->decode(in, s) == in.size());
  REQUIRE(s.events.size() == 5);
  CHECK(s.events[4].kind == k_command);
  CHECK(wire == "+PONG\r\n%0\r\n+PONG\r\n*0\r\n");
}

TEST_CASE("redis: only HELLO, RESET and QUIT block, quoted or not", "[redis]") {
  auto blocks = [](std::string in) {
    auto codec = redis::make_server_codec({});
    sink s;
    in += "PING\r\n";
    codec->decode(in, s);
    return codec->blocked() && s.events.size() == 1;
  };
  CHECK(blocks("HELLO\r\n"));
  CHECK(blocks("\"hello\" 3\r\n"));
  CHECK(blocks("  HeLlO 3 AUTH a b\r\n"));
  CHECK(blocks(mbulk({"hello"})));
  // RESET switches back to RESP2: what follows it carries the protocol it chose.
  CHECK(blocks("RESET\r\n"));
  CHECK(blocks("reset\r\n"));
  CHECK(blocks(mbulk({"ReSeT"})));
  CHECK(blocks("QUIT\r\n"));
  CHECK_FALSE(blocks("RESETS\r\n"));
  CHECK_FALSE(blocks(mbulk({"rese"})));
  CHECK_FALSE(blocks("HELLOX 3\r\n"));
  CHECK_FALSE(blocks("HELL\r\n"));
  CHECK_FALSE(blocks("ECHO hello\r\n"));
  CHECK_FALSE(blocks(mbulk({"ECHO", "hello"})));
  CHECK_FALSE(blocks(mbulk({"hellos"})));
}

TEST_CASE("redis: a HELLO answered from inside the sink does not block", "[redis]") {
  auto codec = redis::make_server_codec({});
  struct answering final : swactor::protocols::event_sink {
    stream_codec* c = nullptr;
    std::vector<collected> events;
    std::string wire;
    bool on_event(const event& e) override {
      events.push_back({e.kind, std::string(e.data)});
      c->encode(static_cast<std::uint8_t>(redis::out::reply_resp3), "+OK\r\n", wire);
      return true;
    }
  } s;
  s.c = codec.get();
  std::string in = "HELLO 3\r\nPING\r\n";
  // Answered at once: the PING after it is decoded in the same call, already in RESP3.
  CHECK(codec->decode(in, s) == in.size());
  CHECK_FALSE(codec->blocked());
  REQUIRE(s.events.size() == 2);
  CHECK(s.events[1].kind == k_inline3);
}

TEST_CASE("redis: abandon answers every outstanding command and ends", "[redis]") {
  auto codec = redis::make_server_codec({});
  sink s;
  codec->decode("A\r\nB\r\n", s);
  std::string out;
  codec->abandon(out);
  CHECK(out == "-ERR the worker handling this command went away\r\n"
               "-ERR the worker handling this command went away\r\n");
  CHECK(codec->outstanding() == 0);
  CHECK(codec->done());
  CHECK(codec->name() == "redis");

  // A held protocol error follows the answers.
  codec = redis::make_server_codec({});
  codec->decode("A\r\n*x\r\n", s);
  out.clear();
  codec->abandon(out);
  CHECK(out == "-ERR the worker handling this command went away\r\n"
               "-ERR Protocol error: invalid multibulk length\r\n");
  CHECK(codec->done());
}

TEST_CASE("redis: split_inline follows sdssplitargs", "[redis]") {
  using v = std::vector<std::string>;
  struct row {
    std::string in;
    std::optional<v> args;
  };
  const std::vector<row> rows = {
      {"", v{}},
      {"   \t ", v{}},
      {"a b  c", v{"a", "b", "c"}},
      {"\"a b\" c", v{"a b", "c"}},
      {"\"\\n\\r\\t\\b\\a\\\\\\\"\\q\"", v{"\n\r\t\b\a\\\"q"}},
      {"\"\\x41\\x7a\\xff\\x0\"", v{"Az\xff" "x0"}},
      {"\"\\x4g\"", v{"x4g"}},
      {"'a\\'b' 'c\\n'", v{"a'b", "c\\n"}},
      {"\"\" ''", v{"", ""}},
      {"a\"b c\"d", std::nullopt},      // a closing quote must be followed by a space
      {"a\"b c\" d", v{"ab c", "d"}},   // quotes may start inside an argument
      {"\"a\"\tb", v{"a", "b"}},
      {"\"a\"\vb", v{"a", "b"}},        // \v is a space after a quote ...
      {"a\vb", v{"a\vb"}},              // ... but does not end an unquoted argument
      {"\"abc", std::nullopt},
      {"'abc", std::nullopt},
      {"\"abc\\\"", std::nullopt},
      {"'a'b", std::nullopt},
      {"\"a\\", std::nullopt},
      {"a\0b c"s, v{"a"}},              // a C string: the NUL ends it
  };
  for (const auto& r : rows) {
    INFO(r.in);
    CHECK(redis::split_inline(r.in) == r.args);
  }
}

TEST_CASE("redis: split_multibulk refuses what is not one complete command", "[redis]") {
  std::vector<std::string_view> args;
  const auto cmd = mbulk({"a", "bc"});  // args are views into it
  CHECK(redis::split_multibulk(cmd, args));
  CHECK(args == std::vector<std::string_view>{"a", "bc"});
  CHECK_FALSE(redis::split_multibulk("", args));
  CHECK(args.empty());
  CHECK_FALSE(redis::split_multibulk("PING\r\n", args));
  CHECK_FALSE(redis::split_multibulk("*2\r\n$1\r\na\r\n", args));
  CHECK_FALSE(redis::split_multibulk(mbulk({"a"}) + "x", args));
  CHECK_FALSE(redis::split_multibulk("*1\r\n$2\r\na\r\n", args));
  CHECK_FALSE(redis::split_multibulk("*1\r\n$-1\r\n", args));
  CHECK_FALSE(redis::split_multibulk("*1000000\r\n$1\r\na\r\n", args));
  CHECK_FALSE(redis::split_multibulk("*1\r\n:1\r\n", args));
}

TEST_CASE("redis: first_args reads the leading arguments only", "[redis]") {
  std::array<std::string_view, 2> a;
  auto raw = mbulk({"GET", "key:1", "extra"});
  CHECK(redis::first_args(raw, a) == 2);
  CHECK(a[0] == "GET");
  CHECK(a[1] == "key:1");
  CHECK(redis::first_args(mbulk({"PING"}), a) == 1);
  CHECK(redis::first_args("PING", a) == 0);
  CHECK(redis::first_args("*2\r\n$3\r\nGET\r\n$9\r\nke", a) == 1);  // cut: what is whole
  CHECK(redis::first_args("*0\r\n", a) == 0);
}

TEST_CASE("redis: the look-ahead announces a pipelined batch before its events", "[redis]") {
  struct ahead_sink final : swactor::protocols::event_sink {
    std::vector<std::vector<std::string>> batches;
    std::vector<std::string> events;
    bool on_event(const event& e) override {
      events.emplace_back(e.data);
      return true;
    }
    void on_ahead(std::span<const event> upcoming) override {
      CHECK(events.size() % 16 == 0);  // at the start of a batch, before its commands
      auto& b = batches.emplace_back();
      for (const auto& e : upcoming) {
        CHECK(e.kind == k_command);
        b.emplace_back(e.data);
      }
    }
  };
  std::string in;
  for (int i = 0; i < 20; ++i) in += mbulk({"GET", "k" + std::to_string(i)});
  in += "*2\r\n$3\r\nGET\r\n$2\r\nk";  // incomplete: neither announced nor emitted
  auto codec = redis::make_server_codec({});
  ahead_sink s;
  auto used = codec->decode(in, s);
  CHECK(used == in.size() - 18);
  REQUIRE(s.events.size() == 20);
  REQUIRE(s.batches.size() == 2);  // 16 at most at once, then the 4 left
  CHECK(s.batches[0].size() == 16);
  CHECK(s.batches[1].size() == 4);
  for (std::size_t i = 0; i < 16; ++i) CHECK(s.batches[0][i] == s.events[i]);
  // One command alone gains nothing from a hint: not announced.
  ahead_sink one;
  auto c2 = redis::make_server_codec({});
  c2->decode(mbulk({"GET", "k"}), one);
  CHECK(one.batches.empty());
  CHECK(one.events.size() == 1);
}

TEST_CASE("redis: the writer in RESP2 and RESP3", "[redis]") {
  auto both = [](auto&& f) {
    std::string two, three;
    redis::writer w2(two, 2), w3(three, 3);
    CHECK_FALSE(w2.resp3());
    CHECK(w3.resp3());
    f(w2);
    f(w3);
    return std::pair{two, three};
  };
  using p = std::pair<std::string, std::string>;
  CHECK(both([](auto& w) { w.status("OK"); }) == p{"+OK\r\n", "+OK\r\n"});
  CHECK(both([](auto& w) { w.status("a\r\nb"); }) == p{"+a  b\r\n", "+a  b\r\n"});
  CHECK(both([](auto& w) { w.error("ERR no\nway"); }) == p{"-ERR no way\r\n", "-ERR no way\r\n"});
  CHECK(both([](auto& w) { w.integer(-42); }) == p{":-42\r\n", ":-42\r\n"});
  CHECK(both([](auto& w) { w.integer(std::numeric_limits<long long>::min()); }) ==
        p{":-9223372036854775808\r\n", ":-9223372036854775808\r\n"});
  CHECK(both([](auto& w) { w.bulk("foo"); }) == p{"$3\r\nfoo\r\n", "$3\r\nfoo\r\n"});
  CHECK(both([](auto& w) { w.bulk(""); }) == p{"$0\r\n\r\n", "$0\r\n\r\n"});
  CHECK(both([](auto& w) { w.null(); }) == p{"$-1\r\n", "_\r\n"});
  CHECK(both([](auto& w) { w.null_array(); }) == p{"*-1\r\n", "_\r\n"});
  CHECK(both([](auto& w) { w.array(3); }) == p{"*3\r\n", "*3\r\n"});
  CHECK(both([](auto& w) { w.map(2); }) == p{"*4\r\n", "%2\r\n"});
  CHECK(both([](auto& w) { w.set(5); }) == p{"*5\r\n", "~5\r\n"});
  CHECK(both([](auto& w) { w.push(3); }) == p{"*3\r\n", ">3\r\n"});
  CHECK(both([](auto& w) { w.dbl(1.5); }) == p{"$3\r\n1.5\r\n", ",1.5\r\n"});
  CHECK(both([](auto& w) { w.dbl(0.1); }) ==
        p{"$19\r\n0.10000000000000001\r\n", ",0.10000000000000001\r\n"});
  // "%.17g", as Redis 7.0 formats doubles, is the reference.
  for (double d : {1e300, -2.5e-310, 123456789.125, 1.0 / 3, 5e-324, 1e17, 1e16, -0.0}) {
    char buf[64];
    int n = std::snprintf(buf, sizeof buf, "%.17g", d);
    std::string text(buf, static_cast<std::size_t>(n));
    INFO(text);
    CHECK(both([d](auto& w) { w.dbl(d); }) ==
          p{"$" + std::to_string(text.size()) + "\r\n" + text + "\r\n", "," + text + "\r\n"});
  }
  CHECK(both([](auto& w) { w.dbl(-3.0); }) == p{"$2\r\n-3\r\n", ",-3\r\n"});
  CHECK(both([](auto& w) { w.dbl(std::numeric_limits<double>::infinity()); }) ==
        p{"$3\r\ninf\r\n", ",inf\r\n"});
  CHECK(both([](auto& w) { w.dbl(-std::numeric_limits<double>::infinity()); }) ==
        p{"$4\r\n-inf\r\n", ",-inf\r\n"});
  CHECK(both([](auto& w) { w.dbl(std::nan("")); }) == p{"$3\r\nnan\r\n", ",nan\r\n"});
  CHECK(both([](auto& w) { w.boolean(true); }) == p{":1\r\n", "#t\r\n"});
  CHECK(both([](auto& w) { w.boolean(false); }) == p{":0\r\n", "#f\r\n"});
  CHECK(both([](auto& w) { w.big_number("1234567890123456789012"); }) ==
        p{"$22\r\n1234567890123456789012\r\n", "(1234567890123456789012\r\n"});
  CHECK(both([](auto& w) { w.verbatim("txt", "hi"); }) == p{"$2\r\nhi\r\n", "=6\r\ntxt:hi\r\n"});
  CHECK(both([](auto& w) { w.verbatim("m", "hi"); }) == p{"$2\r\nhi\r\n", "=6\r\nm  :hi\r\n"});
  // A nested reply: a map of one key to a set of two.
  CHECK(both([](auto& w) {
          w.map(1);
          w.bulk("k");
          w.set(2);
          w.integer(1);
          w.null();
        }) == p{"*2\r\n$1\r\nk\r\n*2\r\n:1\r\n$-1\r\n", "%1\r\n$1\r\nk\r\n~2\r\n:1\r\n_\r\n"});
}
