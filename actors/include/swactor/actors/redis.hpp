#pragma once
// Redis-protocol modules (docs/modules.md, "Redis modules"): a redis:// listener hands each
// command of a connection to its module's on_command, one at a time and in order; the
// handler answers through the command's reply writer, which encodes RESP2 or RESP3 by what
// the connection negotiated (HELLO). The reply goes out when the handler returns.
//
//   task<void> on_command(context& ctx, session_id s, redis::command& cmd) override {
//     if (cmd.is("PING")) cmd.reply().status("PONG");
//     else redis::reply_unknown_command(cmd);
//     co_return;
//   }

#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <unordered_map>
#include <utility>
#include <string_view>
#include <vector>

#include "swactor/protocols/ascii.hpp"
#include "swactor/protocols/redis.hpp"

namespace swactor::redis {

using protocols::redis::writer;
using protocols::redis::first_args;

// ASCII case-insensitive equality (command names and options are case-insensitive).
using protocols::ascii_iequals;
constexpr bool iequals(std::string_view a, std::string_view b) noexcept { return ascii_iequals(a, b); }

class command {
 public:
  // `raw` is what the codec emitted as event `kind` (a multibulk command or an inline line).
  command(std::string raw, std::uint8_t kind);
  // An empty command for reset() (the worker reuses one, keeping its buffers' capacity).
  command();
  command(const command&) = delete;
  command& operator=(const command&) = delete;
  // Parses `raw` in place, without copying it: the arguments then point into `raw`, which
  // must outlive their use (the worker's inline path: valid during on_command_now only).
  void reset(std::string_view raw, std::uint8_t kind);

  // False when the command could not be split (never for what the codec emitted).
  bool valid() const noexcept { return valid_; }
  // Arguments; args()[0] is the command name as sent. Views stay valid while the command lives.
  const std::vector<std::string_view>& args() const noexcept { return args_; }
  std::size_t size() const noexcept { return args_.size(); }
  std::string_view operator[](std::size_t i) const noexcept { return args_[i]; }
  std::string_view name() const noexcept { return args_.empty() ? std::string_view() : args_[0]; }
  // The command name is `n` (case-insensitive).
  bool is(std::string_view n) const noexcept { return !args_.empty() && iequals(args_[0], n); }

  // 2 or 3: the protocol the connection speaks for this command's reply.
  int protocol() const noexcept { return protocol_; }
  writer& reply() noexcept { return writer_; }
  const std::string& reply_bytes() const noexcept { return out_; }
  bool replied() const noexcept { return !out_.empty(); }
  // Drops what was written so far (a handler that failed half-way through a reply).
  void discard_reply() noexcept { out_.clear(); }

  // HELLO: the connection speaks `p` (2 or 3) from this reply on (the reply itself too:
  // the writer switches now, so call it before writing the reply).
  void switch_protocol(int p);
  int switched_protocol() const noexcept { return switch_to_; }
  // QUIT: the connection closes once this reply is written.
  void close_after_reply() noexcept { close_ = true; }
  bool closes() const noexcept { return close_; }

 private:
  void parse(std::string_view raw, std::uint8_t kind);
  std::string raw_;  // owned bytes (the queued path); empty when reset() points elsewhere
  std::vector<std::string> inline_args_;  // inline commands: the unquoted arguments
  std::vector<std::string_view> args_;
  int protocol_ = 2;
  int switch_to_ = 0;
  bool close_ = false;
  bool valid_ = false;
  std::string out_;
  writer writer_;
};

// Redis's exact texts for the common errors.
// "-ERR unknown command 'x', with args beginning with: 'a' 'b' "
void reply_unknown_command(command& cmd);
// "-ERR wrong number of arguments for 'get' command"
void reply_wrong_arity(command& cmd);
// "-ERR syntax error"
void reply_syntax_error(command& cmd);

// Redis's glob (KEYS, SCAN MATCH, PSUBSCRIBE): * ? [abc] [^a] [a-z] and \ escapes, as
// redis-server's stringmatchlen; `nocase` folds ASCII case.
bool glob_match(std::string_view pattern, std::string_view text, bool nocase = false) noexcept;

// Redis's arity rule: n > 0 exactly n arguments (name included), n < 0 at least -n.
inline bool arity_ok(const command& cmd, int arity) noexcept {
  auto n = static_cast<int>(cmd.size());
  return arity >= 0 ? n == arity : n >= -arity;
}

// Handlers by command name, case-insensitive, with Redis's arity rule. `Entry` is the
// module's own (a member-function pointer, flags, ...) with an `int arity` member:
//
//   struct entry { void (my_module::*fn)(context&, session_id, redis::command&); int arity; };
//   static const redis::command_table<entry> commands = {{"get", {&my_module::get, 2}}, ...};
//   if (const auto* e = commands.route(cmd)) (this->*(e->fn))(ctx, s, cmd);
template <class Entry>
class command_table {
 public:
  command_table(std::initializer_list<std::pair<std::string_view, Entry>> entries) {
    for (const auto& [name, e] : entries) add(name, e);
  }
  void add(std::string_view name, Entry e) { map_.insert_or_assign(protocols::ascii_lowered(name), std::move(e)); }
  // The entry for `name` in any case, or nullptr.
  const Entry* find(std::string_view name) const {
    if (name.size() > kMaxName) return nullptr;
    char buf[kMaxName];
    for (std::size_t i = 0; i < name.size(); ++i) buf[i] = protocols::ascii_lower(name[i]);
    auto it = map_.find(std::string_view(buf, name.size()));
    return it == map_.end() ? nullptr : &it->second;
  }
  // The command's entry with its arity checked; otherwise nullptr, with Redis's unknown-
  // command or wrong-arity error already written to the reply.
  const Entry* route(command& cmd) const {
    const Entry* e = find(cmd.name());
    if (!e) {
      reply_unknown_command(cmd);
      return nullptr;
    }
    if (!arity_ok(cmd, e->arity)) {
      reply_wrong_arity(cmd);
      return nullptr;
    }
    return e;
  }
  std::size_t size() const noexcept { return map_.size(); }

 private:
  static constexpr std::size_t kMaxName = 64;
  struct hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, Entry, hash, std::equal_to<>> map_;
};

}  // namespace swactor::redis
