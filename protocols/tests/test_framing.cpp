#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "swactor/protocols/framing.hpp"

using namespace swactor::protocols;

namespace {

framing_options eof_opts(std::string delim, std::size_t max = 2 * 1024 * 1024) {
  framing_options o;
  o.type = framing_type::eof;
  o.eof = std::move(delim);
  o.max_length = max;
  return o;
}

framing_options length_opts(std::size_t size, bool is_signed, byte_order order,
                            std::size_t offset, std::size_t body_offset) {
  framing_options o;
  o.type = framing_type::length;
  o.length_size = size;
  o.length_signed = is_signed;
  o.length_order = order;
  o.length_offset = offset;
  o.body_offset = body_offset;
  return o;
}

std::string encode_len(std::uint64_t v, std::size_t size, byte_order order) {
  std::string s(size, '\0');
  for (std::size_t i = 0; i < size; ++i) {
    auto byte = static_cast<char>(v >> (8 * i));
    s[order == byte_order::little ? i : size - 1 - i] = byte;
  }
  return s;
}

// A length frame: `offset` bytes of prefix, the length field, padding up to body_offset,
// then the body.
std::string length_frame(const framing_options& o, const std::string& body) {
  std::string prefix(o.length_offset, 'P');
  std::string frame = prefix + encode_len(body.size(), o.length_size, o.length_order);
  frame.resize(o.body_offset, 'h');
  return frame + body;
}

std::vector<std::string> feed_all(framer& f, std::string_view bytes) {
  std::vector<std::string> out;
  REQUIRE_FALSE(f.feed(bytes, out));
  return out;
}

std::vector<std::string> feed_bytewise(framer& f, std::string_view bytes) {
  std::vector<std::string> out;
  for (char c : bytes) REQUIRE_FALSE(f.feed(std::string_view(&c, 1), out));
  return out;
}

}  // namespace

TEST_CASE("framing: raw hands bytes over as they arrive", "[framing]") {
  framer f;
  CHECK(feed_all(f, "abc") == std::vector<std::string>{"abc"});
  CHECK(feed_all(f, "").empty());
  CHECK(feed_all(f, "d") == std::vector<std::string>{"d"});
  CHECK(f.buffered() == 0);
}

TEST_CASE("framing: eof splits on the delimiter and keeps it", "[framing]") {
  framer f(eof_opts("\r\n"));
  CHECK(feed_all(f, "one\r\ntwo\r\nthr") == std::vector<std::string>{"one\r\n", "two\r\n"});
  CHECK(f.buffered() == 3);
  CHECK(feed_all(f, "ee\r") .empty());
  CHECK(feed_all(f, "\n\r\n") == std::vector<std::string>{"three\r\n", "\r\n"});
}

TEST_CASE("framing: eof views stay valid until the next feed", "[framing]") {
  framer f(eof_opts("|"));
  REQUIRE_FALSE(f.feed("a|bb|ccc|dd"));
  std::vector<std::string_view> views;
  while (auto m = f.next()) views.push_back(*m);
  REQUIRE(views.size() == 3);
  CHECK(views[0] == "a|");
  CHECK(views[1] == "bb|");
  CHECK(views[2] == "ccc|");
  CHECK(f.buffered() == 2);
}

TEST_CASE("framing: a multi-byte delimiter split across feeds at every position",
          "[framing]") {
  const std::string delim = "\r\n\r\n";
  const std::string stream = "HEAD /a\r\nX: y" + delim + "second" + delim + "\r\n\r" + delim;
  const std::vector<std::string> want{"HEAD /a\r\nX: y\r\n\r\n", "second\r\n\r\n",
                                      "\r\n\r\r\n\r\n"};
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    for (std::size_t cut2 = cut; cut2 <= stream.size(); cut2 += 3) {
      framer f(eof_opts(delim));
      auto out = feed_all(f, std::string_view(stream).substr(0, cut));
      auto more = feed_all(f, std::string_view(stream).substr(cut, cut2 - cut));
      out.insert(out.end(), more.begin(), more.end());
      more = feed_all(f, std::string_view(stream).substr(cut2));
      out.insert(out.end(), more.begin(), more.end());
      INFO("cuts at " << cut << ", " << cut2);
      REQUIRE(out == want);
    }
  }
  framer f(eof_opts(delim));
  CHECK(feed_bytewise(f, stream) == want);
}

