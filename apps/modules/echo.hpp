#pragma once
// `echo`: replies to every message exactly as framed (an eof message with its delimiter, a
// length message with its header) and to every datagram, to its sender.

#include "swactor/actors/context.hpp"
#include "swactor/actors/module.hpp"
#include "swactor/core/log.hpp"

namespace swactor::apps {

class echo final : public module_base {
 public:
  static constexpr std::string_view kName = "echo";
  static constexpr std::string_view kDoc = "Replies to every message and datagram with the same bytes.";
  struct options {};
  static config::schema<options> schema() { return {}; }
  explicit echo(options) {}

  // Nothing here waits: every message is answered inline, as it is framed.
  bool on_receive_now(context& ctx, session_id s, std::string_view msg) override {
    if (auto ec = ctx.send(s, msg)) log::warning("echo: send to session {} failed: {}", s, ec.message());
    return true;
  }
  // Messages that queued behind a running handler of their session (on_connect) come here.
  task<void> on_receive(context& ctx, session_id s, std::string msg) override {
    (void)on_receive_now(ctx, s, msg);
    co_return;
  }
  task<void> on_packet(context& ctx, const packet_info& p, std::string data) override {
    if (p.address.empty()) co_return;  // unnamed unixgram sender: nowhere to reply
    if (auto ec = ctx.sendto(p.address, data, p.listener))
      log::warning("echo: sendto {} failed: {}", p.address, ec.message());
  }
};

// `task_echo`: hands each message to a task worker and replies with its result.
class task_echo final : public module_base {
 public:
  static constexpr std::string_view kName = "task_echo";
  static constexpr std::string_view kDoc =
      "Passes each message to a task worker (task_wait) and replies with the result.";
  struct options {
    std::chrono::milliseconds timeout{5000};
  };
  static config::schema<options> schema() {
    config::schema<options> s;
    s.duration("timeout", &options::timeout, "How long to wait for the task worker.",
               std::chrono::milliseconds(1));
    return s;
  }
  explicit task_echo(options o) : opts_(o) {}

  task<void> on_receive(context& ctx, session_id s, std::string msg) override {
    auto r = co_await ctx.task_wait(std::move(msg), opts_.timeout);
    if (!r) {
      log::warning("task_echo: task for session {} failed: {}", s, r.error().message());
      co_return;
    }
    (void)ctx.send(s, *r);
  }
  task<std::string> on_task(context&, task_id, int, std::string payload) override { co_return payload; }

 private:
  options opts_;
};

}  // namespace swactor::apps
