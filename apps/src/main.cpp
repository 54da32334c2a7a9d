// The `swactor` command line: run, check, bench, version, modules.
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include <CLI/CLI.hpp>
#include <asio/version.hpp>
#include <caf/config.hpp>
#include <nlohmann/json.hpp>
#include <openssl/crypto.h>
#include <spdlog/version.h>
#include <toml++/toml.h>
#include <zlib.h>

#include "commands.hpp"
#include "modules/builtin.hpp"
#include "admin.hpp"
#include "run.hpp"
#include "swactor/actors/bus.hpp"
#include "swactor/actors/app_config.hpp"
#include "swactor/actors/server.hpp"
#include "swactor/core/log.hpp"

namespace {

constexpr const char* kVersion = SWACTOR_VERSION;  // from CMake project(VERSION)

// The config with every error printed (file:line:column: key: what) when it does not load.
std::optional<swactor::app_config> load_or_report(const std::string& file) {
  swactor::config::diagnostics diag;
  auto app = swactor::load_app_config(file, swactor::apps::builtin_modules(), diag);
  if (!app) {
    std::cerr << diag.to_string();
    std::cerr << file << ": " << diag.items().size() << " error(s)\n";
  }
  return app;
}

int cmd_check(const std::string& file) {
  auto app = load_or_report(file);
  if (!app) return 1;
  std::cout << file << ": ok (" << app->modules.size() << " module instance(s))\n";
  return 0;
}

int cmd_version() {
  std::printf("swactor %s\n", kVersion);
  std::printf("  CAF %d.%d.%d\n", CAF_VERSION / 10000, CAF_VERSION / 100 % 100, CAF_VERSION % 100);
  std::printf("  asio %d.%d.%d\n", ASIO_VERSION / 100000, ASIO_VERSION / 100 % 1000,
              ASIO_VERSION % 100);
  std::printf("  OpenSSL %s\n", OpenSSL_version(OPENSSL_VERSION_STRING));
  std::printf("  zlib %s\n", zlibVersion());
  std::printf("  toml++ %d.%d.%d\n", TOML_LIB_MAJOR, TOML_LIB_MINOR, TOML_LIB_PATCH);
  std::printf("  nlohmann-json %d.%d.%d\n", NLOHMANN_JSON_VERSION_MAJOR,
              NLOHMANN_JSON_VERSION_MINOR, NLOHMANN_JSON_VERSION_PATCH);
  std::printf("  spdlog %d.%d.%d\n", SPDLOG_VER_MAJOR, SPDLOG_VER_MINOR, SPDLOG_VER_PATCH);
  std::printf("  fmt %d.%d.%d\n", FMT_VERSION / 10000, FMT_VERSION / 100 % 100, FMT_VERSION % 100);
  std::printf("  CLI11 %s\n", CLI11_VERSION);
  return 0;
}

void print_module_types(const swactor::module_registry& reg) {
  for (const auto& [name, t] : reg.types()) {
    std::printf("  %-12s %s\n", name.c_str(), t.doc.c_str());
    for (const auto& k : t.keys)
      std::printf("      %s (%s%s%s): %s\n", k.name.c_str(), k.type.c_str(), k.required ? ", required" : ", default ",
                  k.required ? "" : (k.default_text.empty() ? "\"\"" : k.default_text.c_str()), k.doc.c_str());
  }
}

// The built-in module types, and with a config file the types of the plugins it loads.
int cmd_modules(const std::string& file) {
  std::printf("built-in modules:\n");
  print_module_types(swactor::apps::builtin_modules());
  if (file.empty()) return 0;
  auto app = load_or_report(file);
  if (!app) return 1;
  for (const auto& plugin : app->plugins) {
    std::string users;
    for (const auto& mc : app->modules)
      if (mc.plugin == plugin->path) users += (users.empty() ? "" : ", ") + ("[modules." + mc.instance + "]");
    std::printf("plugin %s (used by %s):\n", plugin->path.c_str(), users.c_str());
    print_module_types(plugin->types);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Internal: the master starts workers as `swactor worker ...` (fork+exec); the command
  // line is built and parsed by swactor::worker_args alone.
  if (argc >= 2 && std::string_view(argv[1]) == "worker") {
    std::string error;
    auto wargs = swactor::worker_args::parse(std::vector<std::string>(argv + 2, argv + argc), error);
    if (!wargs) {
      std::cerr << "swactor worker: " << error << " (started by the master only)\n";
      return 2;
    }
    return swactor::apps::cmd_worker(*wargs);
  }
  // Internal: the master's check before a reload (`worker-check --config-fd N --config-name F`).
  if (argc == 6 && std::string_view(argv[1]) == "worker-check" && std::string_view(argv[2]) == "--config-fd" &&
      std::string_view(argv[4]) == "--config-name") {
    int fd = -1;
    auto [end, ec] = std::from_chars(argv[3], argv[3] + std::strlen(argv[3]), fd);
    if (ec != std::errc() || *end != '\0' || fd < 0) {
      std::cerr << "swactor worker-check: bad descriptor " << argv[3] << " (started by the master only)\n";
      return 2;
    }
    return swactor::run_config_check(fd, argv[5], swactor::apps::builtin_modules());
  }
  CLI::App app{"swactor: a C++20 actor networking engine (Swoole's model, with actors)", "swactor"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for every subcommand");

  std::string run_file, check_file;
  auto* run = app.add_subcommand("run", "Start the app described by FILE");
  run->add_option("FILE", run_file, "app.toml")->required()->check(CLI::ExistingFile);
  auto* check = app.add_subcommand("check", "Validate FILE; print every error with file:line:column");
  check->add_option("FILE", check_file, "app.toml")->required()->check(CLI::ExistingFile);
  auto* version = app.add_subcommand("version", "Print the versions of swactor and its libraries");
  std::string modules_config;
  auto* modules = app.add_subcommand("modules", "List the built-in modules, and the plugins' with --config, "
                                                "with their options");
  modules->add_option("-c,--config", modules_config, "app.toml whose plugin modules to list too")
      ->check(CLI::ExistingFile);
  std::string ref_out;
  auto* ref = app.add_subcommand("config-reference", "Print docs/config.md (generated)");
  ref->add_option("-o,--output", ref_out, "Write to this file instead of stdout");
  ref->group("");  // hidden: a maintenance command
  swactor::apps::add_bench_command(app);

  // Admin commands: talk to a running master through its admin socket.
  std::string pid_file, socket_path;
  std::vector<CLI::App*> admin_cmds;
  for (auto [name, help] : {std::pair{"stats", "Print a running server's stats as JSON"},
                            std::pair{"reload", "Reload workers and task workers (SIGUSR1)"},
                            std::pair{"stop", "Stop a running server gracefully (SIGTERM)"}}) {
    auto* c = app.add_subcommand(name, help);
    auto* pf = c->add_option("--pid-file", pid_file, "pid_file of the server");
    auto* so = c->add_option("--socket", socket_path, "admin socket of the server");
    pf->excludes(so);
    admin_cmds.push_back(c);
  }
  bool tasks_only = false;
  admin_cmds[1]->add_flag("--tasks", tasks_only, "Reload task workers only (SIGUSR2)");
  // swactor bus publish|stats: the message bus from outside.
  auto* bus = app.add_subcommand("bus", "Publish on a running server's message bus, or print its bus stats");
  bus->require_subcommand(1);
  std::string bus_topic, bus_text;
  auto* bus_pub = bus->add_subcommand("publish", "Publish MESSAGE (raw text) to TOPIC; prints how many received it");
  bus_pub->add_option("TOPIC", bus_topic, "topic, e.g. room.lobby")->required();
  bus_pub->add_option("MESSAGE", bus_text, "the message (one line of text)")->required();
  auto* bus_stats = bus->add_subcommand("stats", "Print the bus stats as JSON: published, delivered per "
                                                 "subscriber, dropped, by topic");
  for (auto* c : {bus_pub, bus_stats}) {
    auto* pf = c->add_option("--pid-file", pid_file, "pid_file of the server");
    auto* so = c->add_option("--socket", socket_path, "admin socket of the server");
    pf->excludes(so);
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string what = e.what();
    if (what.empty()) what = e.get_name();
    std::cerr << "swactor: " << what << " (see swactor --help)\n";
    return 2;
  }

  if (run->parsed()) return swactor::apps::cmd_run(run_file);
  for (auto* c : admin_cmds)
    if (c->parsed()) {
      std::string cmd = c->get_name();
      if (cmd == "reload" && tasks_only) cmd = "reload-tasks";
      return swactor::apps::cmd_admin(cmd, pid_file, socket_path);
    }
  if (bus_pub->parsed()) {
    if (!swactor::bus::valid_topic(bus_topic)) {
      std::cerr << "swactor bus publish: invalid topic \"" << bus_topic
                << "\": dot-separated tokens of printable characters, without spaces, '*' or '>'\n";
      return 2;
    }
    if (bus_text.find_first_of("\r\n") != std::string::npos) {
      std::cerr << "swactor bus publish: MESSAGE must be one line (no CR or LF)\n";
      return 2;
    }
    return swactor::apps::cmd_admin("bus publish", pid_file, socket_path, "bus_publish " + bus_topic + " " + bus_text);
  }
  if (bus_stats->parsed()) return swactor::apps::cmd_admin("bus stats", pid_file, socket_path, "bus_stats");
  if (check->parsed()) return cmd_check(check_file);
  if (version->parsed()) return cmd_version();
  if (modules->parsed()) return cmd_modules(modules_config);
  if (ref->parsed()) {
    auto md = swactor::config_reference_markdown(swactor::apps::builtin_modules());
    if (ref_out.empty()) {
      std::cout << md;
    } else {
      std::ofstream(ref_out) << md;
    }
    return 0;
  }
  return 0;  // bench runs from its own callback
}
