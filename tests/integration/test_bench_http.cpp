// The bench engine's http modes: the request bytes, cutting responses (Content-Length,
// chunked, close-delimited, 1xx, HEAD, split at every byte, malformed), the status, --verify
// and the arguments; then `swactor bench -f http / http_short` (the real binary) against a
// tiny in-test HTTP server and, when installed, nginx.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "args.hpp"
#include "bench_run.hpp"
#include "harness.hpp"
#include "mode.hpp"

using namespace std::chrono_literals;
namespace t = swactor::testing;
namespace b = swactor::bench;
using nlohmann::json;

namespace {

b::settings http_settings(const std::string& mode = "http", const std::string& url = "http://127.0.0.1:8080/x") {
  b::settings s;
  REQUIRE(b::parse_url(url, s.server).empty());
  s.mode = mode;
  s.requests = 1;
  return s;
}

std::unique_ptr<b::mode> make(const b::settings& s) {
  auto m = b::make_mode(s);
  REQUIRE(m);
  return m;
}

const std::string ok_cl = "HTTP/1.1 200 OK\r\nContent-Length: 11\r\nConnection: keep-alive\r\n\r\nHello World";
const std::string ok_chunked =
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nHello\r\n6;ext=1\r\n World\r\n0\r\n"
    "X-Trailer: t\r\n\r\n";
const std::string continue_then_ok = "HTTP/1.1 100 Continue\r\n\r\n" + ok_cl;
const std::string no_content = "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n";
const std::string not_found = "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno!";

}  // namespace

