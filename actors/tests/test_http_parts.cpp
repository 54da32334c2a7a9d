// HTTP pieces of the server layer without processes: routes (config and matching), the
// request API's parsing helpers, and the connection layer driving the real HTTP codec over
// the in-memory transport (pipelining order, errors, half-close, timeouts, abandon).

#include <catch2/catch.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "http/router.hpp"
#include "memory_transport.hpp"
#include "net/conn_host.hpp"
#include "config_helpers.hpp"
#include "swactor/actors/app_config.hpp"
#include "swactor/actors/http.hpp"
#include "swactor/protocols/websocket.hpp"

using namespace swactor;
namespace h1 = swactor::protocols::http1;
using swactor::test::memory_pipe;
using swactor::test::memory_transport;

namespace {

std::optional<app_config> parse(const std::string& text, config::diagnostics& diag) {
  return test::parse_plain(text, diag);
}

const char* kRoutes = R"(
[modules.api]
type = "plain"
[modules.health]
type = "plain"
[modules.files]
type = "plain"
[modules.writer]
type = "plain"
[[listen]]
url = "http://127.0.0.1:8080"
max_body_size = "1KiB"
header_timeout = "2s"
routes = [ { path = "/api/", module = "api" },
           { path = "=/healthz", module = "health" },
           { path = "/", module = "files", methods = ["GET", "HEAD"] },
           { path = "/", module = "writer", methods = ["PUT"] },
           { path = "/api/v2/", module = "health" } ]
)";

}  // namespace

TEST_CASE("http config: URLs, routes and limits resolve once", "[http][config]") {
  config::diagnostics diag;
  auto app = parse(kRoutes, diag);
  INFO(diag.to_string());
  REQUIRE(app);
  const auto& lc = app->listen[0];
  CHECK(lc.http());
  CHECK(lc.endpoint.kind == listen_kind::tcp);
  CHECK(lc.endpoint.port == 8080);
  CHECK(lc.module_index == -1);
  REQUIRE(lc.routes.size() == 5);
  CHECK(lc.routes[1].exact);
  CHECK(lc.routes[1].match == "/healthz");
  CHECK(lc.routes[0].module_index == app->module_index("api"));
  CHECK(lc.http_options.max_body_size == 1024);
  CHECK(lc.http_options.header_timeout_ms == 2000);
  CHECK(lc.http_options.keepalive_timeout_ms == 60000);
  CHECK(lc.http_options.server_name == "swactor");
  // No websocket table: upgrades on all the same, with the defaults (control frames kept
  // from the module).
  CHECK(lc.websocket.enabled);
  REQUIRE(lc.http_options.websocket);
  CHECK(lc.http_options.websocket->max_message_size == 16u << 20);
  CHECK_FALSE(lc.http_options.websocket->deliver_control);

  auto u = parse_listen_url("http+unix:///tmp/h.sock");
  CHECK(u);
  CHECK(u.kind == listen_kind::unix_stream);
  CHECK(u.protocol == listen_protocol::http);
  CHECK(parse_listen_url("tcp://127.0.0.1:1").protocol == listen_protocol::framed);
  CHECK_FALSE(parse_listen_url("tcp://127.0.0.1:1").tls);

  // Over TLS: https:// and wss:// are HTTP, tls:// is framed TCP.
  auto s = parse_listen_url("https://127.0.0.1:443/");
  CHECK((s && s.tls && s.kind == listen_kind::tcp && s.protocol == listen_protocol::http && !s.websocket));
  auto w = parse_listen_url("wss://[::1]:8443");
  CHECK((w && w.tls && w.websocket && w.host == "::1"));
  auto f = parse_listen_url("tls://127.0.0.1:7000");
  CHECK((f && f.tls && f.protocol == listen_protocol::framed && f.port == 7000));
}

