#include "swactor/protocols/websocket.hpp"

#include "swactor/protocols/ascii.hpp"
#include "swactor/protocols/field_lists.hpp"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>

namespace swactor::protocols::websocket {

namespace {

// The buffer a codec needs only while a message is read or delivered (the reassembled
// message, inflated if it was compressed) is one per thread between messages: a codec takes the
// thread's spare when a message starts and gives it back once it is delivered, so idle
// connections hold none. A buffer grown past kKeptBuffer is freed instead.
constexpr std::size_t kKeptBuffer = 64 * 1024;
std::string& spare_message() noexcept {
  thread_local std::string spare;
  return spare;
}
void take_spare(std::string& buf, std::string& spare) noexcept {
  if (buf.capacity() < spare.capacity()) buf.swap(spare);
}
void give_back(std::string& buf, std::string& spare) noexcept {
  buf.clear();
  if (buf.capacity() <= kKeptBuffer && buf.capacity() > spare.capacity()) buf.swap(spare);
  std::string().swap(buf);
}

class ws_category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "websocket"; }
  std::string message(int code) const override {
    switch (code) {
      case close_protocol_error: return "protocol error (close 1002)";
      case close_invalid_payload: return "invalid payload data (close 1007)";
      case close_policy: return "policy violation (close 1008)";
      case close_too_big: return "message too big (close 1009)";
      default: return "websocket close " + std::to_string(code);
    }
  }
};

bool is_control(opcode op) noexcept { return static_cast<std::uint8_t>(op) >= 8; }

std::error_code ws_error(std::uint16_t code) { return {code, error_category()}; }

}  // namespace

// Not a function-local static: no guard check per call (see core/src/error.cpp).
constinit const ws_category error_category_instance{};

const std::error_category& error_category() noexcept {
  return error_category_instance;
}

bool valid_close_code(std::uint16_t code) noexcept {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) || (code >= 3000 && code <= 4999);
}

// -- UTF-8 ------------------------------------------------------------------------------------

bool utf8_validator::feed(std::string_view bytes) noexcept {
  if (!ok_) return false;
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const auto* end = p + bytes.size();
  while (p < end) {
    if (need_ == 0) {
      // ASCII runs, eight bytes at a time.
      while (end - p >= 8) {
        std::uint64_t w;
        std::memcpy(&w, p, 8);
        if (w & 0x8080808080808080ull) break;
        p += 8;
      }
      if (p == end) break;
      unsigned char b = *p++;
      if (b < 0x80) continue;
      lo_ = 0x80;
      hi_ = 0xBF;
      if (b >= 0xC2 && b <= 0xDF) {
        need_ = 1;
      } else if (b >= 0xE0 && b <= 0xEF) {
        need_ = 2;
        if (b == 0xE0) lo_ = 0xA0;       // overlong
        if (b == 0xED) hi_ = 0x9F;       // surrogates
      } else if (b >= 0xF0 && b <= 0xF4) {
        need_ = 3;
        if (b == 0xF0) lo_ = 0x90;       // overlong
        if (b == 0xF4) hi_ = 0x8F;       // above U+10FFFF
      } else {
        ok_ = false;
        return false;
      }
    } else {
      unsigned char b = *p++;
      if (b < lo_ || b > hi_) {
        ok_ = false;
        return false;
      }
      lo_ = 0x80;
      hi_ = 0xBF;
      --need_;
    }
  }
  return true;
}

// -- frames -----------------------------------------------------------------------------------

std::size_t unmask(char* data, std::size_t n, const std::uint8_t mask[4], std::size_t offset) noexcept {
  std::size_t i = 0;
  if (n >= 16) {
    // The mask repeated over a word, starting at `offset`.
    unsigned char m8[8];
    for (std::size_t k = 0; k < 8; ++k) m8[k] = mask[(offset + k) & 3];
    std::uint64_t m;
    std::memcpy(&m, m8, 8);
    for (; i + 8 <= n; i += 8) {
      std::uint64_t w;
      std::memcpy(&w, data + i, 8);
      w ^= m;
      std::memcpy(data + i, &w, 8);
    }
  }
  for (; i < n; ++i) data[i] = static_cast<char>(data[i] ^ static_cast<char>(mask[(offset + i) & 3]));
  return (offset + n) & 3;
}

