// eof: messages that end with a delimiter (--eof, default \r\n), as a server with
// open_eof_check / package_eof sees them. The payload never contains a delimiter byte.
#include <cstring>

#include "mode.hpp"

namespace swactor::bench {
namespace {
class eof_mode final : public mode {
 public:
  explicit eof_mode(const settings& s) : delim_(s.frame.eof), payload_(s.size, delim_) {}
  std::string_view name() const override { return "eof"; }
  std::string check(const settings&) const override {
    if (delim_.empty()) return "--eof must not be empty";
    if (!payload_.usable()) return "--eof uses every payload character";
    return {};
  }
  void make_request(std::uint64_t conn, std::uint64_t seq, std::string& out) const override {
    payload_.fill(out, conn, seq);
    out += delim_;
  }
  std::ptrdiff_t reply_size(std::string_view in, std::string_view) const override {
    auto pos = in.find(delim_);
    if (pos == std::string_view::npos) return 0;
    return static_cast<std::ptrdiff_t>(pos + delim_.size());
  }

 private:
  std::string delim_;
  payload payload_;
};
}  // namespace

std::unique_ptr<mode> make_eof_mode(const settings& s) { return std::make_unique<eof_mode>(s); }
}  // namespace swactor::bench
