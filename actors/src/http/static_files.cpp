#include "swactor/actors/static_files.hpp"

#include <filesystem>
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <memory>

#include <fmt/format.h>

#include "swactor/actors/html.hpp"
#include "swactor/actors/http.hpp"
#include "swactor/protocols/http_range.hpp"
#include "swactor/protocols/field_lists.hpp"

namespace swactor::http {
namespace {

using protocols::trim_ows;

namespace h1 = protocols::http1;
using protocols::ascii_iequals;

constexpr std::pair<std::string_view, std::string_view> kMime[] = {
    {".html", "text/html; charset=utf-8"},  {".htm", "text/html; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"}, {".json", "application/json"},
    {".txt", "text/plain; charset=utf-8"},  {".md", "text/markdown; charset=utf-8"},
    {".csv", "text/csv; charset=utf-8"},    {".xml", "application/xml"},
    {".svg", "image/svg+xml"},              {".png", "image/png"},
    {".jpg", "image/jpeg"},                 {".jpeg", "image/jpeg"},
    {".gif", "image/gif"},                  {".webp", "image/webp"},
    {".avif", "image/avif"},                {".ico", "image/vnd.microsoft.icon"},
    {".bmp", "image/bmp"},                  {".woff", "font/woff"},
    {".woff2", "font/woff2"},               {".ttf", "font/ttf"},
    {".otf", "font/otf"},                   {".mp4", "video/mp4"},
    {".webm", "video/webm"},                {".ogg", "audio/ogg"},
    {".mp3", "audio/mpeg"},                 {".wav", "audio/wav"},
    {".pdf", "application/pdf"},            {".zip", "application/zip"},
    {".gz", "application/gzip"},            {".tar", "application/x-tar"},
    {".wasm", "application/wasm"},          {".map", "application/json"},
};

std::string real_path(const std::string& p) {
  std::unique_ptr<char, decltype(&std::free)> r(::realpath(p.c_str(), nullptr), &std::free);
  return r ? std::string(r.get()) : std::string();
}

bool inside(const std::string& real, const std::string& root) {
  if (real == root) return true;
  if (root == "/") return !real.empty() && real[0] == '/';
  return real.size() > root.size() && real.compare(0, root.size(), root) == 0 && real[root.size()] == '/';
}


// Percent-encodes everything but unreserved characters and '/' (links and Location).
std::string url_escape(std::string_view s) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
        c == '_' || c == '~' || c == '/') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

// A regular file inside the root: its real path and stat, or false.
bool regular_inside(const std::string& path, const std::string& root, std::string& real, struct stat& st) {
  real = real_path(path);
  if (real.empty() || !inside(real, root)) return false;
  return ::stat(real.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::int64_t mtime_ns(const struct stat& st) {
  return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

// Entity-tags of an If-None-Match / If-Range value; weak comparison strips W/.
bool etag_listed(std::string_view list, std::string_view etag, bool weak) {
  if (trim_ows(list) == "*") return true;
  std::size_t i = 0;
  while (i < list.size()) {
    while (i < list.size() && (list[i] == ' ' || list[i] == '\t' || list[i] == ',')) ++i;
    if (i >= list.size()) break;
    bool is_weak = false;
    if (list.compare(i, 2, "W/") == 0) {
      is_weak = true;
      i += 2;
    }
    if (i >= list.size() || list[i] != '"') return false;  // malformed: no match
    auto end = list.find('"', i + 1);
    if (end == std::string_view::npos) return false;
    auto tag = list.substr(i, end - i + 1);
    if (tag == etag && (weak || !is_weak)) return true;
    i = end + 1;
  }
  return false;
}

void plain(static_reply& r, int status, std::string_view text) {
  r.status = status;
  r.headers.add("Content-Type", "text/plain; charset=utf-8");
  r.body.push_back({std::string(text), 0, 0, false});
  r.content_length = text.size();
}

}  // namespace

const config::schema<static_options>& static_schema() {
  static const config::schema<static_options> s = [] {
    config::schema<static_options> k;
    k.custom("root", "string", "", "Document root: the directory files are served from (it must exist).",
             [](const toml::node& n, static_options& o, config::parse_context& ctx) {
               auto v = n.value<std::string>();
               if (!n.is_string() || !v) {
                 ctx.diag.add(n.source(), ctx.path, "expected a string, got " + config::type_name(n));
                 return;
               }
               std::error_code ec;
               if (!std::filesystem::is_directory(*v, ec)) {
                 ctx.diag.add(n.source(), ctx.path,
                              "expected an existing directory (the document root), got \"" + *v + "\"" +
                                  (ec ? ": " + ec.message() : std::string(": not a directory")));
                 return;
               }
               o.root = std::move(*v);
             })
        .required()
        .strings("index", &static_options::index,
                 "Index files tried in order when a directory is asked for (its URL ending in `/`); the "
                 "default is `[\"index.html\"]`, `[]` turns them off.")
        .boolean("listing", &static_options::listing,
                 "An HTML listing of a directory without an index file; off: such a directory is a 404.")
        .custom("mime", "table", "{}",
                "Extra or overriding types by extension: `{ \".wasm\" = \"application/wasm\" }` (over a built-in "
                "table of common web types; unknown extensions are application/octet-stream).",
                [](const toml::node& n, static_options& o, config::parse_context& ctx) {
                  const auto* t = n.as_table();
                  if (!t) {
                    ctx.diag.add(n.source(), ctx.path, "expected a table of \".ext\" = \"type\"");
                    return;
                  }
                  for (auto&& [k, v] : *t) {
                    std::string ext(k.str());
                    auto* s = v.as_string();
                    if (!s || ext.size() < 2 || ext[0] != '.' || s->get().empty() ||
                        s->get().find_first_of("\r\n") != std::string::npos) {
                      ctx.diag.add(v.source(), ctx.path + "." + ext,
                                   "expected \".ext\" = \"type/subtype\" (a non-empty string)");
                      continue;
                    }
                    o.mime.emplace_back(std::move(ext), s->get());
                  }
                })
        .boolean("precompressed", &static_options::precompressed,
                 "Serve NAME.br or NAME.gz beside NAME (Content-Encoding br / gzip) to clients whose "
                 "Accept-Encoding takes it; `Vary: Accept-Encoding` is sent for files that have such a sibling.")
        .string("strip_prefix", &static_options::strip_prefix,
                "A URL prefix removed before the path maps to `root` (`/static/` serves /static/a.css from "
                "ROOT/a.css); paths without it are a 404. Empty: the whole path maps to `root`.")
        .integer("max_ranges", &static_options::max_ranges,
                 "Range requests with more range-specs than this are answered with the whole file.", 1, 1000)
        .string("cache_control", &static_options::cache_control,
                "A Cache-Control value for files (e.g. \"public, max-age=3600\"); empty: none.");
    return k;
  }();
  return s;
}

std::int64_t parse_http_date(std::string_view s) {
  s = trim_ows(s);
  if (s.size() > 64) return -1;
  std::string text(s);
  // IMF-fixdate, RFC 850, asctime (RFC 9110 §5.6.7).
  for (const char* fmt : {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"}) {
    std::tm tm{};
    const char* end = ::strptime(text.c_str(), fmt, &tm);
    if (end && *end == '\0') return static_cast<std::int64_t>(::timegm(&tm));
  }
  return -1;
}

static_site::static_site(static_options o) : opts_(std::move(o)) {
  root_ = real_path(opts_.root);
  struct stat st{};
  if (root_.empty() || ::stat(root_.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    error_ = fmt::format("document root {:?} is not a readable directory", opts_.root);
}

std::string_view static_site::mime_type(std::string_view name) const {
  auto slash = name.rfind('/');
  auto dot = name.rfind('.');
  if (dot == std::string_view::npos || (slash != std::string_view::npos && dot < slash))
    return "application/octet-stream";
  auto ext = name.substr(dot);
  for (const auto& [e, t] : opts_.mime)
    if (ascii_iequals(e, ext)) return t;
  for (const auto& [e, t] : kMime)
    if (ascii_iequals(e, ext)) return t;
  return "application/octet-stream";
}

static_reply static_site::serve(std::string_view method, std::string_view path, const h1::header_list& headers) const {
  static_reply r;
  const bool head = method == "HEAD";
  if (method != "GET" && !head) {
    r.headers.add("Allow", "GET, HEAD");
    plain(r, 405, "Method Not Allowed\n");
    return r;
  }
  if (!error_.empty()) {
    plain(r, 404, "Not Found\n");
    return r;
  }
  // The path is decoded and free of dot-segments already; what could still leave the root
  // (a backslash some file systems treat as a separator, a NUL, a ".." that survived) is a
  // 404, like any name that is not there. Symlinks are followed, then checked below.
  std::string_view rel = path;
  if (!opts_.strip_prefix.empty()) {
    std::string_view pre = opts_.strip_prefix;
    if (pre.back() == '/') pre.remove_suffix(1);
    if (rel.substr(0, pre.size()) != pre || (rel.size() > pre.size() && rel[pre.size()] != '/')) {
      plain(r, 404, "Not Found\n");
      return r;
    }
    rel.remove_prefix(pre.size());
  }
  if (rel.empty() || rel[0] != '/' || rel.find('\\') != std::string_view::npos ||
      rel.find('\0') != std::string_view::npos || rel.find("/../") != std::string_view::npos ||
      (rel.size() >= 3 && rel.substr(rel.size() - 3) == "/..")) {
    plain(r, 404, "Not Found\n");
    return r;
  }
  std::string real = real_path(root_ + std::string(rel));
  struct stat st{};
  if (real.empty() || !inside(real, root_) || ::stat(real.c_str(), &st) != 0) {
    plain(r, 404, "Not Found\n");
    return r;
  }
  if (S_ISDIR(st.st_mode)) {
    if (path.empty() || path.back() != '/') {
      r.headers.add("Location", url_escape(path) + "/");
      plain(r, 301, "Moved Permanently\n");
      return r;
    }
    bool found = false;
    for (const auto& idx : opts_.index) {
      if (idx.empty() || idx.find('/') != std::string::npos) continue;
      std::string cand;
      if (regular_inside(real + "/" + idx, root_, cand, st)) {
        real = std::move(cand);
        found = true;
        break;
      }
    }
    if (!found) {
      if (!opts_.listing) {
        plain(r, 404, "Not Found\n");
        return r;
      }
      std::vector<std::pair<std::string, bool>> entries;
      if (DIR* d = ::opendir(real.c_str())) {
        while (auto* e = ::readdir(d)) {
          std::string name = e->d_name;
          if (name == "." || name == "..") continue;
          struct stat es{};
          bool dir = ::stat((real + "/" + name).c_str(), &es) == 0 && S_ISDIR(es.st_mode);
          entries.emplace_back(std::move(name), dir);
        }
        ::closedir(d);
      }
      std::sort(entries.begin(), entries.end());
      auto title = html_escape(path);
      std::string html = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of " + title +
                         "</title></head>\n<body><h1>Index of " + title + "</h1>\n<ul>\n";
      if (path != "/") html += "<li><a href=\"../\">../</a></li>\n";
      for (const auto& [name, dir] : entries) {
        auto shown = name + (dir ? "/" : "");
        html += "<li><a href=\"" + html_escape(url_escape(shown)) + "\">" + html_escape(shown) + "</a></li>\n";
      }
      html += "</ul></body></html>\n";
      r.headers.add("Content-Type", "text/html; charset=utf-8");
      r.content_length = html.size();
      r.body.push_back({std::move(html), 0, 0, false});
      return r;
    }
  } else if (!S_ISREG(st.st_mode)) {
    plain(r, 404, "Not Found\n");
    return r;
  }

  // -- a regular file: pick the representation -------------------------------------------
  const auto type = std::string(mime_type(real));
  std::string_view encoding;
  std::string tag_suffix;
  bool has_sibling = false;
  if (opts_.precompressed) {
    // The siblings that exist, br preferred; the client's Accept-Encoding picks among them
    // the way it picks a coding for compressed responses (q-values, then our order).
    namespace cz = protocols::compression;
    struct sibling {
      cz::coding coding;
      std::string path;
      struct stat st;
    };
    std::vector<sibling> siblings;
    std::vector<cz::coding> present;
    for (auto [ext, coding] : {std::pair<std::string_view, cz::coding>{".br", cz::coding::br}, {".gz", cz::coding::gzip}}) {
      sibling sib{coding, {}, {}};
      if (!regular_inside(real + std::string(ext), root_, sib.path, sib.st)) continue;
      present.push_back(coding);
      siblings.push_back(std::move(sib));
    }
    has_sibling = !siblings.empty();
    const auto* ae = headers.find("accept-encoding");
    if (has_sibling && ae)
      if (auto chosen = cz::negotiate(*ae, true, present); chosen != cz::coding::identity)
        for (auto& sib : siblings)
          if (sib.coding == chosen) {
            encoding = cz::to_string(chosen);
            tag_suffix = "-" + std::string(encoding);
            real = std::move(sib.path);
            st = sib.st;
          }
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  const auto etag = fmt::format("\"{:x}-{:x}{}\"", size, mtime_ns(st), tag_suffix);
  const auto last_modified = format_http_date(std::chrono::system_clock::from_time_t(st.st_mtim.tv_sec));
  r.headers.add("ETag", etag);
  r.headers.add("Last-Modified", last_modified);
  if (has_sibling) r.headers.add("Vary", "Accept-Encoding");
  if (!opts_.cache_control.empty()) r.headers.add("Cache-Control", opts_.cache_control);

  // -- conditionals (RFC 9110 §13.2.2: If-None-Match wins over If-Modified-Since) ------------
  bool not_modified = false;
  if (const auto* inm = headers.find("if-none-match")) {
    std::string all;
    for (const auto& h : headers.items)
      if (ascii_iequals(h.name, "if-none-match")) all += (all.empty() ? "" : ",") + h.value;
    not_modified = etag_listed(all, etag, true);
    (void)inm;
  } else if (const auto* ims = headers.find("if-modified-since")) {
    auto t = parse_http_date(*ims);
    not_modified = t >= 0 && static_cast<std::int64_t>(st.st_mtim.tv_sec) <= t;
  }
  if (not_modified) {
    r.status = 304;
    return r;
  }
  r.headers.add("Content-Type", type);
  if (!encoding.empty()) r.headers.add("Content-Encoding", std::string(encoding));
  r.headers.add("Accept-Ranges", "bytes");
  r.file = real;

  // -- ranges (GET only; If-Range must name this very representation) -------------------------
  const auto* range = head ? nullptr : headers.find("range");
  if (range) {
    if (const auto* ir = headers.find("if-range")) {
      auto v = trim_ows(*ir);
      bool match = !v.empty() && (v[0] == '"' || v.substr(0, 2) == "W/")
                       ? etag_listed(v, etag, false)  // strong comparison only
                       : parse_http_date(v) == static_cast<std::int64_t>(st.st_mtim.tv_sec);
      if (!match) range = nullptr;
    }
  }
  if (range) {
    auto pr = protocols::parse_range(*range, size, static_cast<std::size_t>(opts_.max_ranges));
    if (pr.status == protocols::range_status::unsatisfiable) {
      r.headers.items.erase(std::remove_if(r.headers.items.begin(), r.headers.items.end(),
                                           [](const h1::header& h) {
                                             return ascii_iequals(h.name, "content-type") ||
                                                    ascii_iequals(h.name, "content-encoding");
                                           }),
                            r.headers.items.end());
      r.headers.add("Content-Range", fmt::format("bytes */{}", size));
      r.file.clear();
      plain(r, 416, "Range Not Satisfiable\n");
      return r;
    }
    if (pr.status == protocols::range_status::satisfiable) {
      r.status = 206;
      if (pr.ranges.size() == 1) {
        const auto& b = pr.ranges[0];
        r.headers.add("Content-Range", fmt::format("bytes {}-{}/{}", b.first, b.last, size));
        r.body.push_back({{}, b.first, b.length(), true});
        r.content_length = b.length();
        return r;
      }
      // multipart/byteranges (RFC 9110 §14.6): each part with its own type and range.
      const auto boundary = fmt::format("swactor-{:x}{:x}", size, mtime_ns(st) & 0xffffffffffffULL);
      for (auto& h : r.headers.items)
        if (ascii_iequals(h.name, "content-type")) h.value = "multipart/byteranges; boundary=" + boundary;
      for (const auto& b : pr.ranges) {
        auto part = fmt::format("\r\n--{}\r\nContent-Type: {}\r\nContent-Range: bytes {}-{}/{}\r\n\r\n", boundary,
                                type, b.first, b.last, size);
        r.content_length += part.size() + b.length();
        r.body.push_back({std::move(part), 0, 0, false});
        r.body.push_back({{}, b.first, b.length(), true});
      }
      auto tail = fmt::format("\r\n--{}--\r\n", boundary);
      r.content_length += tail.size();
      r.body.push_back({std::move(tail), 0, 0, false});
      return r;
    }
  }
  if (size > 0) r.body.push_back({{}, 0, size, true});
  r.content_length = size;
  return r;
}

std::string html_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

}  // namespace swactor::http
