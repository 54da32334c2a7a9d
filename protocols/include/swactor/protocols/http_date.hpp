#pragma once
// HTTP dates (IMF-fixdate, RFC 9110 §5.6.7): "Sun, 06 Nov 1994 08:49:37 GMT".

#include <cstddef>
#include <ctime>
#include <string_view>

namespace swactor::protocols {

inline constexpr std::size_t kHttpDateSize = 29;

// Writes the date of `t` (seconds since the epoch, UTC) into `out`, exactly kHttpDateSize bytes.
void format_http_date(std::time_t t, char* out) noexcept;

// The current date, formatted once per second per thread: the codecs add it to every
// response that has none, so a response costs a clock read, not a format. Valid until this
// thread's next call.
// The current date in IMF-fixdate form; `second`, when given, gets the second it names
// (a cheap key for whatever is built from the date).
std::string_view http_date_now(std::time_t* second = nullptr) noexcept;

}  // namespace swactor::protocols
