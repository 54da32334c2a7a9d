#include <catch2/catch.hpp>

#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "http1_harness.hpp"
#include "swactor/core/wire.hpp"
#include "swactor/protocols/field_lists.hpp"
#include "swactor/protocols/http_date.hpp"

using namespace http1_test;

namespace {

// Runs `wire` through every chunk plan; each plan must agree with the whole-input run.
std::vector<result> run_all(const options& o, std::string_view wire, bool answer = false) {
  std::vector<result> out;
  for (auto& plan : plans(wire.size())) out.push_back(run(o, wire, plan, answer));
  for (std::size_t i = 1; i < out.size(); ++i) {
    INFO("plan " << i);
    CHECK(out[i].messages.size() == out[0].messages.size());
    CHECK(out[i].failed == out[0].failed);
    CHECK(out[i].output == out[0].output);
    if (!out[0].failed) CHECK(out[i].pending == out[0].pending);
    for (std::size_t k = 0; k < std::min(out[i].messages.size(), out[0].messages.size()); ++k) {
      CHECK(out[i].messages[k].body == out[0].messages[k].body);
      CHECK(out[i].messages[k].target == out[0].messages[k].target);
    }
  }
  return out;
}

// The status every plan answers `wire` with (each plan must fail the same way).
int rejected_with(std::string_view wire, const options& o = {}) {
  auto rs = run_all(o, wire);
  for (auto& r : rs) {
    CHECK(r.failed);
    CHECK(r.done);
    CHECK(r.messages.empty());
    CHECK(r.output.find("Connection: close\r\n") != std::string::npos);
    CHECK(r.error == status_of(r.output));
  }
  return status_of(rs[0].output);
}

// The codec dates every final response (a "Date: <IMF-fixdate>" line after Server): checked
// here and taken out, so the byte-exact expectations below stay independent of the clock.
std::string undated(std::string w) {
  if (!w.starts_with("HTTP/1.1 ") || w.starts_with("HTTP/1.1 1")) return w;
  const auto head_end = w.find("\r\n\r\n");
  const auto at = w.find("\r\nDate: ");
  REQUIRE(at != std::string::npos);
  REQUIRE(at < head_end);
  REQUIRE(w.find("\r\nDate: ", at + 1) > head_end);  // one only
  const std::string line = w.substr(at + 2, 6 + 29);
  CHECK(std::regex_match(line, std::regex(R"(Date: (Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT)")));
  w.erase(at, 2 + 6 + 29);
  return w;
}

struct codec_fixture {
  options o;
  std::unique_ptr<stream_codec> c;
  recorder sink;
  std::string wire;
  std::string kept;  // stream(): what decode() did not consume, handed again with more
  explicit codec_fixture(options opts = {}) : o(std::move(opts)), c(make_server_codec(o)) {}
  // `in` is every byte not consumed yet (the caller keeps the rest, as the connection does).
  std::size_t feed(std::string_view in) { return c->decode(in, sink); }
  // The next bytes of the stream; what was not consumed is kept here (a partial head is
  // not consumed until it is complete).
  void stream(std::string_view in) {
    kept.append(in);
    kept.erase(0, c->decode(kept, sink));
  }
  request_head request(std::size_t i) {
    request_head h;
    REQUIRE(sink.events.at(i).first == std::uint8_t(ev::request));
    REQUIRE(h.decode(sink.events[i].second));
    return h;
  }
  std::string answer(int status, std::string body = {}, header_list h = {}, bool close = false) {
    std::string w;
    c->encode(std::uint8_t(out::whole), whole(status, std::move(body), std::move(h), close), w);
    return undated(std::move(w));
  }
  std::string send(out kind, std::string_view data) {
    std::string w;
    c->encode(std::uint8_t(kind), data, w);
    return undated(std::move(w));
  }
};

std::string stream_head(int status, std::int64_t length, header_list h = {}) {
  response_head r;
  r.status = status;
  r.content_length = length;
  r.headers = std::move(h);
  return r.encode();
}

}  // namespace

// -- wire forms ---------------------------------------------------------------------------

TEST_CASE("http1 wire: the placed encoders write wire::writer's layout, appended", "[http1]") {
  request_head h;
  h.method = "GET";
  h.target = "/x";
  h.version_minor = 1;
  h.headers.add("Host", "h");
  h.headers.add("Accept", "*/*");
  h.content_length = -1;
  h.complete = false;
  // The layout spelled out with the appending writer.
  std::string want;
  swactor::wire::writer w(want);
  w.str("GET");
  w.str("/x");
  w.str("");
  w.u8(1);
  w.u32(2);
  w.str("Host");
  w.str("h");
  w.str("Accept");
  w.str("*/*");
  w.u8(1);  // keep-alive; not complete
  w.u64(static_cast<std::uint64_t>(std::int64_t(-1)));
  w.str("");
  std::string got = "prefix";
  h.encode_to(got);
  CHECK(got == "prefix" + want);

  response_head r;
  r.status = 404;
  r.reason = "Nope";
  r.headers.add("A", "1");
  r.content_length = 3;
  r.close = true;
  std::string rwant;
  swactor::wire::writer rw(rwant);
  rw.u32(404);
  rw.str("Nope");
  rw.u32(1);
  rw.str("A");
  rw.str("1");
  rw.u64(3);
  rw.u8(1);
  std::string rgot = "x";
  r.encode_to(rgot);
  CHECK(rgot == "x" + rwant);
  CHECK(r.headers.encoded_size() == 4 + 8 + 2);
}

