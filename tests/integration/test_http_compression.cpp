// HTTP compression through the real server, in both modes: responses by Accept-Encoding
// (curl --compressed for gzip and br, q-values, identity), what is never compressed (small
// bodies, excluded types, HEAD, 206), Vary, streamed responses compressed piece by piece,
// and compressed request bodies: inflated for the handler, a bomb refused with 413.
#include <zlib.h>

#include "http_helpers.hpp"
#include "swactor/protocols/compression.hpp"

using namespace std::chrono_literals;
namespace t = swactor::testing;
using namespace swactor::testing::server;
namespace http = swactor::testing::http;
namespace cz = swactor::protocols::compression;

namespace {

std::string url_of(const server_under_test& srv, const std::string& path) {
  return "http://127.0.0.1:" + std::to_string(srv.port) + path;
}

json parse_json(const std::string& text) {
  try {
    return json::parse(text);
  } catch (...) {
    return json();
  }
}

// Text that compresses well but is not trivial.
std::string text_body(std::size_t n) {
  std::string s;
  for (int i = 0; s.size() < n; ++i) s += "line " + std::to_string(i * 7919 % 1000) + " of the body; ";
  s.resize(n);
  return s;
}

// Letters that compress to about 3/4 (so a compressed 300 KB body still streams in pieces).
std::string random_text(std::size_t n) {
  static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string s(n, ' ');
  std::uint32_t x = 2463534242u;
  for (auto& c : s) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = alphabet[x & 63];
  }
  return s;
}

// zlib's own gunzip (independent of the server's code): nullopt when `z` is not one whole
// gzip stream.
std::optional<std::string> gunzip(const std::string& z) {
  z_stream s{};
  if (inflateInit2(&s, 15 + 16) != Z_OK) return std::nullopt;
  std::string out;
  s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(z.data()));
  s.avail_in = static_cast<uInt>(z.size());
  int rc = Z_OK;
  while (rc == Z_OK) {
    char buf[16384];
    s.next_out = reinterpret_cast<Bytef*>(buf);
    s.avail_out = sizeof buf;
    rc = inflate(&s, Z_NO_FLUSH);
    out.append(buf, sizeof buf - s.avail_out);
    if (rc == Z_BUF_ERROR && s.avail_in == 0) break;
  }
  const bool ok = rc == Z_STREAM_END && s.avail_in == 0;
  inflateEnd(&s);
  if (!ok) return std::nullopt;
  return out;
}

std::string listener(const std::string& extra = {}) {
  return R"([[listen]]
url = "http://127.0.0.1:{port}"
routes = [ { path = "/up/", module = "echo", stream_body = true }, { path = "/", module = "echo" } ]
)" + extra + "\n" + http::kModules;
}

// One request on a fresh connection; the response (chunked framing removed).
http::response round_trip(const server_under_test& srv, const std::string& request, bool head = false) {
  auto c = connect_tcp("127.0.0.1", srv.port);
  REQUIRE(c);
  REQUIRE(c.send_all(request));
  auto r = http::read_response(c, 10s, head);
  REQUIRE(r);
  return *r;
}

}  // namespace

