#pragma once
// HTTP built-ins: `http_hello` (a fixed answer, for benchmarks) and `http_echo` (the
// request back as JSON: the test workhorse).

#include <algorithm>
#include <memory>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "swactor/actors/context.hpp"
#include "swactor/actors/errors.hpp"
#include "swactor/actors/http.hpp"
#include "swactor/actors/module.hpp"

namespace swactor::apps {

class http_hello final : public module_base {
 public:
  static constexpr std::string_view kName = "http_hello";
  static constexpr std::string_view kDoc = "Answers every HTTP request with the same body (benchmarks).";
  struct options {
    std::string body = "Hello World";
    std::string content_type = "text/plain";
  };
  static config::schema<options> schema() {
    config::schema<options> s;
    s.string("body", &options::body, "The response body.")
        .string("content_type", &options::content_type, "The Content-Type of the response.");
    return s;
  }
  explicit http_hello(options o) : opts_(std::move(o)) {}

  // Nothing here waits: every request is answered inline, as it is parsed.
  bool on_request_now(context&, http::request&, http::response& res) override {
    (void)res.set_header("Content-Type", opts_.content_type).end(opts_.body);
    return true;
  }
  task<void> on_request(context& ctx, http::request& req, http::response& res) override {
    (void)on_request_now(ctx, req, res);
    co_return;
  }

 private:
  options opts_;
};

std::string base64_encode(std::string_view in);

// SHA-256 (hex) of bytes fed in pieces (a streamed body or an upload that is not kept).
class sha256_stream {
 public:
  sha256_stream();
  ~sha256_stream();
  sha256_stream(const sha256_stream&) = delete;
  sha256_stream& operator=(const sha256_stream&) = delete;
  void feed(std::string_view data);
  // The digest of what was fed; the stream starts again, empty.
  std::string hex();
  void reset();

 private:
  void* ctx_;  // EVP_MD_CTX (OpenSSL stays out of this header)
};
// SHA-256 (hex) of each uploaded file as its bytes arrive (request::read_form's observer).
class upload_hasher final : public http::upload_observer {
 public:
  void on_file_begin(const http::uploaded_file&) override { hash_.reset(); }
  void on_file_data(const http::uploaded_file&, std::string_view data) override { hash_.feed(data); }
  void on_file_end(const http::uploaded_file&) override { digests_.push_back(hash_.hex()); }
  const std::vector<std::string>& digests() const noexcept { return digests_; }

 private:
  sha256_stream hash_;
  std::vector<std::string> digests_;
};
// SHA-256 (hex) of a file already received: its content, or its temporary file read in pieces.
std::string sha256_of(const http::uploaded_file& f);

class http_echo final : public module_base {
 public:
  static constexpr std::string_view kName = "http_echo";
  static constexpr std::string_view kDoc =
      "Answers every HTTP request with a JSON description of it: method, target, path, query, "
      "version, host, headers (in order), cookies, form, trailers, body (and body_base64), remote, "
      "worker, files (multipart uploads: name, filename, content_type, size, sha256, on_disk), and on a TLS "
      "listener tls (version, cipher, sni, alpn, peer_subject, peer_fingerprint, resumed). "
      "Query parameters for tests: `status=NNN` sets the response status, `delay=MS` answers "
      "after that many milliseconds, `chunks=N&size=S` streams N chunks of S bytes (chunked) "
      "instead of the JSON (`numbered=1`: chunk i is \"i \" repeated, else x's; with `trailer=V`: a "
      "trailer field x-echo-trailer: V after them, and after the JSON too), `type=T` sets the Content-Type, `set_cookies=1` adds two Set-Cookie fields, `fail=throw` throws "
      "and `fail=noend` returns without answering (both end in the engine's 500), "
      "`sendfile=PATH&offset=N&length=N` answers with that file range through response.sendfile() (an "
      "error: the engine's 500). On a stream_body route `digest=sha256` hashes the body as it is read "
      "instead of keeping it (the JSON's body_length and body_sha256: uploads of any size). A streamed body that inflates past max_body_size gets 413. "
      "`now=1` is answered by on_request_now (\"now inline\"), or by on_request (\"now queued\") when the "
      "engine cannot take that path (a body still arriving); `now=throw` throws there, `now=detach` detaches there (500), "
      "`now=big&size=N` ends with N bytes of 'b' there. "
      "`answer_from=task` detaches the response and a task worker "
      "answers it (the JSON's path and method, or the chunks; headers X-Answered-By, X-Handle, "
      "X-Again: a second claim of the handle; with `also=HANDLE` X-Also: what claiming that "
      "handle gave; `never=1`: the task never answers; `task_delay=MS`: it answers after MS).";
  struct options {};
  static config::schema<options> schema() { return {}; }
  explicit http_echo(options) {}

