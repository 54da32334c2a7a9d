// The HTTP/2 codec on byte strings, against an nghttp2 client session: requests become
// request/body/end events with their stream id, replies become frames the client reads
// back (in any order, with trailers), input split at every byte, the sink's "stop" honoured,
// and the HTTP/1.1 codec's hand-over on the client preface and on `Upgrade: h2c`.
#include <nghttp2/nghttp2.h>

#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <vector>

#include "swactor/protocols/http1.hpp"
#include "swactor/protocols/http2.hpp"
#include "swactor/protocols/http2_streams.hpp"

namespace h1 = swactor::protocols::http1;
namespace h2 = swactor::protocols::http2;
using swactor::protocols::event;

namespace {

struct collected {
  std::uint8_t kind;
  std::uint32_t stream;
  std::string payload;
};

struct sink final : swactor::protocols::event_sink {
  std::vector<collected> events;
  std::size_t take = SIZE_MAX;  // refuse after this many (look-ahead bound)
  bool on_event(const event& e) override {
    std::string_view d = e.data;
    std::uint32_t id = 0;
    REQUIRE(h2::take_stream(d, id));
    events.push_back({e.kind, id, std::string(d)});
    return events.size() < take;
  }
};

// An nghttp2 client: what it sends, and the responses it read.
struct client {
  nghttp2_session* session = nullptr;
  struct response {
    std::map<std::string, std::string> headers, trailers;
    std::string body;
    bool closed = false;
    std::uint32_t error = 0;
  };
  std::map<std::int32_t, response> responses;
  std::string upload;  // request body for submit(..., body)
  std::size_t upload_off = 0;