TEST_CASE("http1 wire: request_head round trip and strict decode", "[http1]") {
  request_head h;
  h.method = "POST";
  h.target = "/a?b=1";
  h.authority = "example.com:8080";
  h.version_minor = 0;
  h.headers.add("Host", "example.com:8080");
  h.headers.add("X-Empty", "");
  h.keep_alive = false;
  h.expect_continue = true;
  h.content_length = 5;
  h.complete = true;
  h.body = "hello";
  auto w = h.encode();
  request_head d;
  REQUIRE(d.decode(w));
  CHECK(d.method == "POST");
  CHECK(d.target == "/a?b=1");
  CHECK(d.authority == "example.com:8080");
  CHECK(d.version_minor == 0);
  CHECK(d.headers.items.size() == 2);
  CHECK(*d.headers.find("host") == "example.com:8080");
  CHECK(d.headers.find("x-EMPTY")->empty());
  CHECK(d.headers.find("missing") == nullptr);
  CHECK_FALSE(d.keep_alive);
  CHECK(d.expect_continue);
  CHECK_FALSE(d.chunked);
  CHECK(d.content_length == 5);
  CHECK(d.body == "hello");
  CHECK(d.encode() == w);

  // Every truncation and any trailing byte is refused, and leaves the target untouched.
  for (std::size_t n = 0; n < w.size(); ++n) CHECK_FALSE(d.decode(w.substr(0, n)));
  CHECK_FALSE(d.decode(w + "x"));
  CHECK(d.method == "POST");
  // Inconsistent fields: chunked with a length, unknown flag bits, a version byte beyond 2
  // (2 is HTTP/2: a stream of the h2 codec).
  request_head bad = h;
  bad.chunked = true;
  CHECK_FALSE(d.decode(bad.encode()));
  bad = h;
  bad.version_minor = 3;
  CHECK_FALSE(d.decode(bad.encode()));
  bad.version_minor = 2;
  CHECK(d.decode(bad.encode()));
  std::string flags = w;
  std::size_t flag_at = w.size() - 4 - 5 - 8 - 1;
  flags[flag_at] = char(0x80);
  CHECK_FALSE(d.decode(flags));
  // A header count larger than the input could hold.
  std::string huge = h.encode();
  request_head e;
  e.method = "GET";
  auto ew = e.encode();
  std::size_t count_at = 4 + 3 + 4 + 0 + 4 + 0 + 1;
  ew[count_at + 3] = char(0x7f);
  CHECK_FALSE(d.decode(ew));
}

TEST_CASE("http1 wire: response_head and header_list round trips, garbage", "[http1]") {
  response_head r;
  r.status = 404;
  r.reason = "Nope";
  r.headers.add("X-A", "1");
  r.content_length = -1;
  r.close = true;
  auto w = r.encode() + "body";
  std::string_view v(w);
  response_head d;
  REQUIRE(d.decode_from(v));
  CHECK(v == "body");
  CHECK(d.status == 404);
  CHECK(d.reason == "Nope");
  CHECK(d.content_length == -1);
  CHECK(d.close);
  CHECK(*d.headers.find("x-a") == "1");
  auto head = r.encode();
  for (std::size_t n = 0; n < head.size(); ++n) {
    std::string_view t(head.data(), n);
    CHECK_FALSE(d.decode_from(t));
    CHECK(t.size() == n);  // not advanced on failure
  }
  response_head bad = r;
  bad.status = 99;
  std::string bs = bad.encode();
  std::string_view bsv(bs);
  CHECK_FALSE(d.decode_from(bsv));

  header_list l;
  l.add("a", "b");
  l.add("A", "c");
  auto lw = l.encode();
  header_list m;
  std::string_view lv(lw);
  REQUIRE(m.decode_from(lv));
  CHECK(lv.empty());
  CHECK(m.items.size() == 2);
  CHECK(*m.find("a") == "b");  // first of repeated names
  std::string junk("\xff\xff\xff\xff", 4);
  std::string_view jv(junk);
  CHECK_FALSE(m.decode_from(jv));
  CHECK(m.items.size() == 2);
}

namespace {
// Takes request heads in typed form; records what each event's bytes would have been.
struct object_recorder final : event_sink {
  std::vector<std::pair<std::uint8_t, std::string>> events;
  std::size_t objects = 0;
  bool on_event(const event& e) override {
    std::string bytes(e.data);
    if (e.object) {
      ++objects;
      CHECK(e.data.empty());
      e.object->encode_to(bytes);
    }
    events.emplace_back(e.kind, std::move(bytes));
    return true;
  }
  bool takes_objects() const noexcept override { return true; }
};
}  // namespace

TEST_CASE("http1: a sink that takes objects gets request heads in typed form, equal to their wire form",
          "[http1]") {
  const std::string wire =
      "GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nX-One: 1\r\nX-Two:  two \r\n\r\n"
      "POST http://other:8080/p HTTP/1.1\r\nHost: ignored\r\nContent-Length: 5\r\n\r\nhello"
      "GET / HTTP/1.0\r\n\r\n";
  options o;
  recorder bytes_sink;
  object_recorder object_sink;
  auto a = make_server_codec(o);
  auto b = make_server_codec(o);
  CHECK(a->decode(wire, bytes_sink) == wire.size());
  CHECK(b->decode(wire, object_sink) == wire.size());
  REQUIRE(bytes_sink.events.size() == 3);
  CHECK(object_sink.objects == 3);
  CHECK(object_sink.events == bytes_sink.events);
  request_head h;
  REQUIRE(h.decode(object_sink.events[1].second));
  CHECK(h.authority == "other:8080");
  CHECK(h.body == "hello");
  // assign() from the typed form gives what decode() gives from the bytes.
  struct assigning final : event_sink {
    std::vector<request_head> heads;
    bool on_event(const event& e) override {
      REQUIRE(e.object);
      heads.emplace_back().assign(static_cast<const request_parts&>(*e.object));
      return true;
    }
    bool takes_objects() const noexcept override { return true; }
  } assign_sink;
  auto c = make_server_codec(o);
  CHECK(c->decode(wire, assign_sink) == wire.size());
  REQUIRE(assign_sink.heads.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    request_head d;
    REQUIRE(d.decode(bytes_sink.events[i].second));
    CHECK(assign_sink.heads[i].encode() == d.encode());
  }
  CHECK(assign_sink.heads[0].headers.items.size() == 3);
  CHECK(*assign_sink.heads[0].headers.find("x-two") == "two");
}

