#include "swactor/actors/http.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

#include <fmt/format.h>

#include "swactor/actors/errors.hpp"
#include "swactor/core/error.hpp"
#include "swactor/ipc/envelope.hpp"
#include "swactor/protocols/field_lists.hpp"
#include "swactor/protocols/http_date.hpp"

namespace swactor::http {
namespace {

using protocols::trim_ows;

using protocols::ascii_lowered;
using protocols::http1::iequals;
namespace h1 = protocols::http1;

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
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
    auto part = trim_ows(v.substr(0, semi));
    v = semi == std::string_view::npos ? std::string_view() : v.substr(semi + 1);
    if (part.empty()) continue;
    auto eq = part.find('=');
    if (eq == std::string_view::npos) continue;
    auto name = trim_ows(part.substr(0, eq));
    auto value = trim_ows(part.substr(eq + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
    if (!name.empty()) out.emplace_back(std::string(name), std::string(value));
  }
}

// -- request ----------------------------------------------------------------------------------

request::request(h1::request_head head, session_id s, std::string remote)
    : head_(std::move(head)), session_(s), remote_(std::move(remote)) {
  split_target();
}

bool request::decode_head(std::string_view wire) {
  if (!head_.decode(wire)) return false;
  split_target();
  return true;
}

void request::assign_head(const h1::request_parts& parts) {
  head_.assign(parts);
  split_target();
}

void request::clear_for_reuse() {
  if (!files_.empty()) remove_temp_files();
  session_ = {};
  remote_.clear();
  local_.reset();
  lookup_ = nullptr;
  path_.clear();
  query_ = {};
  trailers_.items.clear();
  query_params_.reset();
  cookies_.reset();
  form_.reset();
  stream_.reset();
  form_opts_.reset();
  form_read_ = false;
  // A large body or field list is not kept for the next, probably small, request.
  if (head_.body.capacity() > 4096) std::string().swap(head_.body);
  if (head_.headers.items.capacity() > 64) std::vector<h1::header>().swap(head_.headers.items);
}

void request::split_target() {
  query_ = {};
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
  // Where the query starts, and whether the path has a '%' or a dot segment to undo: one
  // pass over a short target (the usual case: three library scans cost more there), finds
  // over a long one.
  std::size_t qm = std::string_view::npos;
  bool as_is = !t.empty() && t[0] == '/';
  if (t.size() <= 64) {
    for (std::size_t i = 0; i < t.size(); ++i) {
      const char c = t[i];
      if (c == '?') {
        qm = i;
        break;
      }
      if (c == '%' || (c == '.' && i > 0 && t[i - 1] == '/')) as_is = false;
    }
  } else {
    qm = t.find('?');
    const auto p = t.substr(0, qm);
    as_is = as_is && p.find('%') == std::string_view::npos && p.find("/.") == std::string_view::npos;
  }
  auto raw_path = t.substr(0, qm);
  if (qm != std::string_view::npos) {
    // A view into head_.target (stable: head_ is not modified afterwards).
    auto off = static_cast<std::size_t>(t.data() - head_.target.data()) + qm + 1;
    query_ = std::string_view(head_.target).substr(off);
    auto hash = query_.find('#');
    if (hash != std::string_view::npos) query_ = query_.substr(0, hash);
  }
  // Most paths have nothing to decode and no dot segment: taken as they are.
  if (as_is && !raw_path.empty()) {
    protocols::replace_with(path_, raw_path);
    return;
  }
  std::string decoded;
  percent_decode(raw_path, decoded, false);
  path_ = remove_dot_segments(decoded);
}

void request::mark_inflated(bool whole) {
  auto& items = head_.headers.items;
  std::erase_if(items, [](const h1::header& h) {
    return iequals(h.name, "content-encoding") || iequals(h.name, "content-length");
  });
  head_.content_length = whole ? static_cast<std::int64_t>(head_.body.size()) : -1;
  if (whole) items.push_back({"Content-Length", std::to_string(head_.body.size())});
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
      type = trim_ows(type.substr(0, type.find(';')));
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
  std::string s(protocols::kHttpDateSize, ' ');
  protocols::format_http_date(std::chrono::system_clock::to_time_t(t), s.data());
  return s;
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


// -- response ---------------------------------------------------------------------------------

namespace cz = protocols::compression;

// Several Accept-Encoding fields are one list (RFC 9110 §5.3); one field or none (the usual
// cases) needs no list and no copy.
cz::coding accepted_coding(const request& req, const cz::options& o) {
  const std::string* first = nullptr;
  std::size_t count = 0;
  for (const auto& h : req.head().headers.items)
    if (h.name.size() == 15 && iequals(h.name, "accept-encoding") && count++ == 0) first = &h.value;
  if (count == 0) return cz::coding::identity;
  if (count == 1) return cz::negotiate(*first, true, o.offered);
  std::string joined;
  for (auto v : req.header_values("accept-encoding")) {
    if (!joined.empty()) joined += ", ";
    joined += v;
  }
  return cz::negotiate(joined, true, o.offered);
}

cz::coding response::choose_coding(std::uint64_t size, bool streamed) {
  const auto* o = compression_;
  if (!o || !o->enabled || !compress_allowed_ || o->offered.empty()) return cz::coding::identity;
  // The cheap tests first: most responses of an API are below min_size.
  if (streamed ? head_.content_length >= 0 : size < o->min_size) return cz::coding::identity;
  const int st = head_.status;
  // No body, or a body whose bytes are addressed as they are (ranges).
  if (st < 200 || st == 204 || st == 304 || st == 206) return cz::coding::identity;
  const auto& hs = head_.headers;
  if (hs.find("content-encoding") || hs.find("content-range")) return cz::coding::identity;
  for (auto& h : hs.items)
    if (iequals(h.name, "cache-control") && ascii_lowered(h.value).find("no-transform") != std::string::npos)
      return cz::coding::identity;
  const auto* ct = hs.find("content-type");
  if (!cz::compressible_type(ct ? std::string_view(*ct) : std::string_view(), *o)) return cz::coding::identity;
  // From here on the request's Accept-Encoding decides: caches must key on it.
  bool vary_done = false;
  for (auto& h : head_.headers.items) {
    if (!iequals(h.name, "vary")) continue;
    auto v = ascii_lowered(h.value);
    if (v.find("accept-encoding") != std::string::npos || trim_ows(v) == "*") vary_done = true;
    else if (!vary_done) {
      h.value += trim_ows(h.value).empty() ? "Accept-Encoding" : ", Accept-Encoding";
      vary_done = true;
    }
    break;
  }
  if (!vary_done) head_.headers.add("Vary", "Accept-Encoding");
  if (coding_ == cz::coding::identity) return coding_;
  head_.headers.add("Content-Encoding", std::string(cz::to_string(coding_)));
  // The compressed bytes are another representation: a strong validator of the plain one
  // must not match them (RFC 9110 §8.8.1), so it is weakened, as nginx does.
  for (auto& h : head_.headers.items)
    if (iequals(h.name, "etag") && !h.value.starts_with("W/")) h.value.insert(0, "W/");
  return coding_;
}

response& response::status(int code, std::string reason) {
  head_.status = code;
  head_.reason = std::move(reason);
  return *this;
}

response& response::set_header(std::string name, std::string value) {
  auto& items = head_.headers.items;
  std::erase_if(items, [&](const h1::header& h) { return iequals(h.name, name); });
  items.emplace_back(std::move(name), std::move(value));
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
  std::string packed;
  if (!started_ && compression_) {
    if (auto c = choose_coding(body.size(), false); c != cz::coding::identity) {
      packed = cz::compress(c, compression_->level(c), body);
      body = packed;
    }
  } else if (encoder_) {
    encoder_->feed(body, packed);
    encoder_->finish(packed);
    encoder_.reset();
    body = packed;
  }
  // (The channel is asked only for a body that its smallest piece might not hold.)
  const std::size_t piece =
      body.size() <= response_channel::min_piece ? kLargeBody : std::min(kLargeBody, ch_->max_piece());
  if (!started_ && (body.size() > piece || !trailers_.items.empty())) {
    // A large body goes out in pieces behind a Content-Length head: no single message
    // between processes (or queued reply) has to hold all of it. Trailers need a framing
    // that has room for them (HTTP/1.1 chunked, HTTP/2 a last HEADERS frame): no length.
    if (trailers_.items.empty()) head_.content_length = static_cast<std::int64_t>(body.size());
    if (auto ec = send_head()) return fail(ec);
    if (body.size() > piece && ch_->paces()) {
      // Larger than the connection may queue: the engine sends it as the client reads.
      paced_ = std::make_unique<paced_body>();
      paced_->body = packed.empty() ? std::string(body) : std::move(packed);
      paced_->trailers = trailers_.encode();
      return {};
    }
    for (std::size_t off = 0; off < body.size(); off += piece)
      if (auto ec = ch_->send(static_cast<std::uint8_t>(h1::out::body), body.substr(off, piece))) return fail(ec);
    return fail(ch_->send(static_cast<std::uint8_t>(h1::out::end), trailers_.encode()));
  }
  if (!started_) {
    started_ = true;
    // Typed: a connection of this process writes it without a wire form in between.
    return fail(ch_->send_object(static_cast<std::uint8_t>(h1::out::whole), h1::response_reply(head_, body)));
  }
  for (std::size_t off = 0; off < body.size(); off += piece)
    if (auto ec = ch_->send(static_cast<std::uint8_t>(h1::out::body), body.substr(off, piece))) return fail(ec);
  return fail(ch_->send(static_cast<std::uint8_t>(h1::out::end), trailers_.encode()));
}

std::error_code response::send_head() {
  started_ = true;
  return ch_->send(static_cast<std::uint8_t>(h1::out::head), head_.encode());
}

swactor::task<std::error_code> response::write(std::string_view chunk, duration timeout) {
  if (ended_) co_return make_error_code(server_errc::not_supported);
  if (!started_) {
    if (compression_)
      if (auto c = choose_coding(0, true); c != cz::coding::identity) encoder_ = cz::make_encoder(c, compression_->level(c));
    if (auto ec = send_head()) co_return fail(ec);
  }
  if (chunk.empty()) co_return std::error_code();
  std::string packed;
  if (encoder_) {
    // Flushed per write: the client can decode each piece as it arrives (a progress line,
    // an event), at some cost in ratio for tiny pieces.
    encoder_->feed(chunk, packed);
    encoder_->flush(packed);
    chunk = packed;
  }
  const std::size_t piece = ch_->max_piece();
  for (std::size_t off = 0; off < chunk.size(); off += piece) {
    // No room for the piece (the connection's output limit; in process mode the link to the
    // reactor): wait until the client took most of what is queued, then send it again.
    // A writer waits while the client reads instead of failing (a chunk larger than the
    // limit; HTTP/2: other streams, maybe written by this worker at the same time, share
    // the room, so a wake-up does not promise it). Each wait is bounded by `timeout`.
    auto ec = ch_->send(static_cast<std::uint8_t>(h1::out::body), chunk.substr(off, piece));
    while (ec == server_errc::output_buffer_full || ec == make_error_code(ipc::errc::queue_full)) {
      if (auto wait = co_await ch_->drained(timeout)) co_return fail(wait);
      ec = ch_->send(static_cast<std::uint8_t>(h1::out::body), chunk.substr(off, piece));
    }
    if (ec) co_return fail(ec);
    // Backpressure: wait until the client took most of what is queued between the pieces
    // of a chunk (in process mode a send cannot see how full the reactor's queue is), and
    // after every 64 KiB written. A failed wait is recorded like a failed send: a client
    // that left (session_not_found) is told apart from a module that forgot to end.
    unacked_ += std::min(piece, chunk.size() - off);
    if (off + piece < chunk.size() || unacked_ >= 64 * 1024) {
      unacked_ = 0;
      const auto waited = co_await ch_->drained(timeout);
      if (waited) co_return fail(waited);
    }
  }
  co_return std::error_code();
}

namespace {
// The range checked against the file as it is now (the connection checks again when it
// opens it): a clear error for the handler instead of a closed connection.
std::error_code check_range(std::string_view path, std::uint64_t offset, std::uint64_t& length) {
  struct stat st{};
  if (::stat(std::string(path).c_str(), &st) != 0) return {errno, std::system_category()};
  if (!S_ISREG(st.st_mode)) return make_error_code(std::errc::invalid_argument);
  auto size = static_cast<std::uint64_t>(st.st_size);
  if (offset > size) return make_error_code(std::errc::invalid_argument);
  if (length == response::npos) length = size - offset;
  if (length > size - offset) return make_error_code(std::errc::invalid_argument);
  return {};
}

// Relative paths are the handler's view (its working directory); the reactor that opens
// the file in process mode gets an absolute one.
std::string absolute(std::string_view path) {
  if (!path.empty() && path[0] == '/') return std::string(path);
  char cwd[4096];
  if (!::getcwd(cwd, sizeof cwd)) return std::string(path);
  return std::string(cwd) + "/" + std::string(path);
}
}  // namespace

std::error_code response::sendfile(std::string_view p, std::uint64_t offset, std::uint64_t length) {
  if (ended_ || started_) return server_errc::not_supported;
  auto path = absolute(p);
  if (auto ec = check_range(path, offset, length)) return ec;
  ended_ = true;
  head_.content_length = static_cast<std::int64_t>(length);
  if (auto ec = send_head()) return fail(ec);
  if (length > 0)
    if (auto ec = ch_->send(protocols::kind_file, protocols::file_range{offset, length, std::string(path)}.encode()))
      return fail(ec);
  return fail(ch_->send(static_cast<std::uint8_t>(h1::out::end), {}));
}

std::error_code response::write_file(std::string_view p, std::uint64_t offset, std::uint64_t length) {
  if (ended_) return server_errc::not_supported;
  auto path = absolute(p);
  if (auto ec = check_range(path, offset, length)) return ec;
  if (!started_)
    if (auto ec = send_head()) return fail(ec);
  if (length == 0) return {};
  return fail(ch_->send(protocols::kind_file, protocols::file_range{offset, length, std::string(path)}.encode()));
}

std::error_code response::redirect(std::string_view location, int code) {
  status(code);
  set_header("Location", std::string(location));
  set_header("Content-Type", "text/plain; charset=utf-8");
  return end(fmt::format("Redirecting to {}\n", location));
}

}  // namespace swactor::http