void write_frame(std::string& out, opcode op, std::string_view payload, bool rsv1) {
  auto n = payload.size();
  char h[10];
  std::size_t hl = 2;
  h[0] = static_cast<char>(0x80 | (rsv1 ? 0x40 : 0) | static_cast<std::uint8_t>(op));
  if (n < 126) {
    h[1] = static_cast<char>(n);
  } else if (n <= 0xFFFF) {
    h[1] = 126;
    h[2] = static_cast<char>(n >> 8);
    h[3] = static_cast<char>(n);
    hl = 4;
  } else {
    h[1] = 127;
    for (int k = 0; k < 8; ++k) h[2 + k] = static_cast<char>(static_cast<std::uint64_t>(n) >> (8 * (7 - k)));
    hl = 10;
  }
  out.reserve(out.size() + hl + n);
  out.append(h, hl);
  out.append(payload);
}

void write_close(std::string& out, std::uint16_t code, std::string_view reason) {
  if (code == 0) {
    write_frame(out, opcode::close, {});
    return;
  }
  // A control frame holds 125 bytes: the code and at most 123 of the reason.
  if (reason.size() > 123) reason = reason.substr(0, 123);
  std::string p;
  p.push_back(static_cast<char>(code >> 8));
  p.push_back(static_cast<char>(code));
  p.append(reason);
  write_frame(out, opcode::close, p);
}

codec::codec(const options& o) : codec(std::make_shared<const options>(o), o.deflate, o.deflate_with) {}

codec::codec(std::shared_ptr<const options> shared, bool deflate, const deflate_params& negotiated)
    : opts_(std::move(shared)) {
  if (!deflate) return;
  deflate_flags_ = static_cast<std::uint8_t>(kDeflateOn | (negotiated.server_no_context_takeover ? kServerNoTakeover : 0) |
                                             (negotiated.client_no_context_takeover ? kClientNoTakeover : 0));
  deflate_bits_ = static_cast<std::uint8_t>((negotiated.server_max_window_bits & 15) << 4 |
                                            (negotiated.client_max_window_bits & 15));
}

deflater& codec::deflate_state() {
  if (!deflate_) {
    deflate_params p = opts_->deflate_with;  // RSV1 allowed by the options alone (tests)
    if (deflate_on()) {
      p.server_no_context_takeover = (deflate_flags_ & kServerNoTakeover) != 0;
      p.client_no_context_takeover = (deflate_flags_ & kClientNoTakeover) != 0;
      p.server_max_window_bits = deflate_bits_ >> 4;
      p.client_max_window_bits = deflate_bits_ & 15;
    }
    deflate_ = std::make_unique<deflater>(p);
  }
  return *deflate_;
}

codec::~codec() = default;

void codec::protocol_error(std::uint16_t code, std::string why) {
  if (deflate_) deflate_->abort_inflate();  // a shared inflate stream is free for others again
  if (!close_sent_) {
    write_close(output_, code, {});
    close_sent_ = true;
  }
  closed_ = true;
  fail(ws_error(code), std::move(why));
}

void codec::start_close(std::uint16_t code, std::string_view reason) {
  if (close_sent_ || closed_) return;
  write_close(output_, code, reason);
  close_sent_ = true;
  ++epoch_;
}

// The next liveness step is a ping when pinging is on and either no ping is out yet (and
// it comes before the idle limit) or there is no idle limit (then it pings on and on).
bool codec::ping_next() const noexcept {
  const auto ping = opts_->ping_interval_ms, idle = opts_->idle_timeout_ms;
  if (!ping) return false;
  return ping_pending_ ? idle == 0 : (idle == 0 || ping < idle);
}

stream_codec::deadline codec::timeout() const noexcept {
  if (closed_) return {};
  if (close_sent_) return {opts_->close_timeout_ms, epoch_};
  if (ping_next()) return {opts_->ping_interval_ms, epoch_};
  const auto idle = opts_->idle_timeout_ms;
  if (!idle) return {};
  // Idle is measured from the last input; a ping went out ping_interval_ms into it.
  return {ping_pending_ ? idle - opts_->ping_interval_ms : idle, epoch_};
}

bool codec::go_away(std::string& out) {
  if (close_sent_ || closed_) return false;
  write_close(out, close_going_away, "going away");
  close_sent_ = true;
  close_out_ = true;
  ++epoch_;
  return true;
}

std::string_view codec::expire(std::string& out) {
  if (close_sent_) {
    closed_ = true;
    return "no close reply within close_timeout";
  }
  ++epoch_;
  if (ping_next()) {
    write_frame(out, opcode::ping, {});
    ping_pending_ = true;
    return {};
  }
  write_close(out, close_going_away, "idle timeout");
  close_sent_ = true;
  close_out_ = true;
  return "idle timeout";
}

