#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <random>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "swactor/ipc/envelope.hpp"
#include "swactor/ipc/messages.hpp"

using namespace swactor::ipc;
using namespace std::string_literals;

namespace {

std::string binary(std::size_t n, unsigned seed = 1) {
  std::string s(n, '\0');
  std::minstd_rand rng(seed);
  for (auto& c : s) c = static_cast<char>(rng() % 4 == 0 ? 0 : rng());
  return s;
}

// A conn_open of a plain (not TLS) listener.
conn_open plain_open(std::uint64_t session, std::uint32_t listener, std::uint32_t reactor, std::string remote,
                     std::int64_t connect_ms) {
  conn_open o;
  o.session = session;
  o.listener = listener;
  o.reactor = reactor;
  o.remote = std::move(remote);
  o.connect_ms = connect_ms;
  return o;
}

// Typical, empty and large/binary values of every kind.
std::vector<any_message> samples() {
  const std::string big = binary(100'000);
  const std::string nuls = "\0a\0\0b\0"s;
  std::vector<any_message> v;
  v.emplace_back(plain_open(42, 1, 2, "127.0.0.1:5555", 1'700'000'000'123));
  v.emplace_back(conn_open{});
  v.emplace_back(conn_open{5, 1, 0, "[::1]:443", 7, "[::1]:8443", "h2", true, "TLSv1.3", "TLS_AES_256_GCM_SHA384",
                           "api.example.com", "http/1.1", "CN=client,O=test", "AB:CD", true});
  v.emplace_back(plain_open(~0ull, ~0u, ~0u, nuls, -1));
  v.emplace_back(conn_data{7, 0, 1, 0, "GET / HTTP/1.1\r\n\r\n"});
  v.emplace_back(conn_data{});
  v.emplace_back(conn_data{~0ull, 3, 4, 255, big});
  v.emplace_back(conn_closed{7, 2, 1, true, "reset by peer"});
  v.emplace_back(conn_closed{});
  v.emplace_back(conn_closed{1, 0, 0, false, nuls});
  v.emplace_back(conn_send{7, 3, 0, "HTTP/1.1 200 OK\r\n"});
  v.emplace_back(conn_send{});
  v.emplace_back(conn_send{8, no_worker, 9, big});
  v.emplace_back(conn_close{7, true});
  v.emplace_back(conn_close{});
  v.emplace_back(conn_bind{7, 0x1122334455667788ull});
  v.emplace_back(conn_bind{});
  v.emplace_back(conn_upgrade{7, 1, 3, "/chat/games?nick=ann"});
  v.emplace_back(conn_upgrade{});
  auto adopt = [](std::uint64_t session, std::uint32_t reactor, std::uint32_t listener, std::uint32_t module,
                  std::int64_t ms, std::string remote, std::string local, std::string target) {
    conn_adopt a;
    a.session = session;
    a.reactor = reactor;
    a.listener = listener;
    a.module = module;
    a.connect_ms = ms;
    a.remote = std::move(remote);
    a.local = std::move(local);
    a.target = std::move(target);
    return a;
  };
  v.emplace_back(adopt(9, 1, 2, 3, 1'700'000'000'123, "127.0.0.1:5555", "127.0.0.1:8081", "/chat"));
  v.emplace_back(conn_adopt{});
  {
    auto secure = adopt(9, 1, 2, 3, 1'700'000'000'123, "127.0.0.1:5555", "127.0.0.1:8081", "/chat");
    secure.tls = true;
    secure.tls_version = "TLSv1.3";
    secure.tls_cipher = "TLS_AES_128_GCM_SHA256";
    secure.tls_sni = "chat.example";
    secure.tls_alpn = "http/1.1";
    secure.tls_peer_subject = "CN=client";
    secure.tls_peer_fingerprint = "AB:CD";
    secure.tls_resumed = true;
    v.emplace_back(std::move(secure));
  }
  v.emplace_back(adopt(~0ull, ~0u, ~0u, ~0u, -1, nuls, nuls, big));
  v.emplace_back(group_op{7, 1, true, "room.lobby"});
  v.emplace_back(group_op{7, 1, false, nuls});
  v.emplace_back(group_op{});
  v.emplace_back(group_send{1, 16, "room.lobby", "hello"});
  v.emplace_back(group_send{});
  v.emplace_back(group_send{no_worker, 255, nuls, big});
  v.emplace_back(datagram_in{1, 0, "10.0.0.1:53", "query"});
  v.emplace_back(datagram_in{});
  v.emplace_back(datagram_in{~0u, ~0u, nuls, big});
  v.emplace_back(datagram_out{-1, "[::1]:53", "answer"});
  v.emplace_back(datagram_out{});
  v.emplace_back(datagram_out{std::int32_t(0x7fffffff), std::string(300, 'x'), nuls});
  v.emplace_back(drain{3});
  v.emplace_back(drain{});
  v.emplace_back(drained{2});
  v.emplace_back(drained{});
  v.emplace_back(ready{5});
  v.emplace_back(ready{no_worker});
  v.emplace_back(stop{"SIGTERM"});
  v.emplace_back(stop{});
  v.emplace_back(task_request{99, 0, no_worker, 2, true, "job"});
  v.emplace_back(task_request{});
  v.emplace_back(task_request{~0ull, 1, 4, ~0u, false, big});
  v.emplace_back(task_result{99, 4, 0, 2, false, "done"});
  v.emplace_back(task_result{99, 4, 0, 2, true, "it failed"});
  v.emplace_back(task_result{});
  v.emplace_back(task_result{1, 2, 3, 4, false, big});
  v.emplace_back(pipe_message{0, 1, 3, "hello"});
  v.emplace_back(pipe_message{});
  v.emplace_back(pipe_message{5, 6, 7, nuls + big});
  v.emplace_back(conn_watch{~0ull, 3});
  v.emplace_back(conn_watch{});
  v.emplace_back(conn_writable{12, 1});
  v.emplace_back(conn_writable{});
  v.emplace_back(conn_pause{7, 1});
  v.emplace_back(conn_resume{7, 1});
  {
    bus_message b;
    b.op = bus_op::request;
    b.pick = 1;
    b.self = false;
    b.src = 2;
    b.request = 77;
    b.src_module = 1;
    b.dst_module = 3;
    b.seq = ~0ull;
    b.dst_pid = 0xfffffffeu;
    b.topic = "room.a";
    b.tag = "chat.line";
    b.data = nuls + big;
    v.emplace_back(b);
    v.emplace_back(bus_message{});
    bus_message r;
    r.op = bus_op::reply;
    r.status = bus_status::no_reply;
    r.dst = 4;
    r.data = "why";
    v.emplace_back(r);
  }
  v.emplace_back(bus_subscription{3, 1, true, "room.>"});
  v.emplace_back(bus_subscription{});
  return v;
}

// The kinds whose bulk string decode(message&&) must move.
bool is_bulk(const any_message& m) {
  return std::holds_alternative<conn_data>(m) || std::holds_alternative<conn_send>(m) ||
         std::holds_alternative<datagram_in>(m) || std::holds_alternative<datagram_out>(m) ||
         std::holds_alternative<task_request>(m) || std::holds_alternative<task_result>(m) ||
         std::holds_alternative<pipe_message>(m) || std::holds_alternative<bus_message>(m);
}

const std::string* bulk_of(const any_message& m) {
  if (auto* p = std::get_if<conn_data>(&m)) return &p->data;
  if (auto* p = std::get_if<conn_send>(&m)) return &p->data;
  if (auto* p = std::get_if<datagram_in>(&m)) return &p->data;
  if (auto* p = std::get_if<datagram_out>(&m)) return &p->data;
  if (auto* p = std::get_if<task_request>(&m)) return &p->payload;
  if (auto* p = std::get_if<task_result>(&m)) return &p->payload;
  if (auto* p = std::get_if<pipe_message>(&m)) return &p->payload;
  if (auto* p = std::get_if<bus_message>(&m)) return &p->data;
  return nullptr;
}

// A decode that succeeded must be the canonical encoding: re-encoding gives the same bytes.
void check_canonical(const message& in, const any_message& out) {
  auto again = encode(out);
  CHECK(again.type == in.type);
  CHECK(again.payload == in.payload);
}

bool is_bad(const swactor::result<any_message>& r) {
  return !r && r.error() == make_error_code(errc::bad_message);
}

void poke(std::string& s, std::size_t off, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) s[off + i] = static_cast<char>(v >> (8 * i));
}

}  // namespace

