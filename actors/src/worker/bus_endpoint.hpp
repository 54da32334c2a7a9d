#pragma once
// A process's end of the bus: what the context's bus calls send to the master's hub, and
// what the hub delivers here. Each module instance has a mailbox (a bounded channel) and one
// consumer coroutine, so its on_bus_message runs one message at a time in arrival order;
// a message that finds the mailbox full is dropped and counted. Requests wait for their
// reply on a channel of their own; a reply that comes after the timeout finds no waiter
// and is dropped.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "proc_layout.hpp"
#include "swactor/actors/app_config.hpp"
#include "swactor/actors/bus.hpp"
#include "swactor/actors/server_state.hpp"
#include "swactor/core/channel.hpp"
#include "swactor/core/loop.hpp"
#include "swactor/core/wait_group.hpp"
#include "swactor/ipc/link.hpp"
#include "swactor/ipc/messages.hpp"

namespace swactor::detail {

// What the runtime lends the endpoint.
class bus_host {
 public:
  // Runs the instance's on_bus_message; false when it threw (logged by the host).
  virtual task<bool> run_bus_handler(int module, const bus::message& m) = 0;
  virtual const bus::type_set& bus_types(int module) const = 0;
  // The runtime's own point-to-point messages ride the bus under tags starting with
  // "swactor." (a WebSocket push to a session another worker holds): true when it took one.
  virtual bool runtime_message(const ipc::bus_message& m) = 0;

 protected:
  ~bus_host() = default;
};

class bus_endpoint {
 public:
  bus_endpoint(swactor::loop& lp, const app_config& app, int process, ipc::link& master, proc_slot& slot,
               bus_host& host);

  // The instances this process runs (all of them; a user process: its module's only).
  // Their configured subscriptions are sent now; their mailboxes fill from now on.
  void open(std::vector<int> modules);
  // Their handlers start taking mail (after on_worker_start).
  void start();
  // No more mail is accepted; what is queued is still handled. wait() returns when the
  // consumers are done (or `timeout`).
  void close();
  task<std::error_code> wait(duration timeout) { return consumers_.wait(timeout); }

  std::error_code subscribe(int module, std::string_view pattern, bool on);
  std::error_code publish(int module, std::string_view topic, bus::payload p, bus::publish_options o);
  std::error_code send(int module, const bus::target& to, bus::payload p);
  task<result<bus::message>> request(int module, bus::target to, bus::payload p, duration timeout);
  std::error_code reply(int module, const bus::message& req, bus::payload p);

  // A bus_message from the master.
  void on_message(ipc::bus_message m);

 private:
  struct mailbox {
    int module = -1;
    std::unique_ptr<channel<bus::message>> mail;
  };
  mailbox* box_of(std::uint32_t module);
  task<void> consume(mailbox& box);
  std::error_code check_size(std::string_view topic, const bus::payload& p) const;
  result<ipc::bus_message> addressed(int module, const bus::target& to, bus::payload p, ipc::bus_op op);
  void answer(const bus::message& req, int module, ipc::bus_status st, std::string why);
  void note_invalid(const ipc::bus_message& m, const char* why);

  swactor::loop& lp_;
  const app_config& app_;
  proc_layout layout_;
  int process_;
  ipc::link& master_;
  proc_slot& slot_;
  bus_host& host_;
  std::vector<mailbox> boxes_;
  wait_group consumers_;
  bool started_ = false;
  bool closed_ = false;
  std::uint64_t seq_ = 0;
  std::uint64_t next_request_ = 0;
  std::unordered_map<std::uint64_t, std::shared_ptr<channel<result<bus::message>>>> pending_;
};

}  // namespace swactor::detail
