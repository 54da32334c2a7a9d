#include "swactor/actors/http.hpp"

#include <ctime>

#include <fmt/format.h>

#include "swactor/actors/errors.hpp"
#include "swactor/core/error.hpp"

namespace swactor::http {
namespace {

using protocols::http1::iequals;
namespace h1 = protocols::http1;

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

void parse_params(std::string_view text, param_list& out) {
  while (!text.empty()) {
    auto amp = text.find('&');
    auto part = text.substr(0, amp);
    text = amp == std::string_view::npos ? std::string_view() : text.substr(amp + 1);
    if (part.empty()) continue;
    auto eq = part.find('=');
    std::string k, v;
    percent_decode(part.substr(0, eq), k, true);
    if (eq != std::string_view::npos) percent_decode(part.substr(eq + 1), v, true);
    out.emplace_back(std::move(k), std::move(v));
  }
}

}  // namespace

bool percent_decode(std::string_view in, std::string& out, bool plus_is_space) {
  out.clear();
  out.reserve(in.size());
  bool ok = true;
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      int hi = i + 2 < in.size() ? hex_value(in[i + 1]) : -1;
      int lo = hi >= 0 ? hex_value(in[i + 2]) : -1;
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
      ok = false;
    } else if (c == '+' && plus_is_space) {
      c = ' ';
    }
    out.push_back(c);
  }
  return ok;
}

std::string remove_dot_segments(std::string_view in) {
  // Most paths have no dot segment: an absolute path without "/." is already normal.
  if (!in.empty() && in[0] == '/' && in.find("/.") == std::string_view::npos) return std::string(in);
  // Works on segments: "." is dropped, ".." drops the segment before it (never the root).
  std::vector<std::string_view> segs;
  bool trailing_slash = false;
  std::size_t pos = 0;
  if (!in.empty() && in[0] == '/') pos = 1;
  while (pos <= in.size()) {
    auto slash = in.find('/', pos);
    auto seg = in.substr(pos, slash == std::string_view::npos ? std::string_view::npos : slash - pos);
    bool last = slash == std::string_view::npos;
    if (seg == ".") {
      trailing_slash = last;
    } else if (seg == "..") {
      if (!segs.empty()) segs.pop_back();
      trailing_slash = last;
    } else {
      segs.push_back(seg);
      trailing_slash = false;
    }
    if (last) break;
    pos = slash + 1;
  }
  std::string out;
  out.reserve(in.size() + 1);
  for (auto& s : segs) {
    out.push_back('/');
    out.append(s);
  }
  if (trailing_slash || out.empty()) out.push_back('/');
  return out;
}

param_list parse_query(std::string_view query) {
  param_list out;
  parse_params(query, out);
  return out;
}

