// redis_kv's commands: strings, hashes, keys and expiry, connection commands (docs/modules.md,
// "Redis modules"). Replies and error texts are Redis 7.0's; the parsing rules (string2ll,
// string2ld, ld2string, stringmatchlen, the SET/GETEX/EXPIRE option grammars) follow
// redis-server's so that the same bytes come back.
//
// Every key is one table row (see redis_kv.hpp). A read-modify-write of a key runs inside
// table::modify (the key's bucket lock), so it is atomic across workers; commands on several
// keys (MSET, RENAME, ...) are atomic per key only. An expired row counts as absent and is
// erased by whoever touches it (lazy expiry), or by worker 0's sweep (active expiry).

#include "redis_kv.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cctype>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <utility>

#include <nlohmann/json.hpp>

#include "swactor/core/log.hpp"
#include "swactor/ipc/shm_error.hpp"
#include "swactor/ipc/table.hpp"

namespace swactor::apps {

namespace kvx {

using ipc::row_ref;
using ipc::shm_errc;

constexpr std::int64_t kString = 1;
constexpr std::int64_t kHash = 2;

constexpr std::string_view kWrongType = "WRONGTYPE Operation against a key holding the wrong kind of value";
constexpr std::string_view kNotInteger = "ERR value is not an integer or out of range";
constexpr std::string_view kNotFloat = "ERR value is not a valid float";
constexpr std::string_view kOverflow = "ERR increment or decrement would overflow";
constexpr std::string_view kNanInf = "ERR increment would produce NaN or Infinity";
constexpr std::string_view kSyntax = "ERR syntax error";
constexpr std::string_view kNoAuth = "NOAUTH Authentication required.";
constexpr std::string_view kWrongPass = "WRONGPASS invalid username-password pair or user is disabled.";

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}


// Redis's string2ll: no spaces, no '+', no leading zeros, overflow fails.
bool string2ll(std::string_view s, long long& out) {
  const std::size_t slen = s.size();
  if (slen == 0 || slen >= 21) return false;
  if (slen == 1 && s[0] == '0') {
    out = 0;
    return true;
  }
  std::size_t p = 0;
  bool negative = false;
  if (s[0] == '-') {
    negative = true;
    ++p;
    if (p == slen) return false;
  }
  unsigned long long v;
  if (s[p] >= '1' && s[p] <= '9') {
    v = static_cast<unsigned long long>(s[p] - '0');
    ++p;
  } else {
    return false;
  }
  while (p < slen && s[p] >= '0' && s[p] <= '9') {
    if (v > ULLONG_MAX / 10) return false;
    v *= 10;
    auto d = static_cast<unsigned long long>(s[p] - '0');
    if (v > ULLONG_MAX - d) return false;
    v += d;
    ++p;
  }
  if (p < slen) return false;
  if (negative) {
    if (v > static_cast<unsigned long long>(-(LLONG_MIN + 1)) + 1) return false;
    out = static_cast<long long>(0ULL - v);
  } else {
    if (v > static_cast<unsigned long long>(LLONG_MAX)) return false;
    out = static_cast<long long>(v);
  }
  return true;
}

// redis-server's default proto-max-bulk-len: the largest string it makes (SETRANGE, APPEND).
constexpr unsigned long long kProtoMaxBulkLen = 512ull << 20;

// Redis's string2ld (strtold; rejects a leading space, trailing bytes, NaN and overflow).
bool string2ld(std::string_view s, long double& out) {
  constexpr std::size_t kMax = 5 * 1024;  // MAX_LONG_DOUBLE_CHARS
  if (s.empty() || s.size() >= kMax) return false;
  char buf[kMax];
  std::memcpy(buf, s.data(), s.size());
  buf[s.size()] = '\0';
  errno = 0;
  char* end = nullptr;
  long double v = std::strtold(buf, &end);
  // A NUL inside the value ends strtold early: all of it must have been read.
  if (std::isspace(static_cast<unsigned char>(buf[0])) || end[0] != '\0' ||
      static_cast<std::size_t>(end - buf) != s.size() ||
      (errno == ERANGE && (v == HUGE_VALL || v == -HUGE_VALL || std::fpclassify(v) == FP_ZERO)) ||
      errno == EINVAL || std::isnan(v))
    return false;
  out = v;
  return true;
}

// Redis's ld2string(LD_STR_HUMAN): "%.17Lf", trailing zeros (and a trailing '.') trimmed.
std::string ld2string(long double v) {
  char buf[5 * 1024];
  int l = std::snprintf(buf, sizeof(buf), "%.17Lf", v);
  if (l < 0 || static_cast<std::size_t>(l) + 1 > sizeof(buf)) return "0";
  if (std::memchr(buf, '.', static_cast<std::size_t>(l)) != nullptr) {
    char* p = buf + l - 1;
    while (*p == '0') {
      --p;
      --l;
    }
    if (*p == '.') --l;
  }
  if (l == 2 && buf[0] == '-' && buf[1] == '0') {
    buf[0] = '0';
    l = 1;
  }
  return std::string(buf, static_cast<std::size_t>(l));
}

// Redis's glob (KEYS, SCAN MATCH): redis::glob_match, shared with PSUBSCRIBE.
bool glob_match(const std::string& pattern, std::string_view key) { return redis::glob_match(pattern, key); }

// -- the hash value: (varint length, field, varint length, value)* in insertion order ----------

using pairs = std::vector<std::pair<std::string_view, std::string_view>>;

void put_len(std::string& out, std::size_t n) {
  while (n >= 0x80) {
    out.push_back(static_cast<char>((n & 0x7f) | 0x80));
    n >>= 7;
  }
  out.push_back(static_cast<char>(n));
}

bool get_len(std::string_view& in, std::size_t& n) {
  n = 0;
  for (int shift = 0; shift < 35; shift += 7) {
    if (in.empty()) return false;
    auto b = static_cast<unsigned char>(in[0]);
    in.remove_prefix(1);
    n |= static_cast<std::size_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) return true;
  }
  return false;
}

bool get_str(std::string_view& in, std::string_view& s) {
  std::size_t n;
  if (!get_len(in, n) || n > in.size()) return false;
  s = in.substr(0, n);
  in.remove_prefix(n);
  return true;
}

// Views into `v` (a damaged tail is dropped).
pairs decode_hash(std::string_view v) {
  pairs out;
  while (!v.empty()) {
    std::string_view f, x;
    if (!get_str(v, f) || !get_str(v, x)) break;
    out.emplace_back(f, x);
  }
  return out;
}

std::string encode_hash(const pairs& p) {
  std::string out;
  for (const auto& [f, v] : p) {
    put_len(out, f.size());
    out.append(f);
    put_len(out, v.size());
    out.append(v);
  }
  return out;
}

pairs::iterator find_field(pairs& p, std::string_view f) {
  return std::find_if(p.begin(), p.end(), [&](const auto& e) { return e.first == f; });
}

const char* type_name(std::int64_t t) { return t == kString ? "string" : t == kHash ? "hash" : "none"; }

// SET / GETEX option flags (t_string.c's OBJ_*).
enum : int {
  f_nx = 1 << 0,
  f_xx = 1 << 1,
  f_get = 1 << 2,
  f_keepttl = 1 << 3,
  f_persist = 1 << 4,
  f_ex = 1 << 5,
  f_px = 1 << 6,
  f_exat = 1 << 7,
  f_pxat = 1 << 8,
};

// parseExtendedStringArgumentsOrReply: false on a syntax error.
bool parse_string_options(redis::command& cmd, bool set_cmd, int& flags, std::string_view& expire) {
  for (std::size_t j = set_cmd ? 3 : 2; j < cmd.size(); ++j) {
    auto opt = cmd[j];
    bool next = j + 1 < cmd.size();
    if (redis::iequals(opt, "nx") && !(flags & f_xx) && set_cmd) {
      flags |= f_nx;
    } else if (redis::iequals(opt, "xx") && !(flags & f_nx) && set_cmd) {
      flags |= f_xx;
    } else if (redis::iequals(opt, "get") && set_cmd) {
      flags |= f_get;
    } else if (redis::iequals(opt, "keepttl") && !(flags & (f_persist | f_ex | f_exat | f_px | f_pxat)) && set_cmd) {
      flags |= f_keepttl;
    } else if (redis::iequals(opt, "persist") && !set_cmd && !(flags & (f_ex | f_exat | f_px | f_pxat | f_keepttl))) {
      flags |= f_persist;
    } else if (redis::iequals(opt, "ex") && !(flags & (f_keepttl | f_persist | f_exat | f_px | f_pxat)) && next) {
      flags |= f_ex;
      expire = cmd[++j];
    } else if (redis::iequals(opt, "px") && !(flags & (f_keepttl | f_persist | f_ex | f_exat | f_pxat)) && next) {
      flags |= f_px;
      expire = cmd[++j];
    } else if (redis::iequals(opt, "exat") && !(flags & (f_keepttl | f_persist | f_ex | f_px | f_pxat)) && next) {
      flags |= f_exat;
      expire = cmd[++j];
    } else if (redis::iequals(opt, "pxat") && !(flags & (f_keepttl | f_persist | f_ex | f_exat | f_px)) && next) {
      flags |= f_pxat;
      expire = cmd[++j];
    } else {
      return false;
    }
  }
  return true;
}

// getExpireMillisecondsOrReply: the absolute unix ms, or the error text.
bool expire_ms(std::string_view arg, int flags, std::int64_t now, std::string_view cmd_name, long long& ms,
               std::string& err) {
  if (!string2ll(arg, ms)) {
    err = kNotInteger;
    return false;
  }
  const bool seconds = (flags & (f_ex | f_exat)) != 0;
  auto invalid = [&] {
    err = "ERR invalid expire time in '" + protocols::ascii_lowered(cmd_name) + "' command";
    return false;
  };
  if (ms <= 0 || (seconds && ms > LLONG_MAX / 1000)) return invalid();
  if (seconds) ms *= 1000;
  if (flags & (f_ex | f_px)) {
    if (__builtin_add_overflow(ms, now, &ms)) return invalid();
  }
  if (ms <= 0) return invalid();
  return true;
}

bool is_pubsub_name(std::string_view n) {
  for (std::string_view p : {"publish", "subscribe", "unsubscribe", "psubscribe", "punsubscribe", "pubsub",
                             "ssubscribe", "sunsubscribe", "spublish"})
    if (redis::iequals(n, p)) return true;
  return false;
}

}  // namespace kvx

// -- module plumbing -----------------------------------------------------------------------------

