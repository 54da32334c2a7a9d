#include "swactor/protocols/compression.hpp"

#include <brotli/decode.h>
#include <brotli/encode.h>
#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <new>

#include "swactor/protocols/ascii.hpp"
#include "swactor/protocols/field_lists.hpp"

namespace swactor::protocols::compression {
namespace {

// A qvalue (RFC 9110 §12.4.2: "0", "0.5", "1.000") in thousandths; -1 when malformed.
int parse_qvalue(std::string_view v) noexcept {
  if (v.empty() || v.size() > 5 || (v[0] != '0' && v[0] != '1')) return -1;
  int q = (v[0] - '0') * 1000;
  if (v.size() == 1) return q;
  if (v[1] != '.') return -1;
  int scale = 100;
  for (std::size_t i = 2; i < v.size(); ++i, scale /= 10) {
    if (v[i] < '0' || v[i] > '9') return -1;
    q += (v[i] - '0') * scale;
  }
  return q > 1000 ? -1 : q;
}

// Output grows in steps of this much (or less, near a decoder's limit).
constexpr std::size_t kStep = 16 * 1024;

// -- zlib -----------------------------------------------------------------------------------

class zlib_encoder final : public encoder {
 public:
  zlib_encoder(bool gzip, int level, std::uint64_t size_hint) : level_(std::clamp(level, 1, 9)) {
    const int wbits = window_bits(size_hint);
    const int mem_level = std::max(1, 8 - (15 - wbits));
    if (deflateInit2(&z_, level_, Z_DEFLATED, gzip ? wbits + 16 : wbits, mem_level, Z_DEFAULT_STRATEGY) != Z_OK)
      throw std::bad_alloc();
  }
  ~zlib_encoder() override { deflateEnd(&z_); }

  // A body known to be small does not need a 32 KiB window (zlib's window is 262 bytes less
  // than 1 << wbits); each step down halves the memory deflate allocates and clears.
  static int window_bits(std::uint64_t size_hint) noexcept {
    int wbits = 15;
    if (size_hint > 0)
      while (wbits > 9 && size_hint + 262 < (std::uint64_t{1} << (wbits - 1))) --wbits;
    return wbits;
  }
  int level() const noexcept { return level_; }
  // Ready for a new stream with the same settings (keeps the allocations).
  void reset() {
    if (deflateReset(&z_) != Z_OK) throw std::bad_alloc();
  }

  void feed(std::string_view in, std::string& out) override { run(in, Z_NO_FLUSH, out); }
  void flush(std::string& out) override { run({}, Z_SYNC_FLUSH, out); }
  void finish(std::string& out) override { run({}, Z_FINISH, out); }

 private:
  void run(std::string_view in, int mode, std::string& out) {
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z_.avail_in = static_cast<uInt>(in.size());
    for (;;) {
      auto old = out.size();
      std::size_t room = std::max<std::size_t>(kStep, mode == Z_NO_FLUSH ? 0 : deflateBound(&z_, z_.avail_in));
      out.resize(old + room);
      z_.next_out = reinterpret_cast<Bytef*>(out.data() + old);
      z_.avail_out = static_cast<uInt>(room);
      int rc = deflate(&z_, mode);
      out.resize(old + room - z_.avail_out);
      if (rc == Z_STREAM_END) return;
      if (rc != Z_OK && rc != Z_BUF_ERROR) throw std::bad_alloc();
      // Done when deflate left output room unused (it had nothing more to say) and took
      // all the input.
      if (z_.avail_out != 0 && z_.avail_in == 0 && mode != Z_FINISH) return;
    }
  }

  int level_;
  z_stream z_{};
};

class zlib_decoder final : public decoder {
 public:
  zlib_decoder(bool gzip, std::uint64_t max) : gzip_(gzip), max_(max) {
    if (inflateInit2(&z_, gzip ? 15 + 16 : 15) != Z_OK) throw std::bad_alloc();
  }
  ~zlib_decoder() override { inflateEnd(&z_); }

