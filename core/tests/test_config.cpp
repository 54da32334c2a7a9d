#include <catch2/catch.hpp>

#include "swactor/core/config.hpp"

using namespace std::chrono_literals;
namespace config = swactor::config;

namespace {
struct inner {
  std::int64_t depth = 1;
};
struct sample {
  std::string mode = "base";
  int workers = 2;
  bool nodelay = true;
  std::uint64_t buffer = 8 << 20;
  std::chrono::milliseconds wait{3000};
  std::string name;
  inner sub;
};

config::schema<sample> sample_schema() {
  config::schema<inner> in;
  in.integer("depth", &inner::depth, "depth", 0, 10);
  config::schema<sample> s;
  s.string("mode", &sample::mode, "mode", {"base", "process"})
      .integer("workers", &sample::workers, "workers", 1, 256)
      .boolean("nodelay", &sample::nodelay, "nodelay")
      .size("buffer", &sample::buffer, "buffer", 1024)
      .duration("wait", &sample::wait, "wait")
      .string("name", &sample::name, "name")
      .required()
      .table("sub", &sample::sub, in, "sub");
  return s;
}

config::diagnostics parse(const std::string& text, sample& out) {
  config::diagnostics diag;
  auto tbl = config::load_string(text, "app.toml", diag);
  if (tbl) sample_schema().parse(*tbl, out, diag);
  return diag;
}
}  // namespace

TEST_CASE("valid config fills the struct, sizes and durations accept both forms", "[config]") {
  sample s;
  auto d = parse("name = 'x'\nmode = 'process'\nworkers = 4\nbuffer = '64KiB'\nwait = '1.5s'\n"
                 "sub = { depth = 3 }\n", s);
  REQUIRE(d.ok());
  CHECK(s.mode == "process");
  CHECK(s.workers == 4);
  CHECK(s.buffer == 64 * 1024);
  CHECK(s.wait == 1500ms);
  CHECK(s.sub.depth == 3);
  sample t;
  REQUIRE(parse("name = 'y'\nbuffer = 2048\nwait = 250\n", t).ok());
  CHECK(t.buffer == 2048);
  CHECK(t.wait == 250ms);
  CHECK(t.workers == 2);  // default kept
}

TEST_CASE("unknown key: position, path and a suggestion", "[config]") {
  sample s;
  auto d = parse("name = 'x'\n\nworkerz = 3\n", s);
  REQUIRE(d.items().size() == 1);
  auto msg = d.to_string();
  CHECK_THAT(msg, Catch::StartsWith("app.toml:3:1: workerz: unknown key"));
  CHECK_THAT(msg, Catch::Contains("did you mean \"workers\""));
}

TEST_CASE("wrong type names the expected type", "[config]") {
  sample s;
  auto d = parse("name = 'x'\nworkers = \"two\"\n", s);
  REQUIRE(d.items().size() == 1);
  CHECK_THAT(d.to_string(), Catch::StartsWith("app.toml:2:11: workers: expected an integer, got a string"));
}

TEST_CASE("out-of-range values give the allowed range", "[config]") {
  sample s;
  auto d = parse("name = 'x'\nworkers = 0\nbuffer = 10\n", s);
  REQUIRE(d.items().size() == 2);
  auto msg = d.to_string();
  CHECK_THAT(msg, Catch::Contains("app.toml:2:11: workers: value 0 out of range, expected 1 .. 256"));
  CHECK_THAT(msg, Catch::Contains("app.toml:3:10: buffer: size 10 out of range"));
}

TEST_CASE("missing required key points at its table", "[config]") {
  sample s;
  auto d = parse("workers = 3\n", s);
  REQUIRE(d.items().size() == 1);
  CHECK_THAT(d.to_string(), Catch::Contains("name: missing required key"));
  CHECK_THAT(d.to_string(), Catch::StartsWith("app.toml:1:1:"));
}

