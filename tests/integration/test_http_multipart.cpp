// multipart/form-data uploads, in both modes, with curl -F: fields and files reach the
// handler (http_echo reports each file's size and SHA-256), a file over 100 MiB passes with
// the server's memory bounded, temporary files go away when the request ends or the client
// vanishes mid-upload, limits answer 413 and malformed bodies 400.
#include <fstream>

#include "http_helpers.hpp"

using namespace std::chrono_literals;
namespace t = swactor::testing;
namespace fs = std::filesystem;
using namespace swactor::testing::server;
namespace http = swactor::testing::http;

namespace {

// `uploads`: upload_tmp_dir, which must exist before the server starts (the config refuses
// a missing one).
std::string listener(const fs::path& uploads, const std::string& extra = {}) {
  return R"([[listen]]
url = "http://127.0.0.1:{port}"
max_body_size = "256MiB"
upload_tmp_dir = ")" + uploads.string() + R"("
upload_memory_size = "64KiB"
)" + extra + R"(
routes = [ { path = "/s/", module = "echo", stream_body = true }, { path = "/", module = "echo" } ]
)" + std::string(http::kModules);
}

// `size` bytes of a pattern that differs per MiB (so a misplaced block changes the hash).
fs::path make_file(const t::temp_dir& dir, const std::string& name, std::size_t size) {
  auto p = dir.file(name);
  std::ofstream out(p, std::ios::binary);
  std::string block(1 << 20, '\0');
  for (std::size_t off = 0, n = 0; off < size; off += block.size(), ++n) {
    for (std::size_t i = 0; i < block.size(); ++i) block[i] = static_cast<char>((i * 31 + n * 7) ^ (i >> 11));
    out.write(block.data(), static_cast<std::streamsize>(std::min(block.size(), size - off)));
  }
  return p;
}

std::string sha256_file(const fs::path& p) {
  auto r = t::run({"sha256sum", p.string()}, 60s);
  REQUIRE(r.exit_code == 0);
  return r.out.substr(0, 64);
}

std::size_t files_in(const fs::path& dir) {
  std::error_code ec;
  std::size_t n = 0;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) ++n;
  return n;
}