TEST_CASE("http1: a typed whole response is written as its wire form is", "[http1]") {
  options o;
  const std::string request = "GET / HTTP/1.1\r\nHost: x\r\n\r\nHEAD / HTTP/1.1\r\nHost: x\r\n\r\n";
  response_head r;
  r.status = 201;
  r.headers.add("Content-Type", "text/plain");
  r.headers.add("Date", "Sun, 06 Dec 2026 20:00:00 GMT");  // no clock in the comparison
  r.headers.add("Content-Length", "99");                  // the codec's own framing wins
  r.headers.add("Bad", "a\r\nInjected: 1");             // dropped, as from the wire form
  auto bytes_codec = make_server_codec(o);
  auto typed_codec = make_server_codec(o);
  recorder s1, s2;
  REQUIRE(bytes_codec->decode(request, s1) == request.size());
  REQUIRE(typed_codec->decode(request, s2) == request.size());
  std::string via_bytes, via_object;
  for (int i = 0; i < 2; ++i) {
    bytes_codec->encode(std::uint8_t(out::whole), r.encode() + "body!", via_bytes);
    typed_codec->encode_object(std::uint8_t(out::whole), response_reply(r, "body!"), via_object);
  }
  CHECK(via_object == via_bytes);
  CHECK(via_object.find("Injected") == std::string::npos);
  CHECK(via_object.find("Content-Length: 5\r\n") != std::string::npos);
  CHECK(bytes_codec->outstanding() == 0);
  CHECK(typed_codec->outstanding() == 0);
  CHECK(typed_codec->encodes_while_decoding());
  // A typed reply of another kind is sent as its wire form (the default path).
  response_reply whole_reply(r, "x");
  std::string wire;
  whole_reply.encode_to(wire);
  CHECK(wire.size() == whole_reply.wire_size());
}

TEST_CASE("http1: a repeated field list is written from the last one's lines, with their meaning", "[http1]") {
  // The codec keeps the last typed field list's lines per thread; what the lines decided
  // (Connection: close, the handler's own Date) must hold again when they are reused, and a
  // list that differs in any byte must be checked again.
  options o;
  const std::string get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  auto answer = [&](const response_head& r) {
    auto c = make_server_codec(o);
    recorder s;
    REQUIRE(c->decode(get, s) == get.size());
    std::string wire;
    c->encode_object(std::uint8_t(out::whole), response_reply(r, "ok"), wire);
    return std::pair{wire, c->done()};
  };
  auto text_with = [](std::string name, std::string value) {  // Content-Type and one more field
    response_head h;
    h.status = 200;
    h.headers.add("Content-Type", "text/plain");
    h.headers.add(std::move(name), std::move(value));
    return h;
  };
  const auto closing = text_with("Connection", "close");
  for (int i = 0; i < 3; ++i) {
    auto [wire, done] = answer(closing);
    CHECK(wire.find("Connection: close\r\n") != std::string::npos);
    CHECK(done);  // each time, not only when the lines were first checked
  }
  const auto dated = text_with("Date", "Sun, 06 Dec 2026 20:00:00 GMT");
  for (int i = 0; i < 2; ++i) {
    auto [wire, done] = answer(dated);
    CHECK_FALSE(done);
    CHECK(wire.find("Connection: close") == std::string::npos);
    const auto first = wire.find("Date: ");
    REQUIRE(first != std::string::npos);
    CHECK(wire.find("Date: ", first + 1) == std::string::npos);  // the codec adds none
  }
  // The same names with one value changed to an invalid one: dropped, not copied.
  response_head bad = dated;
  bad.headers.items[0].value = "text/plain\r\nInjected: 1";
  auto [wire, done] = answer(bad);
  CHECK(wire.find("Injected") == std::string::npos);
  CHECK(wire.find("Content-Type") == std::string::npos);
  CHECK(wire.find("Date: Sun, 06 Dec 2026") != std::string::npos);
  // And back: the valid list is written whole again.
  CHECK(answer(dated).first.find("Content-Type: text/plain\r\n") != std::string::npos);
}

