#include "swactor/ipc/envelope.hpp"
#include "swactor/core/wire.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <string>

#include <fmt/format.h>

namespace swactor::ipc {
namespace {

class ipc_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "swactor.ipc"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::ok: return "success";
      case errc::bad_magic: return "bad envelope magic";
      case errc::bad_version: return "unsupported envelope version";
      case errc::bad_flags: return "bad envelope flags";
      case errc::bad_length: return "inconsistent envelope lengths";
      case errc::frame_too_large: return "envelope frame too large";
      case errc::message_too_large: return "message too large";
      case errc::chunk_out_of_order: return "chunk out of order";
      case errc::too_many_partial: return "too many partial chunked messages";
      case errc::truncated: return "stream ended inside a message";
      case errc::queue_full: return "send queue full";
      case errc::bad_message: return "malformed message payload";
    }
    return "unknown swactor.ipc error";
  }
};

using wire::load;
using wire::store;

// The 48-byte frame header of `m` at `h` (layout: envelope.hpp).
void write_header(std::byte* h, const message& m, std::uint16_t flags, std::size_t length, std::size_t total) {
  store<std::uint16_t>(h + 0, magic);
  h[2] = std::byte{protocol_version};
  h[3] = std::byte{static_cast<std::uint8_t>(m.type)};
  store<std::uint16_t>(h + 4, flags);
  store<std::uint16_t>(h + 6, 0);
  store<std::uint32_t>(h + 8, static_cast<std::uint32_t>(length));
  store<std::uint32_t>(h + 12, m.reactor_id);
  store<std::uint64_t>(h + 16, m.session_id);
  store<std::uint64_t>(h + 24, m.message_id);
  store<std::uint32_t>(h + 32, m.src_worker);
  store<std::uint32_t>(h + 36, m.dst_worker);
  store<std::uint64_t>(h + 40, static_cast<std::uint64_t>(total));
}

constexpr std::size_t kReserveCap = 1024 * 1024;  // never trust a peer's size for reserve()

int chunk_bits(std::uint16_t flags) { return std::popcount(unsigned(flags & flag::chunk_mask)); }

std::string_view chunk_name(std::uint16_t flags) {
  switch (flags & flag::chunk_mask) {
    case flag::chunk_begin: return "chunk_begin";
    case flag::chunk_continue: return "chunk_continue";
    case flag::chunk_end: return "chunk_end";
    default: return "unchunked";
  }
}

}  // namespace

// Not a function-local static: no guard check per call (see core/src/error.cpp).
constinit const ipc_category_impl ipc_category_instance{};

const std::error_category& ipc_category() noexcept {
  return ipc_category_instance;
}

std::string_view type_name(message_type t) noexcept {
  switch (t) {
    case message_type::none: return "none";
    case message_type::connect: return "connect";
    case message_type::receive: return "receive";
    case message_type::close: return "close";
    case message_type::send: return "send";
    case message_type::task: return "task";
    case message_type::task_result: return "task_result";
    case message_type::pipe_message: return "pipe_message";
    case message_type::control: return "control";
    case message_type::stats: return "stats";
    case message_type::bus: return "bus";
    case message_type::packet: return "packet";
    case message_type::pause: return "pause";
    case message_type::resume: return "resume";
    case message_type::conn_close: return "conn_close";
    case message_type::conn_bind: return "conn_bind";
    case message_type::datagram_out: return "datagram_out";
    case message_type::drain: return "drain";
    case message_type::drained: return "drained";
    case message_type::ready: return "ready";
    case message_type::stop: return "stop";
    case message_type::conn_watch: return "conn_watch";
    case message_type::conn_writable: return "conn_writable";
    case message_type::bus_subscribe: return "bus_subscribe";
    case message_type::conn_upgrade: return "conn_upgrade";
    case message_type::conn_adopt: return "conn_adopt";
    case message_type::group_op: return "group_op";
    case message_type::group_send: return "group_send";
    case message_type::user: return "user";
  }
  return "unknown";
}

std::size_t encoded_size(std::size_t payload_size, const codec_options& opts) noexcept {
  std::size_t chunk = std::max<std::size_t>(opts.chunk_size, 1);
  std::size_t frames = payload_size <= chunk ? 1 : (payload_size + chunk - 1) / chunk;
  return frames * header_size + payload_size;
}

// -- encoder ----------------------------------------------------------------------------------

void encoder::add_local(const void* data, std::size_t n) {
  if (n == 0) return;
  std::size_t off = arena_.size();
  arena_.append(static_cast<const char*>(data), n);
  if (!pieces_.empty() && pieces_.back().external == nullptr &&
      pieces_.back().offset + pieces_.back().size == off) {
    pieces_.back().size += n;  // contiguous in the arena: one buffer
  } else {
    pieces_.push_back({nullptr, off, n});
  }
  size_ += n;
}

