#pragma once
// multipart/form-data (RFC 7578 over RFC 2046's multipart syntax), sans-I/O and incremental:
// the body goes in piece by piece (split anywhere), parts come out as a head (name,
// filename, content type) followed by their data in pieces, so a file part of any size
// passes through with only a delimiter's worth of bytes buffered.
//
//   auto b = multipart::boundary_of(content_type);   // nullopt: not multipart/form-data
//   multipart::parser p(*b, {.max_parts = 100});
//   for (each piece) if (auto ec = p.feed(piece, sink)) -> 400 / 413
//   if (auto ec = p.finish()) -> 400 (the body ended before the close delimiter)

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace swactor::protocols::multipart {

enum class errc {
  ok = 0,
  no_delimiter = 1,    // the body has no boundary delimiter at all (or only a preamble)
  bad_delimiter,       // a delimiter line with junk after the boundary
  bad_part_header,     // a header line without ':' or with a bad name, or a folded line
  no_disposition,      // a part without Content-Disposition: form-data; name="..."
  header_too_large,    // a part's header block above options::max_header_size
  too_many_parts,      // more than options::max_parts parts
  part_too_large,      // a part's data above options::max_part_size
  truncated,           // the body ended before the close delimiter
};

const std::error_category& error_category() noexcept;
inline std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), error_category()}; }

// The boundary of a `multipart/form-data; boundary=...` Content-Type (token or quoted,
// 1..70 characters as RFC 2046 allows); nullopt for another media type or a missing or
// invalid boundary.
std::optional<std::string> boundary_of(std::string_view content_type);
// Whether the media type is multipart/form-data (whatever its parameters).
bool is_form_data(std::string_view content_type);

// Content-Disposition's value split: the disposition type and its parameters (names
// lowered, quoted strings unescaped, `name*` values decoded from RFC 8187's
// charset'lang'%XX form to UTF-8 and stored under `name`, winning over a plain `name`).
struct disposition {
  std::string type;
  std::vector<std::pair<std::string, std::string>> params;
  const std::string* param(std::string_view name) const noexcept;
};
// False when the value does not parse (an unterminated quote, a parameter without '=').
bool parse_disposition(std::string_view value, disposition& out);

struct part_head {
  std::string name;
  std::string filename;
  bool has_filename = false;  // a file part (filename present, even if empty)
  std::string content_type;   // as sent; "text/plain" when absent (RFC 7578 §4.4)
  std::vector<std::pair<std::string, std::string>> headers;  // every header, names lowered
};

// What the parser hands over. An error returned from a callback stops parsing and is the
// parser's error from then on (a consumer's own limits: a field too big, a disk error).
class part_sink {
 public:
  virtual std::error_code on_part_begin(const part_head& head) = 0;
  virtual std::error_code on_part_data(std::string_view data) = 0;
  virtual std::error_code on_part_end() = 0;

 protected:
  ~part_sink() = default;
};

struct options {
  std::size_t max_header_size = 16 * 1024;  // bytes of one part's header block
  std::size_t max_parts = 0;                // 0 = no limit
  std::uint64_t max_part_size = 0;          // bytes of one part's data; 0 = no limit
};

class parser {
 public:
  parser(std::string boundary, options o = {});

  // Parses `in` (any piece of the body, in order). Errors are sticky.
  std::error_code feed(std::string_view in, part_sink& sink);
  // The body is over: truncated unless the close delimiter was seen.
  std::error_code finish();
  bool done() const noexcept { return state_ == state::epilogue; }
  std::error_code error() const noexcept { return error_; }
  std::size_t parts() const noexcept { return parts_; }

 private:
  enum class state { preamble, after_delimiter, headers, data, epilogue };
  std::error_code fail(std::error_code ec) {
    error_ = ec;
    return ec;
  }
  std::error_code header_line(std::string_view line);
  std::error_code begin_part(part_sink& sink);

  std::string delimiter_;  // "\r\n--" + boundary
  options opts_;
  state state_ = state::preamble;
  std::string buf_;  // bytes not consumed yet (at most a delimiter's worth in data)
  std::size_t header_bytes_ = 0;
  std::size_t parts_ = 0;
  std::uint64_t part_size_ = 0;
  part_head head_;
  std::error_code error_;
};

}  // namespace swactor::protocols::multipart

namespace std {
template <>
struct is_error_code_enum<swactor::protocols::multipart::errc> : true_type {};
}  // namespace std
