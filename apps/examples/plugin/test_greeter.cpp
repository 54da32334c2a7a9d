// The greeter driven by swactor's test kit (swactor/actors/testing.hpp): its handler runs
// against an in-memory context, with no server, process or socket. Built when
// GREETER_BUILD_TESTS is ON (needs Catch2 v2); run it with `ctest` or build/test_greeter.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include <string>

#include <swactor/actors/testing.hpp>

#include "greeter.hpp"

namespace kit = swactor::test_kit;
using greeter_example::greeter;

namespace {
// The listener's eof framing: ctx.payload() drops the "\n".
kit::connect_options line_framing() {
  kit::connect_options o;
  o.delimiter = "\n";
  return o;
}
const kit::connect_options line = line_framing();
}  // namespace

TEST_CASE("greeter answers a line with the greeting and its punctuation") {
  kit::module_harness<greeter> h(kit::toml_text{"punctuation = \"?!\""});
  auto s = h.connect(line);
  h.receive(s, "world\n");
  CHECK(h.ctx().take_sent(s) == std::string(greeter_greeting()) + ", world?!\n");
  h.receive(s, "again\n");
  CHECK(h.ctx().session(s)->sends.size() == 2);
}

TEST_CASE("greeter options: the default punctuation, and unknown keys are errors") {
  kit::module_harness<greeter> h;
  auto s = h.connect(line);
  h.receive(s, "you\n");
  CHECK(h.ctx().take_sent(s) == std::string(greeter_greeting()) + ", you!\n");
  CHECK_THAT(kit::option_errors<greeter>(kit::toml_text{"punctuaton = \".\""}), Catch::Contains("punctuaton"));
}

TEST_CASE("greeter logs a warning when the session is gone") {
  kit::module_harness<greeter> h;
  kit::log_capture logs;
  auto s = h.connect();
  h.close(s);
  CHECK_FALSE(h.ctx().session(s)->open);
  // A message on a closed session cannot be delivered by the harness; the context's send
  // refuses it, which the module logs.
  h.run(h.module().on_receive(h.ctx(), s, "late"), "on_receive after close");
  CHECK(logs.contains("greeter: send to 1 failed"));
}
