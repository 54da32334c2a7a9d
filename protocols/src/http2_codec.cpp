// The HTTP/2 server codec: an nghttp2 server session driven sans-I/O.
//
// nghttp2 does the protocol (frames, HPACK, stream states, flow control, SETTINGS, PING);
// this file keeps per-stream request/response state and translates. Decoding feeds
// mem_recv in small slices: nghttp2 consumes every byte it is given, so when the sink says
// "stop" the events that the slice still produced wait in backlog_ (holds_events()) and the
// rest of the input stays unconsumed with the connection. Replies are submitted to nghttp2
// and come out of take_output() (mem_send) as frames; a streamed body waits in its stream
// (held()) while the peer's window is closed: the data provider returns DEFERRED and is
// resumed when more body arrives, nghttp2 resumes it itself on WINDOW_UPDATE. Request bodies
// are acknowledged (WINDOW_UPDATE) as the handler takes them: consumed() (http2.hpp).
#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <unordered_map>
#include <typeinfo>
#include <vector>

#include "http1_wire.hpp"
#include "swactor/protocols/field_lists.hpp"
#include "swactor/protocols/http2.hpp"
#include "swactor/protocols/http_date.hpp"
#include "swactor/protocols/http2_streams.hpp"

namespace swactor::protocols::http2 {

void put_stream(std::string& out, std::uint32_t stream) { http1::wire::put_u32(out, stream); }

bool take_stream(std::string_view& in, std::uint32_t& stream) {
  http1::wire::reader rd{in};
  if (!rd.u32(stream)) return false;
  in = rd.in;
  return true;
}

namespace {

namespace h1 = protocols::http1;

// Bytes handed to nghttp2 per mem_recv call: bounds what one call can produce while the
// sink refuses more (a slice of tiny HEADERS frames is a bounded number of requests).
constexpr std::size_t kSlice = 4096;

// nghttp2's memory: a stream, its frames' queue items, copied header blocks and received
// header buffers are allocated and freed for every request (five to six blocks). With ten
// streams in flight per read, glibc's per-thread cache (seven blocks per size) overflows
// and most of them take malloc's slow path. These free lists, one set per thread (a codec
// lives on its connection's loop; a block freed on another thread just joins that thread's
// lists), keep up to 32 KiB of blocks per size class; larger blocks go to malloc as they
// are. A block carries its class in a 16-byte header (malloc's alignment is kept). The
// lists are plain data (no destructor to order against a codec freed late at exit); a
// reaper, made when the thread first allocates a block of a cached size, frees them when the
// thread ends. Until it exists, and after it ran, the counts read full: nothing is cached
// then, and alloc() and release() need no test of their own for it. Under
// AddressSanitizer (the fuzz build) nothing is cached, so a use after free is still caught.
namespace pool {
#if defined(__SANITIZE_ADDRESS__)
constexpr std::size_t kCachedBytes = 0;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr std::size_t kCachedBytes = 0;
#else
constexpr std::size_t kCachedBytes = 32 * 1024;
#endif
#else
constexpr std::size_t kCachedBytes = 32 * 1024;
#endif
constexpr std::size_t kHeader = 16;
constexpr unsigned kClasses = 7;  // blocks of 64 << c bytes, header included: 64 .. 4096
constexpr unsigned kLarge = kClasses;

struct free_block {
  free_block* next;
};
constexpr std::uint32_t kFull = UINT32_MAX;  // a count that takes nothing more
struct lists {
  free_block* head[kClasses];
  std::uint32_t count[kClasses];
  bool reaper_armed;  // this thread's reaper exists (made with its first cacheable block)
};
constexpr lists initial_lists() {
  lists l{};
  for (auto& n : l.count) n = kFull;
  return l;
}
thread_local constinit lists tl = initial_lists();

// Frees this thread's cached blocks when the thread ends (or the process exits, for the
// main thread), so a leak checker sees none; a block released after that goes to free().
// A separate object, made on first use, so that `tl` stays trivial and every alloc and
// release reaches it without a thread_local initialisation check.
struct reaper {
  ~reaper() {
    for (unsigned c = 0; c < kClasses; ++c) {
      while (auto* f = tl.head[c]) {
        tl.head[c] = f->next;
        std::free(f);
      }
      tl.count[c] = kFull;  // a block released after this (the thread is ending) goes to free()
    }
  }
};
[[gnu::noinline, gnu::cold]] void arm_reaper() {
  thread_local reaper r;
  (void)r;
  tl.reaper_armed = true;
  for (auto& n : tl.count) n = 0;  // caching starts
}

constexpr std::size_t block_size(unsigned c) noexcept { return std::size_t{64} << c; }
// Blocks a class keeps cached.
constexpr std::uint32_t kept(unsigned c) noexcept { return static_cast<std::uint32_t>(kCachedBytes >> (6 + c)); }

unsigned class_of(std::size_t total) noexcept {
  // Nothing cached (AddressSanitizer): every block its exact size, so an overflow into a
  // class's slack is caught too.
  if (kCachedBytes == 0 || total > block_size(kClasses - 1)) return kLarge;
  // The smallest c with 64 << c >= total: the bit length of (total - 1) / 64.
  return static_cast<unsigned>(std::bit_width((total - 1) >> 6));
}

struct header {
  std::uint64_t cls;
  std::uint64_t size;  // what was asked for (realloc copies that much)
};

void* alloc(std::size_t n, void*) {
  if (n > SIZE_MAX - kHeader) return nullptr;
  const unsigned c = class_of(n + kHeader);
  void* b = nullptr;
  if (c != kLarge && tl.head[c]) {
    auto* f = tl.head[c];
    tl.head[c] = f->next;
    --tl.count[c];
    b = f;
  } else {
    // A block that may be cached later: this thread's reaper first (here, off the steady
    // state's path, where every block comes from the lists; not again once it ran).
    if (c != kLarge && !tl.reaper_armed) [[unlikely]]
      arm_reaper();
    b = std::malloc(c == kLarge ? n + kHeader : block_size(c));
    if (!b) return nullptr;
  }
  const header h{c, n};
  std::memcpy(b, &h, sizeof h);
  return static_cast<char*>(b) + kHeader;
}

void release(void* p, void*) {
  if (!p) return;
  void* b = static_cast<char*>(p) - kHeader;
  header h;
  std::memcpy(&h, b, sizeof h);
  const auto c = static_cast<unsigned>(h.cls);
  if (c != kLarge && tl.count[c] < kept(c)) {
    auto* f = static_cast<free_block*>(b);
    f->next = tl.head[c];
    tl.head[c] = f;
    ++tl.count[c];
    return;
  }
  std::free(b);
}

void* zeroed(std::size_t count, std::size_t size, void* ud) {
  if (size != 0 && count > SIZE_MAX / size) return nullptr;
  void* p = alloc(count * size, ud);
  if (p) std::memset(p, 0, count * size);
  return p;
}

void* resize(void* p, std::size_t n, void* ud) {
  if (!p) return alloc(n, ud);
  if (n == 0) {
    release(p, ud);
    return nullptr;
  }
  if (n > SIZE_MAX - kHeader) return nullptr;
  header h;
  std::memcpy(&h, static_cast<char*>(p) - kHeader, sizeof h);
  if (h.cls != kLarge && n + kHeader <= block_size(static_cast<unsigned>(h.cls))) {
    h.size = n;
    std::memcpy(static_cast<char*>(p) - kHeader, &h, sizeof h);
    return p;
  }
  void* q = alloc(n, ud);
  if (!q) return nullptr;
  std::memcpy(q, p, std::min<std::size_t>(h.size, n));
  release(p, ud);
  return q;
}

nghttp2_mem mem{nullptr, &alloc, &release, &zeroed, &resize};
}  // namespace pool

// A name or value against a literal: a length test and a memcmp of known size, which the
// compiler inlines (string_view's == calls compare() out of line).
template <std::size_t N>
bool same(std::string_view s, const char (&lit)[N]) noexcept {
  return s.size() == N - 1 && std::memcmp(s.data(), lit, N - 1) == 0;  // inlined: known size
}

bool connection_specific(std::string_view n) {
  return same(n, "connection") || same(n, "keep-alive") || same(n, "proxy-connection") ||
         same(n, "transfer-encoding") || same(n, "upgrade") || same(n, "te");
}


// Per byte of a response field's name: a capital (lowered before it goes out), or a byte
// no name may hold (controls, space, DEL and above, ':').
constexpr unsigned kNameUpper = 1, kNameInvalid = 2;
constexpr auto kNameBytes = [] {
  std::array<std::uint8_t, 256> t{};
  for (unsigned c = 0; c < 256; ++c)
    t[c] = static_cast<std::uint8_t>(c <= 0x20 || c >= 0x7f || c == ':' ? kNameInvalid
                                     : c >= 'A' && c <= 'Z'             ? kNameUpper
                                                                        : 0);
  return t;
}();

// A response field's name, 8 bytes at a time: kNameInvalid if a byte may not be in a name,
// kNameUpper if one is a capital (the tail through kNameBytes).
unsigned scan_name(std::string_view n) noexcept {
  if (n.size() < 8) {  // short: byte by byte
    unsigned seen = 0;
    for (unsigned char c : n) seen |= kNameBytes[c];
    return seen;
  }
  constexpr std::uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
  std::uint64_t bad = 0, up = 0;
  auto word = [&](const char* at) {
    std::uint64_t x;
    std::memcpy(&x, at, 8);
    bad |= x & highs;                         // DEL and above (0x80..)
    const std::uint64_t y = x & ~highs;       // each byte < 0x80 now: no carries below
    bad |= (y - ones * 0x21) & ~y & highs;    // a byte below 0x21 (controls, space)
    const std::uint64_t del = y ^ (ones * 0x7f), colon = y ^ (ones * 0x3a);
    bad |= ((del - ones) & ~del & highs) | ((colon - ones) & ~colon & highs);
    up |= (y + ones * 0x3f) & ~(y + ones * 0x25) & highs;  // 0x41 <= byte < 0x5b
  };
  std::size_t i = 0;
  for (; i + 8 <= n.size(); i += 8) word(n.data() + i);
  if (i < n.size()) word(n.data() + n.size() - 8);  // the tail, overlapping the last word
  return (bad ? kNameInvalid : 0) | (up ? kNameUpper : 0);
}

// A field name: not empty, and no byte a name may not hold.
bool valid_name(std::string_view s) noexcept { return !s.empty() && !(scan_name(s) & kNameInvalid); }

nghttp2_nv make_nv(std::string_view n, std::string_view v) {
  return {reinterpret_cast<std::uint8_t*>(const_cast<char*>(n.data())),
          reinterpret_cast<std::uint8_t*>(const_cast<char*>(v.data())), n.size(), v.size(),
          NGHTTP2_NV_FLAG_NONE};
}

struct stream {
  std::int32_t id = 0;
  h1::request_head req;
  std::vector<std::string> cookies;  // h2 splits Cookie; HTTP/1 semantics join them (RFC 9113 §8.2.3)
  // The regular fields as they arrived, already in the request event's wire form (name and
  // value, each u32-size-prefixed): no header_list to build and encode again per request.
  std::string fields;
  std::vector<h1::field_span> spans;  // where each field of `fields` is (the typed event's view)
  h1::header_list trailers;
  std::size_t header_bytes = 0;
  bool in_trailers = false;
  bool head_method = false;
  bool emitted = false;     // the request event went out
  bool counted = false;     // counts in outstanding() until its response is complete
  bool refused = false;     // answered by the codec (413): nothing goes to the handler
  bool body_done = false;   // END_STREAM received: the request body is complete
  std::uint64_t body_total = 0;
  // Flow control: body bytes handed to the sink and not acknowledged yet (its handler has
  // not taken them), and bytes of body events that were acknowledged when they arrived
  // (held with the request first): the sink's first reports for them open nothing.
  std::uint64_t unacked = 0;
  std::uint64_t skip = 0;
  // response
  bool responded = false;   // the final head was submitted
  bool has_provider = false;
  bool out_eof = false;     // the handler ended the body
  bool deferred = false;    // the data provider is waiting for body
  std::string out;
  std::size_t out_off = 0;
  h1::header_list resp_trailers;
  std::uint32_t last_tick = 0;