// Checks a frame's first byte and length before any of its payload is read.
bool codec::on_frame_start(std::uint8_t b0, std::uint64_t len) {
  auto op = static_cast<opcode>(b0 & 0x0F);
  fin_ = (b0 & 0x80) != 0;
  rsv1_ = (b0 & 0x40) != 0;
  op_ = op;
  if (is_control(op)) {
    if (rsv1_) return protocol_error(close_protocol_error, "RSV1 set on a control frame"), false;
    // (length and FIN of control frames are checked with the first two bytes)
    return true;
  }
  if (op == opcode::continuation) {
    if (!in_message_) return protocol_error(close_protocol_error, "continuation frame without a message"), false;
    if (rsv1_) return protocol_error(close_protocol_error, "RSV1 set on a continuation frame"), false;
  } else {
    if (in_message_)
      return protocol_error(close_protocol_error, "new data frame inside a fragmented message"), false;
    if (rsv1_ && !deflate_on() && !opts_->rsv1_allowed)
      return protocol_error(close_protocol_error, "RSV1 set without a negotiated extension"), false;
    in_message_ = true;
    message_op_ = op;
    message_rsv1_ = rsv1_;
    utf8_.reset();
    take_spare(message_, spare_message());
    // A compressed message is inflated as its payload arrives (message_ holds the inflated
    // bytes), so text is checked, and a bomb stopped, at the first bad byte.
    if (rsv1_ && !deflate_state().begin_inflate())
      return protocol_error(close_internal_error, "cannot start inflating (out of memory)"), false;
  }
  if (len > opts_->max_frame_size)
    return protocol_error(close_too_big, "frame of " + std::to_string(len) + " bytes over max_frame_size"), false;
  // (a compressed message's inflated size is checked as it is inflated)
  if (!message_rsv1_ && message_.size() + len > opts_->max_message_size)
    return protocol_error(close_too_big, "message over max_message_size"), false;
  return true;
}

std::size_t codec::decode(std::string_view in, event_sink& out) {
  if (!in.empty() && !close_sent_) {
    // The peer is alive: the liveness phases start over.
    ping_pending_ = false;
    ++epoch_;
  }
  std::size_t pos = 0;
  while (pos < in.size()) {
    if (closed_) return in.size();  // after the close handshake (or an error) input is ignored
    if (phase_ == phase::header) {
      auto avail = in.size() - pos;
      if (avail < 2) break;
      auto b0 = static_cast<std::uint8_t>(in[pos]);
      auto b1 = static_cast<std::uint8_t>(in[pos + 1]);
      // What two bytes can tell, at once (fail fast).
      if (b0 & 0x30) {
        protocol_error(close_protocol_error, "RSV2/RSV3 set without a negotiated extension");
        return pos;
      }
      auto op = b0 & 0x0F;
      if (!(op <= 2 || (op >= 8 && op <= 10))) {
        protocol_error(close_protocol_error, "unknown opcode " + std::to_string(op));
        return pos;
      }
      if (!(b1 & 0x80)) {
        protocol_error(close_protocol_error, "unmasked client frame");
        return pos;
      }
      std::uint64_t len = b1 & 0x7F;
      if (op >= 8 && (len > 125 || !(b0 & 0x80))) {
        protocol_error(close_protocol_error, len > 125 ? "control frame over 125 bytes" : "fragmented control frame");
        return pos;
      }
      std::size_t hl = 2 + (len == 126 ? 2 : len == 127 ? 8 : 0) + 4;
      if (avail < hl) break;
      const auto* p = reinterpret_cast<const unsigned char*>(in.data() + pos + 2);
      if (len == 126) {
        len = (std::uint64_t(p[0]) << 8) | p[1];
        if (len < 126) {
          protocol_error(close_protocol_error, "16-bit length not in shortest form");
          return pos;
        }
        p += 2;
      } else if (len == 127) {
        len = 0;
        for (int k = 0; k < 8; ++k) len = (len << 8) | p[k];
        if (len >> 63) {
          protocol_error(close_protocol_error, "64-bit length with the top bit set");
          return pos;
        }
        if (len <= 0xFFFF) {
          protocol_error(close_protocol_error, "64-bit length not in shortest form");
          return pos;
        }
        p += 8;
      }
      std::memcpy(mask_, p, 4);
      mask_off_ = 0;
      if (!on_frame_start(b0, len)) return pos;
      pos += hl;
      left_ = len;
      phase_ = phase::payload;
      if (is_control(op_)) control_.clear();
    }
    // Payload: take what is there, unmask it, check text as it comes.
    std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(left_, in.size() - pos));
    if (n > 0 && !is_control(op_) && message_rsv1_) {
      if (!inflate_payload(in.substr(pos, n))) return pos + n;
      pos += n;
      left_ -= n;
    } else if (n > 0) {
      auto& dst = is_control(op_) ? control_ : message_;
      auto at = dst.size();
      dst.append(in.data() + pos, n);
      mask_off_ = static_cast<std::uint8_t>(unmask(dst.data() + at, n, mask_, mask_off_));
      pos += n;
      left_ -= n;
      if (!is_control(op_) && message_op_ == opcode::text && !utf8_.feed(std::string_view(dst).substr(at, n))) {
        protocol_error(close_invalid_payload, "text message is not valid UTF-8");
        return pos;
      }
    }
    if (left_ > 0) break;  // the rest of the payload has not arrived
    phase_ = phase::header;
    bool stop = false;
    if (!finish_frame(out, stop)) return pos;
    if (stop) return pos;
  }
  return pos;
}

