#include <catch2/catch.hpp>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "swactor/ipc/envelope.hpp"

using namespace swactor::ipc;

namespace {

message sample(std::uint64_t id, std::string payload) {
  message m;
  m.type = message_type::receive;
  m.flags = flag::error | 0x0100;
  m.reactor_id = 3;
  m.session_id = 0x0102030405060708ull + id;
  m.message_id = id;
  m.src_worker = 7;
  m.dst_worker = 9;
  m.payload = std::move(payload);
  return m;
}

std::string encoded(const message& m, const codec_options& opts = {}) {
  std::string out;
  REQUIRE_FALSE(encode(m, out, opts));
  return out;
}

std::string pattern(std::size_t n, unsigned seed = 1) {
  std::string s(n, '\0');
  std::minstd_rand rng(seed);
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// Splits an encoded stream into its frames (header + payload each).
std::vector<std::string> frames_of(const std::string& stream) {
  std::vector<std::string> out;
  std::size_t off = 0;
  while (off < stream.size()) {
    std::uint32_t len = 0;
    for (int i = 0; i < 4; ++i) len |= std::uint32_t(std::uint8_t(stream[off + 8 + i])) << (8 * i);
    out.push_back(stream.substr(off, header_size + len));
    off += header_size + len;
  }
  return out;
}

void poke(std::string& s, std::size_t off, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) s[off + i] = static_cast<char>(v >> (8 * i));
}

}  // namespace

TEST_CASE("envelope: header layout is the documented little-endian one", "[envelope]") {
  auto m = sample(0x1122, "hello");
  auto s = encoded(m);
  REQUIRE(s.size() == header_size + 5);
  CHECK(s[0] == 'S');
  CHECK(s[1] == 'W');
  CHECK(std::uint8_t(s[2]) == protocol_version);
  CHECK(std::uint8_t(s[3]) == std::uint8_t(message_type::receive));
  CHECK(std::uint8_t(s[4]) == 0x08);  // flag::error
  CHECK(std::uint8_t(s[5]) == 0x01);  // user bit 0x0100
  CHECK(std::uint8_t(s[8]) == 5);
  CHECK(std::uint8_t(s[12]) == 3);
  CHECK(std::uint8_t(s[24]) == 0x22);
  CHECK(std::uint8_t(s[25]) == 0x11);
  CHECK(std::uint8_t(s[32]) == 7);
  CHECK(std::uint8_t(s[36]) == 9);
  CHECK(std::uint8_t(s[40]) == 5);
  CHECK(s.substr(header_size) == "hello");
  CHECK(encoded_size(5) == s.size());
}

TEST_CASE("envelope: round trip keeps every field", "[envelope]") {
  decoder dec;
  std::vector<message> out;
  auto m = sample(42, "payload bytes \0 with nul");
  m.type = static_cast<message_type>(200);  // unknown types pass through
  REQUIRE_FALSE(dec.feed(encoded(m), out));
  REQUIRE(out.size() == 1);
  CHECK(out[0] == m);
  CHECK(out[0].has_error());
  CHECK(dec.idle());
  CHECK(dec.messages_decoded() == 1);
  CHECK_FALSE(dec.finish());
}

TEST_CASE("envelope: empty payloads", "[envelope]") {
  decoder dec;
  std::vector<message> out;
  message m;
  m.type = message_type::close;
  m.session_id = 5;
  REQUIRE_FALSE(dec.feed(encoded(m) + encoded(m), out));
  REQUIRE(out.size() == 2);
  CHECK(out[1] == m);
}

TEST_CASE("envelope: byte-at-a-time feeding, chunked and unchunked", "[envelope]") {
  codec_options opts;
  opts.chunk_size = 7;
  std::vector<message> sent;
  std::string stream;
  for (int i = 0; i < 20; ++i) {
    sent.push_back(sample(i, pattern(i * 5, i)));  // some fit one chunk, most are chunked
    stream += encoded(sent.back(), opts);
  }
  decoder dec(opts);
  std::vector<message> out;
  for (char c : stream) {
    REQUIRE_FALSE(dec.feed(std::string_view(&c, 1), out));
  }
  REQUIRE(out.size() == sent.size());
  for (std::size_t i = 0; i < sent.size(); ++i) CHECK(out[i] == sent[i]);
  CHECK(dec.idle());
  CHECK(dec.bytes_consumed() == stream.size());
}