  // As a fresh stream, for one taken from the pool, member by member (a temporary stream
  // assigned over it cost about 250 instructions per request): small buffers keep their
  // capacity (no allocation per request for the usual few headers), large ones go.
  // Every member is reset here: a new one needs a line.
  void reset() {
    id = 0;
    clear_small(req.method);
    clear_small(req.target);
    clear_small(req.authority);
    req.version_minor = 1;
    req.headers.items.clear();
    req.keep_alive = true;
    req.expect_continue = false;
    req.chunked = false;
    req.content_length = -1;
    req.complete = true;
    clear_small(req.body);
    cookies.clear();
    clear_small(fields);
    if (spans.capacity() > kKeptSpans)
      std::vector<h1::field_span>().swap(spans);
    else
      spans.clear();
    trailers.items.clear();
    header_bytes = 0;
    in_trailers = head_method = emitted = counted = refused = body_done = false;
    body_total = unacked = skip = 0;
    responded = has_provider = out_eof = deferred = false;
    clear_small(out);
    out_off = 0;
    resp_trailers.items.clear();
    last_tick = 0;
  }
  static void clear_small(std::string& s) {
    if (s.capacity() > kKeptFields)
      std::string().swap(s);
    else
      s.clear();
  }
  static constexpr std::size_t kKeptFields = 1024;
  static constexpr std::size_t kKeptSpans = 64;
};

// A token bucket holding one second's worth (`rate`), refilled at `rate` a second. The clock
// is read at the first frame and then only when the bucket runs dry (one read per bucketful,
// none per request), and the window is as precise as the clock.
struct rate_bucket {
  std::uint64_t tokens = 0;
  std::uint64_t stamp = 0;
  bool started = false;

