// The HTTP/1.1 server codec: llhttp (strict mode) parses, this file decides.
//
// How decoding stays exact about consumed bytes: llhttp callbacks never call the sink.
// A callback that has something to hand over (headers complete, a body piece to stream,
// message complete) records it and returns HPE_PAUSED; llhttp then reports where it stopped
// (llhttp_get_error_pos) and decode() emits from there. So when the sink says "stop",
// decode() returns exactly the bytes llhttp consumed up to that event. Head bytes that
// are not copied: the fields and the target are offsets from the start of the message,
// whose bytes stay in the connection's input until the head is complete (decode() does
// not count a partial head as consumed, and goes on parsing after what it saw, which the
// connection hands it again). A request with a body copies its head once, when the head
// is complete (the head then leaves the input); trailers and body bytes below
// body_chunk_size are copied as they come.
//
// Smuggling defences on top of llhttp 8.1 strict (which already refuses bare CR/LF,
// obs-fold, bad tokens, invalid Content-Length, CL with TE): duplicate Content-Length is
// refused even with equal values (RFC 9112 §6.3 allows merging them; a front end that picks
// the other copy is exactly the desync we avoid), any transfer coding but a single final
// `chunked` (501 for unknown codings, 400 for a misplaced/repeated chunked), Host missing
// (1.1), repeated or malformed, control bytes in values or targets, request-target forms
// that do not fit the method, CONNECT (no tunnels: 501), versions other than 1.0/1.1 (505).
#include <algorithm>
#include <array>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <llhttp.h>

#include <openssl/evp.h>

#include "http1_wire.hpp"
#include "swactor/protocols/http1.hpp"
#include "swactor/protocols/http2.hpp"
#include "swactor/protocols/field_lists.hpp"
#include "swactor/protocols/http_date.hpp"

