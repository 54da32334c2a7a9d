#include "swactor/protocols/framing.hpp"

#include <bit>
#include <cstring>

#include <fmt/format.h>

namespace swactor::protocols {
namespace {

class framing_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "swactor.framing"; }
  std::string message(int ev) const override {
    switch (static_cast<framing_errc>(ev)) {
      case framing_errc::ok: return "success";
      case framing_errc::invalid_options: return "invalid framing options";
      case framing_errc::frame_too_large: return "frame larger than max_length";
      case framing_errc::negative_length: return "negative length field";
      case framing_errc::bad_length: return "frame shorter than its header";
      case framing_errc::eof_not_found: return "no delimiter within max_length bytes";
    }
    return "unknown swactor.framing error";
  }
};

std::string printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\r') out += "\\r";
    else if (c == '\n') out += "\\n";
    else if (c >= 0x20 && c < 0x7f) out += static_cast<char>(c);
    else out += fmt::format("\\x{:02x}", c);
  }
  return out;
}

}  // namespace

// Not a function-local static: no guard check per call (see core/src/error.cpp).
constinit const framing_category_impl framing_category_instance{};

const std::error_category& framing_category() noexcept {
  return framing_category_instance;
}

// -- options ------------------------------------------------------------------------------

std::vector<std::string> framing_options::validate() const {
  std::vector<std::string> problems;
  if (type == framing_type::raw) return problems;
  if (max_length == 0) problems.emplace_back("max_length must be at least 1");
  if (type == framing_type::eof) {
    if (eof.empty()) {
      problems.emplace_back("eof delimiter is empty: it needs 1 to 8 bytes");
    } else if (eof.size() > 8) {
      problems.emplace_back(fmt::format("eof delimiter \"{}\" is {} bytes long: at most 8",
                                     printable(eof), eof.size()));
    }
    if (max_length != 0 && max_length < eof.size()) {
      problems.emplace_back(fmt::format("max_length {} is shorter than the eof delimiter",
                                     max_length));
    }
    return problems;
  }
  // length
  bool size_ok = length_size == 1 || length_size == 2 || length_size == 4 || length_size == 8;
  if (!size_ok) {
    problems.emplace_back(
        fmt::format("length_size is {}: it must be 1, 2, 4 or 8 bytes", length_size));
  }
  std::size_t header_end = length_offset + length_size;
  if (body_offset != 0 && body_offset < header_end) {
    problems.emplace_back(fmt::format(
        "body_offset {} lies inside the header (the length field ends at byte {}); use {} or "
        "more, or 0 when the length counts the whole frame",
        body_offset, header_end, header_end));
  }
  if (max_length != 0 && max_length < header_end) {
    problems.emplace_back(fmt::format(
        "max_length {} is shorter than the header ({} bytes up to the end of the length field)",
        max_length, header_end));
  }
  if (max_length != 0 && body_offset > max_length) {
    problems.emplace_back(fmt::format("body_offset {} is above max_length {}: every frame would "
                                   "be too large",
                                   body_offset, max_length));
  }
  return problems;
}

bool framing_options::set_length_type(std::string_view letter) {
  if (letter.size() != 1) return false;
  const byte_order host =
      std::endian::native == std::endian::little ? byte_order::little : byte_order::big;
  std::size_t size = 0;
  bool is_signed = false;
  byte_order order = host;
  switch (letter[0]) {
    case 'c': size = 1; is_signed = true; break;
    case 'C': size = 1; break;
    case 's': size = 2; is_signed = true; break;
    case 'S': size = 2; break;
    case 'n': size = 2; order = byte_order::big; break;
    case 'v': size = 2; order = byte_order::little; break;
    case 'l': size = 4; is_signed = true; break;
    case 'L': size = 4; break;
    case 'N': size = 4; order = byte_order::big; break;
    case 'V': size = 4; order = byte_order::little; break;
    case 'q': size = 8; is_signed = true; break;
    case 'Q': size = 8; break;
    case 'J': size = 8; order = byte_order::big; break;
    case 'P': size = 8; order = byte_order::little; break;
    default: return false;
  }
  length_size = size;
  length_signed = is_signed;
  length_order = order;
  return true;
}

// -- frame scanning -----------------------------------------------------------------------

namespace {

std::error_code fail_with(framing_errc e, std::string text, std::error_code& ec, std::string& why) {
  ec = make_error_code(e);
  why = std::move(text);
  return ec;
}

}  // namespace