  bool take(std::uint32_t rate, std::uint64_t (*clock)(const void*), const void* ctx) {
    if (!started) {
      started = true;
      tokens = rate;
      stamp = clock(ctx);
    }
    if (tokens > 0) {
      --tokens;
      return true;
    }
    const std::uint64_t now = clock(ctx);
    const std::uint64_t elapsed = now > stamp ? now - stamp : 0;
    const std::uint64_t refill = elapsed >= 1000 ? rate : elapsed * rate / 1000;
    if (refill == 0) return false;
    tokens = refill - 1;
    stamp = now;
    return true;
  }
};

class server_codec final : public stream_codec {
 public:
  explicit server_codec(const options& o) : opts_(o) {
    if (opts_.body_chunk_size == 0) opts_.body_chunk_size = 1;
    nghttp2_session_callbacks* cb = nullptr;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, &on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, &on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, &on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, &on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, &on_stream_close);
    nghttp2_session_callbacks_set_on_begin_frame_callback(cb, &on_begin_frame);
    nghttp2_session_callbacks_set_error_callback2(cb, &on_error);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, &on_frame_send);
    nghttp2_option* opt = nullptr;
    nghttp2_option_new(&opt);
    // Our own bucket (on_begin_frame) trips first with a reason; nghttp2's (seconds
    // granularity, GOAWAY INTERNAL_ERROR) stays as a backstop at twice the rate.
    const std::uint64_t resets = 2ull * std::max<std::uint32_t>(opts_.max_resets_per_second, 1);
    nghttp2_option_set_stream_reset_rate_limit(opt, resets, resets);
    // Request bodies are acknowledged as their handlers take them (consumed()).
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_max_continuations(opt, opts_.max_continuations);
    nghttp2_session_server_new3(&session_, cb, this, opt, &pool::mem);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, opts_.max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, opts_.initial_window_size},
        {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, std::clamp<std::uint32_t>(opts_.max_frame_size, 16384, 16777215)},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, opts_.max_header_list_size},
    };
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, iv, std::size(iv));
    if (opts_.connection_window_size > 65535)
      nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                            static_cast<std::int32_t>(std::min<std::uint32_t>(
                                                opts_.connection_window_size, 0x7fffffff)));
  }
  ~server_codec() override { nghttp2_session_del(session_); }

  // The HTTP/1.1 request of an h2c upgrade becomes stream 1 (half-closed remote).
  bool upgrade(std::string_view settings, const h1::request_head& r, bool head_method) {
    auto st = std::make_unique<stream>();
    st->id = 1;
    st->req = r;
    st->req.version_minor = 2;
    st->req.complete = true;
    st->body_done = true;
    st->req.keep_alive = true;
    st->req.expect_continue = false;
    st->req.chunked = false;
    st->head_method = head_method;
    if (nghttp2_session_upgrade2(session_, reinterpret_cast<const std::uint8_t*>(settings.data()), settings.size(),
                                 head_method ? 1 : 0, nullptr) != 0)
      return false;
    auto* s = st.get();
    streams_.emplace(1, std::move(st));
    emit_request(*s, true);  // into the backlog: no sink yet
    return true;
  }

  std::string_view name() const noexcept override { return "h2"; }

  std::size_t decode(std::string_view in, event_sink& sink) override {
    if (failed() || done_) return 0;
    sink_ = &sink;
    std::size_t used = 0;
    if (flush_backlog()) {
      while (used < in.size() && !stopped_ && !tripped_) {
        auto slice = in.substr(used, kSlice);
        auto n = nghttp2_session_mem_recv(session_, reinterpret_cast<const std::uint8_t*>(slice.data()), slice.size());
        if (n < 0) {
          if (!tripped_) {
            nghttp2_session_terminate_session(session_, n == NGHTTP2_ERR_FLOODED ? NGHTTP2_ENHANCE_YOUR_CALM
                                                                                  : NGHTTP2_PROTOCOL_ERROR);
            fail({400, h1::error_category()}, std::string("HTTP/2: ") + nghttp2_strerror(static_cast<int>(n)));
          }
          break;
        }
        used += static_cast<std::size_t>(n);
        idle_ticks_ = 0;
      }
    }
    sink_ = nullptr;
    // nghttp2 ended the session by itself: a connection error it reported (logged), or the
    // client's own GOAWAY once its streams are done (quiet).
    if (!failed() && !error_.empty() && nghttp2_session_want_read(session_) == 0)
      fail({400, h1::error_category()}, "HTTP/2: " + error_);
    settle();
    return failed() ? in.size() : used;
  }

  bool holds_events() const noexcept override { return !backlog_.empty(); }

  void consumed(std::uint32_t stream_id, std::uint32_t bytes) override {
    if (stream_id == 0 || stream_id > 0x7fffffff) return;
    auto* s = find(static_cast<std::int32_t>(stream_id));
    if (!s) return;  // closed: what its handler never took went back to the connection then
    std::uint64_t n = bytes;
    const auto skipped = std::min(n, s->skip);
    s->skip -= skipped;
    n = std::min(n - skipped, s->unacked);
    if (n == 0) return;
    s->unacked -= n;
    s->last_tick = tick_;  // a handler reading the body is progress (h2_idle_stream_timeout)
    nghttp2_session_consume(session_, s->id, static_cast<std::size_t>(n));
  }

  void encode(std::uint8_t kind, std::string_view data, std::string& wire) override;
  void encode_object(std::uint8_t kind, const reply_object& obj, std::string& wire) override;
  // nghttp2 takes submissions from inside its callbacks (a handler answering inline from
  // on_frame_recv); nothing here calls mem_send while decode() runs.
  bool encodes_while_decoding() const noexcept override { return true; }

  bool take_output(std::string& out) override {
    bool any = false;
    for (;;) {
      const std::uint8_t* p = nullptr;
      auto n = nghttp2_session_mem_send(session_, &p);
      if (n <= 0) break;
      out.append(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
      any = true;
    }
    settle();
    return any;
  }

  bool done() const noexcept override { return done_; }
  std::uint32_t outstanding() const noexcept override { return outstanding_; }
  bool stream_needs_handler(std::uint32_t id) const noexcept {
    auto it = streams_.find(static_cast<std::int32_t>(id));
    if (it == streams_.end()) return false;
    const auto& s = *it->second;
    if (!s.emitted || s.refused) return false;
    const bool given = s.responded && (s.out_eof || !s.has_provider);
    return !s.body_done || !given;
  }
  std::size_t held() const noexcept override { return held_; }

  deadline timeout() const noexcept override {
    if (done_) return {};
    return {1000, tick_};  // a tick: the codec counts its own time in these
  }

  std::string_view expire(std::string& out) override {
    ++tick_;
    std::string_view why;
    if (streams_.empty()) {
      if (opts_.keepalive_timeout_ms && ++idle_ticks_ * 1000ull >= opts_.keepalive_timeout_ms && !going_away_) {
        // An idle connection: say goodbye properly, then close.
        nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(session_),
                              NGHTTP2_NO_ERROR, nullptr, 0);
        going_away_ = true;
      }
    } else if (opts_.idle_stream_timeout_ms) {
      const std::uint32_t limit = std::max<std::uint32_t>(1, (opts_.idle_stream_timeout_ms + 999) / 1000);
      std::vector<std::int32_t> stale;
      for (auto& [id, s] : streams_)
        if (tick_ - s->last_tick >= limit) stale.push_back(id);
      for (auto id : stale) nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
      if (!stale.empty()) why = "HTTP/2: stream(s) reset after h2_idle_stream_timeout";
    }
    take_output(out);
    return why;
  }

  bool go_away(std::string& out) override {
    if (going_away_ || done_) return false;
    going_away_ = true;
    nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(session_),
                          NGHTTP2_NO_ERROR, nullptr, 0);
    take_output(out);
    return true;
  }

  void abandon(std::string& out) override {
    std::vector<std::int32_t> ids;
    for (auto& [id, s] : streams_)
      if (s->counted) ids.push_back(id);
    for (auto id : ids) {
      auto* s = find(id);
      if (!s) continue;
      if (!s->responded) {
        answer(*s, 502, "Bad Gateway: the worker handling this request went away\n");
      } else {
        nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_INTERNAL_ERROR);
      }
      uncount(*s);
    }
    take_output(out);
  }

 private:
  static server_codec& self(void* p) { return *static_cast<server_codec*>(p); }

  // The rate limits' time: the connection's clock, else the codec's ticks.
  static std::uint64_t now_ms(const void* p) {
    auto& c = *static_cast<const server_codec*>(p);
    return c.opts_.clock_ms ? c.opts_.clock_ms() : std::uint64_t{c.tick_} * 1000;
  }
  bool allow_control() { return control_.take(opts_.max_control_frames_per_second, &now_ms, this); }

  // Every callback of a frame, and each reply, looks its stream up (about ten times per
  // request): the last one found is remembered. on_stream_close() forgets it.
  stream* find(std::int32_t id) {
    if (id == last_id_ && last_) return last_;
    auto it = streams_.find(id);
    if (it == streams_.end()) return nullptr;
    last_id_ = id;
    last_ = it->second.get();
    return last_;
  }

  // -- events ---------------------------------------------------------------------------------
  void emit(ev kind, std::int32_t id, std::string_view payload) {
    thread_local std::string buf;
    buf.clear();
    put_stream(buf, static_cast<std::uint32_t>(id));
    buf.append(payload);
    emit_prefixed(kind, buf);
  }
  // An event whose bytes start with their stream id: to the sink, or kept (a copy) while it
  // holds events back.
  void emit_prefixed(ev kind, std::string_view bytes) {
    if (!backlog_.empty() || stopped_ || !sink_) {
      backlog_.push_back({static_cast<std::uint8_t>(kind), std::string(bytes)});
      return;
    }
    if (!sink_->on_event({static_cast<std::uint8_t>(kind), bytes})) stopped_ = true;
  }

  bool flush_backlog() {
    stopped_ = false;
    std::size_t i = 0;
    for (; i < backlog_.size(); ++i) {
      if (!sink_->on_event({backlog_[i].kind, backlog_[i].data})) {
        ++i;
        stopped_ = true;
        break;
      }
    }
    backlog_.erase(backlog_.begin(), backlog_.begin() + static_cast<std::ptrdiff_t>(i));
    return !stopped_;
  }

  // A sink that takes objects gets the head as views: the fields are s.fields (their wire
  // form, the Cookie fields joined at its end), pointed at by s.spans. False: the event goes
  // as bytes (the sink takes none, it is held back, or it is an h2c upgrade's request, whose
  // fields are HTTP/1's).
  bool emit_request_object(stream& s, const std::string& joined) {
    if (!backlog_.empty() || stopped_ || !sink_ || !sink_->takes_objects() || !s.req.headers.items.empty())
      return false;
    if (!s.cookies.empty()) add_field(s, "cookie", joined);
    const auto& r = s.req;
    request_object obj;
    obj.stream = static_cast<std::uint32_t>(s.id);
    auto& p = obj.head;
    p.method = r.method;
    p.target = r.target;
    p.authority = r.authority;
    p.version_minor = r.version_minor;
    p.keep_alive = r.keep_alive;
    p.expect_continue = r.expect_continue;
    p.chunked = r.chunked;
    p.complete = r.complete;
    p.content_length = r.content_length;
    p.body = r.body;
    p.field_base = s.fields.data();
    p.fields = s.spans.data();
    p.field_count = s.spans.size();
    if (!sink_->on_event({static_cast<std::uint8_t>(ev::request), {}, &obj})) stopped_ = true;
    return true;
  }

  void emit_request(stream& s, bool complete) {
    s.req.complete = complete;
    std::string joined;  // the Cookie fields, one field again
    for (auto& c : s.cookies) {
      if (!joined.empty()) joined += "; ";
      joined += c;
    }
    // Counted before the sink sees it (a handler may answer at once).
    s.emitted = true;
    s.counted = true;
    ++outstanding_;
    if (!emit_request_object(s, joined)) emit_request_bytes(s, joined);
    s.cookies.clear();
    s.fields.clear();
    s.spans.clear();
    s.req.body.clear();
    s.req.body.shrink_to_fit();
  }

  // request_head's wire form (http1_wire.hpp), written from what the stream gathered.
  void emit_request_bytes(const stream& s, const std::string& joined) {
    namespace w = h1::wire;
    thread_local std::string payload;
    payload.clear();
    put_stream(payload, static_cast<std::uint32_t>(s.id));  // the event's prefix, then the head
    const auto& r = s.req;
    const auto& items = r.headers.items;  // an h2c upgrade's request (HTTP/1 fields)
    constexpr std::string_view cookie = "cookie";
    std::size_t fields_size = 4 + s.fields.size() + (s.cookies.empty() ? 0 : 8 + cookie.size() + joined.size());
    for (const auto& h : items) fields_size += 8 + h.name.size() + h.value.size();
    w::put_request(payload,
                   {r.method, r.target, r.authority, r.version_minor,
                    w::request_flags(r.keep_alive, r.expect_continue, r.chunked, r.complete), r.content_length, r.body},
                   fields_size, [&](swactor::wire::placed_writer& pw) {
                     pw.u32(static_cast<std::uint32_t>(items.size() + s.spans.size()) + (s.cookies.empty() ? 0 : 1));
                     for (const auto& h : items) {
                       pw.str(h.name);
                       pw.str(h.value);
                     }
                     pw.bytes(s.fields);
                     if (!s.cookies.empty()) {
                       pw.str(cookie);
                       pw.str(joined);
                     }
                   });
    emit_prefixed(ev::request, payload);
  }

  void emit_body(stream& s, std::string_view data) {
    while (!data.empty()) {
      auto piece = data.substr(0, opts_.body_chunk_size);
      data.remove_prefix(piece.size());
      emit(ev::body, s.id, piece);
    }
  }

  void emit_end(stream& s) {
    thread_local std::string payload;
    payload.clear();
    s.trailers.encode_to(payload);
    emit(ev::end, s.id, payload);
  }

  void uncount(stream& s) {
    if (!s.counted) return;
    s.counted = false;
    --outstanding_;
  }

  // The request is whole (END_STREAM seen).
  void request_ended(stream& s) {
    s.body_done = true;
    if (s.refused) return;
    if (!s.emitted) {
      if (s.trailers.items.empty()) {
        emit_request(s, true);
        return;
      }
      auto body = std::move(s.req.body);
      emit_request(s, false);
      s.skip += body.size();  // acknowledged when it arrived
      emit_body(s, body);
    } else if (!s.req.body.empty()) {
      s.skip += s.req.body.size();
      emit_body(s, s.req.body);
      s.req.body.clear();
    }
    emit_end(s);
  }

  void trip(const char* why) {
    if (tripped_) return;
    tripped_ = true;
    nghttp2_session_terminate_session(session_, NGHTTP2_ENHANCE_YOUR_CALM);
    fail({429, h1::error_category()}, why);
  }

  // A response the codec gives by itself (413, 502).
  void answer(stream& s, int status, std::string_view body) {
    std::string st = std::to_string(status);
    std::string len = std::to_string(body.size());
    nghttp2_nv nva[] = {make_nv(":status", st), make_nv("content-type", "text/plain; charset=utf-8"),
                        make_nv("content-length", len), make_nv("date", http_date_now())};
    s.out.assign(body);
    s.out_off = 0;
    s.out_eof = true;
    s.responded = true;
    s.has_provider = true;
    held_ += s.out.size();
    nghttp2_data_provider prd;
    prd.source.ptr = nullptr;
    prd.read_callback = &read_body;
    nghttp2_submit_response(session_, s.id, nva, std::size(nva), &prd);
  }

  void settle() {
    if (done_) return;
    if (!failed() && !error_.empty() && nghttp2_session_want_read(session_) == 0)
      fail({400, h1::error_category()}, "HTTP/2: " + error_);
    const bool idle = nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0;
    if (idle || (failed() && nghttp2_session_want_write(session_) == 0)) done_ = true;
    // After our GOAWAY the connection ends once the streams that were in flight finished.
    if (going_away_ && streams_.empty() && nghttp2_session_want_write(session_) == 0) done_ = true;
  }

  // -- nghttp2 callbacks -------------------------------------------------------------------
  // A GOAWAY with an error that nghttp2 decided on by itself (its reset-rate and
  // CONTINUATION limits, a protocol error): the reason for the log line.
  static int on_frame_send(nghttp2_session* session, const nghttp2_frame* frame, void* ud) {
    auto& c = self(ud);
    if (frame->hd.type == NGHTTP2_RST_STREAM) c.note_reset(frame->hd.stream_id);
    // A response complete while its request body still arrives: the client may stop sending
    // (RFC 9113 §8.1), instead of stalling on a window that nobody opens any more.
    if ((frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
      if (auto* s = c.find(frame->hd.stream_id);
          s && !s->body_done && nghttp2_session_get_stream_remote_close(session, s->id) == 0)
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_NO_ERROR);
    if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR && c.error_.empty() &&
        !c.failed()) {
      c.error_ = std::string("GOAWAY ") + nghttp2_http2_strerror(frame->goaway.error_code) +
                 (frame->goaway.error_code == NGHTTP2_INTERNAL_ERROR ? " (too many streams reset: h2_max_resets_per_second?)" : "");
      // nghttp2 names most protocol errors only in the GOAWAY's debug data ("SETTINGS:
      // stream_id != 0"): the log line says which rule the peer broke.
      std::string_view why(reinterpret_cast<const char*>(frame->goaway.opaque_data), frame->goaway.opaque_data_len);
      why = why.substr(0, 200);
      if (!why.empty() && valid_field_value(why)) {
        c.error_ += ": ";
        c.error_ += why;
      }
    }
    return 0;
  }

  static int on_error(nghttp2_session*, int code, const char* msg, std::size_t len, void* ud) {
    auto& c = self(ud);
    // Only connection-ending errors matter for the log line; stream errors reset a stream.
    if (c.error_.empty() && code != 0) c.error_.assign(msg, len);
    return 0;
  }

  void note_reset(std::int32_t id) {
    if (reset_ids_.size() < kResetRing) {
      reset_ids_.push_back(id);
      return;
    }
    reset_floor_ = std::max(reset_floor_, reset_ids_[reset_next_]);
    reset_ids_[reset_next_] = id;
    reset_next_ = (reset_next_ + 1) % kResetRing;
  }

  // HEADERS on a client stream id at or below one already opened, whose stream is closed and
  // was not reset by us: a stream id used again, or one skipped (closed when a higher one
  // opened). RFC 9113 §5.1.1 makes it a connection error, which nghttp2 cannot tell from
  // trailers racing our RST_STREAM (it keeps no closed ids); we keep the ones we reset.
  bool stream_id_reused(nghttp2_session* session, std::int32_t id) const {
    if ((id & 1) == 0 || id > nghttp2_session_get_last_proc_stream_id(session)) return false;
    // A stream nghttp2 still holds (open, or its RST_STREAM not sent yet) is its to judge.
    if (nghttp2_session_find_stream(session, id)) return false;
    if (id <= reset_floor_) return false;
    return std::find(reset_ids_.begin(), reset_ids_.end(), id) == reset_ids_.end();
  }

  static int on_begin_frame(nghttp2_session* session, const nghttp2_frame_hd* hd, void* ud) {
    auto& c = self(ud);
    switch (hd->type) {
      case NGHTTP2_HEADERS:
        if (c.stream_id_reused(session, hd->stream_id)) {
          nghttp2_session_terminate_session(session, NGHTTP2_PROTOCOL_ERROR);
          c.fail({400, h1::error_category()},
                 "HTTP/2: HEADERS on stream " + std::to_string(hd->stream_id) +
                     ", not above the streams already opened (RFC 9113 §5.1.1)");
          return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
        break;
      case NGHTTP2_RST_STREAM:
        if (!c.resets_.take(c.opts_.max_resets_per_second, &now_ms, &c)) {
          c.trip("HTTP/2: rapid reset (h2_max_resets_per_second)");
          return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
        break;
      case NGHTTP2_PING:
      case NGHTTP2_SETTINGS:
      case NGHTTP2_PRIORITY:
        if (hd->flags & NGHTTP2_FLAG_ACK) break;
        if (!c.allow_control()) {
          c.trip("HTTP/2: control frame flood (h2_max_control_frames_per_second)");
          return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
        break;
      case NGHTTP2_DATA:
        if (hd->length == 0 && !(hd->flags & NGHTTP2_FLAG_END_STREAM) && !c.allow_control()) {
          c.trip("HTTP/2: empty DATA frame flood (h2_max_control_frames_per_second)");
          return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
        break;
      default: break;
    }
    return 0;
  }

  static int on_begin_headers(nghttp2_session* session, const nghttp2_frame* frame, void* ud) {
    auto& c = self(ud);
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
      c.last_ = nullptr;  // the map changes below
      stream* st = nullptr;
      if (!c.spare_streams_.empty()) {
        auto node = std::move(c.spare_streams_.back());
        c.spare_streams_.pop_back();
        node.mapped()->reset();
        node.key() = frame->hd.stream_id;
        auto r = c.streams_.insert(std::move(node));
        if (!r.inserted) r.position->second = std::move(r.node.mapped());  // as operator[] would
        st = r.position->second.get();
      } else {
        auto fresh = std::make_unique<stream>();
        st = fresh.get();
        c.streams_[frame->hd.stream_id] = std::move(fresh);
      }
      st->id = frame->hd.stream_id;
      st->req.version_minor = 2;
      st->last_tick = c.tick_;
      (void)session;
    } else if (auto* s = c.find(frame->hd.stream_id)) {
      s->in_trailers = true;
      s->header_bytes = 0;
    }
    return 0;
  }

  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t* name, std::size_t namelen,
                       const std::uint8_t* value, std::size_t valuelen, std::uint8_t, void* ud) {
    auto& c = self(ud);
    auto* s = c.find(frame->hd.stream_id);
    if (!s) return 0;
    s->header_bytes += namelen + valuelen + 32;  // RFC 9113 §6.5.2's accounting
    if (s->header_bytes > c.opts_.max_header_list_size) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    std::string_view n(reinterpret_cast<const char*>(name), namelen);
    std::string_view v(reinterpret_cast<const char*>(value), valuelen);
    if (s->in_trailers) {
      if (!n.empty() && n[0] != ':') s->trailers.add(std::string(n), std::string(v));
      return 0;
    }
    // Names come lower-case (nghttp2 refuses others): compared by length first.
    if (!n.empty() && n[0] == ':') {
      switch (n.size()) {
        case 5:
          if (same(n, ":path")) replace_with(s->req.target, v);
          break;
        case 7:
          // (:scheme is nghttp2's to check; nothing here reads it.)
          if (same(n, ":method")) {
            replace_with(s->req.method, v);
            s->head_method = same(v, "HEAD");
          }
          break;
        case 10:
          if (same(n, ":authority")) replace_with(s->req.authority, v);
          break;
        default: break;
      }
      return 0;
    }
    switch (n.size()) {
      case 4:
        if (same(n, "host") && s->req.authority.empty()) replace_with(s->req.authority, v);
        break;
      case 6:
        if (same(n, "cookie")) {
          s->cookies.emplace_back(v);
          return 0;
        }
        if (same(n, "expect") && same(v, "100-continue")) s->req.expect_continue = true;
        break;
      case 14:
        if (same(n, "content-length")) {
          std::int64_t cl = 0;
          auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), cl);
          if (ec == std::errc() && p == v.data() + v.size()) s->req.content_length = cl;
        }
        break;
      default: break;
    }
    add_field(*s, n, v);
    return 0;
  }

  // A field onto the stream's wire-form list, name and value sized once (four appends cost
  // three times as much), and where they are (the typed event points at them).
  static void add_field(stream& s, std::string_view n, std::string_view v) {
    auto& f = s.fields;
    const auto at = static_cast<std::uint32_t>(f.size());
    f.resize(at + swactor::wire::placed_writer::size_of(n) + swactor::wire::placed_writer::size_of(v));
    swactor::wire::placed_writer pw(f.data() + at);
    pw.str(n);
    pw.str(v);
    const auto nl = static_cast<std::uint32_t>(n.size()), vl = static_cast<std::uint32_t>(v.size());
    s.spans.push_back({at + 4, nl, at + 8 + nl, vl});
  }

  static int on_frame_recv(nghttp2_session* session, const nghttp2_frame* frame, void* ud) {
    auto& c = self(ud);
    auto* s = c.find(frame->hd.stream_id);
    if (!s) return 0;
    s->last_tick = c.tick_;
    const bool end = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
    switch (frame->hd.type) {
      case NGHTTP2_HEADERS:
        if (s->in_trailers) {
          if (end) c.request_ended(*s);
          return 0;
        }
        if (s->req.content_length >= 0 && static_cast<std::uint64_t>(s->req.content_length) > c.opts_.max_body_size) {
          s->refused = true;
          c.answer(*s, 413, "Content Too Large\n");
          return 0;
        }
        if (end) {
          s->req.content_length = s->req.content_length < 0 ? 0 : s->req.content_length;
          c.request_ended(*s);
        } else if (s->req.expect_continue ||
                   (s->req.content_length > 0 &&
                    static_cast<std::uint64_t>(s->req.content_length) > c.opts_.body_chunk_size)) {
          c.emit_request(*s, false);  // the body streams after the head
        } else {
          s->req.expect_continue = false;
        }
        (void)session;
        return 0;
      case NGHTTP2_DATA:
        if (end) c.request_ended(*s);
        return 0;
      default: return 0;
    }
  }

  static int on_data_chunk(nghttp2_session*, std::uint8_t, std::int32_t id, const std::uint8_t* data, std::size_t len,
                           void* ud) {
    auto& c = self(ud);
    auto* s = c.find(id);
    if (!s || s->refused) {
      nghttp2_session_consume(c.session_, id, len);  // dropped here: nobody will take it
      return 0;
    }
    s->last_tick = c.tick_;
    s->body_total += len;
    if (s->body_total > c.opts_.max_body_size) {
      s->refused = true;
      nghttp2_session_consume(c.session_, id, len);
      if (!s->emitted) {
        c.answer(*s, 413, "Content Too Large\n");
      } else {
        nghttp2_submit_rst_stream(c.session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
      }
      return 0;
    }
    std::string_view piece(reinterpret_cast<const char*>(data), len);
    if (!s->emitted) {
      if (s->req.body.size() + len <= c.opts_.body_chunk_size) {
        // Held here until the request goes out, at most body_chunk_size: acknowledged at
        // once (a stream window below body_chunk_size would otherwise never fill it).
        s->req.body.append(piece);
        nghttp2_session_consume(c.session_, id, len);
        return 0;
      }
      auto buffered = std::move(s->req.body);
      s->req.body.clear();
      c.emit_request(*s, false);
      s->skip += buffered.size();
      c.emit_body(*s, buffered);
    }
    s->unacked += len;  // acknowledged when the handler takes it
    c.emit_body(*s, piece);
    return 0;
  }

  static int on_stream_close(nghttp2_session*, std::int32_t id, std::uint32_t, void* ud) {
    auto& c = self(ud);
    auto it = c.streams_.find(id);
    if (it == c.streams_.end()) return 0;
    auto& s = *it->second;
    // What its handler never took goes back to the connection's window (the stream's own
    // window is gone with it); later reports for this stream are ignored.
    if (s.unacked > 0) nghttp2_session_consume_connection(c.session_, static_cast<std::size_t>(s.unacked));
    if (s.counted || (s.emitted && !s.body_done)) {
      // Reset before its response ended, or before its body did: the worker learns it (a
      // handler waiting for body, a pipe to drop).
      c.uncount(s);
      c.emit(ev::reset, id, {});
    }
    c.held_ -= std::min(c.held_, s.out.size() - s.out_off);
    // A few closed streams keep their map node and object for the next ones (a busy
    // connection opens one per request).
    if (c.last_ == it->second.get()) c.last_ = nullptr;
    auto node = c.streams_.extract(it);
    if (c.spare_streams_.size() < kSpareStreams) c.spare_streams_.push_back(std::move(node));
    return 0;
  }

  static ssize_t read_body(nghttp2_session* session, std::int32_t id, std::uint8_t* buf, std::size_t length,
                           std::uint32_t* flags, nghttp2_data_source*, void* ud) {
    auto& c = self(ud);
    auto* s = c.find(id);
    if (!s) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    s->last_tick = c.tick_;
    const std::size_t n = std::min(length, s->out.size() - s->out_off);
    std::copy_n(s->out.data() + s->out_off, n, buf);
    s->out_off += n;
    c.held_ -= std::min(c.held_, n);
    if (s->out_off == s->out.size()) {
      s->out.clear();
      s->out_off = 0;
      if (s->out_eof) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (!s->resp_trailers.items.empty()) {
          std::vector<std::string> names;
          std::vector<nghttp2_nv> nva;
          names.reserve(s->resp_trailers.items.size());
          for (auto& t : s->resp_trailers.items) {
            if (!valid_name(t.name) || !valid_field_value(t.value)) continue;
            names.push_back(ascii_lowered(t.name));
            nva.push_back(make_nv(names.back(), t.value));
          }
          if (!nva.empty() && nghttp2_submit_trailer(session, id, nva.data(), nva.size()) == 0)
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        }
        c.uncount(*s);
      } else if (n == 0) {
        s->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
      }
    }
    return static_cast<ssize_t>(n);
  }

  // A handler's response head (out::whole with its body, or out::head); `each(f)` calls
  // f(name, value) for every field the handler set.
  template <typename Each>
  void respond(stream& s, bool whole, int status, std::size_t count, const Each& each, std::int64_t length,
               std::string_view body);
  template <typename Each>
  void submit_head(stream& s, std::size_t count, const Each& each, int status, std::int64_t length, bool body_follows);
  stream* stream_for_reply(std::uint32_t id) {
    if (id == 0 || id > 0x7fffffff) return nullptr;
    auto* s = find(static_cast<std::int32_t>(id));
    if (!s || s->refused) return nullptr;
    s->last_tick = tick_;
    return s;
  }

  options opts_;
  nghttp2_session* session_ = nullptr;
  event_sink* sink_ = nullptr;
  std::unordered_map<std::int32_t, std::unique_ptr<stream>> streams_;
  std::int32_t last_id_ = 0;
  stream* last_ = nullptr;  // find()'s last answer (streams_[last_id_])
  static constexpr std::size_t kSpareStreams = 16;
  std::vector<decltype(streams_)::node_type> spare_streams_;  // closed streams kept for reuse
  // submit_head()'s scratch, kept between responses (nghttp2 copies the fields it is given).
  std::vector<std::string> head_names_;
  std::vector<nghttp2_nv> head_nva_;
  struct held_event {
    std::uint8_t kind;
    std::string data;
  };
  std::vector<held_event> backlog_;
  std::size_t held_ = 0;
  std::uint32_t outstanding_ = 0;
  std::uint32_t tick_ = 0;
  std::uint32_t idle_ticks_ = 0;
  rate_bucket resets_;   // RST_STREAM frames (max_resets_per_second)
  rate_bucket control_;  // PING, SETTINGS, PRIORITY, empty DATA (max_control_frames_per_second)
  std::string error_;  // what nghttp2 reported last (a connection error when it stops reading)
  bool stopped_ = false;
  bool tripped_ = false;
  bool going_away_ = false;
  bool done_ = false;
  // Streams we reset lately (RST_STREAM sent, by us or by nghttp2): the client may still send
  // on them, which is not an error (RFC 9113 §5.1). Ids reset before the ring's oldest are
  // at most `reset_floor_`, and frames on those are let be, as nghttp2 does.
  static constexpr std::size_t kResetRing = 32;
  std::vector<std::int32_t> reset_ids_;
  std::size_t reset_next_ = 0;
  std::int32_t reset_floor_ = 0;
};

