#pragma once
// `http_static`: files from a document root (swactor/actors/static_files.hpp does the
// work). In process mode the reactor answers this module's routes itself; a worker runs
// this handler only for what the reactor hands on (a request pipelined behind another
// one still being answered, a request with a body).

#include "swactor/actors/context.hpp"
#include "swactor/actors/http.hpp"
#include "swactor/actors/module.hpp"
#include "swactor/actors/static_files.hpp"
#include "swactor/core/log.hpp"

namespace swactor::apps {

class http_static final : public module_base {
 public:
  static constexpr std::string_view kName = "http_static";
  static constexpr std::string_view kDoc =
      "Serves files from a document root: GET and HEAD (others 405), index files, an optional directory listing, "
      "MIME types, Range (single, multipart/byteranges, suffix; 416 when unsatisfiable), ETag / Last-Modified "
      "with If-None-Match / If-Modified-Since / If-Range, precompressed .br / .gz siblings. Paths that leave the "
      "root (encoded dot-segments, backslashes, symlinks pointing out) are a 404. Files are sent by the "
      "connection (sendfile(2) on plain sockets), never read into memory. In process mode the reactor serves "
      "these routes without a worker round trip.";
  using options = http::static_options;
  static config::schema<options> schema() { return http::static_schema(); }
  explicit http_static(options o) : site_(std::move(o)) {
    if (!site_.error().empty()) log::warning("http_static: {}; every request is a 404", site_.error());
  }

  task<void> on_request(context&, http::request& req, http::response& res) override {
    auto r = site_.serve(req.method(), req.path(), req.headers());
    res.status(r.status);
    for (auto& h : r.headers.items) res.header(std::move(h.name), std::move(h.value));
    if (!r.has_file()) {
      std::string body;
      for (const auto& p : r.body) body += p.bytes;
      (void)res.end(body);
      co_return;
    }
    if (r.body.size() == 1) {
      if (auto ec = res.sendfile(r.file, r.body[0].offset, r.body[0].length))
        log::warning("http_static: {} not sent: {}", r.file, ec.message());
      co_return;  // an error leaves the response unended: the engine answers 500 or closes
    }
    res.content_length(r.content_length);
    for (const auto& p : r.body) {
      std::error_code ec = p.file ? res.write_file(r.file, p.offset, p.length) : co_await res.write(p.bytes);
      if (ec) co_return;
    }
    (void)res.end();
  }

 private:
  http::static_site site_;
};

}  // namespace swactor::apps