  client() {
    nghttp2_session_callbacks* cb = nullptr;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_header_callback(
        cb, [](nghttp2_session*, const nghttp2_frame* f, const std::uint8_t* n, std::size_t nl, const std::uint8_t* v,
               std::size_t vl, std::uint8_t, void* ud) {
          auto& r = static_cast<client*>(ud)->responses[f->hd.stream_id];
          auto& into = f->headers.cat == NGHTTP2_HCAT_HEADERS && !r.headers.empty() ? r.trailers : r.headers;
          into[std::string(reinterpret_cast<const char*>(n), nl)] = std::string(reinterpret_cast<const char*>(v), vl);
          return 0;
        });
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
        cb, [](nghttp2_session*, std::uint8_t, std::int32_t id, const std::uint8_t* d, std::size_t n, void* ud) {
          static_cast<client*>(ud)->responses[id].body.append(reinterpret_cast<const char*>(d), n);
          return 0;
        });
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, [](nghttp2_session*, std::int32_t id, std::uint32_t ec, void* ud) {
      auto& r = static_cast<client*>(ud)->responses[id];
      r.closed = true;
      r.error = ec;
      return 0;
    });
    nghttp2_session_client_new(&session, cb, this);
    nghttp2_session_callbacks_del(cb);
    nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, nullptr, 0);
  }
  ~client() { nghttp2_session_del(session); }

  std::int32_t submit(const std::string& method, const std::string& path, const std::string& body = {}) {
    std::vector<std::pair<std::string, std::string>> h = {
        {":method", method}, {":scheme", "http"}, {":path", path}, {":authority", "example.test"}, {"x-a", "1"}};
    std::vector<nghttp2_nv> nva;
    for (auto& [n, v] : h)
      nva.push_back({reinterpret_cast<std::uint8_t*>(n.data()), reinterpret_cast<std::uint8_t*>(v.data()), n.size(),
                     v.size(), NGHTTP2_NV_FLAG_NONE});
    if (body.empty()) return nghttp2_submit_request(session, nullptr, nva.data(), nva.size(), nullptr, nullptr);
    upload = body;
    upload_off = 0;
    nghttp2_data_provider prd;
    prd.source.ptr = this;
    prd.read_callback = [](nghttp2_session*, std::int32_t, std::uint8_t* buf, std::size_t len, std::uint32_t* flags,
                           nghttp2_data_source* src, void*) -> ssize_t {
      auto& c = *static_cast<client*>(src->ptr);
      auto n = std::min(len, c.upload.size() - c.upload_off);
      std::copy_n(c.upload.data() + c.upload_off, n, buf);
      c.upload_off += n;
      if (c.upload_off == c.upload.size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
      return static_cast<ssize_t>(n);
    };
    return nghttp2_submit_request(session, nullptr, nva.data(), nva.size(), &prd, nullptr);
  }

  std::string output() {
    std::string out;
    for (;;) {
      const std::uint8_t* p = nullptr;
      auto n = nghttp2_session_mem_send(session, &p);
      if (n <= 0) break;
      out.append(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
    }
    return out;
  }
  void input(const std::string& bytes) {
    REQUIRE(nghttp2_session_mem_recv(session, reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()) ==
            static_cast<ssize_t>(bytes.size()));
  }
};

// Feeds `bytes` to the codec `step` bytes at a time the way a connection does (unconsumed
// bytes are offered again with the next ones).
void feed(swactor::protocols::stream_codec& c, const std::string& bytes, sink& s, std::size_t step = SIZE_MAX) {
  std::string pending;
  for (std::size_t off = 0; off < bytes.size(); off += step) {
    pending += bytes.substr(off, step);
    auto used = c.decode(pending, s);
    pending.erase(0, used);
  }
  while (c.holds_events() || !pending.empty()) {
    auto before = s.events.size();
    auto used = c.decode(pending, s);
    pending.erase(0, used);
    if (used == 0 && s.events.size() == before) break;
  }
}

// Client and codec talk until the client has nothing more to send (window updates included).
void pump(client& cl, swactor::protocols::stream_codec& c, sink& s, std::size_t step = SIZE_MAX) {
  for (int round = 0; round < 100; ++round) {
    auto bytes = cl.output();
    if (bytes.empty()) break;
    feed(c, bytes, s, step);
    std::string back;
    c.take_output(back);
    cl.input(back);
  }
}

std::string reply(std::uint32_t stream, h1::out kind, std::string_view payload) {
  std::string d;
  h2::put_stream(d, stream);
  d.append(payload);
  (void)kind;
  return d;
}

std::string whole(int status, const std::string& body, h1::header_list headers = {}) {
  h1::response_head h;
  h.status = status;
  h.headers = std::move(headers);
  return h.encode() + body;
}

}  // namespace