void encoder::add_header(const message& m, std::uint16_t flags, std::size_t length,
                         std::size_t total) {
  std::byte h[header_size];
  write_header(h, m, flags, length, total);
  add_local(h, header_size);
  ++frames_;
}

std::error_code encoder::append(const message& m) {
  const std::size_t total = m.payload.size();
  if (total > opts_.max_message_size) return errc::message_too_large;
  const std::size_t chunk = std::clamp<std::size_t>(opts_.chunk_size, 1, 0xffffffffu);
  const std::uint16_t base = m.flags & ~flag::chunk_mask;
  buffers_valid_ = false;
  auto add_payload = [&](const char* p, std::size_t n) {
    if (n <= opts_.copy_threshold) {
      add_local(p, n);
    } else {
      pieces_.push_back({reinterpret_cast<const std::byte*>(p), 0, n});
      size_ += n;
    }
  };
  if (total <= chunk) {
    add_header(m, base, total, total);
    add_payload(m.payload.data(), total);
    return {};
  }
  for (std::size_t off = 0; off < total; off += chunk) {
    std::size_t n = std::min(chunk, total - off);
    std::uint16_t bits = off == 0                ? flag::chunk_begin
                         : off + n == total ? flag::chunk_end
                                              : flag::chunk_continue;
    add_header(m, base | bits, n, total);
    add_payload(m.payload.data() + off, n);
  }
  return {};
}

const std::vector<std::span<const std::byte>>& encoder::buffers() {
  if (!buffers_valid_) {
    // The arena may have moved since pieces were recorded: resolve offsets only now.
    buffers_.clear();
    buffers_.reserve(pieces_.size());
    auto* base = reinterpret_cast<const std::byte*>(arena_.data());
    for (const auto& p : pieces_) {
      buffers_.emplace_back(p.external ? p.external : base + p.offset, p.size);
    }
    buffers_valid_ = true;
  }
  return buffers_;
}

void encoder::clear() noexcept {
  arena_.clear();
  pieces_.clear();
  buffers_.clear();
  buffers_valid_ = true;
  size_ = 0;
  frames_ = 0;
}

void encoder::append_encoded(std::span<const std::byte> bytes, std::size_t frames) {
  if (bytes.empty()) return;
  buffers_valid_ = false;
  pieces_.push_back({bytes.data(), 0, bytes.size()});
  size_ += bytes.size();
  frames_ += frames;
}

namespace {

// The frame of `m` with an `n`-byte payload grown onto `out` in one step (one capacity check
// on a per-message path); returns where the payload goes, or null when it needs chunks.
char* begin_frame(const message& m, std::size_t n, std::string& out, const codec_options& opts) {
  if (n > std::clamp<std::size_t>(opts.chunk_size, 1, 0xffffffffu) || n > opts.max_message_size) return nullptr;
  const auto at = out.size();
  out.resize(at + header_size + n);  // the header in place, then the payload behind it
  char* h = out.data() + at;
  write_header(reinterpret_cast<std::byte*>(h), m, static_cast<std::uint16_t>(m.flags & ~flag::chunk_mask), n, n);
  return h + header_size;
}

void put(char*& p, std::string_view s) noexcept {
  if (!s.empty()) std::memcpy(p, s.data(), s.size());
  p += s.size();
}

}  // namespace

bool append_frame(const message& m, std::string& out, const codec_options& opts) {
  char* p = begin_frame(m, m.payload.size(), out, opts);
  if (!p) return false;
  put(p, m.payload);
  return true;
}

bool append_frame(const message_pieces& m, std::string& out, const codec_options& opts) {
  char* p = begin_frame(m.head, m.size(), out, opts);
  if (!p) return false;
  put(p, m.bulk);
  put(p, m.fields_view());
  return true;
}

message message_pieces::assemble() const {
  message m = head;
  m.payload.reserve(size());
  m.payload.assign(bulk);
  m.payload.append(fields_view());
  return m;
}

std::error_code encode(const message& m, std::string& out, const codec_options& opts) {
  codec_options copy_all = opts;
  copy_all.copy_threshold = static_cast<std::size_t>(-1);
  encoder enc(copy_all);
  if (auto ec = enc.append(m)) return ec;
  out.reserve(out.size() + enc.size());
  for (auto b : enc.buffers()) out.append(reinterpret_cast<const char*>(b.data()), b.size());
  return {};
}

// -- decoder ----------------------------------------------------------------------------------

std::size_t decoder::key_hash::operator()(const key& k) const noexcept {
  std::uint64_t h = k.message_id * 0x9e3779b97f4a7c15ull;
  h ^= k.session_id + 0x632be59bd9b4e019ull + (h << 6) + (h >> 2);
  h ^= (std::uint64_t(k.src_worker) << 32 | k.reactor_id) + (h << 6) + (h >> 2);
  return static_cast<std::size_t>(h);
}