config::schema<redis_kv::options> redis_kv::schema() {
  config::schema<options> s;
  s.string("table", &options::table,
           "Name of the [tables.NAME] holding the keys: one row per key, with columns `type` (int), `expire` "
           "(int) and `value` (string; its size is the largest value, or serialized hash, accepted).")
      .string("password", &options::password,
              "When set, connections must AUTH (or HELLO ... AUTH default <password>) first, as with "
              "redis-server's requirepass; \"\" = no authentication.")
      .duration("sweep_interval", &options::sweep_interval,
                "How often worker 0 samples keys and erases the expired ones (active expiry; reads erase "
                "expired keys too).",
                std::chrono::milliseconds(1))
      .integer("sweep_keys", &options::sweep_keys, "Rows the expiry sweep examines each time.", 1,
               std::int64_t{1} << 30)
      .size("multi_max_bytes", &options::multi_max_bytes,
            "Bytes one connection's transaction state may hold: the commands queued between MULTI and EXEC "
            "and the keys it WATCHes. A command past it is refused (EXEC then aborts, as after any refused "
            "command); a WATCH past it answers an error.",
            1024)
      .size("multi_max_reply", &options::multi_max_reply,
            "Largest EXEC reply built. A transaction whose replies pass it still runs every command, then "
            "answers an error and closes the connection (as redis-server closes a client past its output "
            "buffer limit).",
            1024);
  return s;
}

redis_kv::redis_kv(options o) : opts_(std::move(o)) {}

namespace kvx {
// The subcommands of the container commands here. Redis checks a container's subcommand
// (unknown, arity) before AUTH and the subscribed-context rule, and names it
// "container|sub" in its errors.
struct subcommand {
  std::string_view container, name;
  int arity;  // Redis's: n exact, -n at least n
};
constexpr subcommand kSubcommands[] = {
    {"client", "id", 2},   {"client", "setname", 3}, {"client", "getname", 2},
    {"command", "count", 2}, {"command", "docs", -2}, {"command", "info", -2},
    {"command", "list", -2}, {"command", "help", 2},   {"function", "flush", -2},
};

// What COMMAND / COMMAND INFO say about each command, as Redis 7.0 says it: flags, key
// positions (first, last, step; 0 0 0 for none, last -1 = to the end) and the ACL group.
// Arity comes from the dispatch table (or `arity` for the pub/sub commands, which are not
// in it). Tips, key specs and subcommand lists are left empty.
struct command_doc {
  std::string_view name;
  std::string_view flags;  // space separated
  int first, last, step;
  std::string_view group;  // @string, @keyspace, @hash, @pubsub, @connection, @server, @transaction; "" none
  int arity = 0;           // 0: the dispatch table's
};
constexpr command_doc kCommandDocs[] = {
    {"ping", "fast", 0, 0, 0, "@connection"},
    {"echo", "fast", 0, 0, 0, "@connection"},
    {"hello", "noscript loading stale fast no_auth allow_busy", 0, 0, 0, "@connection"},
    {"auth", "noscript loading stale fast no_auth allow_busy", 0, 0, 0, "@connection"},
    {"select", "loading stale fast", 0, 0, 0, "@connection"},
    {"quit", "allow_busy noscript loading stale fast no_auth", 0, 0, 0, "@connection"},
    {"client", "", 0, 0, 0, ""},  // a container: its subcommands have the categories
    {"command", "loading stale", 0, 0, 0, "@connection"},
    {"info", "loading stale", 0, 0, 0, "@server"},
    {"function", "", 0, 0, 0, ""},
    {"reset", "noscript loading stale fast no_auth allow_busy", 0, 0, 0, "@connection"},
    {"multi", "noscript loading stale fast allow_busy", 0, 0, 0, "@transaction"},
    {"exec", "noscript loading stale skip_slowlog", 0, 0, 0, "@transaction"},
    {"discard", "noscript loading stale fast allow_busy", 0, 0, 0, "@transaction"},
    {"watch", "noscript loading stale fast allow_busy", 1, -1, 1, "@transaction"},
    {"unwatch", "noscript loading stale fast allow_busy", 0, 0, 0, "@transaction"},
    {"get", "readonly fast", 1, 1, 1, "@string"},
    {"set", "write denyoom", 1, 1, 1, "@string"},
    {"setnx", "write denyoom fast", 1, 1, 1, "@string"},
    {"setex", "write denyoom", 1, 1, 1, "@string"},
    {"psetex", "write denyoom", 1, 1, 1, "@string"},
    {"mget", "readonly fast", 1, -1, 1, "@string"},
    {"mset", "write denyoom", 1, -1, 2, "@string"},
    {"msetnx", "write denyoom", 1, -1, 2, "@string"},
    {"getset", "write denyoom fast", 1, 1, 1, "@string"},
    {"getdel", "write fast", 1, 1, 1, "@string"},
    {"getex", "write fast", 1, 1, 1, "@string"},
    {"append", "write denyoom fast", 1, 1, 1, "@string"},
    {"strlen", "readonly fast", 1, 1, 1, "@string"},
    {"getrange", "readonly", 1, 1, 1, "@string"},
    {"substr", "readonly", 1, 1, 1, "@string"},
    {"setrange", "write denyoom", 1, 1, 1, "@string"},
    {"incr", "write denyoom fast", 1, 1, 1, "@string"},
    {"incrby", "write denyoom fast", 1, 1, 1, "@string"},
    {"decr", "write denyoom fast", 1, 1, 1, "@string"},
    {"decrby", "write denyoom fast", 1, 1, 1, "@string"},
    {"incrbyfloat", "write denyoom fast", 1, 1, 1, "@string"},
    {"del", "write", 1, -1, 1, "@keyspace"},
    {"unlink", "write fast", 1, -1, 1, "@keyspace"},
    {"exists", "readonly fast", 1, -1, 1, "@keyspace"},
    {"touch", "readonly fast", 1, -1, 1, "@keyspace"},
    {"type", "readonly fast", 1, 1, 1, "@keyspace"},
    {"expire", "write fast", 1, 1, 1, "@keyspace"},
    {"pexpire", "write fast", 1, 1, 1, "@keyspace"},
    {"expireat", "write fast", 1, 1, 1, "@keyspace"},
    {"pexpireat", "write fast", 1, 1, 1, "@keyspace"},
    {"expiretime", "readonly fast", 1, 1, 1, "@keyspace"},
    {"pexpiretime", "readonly fast", 1, 1, 1, "@keyspace"},
    {"ttl", "readonly fast", 1, 1, 1, "@keyspace"},
    {"pttl", "readonly fast", 1, 1, 1, "@keyspace"},
    {"persist", "write fast", 1, 1, 1, "@keyspace"},
    {"keys", "readonly", 0, 0, 0, "@keyspace"},
    {"scan", "readonly", 0, 0, 0, "@keyspace"},
    {"rename", "write", 1, 2, 1, "@keyspace"},
    {"renamenx", "write fast", 1, 2, 1, "@keyspace"},
    {"dbsize", "readonly fast", 0, 0, 0, "@keyspace"},
    {"flushdb", "write", 0, 0, 0, "@keyspace"},
    {"flushall", "write", 0, 0, 0, "@keyspace"},
    {"randomkey", "readonly", 0, 0, 0, "@keyspace"},
    {"hset", "write denyoom fast", 1, 1, 1, "@hash"},
    {"hmset", "write denyoom fast", 1, 1, 1, "@hash"},
    {"hsetnx", "write denyoom fast", 1, 1, 1, "@hash"},
    {"hget", "readonly fast", 1, 1, 1, "@hash"},
    {"hmget", "readonly fast", 1, 1, 1, "@hash"},
    {"hgetall", "readonly", 1, 1, 1, "@hash"},
    {"hkeys", "readonly", 1, 1, 1, "@hash"},
    {"hvals", "readonly", 1, 1, 1, "@hash"},
    {"hdel", "write fast", 1, 1, 1, "@hash"},
    {"hexists", "readonly fast", 1, 1, 1, "@hash"},
    {"hlen", "readonly fast", 1, 1, 1, "@hash"},
    {"hincrby", "write denyoom fast", 1, 1, 1, "@hash"},
    {"hincrbyfloat", "write denyoom fast", 1, 1, 1, "@hash"},
    {"hstrlen", "readonly fast", 1, 1, 1, "@hash"},
    {"publish", "pubsub loading stale fast", 0, 0, 0, "@pubsub", 3},
    {"subscribe", "pubsub noscript loading stale", 0, 0, 0, "@pubsub", -2},
    {"unsubscribe", "pubsub noscript loading stale", 0, 0, 0, "@pubsub", -1},
    {"psubscribe", "pubsub noscript loading stale", 0, 0, 0, "@pubsub", -2},
    {"punsubscribe", "pubsub noscript loading stale", 0, 0, 0, "@pubsub", -1},
};

const command_doc* find_doc(std::string_view name) {
  for (const auto& d : kCommandDocs)
    if (redis::iequals(name, d.name)) return &d;
  return nullptr;
}

std::vector<std::string_view> words(std::string_view s) {
  std::vector<std::string_view> out;
  while (!s.empty()) {
    auto sp = s.find(' ');
    out.push_back(s.substr(0, sp));
    if (sp == std::string_view::npos) break;
    s.remove_prefix(sp + 1);
  }
  return out;
}

// ACL categories as Redis derives them: the group, @read / @write, @fast / @slow, and
// @dangerous for the commands that scan or wipe everything; listed in the order of Redis's
// category bits (keyspace read write ... hash string ... pubsub admin fast slow blocking
// dangerous connection transaction scripting).
std::vector<std::string> categories(const command_doc& d) {
  const auto fl = words(d.flags);
  auto has = [&](std::string_view f) { return std::find(fl.begin(), fl.end(), f) != fl.end(); };
  std::vector<std::string_view> in;
  if (d.group == "@string" || d.group == "@keyspace" || d.group == "@hash") in.push_back(has("write") ? "@write" : "@read");
  in.push_back(d.group);  // (@server is no category of its own)
  in.push_back(has("fast") ? "@fast" : "@slow");
  if (d.name == "keys" || d.name == "flushdb" || d.name == "flushall" || d.name == "info") in.push_back("@dangerous");
  static constexpr std::string_view kOrder[] = {"@keyspace", "@read",       "@write",    "@hash",  "@string",
                                                "@pubsub",   "@fast",       "@slow",     "@dangerous",
                                                "@connection", "@transaction", "@scripting"};
  std::vector<std::string> out;
  for (auto c : kOrder)
    if (std::find(in.begin(), in.end(), c) != in.end()) out.emplace_back(c);
  return out;
}


bool is_container(std::string_view name) {
  return redis::iequals(name, "client") || redis::iequals(name, "command") || redis::iequals(name, "function");
}

const subcommand* find_subcommand(const redis::command& cmd) {
  if (cmd.size() < 2 || !is_container(cmd.name())) return nullptr;
  for (const auto& sc : kSubcommands)
    if (redis::iequals(cmd.name(), sc.container) && redis::iequals(cmd[1], sc.name)) return &sc;
  return nullptr;
}
}  // namespace kvx

// "client|id" for a known subcommand of a container, else the command's name (lower case).
std::string redis_kv::full_name(const redis::command& cmd) {
  auto n = protocols::ascii_lowered(cmd.name());
  if (const auto* sc = kvx::find_subcommand(cmd)) n += "|" + std::string(sc->name);
  return n;
}