TEST_CASE("http2 codec: a GET and a POST, answered out of order, split at every byte", "[http2]") {
  for (std::size_t step : {std::size_t(1), std::size_t(7), SIZE_MAX}) {
    INFO("step " << step);
    h2::options o;
    auto codec = h2::make_server_codec(o);
    client cl;
    const auto a = cl.submit("GET", "/a?x=1");
    const auto b = cl.submit("POST", "/b", std::string(100000, 'p'));  // beyond body_chunk_size: streamed
    sink s;
    pump(cl, *codec, s, step);
    // The GET, then the POST's head, its body in pieces, its end.
    REQUIRE(s.events.size() >= 4);
    CHECK(s.events[0].kind == static_cast<std::uint8_t>(h2::ev::request));
    CHECK(s.events[0].stream == static_cast<std::uint32_t>(a));
    h1::request_head head;
    REQUIRE(head.decode(s.events[0].payload));
    CHECK(head.method == "GET");
    CHECK(head.target == "/a?x=1");
    CHECK(head.authority == "example.test");
    CHECK(head.version_minor == 2);
    CHECK(head.complete);
    REQUIRE(head.headers.find("x-a"));
    std::string body;
    bool ended = false;
    for (std::size_t i = 1; i < s.events.size(); ++i) {
      CHECK(s.events[i].stream == static_cast<std::uint32_t>(b));
      if (s.events[i].kind == static_cast<std::uint8_t>(h2::ev::body)) body += s.events[i].payload;
      if (s.events[i].kind == static_cast<std::uint8_t>(h2::ev::end)) ended = true;
    }
    CHECK(body == std::string(100000, 'p'));
    CHECK(ended);
    CHECK(codec->outstanding() == 2);

    // The POST is answered first, streamed with trailers; then the GET, whole.
    std::string wire;
    h1::response_head rh;
    rh.status = 201;
    codec->encode(static_cast<std::uint8_t>(h1::out::head), reply(b, h1::out::head, rh.encode()), wire);
    codec->encode(static_cast<std::uint8_t>(h1::out::body), reply(b, h1::out::body, "part1-"), wire);
    codec->encode(static_cast<std::uint8_t>(h1::out::body), reply(b, h1::out::body, "part2"), wire);
    h1::header_list tr;
    tr.add("Grpc-Status", "0");
    codec->encode(static_cast<std::uint8_t>(h1::out::end), reply(b, h1::out::end, tr.encode()), wire);
    h1::header_list hl;
    hl.add("Content-Type", "text/plain");
    hl.add("Connection", "close");  // connection-specific: dropped
    codec->encode(static_cast<std::uint8_t>(h1::out::whole), reply(a, h1::out::whole, whole(200, "hello", hl)), wire);
    codec->take_output(wire);
    cl.input(wire);
    CHECK(cl.responses[b].headers[":status"] == "201");
    CHECK(cl.responses[b].body == "part1-part2");
    CHECK(cl.responses[b].trailers["grpc-status"] == "0");
    CHECK(cl.responses[a].headers[":status"] == "200");
    CHECK(cl.responses[a].headers["content-type"] == "text/plain");
    CHECK(cl.responses[a].headers["content-length"] == "5");
    CHECK(cl.responses[a].headers.count("connection") == 0);
    CHECK(cl.responses[a].body == "hello");
    CHECK(codec->outstanding() == 0);
  }
}

TEST_CASE("http2 codec: a sink that stops gets the rest later, without new input", "[http2]") {
  h2::options o;
  auto codec = h2::make_server_codec(o);
  client cl;
  for (int i = 0; i < 10; ++i) cl.submit("GET", "/r" + std::to_string(i));
  sink s;
  s.take = 3;
  auto bytes = cl.output();
  auto used = codec->decode(bytes, s);
  CHECK(s.events.size() == 3);
  std::string rest = bytes.substr(used);
  s.take = SIZE_MAX;
  while (codec->holds_events() || !rest.empty()) {
    auto n = codec->decode(rest, s);
    rest.erase(0, n);
    if (n == 0 && !codec->holds_events()) break;
  }
  REQUIRE(s.events.size() == 10);
  for (int i = 0; i < 10; ++i) {
    h1::request_head h;
    REQUIRE(h.decode(s.events[static_cast<std::size_t>(i)].payload));
    CHECK(h.target == "/r" + std::to_string(i));
  }
}

TEST_CASE("http2 codec: a response larger than the peer's window waits in held()", "[http2]") {
  h2::options o;
  auto codec = h2::make_server_codec(o);
  client cl;
  auto id = cl.submit("GET", "/big");
  sink s;
  feed(*codec, cl.output(), s);
  REQUIRE(s.events.size() == 1);
  std::string wire;
  codec->encode(static_cast<std::uint8_t>(h1::out::whole), reply(id, h1::out::whole, whole(200, std::string(200000, 'z'))),
                wire);
  codec->take_output(wire);
  // The client's default window is 65535: the rest is held until it opens.
  CHECK(codec->held() == 200000 - 65535);
  cl.input(wire);
  // The client consumed the data: it sends WINDOW_UPDATEs, and the rest flows.
  for (int round = 0; round < 10 && codec->held() > 0; ++round) {
    feed(*codec, cl.output(), s);
    std::string more;
    codec->take_output(more);
    cl.input(more);
  }
  CHECK(codec->held() == 0);
  CHECK(cl.responses[id].body == std::string(200000, 'z'));
}

