#pragma once
// The app.toml schema: [server], [modules.NAME]. Parsing validates module options against
// the module registry, so `swactor check` reports every mistake of a file in one run.

#include <optional>
#include <string>
#include <vector>

#include "swactor/actors/module.hpp"
#include "swactor/core/config.hpp"

namespace swactor {

struct server_config {
  std::string log_level = "info";
  std::string log_file;
};

struct module_config {
  std::string instance;  // the NAME of [modules.NAME]
  std::string type;      // module type; defaults to the instance name
  const toml::table* options = nullptr;  // points into app_config::root
};

struct app_config {
  std::string file;
  std::shared_ptr<const toml::table> root;  // keeps module option tables (and positions)
  server_config server;
  std::vector<module_config> modules;
};

const config::schema<server_config>& server_schema();

// Parses and validates; nullopt (with diagnostics) on any error.
std::optional<app_config> load_app_config(const std::string& path, const module_registry& reg,
                                          config::diagnostics& diag);
std::optional<app_config> parse_app_config(const toml::table& root, const std::string& path,
                                           const module_registry& reg,
                                           config::diagnostics& diag);

// docs/config.md, generated from the schemas and the registry.
std::string config_reference_markdown(const module_registry& reg);

}  // namespace swactor
