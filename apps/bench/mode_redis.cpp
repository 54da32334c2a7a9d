// redis: RESP2 commands on persistent connections (redis://HOST:PORT, also tcp:// and
// unix://), like redis-benchmark: --mix picks the commands (GET, SET, INCR, PING) by weight,
// --keyspace the random keys, --value-size SET's value; --pipeline N sends N commands per
// round in one write and reads the N replies before the next round (redis-benchmark -P).
// Replies are cut by a RESP2 parser (+ - : $ *); an error reply ("-ERR ...") is a whole
// reply that counts as a server_error, not as a success. --verify also checks each reply's
// type against its command (SET +OK, GET a bulk string or nil, INCR an integer, PING +PONG).
#include <algorithm>
#include <cctype>
#include <climits>

#include "mode.hpp"
#include "resp.hpp"

namespace swactor::bench {

namespace resp {

namespace {

// A RESP integer: an optional '-' and digits (no '+', no spaces), within 64 bits, as
// redis-server writes them.
bool integer(std::string_view s, long long& out) {
  bool neg = false;
  if (!s.empty() && s[0] == '-') {
    neg = true;
    s.remove_prefix(1);
  }
  if (s.empty() || s.size() > 19) return false;
  unsigned long long v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<unsigned>(c - '0');  // 19 digits cannot wrap 64 bits
  }
  if (v > static_cast<unsigned long long>(LLONG_MAX) + (neg ? 1 : 0)) return false;
  out = neg ? static_cast<long long>(0 - v) : static_cast<long long>(v);
  return true;
}

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

constexpr std::string_view get_head = "*2\r\n$3\r\nGET\r\n$16\r\nkey:";
constexpr std::string_view set_head = "*3\r\n$3\r\nSET\r\n$16\r\nkey:";
constexpr std::string_view incr_head = "*2\r\n$4\r\nINCR\r\n$20\r\ncounter:";
constexpr std::string_view ping_request = "*1\r\n$4\r\nPING\r\n";
constexpr std::size_t key_digits = 12;

void append_digits(std::string& out, std::uint64_t v) {
  char buf[key_digits];
  for (std::size_t i = key_digits; i-- > 0; v /= 10) buf[i] = static_cast<char>('0' + v % 10);
  out.append(buf, key_digits);
}

}  // namespace

reply_cut parse_reply(std::string_view in) {
  // Nesting needs no stack: the reply ends once every announced element has been read.
  std::uint64_t pending = 1;
  std::size_t pos = 0;
  bool error = false;
  for (bool top = true; pending > 0; top = false) {
    if (pos >= in.size()) return {};
    const char type = in[pos];
    const auto eol = in.find("\r\n", pos + 1);
    if (eol == std::string_view::npos) return {in.size() - pos > max_line_len + 1 ? -1 : 0};
    if (eol - pos - 1 > max_line_len) return {-1};
    const auto line = in.substr(pos + 1, eol - pos - 1);
    pos = eol + 2;
    --pending;
    long long n = 0;
    switch (type) {
      case '+':
        break;
      case '-':
        error = top;
        break;
      case ':':
        if (!integer(line, n)) return {-1};
        break;
      case '$':
        if (!integer(line, n) || n < -1 ||
            (n >= 0 && static_cast<unsigned long long>(n) > max_bulk_len))
          return {-1};
        if (n >= 0) {
          const auto len = static_cast<std::size_t>(n);
          if (in.size() - pos < len + 2) return {};
          if (in.substr(pos + len, 2) != "\r\n") return {-1};
          pos += len + 2;
        }
        break;
      case '*':
        if (!integer(line, n) || n < -1 || n > INT_MAX) return {-1};
        if (n > 0) pending += static_cast<std::uint64_t>(n);
        break;
      default:
        return {-1};
    }
  }
  return {static_cast<std::ptrdiff_t>(pos), error};
}

std::string_view command_name(command c) {
  switch (c) {
    case command::get:
      return "get";
    case command::set:
      return "set";
    case command::incr:
      return "incr";
    case command::ping:
      return "ping";
  }
  return "get";
}

std::string parse_mix(std::string_view text, std::vector<weighted>& out) {
  out.clear();
  auto trim = [](std::string_view s) {
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
    return s;
  };
  std::size_t at = 0;
  for (;;) {
    const auto comma = text.find(',', at);
    const auto item =
        trim(text.substr(at, comma == std::string_view::npos ? text.npos : comma - at));
    if (item.empty()) return "empty entry in '" + std::string(text) + "'";
    const auto colon = item.find(':');
    std::string name(trim(item.substr(0, colon)));
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    unsigned weight = 1;
    if (colon != std::string_view::npos) {
      const auto w = trim(item.substr(colon + 1));
      long long v = 0;
      if (w.empty() || w[0] == '-' || !integer(w, v) || v < 1 || v > 1000000)
        return "weight of '" + std::string(item) + "' is not an integer 1 .. 1000000";
      weight = static_cast<unsigned>(v);
    }
    bool known = false;
    for (auto c : {command::get, command::set, command::incr, command::ping}) {
      if (command_name(c) != name) continue;
      for (const auto& e : out)
        if (e.cmd == c) return "'" + name + "' appears twice";
      out.push_back({c, weight});
      known = true;
    }
    if (!known) return "unknown command '" + name + "' (get, set, incr, ping)";
    if (comma == std::string_view::npos) break;
    at = comma + 1;
  }
  return {};
}

encoder::encoder(std::vector<weighted> mix, std::uint64_t keyspace, std::size_t value_size)
    : mix_(std::move(mix)), keyspace_(std::max<std::uint64_t>(keyspace, 1)) {
  for (const auto& e : mix_) total_ += e.weight;
  set_tail_ = "\r\n$" + std::to_string(value_size) + "\r\n" + std::string(value_size, 'x') + "\r\n";
}

void encoder::make(std::uint64_t conn, std::uint64_t seq, std::string& out) const {
  out.clear();
  if (total_ == 0) return;
  const std::uint64_t h = splitmix64(conn * 0xD1342543DE82EF95ull + seq);
  std::uint64_t pick = h % total_;
  command cmd = mix_.back().cmd;
  for (const auto& e : mix_) {
    if (pick < e.weight) {
      cmd = e.cmd;
      break;
    }
    pick -= e.weight;
  }
  const std::uint64_t key = splitmix64(h) % keyspace_;
  switch (cmd) {
    case command::get:
      out += get_head;
      append_digits(out, key);
      out += "\r\n";
      break;
    case command::set:
      out += set_head;
      append_digits(out, key);
      out += set_tail_;
      break;
    case command::incr:
      out += incr_head;
      append_digits(out, key);
      out += "\r\n";
      break;
    case command::ping:
      out += ping_request;
      break;
  }
}

command encoder::command_of(std::string_view request) {
  // Every request starts "*N\r\n$L\r\n" with one-digit N and L: the name is at offset 8.
  switch (request.size() > 8 ? request[8] : '\0') {
    case 'S':
      return command::set;
    case 'I':
      return command::incr;
    case 'P':
      return command::ping;
    default:
      return command::get;
  }
}

}  // namespace resp