TEST_CASE("http config: overlapping, malformed and misplaced routes are refused with their position",
          "[http][config]") {
  config::diagnostics diag;
  auto app = parse(R"(
[modules.a]
type = "plain"
[[listen]]
url = "http://127.0.0.1:8080"
routes = [ { path = "/x/", module = "a", methods = ["GET"] },
           { path = "/x/", module = "a", methods = ["POST", "GET"] },
           { path = "nope", module = "a" },
           { path = "/y/", module = "missing" },
           { path = "/z/", module = "a", methods = ["get"] } ]
[[listen]]
url = "tcp://127.0.0.1:8081"
routes = [ { path = "/", module = "a" } ]
[[listen]]
url = "http://127.0.0.1:8082"
)", diag);
  CHECK_FALSE(app);
  auto text = diag.to_string();
  INFO(text);
  CHECK(text.find("listen[0].routes[1]: route 1 (path \"/x/\") overlaps route 0 for GET") != std::string::npos);
  CHECK(text.find("listen[0].routes[2].path") != std::string::npos);
  CHECK(text.find("listen[0].routes[3].module: no module instance or built-in module named \"missing\"") !=
        std::string::npos);
  CHECK(text.find("upper-case method name like \"GET\", got \"get\"") != std::string::npos);
  CHECK(text.find("listen[1].routes: routes are for HTTP listeners") != std::string::npos);
  CHECK(text.find("listen[2].module: missing: an HTTP listener needs module (every request) or routes") !=
        std::string::npos);
  // Positions: every line names the file and a line number.
  for (auto& d : diag.items()) CHECK(d.line > 0);
}

TEST_CASE("http routes: exact beats prefix, longest prefix wins, 404, 405 with Allow", "[http][router]") {
  config::diagnostics diag;
  auto app = parse(kRoutes, diag);
  REQUIRE(app);
  const auto& lc = app->listen[0];
  auto api = app->module_index("api"), health = app->module_index("health"), files = app->module_index("files"),
       writer = app->module_index("writer");
  CHECK(detail::match_route(lc, "/api/users", "POST").module == api);
  CHECK(detail::match_route(lc, "/api/v2/x", "GET").module == health);  // longer prefix
  CHECK(detail::match_route(lc, "/healthz", "GET").module == health);   // exact
  CHECK(detail::match_route(lc, "/healthz/x", "GET").module == files);  // exact only
  CHECK(detail::match_route(lc, "/index.html", "HEAD").module == files);
  CHECK(detail::match_route(lc, "/index.html", "PUT").module == writer);  // same path, other methods
  auto r = detail::match_route(lc, "/index.html", "DELETE");
  CHECK(r.status == 405);
  CHECK(r.allow == "GET, HEAD, PUT");
  listen_config only_api;
  only_api.routes.push_back(lc.routes[0]);
  CHECK(detail::match_route(only_api, "/other", "GET").status == 404);
  listen_config whole;
  whole.module_index = 3;
  CHECK(detail::match_route(whole, "/anything", "BREW").module == 3);
}