// Payload bytes of a compressed message: unmasked a block at a time into a stack buffer and
// inflated into message_; text is checked on what each block inflated to.
bool codec::inflate_payload(std::string_view masked) {
  auto& d = deflate_state();
  const auto limit = static_cast<std::size_t>(opts_->max_message_size);
  while (!masked.empty()) {
    char buf[4096];
    const std::size_t n = std::min(masked.size(), sizeof buf);
    std::memcpy(buf, masked.data(), n);
    mask_off_ = static_cast<std::uint8_t>(unmask(buf, n, mask_, mask_off_));
    masked.remove_prefix(n);
    const auto at = message_.size();
    bool too_big = false;
    if (!d.inflate_part(std::string_view(buf, n), message_, limit, too_big))
      return protocol_error(too_big ? close_too_big : close_invalid_payload,
                            too_big ? "message inflates past max_message_size" : "invalid deflate data"),
             false;
    if (message_op_ == opcode::text && !utf8_.feed(std::string_view(message_).substr(at)))
      return protocol_error(close_invalid_payload, "text message is not valid UTF-8"), false;
  }
  return true;
}

// A frame's payload is complete: answer control frames, emit whole messages.
bool codec::finish_frame(event_sink& out, bool& stop) {
  switch (op_) {
    case opcode::ping:
      if (!close_sent_) write_frame(output_, opcode::pong, control_);
      if (opts_->deliver_control) stop = !out.on_event({static_cast<std::uint8_t>(ev::ping), control_});
      return true;
    case opcode::pong:
      if (opts_->deliver_control) stop = !out.on_event({static_cast<std::uint8_t>(ev::pong), control_});
      return true;
    case opcode::close: {
      std::uint16_t code = 0;
      if (control_.size() == 1) return protocol_error(close_protocol_error, "close frame of 1 byte"), false;
      if (control_.size() >= 2) {
        code = static_cast<std::uint16_t>((static_cast<unsigned char>(control_[0]) << 8) |
                                          static_cast<unsigned char>(control_[1]));
        if (!valid_close_code(code))
          return protocol_error(close_protocol_error, "invalid close code " + std::to_string(code)), false;
        utf8_validator v;
        if (!v.feed(std::string_view(control_).substr(2)) || !v.complete())
          return protocol_error(close_invalid_payload, "close reason is not valid UTF-8"), false;
      }
      close_received_ = true;
      if (!close_sent_) {
        // Echo the peer's code (an empty close gets an empty close).
        write_close(output_, code, {});
        close_sent_ = true;
      }
      closed_ = true;
      stop = !out.on_event({static_cast<std::uint8_t>(ev::close), control_});
      return true;
    }
    default: break;
  }
  if (!fin_) return true;  // more fragments to come
  if (message_rsv1_) {
    // permessage-deflate: the tail that ends the message's deflate data.
    bool too_big = false;
    const auto at = message_.size();
    if (!deflate_state().end_inflate(message_, static_cast<std::size_t>(opts_->max_message_size), too_big))
      return protocol_error(too_big ? close_too_big : close_invalid_payload,
                            too_big ? "message inflates past max_message_size" : "invalid deflate data"),
             false;
    if (message_op_ == opcode::text && !utf8_.feed(std::string_view(message_).substr(at)))
      return protocol_error(close_invalid_payload, "text message is not valid UTF-8"), false;
  }
  if (message_op_ == opcode::text && !utf8_.complete())
    return protocol_error(close_invalid_payload, "text message ends inside a UTF-8 sequence"), false;
  std::string_view whole = message_;
  in_message_ = false;
  // After our close went out, data is read and dropped (RFC 6455 §5.5.1).
  if (!close_sent_) {
    // Pongs queued so far answer frames read before this message's end: they precede its reply.
    output_before_event_ = static_cast<std::uint32_t>(output_.size());
    stop = !out.on_event({static_cast<std::uint8_t>(message_op_ == opcode::text ? ev::text : ev::binary), whole});
  }
  give_back(message_, spare_message());  // an idle connection keeps no message buffer
  return true;
}