namespace {

class redis_mode final : public mode {
 public:
  explicit redis_mode(const settings& s)
      : mix_error_(resp::parse_mix(s.redis.mix, mix_)),
        encoder_(mix_, s.redis.keyspace, std::min<std::size_t>(s.redis.value_size, max_value)) {}

  std::string_view name() const override { return "redis"; }
  bool accepts(const target& t) const override {
    return !t.http && !t.websocket && (t.kind == scheme::tcp || t.kind == scheme::unix_stream);
  }
  bool pipeline_rounds() const override { return true; }

  std::string check(const settings& s) const override {
    if (!mix_error_.empty()) return "--mix: " + mix_error_;
    if (s.redis.keyspace < 1 || s.redis.keyspace > max_keyspace)
      return "--keyspace must be 1 .. 1000000000000 (keys have 12 digits)";
    if (s.redis.value_size > max_value) return "--value-size must be at most 64 MiB";
    return {};
  }

  void make_request(std::uint64_t conn, std::uint64_t seq, std::string& out) const override {
    encoder_.make(conn, seq, out);
  }

  std::ptrdiff_t reply_size(std::string_view in, std::string_view) const override {
    return resp::parse_reply(in).size;
  }

  cut cut_reply(std::string_view in, std::string_view, bool at_close) const override {
    if (at_close) return {-1};  // RESP replies never end with the connection
    const auto r = resp::parse_reply(in);
    cut c;
    c.size = r.size;
    c.failed = r.size > 0 && r.error;
    return c;
  }

  // The reply's type fits the command (error replies never get here: they are failures).
  bool matches(std::string_view request, std::string_view reply) const override {
    switch (resp::encoder::command_of(request)) {
      case resp::command::set:
        return reply == "+OK\r\n";
      case resp::command::get:
        return !reply.empty() && reply[0] == '$';
      case resp::command::incr:
        return !reply.empty() && reply[0] == ':';
      case resp::command::ping:
        return reply == "+PONG\r\n";
    }
    return false;
  }

 private:
  static constexpr std::uint64_t max_keyspace = 1000000000000ull;
  static constexpr std::size_t max_value = std::size_t{64} << 20;

  std::vector<resp::weighted> mix_;
  std::string mix_error_;
  resp::encoder encoder_;
};

}  // namespace

std::unique_ptr<mode> make_redis_mode(const settings& s) {
  return std::make_unique<redis_mode>(s);
}

}  // namespace swactor::bench