TEST_CASE("envelope: hundreds of messages in one feed", "[envelope]") {
  std::string stream;
  for (int i = 0; i < 500; ++i) stream += encoded(sample(i, "msg " + std::to_string(i)));
  decoder dec;
  std::vector<message> out;
  REQUIRE_FALSE(dec.feed(stream, out));
  REQUIRE(out.size() == 500);
  for (int i = 0; i < 500; ++i) {
    CHECK(out[i].message_id == std::uint64_t(i));
    CHECK(out[i].payload == "msg " + std::to_string(i));
  }
}

TEST_CASE("envelope: an 8 MiB message is chunked and arrives whole, byte-exact", "[envelope]") {
  const std::string big = pattern(8 * 1024 * 1024 + 13, 99);
  auto m = sample(1, big);
  encoder enc;
  REQUIRE_FALSE(enc.append(m));
  const std::size_t chunks = (big.size() + 65535) / 65536;
  CHECK(enc.frames() == chunks);
  CHECK(enc.size() == encoded_size(big.size()));
  // Large chunks are referenced, not copied.
  bool referenced = false;
  for (auto b : enc.buffers()) {
    if (reinterpret_cast<const char*>(b.data()) == m.payload.data() + 65536) referenced = true;
  }
  CHECK(referenced);
  std::string stream;
  for (auto b : enc.buffers()) stream.append(reinterpret_cast<const char*>(b.data()), b.size());

  // Feed in irregular slices; nothing may come out before the last byte.
  decoder dec;
  std::vector<message> out;
  std::minstd_rand rng(7);
  std::size_t off = 0;
  while (off < stream.size()) {
    std::size_t n = std::min<std::size_t>(stream.size() - off, 1 + rng() % 100000);
    REQUIRE_FALSE(dec.feed(std::string_view(stream).substr(off, n), out));
    off += n;
    if (off < stream.size()) REQUIRE(out.empty());
  }
  REQUIRE(out.size() == 1);
  CHECK(out[0].payload.size() == big.size());
  CHECK(out[0].payload == big);
  CHECK(out[0].flags == m.flags);  // chunk bits stripped, the rest kept
  CHECK(dec.partial_messages() == 0);
}

TEST_CASE("envelope: interleaved chunked messages reassemble by source and id", "[envelope]") {
  codec_options opts;
  opts.chunk_size = 10;
  auto a = sample(1, pattern(95, 1));
  auto b = sample(2, pattern(64, 2));
  auto c = sample(1, pattern(33, 3));
  c.src_worker = 8;  // same message id, other source
  auto small = sample(3, "tiny");
  auto fa = frames_of(encoded(a, opts));
  auto fb = frames_of(encoded(b, opts));
  auto fc = frames_of(encoded(c, opts));
  REQUIRE(fa.size() == 10);
  std::string stream;
  for (std::size_t i = 0; i < 10; ++i) {
    if (i < fc.size()) stream += fc[i];
    if (i < fb.size()) stream += fb[i];
    stream += fa[i];
    if (i == 2) stream += encoded(small, opts);
  }
  decoder dec(opts);
  std::vector<message> out;
  REQUIRE_FALSE(dec.feed(stream, out));
  REQUIRE(out.size() == 4);
  CHECK(out[0] == small);
  CHECK(out[1] == c);  // 4 chunks
  CHECK(out[2] == b);  // 7 chunks
  CHECK(out[3] == a);  // 10 chunks
}

TEST_CASE("envelope: encoder gathers many small messages into one buffer", "[envelope]") {
  encoder enc;
  std::vector<message> msgs;
  for (int i = 0; i < 100; ++i) msgs.push_back(sample(i, "small"));
  for (auto& m : msgs) REQUIRE_FALSE(enc.append(m));
  CHECK(enc.buffers().size() == 1);
  CHECK(enc.frames() == 100);
  auto big = sample(100, std::string(10000, 'x'));
  REQUIRE_FALSE(enc.append(big));
  enc.append(msgs[0]);
  CHECK(enc.buffers().size() == 3);  // arena, referenced payload, arena
  enc.clear();
  CHECK(enc.empty());
  CHECK(enc.buffers().empty());
}

