#include "net/transport.hpp"

#include "net/readable_handler.hpp"

#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <asio/basic_stream_socket.hpp>

#include "swactor/core/plain_io.hpp"

namespace swactor::net {
namespace {

// A syscall's byte count or its errno as an error (would_block when the socket is not ready).
std::size_t outcome(ssize_t r, std::error_code& ec) {
  if (r >= 0) {
    ec.clear();
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

class socket_transport final : public transport {
 public:
  explicit socket_transport(native_socket s) : sock_(std::move(s)) {
    std::error_code ignored;
    sock_.non_blocking(true, ignored);
  }

  std::size_t read_some(char* buf, std::size_t n, std::error_code& ec) override {
    std::size_t landed = 0;
    if (landing_len_ > 0 || landing_eof_) {
      // What the busy wait read first. A full landing buffer: the socket may hold more.
      const bool full = landing_len_ == kLanding;
      landed = std::min<std::size_t>(landing_len_, n);
      std::memcpy(buf, landing_.get(), landed);
      if (landed < landing_len_) {
        std::memmove(landing_.get(), landing_.get() + landed, landing_len_ - landed);
        landing_len_ = static_cast<std::uint16_t>(landing_len_ - landed);
        ec.clear();
        return landed;
      }
      landing_len_ = 0;
      if (!full || landed == n) {
        if (landed == 0) landing_eof_ = false;  // the end of stream, reported once
        ec.clear();
        return landed;
      }
      buf += landed;
      n -= landed;
    }
    // recv() directly: asio's synchronous read would poll on would_block.
    ssize_t r;
    do r = plain_io::recv(sock_.native_handle(), buf, n);
    while (r < 0 && errno == EINTR);
    if (landed > 0 && r <= 0) {  // the landed bytes now; an end of stream or error comes next
      ec.clear();
      return landed;
    }
    return landed + outcome(r, ec);
  }

  std::size_t write_some(const iovec* iov, int count, std::error_code& ec) override {
    ssize_t r;
    if (count == 1) {
      // One piece (most replies): send() spares the kernel copying in a msghdr and an iovec
      // array, which sendmsg() costs on every call.
      do r = plain_io::send(sock_.native_handle(), iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL);
      while (r < 0 && errno == EINTR);
      return outcome(r, ec);
    }
    msghdr mh{};
    mh.msg_iov = const_cast<iovec*>(iov);
    mh.msg_iovlen = static_cast<std::size_t>(count);
    do r = plain_io::sendmsg(sock_.native_handle(), &mh, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    return outcome(r, ec);
  }

  std::size_t write_file(int fd, std::uint64_t offset, std::size_t n, std::error_code& ec) override {
    auto off = static_cast<off_t>(offset);
    ssize_t r;
    do r = ::sendfile(sock_.native_handle(), fd, &off, n);
    while (r < 0 && errno == EINTR);
    return outcome(r, ec);
  }

  void wait_readable(std::shared_ptr<io_owner> owner) override {
    if (busy_) {
      // Busy: wait by reading into a small buffer of our own. asio's read op on an
      // edge-triggered descriptor costs no system call after the drained read that preceded
      // it, where async_wait re-arms epoll (epoll_ctl) every time.
      if (!landing_) landing_.reset(new char[kLanding]);
      // The owner (the connection) owns this transport: `this` lives as long as `o`.
      sock_.async_read_some(asio::buffer(landing_.get(), kLanding),
                            [this, o = std::move(owner)](std::error_code ec, std::size_t k) {
                              if (ec == asio::error::eof) {
                                landing_eof_ = true;
                                ec.clear();
                              } else if (!ec) {
                                landing_len_ = static_cast<std::uint16_t>(k);
                              }
                              o->on_readable(ec);
                            });
      return;
    }
    // Idle: a readiness wait. Its operation is smaller and holds no buffer of ours, so an
    // idle connection keeps neither (edge-triggered epoll: the caller drained the socket,
    // the next bytes raise the edge).
    sock_.async_wait(asio::socket_base::wait_read, readable_handler{std::move(owner)});
  }
  void expect_more(bool busy) noexcept override {
    busy_ = busy;
    // A connection that went quiet gives its landing buffer back: idle ones hold none. (No
    // read into it is pending: the connection calls this between reads.)
    if (!busy && landing_len_ == 0 && !landing_eof_) landing_.reset();
  }
  bool short_read_drains() const noexcept override { return true; }
  void wait_writable(std::shared_ptr<io_owner> owner) override {
    sock_.async_wait(asio::socket_base::wait_write,
                     [o = std::move(owner)](std::error_code ec) { o->on_writable(ec); });
  }

  void shutdown() noexcept override {
    std::error_code ignored;
    sock_.shutdown(asio::socket_base::shutdown_send, ignored);
  }
  void close(bool reset) noexcept override {
    if (!sock_.is_open()) return;
    if (reset) {
      ::linger lg{1, 0};
      ::setsockopt(sock_.native_handle(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    std::error_code ignored;
    sock_.close(ignored);
  }
  bool is_open() const noexcept override { return sock_.is_open(); }
  int native_handle() const noexcept override { return const_cast<native_socket&>(sock_).native_handle(); }

 private:
  // What one wakeup of a busy connection usually brings, in one recv: a pipelined batch
  // (16 Redis commands, 10 HTTP/2 requests' frames) as well as a small message. Held only
  // while the connection is busy.
  static constexpr std::size_t kLanding = 2048;
  native_socket sock_;
  std::unique_ptr<char[]> landing_;  // only once busy (expect_more)
  std::uint16_t landing_len_ = 0;
  bool landing_eof_ = false;
  bool busy_ = false;
};

}  // namespace

std::unique_ptr<transport> make_socket_transport(native_socket sock) {
  return std::make_unique<socket_transport>(std::move(sock));
}

}  // namespace swactor::net
