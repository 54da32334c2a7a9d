// unix: persistent Unix stream connections (unix:///path), raw echo request/response.
#include "mode.hpp"

namespace swactor::bench {
namespace {
class unix_mode final : public raw_echo_mode {
 public:
  using raw_echo_mode::raw_echo_mode;
  std::string_view name() const override { return "unix"; }
  bool accepts(const target& t) const override {
    return !t.http && !t.websocket && t.kind == scheme::unix_stream;
  }
};
}  // namespace

std::unique_ptr<mode> make_unix_mode(const settings& s) { return std::make_unique<unix_mode>(s); }
}  // namespace swactor::bench
