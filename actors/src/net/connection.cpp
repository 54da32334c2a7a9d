#include "net/connection.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include <asio/post.hpp>

#include "net/conn_host.hpp"
#include "swactor/actors/errors.hpp"
#include "swactor/core/log.hpp"
#include "swactor/protocols/http2.hpp"

namespace swactor::net {
namespace {

// A connection that keeps its socket full gets this many reads in a row before the loop's
// other work runs (fairness); then it continues from a posted callback.
constexpr int kReadsPerWakeup = 4;
// Unconsumed input grows by at least this much per read (a partial frame).
constexpr std::size_t kMinAppend = 16 * 1024;
// A partial frame up to this size takes reads into the loop's buffer, appended after; a
// larger one is read into in place.
constexpr std::size_t kReadAfterAbove = 4 * 1024;
// A drained partial-frame buffer up to this capacity is kept (a small frame's tail); a
// larger one is freed, so an idle connection does not keep it.
constexpr std::size_t kKeepPending = 96;
// Queued output pieces up to this size are joined into one (fewer iovecs and strings).
constexpr std::size_t kJoinBelow = 16 * 1024;
// What a corked connection holds back at most before it writes anyway.
constexpr std::size_t kCorkAtMost = 64 * 1024;
constexpr int kMaxIov = 64;

// The time of a read, for the heartbeat and last_receive_ms: CLOCK_MONOTONIC (steady_clock's
// clock) at its coarse resolution, a clock tick (a few ms) but cheaper than steady_clock::now()
// on every read. One tick is added, so the heartbeat never sees a connection idle for longer
// than it was.
const std::chrono::nanoseconds coarse_tick = [] {
  timespec r{};
  ::clock_getres(CLOCK_MONOTONIC_COARSE, &r);
  return std::chrono::seconds(r.tv_sec) + std::chrono::nanoseconds(r.tv_nsec);
}();

std::chrono::steady_clock::time_point read_time() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return std::chrono::steady_clock::time_point(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec) + coarse_tick));
}

