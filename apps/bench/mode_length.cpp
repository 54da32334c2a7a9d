// length: length-prefixed messages as a server with framing type "length" sees them. The
// options are the server's (protocols::framing_options): the length field of length_size
// bytes at length_offset, big- or little-endian, signed or not; a frame is body_offset +
// the length value (body_offset 0: the value counts the whole frame). Requests are a
// header of zeros around the field, then the payload; replies are cut by the server's own
// frame_size(), in place.
#include <cstdint>

#include "mode.hpp"

namespace swactor::bench {
namespace {

protocols::framing_options length_options(const settings& s) {
  auto o = s.frame;
  o.type = protocols::framing_type::length;
  return o;
}

class length_mode final : public mode {
 public:
  explicit length_mode(const settings& s)
      : size_(s.size), frame_(length_options(s)), payload_(s.size) {}
  std::string_view name() const override { return "length"; }
  std::string check(const settings& s) const override {
    if (auto problems = frame_.validate(); !problems.empty()) {
      std::string out;
      for (const auto& p : problems) out += (out.empty() ? "" : "; ") + p;
      return "length framing: " + out;
    }
    const unsigned value_bits = static_cast<unsigned>(frame_.length_size) * 8 -
                                (frame_.length_signed ? 1 : 0);
    if (value_bits < 64 && value() > ((std::uint64_t{1} << value_bits) - 1))
      return "--size does not fit the length field";
    if (header() + s.size > frame_.max_length)
      return "--size makes frames of " + std::to_string(header() + s.size) +
             " bytes, above --max-length " + std::to_string(frame_.max_length) +
             " (the server's max_length must allow them too)";
    return {};
  }
  void make_request(std::uint64_t conn, std::uint64_t seq, std::string& out) const override {
    out.assign(header(), '\0');
    const std::uint64_t v = value();
    const std::size_t n = frame_.length_size;
    const bool big = frame_.length_order == protocols::byte_order::big;
    for (std::size_t i = 0; i < n; ++i) {
      const auto byte = static_cast<char>((v >> (8 * i)) & 0xff);
      out[frame_.length_offset + (big ? n - 1 - i : i)] = byte;
    }
    payload_.append(out, conn, seq);
  }
  std::ptrdiff_t reply_size(std::string_view in, std::string_view) const override {
    std::error_code ec;
    const std::size_t n = protocols::frame_size(frame_, in, ec);
    if (ec) return -1;
    return n != 0 && n <= in.size() ? static_cast<std::ptrdiff_t>(n) : 0;
  }

 private:
  // The header ends at body_offset, or with the length field when the value counts the
  // whole frame.
  std::size_t header() const {
    return frame_.body_offset ? frame_.body_offset : frame_.length_offset + frame_.length_size;
  }
  std::uint64_t value() const { return frame_.body_offset ? size_ : header() + size_; }

  std::size_t size_;
  protocols::framing_options frame_;
  payload payload_;
};
}  // namespace

std::unique_ptr<mode> make_length_mode(const settings& s) {
  return std::make_unique<length_mode>(s);
}
}  // namespace swactor::bench
