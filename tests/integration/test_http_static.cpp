// http_static through the real server, in both modes, with curl as the client: Range
// (single, multipart/byteranges, suffix, open, 416), conditional requests (304 on both
// validators, If-Range), path traversal in many encodings, symlinks, precompressed
// siblings, index files and listings, MIME types, a 1 GiB sparse file with bounded RSS,
// response.sendfile() from a handler, and (process mode) answers from the reactor while
// every worker is stopped.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "harness.hpp"
#include "http_helpers.hpp"
#include "server_helpers.hpp"

using namespace std::chrono_literals;
namespace t = swactor::testing;
namespace http = swactor::testing::http;
using t::server::server_under_test;

namespace {

// A document root, and a secret beside it that must never be served.
struct site {
  t::temp_dir dir{"swactor-static"};
  std::string root = (dir.path() / "www").string();
  std::string body;  // www/a.txt: 1000 distinct-ish bytes

  site() {
    for (int i = 0; i < 1000; ++i) body.push_back(static_cast<char>('a' + (i * 7 + i / 26) % 26));
    dir.write("www/a.txt", body);
    dir.write("www/index.html", "<h1>home</h1>\n");
    dir.write("www/style.css", "body{}\n");
    dir.write("www/app.wasm", "\0asm");
    dir.write("www/thing.foo", "foo\n");
    dir.write("www/noext", "x");
    dir.write("www/hello.txt", "plain hello\n");
    dir.write("www/hello.txt.gz", "GZIP-BYTES");
    dir.write("www/hello.txt.br", "BROTLI-BYTES");
    dir.write("www/only.txt", "only identity\n");
    dir.write("www/sub/x.txt", "in sub\n");
    dir.write("www/sub/<b>&.txt", "odd name\n");
    dir.write("www/docs/index.html", "<h1>docs</h1>\n");
    dir.write("www/%2e%2e/decoy.txt", "decoy\n");  // a real directory named "%2e%2e"
    dir.write("secret.txt", "TOP SECRET\n");
    dir.write("www/..hidden", "dots\n");
    std::filesystem::create_symlink(dir.path() / "secret.txt", dir.path() / "www/link_out");
    std::filesystem::create_symlink(dir.path(), dir.path() / "www/dir_out");
    std::filesystem::create_symlink("a.txt", dir.path() / "www/link_in");
    std::filesystem::create_symlink("sub", dir.path() / "www/sub_link");
  }

  std::string config() const {
    return R"(
[[listen]]
url = "http://127.0.0.1:{port}"
routes = [ { path = "/", module = "files" }, { path = "/listed/", module = "listed" },
           { path = "/api/", module = "echo" } ]

[modules.files]
type = "http_static"
root = ")" + root + R"("
mime = { ".foo" = "application/x-foo" }
cache_control = "public, max-age=60"

[modules.listed]
type = "http_static"
root = ")" + root + R"("
strip_prefix = "/listed/"
listing = true

[modules.echo]
type = "http_echo"
)";
  }
};

