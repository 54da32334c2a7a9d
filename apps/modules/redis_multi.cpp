// redis_kv's transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH, and RESET (docs/modules.md,
// "Redis modules"). Replies and error texts are redis-server 7.0's.
//
// Between MULTI and EXEC a connection's commands are checked as redis-server checks them
// (unknown command, arity, subcommand, authentication) and queued; a refused one makes EXEC
// abort. EXEC runs the queue with nothing else of this worker in between; another worker's
// command may run between two of them (each command alone is atomic, see redis_kv.cpp), so
// with several workers a transaction is ordered but not isolated. A transaction that
// publishes waits for the other workers' counts at each PUBLISH, and other connections of
// this worker run meanwhile. WATCH needs a single worker (see cmd_watch) and remembers each
// key's type, expiry, and its value's size and hash; EXEC aborts when one of them differs (a
// key written with the same value, or changed and changed back, is not noticed, where
// redis-server would abort).

#include <climits>
#include <cstdint>
#include <functional>

#include "redis_kv.hpp"

namespace swactor::apps {

namespace kvx {  // redis_kv.cpp
std::int64_t now_ms();
bool is_pubsub_name(std::string_view n);
}  // namespace kvx

namespace {

namespace pr = protocols::redis;

// redis-server queues these inside MULTI too; here a protocol switch (HELLO) or a
// subscription (SUBSCRIBE and friends) in the middle of EXEC's reply is refused instead.
bool not_in_multi(const redis::command& cmd) {
  for (std::string_view n : {"hello", "subscribe", "unsubscribe", "psubscribe", "punsubscribe", "ssubscribe",
                             "sunsubscribe", "spublish", "pubsub"})
    if (cmd.is(n)) return true;
  return false;
}

// A queued command as the codec would have emitted it: one multibulk, appended to `out`.
void append_multibulk(std::string& out, const redis::command& cmd) {
  std::size_t n = 16;
  for (auto a : cmd.args()) n += a.size() + 16;
  out.reserve(out.size() + n);
  out += '*';
  out += std::to_string(cmd.size());
  out += "\r\n";
  for (auto a : cmd.args()) {
    out += '$';
    out += std::to_string(a.size());
    out += "\r\n";
    out.append(a);
    out += "\r\n";
  }
}

std::uint8_t queued_kind(int protocol) {
  return static_cast<std::uint8_t>(static_cast<std::uint8_t>(pr::ev::command) | (protocol >= 3 ? pr::resp3_flag : 0));
}

}  // namespace

bool redis_kv::multi_takes(client& c, const entry* e, redis::command& cmd) {
  // PUBLISH is checked and queued like any command; the other pub/sub commands are refused
  // below.
  const bool is_publish = !e && cmd.is("publish");
  if (refuses(c, checked_entry(e, cmd), cmd)) {
    // A refused EXEC ends the transaction (refuses() worded its error for EXEC).
    if (e && e->fn == &redis_kv::cmd_exec) end_multi(c);
    else c.multi_dirty = true;
    return true;
  }
  if (e && (e->fn == &redis_kv::cmd_exec || e->fn == &redis_kv::cmd_discard || e->fn == &redis_kv::cmd_multi ||
            e->fn == &redis_kv::cmd_watch || e->fn == &redis_kv::cmd_quit || e->fn == &redis_kv::cmd_reset))
    return false;  // they run now
  if (not_in_multi(cmd)) {
    cmd.reply().error("ERR Command not allowed inside a transaction");
    c.multi_dirty = true;
    return true;
  }
  const auto before = c.queued.size();
  append_multibulk(c.queued, cmd);
  if (c.multi_bytes() + 4 > opts_.multi_max_bytes || c.queued.size() > UINT32_MAX) {
    c.queued.resize(before);
    cmd.reply().error("ERR the transaction is too large: redis_kv holds at most " +
                      std::to_string(opts_.multi_max_bytes) +
                      " bytes of queued commands and watched keys per connection (the module's multi_max_bytes)");
    c.multi_dirty = true;
    return true;
  }
  c.queued_ends.push_back(static_cast<std::uint32_t>(c.queued.size()));
  c.multi_publishes = c.multi_publishes || is_publish;
  cmd.reply().status("QUEUED");
  return true;
}

void redis_kv::end_multi(client& c) {
  c.in_multi = false;
  c.multi_dirty = false;
  c.multi_publishes = false;
  // Capacity is not kept: a large transaction's buffer goes with it.
  std::string().swap(c.queued);
  std::vector<std::uint32_t>().swap(c.queued_ends);
  c.watched.clear();  // EXEC and DISCARD unwatch everything, as in redis-server
  c.watched_bytes = 0;
}

void redis_kv::exec_abort(redis::command& cmd) {
  // redis-server's execCommandAbort: "-EXECABORT Transaction discarded because of: <why>",
  // the why without its "ERR " (other codes, NOAUTH, stay).
  std::string why = cmd.reply_bytes();
  cmd.discard_reply();
  std::string_view w = why;
  if (w.starts_with("-ERR ")) w.remove_prefix(5);
  else if (w.starts_with("-")) w.remove_prefix(1);
  if (w.ends_with("\r\n")) w.remove_suffix(2);
  cmd.reply().error("EXECABORT Transaction discarded because of: " + std::string(w));
}

bool redis_kv::watch_holds(const client& c) {
  if (c.watched.empty()) return true;
  const auto now = kvx::now_ms();
  for (const auto& w : c.watched) {
    auto s = load(w.key, now, true);
    if (s.found != w.found || s.type != w.type || s.expire != w.expire || s.value.size() != w.size ||
        std::hash<std::string_view>{}(s.value) != w.hash)
      return false;
  }
  return true;
}

bool redis_kv::exec_queue::next(redis::command& q) {
  if (done == ends.size()) return false;
  const std::uint32_t from = done == 0 ? 0 : ends[done - 1];
  q.reset(std::string_view(queued).substr(from, ends[done] - from), kind);
  ++done;
  return true;
}

bool redis_kv::exec_begins(client& c, redis::command& cmd, exec_queue& x) {
  if (!c.in_multi) {
    cmd.reply().error("ERR EXEC without MULTI");
    return false;
  }
  if (c.multi_dirty) {
    end_multi(c);
    cmd.reply().error("EXECABORT Transaction discarded because of previous errors.");
    return false;
  }
  if (!watch_holds(c)) {
    end_multi(c);
    cmd.reply().null_array();
    return false;
  }
  x.queued = std::move(c.queued);
  x.ends = std::move(c.queued_ends);
  x.kind = queued_kind(cmd.protocol());
  end_multi(c);
  cmd.reply().array(x.ends.size());
  return true;
}

void redis_kv::run_queued(context& ctx, session_id s, client& c, redis::command& q) {
  const entry* e = find(q.name());
  if (!e) {
    redis::reply_unknown_command(q);  // not reached: multi_takes queued only known commands
    return;
  }
  execute(ctx, s, c, *e, q);
}

void redis_kv::add_to_exec(redis::command& exec, const redis::command& q, exec_queue& x) {
  if (!x.over && exec.reply_bytes().size() + q.reply_bytes().size() > opts_.multi_max_reply) {
    x.over = true;
    exec.discard_reply();  // the array so far goes: the connection gets an error, then closes
  }
  if (!x.over) exec.reply().encoded(q.reply_bytes());
}

void redis_kv::exec_end(redis::command& exec, const exec_queue& x) {
  if (!x.over) return;
  exec.reply().error("ERR the replies of this EXEC exceed redis_kv's multi_max_reply (" +
                     std::to_string(opts_.multi_max_reply) + " bytes): every command ran; closing the connection");
  exec.close_after_reply();
}

void redis_kv::cmd_exec(context& ctx, session_id s, client& c, redis::command& cmd) {
  exec_queue x;
  if (!exec_begins(c, cmd, x)) return;
  redis::command q;  // one, reset per command: its arguments point into x.queued
  while (x.next(q)) {
    run_queued(ctx, s, c, q);
    add_to_exec(cmd, q, x);
  }
  exec_end(cmd, x);
}

task<void> redis_kv::exec_waiting(context& ctx, session_id s, redis::command& cmd) {
  exec_queue x;
  if (!exec_begins(client_of(s), cmd, x)) co_return;
  redis::command q;
  while (x.next(q)) {
    // Looked up again for each: the connection may close while a PUBLISH waits (its state
    // goes with it; what is left still runs, as redis-server finishes an EXEC).
    if (q.is("publish")) (void)co_await pubsub_command(ctx, s, client_of(s), q);
    else run_queued(ctx, s, client_of(s), q);
    add_to_exec(cmd, q, x);
  }
  exec_end(cmd, x);
  if (!ctx.exists(s)) clients_.erase(s);  // client_of() made it again after on_close
}

void redis_kv::cmd_multi(context&, session_id, client& c, redis::command& cmd) {
  if (c.in_multi) return cmd.reply().error("ERR MULTI calls can not be nested");
  c.in_multi = true;
  c.multi_dirty = false;
  cmd.reply().status("OK");
}

void redis_kv::cmd_discard(context&, session_id, client& c, redis::command& cmd) {
  if (!c.in_multi) return cmd.reply().error("ERR DISCARD without MULTI");
  end_multi(c);
  cmd.reply().status("OK");
}

void redis_kv::cmd_watch(context& ctx, session_id, client& c, redis::command& cmd) {
  if (c.in_multi) return cmd.reply().error("ERR WATCH inside MULTI is not allowed");
  // EXEC checks the watched keys, then runs its commands: another worker's write could land
  // in between, and a compare-and-set built on WATCH would lose that update. One worker runs
  // nothing in between.
  if (ctx.workers() > 1)
    return cmd.reply().error("ERR WATCH needs a single worker with redis_kv (this server has " +
                             std::to_string(ctx.workers()) +
                             "): another worker's write could land between EXEC's check and its commands");
  const auto now = kvx::now_ms();
  for (std::size_t i = 1; i < cmd.size(); ++i) {
    const auto key = cmd[i];
    bool known = false;
    for (const auto& w : c.watched) known = known || w.key == key;
    if (known) continue;  // watched since an earlier WATCH: its first state counts
    const std::size_t cost = key.size() + sizeof(client::watched_key);
    if (c.multi_bytes() + cost > opts_.multi_max_bytes)
      return cmd.reply().error("ERR too many watched keys: redis_kv holds at most " +
                               std::to_string(opts_.multi_max_bytes) +
                               " bytes of queued commands and watched keys per connection (the module's "
                               "multi_max_bytes)");
    auto snap = load(key, now, true);
    c.watched.push_back({std::string(key), snap.found, snap.type, snap.expire, snap.value.size(),
                         std::hash<std::string_view>{}(snap.value)});
    c.watched_bytes += cost;
  }
  cmd.reply().status("OK");
}

void redis_kv::cmd_unwatch(context&, session_id, client& c, redis::command& cmd) {
  c.watched.clear();
  c.watched_bytes = 0;
  cmd.reply().status("OK");
}

// RESET: the connection as it was when it connected (redis-server's clearClientConnectionState
// as far as this module keeps state): no transaction, nothing watched, no subscriptions,
// RESP2, no name, and authenticated only when no password is set.
void redis_kv::cmd_reset(context& ctx, session_id s, client& c, redis::command& cmd) {
  end_multi(c);
  pubsub_closed(ctx, s, c);
  c.name.clear();
  c.authenticated = opts_.password.empty();
  if (cmd.protocol() != 2) cmd.switch_protocol(2);
  c.protocol = 2;
  cmd.reply().status("RESET");
}

}  // namespace swactor::apps
