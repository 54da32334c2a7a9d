#include "swactor/core/readiness.hpp"

#include <sys/epoll.h>

#include <memory>

#include <asio/detail/epoll_reactor.hpp>
#include <asio/detail/scheduler.hpp>
#include <asio/detail/scheduler_operation.hpp>
#include <asio/post.hpp>
#include <asio/version.hpp>

// What this file relies on, in asio 1.22.1 (asio/detail/impl/epoll_reactor.ipp, scheduler.ipp):
// - epoll_reactor::run() treats every event's data.ptr that is neither its interrupter nor
//   its timerfd as an operation: it stores the event mask in the operation's task_result_
//   (the only member it touches) and queues it once per batch; the scheduler then calls its
//   function with the scheduler as owner and the mask as bytes_transferred, and counts one
//   unit of work finished afterwards (the reactor's own entries compensate with
//   compensating_work_started(), as ours do).
// - All operations of one batch are run before the reactor is run again, so an entry that
//   was deregistered can be freed by a handler posted after its deregistration.
// - scheduler::shutdown() destroys queued operations (owner null) without running them.
// A different asio may change any of it: the build stops here rather than guess.
static_assert(ASIO_VERSION == 102201, "core/src/readiness.cpp is written against asio 1.22.1's epoll reactor");
#if !defined(ASIO_HAS_EPOLL) || defined(ASIO_HAS_IO_URING_AS_DEFAULT)
#error "swactor::readiness needs asio's epoll reactor as the io_context's reactor"
#endif

namespace swactor {
namespace {

// asio keeps its epoll descriptor private. An explicit instantiation may name a private
// member ([temp.spec.general]/6); this one hands it to a friend function.
template <int asio::detail::epoll_reactor::*Member>
struct epoll_fd_reader {
  friend int epoll_fd_of(const asio::detail::epoll_reactor& r) { return r.*Member; }
};
template struct epoll_fd_reader<&asio::detail::epoll_reactor::epoll_fd_>;
int epoll_fd_of(const asio::detail::epoll_reactor& r);

int loop_epoll_fd(asio::io_context& io) {
  // Creates the reactor if nothing on this loop has, and makes it the scheduler's task (as
  // asio's socket services do): without that, nothing would wait on its epoll set.
  auto& reactor = asio::use_service<asio::detail::epoll_reactor>(io);
  reactor.init_task();
  return epoll_fd_of(reactor);
}

}  // namespace

struct readiness::entry : asio::detail::scheduler_operation {
  explicit entry(target* t) : scheduler_operation(&entry::complete), to(t) {}
  target* to;  // null once deregistered

  static void complete(void* owner, scheduler_operation* base, const asio::error_code&, std::size_t events) {
    if (!owner) return;  // the loop is shutting down; the registration frees the entry
    // Not a unit of work of its own (the scheduler counts one finished after this).
    static_cast<asio::detail::scheduler*>(owner)->compensating_work_started();
    auto* self = static_cast<entry*>(base);
    if (self->to) self->to->on_ready(static_cast<std::uint32_t>(events));
  }
};

readiness::readiness(asio::io_context& io, int fd, target& t, std::error_code& ec) : io_(io), fd_(fd) {
  auto e = std::make_unique<entry>(&t);
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
  ev.data.ptr = e.get();
  if (::epoll_ctl(loop_epoll_fd(io), EPOLL_CTL_ADD, fd, &ev) != 0) {
    ec.assign(errno, std::system_category());
    return;
  }
  ec.clear();
  entry_ = e.release();
}

readiness::~readiness() {
  if (!entry_) return;
  epoll_event ev{};
  ::epoll_ctl(loop_epoll_fd(io_), EPOLL_CTL_DEL, fd_, &ev);
  // Its event may already be queued from this batch: it runs, finds no target, and the
  // handler posted here (after that batch) frees it; or, at shutdown, destroying the handler does.
  entry_->to = nullptr;
  asio::post(io_, [e = std::unique_ptr<entry>(entry_)] {});
}

void readiness::want_writes(std::error_code& ec) {
  ec.clear();
  if (writes_ || !entry_) return;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP | EPOLLOUT | EPOLLET;
  ev.data.ptr = entry_;
  if (::epoll_ctl(loop_epoll_fd(io_), EPOLL_CTL_MOD, fd_, &ev) != 0) {
    ec.assign(errno, std::system_category());
    return;
  }
  writes_ = true;
}

}  // namespace swactor