struct fetched {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names, the last value
  std::string body;
  std::string err;
};

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// curl with `args` against http://127.0.0.1:port`target` (the path as given: --path-as-is).
// A HEAD over a raw connection that closes after it: everything the server sent.
std::string raw_head(std::uint16_t port, const std::string& target) {
  auto c = t::server::connect_tcp("127.0.0.1", port);
  if (!c || !c.send_all("HEAD " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")) return {};
  return http::read_to_eof(c, 10s).data;
}

fetched curl(std::uint16_t port, const std::string& target, std::vector<std::string> args = {}) {
  t::temp_dir tmp("swactor-curl");
  auto hdr = tmp.file("h").string(), out = tmp.file("b").string();
  std::vector<std::string> argv = {"curl", "-s", "--path-as-is", "-D", hdr, "-o", out, "-w", "%{http_code}",
                                   "--max-time", "30"};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back("http://127.0.0.1:" + std::to_string(port) + target);
  auto r = t::run(argv, 40s);
  fetched f;
  f.err = r.err;
  f.status = std::atoi(r.out.c_str());
  f.body = t::read_file(out);
  for (auto& line : t::lines(t::read_file(hdr))) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    auto colon = line.find(':');
    if (colon == std::string::npos || line.rfind("HTTP/", 0) == 0) continue;
    auto v = line.substr(colon + 1);
    while (!v.empty() && v.front() == ' ') v.erase(0, 1);
    f.headers[lower(line.substr(0, colon))] = v;
  }
  return f;
}

struct part {
  std::map<std::string, std::string> headers;
  std::string data;
};

// multipart/byteranges: the parts between the boundaries of `content_type`.
std::vector<part> parse_multipart(const std::string& content_type, const std::string& body) {
  std::vector<part> parts;
  auto b = content_type.find("boundary=");
  if (b == std::string::npos) return parts;
  const std::string delim = "--" + content_type.substr(b + 9);
  std::size_t at = body.find(delim);
  while (at != std::string::npos) {
    at += delim.size();
    if (body.compare(at, 2, "--") == 0) break;  // the closing delimiter
    if (body.compare(at, 2, "\r\n") != 0) return {};
    at += 2;
    part p;
    for (;;) {
      auto eol = body.find("\r\n", at);
      if (eol == std::string::npos) return {};
      auto line = body.substr(at, eol - at);
      at = eol + 2;
      if (line.empty()) break;
      auto colon = line.find(':');
      if (colon == std::string::npos) return {};
      p.headers[lower(line.substr(0, colon))] = line.substr(colon + 2);
    }
    auto next = body.find("\r\n" + delim, at);
    if (next == std::string::npos) return {};
    p.data = body.substr(at, next - at);
    parts.push_back(std::move(p));
    at = next + 2;
  }
  return parts;
}

}  // namespace

