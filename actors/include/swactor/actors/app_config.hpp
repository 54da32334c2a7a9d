#pragma once
// The app.toml schema: [server], [modules.NAME]. Parsing validates module options against
// the module registry, so `swactor check` reports every mistake of a file in one run.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "swactor/actors/module.hpp"
#include "swactor/core/config.hpp"
#include "swactor/ipc/table.hpp"

namespace swactor {

struct server_config {
  std::string mode = "base";
  int workers = 2;
  int task_workers = 0;
  int reactor_threads = 2;
  std::string dispatch_mode = "connection";
  std::int64_t max_request = 0;
  std::int64_t max_request_grace = 0;
  std::chrono::milliseconds max_wait_time{3000};
  std::chrono::milliseconds restart_backoff_max{5000};
  std::string pid_file;
  std::string admin_socket;
  std::string log_level = "info";
  std::string log_file;
};

// One [[listen]] entry.
struct framing_config {
  std::string type = "raw";
  std::string delimiter = "\r\n";
  int length_size = 4;
  std::int64_t length_offset = 0;
  std::int64_t body_offset = 4;
  bool big_endian = true;
  bool is_signed = false;
  std::uint64_t max_length = 2u << 20;
};

struct listen_config {
  std::string url;
  std::string module;
  framing_config framing;
  std::uint64_t output_buffer_size = 8u << 20;
  std::chrono::milliseconds heartbeat_idle_time{0};
  std::chrono::milliseconds heartbeat_check_interval{0};
  int backlog = 512;
  bool tcp_nodelay = true;
  bool keepalive = false;
  bool reuse_port = false;
  int max_connections = 10000;
  std::uint64_t max_packet_size = 65536;
};

// One [tables.NAME]: a shared-memory table created by the master before any worker.
struct table_config {
  std::string name;
  ipc::table_schema schema;
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
  std::vector<listen_config> listen;
  std::vector<module_config> modules;
  std::vector<table_config> tables;
  // index of a module instance by name, or -1
  int module_index(const std::string& instance) const;
  // User processes (module index, index within the module), in id order; their ids start
  // at workers + task_workers. Filled by the server from the module instances.
  std::vector<std::pair<int, int>> user_procs;
};

const config::schema<server_config>& server_schema();
const config::schema<listen_config>& listen_schema();
const config::schema<framing_config>& framing_schema();

// Parses and validates; nullopt (with diagnostics) on any error.
std::optional<app_config> load_app_config(const std::string& path, const module_registry& reg,
                                          config::diagnostics& diag);
std::optional<app_config> parse_app_config(const toml::table& root, const std::string& path,
                                           const module_registry& reg,
                                           config::diagnostics& diag);

// Fills app.user_procs by asking each module instance how many user processes it wants.
void compute_user_procs(app_config& app, const module_registry& reg);

// docs/config.md, generated from the schemas and the registry.
std::string config_reference_markdown(const module_registry& reg);

}  // namespace swactor