namespace swactor::protocols::http1 {
namespace {

using wire::put_str;
using wire::put_u32;
using wire::put_u64;
using view_reader = wire::reader;

// A response_head in wire form, as views into the reply.
struct response_view {
  int status = 0;
  std::string_view reason;
  std::string_view fields;  // header_list wire form (already checked)
  std::int64_t content_length = -1;
  bool close = false;
  const header_list* list = nullptr;  // the fields in typed form instead (encode_object)
};

bool read_response(std::string_view& in, response_view& r) {
  view_reader rd{in};
  std::uint32_t status = 0, count = 0;
  std::uint64_t length = 0;
  std::uint8_t flag = 0;
  if (!rd.u32(status) || !rd.str(r.reason) || !rd.fields(r.fields, count) || !rd.u64(length) || !rd.u8(flag))
    return false;
  if (status < 100 || status > 999 || flag > 1) return false;
  r.status = static_cast<int>(status);
  r.content_length = static_cast<std::int64_t>(length);
  if (r.content_length < -1) return false;
  r.close = flag;
  in = rd.in;
  return true;
}

// Calls f(name, value) for each field of a checked header_list wire form.
template <typename F>
void for_each_field(std::string_view raw, F&& f) {
  view_reader rd{raw};
  std::uint32_t count = 0;
  rd.u32(count);
  std::string_view n, v;
  for (std::uint32_t i = 0; i < count && rd.str(n) && rd.str(v); ++i) f(n, v);
}

// -- character classes ----------------------------------------------------------------------

bool is_hex(unsigned char c) {
  return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

// uri-host [ ":" port ] (RFC 3986): a reg-name, IPv4 or an IP-literal in brackets. No
// userinfo: "user@host" is refused (RFC 9110 §4.2.4 deprecates it, and it fools loggers).
bool valid_authority(std::string_view a) {
  if (a.empty()) return false;
  std::size_t i = 0;
  if (a[0] == '[') {
    auto close = a.find(']');
    if (close == std::string_view::npos || close < 2) return false;
    for (std::size_t k = 1; k < close; ++k) {
      unsigned char c = a[k];
      if (!is_hex(c) && c != ':' && c != '.' && c != 'v' && c != 'V') return false;
    }
    i = close + 1;
  } else {
    for (; i < a.size() && a[i] != ':'; ++i) {
      unsigned char c = a[i];
      if (c == '%') {
        if (i + 2 >= a.size() || !is_hex(a[i + 1]) || !is_hex(a[i + 2])) return false;
        i += 2;
        continue;
      }
      bool ok = ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || (c >= '0' && c <= '9') ||
                std::strchr("-._~!$&'()*+,;=", c) != nullptr;
      if (!ok || c == 0) return false;
    }
    if (i == 0) return false;  // empty host
  }
  if (i == a.size()) return true;
  if (a[i] != ':' || a.size() - i - 1 > 5) return false;
  for (++i; i < a.size(); ++i)
    if (a[i] < '0' || a[i] > '9') return false;
  return true;
}

// The authority of an absolute-form target ("http://h:8080/x" -> "h:8080"), or npos-sized
// view when `t` is not in absolute form.
bool absolute_authority(std::string_view t, std::string_view& authority) {
  std::size_t i = 0;
  while (i < t.size() && (((t[i] | 0x20) >= 'a' && (t[i] | 0x20) <= 'z') ||
                          (i > 0 && ((t[i] >= '0' && t[i] <= '9') || t[i] == '+' ||
                                     t[i] == '-' || t[i] == '.'))))
    ++i;
  if (i == 0 || t.substr(i, 3) != "://") return false;
  auto rest = t.substr(i + 3);
  auto end = rest.find_first_of("/?#");
  authority = rest.substr(0, end);
  return true;
}

// The decimal digits of `v`, written into `buf` (kept by the caller).
std::string_view decimal(std::uint64_t v, char (&buf)[20]) noexcept {
  char* p = buf + sizeof buf;
  do {
    *--p = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v);
  return {p, static_cast<std::size_t>(buf + sizeof buf - p)};
}

void append_uint(std::string& out, std::uint64_t v) {
  char buf[20];
  out.append(decimal(v, buf));
}

void append_hex(std::string& out, std::uint64_t v) {
  char buf[16];
  char* p = buf + sizeof buf;
  do {
    *--p = "0123456789abcdef"[v & 15];
    v >>= 4;
  } while (v);
  out.append(p, static_cast<std::size_t>(buf + sizeof buf - p));
}

// Does a Connection value list the token `close`?
bool has_close_token(std::string_view v) {
  return any_list_item(v, [](std::string_view t) { return iequals(t, "close"); });
}

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

class server_codec final : public stream_codec {
 public:
  explicit server_codec(const options& o) : opts_(&o) {
    if (o.max_pipelined == 0 || o.body_chunk_size == 0 || o.max_header_size == 0) {
      // Zeros mean one: a copy of its own for such a codec (the listener's are never zero).
      auto& own = rare().own_opts;
      own = std::make_unique<options>(o);
      if (own->max_pipelined == 0) own->max_pipelined = 1;
      if (own->body_chunk_size == 0) own->body_chunk_size = 1;
      if (own->max_header_size == 0) own->max_header_size = 1;
      opts_ = own.get();
    }
    ring_size_ = opts_->max_pipelined;
    if (ring_size_ > kInlineRing) rare().ring_big = std::make_unique<pending[]>(ring_size_);
    llhttp_init(&parser_, HTTP_REQUEST, &settings());
    parser_.data = this;
  }

  std::string_view name() const noexcept override { return "http/1.1"; }

  std::size_t decode(std::string_view in, event_sink& sink) override;
  void encode(std::uint8_t kind, std::string_view data, std::string& wire) override;
  void encode_object(std::uint8_t kind, const reply_object& obj, std::string& wire) override;
  // Events go out between llhttp runs, never from inside one, and encode() only touches
  // the response side (the ring of pending requests, whose front is answered): a handler
  // may answer inline.
  bool encodes_while_decoding() const noexcept override { return true; }

  bool take_output(std::string& out) override {
    if (!rare_ || rare_->output.empty()) return false;
    if (out.empty()) out.swap(rare_->output);
    else out.append(rare_->output);
    rare_->output.clear();
    return true;
  }

  bool blocked() const noexcept override {
    if (done_) return false;
    return broken_ || closing_ || (phase_ == phase::idle && count_ >= opts_->max_pipelined);
  }
  bool done() const noexcept override { return done_; }
  std::uint32_t outstanding() const noexcept override { return count_; }
  bool mid_message() const noexcept override { return phase_ == phase::body && !broken_ && !done_; }
  // Body pieces (and an end) the sink refused wait here: the connection decodes again when
  // the sink resumes it, even when no byte comes any more (the client sent everything).
  bool holds_events() const noexcept override {
    return (kick_next_ || (rare_ && (rare_->off < rare_->deferred.size() || rare_->end))) && !broken_ && !done_;
  }
  std::unique_ptr<stream_codec> take_successor() override { return std::move(successor_); }

  deadline timeout() const noexcept override {
    if (done_ || broken_) return {};
    switch (phase_) {
      case phase::body: return {opts_->body_timeout_ms, epoch_};
      case phase::head: return {count_ ? 0 : opts_->header_timeout_ms, epoch_};
      case phase::idle:
        if (count_ || closing_) return {};
        return {requests_ ? opts_->keepalive_timeout_ms : opts_->header_timeout_ms, epoch_};
    }
    return {};
  }

  bool frame_file(std::uint64_t length, std::string& before, std::string& after) override {
    if (done_ || !resp_started_ || length == 0 || resp_mode_ == mode::none) return false;
    release_head(before);
    if (resp_mode_ == mode::chunked) {
      append_hex(before, length);
      before.append("\r\n");
      after.append("\r\n");
    }
    return true;
  }

  std::string_view expire(std::string& out) override;
  void abandon(std::string& out) override;

 private:
  enum class phase : std::uint8_t { idle, head, body };
  enum class action : std::uint8_t { none, headers, body, message };
  enum class mode : std::uint8_t { none, length, chunked, until_close };

  // What encode() needs to know about each request it still has to answer: one byte (every
  // idle keep-alive connection holds a ring of them).
  struct pending {
    std::uint8_t head : 1 = 0;        // HEAD: no body bytes in the response
    std::uint8_t minor : 1 = 1;       // HTTP/1.<minor>
    std::uint8_t keep_alive : 1 = 1;
    std::uint8_t expect : 1 = 0;      // 100-continue still possible
    std::uint8_t upgrade : 1 = 0;     // nothing is parsed after it; closes after its response
  };
  static pending make_pending(bool head, std::uint8_t minor, bool keep_alive, bool expect, bool upgrade) noexcept {
    pending p;
    p.head = head;
    p.minor = minor & 1;
    p.keep_alive = keep_alive;
    p.expect = expect;
    p.upgrade = upgrade;
    return p;
  }
  // The ring is inline up to this many (max_pipelined's default, 16), else on the heap.
  static constexpr std::uint32_t kInlineRing = 16;
  pending* ring() noexcept { return ring_size_ > kInlineRing ? rare_->ring_big.get() : ring_small_; }

  using field_ref = field_span;

  static const llhttp_settings_t& settings();

  // -- llhttp callbacks ---------------------------------------------------------------------
  int on_message_begin();
  int on_url(const char* at, std::size_t n);
  int on_header_field(const char* at, std::size_t n);
  int on_header_field_complete();
  int on_header_value(const char* at, std::size_t n);
  int on_header_value_complete();
  int on_headers_complete();
  int on_body(const char* at, std::size_t n);
  int on_chunk_header();
  int on_message_complete();
  int user_error(int status, const char* why) {
    own_error_ = true;  // llhttp reports errors of *_complete callbacks as its own codes
    rare().error_status = status;
    rare().error_why = why;
    return HPE_USER;
  }
  // Trailer bytes are copied: a hard bound on top of the counting.
  bool head_room(std::size_t n) const {
    return (rare_ ? rare_->head_buf.size() : 0) + n <= 2 * opts_->max_header_size + 64;
  }
  // Where the message's bytes are: the input of this decode(), or the copy of a head whose
  // message goes on after it (own_head).
  const char* head_data() const noexcept { return head_owned_ ? rare_->head_buf.data() : in_base_; }
  std::string_view body_so_far() const noexcept { return rare_ ? std::string_view(rare_->body_buf) : std::string_view(); }
  std::uint32_t offset_of(const char* at) const noexcept {
    return static_cast<std::uint32_t>(at - in_base_);
  }
  std::string_view target() const noexcept { return {head_data() + target_off_, target_len_}; }
  std::string_view field_name(const field_ref& f) const noexcept { return {head_data() + f.name_off, f.name_len}; }
  std::string_view field_value(const field_ref& f) const noexcept { return {head_data() + f.value_off, f.value_len}; }
  std::string_view authority() const noexcept {
    return authority_len_ ? std::string_view(head_data() + authority_off_, authority_len_) : std::string_view();
  }
  // llhttp matched one of its known methods exactly: its name is the method as received.
  std::string_view method_name() const noexcept {
    return llhttp_method_name(static_cast<llhttp_method_t>(parser_.method));
  }
  // The head (the first `n` bytes of the message) into rare().head_buf: the message goes on past
  // this decode(), and the input's bytes are consumed.
  void own_head(std::size_t n) {
    rare().head_buf.assign(in_base_, n);
    head_owned_ = true;
  }

  // -- decoding steps -----------------------------------------------------------------------
  bool handle_headers();
  bool handle_body(std::string_view piece);
  bool handle_message();
  bool h2c_upgrade();
  bool emit_request(bool complete);
  bool emit_body(std::string_view data);
  bool emit_end();
  bool flush_deferred();
  bool scan_head(const char* p, std::size_t n);
  void keep_tail(const char* p, const char* end) noexcept;
  bool may_parse() const noexcept {
    return !broken_ && !done_ && !closing_ && !stop_ &&
           !(phase_ == phase::idle && count_ >= opts_->max_pipelined);
  }
  void reject(int status, const char* why);
  void reject_llhttp(llhttp_errno_t err);

  // -- encoding -----------------------------------------------------------------------------
  void write_error(std::string& out, int status) const;
  void write_head(std::string& out, const response_view& r, bool streamed, std::size_t body);
  void write_whole(std::string& out, const response_view& r, std::string_view body);
  void finish_response(std::string& out);
  pending& front() { return ring()[ring_head_]; }
  void push(const pending& p) {
    ring()[(ring_head_ + count_) % ring_size_] = p;
    ++count_;
  }
  void pop_front() {
    ring_head_ = (ring_head_ + 1) % ring_size_;
    --count_;
    resp_started_ = false;
  }

  const options* opts_;  // the listener's (make_server_codec: they outlive the codec)
  llhttp_t parser_{};
  event_sink* sink_ = nullptr;

  // The request being parsed.
  phase phase_ = phase::idle;
  action action_ = action::none;
  bool head_waiting_ = false;  // a bodiless request's head, handled at its message's end
  bool kick_next_ = false;     // decode() stopped after a pause: llhttp has steps to take
  bool head_owned_ = false;
  bool in_name_ = false;
  bool field_open_ = false;  // a field name arrived and its value is not complete yet
  std::string_view body_piece_;  // set by on_body when it pauses
  const char* in_base_ = nullptr;  // the current message's first byte in decode()'s input
  std::uint32_t parsed_ = 0;  // bytes of a partial head already parsed, kept by the connection
  std::uint32_t target_off_ = 0, target_len_ = 0;
  std::vector<field_ref> fields_;
  std::uint32_t trailer_start_ = 0;  // fields_ index where trailer fields begin
  std::uint8_t cl_count_ = 0, te_count_ = 0, host_count_ = 0;  // never past 2: the second is refused
  std::uint32_t host_field_ = 0;
  bool expect_100_ = false;
  bool keep_alive_ = true, upgrade_ = false, chunked_ = false, expect_continue_ = false;
  bool conn_close_ = false;  // a Connection header lists `close`
  std::uint8_t minor_ = 1;
  std::int64_t content_length_ = -1;
  std::uint32_t authority_off_ = 0, authority_len_ = 0;  // from the message start, like fields
  std::uint32_t head_bytes_ = 0, trailer_bytes_ = 0;
  std::uint64_t body_total_ = 0;
  bool emitted_ = false;  // the request event of this message went out
  bool streaming_ = false;
  bool own_error_ = false;
  bool after_cr_ = false, after_lf_ = false;  // scan_head state across inputs
  // The end of the request line ("... HTTP/1.1\r"): llhttp 8.1 also takes ICE/ and RTSP/.
  char line_tail_[16];
  std::uint8_t tail_len_ = 0;
  bool line_done_ = false;

  // What few connections ever need, allocated on first use: an idle keep-alive connection
  // holds none of it.
  struct rare_state {
    std::string deferred;  // body bytes the sink refused so far, handed out from `off`
    std::size_t off = 0;
    bool end = false;      // an end event waits behind them
    std::string end_buf;   // the end event's trailers
    std::string output;    // the codec's own responses (errors, a 101)
    std::string head_buf;  // a head that outlives its input (own_head), then trailer fields
    std::string body_buf;  // body kept until it is complete or exceeds body_chunk_size
    std::string resp_head; // a response head held until its first body bytes (held_head_)
    std::unique_ptr<options> own_opts;    // options with zeros made ones (constructor)
    std::unique_ptr<pending[]> ring_big;  // the ring beyond kInlineRing requests
    int error_status = 400;               // user_error(): what a callback refused, and why
    const char* error_why = "bad request";
  };
  std::unique_ptr<rare_state> rare_;
  rare_state& rare() {
    if (!rare_) rare_ = std::make_unique<rare_state>();
    return *rare_;
  }
  void release_head(std::string& wire) {
    if (!held_head_) return;
    held_head_ = false;
    wire.append(rare_->resp_head);
    rare_->resp_head.clear();
    // A keep-alive connection that served a file goes back to holding no rare state.
    const auto& r = *rare_;
    if (r.deferred.empty() && r.off == 0 && !r.end && r.end_buf.empty() && r.output.empty() &&
        r.head_buf.empty() && r.body_buf.empty() && !r.own_opts && !r.ring_big && r.error_status == 400 &&
        !own_error_ && !head_owned_)
      rare_.reset();
  }


  // Requests emitted and not answered, oldest first.
  pending ring_small_[kInlineRing];
  std::uint32_t ring_size_ = 1;
  std::uint32_t ring_head_ = 0, count_ = 0;
  std::uint64_t requests_ = 0;  // request heads seen (max_requests_per_connection)
  bool resp_started_ = false;   // the oldest request's response has started (out::head)
  bool resp_close_ = false;
  // A head with a Content-Length waits for its body's first bytes (a piece, a file, the
  // end): one write, one segment, where the head alone would be a segment of its own (for a
  // file the connection corks the socket around both: nginx's tcp_nopush).
  bool held_head_ = false;
  mode resp_mode_ = mode::none;

  bool stop_ = false;      // the sink asked to stop (per decode call)
  bool closing_ = false;   // nothing more is parsed (close, upgrade, request limit)
  bool broken_ = false;    // a protocol error: nothing more is parsed
  bool done_ = false;
  std::unique_ptr<stream_codec> successor_;  // the WebSocket / HTTP/2 codec after a switch
  bool preface_checked_ = false;  // the first bytes were looked at for the HTTP/2 preface
  int held_status_ = 0;    // an error response waiting for earlier responses
  const char* held_why_ = nullptr;
  std::uint32_t epoch_ = 0;
};

server_codec& self(llhttp_t* p) { return *static_cast<server_codec*>(p->data); }

// llhttp wants plain functions: these forward to the codec in parser->data.
const llhttp_settings_t& server_codec::settings() {
  static const llhttp_settings_t s = [] {
    llhttp_settings_t t;
    llhttp_settings_init(&t);
    t.on_message_begin = [](llhttp_t* p) { return self(p).on_message_begin(); };
    t.on_url = [](llhttp_t* p, const char* at, std::size_t n) { return self(p).on_url(at, n); };
    t.on_header_field = [](llhttp_t* p, const char* at, std::size_t n) {
      return self(p).on_header_field(at, n);
    };
    t.on_header_field_complete = [](llhttp_t* p) { return self(p).on_header_field_complete(); };
    t.on_header_value = [](llhttp_t* p, const char* at, std::size_t n) {
      return self(p).on_header_value(at, n);
    };
    t.on_header_value_complete = [](llhttp_t* p) { return self(p).on_header_value_complete(); };
    t.on_headers_complete = [](llhttp_t* p) { return self(p).on_headers_complete(); };
    t.on_body = [](llhttp_t* p, const char* at, std::size_t n) { return self(p).on_body(at, n); };
    t.on_chunk_header = [](llhttp_t* p) { return self(p).on_chunk_header(); };
    t.on_message_complete = [](llhttp_t* p) { return self(p).on_message_complete(); };
    return t;
  }();
  return s;
}

int server_codec::on_message_begin() {
  phase_ = phase::head;
  ++epoch_;  // the header timeout runs from the first byte of the head
  target_off_ = target_len_ = 0;
  if (rare_) {
    rare_->head_buf.clear();
    rare_->body_buf.clear();
  }
  head_owned_ = false;
  fields_.clear();
  conn_close_ = false;
  trailer_start_ = 0;
  in_name_ = field_open_ = false;
  cl_count_ = te_count_ = host_count_ = 0;
  expect_100_ = chunked_ = false;
  authority_len_ = 0;
  trailer_bytes_ = 0;
  body_total_ = 0;
  emitted_ = streaming_ = false;
  head_waiting_ = false;
  return 0;
}

int server_codec::on_url(const char* at, std::size_t n) {
  if (n == 0) return 0;
  // Pieces of one target are adjacent: the message's bytes stay where they are.
  if (target_len_ == 0) target_off_ = offset_of(at);
  target_len_ += static_cast<std::uint32_t>(n);
  return 0;
}

int server_codec::on_header_field(const char* at, std::size_t n) {
  if (n == 0) return 0;
  if (phase_ == phase::body) {
    // A trailer field: copied (the body before it left the input).
    trailer_bytes_ += n;
    if (trailer_bytes_ > opts_->max_header_size || !head_room(n))
      return user_error(431, "trailer fields larger than max_header_size");
    if (!in_name_) {
      in_name_ = field_open_ = true;
      auto off = static_cast<std::uint32_t>(rare().head_buf.size());
      fields_.push_back({off, 0, off, 0});
    }
    rare().head_buf.append(at, n);
  } else if (!in_name_) {
    in_name_ = field_open_ = true;
    auto off = offset_of(at);
    fields_.push_back({off, 0, off, 0});
  }
  fields_.back().name_len += static_cast<std::uint32_t>(n);
  return 0;
}

int server_codec::on_header_field_complete() {
  in_name_ = false;
  // llhttp 8.1 lets an empty field name (": x") through.
  if (!field_open_) return user_error(400, "empty header field name");
  auto& f = fields_.back();
  // A trailer's value is appended to the head's copy; a head field's starts at its first piece.
  f.value_off = phase_ == phase::body ? static_cast<std::uint32_t>(rare().head_buf.size()) : f.name_off + f.name_len;
  std::size_t count = phase_ == phase::body ? fields_.size() - trailer_start_ : fields_.size();
  if (count > opts_->max_headers) return user_error(431, "more header fields than max_headers");
  return 0;
}

int server_codec::on_header_value(const char* at, std::size_t n) {
  if (n == 0) return 0;
  if (!field_open_) return user_error(400, "empty header field name");
  auto& f = fields_.back();
  if (phase_ == phase::body) {
    trailer_bytes_ += n;
    if (trailer_bytes_ > opts_->max_header_size || !head_room(n))
      return user_error(431, "trailer fields larger than max_header_size");
    rare().head_buf.append(at, n);
  } else if (f.value_len == 0) {
    f.value_off = offset_of(at);
  }
  f.value_len += static_cast<std::uint32_t>(n);
  return 0;
}

int server_codec::on_header_value_complete() {
  if (!field_open_) return user_error(400, "empty header field name");
  field_open_ = false;
  auto& f = fields_.back();
  // Surrounding whitespace is not part of the value (RFC 9112 §5).
  const char* base = head_data();
  while (f.value_len && is_ows(base[f.value_off])) ++f.value_off, --f.value_len;
  while (f.value_len && is_ows(base[f.value_off + f.value_len - 1])) --f.value_len;
  std::string_view name = field_name(f);
  std::string_view value = field_value(f);
  if (!valid_field_value(value)) return user_error(400, "control character in a header value");
  if (phase_ == phase::body) return 0;  // trailers carry no framing here

  switch (name.size()) {
    case 4:
      if (iequals(name, "host")) {
        if (++host_count_ > 1) return user_error(400, "more than one Host header");
        if (!valid_authority(value)) return user_error(400, "invalid Host header");
        host_field_ = static_cast<std::uint32_t>(fields_.size() - 1);
      }
      break;
    case 10:
      // llhttp 8.1 misses `close` followed by a tab; the token list is read here as well.
      if (iequals(name, "connection") && has_close_token(value)) conn_close_ = true;
      break;
    case 6:
      if (iequals(name, "expect")) {
        if (!iequals(value, "100-continue")) return user_error(417, "unsupported Expect value");
        expect_100_ = true;
      }
      break;
    case 14:
      if (iequals(name, "content-length")) {
        // Equal duplicates are refused too (RFC 9112 §6.3 lets a recipient merge them):
        // an intermediary that kept the other copy is the desync this prevents.
        if (++cl_count_ > 1) return user_error(400, "duplicate Content-Length");
        if (te_count_) return user_error(400, "Content-Length with Transfer-Encoding");
        if (value.empty() || value.size() > 19 ||
            !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; }))
          return user_error(400, "invalid Content-Length");
      }
      break;
    case 17:
      if (iequals(name, "transfer-encoding")) {
        if (cl_count_) return user_error(400, "Content-Length with Transfer-Encoding");
        // Each coding across all TE lines: only one `chunked`, and it must be the last.
        for (;;) {
          auto comma = value.find(',');
          auto coding = trim_ows(value.substr(0, comma));
          auto semi = coding.find(';');  // parameters belong to the coding before them
          auto token = trim_ows(coding.substr(0, semi));
          if (!is_token(token)) return user_error(400, "invalid Transfer-Encoding");
          if (te_count_ > 0 && chunked_)
            return user_error(400, "chunked is not the final transfer coding");
          ++te_count_;
          if (!iequals(token, "chunked"))
            return user_error(501, "transfer coding not implemented");
          if (semi != std::string_view::npos) return user_error(400, "invalid Transfer-Encoding");
          chunked_ = true;
          if (comma == std::string_view::npos) break;
          value.remove_prefix(comma + 1);
        }
      }
      break;
    default: break;
  }
  return 0;
}

int server_codec::on_headers_complete() {
  minor_ = parser_.http_minor;
  keep_alive_ = llhttp_should_keep_alive(&parser_) && !conn_close_;
  upgrade_ = parser_.upgrade;
  chunked_ = parser_.flags & F_CHUNKED;
  content_length_ = (parser_.flags & F_CONTENT_LENGTH)
                        ? static_cast<std::int64_t>(parser_.content_length)
                        : -1;
  trailer_start_ = fields_.size();
  // A request without a body (most GETs) completes right after its head: the head is
  // handled with the message, at one pause instead of two (each pause is another llhttp run).
  if (!upgrade_ && !chunked_ && content_length_ <= 0) {
    head_waiting_ = true;
    return 0;
  }
  action_ = action::headers;
  return HPE_PAUSED;
}

int server_codec::on_body(const char* at, std::size_t n) {
  if (n == 0) return 0;
  ++epoch_;  // body progress restarts the body timeout
  body_total_ += n;
  if (body_total_ > opts_->max_body_size) return user_error(413, "body larger than max_body_size");
  if (!streaming_ && body_so_far().size() + n <= opts_->body_chunk_size) {
    rare().body_buf.append(at, n);
    return 0;
  }
  body_piece_ = std::string_view(at, n);
  action_ = action::body;
  return HPE_PAUSED;
}

// A chunk announced larger than what max_body_size leaves is refused at its size line, as
// a Content-Length is at the head (not after that many bytes arrived).
int server_codec::on_chunk_header() {
  const std::uint64_t left = opts_->max_body_size > body_total_ ? opts_->max_body_size - body_total_ : 0;
  if (parser_.content_length > left) return user_error(413, "chunk larger than what max_body_size leaves");
  return 0;
}

int server_codec::on_message_complete() {
  action_ = action::message;
  return HPE_PAUSED;
}

// -- decode ---------------------------------------------------------------------------------

std::size_t server_codec::decode(std::string_view in, event_sink& sink) {
  if (broken_ || done_) return 0;
  if (!preface_checked_ && opts_->h2c) {
    if (opts_->h2c_only) {  // no HTTP/1 here: the HTTP/2 codec judges the preface
      successor_ = http2::make_server_codec(*opts_->h2c);
      done_ = true;
      return 0;
    }
    // h2c with prior knowledge (RFC 9113 §3.3): the connection starts with the client
    // preface. An HTTP/1 request never starts with "PRI * HTTP/2.0", so a prefix of it waits.
    const auto n = std::min(in.size(), http2::kPreface.size());
    if (in.substr(0, n) == http2::kPreface.substr(0, n)) {
      if (n < http2::kPreface.size()) return 0;
      successor_ = http2::make_server_codec(*opts_->h2c);
      done_ = true;
      return 0;
    }
    if (!in.empty()) preface_checked_ = true;
  }
  sink_ = &sink;
  stop_ = false;
  if (!flush_deferred()) {
    sink_ = nullptr;
    return 0;
  }
  static const char nothing = 0;
  std::size_t pos = 0, msg_start = 0;
  if (phase_ == phase::head && !head_owned_) {
    // The connection kept the partial head it was given last time: parsing goes on after it.
    if (parsed_ > in.size()) {
      reject(400, "request head bytes lost");
      sink_ = nullptr;
      return 0;
    }
    pos = parsed_;
  }
  // A resumed pause may have steps left that need no byte (the end of a body that ended
  // with the piece the sink stopped at): also when the last decode() stopped right there.
  bool kick = std::exchange(kick_next_, false);
  while (may_parse()) {
    const std::size_t avail = in.size() - pos;
    if (avail == 0 && !kick) break;
    kick = false;
    const bool in_head = phase_ != phase::body;
    if (phase_ == phase::idle) msg_start = pos;
    in_base_ = in.data() + msg_start;
    std::size_t len = avail;
    // Never run far past the head limit: a huge head is refused without reading it all.
    if (in_head) len = std::min(len, opts_->max_header_size + 1 - head_bytes_);
    const char* base = avail ? in.data() + pos : &nothing;
    auto err = llhttp_execute(&parser_, base, len);
    std::size_t used = len;
    if (err != HPE_OK) used = static_cast<std::size_t>(llhttp_get_error_pos(&parser_) - base);
    if (in_head) {
      head_bytes_ += used;
      if (!scan_head(base, used)) {
        reject(400, "bare CR or LF, or obs-fold, in the request head");
        break;
      }
      if (phase_ == phase::body) after_lf_ = after_cr_ = false;  // the head ended
    }
    pos += used;
    if (err == HPE_OK) {
      if (phase_ == phase::head && head_bytes_ > opts_->max_header_size)
        reject(431, "request head larger than max_header_size");
      continue;
    }
    if (err == HPE_PAUSED) {
      llhttp_resume(&parser_);
      kick = true;
      auto a = action_;
      action_ = action::none;
      bool go = true;
      if (a == action::headers) {
        own_head(pos - msg_start);  // the body (or what follows an upgrade) comes after it
        go = handle_headers();
      }
      else if (a == action::body) go = handle_body(body_piece_);
      else if (a == action::message) {
        go = !std::exchange(head_waiting_, false) || handle_headers();
        if (go) go = handle_message();
        // What llhttp has left after a kept-alive message (its reset for the next one)
        // needs no byte: it runs with the next request's bytes instead of in a run of its own.
        if (pos == in.size() && keep_alive_ && !upgrade_) kick = false;
      }
      if (!go) stop_ = true;
      continue;
    }
    if (err == HPE_PAUSED_UPGRADE) break;  // closing_ is set: the rest is not HTTP/1
    if (own_error_) reject(rare().error_status, rare().error_why);
    else reject_llhttp(err);
  }
  sink_ = nullptr;
  kick_next_ = kick && stop_ && !broken_ && !done_;
  if (broken_) return std::min(msg_start, pos);
  if (phase_ == phase::head && !head_owned_ && !done_) {
    // A partial head stays in the input (its fields point there): not consumed yet.
    parsed_ = pos - msg_start;
    return msg_start;
  }
  return pos;
}

// llhttp 8.1 takes a bare LF as a line end and unfolds obs-fold even in strict mode; RFC
// 9112 lets a server refuse both (§2.2, §5.2), and refusing is what keeps it in step with
// a front end that reads them differently. Every CR must start a CRLF, every LF end one,
// and no line of the head may start with whitespace.
bool server_codec::scan_head(const char* p, std::size_t n) {
  if (n == 0) return true;
  if (after_cr_ && p[0] != '\n') return false;
  if (after_lf_ && (p[0] == ' ' || p[0] == '\t')) return false;
  const char* end = p + n;
  const char* line = p;  // where the current line's bytes in this input start
  // An LF while the request line is not done: it ends that line (or an empty one before it).
  auto line_end = [&](const char* q) {
    keep_tail(line, q);
    if (tail_len_ <= 1) tail_len_ = 0;  // an empty line before the request
    else line_done_ = true;
    line = q + 1;
  };
#if defined(__SSE2__)
  // Sixteen bytes per step (SSE2 is part of x86-64), as bit masks of CR, LF and whitespace:
  // each LF must be right after a CR and each CR right before an LF (one at the input's end
  // waits for the next input), and no whitespace may follow an LF. The last step is the
  // input's last sixteen bytes with those already checked masked off; an input shorter than
  // that is read from a copy.
  const __m128i crs = _mm_set1_epi8('\r'), lfs = _mm_set1_epi8('\n');
  const __m128i sps = _mm_set1_epi8(' '), tabs = _mm_set1_epi8('\t');
  alignas(16) char small[16] = {};
  if (n < 16) std::memcpy(small, p, n);
  for (std::size_t i = 0; i < n; i += 16) {
    const std::size_t from = n < 16 ? 0 : std::min(i, n - 16);
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(n < 16 ? small : p + from));
    const auto cr = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, crs)));
    const auto lf = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, lfs)));
    const auto ws = static_cast<unsigned>(_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, sps), _mm_cmpeq_epi8(v, tabs))));
    const unsigned fresh = (n < 16 ? (1u << n) - 1 : 0xffffu) & (0xffffu << (i - from));
    const unsigned cr_before = from == 0 ? after_cr_ : p[from - 1] == '\r';
    const unsigned lf_before = from == 0 ? after_lf_ : p[from - 1] == '\n';
    if ((((cr << 1) | cr_before) ^ lf) & fresh) return false;  // a bare CR or LF
    if (((lf << 1) | lf_before) & ws & fresh) return false;     // obs-fold
    for (unsigned m = lf & fresh; m && !line_done_; m &= m - 1)
      line_end(p + from + static_cast<std::size_t>(__builtin_ctz(m)));
  }
