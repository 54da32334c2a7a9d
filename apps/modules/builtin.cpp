#include "builtin.hpp"

#include "bench_module.hpp"
#include "bus_bench.hpp"
#include "echo.hpp"
#include "http_modules.hpp"
#include "http_static.hpp"
#include "kv.hpp"
#include "probe.hpp"
#include "redis_kv.hpp"
#include "ticker.hpp"
#include "ws_modules.hpp"

namespace swactor::apps {

std::string base64_encode(std::string_view in) {
  static constexpr char table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    auto v = (std::uint32_t(std::uint8_t(in[i])) << 16) | (std::uint32_t(std::uint8_t(in[i + 1])) << 8) |
             std::uint8_t(in[i + 2]);
    for (int k = 18; k >= 0; k -= 6) out.push_back(table[(v >> k) & 63]);
  }
  if (i < in.size()) {
    std::uint32_t v = std::uint32_t(std::uint8_t(in[i])) << 16;
    if (i + 1 < in.size()) v |= std::uint32_t(std::uint8_t(in[i + 1])) << 8;
    out.push_back(table[(v >> 18) & 63]);
    out.push_back(table[(v >> 12) & 63]);
    out.push_back(i + 1 < in.size() ? table[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

const module_registry& builtin_modules() {
  static const module_registry reg = [] {
    module_registry r;
    r.add<bench_module>();
    r.add<bus_bench>();
    r.add<echo>();
    r.add<http_echo>();
    r.add<http_hello>();
    r.add<http_static>();
    r.add<probe>();
    r.add<redis_kv>();
    r.add<task_echo>();
    r.add<kv>();
    r.add<ticker>();
    r.add<ws_echo>();
    r.add<ws_chat>();
    return r;
  }();
  return reg;
}

}  // namespace swactor::apps