std::error_code decoder::fail(errc e, std::string why) {
  error_ = make_error_code(e);
  reason_ = fmt::format("{} at stream offset {}", why, consumed_);
  return error_;
}

void decoder::reset() {
  error_ = {};
  reason_.clear();
  header_fill_ = 0;
  in_payload_ = false;
  payload_left_ = 0;
  target_ = nullptr;
  single_ = message{};
  partial_.clear();
  partial_bytes_ = 0;
  consumed_ = 0;
  decoded_ = 0;
}

std::error_code decoder::finish() {
  if (error_) return error_;
  if (header_fill_ != 0 || in_payload_) {
    return fail(errc::truncated, "stream ended inside a frame");
  }
  if (!partial_.empty()) {
    return fail(errc::truncated,
                fmt::format("stream ended with {} chunked message(s) unfinished", partial_.size()));
  }
  return {};
}

std::error_code decoder::on_header(std::vector<message>& out) {
  const std::byte* h = header_buf_;
  auto m = load<std::uint16_t>(h + 0);
  if (m != magic) return fail(errc::bad_magic, fmt::format("bad magic {:#06x}", m));
  auto v = static_cast<std::uint8_t>(h[2]);
  if (v != protocol_version) {
    return fail(errc::bad_version,
                fmt::format("envelope version {} (expected {})", v, protocol_version));
  }
  hdr_.type = static_cast<std::uint8_t>(h[3]);
  hdr_.flags = load<std::uint16_t>(h + 4);
  hdr_.length = load<std::uint32_t>(h + 8);
  hdr_.reactor_id = load<std::uint32_t>(h + 12);
  hdr_.session_id = load<std::uint64_t>(h + 16);
  hdr_.message_id = load<std::uint64_t>(h + 24);
  hdr_.src_worker = load<std::uint32_t>(h + 32);
  hdr_.dst_worker = load<std::uint32_t>(h + 36);
  hdr_.total = load<std::uint64_t>(h + 40);

  if (chunk_bits(hdr_.flags) > 1) {
    return fail(errc::bad_flags, fmt::format("several chunk bits in flags {:#06x}", hdr_.flags));
  }
  if (hdr_.length > opts_.max_frame_size) {
    return fail(errc::frame_too_large, fmt::format("frame payload of {} bytes (limit {})",
                                                   hdr_.length, opts_.max_frame_size));
  }
  if (hdr_.total > opts_.max_message_size) {
    return fail(errc::message_too_large,
                fmt::format("message of {} bytes (limit {})", hdr_.total, opts_.max_message_size));
  }
  const std::uint16_t bits = hdr_.flags & flag::chunk_mask;
  const std::uint16_t keep = hdr_.flags & ~flag::chunk_mask;

  if (bits == 0) {
    if (hdr_.total != hdr_.length) {
      return fail(errc::bad_length, fmt::format("unchunked frame with length {} but total {}",
                                                hdr_.length, hdr_.total));
    }
    single_ = message{static_cast<message_type>(hdr_.type), keep, hdr_.reactor_id,
                      hdr_.session_id, hdr_.message_id, hdr_.src_worker, hdr_.dst_worker, {}};
    single_.payload.reserve(hdr_.length);  // bounded by max_frame_size
    target_ = &single_.payload;
  } else {
    key k{hdr_.src_worker, hdr_.reactor_id, hdr_.session_id, hdr_.message_id};
    auto describe = [&] {
      return fmt::format("{} (src {}, reactor {}, session {}, message {})", chunk_name(bits),
                         hdr_.src_worker, hdr_.reactor_id, hdr_.session_id, hdr_.message_id);
    };
    if (partial_bytes_ + hdr_.length > opts_.max_partial_bytes) {
      return fail(errc::too_many_partial,
                  fmt::format("{}: partial messages would hold more than {} bytes", describe(),
                              opts_.max_partial_bytes));
    }
    auto it = partial_.find(k);
    if (bits == flag::chunk_begin) {
      if (it != partial_.end()) {
        return fail(errc::chunk_out_of_order,
                    fmt::format("{} while that message is still open", describe()));
      }
      if (partial_.size() >= opts_.max_partial) {
        return fail(errc::too_many_partial, fmt::format("{}: more than {} partial messages",
                                                        describe(), opts_.max_partial));
      }
      if (hdr_.length > hdr_.total) {
        return fail(errc::bad_length, fmt::format("{} carries {} bytes of a {}-byte message",
                                                  describe(), hdr_.length, hdr_.total));
      }
      partial p{message{static_cast<message_type>(hdr_.type), keep, hdr_.reactor_id,
                        hdr_.session_id, hdr_.message_id, hdr_.src_worker, hdr_.dst_worker, {}},
                hdr_.total};
      p.msg.payload.reserve(std::min<std::uint64_t>(hdr_.total, kReserveCap));
      it = partial_.emplace(k, std::move(p)).first;
    } else {
      if (it == partial_.end()) {
        return fail(errc::chunk_out_of_order, fmt::format("{} without chunk_begin", describe()));
      }
      const auto& pm = it->second;
      if (static_cast<std::uint8_t>(pm.msg.type) != hdr_.type || pm.total != hdr_.total ||
          pm.msg.dst_worker != hdr_.dst_worker || pm.msg.flags != keep) {
        return fail(errc::chunk_out_of_order,
                    fmt::format("{} changes type, flags, destination or total", describe()));
      }
      std::uint64_t after = pm.msg.payload.size() + std::uint64_t(hdr_.length);
      if (after > pm.total || (bits == flag::chunk_end && after != pm.total)) {
        return fail(errc::bad_length,
                    fmt::format("{} brings the message to {} of {} bytes", describe(), after,
                                pm.total));
      }
    }
    target_ = &it->second.msg.payload;
    target_key_ = k;
  }
  in_payload_ = true;
  payload_left_ = hdr_.length;
  if (payload_left_ == 0) on_payload_done(out);
  return {};
}

