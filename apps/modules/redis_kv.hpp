#pragma once
// `redis_kv`: a Redis-compatible key-value store on a shared-memory [tables.NAME], so every
// worker sees the same data (docs/modules.md, "Redis modules"). Strings, hashes, expiry
// (lazy on access plus a periodic sampled sweep, as Redis does), connection commands, AUTH,
// and pub/sub across every worker through the bus.
//
// Size model: one table row per key. Columns: `type` (int: 1 string, 2 hash), `expire` (int:
// unix milliseconds, 0 = none) and `value` (string: the value, or the hash's fields and
// values serialized). A value (a whole hash, serialized) longer than the `value` column is
// refused with an error naming the limit; a key longer than the table's key size (63 bytes)
// likewise; nothing is stored then.

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "swactor/actors/context.hpp"
#include "swactor/actors/module.hpp"
#include "swactor/actors/redis.hpp"
#include "swactor/core/timers.hpp"

namespace swactor::ipc {
class table;
}

namespace swactor::apps {

class redis_kv final : public module_base {
 public:
  static constexpr std::string_view kName = "redis_kv";
  static constexpr std::string_view kDoc =
      "Redis-compatible key-value store (strings, hashes, expiry, pub/sub) on a shared [tables.NAME]; "
      "for redis:// listeners.";

  struct options {
    std::string table = "kv";
    std::string password;  // "" = no AUTH needed
    std::chrono::milliseconds sweep_interval{100};
    std::int64_t sweep_keys = 20;
  };
  static config::schema<options> schema();
  explicit redis_kv(options o);

  task<void> on_worker_start(context& ctx) override;
  task<void> on_worker_stop(context& ctx) override;
  task<void> on_connect(context& ctx, session_id s) override;
  task<void> on_close(context& ctx, session_id s) override;
  task<void> on_command(context& ctx, session_id s, redis::command& cmd) override;
  task<void> on_bus_message(context& ctx, const bus::message& m) override;

  // -- per connection --
  struct client {
    bool authenticated = false;
    int protocol = 2;  // what the connection speaks (its last command's, or HELLO's)
    std::string name;  // CLIENT SETNAME
    // pub/sub (redis_pubsub.cpp)
    std::vector<std::string> channels;  // in subscription order
    std::vector<std::string> patterns;
    std::size_t subscriptions() const noexcept { return channels.size() + patterns.size(); }
  };

 private:
  using handler = void (redis_kv::*)(context&, session_id, client&, redis::command&);
  struct entry {
    handler fn;
    int arity;  // Redis's: n = exactly n arguments (name included), -n = at least n
  };
  static const entry* find(std::string_view name);

  // Columns of the table (-1 until on_worker_start found them).
  ipc::table* table_ = nullptr;
  int col_type_ = -1, col_expire_ = -1, col_value_ = -1;
  std::size_t value_size_ = 0;
  options opts_;
  std::unordered_map<session_id, client> clients_;
  // The expiry sweep: a timer in worker 0 (one sweeper is enough: the table is shared).
  void sweep(context& ctx);
  timer_id sweep_timer_ = 0;
  std::uint64_t sweep_cursor_ = 0;

  // -- commands (redis_kv.cpp) --
  // (declared by the command implementation; one member per command family)
#define SWACTOR_REDIS_CMD(fn) void fn(context& ctx, session_id s, client& c, redis::command& cmd);
  SWACTOR_REDIS_CMD(cmd_ping)
  SWACTOR_REDIS_CMD(cmd_echo)
  SWACTOR_REDIS_CMD(cmd_get)
  SWACTOR_REDIS_CMD(cmd_set)
#undef SWACTOR_REDIS_CMD

  // -- pub/sub (redis_pubsub.cpp) --
  // True when the command was a pub/sub one (answered here); PUBLISH awaits the counts of
  // the other workers.
  task<bool> pubsub_command(context& ctx, session_id s, client& c, redis::command& cmd);
  // RESP2 subscribed connections may only use (P)SUBSCRIBE, (P)UNSUBSCRIBE, PING, QUIT,
  // RESET: true (and the error written) when `cmd` is not one of them.
  bool pubsub_refuses(client& c, redis::command& cmd);
  void pubsub_closed(context& ctx, session_id s, client& c);
  // Local delivery of one published message; returns the receivers here.
  std::int64_t deliver(context& ctx, std::string_view channel, std::string_view message);
  std::int64_t subscribed_here_ = 0;  // channel + pattern subscriptions of this worker's clients
};

}  // namespace swactor::apps
