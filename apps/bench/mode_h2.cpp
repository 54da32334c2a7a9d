// The h2 mode: HTTP/2 requests on an nghttp2 client session, --pipeline (-m, --streams)
// streams in flight per connection, like h2load -c N -m M. h2c by prior knowledge for
// http:// and h2c:// targets, h2 over TLS with ALPN for https:// ones.

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>

#include "mode.hpp"
#include "swactor/protocols/ascii.hpp"
#include "swactor/protocols/field_lists.hpp"

namespace swactor::bench {

namespace {

using protocols::ascii_lowered;
using protocols::trim_ows;

// A stream's user data is its slot + 1: nghttp2 reports no user data as null.
void* user_data(std::size_t tag) { return reinterpret_cast<void*>(static_cast<std::uintptr_t>(tag) + 1); }
std::size_t tag_of(void* p) { return static_cast<std::size_t>(reinterpret_cast<std::uintptr_t>(p) - 1); }

// Windows as h2load's defaults (-w 30 -W 30): the client never throttles the server.
constexpr std::int32_t window = (1 << 30) - 1;

class h2_mode;

class h2_session final : public mux_session {
 public:
  h2_session(const h2_mode& m, std::size_t streams);
  ~h2_session() override { nghttp2_session_del(session_); }
  h2_session(const h2_session&) = delete;
  h2_session& operator=(const h2_session&) = delete;

  void submit(std::uint64_t seq, std::size_t tag) override;
  bool feed(std::string_view in) override;
  bool output(std::string& out) override;
  void take_done(std::vector<done>& out) override {
    out.insert(out.end(), done_.begin(), done_.end());
    done_.clear();
  }
  bool usable() const override {
    return why_.empty() && !goaway_ && nghttp2_session_want_read(session_) != 0;
  }
  std::string why() const override { return why_; }
  std::size_t peak_in_flight() const override { return peak_; }

 private:
  struct stream {
    int status = 0;
    std::size_t sent = 0;   // request body bytes handed to nghttp2
    std::string body;       // the response body, kept only for --verify-body
    bool active = false;
    bool on_wire = false;   // its HEADERS went out
  };

  static int on_header(nghttp2_session*, const nghttp2_frame*, const std::uint8_t*, std::size_t,
                       const std::uint8_t*, std::size_t, std::uint8_t, void*);
  static int on_data(nghttp2_session*, std::uint8_t, std::int32_t, const std::uint8_t*,
                     std::size_t, void*);
  static int on_close(nghttp2_session*, std::int32_t, std::uint32_t, void*);
  static int on_frame(nghttp2_session*, const nghttp2_frame*, void*);
  static int on_sent(nghttp2_session*, const nghttp2_frame*, void*);
  static ssize_t read_body(nghttp2_session*, std::int32_t, std::uint8_t*, std::size_t,
                           std::uint32_t*, nghttp2_data_source*, void*);

  const h2_mode& mode_;
  nghttp2_session* session_ = nullptr;
  std::vector<stream> slots_;  // by tag
  std::vector<done> done_;
  std::string why_;
  bool goaway_ = false;
  std::size_t open_ = 0, peak_ = 0;  // request HEADERS sent, stream not yet closed
};

class h2_mode final : public mode {
 public:
  explicit h2_mode(const settings& s)
      : cfg_(s.http), verify_(s.verify), tls_(s.server.tls), streams_(s.pipeline) {
    path_ = http_path(s);
    if (s.server.host.find(':') != std::string::npos)
      authority_ = "[" + s.server.host + "]:" + std::to_string(s.server.port);
    else
      authority_ = s.server.host + ":" + std::to_string(s.server.port);
    for (const auto& h : cfg_.headers) {
      const auto colon = h.find(':');
      if (colon == std::string::npos) continue;  // check() refuses it
      auto name = ascii_lowered(std::string_view(h).substr(0, colon));
      auto value = std::string(trim_ows(std::string_view(h).substr(colon + 1)));
      // HTTP/2 has no Host: a --header Host becomes :authority (RFC 9113 §8.3.1).
      if (name == "host")
        authority_ = value;
      else
        extra_.emplace_back(std::move(name), std::move(value));
    }
    if (cfg_.body) content_length_ = std::to_string(cfg_.body->size());
    add(":method", cfg_.method);
    add(":scheme", tls_ ? "https" : "http");
    add(":authority", authority_);
    add(":path", path_);
    for (const auto& [n, v] : extra_) add(n, v);
    if (cfg_.body) add("content-length", content_length_);
  }

