#include "builtin.hpp"

#include "bench_module.hpp"
#include "echo.hpp"
#include "kv.hpp"
#include "probe.hpp"
#include "ticker.hpp"

namespace swactor::apps {

const module_registry& builtin_modules() {
  static const module_registry reg = [] {
    module_registry r;
    r.add<bench_module>();
    r.add<echo>();
    r.add<probe>();
    r.add<task_echo>();
    r.add<kv>();
    r.add<ticker>();
    return r;
  }();
  return reg;
}

}  // namespace swactor::apps