  static std::int64_t number(const http::request& req, std::string_view name, std::int64_t fallback) {
    auto s = req.query_param(name);
    if (!s || s->empty() || s->size() > 12) return fallback;
    std::int64_t v = 0;
    for (char c : *s) {
      if (c < '0' || c > '9') return fallback;
      v = v * 10 + (c - '0');
    }
    return v;
  }

  // A detached response (answer_from=task), answered from the task worker.
  task<std::string> on_task(context& ctx, task_id, int, std::string payload) override {
    using nlohmann::json;
    auto p = json::parse(payload, nullptr, false);
    if (p.is_discarded() || !p.contains("handle")) co_return "error: bad payload";
    if (p.value("never", false)) co_return "ok: left unanswered";
    // Answered later (tests: a reload in between).
    if (auto ms = p.value("task_delay", std::int64_t{0}); ms > 0)
      co_await sleep(std::chrono::milliseconds(std::min<std::int64_t>(ms, 60000)));
    std::string also;
    if (auto text = p.value("also", std::string()); !text.empty()) {
      auto other = http::response_handle::decode(text);
      if (!other) {
        also = "undecodable handle";
      } else {
        auto r = co_await ctx.http_response(*other);
        also = r ? "claimed" : r.error().message();
        if (r) (void)(*r)->status(500).end("claimed by another request's task\n");
      }
    }
    auto h = http::response_handle::decode(p.value("handle", std::string()));
    if (!h) co_return "error: undecodable handle";
    auto r = co_await ctx.http_response(*h);
    if (!r) co_return "error: " + r.error().message();
    auto& res = **r;
    auto again = co_await ctx.http_response(*h);
    res.set_header("X-Answered-By", ctx.role() + " " + std::to_string(ctx.worker_id()))
        .set_header("X-Handle", h->encode())
        .set_header("X-Again", again ? std::string("claimed twice") : again.error().message());
    if (!also.empty()) res.set_header("X-Also", also);
    if (auto n = p.value("chunks", std::int64_t{0}); n > 0) {
      std::string piece(static_cast<std::size_t>(std::clamp<std::int64_t>(p.value("size", std::int64_t{1024}), 1, 1 << 20)),
                        'x');
      res.set_header("Content-Type", "application/octet-stream");
      for (std::int64_t i = 0; i < n; ++i)
        if (auto ec = co_await res.write(piece)) co_return "error: " + ec.message();
      co_return res.end() ? "error: end" : "ok";
    }
    res.set_header("Content-Type", "application/json");
    json j = {{"path", p.value("path", std::string())}, {"method", p.value("method", std::string())}};
    auto ec = res.end(j.dump() + "\n");
    co_return ec ? "error: " + ec.message() : "ok";
  }