TEST_CASE("messages: every kind round trips through lvalue and rvalue decode", "[messages]") {
  for (const auto& original : samples()) {
    INFO(kind_name(original));
    auto m = encode(original);
    auto a = decode(m);
    REQUIRE(a);
    CHECK(*a == original);
    CHECK(kind_name(*a) == kind_name(original));
    auto b = decode(std::move(m));
    REQUIRE(b);
    CHECK(*b == original);
  }
}

TEST_CASE("messages: one message_type per kind, names for log lines", "[messages]") {
  const std::pair<any_message, std::pair<message_type, std::string_view>> table[] = {
      {conn_open{}, {message_type::connect, "conn_open"}},
      {conn_data{}, {message_type::receive, "conn_data"}},
      {conn_closed{}, {message_type::close, "conn_closed"}},
      {conn_send{}, {message_type::send, "conn_send"}},
      {conn_close{}, {message_type::conn_close, "conn_close"}},
      {conn_bind{}, {message_type::conn_bind, "conn_bind"}},
      {datagram_in{}, {message_type::packet, "datagram_in"}},
      {datagram_out{}, {message_type::datagram_out, "datagram_out"}},
      {drain{}, {message_type::drain, "drain"}},
      {drained{}, {message_type::drained, "drained"}},
      {ready{}, {message_type::ready, "ready"}},
      {stop{}, {message_type::stop, "stop"}},
      {task_request{}, {message_type::task, "task_request"}},
      {task_result{}, {message_type::task_result, "task_result"}},
      {pipe_message{}, {message_type::pipe_message, "pipe_message"}},
      {conn_watch{}, {message_type::conn_watch, "conn_watch"}},
      {conn_writable{}, {message_type::conn_writable, "conn_writable"}},
      {conn_pause{}, {message_type::pause, "conn_pause"}},
      {conn_resume{}, {message_type::resume, "conn_resume"}},
      {bus_message{}, {message_type::bus, "bus_message"}},
      {bus_subscription{}, {message_type::bus_subscribe, "bus_subscription"}},
      {conn_upgrade{}, {message_type::conn_upgrade, "conn_upgrade"}},
      {conn_adopt{}, {message_type::conn_adopt, "conn_adopt"}},
      {group_op{}, {message_type::group_op, "group_op"}},
      {group_send{}, {message_type::group_send, "group_send"}},
  };
  static_assert(std::size(table) == std::variant_size_v<any_message>);
  std::vector<message_type> seen;
  for (const auto& [v, expect] : table) {
    CHECK(encode(v).type == expect.first);
    CHECK(kind_name(v) == expect.second);
    CHECK(type_name(expect.first) != "unknown");
    CHECK(std::find(seen.begin(), seen.end(), expect.first) == seen.end());
    seen.push_back(expect.first);
  }
}

