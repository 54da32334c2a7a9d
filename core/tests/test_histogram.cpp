#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include "swactor/core/histogram.hpp"

using swactor::histogram;

namespace {

// The reference percentile with the histogram's definition: the value of rank
// ceil(p/100 * n) in sorted order.
std::uint64_t reference(const std::vector<std::uint64_t>& sorted, double p) {
  if (p <= 0) return sorted.front();
  if (p >= 100) return sorted.back();
  auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

double rel_error(std::uint64_t got, std::uint64_t want) {
  if (want == 0) return got == 0 ? 0.0 : 1.0;
  return std::abs(static_cast<double>(got) - static_cast<double>(want)) /
         static_cast<double>(want);
}

const double percentiles[] = {0, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 100};

void check_against_reference(const histogram& h, std::vector<std::uint64_t> values) {
  std::sort(values.begin(), values.end());
  for (double p : percentiles) {
    INFO("p" << p);
    const auto got = h.percentile(p);
    const auto want = reference(values, p);
    CHECK(rel_error(got, want) <= 0.01);
  }
  CHECK(h.min() == values.front());
  CHECK(h.max() == values.back());
}

}  // namespace

TEST_CASE("histogram: percentiles within 1% of a sorted reference (log-uniform data)") {
  std::mt19937_64 rng(42);
  // Log-uniform over 1 us .. 60 s in nanoseconds: every bucket scale gets exercised.
  std::uniform_real_distribution<double> exp10(3.0, std::log10(6e10));
  histogram h;
  std::vector<std::uint64_t> values;
  for (int i = 0; i < 200000; ++i) {
    auto v = static_cast<std::uint64_t>(std::pow(10.0, exp10(rng)));
    values.push_back(v);
    h.record(v);
  }
  CHECK(h.count() == values.size());
  check_against_reference(h, values);
}

TEST_CASE("histogram: percentiles within 1% on latency-like data (lognormal)") {
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> dist(std::log(50'000.0), 0.8);  // ~50 us
  histogram h;
  std::vector<std::uint64_t> values;
  for (int i = 0; i < 100000; ++i) {
    auto v = static_cast<std::uint64_t>(dist(rng)) + 1;
    values.push_back(v);
    h.record(v);
  }
  check_against_reference(h, values);
  double sum = 0, sq = 0;
  for (auto v : values) sum += static_cast<double>(v);
  const double mean = sum / static_cast<double>(values.size());
  for (auto v : values) sq += (static_cast<double>(v) - mean) * (static_cast<double>(v) - mean);
  const double sd = std::sqrt(sq / static_cast<double>(values.size()));
  CHECK(h.mean() == Approx(mean).epsilon(1e-9));
  CHECK(h.stddev() == Approx(sd).epsilon(1e-6));
}

TEST_CASE("histogram: merge equals recording everything in one") {
  std::mt19937_64 rng(3);
  std::uniform_int_distribution<std::uint64_t> dist(1'000, 5'000'000'000ULL);
  histogram all, parts[4];
  std::vector<std::uint64_t> values;
  for (int i = 0; i < 40000; ++i) {
    auto v = dist(rng);
    values.push_back(v);
    all.record(v);
    parts[i % 4].record(v);
  }
  histogram merged;
  for (auto& p : parts) merged.merge(p);
  CHECK(merged.count() == all.count());
  CHECK(merged.min() == all.min());
  CHECK(merged.max() == all.max());
  CHECK(merged.mean() == Approx(all.mean()));
  for (double p : percentiles) CHECK(merged.percentile(p) == all.percentile(p));
  for (std::size_t i = 0; i < all.bucket_count(); ++i)
    REQUIRE(merged.count_at(i) == all.count_at(i));
  check_against_reference(merged, values);

  histogram empty;
  merged.merge(empty);
  CHECK(merged.count() == all.count());
  empty.merge(all);
  CHECK(empty.min() == all.min());

  histogram other_layout(1'000'000, 5);
  CHECK_THROWS_AS(merged.merge(other_layout), std::invalid_argument);
}

TEST_CASE("histogram: edge values") {
  SECTION("empty") {
    histogram h;
    CHECK(h.empty());
    CHECK(h.percentile(50) == 0);
    CHECK(h.min() == 0);
    CHECK(h.max() == 0);
    CHECK(h.mean() == 0);
    CHECK(h.stddev() == 0);
  }
  SECTION("small values are exact") {
    histogram h;
    for (std::uint64_t v = 0; v < 128; ++v) h.record(v);
    CHECK(h.percentile(0) == 0);
    CHECK(h.percentile(50) == 63);
    CHECK(h.percentile(100) == 127);
    for (std::uint64_t v = 0; v < 128; ++v) CHECK(h.bucket_of(v) == v);
  }
  SECTION("one value") {
    histogram h;
    h.record(123'456'789);
    for (double p : percentiles) CHECK(h.percentile(p) == 123'456'789);
    CHECK(h.stddev() == 0);
  }
  SECTION("above highest is clamped and counted") {
    histogram h(1'000'000);
    h.record(5'000'000);
    h.record(10);
    CHECK(h.saturated() == 1);
    CHECK(h.max() == 1'000'000);
    CHECK(h.count() == 2);
  }
  SECTION("bounds: 1 us and 60 s in ns") {
    histogram h;
    h.record(1'000);
    h.record(60'000'000'000ULL);
    CHECK(h.saturated() == 0);
    CHECK(rel_error(h.percentile(50), 1'000) <= 0.01);
    CHECK(h.percentile(100) == 60'000'000'000ULL);
  }
  SECTION("buckets tile the range without gaps") {
    histogram h;
    for (std::size_t i = 1; i < h.bucket_count(); ++i) {
      REQUIRE(h.bucket_low(i) == h.bucket_high(i - 1) + 1);
      REQUIRE(h.bucket_of(h.bucket_low(i)) == i);
      REQUIRE(h.bucket_of(h.bucket_high(i)) == i);
      // The width bound that gives the error guarantee (buckets below 128 are exact).
      if (i >= 128)
        REQUIRE(static_cast<double>(h.bucket_high(i) - h.bucket_low(i) + 1) /
                  static_cast<double>(std::max<std::uint64_t>(h.bucket_low(i), 1)) <=
              1.0 / 128 + 1e-12);
    }
  }
  SECTION("counts and reset") {
    histogram h;
    h.record(1'000'000, 10);
    CHECK(h.count() == 10);
    CHECK(h.mean() == Approx(1'000'000));
    h.reset();
    CHECK(h.empty());
    CHECK(h.max() == 0);
  }
}
