#include "net/socket_waits.hpp"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <asio/error.hpp>
#include <asio/post.hpp>

namespace swactor::net {
namespace {

constexpr std::uint32_t kReadable = EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR;
constexpr std::uint32_t kWritable = EPOLLOUT | EPOLLHUP | EPOLLERR;

}  // namespace

std::error_code socket_waits::open() {
  std::error_code ec;
  reg_.emplace(io_, fd_, *this, ec);
  if (ec) reg_.reset();
  return ec;
}

void socket_waits::wait_read(std::shared_ptr<io_owner> owner, bool via_write) {
  if (!reg_) {
    abort_later(std::move(owner), true);
    return;
  }
  read_via_write_ = via_write;
  if (via_write) {
    std::error_code ec;
    reg_->want_writes(ec);
    if (ec) {
      asio::post(io_, [o = std::move(owner), ec] { o->on_readable(ec); });
      return;
    }
  } else if (unwatched_) {
    // An event came while nobody waited (a paused connection): its bytes are still there,
    // and no new edge will announce them.
    unwatched_ = false;
    asio::post(io_, [o = std::move(owner)] { o->on_readable({}); });
    return;
  }
  reader_ = std::move(owner);
}

void socket_waits::wait_write(std::shared_ptr<io_owner> owner) {
  std::error_code ec;
  if (reg_) reg_->want_writes(ec);
  if (!reg_ || ec) {
    // A registration that cannot take the write side fails the wait (asio reports the same
    // for an epoll_ctl that fails).
    asio::post(io_, [o = std::move(owner), ec = reg_ ? ec : make_error_code(asio::error::operation_aborted)] {
      o->on_writable(ec);
    });
    return;
  }
  // Edge-triggered: the write that blocked came after any earlier event, so the next one
  // announces room made since.
  writer_ = std::move(owner);
}

bool socket_waits::take_reader(std::shared_ptr<io_owner>& r, std::uint32_t events) noexcept {
  if (!reader_) {
    if (events & kReadable) unwatched_ = true;
    return false;
  }
  r = std::move(reader_);
  read_via_write_ = false;
  return true;
}

void socket_waits::on_ready(std::uint32_t events) {
  // A pending read that waits for room is ended by room; otherwise (and with no reader, to
  // remember unwatched bytes) by a read event.
  const bool read_side = reader_ && read_via_write_ ? (events & kWritable) != 0 : (events & kReadable) != 0;
  if ((events & kWritable) && writer_) {
    // Both callbacks may run; each may close the connection (which owns this transport), so
    // both owners are taken out first and hold it until they return.
    auto w = std::move(writer_);
    std::shared_ptr<io_owner> r;
    if (read_side) take_reader(r, events);
    w->on_writable({});
    if (r) r->on_readable({});
    return;
  }
  if (!read_side) return;
  std::shared_ptr<io_owner> r;
  if (take_reader(r, events)) r->on_readable({});
}

void socket_waits::close_descriptor(bool reset) noexcept {
  if (fd_ < 0) return;
  if (reset) {
    ::linger lg{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  reg_.reset();  // out of the epoll set while the descriptor is still ours
  ::close(fd_);
  fd_ = -1;
  read_via_write_ = false;
  if (reader_) abort_later(std::move(reader_), true);
  if (writer_) abort_later(std::move(writer_), false);
}

void socket_waits::abort_later(std::shared_ptr<io_owner> o, bool read) {
  asio::post(io_, [o = std::move(o), read] {
    const auto ec = make_error_code(asio::error::operation_aborted);
    if (read)
      o->on_readable(ec);
    else
      o->on_writable(ec);
  });
}

}  // namespace swactor::net