TEST_CASE("bad enum, bad size unit, bad duration unit", "[config]") {
  sample s;
  auto d = parse("name = 'x'\nmode = 'threads'\nbuffer = '8 parsecs'\nwait = '3 fortnights'\n", s);
  REQUIRE(d.items().size() == 3);
  auto msg = d.to_string();
  CHECK_THAT(msg, Catch::Contains("app.toml:2:8: mode: expected one of \"base\", \"process\", got \"threads\""));
  CHECK_THAT(msg, Catch::Contains("app.toml:3:10: buffer: unknown size unit"));
  CHECK_THAT(msg, Catch::Contains("app.toml:4:8: wait: unknown duration unit"));
}

TEST_CASE("nested table errors carry the dotted path", "[config]") {
  sample s;
  auto d = parse("name = 'x'\n[sub]\ndepth = 11\nwidth = 1\n", s);
  REQUIRE(d.items().size() == 2);
  auto msg = d.to_string();
  CHECK_THAT(msg, Catch::Contains("app.toml:3:9: sub.depth: value 11 out of range"));
  CHECK_THAT(msg, Catch::Contains("app.toml:4:1: sub.width: unknown key"));
}

TEST_CASE("every error of a file is reported in one pass, in file order", "[config]") {
  sample s;
  auto d = parse("zeta = 1\nworkers = -1\nnodelay = 'yes'\nalpha = 2\n", s);
  REQUIRE(d.items().size() == 5);  // zeta, workers, nodelay, alpha, missing name
  auto msg = d.to_string();
  auto p_zeta = msg.find(":1:1: zeta"), p_alpha = msg.find(":4:1: alpha");
  REQUIRE(p_zeta != std::string::npos);
  REQUIRE(p_alpha != std::string::npos);
  CHECK(p_zeta < p_alpha);
}

TEST_CASE("a TOML syntax error is one diagnostic with its position", "[config]") {
  sample s;
  auto d = parse("name = 'x'\nworkers = = 3\n", s);
  REQUIRE(d.items().size() == 1);
  CHECK_THAT(d.to_string(), Catch::StartsWith("app.toml:2:"));
  CHECK_THAT(d.to_string(), Catch::Contains("TOML syntax error"));
}

TEST_CASE("size and duration parsers", "[config]") {
  std::string err;
  CHECK(config::parse_size("8MiB", err) == 8u << 20);
  CHECK(config::parse_size("1GB", err) == 1000000000u);
  CHECK(config::parse_size("512", err) == 512u);
  CHECK_FALSE(config::parse_size("lots", err));
  CHECK(config::parse_duration("3s", err) == 3000ms);
  CHECK(config::parse_duration("2m", err) == 120000ms);
  CHECK(config::parse_duration("1h", err) == 3600000ms);
  CHECK_FALSE(config::parse_duration("-", err));
  // Values that would overflow are errors, not wrapped numbers.
  CHECK_FALSE(config::parse_size("10000000000000000000", err));
  CHECK_THAT(err, Catch::Contains("too large"));
  CHECK_FALSE(config::parse_duration("99999999999999999h", err));
  CHECK_THAT(err, Catch::Contains("too large"));
  CHECK(config::format_size(8u << 20) == "8MiB");
  CHECK(config::format_duration(3000ms) == "3s");
}

TEST_CASE("docs come from the same schema", "[config]") {
  auto docs = sample_schema().docs();
  REQUIRE(docs.size() == 7);
  CHECK(docs[0].name == "mode");
  CHECK(docs[0].default_text == "\"base\"");
  CHECK(docs[3].default_text == "8MiB");
  CHECK(docs[4].default_text == "3s");
  CHECK(docs[5].required);
  auto md = config::render_markdown("T", "intro", {{"[x]", "doc", docs}});
  CHECK_THAT(md, Catch::Contains("| `buffer` | size | `8MiB` | buffer |"));
}
