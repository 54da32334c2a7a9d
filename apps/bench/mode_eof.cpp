// eof: messages that end with a delimiter (--eof, default \r\n), as a server with framing
// type "eof" sees them. The payload never contains a delimiter byte; replies are cut by the
// server's own frame_size(), in place, with its max_length.
#include "mode.hpp"

namespace swactor::bench {
namespace {

protocols::framing_options eof_options(const settings& s) {
  auto o = s.frame;
  o.type = protocols::framing_type::eof;
  return o;
}

class eof_mode final : public mode {
 public:
  explicit eof_mode(const settings& s) : frame_(eof_options(s)), payload_(s.size, frame_.eof) {}
  std::string_view name() const override { return "eof"; }
  std::string check(const settings& s) const override {
    if (auto problems = frame_.validate(); !problems.empty()) {
      std::string out;
      for (const auto& p : problems) out += (out.empty() ? "" : "; ") + p;
      return "eof framing (--eof, --max-length): " + out;
    }
    if (!payload_.usable()) return "--eof uses every payload character";
    if (s.size + frame_.eof.size() > frame_.max_length)
      return "--size makes messages of " + std::to_string(s.size + frame_.eof.size()) +
             " bytes, above --max-length " + std::to_string(frame_.max_length) +
             " (the server's max_length must allow them too)";
    return {};
  }
  void make_request(std::uint64_t conn, std::uint64_t seq, std::string& out) const override {
    payload_.fill(out, conn, seq);
    out += frame_.eof;
  }
  std::ptrdiff_t reply_size(std::string_view in, std::string_view) const override {
    std::error_code ec;
    const std::size_t n = protocols::frame_size(frame_, in, ec);
    if (ec) return -1;
    return static_cast<std::ptrdiff_t>(n);
  }

 private:
  protocols::framing_options frame_;
  payload payload_;
};
}  // namespace

std::unique_ptr<mode> make_eof_mode(const settings& s) { return std::make_unique<eof_mode>(s); }
}  // namespace swactor::bench