// Polls until `dir` is empty (cleanup runs when the server notices; no fixed sleep).
bool becomes_empty(const fs::path& dir, t::duration timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (files_in(dir) != 0) {
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

json curl_json(std::vector<std::string> args) {
  std::vector<std::string> argv{"curl", "-sS", "--max-time", "60", "-w", "\n%{http_code}"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = t::run(argv, 90s);
  INFO("curl: " << r.err);
  REQUIRE(r.exit_code == 0);
  auto nl = r.out.rfind('\n');
  REQUIRE(nl != std::string::npos);
  REQUIRE(r.out.substr(nl + 1) == "200");
  return json::parse(r.out.substr(0, nl));
}

int curl_status(std::vector<std::string> args) {
  std::vector<std::string> argv{"curl", "-s", "-o", "/dev/null", "--max-time", "30", "-w", "%{http_code}"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = t::run(argv, 40s);
  return std::atoi(r.out.c_str());
}

}  // namespace

TEST_CASE("http multipart: curl -F fields and files, one over 100 MiB with bounded memory", "[http][multipart]") {
  const std::string mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  t::temp_dir updir("swactor-mp-up");
  const auto uploads = updir.path();
  server_under_test srv(http::server_keys(mode), listener(uploads));
  t::temp_dir data("swactor-mp-data");
  auto small = data.write("small.txt", "just a little text\n");
  auto mid = make_file(data, "mid.bin", 300 * 1024);  // above upload_memory_size: on disk
  auto big = make_file(data, "big.bin", 110u << 20);
  const auto url = "http://127.0.0.1:" + std::to_string(srv.port);

  // A whole-body route: the engine parses as the body arrives, http_echo hashes what it got.
  auto j = curl_json({"-F", "title=hello", "-F", "note=two words", "-F", "small=@" + small.string() + ";type=text/plain",
                      "-F", "mid=@" + mid.string(), url + "/whole"});
  INFO(j.dump());
  CHECK(j["body"] == "");
  CHECK(j["form"] == json::parse(R"([["title","hello"],["note","two words"]])"));
  REQUIRE(j["files"].size() == 2);
  CHECK(j["files"][0]["name"] == "small");
  CHECK(j["files"][0]["filename"] == "small.txt");
  CHECK(j["files"][0]["content_type"] == "text/plain");
  CHECK(j["files"][0]["size"] == 19);
  CHECK(j["files"][0]["on_disk"] == false);
  CHECK(j["files"][0]["sha256"] == sha256_file(small));
  CHECK(j["files"][1]["filename"] == "mid.bin");
  CHECK(j["files"][1]["content_type"] == "application/octet-stream");
  CHECK(j["files"][1]["size"] == 300 * 1024);
  CHECK(j["files"][1]["on_disk"] == true);
  CHECK(j["files"][1]["sha256"] == sha256_file(mid));
  CHECK(becomes_empty(uploads, 5s));  // the request ended: its temp file is gone

  // The big one on a stream_body route (hashed as it streams), RSS sampled meanwhile.
  const auto workers = srv.worker_pids(srv.stats());
  REQUIRE(!workers.empty());
  const pid_t master = srv.proc->pid();
  auto total_rss = [&] {
    long sum = mode == "process" ? rss_kib(master) : 0;  // process mode: the reactors live in the master
    for (auto w : workers) sum += rss_kib(w);
    return sum;
  };
  const long before = total_rss();
  REQUIRE(before > 0);
  auto out = data.file("big.json");
  t::process up({"curl", "-sS", "--max-time", "120", "-o", out.string(), "-w", "%{http_code}", "-F", "kind=big", "-F",
                 "big=@" + big.string(), "-F", "small=@" + small.string(), url + "/s/big"});
  long peak = before;
  while (up.running()) {
    peak = std::max(peak, total_rss());
    std::this_thread::sleep_for(20ms);
  }
  REQUIRE(up.exit_code() == 0);
  CHECK(up.stdout_text() == "200");
  INFO("server RSS before " << before << " KiB, peak " << peak << " KiB");
  CHECK(peak - before < 64 * 1024);
  auto bj = json::parse(t::read_file(out));
  INFO(bj.dump());
  CHECK(bj["form"] == json::parse(R"([["kind","big"]])"));
  REQUIRE(bj["files"].size() == 2);
  CHECK(bj["files"][0]["size"] == 110u << 20);
  CHECK(bj["files"][0]["filename"] == "big.bin");
  CHECK(bj["files"][0]["sha256"] == sha256_file(big));
  CHECK(bj["files"][1]["sha256"] == sha256_file(small));
  CHECK(becomes_empty(uploads, 5s));
  srv.stop_and_check();
}

TEST_CASE("http multipart: a client killed mid-upload leaves no temporary file", "[http][multipart]") {
  const std::string mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  t::temp_dir updir("swactor-mp-up");
  const auto uploads = updir.path();
  server_under_test srv(http::server_keys(mode), listener(uploads));
  t::temp_dir data("swactor-mp-data");
  auto big = make_file(data, "big.bin", 32u << 20);
  for (std::string route : {"/whole", "/s/stream"}) {
    INFO("route " << route);
    // Slow enough that the upload is surely in progress when it is killed.
    t::process up({"curl", "-s", "-o", "/dev/null", "--limit-rate", "2M", "-F", "f=@" + big.string(),
                   "http://127.0.0.1:" + std::to_string(srv.port) + route});
    const auto until = std::chrono::steady_clock::now() + 20s;
    while (files_in(uploads) == 0 && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(10ms);
    REQUIRE(files_in(uploads) == 1);
    REQUIRE(up.running());
    up.kill();
    CHECK(becomes_empty(uploads, 10s));
  }
  // The server still serves.
  CHECK(curl_status({"http://127.0.0.1:" + std::to_string(srv.port) + "/after"}) == 200);
  srv.stop_and_check();
}

TEST_CASE("http multipart: limits answer 413, malformed bodies 400", "[http][multipart]") {
  const std::string mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  t::temp_dir updir("swactor-mp-up");
  server_under_test srv(http::server_keys(mode), listener(updir.path(), R"(multipart_max_parts = 4
multipart_max_part_size = "16KiB"
multipart_max_field_size = "1KiB")"));
  const auto uploads = srv.dir.file("uploads");
  fs::create_directories(uploads);
  t::temp_dir data("swactor-mp-data");
  auto ok_file = make_file(data, "ok.bin", 16 * 1024);
  auto big_file = make_file(data, "big.bin", 20 * 1024);
  const auto url = "http://127.0.0.1:" + std::to_string(srv.port);
  for (std::string route : {"/whole", "/s/stream"}) {
    INFO("route " << route);
    // At the limits: accepted.
    CHECK(curl_status({"-F", "a=1", "-F", "b=2", "-F", "c=" + std::string(1024, 'c'), "-F", "f=@" + ok_file.string(),
                       url + route}) == 200);
    CHECK(curl_status({"-F", "a=1", "-F", "b=2", "-F", "c=3", "-F", "d=4", "-F", "e=5", url + route}) == 413);
    CHECK(curl_status({"-F", "f=@" + big_file.string(), url + route}) == 413);
    CHECK(curl_status({"-F", "c=" + std::string(1025, 'c'), url + route}) == 413);
    // Malformed: no delimiter, a part without Content-Disposition, no close delimiter.
    const std::string ct = "Content-Type: multipart/form-data; boundary=xyz\r\n";
    for (std::string body : {std::string("no delimiter here"), std::string("--xyz\r\nX: y\r\n\r\nv\r\n--xyz--\r\n"),
                             std::string("--xyz\r\nContent-Disposition: form-data; name=a\r\n\r\nv")}) {
      INFO("body " << body);
      auto c = connect_tcp("127.0.0.1", srv.port);
      REQUIRE(c);
      REQUIRE(c.send_all(http::post(route, body, ct)));
      auto r = http::read_response(c);
      REQUIRE(r);
      CHECK(r->status == 400);
    }
    // No boundary parameter at all.
    auto c = connect_tcp("127.0.0.1", srv.port);
    REQUIRE(c);
    REQUIRE(c.send_all(http::post(route, "x", "Content-Type: multipart/form-data\r\n")));
    auto r = http::read_response(c);
    REQUIRE(r);
    CHECK(r->status == 400);
  }
  CHECK(srv.wait_log("multipart body refused \\(413\\)", 5s));
  CHECK(becomes_empty(uploads, 5s));
  srv.stop_and_check();
}