#else
  for (const char* q = p; q < end; ++q) {
    if (*q == '\r') {
      if (q + 1 != end && q[1] != '\n') return false;
    } else if (*q == '\n') {
      if (q == p ? !after_cr_ : q[-1] != '\r') return false;
      if (q + 1 < end && (q[1] == ' ' || q[1] == '\t')) return false;
      if (!line_done_) line_end(q);
    }
  }
#endif
  after_cr_ = end[-1] == '\r';
  after_lf_ = end[-1] == '\n';
  if (!line_done_) keep_tail(line, end);
  return true;
}

// The last 16 bytes of the request line so far (its end is checked once the head is in).
void server_codec::keep_tail(const char* p, const char* end) noexcept {
  auto n = static_cast<std::size_t>(end - p);
  if (n >= sizeof line_tail_) {
    std::memcpy(line_tail_, end - sizeof line_tail_, sizeof line_tail_);
    tail_len_ = sizeof line_tail_;
    return;
  }
  if (tail_len_ + n > sizeof line_tail_) {
    const std::size_t drop = tail_len_ + n - sizeof line_tail_;
    std::memmove(line_tail_, line_tail_ + drop, tail_len_ - drop);
    tail_len_ = static_cast<std::uint8_t>(tail_len_ - drop);
  }
  std::memcpy(line_tail_ + tail_len_, p, n);
  tail_len_ = static_cast<std::uint8_t>(tail_len_ + n);
}

