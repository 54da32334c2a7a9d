// redis_kv's pub/sub: SUBSCRIBE and friends per connection, PUBLISH to every worker through
// the bus (docs/modules.md, "Redis modules").
//
// Each worker keeps the subscriptions of its own connections. PUBLISH delivers here, then
// asks every other worker's instance (a bus request) to deliver and say how many clients it
// reached, so its reply is the server-wide count, as redis-server's is.

#include <algorithm>

#include "redis_kv.hpp"
#include "swactor/core/log.hpp"
#include "swactor/core/wire.hpp"

namespace swactor::apps {

namespace {

// The RESP2 context rule of redis-server's processCommand.
bool allowed_when_subscribed(const redis::command& cmd) {
  for (std::string_view n : {"ping", "subscribe", "ssubscribe", "unsubscribe", "sunsubscribe", "psubscribe",
                             "punsubscribe", "quit", "reset"})
    if (cmd.is(n)) return true;
  return false;
}

void remove_session(std::vector<session_id>& v, session_id s) { std::erase(v, s); }

// A subscribe / unsubscribe confirmation: an array in RESP2, a push in RESP3.
void confirm(redis::writer& w, std::string_view kind, const std::string* channel, std::size_t count) {
  w.push(3);
  w.bulk(kind);
  if (channel)
    w.bulk(*channel);
  else
    w.null();
  w.integer(static_cast<long long>(count));
}

constexpr auto kRequestTimeout = std::chrono::seconds(2);

}  // namespace

bool redis_kv::pubsub_refuses(client& c, redis::command& cmd) {
  if (c.subscriptions() == 0 || c.protocol != 2 || allowed_when_subscribed(cmd)) return false;
  cmd.reply().error("ERR Can't execute '" + full_name(cmd) +
                    "': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context");
  if (cmd.is("exec")) exec_abort(cmd);
  return true;
}

task<bool> redis_kv::pubsub_command(context& ctx, session_id s, client& c, redis::command& cmd) {
  auto& w = cmd.reply();
  if (cmd.is("ping") && c.subscriptions() > 0 && c.protocol == 2) {
    if (cmd.size() > 2) {
      redis::reply_wrong_arity(cmd);
      co_return true;
    }
    w.array(2);
    w.bulk("pong");
    w.bulk(cmd.size() == 2 ? cmd[1] : std::string_view());
    co_return true;
  }
  const bool sub = cmd.is("subscribe"), psub = cmd.is("psubscribe");
  if (sub || psub) {
    if (cmd.size() < 2) {
      redis::reply_wrong_arity(cmd);
      co_return true;
    }
    auto& mine = sub ? c.channels : c.patterns;
    for (std::size_t i = 1; i < cmd.size(); ++i) {
      std::string name(cmd[i]);
      if (std::find(mine.begin(), mine.end(), name) == mine.end()) {
        mine.push_back(name);
        if (sub) {
          channel_subs_[name].push_back(s);
        } else {
          auto it = std::find_if(pattern_subs_.begin(), pattern_subs_.end(), [&](auto& p) { return p.first == name; });
          if (it == pattern_subs_.end()) it = pattern_subs_.insert(pattern_subs_.end(), {name, {}});
          it->second.push_back(s);
        }
      }
      confirm(w, sub ? "subscribe" : "psubscribe", &name, c.subscriptions());
    }
    co_return true;
  }
  const bool unsub = cmd.is("unsubscribe"), punsub = cmd.is("punsubscribe");
  if (unsub || punsub) {
    auto& mine = unsub ? c.channels : c.patterns;
    std::vector<std::string> names;
    if (cmd.size() == 1)
      names = mine;  // all of them
    else
      for (std::size_t i = 1; i < cmd.size(); ++i) names.emplace_back(cmd[i]);
    const char* kind = unsub ? "unsubscribe" : "punsubscribe";
    if (names.empty()) confirm(w, kind, nullptr, c.subscriptions());
    for (const auto& name : names) {
      auto it = std::find(mine.begin(), mine.end(), name);
      if (it != mine.end()) {
        mine.erase(it);
        if (unsub) {
          auto ch = channel_subs_.find(name);
          if (ch != channel_subs_.end()) {
            remove_session(ch->second, s);
            if (ch->second.empty()) channel_subs_.erase(ch);
          }
        } else {
          auto p = std::find_if(pattern_subs_.begin(), pattern_subs_.end(), [&](auto& e) { return e.first == name; });
          if (p != pattern_subs_.end()) {
            remove_session(p->second, s);
            if (p->second.empty()) pattern_subs_.erase(p);
          }
        }
      }
      confirm(w, kind, &name, c.subscriptions());
    }
    co_return true;
  }
  if (cmd.is("publish")) {
    if (cmd.size() != 3) {
      redis::reply_wrong_arity(cmd);
      co_return true;
    }
    std::string channel(cmd[1]), message(cmd[2]);
    std::int64_t receivers = deliver(ctx, channel, message);
    if (ctx.role() == "worker") {
      std::string enc;
      wire::writer out(enc);
      out.str(channel);
      out.str(message);
      for (int id = 0; id < ctx.workers(); ++id) {
        if (id == ctx.worker_id()) continue;
        auto r = co_await ctx.request(bus::target::worker(id, instance_name()), bus::payload::raw(enc), kRequestTimeout);
        if (!r) {
          log::warning("redis_kv {}: PUBLISH to worker {}: {}", instance_name(), id, r.error().message());
          continue;
        }
        wire::reader in(r->data);
        auto n = in.i64();
        if (in.done()) receivers += n;
      }
    }
    cmd.reply().integer(receivers);
    co_return true;
  }
  co_return false;
}

void redis_kv::push_to(context& ctx, session_id s, std::string_view kind, std::string_view pattern,
                       std::string_view channel, std::string_view message) {
  auto it = clients_.find(s);
  if (it == clients_.end()) return;
  std::string out;
  redis::writer w(out, it->second.protocol);
  w.push(pattern.empty() ? 3 : 4);
  w.bulk(kind);
  if (!pattern.empty()) w.bulk(pattern);
  w.bulk(channel);
  w.bulk(message);
  // A subscriber that stopped reading past its output limit loses messages, as a Redis
  // client past client-output-buffer-limit pubsub is cut off: close it.
  if (ctx.send(s, out) == server_errc::output_buffer_full) (void)ctx.close(s, true);
}

std::int64_t redis_kv::deliver(context& ctx, std::string_view channel, std::string_view message) {
  std::int64_t n = 0;
  if (auto it = channel_subs_.find(std::string(channel)); it != channel_subs_.end()) {
    auto sessions = it->second;  // push_to may close one (and its on_close edits the list)
    for (auto s : sessions) {
      push_to(ctx, s, "message", {}, channel, message);
      ++n;
    }
  }
  auto patterns = pattern_subs_;
  for (const auto& [pattern, sessions] : patterns) {
    if (!redis::glob_match(pattern, channel)) continue;
    for (auto s : sessions) {
      push_to(ctx, s, "pmessage", pattern, channel, message);
      ++n;
    }
  }
  return n;
}

void redis_kv::pubsub_closed(context&, session_id s, client& c) {
  for (const auto& name : c.channels) {
    auto ch = channel_subs_.find(name);
    if (ch == channel_subs_.end()) continue;
    remove_session(ch->second, s);
    if (ch->second.empty()) channel_subs_.erase(ch);
  }
  for (const auto& name : c.patterns) {
    auto p = std::find_if(pattern_subs_.begin(), pattern_subs_.end(), [&](auto& e) { return e.first == name; });
    if (p == pattern_subs_.end()) continue;
    remove_session(p->second, s);
    if (p->second.empty()) pattern_subs_.erase(p);
  }
  c.channels.clear();
  c.patterns.clear();
}

task<void> redis_kv::on_bus_message(context& ctx, const bus::message& m) {
  // Another worker's PUBLISH: deliver to the subscribers here and say how many.
  if (!m.is_request() || !m.tag.empty()) co_return;
  wire::reader in(m.data);
  auto channel = in.str();
  auto message = in.str();
  if (!in.done()) {
    log::warning("redis_kv {}: malformed PUBLISH from process {}; dropped", instance_name(), m.sender);
    co_return;
  }
  std::string enc;
  wire::writer out(enc);
  out.i64(deliver(ctx, channel, message));
  (void)ctx.reply(m, bus::payload::raw(std::move(enc)));
}

}  // namespace swactor::apps