// Calls f(name, value) for each field of a checked header_list wire form.
template <typename F>
void for_each_field(std::string_view raw, F&& f) {
  h1::wire::reader rd{raw};
  std::uint32_t count = 0;
  rd.u32(count);
  std::string_view n, v;
  for (std::uint32_t i = 0; i < count && rd.str(n) && rd.str(v); ++i) f(n, v);
}

// The names this codec writes itself, and the ones handlers set most, as literals: nghttp2
// keeps a pointer to those (NGHTTP2_NV_FLAG_NO_COPY_NAME) instead of copying and lowering
// each name of each response. Null: not one of them.
const char* known_name(std::string_view n) noexcept {
  switch (n.size()) {
    case 4:
      if (same(n, "vary")) return "vary";
      if (same(n, "etag")) return "etag";
      break;
    case 8:
      if (same(n, "location")) return "location";
      break;
    case 10:
      if (same(n, "set-cookie")) return "set-cookie";
      break;
    case 12:
      if (same(n, "content-type")) return "content-type";
      break;
    case 13:
      if (same(n, "cache-control")) return "cache-control";
      if (same(n, "last-modified")) return "last-modified";
      break;
    case 16:
      if (same(n, "content-encoding")) return "content-encoding";
      break;
    default: break;
  }
  return nullptr;
}

