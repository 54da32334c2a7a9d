// HTTP/2 flow control end to end, in both modes: a request body's window opens as its
// handler reads it (a stream nobody reads stops at its window while the connection goes on
// reading its sibling: tests/integration/h2/h2_flow.py), and 100 MiB go up and down over
// one stream byte-exact while the server's memory stays far below the body's size; a
// client that reads a streamed response slowly holds its writer, not the server's memory.
#include <string>
#include <thread>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "harness.hpp"
#include "http_helpers.hpp"
#include "rss_watch.hpp"
#include "server_helpers.hpp"

using namespace std::chrono_literals;
namespace t = swactor::testing;
namespace srv = swactor::testing::server;
namespace http = swactor::testing::http;
using nlohmann::json;

namespace {

constexpr std::uint64_t kBig = 100ull << 20;

std::string config(const std::string& extra = {}) {
  return "[[listen]]\nurl = \"http://127.0.0.1:{port}\"\nmax_body_size = \"256MiB\"\n"
         "routes = [ { path = \"/up\", module = \"echo\", stream_body = true }, { path = \"/\", module = \"echo\" } ]\n" +
         extra + "\n" + http::kModules;
}

using http::as_json;

// Runs `script` with bash (pipefail): exit code and stdout.
t::run_result bash(const std::string& script, t::duration timeout = 120s) {
  return t::run({"bash", "-c", "set -o pipefail; " + script}, timeout);
}

}  // namespace

TEST_CASE("http2 flow: a stream whose handler does not read stops at its window, the connection reads on",
          "[http2][flow]") {
  const std::string mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  srv::server_under_test s(http::server_keys(mode), config());
  // Two 1 MiB uploads on one connection; stream 1's handler reads nothing for 4 s.
  auto r = t::run({"python3", std::string(SWACTOR_H2_SCRIPTS) + "/h2_flow.py", std::to_string(s.port), "1048576"}, 60s);
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  auto j = as_json(r.out);
  REQUIRE(j.is_object());
  CHECK_FALSE(j.value("timeout", true));
  CHECK(j["rst"].empty());
  // The server acknowledged none of stream 1's body before its handler read it: the client
  // could send one initial window (65535, our SETTINGS) and then had to wait...
  CHECK(j.value("sent1_before_window", 0) == 65535);
  // ...while the connection kept reading: stream 3's handler runs beside stream 1's (streams
  // of one connection run side by side in a worker), took its whole body and answered.
  CHECK(j.value("sent3_before_window1", 0) == 1048576);
  CHECK(j.value("done3_before_window1", false));
  // Then stream 1's handler read its body and the window opened as it did: both arrive whole.
  for (const char* sid : {"1", "3"}) {
    INFO("stream " << sid);
    auto body = as_json(j["bodies"].value(sid, ""));
    CHECK(body.value("version", "") == "HTTP/2");
    CHECK(body.value("body_length", 0) == 1048576);
    CHECK(body.value("body_sha256", "") == j.value("sha256", "?"));
  }
  s.stop_and_check();
}

TEST_CASE("http2 flow: 100 MiB up and down over one stream, byte-exact, bounded RSS", "[http2][flow][streaming]") {
  REQUIRE(http::have_tool("curl"));
  const std::string mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  srv::server_under_test s(http::server_keys(mode), config());
  const auto base = "http://127.0.0.1:" + std::to_string(s.port);
  t::rss_watch rss(t::server_pids(s));

  // Upload: the handler reads the body piece by piece and hashes it (digest=sha256).
  const auto file = s.dir.file("up.bin").string();
  auto made = bash("head -c " + std::to_string(kBig) + " /dev/urandom > " + file + " && sha256sum " + file);
  REQUIRE(made.exit_code == 0);
  const auto want_up = made.out.substr(0, 64);
  auto up = bash("curl -sS --max-time 100 --http2-prior-knowledge -T " + file + " '" + base + "/up?digest=sha256'");
  INFO(up.err);
  REQUIRE(up.exit_code == 0);
  auto j = as_json(up.out);
  CHECK(j.value("version", "") == "HTTP/2");
  CHECK(j.value("body_length", std::uint64_t{0}) == kBig);
  CHECK(j.value("body_sha256", "") == want_up);
  INFO("upload: " << rss.describe());
  // Buffered whole, the body alone would be 100 MiB.
  CHECK(rss.growth() < 64 * t::kMiB);
  std::filesystem::remove(file);

  // Download: 1,600 writes of 64 KiB, streamed as DATA frames as the client's window opens.
  // Each chunk is its number repeated (numbered=1), so a chunk lost, doubled or out of
  // order changes the digest.
  rss.reset();
  auto want = bash("python3 -c \"import hashlib; h = hashlib.sha256(); "
                   "[h.update(((str(i) + ' ') * 65536)[:65536].encode()) for i in range(1600)]; "
                   "print(h.hexdigest())\"");
  REQUIRE(want.exit_code == 0);
  auto down = bash("curl -sS --max-time 100 --http2-prior-knowledge '" + base +
                   "/?chunks=1600&size=65536&numbered=1' | sha256sum");
  INFO(down.err);
  REQUIRE(down.exit_code == 0);
  CHECK(down.out.substr(0, 64) == want.out.substr(0, 64));
  INFO("download: " << rss.describe());
  CHECK(rss.growth() < 64 * t::kMiB);
  s.stop_and_check();
}

TEST_CASE("http2 flow: a slow reader of a streamed response holds its writer, not the server's memory",
          "[http2][flow][streaming]") {
  REQUIRE(http::have_tool("curl"));
  const std::string mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  srv::server_under_test s(http::server_keys(mode), config("output_buffer_size = \"1MiB\""));
  const auto base = "http://127.0.0.1:" + std::to_string(s.port);
  t::rss_watch rss(t::server_pids(s));
  // 250 MiB at 512 KiB/s: curl reads slowly, so the peer's window closes over and over; the
  // handler's writes wait for it (the connection's output limit), they do not pile up.
  t::process slow({"curl", "-sS", "--http2-prior-knowledge", "--limit-rate", "512K", "-o", "/dev/null",
                   base + "/?chunks=4000&size=65536"});
  for (int i = 0; i < 4; ++i) {
    std::this_thread::sleep_for(500ms);
    // Other connections are served meanwhile.
    auto c = bash("curl -sS --max-time 10 --http2-prior-knowledge '" + base + "/other'", 20s);
    CHECK(c.exit_code == 0);
    CHECK(as_json(c.out).value("path", "") == "/other");
  }
  CHECK(slow.running());
  INFO(rss.describe());
  CHECK(rss.growth() < 32 * t::kMiB);
  slow.kill();
  // The reader went away: its writer learns it (a reset stream), nothing hangs.
  auto c = bash("curl -sS --max-time 10 --http2-prior-knowledge '" + base + "/after'", 20s);
  CHECK(as_json(c.out).value("path", "") == "/after");
  s.stop_and_check();
}