TEST_CASE("envelope: oversized messages are refused by the encoder", "[envelope]") {
  codec_options opts;
  opts.max_message_size = 100;
  encoder enc(opts);
  CHECK(enc.append(sample(1, std::string(101, 'x'))) == errc::message_too_large);
  CHECK(enc.empty());
  std::string out;
  CHECK(encode(sample(1, std::string(101, 'x')), out, opts) == errc::message_too_large);
}

namespace {
// Feeds `stream` and expects error `e`; returns the decoder for further checks.
decoder expect_error(const std::string& stream, errc e, codec_options opts = {},
                     std::size_t good = 0) {
  decoder dec(opts);
  std::vector<message> out;
  auto ec = dec.feed(stream, out);
  INFO(dec.reason());
  CHECK(ec == e);
  CHECK(dec.failed());
  CHECK(dec.error() == e);
  CHECK_FALSE(dec.reason().empty());
  CHECK(out.size() == good);
  // Sticky: more (even valid) input is refused with the same error.
  std::vector<message> more;
  CHECK(dec.feed(encoded(sample(1, "ok")), more) == e);
  CHECK(more.empty());
  return dec;
}
}  // namespace

TEST_CASE("envelope: every decoder error class", "[envelope]") {
  const auto good = encoded(sample(1, "abc"));

  SECTION("bad magic, after the good messages before it") {
    std::string bad = good;
    bad[0] = 'X';
    auto dec = expect_error(good + good + bad, errc::bad_magic, {}, 2);
    CHECK(dec.reason().find("offset 102") != std::string::npos);
  }
  SECTION("garbage text") {
    expect_error("GET / HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n", errc::bad_magic);
  }
  SECTION("bad version") {
    std::string bad = good;
    bad[2] = 9;
    expect_error(bad, errc::bad_version);
  }
  SECTION("several chunk bits") {
    std::string bad = good;
    poke(bad, 4, flag::chunk_begin | flag::chunk_end, 2);
    expect_error(bad, errc::bad_flags);
  }
  SECTION("unchunked total differs from length") {
    std::string bad = good;
    poke(bad, 40, 4, 8);
    expect_error(bad, errc::bad_length);
  }
  SECTION("frame too large: rejected from the header alone") {
    codec_options opts;
    opts.max_frame_size = 1000;
    std::string bad = good.substr(0, header_size);
    poke(bad, 8, 1001, 4);
    poke(bad, 40, 1001, 8);
    expect_error(bad, errc::frame_too_large, opts);
  }
  SECTION("message too large: the announced total is over max_message_size") {
    codec_options opts;
    opts.chunk_size = 16;
    auto frames = frames_of(encoded(sample(1, pattern(64)), opts));
    codec_options small = opts;
    small.max_message_size = 63;
    expect_error(frames[0], errc::message_too_large, small);
  }
  SECTION("chunk_continue without chunk_begin") {
    codec_options opts;
    opts.chunk_size = 16;
    auto frames = frames_of(encoded(sample(1, pattern(64)), opts));
    expect_error(frames[1], errc::chunk_out_of_order, opts);
  }
  SECTION("duplicate chunk_begin") {
    codec_options opts;
    opts.chunk_size = 16;
    auto frames = frames_of(encoded(sample(1, pattern(64)), opts));
    expect_error(frames[0] + frames[0], errc::chunk_out_of_order, opts);
  }
  SECTION("a chunk that changes the message type") {
    codec_options opts;
    opts.chunk_size = 16;
    auto frames = frames_of(encoded(sample(1, pattern(64)), opts));
    frames[1][3] = static_cast<char>(message_type::task);
    expect_error(frames[0] + frames[1], errc::chunk_out_of_order, opts);
  }
  SECTION("chunk_end before the total is reached") {
    codec_options opts;
    opts.chunk_size = 16;
    auto frames = frames_of(encoded(sample(1, pattern(64)), opts));
    expect_error(frames[0] + frames[3], errc::bad_length, opts);
  }
  SECTION("too many partial messages") {
    codec_options opts;
    opts.chunk_size = 16;
    opts.max_partial = 3;
    std::string stream;
    for (int i = 0; i < 4; ++i) stream += frames_of(encoded(sample(i, pattern(64)), opts))[0];
    expect_error(stream, errc::too_many_partial, opts);
  }
  SECTION("too many partial bytes") {
    codec_options opts;
    opts.chunk_size = 16;
    opts.max_partial_bytes = 40;
    std::string stream;
    for (int i = 0; i < 3; ++i) stream += frames_of(encoded(sample(i, pattern(64)), opts))[0];
    expect_error(stream, errc::too_many_partial, opts);
  }
}