TEST_CASE("http request: path decoding, dot segments, query, cookies, form", "[http][request]") {
  CHECK(http::remove_dot_segments("/a/./b/../c") == "/a/c");
  CHECK(http::remove_dot_segments("/../../etc/passwd") == "/etc/passwd");
  CHECK(http::remove_dot_segments("/a/b/..") == "/a/");
  CHECK(http::remove_dot_segments("/") == "/");
  std::string out;
  CHECK(http::percent_decode("a%20b%2Fc", out, false));
  CHECK(out == "a b/c");
  CHECK_FALSE(http::percent_decode("100%", out, false));
  CHECK(out == "100%");
  CHECK(http::percent_decode("a+b", out, true));
  CHECK(out == "a b");

  h1::request_head head;
  head.method = "POST";
  head.target = "/shop/%2e%2e/cart/./items?id=7&tag=a&tag=b%20c#frag";
  head.authority = "example.com";
  head.headers.add("Cookie", "sid=abc; theme=\"dark\"");
  head.headers.add("cookie", "lang=en");
  head.headers.add("Content-Type", "application/x-www-form-urlencoded; charset=utf-8");
  head.headers.add("X-Multi", "1");
  head.headers.add("x-multi", "2");
  head.body = "name=a+b&empty=&flag";
  http::request req(head, session_id(9), "127.0.0.1:5000");
  CHECK(req.path() == "/cart/items");
  CHECK(req.query() == "id=7&tag=a&tag=b%20c");
  CHECK(req.query_param("tag") == "a");
  REQUIRE(req.query_params().size() == 3);
  CHECK(req.query_params()[2].second == "b c");
  CHECK(req.cookie("theme") == "dark");
  CHECK(req.cookie("lang") == "en");
  CHECK_FALSE(req.cookie("none"));
  CHECK(req.header_values("X-MULTI") == std::vector<std::string_view>{"1", "2"});
  REQUIRE(req.form().size() == 3);
  CHECK(req.form()[0] == std::pair<std::string, std::string>{"name", "a b"});
  CHECK(req.form()[2] == std::pair<std::string, std::string>{"flag", ""});
  CHECK(req.host() == "example.com");

  h1::request_head abs;
  abs.method = "GET";
  abs.target = "http://example.com:8080/a/b?x=1";
  http::request r2(abs, session_id(1), "");
  CHECK(r2.path() == "/a/b");
  CHECK(r2.query() == "x=1");

  // Short targets are scanned in one pass, long ones (over 64 bytes) with finds: the same
  // answers either way.
  auto path_of = [](std::string target) {
    h1::request_head h;
    h.method = "GET";
    h.target = std::move(target);
    http::request r(h, session_id(2), "");
    return std::pair<std::string, std::string>(r.path(), std::string(r.query()));
  };
  using pq = std::pair<std::string, std::string>;
  const std::string longseg(70, 'a');
  CHECK(path_of("/a/./b?x") == pq{"/a/b", "x"});
  CHECK(path_of("/a%41?q=%2e") == pq{"/aA", "q=%2e"});
  CHECK(path_of("/plain/path?a=/./") == pq{"/plain/path", "a=/./"});
  CHECK(path_of("/.hidden") == pq{"/.hidden", ""});
  CHECK(path_of("/" + longseg + "/../b?q=1") == pq{"/b", "q=1"});
  CHECK(path_of("/" + longseg + "/%62") == pq{"/" + longseg + "/b", ""});
  CHECK(path_of("/" + longseg + "/c?d") == pq{"/" + longseg + "/c", "d"});
}

TEST_CASE("http response: cookies with every attribute, HTTP dates", "[http][response]") {
  http::cookie c;
  c.name = "sid";
  c.value = "42";
  c.expires = std::chrono::system_clock::time_point(std::chrono::seconds(784111777));
  c.max_age = 3600;
  c.domain = "example.com";
  c.path = "/";
  c.secure = c.http_only = c.partitioned = true;
  c.same_site = "Lax";
  CHECK(c.to_string() ==
        "sid=42; Expires=Sun, 06 Nov 1994 08:49:37 GMT; Max-Age=3600; Domain=example.com; Path=/; Secure; "
        "HttpOnly; SameSite=Lax; Partitioned");
}

// -- compression ----------------------------------------------------------------------------------

namespace {

namespace cz = swactor::protocols::compression;

// What a response sends, kind by kind.
struct capture_channel final : http::response_channel {
  std::vector<std::pair<std::uint8_t, std::string>> sent;
  std::error_code send(std::uint8_t kind, std::string_view data) override {
    sent.emplace_back(kind, std::string(data));
    return {};
  }
  task<std::error_code> drained(duration) override { co_return std::error_code(); }
};

// The head and body of an out::whole reply.
std::pair<h1::response_head, std::string> whole_of(const std::string& data) {
  std::string_view in = data;
  h1::response_head h;
  REQUIRE(h.decode_from(in));
  return {h, std::string(in)};
}

}  // namespace