TEST_CASE("bench http: request bytes") {
  SECTION("keep-alive GET from the URL's path") {
    auto m = make(http_settings());
    std::string req;
    m->make_request(3, 7, req);
    CHECK(req == "GET /x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n");
    CHECK(m->pattern() == b::session::persistent);
    CHECK(m->has_status());
  }
  SECTION("http_short asks for Connection: close; method, path, headers and body") {
    auto s = http_settings("http_short");
    s.http.method = "POST";
    s.http.path = "/submit?a=1";
    s.http.headers = {"X-A: 1", "Accept: */*"};
    s.http.body = "abc";
    auto m = make(s);
    CHECK(m->check(s).empty());
    std::string req;
    m->make_request(0, 0, req);
    CHECK(req == "POST /submit?a=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nX-A: 1\r\nAccept: */*\r\n"
                 "Connection: close\r\nContent-Length: 3\r\n\r\nabc");
    CHECK(m->pattern() == b::session::one_shot);
  }
  SECTION("a Host header given replaces the generated one; unix sockets say localhost") {
    auto s = http_settings("http", "http+unix:///tmp/s.sock");
    std::string req;
    make(s)->make_request(0, 0, req);
    CHECK(req == "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    s.http.headers = {"Host: example.org"};
    make(s)->make_request(0, 0, req);
    CHECK(req == "GET / HTTP/1.1\r\nHost: example.org\r\n\r\n");
  }
}

TEST_CASE("bench http: cutting responses") {
  auto m = make(http_settings());
  const auto size = [&](const std::string& in) { return m->reply_size(in, "GET"); };

  SECTION("whole responses, each followed by the next one") {
    for (const auto& r : {ok_cl, ok_chunked, continue_then_ok, no_content, not_found}) {
      INFO(r);
      CHECK(size(r) == static_cast<std::ptrdiff_t>(r.size()));
      CHECK(size(r + ok_cl) == static_cast<std::ptrdiff_t>(r.size()));
      CHECK(size(r + "garbage that is not HTTP") == static_cast<std::ptrdiff_t>(r.size()));
    }
  }
  SECTION("split at every byte: incomplete until the last") {
    for (const auto& r : {ok_cl, ok_chunked, continue_then_ok, no_content}) {
      for (std::size_t i = 0; i < r.size(); ++i) {
        INFO(r << " cut at " << i);
        CHECK(size(r.substr(0, i)) == 0);
      }
    }
  }
  SECTION("malformed responses") {
    for (std::string bad : {"XTTP/1.1 200 OK\r\n\r\n", "HTTP/1.1 2x0 OK\r\n\r\n",
                            "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
                            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
                            "HTTP/1.1 200 OK\r\nBad Header\r\n\r\n"}) {
      INFO(bad);
      CHECK(size(bad) == -1);
    }
  }
  SECTION("a body without a length ends with the connection") {
    const std::string r = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nHello World";
    CHECK(size(r) == 0);
    CHECK(m->cut_reply(r, "GET", true).size == static_cast<std::ptrdiff_t>(r.size()));
    // A body with a length that the close cuts short is not whole.
    CHECK(m->cut_reply(ok_cl.substr(0, ok_cl.size() - 1), "GET", true).size == -1);
    CHECK(m->cut_reply(ok_chunked.substr(0, 60), "GET", true).size == -1);
    CHECK(m->cut_reply("HTTP/1.1 200", "GET", true).size == -1);
  }
  SECTION("HEAD: no body whatever Content-Length says") {
    auto s = http_settings();
    s.http.method = "HEAD";
    auto head = make(s);
    const std::string r = "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n";
    CHECK(size(r) == 0);  // GET waits for the body
    CHECK(head->reply_size(r, "") == static_cast<std::ptrdiff_t>(r.size()));
    CHECK(head->reply_size(r + r, "") == static_cast<std::ptrdiff_t>(r.size()));
  }
}

TEST_CASE("bench http: status, connection reuse and --verify") {
  auto s = http_settings();
  s.verify = true;
  auto m = make(s);
  const auto cut = [&](const std::string& in) { return m->cut_reply(in, "", false); };
  CHECK(cut(ok_cl).status == 200);
  CHECK(cut(continue_then_ok).status == 200);
  CHECK(cut(not_found).status == 404);
  CHECK(cut("HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n").status == 503);
  CHECK(cut(ok_cl.substr(0, 20)).status == 0);
  // Whether the server keeps the connection open after the reply.
  CHECK_FALSE(cut(ok_cl).last);
  CHECK(cut("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").last);
  CHECK(cut("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").last);
  CHECK_FALSE(cut("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n").last);
  CHECK(m->cut_reply("HTTP/1.1 200 OK\r\n\r\nabc", "", true).last);
  CHECK(m->matches("", ok_cl));
  CHECK(m->matches("", ok_chunked));
  CHECK(m->matches("", no_content));
  CHECK_FALSE(m->matches("", not_found));

  s.http.verify_body = "Hello World";
  auto body = make(s);
  CHECK(body->matches("", ok_cl));
  CHECK(body->matches("", ok_chunked));  // de-chunked
  CHECK(body->matches("", continue_then_ok));
  CHECK_FALSE(body->matches("", no_content));
  CHECK_FALSE(body->matches("", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHello"));
  CHECK(body->matches("", "HTTP/1.1 200 OK\r\n\r\nHello World"));  // close-delimited
}

TEST_CASE("bench http: arguments") {
  SECTION("a full command line") {
    auto p = b::parse_args({"-s", "http://127.0.0.1:8080/p", "-f", "http", "-n", "10", "--method", "POST",
                            "--header", "A: b", "--header", "C: d e", "--body", "xyz", "--verify",
                            "--verify-body", "ok", "--pipeline", "4"});
    INFO(p.message);
    REQUIRE(p.config);
    const auto& s = *p.config;
    CHECK(s.server.http);
    CHECK(s.server.kind == b::scheme::tcp);
    CHECK(s.server.port == 8080);
    CHECK(s.server.http_path == "/p");
    CHECK(s.http.method == "POST");
    CHECK(s.http.headers == std::vector<std::string>{"A: b", "C: d e"});
    CHECK(s.http.body == "xyz");
    CHECK(s.http.verify_body == "ok");
    CHECK(s.pipeline == 4);
  }
  SECTION("urls") {
    b::target t;
    CHECK(b::parse_url("http://localhost", t).empty());
    CHECK(t.port == 80);
    CHECK(t.host == "localhost");
    CHECK(t.http_path.empty());
    CHECK(b::parse_url("http://[::1]:81/a/b?c", t).empty());
    CHECK(t.host == "::1");
    CHECK(t.port == 81);
    CHECK(t.http_path == "/a/b?c");
    CHECK(b::parse_url("http+unix:///run/x.sock", t).empty());
    CHECK(t.kind == b::scheme::unix_stream);
    CHECK(t.path == "/run/x.sock");
    CHECK_FALSE(b::parse_url("http://host:0/", t).empty());
  }
  SECTION("errors") {
    for (std::vector<std::string> bad :
         {std::vector<std::string>{"-s", "http://127.0.0.1:1", "-f", "long_tcp", "-n", "1"},
          {"-s", "tcp://127.0.0.1:1", "-f", "udp", "-n", "1"},
          {"-s", "http://127.0.0.1:1", "-f", "http_short", "-n", "1", "--pipeline", "2"},
          {"-s", "http://127.0.0.1:1", "-f", "http", "-n", "1", "--verify-body", "x"},
          {"-s", "http://127.0.0.1:1", "-f", "http", "-n", "1", "--header", "no colon"},
          {"-s", "http://127.0.0.1:1", "-f", "http", "-n", "1", "--header", "Content-Length: 3"},
          {"-s", "http://127.0.0.1:1", "-f", "http", "-n", "1", "--method", "GE T"},
          {"-s", "http://127.0.0.1:1", "-f", "http", "-n", "1", "--path", "/a b"}}) {
      auto p = b::parse_args(bad);
      INFO(bad[3] << " " << p.message);
      CHECK_FALSE(p.config);
      CHECK(p.exit_code == 2);
    }
  }
}

// -- the real binary ------------------------------------------------------------------------

namespace {

// A tiny blocking HTTP server: a thread per connection answers every request head (and its
// Content-Length body) with `reply`; `close_after` closes the connection after each reply.
class tiny_http {
 public:
  tiny_http(std::string reply, bool close_after) : reply_(std::move(reply)), close_after_(close_after) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd_, 128) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~tiny_http() {
    stopping_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    acceptor_.join();
    {
      std::lock_guard lock(mu_);
      for (int c : conns_) ::shutdown(c, SHUT_RDWR);
    }
    for (auto& t : workers_) t.join();
    ::close(fd_);
  }
  std::string url(const std::string& path = "/") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  std::uint64_t requests() const { return requests_; }

 private:
  void accept_loop() {
    while (!stopping_) {
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        if (stopping_) return;
        continue;
      }
      std::lock_guard lock(mu_);
      conns_.push_back(c);
      workers_.emplace_back([this, c] { serve(c); });
    }
  }
  void serve(int c) {
    std::string in;
    char buf[4096];
    for (;;) {
      const auto end = in.find("\r\n\r\n");
      if (end == std::string::npos) {
        const auto n = ::read(c, buf, sizeof buf);
        if (n <= 0) break;
        in.append(buf, static_cast<std::size_t>(n));
        continue;
      }
      std::size_t body = 0;
      const auto cl = in.find("Content-Length: ");
      if (cl != std::string::npos && cl < end) body = std::stoul(in.substr(cl + 16));
      if (in.size() < end + 4 + body) {
        const auto n = ::read(c, buf, sizeof buf);
        if (n <= 0) break;
        in.append(buf, static_cast<std::size_t>(n));
        continue;
      }
      in.erase(0, end + 4 + body);
      ++requests_;
      if (::write(c, reply_.data(), reply_.size()) != static_cast<ssize_t>(reply_.size())) break;
      if (close_after_) break;
    }
    ::shutdown(c, SHUT_WR);
    std::lock_guard lock(mu_);
    conns_.erase(std::remove(conns_.begin(), conns_.end(), c), conns_.end());
    ::close(c);
  }

  std::string reply_;
  bool close_after_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> requests_{0};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<int> conns_;
  std::vector<std::thread> workers_;
};

using t::bench_run;

std::uint64_t status_of(const json& j, const char* cls) { return j.at("status").at(cls).get<std::uint64_t>(); }

void require_clean(const bench_run& r, std::uint64_t n) {
  INFO("stdout: " << r.r.out << "\nstderr: " << r.r.err << "\nreport: " << r.report.dump(1));
  CHECK(r.r.exit_code == 0);
  CHECK(r.report.at("requests").get<std::uint64_t>() == n);
  CHECK(r.report.at("ok").get<std::uint64_t>() == n);
  CHECK(r.report.at("error_total").get<std::uint64_t>() == 0);
  CHECK(status_of(r.report, "2xx") == n);
  CHECK(r.r.out.find("status      2xx") != std::string::npos);
}

}  // namespace

TEST_CASE("bench: http modes against a tiny server, verified, exact count") {
  const std::string hello = "Hello World";
  SECTION("keep-alive, Content-Length") {
    tiny_http srv(ok_cl, false);
    require_clean(t::run_bench({"-s", srv.url(), "-f", "http", "-c", "4", "-n", "1000", "--verify", "--verify-body", hello}),
                  1000);
    CHECK(srv.requests() == 1000);
  }
  SECTION("keep-alive, chunked, pipelined") {
    tiny_http srv(ok_chunked, false);
    require_clean(t::run_bench({"-s", srv.url(), "-f", "http", "-c", "2", "-n", "1000", "--pipeline", "8", "--verify",
                         "--verify-body", hello}),
                  1000);
  }
  SECTION("keep-alive, interim 100 Continue, POST body") {
    tiny_http srv(continue_then_ok, false);
    require_clean(t::run_bench({"-s", srv.url(), "-f", "http", "-c", "2", "-n", "500", "--method", "POST", "--body",
                         "payload", "--verify", "--verify-body", hello}),
                  500);
  }
  SECTION("keep-alive against a server that closes after each close-delimited reply") {
    tiny_http srv("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nHello World", true);
    auto r = t::run_bench({"-s", srv.url(), "-f", "http", "-c", "2", "-n", "300", "--verify", "--verify-body", hello});
    require_clean(r, 300);
    CHECK(r.report.at("connections").get<std::uint64_t>() == 300);
  }
  SECTION("keep-alive against a server that says Connection: close after a sized reply") {
    tiny_http srv("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 11\r\n\r\nHello World", true);
    auto r = t::run_bench({"-s", srv.url(), "-f", "http", "-c", "2", "-n", "300", "--verify"});
    require_clean(r, 300);
    CHECK(r.report.at("connections").get<std::uint64_t>() == 300);
  }
  SECTION("http_short, close-delimited body") {
    tiny_http srv("HTTP/1.0 200 OK\r\n\r\nHello World", true);
    require_clean(t::run_bench({"-s", srv.url(), "-f", "http_short", "-c", "4", "-n", "500", "--verify", "--verify-body",
                         hello}),
                  500);
  }
  SECTION("status classes are counted; --verify fails non-2xx") {
    tiny_http srv(not_found, false);
    auto plain = t::run_bench({"-s", srv.url(), "-f", "http", "-c", "2", "-n", "200"});
    CHECK(plain.r.exit_code == 0);
    CHECK(plain.report.at("ok").get<std::uint64_t>() == 200);
    CHECK(status_of(plain.report, "4xx") == 200);
    CHECK(status_of(plain.report, "2xx") == 0);
    auto verified = t::run_bench({"-s", srv.url(), "-f", "http", "-c", "2", "-n", "200", "--verify"});
    CHECK(verified.r.exit_code == 1);
    CHECK(verified.report.at("errors").at("mismatch").get<std::uint64_t>() == 200);
    CHECK(status_of(verified.report, "4xx") == 200);
  }
  SECTION("a malformed response is a mismatch error") {
    tiny_http srv("HTTP/1.1 2x0 OK\r\n\r\n", false);
    auto r = t::run_bench({"-s", srv.url(), "-f", "http", "-c", "1", "-n", "5", "--timeout", "1s"});
    CHECK(r.r.exit_code == 1);
    CHECK(r.report.at("errors").at("mismatch").get<std::uint64_t>() == 5);
  }
  SECTION("--rate paces the requests") {
    tiny_http srv(ok_cl, false);
    auto r = t::run_bench({"-s", srv.url(), "-f", "http", "-c", "4", "-n", "200", "--rate", "1000"});
    require_clean(r, 200);
    CHECK(r.report.at("duration_s").get<double>() >= 0.15);  // 200 at 1000/s: about 0.2 s
  }
}

TEST_CASE("bench: http modes against nginx") {
  if (::access("/usr/sbin/nginx", X_OK) != 0) {
    WARN("/usr/sbin/nginx not installed: skipped");
    return;
  }
  t::temp_dir dir("swactor-nginx");
  const auto port = std::to_string(t::free_tcp_port());
  const auto d = dir.path().string();
  const auto conf = dir.write("nginx.conf",
                              "daemon off;\nmaster_process off;\nworker_processes 1;\npid " + d +
                                  "/nginx.pid;\nerror_log " + d +
                                  "/error.log warn;\nevents { worker_connections 1024; }\nhttp {\n"
                                  "  access_log off;\n  keepalive_requests 1000000;\n"
                                  "  client_body_temp_path " + d + "/body;\n  proxy_temp_path " + d +
                                  "/proxy;\n  fastcgi_temp_path " + d + "/fastcgi;\n  uwsgi_temp_path " + d +
                                  "/uwsgi;\n  scgi_temp_path " + d + "/scgi;\n"
                                  "  server {\n    listen 127.0.0.1:" + port +
                                  ";\n    location / { return 200 \"Hello World\"; }\n"
                                  "    location /missing { return 404; }\n"
                                  "    location /chunked { chunked_transfer_encoding on; "
                                  "return 200 \"Hello World\"; }\n  }\n}\n");
  t::process nginx({"/usr/sbin/nginx", "-p", d, "-e", d + "/error.log", "-c", conf.string()});
  // Serving once a request gets an answer.
  const std::string url = "http://127.0.0.1:" + port;
  bool up = false;
  for (int i = 0; i < 100 && !up; ++i) {
    auto probe = t::run({t::swactor_bin(), "bench", "-s", url + "/", "-f", "http", "-n", "1", "--timeout", "200ms"},
                        5s);
    up = probe.exit_code == 0;
    if (!up) std::this_thread::sleep_for(50ms);
  }
  INFO(t::read_file(dir.file("error.log")));
  REQUIRE(up);

  SECTION("http keep-alive") {
    require_clean(t::run_bench({"-s", url + "/", "-f", "http", "-c", "8", "-n", "3000", "--verify", "--verify-body",
                         "Hello World"}),
                  3000);
  }
  SECTION("http pipelined") {
    require_clean(t::run_bench({"-s", url + "/", "-f", "http", "-c", "4", "-n", "3000", "--pipeline", "8", "--verify"}),
                  3000);
  }
  SECTION("http_short") {
    auto r = t::run_bench({"-s", url + "/", "-f", "http_short", "-c", "4", "-n", "1000", "--verify", "--verify-body",
                    "Hello World"});
    require_clean(r, 1000);
    CHECK(r.report.at("connections").get<std::uint64_t>() == 1000);
  }
  SECTION("HEAD") {
    require_clean(t::run_bench({"-s", url + "/", "-f", "http", "-c", "2", "-n", "500", "--method", "HEAD", "--verify"}),
                  500);
  }
  SECTION("404 counted as 4xx") {
    auto r = t::run_bench({"-s", url + "/missing", "-f", "http", "-c", "2", "-n", "500"});
    CHECK(r.r.exit_code == 0);
    CHECK(status_of(r.report, "4xx") == 500);
  }
}