TEST_CASE("http_static: files, MIME types, index files, listings and methods", "[http][static]") {
  REQUIRE(http::have_tool("curl"));
  const std::string mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  site s;
  server_under_test srv(http::server_keys(mode), s.config());

  auto r = curl(srv.port, "/a.txt");
  CHECK(r.status == 200);
  CHECK(r.body == s.body);
  CHECK(r.headers["content-type"] == "text/plain; charset=utf-8");
  CHECK(r.headers["content-length"] == "1000");
  CHECK(r.headers["accept-ranges"] == "bytes");
  CHECK(r.headers["cache-control"] == "public, max-age=60");
  CHECK(!r.headers["etag"].empty());
  CHECK(!r.headers["last-modified"].empty());

  CHECK(curl(srv.port, "/style.css").headers["content-type"] == "text/css; charset=utf-8");
  CHECK(curl(srv.port, "/app.wasm").headers["content-type"] == "application/wasm");
  CHECK(curl(srv.port, "/thing.foo").headers["content-type"] == "application/x-foo");  // from `mime`
  CHECK(curl(srv.port, "/noext").headers["content-type"] == "application/octet-stream");

  // Index files; a directory without one is a 404 unless listing is on.
  r = curl(srv.port, "/");
  CHECK(r.status == 200);
  CHECK(r.body == "<h1>home</h1>\n");
  CHECK(curl(srv.port, "/docs/").body == "<h1>docs</h1>\n");
  r = curl(srv.port, "/docs");
  CHECK(r.status == 301);
  CHECK(r.headers["location"] == "/docs/");
  CHECK(curl(srv.port, "/sub/").status == 404);
  r = curl(srv.port, "/listed/sub/");
  CHECK(r.status == 200);
  CHECK(r.headers["content-type"] == "text/html; charset=utf-8");
  CHECK(r.body.find("<a href=\"x.txt\">x.txt</a>") != std::string::npos);
  // Names are escaped in the listing (HTML and URL).
  CHECK(r.body.find("&lt;b&gt;&amp;.txt") != std::string::npos);
  CHECK(r.body.find("<b>") == std::string::npos);
  CHECK(curl(srv.port, "/listed/sub/x.txt").body == "in sub\n");
  CHECK(curl(srv.port, "/nope.txt").status == 404);

  // HEAD: the headers without the body; other methods: 405 with Allow.
  r = curl(srv.port, "/a.txt", {"-I"});
  CHECK(r.status == 200);
  CHECK(r.headers["content-length"] == "1000");
  auto raw = raw_head(srv.port, "/a.txt");
  CHECK(raw.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(raw.find("Content-Length: 1000\r\n") != std::string::npos);
  CHECK(raw.size() == raw.find("\r\n\r\n") + 4);  // nothing after the head
  r = curl(srv.port, "/a.txt", {"-X", "POST", "-d", "x=1"});
  CHECK(r.status == 405);
  CHECK(r.headers["allow"] == "GET, HEAD");
  CHECK(curl(srv.port, "/a.txt", {"-X", "DELETE"}).status == 405);

  // The other module on the listener still answers.
  CHECK(curl(srv.port, "/api/x").status == 200);
  srv.stop_and_check();
}

TEST_CASE("http_static: Range requests: single, suffix, open, multipart/byteranges, 416", "[http][static]") {
  REQUIRE(http::have_tool("curl"));
  const std::string mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  site s;
  server_under_test srv(http::server_keys(mode), s.config());

  auto r = curl(srv.port, "/a.txt", {"-H", "Range: bytes=10-19"});
  CHECK(r.status == 206);
  CHECK(r.body == s.body.substr(10, 10));
  CHECK(r.headers["content-range"] == "bytes 10-19/1000");
  CHECK(r.headers["content-length"] == "10");

  r = curl(srv.port, "/a.txt", {"-H", "Range: bytes=-7"});
  CHECK(r.status == 206);
  CHECK(r.body == s.body.substr(993));
  CHECK(r.headers["content-range"] == "bytes 993-999/1000");

  r = curl(srv.port, "/a.txt", {"-H", "Range: bytes=990-"});
  CHECK(r.status == 206);
  CHECK(r.body == s.body.substr(990));

  r = curl(srv.port, "/a.txt", {"-H", "Range: bytes=0-4, 100-109,-3"});
  CHECK(r.status == 206);
  auto ct = r.headers["content-type"];
  CHECK(ct.rfind("multipart/byteranges; boundary=", 0) == 0);
  CHECK(r.headers["content-length"] == std::to_string(r.body.size()));
  auto parts = parse_multipart(ct, r.body);
  REQUIRE(parts.size() == 3);
  CHECK(parts[0].headers["content-range"] == "bytes 0-4/1000");
  CHECK(parts[0].data == s.body.substr(0, 5));
  CHECK(parts[0].headers["content-type"] == "text/plain; charset=utf-8");
  CHECK(parts[1].headers["content-range"] == "bytes 100-109/1000");
  CHECK(parts[1].data == s.body.substr(100, 10));
  CHECK(parts[2].headers["content-range"] == "bytes 997-999/1000");
  CHECK(parts[2].data == s.body.substr(997));

  // Overlapping ranges are merged into one.
  r = curl(srv.port, "/a.txt", {"-H", "Range: bytes=0-9,5-14"});
  CHECK(r.status == 206);
  CHECK(r.headers["content-range"] == "bytes 0-14/1000");

  r = curl(srv.port, "/a.txt", {"-H", "Range: bytes=1000-"});
  CHECK(r.status == 416);
  CHECK(r.headers["content-range"] == "bytes */1000");
  CHECK(curl(srv.port, "/a.txt", {"-H", "Range: bytes=5000-6000,7000-"}).status == 416);

  // A malformed or foreign Range is ignored: the whole file.
  for (const char* bad : {"Range: bytes=9-1", "Range: pages=1-2", "Range: bytes=x-"}) {
    r = curl(srv.port, "/a.txt", {"-H", bad});
    INFO(bad);
    CHECK(r.status == 200);
    CHECK(r.body == s.body);
  }
  srv.stop_and_check();
}

TEST_CASE("http_static: ETag / Last-Modified give 304, If-Range picks 206 or 200", "[http][static]") {
  REQUIRE(http::have_tool("curl"));
  const std::string mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  site s;
  server_under_test srv(http::server_keys(mode), s.config());

  auto first = curl(srv.port, "/a.txt");
  REQUIRE(first.status == 200);
  const auto etag = first.headers["etag"];
  const auto lm = first.headers["last-modified"];
  REQUIRE(!etag.empty());
  REQUIRE(!lm.empty());

  auto r = curl(srv.port, "/a.txt", {"-H", "If-None-Match: " + etag});
  CHECK(r.status == 304);
  CHECK(r.body.empty());
  CHECK(r.headers["etag"] == etag);
  CHECK(curl(srv.port, "/a.txt", {"-H", "If-None-Match: \"other\", W/" + etag}).status == 304);  // weak compare
  CHECK(curl(srv.port, "/a.txt", {"-H", "If-None-Match: *"}).status == 304);
  CHECK(curl(srv.port, "/a.txt", {"-H", "If-None-Match: \"other\""}).status == 200);

  CHECK(curl(srv.port, "/a.txt", {"-H", "If-Modified-Since: " + lm}).status == 304);
  CHECK(curl(srv.port, "/a.txt", {"-H", "If-Modified-Since: Sat, 01 Jan 2000 00:00:00 GMT"}).status == 200);
  // If-None-Match wins over If-Modified-Since.
  CHECK(curl(srv.port, "/a.txt", {"-H", "If-None-Match: \"other\"", "-H", "If-Modified-Since: " + lm}).status == 200);

  r = curl(srv.port, "/a.txt", {"-H", "Range: bytes=0-9", "-H", "If-Range: " + etag});
  CHECK(r.status == 206);
  CHECK(r.body == s.body.substr(0, 10));
  r = curl(srv.port, "/a.txt", {"-H", "Range: bytes=0-9", "-H", "If-Range: " + lm});
  CHECK(r.status == 206);
  r = curl(srv.port, "/a.txt", {"-H", "Range: bytes=0-9", "-H", "If-Range: \"stale\""});
  CHECK(r.status == 200);
  CHECK(r.body == s.body);
  r = curl(srv.port, "/a.txt", {"-H", "Range: bytes=0-9", "-H", "If-Range: Sat, 01 Jan 2000 00:00:00 GMT"});
  CHECK(r.status == 200);

  // A change of the file changes its ETag: the old one no longer gives 304.
  std::this_thread::sleep_for(20ms);
  t::write_file(s.dir.path() / "www/a.txt", s.body + "more");
  CHECK(curl(srv.port, "/a.txt", {"-H", "If-None-Match: " + etag}).status == 200);
  srv.stop_and_check();
}

TEST_CASE("http_static: path traversal in every encoding and symlinks leaving the root are 404", "[http][static]") {
  REQUIRE(http::have_tool("curl"));
  const std::string mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  site s;
  server_under_test srv(http::server_keys(mode), s.config());

  const std::vector<std::string> attempts = {
      "/../secret.txt",
      "/../../../../etc/passwd",
      "/%2e%2e/secret.txt",
      "/%2E%2E/secret.txt",
      "/%2e%2E/%2E%2e/etc/passwd",
      "/.%2e/secret.txt",
      "/%2e./secret.txt",
      "/..%2fsecret.txt",
      "/..%2Fsecret.txt",
      "/%2e%2e%2fsecret.txt",
      "/%2e%2e%5csecret.txt",
      "/..%5csecret.txt",
      "/..\\secret.txt",
      "/sub/..%5c..%5csecret.txt",
      "/%252e%252e/secret.txt",
      "/%252e%252e%252fsecret.txt",
      "/sub/../../secret.txt",
      "/sub/%2e%2e/%2e%2e/secret.txt",
      "/./../secret.txt",
      "/%2e/%2e%2e/secret.txt",
      "/..;/secret.txt",
      "/.../secret.txt",
      "/%c0%ae%c0%ae/secret.txt",
      "/%uff0e%uff0e/secret.txt",
      "//../secret.txt",
      "/listed/../../secret.txt",
      "/listed/%2e%2e/%2e%2e/secret.txt",
      "/link_out",
      "/dir_out/secret.txt",
      "/listed/dir_out/",
  };
  REQUIRE(attempts.size() >= 20);
  for (const auto& target : attempts) {
    auto r = curl(srv.port, target);
    INFO(target << " -> " << r.status << " " << r.body);
    CHECK(r.body.find("TOP SECRET") == std::string::npos);
    CHECK(r.body.find("root:") == std::string::npos);
    CHECK(r.status == 404);
  }
  // A NUL in the decoded path is a 400 for every route (the worker's rule, kept here).
  for (const std::string target : {"/a.txt%00", "/%00/../secret.txt", "/%2e%2e%00/secret.txt"}) {
    auto r = curl(srv.port, target);
    INFO(target << " -> " << r.status);
    CHECK((r.status == 400 || r.status == 404));
    CHECK(r.body.find("TOP SECRET") == std::string::npos);
  }
  // What lies inside the root is served: a symlink to a file and one to a directory there,
  // and a file whose name merely starts with dots; the double-encoded ".." is a name.
  CHECK(curl(srv.port, "/link_in").body == s.body);
  CHECK(curl(srv.port, "/sub_link/x.txt").body == "in sub\n");
  CHECK(curl(srv.port, "/..hidden").body == "dots\n");
  CHECK(curl(srv.port, "/%252e%252e/decoy.txt").body == "decoy\n");
  // The listing does not show what is outside either.
  auto l = curl(srv.port, "/listed/dir_out/");
  CHECK(l.status == 404);
  srv.stop_and_check();
}

TEST_CASE("http_static: precompressed .br / .gz siblings when accepted, with Vary", "[http][static]") {
  REQUIRE(http::have_tool("curl"));
  const std::string mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  site s;
  server_under_test srv(http::server_keys(mode), s.config());

  auto r = curl(srv.port, "/hello.txt");
  CHECK(r.body == "plain hello\n");
  CHECK(r.headers.count("content-encoding") == 0);
  CHECK(r.headers["vary"] == "Accept-Encoding");

  r = curl(srv.port, "/hello.txt", {"-H", "Accept-Encoding: gzip"});
  CHECK(r.body == "GZIP-BYTES");
  CHECK(r.headers["content-encoding"] == "gzip");
  CHECK(r.headers["content-type"] == "text/plain; charset=utf-8");
  CHECK(r.headers["vary"] == "Accept-Encoding");

  r = curl(srv.port, "/hello.txt", {"-H", "Accept-Encoding: gzip, deflate, br"});
  CHECK(r.body == "BROTLI-BYTES");
  CHECK(r.headers["content-encoding"] == "br");

  r = curl(srv.port, "/hello.txt", {"-H", "Accept-Encoding: br;q=0, gzip;q=0.5"});
  CHECK(r.body == "GZIP-BYTES");
  r = curl(srv.port, "/hello.txt", {"-H", "Accept-Encoding: br;q=0.4, gzip;q=0.9"});
  CHECK(r.body == "GZIP-BYTES");  // the higher q wins; br is preferred only on a tie
  r = curl(srv.port, "/hello.txt", {"-H", "Accept-Encoding: identity"});
  CHECK(r.body == "plain hello\n");
  r = curl(srv.port, "/hello.txt", {"-H", "Accept-Encoding: *;q=0"});
  CHECK(r.body == "plain hello\n");

  // Each representation has its own validator.
  auto gz = curl(srv.port, "/hello.txt", {"-H", "Accept-Encoding: gzip"});
  auto plain = curl(srv.port, "/hello.txt");
  CHECK(gz.headers["etag"] != plain.headers["etag"]);

  // No sibling: no Content-Encoding, no Vary.
  r = curl(srv.port, "/only.txt", {"-H", "Accept-Encoding: gzip, br"});
  CHECK(r.body == "only identity\n");
  CHECK(r.headers.count("content-encoding") == 0);
  CHECK(r.headers.count("vary") == 0);
  srv.stop_and_check();
}

TEST_CASE("http_static: a 1 GiB sparse file is sent whole and in ranges with bounded server memory",
          "[http][static][big]") {
  REQUIRE(http::have_tool("curl"));
  REQUIRE(http::have_tool("sha256sum"));
  const std::string mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  site s;
  const auto big = s.dir.path() / "www/big.bin";
  const std::uint64_t size = 1ull << 30;
  const std::uint64_t marker_at = 700ull << 20;
  {
    std::ofstream f(big, std::ios::binary);
    f.seekp(static_cast<std::streamoff>(marker_at));
    f << "a marker in the middle of nothing";
  }
  std::filesystem::resize_file(big, size);
  server_under_test srv(http::server_keys(mode), s.config());
  // Base mode: the worker holds the connection; process mode: the reactor in the master.
  pid_t server_pid = mode == "base" ? srv.worker_pids(srv.stats()).at(0) : srv.proc->pid();
  const long before = t::server::rss_kib(server_pid);
  REQUIRE(before > 0);
  std::atomic<long> peak{before};
  std::atomic<bool> done{false};
  std::thread sampler([&] {
    while (!done) {
      long v = t::server::rss_kib(server_pid);
      if (v > peak) peak = v;
      std::this_thread::sleep_for(5ms);
    }
  });
  auto url = "http://127.0.0.1:" + std::to_string(srv.port) + "/big.bin";
  auto whole = t::run({"curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", url}, 120s);
  auto range = t::run({"sh", "-c", "curl -s -r " + std::to_string(marker_at - 1000) + "-" +
                                       std::to_string(marker_at + 99999) + " " + url + " | sha256sum"},
                      60s);
  done = true;
  sampler.join();
  CHECK(whole.out == "200 " + std::to_string(size));
  auto expected = t::run({"sh", "-c", "tail -c +" + std::to_string(marker_at - 1000 + 1) + " " + big.string() +
                                          " | head -c 101000 | sha256sum"},
                         60s);
  REQUIRE(expected.exit_code == 0);
  CHECK(range.out == expected.out);
  INFO("server RSS before " << before << " KiB, peak " << peak.load() << " KiB");
  CHECK(peak - before < 200 * 1024);
  srv.stop_and_check();
}

TEST_CASE("http_static: in process mode the reactor answers static routes while every worker is stopped",
          "[http][static]") {
  REQUIRE(http::have_tool("curl"));
  site s;
  // 24 MiB: over HTTP/2 the reactor reads it in pieces as the output drains (more than the
  // connection's 8 MiB output limit).
  std::string big(24u << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 131) ^ (i >> 12));
  s.dir.write("www/big.bin", big);
  server_under_test srv(http::server_keys("process"), s.config());
  auto workers = srv.worker_pids(srv.stats());
  REQUIRE(workers.size() == 2);
  const auto requests_before = srv.stats().at("request_count").get<long>();
  for (auto w : workers) REQUIRE(::kill(w, SIGSTOP) == 0);
  auto r = curl(srv.port, "/a.txt", {"--max-time", "5"});
  auto ranged = curl(srv.port, "/a.txt", {"--max-time", "5", "-H", "Range: bytes=1-2,5-6"});
  // The same over HTTP/2 (h2c by prior knowledge): streams answered by the reactor too.
  auto r2 = curl(srv.port, "/a.txt", {"--max-time", "5", "--http2-prior-knowledge"});
  auto ranged2 = curl(srv.port, "/a.txt", {"--max-time", "5", "--http2-prior-knowledge", "-H", "Range: bytes=1-2,5-6"});
  auto big2 = curl(srv.port, "/big.bin", {"--max-time", "20", "--http2-prior-knowledge"});
  auto missing2 = curl(srv.port, "/nothing-here", {"--max-time", "5", "--http2-prior-knowledge"});
  auto echo = curl(srv.port, "/api/x", {"--max-time", "1"});  // a worker's route waits
  auto echo2 = curl(srv.port, "/api/x", {"--max-time", "1", "--http2-prior-knowledge"});
  for (auto w : workers) ::kill(w, SIGCONT);
  CHECK(r.status == 200);
  CHECK(r.body == s.body);
  CHECK(ranged.status == 206);
  CHECK(parse_multipart(ranged.headers["content-type"], ranged.body).size() == 2);
  CHECK(r2.status == 200);
  CHECK(r2.body == s.body);
  CHECK(ranged2.status == 206);
  CHECK(parse_multipart(ranged2.headers["content-type"], ranged2.body).size() == 2);
  CHECK(big2.status == 200);
  CHECK(big2.body.size() == big.size());
  CHECK(big2.body == big);
  CHECK(missing2.status == 404);
  CHECK(echo.status == 0);  // timed out: nobody answered it while the workers slept
  CHECK(echo2.status == 0);
  // Answered without a worker, and still counted.
  CHECK(srv.stats().at("request_count").get<long>() - requests_before >= 6);
  srv.stop_and_check();
}

