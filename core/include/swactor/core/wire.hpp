#pragma once
// Little-endian binary fields for messages between processes (the IPC message kinds, bus
// payloads): integers of their exact width, bools as one byte 0/1, strings as u32 length +
// bytes. The reader trusts nothing: a read past the end (or a bool byte other than 0/1)
// makes ok() false for good and returns zero values, so a decoder checks once at the end.

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>

namespace swactor::wire {

// `v` as its sizeof(T) little-endian bytes at `dst`, and back. One store or load on a
// little-endian host (GCC does not merge a byte loop into one): these are on every IPC
// message's path (the frame header, the hot kinds' trailers).
template <class T>
  requires std::is_integral_v<T>
void store(void* dst, T v) noexcept {
  using U = std::make_unsigned_t<T>;
  auto u = static_cast<U>(v);
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(dst, &u, sizeof(T));
  } else {
    auto* d = static_cast<unsigned char*>(dst);
    for (std::size_t i = 0; i < sizeof(T); ++i) d[i] = static_cast<unsigned char>(u >> (8 * i));
  }
}
template <class T>
  requires std::is_integral_v<T>
T load(const void* src) noexcept {
  using U = std::make_unsigned_t<T>;
  U u = 0;
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(&u, src, sizeof(T));
  } else {
    const auto* s = static_cast<const unsigned char*>(src);
    for (std::size_t i = 0; i < sizeof(T); ++i) u |= static_cast<U>(static_cast<U>(s[i]) << (8 * i));
  }
  return static_cast<T>(u);
}

class writer {
 public:
  explicit writer(std::string& out) noexcept : out_(out) {}
  template <class T>
    requires std::is_integral_v<T>
  void integer(T v) {
    char b[sizeof(T)];
    wire::store(b, v);
    out_.append(b, sizeof(T));
  }
  void u8(std::uint8_t v) { integer(v); }
  void u32(std::uint32_t v) { integer(v); }
  void u64(std::uint64_t v) { integer(v); }
  void i64(std::int64_t v) { integer(v); }
  void boolean(bool v) { out_.push_back(v ? '\1' : '\0'); }
  void f64(double v) {
    std::uint64_t u;
    std::memcpy(&u, &v, sizeof u);
    integer(u);
  }
  void str(std::string_view s) {
    u32(static_cast<std::uint32_t>(s.size()));
    out_.append(s);
  }

 private:
  std::string& out_;
};

// The same fields written into space sized beforehand (`size_of` the pieces, one resize):
// a message of many short pieces costs one capacity check, not one per append.
class placed_writer {
 public:
  explicit placed_writer(char* at) noexcept : p_(at) {}
  static constexpr std::size_t size_of(std::string_view s) noexcept { return 4 + s.size(); }
  template <class T>
    requires std::is_integral_v<T>
  void integer(T v) noexcept {
    wire::store(p_, v);
    p_ += sizeof(T);
  }
  void u8(std::uint8_t v) noexcept { *p_++ = static_cast<char>(v); }
  void u32(std::uint32_t v) noexcept { integer(v); }
  void u64(std::uint64_t v) noexcept { integer(v); }
  void str(std::string_view s) noexcept {
    u32(static_cast<std::uint32_t>(s.size()));
    bytes(s);
  }
  // Bytes already in wire form (fields encoded earlier), as they are.
  void bytes(std::string_view s) noexcept {
    if (!s.empty()) std::memcpy(p_, s.data(), s.size());
    p_ += s.size();
  }

 private:
  char* p_;
};

// Grows `out` by `n` bytes for a placed_writer and returns it (written to the end exactly).
inline placed_writer place(std::string& out, std::size_t n) {
  const auto at = out.size();
  out.resize(at + n);
  return placed_writer(out.data() + at);
}

class reader {
 public:
  explicit reader(std::string_view in) noexcept : in_(in) {}
  template <class T>
    requires std::is_integral_v<T>
  T integer() {
    if (!take(sizeof(T))) return T{};
    return wire::load<T>(in_.data() + pos_ - sizeof(T));
  }
  std::uint8_t u8() { return integer<std::uint8_t>(); }
  std::uint32_t u32() { return integer<std::uint32_t>(); }
  std::uint64_t u64() { return integer<std::uint64_t>(); }
  std::int64_t i64() { return integer<std::int64_t>(); }
  bool boolean() {
    auto b = u8();
    if (b > 1) ok_ = false;
    return b == 1;
  }
  double f64() {
    auto u = u64();
    double v;
    std::memcpy(&v, &u, sizeof v);
    return v;
  }
  std::string str() {
    auto n = u32();
    if (!take(n)) return {};
    return std::string(in_.substr(pos_ - n, n));
  }
  bool ok() const noexcept { return ok_; }
  // Every read succeeded and nothing is left over.
  bool done() const noexcept { return ok_ && pos_ == in_.size(); }

 private:
  bool take(std::size_t n) {
    if (!ok_ || n > in_.size() - pos_) {
      ok_ = false;
      return false;
    }
    pos_ += n;
    return true;
  }
  std::string_view in_;
  std::size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace swactor::wire
