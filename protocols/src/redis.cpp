// The Redis protocol server codec and reply writer.
//
// Decoding mirrors redis-server 7.0 (networking.c processInlineBuffer and
// processMultibulkBuffer) in everything a client can observe: which bytes make a command,
// when a command is complete, which errors are raised and when. Some of its quirks are kept
// on purpose, so that a client sees the same server:
//   - line ends are found with strchr on a NUL-terminated buffer, so a NUL byte before the
//     line end hides it (the line then only ends by growing past max_inline_len);
//   - a multibulk header line ends at '\r', and the byte after it is skipped unchecked; so
//     are the two bytes after a bulk's data (Redis assumes they are "\r\n");
//   - the "too big" checks look at everything pending, and only while no line end is found.
// Redis's authentication limits (unauthenticated multibulk/bulk lengths) belong to the
// command layer, which knows about AUTH, and are not applied here.
//
// Parse progress (state_, pos_, scan_) is kept between decode() calls, relative to the
// start of the command being read: the connection presents the unconsumed bytes again with
// new ones appended, so a large command arriving in pieces is scanned once, not once per
// piece. A command is consumed only once complete (its event carries all of its bytes).
#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <system_error>

#include "swactor/protocols/redis.hpp"

#include "swactor/protocols/ascii.hpp"

namespace swactor::protocols::redis {
namespace {

// -- errors ---------------------------------------------------------------------------------

class category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "redis"; }
  std::string message(int) const override { return "protocol error"; }
};

std::error_code protocol_errc() {
  static const category c;
  return {1, c};
}

// -- character classes and numbers ----------------------------------------------------------

// isspace() in the C locale (what sdssplitargs uses between arguments).
constexpr bool is_space(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

constexpr bool is_hex(char c) noexcept {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

constexpr int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}

// Redis's string2ll: an optional '-', then "0" alone or a digit 1-9 and more digits; no
// '+', no spaces, no leading zeros, fewer than 21 characters, no overflow.
bool parse_ll(std::string_view s, long long& v) noexcept {
  if (s.empty() || s.size() >= 21) return false;
  if (s.size() == 1 && s[0] == '0') {
    v = 0;
    return true;
  }
  bool negative = false;
  std::size_t i = 0;
  if (s[0] == '-') {
    negative = true;
    if (++i == s.size()) return false;
  }
  if (s[i] < '1' || s[i] > '9') return false;
  unsigned long long u = static_cast<unsigned long long>(s[i++] - '0');
  constexpr auto max = std::numeric_limits<unsigned long long>::max();
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    auto d = static_cast<unsigned long long>(s[i] - '0');
    if (u > max / 10 || u * 10 > max - d) return false;
    u = u * 10 + d;
  }
  constexpr auto llmax = static_cast<unsigned long long>(std::numeric_limits<long long>::max());
  if (negative) {
    if (u > llmax + 1) return false;
    v = u == llmax + 1 ? std::numeric_limits<long long>::min() : -static_cast<long long>(u);
  } else {
    if (u > llmax) return false;
    v = static_cast<long long>(u);
  }
  return true;
}

// The first `c` at or after `scan`, as strchr() finds it in Redis's NUL-terminated query
// buffer: a NUL byte ends the search unfound. npos when there is none. `scan` moves to
// where the search stopped (the match, the NUL, or the end), so the next search over the
// same bytes with more appended resumes there.
std::size_t find_c(std::string_view s, std::size_t& scan, char c) noexcept {
  std::size_t i = scan;
  for (; i < s.size(); ++i) {
    if (s[i] == c) {
      scan = i;
      return i;
    }
    if (s[i] == '\0') break;
  }
  scan = i;
  return std::string_view::npos;
}

// The general case of number_line() below, out of line so that the usual case stays small.
[[gnu::noinline]] std::size_t number_line_slow(std::string_view buf, std::size_t at, long long& n) noexcept {
  constexpr std::size_t max_line = 24;  // "$" and 21 characters of a long long, "\r\n"
  auto cr = buf.substr(0, std::min(buf.size(), at + max_line)).find('\r', at);
  if (cr == std::string_view::npos || cr + 2 > buf.size() || !parse_ll(buf.substr(at + 1, cr - at - 1), n))
    return 0;
  return cr + 2;
}