// An unknown subcommand of a container, or a wrong argument count for a known one: replied
// here (true), before AUTH is checked, as Redis does.
bool redis_kv::subcommand_refused(redis::command& cmd) {
  if (cmd.size() < 2 || !kvx::is_container(cmd.name())) return false;
  const auto* sc = kvx::find_subcommand(cmd);
  if (!sc) {
    auto sub = cmd[1];
    std::string n(sub.substr(0, std::min<std::size_t>(sub.find('\0'), 128)));
    auto upper = std::string(cmd.name());
    for (auto& ch : upper) ch = static_cast<char>(ch >= 'a' && ch <= 'z' ? ch - ('a' - 'A') : ch);
    cmd.reply().error("ERR unknown subcommand '" + n + "'. Try " + upper + " HELP.");
    return true;
  }
  const auto argc = static_cast<int>(cmd.size());
  if ((sc->arity > 0 && argc != sc->arity) || (sc->arity < 0 && argc < -sc->arity)) {
    cmd.reply().error(fmt::format("ERR wrong number of arguments for '{}' command", full_name(cmd)));
    return true;
  }
  return false;
}

namespace kvx {
// The index of column `name` when `t` has it with type `type`; -1 and a reason otherwise.
int check_column(const ipc::table& t, std::string_view name, ipc::column_type type, std::string& problem,
                 std::size_t* size = nullptr) {
  const auto& cols = t.schema().columns;
  auto it = std::find_if(cols.begin(), cols.end(), [&](const ipc::column_def& d) { return d.name == name; });
  const char* sep = problem.empty() ? "" : "; ";
  if (it == cols.end()) {
    problem += fmt::format("{}no column `{}` ({})", sep, name, ipc::column_type_name(type));
    return -1;
  }
  if (it->type != type) {
    problem += fmt::format("{}column `{}` is {}, expected {}", sep, name, ipc::column_type_name(it->type),
                           ipc::column_type_name(type));
    return -1;
  }
  if (size) *size = it->size;
  return t.column_index(name);
}
}  // namespace kvx

task<void> redis_kv::on_worker_start(context& ctx) {
  started_ms_ = kvx::now_ms();
  table_ = ctx.table(opts_.table);
  table_problem_.clear();
  if (!table_) {
    table_problem_ = fmt::format("no table \"{}\"; declare [tables.{}]", opts_.table, opts_.table);
  } else {
    col_type_ = kvx::check_column(*table_, "type", ipc::column_type::int64, table_problem_);
    col_expire_ = kvx::check_column(*table_, "expire", ipc::column_type::int64, table_problem_);
    col_value_ = kvx::check_column(*table_, "value", ipc::column_type::string, table_problem_, &value_size_);
    if (!table_problem_.empty())
      table_problem_ = fmt::format("table \"{}\": {}", opts_.table, table_problem_);
  }
  if (!table_problem_.empty()) {
    table_ = nullptr;
    log::error("redis_kv {}: {}", instance_name(), table_problem_);
    co_return;
  }
  if (ctx.worker_id() == 0 && ctx.role() == "worker")
    start_sweep(ctx);
  co_return;
}

task<void> redis_kv::on_worker_stop(context& ctx) {
  if (sweep_timer_) ctx.timers().clear(sweep_timer_);
  sweep_timer_ = 0;
  // Subscriptions and AUTH live in this process. In process mode a connection outlives its
  // worker (the next process of the same id takes it over): a subscriber would then hear
  // nothing more, and an authenticated client would get -NOAUTH. End those connections, as
  // a restarting redis-server does; clients reconnect, subscribe and authenticate again.
  // A transaction (MULTI's queue, WATCHed keys) likewise: its next commands would run at once.
  // Connections with nothing to lose go on (CLIENT SETNAME's name is not carried).
  std::vector<session_id> ending;
  for (const auto& [s, c] : clients_)
    if (c.subscriptions() > 0 || (!opts_.password.empty() && c.authenticated) || c.in_multi || !c.watched.empty())
      ending.push_back(s);
  for (auto s : ending) (void)ctx.close(s);
  if (!ending.empty())
    log::info("redis_kv {}: closed {} connection(s) whose subscriptions, authentication or transaction stay with "
              "this process",
              instance_name(), ending.size());
  co_return;
}

void redis_kv::start_sweep(context& ctx) {
  sweep_timer_ = ctx.timers().tick(opts_.sweep_interval, [this, &ctx](timer_id) { sweep(ctx); });
}

void redis_kv::sweep(context&) {
  if (!table_) return;
  const auto now = kvx::now_ms();
  const int ce = col_expire_;
  sweep_cursor_ = table_->scan(sweep_cursor_, static_cast<std::size_t>(opts_.sweep_keys), [&](kvx::row_ref& r) {
    auto e = r.get_int(ce);
    if (e != 0 && now > e) r.erase();
  });
}

task<void> redis_kv::on_connect(context&, session_id s) {
  client c;
  c.authenticated = opts_.password.empty();
  clients_[s] = std::move(c);
  co_return;
}

task<void> redis_kv::on_close(context& ctx, session_id s) {
  auto it = clients_.find(s);
  if (it == clients_.end()) co_return;
  pubsub_closed(ctx, s, it->second);
  clients_.erase(s);
  co_return;
}

const redis::command_table<redis_kv::entry>& redis_kv::commands() {
  using k = redis_kv;
  static const redis::command_table<entry> table = {
      // connection
      {"ping", {&k::cmd_ping, -1, false}},
      {"echo", {&k::cmd_echo, 2, false}},
      {"hello", {&k::cmd_hello, -1, false}},
      {"auth", {&k::cmd_auth, -2, false}},
      {"select", {&k::cmd_select, 2, false}},
      {"quit", {&k::cmd_quit, -1, false}},
      {"client", {&k::cmd_client, -2, false, true}},
      {"command", {&k::cmd_command, -1, false, true}},
      {"info", {&k::cmd_info, -1, false}},
      {"function", {&k::cmd_function, -2, false, true}},
      {"reset", {&k::cmd_reset, 1, false}},
      // transactions
      {"multi", {&k::cmd_multi, 1, false}},
      {"exec", {&k::cmd_exec, 1, false}},
      {"discard", {&k::cmd_discard, 1, false}},
      {"watch", {&k::cmd_watch, -2}},
      {"unwatch", {&k::cmd_unwatch, 1, false}},
      // strings
      {"get", {&k::cmd_get, 2}},
      {"set", {&k::cmd_set, -3}},
      {"setnx", {&k::cmd_setnx, 3}},
      {"setex", {&k::cmd_setex, 4}},
      {"psetex", {&k::cmd_psetex, 4}},
      {"mget", {&k::cmd_mget, -2}},
      {"mset", {&k::cmd_mset, -3}},
      {"msetnx", {&k::cmd_msetnx, -3}},
      {"getset", {&k::cmd_getset, 3}},
      {"getdel", {&k::cmd_getdel, 2}},
      {"getex", {&k::cmd_getex, -2}},
      {"append", {&k::cmd_append, 3}},
      {"strlen", {&k::cmd_strlen, 2}},
      {"getrange", {&k::cmd_getrange, 4}},
      {"substr", {&k::cmd_getrange, 4}},
      {"setrange", {&k::cmd_setrange, 4}},
      {"incr", {&k::cmd_incr, 2}},
      {"incrby", {&k::cmd_incrby, 3}},
      {"decr", {&k::cmd_decr, 2}},
      {"decrby", {&k::cmd_decrby, 3}},
      {"incrbyfloat", {&k::cmd_incrbyfloat, 3}},
      // keys
      {"del", {&k::cmd_del, -2}},
      {"unlink", {&k::cmd_del, -2}},
      {"exists", {&k::cmd_exists, -2}},
      {"touch", {&k::cmd_touch, -2}},
      {"type", {&k::cmd_type, 2}},
      {"expire", {&k::cmd_expire, -3}},
      {"pexpire", {&k::cmd_pexpire, -3}},
      {"expireat", {&k::cmd_expireat, -3}},
      {"pexpireat", {&k::cmd_pexpireat, -3}},
      {"expiretime", {&k::cmd_expiretime, 2}},
      {"pexpiretime", {&k::cmd_pexpiretime, 2}},
      {"ttl", {&k::cmd_ttl, 2}},
      {"pttl", {&k::cmd_pttl, 2}},
      {"persist", {&k::cmd_persist, 2}},
      {"keys", {&k::cmd_keys, 2}},
      {"scan", {&k::cmd_scan, -2}},
      {"rename", {&k::cmd_rename, 3}},
      {"renamenx", {&k::cmd_renamenx, 3}},
      {"dbsize", {&k::cmd_dbsize, 1}},
      {"flushdb", {&k::cmd_flushdb, -1}},
      {"flushall", {&k::cmd_flushdb, -1}},
      {"randomkey", {&k::cmd_randomkey, 1}},
      // hashes
      {"hset", {&k::cmd_hset, -4}},
      {"hmset", {&k::cmd_hmset, -4}},
      {"hsetnx", {&k::cmd_hsetnx, 4}},
      {"hget", {&k::cmd_hget, 3}},
      {"hmget", {&k::cmd_hmget, -3}},
      {"hgetall", {&k::cmd_hgetall, 2}},
      {"hkeys", {&k::cmd_hkeys, 2}},
      {"hvals", {&k::cmd_hvals, 2}},
      {"hdel", {&k::cmd_hdel, -3}},
      {"hexists", {&k::cmd_hexists, 3}},
      {"hlen", {&k::cmd_hlen, 2}},
      {"hincrby", {&k::cmd_hincrby, 4}},
      {"hincrbyfloat", {&k::cmd_hincrbyfloat, 4}},
      {"hstrlen", {&k::cmd_hstrlen, 3}},
  };
  return table;
}

const redis_kv::entry* redis_kv::find(std::string_view name) { return commands().find(name); }

redis_kv::client& redis_kv::client_of(session_id s) {
  auto it = clients_.find(s);
  if (it == clients_.end()) {
    client fresh;
    fresh.authenticated = opts_.password.empty();
    it = clients_.emplace(s, std::move(fresh)).first;
  }
  return it->second;
}

// The order of redis-server's processCommand: unknown command, arity, authentication, the
// RESP2 pub/sub context, then the command (or, inside MULTI, its queueing).
bool redis_kv::on_command_now(context& ctx, session_id s, redis::command& cmd) {
  client& c = client_of(s);
  // Subscribed connections and the pub/sub commands (PUBLISH waits for the other workers)
  // take the coroutine path; nothing is written before this.
  if (c.subscriptions() > 0) return false;
  const entry* e = find(cmd.name());
  c.protocol = cmd.protocol();
  if (c.in_multi) {
    // Before the pub/sub path: PUBLISH is queued like any other command.
    if (multi_takes(c, e, cmd)) return true;
    if (e && e->fn == &redis_kv::cmd_exec && c.multi_publishes) return false;
  }
  if (!e && kvx::is_pubsub_name(cmd.name())) return false;  // only for names not in the table
  if (!refuses(c, e, cmd)) execute(ctx, s, c, *e, cmd);
  return true;
}

