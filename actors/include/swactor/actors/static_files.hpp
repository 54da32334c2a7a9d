#pragma once
// Static files over HTTP: what the `http_static` module answers, as a function of the
// request (method, normalized path, header fields) and the file system. The answer is a
// plan (status, fields, and a body of byte strings and file ranges), not bytes: the
// module turns it into response writes and response::write_file() in a worker, and in
// process mode the reactor turns it into typed replies itself (no worker round trip).
// File bytes are never read into memory here: the connection sends the ranges
// (sendfile(2) on plain sockets, pread + write under TLS).

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "swactor/core/config.hpp"
#include "swactor/protocols/http1.hpp"

namespace swactor::http {

struct static_options {
  std::string root;                                   // document root (required)
  std::vector<std::string> index = {"index.html"};  // tried in order for a directory
  bool listing = false;                             // an HTML listing for a directory without index
  std::vector<std::pair<std::string, std::string>> mime;  // ".ext" -> type, over the built-in table
  bool precompressed = true;                        // serve NAME.br / NAME.gz when accepted
  std::string strip_prefix;                         // removed from the path before it maps to root
  std::int64_t max_ranges = 16;                     // more range-specs: the Range field is ignored
  std::string cache_control;                        // sent when set
};

const config::schema<static_options>& static_schema();

struct static_piece {
  std::string bytes;  // when !file
  std::uint64_t offset = 0, length = 0;  // a range of static_reply::file when file
  bool file = false;
};

struct static_reply {
  int status = 200;
  protocols::http1::header_list headers;  // Date included
  std::string file;                       // what the file pieces read from (a real path)
  std::vector<static_piece> body;
  std::uint64_t content_length = 0;       // the sum of the pieces
  bool has_file() const noexcept {
    for (const auto& p : body)
      if (p.file) return true;
    return false;
  }
};

class static_site {
 public:
  explicit static_site(static_options o);
  // Empty when the root resolved; else why not (every request is then a 404).
  const std::string& error() const noexcept { return error_; }
  const static_options& options() const noexcept { return opts_; }

  // `path` is the decoded path with dot-segments removed (http::request::path()).
  static_reply serve(std::string_view method, std::string_view path,
                     const protocols::http1::header_list& headers) const;

  // The built-in type for a file name (by its last extension), or application/octet-stream.
  std::string_view mime_type(std::string_view name) const;

 private:
  static_options opts_;
  std::string root_;  // realpath of opts_.root
  std::string error_;
};

// Helpers of the conditional and range logic, exposed for tests.
// An HTTP-date (IMF-fixdate, RFC 850 and asctime forms) to Unix seconds; -1 when malformed.
std::int64_t parse_http_date(std::string_view s);
// Whether `accept_encoding` accepts `coding` (q > 0, directly or through "*").
bool accepts_encoding(std::string_view accept_encoding, std::string_view coding);

}  // namespace swactor::http
