// The HTTP/2 codec on byte strings, against an nghttp2 client session: requests become
// request/body/end events with their stream id, replies become frames the client reads
// back (in any order, with trailers), input split at every byte, the sink's "stop" honoured,
// and the HTTP/1.1 codec's hand-over on the client preface and on `Upgrade: h2c`.
#include <nghttp2/nghttp2.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <deque>
#include <map>
#include <set>
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
  bool objects = false;         // takes requests in typed form (their bytes are recorded)
  std::size_t typed = 0;
  bool takes_objects() const noexcept override { return objects; }
  bool on_event(const event& e) override {
    std::string bytes;
    std::string_view d = e.data;
    if (e.object) {
      CHECK(e.data.empty());
      e.object->encode_to(bytes);
      d = bytes;
      ++typed;
    }
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
  struct upload_src {
    std::string body;
    std::size_t off = 0;
  };
  std::deque<upload_src> uploads;  // request bodies for submit(..., body), one per stream

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

  // `sized`: with a content-length field (as curl sends for an upload).
  std::int32_t submit(const std::string& method, const std::string& path, const std::string& body = {},
                      bool sized = false, std::vector<std::pair<std::string, std::string>> extra = {}) {
    std::vector<std::pair<std::string, std::string>> h = {
        {":method", method}, {":scheme", "http"}, {":path", path}, {":authority", "example.test"}, {"x-a", "1"}};
    if (sized) h.emplace_back("content-length", std::to_string(body.size()));
    for (auto& f : extra) h.push_back(std::move(f));
    std::vector<nghttp2_nv> nva;
    for (auto& [n, v] : h)
      nva.push_back({reinterpret_cast<std::uint8_t*>(n.data()), reinterpret_cast<std::uint8_t*>(v.data()), n.size(),
                     v.size(), NGHTTP2_NV_FLAG_NONE});
    if (body.empty()) return nghttp2_submit_request(session, nullptr, nva.data(), nva.size(), nullptr, nullptr);
    uploads.push_back({body, 0});
    nghttp2_data_provider prd;
    prd.source.ptr = &uploads.back();
    prd.read_callback = [](nghttp2_session*, std::int32_t, std::uint8_t* buf, std::size_t len, std::uint32_t* flags,
                           nghttp2_data_source* src, void*) -> ssize_t {
      auto& u = *static_cast<upload_src*>(src->ptr);
      auto n = std::min(len, u.body.size() - u.off);
      std::copy_n(u.body.data() + u.off, n, buf);
      u.off += n;
      if (u.off == u.body.size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
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

// Reports the body events from `from` on as taken by their handlers (what the worker's
// read_body() does), except those of `unread` streams; returns where it stopped.
std::size_t take_bodies(swactor::protocols::stream_codec& c, const sink& s, std::size_t from,
                        const std::vector<std::uint32_t>& unread = {}) {
  for (; from < s.events.size(); ++from) {
    const auto& e = s.events[from];
    if (e.kind != static_cast<std::uint8_t>(h2::ev::body)) continue;
    if (std::find(unread.begin(), unread.end(), e.stream) != unread.end()) continue;
    c.consumed(e.stream, static_cast<std::uint32_t>(e.payload.size()));
  }
  return from;
}

// Client and codec talk until the client has nothing more to send (window updates included).
// Body events are taken as they come, except those of the `unread` streams.
void pump(client& cl, swactor::protocols::stream_codec& c, sink& s, std::size_t step = SIZE_MAX,
          const std::vector<std::uint32_t>& unread = {}) {
  std::size_t taken = s.events.size();
  for (int round = 0; round < 1000; ++round) {
    auto bytes = cl.output();
    if (bytes.empty()) break;
    feed(c, bytes, s, step);
    taken = take_bodies(c, s, taken, unread);
    std::string back;
    c.take_output(back);
    cl.input(back);
  }
}

// The body bytes of `stream` the sink received, and whether its end came.
std::string body_of(const sink& s, std::uint32_t stream, bool* ended = nullptr) {
  std::string b;
  if (ended) *ended = false;
  for (const auto& e : s.events) {
    if (e.stream != stream) continue;
    if (e.kind == static_cast<std::uint8_t>(h2::ev::body)) b += e.payload;
    if (ended && e.kind == static_cast<std::uint8_t>(h2::ev::end)) *ended = true;
  }
  return b;
}

// Raw frames, for what an nghttp2 client would not send (resets of streams it just opened,
// floods).
std::string frame(std::uint8_t type, std::uint8_t flags, std::uint32_t stream, const std::string& payload = {}) {
  std::string f;
  const auto n = payload.size();
  f += static_cast<char>((n >> 16) & 0xff);
  f += static_cast<char>((n >> 8) & 0xff);
  f += static_cast<char>(n & 0xff);
  f += static_cast<char>(type);
  f += static_cast<char>(flags);
  for (int i = 3; i >= 0; --i) f += static_cast<char>((stream >> (8 * i)) & 0xff);
  return f + payload;
}
// GET / with :authority localhost (HPACK: three static entries and one literal).
const std::string kGetBlock = std::string("\x82\x86\x84\x41\x09localhost", 14);
std::string open_and_reset(std::uint32_t stream) {
  return frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, stream, kGetBlock) +
         frame(NGHTTP2_RST_STREAM, 0, stream, std::string("\0\0\0\x08", 4));
}
std::string client_start() { return std::string(h2::kPreface) + frame(NGHTTP2_SETTINGS, 0, 0); }

std::uint64_t fake_now = 0;
std::uint64_t fake_clock() { return fake_now; }

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

TEST_CASE("http2 codec: fields keep their order and the split Cookie fields are one again", "[http2]") {
  h2::options o;
  auto codec = h2::make_server_codec(o);
  client cl;
  cl.submit("GET", "/", {}, false,
            {{"cookie", "a=1"}, {"x-b", "two"}, {"cookie", "b=2"}, {"x-long", std::string(300, 'v')}});
  sink s;
  pump(cl, *codec, s, SIZE_MAX);
  REQUIRE(s.events.size() == 1);
  h1::request_head head;
  REQUIRE(head.decode(s.events[0].payload));
  std::vector<std::pair<std::string, std::string>> got;
  for (const auto& f : head.headers.items) got.emplace_back(f.name, f.value);
  const std::vector<std::pair<std::string, std::string>> want = {
      {"x-a", "1"}, {"x-b", "two"}, {"x-long", std::string(300, 'v')}, {"cookie", "a=1; b=2"}};
  CHECK(got == want);
}

TEST_CASE("http2 codec: a sink that takes objects gets request heads whose bytes are the event's", "[http2]") {
  auto run = [](bool objects) {
    h2::options o;
    auto codec = h2::make_server_codec(o);
    client cl;
    cl.submit("GET", "/a?b=1", {}, false, {{"cookie", "a=1"}, {"x-b", "two"}, {"cookie", "b=2"}});
    cl.submit("POST", "/p", "small body");
    cl.submit("GET", "/plain");
    sink s;
    s.objects = objects;
    pump(cl, *codec, s, SIZE_MAX);
    return s;
  };
  auto bytes = run(false);
  auto typed = run(true);
  CHECK(bytes.typed == 0);
  CHECK(typed.typed == 3);
  REQUIRE(typed.events.size() == bytes.events.size());
  for (std::size_t i = 0; i < bytes.events.size(); ++i) {
    CHECK(typed.events[i].kind == bytes.events[i].kind);
    CHECK(typed.events[i].stream == bytes.events[i].stream);
    CHECK(typed.events[i].payload == bytes.events[i].payload);
  }
  h1::request_head head;
  REQUIRE(head.decode(typed.events[0].payload));
  CHECK(*head.headers.find("cookie") == "a=1; b=2");
  CHECK(head.version_minor == 2);
}

TEST_CASE("http2 codec: a typed response answered from inside decode() matches its bytes form", "[http2]") {
  // The worker's inline handler: it answers while the codec hands it the request, as a
  // stream_reply (encode_object); the other run answers the same with bytes after decode().
  struct answering_sink final : swactor::protocols::event_sink {
    swactor::protocols::stream_codec* codec = nullptr;
    bool typed = false;
    std::vector<std::uint32_t> later;
    bool on_event(const event& e) override {
      std::string d(e.data);
      std::uint32_t id = 0;
      std::string_view v = d;
      REQUIRE(h2::take_stream(v, id));
      if (!typed) {
        later.push_back(id);
        return true;
      }
      h1::response_head h;
      h.status = id == 1 ? 200 : 404;
      h.headers.add("Content-Type", "text/plain");
      h.headers.add("Connection", "close");  // HTTP/1 only: never on an h2 stream
      h.headers.add("x-Custom", "v" + std::to_string(id));
      if (id == 3) h.headers.add("date", "Thu, 01 Jan 2026 00:00:00 GMT");
      std::string wire;
      codec->encode_object(static_cast<std::uint8_t>(h1::out::whole),
                           h2::stream_reply(id, h1::response_reply(h, "body " + std::to_string(id))), wire);
      CHECK(wire.empty());  // frames come out of take_output()
      return true;
    }
  };
  auto run = [](bool typed) {
    h2::options o;
    auto codec = h2::make_server_codec(o);
    CHECK(codec->encodes_while_decoding());
    client cl;
    for (int i = 0; i < 3; ++i) cl.submit("GET", "/r" + std::to_string(i));
    answering_sink s;
    s.codec = codec.get();
    s.typed = typed;
    for (int round = 0; round < 10; ++round) {
      auto bytes = cl.output();
      if (bytes.empty() && s.later.empty()) break;
      REQUIRE(codec->decode(bytes, s) == bytes.size());
      for (auto id : s.later) {
        h1::header_list fields;
        fields.add("Content-Type", "text/plain");
        fields.add("Connection", "close");
        fields.add("x-Custom", "v" + std::to_string(id));
        if (id == 3) fields.add("date", "Thu, 01 Jan 2026 00:00:00 GMT");
        std::string wire;
        codec->encode(static_cast<std::uint8_t>(h1::out::whole),
                      reply(id, h1::out::whole, whole(id == 1 ? 200 : 404, "body " + std::to_string(id), fields)), wire);
      }
      s.later.clear();
      std::string back;
      codec->take_output(back);
      cl.input(back);
    }
    return cl.responses;
  };
  auto typed = run(true);
  auto bytes = run(false);
  REQUIRE(typed.size() == 3);
  for (auto& [id, r] : typed) {
    INFO("stream " << id);
    CHECK(r.closed);
    CHECK(r.body == "body " + std::to_string(id));
    CHECK(r.headers[":status"] == (id == 1 ? "200" : "404"));
    CHECK(r.headers["content-type"] == "text/plain");
    CHECK(r.headers["x-custom"] == "v" + std::to_string(id));
    CHECK(r.headers.count("connection") == 0);
    CHECK(r.headers["content-length"] == std::to_string(r.body.size()));
    CHECK(r.headers["server"] == "swactor");
    if (id == 3) CHECK(r.headers["date"] == "Thu, 01 Jan 2026 00:00:00 GMT");
    else CHECK(r.headers["date"].size() == 29);
    auto other = bytes.at(id);
    other.headers.erase("date");
    r.headers.erase("date");
    CHECK(r.headers == other.headers);
    CHECK(r.body == other.body);
  }
}

TEST_CASE("http2 codec: response field names are lowered, and ones with bytes no name may hold are dropped",
          "[http2]") {
  h2::options o;
  auto codec = h2::make_server_codec(o);
  client cl;
  const auto id = cl.submit("GET", "/");
  sink s;
  pump(cl, *codec, s);
  REQUIRE(s.events.size() == 1);
  h1::header_list fields;
  // Capitals in the first 8 bytes and in the tail; every kind of bad byte in both places.
  fields.add("X-Abcdefgh-Ijk", "1");
  fields.add("x-abcdefghijklmnoP", "2");
  fields.add("Content-Type", "text/plain");
  fields.add("x-ok-lower-case-long-name", "3");
  fields.add("x-b name", "bad");
  fields.add("x-abcdefgh:ij", "bad");
  fields.add(std::string("x-abcdefg\x7f", 10), "bad");
  fields.add(std::string("x-ab\x01" "cdefgh", 11), "bad");
  fields.add("x-abcdef\xc3\xa9", "bad");
  fields.add(std::string("x-a\x00", 4), "bad");
  fields.add("x-zzzzzzzz~", "4");  // '~' is a token byte
  fields.add("X-Very-Long-Field-Name-Over-24", "5");
  fields.add("Cache-Control", "no-store");
  std::string wire;
  codec->encode(static_cast<std::uint8_t>(h1::out::whole),
                reply(static_cast<std::uint32_t>(id), h1::out::whole, whole(200, "ok", fields)), wire);
  std::string back;
  codec->take_output(back);
  cl.input(back);
  auto& r = cl.responses[id];
  CHECK(r.body == "ok");
  CHECK(r.headers["x-abcdefgh-ijk"] == "1");
  CHECK(r.headers["x-abcdefghijklmnop"] == "2");
  CHECK(r.headers["content-type"] == "text/plain");
  CHECK(r.headers["x-ok-lower-case-long-name"] == "3");
  CHECK(r.headers["x-zzzzzzzz~"] == "4");
  CHECK(r.headers["x-very-long-field-name-over-24"] == "5");
  CHECK(r.headers["cache-control"] == "no-store");
  for (const auto& [n, v] : r.headers) CHECK(v != "bad");
}

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
  const h1::options h1_opts;  // outlives the codec (it keeps a pointer)
  auto h1c = h1::make_server_codec(h1_opts);
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

namespace {

// The error code of the first GOAWAY in `wire` (frames from the codec), or -1.
long goaway_code(const std::string& wire) {
  for (std::size_t i = 0; i + 9 <= wire.size();) {
    auto b = [&](std::size_t k) { return static_cast<std::uint32_t>(static_cast<unsigned char>(wire[k])); };
    const std::size_t len = (b(i) << 16) | (b(i + 1) << 8) | b(i + 2);
    if (b(i + 3) == NGHTTP2_GOAWAY && len >= 8 && i + 9 + len <= wire.size())
      return static_cast<long>((b(i + 13) << 24) | (b(i + 14) << 16) | (b(i + 15) << 8) | b(i + 16));
    i += 9 + len;
  }
  return -1;
}

}  // namespace

// h2spec (generic/http2 sections) checks these; the log line must say which rule broke.
TEST_CASE("http2 codec: a connection error sends GOAWAY and names nghttp2's reason", "[http2]") {
  SECTION("a SETTINGS frame on a stream: PROTOCOL_ERROR with the rule in the reason") {
    auto codec = h2::make_server_codec(h2::options{});
    sink s;
    const std::string in = client_start() + frame(NGHTTP2_SETTINGS, 0, 1);
    codec->decode(in, s);
    std::string out;
    codec->take_output(out);
    CHECK(goaway_code(out) == NGHTTP2_PROTOCOL_ERROR);
    REQUIRE(codec->failed());
    INFO(codec->reason());
    // "HTTP/2: GOAWAY PROTOCOL_ERROR: <nghttp2's debug data naming the frame>"
    CHECK(codec->reason().rfind("HTTP/2: GOAWAY PROTOCOL_ERROR: ", 0) == 0);
    CHECK(codec->reason().find("SETTINGS") != std::string::npos);
    CHECK(s.events.empty());
  }
  SECTION("an invalid client preface (h2 over TLS, or after the h2c hand-over)") {
    auto codec = h2::make_server_codec(h2::options{});
    sink s;
    codec->decode("INVALID CONNECTION PREFACE\r\n\r\n", s);
    std::string out;
    codec->take_output(out);
    CHECK(goaway_code(out) == NGHTTP2_PROTOCOL_ERROR);
    REQUIRE(codec->failed());
    CHECK(codec->reason().find("magic") != std::string::npos);
    CHECK(codec->done());
  }
}

TEST_CASE("http2 codec: a stream nobody reads stops at its window, its sibling goes on", "[http2][flow]") {
  h2::options o;  // stream window 65535, connection window 1 MiB
  auto codec = h2::make_server_codec(o);
  client cl;
  const std::string big(300000, 'a'), other(300000, 'b');
  const auto a = cl.submit("POST", "/slow", big, true);
  sink s;
  pump(cl, *codec, s, SIZE_MAX, {static_cast<std::uint32_t>(a)});
  // Nobody took stream a's body: it got what its window allows, no more.
  CHECK(body_of(s, a).size() == 65535);
  // Another stream on the same connection is not held up by it.
  const auto b = cl.submit("POST", "/fast", other, true);
  pump(cl, *codec, s, SIZE_MAX, {static_cast<std::uint32_t>(a)});
  bool b_ended = false;
  CHECK(body_of(s, b, &b_ended) == other);
  CHECK(b_ended);
  CHECK(body_of(s, a).size() == 65535);
  CHECK(!codec->failed());

  // Without a content-length the first 64 KiB wait in the codec for their request (and are
  // acknowledged at once): then one window more, no further.
  client cl2;
  auto codec2 = h2::make_server_codec(o);
  sink s2;
  const auto c = cl2.submit("POST", "/unsized", big);
  pump(cl2, *codec2, s2, SIZE_MAX, {static_cast<std::uint32_t>(c)});
  CHECK(body_of(s2, c).size() <= o.body_chunk_size + 65535);
  CHECK(body_of(s2, c).size() > 65535);
}

TEST_CASE("http2 codec: taking the body opens the window, a closed stream gives its share back", "[http2][flow]") {
  h2::options o;
  o.connection_window_size = 65535;  // the connection's window is one stream's
  auto codec = h2::make_server_codec(o);
  client cl;
  const std::string body(200000, 'x');
  const auto a = cl.submit("POST", "/a", body, true);
  sink s;
  pump(cl, *codec, s, SIZE_MAX, {static_cast<std::uint32_t>(a)});
  REQUIRE(body_of(s, a).size() == 65535);
  // Taking a's pieces lets the rest of its body in.
  std::size_t from = 0;
  for (int round = 0; round < 100; ++round) {
    from = take_bodies(*codec, s, from);
    std::string back;
    codec->take_output(back);
    if (back.empty()) break;
    cl.input(back);
    feed(*codec, cl.output(), s);
  }
  bool ended = false;
  CHECK(body_of(s, a, &ended) == body);
  CHECK(ended);

  // A stream whose unread body holds the whole connection window, then reset by the client:
  // the connection's window comes back, and the next stream's body arrives.
  client cl2;
  auto codec2 = h2::make_server_codec(o);
  sink s2;
  const auto c = cl2.submit("POST", "/c", body, true);
  pump(cl2, *codec2, s2, SIZE_MAX, {static_cast<std::uint32_t>(c)});
  REQUIRE(body_of(s2, c).size() == 65535);
  nghttp2_submit_rst_stream(cl2.session, NGHTTP2_FLAG_NONE, c, NGHTTP2_CANCEL);
  pump(cl2, *codec2, s2);
  CHECK(s2.events.back().kind == static_cast<std::uint8_t>(h2::ev::reset));
  const std::string small(100000, 'y');
  const auto d = cl2.submit("POST", "/d", small);
  pump(cl2, *codec2, s2);
  bool d_ended = false;
  CHECK(body_of(s2, d, &d_ended) == small);
  CHECK(d_ended);
  // A late report for the closed stream changes nothing (no window past its size).
  codec2->consumed(static_cast<std::uint32_t>(c), 65535);
  std::string none;
  codec2->take_output(none);
  CHECK(none.empty());
}

TEST_CASE("http2 codec: a response that ends before its request body ends the stream with NO_ERROR", "[http2][flow]") {
  h2::options o;
  auto codec = h2::make_server_codec(o);
  client cl;
  const auto a = cl.submit("POST", "/early", std::string(300000, 'e'), true);
  sink s;
  pump(cl, *codec, s, SIZE_MAX, {static_cast<std::uint32_t>(a)});
  REQUIRE(!s.events.empty());
  std::string wire;
  codec->encode(static_cast<std::uint8_t>(h1::out::whole), reply(a, h1::out::whole, whole(413, "too big")), wire);
  codec->take_output(wire);
  cl.input(wire);
  CHECK(cl.responses[a].headers[":status"] == "413");
  CHECK(cl.responses[a].body == "too big");
  CHECK(cl.responses[a].closed);
  CHECK(cl.responses[a].error == NGHTTP2_NO_ERROR);
  // The worker learns that the body it was not reading will not come.
  pump(cl, *codec, s);
  feed(*codec, std::string(), s);  // the reset waits in the codec for the next decode()
  CHECK(s.events.back().kind == static_cast<std::uint8_t>(h2::ev::reset));
  CHECK(codec->outstanding() == 0);
  CHECK(!codec->failed());
}

TEST_CASE("http2 codec: resets and control frames are limited per second of the clock", "[http2][limits]") {
  h2::options o;
  o.clock_ms = &fake_clock;
  fake_now = 1'000'000;
  SECTION("10,000 resets in one second trip the default") {
    auto codec = h2::make_server_codec(o);
    sink s;
    std::string in = client_start();
    for (std::uint32_t i = 0; i < 10000; ++i) {
      if (i % 10 == 0) ++fake_now;  // 10 per millisecond
      in += open_and_reset(2 * i + 1);
      if (in.size() > 8192 || i == 9999) {
        feed(*codec, in, s);
        in.clear();
      }
      if (codec->failed()) break;
    }
    REQUIRE(codec->failed());
    CHECK(codec->reason().find("h2_max_resets_per_second") != std::string::npos);
    CHECK(fake_now - 1'000'000 < 1000);
    std::string out;
    codec->take_output(out);
    CHECK(out.find(std::string("\x07", 1)) != std::string::npos);  // a GOAWAY frame went out
  }
  SECTION("resets at a tenth of the rate, for longer than a bucketful, do not") {
    auto codec = h2::make_server_codec(o);
    sink s;
    feed(*codec, client_start(), s);
    // (under 2,000 in real time: nghttp2's own limiter, twice ours, reads the real clock)
    for (std::uint32_t i = 0; i < 1900; ++i) {
      fake_now += 10;  // 100 a second for 19 s: more than the default bucket of 1,000
      std::string in = open_and_reset(2 * i + 1);
      feed(*codec, in, s);
      std::string out;
      codec->take_output(out);
      if (codec->failed()) break;
    }
    INFO(codec->reason());
    CHECK(!codec->failed());
  }
  SECTION("a PING flood trips, a steady PING rate under the limit does not") {
    o.max_control_frames_per_second = 50;
    auto codec = h2::make_server_codec(o);
    sink s;
    feed(*codec, client_start(), s);
    for (int i = 0; i < 500; ++i) {
      fake_now += 25;  // 40 a second
      feed(*codec, frame(NGHTTP2_PING, 0, 0, "12345678"), s);
      std::string out;
      codec->take_output(out);
    }
    CHECK(!codec->failed());
    for (int i = 0; i < 200 && !codec->failed(); ++i) {
      if (i % 4 == 0) ++fake_now;  // 4 a millisecond
      feed(*codec, frame(NGHTTP2_PING, 0, 0, "12345678"), s);
      std::string out;
      codec->take_output(out);
    }
    REQUIRE(codec->failed());
    CHECK(codec->reason().find("control frame flood") != std::string::npos);
  }
}

TEST_CASE("http2 codec: HEADERS on a stream id already passed ends the connection, unless we reset that stream",
          "[http2]") {
  auto get = [](std::uint32_t id, std::uint8_t flags = NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM) {
    return frame(NGHTTP2_HEADERS, flags, id, kGetBlock);
  };
  auto streams_of = [](const sink& s) {
    std::set<std::uint32_t> ids;
    for (const auto& e : s.events) ids.insert(e.stream);
    return ids;
  };
  SECTION("a lower id after a higher one (RFC 9113 §5.1.1)") {
    auto codec = h2::make_server_codec(h2::options{});
    sink s;
    codec->decode(client_start() + get(5) + get(3), s);
    std::string out;
    codec->take_output(out);
    CHECK(goaway_code(out) == NGHTTP2_PROTOCOL_ERROR);
    REQUIRE(codec->failed());
    CHECK(codec->reason().find("HEADERS on stream 3") != std::string::npos);
    CHECK(streams_of(s) == std::set<std::uint32_t>{5});
  }
  SECTION("the same id again after the client reset it: nghttp2 still knows that one") {
    auto codec = h2::make_server_codec(h2::options{});
    sink s;
    codec->decode(client_start() + open_and_reset(1) + get(1), s);
    std::string out;
    codec->take_output(out);
    CHECK(goaway_code(out) == NGHTTP2_STREAM_CLOSED);
    CHECK(codec->failed());
  }
  SECTION("an id skipped: closed when a higher one opened") {
    auto codec = h2::make_server_codec(h2::options{});
    sink s;
    codec->decode(client_start() + get(1) + get(7) + get(5), s);
    std::string out;
    codec->take_output(out);
    CHECK(goaway_code(out) == NGHTTP2_PROTOCOL_ERROR);
    REQUIRE(codec->failed());
    CHECK(codec->reason().find("HEADERS on stream 5") != std::string::npos);
    CHECK(streams_of(s) == std::set<std::uint32_t>{1, 7});
  }
  SECTION("trailers on a stream the server reset are let be, before and after its RST_STREAM left") {
    // A response that ends before its request body: the stream is reset (NO_ERROR) while the
    // client may still be sending the rest, and its trailers (RFC 9113 §5.1: ignored).
    const std::string trailers = frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, 1,
                                       std::string("\x00\x03x-t\x01v", 7));
    for (bool sent_first : {false, true}) {
      INFO("RST_STREAM sent before the trailers came: " << sent_first);
      auto codec = h2::make_server_codec(h2::options{});
      sink s;
      std::string out;
      // Announced larger than a body piece, so the request goes on before its body.
      const std::string head = kGetBlock + std::string("\x00\x0e" "content-length" "\x07" "1048576", 24);
      codec->decode(client_start() + frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, 1, head) +
                        frame(NGHTTP2_DATA, 0, 1, "part"),
                    s);
      REQUIRE(streams_of(s) == std::set<std::uint32_t>{1});
      codec->encode(static_cast<std::uint8_t>(h1::out::whole), reply(1, h1::out::whole, whole(200, "early")), out);
      if (sent_first) {
        codec->take_output(out);
        CHECK(out.find(frame(NGHTTP2_RST_STREAM, 0, 1, std::string(4, '\0'))) != std::string::npos);
      }
      std::uint32_t next = 3;
      if (sent_first) {
        // 200 streams later: nghttp2 no longer holds the reset one, the codec remembers it.
        std::string more;
        for (; next <= 401; next += 2) more += get(next);
        codec->decode(more, s);
        for (std::uint32_t id = 3; id < next; id += 2)
          codec->encode(static_cast<std::uint8_t>(h1::out::whole), reply(id, h1::out::whole, whole(200, "ok")), out);
        codec->take_output(out);
      }
      codec->decode(frame(NGHTTP2_DATA, 0, 1, "rest") + trailers + get(next), s);
      codec->take_output(out);
      INFO(codec->reason());
      CHECK_FALSE(codec->failed());
      CHECK(goaway_code(out) == -1);
      CHECK(streams_of(s).count(next) == 1);
    }
  }
}

TEST_CASE("http2 codec: streams past h2_max_concurrent_streams before our SETTINGS are acknowledged are refused",
          "[http2][limits]") {
  h2::options o;
  o.max_concurrent_streams = 4;
  auto codec = h2::make_server_codec(o);
  sink s;
  // The client has not acknowledged our SETTINGS (so it may not know the limit yet): the
  // streams over it get RST_STREAM REFUSED_STREAM, safe to retry; the connection goes on.
  std::string in = client_start();
  for (std::uint32_t id = 1; id <= 11; id += 2)
    in += frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, id, kGetBlock);
  codec->decode(in, s);
  std::string out;
  codec->take_output(out);
  std::map<std::uint32_t, std::uint32_t> resets;  // stream -> error code
  for (std::size_t i = 0; i + 9 <= out.size();) {
    auto b = [&](std::size_t k) { return static_cast<std::uint32_t>(static_cast<unsigned char>(out[k])); };
    const std::size_t len = (b(i) << 16) | (b(i + 1) << 8) | b(i + 2);
    const std::uint32_t id = ((b(i + 5) & 0x7f) << 24) | (b(i + 6) << 16) | (b(i + 7) << 8) | b(i + 8);
    if (b(i + 3) == NGHTTP2_RST_STREAM && len == 4)
      resets[id] = (b(i + 9) << 24) | (b(i + 10) << 16) | (b(i + 11) << 8) | b(i + 12);
    i += 9 + len;
  }
  CHECK(resets == std::map<std::uint32_t, std::uint32_t>{{9, NGHTTP2_REFUSED_STREAM}, {11, NGHTTP2_REFUSED_STREAM}});
  std::set<std::uint32_t> served;
  for (const auto& e : s.events) served.insert(e.stream);
  CHECK(served == std::set<std::uint32_t>{1, 3, 5, 7});
  CHECK_FALSE(codec->failed());
  CHECK(goaway_code(out) == -1);
}
