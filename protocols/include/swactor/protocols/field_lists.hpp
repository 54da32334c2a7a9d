#pragma once
// HTTP field values (RFC 9110 §5.6): optional whitespace around values and list items, and
// comma-separated lists whose empty items are ignored. One copy for every parser that reads
// a field (HTTP/1.1, WebSocket handshake, content codings, multipart heads, ranges).

#include <string_view>

namespace swactor::protocols {

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