nghttp2_nv static_nv(std::string_view lit_name, std::string_view v, std::uint8_t flags) {
  return {reinterpret_cast<std::uint8_t*>(const_cast<char*>(lit_name.data())),
          reinterpret_cast<std::uint8_t*>(const_cast<char*>(v.data())), lit_name.size(), v.size(),
          static_cast<std::uint8_t>(NGHTTP2_NV_FLAG_NO_COPY_NAME | flags)};
}

template <typename Each>
void server_codec::submit_head(stream& s, std::size_t count, const Each& each, int status, std::int64_t length,
                               bool body_follows) {
  // nghttp2 copies what it is given unless told not to: names that are literals (ours, and
  // known_name()'s) and values that outlive the frame (the server name, the date, which is
  // rewritten in place once a second) are not copied; the rest may point into the handler's
  // fields and these buffers.
  char st_buf[8], len_buf[24];
  const auto st_end = std::to_chars(st_buf, st_buf + sizeof st_buf, status).ptr;
  const std::string_view st(st_buf, static_cast<std::size_t>(st_end - st_buf));
  std::string_view len;
  if (length >= 0) len = {len_buf, static_cast<std::size_t>(std::to_chars(len_buf, len_buf + sizeof len_buf, length).ptr - len_buf)};
  auto& names = head_names_;
  names.clear();
  names.reserve(count);  // never grows below: the fields point into it
  // The fields, ours included (at most 4 more than the handler's), in a local array when
  // they fit.
  nghttp2_nv local[12];
  nghttp2_nv* nva = local;
  if (count + 4 > std::size(local)) {
    head_nva_.resize(count + 4);
    nva = head_nva_.data();
  }
  std::size_t k = 0;
  nva[k++] = static_nv(":status", st, NGHTTP2_NV_FLAG_NONE);
  bool has_server = false, has_date = false;
  const bool interim = status < 200;
  each([&](std::string_view n, std::string_view v) {
    if (!valid_field_value(v)) return;
    // A name handlers set often, as written: valid and lower-case already.
    if (const char* known = known_name(n)) {
      nva[k++] = static_nv({known, n.size()}, v, NGHTTP2_NV_FLAG_NONE);
      return;
    }
    // One pass over the name: a token without ':' (valid_name), and whether it has capitals.
    if (n.empty()) return;
    const unsigned seen = scan_name(n);
    if (seen & kNameInvalid) return;
    std::string_view ln = n;
    if (seen & kNameUpper) {
      // A common name written with capitals ("Content-Type") is the literal; only another
      // one needs its lowered copy kept until nghttp2 copied it.
      char low[24];
      if (n.size() <= sizeof low) {
        for (std::size_t j = 0; j < n.size(); ++j) low[j] = ascii_lower(n[j]);
        if (const char* known = known_name({low, n.size()})) {
          nva[k++] = static_nv({known, n.size()}, v, NGHTTP2_NV_FLAG_NONE);
          return;
        }
      }
      names.push_back(ascii_lowered(n));
      ln = names.back();
    }
    if (connection_specific(ln)) return;
    if (same(ln, "content-length")) {
      if (!interim) return;  // ours, from the body
    } else if (same(ln, "server")) {
      has_server = true;
    } else if (same(ln, "date")) {
      has_date = true;
    }
    nva[k++] = make_nv(ln, v);  // (a known name returned above, as written or lowered)
  });
  if (interim) {
    nghttp2_submit_headers(session_, NGHTTP2_FLAG_NONE, s.id, nullptr, nva, k, nullptr);
    return;
  }
  if (!has_server && !opts_.server_name.empty())
    nva[k++] = static_nv("server", opts_.server_name, NGHTTP2_NV_FLAG_NO_COPY_VALUE);
  // The codec dates what it sends (RFC 9110 §6.6.1), unless the handler did.
  if (!has_date) nva[k++] = static_nv("date", http_date_now(), NGHTTP2_NV_FLAG_NO_COPY_VALUE);
  if (!len.empty() && status != 204 && status != 304)
    nva[k++] = static_nv("content-length", len, NGHTTP2_NV_FLAG_NONE);
  s.responded = true;
  if (!body_follows) {
    nghttp2_submit_response(session_, s.id, nva, k, nullptr);
    uncount(s);
    return;
  }
  s.has_provider = true;
  nghttp2_data_provider prd;
  prd.source.ptr = nullptr;
  prd.read_callback = &read_body;
  nghttp2_submit_response(session_, s.id, nva, k, &prd);
}