bool server_codec::handle_headers() {
  if (head_bytes_ > opts_->max_header_size) {
    reject(431, "request head larger than max_header_size");
    return false;
  }
  phase_ = phase::body;
  ++epoch_;
  if (parser_.http_major != 1 || minor_ > 1) {
    reject(505, "HTTP version not supported");
    return false;
  }
  const auto tail = std::string_view(line_tail_, tail_len_);
  if (tail.size() < 10 || tail[tail.size() - 10] != ' ' ||
      tail.substr(tail.size() - 9, 5) != "HTTP/") {
    reject(400, "not an HTTP request line");
    return false;
  }
  if (parser_.method == HTTP_CONNECT) {
    reject(501, "CONNECT is not supported (no tunnels)");
    return false;
  }
  const std::string_view target = this->target();
  bool authority_in_target = false;
  for (unsigned char c : target) {
    if (c <= 0x20 || c == 0x7f) {
      reject(400, "invalid request-target");
      return false;
    }
  }
  // Request-target forms (RFC 9112 §3.2): origin-form for everything, absolute-form too
  // (its authority wins over Host), asterisk-form for OPTIONS only, authority-form only
  // for CONNECT, which is refused above.
  if (target.empty() || target[0] != '/') {
    std::string_view authority;
    if (target == "*") {
      if (parser_.method != HTTP_OPTIONS) {
        reject(400, "asterisk-form target outside OPTIONS");
        return false;
      }
    } else if (absolute_authority(target, authority)) {
      if (!valid_authority(authority)) {
        reject(400, "invalid authority in absolute-form target");
        return false;
      }
      authority_in_target = true;
      authority_off_ = static_cast<std::size_t>(authority.data() - head_data());
      authority_len_ = authority.size();
    } else {
      reject(400, "invalid request-target form");
      return false;
    }
  }
  if (host_count_ == 0 && minor_ == 1) {
    reject(400, "missing Host header");
    return false;
  }
  if (!authority_in_target && host_count_) {
    const auto& f = fields_[host_field_];
    authority_off_ = f.value_off;
    authority_len_ = f.value_len;
  }
  if (content_length_ > 0 && static_cast<std::uint64_t>(content_length_) > opts_->max_body_size) {
    reject(413, "Content-Length above max_body_size");
    return false;
  }
  if (chunked_) content_length_ = -1;
  // 100-continue means something only with a body, and only from 1.1 clients (RFC 9110
  // §10.1.1: a 1.0 request's expectation is ignored).
  expect_continue_ = expect_100_ && minor_ == 1 && (chunked_ || content_length_ > 0);
  ++requests_;
  if (upgrade_ ||
      (opts_->max_requests_per_connection && requests_ >= opts_->max_requests_per_connection))
    keep_alive_ = false;
  // Stream from the head on when the body will not ride along anyway, or the client waits
  // for 100 Continue before it sends it.
  if (expect_continue_ ||
      (content_length_ > 0 && static_cast<std::uint64_t>(content_length_) > opts_->body_chunk_size)) {
    streaming_ = true;
    return emit_request(false);
  }
  return true;
}

