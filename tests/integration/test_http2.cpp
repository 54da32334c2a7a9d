// HTTP/2 through the real server, in both modes, with real clients: curl (h2c by prior
// knowledge, h2c by Upgrade, h2 over TLS by ALPN), nghttp (the SETTINGS we send, trailers
// both ways, GOAWAY on stop), h2load (-c 10 -m 100, no errors), and raw-frame attack
// clients (tests/integration/h2/h2_attack.py): each attack ends its own connection with
// GOAWAY or a reset while the server keeps serving others.
#include <signal.h>

#include <filesystem>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "harness.hpp"
#include "http_helpers.hpp"
#include "rss_watch.hpp"
#include "server_helpers.hpp"
#include "test_pki.hpp"

using namespace std::chrono_literals;
namespace t = swactor::testing;
namespace srv = swactor::testing::server;
namespace http = swactor::testing::http;
using nlohmann::json;

namespace {

using t::pki::sh;

// A CA and a server certificate for 127.0.0.1 / localhost.
struct h2_pki : t::pki::test_ca {
  h2_pki() : test_ca("swactor h2 test CA", "swactor-h2-tls") {
    REQUIRE(issue("server", "localhost", "DNS:localhost,IP:127.0.0.1"));
  }
};

// {port}: http:// (h2c on by default), {port2}: https:// offering h2 and http/1.1 by ALPN,
// {port3}: http:// with h2c = false. Every path goes to http_echo.
std::string config(const h2_pki& pki, const std::string& extra = {}) {
  const std::string routes = "routes = [ { path = \"/up\", module = \"echo\", stream_body = true }, "
                             "{ path = \"/\", module = \"echo\" } ]\nmax_body_size = \"64MiB\"\n";
  return "[[listen]]\nurl = \"http://127.0.0.1:{port}\"\n" + routes + extra +
         "\n[[listen]]\nurl = \"https://127.0.0.1:{port2}\"\n" + routes + "tls = { cert = \"" +
         pki.path("server.pem") + "\", key = \"" + pki.path("server.key") + "\", alpn = [\"h2\", \"http/1.1\"] }\n" +
         "\n[[listen]]\nurl = \"http://127.0.0.1:{port3}\"\n" + routes + "h2c = false\n" + http::kModules;
}

std::string server_keys(const std::string& mode) { return http::server_keys(mode) + "\nmax_wait_time = \"5s\""; }

struct curl_result {
  int exit_code = -1;
  std::string body;
  std::string version;  // curl's %{http_version}: "2", "1.1"
};

// curl with `args`; the body, then the protocol version it spoke on the last line.
curl_result curl(const std::string& args) {
  auto r = t::run({"sh", "-c", "curl -sS --max-time 20 -w '\\n%{http_version}' " + args}, 30s);
  INFO("curl " << args << ": " << r.err);
  curl_result c;
  c.exit_code = r.exit_code;
  auto nl = r.out.rfind('\n');
  if (nl == std::string::npos) return c;
  c.body = r.out.substr(0, nl);
  c.version = r.out.substr(nl + 1);
  return c;
}

using http::as_json;

// The server still answers a fresh HTTP/2 connection.
bool serves(std::uint16_t port) {
  auto c = curl("--http2-prior-knowledge http://127.0.0.1:" + std::to_string(port) + "/alive");
  return c.exit_code == 0 && c.version == "2" && as_json(c.body).value("path", "") == "/alive";
}

// An attack client in the background: another connection is served while it runs, and no
// server process grows by more than `limit_kib` (the peaks since rss.reset()).
json attack_bounded(std::uint16_t port, const std::string& what, t::rss_watch& rss, long limit_kib = 32 * t::kMiB) {
  INFO(what);
  rss.reset();
  t::process p({"python3", std::string(SWACTOR_H2_SCRIPTS) + "/h2_attack.py", std::to_string(port), what});
  CHECK(serves(port));
  REQUIRE(p.wait(40s));
  INFO(rss.describe());
  CHECK(rss.growth() < limit_kib);
  INFO(p.stderr_text());
  return as_json(p.stdout_text());
}

}  // namespace