TEST_CASE("messages: header fields carry only their true meaning", "[messages]") {
  auto d = encode(conn_data{7, 1, 2, 0, "x"});
  CHECK(d.session_id == 7);
  CHECK(d.reactor_id == 2);
  CHECK(d.message_id == 0);
  CHECK(d.src_worker == no_worker);
  CHECK(d.dst_worker == no_worker);

  auto s = encode(conn_send{7, 3, 0, "x"});
  CHECK(s.session_id == 7);
  CHECK(s.src_worker == 3);
  CHECK(s.reactor_id == 0);

  auto t = encode(task_request{99, 1, no_worker, 5, true, "job"});
  CHECK(t.message_id == 99);
  CHECK(t.src_worker == 1);
  CHECK(t.dst_worker == no_worker);
  CHECK(t.session_id == 0);

  CHECK_FALSE(encode(task_result{1, 2, 3, 4, false, ""}).has_error());
  CHECK(encode(task_result{1, 2, 3, 4, true, "boom"}).has_error());

  CHECK(encode(drain{4}).src_worker == 4);
  CHECK(encode(drained{2}).reactor_id == 2);
  CHECK(encode(ready{6}).src_worker == 6);
  CHECK(encode(drain{4}).payload.empty());

  // A router may fill header fields a kind does not use; decode ignores them.
  auto m = encode(conn_data{7, 1, 2, 0, "x"});
  m.dst_worker = 5;
  m.src_worker = 9;
  auto r = decode(std::move(m));
  REQUIRE(r);
  CHECK(std::get<conn_data>(*r) == conn_data{7, 1, 2, 0, "x"});
}

