#pragma once
// A log-linear histogram of non-negative integer values (HdrHistogram-like), for latency
// in the load tester and for server stats. Values below 2^precision_bits are counted
// exactly; above, each power of two is split into 2^precision_bits equal buckets, so a
// reported value is off by at most half a bucket: < 0.4 % relative error with the default
// 7 bits. Fixed memory (a few thousand counters), O(1) record, mergeable: keep one per
// thread and merge() them at the end. Not thread-safe.
//
// The unit is the caller's: the load tester records nanoseconds, so the default range
// (up to 60 s in ns) covers 1 us .. 60 s with the bound above. Values above `highest`
// are clamped to it and counted in saturated().

#include <cstdint>
#include <vector>

namespace swactor {

class histogram {
 public:
  static constexpr std::uint64_t default_highest = 60'000'000'000ULL;  // 60 s in ns
  static constexpr unsigned default_precision_bits = 7;                // 128 sub-buckets

  explicit histogram(std::uint64_t highest = default_highest,
                     unsigned precision_bits = default_precision_bits);

  void record(std::uint64_t value, std::uint64_t count = 1) noexcept;
  // Adds every count of `other`. Both must have the same highest/precision (else
  // std::invalid_argument).
  void merge(const histogram& other);
  void reset() noexcept;

  std::uint64_t count() const noexcept { return total_; }
  bool empty() const noexcept { return total_ == 0; }
  std::uint64_t saturated() const noexcept { return saturated_; }
  // Exact extremes of what was recorded (after clamping); 0 when empty.
  std::uint64_t min() const noexcept { return total_ ? min_ : 0; }
  std::uint64_t max() const noexcept { return max_; }
  // Exact mean and standard deviation (population) from running sums.
  double mean() const noexcept;
  double stddev() const noexcept;

  // The value at percentile p in [0, 100]: the smallest recorded value v such that at
  // least p % of the values are <= v, up to the bucket error. p <= 0 gives min(), p >= 100
  // gives max(). 0 when empty.
  std::uint64_t percentile(double p) const noexcept;

  // -- layout (exposed for tests and for exporters) ------------------------------------
  std::uint64_t highest() const noexcept { return highest_; }
  unsigned precision_bits() const noexcept { return bits_; }
  std::size_t bucket_count() const noexcept { return counts_.size(); }
  std::size_t bucket_of(std::uint64_t value) const noexcept;
  std::uint64_t bucket_low(std::size_t index) const noexcept;   // smallest value in bucket
  std::uint64_t bucket_high(std::size_t index) const noexcept;  // largest value in bucket
  std::uint64_t count_at(std::size_t index) const noexcept { return counts_[index]; }

 private:
  std::uint64_t highest_;
  unsigned bits_;
  std::vector<std::uint64_t> counts_;
  std::uint64_t total_ = 0;
  std::uint64_t saturated_ = 0;
  std::uint64_t min_ = 0;
  std::uint64_t max_ = 0;
  // Doubles: a uint64 sum of nanoseconds would overflow in long runs; the relative
  // precision of double is plenty for a mean and a deviation.
  double sum_ = 0;
  double sum_sq_ = 0;
};

}  // namespace swactor