void codec::encode(std::uint8_t kind, std::string_view data, std::string& out) {
  switch (static_cast<reply>(kind)) {
    case reply::text:
    case reply::binary:
    case reply::ping:
    case reply::pong: {
      // Nothing follows a close on the wire; a close still waiting in output_ follows this.
      if (close_out_) return;
      flush_before_reply(out);
      static constexpr opcode ops[] = {opcode::text, opcode::binary, opcode::ping, opcode::pong};
      auto op = ops[kind - static_cast<std::uint8_t>(reply::text)];
      if (deflate_on() && !is_control(op) && data.size() >= opts_->deflate_min_size) {
        std::string z;
        deflate_state().deflate_message(data, z);
        write_frame(out, op, z, true);
        return;
      }
      write_frame(out, op, data);
      return;
    }
    case reply::close: {
      if (close_sent_) return;
      flush_before_reply(out);
      std::uint16_t code = 0;
      if (data.size() >= 2)
        code = static_cast<std::uint16_t>((static_cast<unsigned char>(data[0]) << 8) | static_cast<unsigned char>(data[1]));
      write_close(out, code, data.size() > 2 ? data.substr(2) : std::string_view());
      close_sent_ = true;
      close_out_ = true;
      if (close_received_) closed_ = true;
      return;
    }
  }
  out.append(data);  // kind 0: raw bytes
}

void codec::flush_before_reply(std::string& out) {
  if (output_before_event_ == 0) return;
  out.append(output_, 0, output_before_event_);
  output_.erase(0, output_before_event_);
  output_before_event_ = 0;
}

bool codec::take_output(std::string& out) {
  output_before_event_ = 0;
  if (close_sent_) close_out_ = true;
  if (output_.empty()) return false;
  out.append(output_);
  std::string().swap(output_);
  return true;
}

// -- handshake helpers ---------------------------------------------------------------------------

std::string accept_key(std::string_view client_key) {
  static constexpr std::string_view guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  std::string in(client_key);
  in.append(guid);
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(in.data()), in.size(), digest);
  unsigned char b64[4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1];
  int n = EVP_EncodeBlock(b64, digest, SHA_DIGEST_LENGTH);
  return std::string(reinterpret_cast<char*>(b64), static_cast<std::size_t>(n));
}

bool valid_client_key(std::string_view key) noexcept {
  if (key.size() != 24 || key[22] != '=' || key[23] != '=') return false;
  auto b64 = [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
  };
  for (std::size_t i = 0; i < 22; ++i)
    if (!b64(key[i])) return false;
  // 16 bytes leave the last character's low 4 bits zero.
  return std::string_view("AQgw").find(key[21]) != std::string_view::npos;
}

}  // namespace swactor::protocols::websocket

namespace swactor::protocols::websocket {

namespace {


// One permessage-deflate offer's parameters ("; "-separated after the name); false when
// malformed (unknown or repeated parameter, bad value): the offer is then declined.
bool parse_deflate_params(std::string_view params, deflate_offer& o) {
  bool seen[4] = {false, false, false, false};
  while (!params.empty()) {
    auto semi = params.find(';');
    auto p = trim_ows(params.substr(0, semi));
    params = semi == std::string_view::npos ? std::string_view() : params.substr(semi + 1);
    if (p.empty()) return false;
    auto eq = p.find('=');
    auto name = trim_ows(p.substr(0, eq));
    std::string_view value;
    bool has_value = eq != std::string_view::npos;
    if (has_value) {
      value = trim_ows(p.substr(eq + 1));
      if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
    }
    auto bits = [&](int& out) {
      if (value.empty() || value.size() > 2) return false;
      int v = 0;
      for (char c : value) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + (c - '0');
      }
      if (v < 8 || v > 15) return false;
      out = v;
      return true;
    };
    int idx;
    if (name == "server_no_context_takeover") {
      idx = 0;
      if (has_value) return false;
      o.server_no_context_takeover = true;
    } else if (name == "client_no_context_takeover") {
      idx = 1;
      if (has_value) return false;
      o.client_no_context_takeover = true;
    } else if (name == "server_max_window_bits") {
      idx = 2;
      if (!bits(o.server_max_window_bits)) return false;
    } else if (name == "client_max_window_bits") {
      idx = 3;
      if (has_value) {
        if (!bits(o.client_max_window_bits)) return false;
      } else {
        o.client_max_window_bits = -1;
      }
    } else {
      return false;
    }
    if (seen[idx]) return false;
    seen[idx] = true;
  }
  return true;
}

}  // namespace

