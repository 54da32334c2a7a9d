#pragma once
// The HTTP/1 wire form between processes (http1.hpp: request_head, response_head,
// header_list): little-endian u32 sizes. One copy of the layout for both sides: the value
// types' encode/decode (http1_wire.cpp) and the codec, which writes request events straight
// from llhttp's buffers and reads replies as views (http1_codec.cpp).

#include <cstdint>
#include <string>
#include <string_view>

#include "swactor/core/wire.hpp"
#include "swactor/protocols/ascii.hpp"

namespace swactor::protocols::http1::wire {

// request_head flag bits
inline constexpr std::uint8_t kKeepAlive = 1, kExpect = 2, kChunked = 4, kComplete = 8;

// Writing is swactor/core/wire.hpp's; reading keeps views into the input (below).
inline void put_u32(std::string& out, std::uint32_t v) { swactor::wire::writer(out).u32(v); }
inline void put_u64(std::string& out, std::uint64_t v) { swactor::wire::writer(out).u64(v); }
inline void put_str(std::string& out, std::string_view s) { swactor::wire::writer(out).str(s); }

inline std::uint8_t request_flags(bool keep_alive, bool expect, bool chunked, bool complete) {
  return static_cast<std::uint8_t>((keep_alive ? kKeepAlive : 0) | (expect ? kExpect : 0) |
                                   (chunked ? kChunked : 0) | (complete ? kComplete : 0));
}

// A request head's wire form, the one writer of its layout (request_head::encode_to, and the
// HTTP/1 and HTTP/2 codecs from their parsers' buffers), appended to `out` in space sized
// once. The header fields are the caller's: `fields_size` bytes (their count included),
// written by `put_fields(placed_writer&)` as header_list::encode_to writes them.
struct request_wire {
  std::string_view method, target, authority;
  std::uint8_t version_minor = 1;
  std::uint8_t flags = 0;  // request_flags()
  std::int64_t content_length = -1;
  std::string_view body;
};
template <class PutFields>
void put_request(std::string& out, const request_wire& r, std::size_t fields_size, PutFields&& put_fields) {
  using swactor::wire::placed_writer;
  auto w = swactor::wire::place(out, placed_writer::size_of(r.method) + placed_writer::size_of(r.target) +
                                         placed_writer::size_of(r.authority) + 1 + fields_size + 1 + 8 +
                                         placed_writer::size_of(r.body));
  w.str(r.method);
  w.str(r.target);
  w.str(r.authority);
  w.u8(r.version_minor);
  put_fields(w);
  w.u8(r.flags);
  w.u64(static_cast<std::uint64_t>(r.content_length));
  w.str(r.body);
}

// A cursor over untrusted input: every read checks the bounds first. Strings come out as
// views into the input (no allocation) or copied into a std::string.
struct reader {
  std::string_view in;

  bool u8(std::uint8_t& v) {
    if (in.empty()) return false;
    v = static_cast<std::uint8_t>(in[0]);
    in.remove_prefix(1);
    return true;
  }
  bool u32(std::uint32_t& v) {
    if (in.size() < 4) return false;
    const auto* b = reinterpret_cast<const unsigned char*>(in.data());
    v = std::uint32_t(b[0]) | std::uint32_t(b[1]) << 8 | std::uint32_t(b[2]) << 16 |
        std::uint32_t(b[3]) << 24;
    in.remove_prefix(4);
    return true;
  }
  bool u64(std::uint64_t& v) {
    std::uint32_t lo = 0, hi = 0;
    if (!u32(lo) || !u32(hi)) return false;
    v = std::uint64_t(hi) << 32 | lo;
    return true;
  }
  bool str(std::string_view& s) {
    std::uint32_t n = 0;
    if (!u32(n) || in.size() < n) return false;
    s = in.substr(0, n);
    in.remove_prefix(n);
    return true;
  }
  bool str(std::string& s) {
    std::string_view v;
    if (!str(v)) return false;
    replace_with(s, v);  // clear() and append(): cheaper than assign() for short strings
    return true;
  }
  // A header_list in wire form: checks it and returns it whole for a later walk.
  bool fields(std::string_view& raw, std::uint32_t& count) {
    const char* begin = in.data();
    if (!u32(count)) return false;
    std::string_view a, b;
    for (std::uint32_t i = 0; i < count; ++i)
      if (!str(a) || !str(b)) return false;
    raw = std::string_view(begin, static_cast<std::size_t>(in.data() - begin));
    return true;
  }
};

}  // namespace swactor::protocols::http1::wire
