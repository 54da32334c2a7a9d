// WebSocket against third-party clients: Node `ws` 8 and headless Chromium (Debian's
// chromium driven by playwright-core) talk to the real server's ws_echo, in both modes. The
// clients are the scripts in tests/integration/node/ (each check prints "ok NAME" or
// "not ok NAME"); their npm packages are installed by scripts/install-deps.sh into the
// build's node/ dir. Missing node, packages or chromium fail these tests: they are part of
// `make test`, which runs install-deps first.
#include <filesystem>

#include "node_clients.hpp"
#include "server_helpers.hpp"

using namespace std::chrono_literals;
namespace t = swactor::testing;
namespace fs = std::filesystem;
using namespace swactor::testing::server;
using namespace swactor::testing::node;

namespace {

// Two listeners on ws_echo: {port} accepts permessage-deflate (the default), {port2} refuses
// it. Messages up to 4 MiB (the clients send 1 MiB).
const char* kEcho = R"(
[modules.ws_echo]

[[listen]]
url = "ws://127.0.0.1:{port}"
module = "ws_echo"
websocket = { max_message_size = "4MiB" }

[[listen]]
url = "ws://127.0.0.1:{port2}"
module = "ws_echo"
websocket = { max_message_size = "4MiB", permessage_deflate = false }
)";

}  // namespace

TEST_CASE("websocket clients: Node ws echoes 200 B to 1 MiB, fragments, ping, close, with deflate on and off",
          "[websocket][clients]") {
  require_deps(false);
  auto mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  server_under_test srv("mode = \"" + mode + "\"\nworkers = 2", kEcho);
  struct variant {
    std::uint16_t port;
    const char* offer;   // the client offers permessage-deflate
    const char* expect;  // the server accepts it
  };
  for (const variant v : {variant{srv.port, "on", "yes"}, variant{srv.port, "off", "no"},
                          variant{srv.port2, "on", "no"}}) {
    INFO("port " << v.port << " client deflate " << v.offer << ", negotiated " << v.expect);
    auto r = run_script("ws_interop.js",
                        {"ws://127.0.0.1:" + std::to_string(v.port) + "/echo", "--deflate", v.offer,
                         "--expect-deflate", v.expect},
                        90s);
    INFO(r.run.out << r.run.err << "\nserver log:\n" << server_under_test::tail(srv.log()));
    CHECK(r.run.exit_code == 0);
    CHECK(r.not_ok == 0);
    // Every check ran: extensions, 3 sizes x text/binary, the compression check, 2 fragmented,
    // ping, pipelined, close, socket closed.
    CHECK(r.ok == 14);
    CHECK(r.has("summary: 14 ok, 0 not ok"));
    CHECK(r.has(std::string("ok extensions \"") + (std::string(v.expect) == "yes" ? "permessage-deflate" : "") + "\""));
    CHECK(r.has("ok text 1048576 got 1048576 B binary=false"));
    CHECK(r.has("ok binary 1048576 got 1048576 B binary=true"));
    CHECK(r.has("ok fragmented binary 3 frames, 71005 B"));
    CHECK(r.has("ok close code 4000"));
  }
  CHECK_FALSE(srv.wait_log(" (error|critical) \\[", 0ms));  // no client made the server log an error
  srv.stop_and_check();
}

TEST_CASE("websocket clients: headless Chromium echoes text and binary up to 1 MiB with permessage-deflate",
          "[websocket][clients][browser]") {
  require_deps(true);
  auto mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  server_under_test srv("mode = \"" + mode + "\"\nworkers = 2", kEcho);
  auto r = run_script("browser_ws.js", {"ws://127.0.0.1:" + std::to_string(srv.port) + "/echo"}, 150s);
  INFO(r.run.out << r.run.err << "\nserver log:\n" << server_under_test::tail(srv.log()));
  CHECK(r.run.exit_code == 0);
  CHECK(r.not_ok == 0);
  // Page, extensions, 4 sizes x text/binary, close, message count.
  CHECK(r.ok == 12);
  CHECK(r.has("ok extensions \"permessage-deflate"));
  CHECK(r.has("ok text 1048576 string 1048576"));
  CHECK(r.has("ok binary 1048576 ArrayBuffer 1048576"));
  CHECK(r.has("ok close code 1000 wasClean true"));
  srv.stop_and_check();
}

TEST_CASE("websocket clients: ws_chat in headless Chromium, four users in two rooms across both workers",
          "[websocket][clients][browser]") {
  require_deps(true);
  auto mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  // The default app's shape: the chat on an http:// listener with upgrades on.
  server_under_test srv("mode = \"" + mode + "\"\nworkers = 2", R"(
[modules.chat]
type = "ws_chat"

[[listen]]
url = "http://127.0.0.1:{port}"
websocket = {}
routes = [ { path = "/chat", module = "chat" } ]
)");
  auto r = run_script("browser_chat.js", {"http://127.0.0.1:" + std::to_string(srv.port) + "/chat"}, 150s);
  INFO(r.run.out << r.run.err << "\nserver log:\n" << server_under_test::tail(srv.log()));
  CHECK(r.run.exit_code == 0);
  CHECK(r.not_ok == 0);
  CHECK(r.ok == 16);
  CHECK(r.has("ok users on both workers"));
  CHECK(r.has("ok bob gets ann's line"));
  CHECK(r.has("ok blue did not get red"));
  CHECK(r.has("ok cid sees dee leave"));
  srv.stop_and_check();
}
