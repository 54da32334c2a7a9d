#include "swactor/protocols/multipart.hpp"

#include <algorithm>

#include "swactor/protocols/ascii.hpp"
#include "swactor/protocols/field_lists.hpp"

namespace swactor::protocols::multipart {
namespace {

class category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "multipart"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::ok: return "ok";
      case errc::no_delimiter: return "multipart body without a boundary delimiter";
      case errc::bad_delimiter: return "junk after a multipart boundary delimiter";
      case errc::bad_part_header: return "malformed multipart part header";
      case errc::no_disposition: return "multipart part without Content-Disposition: form-data; name=...";
      case errc::header_too_large: return "multipart part header block too large";
      case errc::too_many_parts: return "too many multipart parts";
      case errc::part_too_large: return "multipart part too large";
      case errc::truncated: return "multipart body ended before its close delimiter";
    }
    return "unknown multipart error";
  }
};


// RFC 2046 bchars (the last one may not be a space).
bool is_bchar(char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return std::string_view("'()+_,-./:=? ").find(c) != std::string_view::npos;
}

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// RFC 8187 ext-value: charset "'" [ language ] "'" value-chars, to UTF-8.
std::optional<std::string> decode_ext_value(std::string_view v) {
  auto q1 = v.find('\'');
  if (q1 == std::string_view::npos) return std::nullopt;
  auto q2 = v.find('\'', q1 + 1);
  if (q2 == std::string_view::npos) return std::nullopt;
  auto charset = v.substr(0, q1);
  const bool latin1 = ascii_iequals(charset, "ISO-8859-1");
  if (!latin1 && !ascii_iequals(charset, "UTF-8")) return std::nullopt;
  std::string raw;
  for (std::size_t i = q2 + 1; i < v.size(); ++i) {
    if (v[i] == '%') {
      if (i + 2 >= v.size()) return std::nullopt;
      int h = hex(v[i + 1]), l = hex(v[i + 2]);
      if (h < 0 || l < 0) return std::nullopt;
      raw.push_back(static_cast<char>(h * 16 + l));
      i += 2;
    } else {
      raw.push_back(v[i]);
    }
  }
  if (!latin1) return raw;
  std::string out;
  for (unsigned char c : raw) {
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back(static_cast<char>(0xC0 | (c >> 6)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
  }
  return out;
}

// One `name=value` list after a media type or disposition type; false on a syntax error.
// Calls f(lowered name, value) for each.
template <typename F>
bool parse_params(std::string_view s, F&& f) {
  std::size_t i = 0;
  for (;;) {
    while (i < s.size() && (is_ows(s[i]) || s[i] == ';')) ++i;
    if (i >= s.size()) return true;
    auto eq = s.find('=', i);
    if (eq == std::string_view::npos) return false;
    auto name = trim_ows(s.substr(i, eq - i));
    if (name.empty()) return false;
    i = eq + 1;
    while (i < s.size() && is_ows(s[i])) ++i;
    std::string value;
    if (i < s.size() && s[i] == '"') {
      ++i;
      bool closed = false;
      while (i < s.size()) {
        char c = s[i++];
        if (c == '"') {
          closed = true;
          break;
        }
        if (c == '\\' && i < s.size()) c = s[i++];
        value.push_back(c);
      }
      if (!closed) return false;
      while (i < s.size() && s[i] != ';') {
        if (!is_ows(s[i])) return false;  // junk after a quoted string
        ++i;
      }
    } else {
      auto end = s.find(';', i);
      if (end == std::string_view::npos) end = s.size();
      value = std::string(trim_ows(s.substr(i, end - i)));
      i = end;
    }
    f(ascii_lowered(name), std::move(value));
  }
}

}  // namespace

// Not a function-local static: no guard check per call (see core/src/error.cpp).
constinit const category_impl error_category_instance{};

const std::error_category& error_category() noexcept {
  return error_category_instance;
}

bool is_form_data(std::string_view content_type) {
  auto semi = content_type.find(';');
  return ascii_iequals(trim_ows(content_type.substr(0, semi)), "multipart/form-data");
}

std::optional<std::string> boundary_of(std::string_view content_type) {
  if (!is_form_data(content_type)) return std::nullopt;
  auto semi = content_type.find(';');
  if (semi == std::string_view::npos) return std::nullopt;
  std::optional<std::string> boundary;
  if (!parse_params(content_type.substr(semi + 1), [&](std::string name, std::string value) {
        if (name == "boundary" && !boundary) boundary = std::move(value);
      }))
    return std::nullopt;
  if (!boundary || boundary->empty() || boundary->size() > 70 || boundary->back() == ' ') return std::nullopt;
  if (!std::all_of(boundary->begin(), boundary->end(), is_bchar)) return std::nullopt;
  return boundary;
}

const std::string* disposition::param(std::string_view name) const noexcept {
  for (const auto& [k, v] : params)
    if (k == name) return &v;
  return nullptr;
}

bool parse_disposition(std::string_view value, disposition& out) {
  out = {};
  auto semi = value.find(';');
  out.type = ascii_lowered(trim_ows(value.substr(0, semi)));
  if (out.type.empty() || !std::all_of(out.type.begin(), out.type.end(), is_tchar)) return false;
  if (semi == std::string_view::npos) return true;
  std::vector<std::string> extended;  // names set from a name* parameter
  return parse_params(value.substr(semi + 1), [&](std::string name, std::string v) {
    bool ext = name.size() > 1 && name.back() == '*';
    if (ext) {
      name.pop_back();
      auto decoded = decode_ext_value(v);
      if (!decoded) return;  // an undecodable name* is ignored; a plain name still counts
      v = std::move(*decoded);
    } else if (std::find(extended.begin(), extended.end(), name) != extended.end()) {
      return;  // name* wins (RFC 8187 §4.2)
    }
    for (auto& [k, old] : out.params)
      if (k == name) {
        if (ext) {
          old = std::move(v);
          extended.push_back(name);
        }
        return;  // a repeated plain parameter: the first one counts
      }
    if (ext) extended.push_back(name);
    out.params.emplace_back(std::move(name), std::move(v));
  });
}

parser::parser(std::string boundary, options o) : delimiter_("\r\n--" + boundary), opts_(o) {
  // The first delimiter may start the body without a CRLF before it: pretend there was one.
  buf_ = "\r\n";
}

std::error_code parser::header_line(std::string_view line) {
  if (is_ows(line.front())) return fail(errc::bad_part_header);  // obsolete folding
  auto colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) return fail(errc::bad_part_header);
  auto name = line.substr(0, colon);
  if (!std::all_of(name.begin(), name.end(), is_tchar)) return fail(errc::bad_part_header);
  head_.headers.emplace_back(ascii_lowered(name), std::string(trim_ows(line.substr(colon + 1))));
  return {};
}

