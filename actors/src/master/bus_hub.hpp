#pragma once
// The bus's routing table, in the master (docs/architecture.md, "The bus"). Every process
// sends its subscriptions and messages here over its master link; the hub fans publishes
// out to the subscribed (process, module instance) pairs, routes direct messages and
// requests to one process (a given one, or any worker by round robin / least loaded), and
// routes replies back to the process that asked (a retiring one included). One loop, one
// link per process, so a publisher's messages reach each subscriber in the order sent.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "master/supervisor.hpp"

namespace swactor::detail {

class bus_hub {
 public:
  bus_hub(const app_config& app, server_state& state) : app_(app), state_(state), layout_(app) {
    rr_.assign(app.modules.size(), 0);
  }
  void set_supervisor(supervisor& s) noexcept { sup_ = &s; }

  void on_subscription(proc_handle& from, const ipc::bus_subscription& s);
  void on_message(proc_handle& from, ipc::bus_message m);
  void on_process_exit(proc_handle& h);
  // `swactor bus publish`: from the operator (sender -1). Returns the deliveries made.
  std::size_t publish_from_operator(const std::string& topic, std::string data);
  // `swactor bus stats` (also the "bus" object of `swactor stats`).
  nlohmann::json stats() const;

 private:
  struct sub {
    proc_handle* handle;
    int process;
    std::uint32_t module;
    std::string pattern;
  };
  struct counters {
    std::uint64_t published = 0;
    std::uint64_t delivered = 0;
  };
  struct route {
    std::weak_ptr<proc_handle> origin;
    std::uint64_t origin_request;
    std::uint32_t origin_module;
    const proc_handle* target;
  };

  void publish(proc_handle* from, ipc::bus_message m);
  void direct(proc_handle& from, ipc::bus_message m);
  void reply(ipc::bus_message m);
  void answer(proc_handle& to, std::uint64_t request, std::uint32_t module, ipc::bus_status st, std::string why);
  bool deliver(proc_handle& to, ipc::bus_message m);
  proc_handle* pick_worker(std::uint32_t module, std::uint8_t pick);
  void add_sub(sub s);
  void remove_subs(const proc_handle* h);
  counters& topic_counters(const std::string& topic);

  const app_config& app_;
  server_state& state_;
  proc_layout layout_;
  supervisor* sup_ = nullptr;
  // Exact topics by name; patterns with wildcards are matched one by one.
  std::unordered_map<std::string, std::vector<sub>> exact_;
  std::vector<sub> wild_;
  std::vector<std::uint32_t> rr_;  // per module: the next worker for `any` targets
  std::unordered_map<std::uint64_t, route> routes_;
  std::uint64_t next_route_ = 0;
  // Stats (this loop only).
  std::uint64_t published_ = 0, delivered_ = 0, sent_ = 0, no_subscriber_ = 0, dropped_no_route_ = 0,
                dropped_link_ = 0, requests_ = 0, replies_ = 0;
  std::map<std::string, counters> topics_;
  counters other_topics_;
  std::map<std::pair<int, std::uint32_t>, std::uint64_t> delivered_to_;  // publishes per subscriber
};

}  // namespace swactor::detail
