#pragma once
// WaitGroup: add/done/wait, as Swoole's and Go's. A counter that would become negative is
// an error (errc::negative_counter) and leaves the counter unchanged. Single-loop.

#include <cstdint>
#include <source_location>

#include "swactor/core/coro.hpp"
#include "swactor/core/wait_queue.hpp"

namespace swactor {

class wait_group {
 public:
  explicit wait_group(std::int64_t initial = 0) : count_(initial < 0 ? 0 : initial) {}

  std::error_code add(std::int64_t delta = 1) {
    if (count_ + delta < 0) return make_error_code(errc::negative_counter);
    count_ += delta;
    if (count_ == 0) waiters_.complete_all({});
    return {};
  }
  std::error_code done() { return add(-1); }
  std::int64_t count() const noexcept { return count_; }
  std::size_t waiting() const noexcept { return waiters_.size(); }

  // Suspends until the counter reaches zero (immediately if it is zero).
  task<std::error_code> wait(duration timeout = no_timeout,
                             std::source_location where = std::source_location::current()) {
    if (count_ == 0) co_return std::error_code{};
    co_return co_await waiters_.wait(nullptr, timeout, "wait_group wait", where);
  }

 private:
  std::int64_t count_;
  detail::wait_queue waiters_;
};

using WaitGroup = wait_group;

}  // namespace swactor