TEST_CASE("http compression: responses by Accept-Encoding, Vary, and what is never compressed",
          "[http][compression]") {
  const std::string mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  server_under_test srv(http::server_keys(mode), listener());
  const std::string big = text_body(4000);  // echoed twice (body, body_base64): well over min_size
  const auto post_big = [&](const std::string& headers) { return http::post("/api/x", big, headers); };

  SECTION("curl --compressed: br by server preference, gzip when asked for, bodies intact") {
    REQUIRE(http::have_tool("curl"));  // scripts/install-deps.sh installs it: missing fails, never skips
    for (std::string enc : {"", "gzip", "br", "deflate"}) {
      INFO("Accept-Encoding from curl, forced to " << (enc.empty() ? "(curl's own list)" : enc));
      std::vector<std::string> args{"curl", "-sS", "--max-time", "10", "--compressed", "-D", "-",
                                    "--data-binary", big, url_of(srv, "/api/c")};
      if (!enc.empty()) args.insert(args.end() - 1, {"-H", "Accept-Encoding: " + enc});
      auto r = t::run(args, 15s);
      INFO("curl stderr: " << r.err);
      REQUIRE(r.exit_code == 0);
      auto split = r.out.find("\r\n\r\n");
      REQUIRE(split != std::string::npos);
      auto head = r.out.substr(0, split);
      const std::string want = enc.empty() ? "br" : enc;
      CHECK(head.find("Content-Encoding: " + want + "\r\n") != std::string::npos);
      CHECK(head.find("Vary: Accept-Encoding") != std::string::npos);
      auto j = parse_json(r.out.substr(split + 4));
      CHECK(j.value("body", std::string()) == big);
    }
  }

  SECTION("q-values (RFC 9110 §12.5.3)") {
    struct want_t {
      const char* accept;
      const char* coding;  // "" = not compressed
    };
    for (auto w : {want_t{"gzip;q=0.5, br;q=0.1", "gzip"}, want_t{"br;q=0, gzip;q=0.001", "gzip"},
                   want_t{"br;q=0", ""}, want_t{"identity", ""}, want_t{"*", "br"},
                   want_t{"*;q=0.3, br;q=0", "gzip"}, want_t{"deflate", "deflate"}, want_t{"zstd", ""},
                   want_t{"gzip;q=0.4, identity;q=0.9", ""}}) {
      INFO("Accept-Encoding: " << w.accept);
      auto r = round_trip(srv, post_big(std::string("Accept-Encoding: ") + w.accept + "\r\n"));
      CHECK(r.status == 200);
      REQUIRE(r.header("vary"));
      CHECK(*r.header("vary") == "Accept-Encoding");
      std::string plain = r.body;
      if (*w.coding) {
        REQUIRE(r.header("content-encoding"));
        CHECK(*r.header("content-encoding") == w.coding);
        auto d = cz::make_decoder(*cz::parse_coding(w.coding), 1u << 24);
        plain.clear();
        REQUIRE(d->feed(r.body, plain) == cz::decode_status::ok);
        REQUIRE(d->finish() == cz::decode_status::ok);
        CHECK(r.body.size() < plain.size() / 2);
        if (std::string(w.coding) == "gzip") CHECK(gunzip(r.body) == plain);
      } else {
        CHECK_FALSE(r.header("content-encoding"));
      }
      CHECK(parse_json(plain).value("body", std::string()) == big);
    }
    // No Accept-Encoding at all: identity, and the response still varies on it.
    auto r = round_trip(srv, post_big(""));
    CHECK_FALSE(r.header("content-encoding"));
    CHECK(r.header("vary"));
    // Two fields are one list (RFC 9110 §5.3): br refused by the first, gzip offered by the
    // second.
    auto two = round_trip(srv, post_big("Accept-Encoding: br;q=0\r\nAccept-Encoding: gzip\r\n"));
    REQUIRE(two.header("content-encoding"));
    CHECK(*two.header("content-encoding") == "gzip");
  }

  SECTION("never compressed: small bodies, excluded types, HEAD, 206, 304, a handler's own coding") {
    const std::string ae = "Accept-Encoding: gzip, br\r\n";
    auto small = round_trip(srv, http::get("/s", ae));
    CHECK(small.status == 200);
    CHECK(small.body.size() < 1024);
    CHECK_FALSE(small.header("content-encoding"));
    CHECK_FALSE(small.header("vary"));  // not compressed whatever the client says

    for (const char* type : {"image/png", "video/mp4", "application/zip", "application/gzip"}) {
      INFO(type);
      auto r = round_trip(srv, http::post(std::string("/x?type=") + type, big, ae));
      CHECK(r.status == 200);
      CHECK(r.body.size() > big.size());
      CHECK_FALSE(r.header("content-encoding"));
      CHECK_FALSE(r.header("vary"));
    }
    // SVG is an image but text: compressed.
    auto svg = round_trip(srv, http::post("/x?type=image/svg%2Bxml", big, ae));
    CHECK(svg.header("content-encoding"));

    auto head = round_trip(srv, "HEAD /x HTTP/1.1\r\nHost: localhost\r\n" + ae + "Content-Length: 0\r\n\r\n", true);
    CHECK(head.status == 200);
    CHECK_FALSE(head.header("content-encoding"));

    auto partial = round_trip(srv, http::post("/x?status=206", big, ae));
    CHECK(partial.status == 206);
    CHECK_FALSE(partial.header("content-encoding"));
    CHECK(parse_json(partial.body).value("body", std::string()) == big);
  }
  srv.stop_and_check();
}

