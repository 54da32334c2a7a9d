// Streaming in both directions, in both modes: a client that never reads a streamed
// response holds the handler (its writes wait), not the server's memory; a route with
// stream_body hands a large upload to the handler piece by piece.
#include "http_helpers.hpp"

using namespace std::chrono_literals;
namespace t = swactor::testing;
using namespace swactor::testing::server;
namespace http = swactor::testing::http;

TEST_CASE("http: a client that never reads a streamed response keeps the server's memory bounded",
          "[http][streaming]") {
  const std::string mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  server_under_test srv(http::server_keys(mode), http::echo_listener("output_buffer_size = \"256KiB\""));
  const auto workers = srv.worker_pids(srv.stats());
  REQUIRE(!workers.empty());
  const pid_t master = srv.proc->pid();
  auto total_rss = [&] {
    long sum = rss_kib(master);  // process mode: the reactors live here
    for (auto w : workers) sum += rss_kib(w);
    return sum;
  };
  const long before = total_rss();
  REQUIRE(before > 0);

  auto c = connect_tcp("127.0.0.1", srv.port);
  REQUIRE(c);
  // 4,000 chunks of 64 KiB = 250 MiB if nothing held the handler back; never read.
  REQUIRE(c.send_all(http::get("/stream?chunks=4000&size=65536")));
  long peak = before;
  for (int i = 0; i < 30; ++i) {
    std::this_thread::sleep_for(100ms);
    peak = std::max(peak, total_rss());
  }
  INFO("server RSS before " << before << " KiB, peak " << peak << " KiB");
  // The socket buffers hold a few MiB, the queue 256 KiB, each backpressure step 64 KiB.
  CHECK(peak - before < 48 * 1024);

  // Other clients are served meanwhile.
  auto other = connect_tcp("127.0.0.1", srv.port);
  REQUIRE(other);
  REQUIRE(other.send_all(http::get("/other")));
  auto r = http::read_response(other);
  REQUIRE(r);
  CHECK(r->status == 200);

  // The reader goes away: the writer learns it (its write fails), nothing leaks or hangs.
  c.reset();
  CHECK(srv.wait_log("the client went away before the response ended|could not be sent", 40s));
  CHECK(srv.count_log("returned without ending the response") == 0);  // not the module's failure
  REQUIRE(other.send_all(http::get("/after")));
  r = http::read_response(other);
  REQUIRE(r);
  CHECK(r->status == 200);
  srv.stop_and_check();
}

TEST_CASE("http: a stream_body route gets a large upload piece by piece, with 100-continue", "[http][streaming]") {
  const std::string mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  server_under_test srv(http::server_keys(mode), R"([[listen]]
url = "http://127.0.0.1:{port}"
max_body_size = "16MiB"
routes = [ { path = "/up/", module = "echo", stream_body = true }, { path = "/", module = "echo" } ]
)" + std::string(http::kModules));

  std::string body(3 << 20, '\0');
  for (std::size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>((i * 131) ^ (i >> 9));
  for (bool chunked : {false, true}) {
    INFO((chunked ? "chunked" : "Content-Length"));
    auto c = connect_tcp("127.0.0.1", srv.port);
    REQUIRE(c);
    std::string head = "POST /up/file HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\n";
    head += chunked ? "Transfer-Encoding: chunked\r\n\r\n" : "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
    REQUIRE(c.send_all(head));
    // The handler asks for the body: 100 Continue comes before any of it is sent.
    auto interim = c.read_until(
        [](const std::string& b) -> std::size_t {
          auto end = b.find("\r\n\r\n");
          return end == std::string::npos ? 0 : end + 4;
        },
        5s);
    REQUIRE(interim);
    CHECK(interim->rfind("HTTP/1.1 100 Continue\r\n", 0) == 0);
    if (chunked) {
      for (std::size_t off = 0; off < body.size(); off += 100000) {
        auto piece = std::string_view(body).substr(off, 100000);
        char size_line[32];
        std::snprintf(size_line, sizeof size_line, "%zx\r\n", piece.size());
        REQUIRE(c.send_all(size_line));
        REQUIRE(c.send_all(piece));
        REQUIRE(c.send_all("\r\n"));
      }
      REQUIRE(c.send_all("0\r\nX-Checksum: done\r\n\r\n"));
    } else {
      REQUIRE(c.send_all(body));
    }
    auto r = http::read_response(c, 20s);
    REQUIRE(r);
    REQUIRE(r->status == 200);
    auto j = r->echo();
    CHECK(j.value("body_base64", "") == http::base64_encode(body));
    CHECK(j.value("streamed_pieces", 0) > 1);  // it came in pieces, not whole
    if (chunked) CHECK(j.at("trailers").dump() == R"([["X-Checksum","done"]])");
  }
  // A route without stream_body gets the same upload whole (gathered before the handler).
  auto c = connect_tcp("127.0.0.1", srv.port);
  REQUIRE(c);
  REQUIRE(c.send_all(http::post("/whole", body)));
  auto r = http::read_response(c, 20s);
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->echo().value("streamed_pieces", -1) == 0);
  CHECK(r->echo().value("body_base64", "") == http::base64_encode(body));
  srv.stop_and_check();
}