TEST_CASE("messages: payload layout is the documented one", "[messages]") {
  // conn_data: bulk, u32 listener, u8 kind, u32 size of fields (5)
  auto d = encode(conn_data{7, 0x01020304, 2, 9, "abc"});
  CHECK(d.payload == "abc\x04\x03\x02\x01\x09\x05\0\0\0"s);
  // conn_open: u32 listener, i64 connect_ms, str remote, str local, str protocol, bool tls
  auto o = encode(plain_open(1, 2, 3, "ab", -2));
  CHECK(o.payload == "\x02\0\0\0\xfe\xff\xff\xff\xff\xff\xff\xff\x02\0\0\0ab\0\0\0\0\0\0\0\0\0"s);
  // ... and with tls: the six strings, then bool resumed
  conn_open t{1, 0, 3, "", 0, "", "h2", true, "v", "c", "s", "a", "p", "f", true};
  CHECK(encode(t).payload == std::string(20, '\0') + "\x02\0\0\0h2"s + "\x01"s +
                                 "\x01\0\0\0v\x01\0\0\0c\x01\0\0\0s\x01\0\0\0a\x01\0\0\0p\x01\0\0\0f\x01"s);
  // datagram_out: bulk, i32 listener, str to, u32 size of fields
  auto g = encode(datagram_out{-1, "h", "D"});
  CHECK(g.payload == "D\xff\xff\xff\xff\x01\0\0\0h\x09\0\0\0"s);
  CHECK(encode(conn_close{1, true}).payload == "\x01"s);
  CHECK(encode(stop{"x"}).payload == "\x01\0\0\0x"s);
}

TEST_CASE("messages: the bulk string is moved, not copied", "[messages]") {
  for (const auto& original : samples()) {
    if (!is_bulk(original)) continue;
    INFO(kind_name(original));
    auto m = encode(original);
    if (m.payload.size() <= 32) continue;  // short strings live inline: no pointer to keep
    const char* before = m.payload.data();
    auto r = decode(std::move(m));
    REQUIRE(r);
    CHECK(bulk_of(*r)->data() == before);
    CHECK(*bulk_of(*r) == *bulk_of(original));
  }

  // encode: a bulk string with trailer_reserve spare capacity becomes the payload as it is.
  std::string data = binary(5000);
  data.reserve(data.size() + trailer_reserve);
  const char* p = data.data();
  auto m = encode(conn_data{1, 2, 3, 0, std::move(data)});
  CHECK(m.payload.data() == p);
  std::string out = binary(5000);
  out.reserve(out.size() + trailer_reserve);
  p = out.data();
  CHECK(encode(task_request{1, 2, 3, 4, true, std::move(out)}).payload.data() == p);
}

TEST_CASE("messages: every truncation is rejected or decodes canonically", "[messages][garbage]") {
  for (const auto& original : samples()) {
    INFO(kind_name(original));
    const auto full = encode(original);
    if (full.payload.size() > 1000) continue;  // the small samples cover the same layouts
    for (std::size_t n = 0; n < full.payload.size(); ++n) {
      INFO("length " << n);
      message m = full;
      m.payload.resize(n);
      auto r = decode(m);
      if (r) {
        check_canonical(m, *r);
      } else {
        CHECK(is_bad(r));
      }
    }
  }
}