TEST_CASE("envelope: truncated streams are reported by finish()", "[envelope]") {
  const auto good = encoded(sample(1, "abcdef"));
  std::vector<message> out;
  SECTION("inside a header") {
    decoder dec;
    REQUIRE_FALSE(dec.feed(good.substr(0, 10), out));
    CHECK_FALSE(dec.idle());
    CHECK(dec.finish() == errc::truncated);
  }
  SECTION("inside a payload") {
    decoder dec;
    REQUIRE_FALSE(dec.feed(good.substr(0, good.size() - 1), out));
    CHECK(dec.finish() == errc::truncated);
  }
  SECTION("between chunks") {
    codec_options opts;
    opts.chunk_size = 2;
    decoder dec(opts);
    auto frames = frames_of(encoded(sample(1, "abcdef"), opts));
    REQUIRE_FALSE(dec.feed(frames[0], out));
    CHECK(dec.partial_messages() == 1);
    CHECK(dec.finish() == errc::truncated);
  }
  CHECK(out.empty());
}

TEST_CASE("envelope: reset clears a failed decoder", "[envelope]") {
  decoder dec;
  std::vector<message> out;
  REQUIRE(dec.feed(std::string(48, 'z'), out));
  dec.reset();
  CHECK_FALSE(dec.failed());
  REQUIRE_FALSE(dec.feed(encoded(sample(1, "again")), out));
  CHECK(out.size() == 1);
}

TEST_CASE("envelope: error codes have the ipc category and readable messages", "[envelope]") {
  std::error_code ec = errc::chunk_out_of_order;
  CHECK(ec.category() == ipc_category());
  CHECK(std::string(ec.category().name()) == "swactor.ipc");
  CHECK(ec.message() == "chunk out of order");
  CHECK(type_name(message_type::task_result) == "task_result");
}

TEST_CASE("envelope: append_frame writes the encoder's bytes, and refuses what needs chunks", "[envelope]") {
  codec_options opts;
  opts.chunk_size = 100;
  std::string direct;
  std::string via_encoder;
  for (std::size_t n : {0, 1, 47, 48, 99, 100}) {
    auto m = sample(n, pattern(n, static_cast<unsigned>(n + 1)));
    m.flags = flag::error | 0x0300;
    REQUIRE(append_frame(m, direct, opts));
    via_encoder += encoded(m, opts);
  }
  CHECK(direct == via_encoder);
  const auto before = direct;
  CHECK_FALSE(append_frame(sample(1, pattern(101)), direct, opts));  // two frames' worth
  opts.max_message_size = 10;
  CHECK_FALSE(append_frame(sample(1, pattern(11)), direct, opts));
  CHECK(direct == before);  // nothing appended
}