  decode_status feed(std::string_view in, std::string& out) override {
    if (state_ != decode_status::ok) return state_;
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z_.avail_in = static_cast<uInt>(in.size());
    while (z_.avail_in > 0 || pending_) {
      if (ended_) {
        // Another gzip member may follow (RFC 1952 §2.2); anything else after the end is
        // not part of the body.
        if (!gzip_) return state_ = decode_status::corrupt;
        if (inflateReset(&z_) != Z_OK) return state_ = decode_status::corrupt;
        ended_ = false;
      }
      // One byte more than the limit allows: producing it proves the limit is passed.
      auto room = static_cast<std::size_t>(std::min<std::uint64_t>(kStep, max_ - produced_ + 1));
      auto old = out.size();
      out.resize(old + room);
      z_.next_out = reinterpret_cast<Bytef*>(out.data() + old);
      z_.avail_out = static_cast<uInt>(room);
      int rc = inflate(&z_, Z_NO_FLUSH);
      auto got = room - z_.avail_out;
      out.resize(old + got);
      produced_ += got;
      if (produced_ > max_) {
        out.resize(out.size() - static_cast<std::size_t>(produced_ - max_));
        produced_ = max_;
        return state_ = decode_status::too_large;
      }
      // Output room used up: zlib may hold more for the next call even without input.
      pending_ = z_.avail_out == 0;
      if (rc == Z_STREAM_END) {
        ended_ = true;
        pending_ = false;
      } else if (rc == Z_BUF_ERROR) {
        if (z_.avail_in == 0) break;  // needs more input
      } else if (rc != Z_OK) {
        return state_ = decode_status::corrupt;
      }
    }
    return decode_status::ok;
  }
  decode_status finish() override {
    if (state_ != decode_status::ok) return state_;
    return ended_ ? decode_status::ok : (state_ = decode_status::corrupt);
  }
  std::uint64_t produced() const noexcept override { return produced_; }

 private:
  z_stream z_{};
  bool gzip_;
  std::uint64_t max_, produced_ = 0;
  bool ended_ = false, pending_ = false;
  decode_status state_ = decode_status::ok;
};

// -- brotli ---------------------------------------------------------------------------------

class brotli_encoder final : public encoder {
 public:
  brotli_encoder(int quality, std::uint64_t size_hint) : st_(BrotliEncoderCreateInstance(nullptr, nullptr, nullptr)) {
    if (!st_) throw std::bad_alloc();
    BrotliEncoderSetParameter(st_, BROTLI_PARAM_QUALITY, static_cast<std::uint32_t>(std::clamp(quality, 0, 11)));
    // 512 KiB window (nginx's brotli default), not 4 MiB: a streamed response holds it.
    BrotliEncoderSetParameter(st_, BROTLI_PARAM_LGWIN, 19);
    if (size_hint > 0)
      BrotliEncoderSetParameter(st_, BROTLI_PARAM_SIZE_HINT,
                                static_cast<std::uint32_t>(std::min<std::uint64_t>(size_hint, 1u << 30)));
  }
  ~brotli_encoder() override { BrotliEncoderDestroyInstance(st_); }

  void feed(std::string_view in, std::string& out) override { run(in, BROTLI_OPERATION_PROCESS, out); }
  void flush(std::string& out) override { run({}, BROTLI_OPERATION_FLUSH, out); }
  void finish(std::string& out) override { run({}, BROTLI_OPERATION_FINISH, out); }

 private:
  void run(std::string_view in, BrotliEncoderOperation op, std::string& out) {
    std::size_t avail_in = in.size();
    auto* next_in = reinterpret_cast<const std::uint8_t*>(in.data());
    for (;;) {
      std::size_t avail_out = 0;
      if (!BrotliEncoderCompressStream(st_, op, &avail_in, &next_in, &avail_out, nullptr, nullptr))
        throw std::bad_alloc();
      std::size_t n = 0;
      const std::uint8_t* p = BrotliEncoderTakeOutput(st_, &n);
      out.append(reinterpret_cast<const char*>(p), n);
      if (avail_in == 0 && !BrotliEncoderHasMoreOutput(st_) &&
          (op != BROTLI_OPERATION_FINISH || BrotliEncoderIsFinished(st_)))
        return;
    }
  }