bool server_codec::handle_body(std::string_view piece) {
  if (!emitted_) {
    // The buffered body outgrew body_chunk_size: the head goes, then what was buffered.
    streaming_ = true;
    if (!emit_request(false)) {
      auto& r = rare();
      r.deferred.append(r.body_buf);
      r.deferred.append(piece);
      r.body_buf.clear();
      return false;
    }
    bool ok = emit_body(body_so_far());
    if (!ok) {
      rare().deferred.append(piece);
      rare().body_buf.clear();
      return false;
    }
    if (rare_) rare_->body_buf.clear();
  }
  return emit_body(piece);
}

bool server_codec::handle_message() {
  // The connection state moves on before the event goes out: the sink may answer inline.
  phase_ = phase::idle;
  ++epoch_;
  head_bytes_ = 0;
  tail_len_ = 0;
  line_done_ = false;
  after_cr_ = after_lf_ = false;  // the head ended with its empty line
  if (!keep_alive_) closing_ = true;
  const bool trailers = fields_.size() > trailer_start_;
  // Whatever happens next (an error before the next head begins) is not this request's.
  const bool emitted = emitted_;
  emitted_ = false;
  if (!emitted && !trailers && upgrade_ && opts_->h2c && count_ == 0 && h2c_upgrade()) return false;
  if (!emitted && !trailers) {
    bool go = emit_request(true);
    emitted_ = false;
    return go;
  }
  auto& end_buf = rare().end_buf;
  end_buf.clear();
  put_u32(end_buf, static_cast<std::uint32_t>(fields_.size() - trailer_start_));
  for (std::size_t i = trailer_start_; i < fields_.size(); ++i) {
    const auto& f = fields_[i];
    put_str(end_buf, field_name(f));
    put_str(end_buf, field_value(f));
  }
  if (!emitted) {
    // Trailers only travel in an end event: head, body, end.
    bool go = emit_request(false);
    emitted_ = false;
    if (!go) {
      auto& r = rare();
      r.deferred.append(r.body_buf);
      r.end = true;
      return false;
    }
    if (!emit_body(body_so_far())) {
      rare().end = true;
      return false;
    }
  }
  return emit_end();
}

