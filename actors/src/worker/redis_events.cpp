// Redis commands through module handlers: the worker side of a redis:// listener, the same
// in both modes (the codec runs here in base mode, in a reactor in process mode).
//
// Two paths. Inline (redis_now): when nothing of the session is queued, the command is
// parsed over the codec's bytes into a reused command object and the module's
// on_command_now answers it on the spot: no copy, no coroutine, no queue. Queued
// (serve_redis): otherwise, or when on_command_now declines, the event goes through the
// runner and on_command runs as a coroutine.

#include <array>

#include "swactor/actors/redis.hpp"
#include "swactor/core/log.hpp"
#include "worker/runtime.hpp"

namespace swactor::detail {

namespace pr = protocols::redis;

void worker_runtime::send_redis_reply(session_id s, redis::command& cmd) {
  // Every command gets exactly one reply, or the connection's later replies would answer
  // the wrong commands.
  if (!cmd.replied()) cmd.reply().error("ERR the command handler returned without a reply");
  auto out = cmd.closes()                    ? pr::out::reply_close
             : cmd.switched_protocol() == 3 ? pr::out::reply_resp3
             : cmd.switched_protocol() == 2 ? pr::out::reply_resp2
                                            : pr::out::reply;
  // A reply that cannot be queued (the client stopped reading past the output limit) would
  // leave the connection out of step: close it instead.
  if (auto ec = port_->send(s, cmd.reply_bytes(), static_cast<std::uint8_t>(out));
      ec == server_errc::output_buffer_full)
    (void)port_->close(s, true);
}

bool worker_runtime::redis_now(int listener, session_id s, std::string_view data, std::uint8_t kind) {
  if (now_busy_ || !runner_.idle_for_inline(s)) return false;
  const int mod = module_of(listener);
  if (mod < 0) return false;
  if (!redis_cmd_) redis_cmd_ = std::make_unique<redis::command>();
  auto& cmd = *redis_cmd_;
  cmd.reset(data, kind);
  if (!cmd.valid()) return false;  // the queued path answers it
  auto& m = *modules_[static_cast<std::size_t>(mod)];
  return run_now([&] { return m.on_command_now(*contexts_[static_cast<std::size_t>(mod)], s, cmd); },
                 [&](bool answered, std::exception_ptr error) {
                   if (error) {
                     log_failure(mod, "on_command_now", s, error);
                     cmd.discard_reply();
                     cmd.reply().error("ERR internal error in the command handler (see the server log)");
                     answered = true;
                   }
                   if (answered) send_redis_reply(s, cmd);
                   return answered;
                 });
}

void worker_runtime::redis_ahead(int listener, session_id s, std::span<const protocols::event> upcoming) {
  const int mod = module_of(listener);
  if (mod < 0) return;
  std::array<std::string_view, 64> raw;
  std::size_t n = 0;
  for (const auto& e : upcoming) {
    if (n == raw.size()) break;
    if ((e.kind & ~pr::resp3_flag) == static_cast<std::uint8_t>(pr::ev::command)) raw[n++] = e.data;
  }
  if (n == 0) return;
  // Only a hint: a module that throws here loses nothing but the prefetch.
  try {
    modules_[static_cast<std::size_t>(mod)]->on_commands_ahead(*contexts_[static_cast<std::size_t>(mod)], s,
                                                               std::span<const std::string_view>(raw.data(), n));
  } catch (...) {
  }
}

task<void> worker_runtime::serve_redis(int module, session_id s, std::string data, std::uint8_t kind) {
  redis::command cmd(std::move(data), kind);
  std::exception_ptr error;
  if (cmd.valid()) {
    try {
      co_await modules_[static_cast<std::size_t>(module)]->on_command(*contexts_[static_cast<std::size_t>(module)],
                                                                      s, cmd);
    } catch (...) {
      error = std::current_exception();
    }
  }
  log_failure(module, "on_command", s, error);
  if (!cmd.valid()) {
    cmd.reply().error("ERR Protocol error: malformed command");
  } else if (error) {
    cmd.discard_reply();  // maybe half an array
    cmd.reply().error("ERR internal error in the command handler (see the server log)");
  }
  send_redis_reply(s, cmd);
}

}  // namespace swactor::detail