TEST_CASE("http config: the compression table", "[http][config][compression]") {
  config::diagnostics diag;
  auto app = parse(R"(
[modules.api]
type = "plain"
[[listen]]
url = "http://127.0.0.1:8080"
module = "api"
compression = { min_size = "2KiB", algorithms = ["gzip", "br", "gzip"], gzip_level = 1, types = ["text/*"], inflate_requests = false }
[[listen]]
url = "http://127.0.0.1:8081"
module = "api"
)", diag);
  INFO(diag.to_string());
  REQUIRE(app);
  const auto& co = app->listen[0].compression_options;
  CHECK(co.enabled);
  CHECK(co.min_size == 2048);
  CHECK(co.offered == std::vector<cz::coding>{cz::coding::gzip, cz::coding::br});
  CHECK(co.level(cz::coding::gzip) == 1);
  CHECK(co.types == std::vector<std::string>{"text/*"});
  CHECK_FALSE(co.inflate_requests);
  const auto& def = app->listen[1].compression_options;
  CHECK(def.enabled);
  CHECK(def.min_size == 1024);
  CHECK(def.offered == std::vector<cz::coding>{cz::coding::br, cz::coding::gzip, cz::coding::deflate});
  CHECK(def.excluded_types == cz::default_excluded_types());
  CHECK(def.inflate_requests);

  for (const char* bad : {"compression = { algorithms = [\"zstd\"] }", "compression = { gzip_level = 10 }",
                          "compression = { excluded_types = [\"png\"] }", "compression = { level = 1 }"}) {
    INFO(bad);
    config::diagnostics d;
    CHECK_FALSE(parse(std::string("[modules.api]\ntype = \"plain\"\n[[listen]]\nurl = \"http://127.0.0.1:1\"\nmodule = \"api\"\n") + bad, d));
    CHECK(d.to_string().find("compression") != std::string::npos);
  }
  config::diagnostics d;
  CHECK_FALSE(parse("[modules.api]\ntype = \"plain\"\n[[listen]]\nurl = \"tcp://127.0.0.1:1\"\nmodule = \"api\"\ncompression = {}\n", d));
  CHECK(d.to_string().find("compression is for HTTP listeners") != std::string::npos);
}

