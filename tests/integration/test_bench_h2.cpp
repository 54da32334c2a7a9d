// `swactor bench -f h2`: the arguments (https:// and h2c:// targets, -m as --streams), then
// the real binary against a running swactor over h2c (prior knowledge) and h2 over TLS
// (ALPN), in both server modes: every request completes, none fails, and the streams of one
// connection are on the wire at once; against a listener without h2c every request fails.
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "args.hpp"
#include "bench_run.hpp"
#include "harness.hpp"
#include "http_helpers.hpp"
#include "server_helpers.hpp"
#include "test_pki.hpp"

using namespace std::chrono_literals;
namespace t = swactor::testing;
namespace b = swactor::bench;
namespace srv = swactor::testing::server;
namespace http = swactor::testing::http;

namespace {

struct h2_pki : t::pki::test_ca {
  h2_pki() : test_ca("swactor bench h2 CA", "swactor-bench-h2") {
    REQUIRE(issue("server", "localhost", "DNS:localhost,IP:127.0.0.1"));
  }
};

// {port}: http:// (h2c on by default), {port2}: https:// with ALPN h2, {port3}: h2c = false.
std::string config(const h2_pki& pki) {
  const std::string routes = "routes = [ { path = \"/\", module = \"hello\" } ]\n";
  return "[[listen]]\nurl = \"http://127.0.0.1:{port}\"\n" + routes +
         "\n[[listen]]\nurl = \"https://127.0.0.1:{port2}\"\n" + routes + "tls = { cert = \"" +
         pki.path("server.pem") + "\", key = \"" + pki.path("server.key") +
         "\", alpn = [\"h2\", \"http/1.1\"] }\n" + "\n[[listen]]\nurl = \"http://127.0.0.1:{port3}\"\n" +
         routes + "h2c = false\n" + http::kModules;
}

b::settings parse_ok(const std::vector<std::string>& args) {
  auto p = b::parse_args(args);
  INFO(p.message);
  REQUIRE(p.config);
  return *p.config;
}

std::string parse_error(const std::vector<std::string>& args) {
  auto p = b::parse_args(args);
  REQUIRE_FALSE(p.config);
  return p.message;
}

}  // namespace

TEST_CASE("bench h2: arguments", "[bench][http2]") {
  auto s = parse_ok({"-s", "https://localhost/p", "-f", "h2", "-n", "10", "-m", "7"});
  CHECK(s.server.tls);
  CHECK(s.server.port == 443);
  CHECK(s.server.http_path == "/p");
  CHECK(s.pipeline == 7);
  s = parse_ok({"-s", "h2c://127.0.0.1:8080", "-f", "h2", "-n", "10", "--streams", "3", "-c", "2"});
  CHECK(s.server.h2c);
  CHECK(s.server.port == 8080);
  CHECK(s.pipeline == 3);
  CHECK(parse_ok({"-s", "http://127.0.0.1:80/", "-f", "h2", "-d", "1s"}).mode == "h2");
  // The HTTP/1.1 modes have no TLS and no h2c; h2 has no --rate, no Connection header.
  CHECK(parse_error({"-s", "https://127.0.0.1/", "-f", "http", "-n", "1"}).find("does not run over") !=
        std::string::npos);
  CHECK(parse_error({"-s", "h2c://127.0.0.1/", "-f", "http", "-n", "1"}).find("does not run over") !=
        std::string::npos);
  CHECK(parse_error({"-s", "tcp://127.0.0.1:1", "-f", "h2", "-n", "1"}).find("does not run over") !=
        std::string::npos);
  CHECK(parse_error({"-s", "http://127.0.0.1/", "-f", "h2", "-n", "1", "--rate", "10"}).find("--rate") !=
        std::string::npos);
  CHECK(parse_error({"-s", "http://127.0.0.1/", "-f", "h2", "-n", "1", "--header", "Connection: x"})
            .find("not allowed in HTTP/2") != std::string::npos);
}

TEST_CASE("bench h2: swactor bench -f h2 against swactor over h2c and TLS", "[bench][http2]") {
  REQUIRE(http::have_tool("openssl"));
  const std::string mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  h2_pki pki;
  srv::server_under_test s(http::server_keys(mode), config(pki));
  const auto port = std::to_string(s.port);

  const std::vector<std::string> urls = {"http://127.0.0.1:" + port + "/a", "h2c://127.0.0.1:" + port + "/b",
                                         "https://127.0.0.1:" + std::to_string(s.port2) + "/c"};
  for (const auto& url : urls) {
    INFO(url);
    // -c 3 -m 10: every connection puts its first ten requests on the wire in one write,
    // so a tester that waited for each reply before the next request reports 1 here.
    auto r = t::run_bench({"-s", url, "-f", "h2", "-n", "3000", "-c", "3", "-m", "10", "--verify",
                           "--verify-body", "Hello World"});
    INFO(r.r.out << r.r.err);
    CHECK(r.r.exit_code == 0);
    CHECK(r.report["ok"] == 3000);
    CHECK(r.report["error_total"] == 0);
    CHECK(r.report["status"]["2xx"] == 3000);
    CHECK(r.report["peak_streams"] == 10);
    CHECK(r.report["connections"] == 3);
    CHECK(r.report["latency_us"]["p99"].get<double>() > 0);
  }

  // A request body goes out as DATA frames (the hello route answers any method).
  auto r = t::run_bench({"-s", "https://127.0.0.1:" + std::to_string(s.port2) + "/post", "-f", "h2", "-n",
                         "200", "-c", "1", "-m", "20", "--method", "POST", "--body", std::string(40000, 'x')});
  INFO(r.r.out << r.r.err);
  CHECK(r.report["ok"] == 200);
  CHECK(r.report["error_total"] == 0);
  CHECK(r.report["bytes_sent"].get<std::uint64_t>() > 200u * 40000u);

  // No h2c on this listener: the preface is refused, every request fails, none counts ok.
  r = t::run_bench({"-s", "http://127.0.0.1:" + std::to_string(s.port3) + "/", "-f", "h2", "-n", "20", "-c",
                    "1", "-m", "5", "--timeout", "3s"});
  INFO(r.r.out << r.r.err);
  CHECK(r.report["ok"] == 0);
  CHECK(r.report["error_total"] == 20);
}
