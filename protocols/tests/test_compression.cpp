// HTTP content codings: round trips through every coding (whole, piecewise, flushed), the
// bounded decoders (bombs stop at the limit, truncated and trailing data are corrupt),
// Accept-Encoding negotiation and the content-type policy.
#include <catch2/catch.hpp>
#include <zlib.h>

#include <string>

#include "swactor/protocols/compression.hpp"

namespace cz = swactor::protocols::compression;
using cz::coding;
using cz::decode_status;

namespace {

std::string sample(std::size_t n) {
  std::string s;
  std::uint32_t x = 12345;
  while (s.size() < n) {
    x = x * 1103515245 + 12345;
    s += "{\"id\":" + std::to_string(x % 1000) + ",\"name\":\"item\"},";
  }
  s.resize(n);
  return s;
}

std::string decode_all(coding c, std::string_view in, std::uint64_t max = 1u << 30) {
  auto d = cz::make_decoder(c, max);
  std::string out;
  REQUIRE(d->feed(in, out) == decode_status::ok);
  REQUIRE(d->finish() == decode_status::ok);
  return out;
}

}  // namespace

TEST_CASE("compression: tokens", "[compression]") {
  CHECK(cz::parse_coding("GZIP") == coding::gzip);
  CHECK(cz::parse_coding("x-gzip") == coding::gzip);
  CHECK(cz::parse_coding(" br ") == coding::br);
  CHECK(cz::parse_coding("deflate") == coding::deflate);
  CHECK(cz::parse_coding("identity") == coding::identity);
  CHECK_FALSE(cz::parse_coding("zstd"));
  CHECK(cz::to_string(coding::br) == "br");
}

