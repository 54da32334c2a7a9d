#pragma once
// Routes messages between processes through the master: tasks to the least loaded task
// worker and their results back to the process that asked (a retiring one included), pipe
// messages to their destination. The message bus will route here too.

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "master/bus_hub.hpp"
#include "master/supervisor.hpp"

namespace swactor::detail {

class router final : public process_messages {
 public:
  router(const app_config& app, server_state& state) : layout_(app), state_(state), bus_(app, state) {
    task_load_.assign(static_cast<std::size_t>(layout_.task_workers()), 0);
  }
  void set_supervisor(supervisor& s) noexcept {
    sup_ = &s;
    bus_.set_supervisor(s);
  }
  bus_hub& bus() noexcept { return bus_; }
  const bus_hub& bus() const noexcept { return bus_; }

  void on_process_message(proc_handle& from, ipc::any_message m) override;
  void on_process_exit(proc_handle& h) override;

 private:
  void route_task(proc_handle& from, ipc::task_request t);
  void route_result(ipc::task_result r);
  void route_pipe(proc_handle& from, ipc::pipe_message p);
  bool alive(int id) const;

  proc_layout layout_;
  server_state& state_;
  supervisor* sup_ = nullptr;
  bus_hub bus_;
  struct route {
    std::weak_ptr<proc_handle> origin;
    std::uint64_t origin_task;
    int task_worker;
    const proc_handle* target;  // the process that runs it (not its replacement)
  };
  std::unordered_map<std::uint64_t, route> routes_;
  std::uint64_t next_route_ = 0;
  std::vector<int> task_load_;
  int task_rr_ = 0;
};

}  // namespace swactor::detail