TEST_CASE("framing: delimiters with a repeated prefix", "[framing]") {
  framer f(eof_opts("aab"));
  CHECK(feed_bytewise(f, "xaaab" "aab" "aaaab") ==
        std::vector<std::string>{"xaaab", "aab", "aaaab"});
  framer g(eof_opts("12345678"));  // 8 bytes: the maximum
  CHECK(feed_bytewise(g, "x1234567123456781234567812345678") ==
        std::vector<std::string>{"x123456712345678", "12345678", "12345678"});
}

TEST_CASE("framing: hundreds of eof messages in one feed", "[framing]") {
  std::string stream;
  for (int i = 0; i < 1000; ++i) stream += "message " + std::to_string(i) + "\n";
  framer f(eof_opts("\n"));
  auto out = feed_all(f, stream);
  REQUIRE(out.size() == 1000);
  CHECK(out[999] == "message 999\n");
}

TEST_CASE("framing: eof limits", "[framing]") {
  SECTION("a message of exactly max_length passes") {
    framer f(eof_opts("\r\n", 10));
    CHECK(feed_all(f, "12345678\r\n") == std::vector<std::string>{"12345678\r\n"});
  }
  SECTION("max_length buffered without a delimiter") {
    framer f(eof_opts("\r\n", 10));
    std::vector<std::string> out;
    CHECK_FALSE(f.feed("123456789", out));
    CHECK(f.feed("\r", out) == framing_errc::eof_not_found);
    CHECK(f.failed());
    CHECK(f.reason().find("\\r\\n") != std::string::npos);
    CHECK(f.feed("\nok\r\n", out) == framing_errc::eof_not_found);  // sticky
    CHECK(out.empty());
    CHECK_FALSE(f.next());
  }
  SECTION("a delimiter found beyond max_length") {
    framer f(eof_opts("\n", 10));
    std::vector<std::string> out;
    CHECK(f.feed("ok\n0123456789abc\n", out) == framing_errc::frame_too_large);
    CHECK(out == std::vector<std::string>{"ok\n"});
  }
  SECTION("reset makes the framer usable again") {
    framer f(eof_opts("\n", 4));
    std::vector<std::string> out;
    CHECK(f.feed("toolong", out));
    f.reset();
    CHECK_FALSE(f.failed());
    CHECK(feed_all(f, "ok\n") == std::vector<std::string>{"ok\n"});
  }
}

TEST_CASE("framing: a large eof buffer fed byte by byte stays linear", "[framing]") {
  framer f(eof_opts("\r\n\r\n", 4 * 1024 * 1024));
  const std::size_t n = 2 * 1024 * 1024;
  auto start = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < n; ++i) {
    char c = static_cast<char>('a' + i % 13);
    REQUIRE_FALSE(f.feed(std::string_view(&c, 1)));
    if (f.next()) FAIL("unexpected message");
  }
  std::vector<std::string> out;
  REQUIRE_FALSE(f.feed("\r\n\r\nnext", out));
  auto took = std::chrono::steady_clock::now() - start;
  REQUIRE(out.size() == 1);
  CHECK(out[0].size() == n + 4);
  CHECK(f.buffered() == 4);
  // Not a speed check (sanitizer builds and a loaded CI machine take seconds here): a rescan
  // per byte would take hours, so only a bound that far out is asserted.
  CHECK(took < std::chrono::seconds(120));
}

