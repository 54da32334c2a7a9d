#include "swactor/core/log.hpp"

#include <memory>
#include <stdexcept>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace swactor::log {
namespace {

constexpr std::string_view kNames[] = {"debug", "trace", "info", "notice", "warning", "error", "off"};

level from_spdlog(spdlog::level::level_enum l) {
  switch (l) {
    case spdlog::level::trace: return level::debug;
    case spdlog::level::debug: return level::trace;
    case spdlog::level::info: return level::info;
    case spdlog::level::warn: return level::notice;
    case spdlog::level::err: return level::warning;
    case spdlog::level::critical: return level::error;
    default: return level::off;
  }
}

// %* prints our level name instead of spdlog's.
class level_flag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    auto name = level_name(from_spdlog(msg.level));
    dest.append(name.data(), name.data() + name.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<level_flag>();
  }
};

std::unique_ptr<spdlog::formatter> make_formatter(const std::string& role) {
  auto f = std::make_unique<spdlog::pattern_formatter>();
  f->add_flag<level_flag>('*');
  // Role tags may contain '%'-free text only; escape just in case.
  std::string escaped;
  for (char c : role) {
    if (c == '%') escaped += '%';
    escaped += c;
  }
  f->set_pattern("%Y-%m-%d %H:%M:%S.%e %* [" + escaped + " pid %P] %v");
  return f;
}

}  // namespace

std::optional<level> parse_level(std::string_view name) {
  for (std::size_t i = 0; i < std::size(kNames); ++i)
    if (kNames[i] == name) return static_cast<level>(i);
  return std::nullopt;
}

std::string_view level_name(level l) { return kNames[static_cast<int>(l)]; }

void init(level min_level, const std::string& file, std::string role_tag) {
  spdlog::sink_ptr sink;
  if (file.empty()) {
    sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  } else {
    try {
      sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(file);
    } catch (const spdlog::spdlog_ex& e) {
      throw std::runtime_error("cannot open log file '" + file + "': " + e.what());
    }
  }
  auto logger = std::make_shared<spdlog::logger>("swactor", sink);
  logger->set_formatter(make_formatter(role_tag));
  logger->set_level(to_spdlog(min_level));
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
}

void set_role(std::string role_tag) {
  spdlog::default_logger()->set_formatter(make_formatter(role_tag));
}

level current_level() { return from_spdlog(spdlog::default_logger()->level()); }

}  // namespace swactor::log
