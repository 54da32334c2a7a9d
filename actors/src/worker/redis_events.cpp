// Redis commands through module handlers: the worker side of a redis:// listener, the same
// in both modes (the codec runs here in base mode, in a reactor in process mode).

#include "swactor/actors/redis.hpp"
#include "worker/runtime.hpp"

namespace swactor::detail {

namespace pr = protocols::redis;

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
  // Every command gets exactly one reply, or the connection's later replies would answer
  // the wrong commands.
  if (!cmd.valid())
    cmd.reply().error("ERR Protocol error: malformed command");
  else if (error) {
    cmd.discard_reply();  // maybe half an array
    cmd.reply().error("ERR internal error in the command handler (see the server log)");
  }
  else if (!cmd.replied())
    cmd.reply().error("ERR the command handler returned without a reply");
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

}  // namespace swactor::detail