TEST_CASE("http response: compression at the head, Vary, ETag, streamed pieces", "[http][response][compression]") {
  cz::options o;
  o.excluded_types = cz::default_excluded_types();
  const std::string body(5000, 'a');
  auto run_whole = [&](cz::coding c, auto&& setup) {
    capture_channel ch;
    http::response res(ch);
    res.set_compression(&o, c);
    setup(res);
    REQUIRE_FALSE(res.end(body));
    REQUIRE(ch.sent.size() == 1);
    return whole_of(ch.sent[0].second);
  };
  auto nothing = [](http::response&) {};

  auto [h, b] = run_whole(cz::coding::gzip, [](http::response& r) {
    r.set_header("Content-Type", "text/plain").set_header("ETag", "\"v1\"").set_header("Vary", "Cookie");
  });
  CHECK(*h.headers.find("content-encoding") == "gzip");
  CHECK(*h.headers.find("vary") == "Cookie, Accept-Encoding");
  CHECK(*h.headers.find("etag") == "W/\"v1\"");
  auto d = cz::make_decoder(cz::coding::gzip, 1 << 20);
  std::string plain;
  CHECK(d->feed(b, plain) == cz::decode_status::ok);
  CHECK(plain == body);

  // identity chosen: not compressed, but it varies.
  auto [h2, b2] = run_whole(cz::coding::identity, nothing);
  CHECK_FALSE(h2.headers.find("content-encoding"));
  CHECK(*h2.headers.find("vary") == "Accept-Encoding");
  CHECK(b2 == body);

  // Not compressed, not varying.
  for (auto setup : std::vector<std::function<void(http::response&)>>{
           [](http::response& r) { r.status(206).set_header("Content-Range", "bytes 0-4999/9000"); },
           [](http::response& r) { r.status(304); },
           [](http::response& r) { r.set_header("Content-Encoding", "br"); },
           [](http::response& r) { r.set_header("Content-Type", "image/jpeg"); },
           [](http::response& r) { r.set_header("Cache-Control", "public, no-transform"); },
           [](http::response& r) { r.compress(false); }}) {
    auto [h3, b3] = run_whole(cz::coding::br, setup);
    const auto* ce = h3.headers.find("content-encoding");
    CHECK((!ce || *ce == "br"));  // only the handler's own coding
    CHECK_FALSE(h3.headers.find("vary"));
    if (h3.status != 304) CHECK(b3 == body);
  }
  // Below min_size.
  {
    capture_channel ch;
    http::response res(ch);
    res.set_compression(&o, cz::coding::gzip);
    REQUIRE_FALSE(res.end("small"));
    auto [h4, b4] = whole_of(ch.sent[0].second);
    CHECK_FALSE(h4.headers.find("content-encoding"));
    CHECK(b4 == "small");
  }

  // Streamed: the head says br, each write is one decodable piece, end() finishes.
  capture_channel ch;
  {
    http::response res(ch);
    res.set_compression(&o, cz::coding::br);
    asio::io_context ctx;
    std::error_code e1, e2, e3;
    bool done = false;
    swactor::spawn(ctx, [&]() -> task<void> {
      e1 = co_await res.write("first piece ");
      e2 = co_await res.write("second piece");
      e3 = res.end();
      done = true;
    });
    ctx.run();
    REQUIRE(done);
    CHECK_FALSE((e1 || e2 || e3));
  }
  REQUIRE(ch.sent.size() == 5);  // head, two pieces, the stream's end, end
  CHECK(ch.sent[0].first == static_cast<std::uint8_t>(h1::out::head));
  std::string_view hv = ch.sent[0].second;
  h1::response_head sh;
  REQUIRE(sh.decode_from(hv));
  CHECK(*sh.headers.find("content-encoding") == "br");
  auto sd = cz::make_decoder(cz::coding::br, 1 << 20);
  std::string out;
  REQUIRE(sd->feed(ch.sent[1].second, out) == cz::decode_status::ok);
  CHECK(out == "first piece ");
  REQUIRE(sd->feed(ch.sent[2].second, out) == cz::decode_status::ok);
  CHECK(out == "first piece second piece");
  REQUIRE(sd->feed(ch.sent[3].second, out) == cz::decode_status::ok);
  CHECK(out == "first piece second piece");
  CHECK(ch.sent[4].first == static_cast<std::uint8_t>(h1::out::end));
  CHECK(sd->finish() == cz::decode_status::ok);
}

// -- the connection layer with the HTTP codec -------------------------------------------------

namespace {

struct recording_sink final : net::connection_sink {
  std::vector<std::pair<std::uint8_t, std::string>> events;
  std::vector<std::string> closed;
  void on_open(net::connection&) override {}
  bool on_event(net::connection&, const protocols::event& e) override {
    events.emplace_back(e.kind, std::string(e.data));
    return true;
  }
  void on_closed(net::connection&, std::string_view reason) override { closed.emplace_back(reason); }
  void on_datagram(int, std::string, std::string_view) override {}
};

struct http_fixture {
  asio::io_context io;
  std::unique_ptr<server_state> state = std::make_unique<server_state>();
  app_config app;
  recording_sink sink;
  std::unique_ptr<net::conn_host> host;

  explicit http_fixture(h1::options o = {}) {
    listen_config lc;
    lc.url = "http://127.0.0.1:1";
    lc.endpoint = parse_listen_url(lc.url);
    lc.http_options = std::move(o);
    app.listen.push_back(lc);
    host = std::make_unique<net::conn_host>(io, app, *state, state->procs[0].conns, sink);
  }
  ~http_fixture() {
    host->abort_all();
    io.poll();
  }
  std::shared_ptr<net::connection> connect(const std::shared_ptr<memory_pipe>& p) {
    state->listeners[0].connections.fetch_add(1);
    auto c = host->adopt(std::make_unique<memory_transport>(io, p), 0, 1, "peer");
    run();
    return c;
  }
  void run() {
    io.restart();
    io.poll();
  }
};

std::string whole(int status, std::string_view body) {
  h1::response_head h;
  h.status = status;
  auto s = h.encode();
  s.append(body);
  return s;
}

std::string target_of(const std::string& event_data) {
  h1::request_head h;
  REQUIRE(h.decode(event_data));
  return h.target;
}

}  // namespace

