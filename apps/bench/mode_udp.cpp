// udp: one datagram out, one datagram back (connected UDP socket per "connection").
#include "mode.hpp"

namespace swactor::bench {
namespace {
class udp_mode final : public raw_echo_mode {
 public:
  using raw_echo_mode::raw_echo_mode;
  std::string_view name() const override { return "udp"; }
  transport kind() const override { return transport::datagram; }
  bool accepts(const target& t) const override { return t.kind == scheme::udp; }
  std::string check(const settings& s) const override {
    // Datagrams may be lost or reordered: replies are matched one at a time.
    if (s.pipeline > 1) return "--pipeline is not supported with udp (use more -c)";
    if (s.size > 65507) return "--size above 65507 does not fit a UDP datagram";
    return {};
  }
};
}  // namespace

std::unique_ptr<mode> make_udp_mode(const settings& s) { return std::make_unique<udp_mode>(s); }
}  // namespace swactor::bench
