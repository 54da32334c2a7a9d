#pragma once
// The one suspension primitive of the kit: a FIFO of parked coroutines that another party
// completes with an error code (success, closed, ...), or that a deadline or a cancellation
// completes first. Channels and wait groups are built on it. Single-loop: not thread-safe.

#include <cstddef>
#include <source_location>
#include <system_error>

#include <asio/awaitable.hpp>

#include "swactor/core/coro.hpp"

namespace swactor::detail {

class wait_queue;

struct waiter {
  waiter* prev = nullptr;
  waiter* next = nullptr;
  wait_queue* queue = nullptr;
  void* data = nullptr;  // operation payload: the value to hand over or the slot to fill
  const char* what = "";
  std::source_location where;
  virtual void complete(std::error_code ec) = 0;

 protected:
  ~waiter() = default;
};

class wait_queue {
 public:
  wait_queue() = default;
  wait_queue(const wait_queue&) = delete;
  wait_queue& operator=(const wait_queue&) = delete;
  ~wait_queue() { complete_all(make_error_code(errc::closed)); }

  bool empty() const noexcept { return head_ == nullptr; }
  std::size_t size() const noexcept { return size_; }
  waiter* front() const noexcept { return head_; }

  // Removes the first waiter and completes it with `ec`; false if none.
  bool complete_front(std::error_code ec);
  void complete_all(std::error_code ec);

  // Parks the calling coroutine. Completes with what complete_front() passes, or with
  // errc::timeout after `timeout`, or errc::cancelled on cancellation.
  asio::awaitable<std::error_code> wait(void* data, duration timeout, const char* what,
                                        std::source_location where);

  // -- list plumbing (used by waiter nodes) ------------------------------------------
  void push_back(waiter* w) noexcept;
  void unlink(waiter* w) noexcept;

 private:
  waiter* head_ = nullptr;
  waiter* tail_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace swactor::detail
