// connect: the connection rate only. Each request is a connect followed by a close; the
// latency is the connect time.
#include "mode.hpp"

namespace swactor::bench {
namespace {
class connect_mode final : public mode {
 public:
  std::string_view name() const override { return "connect"; }
  session pattern() const override { return session::connect_only; }
  std::string check(const settings& s) const override {
    return s.pipeline > 1 ? "--pipeline makes no sense with connect" : "";
  }
  void make_request(std::uint64_t, std::uint64_t, std::string& out) const override { out.clear(); }
  std::ptrdiff_t reply_size(std::string_view, std::string_view) const override { return 0; }
};
}  // namespace

std::unique_ptr<mode> make_connect_mode(const settings&) {
  return std::make_unique<connect_mode>();
}
}  // namespace swactor::bench