std::error_code parser::begin_part(part_sink& sink) {
  const std::string* cd = nullptr;
  for (const auto& [k, v] : head_.headers) {
    if (k == "content-disposition" && !cd) cd = &v;
    if (k == "content-type" && head_.content_type.empty()) head_.content_type = v;
  }
  disposition d;
  if (!cd || !parse_disposition(*cd, d) || d.type != "form-data") return fail(errc::no_disposition);
  auto* name = d.param("name");
  if (!name) return fail(errc::no_disposition);
  head_.name = *name;
  if (auto* fn = d.param("filename")) {
    head_.has_filename = true;
    head_.filename = *fn;
  }
  if (head_.content_type.empty()) head_.content_type = "text/plain";
  if (auto ec = sink.on_part_begin(head_)) return fail(ec);
  return {};
}

std::error_code parser::feed(std::string_view in, part_sink& sink) {
  if (error_) return error_;
  if (state_ == state::epilogue) return {};
  buf_.append(in);
  std::size_t pos = 0;
  const std::size_t keep = delimiter_.size() - 1;  // a delimiter may start in the last bytes
  std::error_code ec;
  bool more = true;
  while (more && !ec) {
    std::string_view b(buf_);
    switch (state_) {
      case state::preamble: {
        auto f = b.find(delimiter_, pos);
        if (f == std::string_view::npos) {
          if (b.size() - pos > keep) pos = b.size() - keep;
          more = false;
          break;
        }
        pos = f + delimiter_.size();
        state_ = state::after_delimiter;
        break;
      }
      case state::after_delimiter: {
        std::size_t i = pos;
        if (b.size() - i < 2) {
          more = false;
          break;
        }
        if (b[i] == '-' && b[i + 1] == '-') {
          state_ = state::epilogue;
          pos = b.size();
          more = false;
          break;
        }
        while (i < b.size() && is_ows(b[i])) ++i;  // transport padding
        if (i - pos > 256) {
          ec = fail(errc::bad_delimiter);
          break;
        }
        if (i + 1 >= b.size()) {
          more = false;
          break;
        }
        if (b[i] != '\r' || b[i + 1] != '\n') {
          ec = fail(errc::bad_delimiter);
          break;
        }
        pos = i + 2;
        if (opts_.max_parts != 0 && parts_ >= opts_.max_parts) {
          ec = fail(errc::too_many_parts);
          break;
        }
        ++parts_;
        head_ = {};
        header_bytes_ = 0;
        state_ = state::headers;
        break;
      }
      case state::headers: {
        auto f = b.find("\r\n", pos);
        if (f == std::string_view::npos) {
          if (header_bytes_ + (b.size() - pos) > opts_.max_header_size) ec = fail(errc::header_too_large);
          more = false;
          break;
        }
        header_bytes_ += f - pos + 2;
        if (header_bytes_ > opts_.max_header_size) {
          ec = fail(errc::header_too_large);
          break;
        }
        auto line = b.substr(pos, f - pos);
        pos = f + 2;
        if (line.empty()) {
          if ((ec = begin_part(sink))) break;
          part_size_ = 0;
          state_ = state::data;
        } else {
          ec = header_line(line);
        }
        break;
      }
      case state::data: {
        auto f = b.find(delimiter_, pos);
        std::size_t end = f;
        if (f == std::string_view::npos) {
          end = b.size() - pos > keep ? b.size() - keep : pos;
          more = false;
        }
        if (end > pos) {
          part_size_ += end - pos;
          if (opts_.max_part_size != 0 && part_size_ > opts_.max_part_size) {
            ec = fail(errc::part_too_large);
            break;
          }
          if (auto e = sink.on_part_data(b.substr(pos, end - pos))) {
            ec = fail(e);
            break;
          }
        }
        pos = end;
        if (f != std::string_view::npos) {
          if (auto e = sink.on_part_end()) {
            ec = fail(e);
            break;
          }
          pos = f + delimiter_.size();
          state_ = state::after_delimiter;
        }
        break;
      }
      case state::epilogue:
        pos = b.size();
        more = false;
        break;
    }
  }
  if (ec) {
    buf_.clear();
    return ec;
  }
  buf_.erase(0, pos);
  return {};
}

std::error_code parser::finish() {
  if (error_) return error_;
  if (state_ == state::epilogue) return {};
  if (state_ == state::preamble) return fail(errc::no_delimiter);
  return fail(errc::truncated);
}

}  // namespace swactor::protocols::multipart