bool decoder::take_whole_frame(const std::byte*& p, std::size_t& left, std::vector<message>& out, view_sink sink) {
  // The common case, a whole unchunked frame within the bytes read: decoded straight from
  // them, without the header copy and the payload buffer of a frame that arrives in parts.
  // Anything unusual (an error to report, a chunk, a frame not all here) takes the general
  // path, which gives the precise reason.
  const auto length = load<std::uint32_t>(p + 8);
  const auto flags = load<std::uint16_t>(p + 4);
  if (load<std::uint16_t>(p) != magic || static_cast<std::uint8_t>(p[2]) != protocol_version ||
      (flags & flag::chunk_mask) != 0 || load<std::uint64_t>(p + 40) != length || length > opts_.max_frame_size ||
      length > opts_.max_message_size || left - header_size < length)
    return false;
  const message_view v{static_cast<message_type>(p[3]), flags, load<std::uint32_t>(p + 12),
                       load<std::uint64_t>(p + 16), load<std::uint64_t>(p + 24), load<std::uint32_t>(p + 32),
                       load<std::uint32_t>(p + 36),
                       std::string_view(reinterpret_cast<const char*>(p + header_size), length)};
  if (!sink.fn || !out.empty() || !sink.fn(sink.ctx, v))
    out.push_back(message{v.type, v.flags, v.reactor_id, v.session_id, v.message_id, v.src_worker, v.dst_worker,
                          std::string(v.payload)});
  p += header_size + length;
  left -= header_size + length;
  consumed_ += header_size + length;
  ++decoded_;
  return true;
}

void decoder::on_payload_done(std::vector<message>& out) {
  in_payload_ = false;
  target_ = nullptr;
  const std::uint16_t bits = hdr_.flags & flag::chunk_mask;
  if (bits == 0) {
    out.push_back(std::move(single_));
    single_ = message{};
    ++decoded_;
  } else if (bits == flag::chunk_end) {
    auto it = partial_.find(target_key_);
    partial_bytes_ -= it->second.msg.payload.size();
    out.push_back(std::move(it->second.msg));
    partial_.erase(it);
    ++decoded_;
  }
}

std::error_code decoder::feed(std::span<const std::byte> bytes, std::vector<message>& out) {
  return feed(bytes, out, view_sink{});
}

std::error_code decoder::feed(std::span<const std::byte> bytes, std::vector<message>& out, view_sink sink) {
  if (error_) return error_;
  const std::byte* p = bytes.data();
  std::size_t left = bytes.size();
  while (left > 0) {
    if (!in_payload_ && header_fill_ == 0 && left >= header_size && take_whole_frame(p, left, out, sink)) continue;
    if (!in_payload_) {
      std::size_t n = std::min(left, header_size - header_fill_);
      std::memcpy(header_buf_ + header_fill_, p, n);
      header_fill_ += n;
      p += n;
      left -= n;
      if (header_fill_ < header_size) break;
      header_fill_ = 0;
      // consumed_ is bumped after the check, so error offsets point at the bad header.
      if (auto ec = on_header(out)) return ec;
      consumed_ += header_size;
    } else {
      std::size_t n = std::min(left, payload_left_);
      target_->append(reinterpret_cast<const char*>(p), n);
      if (hdr_.flags & flag::chunk_mask) partial_bytes_ += n;
      p += n;
      left -= n;
      consumed_ += n;
      payload_left_ -= n;
      if (payload_left_ == 0) on_payload_done(out);
    }
  }
  return {};
}

}  // namespace swactor::ipc