TEST_CASE("http: a handler that throws or does not answer gets a 500 and a log line, the worker goes on",
          "[http][errors]") {
  const std::string mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  server_under_test srv(http::server_keys(mode), http::echo_listener());
  auto c = connect_tcp("127.0.0.1", srv.port);
  REQUIRE(c);
  for (std::string how : {"throw", "noend"}) {
    INFO("fail=" << how);
    REQUIRE(c.send_all(http::get("/broken/" + how + "?fail=" + how)));
    auto r = http::read_response(c);
    REQUIRE(r);
    CHECK(r->status == 500);
    // The log names the module, the method and the path.
    CHECK(srv.wait_log("module echo failed in on_request for GET /broken/" + how, 5s));
  }
  // The same connection and worker go on.
  REQUIRE(c.send_all(http::get("/fine")));
  auto r = http::read_response(c);
  REQUIRE(r);
  CHECK(r->status == 200);
  srv.stop_and_check();
}

TEST_CASE("http: send_timeout bounds how long a large end() body waits for a client that does not read",
          "[http][streaming]") {
  const std::string mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  server_under_test srv(http::server_keys(mode),
                        http::echo_listener("output_buffer_size = \"256KiB\"\nsend_timeout = \"1s\""));
  auto c = connect_tcp("127.0.0.1", srv.port);
  REQUIRE(c);
  // 64 MiB the client never reads: far more than the socket buffers and the output limit.
  REQUIRE(c.send_all(http::get("/big?now=big&size=67108864")));
  CHECK(srv.wait_log("the body of the response to GET /big \\(67108864 bytes\\) could not be sent: .*; closing "
                     "the connection",
                     20s));
  CHECK(c.wait_closed(30s));  // what was queued drains, then the end
  // Others are served meanwhile and after.
  auto other = connect_tcp("127.0.0.1", srv.port);
  REQUIRE(other);
  REQUIRE(other.send_all(http::get("/other")));
  auto r = http::read_response(other);
  REQUIRE(r);
  CHECK(r->status == 200);
  srv.stop_and_check();
}

TEST_CASE("http: end() with a body larger than the output limit waits for the client instead of failing",
          "[http][streaming]") {
  const std::string mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  // 256 KiB of output room: the JSON echo of a 3 MiB upload (about 7 MiB with its base64)
  // and an inline handler's 6 MiB body are each far larger.
  server_under_test srv(http::server_keys(mode), http::echo_listener("output_buffer_size = \"256KiB\""));
  auto c = connect_tcp("127.0.0.1", srv.port);
  REQUIRE(c);
  std::string upload(3 << 20, 'u');
  for (std::size_t i = 0; i < upload.size(); i += 4096) upload[i] = static_cast<char>('a' + (i / 4096) % 26);
  for (int round = 0; round < 2; ++round) {  // twice on one connection: it stays good
    INFO("round " << round);
    REQUIRE(c.send_all(http::post("/echo", upload)));
    auto r = http::read_response(c, 30s);
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->echo().value("body", "") == upload);
    // An inline handler (on_request_now) ending with 6 MiB, then a small request behind it.
    REQUIRE(c.send_all(http::get("/big?now=big&size=6291456") + http::get("/after")));
    r = http::read_response(c, 30s);
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == std::string(6 << 20, 'b'));
    r = http::read_response(c, 10s);
    REQUIRE(r);
    CHECK(r->echo().value("path", "") == "/after");
  }
  CHECK(srv.count_log("could not be sent") == 0);
  srv.stop_and_check();
}