bool would_block(const std::error_code& ec) {
  return ec == std::errc::operation_would_block || ec == std::errc::resource_unavailable_try_again;
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

connection::connection(conn_host& host, std::unique_ptr<transport> t,
                       std::unique_ptr<protocols::stream_codec> c, std::uint64_t id, int listener,
                       std::size_t out_limit)
    : last_activity(std::chrono::steady_clock::now()),
      listener_(listener),
      host_(host),
      transport_(std::move(t)),
      codec_(std::move(c)),
      id_(id),
      out_limit_(out_limit),
      short_read_drains_(transport_->short_read_drains()) {}

connection::~connection() = default;

void connection::start() {
  // A first read without waiting: bytes may have come before the socket was registered.
  // Posted: the caller finishes registering before any event reaches the sink.
  asio::post(host_.io(), [self = shared_from_this()] { self->read_ready(); });
}

std::int64_t connection::last_receive_ms() const noexcept {
  if (!received_) return 0;
  auto ago = std::chrono::steady_clock::now() - last_activity;
  return now_ms() - std::chrono::duration_cast<std::chrono::milliseconds>(ago).count();
}

// -- reading --------------------------------------------------------------------------------

[[gnu::always_inline]] inline void connection::arm_read() {
  if (closed_ || paused_ || waiting_read_) return;
  waiting_read_ = true;
  if (owner_given_)
    transport_->wait_readable_again();
  else
    transport_->wait_readable(owner_ref());
}

void connection::peer_closed() {
  const bool cut = codec_->mid_message();
  if (codec_->outstanding() > 0 && !cut) {
    // A half-close after the last request (`curl`-style clients do it): answer first.
    peer_eof_ = true;
    return;
  }
  finish(false, cut ? "closed by peer in the middle of a request" : "closed by peer");
}

void connection::on_readable(std::error_code ec) {
  waiting_read_ = false;
  if (closed_) return;
  if (ec) {
    if (ec != asio::error::operation_aborted) finish(true, ec.message());
    return;
  }
  // The transport's callback holds a reference: the sink may close and unregister us.
  read_ready();
}

[[gnu::always_inline]] inline void connection::consume(std::string_view input, bool input_is_pending) {
  auto used = process(input);
  if (closed_) return;
  if (codec_->failed()) {
    if (!failure_logged_) {
      failure_logged_ = true;
      log::warning("closing session {} from {}: {}", id_, remote, codec_->reason());
    }
    // Nothing after the bad bytes is parsed; what the codec still owes (earlier pipelined
    // replies, its error response) goes out before the close.
    std::string().swap(pending_);
    after_codec();
    return;
  }
  if (input_is_pending) {
    pending_.erase(0, used);
    if (pending_.empty() && pending_.capacity() > kKeepPending) std::string().swap(pending_);
  } else if (used < input.size()) {
    pending_.assign(input.substr(used));
  }
}

[[gnu::always_inline]] inline void connection::read_ready() {
  for (int round = 0; round < kReadsPerWakeup; ++round) {
    if (closed_ || paused_ || waiting_read_) return;
    // A connection with a large partial frame reads after it; any other reads into the
    // loop's buffer and keeps nothing once its codec consumed everything, or appends what
    // came to its small partial frame (an HTTP head in pieces): such a connection (a slow
    // client, maybe many) holds a buffer the size of its bytes, not of a read.
    const bool own = pending_.size() >= kReadAfterAbove;
    char* dst;
    std::size_t cap;
    std::size_t old = pending_.size();
    if (own) {
      cap = std::max(kMinAppend, pending_.capacity() - old);
      pending_.resize(old + cap);
      dst = pending_.data() + old;
    } else {
      cap = host_.read_buffer_size();
      dst = host_.read_buffer();
    }
    std::error_code ec = no_error;
    auto n = transport_->read_some(dst, cap, ec);
    if (own) pending_.resize(old + n);  // commit
    if (ec && !would_block(ec)) {
      finish(true, ec.message());
      return;
    }
    if (n == 0 && !ec) {
      peer_closed();
      return;
    }
    if (n > 0) {
      last_activity = read_time();
      received_ = true;
      // Every caller (on_readable, the posted continuation, resume, start) holds a reference.
      if (own) {
        consume(pending_, true);
      } else if (!pending_.empty()) {
        pending_.append(dst, n);
        consume(pending_, true);
      } else {
        consume(std::string_view(dst, n), false);
      }
      if (closed_) return;
    }
    // Drained: the wait ends at the next readiness edge.
    if (n == 0 || (n < cap && short_read_drains_)) {
      arm_read();
      return;
    }
  }
  if (!closed_ && !paused_ && !waiting_read_)
    asio::post(host_.io(), [self = shared_from_this()] { self->read_ready(); });
}

std::size_t connection::process(std::string_view input) {
  std::size_t used = 0;
  decoding_ = true;
  // Handlers run inside decode() may decode another connection (a local send that
  // resumes it): the outer one is put back after.
  struct decoding_scope {
    conn_host& host;
    connection* outer;
    ~decoding_scope() { host.set_decoding(outer); }
  } scope{host_, host_.decoding()};
  host_.set_decoding(this);
  for (;;) {
    codec_switched_ = false;
    used += codec_->decode(input.substr(used), *this);
    retired_codec_.reset();
    // (A plain codec has no successor, output, blocking or end of its own to ask about.)
    const bool plain = codec_->plain() && !codec_switched_;
    if (auto next = plain ? nullptr : codec_->take_successor()) {
      // A switch found by decoding (HTTP/1.1 -> HTTP/2): the old codec's last words (a 101)
      // go before anything of the new one, which then decodes the rest of this input.
      std::string last;
      if (codec_->take_output(last) && !last.empty()) (void)queue_bytes(last, true);
      codec_ = std::move(next);
      codec_switched_ = true;
      deadline_armed_ = false;
    }
    auto& deferred = host_.deferred_replies();
    const bool replied = !deferred.replies.empty();
    // Only this connection is decoding on this loop, so every deferred reply is ours. The
    // buffers are the loop's: cleared, never shrunk, no allocation per reply.
    // All of them in one write: a pipelined batch costs one syscall, not one per reply.
    if (replied && !closed_ && deferred.unframed == 0) {
      // Every reply was framed as it came (a codec that encodes while decoding): the kept
      // bytes are the wire, written from where they are.
      (void)queue_bytes(deferred.data, true);
    } else if (replied && !closed_) {
      std::string local;
      std::string* wire = host_.take_encode_buffer();
      if (!wire) wire = &local;
      wire->clear();
      for (const auto& r : deferred.replies) {
        auto data = std::string_view(deferred.data).substr(r.offset, r.size);
        if (r.kind == protocols::kind_framed) {
          wire->append(data);
          continue;
        }
        if (r.kind != protocols::kind_file) {
          encode_into(r.kind, data, *wire);
          continue;
        }
        // A file range goes behind the bytes encoded so far.
        (void)queue_bytes(*wire, true);
        wire->clear();
        (void)send_file_reply(data);
        if (closed_) break;
      }
      if (!closed_) (void)queue_bytes(*wire, true);  // each was checked against the limit when it was deferred
      if (wire != &local) host_.return_encode_buffer();
    }
    deferred.clear();
    // (A drain is not reported while decoding: check_drained() after the loop.)
    if (!plain) write_codec_output();
    // After a switch the new codec gets the rest of this read at once; so does a codec
    // that stopped at its pipelining bound and was unblocked by inline replies.
    bool again = codec_switched_ || (replied && (plain || (!codec_->blocked() && !codec_->done())));
    if (!again || closed_ || close_after_decode_ || paused_ || codec_->failed() ||
        (used >= input.size() && !codec_->holds_events()))
      break;
  }
  decoding_ = false;
  if (close_after_decode_ && !closed_) {
    close_after_decode_ = false;
    close(false);
  }
  check_drained();  // the checks made while decoding waited for this
  if (!closed_ && !codec_->failed()) after_codec();
  return used;
}

void connection::on_ahead(std::span<const protocols::event> upcoming) {
  if (!closed_) host_.sink().on_ahead(*this, upcoming);
}

bool connection::takes_objects() const noexcept { return host_.sink().takes_objects(); }

bool connection::on_event(const protocols::event& e) {
  if (closed_) return false;
  if (e.kind == static_cast<std::uint8_t>(protocols::http2::ev::request) ||
      e.kind == static_cast<std::uint8_t>(protocols::http2::ev::reset))
    host_.count_stream(e.kind == static_cast<std::uint8_t>(protocols::http2::ev::reset));
  if (!host_.sink().on_event(*this, e)) {
    sink_paused_ = true;
    set_paused();
  }
  return !paused_ && !codec_switched_ && !closed_ && !close_after_decode_;
}

[[gnu::always_inline]] inline void connection::after_codec() {
  if (closed_) return;
  const bool plain = codec_->plain();
  const bool owes = !plain && codec_->outstanding() > 0;
  if (!plain && codec_->done()) {
    close(false);
    return;
  }
  if (codec_->failed()) {
    codec_blocked_ = true;
    set_paused();
    // A codec with nothing to say (the framings) ends the connection now.
    if (!owes && !codec_->done()) abort(codec_->reason());
    return;
  }
  if (peer_eof_ && !owes) {
    close(false);  // after the last reply is written
    return;
  }
  bool blocked = (!plain && codec_->blocked()) || peer_eof_;
  if (blocked == codec_blocked_) return;
  codec_blocked_ = blocked;
  if (blocked) {
    set_paused();
  } else if (!sink_paused_) {
    // Unblocked by a reply: decode what waited and read again.
    paused_ = true;
    sink_paused_ = true;
    resume();
  }
}

bool connection::deadline_passed(std::chrono::steady_clock::time_point now) noexcept {
  if (closed_) return false;
  auto d = codec_->timeout();
  if (d.ms == 0) {
    deadline_armed_ = false;
    return false;
  }
  if (!deadline_armed_ || d.epoch != deadline_epoch_) {
    deadline_armed_ = true;
    deadline_epoch_ = d.epoch;
    deadline_start_ = now;
    return false;
  }
  return now - deadline_start_ >= std::chrono::milliseconds(d.ms);
}

void connection::expire() {
  if (closed_) return;
  std::string out;
  auto why = codec_->expire(out);
  deadline_armed_ = false;
  if (!out.empty()) (void)queue_bytes(out);
  // A codec that names a next phase goes on (a WebSocket ping, or its close handshake
  // waiting for the reply; HTTP/2 after resetting idle streams); the others are done.
  const bool ends = codec_->done() || codec_->failed() || codec_->timeout().ms == 0;
  if (!why.empty()) {
    if (ends)
      log::info("closing session {} from {}: {}", id_, remote, why);
    else
      log::info("session {} from {}: {}", id_, remote, why);
  }
  if (ends) {
    close(false);
    return;
  }
  deliver_held_events();
}

void connection::deliver_held_events() {
  // Events the codec made without input (HTTP/2: the streams it just reset) reach the sink
  // now, not with the peer's next bytes: a handler waiting on such a stream learns at once.
  // Posted: this may run inside a handler's send, or inside another connection's decode.
  if (closed_ || decoding_ || !codec_->holds_events()) return;
  asio::post(host_.io(), [self = shared_from_this()] {
    if (self->closed_ || self->paused_ || self->decoding_ || !self->codec_->holds_events()) return;
    self->consume(self->pending_, true);
  });
}

void connection::abandon() {
  if (closed_) return;
  std::string out;
  codec_->abandon(out);
  if (!out.empty()) (void)queue_bytes(out);
  after_codec();
}

void connection::resume() {
  sink_paused_ = false;
  if (!paused_ || closed_ || codec_blocked_) return;
  paused_ = false;
  // Posted: resume() may run inside another connection's decode, which uses the loop's
  // read buffer. The next read is speculative: readiness edges seen while paused are gone.
  asio::post(host_.io(), [self = shared_from_this()] {
    if (self->closed_ || self->paused_) return;
    if ((!self->pending_.empty() || self->codec_->holds_events()) && !self->decoding_) {
      self->consume(self->pending_, true);
      if (self->closed_ || self->paused_) return;
    }
    self->read_ready();
  });
}

void connection::replace_codec(std::unique_ptr<protocols::stream_codec> c) {
  retired_codec_ = std::move(codec_);
  codec_ = std::move(c);
  codec_switched_ = true;
}

[[gnu::always_inline]] inline void connection::write_codec_output() {
  std::string out;
  // Forced: a codec's own output (HTTP/2 frames) cannot be dropped without breaking the
  // protocol; what it holds back already counts against the limit (held()).
  if (codec_->take_output(out) && !out.empty()) (void)queue_bytes(out, true);
  check_drained();
}

[[gnu::always_inline]] inline void connection::check_drained() {
  // Not while this connection decodes: what the sink does on a drain (the reactor pumps a
  // static file) may send on it, and a send then would be kept in the loop's buffer after
  // this decode() flushed it. process() checks again once it is done.
  if (watching_ && !closed_ && !decoding_ && queued_bytes() <= out_limit_ / 2) {
    watching_ = false;
    host_.sink().on_drained(*this);
  }
}

// -- writing --------------------------------------------------------------------------------

// Replies made inside decode() wait in the loop's buffer until it returns (see send()). These
// run per reply: inline, and `queued` is the caller's queued_bytes().
inline std::error_code connection::room_to_keep(std::size_t queued, std::size_t size) {
  const std::size_t waiting = queued + host_.deferred_replies().data.size();
  return over_limit(waiting, size) ? make_error_code(server_errc::output_buffer_full) : std::error_code();
}

inline void connection::keep_reply(std::uint8_t kind, std::string_view data) {
  auto& kept = host_.deferred_replies();
  kept.replies.push_back({kind, kept.data.size(), data.size()});
  kept.data.append(data);
  if (kind != protocols::kind_framed) ++kept.unframed;
}

inline bool connection::only_framed_kept() {
  return host_.deferred_replies().unframed == 0;
}

std::error_code connection::send_slow(std::string_view data, std::uint8_t kind, bool force) {
  if (closed_ || close_requested_ || close_after_decode_) return server_errc::session_not_found;
  // (kind 0 comes here only behind kept replies of this decode(): send() wrote the rest.)
  if (kind == protocols::kind_consumed) return consumed(data);
  if (kind == protocols::kind_framed) return make_error_code(std::errc::invalid_argument);
  const std::size_t queued = queued_bytes();
  if (!force && over_limit(queued, data.size())) return server_errc::output_buffer_full;
  if (decoding_) {
    // A handler that answered inline, from inside decode(): the codec is not re-entered;
    // the reply is encoded as soon as decode() returns (raw bytes after it wait with it, so
    // they stay in order).
    if (auto ec = room_to_keep(queued, data.size())) return ec;
    keep_reply(kind, data);
    return {};
  }
  if (kind == protocols::kind_file) {
    auto ec = send_file_reply(data);
    after_codec();
    return ec;
  }
  auto ec = encode_now(kind, data);
  deliver_held_events();  // a reply that closed a stream early (RST_STREAM NO_ERROR)
  // Last: it may close the connection, and the host's reference was the last one (a
  // reactor's send holds none): nothing of `this` may be touched after it.
  after_codec();
  return ec;
}

std::error_code connection::send_object(const protocols::reply_object& r, std::uint8_t kind) {
  // Inside decode() the codec writes it at once only if it may, and only behind replies that
  // are framed already: one kept as bytes (a streamed head, a file) is framed when decode()
  // returns, for the oldest request. Otherwise it goes as bytes, kept like any reply.
  if (decoding_ && !(codec_->encodes_while_decoding() && only_framed_kept()))
    return send(protocols::reply_wire(r).view(), kind);
  if (closed_ || close_requested_ || close_after_decode_) return server_errc::session_not_found;
  const std::size_t queued = queued_bytes();
  // The reply's size only matters behind more than half the limit of other output (see
  // over_limit()); wire_size() walks its fields.
  const std::size_t waiting = queued + (decoding_ ? host_.deferred_replies().data.size() : 0);
  const std::size_t size = waiting > out_limit_ / 2 ? r.wire_size() : 0;
  if (over_limit(queued, size)) return server_errc::output_buffer_full;
  if (!decoding_) {
    auto ec = encode_now(kind, {}, &r);
    deliver_held_events();
    after_codec();  // last: it may close the connection (see send())
    return ec;
  }
  if (auto ec = room_to_keep(queued, size)) return ec;
  // Framed now, straight into the kept replies of this decode() (the codec appends): one
  // write for a batch, no copy in between.
  auto& kept = host_.deferred_replies();
  const std::size_t at = kept.data.size();
  codec_->encode_object(kind, r, kept.data);
  kept.replies.push_back({protocols::kind_framed, at, kept.data.size() - at});
  return {};
}

std::error_code connection::consumed(std::string_view data) {
  protocols::consumed_note n;
  if (!n.decode(data)) return make_error_code(std::errc::invalid_argument);
  codec_->consumed(n.stream, n.bytes);
  // Inside decode() (a handler that read inline) its WINDOW_UPDATE goes out with the rest.
  if (!decoding_) write_codec_output();
  return {};
}

std::error_code connection::encode_now(std::uint8_t kind, std::string_view data, const protocols::reply_object* obj) {
  // The loop's encode buffer (no allocation per reply); a local one if this is re-entered
  // (a close inside queue_bytes() can run another connection's handler, which may send).
  std::string local;
  std::string* wire = host_.take_encode_buffer();
  if (!wire) wire = &local;
  wire->clear();
  encode_into(kind, data, *wire, obj);
  auto ec = queue_bytes(*wire, true);  // send() checked the limit before the codec ran
  if (wire != &local) host_.return_encode_buffer();
  return ec;
}

void connection::encode_into(std::uint8_t kind, std::string_view data, std::string& wire,
                             const protocols::reply_object* obj) {
  if (obj)
    codec_->encode_object(kind, *obj, wire);
  else
    codec_->encode(kind, data, wire);
  codec_->take_output(wire);  // e.g. an error response the codec held until this reply went out
  if (auto next = codec_->take_successor()) {
    // An accepted upgrade: what follows on this connection is the new protocol's. Safe to
    // drop the old codec here: this never runs inside a decode().
    codec_ = std::move(next);
    codec_switched_ = true;
    deadline_armed_ = false;
  }
}

std::error_code connection::queue_bytes_slow(std::string_view data, bool force) {
  if (closed_ || close_requested_) return server_errc::session_not_found;
  if (!force && over_limit(out_bytes_, data.size())) return server_errc::output_buffer_full;
  if (data.empty()) return {};
  // A corked host (a batch of replies from a worker) holds this write back when the
  // connection already wrote once in the batch, or had several writes in the last one.
  const bool hold = out_.empty() && host_.corked() && (wrote_in_period_ == host_.cork_period() || hold_first_);
  if (out_.empty() && !hold) {
    // Most replies fit in the socket buffer: write now, copy nothing.
    if (host_.corked()) wrote_in_period_ = host_.cork_period();
    return write_now(data);
  }
  keep(data, hold);
  return {};
}

std::error_code connection::wrote_part(std::string_view data, std::size_t n, const std::error_code& ec) {
  if (ec && !would_block(ec)) {
    finish(true, ec.message());
    return {};  // the peer is gone; on_close tells the module
  }
  keep(data.substr(n), false);
  return {};
}

void connection::keep(std::string_view data, bool hold) {
  out_bytes_ += data.size();
  // Small pieces join the last queued one: one string, one iovec, for a batch of replies.
  if (!out_.empty() && !out_.back().file && out_.back().bytes.size() + data.size() <= kJoinBelow)
    out_.back().bytes.append(data);
  else
    out_.push_back({std::string(data), nullptr});
  if (hold || corked_) {
    // Written with the rest of the batch when the host uncorks.
    if (corked_) {
      held_more_ = true;
    } else {
      corked_ = true;
      host_.note_corked(shared_from_this());
    }
    // A batch with a lot for one connection (large replies) is not held back further: held
    // bytes count against the output limit, and the socket would have taken them.
    if (!waiting_write_ && out_bytes_ >= kCorkAtMost) flush();
    return;
  }
  if (!waiting_write_) {
    waiting_write_ = true;
    transport_->wait_writable(owner_ref());
  }
}

void connection::uncorked() {
  if (!corked_) return;
  corked_ = false;
  // Several writes in this period (a direct one and held ones, or held ones only): hold the
  // first of the next period too. One held write (its first, held on a guess): do not.
  hold_first_ = wrote_in_period_ == host_.cork_period() || held_more_;
  held_more_ = false;
  if (!closed_ && !waiting_write_) flush();
}

connection::file_part::~file_part() {
  if (fd >= 0) ::close(fd);
}

std::error_code connection::send_file_reply(std::string_view data) {
  auto ec = send_file(data);
  // The response's head is out: one with a hole in it must not look complete.
  if (ec && !closed_ && ec != server_errc::session_not_found) finish(true, "file reply not sent: " + ec.message());
  return ec;
}

std::error_code connection::send_file(std::string_view data) {
  protocols::file_range fr;
  if (!fr.decode(data)) return make_error_code(std::errc::invalid_argument);
  if (fr.length == 0) return {};
  auto part = std::make_unique<file_part>();
  part->fd = ::open(fr.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (part->fd < 0) return {errno, std::system_category()};
  struct stat st{};
  if (::fstat(part->fd, &st) != 0) return {errno, std::system_category()};
  if (!S_ISREG(st.st_mode) || fr.offset > static_cast<std::uint64_t>(st.st_size) ||
      fr.length > static_cast<std::uint64_t>(st.st_size) - fr.offset)
    return make_error_code(std::errc::invalid_argument);
  part->offset = fr.offset;
  part->remaining = fr.length;
  std::string before, after;
  if (!codec_->frame_file(fr.length, before, after)) return {};  // HEAD: no body bytes
  // The head leaves with the file's first bytes, in full segments (nginx's tcp_nopush).
  // Measured on loopback with a 1 MiB file: a head sent alone made the client's receive
  // buffer settle at a fifth of the size, so most of the file was pushed out from the
  // client's ACKs, at twice the client's CPU per response.
  transport_->cork(true);
  part->corked = true;
  if (auto ec = queue_bytes(before, true)) {
    transport_->cork(false);
    return ec;
  }
  if (closed_ || close_requested_) return server_errc::session_not_found;
  out_bytes_ += kFileWeight;
  out_.push_back({std::string(), std::move(part)});
  if (!waiting_write_) flush();  // the socket may take it now
  if (!after.empty()) (void)queue_bytes(after, true);
  return {};
}

connection::file_step connection::write_front_file() {
  // Per call at most this much: a big file does not keep the loop from its other connections.
  constexpr std::size_t kFileBurst = 4u << 20;
  auto& f = *out_.front().file;
  std::size_t sent = 0;
  while (f.remaining > 0 && sent < kFileBurst) {
    std::error_code ec;
    auto want = static_cast<std::size_t>(std::min<std::uint64_t>(f.remaining, kFileBurst - sent));
    auto n = transport_->write_file(f.fd, f.offset, want, ec);
    if (ec) {
      if (would_block(ec)) return file_step::blocked;
      finish(true, "sending a file: " + ec.message());
      return file_step::ended;
    }
    if (n == 0) {
      finish(true, "a file ended before its announced length (truncated while being sent)");
      return file_step::ended;
    }
    f.offset += n;
    f.remaining -= n;
    sent += n;
  }
  if (f.remaining > 0) {
    // A burst went out and the socket still takes more: go on after the loop's other work.
    asio::post(host_.io(), [self = shared_from_this()] {
      if (!self->closed_ && !self->waiting_write_) self->flush();
    });
    return file_step::yielded;
  }
  if (f.corked) transport_->cork(false);  // sends the last partial segment
  out_bytes_ -= kFileWeight;
  out_.erase(out_.begin());
  return file_step::done;
}

void connection::on_writable(std::error_code ec) {
  waiting_write_ = false;
  if (closed_) return;
  if (ec) {
    if (ec != asio::error::operation_aborted) finish(true, ec.message());
    return;
  }
  flush();
}

void connection::flush() {
  bool posted = false;
  while (!out_.empty()) {
    if (out_.front().file) {
      auto step = write_front_file();
      if (step == file_step::ended) return;
      // A burst continuation is posted (the socket was not full): no writability wait.
      posted = step == file_step::yielded;
      if (step != file_step::done) break;
      check_drained();
      if (closed_) return;
      continue;
    }
    iovec iov[kMaxIov];
    int count = 0;
    for (std::size_t i = 0; i < out_.size() && count < kMaxIov && !out_[i].file; ++i, ++count) {
      std::size_t skip = i == 0 ? front_sent_ : 0;
      iov[count].iov_base = out_[i].bytes.data() + skip;
      iov[count].iov_len = out_[i].bytes.size() - skip;
    }
    std::error_code ec = no_error;
    auto n = transport_->write_some(iov, count, ec);
    if (ec && !would_block(ec)) {
      finish(true, ec.message());
      return;
    }
    out_bytes_ -= n;
    std::size_t done = 0;
    while (n > 0 && done < out_.size()) {
      std::size_t left = out_[done].bytes.size() - front_sent_;
      if (n >= left) {
        n -= left;
        front_sent_ = 0;
        ++done;
      } else {
        front_sent_ += n;
        n = 0;
      }
    }
    out_.erase(out_.begin(), out_.begin() + static_cast<std::ptrdiff_t>(done));
    check_drained();
    if (closed_) return;
    if (ec) break;  // would block: wait below
  }
  if (!out_.empty()) {
    if (!waiting_write_ && !posted) {
      waiting_write_ = true;
      transport_->wait_writable(owner_ref());
    }
    return;
  }
  std::vector<out_item>().swap(out_);
  if (close_requested_) {
    transport_->shutdown();
    finish(codec_->failed(), codec_->failed() ? std::string_view(codec_->reason()) : "closed by server");
  }
}

// -- closing --------------------------------------------------------------------------------

void connection::close(bool reset) {
  if (closed_) return;
  if (reset) {
    uncorked();  // bytes sent before the reset go out before it, as without a cork
    if (closed_) return;
    finish(true, "reset by server", true);
    return;
  }
  if (decoding_) {
    // Replies deferred in this decode() go out first: close once they are queued.
    close_after_decode_ = true;
    return;
  }
  close_requested_ = true;
  if (out_.empty()) {
    transport_->shutdown();
    finish(codec_->failed(), codec_->failed() ? std::string_view(codec_->reason()) : "closed by server");
  }
}

bool connection::go_away() {
  if (closed_ || close_requested_) return false;
  std::string out;
  if (!codec_->go_away(out)) return false;
  deadline_armed_ = false;  // the close handshake's timeout starts now
  if (!out.empty()) (void)queue_bytes(out, true);
  after_codec();  // a codec with nothing in flight is done at once (HTTP/2 after its GOAWAY)
  return true;
}

void connection::abort(std::string_view reason) { finish(true, reason); }

void connection::drop() noexcept {
  if (closed_) return;
  closed_ = true;
  transport_->close(false);
}

void connection::finish(bool aborted, std::string_view reason, bool reset) {
  if (closed_) return;
  auto self = shared_from_this();  // the host drops its reference below
  closed_ = true;
  aborted_ = aborted;
  transport_->close(reset);
  out_.clear();
  out_bytes_ = 0;
  std::string().swap(pending_);
  host_.on_connection_closed(*this, aborted, reason);
  // The last reference goes when the loop next turns, not here: finish() is reached from
  // inside a send (a write that failed at once, a reply that closes) whose callers, up to
  // the reactor's conn_host::send, hold no reference and still use the object after it.
  asio::post(host_.io(), [last = std::move(self)] {});
}

}  // namespace swactor::net