bool is_upgrade_request(const handshake_request& r) noexcept {
  return any_list_item(r.upgrade, [](std::string_view t) { return ascii_iequals(t, "websocket"); });
}

handshake_check check_handshake(const handshake_request& r) {
  handshake_check c;
  auto refuse = [&](int status, std::string why) {
    c.status = status;
    c.error = std::move(why);
    return c;
  };
  if (r.method != "GET") return refuse(400, "a WebSocket handshake must be a GET request");
  if (r.version_minor < 1) return refuse(400, "a WebSocket handshake needs HTTP/1.1");
  if (!is_upgrade_request(r)) return refuse(400, "Upgrade does not list websocket");
  if (!any_list_item(r.connection, [](std::string_view t) { return ascii_iequals(t, "upgrade"); }))
    return refuse(400, "Connection does not list Upgrade");
  if (trim_ows(r.version) != "13")
    return refuse(426, r.version.empty() ? std::string("missing Sec-WebSocket-Version")
                                         : "unsupported Sec-WebSocket-Version " + std::string(trim_ows(r.version)));
  auto key = trim_ows(r.key);
  if (!valid_client_key(key)) return refuse(400, "Sec-WebSocket-Key is not base64 of 16 bytes");
  bool bad_protocol = false;
  any_list_item(r.protocols, [&](std::string_view p) {
    if (!is_token(p)) {
      bad_protocol = true;
      return true;
    }
    c.protocols.emplace_back(p);
    return false;
  });
  if (bad_protocol) return refuse(400, "Sec-WebSocket-Protocol is not a list of tokens");
  any_list_item(r.extensions, [&](std::string_view ext) {
    auto semi = ext.find(';');
    auto name = trim_ows(ext.substr(0, semi));
    deflate_offer o;
    if (name == "permessage-deflate" &&
        parse_deflate_params(semi == std::string_view::npos ? std::string_view() : ext.substr(semi + 1), o))
      c.deflate_offers.push_back(o);
    return false;  // unknown extensions are ignored, not refused (RFC 6455 §9.1)
  });
  c.accept = accept_key(key);
  return c;
}

std::string switching_protocols_head(const handshake_check& c, std::string_view protocol,
                                     std::string_view extension_response, std::string_view extra) {
  std::string h = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Accept: ";
  h += c.accept;
  h += "\r\n";
  if (!protocol.empty()) {
    h += "Sec-WebSocket-Protocol: ";
    h += protocol;
    h += "\r\n";
  }
  if (!extension_response.empty()) {
    h += "Sec-WebSocket-Extensions: ";
    h += extension_response;
    h += "\r\n";
  }
  h += extra;
  h += "\r\n";
  return h;
}

std::string refusal(const handshake_check& c) {
  std::string body = c.error + "\n";
  std::string h = c.status == 426 ? "HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n"
                                  : "HTTP/1.1 400 Bad Request\r\n";
  h += "Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: ";
  h += std::to_string(body.size());
  h += "\r\n\r\n";
  h += body;
  return h;
}

}  // namespace swactor::protocols::websocket

// -- permessage-deflate ------------------------------------------------------------------------