const redis_kv::entry* redis_kv::checked_entry(const entry* e, const redis::command& cmd) {
  static const entry publish{nullptr, 3, false}, other_pubsub{nullptr, -1, false};
  if (e || !kvx::is_pubsub_name(cmd.name())) return e;
  return cmd.is("publish") ? &publish : &other_pubsub;
}

bool redis_kv::refusal(const client& c, const entry* e, redis::command& cmd) {
  if (!e) {
    redis::reply_unknown_command(cmd);
    return true;
  }
  bool refused = false;
  if (!redis::arity_ok(cmd, e->arity)) {
    redis::reply_wrong_arity(cmd);
    refused = true;
  } else if (subcommand_refused(cmd)) {
    refused = true;
  } else if (!authorized(c, e)) {
    cmd.reply().error(kvx::kNoAuth);
    refused = true;
  }
  if (refused && e->fn == &redis_kv::cmd_exec) exec_abort(cmd);
  return refused;
}

void redis_kv::on_commands_ahead(context&, session_id, std::span<const std::string_view> commands) {
  if (!table_) return;
  // The key is the first argument of nearly every command; for the others a prefetch
  // costs a wasted cache line at most.
  std::array<std::string_view, 64> keys;
  std::size_t n = 0;
  for (auto raw : commands) {
    if (n == keys.size()) break;
    std::array<std::string_view, 2> args;
    if (redis::first_args(raw, args) == 2) keys[n++] = args[1];
  }
  table_->prefetch(std::span<const std::string_view>(keys.data(), n));
}

task<void> redis_kv::on_command(context& ctx, session_id s, redis::command& cmd) {
  if (on_command_now(ctx, s, cmd)) co_return;
  // A pub/sub command, any command of a subscribed connection, or EXEC of a transaction
  // that publishes.
  client& c = client_of(s);
  c.protocol = cmd.protocol();
  const entry* e = find(cmd.name());
  if (c.in_multi) {
    if (multi_takes(c, e, cmd)) co_return;
    if (e && e->fn == &redis_kv::cmd_exec) {
      co_await exec_waiting(ctx, s, cmd);
      co_return;
    }
  }
  if (refuses(c, checked_entry(e, cmd), cmd) || pubsub_refuses(c, cmd)) co_return;
  const bool handled = co_await pubsub_command(ctx, s, c, cmd);
  if (handled) co_return;
  if (!e) {
    redis::reply_unknown_command(cmd);
    co_return;
  }
  execute(ctx, s, c, *e, cmd);
}

bool redis_kv::authorized(const client& c, const entry* e) const {
  return c.authenticated || (e && (e->fn == &redis_kv::cmd_auth || e->fn == &redis_kv::cmd_hello ||
                                    e->fn == &redis_kv::cmd_quit || e->fn == &redis_kv::cmd_reset));
}

void redis_kv::execute(context& ctx, session_id s, client& c, const entry& e, redis::command& cmd) {
  if (e.uses_table && !table_) {
    cmd.reply().error(fmt::format("ERR redis_kv: no usable table: {}",
                                  table_problem_.empty() ? "the module was not started" : table_problem_));
    return;
  }
  (this->*(e.fn))(ctx, s, c, cmd);
  c.protocol = cmd.protocol();
}

// -- helpers -------------------------------------------------------------------------------------

bool redis_kv::check_key(redis::command& cmd, std::string_view key) {
  if (key.size() <= ipc::table::max_key_length) return true;
  cmd.reply().error("ERR key too long: the table's keys are at most 63 bytes");
  return false;
}

bool redis_kv::alive(kvx::row_ref& r, std::int64_t now) const {
  if (!r.exists()) return false;
  auto e = r.get_int(col_expire_);
  if (e != 0 && now > e) {
    r.erase();
    return false;
  }
  return true;
}

redis_kv::snapshot redis_kv::load(std::string_view key, std::int64_t now, bool with_value) {
  snapshot s;
  bool expired = false;
  const int ct = col_type_, ce = col_expire_, cv = col_value_;
  table_->inspect(key, [&](const kvx::row_ref& r) {
    expired = false;
    s.found = r.exists();
    if (!s.found) return;
    s.type = r.get_int(ct);
    s.expire = r.get_int(ce);
    if (s.expire != 0 && now > s.expire) {
      expired = true;
      s.found = false;
      return;
    }
    if (with_value) s.value.assign(r.get_string(cv));
  });
  if (expired) table_->modify(key, [&](kvx::row_ref& r) { (void)alive(r, now); });
  if (!s.found) s = snapshot{};
  return s;
}

std::error_code redis_kv::write(kvx::row_ref& r, std::int64_t type, std::string_view value, std::int64_t expire) {
  if (value.size() > value_size_) return make_error_code(kvx::shm_errc::value_too_long);
  if (auto ec = r.set(col_value_, value)) return ec;  // first: creates the row, or fails with nothing written
  (void)r.set(col_type_, type);
  (void)r.set(col_expire_, expire);
  return {};
}

void redis_kv::reply_too_large(redis::command& cmd) {
  cmd.discard_reply();
  cmd.reply().error(
      fmt::format("ERR value too large for the table's value column ({} bytes)", value_size_));
}

void redis_kv::reply_write_error(redis::command& cmd, std::error_code ec) {
  if (ec == kvx::shm_errc::value_too_long) return reply_too_large(cmd);
  cmd.discard_reply();
  if (ec == kvx::shm_errc::table_full)
    cmd.reply().error(fmt::format("OOM command not allowed: the table is full ({} rows)", table_->schema().size));
  else if (ec == kvx::shm_errc::key_too_long)
    cmd.reply().error("ERR key too long: the table's keys are at most 63 bytes");
  else
    cmd.reply().error("ERR " + ec.message());
}

// -- connection ----------------------------------------------------------------------------------

void redis_kv::cmd_ping(context&, session_id, client&, redis::command& cmd) {
  if (cmd.size() > 2) return redis::reply_wrong_arity(cmd);
  if (cmd.size() == 1)
    cmd.reply().status("PONG");
  else
    cmd.reply().bulk(cmd[1]);
}

void redis_kv::cmd_echo(context&, session_id, client&, redis::command& cmd) { cmd.reply().bulk(cmd[1]); }

namespace kvx {
bool valid_client_name(std::string_view n) {
  for (char ch : n)
    if (ch < '!' || ch > '~') return false;
  return true;
}
}  // namespace kvx

void redis_kv::cmd_hello(context&, session_id s, client& c, redis::command& cmd) {
  long long ver = 0;
  std::size_t next = 1;
  if (cmd.size() >= 2) {
    if (!kvx::string2ll(cmd[next++], ver)) return cmd.reply().error("ERR Protocol version is not an integer or out of range");
    if (ver < 2 || ver > 3) return cmd.reply().error("NOPROTO unsupported protocol version");
  }
  for (std::size_t j = next; j < cmd.size(); ++j) {
    const std::size_t more = cmd.size() - 1 - j;
    auto opt = cmd[j];
    if (redis::iequals(opt, "auth") && more >= 2) {
      bool ok = cmd[j + 1] == "default" && (opts_.password.empty() || cmd[j + 2] == opts_.password);
      if (!ok) return cmd.reply().error(kvx::kWrongPass);
      c.authenticated = true;
      j += 2;
    } else if (redis::iequals(opt, "setname") && more >= 1) {
      if (!kvx::valid_client_name(cmd[j + 1]))
        return cmd.reply().error("ERR Client names cannot contain spaces, newlines or special characters.");
      c.name = std::string(cmd[j + 1]);
      ++j;
    } else {
      std::string o(opt.substr(0, opt.find('\0')));
      return cmd.reply().error("ERR Syntax error in HELLO option '" + o + "'");
    }
  }
  if (!c.authenticated)
    return cmd.reply().error(
        "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> "
        "<pass> option can be used to authenticate the client and select the RESP protocol version at "
        "the same time");
  if (ver) {
    cmd.switch_protocol(static_cast<int>(ver));
    c.protocol = static_cast<int>(ver);
  }
  auto& w = cmd.reply();
  w.map(7);
  w.bulk("server");
  w.bulk("redis");
  w.bulk("version");
  w.bulk("7.0.15");
  w.bulk("proto");
  w.integer(cmd.protocol());
  w.bulk("id");
  w.integer(static_cast<long long>(s.value()));
  w.bulk("mode");
  w.bulk("standalone");
  w.bulk("role");
  w.bulk("master");
  w.bulk("modules");
  w.array(0);
}

void redis_kv::cmd_auth(context&, session_id, client& c, redis::command& cmd) {
  if (cmd.size() > 3) return cmd.reply().error(kvx::kSyntax);
  std::string_view user = "default", pass;
  if (cmd.size() == 2) {
    if (opts_.password.empty())
      return cmd.reply().error(
          "ERR AUTH <password> called without any password configured for the default user. Are you sure "
          "your configuration is correct?");
    pass = cmd[1];
  } else {
    user = cmd[1];
    pass = cmd[2];
  }
  if (user == "default" && (opts_.password.empty() || pass == opts_.password)) {
    c.authenticated = true;
    cmd.reply().status("OK");
  } else {
    cmd.reply().error(kvx::kWrongPass);
  }
}

void redis_kv::cmd_select(context&, session_id, client&, redis::command& cmd) {
  long long id;
  if (!kvx::string2ll(cmd[1], id)) return cmd.reply().error(kvx::kNotInteger);
  if (id < INT_MIN || id > INT_MAX)
    return cmd.reply().error("ERR value is out of range, value must between -2147483648 and 2147483647");
  if (id != 0) return cmd.reply().error("ERR DB index is out of range");
  cmd.reply().status("OK");
}

void redis_kv::cmd_quit(context&, session_id, client&, redis::command& cmd) {
  cmd.reply().status("OK");
  cmd.close_after_reply();
}

void redis_kv::cmd_client(context&, session_id s, client& c, redis::command& cmd) {
  auto sub = cmd[1];
  auto arity = [&](const char* name) {
    cmd.reply().error(fmt::format("ERR wrong number of arguments for 'client|{}' command", name));
  };
  if (redis::iequals(sub, "id")) {
    if (cmd.size() != 2) return arity("id");
    cmd.reply().integer(static_cast<long long>(s.value()));
  } else if (redis::iequals(sub, "setname")) {
    if (cmd.size() != 3) return arity("setname");
    if (!kvx::valid_client_name(cmd[2]))
      return cmd.reply().error("ERR Client names cannot contain spaces, newlines or special characters.");
    c.name = std::string(cmd[2]);
    cmd.reply().status("OK");
  } else if (redis::iequals(sub, "getname")) {
    if (cmd.size() != 2) return arity("getname");
    if (c.name.empty())
      cmd.reply().null();
    else
      cmd.reply().bulk(c.name);
  } else {
    std::string n(sub.substr(0, std::min<std::size_t>(sub.find('\0'), 128)));
    cmd.reply().error("ERR unknown subcommand '" + n + "'. Try CLIENT HELP.");
  }
}