  BrotliEncoderState* st_;
};

class brotli_decoder final : public decoder {
 public:
  explicit brotli_decoder(std::uint64_t max) : st_(BrotliDecoderCreateInstance(nullptr, nullptr, nullptr)), max_(max) {
    if (!st_) throw std::bad_alloc();
  }
  ~brotli_decoder() override { BrotliDecoderDestroyInstance(st_); }

  decode_status feed(std::string_view in, std::string& out) override {
    if (state_ != decode_status::ok) return state_;
    std::size_t avail_in = in.size();
    auto* next_in = reinterpret_cast<const std::uint8_t*>(in.data());
    for (;;) {
      if (ended_) return avail_in == 0 ? decode_status::ok : (state_ = decode_status::corrupt);
      auto room = static_cast<std::size_t>(std::min<std::uint64_t>(kStep, max_ - produced_ + 1));
      auto old = out.size();
      out.resize(old + room);
      std::size_t avail_out = room;
      auto* next_out = reinterpret_cast<std::uint8_t*>(out.data() + old);
      auto rc = BrotliDecoderDecompressStream(st_, &avail_in, &next_in, &avail_out, &next_out, nullptr);
      auto got = room - avail_out;
      out.resize(old + got);
      produced_ += got;
      if (produced_ > max_) {
        out.resize(out.size() - static_cast<std::size_t>(produced_ - max_));
        produced_ = max_;
        return state_ = decode_status::too_large;
      }
      switch (rc) {
        case BROTLI_DECODER_RESULT_SUCCESS: ended_ = true; break;
        case BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT: return decode_status::ok;
        case BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT: break;
        default: return state_ = decode_status::corrupt;
      }
    }
  }
  decode_status finish() override {
    if (state_ != decode_status::ok) return state_;
    return ended_ ? decode_status::ok : (state_ = decode_status::corrupt);
  }
  std::uint64_t produced() const noexcept override { return produced_; }

