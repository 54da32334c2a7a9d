// HTTP/1 value types and their wire form between processes (little-endian u32 sizes).
// Everything decoded here may come from another process: bounds are checked on every read
// and inconsistent input is refused, never trusted.
#include <cstring>

#include "http1_wire.hpp"
#include "swactor/protocols/http1.hpp"

namespace swactor::protocols::http1 {

using namespace wire;

namespace {

class category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "swactor.http1"; }
  std::string message(int ev) const override { return std::string(reason_phrase(ev)); }
};

}  // namespace

// Not a function-local static: no guard check per call (see core/src/error.cpp).
constinit const category_impl error_category_instance{};

const std::error_category& error_category() noexcept {
  return error_category_instance;
}

// -- header_list ----------------------------------------------------------------------------

const std::string* header_list::find(std::string_view name) const noexcept {
  for (const auto& h : items)
    if (iequals(h.name, name)) return &h.value;
  return nullptr;
}

std::size_t header_list::encoded_size() const noexcept {
  std::size_t n = 4;
  for (const auto& h : items) n += 8 + h.name.size() + h.value.size();
  return n;
}

void header_list::encode_to(swactor::wire::placed_writer& w) const {
  w.u32(static_cast<std::uint32_t>(items.size()));
  for (const auto& h : items) {
    w.str(h.name);
    w.str(h.value);
  }
}

void header_list::encode_to(std::string& out) const {
  auto w = swactor::wire::place(out, encoded_size());
  encode_to(w);
}

bool header_list::decode_from(std::string_view& in) {
  reader r{in};
  std::uint32_t count = 0;
  if (!r.u32(count)) return false;
  // Each field takes at least 8 bytes: a count the input cannot hold is refused before
  // anything is reserved for it.
  if (count > r.in.size() / 8) return false;
  items.resize(count);  // in place: a fresh list costs one allocation, not two
  for (auto& h : items)
    if (!r.str(h.name) || !r.str(h.value)) return false;
  in = r.in;
  return true;
}

// -- request_head ---------------------------------------------------------------------------

void request_head::encode_to(std::string& out) const {
  put_request(out,
              {method, target, authority, version_minor, request_flags(keep_alive, expect_continue, chunked, complete),
               content_length, body},
              headers.encoded_size(), [&](swactor::wire::placed_writer& w) { headers.encode_to(w); });
}

void request_parts::encode_to(std::string& out) const {
  std::size_t fields_size = 4;
  for (std::size_t i = 0; i < field_count; ++i) fields_size += 8 + fields[i].name_len + fields[i].value_len;
  put_request(out,
              {method, target, authority, version_minor,
               request_flags(keep_alive, expect_continue, chunked, complete), content_length, body},
              fields_size, [&](swactor::wire::placed_writer& w) {
                w.u32(static_cast<std::uint32_t>(field_count));
                for (std::size_t i = 0; i < field_count; ++i) {
                  w.str(name(fields[i]));
                  w.str(value(fields[i]));
                }
              });
}

// request_head::assign() keeps value buffers up to this size between requests.
constexpr std::size_t kKeptValue = 256;

void request_head::assign(const request_parts& p) {
  replace_with(method, p.method);
  replace_with(target, p.target);
  replace_with(authority, p.authority);
  version_minor = p.version_minor;
  // The fields of the last request this head held are written over (a long value's buffer
  // is kept, not freed and allocated again per request).
  auto& items = headers.items;
  if (items.size() > p.field_count) items.resize(p.field_count);
  const std::size_t kept = items.size();
  items.reserve(p.field_count);
  for (std::size_t i = 0; i < p.field_count; ++i) {
    auto& h = i < kept ? items[i] : items.emplace_back();
    // A large buffer (a long cookie) is not kept for the next request's field.
    if (h.value.capacity() > kKeptValue) std::string().swap(h.value);
    replace_with(h.name, p.name(p.fields[i]));
    replace_with(h.value, p.value(p.fields[i]));
  }
  keep_alive = p.keep_alive;
  expect_continue = p.expect_continue;
  chunked = p.chunked;
  complete = p.complete;
  content_length = p.content_length;
  replace_with(body, p.body);
}

std::string_view request_head::peek_target(std::string_view in) noexcept {
  reader r{in};
  std::string_view method, target;
  if (!r.str(method) || !r.str(target)) return {};
  return target;
}

bool request_head::decode(std::string_view in) {
  // Straight into *this (a temporary and a move of every member cost a tenth of a request's
  // handling); on failure the head is left half-filled, and callers drop it.
  reader r{in};
  std::uint8_t flags = 0;
  std::uint64_t cl = 0;
  if (!r.str(method) || !r.str(target) || !r.str(authority) || !r.u8(version_minor)) return false;
  if (!headers.decode_from(r.in) || !r.u8(flags) || !r.u64(cl) || !r.str(body)) return false;
  if (!r.in.empty() || method.empty() || version_minor > 2) return false;  // 2 = HTTP/2
  if (flags & ~(kKeepAlive | kExpect | kChunked | kComplete)) return false;
  keep_alive = flags & kKeepAlive;
  expect_continue = flags & kExpect;
  chunked = flags & kChunked;
  complete = flags & kComplete;
  content_length = static_cast<std::int64_t>(cl);
  if (content_length < -1) return false;
  if (chunked && content_length >= 0) return false;  // both framings at once
  // A complete body cannot be longer than its announced length.
  if (content_length >= 0 && body.size() > static_cast<std::uint64_t>(content_length)) return false;
  return true;
}

// -- response_head --------------------------------------------------------------------------

void response_reply::encode_to(std::string& out) const {
  head.encode_to(out);
  out.append(body);
}

std::size_t response_reply::wire_size() const noexcept {
  return 4 + 4 + head.reason.size() + head.headers.encoded_size() + 8 + 1 + body.size();
}

void response_head::encode_to(std::string& out) const {
  auto w = swactor::wire::place(out, 4 + swactor::wire::placed_writer::size_of(reason) + headers.encoded_size() + 8 + 1);
  w.u32(static_cast<std::uint32_t>(status));
  w.str(reason);
  headers.encode_to(w);
  w.u64(static_cast<std::uint64_t>(content_length));
  w.u8(close ? 1 : 0);
}

bool response_head::decode_from(std::string_view& in) {
  reader r{in};
  response_head h;
  std::uint32_t status = 0;
  std::uint64_t cl = 0;
  std::uint8_t close_flag = 0;
  if (!r.u32(status) || !r.str(h.reason) || !h.headers.decode_from(r.in) || !r.u64(cl) ||
      !r.u8(close_flag))
    return false;
  if (status < 100 || status > 999 || close_flag > 1) return false;
  h.status = static_cast<int>(status);
  h.content_length = static_cast<std::int64_t>(cl);
  if (h.content_length < -1) return false;
  h.close = close_flag;
  *this = std::move(h);
  in = r.in;
  return true;
}

// -- reason phrases -------------------------------------------------------------------------

std::string_view reason_phrase(int status) noexcept {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 102: return "Processing";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 207: return "Multi-Status";
    case 208: return "Already Reported";
    case 226: return "IM Used";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 305: return "Use Proxy";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 418: return "I'm a teapot";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 423: return "Locked";
    case 424: return "Failed Dependency";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 506: return "Variant Also Negotiates";
    case 507: return "Insufficient Storage";
    case 508: return "Loop Detected";
    case 510: return "Not Extended";
    case 511: return "Network Authentication Required";
    default: return "Unknown";
  }
}

}  // namespace swactor::protocols::http1