TEST_CASE("http: response.sendfile() from a handler, both modes", "[http][static]") {
  REQUIRE(http::have_tool("curl"));
  const std::string mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  site s;
  server_under_test srv(http::server_keys(mode), R"(
[[listen]]
url = "http://127.0.0.1:{port}"
routes = [ { path = "/", module = "probe" } ]

[modules.probe]
type = "http_echo"
)");
  // http_echo?sendfile=PATH&offset=N&length=N answers with that file range.
  auto r = curl(srv.port, "/x?sendfile=" + s.root + "/a.txt&offset=100&length=50");
  CHECK(r.status == 200);
  CHECK(r.body == s.body.substr(100, 50));
  CHECK(r.headers["content-length"] == "50");
  r = curl(srv.port, "/x?sendfile=" + s.root + "/a.txt&offset=990");
  CHECK(r.body == s.body.substr(990));
  // A missing file or a range outside it: the handler's error, the engine's 500.
  CHECK(curl(srv.port, "/x?sendfile=" + s.root + "/missing").status == 500);
  CHECK(curl(srv.port, "/x?sendfile=" + s.root + "/a.txt&offset=2000").status == 500);
  // Over the connection, several in a row (keep-alive), and HEAD gets no body.
  auto url = "http://127.0.0.1:" + std::to_string(srv.port) + "/x?sendfile=" + s.root + "/a.txt";
  auto many = t::run({"curl", "-s", url, url, url}, 20s);
  CHECK(many.out == s.body + s.body + s.body);
  auto raw = raw_head(srv.port, "/x?sendfile=" + s.root + "/a.txt");
  CHECK(raw.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(raw.find("Content-Length: 1000\r\n") != std::string::npos);
  CHECK(raw.size() == raw.find("\r\n\r\n") + 4);  // nothing after the head
  srv.stop_and_check();
}

TEST_CASE("http_static: over TLS the file is sent in pread + write pieces, byte-exact, both modes",
          "[http][static][tls]") {
  REQUIRE(http::have_tool("curl"));
  REQUIRE(http::have_tool("openssl"));
  const std::string mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  site s;
  const auto d = s.dir.path().string();
  auto gen = t::run({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                     "-keyout", d + "/key.pem", "-out", d + "/cert.pem", "-days", "1", "-subj", "/CN=localhost"},
                    30s);
  REQUIRE(gen.exit_code == 0);
  // 3 MiB + 1 of varied bytes: many 16 KiB TLS pieces and a short last one.
  std::string data(3 * 1024 * 1024 + 1, '\0');
  std::uint32_t x = 12345;
  for (auto& c : data) {
    x = x * 1664525u + 1013904223u;
    c = static_cast<char>(x >> 24);
  }
  s.dir.write("www/blob.bin", data);
  auto cfg = s.config();
  t::server::replace_all(cfg, "url = \"http://", "tls = { cert = \"" + d + "/cert.pem\", key = \"" + d +
                                                     "/key.pem\" }\nurl = \"https://");
  server_under_test srv(http::server_keys(mode), cfg);
  auto get = [&](const std::vector<std::string>& extra) {
    t::temp_dir tmp("swactor-curl");
    std::vector<std::string> argv = {"curl", "-sk", "-o", tmp.file("b").string(), "-w", "%{http_code}"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back("https://127.0.0.1:" + std::to_string(srv.port) + "/blob.bin");
    auto r = t::run(argv, 60s);
    return std::make_pair(r.out, t::read_file(tmp.file("b")));
  };
  auto [status, body] = get({});
  CHECK(status == "200");
  CHECK(body.size() == data.size());
  CHECK(body == data);
  auto [rs, part] = get({"-H", "Range: bytes=1000000-2999999"});
  CHECK(rs == "206");
  CHECK(part == data.substr(1000000, 2000000));
  auto [ms, multi] = get({"-H", "Range: bytes=0-9,-10"});
  CHECK(ms == "206");
  CHECK(multi.find(data.substr(0, 10)) != std::string::npos);
  CHECK(multi.find(data.substr(data.size() - 10)) != std::string::npos);
  srv.stop_and_check();
}