void redis_kv::command_entry(redis::writer& w, const void* doc) {
  const auto& d = *static_cast<const kvx::command_doc*>(doc);
  int arity = d.arity;
  if (arity == 0)
    if (const auto* e = find(d.name)) arity = e->arity;
  const auto fl = kvx::words(d.flags);
  const auto cats = kvx::categories(d);
  w.array(10);
  w.bulk(d.name);
  w.integer(arity);
  w.set(fl.size());
  for (auto f : fl) w.status(f);
  w.integer(d.first);
  w.integer(d.last);
  w.integer(d.step);
  w.set(cats.size());
  for (const auto& c : cats) w.status(c);
  w.array(0);  // tips
  w.array(0);  // key specifications
  w.array(0);  // subcommands
}

void redis_kv::cmd_command(context&, session_id, client&, redis::command& cmd) {
  auto& w = cmd.reply();
  const auto all = [&] {
    w.array(std::size(kvx::kCommandDocs));
    for (const auto& d : kvx::kCommandDocs) command_entry(w, &d);
  };
  if (cmd.size() == 1) return all();
  auto sub = cmd[1];
  if (redis::iequals(sub, "count")) {
    w.integer(static_cast<long long>(std::size(kvx::kCommandDocs)));
  } else if (redis::iequals(sub, "info")) {
    if (cmd.size() == 2) return all();
    w.array(cmd.size() - 2);
    for (std::size_t i = 2; i < cmd.size(); ++i) {
      if (const auto* d = kvx::find_doc(cmd[i]))
        command_entry(w, d);
      else
        w.null();  // redis-server: a null, not a null array
    }
  } else if (redis::iequals(sub, "list")) {
    // FILTERBY PATTERN <glob> | ACLCAT <category> | MODULE <name> (no modules here: none).
    std::string_view by, arg;
    if (cmd.size() != 2) {
      if (cmd.size() != 5 || !redis::iequals(cmd[2], "filterby")) return w.error(kvx::kSyntax);
      by = cmd[3];
      arg = cmd[4];
      if (!redis::iequals(by, "pattern") && !redis::iequals(by, "aclcat") && !redis::iequals(by, "module"))
        return w.error(kvx::kSyntax);
    }
    std::vector<std::string_view> names;
    for (const auto& d : kvx::kCommandDocs) {
      bool keep = by.empty();
      if (redis::iequals(by, "pattern")) keep = redis::glob_match(std::string(arg), d.name);
      if (redis::iequals(by, "aclcat")) {
        for (const auto& c : kvx::categories(d))
          if (redis::iequals(std::string_view(c).substr(1), arg)) keep = true;
      }
      if (keep) names.push_back(d.name);
    }
    w.array(names.size());
    for (auto n : names) w.bulk(n);
  } else if (redis::iequals(sub, "docs")) {
    w.map(0);  // minimal: redis-cli asks for it and copes with none
  } else if (redis::iequals(sub, "help")) {
    static constexpr std::string_view kHelp[] = {
        "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "(no subcommand)",
        "    Return details about all Redis commands.",
        "COUNT",
        "    Return the total number of commands in this Redis server.",
        "LIST",
        "    Return a list of all commands in this Redis server.",
        "INFO [<command-name> ...]",
        "    Return details about multiple Redis commands.",
        "    If no command names are given, documentation details for all",
        "    commands are returned.",
        "DOCS [<command-name> ...]",
        "    Return documentation details about multiple Redis commands (none here).",
        "HELP",
        "    Print this help.",
    };
    w.array(std::size(kHelp));
    for (auto line : kHelp) w.status(line);
  } else {
    std::string n(sub.substr(0, std::min<std::size_t>(sub.find('\0'), 128)));
    w.error("ERR unknown subcommand '" + n + "'. Try COMMAND HELP.");
  }
}

void redis_kv::cmd_function(context&, session_id, client&, redis::command& cmd) {
  auto sub = cmd[1];
  if (redis::iequals(sub, "flush")) {
    if (cmd.size() > 3) return cmd.reply().error("ERR wrong number of arguments for 'function|flush' command");
    if (cmd.size() == 3 && !redis::iequals(cmd[2], "async") && !redis::iequals(cmd[2], "sync"))
      return cmd.reply().error("ERR FUNCTION FLUSH only supports SYNC|ASYNC option");
    cmd.reply().status("OK");
  } else {
    std::string n(sub.substr(0, std::min<std::size_t>(sub.find('\0'), 128)));
    cmd.reply().error("ERR unknown subcommand '" + n + "'. Try FUNCTION HELP.");
  }
}

void redis_kv::cmd_info(context& ctx, session_id s, client&, redis::command& cmd) {
  bool server = false, clients = false, memory = false, keyspace = false;
  if (cmd.size() == 1) {
    server = clients = memory = keyspace = true;
  } else {
    for (std::size_t i = 1; i < cmd.size(); ++i) {
      auto sec = protocols::ascii_lowered(cmd[i]);
      if (sec == "default" || sec == "all" || sec == "everything") server = clients = memory = keyspace = true;
      if (sec == "server") server = true;
      if (sec == "clients") clients = true;
      if (sec == "memory") memory = true;
      if (sec == "keyspace") keyspace = true;
    }
  }
  std::string info;
  int sections = 0;
  auto section = [&](const char* title) {
    if (sections++) info += "\r\n";
    info += "# ";
    info += title;
    info += "\r\n";
  };
  if (server) {
    section("Server");
    auto up = (kvx::now_ms() - started_ms_) / 1000;
    info += fmt::format(
        "redis_version:7.0.15\r\nredis_mode:standalone\r\nos:Linux\r\narch_bits:{}\r\nprocess_id:{}\r\n"
        "uptime_in_seconds:{}\r\nuptime_in_days:{}\r\n",
        sizeof(void*) * 8, static_cast<long long>(::getpid()), up, up / 86400);
  }
  if (clients) {
    section("Clients");
    // Server-wide, as Redis counts them: the open connections of this listener in every
    // process (this worker's clients_ are only the ones it served).
    std::size_t connected = clients_.size();
    if (auto i = ctx.info(s)) {
      auto j = nlohmann::json::parse(ctx.stats(), nullptr, false);
      if (j.is_object() && j["listener_connections"].is_array() &&
          static_cast<std::size_t>(i->listener) < j["listener_connections"].size())
        connected = j["listener_connections"][static_cast<std::size_t>(i->listener)].get<std::size_t>();
    }
    info += fmt::format("connected_clients:{}\r\n", connected);
  }
  if (memory) {
    section("Memory");
    auto bytes = table_ ? table_->stats().memory_bytes : 0;
    info += fmt::format("used_memory:{}\r\nmaxmemory:{}\r\nmaxmemory_policy:noeviction\r\n", bytes, bytes);
  }
  if (keyspace) {
    section("Keyspace");
    if (table_) {
      std::size_t keys = 0, expires = 0;
      long double ttl_sum = 0;
      const int ce = col_expire_;
      const auto now = kvx::now_ms();
      table_->scan(0, 0, [&](kvx::row_ref& r) {
        auto e = r.get_int(ce);
        if (e != 0 && now > e) return;
        ++keys;
        if (e != 0) {
          ++expires;
          ttl_sum += static_cast<long double>(e - now);
        }
      });
      // Redis estimates avg_ttl (ms) from its expiry sampling; the scan here has every key,
      // so it is the exact mean of the keys that expire.
      const auto avg_ttl = expires ? static_cast<long long>(ttl_sum / static_cast<long double>(expires)) : 0LL;
      if (keys) info += fmt::format("db0:keys={},expires={},avg_ttl={}\r\n", keys, expires, avg_ttl);
    }
  }
  cmd.reply().verbatim("txt", info);
}

// -- strings -------------------------------------------------------------------------------------

void redis_kv::cmd_get(context&, session_id, client&, redis::command& cmd) {
  if (!check_key(cmd, cmd[1])) return;
  auto v = load(cmd[1], kvx::now_ms(), true);
  if (!v.found) return cmd.reply().null();
  if (v.type != kvx::kString) return cmd.reply().error(kvx::kWrongType);
  cmd.reply().bulk(v.value);
}

// ok_reply: 0 = +OK / nil, 1 = :1 / :0 (SETNX)
void redis_kv::set_generic(redis::command& cmd, int flags, std::string_view key, std::string_view value,
                           std::string_view expire, bool expire_given, int ok_reply) {
  const auto now = kvx::now_ms();
  long long when = 0;
  if (expire_given) {
    std::string err;
    if (!kvx::expire_ms(expire, flags, now, cmd.name(), when, err)) return cmd.reply().error(err);
  }
  if (!check_key(cmd, key)) return;
  if (value.size() > value_size_) return reply_too_large(cmd);
  std::error_code wec;
  table_->modify(key, [&](kvx::row_ref& r) {
    bool found = alive(r, now);
    if (flags & kvx::f_get) {
      if (!found) {
        cmd.reply().null();
      } else if (r.get_int(col_type_) != kvx::kString) {
        cmd.reply().error(kvx::kWrongType);
        return;
      } else {
        cmd.reply().bulk(r.get_string(col_value_));
      }
    }
    if (((flags & kvx::f_nx) && found) || ((flags & kvx::f_xx) && !found)) {
      if (!(flags & kvx::f_get)) {
        if (ok_reply == 1)
          cmd.reply().integer(0);
        else
          cmd.reply().null();
      }
      return;
    }
    std::int64_t exp = 0;
    if (expire_given)
      exp = when;
    else if ((flags & kvx::f_keepttl) && found)
      exp = r.get_int(col_expire_);
    if ((wec = write(r, kvx::kString, value, exp))) return;
    if (!(flags & kvx::f_get)) {
      if (ok_reply == 1)
        cmd.reply().integer(1);
      else
        cmd.reply().status("OK");
    }
  });
  if (wec) reply_write_error(cmd, wec);
}

void redis_kv::cmd_set(context&, session_id, client&, redis::command& cmd) {
  int flags = 0;
  std::string_view expire;
  if (!kvx::parse_string_options(cmd, true, flags, expire)) return cmd.reply().error(kvx::kSyntax);
  set_generic(cmd, flags, cmd[1], cmd[2], expire, (flags & (kvx::f_ex | kvx::f_px | kvx::f_exat | kvx::f_pxat)) != 0, 0);
}

void redis_kv::cmd_setnx(context&, session_id, client&, redis::command& cmd) {
  set_generic(cmd, kvx::f_nx, cmd[1], cmd[2], {}, false, 1);
}

