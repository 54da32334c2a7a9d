// `swactor bench` (the real binary) against swactor_test_echo, in every mode.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "bench_run.hpp"
#include "harness.hpp"

using namespace std::chrono_literals;
namespace t = swactor::testing;
using nlohmann::json;

namespace {

// The echo server on TCP + UDP (same port) + a Unix socket, in a temp dir.
struct echo_server {
  t::temp_dir dir{"swactor-echo"};
  std::string unix_path;
  std::optional<t::process> proc;
  std::string port;

  explicit echo_server(bool faulty = false) {
    unix_path = dir.file("echo.sock").string();
    std::vector<std::string> argv = {t::echo_server_bin(), "--tcp", "127.0.0.1:0", "--udp",
                                     "--unix", unix_path};
    if (faulty) argv.push_back("--faulty");
    proc.emplace(argv);
    auto p = proc->wait_for("^port=(\\d+)$", 5s);
    REQUIRE(p);
    port = *p;
  }
  std::string tcp() const { return "tcp://127.0.0.1:" + port; }
  std::string udp() const { return "udp://127.0.0.1:" + port; }
  std::string unix_url() const { return "unix://" + unix_path; }
};

using t::bench_run;

std::uint64_t errors_of(const json& j, const char* kind) {
  return j.at("errors").at(kind).get<std::uint64_t>();
}

void require_clean(const bench_run& b, std::uint64_t n) {
  INFO("stdout: " << b.r.out << "\nstderr: " << b.r.err << "\nreport: " << b.report.dump(1));
  CHECK(b.r.exit_code == 0);
  CHECK(b.report.at("requests").get<std::uint64_t>() == n);
  CHECK(b.report.at("ok").get<std::uint64_t>() == n);
  CHECK(b.report.at("error_total").get<std::uint64_t>() == 0);
  CHECK(errors_of(b.report, "mismatch") == 0);
  CHECK(b.report.at("latency_us").at("p50").get<double>() > 0);
  CHECK(b.report.at("rps").get<double>() > 0);
  if (b.report.at("settings").at("mode") != "connect") CHECK(b.report.at("bytes_per_s").get<double>() > 0);
}

}  // namespace

TEST_CASE("bench: every mode against the echo server, verified, exact count") {
  echo_server echo;
  const std::string n = "2000";
  struct variant {
    std::string name;
    std::vector<std::string> args;
  };
  const std::vector<variant> variants = {
      {"long_tcp", {"-s", echo.tcp(), "-f", "long_tcp", "-c", "8"}},
      {"long_tcp 2 threads", {"-s", echo.tcp(), "-f", "long_tcp", "-c", "5", "-t", "2"}},
      {"long_tcp pipeline", {"-s", echo.tcp(), "-f", "long_tcp", "-c", "4", "--pipeline", "8"}},
      {"long_tcp big", {"-s", echo.tcp(), "-f", "long_tcp", "-c", "2", "--size", "100000", "--pipeline", "3"}},
      {"short_tcp", {"-s", echo.tcp(), "-f", "short_tcp", "-c", "4"}},
      {"udp", {"-s", echo.udp(), "-f", "udp", "-c", "4", "--size", "512"}},
      {"unix", {"-s", echo.unix_url(), "-f", "unix", "-c", "4"}},
      {"unix pipeline", {"-s", echo.unix_url(), "-f", "unix", "-c", "2", "--pipeline", "4"}},
      {"eof", {"-s", echo.tcp(), "-f", "eof", "-c", "4", "--eof", "\\r\\n", "--pipeline", "4"}},
      {"eof custom", {"-s", echo.tcp(), "-f", "eof", "-c", "4", "--eof", "#END\\x00"}},
      {"length", {"-s", echo.tcp(), "-f", "length", "-c", "4", "--pipeline", "4"}},
      {"length 2 LE offsets",
       {"-s", echo.tcp(), "-f", "length", "-c", "4", "--length-size", "2", "--length-offset", "3",
        "--body-offset", "8", "--little-endian"}},
      {"length 8 signed",
       {"-s", echo.tcp(), "-f", "length", "-c", "4", "--length-size", "8", "--signed", "--body-offset", "8"}},
      {"length whole frame", {"-s", echo.tcp(), "-f", "length", "-c", "4", "--body-offset", "0"}},
      {"length Swoole N", {"-s", echo.tcp(), "-f", "length", "-c", "4", "--length-type", "N"}},
      {"length 1", {"-s", echo.tcp(), "-f", "length", "-c", "4", "--length-size", "1", "--size", "200"}},
      {"connect", {"-s", echo.tcp(), "-f", "connect", "-c", "4"}},
      {"connect unix", {"-s", echo.unix_url(), "-f", "connect", "-c", "4"}},
  };
  for (const auto& v : variants) {
    SECTION(v.name) {
      auto args = v.args;
      args.insert(args.end(), {"-n", n, "--verify"});
      auto b = t::run_bench(args);
      require_clean(b, 2000);
      CHECK(b.report.at("settings").at("mode") == args[3]);
      CHECK(b.report.at("environment").at("cores").get<int>() >= 1);
    }
  }
}

