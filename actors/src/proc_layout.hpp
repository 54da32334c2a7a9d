#pragma once
// Server-wide process ids: workers 0..W-1, task workers W..W+T-1, user processes after
// (Swoole's numbering). One value type instead of id arithmetic at every call site.

#include <string>

#include "swactor/actors/app_config.hpp"
#include "swactor/actors/server.hpp"

namespace swactor::detail {

class proc_layout {
 public:
  explicit proc_layout(const app_config& app)
      : workers_(app.server.workers),
        tasks_(app.server.task_workers),
        users_(static_cast<int>(app.user_procs.size())) {}

  int workers() const noexcept { return workers_; }
  int task_workers() const noexcept { return tasks_; }
  int user_processes() const noexcept { return users_; }
  int total() const noexcept { return workers_ + tasks_ + users_; }
  int first_task() const noexcept { return workers_; }
  int first_user() const noexcept { return workers_ + tasks_; }

  bool valid(int id) const noexcept { return id >= 0 && id < total(); }
  proc_role role_of(int id) const noexcept {
    return id < workers_ ? proc_role::worker : id < first_user() ? proc_role::task : proc_role::user;
  }
  // Index within its role: worker#i, task#i, user#i.
  int index_of(int id) const noexcept {
    switch (role_of(id)) {
      case proc_role::worker: return id;
      case proc_role::task: return id - workers_;
      case proc_role::user: return id - first_user();
    }
    return id;
  }
  int id_of(proc_role r, int index) const noexcept {
    return r == proc_role::worker ? index : r == proc_role::task ? workers_ + index : first_user() + index;
  }
  std::string name(int id) const { return std::string(role_name(role_of(id))) + "#" + std::to_string(index_of(id)); }

  static const char* role_name(proc_role r) noexcept {
    return r == proc_role::worker ? "worker" : r == proc_role::task ? "task" : "user";
  }

 private:
  int workers_;
  int tasks_;
  int users_;
};

}  // namespace swactor::detail
