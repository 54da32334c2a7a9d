#pragma once
// Swoole's stream framing as a pure incremental parser (no I/O):
//
// - raw:    bytes are delivered as they arrive (one message per feed()).
// - eof:    one message per delimiter (1..8 bytes); the message ends with the delimiter
//           (Swoole's open_eof_split).
// - length: a length field of length_size bytes (1, 2, 4, 8; signed or unsigned; big or
//           little endian) at length_offset; a frame is body_offset + value bytes long and
//           includes its header (Swoole's package_length_type / package_length_offset /
//           package_body_offset; body_offset 0 = the value counts the whole frame).
//
// Messages keep their delimiter / header: an echo replies with exactly the framed bytes.
// Errors are sticky: once failed, a framer yields nothing more and the connection should be
// closed (error() + reason() make the log line).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "swactor/protocols/codec.hpp"

namespace swactor::protocols {

// -- errors ---------------------------------------------------------------------------------

enum class framing_errc {
  ok = 0,
  invalid_options = 1,  // framing_options::validate() found problems
  frame_too_large,      // a length frame above max_length
  negative_length,      // a signed length field holds a negative value
  bad_length,           // a length frame shorter than its own header
  eof_not_found,        // max_length bytes buffered without a delimiter
};

const std::error_category& framing_category() noexcept;

inline std::error_code make_error_code(framing_errc e) noexcept {
  return {static_cast<int>(e), framing_category()};
}

// -- options --------------------------------------------------------------------------------

enum class framing_type { raw, eof, length };
enum class byte_order { big, little };

struct framing_options {
  framing_type type = framing_type::raw;
  // eof
  std::string eof = "\r\n";             // the delimiter, 1..8 bytes
  // length
  std::size_t length_size = 4;          // 1, 2, 4 or 8
  bool length_signed = false;
  byte_order length_order = byte_order::big;
  std::size_t length_offset = 0;        // where the length field starts
  std::size_t body_offset = 4;          // frame size = body_offset + length value
  // both
  std::size_t max_length = 2 * 1024 * 1024;  // Swoole's package_max_length

  // Every problem as a readable sentence for the config layer; empty = valid. Only the
  // fields of the selected type are checked.
  std::vector<std::string> validate() const;

  // Sets length_size / length_signed / length_order from Swoole's package_length_type
  // letter: c C (1 byte), s S (2, host order), n v (2, big / little), l L (4, host),
  // N V (4, big / little), q Q (8, host), J P (8, big / little); lower case = signed for
  // c s l q. False (nothing changed) for any other string.
  bool set_length_type(std::string_view swoole_letter);
};

// -- frame scanning -----------------------------------------------------------------------

// The one implementation of the three framings: finds the first complete frame in the
// unconsumed bytes. Both the buffering framer and the connection-layer codec use it.
struct frame_scanner {
  std::size_t scan = 0;   // eof: bytes at the front already known to hold no delimiter
  std::size_t frame = 0;  // length: size of the frame being waited for, 0 = unknown

  // Length of the first complete frame of `in` (which starts at the first unconsumed
  // byte), 0 when more bytes are needed. On a protocol error sets `ec` and `why` and
  // returns 0. After a frame is taken, the caller drops it from the front of its input.
  std::size_t next(const framing_options& opts, std::string_view in, std::error_code& ec,
                   std::string& why);
  void reset() noexcept { scan = frame = 0; }
};

// The size of the frame that starts `in`, read in place (stateless; for a client cutting
// replies out of its own read buffer, the load tester): for eof, the bytes up to and with
// the delimiter; for length, body_offset + the length value, known as soon as the header
// is there (it may exceed in.size(): the frame is complete once size <= in.size()); for
// raw, in.size(). 0 while that is not known yet. On a frame the framer would reject, 0 and
// `ec` set (`why` gets the reason when given). `opts` must be valid.
std::size_t frame_size(const framing_options& opts, std::string_view in, std::error_code& ec,
                       std::string* why = nullptr);

// The message without its framing: the eof delimiter removed, or the length header (up
// to body_offset, or to the end of the length field when body_offset is 0) skipped.
std::string_view frame_payload(const framing_options& opts, std::string_view message) noexcept;

// -- codec ----------------------------------------------------------------------------------

// The framings as a stream codec for the connection layer: every complete frame is one
// event of kind 0, a view into the connection's input (no copy). The options are not
// copied: they belong to the listener and outlive its connections, so an idle connection
// pays only for the scan state.
class frame_codec final : public stream_codec {
 public:
  explicit frame_codec(const framing_options& opts) noexcept : stream_codec(true), opts_(&opts) {}

  std::string_view name() const noexcept override;
  std::size_t decode(std::string_view in, event_sink& out) override;
  std::string_view payload(std::string_view message) const noexcept override {
    return frame_payload(*opts_, message);
  }
  const framing_options& options() const noexcept { return *opts_; }

 private:
  std::size_t decode_frames(std::string_view in, event_sink& out);

  const framing_options* opts_;
  frame_scanner scanner_;
};

// -- framer ---------------------------------------------------------------------------------

// A frame_scanner with its own buffer, for clients (the load tester) and tests that feed
// bytes as they come.
class framer {
 public:
  // Invalid options make the framer fail at once with framing_errc::invalid_options.
  explicit framer(framing_options opts = {});

  // Appends bytes. Returns the sticky error, if any (then the bytes are ignored).
  std::error_code feed(std::string_view bytes);

  // The next complete message, or nullopt when more bytes are needed (or after an error,
  // which is checked here too). The view points into the framer's buffer and stays valid
  // until the next feed() or reset(): take every message of a feed, then feed again.
  std::optional<std::string_view> next();

  // Convenience: feed, then append every complete message as an owned string.
  std::error_code feed(std::string_view bytes, std::vector<std::string>& out);

  std::error_code error() const noexcept { return error_; }
  const std::string& reason() const noexcept { return reason_; }
  bool failed() const noexcept { return static_cast<bool>(error_); }

  std::size_t buffered() const noexcept { return buf_.size() - head_; }
  const framing_options& options() const noexcept { return opts_; }

  // Empties the buffer; a failure from invalid options stays.
  void reset();

 private:
  void fail(framing_errc e, std::string why);

  framing_options opts_;
  std::error_code error_;
  std::string reason_;
  std::string buf_;          // unconsumed bytes live in [head_, size)
  std::size_t head_ = 0;
  frame_scanner scanner_;
  bool options_invalid_ = false;
};

}  // namespace swactor::protocols

namespace std {
template <>
struct is_error_code_enum<swactor::protocols::framing_errc> : true_type {};
}  // namespace std