TEST_CASE("bench: -d ends on time") {
  echo_server echo;
  auto b = t::run_bench({"-s", echo.tcp(), "-f", "long_tcp", "-c", "4", "-d", "500ms", "--verify"});
  INFO(b.r.out << b.r.err);
  CHECK(b.r.exit_code == 0);
  const double d = b.report.at("duration_s").get<double>();
  CHECK(d >= 0.5);
  CHECK(d < 2.0);
  CHECK(b.r.elapsed_s < 5.0);
  CHECK(b.report.at("requests").get<std::uint64_t>() > 100);
  CHECK(b.report.at("error_total").get<std::uint64_t>() == 0);
}

TEST_CASE("bench: --rate sends on a fixed schedule") {
  echo_server echo;
  // 1000 requests at 2000/s take about 0.5 s whatever the server's speed.
  auto b = t::run_bench({"-s", echo.tcp(), "-f", "long_tcp", "-c", "4", "-n", "1000", "--rate", "2000"});
  require_clean(b, 1000);
  const double d = b.report.at("duration_s").get<double>();
  CHECK(d >= 0.45);
  CHECK(d < 1.5);
}

TEST_CASE("bench: faulty server: errors by kind, exact count, ends on time") {
  echo_server echo(/*faulty=*/true);
  SECTION("long_tcp") {
    // 30 connections: some are the server's 10th/20th/30th, closed at accept or after a
    // request; every 100th reply is corrupted.
    auto b = t::run_bench({"-s", echo.tcp(), "-f", "long_tcp", "-c", "30", "-n", "3000", "--verify",
                    "--timeout", "2s"});
    INFO(b.r.out << b.r.err << b.report.dump(1));
    CHECK(b.r.exit_code == 1);
    CHECK(b.report.at("requests").get<std::uint64_t>() == 3000);
    CHECK(errors_of(b.report, "mismatch") > 0);
    CHECK(errors_of(b.report, "short_read") + errors_of(b.report, "reset") > 0);
    CHECK(errors_of(b.report, "timeout") == 0);
    CHECK(b.report.at("ok").get<std::uint64_t>() + b.report.at("error_total").get<std::uint64_t>() ==
          3000);
    CHECK(b.r.elapsed_s < 10);
  }
  SECTION("long_tcp pipelined") {
    auto b = t::run_bench({"-s", echo.tcp(), "-f", "long_tcp", "-c", "30", "-n", "3000", "--verify",
                    "--pipeline", "4", "--timeout", "2s"});
    INFO(b.r.out << b.r.err << b.report.dump(1));
    CHECK(b.r.exit_code == 1);
    CHECK(b.report.at("requests").get<std::uint64_t>() == 3000);
    CHECK(errors_of(b.report, "mismatch") > 0);
    CHECK(errors_of(b.report, "short_read") + errors_of(b.report, "reset") > 0);
    CHECK(b.r.elapsed_s < 10);
  }
  SECTION("short_tcp") {
    auto b = t::run_bench({"-s", echo.tcp(), "-f", "short_tcp", "-c", "4", "-n", "1000", "--verify"});
    INFO(b.r.out << b.r.err << b.report.dump(1));
    CHECK(b.r.exit_code == 1);
    CHECK(b.report.at("requests").get<std::uint64_t>() == 1000);
    CHECK(errors_of(b.report, "short_read") + errors_of(b.report, "reset") >= 50);
    CHECK(errors_of(b.report, "mismatch") > 0);
  }
  SECTION("udp") {
    auto b = t::run_bench({"-s", echo.udp(), "-f", "udp", "-c", "4", "-n", "1000", "--verify"});
    CHECK(b.r.exit_code == 1);
    CHECK(errors_of(b.report, "mismatch") == 10);
    CHECK(b.report.at("requests").get<std::uint64_t>() == 1000);
  }
  SECTION("-d") {
    auto b = t::run_bench({"-s", echo.tcp(), "-f", "long_tcp", "-c", "30", "-d", "500ms", "--verify"});
    CHECK(b.r.exit_code == 1);
    CHECK(b.report.at("duration_s").get<double>() < 2.0);
    CHECK(b.r.elapsed_s < 5.0);
  }
}