TEST_CASE("http connection: pipelined requests parsed ahead, answered in order, bounded", "[http][connection]") {
  h1::options o;
  o.max_pipelined = 2;
  http_fixture fx(o);
  auto p = std::make_shared<memory_pipe>();
  auto c = fx.connect(p);
  test::peer_send(fx.io, *p,
                  "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\nGET /3 HTTP/1.1\r\nHost: a\r\n\r\n");
  fx.run();
  // Two parsed ahead; the third waits until a response goes out.
  REQUIRE(fx.sink.events.size() == 2);
  CHECK(target_of(fx.sink.events[1].second) == "/2");
  CHECK(c->codec().outstanding() == 2);
  CHECK(c->send(whole(200, "one"), static_cast<std::uint8_t>(h1::out::whole)) == std::error_code());
  fx.run();
  REQUIRE(fx.sink.events.size() == 3);
  CHECK(target_of(fx.sink.events[2].second) == "/3");
  CHECK(c->send(whole(200, "two"), static_cast<std::uint8_t>(h1::out::whole)) == std::error_code());
  CHECK(c->send(whole(404, "three"), static_cast<std::uint8_t>(h1::out::whole)) == std::error_code());
  fx.run();
  auto one = p->written.find("one"), two = p->written.find("two"), three = p->written.find("three");
  CHECK(one < two);
  CHECK(two < three);
  CHECK(three != std::string::npos);
  CHECK(p->written.find("HTTP/1.1 404 Not Found\r\n") != std::string::npos);
  CHECK_FALSE(c->closed());
}

