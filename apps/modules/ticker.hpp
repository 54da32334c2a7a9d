#pragma once
// `ticker`: logs a line every `interval` on every worker. The default app's heartbeat, and
// the smallest example of a module with options and a timer.

#include <chrono>
#include <string>

#include "swactor/actors/context.hpp"
#include "swactor/actors/module.hpp"
#include "swactor/core/log.hpp"

namespace swactor::apps {

class ticker final : public module_base {
 public:
  static constexpr std::string_view kName = "ticker";
  static constexpr std::string_view kDoc = "Logs a notice line every `interval` on each worker.";

  struct options {
    std::chrono::milliseconds interval{1000};
    std::string message = "tick";
  };

  static config::schema<options> schema() {
    config::schema<options> s;
    s.duration("interval", &options::interval, "Time between two lines.",
               std::chrono::milliseconds(1))
        .string("message", &options::message, "Text of each line (followed by the count).");
    return s;
  }

  explicit ticker(options o) : opts_(std::move(o)) {}

  task<void> on_worker_start(context& ctx) override {
    timer_ = ctx.timers().tick(opts_.interval, [this](timer_id) {
      log::notice("{} {} #{}", instance_name(), opts_.message, ++count_);
    });
    co_return;
  }

  task<void> on_worker_stop(context& ctx) override {
    ctx.timers().clear(timer_);
    co_return;
  }

 private:
  options opts_;
  timer_id timer_ = 0;
  std::uint64_t count_ = 0;
};

}  // namespace swactor::apps
