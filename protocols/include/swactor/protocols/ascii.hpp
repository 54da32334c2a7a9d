#pragma once
// ASCII case folding for protocol tokens (HTTP header names, WebSocket tokens, Redis command
// names): only A-Z fold; every other byte compares as it is (no locale).

#include <cstddef>
#include <string>
#include <string_view>

namespace swactor::protocols {

constexpr char ascii_lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + ('a' - 'A')) : c; }

// Inlined: callers compare against short literals (header names), where a call costs more
// than the loop.
[[gnu::always_inline]] constexpr inline bool ascii_iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  return true;
}

// `s` becomes `v`: clear() and append(), which for the short strings of a request head cost
// several times less than assign() (its _M_replace handles aliasing and any position).
inline void replace_with(std::string& s, std::string_view v) {
  s.clear();
  s.append(v.data(), v.size());
}

inline std::string ascii_lowered(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = ascii_lower(c);
  return out;
}

}  // namespace swactor::protocols