TEST_CASE("http connection: a smuggling attempt gets 400 after the replies owed, then close", "[http][connection]") {
  http_fixture fx;
  auto p = std::make_shared<memory_pipe>();
  auto c = fx.connect(p);
  test::peer_send(fx.io, *p,
                  "GET /ok HTTP/1.1\r\nHost: a\r\n\r\n"
                  "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                  "GET /never HTTP/1.1\r\nHost: a\r\n\r\n");
  fx.run();
  REQUIRE(fx.sink.events.size() == 1);  // the handler never sees the bad request or what follows
  CHECK_FALSE(c->closed());             // the first request is still owed its reply
  CHECK(c->send(whole(200, "first"), static_cast<std::uint8_t>(h1::out::whole)) == std::error_code());
  fx.run();
  auto first = p->written.find("first");
  auto bad = p->written.find("HTTP/1.1 400 ");
  REQUIRE(first != std::string::npos);
  REQUIRE(bad != std::string::npos);
  CHECK(first < bad);
  CHECK(c->closed());
  REQUIRE(fx.sink.closed.size() == 1);
  CHECK_FALSE(fx.sink.closed[0].empty());
}

TEST_CASE("http connection: a half-closed client still gets its answer", "[http][connection]") {
  http_fixture fx;
  auto p = std::make_shared<memory_pipe>();
  auto c = fx.connect(p);
  test::peer_send(fx.io, *p, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  test::peer_close(fx.io, *p);
  fx.run();
  REQUIRE(fx.sink.events.size() == 1);
  CHECK_FALSE(c->closed());
  CHECK(c->send(whole(200, "late"), static_cast<std::uint8_t>(h1::out::whole)) == std::error_code());
  fx.run();
  CHECK(p->written.find("late") != std::string::npos);
  CHECK(c->closed());
}

TEST_CASE("http connection: the header timeout answers 408, abandon answers 502", "[http][connection]") {
  h1::options o;
  o.header_timeout_ms = 50;
  http_fixture fx(o);
  auto p = std::make_shared<memory_pipe>();
  auto c = fx.connect(p);
  test::peer_send(fx.io, *p, "GET / HTTP/1.1\r\nHo");
  fx.run();
  auto t0 = std::chrono::steady_clock::now();
  CHECK_FALSE(c->deadline_passed(t0));  // the first look starts the measurement
  CHECK_FALSE(c->deadline_passed(t0 + std::chrono::milliseconds(40)));
  CHECK(c->deadline_passed(t0 + std::chrono::milliseconds(60)));
  c->expire();
  fx.run();
  CHECK(p->written.find("HTTP/1.1 408 ") == 0);
  CHECK(c->closed());

  auto p2 = std::make_shared<memory_pipe>();
  fx.state->listeners[0].connections.fetch_add(1);
  auto c2 = fx.host->adopt(std::make_unique<memory_transport>(fx.io, p2), 0, 2, "peer");
  fx.run();
  test::peer_send(fx.io, *p2, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  fx.run();
  CHECK(c2->codec().outstanding() == 1);
  c2->abandon();
  fx.run();
  // The one request that was lost is answered; the connection stays usable.
  CHECK(p2->written.find("HTTP/1.1 502 ") == 0);
  CHECK_FALSE(c2->closed());
  CHECK(c2->codec().outstanding() == 0);

  // Two lost requests (pipelined): the first gets 502, then the connection ends.
  test::peer_send(fx.io, *p2, "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n");
  fx.run();
  CHECK(c2->codec().outstanding() == 2);
  p2->written.clear();
  c2->abandon();
  fx.run();
  CHECK(p2->written.find("HTTP/1.1 502 ") == 0);
  CHECK(c2->closed());
}

TEST_CASE("http config: websocket deliver_control reaches the codec options", "[http][config][websocket]") {
  config::diagnostics diag;
  auto app = parse(std::string(kRoutes) + "websocket = { deliver_control = true }\n", diag);
  INFO(diag.to_string());
  REQUIRE(app);
  REQUIRE(app->listen[0].http_options.websocket);
  CHECK(app->listen[0].http_options.websocket->deliver_control);
}

TEST_CASE("http config: h2c_only reaches the codec options, and only where it can work", "[http][config][http2]") {
  const std::string head = "[modules.api]\ntype = \"plain\"\n[[listen]]\nurl = \"http://127.0.0.1:1\"\nmodule = \"api\"\n";
  {
    config::diagnostics d;
    auto app = parse(head + "h2c_only = true\n", d);
    INFO(d.to_string());
    REQUIRE(app);
    CHECK(app->listen[0].http_options.h2c_only);
    CHECK(app->listen[0].http_options.h2c);
  }
  {
    config::diagnostics d;
    auto app = parse(head, d);
    REQUIRE(app);
    CHECK_FALSE(app->listen[0].http_options.h2c_only);
  }
  const std::pair<std::string, std::string> refused[] = {
      {head + "h2c_only = true\nh2c = false\n", "listen[0].h2c_only"},
      {"[modules.api]\ntype = \"plain\"\n[[listen]]\nurl = \"tcp://127.0.0.1:1\"\nmodule = \"api\"\nh2c_only = true\n",
       "h2c_only is for cleartext HTTP listeners"},
  };
  for (const auto& [text, expected] : refused) {
    INFO(text);
    config::diagnostics d;
    CHECK_FALSE(parse(text, d));
    INFO(d.to_string());
    CHECK(d.to_string().find(expected) != std::string::npos);
  }
}

TEST_CASE("http config: ALPN names an HTTP listener does not speak are refused", "[http][config]") {
  config::diagnostics d;
  CHECK_FALSE(parse("[modules.api]\ntype = \"plain\"\n[[listen]]\nurl = \"https://127.0.0.1:1\"\nmodule = \"api\"\n"
                    "tls = { cert = \"c.pem\", key = \"k.pem\", alpn = [\"h2\", \"h3\"] }\n",
                    d));
  INFO(d.to_string());
  CHECK(d.to_string().find("listen[0].tls.alpn[1]") != std::string::npos);
  CHECK(d.to_string().find("not \"h3\"") != std::string::npos);
  CHECK(d.to_string().find("listen[0].tls.alpn[0]") == std::string::npos);
}

TEST_CASE("http config: HTTP keys on a listener that is not HTTP are refused at their line", "[http][config]") {
  const std::string head = "[modules.api]\ntype = \"plain\"\n[[listen]]\nurl = \"tcp://127.0.0.1:1\"\nmodule = \"api\"\n";
  for (const char* key : {"max_body_size = \"1MiB\"", "header_timeout = \"5s\"", "h2_max_concurrent_streams = 10",
                          "max_concurrency = 5", "upload_tmp_dir = \"/tmp\""}) {
    INFO(key);
    config::diagnostics d;
    CHECK_FALSE(parse(head + key + "\n", d));
    const auto text = d.to_string();
    INFO(text);
    const std::string name(key, std::string_view(key).find(' '));
    CHECK(text.find(":6:") != std::string::npos);  // the key's own line
    CHECK(text.find("listen[0]." + name + ": " + name + " is for HTTP listeners") != std::string::npos);
    CHECK(text.find("this one is tcp://127.0.0.1:1") != std::string::npos);
  }
  // The same keys on HTTP, WebSocket and TLS HTTP listeners are fine; framing keys on tcp:// too.
  for (const char* url : {"http://127.0.0.1:1", "ws://127.0.0.1:1", "http+unix:///tmp/x.sock"}) {
    INFO(url);
    config::diagnostics d;
    auto app = parse(std::string("[modules.api]\ntype = \"plain\"\n[[listen]]\nurl = \"") + url +
                         "\"\nmodule = \"api\"\nmax_body_size = \"1MiB\"\nheader_timeout = \"5s\"\n",
                     d);
    INFO(d.to_string());
    CHECK(app);
  }
  config::diagnostics d;
  CHECK(parse(head + "max_queued_messages = 10\ntcp_nodelay = true\n", d));
}

TEST_CASE("http response_handle: encoded with the holder's pid, older handles without it still decode", "[http]") {
  http::response_handle h;
  h.worker = 3;
  h.session = session_id(12345);
  h.request = 77;
  h.pid = 4242;
  CHECK(h.encode() == "swactor-response:3:12345:77:4242");
  auto back = http::response_handle::decode(h.encode());
  REQUIRE(back);
  CHECK(back->worker == 3);
  CHECK(back->session == session_id(12345));
  CHECK(back->request == 77);
  CHECK(back->pid == 4242);
  auto old = http::response_handle::decode("swactor-response:1:2:3");
  REQUIRE(old);
  CHECK(old->request == 3);
  CHECK(old->pid == 0);
  for (const char* bad : {"swactor-response:1:2", "swactor-response:1:2:3:", "swactor-response:1:2:3:4:5",
                          "swactor-response:1:2:3:99999999999", "swactor-response::2:3:4", "other:1:2:3"})
    CHECK_FALSE(http::response_handle::decode(bad));
}

TEST_CASE("http config: send_timeout, 30 s unless set, 0 for none", "[http][config]") {
  const std::string head = "[modules.api]\ntype = \"plain\"\n[[listen]]\nurl = \"http://127.0.0.1:1\"\nmodule = \"api\"\n";
  config::diagnostics d;
  auto app = parse(head, d);
  REQUIRE(app);
  CHECK(app->listen[0].send_timeout == std::chrono::seconds(30));
  app = parse(head + "send_timeout = \"2s\"\n", d);
  REQUIRE(app);
  CHECK(app->listen[0].send_timeout == std::chrono::seconds(2));
  app = parse(head + "send_timeout = 0\n", d);
  REQUIRE(app);
  CHECK(app->listen[0].send_timeout.count() == 0);
  config::diagnostics bad;
  CHECK_FALSE(parse("[modules.api]\ntype = \"plain\"\n[[listen]]\nurl = \"tcp://127.0.0.1:1\"\nmodule = \"api\"\n"
                    "send_timeout = \"2s\"\n",
                    bad));  // an HTTP key
}
