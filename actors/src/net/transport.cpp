#include "net/transport.hpp"

#include "swactor/core/readiness.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

#include <asio/basic_stream_socket.hpp>
#include <asio/post.hpp>

#include "swactor/core/log.hpp"
#include "swactor/core/plain_io.hpp"

namespace swactor::net {
namespace {

// A syscall's byte count or its errno as an error (would_block when the socket is not ready).
std::size_t outcome(ssize_t r, std::error_code& ec) {
  if (r >= 0) {
    if (ec) ec.clear();  // (clear() looks up the system category: not for a fresh one)
    return static_cast<std::size_t>(r);
  }
  ec = errno == EAGAIN || errno == EWOULDBLOCK ? make_error_code(std::errc::operation_would_block)
                                               : std::error_code(errno, std::system_category());
  return 0;
}

}  // namespace

std::size_t transport::write_file(int fd, std::uint64_t offset, std::size_t n, std::error_code& ec) {
  // One TLS record's worth per call: the chunk is re-read on a retry, never kept.
  constexpr std::size_t kChunk = 16 * 1024;
  thread_local char buf[kChunk];
  ssize_t got;
  do got = ::pread(fd, buf, std::min(n, kChunk), static_cast<off_t>(offset));
  while (got < 0 && errno == EINTR);
  if (got <= 0) return outcome(got, ec);
  iovec iov{buf, static_cast<std::size_t>(got)};
  return write_some(&iov, 1, ec);
}

namespace {

// A plain socket, held as a bare descriptor (taken out of asio's reactor) whose readiness
// comes from the loop's epoll set directly (swactor/core/readiness.hpp): a wait is a flag, not an
// operation.
class socket_transport final : public transport, public readiness::target {
 public:
  socket_transport(asio::io_context& io, int fd) : io_(io), fd_(fd) {}
  ~socket_transport() override { close(false); }

  // Registration is a separate step: it can fail (the caller closes and reports).
  std::error_code open() {
    std::error_code ec;
    reg_.emplace(io_, fd_, *this, ec);
    if (ec) reg_.reset();
    return ec;
  }

  std::size_t read_some(char* buf, std::size_t n, std::error_code& ec) override {
    ready_ = false;  // this read sees whatever an event since the last one announced
    ssize_t r;
    do r = plain_io::recv(fd_, buf, n);
    while (r < 0 && errno == EINTR);
    return outcome(r, ec);
  }

  std::size_t write_some(const iovec* iov, int count, std::error_code& ec) override {
    ssize_t r;
    if (count == 1) {
      // One piece (most replies): send() spares the kernel copying in a msghdr and an iovec
      // array, which sendmsg() costs on every call.
      do r = plain_io::send(fd_, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL);
      while (r < 0 && errno == EINTR);
      return outcome(r, ec);
    }
    msghdr mh{};
    mh.msg_iov = const_cast<iovec*>(iov);
    mh.msg_iovlen = static_cast<std::size_t>(count);
    do r = plain_io::sendmsg(fd_, &mh, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    return outcome(r, ec);
  }

  std::size_t write_file(int fd, std::uint64_t offset, std::size_t n, std::error_code& ec) override {
    auto off = static_cast<off_t>(offset);
    ssize_t r;
    do r = ::sendfile(fd_, fd, &off, n);
    while (r < 0 && errno == EINTR);
    return outcome(r, ec);
  }

  void wait_readable(std::shared_ptr<io_owner> owner) override {
    if (!reg_) {
      abort_later(std::move(owner), true);
      return;
    }
    if (ready_) {
      // An event came while nobody waited (a paused connection): its bytes are still
      // there, and no new edge will announce them.
      ready_ = false;
      asio::post(io_, [o = std::move(owner)] { o->on_readable({}); });
      return;
    }
    reader_ = std::move(owner);
  }
  bool short_read_drains() const noexcept override { return true; }
  void wait_writable(std::shared_ptr<io_owner> owner) override {
    std::error_code ec;
    if (reg_) reg_->want_writes(ec);
    if (!reg_ || ec) {
      // A registration that cannot take the write side fails the wait (asio reports the
      // same for an epoll_ctl that fails).
      asio::post(io_, [o = std::move(owner), ec = reg_ ? ec : make_error_code(asio::error::operation_aborted)] {
        o->on_writable(ec);
      });
      return;
    }
    // Edge-triggered: the write that blocked came after any earlier event, so the next
    // one announces room made since.
    writer_ = std::move(owner);
  }

  void on_ready(std::uint32_t events) override {
    constexpr std::uint32_t kReadable = EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR;
    constexpr std::uint32_t kWritable = EPOLLOUT | EPOLLHUP | EPOLLERR;
    if ((events & kWritable) && writer_) {
      // Both callbacks may run; each may close the connection (which owns this transport),
      // so both owners are taken out first and hold it until they return.
      auto w = std::move(writer_);
      std::shared_ptr<io_owner> r;
      if (events & kReadable) take_reader(r);
      w->on_writable({});
      if (r) r->on_readable({});
      return;
    }
    if (!(events & kReadable)) return;
    std::shared_ptr<io_owner> r;
    if (take_reader(r)) r->on_readable({});
  }

  void shutdown() noexcept override {
    if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
  }
  void close(bool reset) noexcept override {
    if (fd_ < 0) return;
    if (reset) {
      ::linger lg{1, 0};
      ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    reg_.reset();  // out of the epoll set while the descriptor is still ours
    ::close(fd_);
    fd_ = -1;
    // Pending waits end with operation_aborted, later, as asio's did.
    if (reader_) abort_later(std::move(reader_), true);
    if (writer_) abort_later(std::move(writer_), false);
  }
  bool is_open() const noexcept override { return fd_ >= 0; }
  int native_handle() const noexcept override { return fd_; }

 private:
  // The pending reader, or a note that the event came with none.
  bool take_reader(std::shared_ptr<io_owner>& r) noexcept {
    if (!reader_) {
      ready_ = true;
      return false;
    }
    r = std::move(reader_);
    return true;
  }
  void abort_later(std::shared_ptr<io_owner> o, bool read) {
    asio::post(io_, [o = std::move(o), read] {
      const auto ec = make_error_code(asio::error::operation_aborted);
      if (read)
        o->on_readable(ec);
      else
        o->on_writable(ec);
    });
  }

  asio::io_context& io_;
  int fd_;
  std::optional<readiness> reg_;
  std::shared_ptr<io_owner> reader_;  // a pending wait_readable
  std::shared_ptr<io_owner> writer_;  // a pending wait_writable
  bool ready_ = false;                // an event came with no wait pending
};

}  // namespace

std::unique_ptr<transport> make_socket_transport(asio::io_context& io, int fd) {
  const int fl = ::fcntl(fd, F_GETFL);
  if (fl < 0 || ((fl & O_NONBLOCK) == 0 && ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)) {
    log::warning("cannot make socket {} non-blocking: {}", fd, std::error_code(errno, std::system_category()).message());
    ::close(fd);
    return nullptr;
  }
  auto t = std::make_unique<socket_transport>(io, fd);
  if (auto err = t->open()) {
    log::warning("cannot register socket {} with the loop: {}", fd, err.message());
    return nullptr;  // the transport closes it
  }
  return t;
}

}  // namespace swactor::net