  // `now=1`: answered inline ("now inline"), or by on_request ("now queued") when the engine
  // cannot take the inline path (a body still arriving); `now=throw` throws inline;
  // `now=detach` detaches inline (which needs on_request: the engine answers 500);
  // `now=big&size=N` ends with N bytes of 'b' inline. Others go to on_request.
  bool on_request_now(context&, http::request& req, http::response& res) override {
    auto now = req.query_param("now");
    if (!now) return false;
    if (*now == "throw") throw std::runtime_error("now=throw asked");
    if (*now == "detach") {
      (void)res.detach();
      return true;
    }
    if (*now == "big") {  // a whole body of size=N bytes ('b') from end(), inline
      const auto n = static_cast<std::size_t>(std::clamp<std::int64_t>(number(req, "size", 1 << 20), 0, 256 << 20));
      (void)res.set_header("Content-Type", "application/octet-stream").end(std::string(n, 'b'));
      return true;
    }
    (void)res.set_header("Content-Type", "text/plain").end("now inline\n");
    return true;
  }

  task<void> on_request(context& ctx, http::request& req, http::response& res) override {
    if (req.query_param("now") == "1") {
      (void)res.set_header("Content-Type", "text/plain").end("now queued\n");
      co_return;
    }
    using nlohmann::json;
    if (auto f = req.query_param("fail")) {
      if (*f == "throw") throw std::runtime_error("http_echo: asked to fail");
      if (*f == "noend") co_return;
    }
    if (auto path = req.query_param("sendfile")) {
      auto length = number(req, "length", -1);
      auto ec = res.sendfile(*path, static_cast<std::uint64_t>(number(req, "offset", 0)),
                             length < 0 ? http::response::npos : static_cast<std::uint64_t>(length));
      if (ec) throw std::runtime_error("http_echo: sendfile: " + ec.message());
      co_return;
    }
    if (auto a = req.query_param("answer_from"); a && *a == "task") {
      auto h = res.detach();
      if (!h) throw std::runtime_error("http_echo: detach failed: " + h.error().message());
      json p = {{"handle", h->encode()},
                {"chunks", number(req, "chunks", 0)},
                {"size", number(req, "size", 1024)},
                {"path", req.path()},
                {"method", req.method()},
                {"also", std::string(req.query_param("also").value_or(""))},
                {"never", req.query_param("never").has_value()},
                {"task_delay", number(req, "task_delay", 0)}};
      if (auto t = ctx.task(p.dump()); !t) throw std::runtime_error("http_echo: task: " + t.error().message());
      co_return;
    }
    if (auto ms = number(req, "delay", 0); ms > 0) co_await sleep(std::chrono::milliseconds(std::min<std::int64_t>(ms, 60000)));
    // A route with stream_body: gather the pieces (counted, for tests of streaming).
    std::int64_t pieces = 0;
    std::uint64_t body_length = 0;
    std::string body_sha256;
    std::vector<std::string> digests;
    if (req.is_multipart()) {
      // Hashed as the parts arrive: the file is never read back nor held whole.
      upload_hasher hasher;
      if (auto ec = co_await req.read_form(&hasher)) {
        if (ec == server_errc::session_not_found) co_return;
        res.status(http::form_error_status(ec)).close();
        (void)res.end("multipart body refused: " + ec.message() + "\n");
        co_return;
      }
      digests = hasher.digests();
    } else if (req.body_streamed()) {
      std::unique_ptr<sha256_stream> hasher;
      if (auto d = req.query_param("digest"); d && *d == "sha256") hasher = std::make_unique<sha256_stream>();
      for (;;) {
        auto piece = co_await req.read_body();
        if (!piece) {
          // A compressed body the engine could not inflate: say so (the rest of the body is
          // not read, so the connection closes); otherwise the client went away.
          const bool big = piece.error() == server_errc::body_too_large;
          if (big || piece.error() == server_errc::bad_body_encoding)
            (void)res.status(big ? 413 : 400).close().end(piece.error().message() + "\n");
          co_return;
        }
        if (piece->empty()) break;
        ++pieces;
        body_length += piece->size();
        if (hasher)
          hasher->feed(*piece);
        else
          req.body().append(*piece);
      }
      if (hasher) body_sha256 = hasher->hex();
    }
    if (auto n = number(req, "chunks", 0); n > 0) {
      const auto size = static_cast<std::size_t>(std::clamp<std::int64_t>(number(req, "size", 1024), 1, 1 << 20));
      const bool numbered = number(req, "numbered", 0) != 0;
      std::string piece(size, 'x');
      res.set_header("Content-Type", std::string(req.query_param("type").value_or("application/octet-stream")));
      for (std::int64_t i = 0; i < n; ++i) {
        if (numbered) {
          piece.clear();
          auto tag = std::to_string(i) + " ";
          while (piece.size() < size) piece += tag;
          piece.resize(size);
        }
        if (auto ec = co_await res.write(piece)) co_return;  // the client left or stopped reading
      }
      if (auto t = req.query_param("trailer")) res.trailer("x-echo-trailer", std::string(*t));
      (void)res.end();
      co_return;
    }
    auto pairs = [](const auto& list) {
      json a = json::array();
      for (const auto& [k, v] : list) a.push_back(json::array({k, v}));
      return a;
    };
    auto fields = [](const http::header_list& l) {
      json a = json::array();
      for (const auto& h : l.items) a.push_back(json::array({h.name, h.value}));
      return a;
    };
    json j;
    j["method"] = req.method();
    j["target"] = req.target();
    j["path"] = req.path();
    j["query"] = std::string(req.query());
    j["query_params"] = pairs(req.query_params());
    j["version"] = std::string(req.version());
    j["host"] = req.host();
    j["headers"] = fields(req.headers());
    j["cookies"] = pairs(req.cookies());
    j["form"] = pairs(req.form());
    j["trailers"] = fields(req.trailers());
    j["body"] = req.body();
    j["body_base64"] = base64_encode(req.body());
    j["remote"] = req.remote_address();
    j["local"] = req.local_address();
    j["streamed_pieces"] = pieces;
    if (!body_sha256.empty()) {
      j["body_length"] = body_length;
      j["body_sha256"] = body_sha256;
    }
    j["files"] = json::array();
    for (std::size_t i = 0; i < req.files().size(); ++i) {
      const auto& f = req.files()[i];
      j["files"].push_back({{"name", f.name},
                            {"filename", f.filename},
                            {"content_type", f.content_type},
                            {"size", f.size},
                            {"sha256", i < digests.size() ? digests[i] : sha256_of(f)},
                            {"on_disk", !f.temp_path.empty()}});
    }
    if (auto i = ctx.info(req.session())) {
      j["worker"] = i->worker;
      j["protocol"] = i->protocol;
      if (i->tls)
        j["tls"] = {{"version", i->tls->version},           {"cipher", i->tls->cipher},
                    {"sni", i->tls->sni},                   {"alpn", i->tls->alpn},
                    {"peer_subject", i->tls->peer_subject}, {"peer_fingerprint", i->tls->peer_fingerprint},
                    {"resumed", i->tls->resumed}};
    }
    int status = 200;
    if (auto s = req.query_param("status")) {
      int v = 0;
      for (char c : *s) v = c >= '0' && c <= '9' ? v * 10 + (c - '0') : -1000;
      if (v >= 200 && v <= 599) status = v;
    }
    res.status(status).set_header("Content-Type", std::string(req.query_param("type").value_or("application/json")));
    if (auto t = req.query_param("trailer")) res.trailer("x-echo-trailer", std::string(*t));
    if (req.query_param("set_cookies")) {  // two cookies: each its own Set-Cookie field
      http::cookie a;
      a.name = "a";
      a.value = "1";
      a.path = "/";
      a.http_only = true;
      a.same_site = "Lax";
      http::cookie b;
      b.name = "b";
      b.value = "2";
      b.max_age = 60;
      b.secure = true;
      res.set_cookie(a).set_cookie(b);
    }
    (void)res.end(j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n");
    co_return;
  }
};

}  // namespace swactor::apps