 private:
  BrotliDecoderState* st_;
  std::uint64_t max_, produced_ = 0;
  bool ended_ = false;
  decode_status state_ = decode_status::ok;
};

// "text/html; charset=utf-8" -> "text/html" (lowercase).
std::string media_type(std::string_view content_type) {
  return ascii_lowered(trim_ows(content_type.substr(0, content_type.find(';'))));
}

bool type_matches(std::string_view type, std::string_view pattern) noexcept {
  pattern = trim_ows(pattern);
  if (pattern.size() >= 2 && pattern.substr(pattern.size() - 2) == "/*")
    return type.size() > pattern.size() - 1 && ascii_iequals(type.substr(0, pattern.size() - 1), pattern.substr(0, pattern.size() - 1));
  return ascii_iequals(type, pattern);
}

}  // namespace

std::string_view to_string(coding c) noexcept {
  switch (c) {
    case coding::gzip: return "gzip";
    case coding::deflate: return "deflate";
    case coding::br: return "br";
    case coding::identity: break;
  }
  return "identity";
}

std::optional<coding> parse_coding(std::string_view t) noexcept {
  t = trim_ows(t);
  if (ascii_iequals(t, "gzip") || ascii_iequals(t, "x-gzip")) return coding::gzip;
  if (ascii_iequals(t, "deflate")) return coding::deflate;
  if (ascii_iequals(t, "br")) return coding::br;
  if (ascii_iequals(t, "identity")) return coding::identity;
  return std::nullopt;
}

coding negotiate(std::string_view header, bool present, const std::vector<coding>& offered) {
  if (!present || offered.empty()) return coding::identity;
  // q in thousandths per coding (-1 = not named), and for "*".
  int q[4] = {-1, -1, -1, -1};
  int star = -1;
  any_list_item(header, [&](std::string_view item) {
    auto semi = item.find(';');
    auto name = trim_ows(item.substr(0, semi));
    int weight = 1000;
    // Parameters: only "q" means something here (RFC 9110 §12.4.2).
    for (auto params = semi == std::string_view::npos ? std::string_view() : item.substr(semi + 1); !params.empty();) {
      auto next = params.find(';');
      auto p = trim_ows(params.substr(0, next));
      params = next == std::string_view::npos ? std::string_view() : params.substr(next + 1);
      if (p.size() >= 2 && (p[0] == 'q' || p[0] == 'Q') && trim_ows(p.substr(1)).starts_with('=')) {
        auto v = trim_ows(p.substr(p.find('=') + 1));
        weight = parse_qvalue(v);
      }
    }
    if (weight < 0) return false;  // malformed weight: the entry says nothing we can trust
    if (name == "*") {
      star = std::max(star, weight);
    } else if (auto c = parse_coding(name)) {
      auto& slot = q[static_cast<int>(*c)];
      slot = std::max(slot, weight);
    }
    return false;
  });
  coding best = coding::identity;
  int best_q = 0;
  for (auto c : offered) {
    if (c == coding::identity) continue;
    int w = q[static_cast<int>(c)] >= 0 ? q[static_cast<int>(c)] : std::max(star, 0);
    if (w > best_q) {  // strictly: ties keep the earlier (preferred) coding
      best = c;
      best_q = w;
    }
  }
  // A client that names identity with a higher weight prefers it.
  if (best != coding::identity && q[0] > best_q) return coding::identity;
  return best;
}

std::unique_ptr<encoder> make_encoder(coding c, int level, std::uint64_t size_hint) {
  switch (c) {
    case coding::gzip: return std::make_unique<zlib_encoder>(true, level, size_hint);
    case coding::deflate: return std::make_unique<zlib_encoder>(false, level, size_hint);
    case coding::br: return std::make_unique<brotli_encoder>(level, size_hint);
    case coding::identity: break;
  }
  return nullptr;
}

std::string compress(coding c, int level, std::string_view in) {
  if (c == coding::gzip || c == coding::deflate) {
    // One deflate state per thread, coding and window size, reset between bodies: a fresh
    // one per response (100..300 KiB) made glibc grow and trim the heap every time (two brk
    // calls and new zeroed pages per response, 10x the CPU of the compression itself).
    thread_local std::unique_ptr<zlib_encoder> cache[2][7];
    const bool gzip = c == coding::gzip;
    auto& e = cache[gzip ? 0 : 1][zlib_encoder::window_bits(in.size()) - 9];
    if (e && e->level() == std::clamp(level, 1, 9))
      e->reset();
    else
      e = std::make_unique<zlib_encoder>(gzip, level, in.size());
    std::string out;
    e->feed(in, out);
    e->finish(out);
    return out;
  }
  auto e = make_encoder(c, level, in.size());
  if (!e) return std::string(in);
  std::string out;
  e->feed(in, out);
  e->finish(out);
  return out;
}

std::unique_ptr<decoder> make_decoder(coding c, std::uint64_t max_output) {
  switch (c) {
    case coding::gzip: return std::make_unique<zlib_decoder>(true, max_output);
    case coding::deflate: return std::make_unique<zlib_decoder>(false, max_output);
    case coding::br: return std::make_unique<brotli_decoder>(max_output);
    case coding::identity: break;
  }
  return nullptr;
}

const std::vector<std::string>& default_excluded_types() {
  static const std::vector<std::string> types{
      "image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/heic", "image/jxl",
      "video/*", "audio/*", "font/woff", "font/woff2",
      "application/zip", "application/gzip", "application/x-gzip", "application/x-bzip2", "application/x-xz",
      "application/zstd", "application/x-7z-compressed", "application/vnd.rar", "application/x-rar-compressed",
      "application/pdf", "application/octet-stream"};
  return types;
}

bool compressible_type(std::string_view content_type, const options& o) {
  auto type = media_type(content_type);
  if (!o.types.empty() &&
      std::none_of(o.types.begin(), o.types.end(), [&](const std::string& p) { return type_matches(type, p); }))
    return false;
  return std::none_of(o.excluded_types.begin(), o.excluded_types.end(),
                      [&](const std::string& p) { return type_matches(type, p); });
}

}  // namespace swactor::protocols::compression
