#include <memory>

#include "swactor/actors/redis.hpp"

#include "swactor/actors/module.hpp"

namespace swactor::redis {

namespace pr = protocols::redis;

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
    if (x - 'A' < 26u) x += 32;
    if (y - 'A' < 26u) y += 32;
    if (x != y) return false;
  }
  return true;
}

command::command(std::string raw, std::uint8_t kind)
    : raw_(std::move(raw)), protocol_(pr::is_resp3_kind(kind) ? 3 : 2), writer_(out_, protocol_) {
  const auto base = static_cast<std::uint8_t>(kind & ~pr::resp3_flag);
  if (base == static_cast<std::uint8_t>(pr::ev::inline_command)) {
    if (auto a = pr::split_inline(raw_)) {
      inline_args_ = std::move(*a);
      args_.reserve(inline_args_.size());
      for (const auto& s : inline_args_) args_.emplace_back(s);
      valid_ = !args_.empty();
    }
  } else {
    valid_ = pr::split_multibulk(raw_, args_) && !args_.empty();
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
  std::string name(cmd.name());
  for (auto& c : name)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  std::string err = "ERR wrong number of arguments for '" + name + "' command";
  sanitize(err);
  cmd.reply().error(err);
}

void reply_syntax_error(command& cmd) { cmd.reply().error("ERR syntax error"); }

}  // namespace swactor::redis

namespace swactor {
task<void> module_base::on_command(context&, session_id, redis::command& cmd) {
  redis::reply_unknown_command(cmd);
  co_return;
}
}  // namespace swactor
