// Answering an HTTP request from another process, in both modes: http_echo's
// `answer_from=task` detaches the response and a task worker answers it (whole or
// streamed); handles that are used up, unknown or malformed give a clear error in the task
// worker (reported in X-Again / X-Also), never a crash; a detached response that never
// comes ends in 504 after detached_response_timeout.
#include "http_helpers.hpp"
#include "swactor/actors/http.hpp"

using namespace std::chrono_literals;
namespace t = swactor::testing;
using namespace swactor::testing::server;
namespace http = swactor::testing::http;

namespace {
const std::string kGone = "no such HTTP request to answer";

std::string keys(const std::string& mode) { return http::server_keys(mode) + "\ntask_workers = 1"; }

http::response get(conn& c, const std::string& target) {
  REQUIRE(c.send_all(http::get(target)));
  auto r = http::read_response(c);
  REQUIRE(r);
  return *r;
}
}  // namespace

TEST_CASE("http detach: a task worker answers the request, whole and streamed", "[http][detach]") {
  const std::string mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  server_under_test srv(keys(mode), http::echo_listener("detached_response_timeout = \"2s\""));
  const int workers = mode == "base" ? 1 : 2;
  auto c = connect_tcp("127.0.0.1", srv.port);
  REQUIRE(c);

  // Whole.
  auto r = get(c, "/t/a?answer_from=task");
  INFO(r.body);
  CHECK(r.status == 200);
  REQUIRE(r.header("X-Answered-By"));
  CHECK(*r.header("X-Answered-By") == "task " + std::to_string(workers));
  CHECK(r.echo()["path"] == "/t/a");
  CHECK(r.echo()["method"] == "GET");
  // The handle could be claimed once only.
  REQUIRE(r.header("X-Again"));
  CHECK(r.header("X-Again")->find(kGone) == 0);
  REQUIRE(r.header("X-Handle"));
  const std::string used = *r.header("X-Handle");

  // Streamed: 300 chunks of 64 KiB through the bus with backpressure.
  r = get(c, "/t/s?answer_from=task&chunks=300&size=65536");
  CHECK(r.status == 200);
  REQUIRE(r.header("Transfer-Encoding"));
  CHECK(r.body.size() == 300u * 65536);
  CHECK(r.body.find_first_not_of('x') == std::string::npos);

  // Used-up, unknown and malformed handles: a clear error in the task worker.
  r = get(c, "/t/b?answer_from=task&also=" + used);
  CHECK(r.status == 200);
  REQUIRE(r.header("X-Also"));
  CHECK(r.header("X-Also")->find(kGone) == 0);
  r = get(c, "/t/c?answer_from=task&also=swactor-response:0:987654321:424242");
  REQUIRE(r.header("X-Also"));
  CHECK(r.header("X-Also")->find(kGone) == 0);
  r = get(c, "/t/d?answer_from=task&also=swactor-response:77:1:1");  // no such worker
  REQUIRE(r.header("X-Also"));
  CHECK(r.header("X-Also")->find(kGone) == 0);
  r = get(c, "/t/e?answer_from=task&also=junk");
  REQUIRE(r.header("X-Also"));
  CHECK(*r.header("X-Also") == "undecodable handle");

  // Pipelined: the detached answer keeps its place before the next response.
  REQUIRE(c.send_all(http::get("/p/1?answer_from=task&chunks=20&size=65536") + http::get("/p/2")));
  auto first = http::read_response(c);
  auto second = http::read_response(c);
  REQUIRE(first);
  REQUIRE(second);
  CHECK(first->header("X-Answered-By"));
  CHECK(first->body.size() == 20u * 65536);
  CHECK(second->echo()["path"] == "/p/2");

  // Never answered: 504 after detached_response_timeout, with a log line.
  auto c2 = connect_tcp("127.0.0.1", srv.port);
  REQUIRE(c2);
  r = get(c2, "/t/never?answer_from=task&never=1");
  CHECK(r.status == 504);
  CHECK(srv.wait_log("detached response to GET /t/never\\?answer_from=task&never=1 did not end", 5s));
  CHECK(srv.wait_log("asked for the response to request", 5s));

  // Still serving.
  auto c3 = connect_tcp("127.0.0.1", srv.port);
  REQUIRE(c3);
  CHECK(get(c3, "/after").status == 200);
  srv.stop_and_check();
}

TEST_CASE("http detach: over HTTP/2 a task worker answers a stream, the connection's other streams go on",
          "[http][detach][http2]") {
  REQUIRE(http::have_tool("curl"));
  const std::string mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  server_under_test srv(keys(mode), http::echo_listener("detached_response_timeout = \"2s\""));
  const std::string base = "http://127.0.0.1:" + std::to_string(srv.port);
  // Three streams on one connection: whole, streamed (through the bus, with backpressure),
  // and one answered by the worker itself, in parallel.
  auto r = swactor::testing::run({"sh", "-c",
                   "curl -sS --max-time 20 --http2-prior-knowledge --parallel --parallel-immediate -D - "
                   "-o " + srv.dir.path().string() + "/a.json '" + base + "/t/a?answer_from=task' "
                   "-o " + srv.dir.path().string() + "/s.bin '" + base + "/t/s?answer_from=task&chunks=40&size=65536' "
                   "-o " + srv.dir.path().string() + "/n.json '" + base + "/t/n'"},
                  30s);
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("HTTP/2 200") != std::string::npos);
  CHECK(r.out.find("x-answered-by: task") != std::string::npos);
  auto read = [&](const std::string& name) { return swactor::testing::read_file(srv.dir.file(name)); };
  CHECK(http::as_json(read("a.json")).value("path", "") == "/t/a");
  const auto s = read("s.bin");
  CHECK(s.size() == 40u * 65536);
  CHECK(s.find_first_not_of('x') == std::string::npos);
  CHECK(http::as_json(read("n.json")).value("path", "") == "/t/n");
  // Never answered: that stream gets a 504, the connection is not closed for it.
  auto never = swactor::testing::run({"curl", "-sS", "--max-time", "20", "--http2-prior-knowledge", "-o", "/dev/null", "-w",
                       "%{http_code} %{http_version}", base + "/t/never?answer_from=task&never=1"},
                      30s);
  CHECK(never.out == "504 2");
  CHECK(srv.count_log("detach failed") == 0);
  srv.stop_and_check();
}

TEST_CASE("http detach: a response detached before a reload is answered by the process that holds it",
          "[http][detach][reload]") {
  const std::string mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  server_under_test srv(keys(mode) + "\nmax_wait_time = \"8s\"", http::echo_listener("detached_response_timeout = \"6s\""));
  auto c = connect_tcp("127.0.0.1", srv.port);
  REQUIRE(c);
  // The task claims the response 1.5 s later, after a reload replaced the worker (and the
  // task worker): the claim must reach the retiring process that holds the request, not
  // the new one of the same worker id ("no such HTTP request" and a 504, before).
  REQUIRE(c.send_all(http::get("/late?answer_from=task&task_delay=1500")));
  std::this_thread::sleep_for(200ms);
  REQUIRE(::kill(std::stoi(t::read_file(srv.pid_file)), SIGUSR1) == 0);
  auto r = http::read_response(c);
  REQUIRE(r);
  INFO(r->body);
  CHECK(r->status == 200);
  CHECK(r->echo()["path"] == "/late");
  REQUIRE(r->header("X-Handle"));
  auto h = swactor::http::response_handle::decode(*r->header("X-Handle"));
  REQUIRE(h);
  CHECK(h->pid != 0);
  CHECK(srv.wait_log("reload done", 10s));
  srv.stop_and_check();
}