// The header line at `at` ("*3\r\n", "$5\r\n"): its number in `n` and the offset after it,
// 0 when it is incomplete or not a number. The usual line (a positive count of up to 18
// digits, which cannot overflow) in one inlined pass; anything else (a sign, a leading zero,
// more digits, no CR yet) goes to number_line_slow, which decides alone. Also the look-ahead's
// quick look: parse() decides what bytes are.
[[gnu::always_inline]] inline std::size_t number_line(std::string_view buf, std::size_t at, long long& n) noexcept {
  std::size_t i = at + 1;
  if (i < buf.size() && static_cast<unsigned char>(buf[i] - '1') < 9) {
    const std::size_t stop = std::min(buf.size(), at + 1 + 18);
    long long v = 0;
    for (; i < stop && static_cast<unsigned char>(buf[i] - '0') < 10; ++i) v = v * 10 + (buf[i] - '0');
    if (i + 2 <= buf.size() && buf[i] == '\r') {
      n = v;
      return i + 2;
    }
  }
  return number_line_slow(buf, at, n);
}

// HELLO, RESET and QUIT: after them the codec decodes nothing until they are answered (the
// protocol they choose, or the end, applies to what follows). ascii_iequals compares sizes
// first, so a name of another length costs nothing more.
[[gnu::always_inline]] inline bool waits_for_reply(std::string_view name) noexcept {
  return ascii_iequals(name, "hello") || ascii_iequals(name, "reset") || ascii_iequals(name, "quit");
}

// The size of the complete multibulk command at the start of `buf`, with 1 to `max_args`
// arguments, each at most `max_bulk` bytes; 0 when it is incomplete, malformed or larger
// (parse() then decides what it is). `hello`: its name is HELLO, RESET or QUIT.
std::size_t multibulk_size(std::string_view buf, long long max_args, unsigned long long max_bulk,
                           bool& hello) noexcept {
  if (buf.empty() || buf[0] != '*') return 0;
  long long n = 0;
  std::size_t pos = number_line(buf, 0, n);
  if (pos == 0 || n <= 0 || n > max_args) return 0;
  for (long long i = 0; i < n; ++i) {
    long long len = 0;
    if (pos >= buf.size() || buf[pos] != '$') return 0;
    pos = number_line(buf, pos, len);
    if (pos == 0 || len < 0 || static_cast<unsigned long long>(len) > max_bulk ||
        buf.size() - pos < static_cast<unsigned long long>(len) + 2)
      return 0;
    if (i == 0)
      hello = waits_for_reply(buf.substr(pos, static_cast<std::size_t>(len)));
    pos += static_cast<std::size_t>(len) + 2;
  }
  return pos;
}

// -- inline arguments -----------------------------------------------------------------------

