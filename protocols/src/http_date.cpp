#include "swactor/protocols/http_date.hpp"

#include <time.h>

namespace swactor::protocols {

namespace {
void put2(char* p, int v) noexcept {
  p[0] = static_cast<char>('0' + v / 10 % 10);
  p[1] = static_cast<char>('0' + v % 10);
}
}  // namespace

void format_http_date(std::time_t t, char* out) noexcept {
  static constexpr char days[] = "SunMonTueWedThuFriSat";
  static constexpr char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
  std::tm tm{};
  gmtime_r(&t, &tm);
  const int year = tm.tm_year + 1900;
  char* p = out;
  for (int i = 0; i < 3; ++i) *p++ = days[tm.tm_wday * 3 + i];
  *p++ = ',';
  *p++ = ' ';
  put2(p, tm.tm_mday), p += 2;
  *p++ = ' ';
  for (int i = 0; i < 3; ++i) *p++ = months[tm.tm_mon * 3 + i];
  *p++ = ' ';
  put2(p, year / 100), put2(p + 2, year % 100), p += 4;
  *p++ = ' ';
  put2(p, tm.tm_hour), p += 2;
  *p++ = ':';
  put2(p, tm.tm_min), p += 2;
  *p++ = ':';
  put2(p, tm.tm_sec), p += 2;
  *p++ = ' ';
  *p++ = 'G', *p++ = 'M', *p++ = 'T';
}

std::string_view http_date_now(std::time_t* second) noexcept {
  thread_local std::time_t cached_second = -1;
  thread_local char cached[kHttpDateSize];
  // CLOCK_REALTIME_COARSE: the tick's time without reading the TSC (a date has 1 s resolution).
  struct timespec ts {};
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  if (ts.tv_sec != cached_second) {
    cached_second = ts.tv_sec;
    format_http_date(ts.tv_sec, cached);
  }
  if (second) *second = cached_second;
  return {cached, kHttpDateSize};
}

}  // namespace swactor::protocols
