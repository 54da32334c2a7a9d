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

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <vector>

#include "swactor/actors/context.hpp"
#include "swactor/actors/module.hpp"
#include "swactor/actors/redis.hpp"
#include "swactor/core/timers.hpp"

namespace swactor::ipc {
class table;
class row_ref;
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
    std::uint64_t multi_max_bytes = 16u << 20;
    std::uint64_t multi_max_reply = 64u << 20;
  };
  static config::schema<options> schema();
  explicit redis_kv(options o);

  task<void> on_worker_start(context& ctx) override;
  task<void> on_worker_stop(context& ctx) override;
  task<void> on_connect(context& ctx, session_id s) override;
  task<void> on_close(context& ctx, session_id s) override;
  task<void> on_command(context& ctx, session_id s, redis::command& cmd) override;
  bool on_command_now(context& ctx, session_id s, redis::command& cmd) override;
  // Prefetches the table rows of a pipelined batch's keys (each command's first argument).
  void on_commands_ahead(context& ctx, session_id s, std::span<const std::string_view> commands) override;
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
    // MULTI / EXEC / WATCH (redis_multi.cpp)
    bool in_multi = false;
    bool multi_dirty = false;         // a command was refused while queueing: EXEC aborts
    bool multi_publishes = false;     // a PUBLISH is queued: EXEC waits for the other workers
    std::string queued;               // the queued commands, each a multibulk again, back to back
    std::vector<std::uint32_t> queued_ends;  // where each ends in `queued`
    struct watched_key {
      std::string key;
      bool found = false;
      std::int64_t type = 0, expire = 0;
      std::size_t size = 0, hash = 0;  // of the value (not a copy of it)
    };
    std::vector<watched_key> watched;  // as each key was at WATCH
    std::size_t watched_bytes = 0;
    // What the transaction state holds, counted against multi_max_bytes.
    std::size_t multi_bytes() const noexcept { return queued.size() + 4 * queued_ends.size() + watched_bytes; }
  };

 private:
  using handler = void (redis_kv::*)(context&, session_id, client&, redis::command&);
  struct entry {
    handler fn;
    int arity;  // Redis's: n = exactly n arguments (name included), -n = at least n
    bool uses_table = true;  // false: answered without the table (PING, HELLO, AUTH, ...)
    bool container = false;  // CLIENT, COMMAND, FUNCTION: its subcommand is checked too
  };
  static const entry* find(std::string_view name);
  client& client_of(session_id s);  // this connection's state, made on first use
  // AUTH, HELLO, QUIT and RESET run before authentication; everything else after it.
  bool authorized(const client& c, const entry* e) const;
  // redis-server's checks before a command runs, in its order: unknown command, arity, a
  // container's subcommand, authentication. True when `cmd` was refused (the error written;
  // for EXEC worded as redis-server words it, see exec_abort()). Inline for the outcome of
  // nearly every command (all pass); refusal() makes the checks again and writes the error.
  bool refuses(const client& c, const entry* e, redis::command& cmd) {
    if (e && !e->container && c.authenticated && redis::arity_ok(cmd, e->arity)) [[likely]]
      return false;
    return refusal(c, e, cmd);
  }
  bool refusal(const client& c, const entry* e, redis::command& cmd);
  // The entry those checks use: `e`, or for a pub/sub command (its own path, not in the
  // table) one with its arity (PUBLISH 3; the others check theirs as they run).
  static const entry* checked_entry(const entry* e, const redis::command& cmd);
  // The command, once it is known, checked and allowed.
  void execute(context& ctx, session_id s, client& c, const entry& e, redis::command& cmd);
  static const redis::command_table<entry>& commands();  // by name, any case

  // Columns of the table (-1 until on_worker_start found them).
  ipc::table* table_ = nullptr;
  int col_type_ = -1, col_expire_ = -1, col_value_ = -1;
  std::size_t value_size_ = 0;
  std::string table_problem_;  // why the table is unusable (set by on_worker_start)
  std::int64_t started_ms_ = 0;
  options opts_;
  std::unordered_map<session_id, client> clients_;
  // The expiry sweep: a timer in worker 0 (one sweeper is enough: the table is shared).
  void sweep(context& ctx);
  void start_sweep(context& ctx);
  timer_id sweep_timer_ = 0;
  std::uint64_t sweep_cursor_ = 0;

  // -- commands (redis_kv.cpp) --
  // (declared by the command implementation; one member per command family)
