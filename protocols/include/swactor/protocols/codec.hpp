#pragma once
// The sans-I/O codec interface every stream protocol implements: bytes in, typed events
// out; typed replies in, bytes out. A codec never touches a socket, a loop or a clock, so
// it is tested on byte strings (split at every byte) and fuzzed in isolation. The
// connection layer (actors/) owns the bytes; a codec only looks at them.
//
// Zero-copy contract: decode() gets a view of every byte not consumed yet (the connection
// keeps unconsumed bytes and appends new ones); the views inside the events it emits point
// into that input and are valid only during the sink call.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

#include "swactor/core/wire.hpp"

namespace swactor::protocols {

// An event in typed form (the HTTP/1 request head as views into the codec's buffers), for
// a sink in the same process: it spares writing the wire form and reading it back. A codec
// hands one only to a sink whose takes_objects() is true; encode_to() appends the bytes the
// event's `data` would have held (the wire form, for a sink that must keep or forward them).
class event_object {
 public:
  virtual void encode_to(std::string& out) const = 0;

 protected:
  ~event_object() = default;
};

// A reply in typed form (the HTTP/1 response head and body), from a handler in the same
// process: a codec that knows the type writes it without its wire form; any other codec
// gets that wire form (encode_to) through encode(). `kind` says what it is, as for bytes.
class reply_object {
 public:
  // What a reply object is, for a codec that writes a type it knows without a cast on
  // trust: anything else goes through its wire form (encode_to).
  enum class form : std::uint8_t { other, http1_response, http2_stream };

  virtual void encode_to(std::string& out) const = 0;
  // The wire form's size, for the connection's output limit.
  virtual std::size_t wire_size() const noexcept = 0;
  form what() const noexcept { return form_; }

 protected:
  explicit reply_object(form f = form::other) noexcept : form_(f) {}
  ~reply_object() = default;

 private:
  form form_;
};

// A typed reply's wire form, for a path that carries bytes (another process, another codec),
// written into a buffer of this thread: no allocation per reply. One made while another is
// alive (a send that ran a handler that sends) gets a buffer of its own.
class reply_wire {
 public:
  explicit reply_wire(const reply_object& r) {
    auto& s = slot();
    out_ = s.busy ? &local_ : &s.buf;
    s.busy = true;
    out_->clear();
    r.encode_to(*out_);
  }
  ~reply_wire() {
    if (out_ != &local_) slot().busy = false;
  }
  reply_wire(const reply_wire&) = delete;
  reply_wire& operator=(const reply_wire&) = delete;
  std::string_view view() const noexcept { return *out_; }

 private:
  struct shared {
    std::string buf;
    bool busy = false;
  };
  static shared& slot() noexcept {
    thread_local shared s;
    return s;
  }
  std::string local_;
  std::string* out_;
};

// One decoded protocol event. `kind` is codec-defined (0 = one framed message for the
// framing codecs); it is what crosses IPC in process mode, so it must stay stable. With
// `object` set, `data` is empty and the object is the event (valid during the sink call).
struct event {
  std::uint8_t kind = 0;
  std::string_view data;
  const event_object* object = nullptr;
};

// A reply kind every connection understands, whatever its codec: a range of a file that
// the connection writes itself (sendfile(2) on a plain socket, pread + write under TLS),
// so file bytes never sit in the output queue or cross IPC. `data` is file_range::encode().
// The codec frames it (stream_codec::frame_file); the connection opens the file when the
// reply is queued and reads it only as the socket takes bytes (the output's backpressure).
inline constexpr std::uint8_t kind_file = 0xF0;

struct file_range {
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  std::string path;