TEST_CASE("envelope: whole frames in one feed decode as the same bytes split anywhere", "[envelope]") {
  // Whole frames take the decoder's direct path, split ones the general one: same messages,
  // same counters, and an error after them at the same offset.
  codec_options opts;
  opts.chunk_size = 64;
  std::string stream;
  std::vector<message> sent;
  for (std::uint64_t i = 0; i < 12; ++i) {
    sent.push_back(sample(i, pattern(i % 3 == 0 ? 150 : i * 5, static_cast<unsigned>(i + 7))));
    stream += encoded(sent.back(), opts);
  }
  std::string bad = encoded(sample(99, "x"), opts);
  bad[1] = 'Z';
  stream += bad;
  for (std::size_t cut = 0; cut <= stream.size(); cut += 7) {
    decoder dec(opts);
    std::vector<message> got;
    auto e1 = dec.feed(std::string_view(stream).substr(0, cut), got);
    auto e2 = e1 ? e1 : dec.feed(std::string_view(stream).substr(cut), got);
    INFO("split at " << cut);
    CHECK(e2 == errc::bad_magic);
    REQUIRE(got.size() == sent.size());
    for (std::size_t i = 0; i < sent.size(); ++i) CHECK(got[i] == sent[i]);
    CHECK(dec.messages_decoded() == sent.size());
    CHECK(dec.bytes_consumed() == stream.size() - bad.size());
    CHECK(dec.reason().find("offset " + std::to_string(stream.size() - bad.size())) != std::string::npos);
  }
}

TEST_CASE("decoder: a view sink takes whole frames in place and the order of all frames is kept", "[envelope]") {
  // Frames of two types; the sink takes only pipe_message ones. A frame after one that went
  // to `out` must go to `out` too (it would otherwise be handled before its predecessor).
  auto frame = [](message_type t, std::uint64_t id, std::string payload) {
    message m;
    m.type = t;
    m.message_id = id;
    m.session_id = 1000 + id;
    m.payload = std::move(payload);
    return m;
  };
  std::vector<message> sent = {frame(message_type::pipe_message, 1, "one"), frame(message_type::pipe_message, 2, ""),
                               frame(message_type::stop, 3, "three"), frame(message_type::pipe_message, 4, "four"),
                               frame(message_type::pipe_message, 5, std::string(5000, 'x'))};
  std::string wire;
  for (const auto& m : sent) REQUIRE_FALSE(encode(m, wire));

  struct taken_log {
    std::vector<std::pair<std::uint64_t, std::string>> seen;
    std::size_t offered = 0;
  } log;
  view_sink sink{[](void* ctx, const message_view& v) {
                   auto* l = static_cast<taken_log*>(ctx);
                   ++l->offered;
                   if (v.type != message_type::pipe_message) return false;
                   l->seen.emplace_back(v.message_id + v.session_id * 0, std::string(v.payload));
                   return true;
                 },
                 &log};
  decoder d;
  std::vector<message> out;
  REQUIRE_FALSE(d.feed(std::as_bytes(std::span(wire.data(), wire.size())), out, sink));
  REQUIRE(log.seen.size() == 2);
  CHECK(log.seen[0] == std::pair<std::uint64_t, std::string>{1, "one"});
  CHECK(log.seen[1] == std::pair<std::uint64_t, std::string>{2, ""});
  CHECK(log.offered == 3);  // 1, 2 taken; 3 declined; 4 and 5 not offered (3 waits in out)
  REQUIRE(out.size() == 3);
  CHECK(out[0] == sent[2]);
  CHECK(out[1] == sent[3]);
  CHECK(out[2] == sent[4]);
  CHECK(d.messages_decoded() == 5);

  // Split at every byte: only frames that lie whole in one feed are offered; everything
  // still arrives once, in order.
  for (std::size_t cut = 1; cut < wire.size(); cut += 97) {
    decoder d2;
    taken_log l2;
    view_sink s2{sink.fn, &l2};
    std::vector<message> out2;
    REQUIRE_FALSE(d2.feed(std::as_bytes(std::span(wire.data(), cut)), out2, s2));
    std::vector<std::uint64_t> order;
    for (auto& [id, p] : l2.seen) order.push_back(id);
    for (auto& m : out2) order.push_back(m.message_id);
    out2.clear();
    l2.seen.clear();
    REQUIRE_FALSE(d2.feed(std::as_bytes(std::span(wire.data() + cut, wire.size() - cut)), out2, s2));
    for (auto& [id, p] : l2.seen) order.push_back(id);
    for (auto& m : out2) order.push_back(m.message_id);
    INFO("cut " << cut);
    CHECK(order == std::vector<std::uint64_t>{1, 2, 3, 4, 5});
  }
}
