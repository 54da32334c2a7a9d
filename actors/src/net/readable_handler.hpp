#pragma once
// The completion handler of a transport's readiness wait (transport::wait_readable), for the
// TLS transport only (kept out of transport.hpp, which many files include).

#include <memory>
#include <new>
#include <system_error>

#include "net/transport.hpp"

namespace swactor::net {

// Allocates with plain operator new at the exact size asked (glibc's small-size caches).
template <class T>
struct exact_allocator {
  using value_type = T;
  exact_allocator() noexcept = default;
  template <class U>
  exact_allocator(const exact_allocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T))); }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p); }
  friend bool operator==(const exact_allocator&, const exact_allocator&) noexcept { return true; }
};

// The completion of a readiness wait (wait_readable). Its operation is allocated at its own
// size rather than from asio's per-thread recycled blocks: those are as large as the largest
// operation that freed one (an accept's, 273 B), and every idle connection keeps its pending
// wait.
struct readable_handler {
  std::shared_ptr<io_owner> owner;
  using allocator_type = exact_allocator<void>;
  allocator_type get_allocator() const noexcept { return {}; }
  void operator()(std::error_code ec) { owner->on_readable(ec); }
};

}  // namespace swactor::net
