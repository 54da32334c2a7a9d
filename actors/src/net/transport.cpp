#include "net/transport.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "net/socket_waits.hpp"
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

// A plain socket, held as a bare descriptor whose readiness comes from the loop's epoll set
// directly (net/socket_waits.hpp): a wait is a flag, not an operation.
class socket_transport final : public transport, public socket_waits {
 public:
  using socket_waits::socket_waits;
  using socket_waits::open;

  std::size_t read_some(char* buf, std::size_t n, std::error_code& ec) override {
    read_seen();
    ssize_t r;
    do r = plain_io::recv(fd(), buf, n);
    while (r < 0 && errno == EINTR);
    return outcome(r, ec);
  }

  std::size_t write_some(const iovec* iov, int count, std::error_code& ec) override {
    ssize_t r;
    if (count == 1) {
      // One piece (most replies): send() spares the kernel copying in a msghdr and an iovec
      // array, which sendmsg() costs on every call.
      do r = plain_io::send(fd(), iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL);
      while (r < 0 && errno == EINTR);
      return outcome(r, ec);
    }
    msghdr mh{};
    mh.msg_iov = const_cast<iovec*>(iov);
    mh.msg_iovlen = static_cast<std::size_t>(count);
    do r = plain_io::sendmsg(fd(), &mh, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    return outcome(r, ec);
  }

  std::size_t write_file(int file, std::uint64_t offset, std::size_t n, std::error_code& ec) override {
    auto off = static_cast<off_t>(offset);
    ssize_t r;
    do r = ::sendfile(fd(), file, &off, n);
    while (r < 0 && errno == EINTR);
    return outcome(r, ec);
  }

  void cork(bool on) noexcept override {
    if (no_cork_) return;
    int v = on ? 1 : 0;
    if (::setsockopt(fd(), IPPROTO_TCP, TCP_CORK, &v, sizeof v) != 0) no_cork_ = true;  // not TCP
  }

  void wait_readable(std::shared_ptr<io_owner> owner) override { wait_read(std::move(owner)); }
  void wait_readable_again() override { wait_read_again(); }
  bool short_read_drains() const noexcept override { return true; }
  void wait_writable(std::shared_ptr<io_owner> owner) override { wait_write(std::move(owner)); }

  void shutdown() noexcept override {
    if (fd() >= 0) ::shutdown(fd(), SHUT_WR);
  }
  void close(bool reset) noexcept override { close_descriptor(reset); }
  bool is_open() const noexcept override { return fd() >= 0; }
  int native_handle() const noexcept override { return fd(); }

 private:
  bool no_cork_ = false;
};

}  // namespace

std::unique_ptr<transport> make_socket_transport(asio::io_context& io, int fd) {
  auto t = std::make_unique<socket_transport>(io, fd);
  if (auto err = t->open()) {
    log::warning("cannot register socket {} with the loop: {}", fd, err.message());
    return nullptr;  // the transport closes it
  }
  return t;
}

}  // namespace swactor::net
