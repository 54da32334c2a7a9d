#include <memory>

#include "swactor/actors/redis.hpp"

#include "swactor/actors/module.hpp"

namespace swactor::redis {

namespace pr = protocols::redis;

command::command(std::string raw, std::uint8_t kind) : raw_(std::move(raw)), writer_(out_, 2) {
  parse(raw_, kind);
}

command::command() : writer_(out_, 2) {}

void command::reset(std::string_view raw, std::uint8_t kind) {
  raw_.clear();
  out_.clear();
  switch_to_ = 0;
  close_ = false;
  parse(raw, kind);
}

void command::parse(std::string_view raw, std::uint8_t kind) {
  args_.clear();
  inline_args_.clear();
  valid_ = false;
  const int p = pr::is_resp3_kind(kind) ? 3 : 2;
  if (p != protocol_) {
    protocol_ = p;
    std::destroy_at(&writer_);
    std::construct_at(&writer_, out_, p);
  }
  const auto base = static_cast<std::uint8_t>(kind & ~pr::resp3_flag);
  if (base == static_cast<std::uint8_t>(pr::ev::inline_command)) {
    if (auto a = pr::split_inline(raw)) {
      inline_args_ = std::move(*a);
      args_.reserve(inline_args_.size());
      for (const auto& s : inline_args_) args_.emplace_back(s);
      valid_ = !args_.empty();
    }
  } else {
    valid_ = pr::split_multibulk(raw, args_) && !args_.empty();
  }
}

void command::switch_protocol(int p) {
  switch_to_ = p;
  protocol_ = p;
  // The writer holds a reference to out_: rebuild it in place for the new protocol.
  std::destroy_at(&writer_);
  std::construct_at(&writer_, out_, p);
}

namespace {
// Redis formats these with C strings: an argument ends at its first NUL.
std::string_view c_str(std::string_view s) noexcept {
  auto z = s.find('\0');
  return z == std::string_view::npos ? s : s.substr(0, z);
}
void sanitize(std::string& s) {
  for (auto& c : s)
    if (c == '\r' || c == '\n') c = ' ';
}
}  // namespace

void reply_unknown_command(command& cmd) {
  std::string args;
  for (std::size_t i = 1; i < cmd.size() && args.size() < 128; ++i) {
    const std::size_t precision = 128 - args.size();  // "'%.*s' " with 128 - sdslen(args)
    args += '\'';
    args.append(c_str(cmd[i]).substr(0, precision));
    args += "' ";
  }
  std::string err = "ERR unknown command '";
  err.append(c_str(cmd.name()).substr(0, 128));
  err += "', with args beginning with: ";
  err += args;
  sanitize(err);
  cmd.reply().error(err);
}

void reply_wrong_arity(command& cmd) {
  std::string err = "ERR wrong number of arguments for '" + protocols::ascii_lowered(cmd.name()) + "' command";
  sanitize(err);
  cmd.reply().error(err);
}

namespace {
char fold(char c, bool nocase) noexcept { return nocase ? protocols::ascii_lower(c) : c; }

// Whether pattern[p] (a '[' class, p just past the '[') matches c; moves p past the ']'.
bool class_match(std::string_view pat, std::size_t& p, char c, bool nocase) noexcept {
  bool negate = p < pat.size() && pat[p] == '^';
  if (negate) ++p;
  bool match = false;
  for (;;) {
    if (p >= pat.size()) {
      // An unterminated class: Redis treats the end as its close (p stays on the last char).
      break;
    }
    if (pat[p] == '\\' && p + 1 < pat.size()) {
      ++p;
      if (fold(pat[p], nocase) == fold(c, nocase)) match = true;
    } else if (pat[p] == ']') {
      break;
    } else if (p + 2 < pat.size() && pat[p + 1] == '-') {
      auto lo = static_cast<unsigned char>(fold(pat[p], nocase)), hi = static_cast<unsigned char>(fold(pat[p + 2], nocase));
      auto x = static_cast<unsigned char>(fold(c, nocase));
      if (lo > hi) std::swap(lo, hi);
      if (x >= lo && x <= hi) match = true;
      p += 2;
    } else if (fold(pat[p], nocase) == fold(c, nocase)) {
      match = true;
    }
    ++p;
  }
  if (p < pat.size()) ++p;  // past the ']'
  return negate ? !match : match;
}
}  // namespace

bool glob_match(std::string_view pat, std::string_view str, bool nocase) noexcept {
  // Backtracking to the last '*' is enough: a later star can always absorb what an
  // earlier one would have.
  std::size_t p = 0, s = 0, star_p = std::string_view::npos, star_s = 0;
  while (s < str.size()) {
    if (p < pat.size()) {
      char pc = pat[p];
      if (pc == '*') {
        while (p < pat.size() && pat[p] == '*') ++p;
        if (p == pat.size()) return true;
        star_p = p;
        star_s = s;
        continue;
      }
      if (pc == '?') {
        ++p;
        ++s;
        continue;
      }
      if (pc == '[') {
        std::size_t q = p + 1;
        if (class_match(pat, q, str[s], nocase)) {
          p = q;
          ++s;
          continue;
        }
      } else {
        if (pc == '\\' && p + 1 < pat.size()) {
          if (fold(pat[p + 1], nocase) == fold(str[s], nocase)) {
            p += 2;
            ++s;
            continue;
          }
        } else if (fold(pc, nocase) == fold(str[s], nocase)) {
          ++p;
          ++s;
          continue;
        }
      }
    }
    if (star_p == std::string_view::npos) return false;
    p = star_p;
    s = ++star_s;
  }
  while (p < pat.size() && pat[p] == '*') ++p;
  return p == pat.size();
}

void reply_syntax_error(command& cmd) { cmd.reply().error("ERR syntax error"); }

}  // namespace swactor::redis

namespace swactor {
task<void> module_base::on_command(context&, session_id, redis::command& cmd) {
  redis::reply_unknown_command(cmd);
  co_return;
}
}  // namespace swactor
