#pragma once
// App configs for the server-layer unit tests: a module type with no options ("plain") and a
// parser over a registry that has it.

#include <optional>
#include <string>

#include "swactor/actors/app_config.hpp"

namespace swactor::test {

struct plain_module final : module_base {
  static constexpr std::string_view kName = "plain";
  static constexpr std::string_view kDoc = "test";
  struct options {};
  static config::schema<options> schema() { return {}; }
  explicit plain_module(options) {}
};

inline std::optional<app_config> parse_plain(const std::string& text, config::diagnostics& diag) {
  static const module_registry reg = [] {
    module_registry r;
    r.add<plain_module>();
    return r;
  }();
  return load_app_config_text(text, "app.toml", reg, diag);
}

}  // namespace swactor::test