// sdssplitargs's grammar. `on` gets begin() at each argument, put(c) for each of its bytes
// and end() after it. False: unbalanced quotes (Redis's only failure). One template for the
// codec (which validates without allocating) and split_inline (which builds the strings).
template <typename Out>
bool tokenize(std::string_view line, Out& on) {
  // sdssplitargs reads a C string: a NUL byte ends the line.
  if (auto nul = line.find('\0'); nul != std::string_view::npos) line = line.substr(0, nul);
  const std::size_t n = line.size();
  auto at = [&](std::size_t k) noexcept { return k < n ? line[k] : '\0'; };
  std::size_t i = 0;
  for (;;) {
    while (i < n && is_space(line[i])) ++i;
    if (i >= n) return true;
    on.begin();
    bool inq = false, insq = false, done = false;
    while (!done) {
      const char c = at(i);
      if (inq) {
        if (c == '\\' && at(i + 1) == 'x' && is_hex(at(i + 2)) && is_hex(at(i + 3))) {
          on.put(static_cast<char>(hex_value(at(i + 2)) * 16 + hex_value(at(i + 3))));
          i += 3;
        } else if (c == '\\' && at(i + 1)) {
          char e = at(++i);
          switch (e) {
            case 'n': e = '\n'; break;
            case 'r': e = '\r'; break;
            case 't': e = '\t'; break;
            case 'b': e = '\b'; break;
            case 'a': e = '\a'; break;
            default: break;
          }
          on.put(e);
        } else if (c == '"') {
          // A closing quote must be followed by a space or the end.
          if (at(i + 1) && !is_space(at(i + 1))) return false;
          done = true;
        } else if (!c) {
          return false;  // unterminated
        } else {
          on.put(c);
        }
      } else if (insq) {
        if (c == '\\' && at(i + 1) == '\'') {
          ++i;
          on.put('\'');
        } else if (c == '\'') {
          if (at(i + 1) && !is_space(at(i + 1))) return false;
          done = true;
        } else if (!c) {
          return false;
        } else {
          on.put(c);
        }
      } else {
        switch (c) {
          // Not is_space(): an unquoted argument does not end at \v or \f.
          case ' ':
          case '\n':
          case '\r':
          case '\t':
          case '\0': done = true; break;
          case '"': inq = true; break;
          case '\'': insq = true; break;
          default: on.put(c); break;
        }
      }
      if (at(i)) ++i;
    }
    on.end();
  }
}

// Counts the arguments of an inline line and notes whether the first one is HELLO, RESET or
// QUIT (the commands after which the codec waits for the reply).
struct inline_check {
  std::size_t count = 0;
  std::size_t len = 0;  // bytes of the first argument so far
  bool hello = true;    // the first argument matches "hello" so far
  bool reset = true;    // ... "reset"
  bool quit = true;     // ... "quit"
  void begin() noexcept { ++count; }
  void put(char c) noexcept {
    if (count != 1) return;
    if (len >= 5 || (c | 0x20) != "hello"[len]) hello = false;
    if (len >= 5 || (c | 0x20) != "reset"[len]) reset = false;
    if (len >= 4 || (c | 0x20) != "quit"[len]) quit = false;
    ++len;
  }
  void end() noexcept {}
  bool first_is_hello() const noexcept {
    return count > 0 && (((hello || reset) && len == 5) || (quit && len == 4));
  }
};

struct inline_args {
  std::vector<std::string>& args;
  void begin() { args.emplace_back(); }
  void put(char c) { args.back().push_back(c); }
  void end() noexcept {}
};

constexpr std::string_view crlf = "\r\n";

// -- the codec ------------------------------------------------------------------------------

class server_codec final : public stream_codec {
 public:
  explicit server_codec(const options& o) : opts_(o) {}

  std::string_view name() const noexcept override { return "redis"; }

  std::size_t decode(std::string_view in, event_sink& sink) override;
  void encode(std::uint8_t kind, std::string_view data, std::string& wire) override;

  bool take_output(std::string& out) override {
    if (output_.empty()) return false;
    if (out.empty()) out.swap(output_);
    else out.append(output_);
    output_.clear();
    return true;
  }

  // After a HELLO (or a RESET, back to RESP2) nothing is decoded until it is answered, so
  // the commands after it carry the protocol it chose; after a QUIT likewise, so nothing pipelined behind it runs (as in
  // redis-server); a failed codec takes nothing more either.
  bool blocked() const noexcept override { return !done_ && (hello_wait_ || failed()); }
  bool done() const noexcept override { return done_; }
  std::uint32_t outstanding() const noexcept override { return count_; }

  void abandon(std::string& out) override {
    if (done_ || count_ == 0) return;
    for (; count_; --count_) out.append("-ERR the worker handling this command went away\r\n");
    if (failed()) out.append("-ERR ").append(reason()).append(crlf);  // the held error, last
    hello_wait_ = false;
    done_ = true;
  }

 private:
  enum class state : std::uint8_t { start, inline_line, count, bulk_head, bulk_data };
  enum class step : std::uint8_t { more, skip, emit, error };

