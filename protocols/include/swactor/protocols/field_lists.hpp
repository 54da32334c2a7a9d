#pragma once
// HTTP field syntax (RFC 9110 §5.5, §5.6): tokens, the bytes a field value may hold,
// optional whitespace around values and list items, and comma-separated lists whose empty
// items are ignored. One copy for every parser and writer of fields (HTTP/1.1, HTTP/2,
// WebSocket handshake, content codings, multipart heads, ranges).

#include <array>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace swactor::protocols {

// tchar as a table: response field names are checked per byte on every reply.
inline constexpr auto kTchar = [] {
  std::array<bool, 256> t{};
  for (int c = 'a'; c <= 'z'; ++c) t[static_cast<std::size_t>(c)] = t[static_cast<std::size_t>(c - 32)] = true;
  for (int c = '0'; c <= '9'; ++c) t[static_cast<std::size_t>(c)] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
  return t;
}();

constexpr bool is_tchar(unsigned char c) noexcept { return kTchar[c]; }

// A token: one or more tchar (field names, methods, codings, extension names).
constexpr bool is_token(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (unsigned char c : s)
    if (!is_tchar(c)) return false;
  return true;
}

// Whether a field value holds only HTAB, SP, VCHAR and obs-text (no CR, LF, NUL or other
// control byte). Eight bytes at a time while none is a control byte (the usual case); a word
// with one (a tab, or a real error) and the tail go byte by byte. The word test may flag a
// byte after a flagged one (borrows), never miss one: only the exact loop decides.
inline bool valid_field_value(std::string_view s) noexcept {
  constexpr std::uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    std::uint64_t x;
    std::memcpy(&x, s.data() + i, 8);
    const std::uint64_t del = x ^ (ones * 0x7f);
    if ((((x - ones * 0x20) & ~x) | ((del - ones) & ~del)) & highs) break;
  }
  for (; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  }
  return true;
}

// OWS: space or horizontal tab.
constexpr bool is_ows(char c) noexcept { return c == ' ' || c == '\t'; }

constexpr std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
  return s;
}

// Calls f(item) for each trimmed, non-empty item of a comma-separated list, in order, and
// stops at the first for which f returns true; returns whether one did.
template <class F>
constexpr bool any_list_item(std::string_view list, F&& f) {
  for (;;) {
    auto comma = list.find(',');
    auto item = trim_ows(list.substr(0, comma));
    if (!item.empty() && f(item)) return true;
    if (comma == std::string_view::npos) return false;
    list.remove_prefix(comma + 1);
  }
}

}  // namespace swactor::protocols