std::size_t frame_scanner::next(const framing_options& opts, std::string_view in,
                                std::error_code& ec, std::string& why) {
  if (in.empty()) return 0;
  switch (opts.type) {
    case framing_type::raw: return in.size();
    case framing_type::eof: {
      const std::string_view delim = opts.eof;
      auto pos = in.find(delim, scan);
      if (pos == std::string_view::npos) {
        // Resume after what was searched, keeping room for a delimiter split across reads.
        scan = in.size() >= delim.size() ? in.size() - delim.size() + 1 : 0;
        if (in.size() >= opts.max_length) {
          fail_with(framing_errc::eof_not_found,
                    fmt::format("no \"{}\" delimiter within {} buffered bytes (max_length {})",
                                printable(delim), in.size(), opts.max_length),
                    ec, why);
        }
        return 0;
      }
      std::size_t len = pos + delim.size();
      if (len > opts.max_length) {
        fail_with(framing_errc::frame_too_large,
                  fmt::format("message of {} bytes up to its delimiter is above max_length {}",
                              len, opts.max_length),
                  ec, why);
        return 0;
      }
      scan = 0;
      return len;
    }
    case framing_type::length: {
      if (frame == 0) {
        const std::size_t header_end = opts.length_offset + opts.length_size;
        if (in.size() < header_end) return 0;
        const auto* p = reinterpret_cast<const unsigned char*>(in.data() + opts.length_offset);
        const std::size_t n = opts.length_size;
        std::uint64_t v = 0;
        for (std::size_t i = 0; i < n; ++i) {
          std::size_t idx = opts.length_order == byte_order::big ? i : n - 1 - i;
          v = (v << 8) | p[idx];
        }
        if (opts.length_signed && n < 8 && (v >> (n * 8 - 1)) & 1) {
          fail_with(framing_errc::negative_length,
                    fmt::format("length field holds {}", static_cast<std::int64_t>(v) -
                                                            static_cast<std::int64_t>(1ull << (n * 8))),
                    ec, why);
          return 0;
        }
        if (opts.length_signed && n == 8 && static_cast<std::int64_t>(v) < 0) {
          fail_with(framing_errc::negative_length,
                    fmt::format("length field holds {}", static_cast<std::int64_t>(v)), ec, why);
          return 0;
        }
        if (v > opts.max_length || opts.body_offset > opts.max_length - v) {
          // body_offset <= max_length (validated), so the sum below cannot overflow.
          fail_with(framing_errc::frame_too_large,
                    v > opts.max_length
                        ? fmt::format("length field {} is above max_length {}", v, opts.max_length)
                        : fmt::format("length field {} makes a frame of {} bytes, above max_length {}",
                                      v, opts.body_offset + v, opts.max_length),
                    ec, why);
          return 0;
        }
        const std::size_t total = opts.body_offset + v;
        if (total < header_end) {
          fail_with(framing_errc::bad_length,
                    fmt::format("length field {} makes a frame of {} bytes, shorter than its {}-byte "
                                "header",
                                v, total, header_end),
                    ec, why);
          return 0;
        }
        frame = total;
      }
      if (in.size() < frame) return 0;
      auto len = frame;
      frame = 0;
      return len;
    }
  }
  return 0;
}

std::size_t frame_size(const framing_options& opts, std::string_view in, std::error_code& ec,
                       std::string* why) {
  ec.clear();
  frame_scanner sc;
  std::string reason;
  auto n = sc.next(opts, in, ec, reason);
  if (ec) {
    if (why) *why = std::move(reason);
    return 0;
  }
  return n ? n : sc.frame;  // length: known from the header before the frame is complete
}

std::string_view frame_payload(const framing_options& opts, std::string_view message) noexcept {
  switch (opts.type) {
    case framing_type::raw: return message;
    case framing_type::eof:
      if (message.ends_with(opts.eof)) message.remove_suffix(opts.eof.size());
      return message;
    case framing_type::length: {
      std::size_t skip = opts.body_offset != 0 ? opts.body_offset : opts.length_offset + opts.length_size;
      return message.size() >= skip ? message.substr(skip) : std::string_view();
    }
  }
  return message;
}

// -- codec --------------------------------------------------------------------------------

std::string_view frame_codec::name() const noexcept {
  switch (opts_->type) {
    case framing_type::raw: return "raw";
    case framing_type::eof: return "eof";
    case framing_type::length: return "length";
  }
  return "framing";
}

std::size_t frame_codec::decode(std::string_view in, event_sink& out) {
  if (opts_->type == framing_type::raw && !in.empty() && !failed()) {
    // Whatever one read brought is one message: nothing to scan (and a small frame: this is
    // the path of every raw message).
    out.on_event(event{0, in});
    return in.size();
  }
  return decode_frames(in, out);
}

std::size_t frame_codec::decode_frames(std::string_view in, event_sink& out) {
  if (failed() || in.empty() || opts_->type == framing_type::raw) return 0;
  std::size_t used = 0;
  std::error_code ec;
  std::string why;
  while (used < in.size()) {
    auto n = scanner_.next(*opts_, in.substr(used), ec, why);
    if (ec) {
      fail(ec, std::move(why));
      return used;
    }
    if (n == 0) return used;
    event e{0, in.substr(used, n)};
    used += n;
    if (!out.on_event(e)) return used;
  }
  return used;
}

// -- framer -------------------------------------------------------------------------------

framer::framer(framing_options opts) : opts_(std::move(opts)) {
  auto problems = opts_.validate();
  if (!problems.empty()) {
    std::string why = "invalid framing options:";
    for (const auto& p : problems) why += " " + p + ";";
    why.pop_back();
    fail(framing_errc::invalid_options, std::move(why));
    options_invalid_ = true;
  }
}

void framer::fail(framing_errc e, std::string why) {
  error_ = make_error_code(e);
  reason_ = std::move(why);
}

void framer::reset() {
  buf_.clear();
  head_ = 0;
  scanner_.reset();
  if (!options_invalid_) {
    error_ = {};
    reason_.clear();
  }
}

std::error_code framer::feed(std::string_view bytes) {
  if (error_) return error_;
  // Drop consumed bytes only once they outweigh what is left: amortized linear, and views
  // handed out since the last feed stay valid until here.
  if (head_ > 0 && head_ >= buf_.size() - head_) {
    buf_.erase(0, head_);
    head_ = 0;
  }
  buf_.append(bytes);
  return {};
}

std::error_code framer::feed(std::string_view bytes, std::vector<std::string>& out) {
  if (auto ec = feed(bytes)) return ec;
  while (auto m = next()) out.emplace_back(*m);
  return error_;
}

std::optional<std::string_view> framer::next() {
  if (error_ || buffered() == 0) return std::nullopt;
  std::string_view data(buf_.data() + head_, buffered());
  auto n = scanner_.next(opts_, data, error_, reason_);
  if (n == 0) return std::nullopt;
  head_ += n;
  return data.substr(0, n);
}

}  // namespace swactor::protocols
