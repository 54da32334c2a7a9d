#include "swactor/core/wait_queue.hpp"

#include <memory>
#include <optional>

#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

namespace swactor::detail {
namespace {

// A parked coroutine. Deleted by whoever finishes it last: the completer, or the timer
// handler when a deadline timer was armed (its handler may already be queued).
template <class Handler>
class parked final : public waiter {
 public:
  parked(Handler h, coro_registry* reg) : handler_(std::move(h)), reg_(reg) {}

  void arm(const asio::any_io_executor& ex, duration timeout) {
    if (timeout != no_timeout) {
      if (reg_) reg_->timed_begin();
      timer_.emplace(ex);
      timer_->expires_after(timeout);
      timer_->async_wait([this](std::error_code ec) { on_timer(ec); });
    } else if (reg_) {
      reg_->park();  // counts toward the stall report: only another party can wake us
    }
    auto slot = asio::get_associated_cancellation_slot(handler_);
    if (slot.is_connected()) {
      slot.assign([this](asio::cancellation_type) {
        if (queue) complete(make_error_code(errc::cancelled));
      });
    }
  }

  void complete(std::error_code ec) override {
    if (finished_) return;
    finished_ = true;
    if (queue) queue->unlink(this);
    auto slot = asio::get_associated_cancellation_slot(handler_);
    if (slot.is_connected()) slot.clear();
    if (!timer_ && reg_) reg_->unpark();
    auto ex = asio::get_associated_executor(handler_);
    asio::post(ex, [h = std::move(handler_), ec]() mutable { std::move(h)(ec); });
    if (timer_) {
      timer_->cancel();  // the timer handler deletes us, whether it was queued or not
    } else {
      delete this;
    }
  }

 private:
  void on_timer(std::error_code ec) {
    if (reg_) reg_->timed_end();
    if (finished_) {
      delete this;
      return;
    }
    (void)ec;
    // Deadline reached while still parked.
    finished_ = true;
    if (queue) queue->unlink(this);
    auto slot = asio::get_associated_cancellation_slot(handler_);
    if (slot.is_connected()) slot.clear();
    auto ex = asio::get_associated_executor(handler_);
    asio::post(ex, [h = std::move(handler_)]() mutable {
      std::move(h)(make_error_code(errc::timeout));
    });
    delete this;
  }

  Handler handler_;
  coro_registry* reg_;
  std::optional<asio::steady_timer> timer_;
  bool finished_ = false;
};

}  // namespace

void wait_queue::push_back(waiter* w) noexcept {
  w->queue = this;
  w->prev = tail_;
  w->next = nullptr;
  if (tail_) tail_->next = w;
  else head_ = w;
  tail_ = w;
  ++size_;
}

void wait_queue::unlink(waiter* w) noexcept {
  if (w->queue != this) return;
  if (w->prev) w->prev->next = w->next;
  else head_ = w->next;
  if (w->next) w->next->prev = w->prev;
  else tail_ = w->prev;
  w->prev = w->next = nullptr;
  w->queue = nullptr;
  --size_;
}

bool wait_queue::complete_front(std::error_code ec) {
  if (!head_) return false;
  head_->complete(ec);  // unlinks itself
  return true;
}

void wait_queue::complete_all(std::error_code ec) {
  while (head_) head_->complete(ec);
}

asio::awaitable<std::error_code> wait_queue::wait(void* data, duration timeout,
                                                  const char* what,
                                                  std::source_location where) {
  auto ex = co_await asio::this_coro::executor;
  coro_registry* reg = &registry_of(ex);
  auto token = asio::experimental::as_tuple(asio::use_awaitable);
  auto [ec] = co_await asio::async_initiate<
      decltype(token), void(std::error_code)>(
      [&](auto handler) {
        using handler_type = decltype(handler);
        auto* node = new parked<handler_type>(std::move(handler), reg);
        node->data = data;
        node->what = what;
        node->where = where;
        push_back(node);
        node->arm(ex, timeout);
      },
      token);
  co_return ec;
}

}  // namespace swactor::detail