  // u64 offset, u64 length (little endian, swactor/core/wire.hpp), then the path bytes.
  std::string encode() const {
    std::string s;
    s.reserve(16 + path.size());
    wire::writer w(s);
    w.u64(offset);
    w.u64(length);
    s.append(path);
    return s;
  }
  // False on a truncated input, an empty path or one with a NUL in it.
  bool decode(std::string_view in) {
    if (in.size() <= 16) return false;
    wire::reader r(in.substr(0, 16));
    offset = r.u64();
    length = r.u64();
    path.assign(in.substr(16));
    return path.find('\0') == std::string::npos;
  }
};

// A kind every connection understands that is not a reply: the sink took `bytes` of the request body of `stream` (consumed_note), so a
// flow-controlled protocol lets the peer send that much more (HTTP/2: WINDOW_UPDATE). The
// connection hands it to stream_codec::consumed() at once, whatever is queued: it is never
// refused for a full output queue nor ordered behind replies (it frees input, not output).
inline constexpr std::uint8_t kind_consumed = 0xF1;

// Not a reply kind but a note inside the connection layer: bytes a codec framed already
// (a typed reply it encoded at once), written as they are. Refused from senders.
inline constexpr std::uint8_t kind_framed = 0xF2;

// kind_consumed's data: u32 stream, u32 bytes (little endian).
struct consumed_note {
  std::uint32_t stream = 0;
  std::uint32_t bytes = 0;

  std::string encode() const {
    std::string s;
    wire::writer w(s);
    w.u32(stream);
    w.u32(bytes);
    return s;
  }
  bool decode(std::string_view in) {
    wire::reader r(in);
    stream = r.u32();
    bytes = r.u32();
    return r.done();
  }
};

// Where decode() hands events. Returning false stops decoding after this event: the
// connection is full (look-ahead bound reached) or the sink switched the codec; decode()
// then reports the bytes consumed up to and including this event.
class event_sink {
 public:
  virtual bool on_event(const event& e) = 0;
  // A hint, before on_event(): complete events that this decode() is about to hand over, in
  // order (not necessarily all of them), so the sink can start fetching what they will
  // need; a pipelined batch then overlaps its cache misses instead of taking them one by
  // one. The views are valid during the call only; the events still come through on_event.
  virtual void on_ahead(std::span<const event> upcoming) { (void)upcoming; }
  // Whether this sink takes events in typed form (event::object); asked per event.
  virtual bool takes_objects() const noexcept { return false; }

 protected:
  ~event_sink() = default;
};

class stream_codec {
 public:
  virtual ~stream_codec() = default;

  // "raw", "eof", "length", "http/1.1", ... for log lines and stats.
  virtual std::string_view name() const noexcept = 0;

  // Decodes from `in` (every unconsumed byte) and returns how many bytes it consumed.
  // On a protocol error it sets error()/reason() and returns what it consumed before the
  // bad bytes; the connection then closes with reason() in its log line. Errors are sticky.
  virtual std::size_t decode(std::string_view in, event_sink& out) = 0;

  // Appends the wire form of a reply of `kind` to `out`. Kind 0 is raw bytes for every
  // codec (Swoole's send()); codecs with typed replies define more kinds.
  virtual void encode(std::uint8_t kind, std::string_view data, std::string& out) {
    (void)kind;
    out.append(data);
  }

  // A reply in typed form (see reply_object). The default encodes its wire form.
  virtual void encode_object(std::uint8_t kind, const reply_object& r, std::string& out) {
    encode(kind, reply_wire(r).view(), out);
  }
  // Whether encode()/encode_object() may run while decode() is handing out events (a
  // handler answering inline): the reply is then encoded at once instead of being kept in
  // the connection until decode() returns. Only a codec whose state allows it says yes.
  virtual bool encodes_while_decoding() const noexcept { return false; }

  // A body piece of `length` bytes that the connection writes from a file (kind_file): the
  // codec appends its framing before the piece to `before` and after it to `after`. False
  // when no body bytes may go out now (HEAD, 304, no streamed response open): the piece is
  // dropped. The default sends it raw, like kind 0.
  virtual bool frame_file(std::uint64_t length, std::string& before, std::string& after) {
    (void)length, (void)before, (void)after;
    return true;
  }

  // The sink took `bytes` of the body that `stream` carried (kind_consumed): a codec with
  // flow control opens the peer's window by that much (its frames come out of
  // take_output()). Reports for streams the codec no longer has are ignored.
  virtual void consumed(std::uint32_t stream, std::uint32_t bytes) { (void)stream, (void)bytes; }

  // Bytes the codec answers by itself (a pong, a WINDOW_UPDATE), taken by the connection
  // after each decode(). Empty for the framing codecs.
  virtual bool take_output(std::string& out) {
    (void)out;
    return false;
  }

