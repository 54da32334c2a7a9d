#pragma once
// The server: `swactor run` runs the master (manager actor, listeners, supervision, stats,
// admin socket); the master fork+execs `swactor worker ...` for every worker and task worker.

#include <optional>
#include <string>
#include <vector>

#include "swactor/actors/module.hpp"

namespace swactor {

// `swactor run FILE`: returns the exit status.
int run_master(const std::string& file, const module_registry& reg);

enum class proc_role { worker, task, user };

// The command line of `swactor worker ...`: built by the master and parsed by the worker
// with the same code (to_argv / parse), so the two cannot drift apart.
struct worker_args {
  proc_role role = proc_role::worker;
  int id = 0;        // server-wide process id (see proc_layout)
  int ipc_fd = -1;
  int config_fd = -1;
  int state_fd = -1;
  std::vector<int> listen_fds;   // base mode: one per [[listen]]
  std::vector<int> reactor_fds;  // process mode: the link to each reactor thread, in order
  std::vector<int> table_fds;    // one per [tables.NAME], in config order
  std::string config_name;       // for messages

  // argv for exec, starting with `exe` and "worker".
  std::vector<std::string> to_argv(const std::string& exe) const;
  // The arguments after "worker"; nullopt with `error` set on anything unexpected.
  static std::optional<worker_args> parse(const std::vector<std::string>& args, std::string& error);
  // Every descriptor the child must inherit.
  std::vector<int> inherited_fds() const;
};

// `swactor worker ...` (started by the master only): returns the exit status.
int run_worker(const worker_args& args, const module_registry& reg);

// `swactor worker-check --config-fd N --config-name NAME` (started by the master before a
// reload): what a new worker does before it serves, without serving: read the config the
// master holds, load its plugins as they are on disk now, build every module instance.
// Returns 0, or prints why not on stderr and returns 1.
int run_config_check(int config_fd, const std::string& config_name, const module_registry& reg);

}  // namespace swactor
