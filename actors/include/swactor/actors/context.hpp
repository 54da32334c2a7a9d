#pragma once
// What a handler can do. One context per worker process (or per standalone run); handlers
// receive it by reference. Single-threaded: it belongs to the worker's loop.

#include <string>

#include "swactor/core/loop.hpp"

namespace swactor {

class context {
 public:
  context(swactor::loop& lp, std::string role, int id) : loop_(lp), role_(std::move(role)), id_(id) {}
  virtual ~context() = default;

  swactor::loop& loop() noexcept { return loop_; }
  swactor::timers& timers() { return loop_.timers(); }
  asio::io_context::executor_type executor() noexcept { return loop_.executor(); }

  // "worker", "task" or "standalone", and the id within that role.
  const std::string& role() const noexcept { return role_; }
  int worker_id() const noexcept { return id_; }

 private:
  swactor::loop& loop_;
  std::string role_;
  int id_;
};

}  // namespace swactor
