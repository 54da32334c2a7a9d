// length: length-prefixed messages as a server with open_length_check sees them. The
// header is body_offset bytes (zeros) with the body length at length_offset in
// length_size bytes, big- or little-endian, signed or not; the frame is
// body_offset + length bytes (Swoole's package_length_offset / package_body_offset).
#include <cstdint>

#include "mode.hpp"

namespace swactor::bench {
namespace {

constexpr std::uint64_t max_frame = 64ull << 20;  // a larger announced body is an error

class length_mode final : public mode {
 public:
  explicit length_mode(const settings& s) : size_(s.size), frame_(s.frame), payload_(s.size) {}
  std::string_view name() const override { return "length"; }
  std::string check(const settings& s) const override {
    const unsigned n = frame_.length_size;
    if (n != 1 && n != 2 && n != 4 && n != 8) return "--length-size must be 1, 2, 4 or 8";
    if (frame_.header_size() < frame_.length_offset + n)
      return "--body-offset must be at least --length-offset + --length-size";
    const unsigned value_bits = n * 8 - (frame_.is_signed ? 1 : 0);
    if (value_bits < 64 && s.size > ((std::uint64_t{1} << value_bits) - 1))
      return "--size does not fit the length field";
    return {};
  }
  void make_request(std::uint64_t conn, std::uint64_t seq, std::string& out) const override {
    const std::size_t header = frame_.header_size();
    out.assign(header, '\0');
    std::uint64_t v = size_;
    const unsigned n = frame_.length_size;
    for (unsigned i = 0; i < n; ++i) {
      const auto byte = static_cast<char>((v >> (8 * i)) & 0xff);
      out[frame_.length_offset + (frame_.big_endian ? n - 1 - i : i)] = byte;
    }
    payload_.append(out, conn, seq);
  }
  std::ptrdiff_t reply_size(std::string_view in, std::string_view) const override {
    const std::size_t header = frame_.header_size();
    if (in.size() < header) return 0;
    const unsigned n = frame_.length_size;
    std::uint64_t v = 0;
    for (unsigned i = 0; i < n; ++i) {
      const auto byte = static_cast<unsigned char>(
          in[frame_.length_offset + (frame_.big_endian ? i : n - 1 - i)]);
      v = (v << 8) | byte;
    }
    if (frame_.is_signed && n < 8 && (v >> (n * 8 - 1)) & 1) return -1;  // negative length
    if (frame_.is_signed && n == 8 && (v >> 63)) return -1;
    if (v > max_frame) return -1;
    const std::size_t total = header + static_cast<std::size_t>(v);
    return in.size() >= total ? static_cast<std::ptrdiff_t>(total) : 0;
  }

 private:
  std::size_t size_;
  framing frame_;
  payload payload_;
};
}  // namespace

std::unique_ptr<mode> make_length_mode(const settings& s) {
  return std::make_unique<length_mode>(s);
}
}  // namespace swactor::bench