// `Upgrade: h2c` with one HTTP2-Settings (RFC 7540 §3.2): answer 101 and hand the request
// over to an HTTP/2 codec as stream 1. Only for a request whose body is complete here (it
// rode along); anything else stays HTTP/1.1 (the upgrade is optional for the server).
bool server_codec::h2c_upgrade() {
  std::string_view settings;
  bool h2c = false;
  int settings_count = 0;
  for (std::size_t i = 0; i < trailer_start_; ++i) {
    const auto& f = fields_[i];
    std::string_view n = field_name(f);
    std::string_view v = field_value(f);
    if (iequals(n, "upgrade")) {
      if (any_list_item(v, [](std::string_view t) { return iequals(t, "h2c"); })) h2c = true;
    } else if (iequals(n, "http2-settings")) {
      ++settings_count;
      settings = v;
    }
  }
  if (!h2c || settings_count != 1 || settings.size() > 4096) return false;
  // token68 in base64url without padding -> the SETTINGS payload.
  std::string b64(settings);
  for (auto& c : b64) {
    if (c == '-') c = '+';
    else if (c == '_') c = '/';
  }
  while (b64.size() % 4) b64.push_back('=');
  std::string raw(b64.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(raw.data()),
                          reinterpret_cast<const unsigned char*>(b64.data()), static_cast<int>(b64.size()));
  if (n < 0) return false;
  std::size_t pad = 0;
  for (auto it = b64.rbegin(); it != b64.rend() && *it == '='; ++it) ++pad;
  raw.resize(static_cast<std::size_t>(n) - std::min<std::size_t>(pad, static_cast<std::size_t>(n)));
  request_head r;
  r.method = method_name();
  r.target = target();
  r.authority = authority();
  for (std::size_t i = 0; i < trailer_start_; ++i) {
    const auto& f = fields_[i];
    std::string_view n = field_name(f);
    // Connection-specific fields end with HTTP/1.1 (RFC 9113 §8.2.2).
    if (iequals(n, "connection") || iequals(n, "upgrade") || iequals(n, "http2-settings") ||
        iequals(n, "keep-alive") || iequals(n, "transfer-encoding") || iequals(n, "host"))
      continue;
    r.headers.add(ascii_lowered(n), std::string(field_value(f)));
  }
  r.content_length = static_cast<std::int64_t>(body_so_far().size());
  r.body = body_so_far();
  auto next = http2::make_upgrade_codec(*opts_->h2c, raw, r, parser_.method == HTTP_HEAD);
  if (!next) return false;
  rare().output.append("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n");
  successor_ = std::move(next);
  done_ = true;
  return true;
}

bool server_codec::emit_request(bool complete) {
  request_parts p;
  p.method = method_name();
  p.target = target();
  p.authority = authority();
  p.version_minor = minor_;
  p.keep_alive = keep_alive_;
  p.expect_continue = expect_continue_;
  p.chunked = chunked_;
  p.complete = complete;
  p.content_length = content_length_;
  if (complete) p.body = body_so_far();
  p.field_base = head_data();
  p.fields = fields_.data();
  p.field_count = trailer_start_;
  emitted_ = true;
  push(make_pending(parser_.method == HTTP_HEAD, minor_, keep_alive_, expect_continue_, upgrade_));
  if (sink_->takes_objects()) return sink_->on_event({static_cast<std::uint8_t>(ev::request), {}, &p});
  // One encode buffer per thread, not per connection: the event is valid only during the
  // sink call, and an idle connection should not keep a request-sized buffer.
  thread_local std::string event_buf;
  event_buf.clear();
  p.encode_to(event_buf);
  return sink_->on_event({static_cast<std::uint8_t>(ev::request), event_buf});
}

// Body pieces of at most body_chunk_size; what the sink refuses waits in rare().deferred.
bool server_codec::emit_body(std::string_view data) {
  while (!data.empty()) {
    auto piece = data.substr(0, opts_->body_chunk_size);
    data.remove_prefix(piece.size());
    if (!sink_->on_event({static_cast<std::uint8_t>(ev::body), piece})) {
      rare().deferred.append(data);
      return false;
    }
  }
  return true;
}

bool server_codec::emit_end() {
  return sink_->on_event({static_cast<std::uint8_t>(ev::end), rare().end_buf});
}

bool server_codec::flush_deferred() {
  if (!rare_) return true;
  auto& r = *rare_;
  while (r.off < r.deferred.size()) {
    auto piece = std::string_view(r.deferred).substr(r.off, opts_->body_chunk_size);
    r.off += piece.size();
    if (!sink_->on_event({static_cast<std::uint8_t>(ev::body), piece})) return false;
  }
  r.deferred.clear();
  r.off = 0;
  if (r.end) {
    r.end = false;
    if (!emit_end()) return false;
  }
  return true;
}

void server_codec::reject(int status, const char* why) {
  broken_ = true;
  phase_ = phase::idle;
  if (emitted_) {
    // The request already went to the handler: the error answers it, unless its own
    // response has started (then there is nothing left to say but closing).
    emitted_ = false;
    bool started = count_ == 1 && resp_started_;
    --count_;
    if (started) {
      done_ = true;
      fail({status, error_category()}, why);
      return;
    }
  }
  if (count_ == 0) {
    write_error(rare().output, status);
    done_ = true;
    fail({status, error_category()}, why);
  } else {
    // Responses stay in order: this one goes after the last outstanding one.
    held_status_ = status;
    held_why_ = why;
  }
}

void server_codec::reject_llhttp(llhttp_errno_t err) {
  int status = 400;
  const char* why = llhttp_get_error_reason(&parser_);
  // 505 only for a well-formed version we do not speak (HTTP/2.0, HTTP/1.2); a malformed
  // request line (a bare CR after the version) is a plain 400.
  std::string_view reason = why ? why : "";
  if (err == HPE_INVALID_VERSION &&
      (reason.find("major version") != std::string_view::npos || reason.find("minor version") != std::string_view::npos ||
       reason.find("HTTP version") != std::string_view::npos))
    status = 505;
  // RFC 9110 §9.1: a method the server does not know is 501, not a client error.
  if (err == HPE_INVALID_METHOD) status = 501;
  reject(status, why ? why : llhttp_errno_name(err));
}

// -- encode ---------------------------------------------------------------------------------

