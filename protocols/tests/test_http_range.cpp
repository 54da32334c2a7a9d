#include <catch2/catch.hpp>

#include <string>

#include "swactor/protocols/http_range.hpp"

using namespace swactor::protocols;

namespace {
std::string show(const range_result& r) {
  std::string s = r.status == range_status::ignore ? "ignore" : r.status == range_status::unsatisfiable ? "416" : "206";
  for (const auto& b : r.ranges) s += " " + std::to_string(b.first) + "-" + std::to_string(b.last);
  return s;
}
std::string parse(std::string_view v, std::uint64_t size = 1000) { return show(parse_range(v, size)); }
}  // namespace

TEST_CASE("range: single, open, suffix", "[http_range]") {
  CHECK(parse("bytes=0-99") == "206 0-99");
  CHECK(parse("bytes=500-") == "206 500-999");
  CHECK(parse("bytes=-100") == "206 900-999");
  CHECK(parse("bytes=-5000") == "206 0-999");       // a suffix longer than the file: all of it
  CHECK(parse("bytes=900-5000") == "206 900-999");  // last clipped to the size
  CHECK(parse("bytes=999-999") == "206 999-999");
  CHECK(parse("BYTES=1-2") == "206 1-2");  // the unit is case-insensitive
}

TEST_CASE("range: multiple ranges are sorted and coalesced", "[http_range]") {
  CHECK(parse("bytes=0-9, 20-29") == "206 0-9 20-29");
  CHECK(parse("bytes=20-29,0-9") == "206 0-9 20-29");
  CHECK(parse("bytes=0-9,10-19") == "206 0-19");  // adjacent
  CHECK(parse("bytes=0-,0-,0-") == "206 0-999");
  CHECK(parse("bytes=0-9,-10") == "206 0-9 990-999");
  CHECK(parse("bytes= 0-1 ,\t3-4 ") == "206 0-1 3-4");
  CHECK(parse("bytes=0-1,,3-4") == "206 0-1 3-4");  // empty list elements
  CHECK(parse("bytes=0-1,5000-6000") == "206 0-1");  // the unsatisfiable one is dropped
}

TEST_CASE("range: unsatisfiable", "[http_range]") {
  CHECK(parse("bytes=1000-") == "416");
  CHECK(parse("bytes=1000-2000") == "416");
  CHECK(parse("bytes=-0") == "416");
  CHECK(parse("bytes=0-0", 0) == "416");  // an empty file has no bytes to range over
  CHECK(parse("bytes=-10", 0) == "416");
  CHECK(parse("bytes=5000-,6000-7000") == "416");
}

TEST_CASE("range: malformed or foreign fields are ignored", "[http_range]") {
  for (const char* v : {"", "bytes", "bytes=", "bytes=,", "bytes=-", "bytes=a-b", "bytes=1", "bytes=5-1",
                        "bytes=1-2-3", "bytes=1-2;x", "items=0-1", "bytes =0-1", "bytes=--1", "bytes=+1-2",
                        "bytes=1 -2", "bytes=99999999999999999999-", "bytes=0-99999999999999999999"})
    CHECK(parse(v) == "ignore");
}

TEST_CASE("range: too many range-specs are ignored as a whole", "[http_range]") {
  std::string v = "bytes=";
  for (int i = 0; i < 17; ++i) v += std::to_string(i * 10) + "-" + std::to_string(i * 10 + 1) + ",";
  CHECK(parse(v) == "ignore");
  CHECK(parse_range(v, 1000, 17).status == range_status::satisfiable);
}

TEST_CASE("range: the largest sizes do not overflow", "[http_range]") {
  const std::uint64_t big = UINT64_C(1) << 62;
  auto r = parse_range("bytes=-1", big);
  REQUIRE(r.status == range_status::satisfiable);
  CHECK(r.ranges[0].first == big - 1);
  CHECK(r.ranges[0].length() == 1);
  CHECK(parse_range("bytes=0-", big).ranges[0].length() == big);
}