  // -- connection-level protocol state (the framing codecs keep the defaults) -------------
  // True while the codec takes no more input until replies go out (HTTP: the pipelining
  // bound). The connection stops reading and decoding, and tries again after each encode().
  virtual bool blocked() const noexcept { return false; }
  // True once the protocol says the connection ends when its queued output is written
  // (HTTP: `Connection: close`, an error response). The connection then closes gracefully.
  virtual bool done() const noexcept { return false; }
  // Requests the codec emitted that are not fully answered yet. In process mode the
  // reactor keeps a connection on one worker while this is non-zero, so replies come back
  // in order whatever the dispatch mode.
  virtual std::uint32_t outstanding() const noexcept { return 0; }
  // Events the codec decoded but the sink did not take yet (HTTP/2: a frame slice yields
  // several): the connection calls decode() again, even with no new input, once the sink
  // resumes it.
  virtual bool holds_events() const noexcept { return false; }
  // Reply bytes the codec keeps until the protocol lets them out (HTTP/2: DATA waiting for
  // the peer's flow-control window); they count against the connection's output limit.
  virtual std::size_t held() const noexcept { return 0; }
  // True while a message is partly received (an HTTP request body still arriving): an end
  // of stream then cuts it, so the connection closes at once instead of waiting to answer
  // (the handler reading that body learns the client left).
  virtual bool mid_message() const noexcept { return false; }

  // A codec cannot read a clock: it names the timeout of the phase it is in, and the
  // connection layer measures it. `epoch` changes whenever a new phase starts (the
  // connection restarts its measurement then); ms == 0 means no timeout now.
  struct deadline {
    std::uint32_t ms = 0;
    std::uint32_t epoch = 0;
  };
  virtual deadline timeout() const noexcept { return {}; }
  // The phase's timeout passed: the codec appends its last words (HTTP: 408) and is done();
  // or it appends what the phase ends with and names the next phase in timeout() (a
  // WebSocket ping, then its idle close), and the connection goes on. Returns a reason for
  // the log line ("" = nothing to log: an idle keep-alive's quiet close, a ping).
  virtual std::string_view expire(std::string& out) {
    (void)out;
    return "timeout";
  }
  // The server is stopping (or this process is being replaced): a protocol that can say so
  // appends it (WebSocket: a close with 1001) and returns true; the connection then waits
  // for the peer to finish, within the codec's timeouts. The default says nothing.
  virtual bool go_away(std::string& out) {
    (void)out;
    return false;
  }
  // Whoever answers the requests went away (process mode: the worker died): the codec
  // answers what is outstanding (HTTP: 502) and is done(). No-op when nothing is.
  virtual void abandon(std::string& out) { (void)out; }

  // The codec that takes over after the reply just encoded (HTTP/1.1 -> WebSocket after a
  // 101), or after decode() returned (HTTP/1.1 -> HTTP/2: the client preface, or an
  // `Upgrade: h2c` request): the connection swaps it in at once, and the bytes after the
  // switch go to it. Null when there is none.
  virtual std::unique_ptr<stream_codec> take_successor() { return nullptr; }

  // The message without its framing (delimiter, length header); `message` is one that this
  // codec emitted as kind 0.
  virtual std::string_view payload(std::string_view message) const noexcept { return message; }

  std::error_code error() const noexcept { return failure_ ? failure_->error : std::error_code(); }
  const std::string& reason() const noexcept {
    static const std::string none;
    return failure_ ? failure_->reason : none;
  }
  bool failed() const noexcept { return static_cast<bool>(failure_); }

  // A codec that keeps the defaults of take_output, take_successor, blocked, done and
  // outstanding (the framings): the connection does not ask them after every decode.
  bool plain() const noexcept { return plain_; }

 protected:
  stream_codec() = default;
  explicit stream_codec(bool plain) noexcept : plain_(plain) {}

  void fail(std::error_code ec, std::string why) {
    if (failure_) return;
    failure_ = std::make_unique<failure>(failure{ec, std::move(why)});
  }

 private:
  // Only a failed codec pays for its error text: every idle connection holds a codec.
  struct failure {
    std::error_code error;
    std::string reason;
  };
  std::unique_ptr<failure> failure_;
  bool plain_ = false;
};

}  // namespace swactor::protocols