TEST_CASE("messages: trailing junk on fixed layouts is rejected", "[messages][garbage]") {
  for (const auto& original : samples()) {
    if (is_bulk(original)) continue;
    INFO(kind_name(original));
    auto m = encode(original);
    m.payload.push_back('\0');
    CHECK(is_bad(decode(m)));
  }
  // Bulk kinds: fields size larger than what the fields need.
  auto d = encode(conn_data{1, 2, 3, 4, "abcdef"});
  poke(d.payload, d.payload.size() - 4, 6, 4);  // fields now claim "f" too: 6 bytes
  CHECK(is_bad(decode(d)));
}

TEST_CASE("messages: lengths past the end are rejected", "[messages][garbage]") {
  auto o = encode(plain_open(1, 2, 3, "abc", 4));
  poke(o.payload, 12, 0xffffffff, 4);
  CHECK(is_bad(decode(o)));
  poke(o.payload, 12, 4, 4);
  CHECK(is_bad(decode(o)));

  auto d = encode(conn_data{1, 2, 3, 4, "abc"});
  poke(d.payload, d.payload.size() - 4, 0xffffffff, 4);
  CHECK(is_bad(decode(d)));
  poke(d.payload, d.payload.size() - 4, d.payload.size() - 3, 4);
  CHECK(is_bad(decode(d)));

  auto g = encode(datagram_in{1, 2, "from", "data"});
  poke(g.payload, 4 + 4, 0x7fffffff, 4);  // the `from` length inside the fields
  CHECK(is_bad(decode(g)));

  for (auto t : {message_type::receive, message_type::send, message_type::packet,
                 message_type::datagram_out, message_type::task, message_type::task_result,
                 message_type::pipe_message, message_type::connect, message_type::close,
                 message_type::conn_close, message_type::conn_bind, message_type::stop,
                 message_type::bus, message_type::bus_subscribe, message_type::conn_upgrade,
                 message_type::conn_adopt, message_type::group_op, message_type::group_send}) {
    message m;
    m.type = t;
    CHECK(is_bad(decode(m)));  // empty payload: too short for every kind with fields
  }
}

TEST_CASE("messages: bus messages with an unknown op, status or pick are rejected", "[messages][garbage]") {
  bus_message b;
  b.data = "x";
  auto good = encode(b);
  // Fields follow the 1-byte bulk: op, status, pick.
  for (std::size_t off : {1u, 2u, 3u}) {
    auto m = good;
    m.payload[off] = 9;
    CHECK(is_bad(decode(m)));
  }
  auto m = good;
  m.payload[4] = 2;  // self: a bool
  CHECK(is_bad(decode(m)));
  CHECK(decode(good));
}

TEST_CASE("messages: a bool byte other than 0 or 1 is rejected", "[messages][garbage]") {
  auto c = encode(conn_close{1, true});
  for (int b : {2, 0x80, 0xff}) {
    c.payload[0] = static_cast<char>(b);
    CHECK(is_bad(decode(c)));
  }
  auto cl = encode(conn_closed{1, 2, 3, true, "r"});
  cl.payload[4] = '\x02';
  CHECK(is_bad(decode(cl)));
  auto t = encode(task_request{1, 2, 3, 4, true, "payload"});
  t.payload[7 + 4] = '\x02';
  CHECK(is_bad(decode(t)));
}

TEST_CASE("messages: wrong type values are rejected", "[messages][garbage]") {
  const auto payload = encode(conn_data{1, 2, 3, 4, "abc"}).payload;
  for (int t = 0; t < 256; ++t) {
    message m;
    m.type = static_cast<message_type>(t);
    m.payload = payload;
    auto r = decode(m);
    if (r) {
      check_canonical(m, *r);
    } else {
      CHECK(is_bad(r));
    }
  }
  for (auto t : {message_type::none, message_type::control, message_type::stats,
                 message_type::bus,
                 message_type::user, static_cast<message_type>(23),
                 static_cast<message_type>(255)}) {
    message m;
    m.type = t;
    CHECK(is_bad(decode(m)));
  }
  CHECK(make_error_code(errc::bad_message).message() == "malformed message payload");
}