namespace {

// "HTTP/1.1 200 OK\r\n" for every status from 100 to 599 with its standard phrase, built
// once: the status line is one copy instead of five pieces.
std::string_view standard_status_line(int status) noexcept {
  static const auto lines = [] {
    std::array<std::string, 500> t;
    for (int st = 100; st < 600; ++st)
      t[static_cast<std::size_t>(st - 100)] =
          "HTTP/1.1 " + std::to_string(st) + " " + std::string(reason_phrase(st)) + "\r\n";
    return t;
  }();
  return lines[static_cast<std::size_t>(status - 100)];
}

// "Server: NAME\r\nDate: DATE\r\n" (no Server line for an empty name), kept per thread and
// rebuilt when the second or the name changes; `server_part` is the Server line's length.
inline std::string_view server_and_date(std::string_view name, std::size_t& server_part,
                                        std::time_t* second = nullptr) {
  thread_local std::string block, last_name;
  thread_local std::size_t server_len = 0;
  thread_local char last_date[kHttpDateSize] = {};
  const auto date = http_date_now(second);
  if (name != last_name || std::memcmp(date.data(), last_date, kHttpDateSize) != 0 || block.empty()) {
    last_name.assign(name);
    std::memcpy(last_date, date.data(), kHttpDateSize);
    block.clear();
    if (!name.empty()) block.append("Server: ").append(name).append("\r\n");
    server_len = block.size();
    block.append("Date: ").append(date).append("\r\n");
  }
  server_part = server_len;
  return block;
}

}  // namespace

void server_codec::write_error(std::string& out, int status) const {
  auto reason = reason_phrase(status);
  out.append(standard_status_line(status));  // the codec's own statuses: 400 to 505
  std::size_t server_part = 0;
  out.append(server_and_date(opts_->server_name, server_part));
  out.append("Content-Type: text/plain\r\nContent-Length: ");
  append_uint(out, reason.size() + 1);
  out.append("\r\nConnection: close\r\n\r\n");
  out.append(reason);
  out.push_back('\n');
}

namespace {

// Writes into space reserved once: a head is a dozen short pieces, and a std::string append
// per piece costs more than the bytes.
struct head_writer {
  char* w;
  void put(std::string_view s) noexcept {
    std::memcpy(w, s.data(), s.size());
    w += s.size();
  }
  void put(char c) noexcept { *w++ = c; }
  void put_uint(std::uint64_t v) noexcept {
    char buf[20];
    put(decimal(v, buf));
  }
};

// The field lines of the last typed response written on this thread and what they said
// about framing: a server's responses mostly carry the same few fields (a content type, a
// cache policy), which are then copied instead of checked again name by name.
// With them, the whole head of the last whole response written from these fields, and
// what it depends on besides them: a head that would come out the same byte for byte
// (same status, length, connection handling, server name and second) is copied whole.
// The fields come typed (base mode) or in their wire form (a reply from a worker process);
// the memo holds one or the other.
struct field_memo {
  static constexpr std::size_t kMaxFields = 8, kMaxLines = 512;
  std::vector<header> src;
  std::string raw;
  std::string lines;
  bool typed = false, close = false, has_server = false, has_date = false, valid = false;

  struct head_key {
    int status = 0;
    std::int64_t length = -1;
    bool close = false, head = false;
    unsigned minor = 1;
    std::time_t second = -1;
    bool operator==(const head_key&) const = default;
  };
  std::string head, server;
  head_key key;
  std::uint8_t head_mode = 0;
  bool head_close = false, head_valid = false;

  bool matches(const response_view& r) const noexcept {
    if (!valid) return false;
    if (!r.list) return !typed && r.fields.size() == raw.size() && std::memcmp(r.fields.data(), raw.data(), raw.size()) == 0;
    const auto& items = r.list->items;
    if (!typed || items.size() != src.size()) return false;
    for (std::size_t i = 0; i < items.size(); ++i)
      if (items[i].name != src[i].name || items[i].value != src[i].value) return false;
    return true;
  }
  // Keeps the fields of `r`, written as `lines`, if they are few enough.
  [[gnu::noinline]] bool keep(const response_view& r, std::string_view written) {
    if (written.size() > kMaxLines) return false;
    if (r.list) {
      if (r.list->items.size() > kMaxFields) return false;
      src = r.list->items;
      typed = true;
    } else {
      if (r.fields.size() > 2 * kMaxLines) return false;
      raw.assign(r.fields);
      typed = false;
    }
    lines.assign(written);
    valid = true;
    head_valid = false;  // it was written from other fields
    return true;
  }
  static field_memo& local() {
    thread_local field_memo m;
    return m;
  }
};

}  // namespace

void server_codec::write_head(std::string& out, const response_view& r, bool streamed,
                              std::size_t body) {
  static const pending fallback;
  const pending& req = count_ ? front() : fallback;
  const int st = r.status;
  resp_mode_ = mode::none;
  const bool interim = st < 200;  // 1xx: no framing; 101 ends HTTP/1 on this connection
  // A whole response with typed fields and the standard reason: maybe the last head again.
  field_memo* memo = nullptr;
  bool same_fields = false;
  field_memo::head_key key;
  if (!streamed && !interim && r.reason.empty() && st < 600) {
    memo = &field_memo::local();
    same_fields = memo->matches(r);
    key.status = st;
    key.length = (st == 204 || st == 304) ? -1
                 : (req.head && body == 0 && r.content_length >= 0) ? r.content_length
                                                                    : static_cast<std::int64_t>(body);
    key.close = r.close || !req.keep_alive;
    key.head = req.head;
    key.minor = req.minor;
    (void)http_date_now(&key.second);
    if (same_fields && memo->head_valid && memo->key == key && memo->server == opts_->server_name) {
      out.append(memo->head);
      resp_mode_ = static_cast<mode>(memo->head_mode);
      resp_close_ = memo->head_close;
      return;
    }
  }
  const std::string_view reason =
      !r.reason.empty() && valid_field_value(r.reason) ? std::string_view(r.reason) : reason_phrase(st);
  // An upper bound: the serialized field list is longer than its "name: value\r\n" lines
  // (a 4-byte length before each name and value); the rest are the fixed lines.
  std::size_t fields_room = r.fields.size();
  if (r.list)
    for (const auto& f : r.list->items) fields_room += f.name.size() + f.value.size() + 4;
  const std::size_t at = out.size();
  out.resize(at + fields_room + reason.size() + opts_->server_name.size() + 176);
  head_writer h{out.data() + at};
  if (st < 600 && (r.reason.empty() || reason.data() != r.reason.data())) {
    h.put(standard_status_line(st));
  } else {
    h.put("HTTP/1.1 ");
    h.put_uint(static_cast<std::uint64_t>(st));
    h.put(' ');
    h.put(reason);
    h.put("\r\n");
  }
  bool close = r.close || !req.keep_alive;
  bool has_server = false, has_date = false, field_close = false;
  // The codec owns the framing: the handler's Content-Length / Transfer-Encoding go, and
  // so does its Connection header, whose `close` is honoured. Fields that could split the
  // head (a CR or LF in them) are dropped rather than sent.
  auto field = [&](std::string_view n, std::string_view v) {
    if (!is_token(n) || !valid_field_value(v)) return;
    if (!interim) {
      if (iequals(n, "content-length") || iequals(n, "transfer-encoding")) return;
      if (iequals(n, "connection")) {
        if (has_close_token(v)) field_close = true;
        return;
      }
    }
    if (iequals(n, "server")) has_server = true;
    else if (iequals(n, "date")) has_date = true;
    h.put(n);
    h.put(": ");
    h.put(v);
    h.put("\r\n");
  };
  // Whether the memo now holds this response's fields (its head may be kept with them).
  bool fields_kept = false;
  if (!interim) {
    auto& m = memo ? *memo : field_memo::local();
    if (memo ? same_fields : m.matches(r)) {
      h.put(m.lines);
      field_close = m.close;
      has_server = m.has_server;
      has_date = m.has_date;
      fields_kept = true;
    } else {
      const char* start = h.w;
      if (r.list)
        for (const auto& f : r.list->items) field(f.name, f.value);
      else
        for_each_field(r.fields, field);
      if (m.keep(r, std::string_view(start, static_cast<std::size_t>(h.w - start)))) {
        m.close = field_close;
        m.has_server = has_server;
        m.has_date = has_date;
        fields_kept = true;
      }
    }
  } else if (r.list) {
    for (const auto& f : r.list->items) field(f.name, f.value);
  } else {
    for_each_field(r.fields, field);
  }
  close = close || field_close;
  auto done = [&] {
    h.put("\r\n");
    out.resize(static_cast<std::size_t>(h.w - out.data()));
  };
  if (interim) {
    done();
    return;
  }
  // The codec dates what it sends (RFC 9110 §6.6.1), unless the handler did.
  if (!has_server || !has_date) {
    std::size_t server_part = 0;
    // The head is kept under the second its date names (the clock may have moved on since
    // the key was taken).
    auto lines = server_and_date(opts_->server_name, server_part, &key.second);
    if (has_server) lines.remove_prefix(server_part);
    else if (has_date) lines = lines.substr(0, server_part);
    h.put(lines);
  }
  const bool bodiless = st == 204 || st == 304;
  if (!bodiless) {
    std::int64_t length = -1;
    if (!streamed) length = (req.head && body == 0 && r.content_length >= 0)
                                ? r.content_length
                                : static_cast<std::int64_t>(body);
    else length = r.content_length;
    if (length >= 0) {
      h.put("Content-Length: ");
      h.put_uint(static_cast<std::uint64_t>(length));
      h.put("\r\n");
      resp_mode_ = mode::length;
    } else if (req.minor == 1) {
      if (!req.head) h.put("Transfer-Encoding: chunked\r\n");
      resp_mode_ = mode::chunked;
    } else {
      resp_mode_ = mode::until_close;  // a 1.0 client reads until the connection closes
      close = true;
    }
    if (req.head) resp_mode_ = mode::none;
  }
  if (close) h.put("Connection: close\r\n");
  else if (req.minor == 0) h.put("Connection: keep-alive\r\n");
  done();
  resp_close_ = close;
  if (memo && fields_kept) {
    memo->head.assign(out, at);
    memo->server = opts_->server_name;
    memo->key = key;
    memo->head_mode = static_cast<std::uint8_t>(resp_mode_);
    memo->head_close = close;
    memo->head_valid = true;
  }
}