void redis_kv::cmd_setex(context&, session_id, client&, redis::command& cmd) {
  set_generic(cmd, kvx::f_ex, cmd[1], cmd[3], cmd[2], true, 0);
}

void redis_kv::cmd_psetex(context&, session_id, client&, redis::command& cmd) {
  set_generic(cmd, kvx::f_px, cmd[1], cmd[3], cmd[2], true, 0);
}

void redis_kv::cmd_mget(context&, session_id, client&, redis::command& cmd) {
  const auto now = kvx::now_ms();
  for (std::size_t i = 1; i < cmd.size(); ++i)
    if (!check_key(cmd, cmd[i])) return;
  std::vector<snapshot> vals;
  vals.reserve(cmd.size() - 1);
  for (std::size_t i = 1; i < cmd.size(); ++i) vals.push_back(load(cmd[i], now, true));
  cmd.reply().array(vals.size());
  for (auto& v : vals) {
    if (v.found && v.type == kvx::kString)
      cmd.reply().bulk(v.value);
    else
      cmd.reply().null();
  }
}

void redis_kv::cmd_mset(context&, session_id, client&, redis::command& cmd) {
  if (cmd.size() % 2 == 0) return redis::reply_wrong_arity(cmd);
  for (std::size_t i = 1; i < cmd.size(); i += 2) {
    if (!check_key(cmd, cmd[i])) return;
    if (cmd[i + 1].size() > value_size_) return reply_too_large(cmd);
  }
  for (std::size_t i = 1; i < cmd.size(); i += 2) {
    std::error_code ec;
    table_->modify(cmd[i], [&](kvx::row_ref& r) { ec = write(r, kvx::kString, cmd[i + 1], 0); });
    if (ec) return reply_write_error(cmd, ec);
  }
  cmd.reply().status("OK");
}

void redis_kv::cmd_msetnx(context&, session_id, client&, redis::command& cmd) {
  if (cmd.size() % 2 == 0) return redis::reply_wrong_arity(cmd);
  const auto now = kvx::now_ms();
  for (std::size_t i = 1; i < cmd.size(); i += 2) {
    if (!check_key(cmd, cmd[i])) return;
    if (cmd[i + 1].size() > value_size_) return reply_too_large(cmd);
  }
  for (std::size_t i = 1; i < cmd.size(); i += 2)
    if (load(cmd[i], now, false).found) return cmd.reply().integer(0);
  for (std::size_t i = 1; i < cmd.size(); i += 2) {
    std::error_code ec;
    table_->modify(cmd[i], [&](kvx::row_ref& r) { ec = write(r, kvx::kString, cmd[i + 1], 0); });
    if (ec) return reply_write_error(cmd, ec);
  }
  cmd.reply().integer(1);
}

void redis_kv::cmd_getset(context&, session_id, client&, redis::command& cmd) {
  if (!check_key(cmd, cmd[1])) return;
  if (cmd[2].size() > value_size_) return reply_too_large(cmd);
  const auto now = kvx::now_ms();
  std::error_code ec;
  table_->modify(cmd[1], [&](kvx::row_ref& r) {
    if (alive(r, now)) {
      if (r.get_int(col_type_) != kvx::kString) return cmd.reply().error(kvx::kWrongType);
      cmd.reply().bulk(r.get_string(col_value_));
    } else {
      cmd.reply().null();
    }
    ec = write(r, kvx::kString, cmd[2], 0);
  });
  if (ec) reply_write_error(cmd, ec);
}

void redis_kv::cmd_getdel(context&, session_id, client&, redis::command& cmd) {
  if (!check_key(cmd, cmd[1])) return;
  const auto now = kvx::now_ms();
  table_->modify(cmd[1], [&](kvx::row_ref& r) {
    if (!alive(r, now)) return cmd.reply().null();
    if (r.get_int(col_type_) != kvx::kString) return cmd.reply().error(kvx::kWrongType);
    cmd.reply().bulk(r.get_string(col_value_));
    r.erase();
  });
}

void redis_kv::cmd_getex(context&, session_id, client&, redis::command& cmd) {
  int flags = 0;
  std::string_view expire;
  if (!kvx::parse_string_options(cmd, false, flags, expire)) return cmd.reply().error(kvx::kSyntax);
  if (!check_key(cmd, cmd[1])) return;
  const auto now = kvx::now_ms();
  const bool has_expire = (flags & (kvx::f_ex | kvx::f_px | kvx::f_exat | kvx::f_pxat)) != 0;
  table_->modify(cmd[1], [&](kvx::row_ref& r) {
    if (!alive(r, now)) return cmd.reply().null();
    if (r.get_int(col_type_) != kvx::kString) return cmd.reply().error(kvx::kWrongType);
    long long when = 0;
    if (has_expire) {
      std::string err;
      if (!kvx::expire_ms(expire, flags, now, "getex", when, err)) return cmd.reply().error(err);
    }
    cmd.reply().bulk(r.get_string(col_value_));
    if ((flags & (kvx::f_exat | kvx::f_pxat)) && when <= now)
      r.erase();
    else if (has_expire)
      (void)r.set(col_expire_, static_cast<std::int64_t>(when));
    else if (flags & kvx::f_persist)
      (void)r.set(col_expire_, std::int64_t{0});
  });
}

void redis_kv::cmd_append(context&, session_id, client&, redis::command& cmd) {
  if (!check_key(cmd, cmd[1])) return;
  const auto now = kvx::now_ms();
  std::error_code ec;
  table_->modify(cmd[1], [&](kvx::row_ref& r) {
    std::string v;
    std::int64_t exp = 0;
    if (alive(r, now)) {
      if (r.get_int(col_type_) != kvx::kString) return cmd.reply().error(kvx::kWrongType);
      auto old = r.get_string(col_value_);
      if (old.size() + cmd[2].size() > value_size_) {
        ec = make_error_code(kvx::shm_errc::value_too_long);
        return;
      }
      v.reserve(old.size() + cmd[2].size());
      v.append(old);
      exp = r.get_int(col_expire_);
    }
    v.append(cmd[2]);
    if ((ec = write(r, kvx::kString, v, exp))) return;
    cmd.reply().integer(static_cast<long long>(v.size()));
  });
  if (ec) reply_write_error(cmd, ec);
}

void redis_kv::cmd_strlen(context&, session_id, client&, redis::command& cmd) {
  if (!check_key(cmd, cmd[1])) return;
  auto v = load(cmd[1], kvx::now_ms(), true);
  if (!v.found) return cmd.reply().integer(0);
  if (v.type != kvx::kString) return cmd.reply().error(kvx::kWrongType);
  cmd.reply().integer(static_cast<long long>(v.value.size()));
}

void redis_kv::cmd_getrange(context&, session_id, client&, redis::command& cmd) {
  long long start, end;
  if (!kvx::string2ll(cmd[2], start) || !kvx::string2ll(cmd[3], end)) return cmd.reply().error(kvx::kNotInteger);
  if (!check_key(cmd, cmd[1])) return;
  auto v = load(cmd[1], kvx::now_ms(), true);
  if (!v.found) return cmd.reply().bulk("");
  if (v.type != kvx::kString) return cmd.reply().error(kvx::kWrongType);
  const auto len = static_cast<long long>(v.value.size());
  if (start < 0 && end < 0 && start > end) return cmd.reply().bulk("");
  if (start < 0) start = len + start;
  if (end < 0) end = len + end;
  if (start < 0) start = 0;
  if (end < 0) end = 0;
  if (end >= len) end = len - 1;
  if (start > end || len == 0) return cmd.reply().bulk("");
  cmd.reply().bulk(std::string_view(v.value).substr(static_cast<std::size_t>(start),
                                                    static_cast<std::size_t>(end - start + 1)));
}

