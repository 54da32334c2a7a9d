#pragma once
// The server: `swactor run` runs the master (manager actor, listeners, supervision, stats,
// admin socket); the master fork+execs `swactor worker ...` for every worker and task worker.

#include <string>
#include <vector>

#include "swactor/actors/module.hpp"

namespace swactor {

// `swactor run FILE`: returns the exit status.
int run_master(const std::string& file, const module_registry& reg);

struct worker_args {
  std::string role;  // "worker", "task" or "user"
  int id = 0;        // server-wide id (task workers: workers + index)
  int ipc_fd = -1;
  int config_fd = -1;
  int state_fd = -1;
  std::vector<int> listen_fds;  // one per [[listen]] (base mode), -1 when not inherited
  std::vector<int> reactor_fds;
  std::vector<int> table_fds;    // one per [tables.NAME], in config order  // process mode: the link to each reactor thread, in order
  std::string config_name;      // for messages
};

// `swactor worker ...` (started by the master only): returns the exit status.
int run_worker(const worker_args& args, const module_registry& reg);

}  // namespace swactor