  // One step over `buf`, which starts at the current command: a complete command (emit,
  // `size_` bytes, `data_` the event's bytes), a command Redis ignores (skip), an error
  // (error_ is its text) or not enough bytes yet (more).
  step parse(std::string_view buf);
  void reset() noexcept {
    state_ = state::start;
    pos_ = scan_ = 0;
    left_ = 0;
    first_ = true;
    hello_ = false;
  }
  void protocol_error(std::string text);
  // The complete multibulk commands at the start of `buf` (a bounded number, within the
  // limits), found in one pass: their events go to `found` (bit i of `hello` set when
  // command i is HELLO or QUIT), and to sink.on_ahead (the look-ahead hint) when there are
  // two or more. decode() emits them without parse() going over them again. Returns how many.
  static constexpr std::size_t kMaxAhead = 16;
  std::size_t announce(std::string_view buf, event_sink& sink, std::array<event, kMaxAhead>& found,
                       std::uint32_t& hello);
  // The event kind of a command (`base`: multibulk or inline) on this connection now.
  std::uint8_t command_kind(ev base) const noexcept {
    return static_cast<std::uint8_t>(static_cast<std::uint8_t>(base) | (resp3_ ? resp3_flag : 0));
  }

  options opts_;
  std::string output_;
  std::uint32_t count_ = 0;  // commands emitted and not answered yet
  bool resp3_ = false;
  bool hello_wait_ = false;  // a HELLO or QUIT was emitted and is not answered yet
  bool done_ = false;

  // Progress in the current command, relative to its first byte.
  state state_ = state::start;
  std::size_t pos_ = 0;   // next byte to parse (header line start or bulk data start)
  std::size_t scan_ = 0;  // bytes before it were searched for the line end already
  std::size_t bulk_ = 0;  // length of the bulk being read
  long long left_ = 0;    // arguments still to read
  bool first_ = true;     // the next bulk is the command name
  bool hello_ = false;    // the command name is HELLO, RESET or QUIT (decoding waits for its reply)
  // Results of parse().
  std::size_t size_ = 0;
  std::string_view data_;
  std::string error_;
};

