#pragma once
// The manager's supervision: starts every worker, task worker and user process (fork+exec
// of `swactor worker ...`), restarts one that dies (same id, with back-off when it keeps
// crashing), reloads (replacements first, old ones drain), and stops them all. Messages
// from the processes go to the router; this type only keeps processes alive.

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "proc_layout.hpp"
#include "swactor/actors/app_config.hpp"
#include "swactor/actors/server_state.hpp"
#include "swactor/core/loop.hpp"
#include "swactor/core/wait_group.hpp"
#include "swactor/ipc/link.hpp"
#include "swactor/ipc/messages.hpp"
#include "swactor/ipc/process.hpp"

namespace swactor::detail {

struct proc_handle {
  int id = 0;
  std::optional<ipc::process> proc;
  std::optional<ipc::link> link;
  pid_t pid = 0;
  bool retiring = false;
  wait_group ready{1};
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
};

// What a started process inherits (descriptors owned by the master).
struct spawn_plan {
  std::string exe;
  std::string config_name;
  int config_fd = -1;
  int state_fd = -1;
  std::vector<int> listen_fds;  // base mode workers only
  std::vector<int> table_fds;
  // Process mode: a fresh link to every reactor thread for worker `id`; returns the child
  // ends (the parent ends are handed to the reactors by the callback).
  std::function<std::vector<int>(int id)> reactor_links;
  std::function<void(int id, bool started)> reactor_links_done;
};

// Where messages from processes go (the router).
class process_messages {
 public:
  virtual void on_process_message(proc_handle& from, ipc::any_message m) = 0;
  virtual void on_process_exit(proc_handle& h) = 0;

 protected:
  ~process_messages() = default;
};

class supervisor {
 public:
  supervisor(swactor::loop& lp, const app_config& app, server_state& state, spawn_plan plan,
             process_messages& sink);

  void start_all();
  // Refused (logged, nothing replaced) when a new process could not start its modules.
  task<void> reload(bool tasks_only);
  // What the last reload asked for came to (`swactor reload` waits for it): `seq` counts
  // requests; state is "checking" (new code and certificates being tried), "reloading"
  // (accepted: new processes start), "done", "refused" or "ignored" (one was running).
  struct reload_outcome {
    std::uint64_t seq = 0;
    std::string state = "none";
    std::string error;
    std::size_t replaced = 0;
  };
  const reload_outcome& last_reload() const noexcept { return last_reload_; }
  // A reload refused before it reached the supervisor (new TLS certificates did not load).
  void reload_refused(std::string why) {
    ++last_reload_.seq;
    last_reload_.state = "refused";
    last_reload_.error = std::move(why);
    last_reload_.replaced = 0;
  }
  task<void> stop_all();
  bool stopping() const noexcept { return stopping_; }

  // The registered process of an id (nullptr when none runs).
  proc_handle* current(int id) const;
  // The live process of an id with that pid, current or retiring (nullptr when none).
  proc_handle* process(int id, pid_t pid) const;
  // A handle that stays valid while the process lives (a retiring one included).
  std::weak_ptr<proc_handle> handle_of(proc_handle* h) const;
  pid_t pid_of(int id) const;
  const proc_layout& layout() const noexcept { return layout_; }

 private:
  struct slot {
    std::shared_ptr<proc_handle> current;
    int crash_streak = 0;
  };
  std::shared_ptr<proc_handle> spawn_proc(int id);
  task<void> watch(std::shared_ptr<proc_handle> h);
  task<void> read_link(std::shared_ptr<proc_handle> h);
  void release_connections(proc_handle& h);
  // "" when a new process would start its modules (plugins as they are on disk now), else why not.
  task<std::string> check_new_code();

  swactor::loop& lp_;
  const app_config& app_;
  server_state& state_;
  proc_layout layout_;
  spawn_plan plan_;
  process_messages& sink_;
  std::vector<slot> slots_;
  std::unordered_map<proc_handle*, std::weak_ptr<proc_handle>> handles_;  // every live process
  wait_group watchers_;  // watch() coroutines still running: stop_all() lets them finish
  wait_group jobs_;      // a reload() in progress: stop_all() lets it finish
  wait_group stopped_{1};  // done by stop_all(): ends restart back-offs at once
  ipc::process* check_proc_ = nullptr;  // a reload's worker-check while it runs
  bool stopping_ = false;
  bool reloading_ = false;
  reload_outcome last_reload_;
};

}  // namespace swactor::detail
