#include "swactor/actors/bus.hpp"

namespace swactor::bus {
namespace {

// Splits off the first token of `rest` (advancing it past the dot).
std::string_view next_token(std::string_view& rest) noexcept {
  auto dot = rest.find('.');
  auto t = rest.substr(0, dot);
  rest = dot == std::string_view::npos ? std::string_view() : rest.substr(dot + 1);
  return t;
}

bool token_char(char c) noexcept { return c > ' ' && c < 127 && c != '*' && c != '>' && c != '.'; }

// Topics and patterns share the token rules; wildcards only where `wild` allows.
bool valid(std::string_view s, bool wild) noexcept {
  if (s.empty() || s.size() > kMaxTopic || s.front() == '.' || s.back() == '.') return false;
  std::string_view rest = s;
  while (true) {
    bool last = rest.find('.') == std::string_view::npos;
    auto t = next_token(rest);
    if (t.empty()) return false;
    if (wild && t == "*") {
    } else if (wild && t == ">") {
      if (!last) return false;
    } else {
      for (char c : t)
        if (!token_char(c)) return false;
    }
    if (last) return true;
  }
}

}  // namespace

bool valid_topic(std::string_view topic) noexcept { return valid(topic, false); }
bool valid_pattern(std::string_view pattern) noexcept { return valid(pattern, true); }

bool matches(std::string_view pattern, std::string_view topic) noexcept {
  while (true) {
    auto p = next_token(pattern);
    if (p == ">") return !topic.empty();
    if (topic.empty()) return false;
    bool topic_last = topic.find('.') == std::string_view::npos;
    auto t = next_token(topic);
    if (p != "*" && p != t) return false;
    bool pattern_done = pattern.empty();
    if (pattern_done || topic_last) return pattern_done && topic_last;
  }
}

}  // namespace swactor::bus