TEST_CASE("compression: round trips", "[compression]") {
  for (auto c : {coding::gzip, coding::deflate, coding::br}) {
    for (std::size_t n : {0u, 1u, 100u, 10'000u, 300'000u}) {
      INFO(cz::to_string(c) << " " << n);
      auto in = sample(n);
      auto z = cz::compress(c, c == coding::br ? 4 : 6, in);
      if (n >= 10'000) CHECK(z.size() < n / 2);
      CHECK(decode_all(c, z) == in);
      // The decoder fed byte by byte agrees.
      auto d = cz::make_decoder(c, 1u << 30);
      std::string out;
      for (char ch : z) REQUIRE(d->feed(std::string_view(&ch, 1), out) == decode_status::ok);
      CHECK(d->finish() == decode_status::ok);
      CHECK(out == in);
      CHECK(d->produced() == n);
    }
  }
}

TEST_CASE("compression: gzip is readable by zlib's own gunzip", "[compression]") {
  auto in = sample(5000);
  auto z = cz::compress(coding::gzip, 1, in);
  REQUIRE(z.size() > 10);
  CHECK(static_cast<unsigned char>(z[0]) == 0x1f);
  CHECK(static_cast<unsigned char>(z[1]) == 0x8b);
  std::string out(in.size(), '\0');
  z_stream s{};
  REQUIRE(inflateInit2(&s, 15 + 16) == Z_OK);
  s.next_in = reinterpret_cast<Bytef*>(z.data());
  s.avail_in = static_cast<uInt>(z.size());
  s.next_out = reinterpret_cast<Bytef*>(out.data());
  s.avail_out = static_cast<uInt>(out.size());
  CHECK(inflate(&s, Z_FINISH) == Z_STREAM_END);
  inflateEnd(&s);
  CHECK(out == in);
}

TEST_CASE("compression: a flush makes everything so far decodable", "[compression]") {
  for (auto c : {coding::gzip, coding::deflate, coding::br}) {
    INFO(cz::to_string(c));
    auto e = cz::make_encoder(c, 1);
    auto d = cz::make_decoder(c, 1u << 20);
    std::string expect, got;
    for (int i = 0; i < 5; ++i) {
      auto piece = "piece " + std::to_string(i) + " " + sample(200 + i * 1000);
      expect += piece;
      std::string wire;
      e->feed(piece, wire);
      e->flush(wire);
      REQUIRE_FALSE(wire.empty());
      REQUIRE(d->feed(wire, got) == decode_status::ok);
      CHECK(got == expect);  // no byte held back by either side
    }
    std::string tail;
    e->finish(tail);
    REQUIRE(d->feed(tail, got) == decode_status::ok);
    CHECK(d->finish() == decode_status::ok);
    CHECK(got == expect);
  }
}

TEST_CASE("compression: decoders stop at the limit (bombs)", "[compression]") {
  const std::string zeros(8u << 20, '\0');
  for (auto c : {coding::gzip, coding::deflate, coding::br}) {
    INFO(cz::to_string(c));
    auto z = cz::compress(c, 1, zeros);
    REQUIRE(z.size() < 100'000);
    auto d = cz::make_decoder(c, 1u << 20);
    std::string out;
    CHECK(d->feed(z, out) == decode_status::too_large);
    CHECK(out.size() == (1u << 20));  // never more than the limit
    CHECK(d->produced() == (1u << 20));
    // Sticky: later input is refused too.
    CHECK(d->feed("x", out) == decode_status::too_large);
    CHECK(d->finish() == decode_status::too_large);
    // Exactly the limit is fine.
    auto exact = cz::make_decoder(c, zeros.size());
    std::string all;
    CHECK(exact->feed(z, all) == decode_status::ok);
    CHECK(exact->finish() == decode_status::ok);
    CHECK(all.size() == zeros.size());
  }
}

TEST_CASE("compression: corrupt, truncated and trailing input", "[compression]") {
  auto in = sample(4000);
  for (auto c : {coding::gzip, coding::deflate, coding::br}) {
    INFO(cz::to_string(c));
    auto z = cz::compress(c, 6, in);
    {
      auto d = cz::make_decoder(c, 1u << 20);
      std::string out;
      CHECK(d->feed(z.substr(0, z.size() - 3), out) == decode_status::ok);
      CHECK(d->finish() == decode_status::corrupt);
    }
    {
      auto d = cz::make_decoder(c, 1u << 20);
      std::string out;
      CHECK(d->feed(z + "junk", out) == decode_status::corrupt);
    }
    {
      auto d = cz::make_decoder(c, 1u << 20);
      std::string out;
      CHECK(d->feed("this is not compressed data at all, no", out) == decode_status::corrupt);
    }
  }
  // Two gzip members are one gzip body (RFC 1952).
  auto two = cz::compress(coding::gzip, 6, "hello ") + cz::compress(coding::gzip, 6, "world");
  CHECK(decode_all(coding::gzip, two) == "hello world");
  CHECK(cz::make_decoder(coding::identity, 1) == nullptr);
  CHECK(cz::make_encoder(coding::identity, 1) == nullptr);
}

TEST_CASE("compression: Accept-Encoding negotiation", "[compression]") {
  const std::vector<coding> all{coding::br, coding::gzip, coding::deflate};
  CHECK(cz::negotiate("", false, all) == coding::identity);  // no header: identity
  CHECK(cz::negotiate("", true, all) == coding::identity);   // empty: identity only
  CHECK(cz::negotiate("gzip", true, all) == coding::gzip);
  CHECK(cz::negotiate("gzip, deflate, br", true, all) == coding::br);  // tie: server order
  CHECK(cz::negotiate("gzip, deflate, br", true, {coding::gzip, coding::br}) == coding::gzip);
  CHECK(cz::negotiate("gzip;q=0.5, br;q=0.1", true, all) == coding::gzip);
  CHECK(cz::negotiate("br;q=0, gzip;q=0.2", true, all) == coding::gzip);
  CHECK(cz::negotiate("br;q=0", true, all) == coding::identity);
  CHECK(cz::negotiate("identity", true, all) == coding::identity);
  CHECK(cz::negotiate("*", true, all) == coding::br);
  CHECK(cz::negotiate("*;q=0.5, br;q=0", true, all) == coding::gzip);
  CHECK(cz::negotiate("*;q=0", true, all) == coding::identity);
  CHECK(cz::negotiate("GZIP ; Q=1.0", true, all) == coding::gzip);
  CHECK(cz::negotiate("x-gzip", true, all) == coding::gzip);
  CHECK(cz::negotiate("deflate;q=0.9,gzip;q=0.8", true, all) == coding::deflate);
  CHECK(cz::negotiate("gzip;q=0.5, identity;q=1", true, all) == coding::identity);
  CHECK(cz::negotiate("gzip;q=2, deflate;q=x", true, all) == coding::identity);  // malformed weights
  CHECK(cz::negotiate("zstd, gzip;q=0.1", true, all) == coding::gzip);
  CHECK(cz::negotiate(",,, ;q=1, br", true, all) == coding::br);
  CHECK(cz::negotiate("gzip", true, {}) == coding::identity);
}

TEST_CASE("compression: content types", "[compression]") {
  cz::options o;
  o.excluded_types = cz::default_excluded_types();
  CHECK(cz::compressible_type("text/html; charset=utf-8", o));
  CHECK(cz::compressible_type("application/json", o));
  CHECK(cz::compressible_type("image/svg+xml", o));
  CHECK(cz::compressible_type("", o));
  CHECK_FALSE(cz::compressible_type("image/png", o));
  CHECK_FALSE(cz::compressible_type("Video/MP4", o));
  CHECK_FALSE(cz::compressible_type("application/gzip", o));
  CHECK_FALSE(cz::compressible_type(" application/zip ;x=1", o));
  o.types = {"text/*", "application/json"};
  CHECK(cz::compressible_type("text/plain", o));
  CHECK(cz::compressible_type("application/json", o));
  CHECK_FALSE(cz::compressible_type("application/xml", o));
  CHECK_FALSE(cz::compressible_type("text", o));
}