void server_codec::finish_response(std::string& out) {
  const bool close = resp_close_ || (count_ && front().upgrade);
  if (count_) pop_front();
  resp_mode_ = mode::none;
  ++epoch_;
  if (close) {
    done_ = true;
    return;
  }
  if (held_status_ && count_ == 0) {
    write_error(out, held_status_);
    done_ = true;
    fail({held_status_, error_category()}, held_why_);
    held_status_ = 0;
  }
}

void server_codec::encode(std::uint8_t kind, std::string_view data, std::string& wire) {
  if (done_) return;  // the connection ends: nothing may follow the last response
  switch (static_cast<out>(kind)) {
    case out::raw: wire.append(data); return;
    case out::ws_accept: {
      // Only the oldest request, only an upgrade, only before any response to it.
      if (resp_started_ || !count_ || !front().upgrade || data.size() < 3 || !opts_->websocket) return;
      auto flags = static_cast<std::uint8_t>(data[0]);
      websocket::deflate_params with;
      with.server_no_context_takeover = (flags & 2) != 0;
      with.client_no_context_takeover = (flags & 4) != 0;
      with.server_max_window_bits = static_cast<std::uint8_t>(data[1]);
      with.client_max_window_bits = static_cast<std::uint8_t>(data[2]);
      wire.append(data.substr(3));
      pop_front();
      ++epoch_;
      successor_ = std::make_unique<websocket::codec>(opts_->websocket, (flags & 1) != 0, with);
      done_ = true;  // HTTP ends here; the successor reads what follows
      return;
    }
    case out::continue_100:
      if (count_ && front().expect && !resp_started_) {
        wire.append(kContinue);
        front().expect = false;
      }
      return;
    case out::whole: {
      response_view r;
      if (resp_started_ || !read_response(data, r)) return;
      write_whole(wire, r, data);
      return;
    }
    case out::head: {
      response_view r;
      if (resp_started_ || !read_response(data, r) || r.status < 200) return;
      const auto start = wire.size();
      write_head(wire, r, true, 0);
      resp_started_ = true;
      if (r.status == 101) resp_close_ = true;
      if (resp_mode_ == mode::length && r.content_length > 0) {
        rare().resp_head.assign(wire, start);
        wire.resize(start);
        held_head_ = true;
      }
      return;
    }
    case out::body:
      if (!resp_started_ || data.empty()) return;
      release_head(wire);
      if (resp_mode_ == mode::chunked) {
        append_hex(wire, data.size());
        wire.append("\r\n");
        wire.append(data);
        wire.append("\r\n");
      } else if (resp_mode_ != mode::none) {
        wire.append(data);
      }
      return;
    case out::end:
      if (!resp_started_) return;
      release_head(wire);
      if (resp_mode_ == mode::chunked) {
        wire.append("0\r\n");
        view_reader rd{data};
        std::string_view raw;
        std::uint32_t count = 0;
        if (rd.fields(raw, count)) {
          for_each_field(raw, [&](std::string_view n, std::string_view v) {
            if (!is_token(n) || !valid_field_value(v)) return;
            wire.append(n);
            wire.append(": ");
            wire.append(v);
            wire.append("\r\n");
          });
        }
        wire.append("\r\n");
      }
      finish_response(wire);
      return;
  }
}

void server_codec::write_whole(std::string& wire, const response_view& r, std::string_view body) {
  if (r.status < 200 && r.status != 101) {
    write_head(wire, r, false, 0);
    if (r.status == 100 && count_) front().expect = false;
    return;
  }
  write_head(wire, r, false, body.size());
  if (resp_mode_ != mode::none) wire.append(body);
  if (r.status == 101) resp_close_ = true;  // no tunnels yet: the connection ends here
  finish_response(wire);
}

void server_codec::encode_object(std::uint8_t kind, const reply_object& obj, std::string& wire) {
  if (static_cast<out>(kind) != out::whole || obj.what() != reply_object::form::http1_response)
    return stream_codec::encode_object(kind, obj, wire);
  if (done_) return;
  // The one typed reply of this codec: a whole response.
  const auto& rr = static_cast<const response_reply&>(obj);
  const auto& h = rr.head;
  // The checks read_response() makes on the wire form.
  if (resp_started_ || h.status < 100 || h.status > 999 || h.content_length < -1) return;
  response_view r;
  r.status = h.status;
  r.reason = h.reason;
  r.content_length = h.content_length;
  r.close = h.close;
  r.list = &h.headers;
  write_whole(wire, r, rr.body);
}

// -- timeouts and endings -------------------------------------------------------------------

std::string_view server_codec::expire(std::string& out) {
  if (done_) return "";
  if (phase_ == phase::idle || broken_) {
    done_ = true;
    return "";  // idle keep-alive: a quiet close
  }
  const bool head = phase_ == phase::head;
  // The 408 answers the request in progress; it can only go out when it is next in line.
  bool mine = count_ == 0 || (emitted_ && count_ == 1 && !resp_started_);
  if (mine) write_error(out, 408);
  done_ = true;
  return head ? "header timeout" : "body timeout";
}

void server_codec::abandon(std::string& out) {
  if (count_ == 0 || done_) return;
  if (held_head_) {
    // A head still held for its body's first bytes: nothing of this response went out, so
    // the client gets a 502 rather than a cut-off response.
    held_head_ = false;
    rare_->resp_head.clear();
    resp_started_ = false;
    resp_mode_ = mode::none;
  }
  if (count_ == 1 && !resp_started_ && phase_ == phase::idle && !front().upgrade && !held_status_) {
    // Only this request was lost, and it arrived whole: answer it like any response and
    // keep the connection (a client that was idle when its worker died keeps working).
    response_head h;
    h.status = 502;
    h.headers.add("Content-Type", "text/plain; charset=utf-8");
    encode_object(static_cast<std::uint8_t>(out::whole),
                  response_reply(h, "Bad Gateway: the worker handling this request went away\n"), out);
    return;
  }
  if (!resp_started_) write_error(out, 502);
  done_ = true;
}

}  // namespace

std::unique_ptr<stream_codec> make_server_codec(const options& opts) {
  return std::make_unique<server_codec>(opts);
}

}  // namespace swactor::protocols::http1