  std::string_view name() const override { return "h2"; }
  bool accepts(const target& t) const override {
    return t.http && !t.redis && !t.websocket && t.kind == scheme::tcp;
  }
  bool has_status() const override { return true; }
  std::string_view alpn() const override { return "h2"; }
  bool multiplexed() const override { return true; }

  std::string check(const settings& s) const override {
    if (s.rate > 0) return "--rate is not supported by the h2 mode";
    if (cfg_.method.empty() || cfg_.method.find_first_of(" \t\r\n:") != std::string::npos)
      return "--method '" + cfg_.method + "' is not an HTTP method token";
    if (path_.empty() || path_.find_first_of(" \t\r\n") != std::string::npos)
      return "--path '" + path_ + "' is not a request target";
    for (const auto& h : cfg_.headers) {
      const auto colon = h.find(':');
      if (colon == 0 || colon == std::string::npos || h.find_first_of("\r\n") != std::string::npos)
        return "--header '" + h + "' is not \"Name: value\"";
      const auto name = ascii_lowered(std::string_view(h).substr(0, colon));
      if (name == "content-length" || name == "transfer-encoding")
        return "--header " + h.substr(0, colon) + ": set by --body";
      // Connection-specific fields are malformed in HTTP/2 (RFC 9113 §8.2.2).
      if (name == "connection" || name == "keep-alive" || name == "upgrade" ||
          name == "proxy-connection")
        return "--header " + h.substr(0, colon) + ": not allowed in HTTP/2";
    }
    if (s.http.verify_body && !s.verify) return "--verify-body needs --verify";
    return {};
  }

  std::unique_ptr<mux_session> open_mux(std::uint64_t) const override;
  // Never called: the runner drives open_mux() sessions.
  void make_request(std::uint64_t, std::uint64_t, std::string& out) const override { out.clear(); }
  std::ptrdiff_t reply_size(std::string_view, std::string_view) const override { return -1; }

  const std::vector<nghttp2_nv>& headers() const noexcept { return nva_; }
  const std::optional<std::string>& body() const noexcept { return cfg_.body; }
  bool keep_body() const noexcept { return verify_ && cfg_.verify_body.has_value(); }
  // --verify: a 2xx status and, with --verify-body, exactly that body.
  bool right(int status, const std::string& body) const {
    if (!verify_) return true;
    if (status < 200 || status > 299) return false;
    return !cfg_.verify_body || body == *cfg_.verify_body;
  }

 private:
  // `n` and `v` must outlive the mode (literals, members): nghttp2 does not copy them.
  void add(std::string_view n, std::string_view v) {
    nva_.push_back({reinterpret_cast<std::uint8_t*>(const_cast<char*>(n.data())),
                    reinterpret_cast<std::uint8_t*>(const_cast<char*>(v.data())), n.size(), v.size(),
                    NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE});
  }

  http_options cfg_;
  bool verify_;
  bool tls_;
  std::size_t streams_;
  std::string path_, authority_, content_length_;
  std::vector<std::pair<std::string, std::string>> extra_;
  std::vector<nghttp2_nv> nva_;
};

// nghttp2 callbacks: one set for every session (immutable after creation).
struct callbacks {
  nghttp2_session_callbacks* cbs = nullptr;
  callbacks(nghttp2_on_header_callback header, nghttp2_on_data_chunk_recv_callback data,
            nghttp2_on_stream_close_callback close, nghttp2_on_frame_recv_callback frame,
            nghttp2_on_frame_send_callback sent) {
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(cbs, header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, frame);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, sent);
  }
  ~callbacks() { nghttp2_session_callbacks_del(cbs); }
};

h2_session::h2_session(const h2_mode& m, std::size_t streams) : mode_(m), slots_(streams) {
  static const callbacks cb(&h2_session::on_header, &h2_session::on_data, &h2_session::on_close,
                            &h2_session::on_frame, &h2_session::on_sent);
  if (nghttp2_session_client_new(&session_, cb.cbs, this) != 0) {
    session_ = nullptr;
    throw std::bad_alloc();
  }
  const nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<std::uint32_t>(window)},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, iv, std::size(iv));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, window);
}

void h2_session::submit(std::uint64_t, std::size_t tag) {
  auto& s = slots_[tag];
  s = stream{};
  s.active = true;
  nghttp2_data_provider body{};
  body.source.ptr = &s;
  body.read_callback = &h2_session::read_body;
  const auto& nva = mode_.headers();
  const auto id = nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(),
                                         mode_.body() ? &body : nullptr,
                                         user_data(tag));
  if (id < 0) {
    s.active = false;
    done_.push_back({tag, 0, error_kind::other});
    if (why_.empty()) why_ = nghttp2_strerror(id);
  }
}

