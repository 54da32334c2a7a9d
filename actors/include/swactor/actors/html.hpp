#pragma once
// Text into HTML: what a generated page (a directory listing, a chat page) needs.
#include <string>
#include <string_view>

namespace swactor::http {

// Escapes & < > " ' so the text is safe in element content and in quoted attributes.
std::string html_escape(std::string_view s);

}  // namespace swactor::http