template <typename Each>
void server_codec::respond(stream& s, bool whole, int status, std::size_t count, const Each& each,
                           std::int64_t length, std::string_view body) {
  if (s.responded) return;
  if (status < 100 || status > 999 || status == 101) return;
  if (status < 200) {
    if (whole) submit_head(s, count, each, status, -1, false);
    return;
  }
  const bool bodiless = s.head_method || status == 204 || status == 304;
  if (whole) {
    std::int64_t cl = static_cast<std::int64_t>(body.size());
    if (s.head_method && body.empty() && length >= 0) cl = length;
    if (bodiless || body.empty()) {
      submit_head(s, count, each, status, cl, false);
      return;
    }
    s.out.assign(body);
    s.out_off = 0;
    s.out_eof = true;
    held_ += body.size();
    submit_head(s, count, each, status, cl, true);
    return;
  }
  // A streamed response: DATA frames follow as the handler writes.
  submit_head(s, count, each, status, length, !bodiless);
  if (bodiless) s.out_eof = true;
}

void server_codec::encode_object(std::uint8_t kind, const reply_object& obj, std::string& wire) {
  // The one typed reply of this codec: a whole response for a stream (the worker's
  // session_channel makes them). Other objects go as bytes; one without a stream is dropped,
  // as its bytes would be (they name no stream).
  if (obj.what() != reply_object::form::http2_stream) return;
  const auto& sr = static_cast<const stream_reply&>(obj);
  if (static_cast<h1::out>(kind) != h1::out::whole || sr.inner.what() != reply_object::form::http1_response)
    return stream_codec::encode_object(kind, obj, wire);
  const auto& rr = static_cast<const h1::response_reply&>(sr.inner);
  auto* s = stream_for_reply(sr.stream);
  if (!s) return;
  const auto& h = rr.head;
  respond(
      *s, true, h.status, h.headers.items.size(),
      [&](const auto& f) {
        for (const auto& x : h.headers.items) f(x.name, x.value);
      },
      h.content_length, rr.body);
}