TEST_CASE("messages: random payloads never crash and decode canonically", "[messages][garbage]") {
  std::minstd_rand rng(7);
  for (int i = 0; i < 20000; ++i) {
    message m;
    m.type = static_cast<message_type>(rng() % 24);
    m.flags = rng() % 2 ? flag::error : 0;
    m.payload.resize(rng() % 40);
    for (auto& c : m.payload) c = static_cast<char>(rng() % 3 == 0 ? rng() % 3 : rng());
    auto r = decode(m);
    if (r) {
      check_canonical(m, *r);
    } else {
      REQUIRE(is_bad(r));
    }
  }
}

TEST_CASE("messages: through the link envelope and its decoder", "[messages][envelope]") {
  codec_options opts;
  opts.chunk_size = 1000;  // large samples travel chunked
  std::string stream;
  const auto all = samples();
  for (const auto& v : all) REQUIRE_FALSE(swactor::ipc::encode(encode(v), stream, opts));

  decoder dec(opts);
  std::vector<message> out;
  for (std::size_t off = 0; off < stream.size(); off += 777) {
    REQUIRE_FALSE(dec.feed(std::string_view(stream).substr(off, 777), out));
  }
  REQUIRE_FALSE(dec.finish());
  REQUIRE(out.size() == all.size());
  for (std::size_t i = 0; i < all.size(); ++i) {
    INFO(kind_name(all[i]));
    auto r = decode(std::move(out[i]));
    REQUIRE(r);
    CHECK(*r == all[i]);
  }
}

TEST_CASE("messages: conn_data and conn_send in pieces are the messages encode() makes", "[messages]") {
  for (std::string data : {std::string(), std::string("x"), std::string(5000, 'y')}) {
    auto d = pieces_of_conn_data(0x1122334455667788ull, 7, 3, 42, data).assemble();
    CHECK(d == encode(conn_data{0x1122334455667788ull, 7, 3, 42, data}));
    auto back = decode(std::move(d));
    REQUIRE(back);
    CHECK(std::get<conn_data>(*back) == conn_data{0x1122334455667788ull, 7, 3, 42, data});
    auto s = pieces_of_conn_send(99, 4, 200, data).assemble();
    CHECK(s == encode(conn_send{99, 4, 200, data}));
    std::string framed;
    REQUIRE(append_frame(pieces_of_conn_send(99, 4, 200, data), framed, {}));
    std::string whole;
    REQUIRE_FALSE(encode(encode(conn_send{99, 4, 200, data}), whole));
    CHECK(framed == whole);
  }
}

TEST_CASE("messages: conn_data and conn_send read in place equal decode()", "[messages]") {
  for (std::string data : {std::string(), std::string("x"), std::string(3000, 'd')}) {
    const conn_data in_d{77, 3, 2, 9, data};
    const auto md = encode(conn_data(in_d));
    CHECK(view_conn_data(view_of(md)) == conn_data_view{77, 3, 2, 9, data});
    const auto dd = decode(md);
    REQUIRE(dd);
    CHECK(*dd == any_message(in_d));
    CHECK_FALSE(view_conn_send(view_of(md)));  // another kind

    const conn_send in_s{88, 4, 5, data};
    const auto ms = encode(conn_send(in_s));
    CHECK(view_conn_send(view_of(ms)) == conn_send_view{88, 4, 5, data});
    const auto ds = decode(ms);
    REQUIRE(ds);
    CHECK(*ds == any_message(in_s));
    CHECK_FALSE(view_conn_data(view_of(ms)));
  }
  // Malformed trailers are refused in place as decode() refuses them.
  auto md = encode(conn_data{1, 2, 3, 4, "abc"});
  for (std::size_t cut : {std::size_t(0), std::size_t(2), md.payload.size() - 1}) {
    message bad = md;
    bad.payload.resize(cut);
    CHECK_FALSE(view_conn_data(view_of(bad)));
    CHECK_FALSE(decode(bad));
  }
  message extra = md;
  extra.payload[extra.payload.size() - 4] += 1;  // the fields claim one byte of the bulk: one too many
  CHECK_FALSE(view_conn_data(view_of(extra)));
  CHECK_FALSE(decode(extra));
}