TEST_CASE("http1: a whole head copied from the last one only when it would be the same", "[http1]") {
  // The codec keeps the last head per thread; each request below changes one thing the head
  // depends on (method, version, connection, length, status, server name). Every answer,
  // typed and in wire form, must be what a fresh thread (nothing kept) writes.
  response_head r;
  r.headers.add("Content-Type", "text/plain");
  r.headers.add("Date", "Sun, 06 Dec 2026 20:00:00 GMT");  // no clock in the comparison
  struct step {
    std::string request, body;
    int status;
    std::string server;
  };
  const std::vector<step> steps = {
      {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "hello", 200, "swactor"},
      {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "hello", 200, "swactor"},
      {"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", "hello", 200, "swactor"},
      {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "hello", 200, "swactor"},
      {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", "hello", 200, "swactor"},
      {"GET / HTTP/1.0\r\n\r\n", "hello", 200, "swactor"},
      {"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "hello", 200, "swactor"},
      {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "hello!", 200, "swactor"},
      {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "hello!", 404, "swactor"},
      {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "", 204, "swactor"},
      {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "hello!", 404, "other"},
      {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "hello!", 404, "other"},
  };
  struct answer {
    std::string wire;
    bool done = false, ok = false;  // ok: the request was taken whole, the response ended it
  };
  auto run = [&](const step& st, bool typed) {
    options o;
    o.server_name = st.server;
    response_head h = r;
    h.status = st.status;
    auto c = make_server_codec(o);
    recorder rec;
    answer a;  // no assertions here: this also runs on a thread of its own
    if (c->decode(st.request, rec) != st.request.size()) return a;
    if (typed)
      c->encode_object(std::uint8_t(out::whole), response_reply(h, st.body), a.wire);
    else
      c->encode(std::uint8_t(out::whole), h.encode() + st.body, a.wire);
    a.done = c->done();
    a.ok = c->outstanding() == 0;
    return a;
  };
  std::vector<answer> fresh;
  for (const auto& st : steps)
    std::thread([&] { fresh.push_back(run(st, true)); }).join();
  for (bool typed : {true, false, true}) {
    for (std::size_t i = 0; i < steps.size(); ++i) {
      INFO((typed ? "typed " : "wire form ") << steps[i].request << " status " << steps[i].status << " server "
                                            << steps[i].server);
      const auto a = run(steps[i], typed);
      REQUIRE(fresh[i].ok);
      REQUIRE(a.ok);
      CHECK(a.wire == fresh[i].wire);
      CHECK(a.done == fresh[i].done);
    }
  }
}

TEST_CASE("http1 wire: iequals, reason phrases", "[http1]") {
  CHECK(iequals("Content-Length", "content-length"));
  CHECK_FALSE(iequals("a", "ab"));
  CHECK_FALSE(iequals("@", "`"));  // differ only in bit 0x20 but are not letters
  CHECK(reason_phrase(200) == "OK");
  CHECK(reason_phrase(429) == "Too Many Requests");
  CHECK(reason_phrase(431) == "Request Header Fields Too Large");
  CHECK(reason_phrase(413) == "Content Too Large");
  CHECK(reason_phrase(308) == "Permanent Redirect");
  CHECK(reason_phrase(799) == "Unknown");
  CHECK(error_category().message(505) == "HTTP Version Not Supported");
}

TEST_CASE("http field syntax: tokens, and field values checked a word at a time", "[http1]") {
  namespace p = swactor::protocols;
  CHECK(p::is_token("Content-Type"));
  CHECK(p::is_token("x!#$%&'*+-.^_`|~9"));
  CHECK_FALSE(p::is_token(""));
  for (char c : std::string_view("\"(),/:;<=>?@[\\]{} \t")) CHECK_FALSE(p::is_token(std::string("a") + c));
  CHECK_FALSE(p::is_token("caf\xc3\xa9"));
  // Every byte at every position of a 20-byte value, against the byte-by-byte rule: the
  // eight-byte test must never let a control byte through, nor refuse a tab or obs-text.
  auto exact = [](std::string_view v) {
    for (unsigned char c : v)
      if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
    return true;
  };
  int mismatches = 0;
  for (int c = 0; c < 256; ++c)
    for (std::size_t at = 0; at < 20; ++at) {
      std::string v(20, 'x');
      v[at] = static_cast<char>(c);
      if (p::valid_field_value(v) != exact(v)) ++mismatches;
      v[at ^ 1] = '\t';  // a tab next to it: the word test flags, the byte loop decides
      if (p::valid_field_value(v) != exact(v)) ++mismatches;
    }
  CHECK(mismatches == 0);
  CHECK(p::valid_field_value("text/plain; charset=utf-8"));
  CHECK_FALSE(p::valid_field_value("a\r\nX-Injected: 1"));
}

// -- requests -----------------------------------------------------------------------------

TEST_CASE("http1: simple GET", "[http1]") {
  options o;
  auto rs = run_all(o, "GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n");
  for (auto& r : rs) {
    REQUIRE(r.messages.size() == 1);
    auto& m = r.messages[0];
    CHECK(m.method == "GET");
    CHECK(m.target == "/index.html?q=1");
    CHECK(m.authority == "example.com");
    CHECK(m.version_minor == 1);
    CHECK(m.keep_alive);
    CHECK(m.complete);
    CHECK(m.body.empty());
    CHECK(m.headers.items.size() == 2);
    CHECK(m.headers.items[1].name == "Accept");
    CHECK(m.headers.items[1].value == "*/*");
    CHECK(r.pending.empty());
    CHECK_FALSE(r.failed);
    CHECK_FALSE(r.done);
    CHECK(r.events == 1);
  }
}

TEST_CASE("http1: pipelined GETs are decoded in order", "[http1]") {
  std::string wire;
  for (int i = 0; i < 5; ++i)
    wire += "GET /" + std::to_string(i) + " HTTP/1.1\r\nHost: h\r\n\r\n";
  for (auto& r : run_all({}, wire)) {
    REQUIRE(r.messages.size() == 5);
    for (int i = 0; i < 5; ++i) CHECK(r.messages[i].target == "/" + std::to_string(i));
  }
}

TEST_CASE("http1: POST with Content-Length rides with the request", "[http1]") {
  for (auto& r : run_all({}, "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
                             "GET /next HTTP/1.1\r\nHost: h\r\n\r\n")) {
    REQUIRE(r.messages.size() == 2);
    CHECK(r.messages[0].body == "hello");
    CHECK(r.messages[0].content_length == 5);
    CHECK_FALSE(r.streamed[0]);
    CHECK(r.messages[1].target == "/next");
  }
}

TEST_CASE("http1: chunked body with extensions and trailers", "[http1]") {
  std::string wire =
      "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;name=value\r\nhello\r\n6;x\r\n world\r\n0\r\nX-Checksum: abc\r\nX-Two: 2\r\n\r\n";
  for (auto& r : run_all({}, wire)) {
    REQUIRE(r.messages.size() == 1);
    CHECK(r.messages[0].body == "hello world");
    CHECK(r.messages[0].chunked);
    CHECK(r.messages[0].content_length == -1);
    CHECK(r.streamed[0]);  // trailers travel in the end event
    REQUIRE(r.trailers[0].items.size() == 2);
    CHECK(*r.trailers[0].find("x-checksum") == "abc");
  }
  // Without trailers a small chunked body rides along.
  for (auto& r : run_all({}, "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "3\r\nabc\r\n0\r\n\r\n")) {
    REQUIRE(r.messages.size() == 1);
    CHECK(r.messages[0].body == "abc");
    CHECK_FALSE(r.streamed[0]);
  }
}

TEST_CASE("http1: a large body is streamed in body events", "[http1]") {
  options o;
  o.body_chunk_size = 16;
  std::string body;
  for (int i = 0; i < 100; ++i) body += char('a' + i % 26);
  std::string cl = "POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n" + body;
  for (auto& r : run_all(o, cl)) {
    REQUIRE(r.messages.size() == 1);
    CHECK(r.streamed[0]);
    CHECK(r.messages[0].body == body);
    CHECK(r.events >= 1 + 100 / 16 + 1);
  }
  std::string ch = "POST /big HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "40\r\n" + body.substr(0, 64) + "\r\n24\r\n" + body.substr(64) + "\r\n0\r\n\r\n";
  for (auto& r : run_all(o, ch)) {
    REQUIRE(r.messages.size() == 1);
    CHECK(r.streamed[0]);
    CHECK(r.messages[0].body == body);
  }
}

TEST_CASE("http1: a sink that stops gets exact consumption and the rest later", "[http1]") {
  codec_fixture f;
  std::string a = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
  std::string b = "GET /b HTTP/1.1\r\nHost: h\r\n\r\n";
  f.sink.budget = 1;
  CHECK(f.feed(a + b) == a.size());
  CHECK(f.sink.events.size() == 1);
  f.sink.budget = SIZE_MAX;
  CHECK(f.feed(b) == b.size());
  CHECK(f.request(1).target == "/b");

  // Stopping after the head of a streamed body: the buffered part comes next time.
  options o;
  o.body_chunk_size = 4;
  codec_fixture g(o);
  g.sink.budget = 1;
  std::string p = "POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n";
  auto used = g.feed(p);
  CHECK(g.sink.events.size() == 1);
  CHECK_FALSE(g.request(0).complete);
  g.sink.budget = SIZE_MAX;
  used += g.feed(std::string_view(p).substr(used));
  CHECK(used == p.size());
  std::string body;
  for (auto& [k, d] : g.sink.events)
    if (k == std::uint8_t(ev::body)) body += d;
  CHECK(body == "abcdef");
  CHECK(g.sink.events.back().first == std::uint8_t(ev::end));
}

// -- smuggling defences ---------------------------------------------------------------------

TEST_CASE("http1: smuggling defences answer with the exact status", "[http1]") {
  const std::string h = "POST / HTTP/1.1\r\nHost: h\r\n";
  CHECK(rejected_with(h + "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n") == 400);
  CHECK(rejected_with(h + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n") == 400);
  CHECK(rejected_with(h + "Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc") == 400);
  CHECK(rejected_with(h + "Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd") == 400);
  CHECK(rejected_with(h + "Content-Length: 3, 3\r\n\r\nabc") == 400);
  CHECK(rejected_with(h + "Content-Length: -1\r\n\r\n") == 400);
  CHECK(rejected_with(h + "Content-Length: 1a\r\n\r\n") == 400);
  CHECK(rejected_with(h + "Transfer-Encoding: gzip, chunked\r\n\r\n") == 501);
  CHECK(rejected_with(h + "Transfer-Encoding: gzip\r\n\r\n") == 501);
  CHECK(rejected_with(h + "Transfer-Encoding: chunked, gzip\r\n\r\n") == 400);
  CHECK(rejected_with(h + "Transfer-Encoding: chunked, chunked\r\n\r\n") == 400);
  CHECK(rejected_with(h + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n") == 400);
  CHECK(rejected_with(h + "X-Folded: a\r\n b\r\n\r\n") == 400);             // obs-fold
  CHECK(rejected_with("GET / HTTP/1.1\nHost: h\r\n\r\n") == 400);           // bare LF
  CHECK(rejected_with("GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n") == 400);   // bare CR
  static const char nul[] = "GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n";
  CHECK(rejected_with(std::string(nul, sizeof nul - 1)) == 400);
  CHECK(rejected_with("GET / HTTP/1.1\r\nHost: h\r\nX: a\x01" "b\r\n\r\n") == 400);
  CHECK(rejected_with("GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
  CHECK(rejected_with("GET / HTTP/1.1\r\n\r\n") == 400);                    // no Host
  CHECK(rejected_with("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n") == 400);
  CHECK(rejected_with("GET / HTTP/1.1\r\nHost: a b\r\n\r\n") == 400);
  CHECK(rejected_with("GET / HTTP/1.1\r\nHost: user@a\r\n\r\n") == 400);
  CHECK(rejected_with("GET / HTTP/1.1\r\nHost: a:80x\r\n\r\n") == 400);
  CHECK(rejected_with("GET / HTTP/1.1\r\nHost: \r\n\r\n") == 400);
  CHECK(rejected_with("GET * HTTP/1.1\r\nHost: h\r\n\r\n") == 400);         // * outside OPTIONS
  CHECK(rejected_with("GET h:80 HTTP/1.1\r\nHost: h\r\n\r\n") == 400);      // authority-form
  CHECK(rejected_with("CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n") == 501);
  CHECK(rejected_with("GET / HTTP/2.0\r\nHost: h\r\n\r\n") == 505);
  CHECK(rejected_with("GET / HTTP/0.9\r\nHost: h\r\n\r\n") == 505);
  CHECK(rejected_with("GET / HTTP/1.2\r\nHost: h\r\n\r\n") == 505);
  CHECK(rejected_with("GET / HTTP/1.1\r\nHost: h\r\nExpect: something\r\n\r\n") == 417);
  CHECK(rejected_with("GET / HTTP/1.1\r\nHost : h\r\n\r\n") == 400);
  CHECK(rejected_with("GET / HTTP/1.1\r\nHost: h\r\n: 4\r\n\r\n") == 400);  // empty name (fuzz)
}

TEST_CASE("http1: nothing after a bad request is parsed, earlier ones are answered first",
          "[http1]") {
  codec_fixture f;
  std::string good = "GET /ok HTTP/1.1\r\nHost: h\r\n\r\n";
  std::string bad = "GET /bad HTTP/1.1\r\n\r\n";
  std::string after = "GET /after HTTP/1.1\r\nHost: h\r\n\r\n";
  auto used = f.feed(good + bad + after);
  CHECK(used == good.size());
  REQUIRE(f.sink.events.size() == 1);
  CHECK(f.c->outstanding() == 1);
  CHECK(f.c->blocked());
  std::string out;
  CHECK_FALSE(f.c->take_output(out));  // held until /ok is answered
  CHECK_FALSE(f.c->done());
  CHECK_FALSE(f.c->failed());
  CHECK(f.feed(bad + after) == 0);
  auto w = f.answer(200, "fine");
  CHECK(status_of(w) == 200);
  auto second = w.find("HTTP/1.1 400 Bad Request\r\n");
  REQUIRE(second != std::string::npos);
  CHECK(second > 0);
  CHECK(f.c->done());
  CHECK(f.c->failed());
  CHECK(f.c->error().value() == 400);
  CHECK(f.c->reason() == "missing Host header");
}

TEST_CASE("http1: absolute-form target and OPTIONS *", "[http1]") {
  for (auto& r : run_all({}, "GET http://Example.com:8080/x?y HTTP/1.1\r\nHost: other\r\n\r\n")) {
    REQUIRE(r.messages.size() == 1);
    CHECK(r.messages[0].target == "http://Example.com:8080/x?y");
    CHECK(r.messages[0].authority == "Example.com:8080");
  }
  CHECK(rejected_with("GET http://a@b/ HTTP/1.1\r\nHost: b\r\n\r\n") == 400);
  for (auto& r : run_all({}, "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n")) {
    REQUIRE(r.messages.size() == 1);
    CHECK(r.messages[0].target == "*");
  }
}

// -- keep-alive, HEAD, Expect -------------------------------------------------------------

TEST_CASE("http1: the codec dates responses, unless the handler did", "[http1]") {
  codec_fixture f;
  f.feed("GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n");
  std::string w;
  f.c->encode(std::uint8_t(out::whole), whole(200, "x"), w);
  CHECK(undated(w) == "HTTP/1.1 200 OK\r\nServer: swactor\r\nContent-Length: 1\r\n\r\nx");
  header_list own;
  own.add("Date", "Tue, 15 Nov 1994 08:12:31 GMT");
  w.clear();
  f.c->encode(std::uint8_t(out::whole), whole(200, "y", own), w);
  CHECK(w == "HTTP/1.1 200 OK\r\nDate: Tue, 15 Nov 1994 08:12:31 GMT\r\nServer: swactor\r\nContent-Length: 1\r\n\r\ny");
  // The codec's own error responses are dated too.
  codec_fixture g;
  g.feed("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
  std::string e;
  g.c->take_output(e);
  CHECK(undated(e).starts_with("HTTP/1.1 400 Bad Request\r\nServer: swactor\r\nContent-Type: text/plain\r\n"));
}

TEST_CASE("http1: HEAD response has Content-Length but no body", "[http1]") {
  codec_fixture f;
  f.feed("HEAD /x HTTP/1.1\r\nHost: h\r\n\r\n");
  auto w = f.answer(200, "hello");
  CHECK(w == "HTTP/1.1 200 OK\r\nServer: swactor\r\nContent-Length: 5\r\n\r\n");
  // A handler that sends no body for HEAD can give the length in content_length.
  f.feed("HEAD /x HTTP/1.1\r\nHost: h\r\n\r\n");
  response_head r;
  r.content_length = 42;
  std::string w2;
  f.c->encode(std::uint8_t(out::whole), r.encode(), w2);
  CHECK(w2.find("Content-Length: 42\r\n") != std::string::npos);
  CHECK(w2.substr(w2.size() - 4) == "\r\n\r\n");
}

TEST_CASE("http1: 1.0 keep-alive and close, client close, handler close", "[http1]") {
  {
    codec_fixture f;
    f.feed("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    CHECK(f.request(0).keep_alive);
    CHECK(f.request(0).version_minor == 0);
    auto w = f.answer(200, "x");
    CHECK(w.find("Connection: keep-alive\r\n") != std::string::npos);
    CHECK_FALSE(f.c->done());
  }
  {
    codec_fixture f;
    std::string a = "GET / HTTP/1.0\r\n\r\n";
    CHECK(f.feed(a + "GET / HTTP/1.0\r\n\r\n") == a.size());
    CHECK_FALSE(f.request(0).keep_alive);
    CHECK(f.c->blocked());
    auto w = f.answer(200, "x");
    CHECK(w.find("Connection: close\r\n") != std::string::npos);
    CHECK(f.c->done());
  }
  {
    codec_fixture f;
    std::string a = "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    CHECK(f.feed(a + "GET /more HTTP/1.1\r\nHost: h\r\n\r\n") == a.size());
    CHECK(f.sink.events.size() == 1);
    CHECK_FALSE(f.request(0).keep_alive);
    auto w = f.answer(200);
    CHECK(w.find("Connection: close\r\n") != std::string::npos);
    CHECK(f.c->done());
  }
  {
    codec_fixture f;
    f.feed("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    header_list h;
    h.add("Connection", "close");
    auto w = f.answer(200, "", h);
    CHECK(w.find("Connection: close\r\n") != std::string::npos);
    CHECK(f.c->done());
    CHECK(f.answer(200).empty());  // nothing after the last response
  }
}

TEST_CASE("http1: Expect 100-continue and 417", "[http1]") {
  codec_fixture f;
  std::string head = "POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n";
  CHECK(f.feed(head) == head.size());
  REQUIRE(f.sink.events.size() == 1);  // the head goes at once: the client waits for 100
  auto r = f.request(0);
  CHECK(r.expect_continue);
  CHECK_FALSE(r.complete);
  CHECK(f.send(out::continue_100, {}) == "HTTP/1.1 100 Continue\r\n\r\n");
  CHECK(f.send(out::continue_100, {}).empty());  // once
  f.feed("abc");
  REQUIRE(f.sink.events.size() == 3);
  CHECK(f.sink.events[1].second == "abc");
  CHECK(f.sink.events[2].first == std::uint8_t(ev::end));

  codec_fixture g;
  g.feed("GET /u HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n");
  CHECK_FALSE(g.request(0).expect_continue);  // no body follows
  CHECK(g.send(out::continue_100, {}).empty());
  CHECK(rejected_with("POST / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\nx") == 417);
}

// -- limits ---------------------------------------------------------------------------------

TEST_CASE("http1: limits 431 and 413", "[http1]") {
  options o;
  o.max_header_size = 128;
  o.max_headers = 3;
  o.max_body_size = 10;
  CHECK(rejected_with("GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(200, 'a') + "\r\n\r\n", o) == 431);
  CHECK(rejected_with("GET /" + std::string(200, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n", o) == 431);
  CHECK(rejected_with("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", o) == 431);
  CHECK(rejected_with("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n", o) == 413);
  CHECK(rejected_with("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "6\r\nabcdef\r\n6\r\nghijkl\r\n0\r\n\r\n", o) == 413);
  // A chunk announced past the limit is refused at its size line, before its bytes come.
  for (const char* size : {"b", "7FFFFFFFFFFFFFFF"}) {
    INFO(size);
    CHECK(rejected_with(std::string("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n") + size + "\r\n", o) ==
          413);
  }
  CHECK(rejected_with("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n5\r\n", o) == 413);
  // Exactly at the limits is fine.
  std::string at = "GET / HTTP/1.1\r\nHost: h\r\nX: ";
  at += std::string(128 - at.size() - 4, 'a') + "\r\n\r\n";
  REQUIRE(at.size() == 128);
  for (auto& r : run_all(o, at)) CHECK(r.messages.size() == 1);

  // A huge head is refused without being consumed whole.
  codec_fixture f(o);
  std::string big = "GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(100000, 'a');
  f.feed(big);
  CHECK(f.c->failed());
  std::string out;
  REQUIRE(f.c->take_output(out));
  CHECK(status_of(out) == 431);
}

TEST_CASE("http1: body pieces a sink refused are handed out later without new input", "[http1]") {
  // The whole request in one read, the sink stops after the head and the first body piece:
  // the rest of the body waits in the codec (holds_events), and a decode() with no new byte
  // hands it out (the client may have nothing more to send).
  codec_fixture f;
  const std::string body(100000, 'b');
  const std::string wire = "POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\n" + body;
  f.sink.budget = 2;
  CHECK(f.feed(wire) == wire.size());
  REQUIRE(f.sink.events.size() == 2);
  CHECK(f.c->holds_events());
  f.sink.budget = SIZE_MAX;
  CHECK(f.feed("") == 0);
  CHECK_FALSE(f.c->holds_events());
  std::string got;
  bool ended = false;
  for (auto& [kind, data] : f.sink.events) {
    if (kind == std::uint8_t(ev::body)) got += data;
    if (kind == std::uint8_t(ev::end)) ended = true;
  }
  CHECK(got == body);
  CHECK(ended);
}

TEST_CASE("http1: max_pipelined blocks and resumes after encode", "[http1]") {
  options o;
  o.max_pipelined = 2;
  codec_fixture f(o);
  std::string one = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n";
  std::string wire = one + one + one;
  auto used = f.feed(wire);
  CHECK(used == 2 * one.size());
  CHECK(f.c->outstanding() == 2);
  CHECK(f.c->blocked());
  CHECK(f.feed(std::string_view(wire).substr(used)) == 0);
  auto w = f.answer(200, "a");
  CHECK(status_of(w) == 200);
  CHECK(f.c->outstanding() == 1);
  CHECK_FALSE(f.c->blocked());
  CHECK(f.feed(std::string_view(wire).substr(used)) == one.size());
  CHECK(f.c->outstanding() == 2);
  CHECK(f.sink.events.size() == 3);
}

TEST_CASE("http1: max_requests_per_connection", "[http1]") {
  options o;
  o.max_requests_per_connection = 2;
  codec_fixture f(o);
  std::string one = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
  CHECK(f.feed(one + one + one) == 2 * one.size());
  CHECK(f.request(0).keep_alive);
  CHECK_FALSE(f.request(1).keep_alive);
  CHECK(f.answer(200).find("Connection") == std::string::npos);
  CHECK_FALSE(f.c->done());
  CHECK(f.answer(200).find("Connection: close\r\n") != std::string::npos);
  CHECK(f.c->done());
}

TEST_CASE("http1: Upgrade request is delivered, nothing after it parsed", "[http1]") {
  codec_fixture f;
  std::string up = "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
  CHECK(f.feed(up + "\x81\x05hello") == up.size());
  REQUIRE(f.sink.events.size() == 1);
  CHECK(f.c->blocked());
  auto w = f.answer(426);
  CHECK(status_of(w) == 426);
  CHECK(f.c->done());
}

// -- responses ------------------------------------------------------------------------------

TEST_CASE("http1: response encodings", "[http1]") {
  codec_fixture f;
  f.feed("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  header_list h;
  h.add("Content-Type", "text/plain");
  h.add("Content-Length", "999");      // the codec owns framing
  h.add("Transfer-Encoding", "gzip");
  h.add("Connection", "keep-alive");
  h.add("X-Bad", "a\r\nInjected: 1");  // would split the head: dropped
  CHECK(f.answer(201, "hey", h) ==
        "HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nServer: swactor\r\n"
        "Content-Length: 3\r\n\r\nhey");
  CHECK(f.c->outstanding() == 0);

  // Chunked streaming for a 1.1 client.
  f.feed("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  CHECK(f.send(out::head, stream_head(200, -1)) ==
        "HTTP/1.1 200 OK\r\nServer: swactor\r\nTransfer-Encoding: chunked\r\n\r\n");
  CHECK(f.send(out::body, "hello") == "5\r\nhello\r\n");
  CHECK(f.send(out::body, "").empty());
  CHECK(f.send(out::body, std::string(26, 'x')) == "1a\r\n" + std::string(26, 'x') + "\r\n");
  header_list t;
  t.add("X-Sum", "1");
  CHECK(f.send(out::end, t.encode()) == "0\r\nX-Sum: 1\r\n\r\n");
  CHECK(f.c->outstanding() == 0);
  CHECK_FALSE(f.c->done());

  // Content-Length streaming: the head waits for the first body bytes (one segment).
  f.feed("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  CHECK(f.send(out::head, stream_head(200, 4)).empty());
  CHECK(f.send(out::body, "ab") == "HTTP/1.1 200 OK\r\nServer: swactor\r\nContent-Length: 4\r\n\r\nab");
  CHECK(f.send(out::body, "cd") == "cd");
  CHECK(f.send(out::end, header_list{}.encode()).empty());
  CHECK_FALSE(f.c->done());
  // ... or for the end, when the handler ends without a body piece.
  codec_fixture e;
  e.feed("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  CHECK(e.send(out::head, stream_head(200, 4)).empty());
  CHECK(e.send(out::end, header_list{}.encode()) ==
        "HTTP/1.1 200 OK\r\nServer: swactor\r\nContent-Length: 4\r\n\r\n");
  // ... or for a file: the head is the bytes before it (the connection corks around both).
  codec_fixture fl;
  fl.feed("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  CHECK(fl.send(out::head, stream_head(200, 1000)).empty());
  std::string before, after;
  CHECK(fl.c->frame_file(1000, before, after));
  CHECK(undated(before) == "HTTP/1.1 200 OK\r\nServer: swactor\r\nContent-Length: 1000\r\n\r\n");
  CHECK(after.empty());
  // Whoever answers goes away while the head is held: nothing of it went out, so 502.
  codec_fixture ab;
  ab.feed("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  CHECK(ab.send(out::head, stream_head(200, 4)).empty());
  std::string gone;
  ab.c->abandon(gone);
  CHECK(undated(gone).rfind("HTTP/1.1 502 Bad Gateway\r\n", 0) == 0);
  CHECK(gone.find("Content-Length: 4") == std::string::npos);
  // An empty body is not held: nothing would release it.
  fl.feed("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  CHECK(fl.send(out::end, header_list{}.encode()).empty());  // the file's response ends
  CHECK(fl.send(out::head, stream_head(200, 0)) ==
        "HTTP/1.1 200 OK\r\nServer: swactor\r\nContent-Length: 0\r\n\r\n");

  // 204 and 304 carry no Content-Length and no body.
  f.feed("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  CHECK(f.answer(204, "zzz") == "HTTP/1.1 204 No Content\r\nServer: swactor\r\n\r\n");
  f.feed("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  CHECK(f.answer(304) == "HTTP/1.1 304 Not Modified\r\nServer: swactor\r\n\r\n");

  // Handler's Server wins; empty server_name adds none.
  f.feed("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  header_list s;
  s.add("Server", "mine");
  CHECK(f.answer(200, "", s) == "HTTP/1.1 200 OK\r\nServer: mine\r\nContent-Length: 0\r\n\r\n");
  options quiet;
  quiet.server_name.clear();
  codec_fixture q(quiet);
  q.feed("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  CHECK(q.answer(200) == "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");

  // 1.0 client, unknown length: close-delimited.
  codec_fixture g;
  g.feed("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  CHECK(g.send(out::head, stream_head(200, -1)) ==
        "HTTP/1.1 200 OK\r\nServer: swactor\r\nConnection: close\r\n\r\n");
  CHECK(g.send(out::body, "raw") == "raw");
  CHECK(g.send(out::end, header_list{}.encode()).empty());
  CHECK(g.c->done());

  // HEAD streamed: no body bytes at all.
  codec_fixture hd;
  hd.feed("HEAD / HTTP/1.1\r\nHost: h\r\n\r\n");
  CHECK(hd.send(out::head, stream_head(200, -1)) == "HTTP/1.1 200 OK\r\nServer: swactor\r\n\r\n");
  CHECK(hd.send(out::body, "x").empty());
  CHECK(hd.send(out::end, header_list{}.encode()).empty());
  CHECK(hd.c->outstanding() == 0);
}

// -- timeouts and endings -----------------------------------------------------------------

TEST_CASE("http1: timeouts and epochs", "[http1]") {
  options o;
  o.header_timeout_ms = 100;
  o.keepalive_timeout_ms = 5000;
  o.body_timeout_ms = 700;
  codec_fixture f(o);
  auto t0 = f.c->timeout();
  CHECK(t0.ms == 100);  // fresh connection: the first head must come quickly
  f.stream("GE");
  auto t1 = f.c->timeout();
  CHECK(t1.ms == 100);
  CHECK(t1.epoch != t0.epoch);
  f.stream("T / HTTP/1.1\r\nHo");  // slowloris: more head bytes do not restart the clock
  CHECK(f.c->timeout().epoch == t1.epoch);
  f.stream("st: h\r\nContent-Length: 10\r\n\r\n");
  auto t2 = f.c->timeout();
  CHECK(t2.ms == 700);
  f.stream("ab");
  auto t3 = f.c->timeout();
  CHECK(t3.ms == 700);
  CHECK(t3.epoch != t2.epoch);  // body progress restarts it
  f.stream("cdefghij");
  CHECK(f.c->timeout().ms == 0);  // outstanding, handler's turn
  f.answer(200);
  CHECK(f.c->timeout().ms == 5000);  // idle keep-alive
  std::string out;
  CHECK(f.c->expire(out).empty());
  CHECK(out.empty());
  CHECK(f.c->done());

  codec_fixture g(o);
  g.feed("GET / HTTP/1.1\r\n");
  std::string w;
  CHECK(g.c->expire(w) == "header timeout");
  CHECK(status_of(w) == 408);
  CHECK(g.c->done());

  codec_fixture b(o);
  b.feed("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nab");
  std::string bw;
  CHECK(b.c->expire(bw) == "body timeout");
  CHECK(status_of(bw) == 408);
}

TEST_CASE("http1: abandon answers the oldest with 502", "[http1]") {
  codec_fixture f;
  f.feed("GET / HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n");
  std::string w;
  f.c->abandon(w);
  CHECK(status_of(w) == 502);
  CHECK(w.find("Connection: close") != std::string::npos);
  CHECK(f.c->done());

  codec_fixture g;
  g.feed("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  g.send(out::head, stream_head(200, -1));
  std::string w2;
  g.c->abandon(w2);
  CHECK(w2.empty());  // its response started: only closing is left
  CHECK(g.c->done());

  codec_fixture idle;
  std::string w3;
  idle.c->abandon(w3);
  CHECK(w3.empty());
  CHECK_FALSE(idle.c->done());
}

TEST_CASE("http1: mid_message while a request body is still arriving", "[http1]") {
  codec_fixture f;
  CHECK_FALSE(f.c->mid_message());
  std::string head = "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n";
  f.feed(head + "0123");
  // An end of stream now cuts the body: the connection must not wait to answer (the
  // request may be emitted already, with more body to come, or still held).
  CHECK(f.c->mid_message());
  f.feed("456789");
  CHECK_FALSE(f.c->mid_message());  // complete: a half-close now still gets its answer
  CHECK(f.c->outstanding() == 1);
}

TEST_CASE("http dates: IMF-fixdate of known instants", "[http1]") {
  char b[swactor::protocols::kHttpDateSize];
  swactor::protocols::format_http_date(784887151, b);  // RFC 9110's example
  CHECK(std::string_view(b, sizeof b) == "Tue, 15 Nov 1994 08:12:31 GMT");
  swactor::protocols::format_http_date(0, b);
  CHECK(std::string_view(b, sizeof b) == "Thu, 01 Jan 1970 00:00:00 GMT");
  swactor::protocols::format_http_date(4102444799, b);
  CHECK(std::string_view(b, sizeof b) == "Thu, 31 Dec 2099 23:59:59 GMT");
  CHECK(swactor::protocols::http_date_now().size() == swactor::protocols::kHttpDateSize);
}