namespace swactor::protocols::websocket {

namespace {
constexpr unsigned char sync_tail[4] = {0x00, 0x00, 0xff, 0xff};
z_stream* zs(void* p) { return static_cast<z_stream*>(p); }

// Where a side keeps no context between messages (no_context_takeover), its stream holds
// nothing of a connection once a message is done: it is reset after each message. So those
// streams are shared by every connection of the thread instead of one per connection: an
// idle compressed connection then holds no zlib memory for that side (a deflate stream is
// about 256 KiB of which some 70 KiB is touched at once, an inflate one 7 KiB + a 32 KiB
// window). A message is inflated as its frames arrive, so a connection holds the shared
// inflate stream from its message's first frame to its last; another connection that starts
// a compressed message meanwhile gets a stream of its own for that message.
struct shared_streams {
  void* inflater = nullptr;
  bool inflater_busy = false;  // a connection is inside a message with it
  void* deflaters[16] = {};  // by window bits (9..15)
  shared_streams() = default;
  shared_streams(const shared_streams&) = delete;
  shared_streams& operator=(const shared_streams&) = delete;
  ~shared_streams() {
    if (inflater) {
      inflateEnd(zs(inflater));
      delete zs(inflater);
    }
    for (void* d : deflaters)
      if (d) {
        deflateEnd(zs(d));
        delete zs(d);
      }
  }
};
shared_streams& thread_streams() {
  thread_local shared_streams s;
  return s;
}
}  // namespace

deflater::~deflater() {
  abort_inflate();  // a connection that ends inside a compressed message
  if (inflate_) {
    inflateEnd(zs(inflate_));
    delete zs(inflate_);
  }
  if (deflate_) {
    deflateEnd(zs(deflate_));
    delete zs(deflate_);
  }
}

bool deflater::inflate_message(std::string_view in, std::string& out, std::size_t limit, bool& too_big) {
  too_big = false;
  if (!begin_inflate()) return false;
  // The parts API inflates into a buffer holding this message only (the window is its tail).
  std::string msg;
  const std::size_t room = limit > out.size() ? limit - out.size() : 0;
  bool ok = inflate_part(in, msg, room, too_big) && end_inflate(msg, room, too_big);
  if (!ok) abort_inflate();
  out.append(msg);
  return ok;
}

namespace {
void* new_inflate_stream(int bits) {
  auto* z = new z_stream{};
  if (inflateInit2(z, -bits) != Z_OK) {
    delete z;
    return nullptr;
  }
  return z;
}
}  // namespace

bool deflater::begin_inflate() {
  abort_inflate();
  fed_ = false;
  // A client with a small window that keeps its context: the shared stream too, primed with
  // the window kept from the last message (all of the context a message may refer to), so
  // an idle connection holds those <= 512 bytes instead of a zlib stream (about 7 KiB).
  const bool kept_window = !params_.client_no_context_takeover && params_.client_max_window_bits <= kSmallClientWindowBits;
  if (!params_.client_no_context_takeover && !kept_window) {
    // The connection's own stream, with the window the client agreed to (9 at least: zlib
    // clients told 8 compress with 9), which bounds its memory in use.
    if (!inflate_ && !(inflate_ = new_inflate_stream(std::clamp(params_.client_max_window_bits, 9, 15)))) return false;
    active_ = inflate_;
    active_kind_ = stream_kind::own;
    return true;
  }
  // The shared stream takes any client: a 32 KiB window inflates whatever window a client
  // uses (<= 15 bits).
  auto& ts = thread_streams();
  if (!ts.inflater_busy) {
    if (!ts.inflater && !(ts.inflater = new_inflate_stream(15))) return false;
    ts.inflater_busy = true;
    active_ = ts.inflater;
    active_kind_ = stream_kind::shared;
  } else {
    if (!(active_ = new_inflate_stream(15))) return false;
    active_kind_ = stream_kind::temporary;
  }
  if (kept_window && !window_.empty() &&
      inflateSetDictionary(zs(active_), reinterpret_cast<const Bytef*>(window_.data()),
                           static_cast<uInt>(window_.size())) != Z_OK) {
    abort_inflate();
    return false;
  }
  return true;
}

bool deflater::run_inflate(const unsigned char* data, std::size_t n, std::string& out, std::size_t limit,
                           bool& too_big) {
  auto* z = zs(active_);
  z->next_in = const_cast<unsigned char*>(data);
  z->avail_in = static_cast<uInt>(n);
  while (z->avail_in > 0) {
    unsigned char buf[16384];
    z->next_out = buf;
    z->avail_out = sizeof buf;
    int rc = inflate(z, Z_SYNC_FLUSH);
    auto got = sizeof buf - z->avail_out;
    if (out.size() + got > limit) {
      too_big = true;
      return false;
    }
    out.append(reinterpret_cast<char*>(buf), got);
    if (rc == Z_STREAM_END) {
      // A final block ends the stream: what follows starts a new one (allowed by RFC 7692).
      inflateReset(z);
      continue;
    }
    if (rc == Z_BUF_ERROR && got == 0) break;  // needs more input
    if (rc != Z_OK && rc != Z_BUF_ERROR) return false;
  }
  return true;
}

bool deflater::inflate_part(std::string_view in, std::string& out, std::size_t limit, bool& too_big) {
  too_big = false;
  if (!active_) return false;
  if (in.empty()) return true;
  fed_ = true;
  return run_inflate(reinterpret_cast<const unsigned char*>(in.data()), in.size(), out, limit, too_big);
}

bool deflater::end_inflate(std::string& out, std::size_t limit, bool& too_big) {
  too_big = false;
  if (!active_) return false;
  // An empty payload is an empty message. Inflating the tail alone would open a stored block
  // (00 | 00 ff | ff ..) and swallow the next message's bytes as its lengths.
  bool ok = !fed_ || run_inflate(sync_tail, sizeof sync_tail, out, limit, too_big);
  const bool kept_window = !params_.client_no_context_takeover && params_.client_max_window_bits <= kSmallClientWindowBits;
  if (ok && kept_window && fed_) {
    // The new window: the last 2^bits bytes of the old one followed by this message.
    const std::size_t wsize = std::size_t{1} << std::max(params_.client_max_window_bits, 9);
    std::string_view msg(out);
    if (msg.size() >= wsize) {
      window_.assign(msg.substr(msg.size() - wsize));
    } else {
      window_.append(msg);
      if (window_.size() > wsize) window_.erase(0, window_.size() - wsize);
    }
  }
  release_inflate(ok);
  return ok;
}

void deflater::abort_inflate() noexcept { release_inflate(false); }

void deflater::release_inflate(bool ok) noexcept {
  switch (active_kind_) {
    case stream_kind::none: break;
    case stream_kind::own:
      // The context carries over to the next message, unless this one failed (the
      // connection is closing then anyway).
      if (!ok) inflateReset(zs(active_));
      break;
    case stream_kind::shared:
      inflateReset(zs(active_));
      thread_streams().inflater_busy = false;
      break;
    case stream_kind::temporary:
      inflateEnd(zs(active_));
      delete zs(active_);
      break;
  }
  active_ = nullptr;
  active_kind_ = stream_kind::none;
}

void deflater::deflate_message(std::string_view in, std::string& out) {
  // zlib does not make raw streams with an 8-bit window: 9 is the smallest.
  const int bits = params_.server_max_window_bits < 9 ? 9 : params_.server_max_window_bits;
  // Reset after each message (server_no_context_takeover): the thread's shared stream.
  void*& stream = params_.server_no_context_takeover ? thread_streams().deflaters[bits] : deflate_;
  if (!stream) {
    auto* z = new z_stream{};
    deflateInit2(z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -bits, 8, Z_DEFAULT_STRATEGY);
    stream = z;
  }
  auto* z = zs(stream);
  z->next_in = reinterpret_cast<unsigned char*>(const_cast<char*>(in.data()));
  z->avail_in = static_cast<uInt>(in.size());
  auto start = out.size();
  do {
    unsigned char buf[16384];
    z->next_out = buf;
    z->avail_out = sizeof buf;
    deflate(z, Z_SYNC_FLUSH);
    out.append(reinterpret_cast<char*>(buf), sizeof buf - z->avail_out);
  } while (z->avail_out == 0);
  // The sync flush ends with 00 00 ff ff, which the receiver adds back (RFC 7692 §7.2.1).
  if (out.size() - start >= 4 && std::memcmp(out.data() + out.size() - 4, sync_tail, 4) == 0) out.resize(out.size() - 4);
  // An empty message right after another flush makes zlib write nothing at all; a peer that
  // appends the tail to nothing is then out of step with our stream. A lone 0x00 (an empty
  // stored block once the tail is back, RFC 7692 §7.2.3.6) is valid whatever came before.
  if (out.size() == start) out.push_back('\0');
  if (params_.server_no_context_takeover) deflateReset(z);
}

std::string negotiate_deflate(const std::vector<deflate_offer>& offers, bool no_context_takeover,
                              int max_window_bits, deflate_params& out) {
  max_window_bits = std::clamp(max_window_bits, 9, 15);
  for (const auto& o : offers) {
    // zlib cannot compress with an 8-bit window: an offer that insists on it is declined.
    if (o.server_max_window_bits < 9) continue;
    deflate_params p;
    p.server_no_context_takeover = o.server_no_context_takeover || no_context_takeover;
    p.client_no_context_takeover = o.client_no_context_takeover;
    p.server_max_window_bits = std::min(o.server_max_window_bits, max_window_bits);
    p.client_max_window_bits = o.client_max_window_bits > 0 ? o.client_max_window_bits : 15;
    // A client that keeps its context makes us keep an inflate stream per connection, with
    // a window of its size. Where the server caps memory (no_context_takeover) and the
    // client let us choose its window (it offered client_max_window_bits), ask for the
    // smallest one zlib makes: RFC 7692 §7.1.2.2 lets the response carry the same or a
    // smaller value than offered, and any value for an offer without one.
    if (no_context_takeover && !p.client_no_context_takeover && o.client_max_window_bits != 0)
      p.client_max_window_bits = std::min(p.client_max_window_bits, kSmallClientWindowBits);
    std::string r = "permessage-deflate";
    if (p.server_no_context_takeover) r += "; server_no_context_takeover";
    if (p.client_no_context_takeover) r += "; client_no_context_takeover";
    if (p.server_max_window_bits < 15) r += "; server_max_window_bits=" + std::to_string(p.server_max_window_bits);
    if (o.client_max_window_bits > 0 || p.client_max_window_bits < 15)
      r += "; client_max_window_bits=" + std::to_string(p.client_max_window_bits);
    out = p;
    return r;
  }
  return {};
}

}  // namespace swactor::protocols::websocket