server_codec::step server_codec::parse(std::string_view buf) {
  if (state_ == state::start) {
    if (buf.empty()) return step::more;
    state_ = buf[0] == '*' ? state::count : state::inline_line;
    pos_ = scan_ = 0;
  }
  if (state_ == state::inline_line) {
    auto nl = find_c(buf, scan_, '\n');
    if (nl == std::string_view::npos) {
      if (buf.size() > opts_.max_inline_len) {
        error_ = "Protocol error: too big inline request";
        return step::error;
      }
      return step::more;
    }
    std::size_t end = nl > 0 && buf[nl - 1] == '\r' ? nl - 1 : nl;
    data_ = buf.substr(0, end);
    inline_check check;
    if (!tokenize(data_, check)) {
      error_ = "Protocol error: unbalanced quotes in request";
      return step::error;
    }
    size_ = nl + 1;
    hello_ = check.first_is_hello();
    return check.count ? step::emit : step::skip;
  }
  if (state_ == state::count) {
    // The usual complete count line in one pass (number_line); everything else as below.
    long long n = 0;
    if (auto next = number_line(buf, 0, n);
        next != 0 && n > 0 && static_cast<unsigned long long>(n) <= opts_.max_multibulk_len) {
      pos_ = scan_ = next;
      left_ = n;
      first_ = true;
      state_ = state::bulk_head;
    }
  }
  if (state_ == state::count) {
    auto cr = find_c(buf, scan_, '\r');
    if (cr == std::string_view::npos) {
      if (buf.size() > opts_.max_inline_len) {
        error_ = "Protocol error: too big mbulk count string";
        return step::error;
      }
      return step::more;
    }
    if (cr + 2 > buf.size()) return step::more;  // the byte after '\r' is not here yet
    long long n = 0;
    if (!parse_ll(buf.substr(1, cr - 1), n) ||
        (n > 0 && static_cast<unsigned long long>(n) > opts_.max_multibulk_len)) {
      error_ = "Protocol error: invalid multibulk length";
      return step::error;
    }
    pos_ = scan_ = cr + 2;
    if (n <= 0) {
      size_ = pos_;
      return step::skip;
    }
    left_ = n;
    first_ = true;
    state_ = state::bulk_head;
  }
  for (;;) {
    // The usual complete bulk header line in one pass; everything else as below.
    if (state_ == state::bulk_head && pos_ < buf.size() && buf[pos_] == '$') {
      long long n = 0;
      if (auto next = number_line(buf, pos_, n);
          next != 0 && n >= 0 && static_cast<unsigned long long>(n) <= opts_.max_bulk_len) {
        bulk_ = static_cast<std::size_t>(n);
        pos_ = next;
        state_ = state::bulk_data;
      }
    }
    if (state_ == state::bulk_head) {
      auto cr = find_c(buf, scan_, '\r');
      if (cr == std::string_view::npos) {
        if (buf.size() - pos_ > opts_.max_inline_len) {
          error_ = "Protocol error: too big bulk count string";
          return step::error;
        }
        return step::more;
      }
      if (cr + 2 > buf.size()) return step::more;
      if (buf[pos_] != '$') {
        char got = buf[pos_];
        if (got == '\r' || got == '\n') got = ' ';  // Redis maps line ends in errors to spaces
        error_ = "Protocol error: expected '$', got '";
        error_.push_back(got);
        error_.push_back('\'');
        return step::error;
      }
      long long n = 0;
      if (!parse_ll(buf.substr(pos_ + 1, cr - pos_ - 1), n) || n < 0 ||
          static_cast<unsigned long long>(n) > opts_.max_bulk_len) {
        error_ = "Protocol error: invalid bulk length";
        return step::error;
      }
      bulk_ = static_cast<std::size_t>(n);
      pos_ = cr + 2;
      state_ = state::bulk_data;
    }
    // bulk_data: the data and two more bytes (meant to be CRLF, skipped unchecked).
    if (buf.size() - pos_ < bulk_ + 2) return step::more;
    if (first_)
      hello_ = waits_for_reply(buf.substr(pos_, bulk_));
    first_ = false;
    pos_ += bulk_ + 2;
    scan_ = pos_;
    if (--left_ == 0) {
      size_ = pos_;
      data_ = buf.substr(0, pos_);
      return step::emit;
    }
    state_ = state::bulk_head;
  }
}

std::size_t server_codec::announce(std::string_view buf, event_sink& sink, std::array<event, kMaxAhead>& found,
                                   std::uint32_t& hello) {
  // A pipelined batch (redis-benchmark -P 16) fits; commands with many arguments (MSET)
  // end the look-ahead, which then costs a bounded scan per command at most.
  constexpr long long max_args = 16;
  const long long args = std::min<long long>(max_args, static_cast<long long>(opts_.max_multibulk_len));
  std::size_t n = 0, at = 0;
  hello = 0;
  while (n < kMaxAhead) {
    bool is_hello = false;
    const auto size = multibulk_size(buf.substr(at), args, opts_.max_bulk_len, is_hello);
    if (size == 0) break;
    if (is_hello) hello |= 1u << n;
    found[n++] = {command_kind(ev::command), buf.substr(at, size)};
    at += size;
  }
  if (n >= 2) sink.on_ahead(std::span<const event>(found.data(), n));
  return n;
}

