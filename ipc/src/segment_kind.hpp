#pragma once
// Every segment starts with a magic and a kind, so attach(fd) rejects a descriptor that
// holds something else (errc::bad_segment).

#include <cstdint>

#include "swactor/ipc/shm.hpp"

namespace swactor::ipc::detail {

inline constexpr std::uint32_t segment_magic = 0x53574143;  // "SWAC"

enum class segment_kind : std::uint32_t {
  atomic32 = 1,
  atomic64 = 2,
  mutex = 3,
  rwlock = 4,
  spinlock = 5,
  table = 6,
};

struct segment_header {
  std::uint32_t magic;
  segment_kind kind;
  std::uint32_t version;
  std::uint32_t reserved;
};

inline void stamp(void* p, segment_kind k) {
  auto* h = static_cast<segment_header*>(p);
  h->kind = k;
  h->version = 1;
  // The magic goes last: an attacher never sees a half-initialised segment as valid.
  __atomic_store_n(&h->magic, segment_magic, __ATOMIC_RELEASE);
}

inline bool check(const shm_region& r, segment_kind k, std::size_t min_size) {
  if (r.size() < min_size || r.size() < sizeof(segment_header)) return false;
  auto* h = static_cast<const segment_header*>(r.data());
  return __atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) == segment_magic && h->kind == k &&
         h->version == 1;
}

}  // namespace swactor::ipc::detail