TEST_CASE("http compression: the listener's compression table", "[http][compression]") {
  const std::string mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  server_under_test srv(http::server_keys(mode),
                        listener("compression = { min_size = 100, algorithms = [\"gzip\"], gzip_level = 1, "
                                 "excluded_types = [\"application/json\"] }"));
  const std::string ae = "Accept-Encoding: br, gzip\r\n";
  // JSON excluded by this listener, a small text body now over min_size, br not offered.
  auto j = round_trip(srv, http::get("/s", ae));
  CHECK_FALSE(j.header("content-encoding"));
  auto txt = round_trip(srv, http::post("/x?type=text/plain", text_body(200), ae));
  REQUIRE(txt.header("content-encoding"));
  CHECK(*txt.header("content-encoding") == "gzip");
  CHECK(gunzip(txt.body).has_value());

  // Off entirely.
  server_under_test off(http::server_keys(mode), listener("compression = { enabled = false }"));
  auto r = round_trip(off, http::post("/x?type=text/plain", text_body(5000), ae));
  CHECK(r.status == 200);
  CHECK_FALSE(r.header("content-encoding"));
  CHECK_FALSE(r.header("vary"));
  off.stop_and_check();
  srv.stop_and_check();
}

TEST_CASE("http compression: a streamed response is compressed piece by piece", "[http][compression][streaming]") {
  const std::string mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  server_under_test srv(http::server_keys(mode), listener());
  // http_echo's numbered stream: piece i is its number repeated to `size` bytes.
  const int chunks = 6, size = 3000;
  std::string expect;
  for (int i = 0; i < chunks; ++i) {
    auto tag = std::to_string(i) + " ";
    std::string piece;
    while (piece.size() < size) piece += tag;
    piece.resize(size);
    expect += piece;
  }
  const std::string target = "/stream?chunks=" + std::to_string(chunks) + "&size=" + std::to_string(size) +
                             "&numbered=1&type=text/plain";

  for (std::string coding : {"gzip", "br"}) {
    INFO(coding);
    auto c = connect_tcp("127.0.0.1", srv.port);
    REQUIRE(c);
    REQUIRE(c.send_all(http::get(target, "Accept-Encoding: " + coding + "\r\n")));
    // The head and the first chunk alone: decoded on their own they give the first piece
    // whole (each write is flushed), whatever else is in flight.
    std::string first_chunk;
    auto got = c.read_until(
        [&](const std::string& b) -> std::size_t {
          auto end = b.find("\r\n\r\n");
          if (end == std::string::npos) return 0;
          auto line_end = b.find("\r\n", end + 4);
          if (line_end == std::string::npos) return 0;
          auto n = std::stoul(b.substr(end + 4, line_end - end - 4), nullptr, 16);
          if (b.size() < line_end + 2 + n) return 0;
          first_chunk = b.substr(line_end + 2, n);
          return line_end + 2 + n;
        },
        10s);
    REQUIRE(got);
    CHECK(got->find("Transfer-Encoding: chunked") != std::string::npos);
    CHECK(got->find("Content-Encoding: " + coding) != std::string::npos);
    CHECK(got->find("Vary: Accept-Encoding") != std::string::npos);
    auto d = cz::make_decoder(*cz::parse_coding(coding), 1u << 24);
    std::string first;
    REQUIRE(d->feed(first_chunk, first) == cz::decode_status::ok);
    CHECK(first == expect.substr(0, size));
  }

  REQUIRE(http::have_tool("curl"));  // scripts/install-deps.sh installs it: missing fails, never skips
  {
    for (std::string coding : {"gzip", "br"}) {
      INFO("curl --compressed, " << coding);
      auto r = t::run({"curl", "-sS", "--max-time", "10", "--compressed", "-H", "Accept-Encoding: " + coding, "-D",
                       "/dev/stderr", url_of(srv, target)},
                      15s);
      REQUIRE(r.exit_code == 0);
      auto head = r.err;
      for (auto& ch : head) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      CHECK(head.find("content-encoding: " + coding) != std::string::npos);
      CHECK(r.out == expect);
    }
  }
  srv.stop_and_check();
}