#define SWACTOR_REDIS_CMD(fn) void fn(context& ctx, session_id s, client& c, redis::command& cmd);
  SWACTOR_REDIS_CMD(cmd_ping)
  SWACTOR_REDIS_CMD(cmd_echo)
  SWACTOR_REDIS_CMD(cmd_hello)
  SWACTOR_REDIS_CMD(cmd_auth)
  SWACTOR_REDIS_CMD(cmd_select)
  SWACTOR_REDIS_CMD(cmd_quit)
  SWACTOR_REDIS_CMD(cmd_client)
  SWACTOR_REDIS_CMD(cmd_command)
  // One COMMAND INFO entry (`doc` is a kvx::command_doc, private to redis_kv.cpp).
  static void command_entry(redis::writer& w, const void* doc);
  SWACTOR_REDIS_CMD(cmd_info)
  SWACTOR_REDIS_CMD(cmd_function)
  SWACTOR_REDIS_CMD(cmd_get)
  SWACTOR_REDIS_CMD(cmd_set)
  SWACTOR_REDIS_CMD(cmd_setnx)
  SWACTOR_REDIS_CMD(cmd_setex)
  SWACTOR_REDIS_CMD(cmd_psetex)
  SWACTOR_REDIS_CMD(cmd_mget)
  SWACTOR_REDIS_CMD(cmd_mset)
  SWACTOR_REDIS_CMD(cmd_msetnx)
  SWACTOR_REDIS_CMD(cmd_getset)
  SWACTOR_REDIS_CMD(cmd_getdel)
  SWACTOR_REDIS_CMD(cmd_getex)
  SWACTOR_REDIS_CMD(cmd_append)
  SWACTOR_REDIS_CMD(cmd_strlen)
  SWACTOR_REDIS_CMD(cmd_getrange)
  SWACTOR_REDIS_CMD(cmd_setrange)
  SWACTOR_REDIS_CMD(cmd_incr)
  SWACTOR_REDIS_CMD(cmd_incrby)
  SWACTOR_REDIS_CMD(cmd_decr)
  SWACTOR_REDIS_CMD(cmd_decrby)
  SWACTOR_REDIS_CMD(cmd_incrbyfloat)
  SWACTOR_REDIS_CMD(cmd_del)
  SWACTOR_REDIS_CMD(cmd_exists)
  SWACTOR_REDIS_CMD(cmd_type)
  SWACTOR_REDIS_CMD(cmd_expire)
  SWACTOR_REDIS_CMD(cmd_pexpire)
  SWACTOR_REDIS_CMD(cmd_expireat)
  SWACTOR_REDIS_CMD(cmd_pexpireat)
  SWACTOR_REDIS_CMD(cmd_expiretime)
  SWACTOR_REDIS_CMD(cmd_pexpiretime)
  SWACTOR_REDIS_CMD(cmd_ttl)
  SWACTOR_REDIS_CMD(cmd_pttl)
  SWACTOR_REDIS_CMD(cmd_persist)
  SWACTOR_REDIS_CMD(cmd_keys)
  SWACTOR_REDIS_CMD(cmd_scan)
  SWACTOR_REDIS_CMD(cmd_rename)
  SWACTOR_REDIS_CMD(cmd_renamenx)
  SWACTOR_REDIS_CMD(cmd_dbsize)
  SWACTOR_REDIS_CMD(cmd_flushdb)
  SWACTOR_REDIS_CMD(cmd_randomkey)
  SWACTOR_REDIS_CMD(cmd_touch)
  SWACTOR_REDIS_CMD(cmd_hset)
  SWACTOR_REDIS_CMD(cmd_hmset)
  SWACTOR_REDIS_CMD(cmd_hsetnx)
  SWACTOR_REDIS_CMD(cmd_hget)
  SWACTOR_REDIS_CMD(cmd_hmget)
  SWACTOR_REDIS_CMD(cmd_hgetall)
  SWACTOR_REDIS_CMD(cmd_hkeys)
  SWACTOR_REDIS_CMD(cmd_hvals)
  SWACTOR_REDIS_CMD(cmd_hdel)
  SWACTOR_REDIS_CMD(cmd_hexists)
  SWACTOR_REDIS_CMD(cmd_hlen)
  SWACTOR_REDIS_CMD(cmd_hincrby)
  SWACTOR_REDIS_CMD(cmd_hincrbyfloat)
  SWACTOR_REDIS_CMD(cmd_hstrlen)
  // transactions and RESET (redis_multi.cpp)
  SWACTOR_REDIS_CMD(cmd_multi)
  SWACTOR_REDIS_CMD(cmd_exec)
  SWACTOR_REDIS_CMD(cmd_discard)
  SWACTOR_REDIS_CMD(cmd_watch)
  SWACTOR_REDIS_CMD(cmd_unwatch)
  SWACTOR_REDIS_CMD(cmd_reset)