TEST_CASE("framing: length fields of every size, sign and byte order", "[framing]") {
  for (std::size_t size : {1, 2, 4, 8}) {
    for (bool is_signed : {false, true}) {
      for (auto order : {byte_order::big, byte_order::little}) {
        for (std::size_t offset : {0, 3}) {
          auto o = length_opts(size, is_signed, order, offset, offset + size + 2);
          INFO("size " << size << " signed " << is_signed << " little "
                       << (order == byte_order::little) << " offset " << offset);
          REQUIRE(o.validate().empty());
          std::vector<std::string> bodies{"", "x", std::string(100, 'b'),
                                          std::string(size == 1 ? 127 : 3000, 'c')};
          std::string stream;
          std::vector<std::string> want;
          for (auto& b : bodies) {
            want.push_back(length_frame(o, b));
            stream += want.back();
          }
          framer whole(o);
          CHECK(feed_all(whole, stream) == want);
          framer bytes(o);
          CHECK(feed_bytewise(bytes, stream) == want);
          CHECK(bytes.buffered() == 0);
        }
      }
    }
  }
}

TEST_CASE("framing: body_offset 0 means the length counts the whole frame", "[framing]") {
  auto o = length_opts(2, false, byte_order::big, 0, 0);
  REQUIRE(o.validate().empty());
  framer f(o);
  std::string frame = encode_len(7, 2, byte_order::big) + "hello";
  CHECK(feed_all(f, frame + frame) == std::vector<std::string>{frame, frame});
  // A frame shorter than its own length field cannot make progress.
  framer g(o);
  std::vector<std::string> out;
  CHECK(g.feed(encode_len(1, 2, byte_order::big), out) == framing_errc::bad_length);
}

TEST_CASE("framing: negative lengths in signed fields", "[framing]") {
  for (std::size_t size : {1, 2, 4, 8}) {
    for (auto order : {byte_order::big, byte_order::little}) {
      auto o = length_opts(size, true, order, 1, 1 + size);
      framer f(o);
      std::vector<std::string> out;
      std::string frame(1, 'P');
      frame += encode_len(static_cast<std::uint64_t>(-5), size, order);
      frame += "xx";
      INFO("size " << size);
      CHECK(f.feed(frame, out) == framing_errc::negative_length);
      CHECK(f.reason().find("-5") != std::string::npos);
      CHECK(out.empty());
      // The same bits unsigned are just a large length.
      o.length_signed = false;
      o.max_length = 200;
      framer u(o);
      CHECK(u.feed(frame, out) == framing_errc::frame_too_large);
    }
  }
}

TEST_CASE("framing: frames over max_length are refused from the header", "[framing]") {
  auto o = length_opts(4, false, byte_order::big, 0, 4);
  o.max_length = 1000;
  SECTION("just fits") {
    framer f(o);
    std::string frame = encode_len(996, 4, byte_order::big) + std::string(996, 'z');
    CHECK(feed_all(f, frame) == std::vector<std::string>{frame});
  }
  SECTION("one byte too many") {
    framer f(o);
    std::vector<std::string> out;
    CHECK(f.feed(encode_len(997, 4, byte_order::big), out) == framing_errc::frame_too_large);
    CHECK(f.reason().find("1001") != std::string::npos);
  }
  SECTION("a length near 2^64 does not overflow") {
    auto o8 = length_opts(8, false, byte_order::little, 0, 8);
    framer f(o8);
    std::vector<std::string> out;
    CHECK(f.feed(encode_len(~0ull, 8, byte_order::little), out) ==
          framing_errc::frame_too_large);
  }
  SECTION("a good frame before a bad one is still delivered") {
    framer f(o);
    std::vector<std::string> out;
    std::string good = encode_len(2, 4, byte_order::big) + "ok";
    CHECK(f.feed(good + encode_len(5000, 4, byte_order::big), out) ==
          framing_errc::frame_too_large);
    CHECK(out == std::vector<std::string>{good});
  }
}

TEST_CASE("framing: Swoole package_length_type letters", "[framing]") {
  framing_options o;
  REQUIRE(o.set_length_type("N"));
  CHECK((o.length_size == 4 && !o.length_signed && o.length_order == byte_order::big));
  REQUIRE(o.set_length_type("v"));
  CHECK((o.length_size == 2 && !o.length_signed && o.length_order == byte_order::little));
  REQUIRE(o.set_length_type("c"));
  CHECK((o.length_size == 1 && o.length_signed));
  REQUIRE(o.set_length_type("J"));
  CHECK((o.length_size == 8 && !o.length_signed && o.length_order == byte_order::big));
  REQUIRE(o.set_length_type("q"));
  CHECK((o.length_size == 8 && o.length_signed));
  CHECK_FALSE(o.set_length_type("x"));
  CHECK_FALSE(o.set_length_type("NN"));
  CHECK(o.length_size == 8);  // unchanged by the failures
}