void redis_kv::cmd_setrange(context&, session_id, client&, redis::command& cmd) {
  long long offset;
  if (!kvx::string2ll(cmd[2], offset)) return cmd.reply().error(kvx::kNotInteger);
  if (offset < 0) return cmd.reply().error("ERR offset is out of range");
  if (!check_key(cmd, cmd[1])) return;
  const auto now = kvx::now_ms();
  const auto piece = cmd[3];
  std::error_code ec;
  table_->modify(cmd[1], [&](kvx::row_ref& r) {
    std::string v;
    std::int64_t exp = 0;
    if (!alive(r, now)) {
      if (piece.empty()) return cmd.reply().integer(0);
    } else {
      if (r.get_int(col_type_) != kvx::kString) return cmd.reply().error(kvx::kWrongType);
      auto old = r.get_string(col_value_);
      if (piece.empty()) return cmd.reply().integer(static_cast<long long>(old.size()));
      v.assign(old);
      exp = r.get_int(col_expire_);
    }
    // Redis's own limit first (its checkStringLength), then the table's column.
    if (static_cast<unsigned long long>(offset) + piece.size() > kvx::kProtoMaxBulkLen)
      return cmd.reply().error("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
    if (static_cast<unsigned long long>(offset) + piece.size() > value_size_) {
      ec = make_error_code(kvx::shm_errc::value_too_long);
      return;
    }
    auto need = static_cast<std::size_t>(offset) + piece.size();
    if (v.size() < need) v.resize(need, '\0');
    std::memcpy(v.data() + offset, piece.data(), piece.size());
    if ((ec = write(r, kvx::kString, v, exp))) return;
    cmd.reply().integer(static_cast<long long>(v.size()));
  });
  if (ec) reply_write_error(cmd, ec);
}

void redis_kv::incr_generic(redis::command& cmd, std::int64_t by) {
  if (!check_key(cmd, cmd[1])) return;
  const auto now = kvx::now_ms();
  std::error_code ec;
  table_->modify(cmd[1], [&](kvx::row_ref& r) {
    long long value = 0;
    std::int64_t exp = 0;
    if (alive(r, now)) {
      if (r.get_int(col_type_) != kvx::kString) return cmd.reply().error(kvx::kWrongType);
      if (!kvx::string2ll(r.get_string(col_value_), value)) return cmd.reply().error(kvx::kNotInteger);
      exp = r.get_int(col_expire_);
    }
    if ((by < 0 && value < 0 && by < LLONG_MIN - value) || (by > 0 && value > 0 && by > LLONG_MAX - value))
      return cmd.reply().error(kvx::kOverflow);
    value += by;
    if ((ec = write(r, kvx::kString, std::to_string(value), exp))) return;
    cmd.reply().integer(value);
  });
  if (ec) reply_write_error(cmd, ec);
}

void redis_kv::cmd_incr(context&, session_id, client&, redis::command& cmd) { incr_generic(cmd, 1); }
void redis_kv::cmd_decr(context&, session_id, client&, redis::command& cmd) { incr_generic(cmd, -1); }

void redis_kv::cmd_incrby(context&, session_id, client&, redis::command& cmd) {
  long long by;
  if (!kvx::string2ll(cmd[2], by)) return cmd.reply().error(kvx::kNotInteger);
  incr_generic(cmd, by);
}

void redis_kv::cmd_decrby(context&, session_id, client&, redis::command& cmd) {
  long long by;
  if (!kvx::string2ll(cmd[2], by)) return cmd.reply().error(kvx::kNotInteger);
  if (by == LLONG_MIN) return cmd.reply().error("ERR decrement would overflow");
  incr_generic(cmd, -by);
}

void redis_kv::cmd_incrbyfloat(context&, session_id, client&, redis::command& cmd) {
  if (!check_key(cmd, cmd[1])) return;
  const auto now = kvx::now_ms();
  std::error_code ec;
  table_->modify(cmd[1], [&](kvx::row_ref& r) {
    long double value = 0, incr = 0;
    std::int64_t exp = 0;
    if (alive(r, now)) {
      if (r.get_int(col_type_) != kvx::kString) return cmd.reply().error(kvx::kWrongType);
      if (!kvx::string2ld(r.get_string(col_value_), value)) return cmd.reply().error(kvx::kNotFloat);
      exp = r.get_int(col_expire_);
    }
    if (!kvx::string2ld(cmd[2], incr)) return cmd.reply().error(kvx::kNotFloat);
    value += incr;
    if (std::isnan(value) || std::isinf(value)) return cmd.reply().error(kvx::kNanInf);
    auto text = kvx::ld2string(value);
    if ((ec = write(r, kvx::kString, text, exp))) return;
    cmd.reply().bulk(text);
  });
  if (ec) reply_write_error(cmd, ec);
}

// -- keys ----------------------------------------------------------------------------------------

void redis_kv::cmd_del(context&, session_id, client&, redis::command& cmd) {
  for (std::size_t i = 1; i < cmd.size(); ++i)
    if (!check_key(cmd, cmd[i])) return;
  const auto now = kvx::now_ms();
  long long n = 0;
  for (std::size_t i = 1; i < cmd.size(); ++i)
    table_->modify(cmd[i], [&](kvx::row_ref& r) {
      if (alive(r, now)) {
        r.erase();
        ++n;
      }
    });
  cmd.reply().integer(n);
}

void redis_kv::cmd_exists(context&, session_id, client&, redis::command& cmd) {
  for (std::size_t i = 1; i < cmd.size(); ++i)
    if (!check_key(cmd, cmd[i])) return;
  const auto now = kvx::now_ms();
  long long n = 0;
  for (std::size_t i = 1; i < cmd.size(); ++i)
    if (load(cmd[i], now, false).found) ++n;
  cmd.reply().integer(n);
}

void redis_kv::cmd_touch(context& ctx, session_id s, client& c, redis::command& cmd) { cmd_exists(ctx, s, c, cmd); }

void redis_kv::cmd_type(context&, session_id, client&, redis::command& cmd) {
  if (!check_key(cmd, cmd[1])) return;
  auto v = load(cmd[1], kvx::now_ms(), false);
  cmd.reply().status(kvx::type_name(v.found ? v.type : 0));
}

void redis_kv::expire_generic(redis::command& cmd, std::int64_t base, bool seconds) {
  enum { nx = 1, xx = 2, gt = 4, lt = 8 };
  int flag = 0;
  for (std::size_t j = 3; j < cmd.size(); ++j) {
    auto opt = cmd[j];
    if (redis::iequals(opt, "nx"))
      flag |= nx;
    else if (redis::iequals(opt, "xx"))
      flag |= xx;
    else if (redis::iequals(opt, "gt"))
      flag |= gt;
    else if (redis::iequals(opt, "lt"))
      flag |= lt;
    else
      return cmd.reply().error("ERR Unsupported option " + std::string(opt.substr(0, opt.find('\0'))));
  }
  if ((flag & nx) && (flag & (xx | gt | lt)))
    return cmd.reply().error("ERR NX and XX, GT or LT options at the same time are not compatible");
  if ((flag & gt) && (flag & lt))
    return cmd.reply().error("ERR GT and LT options at the same time are not compatible");
  long long when;
  if (!kvx::string2ll(cmd[2], when)) return cmd.reply().error(kvx::kNotInteger);
  auto invalid = [&] { cmd.reply().error("ERR invalid expire time in '" + protocols::ascii_lowered(cmd.name()) + "' command"); };
  if (seconds) {
    if (when > LLONG_MAX / 1000 || when < LLONG_MIN / 1000) return invalid();
    when *= 1000;
  }
  if (when > LLONG_MAX - base) return invalid();
  when += base;
  if (!check_key(cmd, cmd[1])) return;
  const auto now = kvx::now_ms();
  table_->modify(cmd[1], [&](kvx::row_ref& r) {
    if (!alive(r, now)) return cmd.reply().integer(0);
    long long current = r.get_int(col_expire_);
    if (current == 0) current = -1;
    if ((flag & nx) && current != -1) return cmd.reply().integer(0);
    if ((flag & xx) && current == -1) return cmd.reply().integer(0);
    if ((flag & gt) && (when <= current || current == -1)) return cmd.reply().integer(0);
    if ((flag & lt) && current != -1 && when >= current) return cmd.reply().integer(0);
    if (when <= now)
      r.erase();
    else
      (void)r.set(col_expire_, static_cast<std::int64_t>(when));
    cmd.reply().integer(1);
  });
}

void redis_kv::cmd_expire(context&, session_id, client&, redis::command& cmd) { expire_generic(cmd, kvx::now_ms(), true); }
void redis_kv::cmd_pexpire(context&, session_id, client&, redis::command& cmd) { expire_generic(cmd, kvx::now_ms(), false); }
void redis_kv::cmd_expireat(context&, session_id, client&, redis::command& cmd) { expire_generic(cmd, 0, true); }
void redis_kv::cmd_pexpireat(context&, session_id, client&, redis::command& cmd) { expire_generic(cmd, 0, false); }

void redis_kv::ttl_generic(redis::command& cmd, bool ms, bool absolute) {
  if (!check_key(cmd, cmd[1])) return;
  const auto now = kvx::now_ms();
  auto v = load(cmd[1], now, false);
  if (!v.found) return cmd.reply().integer(-2);
  if (v.expire == 0) return cmd.reply().integer(-1);
  long long ttl = absolute ? v.expire : v.expire - now;
  if (ttl < 0) ttl = 0;
  cmd.reply().integer(ms ? ttl : (ttl + 500) / 1000);
}

void redis_kv::cmd_ttl(context&, session_id, client&, redis::command& cmd) { ttl_generic(cmd, false, false); }
void redis_kv::cmd_pttl(context&, session_id, client&, redis::command& cmd) { ttl_generic(cmd, true, false); }
void redis_kv::cmd_expiretime(context&, session_id, client&, redis::command& cmd) { ttl_generic(cmd, false, true); }
void redis_kv::cmd_pexpiretime(context&, session_id, client&, redis::command& cmd) { ttl_generic(cmd, true, true); }

void redis_kv::cmd_persist(context&, session_id, client&, redis::command& cmd) {
  if (!check_key(cmd, cmd[1])) return;
  const auto now = kvx::now_ms();
  table_->modify(cmd[1], [&](kvx::row_ref& r) {
    if (!alive(r, now) || r.get_int(col_expire_) == 0) return cmd.reply().integer(0);
    (void)r.set(col_expire_, std::int64_t{0});
    cmd.reply().integer(1);
  });
}

void redis_kv::cmd_keys(context&, session_id, client&, redis::command& cmd) {
  const std::string pattern(cmd[1]);
  const bool all = pattern == "*";
  const auto now = kvx::now_ms();
  std::vector<std::string> keys;
  table_->scan(0, 0, [&](kvx::row_ref& r) {
    if (!alive(r, now)) return;
    if (all || kvx::glob_match(pattern, r.key())) keys.emplace_back(r.key());
  });
  cmd.reply().array(keys.size());
  for (auto& k : keys) cmd.reply().bulk(k);
}

void redis_kv::cmd_scan(context&, session_id, client&, redis::command& cmd) {
  // parseScanCursorOrReply: strtoul, no leading space, nothing after the digits.
  std::string text(cmd[1]);
  errno = 0;
  char* end = nullptr;
  unsigned long cursor = std::strtoul(text.c_str(), &end, 10);
  if (std::isspace(static_cast<unsigned char>(text.c_str()[0])) || *end != '\0' || errno == ERANGE)
    return cmd.reply().error("ERR invalid cursor");
  long long count = 10;
  std::string pattern;
  bool use_pattern = false;
  std::string type;
  bool use_type = false;
  for (std::size_t i = 2; i < cmd.size();) {
    const std::size_t left = cmd.size() - i;
    if (redis::iequals(cmd[i], "count") && left >= 2) {
      if (!kvx::string2ll(cmd[i + 1], count)) return cmd.reply().error(kvx::kNotInteger);
      if (count < 1) return cmd.reply().error(kvx::kSyntax);
      i += 2;
    } else if (redis::iequals(cmd[i], "match") && left >= 2) {
      pattern = std::string(cmd[i + 1]);
      use_pattern = pattern != "*";
      i += 2;
    } else if (redis::iequals(cmd[i], "type") && left >= 2) {
      type = std::string(cmd[i + 1]);
      use_type = true;
      i += 2;
    } else {
      return cmd.reply().error(kvx::kSyntax);
    }
  }
  const auto now = kvx::now_ms();
  std::vector<std::string> keys;
  std::uint64_t next = 0;
  if (cursor < table_->bucket_count()) {
    next = table_->scan(cursor, static_cast<std::size_t>(count), [&](kvx::row_ref& r) {
      if (!alive(r, now)) return;
      if (use_type && !redis::iequals(type, kvx::type_name(r.get_int(col_type_)))) return;
      if (use_pattern && !kvx::glob_match(pattern, r.key())) return;
      keys.emplace_back(r.key());
    });
  }
  auto& w = cmd.reply();
  w.array(2);
  w.bulk(std::to_string(next));
  w.array(keys.size());
  for (auto& k : keys) w.bulk(k);
}

void redis_kv::rename_generic(redis::command& cmd, bool nx) {
  if (!check_key(cmd, cmd[1]) || !check_key(cmd, cmd[2])) return;
  const auto now = kvx::now_ms();
  auto src = load(cmd[1], now, true);
  if (!src.found) return cmd.reply().error("ERR no such key");
  if (cmd[1] == cmd[2]) {
    if (nx)
      cmd.reply().integer(0);
    else
      cmd.reply().status("OK");
    return;
  }
  std::error_code ec;
  bool exists = false;
  table_->modify(cmd[2], [&](kvx::row_ref& r) {
    if (alive(r, now) && nx) {
      exists = true;
      return;
    }
    ec = write(r, src.type, src.value, src.expire);
  });
  if (exists) return cmd.reply().integer(0);
  if (ec) return reply_write_error(cmd, ec);
  table_->modify(cmd[1], [&](kvx::row_ref& r) { r.erase(); });
  if (nx)
    cmd.reply().integer(1);
  else
    cmd.reply().status("OK");
}

void redis_kv::cmd_rename(context&, session_id, client&, redis::command& cmd) { rename_generic(cmd, false); }
void redis_kv::cmd_renamenx(context&, session_id, client&, redis::command& cmd) { rename_generic(cmd, true); }

void redis_kv::cmd_dbsize(context&, session_id, client&, redis::command& cmd) {
  cmd.reply().integer(static_cast<long long>(table_->count()));
}

void redis_kv::cmd_flushdb(context&, session_id, client&, redis::command& cmd) {
  if (cmd.size() > 2 || (cmd.size() == 2 && !redis::iequals(cmd[1], "sync") && !redis::iequals(cmd[1], "async")))
    return cmd.reply().error(kvx::kSyntax);
  table_->scan(0, 0, [](kvx::row_ref& r) { r.erase(); });
  cmd.reply().status("OK");
}

void redis_kv::cmd_randomkey(context&, session_id, client&, redis::command& cmd) {
  static thread_local std::minstd_rand rng(std::random_device{}());
  const auto now = kvx::now_ms();
  const std::uint64_t buckets = table_->bucket_count();
  const std::uint64_t start = std::uniform_int_distribution<std::uint64_t>(0, buckets - 1)(rng);
  std::string key;
  bool found = false;
  auto visit = [&](kvx::row_ref& r) {
    if (found || !alive(r, now)) return;
    key.assign(r.key());
    found = true;
  };
  std::uint64_t cur = start;
  bool wrapped = false;
  while (!found) {
    auto next = table_->scan(cur, 1, visit);
    if (found) break;
    if (next == 0) {
      if (wrapped || start == 0) break;
      wrapped = true;
      cur = 0;
      continue;
    }
    if (wrapped && next > start) break;
    cur = next;
  }
  if (!found) return cmd.reply().null();
  cmd.reply().bulk(key);
}

// -- hashes --------------------------------------------------------------------------------------

// Runs fn(fields, changed) on the live hash at cmd[1] (empty when absent) under the key's
// lock; fn replies (or errors and returns false); when it set `changed`, the hash is written
// back (or the key removed when no field is left).
template <class F>
void redis_kv::hash_update(redis::command& cmd, F&& fn) {
  if (!check_key(cmd, cmd[1])) return;
  const auto now = kvx::now_ms();
  std::error_code ec;
  table_->modify(cmd[1], [&](kvx::row_ref& r) {
    kvx::pairs fields;
    std::int64_t exp = 0;
    if (alive(r, now)) {
      if (r.get_int(col_type_) != kvx::kHash) return cmd.reply().error(kvx::kWrongType);
      fields = kvx::decode_hash(r.get_string(col_value_));
      exp = r.get_int(col_expire_);
    }
    bool changed = false;
    if (!fn(fields, changed) || !changed) return;
    if (fields.empty()) return r.erase();
    ec = write(r, kvx::kHash, kvx::encode_hash(fields), exp);
  });
  if (ec) reply_write_error(cmd, ec);
}

namespace kvx {
void hset_fields(redis::command& cmd, pairs& fields, long long& created) {
  for (std::size_t i = 2; i + 1 < cmd.size(); i += 2) {
    auto it = find_field(fields, cmd[i]);
    if (it != fields.end()) {
      it->second = cmd[i + 1];
    } else {
      fields.emplace_back(cmd[i], cmd[i + 1]);
      ++created;
    }
  }
}
}  // namespace kvx

void redis_kv::cmd_hset(context&, session_id, client&, redis::command& cmd) {
  if (cmd.size() % 2 == 1) return redis::reply_wrong_arity(cmd);
  hash_update(cmd, [&](kvx::pairs& fields, bool& changed) {
    long long created = 0;
    kvx::hset_fields(cmd, fields, created);
    changed = true;
    cmd.reply().integer(created);
    return true;
  });
}

void redis_kv::cmd_hmset(context&, session_id, client&, redis::command& cmd) {
  if (cmd.size() % 2 == 1) return redis::reply_wrong_arity(cmd);
  hash_update(cmd, [&](kvx::pairs& fields, bool& changed) {
    long long created = 0;
    kvx::hset_fields(cmd, fields, created);
    changed = true;
    cmd.reply().status("OK");
    return true;
  });
}

void redis_kv::cmd_hsetnx(context&, session_id, client&, redis::command& cmd) {
  hash_update(cmd, [&](kvx::pairs& fields, bool& changed) {
    if (kvx::find_field(fields, cmd[2]) != fields.end()) {
      cmd.reply().integer(0);
      return true;
    }
    fields.emplace_back(cmd[2], cmd[3]);
    changed = true;
    cmd.reply().integer(1);
    return true;
  });
}

void redis_kv::cmd_hdel(context&, session_id, client&, redis::command& cmd) {
  hash_update(cmd, [&](kvx::pairs& fields, bool& changed) {
    long long deleted = 0;
    for (std::size_t i = 2; i < cmd.size(); ++i) {
      auto it = kvx::find_field(fields, cmd[i]);
      if (it != fields.end()) {
        fields.erase(it);
        ++deleted;
      }
    }
    changed = deleted > 0;
    cmd.reply().integer(deleted);
    return true;
  });
}

void redis_kv::cmd_hincrby(context&, session_id, client&, redis::command& cmd) {
  long long incr;
  if (!kvx::string2ll(cmd[3], incr)) return cmd.reply().error(kvx::kNotInteger);
  std::string text;
  hash_update(cmd, [&](kvx::pairs& fields, bool& changed) {
    long long value = 0;
    auto it = kvx::find_field(fields, cmd[2]);
    if (it != fields.end() && !kvx::string2ll(it->second, value)) {
      cmd.reply().error("ERR hash value is not an integer");
      return false;
    }
    if ((incr < 0 && value < 0 && incr < LLONG_MIN - value) || (incr > 0 && value > 0 && incr > LLONG_MAX - value)) {
      cmd.reply().error(kvx::kOverflow);
      return false;
    }
    value += incr;
    text = std::to_string(value);
    if (it != fields.end())
      it->second = text;
    else
      fields.emplace_back(cmd[2], text);
    changed = true;
    cmd.reply().integer(value);
    return true;
  });
}

void redis_kv::cmd_hincrbyfloat(context&, session_id, client&, redis::command& cmd) {
  long double incr;
  if (!kvx::string2ld(cmd[3], incr)) return cmd.reply().error(kvx::kNotFloat);
  if (std::isnan(incr) || std::isinf(incr)) return cmd.reply().error("ERR value is NaN or Infinity");
  std::string text;
  hash_update(cmd, [&](kvx::pairs& fields, bool& changed) {
    long double value = 0;
    auto it = kvx::find_field(fields, cmd[2]);
    if (it != fields.end() && !kvx::string2ld(it->second, value)) {
      cmd.reply().error("ERR hash value is not a float");
      return false;
    }
    value += incr;
    if (std::isnan(value) || std::isinf(value)) {
      cmd.reply().error(kvx::kNanInf);
      return false;
    }
    text = kvx::ld2string(value);
    if (it != fields.end())
      it->second = text;
    else
      fields.emplace_back(cmd[2], text);
    changed = true;
    cmd.reply().bulk(text);
    return true;
  });
}

void redis_kv::cmd_hget(context&, session_id, client&, redis::command& cmd) {
  if (!check_key(cmd, cmd[1])) return;
  auto v = load(cmd[1], kvx::now_ms(), true);
  if (!v.found) return cmd.reply().null();
  if (v.type != kvx::kHash) return cmd.reply().error(kvx::kWrongType);
  auto fields = kvx::decode_hash(v.value);
  auto it = kvx::find_field(fields, cmd[2]);
  if (it == fields.end()) return cmd.reply().null();
  cmd.reply().bulk(it->second);
}

void redis_kv::cmd_hmget(context&, session_id, client&, redis::command& cmd) {
  if (!check_key(cmd, cmd[1])) return;
  auto v = load(cmd[1], kvx::now_ms(), true);
  if (v.found && v.type != kvx::kHash) return cmd.reply().error(kvx::kWrongType);
  auto fields = kvx::decode_hash(v.value);
  cmd.reply().array(cmd.size() - 2);
  for (std::size_t i = 2; i < cmd.size(); ++i) {
    auto it = kvx::find_field(fields, cmd[i]);
    if (it == fields.end())
      cmd.reply().null();
    else
      cmd.reply().bulk(it->second);
  }
}

void redis_kv::hash_fields(redis::command& cmd, bool keys, bool values) {
  if (!check_key(cmd, cmd[1])) return;
  auto v = load(cmd[1], kvx::now_ms(), true);
  if (v.found && v.type != kvx::kHash) return cmd.reply().error(kvx::kWrongType);
  auto fields = kvx::decode_hash(v.value);
  auto& w = cmd.reply();
  if (keys && values)
    w.map(fields.size());
  else
    w.array(fields.size());
  for (auto& [f, x] : fields) {
    if (keys) w.bulk(f);
    if (values) w.bulk(x);
  }
}

void redis_kv::cmd_hgetall(context&, session_id, client&, redis::command& cmd) { hash_fields(cmd, true, true); }
void redis_kv::cmd_hkeys(context&, session_id, client&, redis::command& cmd) { hash_fields(cmd, true, false); }
void redis_kv::cmd_hvals(context&, session_id, client&, redis::command& cmd) { hash_fields(cmd, false, true); }

void redis_kv::cmd_hexists(context&, session_id, client&, redis::command& cmd) {
  if (!check_key(cmd, cmd[1])) return;
  auto v = load(cmd[1], kvx::now_ms(), true);
  if (v.found && v.type != kvx::kHash) return cmd.reply().error(kvx::kWrongType);
  auto fields = kvx::decode_hash(v.value);
  cmd.reply().integer(kvx::find_field(fields, cmd[2]) != fields.end() ? 1 : 0);
}

void redis_kv::cmd_hlen(context&, session_id, client&, redis::command& cmd) {
  if (!check_key(cmd, cmd[1])) return;
  auto v = load(cmd[1], kvx::now_ms(), true);
  if (v.found && v.type != kvx::kHash) return cmd.reply().error(kvx::kWrongType);
  cmd.reply().integer(static_cast<long long>(kvx::decode_hash(v.value).size()));
}

void redis_kv::cmd_hstrlen(context&, session_id, client&, redis::command& cmd) {
  if (!check_key(cmd, cmd[1])) return;
  auto v = load(cmd[1], kvx::now_ms(), true);
  if (v.found && v.type != kvx::kHash) return cmd.reply().error(kvx::kWrongType);
  auto fields = kvx::decode_hash(v.value);
  auto it = kvx::find_field(fields, cmd[2]);
  cmd.reply().integer(it == fields.end() ? 0 : static_cast<long long>(it->second.size()));
}

}  // namespace swactor::apps