TEST_CASE("http2 codec: a stream needs its handler until its body arrived and its response was handed over",
          "[http2]") {
  h2::options o;
  o.body_chunk_size = 1024;  // the POST's head goes out before its body is complete
  auto codec = h2::make_server_codec(o);
  client cl;
  auto get = static_cast<std::uint32_t>(cl.submit("GET", "/a"));
  // A body larger than our initial window: the client waits for a WINDOW_UPDATE after
  // 65535 bytes, which it does not get yet.
  auto post = static_cast<std::uint32_t>(cl.submit("POST", "/b", std::string(100000, 'p')));
  sink s;
  feed(*codec, cl.output(), s);
  REQUIRE(s.events.size() >= 2);
  CHECK(h2::stream_needs_handler(*codec, get));       // no response yet
  CHECK_FALSE(h2::stream_needs_handler(*codec, 99));  // no such stream
  std::string wire;
  codec->encode(static_cast<std::uint8_t>(h1::out::whole), reply(get, h1::out::whole, whole(200, "ok")), wire);
  CHECK_FALSE(h2::stream_needs_handler(*codec, get));  // its whole response is handed over
  CHECK(h2::stream_needs_handler(*codec, post));
  // Answered before its body is in: it still needs its handler, for the rest of the body.
  codec->encode(static_cast<std::uint8_t>(h1::out::whole), reply(post, h1::out::whole, whole(200, "early")), wire);
  CHECK(h2::stream_needs_handler(*codec, post));
  codec->take_output(wire);
  cl.input(wire);
  pump(cl, *codec, s);
  CHECK_FALSE(h2::stream_needs_handler(*codec, post));
  // Other codecs have no streams.
  auto h1c = h1::make_server_codec({});
  CHECK_FALSE(h2::stream_needs_handler(*h1c, 1));
}

TEST_CASE("http2: the HTTP/1.1 codec hands over on the preface and on Upgrade: h2c", "[http2]") {
  h1::options o;
  o.h2c = std::make_shared<const h2::options>();
  {
    auto c = h1::make_server_codec(o);
    sink s;
    std::string preface(h2::kPreface);
    CHECK(c->decode(preface.substr(0, 10), s) == 0);  // a prefix: wait for more
    CHECK(c->take_successor() == nullptr);
    CHECK(c->decode(preface, s) == 0);
    auto next = c->take_successor();
    REQUIRE(next);
    CHECK(next->name() == "h2");
  }
  {
    auto c = h1::make_server_codec(o);
    sink s;
    // HTTP2-Settings: an empty SETTINGS payload, base64url of nothing.
    std::string req = "GET /up HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                      "HTTP2-Settings: \r\n\r\n";
    CHECK(c->decode(req, s) == req.size());
    auto next = c->take_successor();
    REQUIRE(next);
    std::string out;
    c->take_output(out);
    CHECK(out.rfind("HTTP/1.1 101 Switching Protocols\r\n", 0) == 0);
    sink s2;
    CHECK(next->holds_events());
    next->decode({}, s2);
    REQUIRE(s2.events.size() == 1);
    CHECK(s2.events[0].stream == 1);
    h1::request_head h;
    REQUIRE(h.decode(s2.events[0].payload));
    CHECK(h.target == "/up");
    CHECK(h.version_minor == 2);
  }
  {
    // Without h2c a preface is just a bad HTTP/1 request.
    h1::options plain;
    auto c = h1::make_server_codec(plain);
    sink s;
    c->decode(std::string(h2::kPreface), s);
    CHECK(c->take_successor() == nullptr);
    CHECK(c->failed());
  }
}
