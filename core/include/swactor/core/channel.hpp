#pragma once
// Channel<T>: Swoole's coroutine Channel on one loop. Buffered (capacity > 0) or unbuffered
// hand-off (capacity 0). push/pop take an optional timeout; close() wakes every waiter on both
// sides with errc::closed. After close, pop drains what is buffered, then reports closed.
// Not thread-safe: a channel belongs to one loop (use actor messages to cross threads).

#include <cstddef>
#include <deque>
#include <optional>
#include <source_location>
#include <utility>

#include "swactor/core/coro.hpp"
#include "swactor/core/error.hpp"
#include "swactor/core/wait_queue.hpp"

namespace swactor {

struct channel_stats {
  std::size_t capacity = 0;
  std::size_t size = 0;                // buffered values
  std::size_t waiting_producers = 0;
  std::size_t waiting_consumers = 0;
  bool closed = false;
};

template <class T>
class channel {
 public:
  explicit channel(std::size_t capacity = 0) : capacity_(capacity) {}
  channel(const channel&) = delete;
  channel& operator=(const channel&) = delete;

  // Suspends while the channel is full (or, unbuffered, until a consumer takes the value).
  task<std::error_code> push(T value, duration timeout = no_timeout,
                             std::source_location where = std::source_location::current()) {
    if (closed_) co_return make_error_code(errc::closed);
    if (offer(value)) co_return std::error_code{};
    co_return co_await producers_.wait(&value, timeout, "channel push", where);
  }

  // Suspends while the channel is empty.
  task<result<T>> pop(duration timeout = no_timeout,
                      std::source_location where = std::source_location::current()) {
    if (auto v = take()) co_return std::move(*v);
    if (closed_) co_return result<T>(errc::closed);
    std::optional<T> slot;
    auto ec = co_await consumers_.wait(&slot, timeout, "channel pop", where);
    if (ec) co_return result<T>(ec);
    co_return std::move(*slot);
  }

  // Non-suspending variants: false / nullopt when they would have to wait.
  bool try_push(T value) { return !closed_ && offer(value); }
  std::optional<T> try_pop() { return take(); }

  // Wakes every waiting producer and consumer with errc::closed. Returns false if it was
  // already closed.
  bool close() {
    if (closed_) return false;
    closed_ = true;
    consumers_.complete_all(make_error_code(errc::closed));
    producers_.complete_all(make_error_code(errc::closed));
    return true;
  }

  bool closed() const noexcept { return closed_; }
  bool empty() const noexcept { return buffer_.empty(); }
  bool full() const noexcept { return buffer_.size() >= capacity_; }
  std::size_t size() const noexcept { return buffer_.size(); }
  std::size_t capacity() const noexcept { return capacity_; }

  channel_stats stats() const noexcept {
    return {capacity_, buffer_.size(), producers_.size(), consumers_.size(), closed_};
  }

 private:
  // Hands `value` to a waiting consumer or buffers it; false if it has to wait.
  bool offer(T& value) {
    if (auto* w = consumers_.front()) {
      *static_cast<std::optional<T>*>(w->data) = std::move(value);
      w->complete({});
      return true;
    }
    if (buffer_.size() < capacity_) {
      buffer_.push_back(std::move(value));
      return true;
    }
    return false;
  }

  // Takes the next value: from the buffer (refilled from a waiting producer) or, when
  // unbuffered, straight from a waiting producer.
  std::optional<T> take() {
    if (!buffer_.empty()) {
      std::optional<T> v(std::move(buffer_.front()));
      buffer_.pop_front();
      if (auto* w = producers_.front()) {
        buffer_.push_back(std::move(*static_cast<T*>(w->data)));
        w->complete({});
      }
      return v;
    }
    if (auto* w = producers_.front()) {
      std::optional<T> v(std::move(*static_cast<T*>(w->data)));
      w->complete({});
      return v;
    }
    return std::nullopt;
  }

  std::size_t capacity_;
  std::deque<T> buffer_;
  detail::wait_queue producers_;
  detail::wait_queue consumers_;
  bool closed_ = false;
};

// Swoole spells it Channel.
template <class T>
using Channel = channel<T>;

}  // namespace swactor