std::size_t server_codec::decode(std::string_view in, event_sink& sink) {
  if (failed() || done_ || hello_wait_) return 0;
  std::size_t used = 0;
  // A command of `size` bytes (an inline one's event leaves out its line end), counted (and
  // HELLO noted) before the sink runs: it may answer from inside. False when decoding stops
  // here (the sink refused more, a HELLO/QUIT waits for its reply, done).
  auto emit = [&](ev base, std::string_view data, std::size_t size, bool hello) {
    used += size;
    ++count_;
    if (hello) hello_wait_ = true;
    return sink.on_event({command_kind(base), data}) && !hello_wait_ && !done_;
  };
  // Complete commands announce() found from `used` on, not emitted yet.
  std::array<event, kMaxAhead> found;
  std::uint32_t found_hello = 0;
  std::size_t found_n = 0, found_i = 0;
  while (used < in.size()) {
    auto buf = in.substr(used);
    if (found_i == found_n && state_ == state::start) {
      found_n = announce(buf, sink, found, found_hello);
      found_i = 0;
    }
    if (found_i < found_n) {
      // Scanned whole and within the limits: what parse() would emit, without parsing again.
      const bool hello = found_hello >> found_i & 1u;
      const auto data = found[found_i++].data;
      if (!emit(ev::command, data, data.size(), hello)) return used;
      continue;
    }
    // Defensive: the progress kept is only valid for the same bytes presented again.
    if (pos_ > buf.size() || scan_ > buf.size()) reset();
    const auto base = state_ == state::inline_line || (state_ == state::start && buf[0] != '*')
                          ? ev::inline_command
                          : ev::command;
    switch (parse(buf)) {
      case step::more: return used;
      case step::error: protocol_error(std::move(error_)); return used;
      case step::skip:
        used += size_;
        reset();
        continue;
      case step::emit: {
        const bool hello = hello_;
        const auto data = data_;
        const auto size = size_;
        reset();
        if (!emit(base, data, size, hello)) return used;
        continue;
      }
    }
  }
  return used;
}

void server_codec::protocol_error(std::string text) {
  reset();
  fail(protocol_errc(), std::move(text));
  // Replies stay in order: the error goes after those to the commands before it.
  if (count_ == 0) {
    output_.append("-ERR ").append(reason()).append(crlf);
    done_ = true;
  }
}

void server_codec::encode(std::uint8_t kind, std::string_view data, std::string& wire) {
  if (done_) return;  // the connection ends: nothing may follow the last reply
  switch (static_cast<redis::out>(kind)) {
    case out::raw:
    case out::push: wire.append(data); return;
    case out::reply:
    case out::reply_resp2:
    case out::reply_resp3:
    case out::reply_close:
      wire.append(data);
      if (kind == static_cast<std::uint8_t>(out::reply_resp2)) resp3_ = false;
      if (kind == static_cast<std::uint8_t>(out::reply_resp3)) resp3_ = true;
      if (count_) --count_;
      // Nothing was decoded after the HELLO: once all is answered, so is it.
      if (count_ == 0) hello_wait_ = false;
      if (kind == static_cast<std::uint8_t>(out::reply_close)) {
        done_ = true;
        return;
      }
      if (count_ == 0 && failed()) {
        output_.append("-ERR ").append(reason()).append(crlf);
        done_ = true;
      }
      return;
  }
}

}  // namespace

std::unique_ptr<stream_codec> make_server_codec(const options& o) {
  return std::make_unique<server_codec>(o);
}

// -- argument splitting ---------------------------------------------------------------------

bool split_multibulk(std::string_view raw, std::vector<std::string_view>& args) {
  args.clear();
  if (raw.empty() || raw[0] != '*') return false;
  long long n = 0;
  std::size_t pos = number_line(raw, 0, n);
  if (pos == 0) return false;
  if (n <= 0) return pos == raw.size();
  // Each argument takes at least 6 bytes ("$0\r\n\r\n"): a larger count cannot fit.
  if (static_cast<unsigned long long>(n) > (raw.size() - pos) / 6) return false;
  args.reserve(static_cast<std::size_t>(n));
  for (long long i = 0; i < n; ++i) {
    long long len = 0;
    if (pos >= raw.size() || raw[pos] != '$') return false;
    pos = number_line(raw, pos, len);
    if (pos == 0 || len < 0) return false;
    if (raw.size() - pos < static_cast<unsigned long long>(len) + 2) return false;
    args.push_back(raw.substr(pos, static_cast<std::size_t>(len)));
    pos += static_cast<std::size_t>(len) + 2;
  }
  if (pos != raw.size()) {
    args.clear();
    return false;
  }
  return true;
}

