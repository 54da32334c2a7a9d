// long_tcp: persistent TCP (or Unix stream) connections, raw echo request/response.
#include "mode.hpp"

namespace swactor::bench {
namespace {
class long_tcp_mode final : public raw_echo_mode {
 public:
  using raw_echo_mode::raw_echo_mode;
  std::string_view name() const override { return "long_tcp"; }
};
}  // namespace

std::unique_ptr<mode> make_long_tcp_mode(const settings& s) {
  return std::make_unique<long_tcp_mode>(s);
}
}  // namespace swactor::bench
