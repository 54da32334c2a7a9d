#pragma once
// Logging on spdlog with Swoole's level names: debug < trace < info < notice < warning < error.
// Every line carries the process role and id ("master", "worker#3", "task#0").

#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <spdlog/spdlog.h>

namespace swactor::log {

enum class level { debug, trace, info, notice, warning, error, off };

std::optional<level> parse_level(std::string_view name);
std::string_view level_name(level l);

// spdlog has six levels too; we map ours onto them in order.
constexpr spdlog::level::level_enum to_spdlog(level l) {
  switch (l) {
    case level::debug: return spdlog::level::trace;
    case level::trace: return spdlog::level::debug;
    case level::info: return spdlog::level::info;
    case level::notice: return spdlog::level::warn;
    case level::warning: return spdlog::level::err;
    case level::error: return spdlog::level::critical;
    case level::off: return spdlog::level::off;
  }
  return spdlog::level::info;
}

// Installs the process-wide logger. `file` empty = stderr. Throws std::runtime_error when
// the file cannot be opened.
void init(level min_level, const std::string& file, std::string role_tag);
// Changes the role tag of the installed logger (after fork+exec a worker names itself).
void set_role(std::string role_tag);
level current_level();

template <class... Args>
void debug(spdlog::format_string_t<Args...> f, Args&&... a) {
  spdlog::log(to_spdlog(level::debug), f, std::forward<Args>(a)...);
}
template <class... Args>
void trace(spdlog::format_string_t<Args...> f, Args&&... a) {
  spdlog::log(to_spdlog(level::trace), f, std::forward<Args>(a)...);
}
template <class... Args>
void info(spdlog::format_string_t<Args...> f, Args&&... a) {
  spdlog::log(to_spdlog(level::info), f, std::forward<Args>(a)...);
}
template <class... Args>
void notice(spdlog::format_string_t<Args...> f, Args&&... a) {
  spdlog::log(to_spdlog(level::notice), f, std::forward<Args>(a)...);
}
template <class... Args>
void warning(spdlog::format_string_t<Args...> f, Args&&... a) {
  spdlog::log(to_spdlog(level::warning), f, std::forward<Args>(a)...);
}
template <class... Args>
void error(spdlog::format_string_t<Args...> f, Args&&... a) {
  spdlog::log(to_spdlog(level::error), f, std::forward<Args>(a)...);
}

}  // namespace swactor::log