void parse_cookies(std::string_view v, param_list& out) {
  while (!v.empty()) {
    auto semi = v.find(';');
    auto part = trim(v.substr(0, semi));
    v = semi == std::string_view::npos ? std::string_view() : v.substr(semi + 1);
    if (part.empty()) continue;
    auto eq = part.find('=');
    if (eq == std::string_view::npos) continue;
    auto name = trim(part.substr(0, eq));
    auto value = trim(part.substr(eq + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
    if (!name.empty()) out.emplace_back(std::string(name), std::string(value));
  }
}

// -- request ----------------------------------------------------------------------------------

request::request(h1::request_head head, session_id s, std::string remote)
    : head_(std::move(head)), session_(s), remote_(std::move(remote)) {
  std::string_view t = head_.target;
  if (t == "*") {
    path_ = "*";
    return;
  }
  // Absolute form: the path starts after the authority.
  if (t.size() > 0 && t[0] != '/') {
    auto scheme = t.find("://");
    if (scheme != std::string_view::npos) {
      auto slash = t.find('/', scheme + 3);
      auto qm = t.find('?', scheme + 3);
      auto start = std::min(slash, qm);
      t = start == std::string_view::npos ? std::string_view("/") : t.substr(start);
    }
  }
  auto qm = t.find('?');
  auto raw_path = t.substr(0, qm);
  if (qm != std::string_view::npos) {
    // A view into head_.target (stable: head_ is not modified afterwards).
    auto off = static_cast<std::size_t>(t.data() - head_.target.data()) + qm + 1;
    query_ = std::string_view(head_.target).substr(off);
    auto hash = query_.find('#');
    if (hash != std::string_view::npos) query_ = query_.substr(0, hash);
  }
  std::string decoded;
  percent_decode(raw_path, decoded, false);
  path_ = remove_dot_segments(decoded);
}

const std::string& request::local_address() const {
  if (!local_) local_ = lookup_ ? lookup_->local_address(session_) : std::string();
  return *local_;
}

const param_list& request::query_params() const {
  if (!query_params_) query_params_ = parse_query(query_);
  return *query_params_;
}

std::optional<std::string_view> request::query_param(std::string_view name) const {
  for (auto& [k, v] : query_params())
    if (k == name) return std::string_view(v);
  return std::nullopt;
}

std::vector<std::string_view> request::header_values(std::string_view name) const {
  std::vector<std::string_view> out;
  for (auto& h : head_.headers.items)
    if (iequals(h.name, name)) out.emplace_back(h.value);
  return out;
}

const param_list& request::cookies() const {
  if (!cookies_) {
    cookies_.emplace();
    for (auto& h : head_.headers.items)
      if (iequals(h.name, "cookie")) parse_cookies(h.value, *cookies_);
  }
  return *cookies_;
}

std::optional<std::string_view> request::cookie(std::string_view name) const {
  for (auto& [k, v] : cookies())
    if (k == name) return std::string_view(v);
  return std::nullopt;
}

const param_list& request::form() const {
  if (!form_) {
    form_.emplace();
    const auto* ct = header("content-type");
    if (ct) {
      std::string_view type = *ct;
      type = trim(type.substr(0, type.find(';')));
      if (iequals(type, "application/x-www-form-urlencoded")) parse_params(head_.body, *form_);
    }
  }
  return *form_;
}

swactor::task<result<std::string>> request::read_body(duration timeout) {
  if (!stream_) co_return std::string();  // the whole body is in body()
  auto piece = co_await stream_->next(*this, timeout);
  co_return piece;
}

// -- cookies and dates ------------------------------------------------------------------------

std::string format_http_date(std::chrono::system_clock::time_point t) {
  static constexpr const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  return fmt::format("{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT", days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
                     tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

std::string cookie::to_string() const {
  std::string s = name + "=" + value;
  if (expires) s += "; Expires=" + format_http_date(*expires);
  if (max_age) s += "; Max-Age=" + std::to_string(*max_age);
  if (!domain.empty()) s += "; Domain=" + domain;
  if (!path.empty()) s += "; Path=" + path;
  if (secure) s += "; Secure";
  if (http_only) s += "; HttpOnly";
  if (!same_site.empty()) s += "; SameSite=" + same_site;
  if (partitioned) s += "; Partitioned";
  return s;
}

namespace {

// One formatted Date per second per thread: a response costs a comparison, not a format.
const std::string& current_date() {
  thread_local std::time_t cached_second = 0;
  thread_local std::string cached;
  auto now = std::chrono::system_clock::now();
  auto sec = std::chrono::system_clock::to_time_t(now);
  if (sec != cached_second) {
    cached_second = sec;
    cached = format_http_date(now);
  }
  return cached;
}

}  // namespace

// -- response ---------------------------------------------------------------------------------

response& response::status(int code, std::string reason) {
  head_.status = code;
  head_.reason = std::move(reason);
  return *this;
}

response& response::set_header(std::string name, std::string value) {
  auto& items = head_.headers.items;
  std::erase_if(items, [&](const h1::header& h) { return iequals(h.name, name); });
  items.push_back({std::move(name), std::move(value)});
  return *this;
}

response& response::header(std::string name, std::string value) {
  head_.headers.add(std::move(name), std::move(value));
  return *this;
}

response& response::trailer(std::string name, std::string value) {
  trailers_.add(std::move(name), std::move(value));
  return *this;
}

std::error_code response::end(std::string_view body) {
  if (ended_) return server_errc::not_supported;
  ended_ = true;
  const std::size_t piece = std::min(kLargeBody, ch_->max_piece());
  if (!started_ && body.size() > piece) {
    // A large body goes out in pieces behind a Content-Length head: no single message
    // between processes (or queued reply) has to hold all of it.
    head_.content_length = static_cast<std::int64_t>(body.size());
    if (auto ec = send_head()) return fail(ec);
    for (std::size_t off = 0; off < body.size(); off += piece)
      if (auto ec = ch_->send(static_cast<std::uint8_t>(h1::out::body), body.substr(off, piece))) return fail(ec);
    return fail(ch_->send(static_cast<std::uint8_t>(h1::out::end), trailers_.encode()));
  }
  if (!started_) {
    started_ = true;
    if (!head_.headers.find("date")) head_.headers.add("Date", current_date());
    // One buffer per thread: send() copies what it keeps before it returns (a nested end()
    // on this thread, from a close inside send(), gets a buffer of its own).
    thread_local std::string buffer;
    thread_local bool busy = false;
    std::string local;
    std::string& wire = busy ? local : buffer;
    const bool mine = !busy;
    busy = true;
    wire.clear();
    head_.encode_to(wire);
    wire.append(body);
    auto ec = ch_->send(static_cast<std::uint8_t>(h1::out::whole), wire);
    if (mine) busy = false;
    return fail(ec);
  }
  for (std::size_t off = 0; off < body.size(); off += piece)
    if (auto ec = ch_->send(static_cast<std::uint8_t>(h1::out::body), body.substr(off, piece))) return fail(ec);
  return fail(ch_->send(static_cast<std::uint8_t>(h1::out::end), trailers_.encode()));
}

std::error_code response::send_head() {
  started_ = true;
  if (!head_.headers.find("date")) head_.headers.add("Date", current_date());
  return ch_->send(static_cast<std::uint8_t>(h1::out::head), head_.encode());
}

swactor::task<std::error_code> response::write(std::string_view chunk, duration timeout) {
  if (ended_) co_return make_error_code(server_errc::not_supported);
  if (!started_)
    if (auto ec = send_head()) co_return fail(ec);
  if (chunk.empty()) co_return std::error_code();
  const std::size_t piece = ch_->max_piece();
  for (std::size_t off = 0; off < chunk.size(); off += piece)
    if (auto ec = ch_->send(static_cast<std::uint8_t>(h1::out::body), chunk.substr(off, piece))) co_return fail(ec);
  // Backpressure: every so often, wait until the client took most of what is queued.
  unacked_ += chunk.size();
  if (unacked_ >= 64 * 1024) {
    unacked_ = 0;
    co_return co_await ch_->drained(timeout);
  }
  co_return std::error_code();
}

std::error_code response::redirect(std::string_view location, int code) {
  status(code);
  set_header("Location", std::string(location));
  set_header("Content-Type", "text/plain; charset=utf-8");
  return end(fmt::format("Redirecting to {}\n", location));
}

}  // namespace swactor::http