TEST_CASE("http compression: compressed request bodies are inflated, bombs get 413", "[http][compression]") {
  const std::string mode = GENERATE(as<std::string>{}, "base", "process");
  INFO("mode " << mode);
  server_under_test srv(http::server_keys(mode), listener("max_body_size = \"1MiB\""));
  const std::string plain = random_text(300'000);

  SECTION("gzip, deflate and br bodies reach the handler plain, whole and streamed") {
    for (auto coding : {cz::coding::gzip, cz::coding::deflate, cz::coding::br}) {
      for (std::string path : {"/api/", "/up/"}) {
        INFO(cz::to_string(coding) << " " << path);
        auto z = cz::compress(coding, 6, plain);
        auto r = round_trip(srv, http::post(path, z, "Content-Encoding: " + std::string(cz::to_string(coding)) + "\r\n"));
        CHECK(r.status == 200);
        auto j = parse_json(r.body);
        CHECK(j.value("body", std::string()) == plain);
        bool has_encoding = false;
        std::string length;
        for (auto& h : j["headers"]) {
          if (http::iequals(h[0].get<std::string>(), "content-encoding")) has_encoding = true;
          if (http::iequals(h[0].get<std::string>(), "content-length")) length = h[1].get<std::string>();
        }
        CHECK_FALSE(has_encoding);
        // Whole: Content-Length is the inflated size; streamed: gone (the size is not known).
        CHECK(length == (path == "/api/" ? std::to_string(plain.size()) : std::string()));
        if (path == "/up/") CHECK(j.value("streamed_pieces", 0) > 1);
      }
    }
    // A small body that rides along with its head.
    auto r = round_trip(srv, http::post("/api/small", cz::compress(cz::coding::gzip, 6, "tiny"), "Content-Encoding: gzip\r\n"));
    CHECK(parse_json(r.body).value("body", std::string()) == "tiny");
    REQUIRE(http::have_tool("curl"));
    {
      t::temp_dir dir;
      auto file = dir.write("body.gz", cz::compress(cz::coding::gzip, 9, plain));
      auto c = t::run({"curl", "-sS", "--max-time", "10", "-H", "Content-Encoding: gzip", "--data-binary",
                       "@" + file.string(), url_of(srv, "/api/curl")},
                      15s);
      REQUIRE(c.exit_code == 0);
      CHECK(parse_json(c.out).value("body", std::string()) == plain);
    }
  }

  SECTION("unknown codings get 415, invalid data 400") {
    auto r = round_trip(srv, http::post("/api/", "abc", "Content-Encoding: zstd\r\n"));
    CHECK(r.status == 415);
    REQUIRE(r.header("accept-encoding"));
    r = round_trip(srv, http::post("/api/", cz::compress(cz::coding::gzip, 6, "x"), "Content-Encoding: gzip, br\r\n"));
    CHECK(r.status == 415);
    r = round_trip(srv, http::post("/api/", "this is not gzip", "Content-Encoding: gzip\r\n"));
    CHECK(r.status == 400);
    CHECK(srv.wait_log("request body is not valid compressed data", 10s));
    // identity is no coding at all.
    r = round_trip(srv, http::post("/api/", "plain", "Content-Encoding: identity\r\n"));
    CHECK(r.status == 200);
    CHECK(parse_json(r.body).value("body", std::string()) == "plain");
  }

  SECTION("a bomb: 64 MiB of zeros in 64 KiB of gzip, against max_body_size 1 MiB") {
    const auto bomb = cz::compress(cz::coding::gzip, 9, std::string(64u << 20, '\0'));
    REQUIRE(bomb.size() < (1u << 20));  // the codec lets it in: the compressed size is fine
    for (std::string path : {"/api/", "/up/"}) {
      INFO(path);
      auto r = round_trip(srv, http::post(path, bomb, "Content-Encoding: gzip\r\n"));
      CHECK(r.status == 413);
      CHECK(srv.wait_log("inflates past max_body_size", 10s));
      // The server stays up and serves the next connection.
      auto ok = round_trip(srv, http::get("/after"));
      CHECK(ok.status == 200);
    }
    // Exactly at the limit is fine.
    auto at = round_trip(srv, http::post("/api/", cz::compress(cz::coding::gzip, 9, std::string(1u << 20, 'a')),
                                       "Content-Encoding: gzip\r\n"));
    CHECK(at.status == 200);
  }

  SECTION("inflate_requests = false: the body reaches the handler as sent") {
    server_under_test raw(http::server_keys(mode), listener("compression = { inflate_requests = false }"));
    auto z = cz::compress(cz::coding::gzip, 6, "hello");
    auto r = round_trip(raw, http::post("/api/", z, "Content-Encoding: gzip\r\n"));
    CHECK(r.status == 200);
    CHECK(parse_json(r.body).value("body_base64", std::string()).size() == (z.size() + 2) / 3 * 4);
    r = round_trip(raw, http::post("/api/", "abc", "Content-Encoding: zstd\r\n"));
    CHECK(r.status == 200);
    raw.stop_and_check();
  }
  srv.stop_and_check();
}