TEST_CASE("framing: validate() lists every problem", "[framing]") {
  CHECK(framing_options{}.validate().empty());
  CHECK(eof_opts("\r\n").validate().empty());
  CHECK(eof_opts("").validate().size() == 1);
  CHECK(eof_opts("123456789").validate().size() == 1);
  CHECK(eof_opts("\r\n", 1).validate().size() == 1);
  CHECK(eof_opts("\r\n", 0).validate().size() == 1);

  auto o = length_opts(3, false, byte_order::big, 2, 4);
  auto problems = o.validate();
  REQUIRE(problems.size() == 2);  // size 3, body_offset inside the header (ends at 5)
  CHECK(problems[0].find("length_size") != std::string::npos);
  CHECK(problems[1].find("body_offset") != std::string::npos);
  auto small = length_opts(4, false, byte_order::big, 10, 14);
  small.max_length = 12;
  CHECK(small.validate().size() == 2);  // max_length below the header and body_offset

  framer f(o);
  CHECK(f.failed());
  CHECK(f.error() == framing_errc::invalid_options);
  CHECK(f.reason().find("length_size") != std::string::npos);
  f.reset();
  CHECK(f.error() == framing_errc::invalid_options);  // bad options stay bad
  std::vector<std::string> out;
  CHECK(f.feed("abc", out) == framing_errc::invalid_options);
}

TEST_CASE("framing: error codes have the framing category", "[framing]") {
  std::error_code ec = framing_errc::negative_length;
  CHECK(std::string(ec.category().name()) == "swactor.framing");
  CHECK(ec.message() == "negative length field");
}

TEST_CASE("framing: frame_size cuts in place as the framer does", "[framing]") {
  std::error_code ec;
  // length: the size is known from the header, before the body is there.
  auto lo = length_opts(2, false, byte_order::little, 1, 4);
  const auto frame = length_frame(lo, "hello");
  CHECK(frame_size(lo, std::string_view(frame).substr(0, 2), ec) == 0);
  CHECK_FALSE(ec);
  CHECK(frame_size(lo, std::string_view(frame).substr(0, 3), ec) == frame.size());
  CHECK(frame_size(lo, frame + "next", ec) == frame.size());
  CHECK_FALSE(ec);

  // The same refusals as the framer, with its reason.
  auto neg = length_opts(1, true, byte_order::big, 0, 1);
  std::string why;
  CHECK(frame_size(neg, std::string("\xff", 1), ec, &why) == 0);
  CHECK(ec == framing_errc::negative_length);
  framer f(neg);
  CHECK(f.feed(std::string("\xff", 1)) == std::error_code{});
  CHECK_FALSE(f.next());
  CHECK(f.error() == ec);
  CHECK(f.reason() == why);

  auto small = length_opts(4, false, byte_order::big, 0, 4);
  small.max_length = 16;
  CHECK(frame_size(small, encode_len(13, 4, byte_order::big), ec) == 0);
  CHECK(ec == framing_errc::frame_too_large);
  CHECK(frame_size(small, encode_len(12, 4, byte_order::big), ec) == 16);
  CHECK_FALSE(ec);

  // eof: up to and with the delimiter; nothing yet without one.
  auto eo = eof_opts("\r\n", 8);
  CHECK(frame_size(eo, "ab\r\ncd\r\n", ec) == 4);
  CHECK(frame_size(eo, "abc", ec) == 0);
  CHECK_FALSE(ec);
  CHECK(frame_size(eo, "abcdefgh", ec) == 0);
  CHECK(ec == framing_errc::eof_not_found);

  framing_options raw;
  CHECK(frame_size(raw, "xyz", ec) == 3);
}