TEST_CASE("http2: curl over h2c (prior knowledge, upgrade) and h2 over TLS, bodies and streams byte-exact",
          "[http2]") {
  REQUIRE(http::have_tool("curl"));
  REQUIRE(http::have_tool("openssl"));
  const std::string mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  h2_pki pki;
  srv::server_under_test s(server_keys(mode), config(pki));
  const auto base = "http://127.0.0.1:" + std::to_string(s.port);

  // Prior knowledge: the connection starts with the preface.
  auto c = curl("--http2-prior-knowledge '" + base + "/a/b?x=1'");
  REQUIRE(c.exit_code == 0);
  CHECK(c.version == "2");
  auto j = as_json(c.body);
  CHECK(j.value("version", "") == "HTTP/2");
  CHECK(j.value("protocol", "") == "h2");  // ctx.info(session).protocol
  CHECK(j.value("method", "") == "GET");
  CHECK(j.value("path", "") == "/a/b");
  CHECK(j.value("host", "") == "127.0.0.1:" + std::to_string(s.port));

  // Upgrade from HTTP/1.1: 101, then the first request is answered on stream 1.
  c = curl("--http2 '" + base + "/up1?y=2'");
  REQUIRE(c.exit_code == 0);
  CHECK(c.version == "2");
  j = as_json(c.body);
  CHECK(j.value("version", "") == "HTTP/2");
  CHECK(j.value("protocol", "") == "h2");
  CHECK(j.value("path", "") == "/up1");

  // h2c = false: the same request stays HTTP/1.1.
  c = curl("--http2 http://127.0.0.1:" + std::to_string(s.port3) + "/plain");
  REQUIRE(c.exit_code == 0);
  CHECK(c.version == "1.1");
  CHECK(as_json(c.body).value("version", "") == "HTTP/1.1");
  CHECK(as_json(c.body).value("protocol", "") == "http/1.1");

  // TLS with ALPN h2.
  c = curl("--http2 --cacert " + pki.path("ca.pem") + " https://127.0.0.1:" + std::to_string(s.port2) + "/tls");
  REQUIRE(c.exit_code == 0);
  CHECK(c.version == "2");
  j = as_json(c.body);
  CHECK(j.value("version", "") == "HTTP/2");
  CHECK(j.value("protocol", "") == "h2");
  REQUIRE(j.contains("tls"));
  CHECK(j["tls"].value("alpn", "") == "h2");
  // A client that offers only http/1.1 still gets it.
  c = curl("--http1.1 --cacert " + pki.path("ca.pem") + " https://127.0.0.1:" + std::to_string(s.port2) + "/tls1");
  REQUIRE(c.exit_code == 0);
  CHECK(c.version == "1.1");
  CHECK(as_json(c.body).value("protocol", "") == "http/1.1");

  // A request body of 1 MiB (above the window sizes and body_chunk_size), byte-exact, to a
  // whole-body route and to a stream_body route.
  std::string body(1 << 20, '\0');
  for (std::size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>((i * 131) ^ (i >> 9));
  auto file = s.dir.write("body.bin", body).string();
  for (const char* path : {"/whole", "/up"}) {
    INFO(path);
    c = curl("--http2-prior-knowledge --data-binary @" + file + " '" + base + path + "'");
    REQUIRE(c.exit_code == 0);
    j = as_json(c.body);
    CHECK(j.value("method", "") == "POST");
    CHECK(j.value("body_base64", "") == http::base64_encode(body));
  }

  // A streamed response of 100 x 64 KiB as DATA frames, byte-exact in length and content.
  c = curl("--http2-prior-knowledge '" + base + "/?chunks=100&size=65536'");
  REQUIRE(c.exit_code == 0);
  CHECK(c.body.size() == 100u * 65536u);
  CHECK(c.body.find_first_not_of('x') == std::string::npos);

  // Many streams on one connection, answered in any order: curl multiplexes parallel URLs.
  // `swactor stats` counts them: exactly 20 more streams, none reset.
  const auto before = s.stats();
  std::string urls;
  for (int i = 0; i < 20; ++i) urls += " '" + base + "/m" + std::to_string(i) + "?delay=" + std::to_string((20 - i) * 10) + "'";
  auto r = t::run({"sh", "-c", "curl -sS --max-time 20 --http2-prior-knowledge --parallel --parallel-immediate" + urls}, 30s);
  REQUIRE(r.exit_code == 0);
  for (int i = 0; i < 20; ++i) CHECK(r.out.find("\"path\":\"/m" + std::to_string(i) + "\"") != std::string::npos);
  const auto after = s.stats();
  CHECK(after.at("stream_count").get<long>() - before.at("stream_count").get<long>() == 20);
  CHECK(after.at("stream_reset_count") == before.at("stream_reset_count"));

  CHECK(serves(s.port));
  s.stop_and_check();
}

TEST_CASE("http2: nghttp sees our SETTINGS, trailers both ways, and GOAWAY(NO_ERROR) on stop", "[http2]") {
  REQUIRE(http::have_tool("nghttp"));  // scripts/install-deps.sh: nghttp2-client
  const std::string mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  h2_pki pki;
  srv::server_under_test s(server_keys(mode), config(pki, "h2_max_concurrent_streams = 77\n"));
  const auto base = "http://127.0.0.1:" + std::to_string(s.port);

  std::string out;
  REQUIRE(sh("nghttp -nv '" + base + "/settings'", &out));
  INFO(out);
  CHECK(out.find("recv SETTINGS frame") != std::string::npos);
  CHECK(out.find("[SETTINGS_MAX_CONCURRENT_STREAMS(0x03):77]") != std::string::npos);
  CHECK(out.find("[SETTINGS_INITIAL_WINDOW_SIZE(0x04):65535]") != std::string::npos);
  CHECK(out.find("[SETTINGS_MAX_HEADER_LIST_SIZE(0x06):65536]") != std::string::npos);
  CHECK(out.find(":status: 200") != std::string::npos);

  // Request trailers reach the handler; response trailers reach the client after the body.
  auto data = s.dir.write("post.txt", "hello trailers").string();
  REQUIRE(sh("nghttp -v -d " + data + " --trailer 'x-req-trailer: t1' '" + base + "/t?chunks=2&size=5&trailer=t2'", &out));
  INFO(out);
  CHECK(out.find("x-echo-trailer: t2") != std::string::npos);
  // Two cookies stay two Set-Cookie fields (RFC 9113 §8.2.3 splits only Cookie).
  REQUIRE(sh("nghttp -v '" + base + "/c?set_cookies=1'", &out));
  INFO(out);
  CHECK(out.find("set-cookie: a=1; Path=/; HttpOnly; SameSite=Lax") != std::string::npos);
  CHECK(out.find("set-cookie: b=2; Max-Age=60; Secure") != std::string::npos);
  // Trailers with a whole body from end(), no write() before it (a gRPC unary reply).
  REQUIRE(sh("nghttp -v '" + base + "/t?trailer=t3'", &out));
  INFO(out);
  CHECK(out.find("x-echo-trailer: t3") != std::string::npos);
  CHECK(out.find("\"target\":\"/t?trailer=t3\"") != std::string::npos);
  REQUIRE(sh("nghttp -d " + data + " --trailer 'x-req-trailer: t1' '" + base + "/t'", &out));
  auto j = as_json(out);
  CHECK(j.value("body", "") == "hello trailers");
  REQUIRE(j.contains("trailers"));
  CHECK(j["trailers"].dump() == R"([["x-req-trailer","t1"]])");

  // A request in flight when the server stops: GOAWAY(NO_ERROR) with its stream as the last
  // one, and the request still completes.
  t::process slow({"nghttp", "-v", base + "/slow?delay=1500"});
  std::this_thread::sleep_for(500ms);  // the request reached the handler (it sleeps 1.5 s)
  s.stop_and_check();
  REQUIRE(slow.wait(10s));
  auto text = slow.stdout_text();
  INFO(text);
  CHECK(text.find("recv GOAWAY frame") != std::string::npos);
  CHECK(text.find("error_code=NO_ERROR(0x00)") != std::string::npos);
  // The GOAWAY names the request's stream as the last one processed.
  std::smatch sent, last;
  REQUIRE(std::regex_search(text, sent, std::regex("send HEADERS frame <[^>]*stream_id=([0-9]+)>")));
  REQUIRE(std::regex_search(text, last, std::regex("last_stream_id=([0-9]+)")));
  CHECK(last[1].str() == sent[1].str());
  CHECK(last[1].str() != "0");
  CHECK(text.find(":status: 200") != std::string::npos);
}

TEST_CASE("http2: h2load -c 10 -m 100 -n 2000 has no errors", "[http2]") {
  REQUIRE(http::have_tool("h2load"));  // scripts/install-deps.sh: nghttp2-client
  const std::string mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  h2_pki pki;
  srv::server_under_test s(server_keys(mode), config(pki));
  for (auto url : {"http://127.0.0.1:" + std::to_string(s.port) + "/", "https://127.0.0.1:" + std::to_string(s.port2) + "/"}) {
    INFO(url);
    auto r = t::run({"h2load", "-c", "10", "-m", "100", "-n", "2000", url}, 60s);
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(r.out.find("2000 succeeded, 0 failed, 0 errored, 0 timeout") != std::string::npos);
    CHECK(r.out.find("status codes: 2000 2xx") != std::string::npos);
  }
  s.stop_and_check();
}

TEST_CASE("http2: attacks end their own connection, memory stays bounded and the server keeps serving",
          "[http2][attack]") {
  const std::string mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  h2_pki pki;
  srv::server_under_test s(server_keys(mode), config(pki, "h2_idle_stream_timeout = \"2s\"\n"));
  const pid_t master = s.proc->pid();
  auto workers = s.worker_pids(s.stats());
  REQUIRE(!workers.empty());
  t::rss_watch rss(t::server_pids(s));

  // Rapid reset (CVE-2023-44487): 20,000 streams opened and reset at once; our per-second
  // bucket (h2_max_resets_per_second, 1,000) trips long before.
  auto j = attack_bounded(s.port, "rapid_reset", rss);
  INFO(j.dump());
  CHECK(j["goaway"] == 11);  // ENHANCE_YOUR_CALM
  CHECK(s.wait_log("closing session .*: HTTP/2: rapid reset \\(h2_max_resets_per_second\\)", 5s));
  // The streams it reset before their responses are counted.
  CHECK(s.stats().at("stream_reset_count").get<long>() > 0);

  // CONTINUATION flood: a header block that never ends.
  j = attack_bounded(s.port, "continuation", rss);
  INFO(j.dump());
  CHECK((j["goaway"].is_number() && j["goaway"] != 0));
  CHECK(s.wait_log("closing session .*: HTTP/2: Too many CONTINUATION frames", 5s));

  // HPACK bomb: 8 MB of header list from 6 KB of frames: the stream is refused.
  j = attack_bounded(s.port, "hpack_bomb", rss);
  INFO(j.dump());
  CHECK((!j["rst"].empty() || (j["goaway"].is_number() && j["goaway"] != 0)));

  // PING, SETTINGS and empty DATA floods.
  for (const char* a : {"ping_flood", "settings_flood", "empty_data"}) {
    INFO(a);
    j = attack_bounded(s.port, a, rss);
    INFO(j.dump());
    CHECK((j["goaway"].is_number() && j["goaway"] != 0));
  }
  // Our per-second limit trips first, or (on a loaded machine) nghttp2's own: ACKs the
  // client does not read pile up past its outbound limit.
  CHECK(s.count_log("closing session .*: HTTP/2: (control frame flood|Flooding was detected)") == 2);
  CHECK(s.count_log("closing session .*: HTTP/2: empty DATA frame flood") == 1);

  // A 100 MiB response stalled on a zero window: the handler waits (the connection's output
  // limit), the stream is reset after h2_idle_stream_timeout.
  j = attack_bounded(s.port, "zero_window", rss);
  INFO(j.dump());
  CHECK(j["rst"] == json::array({1}));

  // 8 MiB of request body pushed past the window to a handler that does not read yet: the
  // stream (or the connection) ends with FLOW_CONTROL_ERROR, nothing of it piles up.
  j = attack_bounded(s.port, "window_overrun", rss);
  INFO(j.dump());
  CHECK((j["rst"] == json::array({1}) || j["goaway"] == 3));

  // Every process is still the one that started.
  CHECK(srv::pid_alive(master));
  for (auto w : workers) CHECK(srv::pid_alive(w));
  CHECK(serves(s.port));
  s.stop_and_check();
}

TEST_CASE("http2: a stream the server resets after h2_idle_stream_timeout reaches the worker without new input",
          "[http2]") {
  const std::string mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  h2_pki pki;
  srv::server_under_test s(server_keys(mode), config(pki, "h2_idle_stream_timeout = \"1s\"\n"));
  const auto before = s.stats().at("stream_reset_count").get<long>();
  // A POST whose body never comes; after the server's RST_STREAM the client stays silent.
  t::process p({"python3", std::string(SWACTOR_H2_SCRIPTS) + "/h2_attack.py", std::to_string(s.port), "stalled_body"});
  bool counted_while_silent = false;
  for (int k = 0; k < 120 && p.running(); ++k) {
    if (s.stats().at("stream_reset_count").get<long>() > before) {
      counted_while_silent = p.running();  // the client has not sent or closed anything since
      break;
    }
    std::this_thread::sleep_for(50ms);
  }
  REQUIRE(p.wait(20s));
  auto j = as_json(p.stdout_text());
  INFO(j.dump() << p.stderr_text());
  CHECK(j["rst"] == json::array({1}));
  CHECK(counted_while_silent);
  CHECK(s.wait_log("session .*: HTTP/2: stream\\(s\\) reset after h2_idle_stream_timeout", 5s));
  CHECK(serves(s.port));
  s.stop_and_check();
}

// -- process mode: streams of one connection on several workers -------------------------------

namespace {

std::string process_keys(const std::string& dispatch) {
  return "mode = \"process\"\nreactor_threads = 1\nworkers = 2\ndispatch_mode = \"" + dispatch +
         "\"\nmax_wait_time = \"5s\"";
}

// tests/integration/h2/h2_get.py: GETs `paths` at once as streams of one h2c connection
// (curl 7.88 cannot: its pending transfers fail on a prior-knowledge connection), each body
// into a file of `out`. Its JSON: per stream status, reset, complete, bytes.
std::vector<std::string> h2_get_argv(const srv::server_under_test& s, const std::filesystem::path& out,
                                     const std::vector<std::string>& paths) {
  std::filesystem::create_directories(out);
  std::vector<std::string> argv{"python3", std::string(SWACTOR_H2_SCRIPTS) + "/h2_get.py", std::to_string(s.port),
                                out.string()};
  argv.insert(argv.end(), paths.begin(), paths.end());
  return argv;
}

// Runs h2_get.py to the end and returns its JSON, which has a stream for every path.
json h2_get(const srv::server_under_test& s, const std::filesystem::path& out, const std::vector<std::string>& paths) {
  auto r = t::run(h2_get_argv(s, out, paths), 60s);
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  auto res = as_json(r.out);
  REQUIRE(res["streams"].size() == paths.size());  // all of them streams of one connection
  return res;
}

std::string body_of(const std::filesystem::path& out, std::size_t i) { return t::read_file(out / std::to_string(i)); }

// http_echo's `chunks=N&size=S&numbered=1` body.
std::string numbered_body(int chunks, std::size_t size) {
  std::string all;
  for (int i = 0; i < chunks; ++i) {
    std::string piece;
    auto tag = std::to_string(i) + " ";
    while (piece.size() < size) piece += tag;
    piece.resize(size);
    all += piece;
  }
  return all;
}

std::int64_t messages_of(const json& stats, std::size_t worker) {
  if (!stats.is_object() || !stats.contains("workers") || stats["workers"].size() <= worker) return -1;
  return stats["workers"][worker].value("messages", std::int64_t{-1});
}

// Waits (up to about 5 s) until both workers counted messages beyond `base0` / `base1`:
// each is in a handler of the client's connection.
bool both_workers_busy(const srv::server_under_test& s, std::int64_t base0, std::int64_t base1) {
  for (int k = 0; k < 500; ++k) {
    auto now = s.stats();
    if (messages_of(now, 0) > base0 && messages_of(now, 1) > base1) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

}  // namespace

TEST_CASE("http2: the streams of one connection run side by side in one worker, answered as they finish",
          "[http2]") {
  REQUIRE(http::have_tool("python3"));
  const std::string mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  h2_pki pki;
  // One worker: whatever runs side by side runs in the same process.
  srv::server_under_test s(mode == "base" ? "workers = 1\nmax_wait_time = \"5s\""
                                          : "mode = \"process\"\nreactor_threads = 1\nworkers = 1\nmax_wait_time = \"5s\"",
                           config(pki));
  const std::vector<std::string> paths{"/slow?delay=1500", "/f1", "/f2", "/f3"};
  const auto out = s.dir.file("side_by_side");
  auto res = h2_get(s, out, paths);
  for (std::size_t i = 0; i < paths.size(); ++i) {
    INFO(paths[i] << ": " << res["streams"][i].dump());
    CHECK(res["streams"][i].value("status", 0) == 200);
    CHECK(res["streams"][i].value("complete", false));
    CHECK(as_json(body_of(out, i)).value("path", "") == paths[i].substr(0, paths[i].find('?')));
  }
  // Stream 1 (the slow one) was opened first but ends last: the others did not wait for it.
  CHECK(res["streams"][0]["finished"] == 3);
  s.stop_and_check();
}

TEST_CASE("http2 process mode: a connection's streams are dispatched one by one by the dispatch mode",
          "[http2][process][dispatch]") {
  REQUIRE(http::have_tool("python3"));
  // round_robin: each stream goes to the next worker; connection: every stream of a
  // connection to the worker its hash picks.
  const std::string dispatch = GENERATE(as<std::string>{}, "round_robin", "connection");
  INFO("dispatch_mode " << dispatch);
  h2_pki pki;
  srv::server_under_test s(process_keys(dispatch), config(pki));
  std::vector<std::string> paths;
  for (int i = 0; i < 20; ++i) paths.push_back("/w" + std::to_string(i));
  const auto out = s.dir.file("spread");
  auto res = h2_get(s, out, paths);
  std::map<int, int> by_worker;
  for (std::size_t i = 0; i < paths.size(); ++i) {
    auto body = body_of(out, i);
    INFO(paths[i] << ": " << res["streams"][i].dump() << " " << body);
    CHECK(res["streams"][i].value("status", 0) == 200);
    CHECK(res["streams"][i].value("complete", false));
    auto j = as_json(body);
    REQUIRE(j.is_object());
    CHECK(j.value("path", "") == paths[i]);
    CHECK(j.value("version", "") == "HTTP/2");
    CHECK(j.value("remote", "").find("127.0.0.1") != std::string::npos);  // the worker was told the session
    ++by_worker[j.value("worker", -1)];
  }
  if (dispatch == "round_robin") {
    REQUIRE(by_worker.size() == 2);
    CHECK(by_worker[0] == 10);
    CHECK(by_worker[1] == 10);
  } else {
    CHECK(by_worker.size() == 1);
  }
  s.stop_and_check();
}

TEST_CASE("http2 process mode: kill -9 of a worker resets only its streams, the connection and the other "
          "worker's streams go on",
          "[http2][process][crash]") {
  REQUIRE(http::have_tool("python3"));
  h2_pki pki;
  srv::server_under_test s(process_keys("round_robin"), config(pki));
  auto before = s.stats();
  auto pids = s.worker_pids(before);
  REQUIRE(pids.size() == 2);
  const std::int64_t base0 = messages_of(before, 0), base1 = messages_of(before, 1);
  // Four slow streamed responses (2 MiB each, numbered so a byte out of place shows): round
  // robin gives two to each worker, whose handlers run one after the other.
  const int chunks = 32;
  const std::size_t size = 65536;
  std::vector<std::string> paths;
  for (int i = 0; i < 4; ++i)
    paths.push_back("/k" + std::to_string(i) + "?delay=2000&chunks=" + std::to_string(chunks) +
                    "&size=" + std::to_string(size) + "&numbered=1");
  const auto out = s.dir.file("kill");
  t::process client(h2_get_argv(s, out, paths));
  // Both workers are in a handler of this connection.
  REQUIRE(both_workers_busy(s, base0, base1));
  REQUIRE(::kill(pids[0], SIGKILL) == 0);
  REQUIRE(client.wait(60s));
  auto res = as_json(client.stdout_text());
  INFO(client.stdout_text() << client.stderr_text());
  REQUIRE(res["streams"].size() == paths.size());
  CHECK(res.value("closed", true) == false);  // the connection survived
  CHECK(res["goaway"].is_null());
  const auto expected = numbered_body(chunks, size);
  int complete = 0, reset = 0;
  for (std::size_t i = 0; i < paths.size(); ++i) {
    const auto& st = res["streams"][i];
    auto body = body_of(out, i);
    INFO(st.dump() << " bytes " << body.size());
    if (st.value("complete", false)) {
      CHECK(st.value("status", 0) == 200);
      CHECK(body.size() == expected.size());
      CHECK(body == expected);
      ++complete;
    } else {
      CHECK(st["reset"] == 2);  // INTERNAL_ERROR
      ++reset;
    }
  }
  // The surviving worker's two streams completed (the second one started after the kill);
  // the killed worker's two were reset.
  CHECK(complete == 2);
  CHECK(reset == 2);
  CHECK(s.wait_log("worker 0 went away: its 2 HTTP/2 stream\\(s\\) reset", 5s));
  CHECK(s.wait_log("exited unexpectedly: killed by signal 9", 5s));
  // The replacement serves new connections; the killed pid is gone.
  for (int k = 0; k < 300; ++k) {
    auto now = s.worker_pids(s.stats());
    if (now.size() == 2 && now[0] > 0 && now[0] != pids[0]) break;
    std::this_thread::sleep_for(10ms);
  }
  CHECK(serves(s.port));
  s.stop_and_check();
}

TEST_CASE("http2 process mode: a reload lets every stream of a connection finish where it runs",
          "[http2][process][reload]") {
  REQUIRE(http::have_tool("python3"));
  h2_pki pki;
  srv::server_under_test s(process_keys("round_robin"), config(pki));
  auto before = s.stats();
  auto pids = s.worker_pids(before);
  REQUIRE(pids.size() == 2);
  const std::int64_t base0 = messages_of(before, 0), base1 = messages_of(before, 1);
  std::vector<std::string> paths;
  for (int i = 0; i < 4; ++i) paths.push_back("/r" + std::to_string(i) + "?delay=1500&chunks=16&size=65536&numbered=1");
  const auto out = s.dir.file("reload");
  t::process client(h2_get_argv(s, out, paths));
  REQUIRE(both_workers_busy(s, base0, base1));
  REQUIRE(::kill(s.proc->pid(), SIGUSR1) == 0);
  REQUIRE(s.wait_log("reload done", 10s));
  REQUIRE(client.wait(60s));
  auto res = as_json(client.stdout_text());
  INFO(client.stdout_text() << client.stderr_text());
  REQUIRE(res["streams"].size() == paths.size());
  CHECK(res.value("closed", true) == false);
  const auto expected = numbered_body(16, 65536);
  for (std::size_t i = 0; i < paths.size(); ++i) {
    INFO(res["streams"][i].dump());
    CHECK(res["streams"][i].value("complete", false));
    CHECK(body_of(out, i) == expected);
  }
  s.extra_pids = pids;  // the replaced processes are gone by the end too
  s.stop_and_check();
}

TEST_CASE("http2 process mode: kill -9 of a process that is leaving after a reload resets its streams at once, "
          "not at the idle timeout",
          "[http2][process][reload][crash]") {
  REQUIRE(http::have_tool("python3"));
  h2_pki pki;
  // The idle timeout is far beyond the client's wait: a reset can only come from the kill.
  srv::server_under_test s(process_keys("round_robin"), config(pki, "h2_idle_stream_timeout = \"60s\"\n"));
  auto before = s.stats();
  auto pids = s.worker_pids(before);
  REQUIRE(pids.size() == 2);
  const std::int64_t base0 = messages_of(before, 0), base1 = messages_of(before, 1);
  // Streams of about 4 s (below max_wait_time, 5 s): the leaving processes still run them
  // when the first one is killed.
  std::vector<std::string> paths;
  for (int i = 0; i < 4; ++i) paths.push_back("/d" + std::to_string(i) + "?delay=4000&chunks=16&size=65536&numbered=1");
  const auto out = s.dir.file("drainkill");
  t::process client(h2_get_argv(s, out, paths));
  REQUIRE(both_workers_busy(s, base0, base1));
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(::kill(s.proc->pid(), SIGUSR1) == 0);
  // The old processes were told to stop once their replacements serve ("reload done" comes
  // only after they exit); give the reactor a moment to take their drain notes.
  REQUIRE(s.wait_log("stopping: reload", 10s));
  std::this_thread::sleep_for(500ms);
  REQUIRE(::kill(pids[0], SIGKILL) == 0);
  REQUIRE(client.wait(30s));
  const auto took = std::chrono::steady_clock::now() - t0;
  auto res = as_json(client.stdout_text());
  INFO(client.stdout_text() << client.stderr_text());
  REQUIRE(res["streams"].size() == paths.size());
  CHECK(res.value("closed", true) == false);
  const auto expected = numbered_body(16, 65536);
  int complete = 0, reset = 0;
  for (std::size_t i = 0; i < paths.size(); ++i) {
    const auto& st = res["streams"][i];
    INFO(st.dump());
    if (st.value("complete", false)) {
      CHECK(body_of(out, i) == expected);
      ++complete;
    } else {
      CHECK(st["reset"] == 2);  // INTERNAL_ERROR
      ++reset;
    }
  }
  // The killed process's two streams were reset; the other process's two completed.
  CHECK(reset == 2);
  CHECK(complete == 2);
  CHECK(took < 20s);
  CHECK(s.wait_log("the leaving process of worker 0 went away: its 2 HTTP/2 stream\\(s\\) reset", 5s));
  s.extra_pids = pids;
  s.stop_and_check();
}

TEST_CASE("http2: 8 MiB and 32 MiB responses (written, and files) wait for room instead of failing",
          "[http2][large]") {
  REQUIRE(http::have_tool("python3"));
  const std::string mode = GENERATE(as<std::string>{}, "base", "process", "process_rr");
  INFO("mode " << mode);
  // The output limit is the default 8 MiB: every response here is at least that large.
  srv::server_under_test s(server_keys(mode),
                           "[[listen]]\nurl = \"http://127.0.0.1:{port}\"\nroutes = [ { path = \"/static\", module = "
                           "\"files\" }, { path = \"/\", module = \"echo\" } ]\n\n[modules.files]\ntype = "
                           "\"http_static\"\nroot = \"{dir}\"\nstrip_prefix = \"/static/\"\n" +
                               std::string(http::kModules));
  const auto eight = numbered_body(8, 1 << 20), thirty_two = numbered_body(32, 1 << 20);
  s.dir.write("f8.bin", eight);
  s.dir.write("f32.bin", thirty_two);
  // At once on one connection: responses written in 1 MiB pieces by http_echo (each writer
  // waits while the client reads; with round_robin two workers write at the same time) and
  // files sent by http_static (read by the worker on an HTTP/2 stream).
  const std::vector<std::string> paths{"/big0?chunks=8&size=1048576&numbered=1", "/big1?chunks=8&size=1048576&numbered=1",
                                       "/huge?chunks=32&size=1048576&numbered=1", "/static/f8.bin", "/static/f32.bin"};
  const auto out = s.dir.file("large");
  auto res = h2_get(s, out, paths);
  for (std::size_t i = 0; i < paths.size(); ++i) {
    const auto& st = res["streams"][i];
    auto body = body_of(out, i);
    INFO(paths[i] << ": " << st.dump());
    CHECK(st.value("status", 0) == 200);
    CHECK(st.value("complete", false));
    const auto& want = i == 2 || i == 4 ? thirty_two : eight;
    CHECK(body.size() == want.size());
    CHECK(body == want);
  }
  CHECK(s.count_log("send queue full|output buffer full|not sent") == 0);
  s.stop_and_check();
}

TEST_CASE("http2: an h2c_only listener speaks HTTP/2 by prior knowledge only", "[http2]") {
  const std::string mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  srv::server_under_test s(server_keys(mode), "[[listen]]\nurl = \"http://127.0.0.1:{port}\"\nmodule = \"echo\"\n"
                                              "h2c_only = true\n" + std::string(http::kModules));
  CHECK(serves(s.port));
  // HTTP/1.1 (or an Upgrade: h2c request) is not spoken here: HTTP/2 judges the preface.
  t::process p({"python3", std::string(SWACTOR_H2_SCRIPTS) + "/h2_attack.py", std::to_string(s.port), "http1_request"});
  REQUIRE(p.wait(20s));
  INFO(p.stderr_text());
  auto j = as_json(p.stdout_text());
  INFO(j.dump());
  CHECK(j["goaway"] == 1);  // PROTOCOL_ERROR
  CHECK(j["http1"] == false);
  CHECK(j["closed"] == true);
  auto up = curl("--http1.1 -H 'Upgrade: h2c' -H 'HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA' http://127.0.0.1:" +
                 std::to_string(s.port) + "/");
  CHECK(up.exit_code != 0);
  CHECK(up.version != "1.1");
  CHECK(serves(s.port));  // the others' connections are untouched
  s.stop_and_check();
}