#undef SWACTOR_REDIS_CMD

  // -- transactions (redis_multi.cpp) --
  // Inside MULTI, before any other rule: refuses `cmd` (an error; EXEC then aborts) or queues
  // it (+QUEUED). True when it did either; false for the commands that run at once (EXEC,
  // DISCARD, MULTI, WATCH, QUIT, RESET).
  bool multi_takes(client& c, const entry* e, redis::command& cmd);
  // EXEC of a transaction that publishes (client::multi_publishes): PUBLISH waits for the
  // other workers' counts.
  task<void> exec_waiting(context& ctx, session_id s, redis::command& cmd);
  // EXEC's queue, taken out of the client: next() makes `q` each queued command in turn.
  struct exec_queue {
    std::string queued;
    std::vector<std::uint32_t> ends;
    std::uint8_t kind = 0;  // the event kind the commands were decoded as (the protocol)
    std::size_t done = 0;   // commands handed out by next()
    bool over = false;      // the replies passed multi_max_reply: the rest are dropped
    bool next(redis::command& q);
  };
  // EXEC's checks (no MULTI, EXECABORT, a WATCHed key changed), then the queue taken out of
  // the client into `x` and the reply's array head written; false when the checks answered.
  bool exec_begins(client& c, redis::command& cmd, exec_queue& x);
  bool watch_holds(const client& c);
  void run_queued(context& ctx, session_id s, client& c, redis::command& q);
  // One queued command's reply into EXEC's array, until the array passes multi_max_reply
  // (x.over: the rest still runs, its replies dropped).
  void add_to_exec(redis::command& exec, const redis::command& q, exec_queue& x);
  // After the last command: the error and the close when the replies were too large.
  void exec_end(redis::command& exec, const exec_queue& x);
  static void end_multi(client& c);
  // A refused EXEC: its error (already written) as redis-server words it for EXEC.
  static void exec_abort(redis::command& cmd);

  // -- helpers (redis_kv.cpp) --
  struct snapshot {  // a copy of one live row
    bool found = false;
    std::int64_t type = 0;
    std::int64_t expire = 0;
    std::string value;
  };
  bool check_key(redis::command& cmd, std::string_view key);
  bool alive(ipc::row_ref& r, std::int64_t now) const;  // erases an expired row (lazy expiry)
  snapshot load(std::string_view key, std::int64_t now, bool with_value);
  std::error_code write(ipc::row_ref& r, std::int64_t type, std::string_view value, std::int64_t expire);
  void reply_write_error(redis::command& cmd, std::error_code ec);
  void reply_too_large(redis::command& cmd);
  void set_generic(redis::command& cmd, int flags, std::string_view key, std::string_view value,
                   std::string_view expire, bool expire_given, int ok_reply);
  void expire_generic(redis::command& cmd, std::int64_t base, bool seconds);
  void ttl_generic(redis::command& cmd, bool ms, bool absolute);
  void incr_generic(redis::command& cmd, std::int64_t by);
  void rename_generic(redis::command& cmd, bool nx);
  void hash_fields(redis::command& cmd, bool keys, bool values);
  template <class F>
  void hash_update(redis::command& cmd, F&& fn);

  // -- pub/sub (redis_pubsub.cpp) --
  // True when the command was a pub/sub one (answered here); PUBLISH awaits the counts of
  // the other workers.
  task<bool> pubsub_command(context& ctx, session_id s, client& c, redis::command& cmd);
  // RESP2 subscribed connections may only use (P)SUBSCRIBE, (P)UNSUBSCRIBE, PING, QUIT,
  // RESET: true (and the error written) when `cmd` is not one of them.
  bool pubsub_refuses(client& c, redis::command& cmd);
  static std::string full_name(const redis::command& cmd);
  static bool subcommand_refused(redis::command& cmd);
  void pubsub_closed(context& ctx, session_id s, client& c);
  // Local delivery of one published message; returns the receivers here.
  std::int64_t deliver(context& ctx, std::string_view channel, std::string_view message);
  // Who subscribed here: channel -> sessions, pattern -> sessions (in subscription order).
  std::unordered_map<std::string, std::vector<session_id>> channel_subs_;
  std::vector<std::pair<std::string, std::vector<session_id>>> pattern_subs_;
  void push_to(context& ctx, session_id s, std::string_view kind, std::string_view pattern, std::string_view channel,
               std::string_view message);
};

}  // namespace swactor::apps