std::size_t first_args(std::string_view raw, std::span<std::string_view> out) noexcept {
  if (raw.empty() || raw[0] != '*') return 0;
  long long n = 0;
  std::size_t pos = number_line(raw, 0, n);
  if (pos == 0 || n <= 0) return 0;
  std::size_t filled = 0;
  while (filled < out.size() && filled < static_cast<unsigned long long>(n)) {
    long long len = 0;
    if (pos >= raw.size() || raw[pos] != '$') break;
    pos = number_line(raw, pos, len);
    if (pos == 0 || len < 0 || raw.size() - pos < static_cast<unsigned long long>(len) + 2) break;
    out[filled++] = raw.substr(pos, static_cast<std::size_t>(len));
    pos += static_cast<std::size_t>(len) + 2;
  }
  return filled;
}

std::optional<std::vector<std::string>> split_inline(std::string_view line) {
  std::vector<std::string> args;
  inline_args out{args};
  if (!tokenize(line, out)) return std::nullopt;
  return args;
}

// -- writer ---------------------------------------------------------------------------------

namespace {
// Status and error lines cannot carry a line end: it would end the reply early and let the
// rest pass for another one. Redis maps them to spaces the same way.
void append_line(std::string& out, std::string_view s) {
  const auto from = out.size();
  out.append(s);
  std::replace_if(out.begin() + static_cast<std::ptrdiff_t>(from), out.end(),
                  [](char c) { return c == '\r' || c == '\n'; }, ' ');
  out.append(crlf);
}
}  // namespace

void writer::head(char type, long long n) {
  char buf[24];
  buf[0] = type;
  auto r = std::to_chars(buf + 1, buf + sizeof buf - 2, n);
  *r.ptr++ = '\r';
  *r.ptr++ = '\n';
  out_.append(buf, static_cast<std::size_t>(r.ptr - buf));
}

void writer::status(std::string_view s) {
  out_.push_back('+');
  append_line(out_, s);
}

void writer::error(std::string_view s) {
  out_.push_back('-');
  append_line(out_, s);
}

void writer::integer(long long v) { head(':', v); }

void writer::bulk(std::string_view s) {
  head('$', static_cast<long long>(s.size()));
  out_.append(s);
  out_.append(crlf);
}

void writer::null() { out_.append(resp3_ ? "_\r\n" : "$-1\r\n"); }

void writer::null_array() { out_.append(resp3_ ? "_\r\n" : "*-1\r\n"); }

void writer::array(std::size_t n) { head('*', static_cast<long long>(n)); }

void writer::map(std::size_t n) {
  if (resp3_) head('%', static_cast<long long>(n));
  else head('*', static_cast<long long>(2 * n));
}

void writer::set(std::size_t n) { head(resp3_ ? '~' : '*', static_cast<long long>(n)); }

void writer::push(std::size_t n) { head(resp3_ ? '>' : '*', static_cast<long long>(n)); }

void writer::dbl(double v) {
  // "%.17g" as Redis 7.0 prints it; to_chars with this precision is specified to match
  // printf, without the locale. inf and nan are spelled out the way Redis does.
  char buf[40];
  std::string_view text;
  if (std::isnan(v)) {
    text = "nan";
  } else if (std::isinf(v)) {
    text = v > 0 ? "inf" : "-inf";
  } else {
    auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general, 17);
    text = std::string_view(buf, static_cast<std::size_t>(r.ptr - buf));
  }
  if (!resp3_) {
    bulk(text);
    return;
  }
  out_.push_back(',');
  out_.append(text);
  out_.append(crlf);
}

void writer::boolean(bool v) {
  if (resp3_) out_.append(v ? "#t\r\n" : "#f\r\n");
  else out_.append(v ? ":1\r\n" : ":0\r\n");
}

void writer::big_number(std::string_view digits) {
  if (!resp3_) {
    bulk(digits);
    return;
  }
  out_.push_back('(');
  out_.append(digits);
  out_.append(crlf);
}

void writer::verbatim(std::string_view format, std::string_view s) {
  if (!resp3_) {
    bulk(s);
    return;
  }
  head('=', static_cast<long long>(s.size() + 4));
  // Exactly three characters, padded with spaces, as Redis does.
  for (std::size_t i = 0; i < 3; ++i) out_.push_back(i < format.size() ? format[i] : ' ');
  out_.push_back(':');
  out_.append(s);
  out_.append(crlf);
}

}  // namespace swactor::protocols::redis