TEST_CASE("bench: connection refused is counted and bounded") {
  const auto port = std::to_string(t::free_tcp_port());
  auto b = t::run_bench({"-s", "tcp://127.0.0.1:" + port, "-f", "long_tcp", "-c", "4", "-n", "100"});
  CHECK(b.r.exit_code == 1);
  CHECK(b.report.at("requests").get<std::uint64_t>() == 100);
  CHECK(errors_of(b.report, "connect_refused") == 100);

  auto c = t::run_bench({"-s", "unix:///nonexistent/swactor.sock", "-f", "connect", "-c", "2", "-n", "10"});
  CHECK(errors_of(c.report, "connect_refused") == 10);
}

TEST_CASE("bench: a server that never answers times out") {
  // A listening socket nobody accepts on: connects complete (backlog), replies never come.
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(listen(fd, 64) == 0);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const auto url = "tcp://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));

  SECTION("sequential") {
    auto b = t::run_bench({"-s", url, "-f", "long_tcp", "-c", "2", "-n", "4", "--timeout", "200ms"});
    CHECK(b.r.exit_code == 1);
    CHECK(errors_of(b.report, "timeout") == 4);
    CHECK(b.r.elapsed_s < 3.0);
  }
  SECTION("pipelined") {
    auto b = t::run_bench({"-s", url, "-f", "long_tcp", "-c", "2", "-n", "20", "--pipeline", "5",
                    "--timeout", "200ms"});
    CHECK(b.r.exit_code == 1);
    CHECK(b.report.at("requests").get<std::uint64_t>() == 20);
    CHECK(errors_of(b.report, "timeout") == 20);
    CHECK(b.r.elapsed_s < 3.0);
  }
  close(fd);
}

TEST_CASE("bench: SIGINT prints what it has and exits") {
  echo_server echo;
  t::temp_dir dir("swactor-bench");
  const auto report = dir.file("r.json").string();
  t::process p({t::swactor_bin(), "bench", "-s", echo.tcp(), "-f", "long_tcp", "-c", "2", "-d",
                "30s", "--rate", "1000", "--json", report});
  std::this_thread::sleep_for(700ms);
  REQUIRE(p.running());
  p.signal(SIGINT);
  auto st = p.wait(5s);
  REQUIRE(st);
  CHECK(*st == 130);
  INFO(p.stdout_text());
  CHECK(p.stdout_text().find("requests") != std::string::npos);
  auto j = json::parse(t::read_file(report));
  CHECK(j.at("interrupted").get<bool>());
  CHECK(j.at("requests").get<std::uint64_t>() > 100);
}

TEST_CASE("bench: bad arguments give one line and exit 2") {
  const std::vector<std::vector<std::string>> cases = {
      {},
      {"-s", "tcp://127.0.0.1:9", "-f", "nosuchmode", "-n", "1"},
      {"-s", "tcp://127.0.0.1:9", "-f", "long_tcp"},
      {"-s", "tcp://127.0.0.1:9", "-f", "long_tcp", "-n", "5", "-d", "1s"},
      {"-s", "ftp://127.0.0.1:9", "-f", "long_tcp", "-n", "5"},
      {"-s", "tcp://127.0.0.1", "-f", "long_tcp", "-n", "5"},
      {"-s", "udp://127.0.0.1:9", "-f", "long_tcp", "-n", "5"},
      {"-s", "tcp://127.0.0.1:9", "-f", "long_tcp", "-n", "5", "--bogus"},
      {"-s", "tcp://127.0.0.1:9", "-f", "long_tcp", "-n", "5", "-c", "x"},
      {"-s", "tcp://127.0.0.1:9", "-f", "long_tcp", "-n", "5", "-c", "0"},
      {"-s", "tcp://127.0.0.1:9", "-f", "long_tcp", "-d", "soon"},
      {"-s", "tcp://127.0.0.1:9", "-f", "eof", "-n", "5", "--eof", "\\q"},
      {"-s", "tcp://127.0.0.1:9", "-f", "length", "-n", "5", "--length-size", "3"},
      {"-s", "tcp://127.0.0.1:9", "-f", "short_tcp", "-n", "5", "--pipeline", "2"},
      {"-s", "tcp://127.0.0.1:9", "-f", "length", "-n", "5", "--big-endian", "--little-endian"},
  };
  for (const auto& args : cases) {
    std::vector<std::string> argv = {t::swactor_bin(), "bench"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = t::run(argv, 10s);
    std::string joined;
    for (auto& a : args) joined += a + " ";
    INFO("args: " << joined << "\nstderr: " << r.err);
    CHECK(r.exit_code == 2);
    const auto err_lines = t::lines(r.err);
    REQUIRE(err_lines.size() == 1);
    CHECK(err_lines[0].rfind("swactor bench: ", 0) == 0);
    CHECK(r.out.empty());
  }
  auto help = t::run({t::swactor_bin(), "bench", "--help"}, 10s);
  CHECK(help.exit_code == 0);
  CHECK(help.out.find("--pipeline") != std::string::npos);
}
