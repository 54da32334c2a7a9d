// short_tcp: every request opens a connection, does one exchange and closes it. The
// latency covers connect + exchange.
#include "mode.hpp"

namespace swactor::bench {
namespace {
class short_tcp_mode final : public raw_echo_mode {
 public:
  using raw_echo_mode::raw_echo_mode;
  std::string_view name() const override { return "short_tcp"; }
  session pattern() const override { return session::one_shot; }
  std::string check(const settings& s) const override {
    return s.pipeline > 1 ? "--pipeline needs a persistent mode, not short_tcp" : "";
  }
};
}  // namespace

std::unique_ptr<mode> make_short_tcp_mode(const settings& s) {
  return std::make_unique<short_tcp_mode>(s);
}
}  // namespace swactor::bench
