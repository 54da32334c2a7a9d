#include "swactor/core/histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <stdexcept>

namespace swactor {

// Index layout with M = 2^bits sub-buckets: values below M map to themselves (exact);
// a value v >= M with top bit e (e >= bits) has shift = e - bits, mantissa v >> shift in
// [M, 2M), and index (shift + 1) * M + (mantissa - M). Bucket width is 2^shift, so
// width / value <= 1 / M.

histogram::histogram(std::uint64_t highest, unsigned precision_bits)
    : highest_(highest), bits_(precision_bits) {
  if (bits_ < 1 || bits_ > 16) throw std::invalid_argument("histogram: precision_bits 1..16");
  if (highest_ < 1) highest_ = 1;
  counts_.assign(bucket_of(highest_) + 1, 0);
}

std::size_t histogram::bucket_of(std::uint64_t v) const noexcept {
  const std::uint64_t m = std::uint64_t{1} << bits_;
  if (v < m) return static_cast<std::size_t>(v);
  const unsigned e = static_cast<unsigned>(std::bit_width(v)) - 1;
  const unsigned shift = e - bits_;
  const std::uint64_t mantissa = v >> shift;
  return static_cast<std::size_t>((shift + 1) * m + (mantissa - m));
}

std::uint64_t histogram::bucket_low(std::size_t index) const noexcept {
  const std::uint64_t m = std::uint64_t{1} << bits_;
  if (index < m) return index;
  const std::uint64_t shift = index / m - 1;
  const std::uint64_t mantissa = index % m + m;
  return mantissa << shift;
}

std::uint64_t histogram::bucket_high(std::size_t index) const noexcept {
  const std::uint64_t m = std::uint64_t{1} << bits_;
  if (index < m) return index;
  const std::uint64_t shift = index / m - 1;
  return bucket_low(index) + ((std::uint64_t{1} << shift) - 1);
}

void histogram::record(std::uint64_t value, std::uint64_t count) noexcept {
  if (count == 0) return;
  if (value > highest_) {
    value = highest_;
    saturated_ += count;
  }
  counts_[bucket_of(value)] += count;
  if (total_ == 0 || value < min_) min_ = value;
  if (value > max_) max_ = value;
  total_ += count;
  const double v = static_cast<double>(value);
  sum_ += v * static_cast<double>(count);
  sum_sq_ += v * v * static_cast<double>(count);
}

void histogram::merge(const histogram& other) {
  if (other.highest_ != highest_ || other.bits_ != bits_)
    throw std::invalid_argument("histogram::merge: different layouts");
  if (other.total_ == 0) return;
  for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  min_ = total_ ? std::min(min_, other.min_) : other.min_;
  max_ = std::max(max_, other.max_);
  total_ += other.total_;
  saturated_ += other.saturated_;
  sum_ += other.sum_;
  sum_sq_ += other.sum_sq_;
}

void histogram::reset() noexcept {
  std::fill(counts_.begin(), counts_.end(), 0);
  total_ = saturated_ = min_ = max_ = 0;
  sum_ = sum_sq_ = 0;
}

double histogram::mean() const noexcept {
  return total_ ? sum_ / static_cast<double>(total_) : 0.0;
}

double histogram::stddev() const noexcept {
  if (total_ == 0) return 0.0;
  const double n = static_cast<double>(total_);
  const double mu = sum_ / n;
  const double var = sum_sq_ / n - mu * mu;
  return var > 0 ? std::sqrt(var) : 0.0;
}

std::uint64_t histogram::percentile(double p) const noexcept {
  if (total_ == 0) return 0;
  if (!(p > 0)) return min_;  // also catches NaN
  if (p >= 100) return max_;
  // The rank (1-based) of the wanted value in sorted order.
  auto rank = static_cast<std::uint64_t>(std::ceil(p / 100.0 * static_cast<double>(total_)));
  rank = std::clamp<std::uint64_t>(rank, 1, total_);
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      // The middle of the bucket halves the worst-case error; min/max are exact and keep
      // the answer inside what was recorded.
      const std::uint64_t lo = bucket_low(i);
      const std::uint64_t mid = lo + (bucket_high(i) - lo) / 2;
      return std::clamp(mid, min_, max_);
    }
  }
  return max_;
}

}  // namespace swactor
