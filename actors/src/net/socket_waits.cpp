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

void socket_waits::set_owner(std::shared_ptr<io_owner>&& o) {
  if (!o || o == owner_) return;
  if (owner_) asio::post(io_, [old = std::move(owner_)] {});
  owner_ = std::move(o);
}

void socket_waits::complete_later(bool read, bool write, std::error_code ec, bool let_go) {
  if (!owner_) return;
  auto held = let_go ? std::move(owner_) : owner_;
  asio::post(io_, [o = std::move(held), read, write, ec] {
    if (read) o->on_readable(ec);
    if (write) o->on_writable(ec);
  });
}

void socket_waits::wait_read_slow(std::shared_ptr<io_owner> owner, bool via_write) {
  set_owner(std::move(owner));
  if (!owner_) return;  // null before any owner: nobody to tell
  if (!reg_) {
    complete_later(true, false, make_error_code(asio::error::operation_aborted));
    return;
  }
  read_via_write_ = via_write;
  if (via_write) {
    std::error_code ec;
    reg_->want_writes(ec);
    if (ec) {
      read_via_write_ = false;
      complete_later(true, false, ec);
      return;
    }
  } else if (unwatched_) {
    // An event came while nobody waited (a paused connection): its bytes are still there,
    // and no new edge will announce them.
    unwatched_ = false;
    complete_later(true, false, {});
    return;
  }
  reading_ = true;
}

void socket_waits::wait_write(std::shared_ptr<io_owner> owner) {
  set_owner(std::move(owner));
  if (!owner_) return;
  std::error_code ec;
  if (reg_) reg_->want_writes(ec);
  if (!reg_ || ec) {
    // A registration that cannot take the write side fails the wait (asio reports the same
    // for an epoll_ctl that fails).
    complete_later(false, true, reg_ ? ec : make_error_code(asio::error::operation_aborted));
    return;
  }
  // Edge-triggered: the write that blocked came after any earlier event, so the next one
  // announces room made since.
  writing_ = true;
}

void socket_waits::on_ready(std::uint32_t events) {
  // A pending read that waits for room is ended by room; otherwise (and with no reader, to
  // remember unwatched bytes) by a read event.
  const bool read_side = reading_ && (read_via_write_ ? (events & kWritable) != 0 : (events & kReadable) != 0);
  const bool write_side = writing_ && (events & kWritable) != 0;
  if (!reading_ && (events & kReadable)) unwatched_ = true;
  if (!read_side && !write_side) return;
  // Both callbacks may run, and either may close the connection, which owns this object:
  // the flags are cleared first and nothing of this object is touched after a callback.
  // The owner stays alive meanwhile (a close lets go of it from a posted handler).
  io_owner* o = owner_.get();
  if (read_side) {
    reading_ = false;
    read_via_write_ = false;
  }
  if (write_side) {
    writing_ = false;
    o->on_writable(no_error);
  }
  if (read_side) o->on_readable(no_error);
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
  // Pending waits end with operation_aborted, later; the owner is let go of after that.
  complete_later(reading_, writing_, make_error_code(asio::error::operation_aborted), true);
  reading_ = writing_ = false;
}

}  // namespace swactor::net
