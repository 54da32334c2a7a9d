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
#include <string>
#include <string_view>
#include <system_error>

namespace swactor::protocols {

// One decoded protocol event. `kind` is codec-defined (0 = one framed message for the
// framing codecs); it is what crosses IPC in process mode, so it must stay stable.
struct event {
  std::uint8_t kind = 0;
  std::string_view data;
};

// Where decode() hands events. Returning false stops decoding after this event: the
// connection is full (look-ahead bound reached) or the sink switched the codec; decode()
// then reports the bytes consumed up to and including this event.
class event_sink {
 public:
  virtual bool on_event(const event& e) = 0;

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

  // Bytes the codec answers by itself (a pong, a WINDOW_UPDATE), taken by the connection
  // after each decode(). Empty for the framing codecs.
  virtual bool take_output(std::string& out) {
    (void)out;
    return false;
  }

  // The message without its framing (delimiter, length header); `message` is one that this
  // codec emitted as kind 0.
  virtual std::string_view payload(std::string_view message) const noexcept { return message; }

  std::error_code error() const noexcept { return failure_ ? failure_->error : std::error_code(); }
  const std::string& reason() const noexcept {
    static const std::string none;
    return failure_ ? failure_->reason : none;
  }
  bool failed() const noexcept { return static_cast<bool>(failure_); }

 protected:
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
};

}  // namespace swactor::protocols