void server_codec::encode(std::uint8_t kind, std::string_view data, std::string& wire) {
  (void)wire;  // frames come out of take_output(), which the connection calls next
  std::uint32_t id = 0;
  if (!take_stream(data, id)) return;
  auto* s = stream_for_reply(id);
  if (!s) return;
  switch (static_cast<h1::out>(kind)) {
    case h1::out::whole:
    case h1::out::head: {
      if (s->responded) return;
      h1::wire::reader rd{data};
      std::uint32_t status = 0, count = 0;
      std::string_view reason, fields;
      std::uint64_t length = 0;
      std::uint8_t close = 0;
      if (!rd.u32(status) || !rd.str(reason) || !rd.fields(fields, count) || !rd.u64(length) || !rd.u8(close)) return;
      if (status > 999) return;
      respond(
          *s, kind == static_cast<std::uint8_t>(h1::out::whole), static_cast<int>(status), count,
          [&](const auto& f) { for_each_field(fields, f); }, static_cast<std::int64_t>(length), rd.in);
      return;
    }
    case h1::out::body:
      if (!s->responded || !s->has_provider || s->out_eof || data.empty()) return;
      s->out.append(data);
      held_ += data.size();
      if (s->deferred) {
        s->deferred = false;
        nghttp2_session_resume_data(session_, s->id);
      }
      return;
    case h1::out::end: {
      if (!s->responded || s->out_eof) return;
      s->out_eof = true;
      if (!s->has_provider) return;
      std::string_view in = data;
      if (!s->resp_trailers.decode_from(in)) s->resp_trailers.items.clear();
      if (s->deferred) {
        s->deferred = false;
        nghttp2_session_resume_data(session_, s->id);
      }
      return;
    }
    case h1::out::continue_100:
      if (s->req.expect_continue && !s->responded) {
        s->req.expect_continue = false;
        nghttp2_nv nv = make_nv(":status", "100");
        nghttp2_submit_headers(session_, NGHTTP2_FLAG_NONE, s->id, nullptr, &nv, 1, nullptr);
      }
      return;
    default:
      if (kind == kReplyReset) nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
      return;
  }
}

}  // namespace

std::unique_ptr<stream_codec> make_server_codec(const options& opts) { return std::make_unique<server_codec>(opts); }

bool stream_needs_handler(const stream_codec& codec, std::uint32_t stream) noexcept {
  // The exact type, compared (a tenth of a dynamic_cast; the class is final).
  if (typeid(codec) != typeid(server_codec)) return false;
  return static_cast<const server_codec&>(codec).stream_needs_handler(stream);
}

std::unique_ptr<stream_codec> make_upgrade_codec(const options& opts, std::string_view settings,
                                                 const http1::request_head& request, bool head_method) {
  auto c = std::make_unique<server_codec>(opts);
  if (!c->upgrade(settings, request, head_method)) return nullptr;
  return c;
}

}  // namespace swactor::protocols::http2
