// http, http_short: HTTP/1.1 requests, responses cut by llhttp (HTTP_RESPONSE, strict).
//   http:       persistent (keep-alive) connections; --pipeline K keeps K requests in flight.
//   http_short: one connection per request, sent with `Connection: close`; the latency
//               covers connect + exchange.
// Every request of a run is the same bytes (built once): HTTP replies do not echo, so there
// is nothing for (conn, seq) to tell apart. A response is whole after its Content-Length,
// its last chunk (and trailers), or - without either - the end of the connection;
// interim 1xx responses before it belong to the same reply; a response to HEAD has no body.
#include <llhttp.h>

#include <cctype>

#include "mode.hpp"

namespace swactor::bench {
namespace {

// -- cutting responses --------------------------------------------------------------------
// mode::reply_size() is const and sees the whole unconsumed buffer each time, so every call
// parses from the start with a parser on the stack: no per-connection state, and a small
// response (the common case) arrives in one read and is parsed once. A large body that
// comes in many reads is re-scanned per read (llhttp skips body bytes without callbacks).

struct cut_state {
  bool head = false;            // the request was HEAD: no body whatever the headers say
  bool complete = false;        // a final (non-1xx) response ended
  bool keep_alive = true;       // ... and the connection stays open after it
  int status = 0;               // of the final response
  std::string* body = nullptr;  // when set: the final response's body, de-chunked
};

int on_headers_complete(llhttp_t* p) {
  auto* c = static_cast<cut_state*>(p->data);
  if (p->status_code >= 200) c->status = p->status_code;
  if (c->body) c->body->clear();
  return c->head && p->status_code >= 200 ? 1 : 0;  // 1: this response has no body
}

int on_body(llhttp_t* p, const char* at, std::size_t n) {
  auto* c = static_cast<cut_state*>(p->data);
  if (c->body) c->body->append(at, n);
  return 0;
}

int on_message_complete(llhttp_t* p) {
  auto* c = static_cast<cut_state*>(p->data);
  // 1xx (but 101, which ends the exchange) is interim: the real response follows.
  if (p->status_code < 200 && p->status_code != 101) return 0;
  c->complete = true;
  c->keep_alive = llhttp_should_keep_alive(p) != 0;
  return HPE_PAUSED;  // stop right after this response: what follows is the next reply's
}

const llhttp_settings_t& parser_settings() {
  static const llhttp_settings_t s = [] {
    llhttp_settings_t out;
    llhttp_settings_init(&out);
    out.on_headers_complete = on_headers_complete;
    out.on_message_complete = on_message_complete;
    return out;
  }();
  return s;
}

const llhttp_settings_t& body_parser_settings() {
  static const llhttp_settings_t s = [] {
    llhttp_settings_t out = parser_settings();
    out.on_body = on_body;
    return out;
  }();
  return s;
}

struct parse_result {
  std::ptrdiff_t size = 0;  // > 0 whole, 0 more bytes needed, -1 malformed
  cut_state state;
};

parse_result parse(std::string_view in, bool head, bool at_close, std::string* body = nullptr) {
  parse_result r;
  r.state.head = head;
  r.state.body = body;
  llhttp_t p;
  llhttp_init(&p, HTTP_RESPONSE, body ? &body_parser_settings() : &parser_settings());
  p.data = &r.state;
  const auto err = llhttp_execute(&p, in.data(), in.size());
  if (err == HPE_PAUSED && r.state.complete) {
    r.size = llhttp_get_error_pos(&p) - in.data();
    return r;
  }
  if (err == HPE_PAUSED_UPGRADE) {  // 101 or CONNECT-like: whole after its head
    r.size = llhttp_get_error_pos(&p) - in.data();
    r.state.complete = true;
    return r;
  }
  if (err != HPE_OK) {
    r.size = -1;
    return r;
  }
  if (at_close && !in.empty()) {
    // A body without a length ends with the connection.
    const auto fin = llhttp_finish(&p);
    if ((fin == HPE_OK || fin == HPE_PAUSED) && r.state.complete) {
      r.size = static_cast<std::ptrdiff_t>(in.size());
      return r;
    }
    r.size = -1;
  }
  return r;
}

bool valid_token(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s)
    if (c <= ' ' || c >= 127 || std::string_view("\"(),/:;<=>?@[\\]{}").find(static_cast<char>(c)) !=
                                     std::string_view::npos)
      return false;
  return true;
}

bool has_ctl(std::string_view s) {
  for (unsigned char c : s)
    if ((c < ' ' && c != '\t') || c == 127) return true;
  return false;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// -- the mode -----------------------------------------------------------------------------

class http_mode final : public mode {
 public:
  http_mode(const settings& s, bool one_shot) : one_shot_(one_shot), cfg_(s.http) {
    head_ = cfg_.method == "HEAD";
    const std::string path = http_path(s);
    std::string host;
    if (s.server.kind == scheme::unix_stream)
      host = "localhost";
    else if (s.server.host.find(':') != std::string::npos)
      host = "[" + s.server.host + "]:" + std::to_string(s.server.port);
    else
      host = s.server.host + ":" + std::to_string(s.server.port);
    bool has_host = false, has_connection = false;
    for (const auto& h : cfg_.headers) {
      const auto name = lower(std::string_view(h).substr(0, h.find(':')));
      has_host |= name == "host";
      has_connection |= name == "connection";
    }
    request_ = cfg_.method + " " + path + " HTTP/1.1\r\n";
    if (!has_host) request_ += "Host: " + host + "\r\n";
    for (const auto& h : cfg_.headers) request_ += h + "\r\n";
    // http_short asks the server to close; an explicit --header Connection wins.
    if (one_shot_ && !has_connection) request_ += "Connection: close\r\n";
    if (cfg_.body) request_ += "Content-Length: " + std::to_string(cfg_.body->size()) + "\r\n";
    request_ += "\r\n";
    if (cfg_.body) request_ += *cfg_.body;
    path_ = path;
  }

  std::string_view name() const override { return one_shot_ ? "http_short" : "http"; }
  session pattern() const override { return one_shot_ ? session::one_shot : session::persistent; }
  bool accepts(const target& t) const override {
    return !t.redis && !t.websocket && !t.tls && !t.h2c && (t.kind == scheme::tcp || t.kind == scheme::unix_stream);
  }
  bool has_status() const override { return true; }

  std::string check(const settings& s) const override {
    if (one_shot_ && s.pipeline > 1) return "--pipeline needs a persistent mode, not http_short";
    if (!valid_token(cfg_.method)) return "--method '" + cfg_.method + "' is not an HTTP method token";
    if (path_.empty() || has_ctl(path_) || path_.find(' ') != std::string::npos)
      return "--path '" + path_ + "' is not a request target (no spaces or control characters)";
    for (const auto& h : cfg_.headers) {
      const auto colon = h.find(':');
      if (colon == std::string::npos || !valid_token(std::string_view(h).substr(0, colon)) ||
          has_ctl(std::string_view(h).substr(colon + 1)))
        return "--header '" + h + "' is not \"Name: value\"";
      const auto name = lower(std::string_view(h).substr(0, colon));
      if (name == "content-length" || name == "transfer-encoding")
        return "--header " + h.substr(0, colon) + ": set by --body";
    }
    if (s.http.verify_body && !s.verify) return "--verify-body needs --verify";
    return {};
  }

  void make_request(std::uint64_t, std::uint64_t, std::string& out) const override {
    out.assign(request_);
  }

  std::ptrdiff_t reply_size(std::string_view in, std::string_view request) const override {
    return cut_reply(in, request, false).size;
  }

  // One parse gives the size, the final status and whether the server keeps the connection.
  cut cut_reply(std::string_view in, std::string_view, bool at_close) const override {
    const auto r = parse(in, head_, at_close);
    return {r.size, r.size > 0 ? r.state.status : 0, r.size > 0 && (at_close || !r.state.keep_alive)};
  }

  // --verify: a 2xx status, and with --verify-body exactly that (de-chunked) body.
  bool matches(std::string_view, std::string_view reply) const override {
    std::string body;
    auto r = parse(reply, head_, true, cfg_.verify_body ? &body : nullptr);
    if (r.size <= 0 || !r.state.complete) return false;
    if (r.state.status < 200 || r.state.status > 299) return false;
    return !cfg_.verify_body || body == *cfg_.verify_body;
  }

 private:
  bool one_shot_;
  bool head_ = false;
  http_options cfg_;
  std::string path_;
  std::string request_;
};

}  // namespace

std::unique_ptr<mode> make_http_mode(const settings& s) {
  return std::make_unique<http_mode>(s, false);
}
std::unique_ptr<mode> make_http_short_mode(const settings& s) {
  return std::make_unique<http_mode>(s, true);
}

}  // namespace swactor::bench