bool h2_session::feed(std::string_view in) {
  const auto n = nghttp2_session_mem_recv(session_, reinterpret_cast<const std::uint8_t*>(in.data()),
                                          in.size());
  if (n < 0) {
    why_ = std::string("HTTP/2: ") + nghttp2_strerror(static_cast<int>(n));
    return false;
  }
  return true;
}

bool h2_session::output(std::string& out) {
  for (;;) {
    const std::uint8_t* data = nullptr;
    const auto n = nghttp2_session_mem_send(session_, &data);
    if (n < 0) {
      why_ = std::string("HTTP/2: ") + nghttp2_strerror(static_cast<int>(n));
      return false;
    }
    if (n == 0) return true;
    out.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
  }
}

int h2_session::on_header(nghttp2_session* session, const nghttp2_frame* frame,
                          const std::uint8_t* name, std::size_t namelen, const std::uint8_t* value,
                          std::size_t valuelen, std::uint8_t, void* user) {
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  auto* self = static_cast<h2_session*>(user);
  auto* p = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
  if (!p) return 0;
  auto& s = self->slots_[tag_of(p)];
  if (namelen == 7 && std::memcmp(name, ":status", 7) == 0) {
    int v = 0;
    for (std::size_t i = 0; i < valuelen; ++i) v = v * 10 + (value[i] - '0');
    // An interim 1xx is followed by the final status.
    if (v >= 200 || s.status == 0) s.status = v;
  }
  return 0;
}

int h2_session::on_data(nghttp2_session* session, std::uint8_t, std::int32_t id,
                        const std::uint8_t* data, std::size_t len, void* user) {
  auto* self = static_cast<h2_session*>(user);
  if (!self->mode_.keep_body()) return 0;
  auto* p = nghttp2_session_get_stream_user_data(session, id);
  if (p) self->slots_[tag_of(p)].body.append(reinterpret_cast<const char*>(data), len);
  return 0;
}

int h2_session::on_close(nghttp2_session* session, std::int32_t id, std::uint32_t code, void* user) {
  auto* self = static_cast<h2_session*>(user);
  auto* p = nghttp2_session_get_stream_user_data(session, id);
  if (!p) return 0;
  const auto tag = tag_of(p);
  auto& s = self->slots_[tag];
  if (!s.active) return 0;
  s.active = false;
  if (s.on_wire) --self->open_;
  done d{tag, s.status, std::nullopt};
  if (code != NGHTTP2_NO_ERROR)
    d.error = error_kind::reset;  // RST_STREAM (REFUSED_STREAM included) or GOAWAY
  else if (s.status < 200)
    d.error = error_kind::mismatch;  // closed without a final response
  else if (!self->mode_.right(s.status, s.body))
    d.error = error_kind::mismatch;
  self->done_.push_back(d);
  s.body.clear();
  return 0;
}

int h2_session::on_frame(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  if (frame->hd.type == NGHTTP2_GOAWAY) static_cast<h2_session*>(user)->goaway_ = true;
  return 0;
}

int h2_session::on_sent(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  auto* self = static_cast<h2_session*>(user);
  auto* p = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
  if (!p) return 0;
  auto& s = self->slots_[tag_of(p)];
  if (!s.active || s.on_wire) return 0;
  s.on_wire = true;
  self->peak_ = std::max(self->peak_, ++self->open_);
  return 0;
}

ssize_t h2_session::read_body(nghttp2_session* session, std::int32_t id, std::uint8_t* buf,
                              std::size_t len, std::uint32_t* flags, nghttp2_data_source* src,
                              void* user) {
  (void)session;
  (void)id;
  auto* self = static_cast<h2_session*>(user);
  auto& s = *static_cast<stream*>(src->ptr);
  const auto& body = *self->mode_.body();
  const auto n = std::min(len, body.size() - s.sent);
  std::memcpy(buf, body.data() + s.sent, n);
  s.sent += n;
  if (s.sent == body.size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
  return static_cast<ssize_t>(n);
}

std::unique_ptr<mux_session> h2_mode::open_mux(std::uint64_t) const {
  return std::make_unique<h2_session>(*this, streams_);
}

}  // namespace

std::unique_ptr<mode> make_h2_mode(const settings& s) { return std::make_unique<h2_mode>(s); }

}  // namespace swactor::bench
