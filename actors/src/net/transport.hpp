#pragma once
// The byte pipe under a connection. An idle connection has one readiness wait pending (no
// buffer, no coroutine frame); when it completes, the connection reads without blocking
// into the loop's buffer. Writes go out without blocking; only what the socket does not
// take waits for writability. A wait is a flag next to the socket's entry in the loop's
// epoll set (swactor/core/readiness.hpp), for plain sockets and TLS alike.
// TCP and Unix stream sockets implement it, and TLS over them (net/tls.hpp), without
// touching protocol code.

#include <sys/uio.h>

#include <cstddef>
#include <memory>
#include <string>
#include <system_error>

#include <asio/io_context.hpp>

#include "swactor/actors/tls_info.hpp"

namespace swactor::net {

// A copy of this is cheaper than a default-constructed std::error_code (whose constructor
// calls std::system_category(), out of line in libstdc++) on paths run per message.
inline const std::error_code no_error{};

// What a transport reports to (the connection). The transport holds it from its first wait
// until the transport is closed (and until the callbacks that close ends have run).
class io_owner {
 public:
  // wait_readable completed: read_some may return data, end of stream or an error now.
  virtual void on_readable(std::error_code ec) = 0;
  virtual void on_writable(std::error_code ec) = 0;

 protected:
  ~io_owner() = default;
};

class transport {
 public:
  virtual ~transport() = default;

  // Reads what is there without blocking. Returns 0 with `ec` = would_block when nothing
  // is, 0 without an error at end of stream. A return below `n` means the transport was
  // drained at that instant (the caller may then wait for readiness).
  virtual std::size_t read_some(char* buf, std::size_t n, std::error_code& ec) = 0;
  // Gathered write without blocking; partial writes happen. would_block when full.
  virtual std::size_t write_some(const iovec* iov, int count, std::error_code& ec) = 0;

  // Writes up to `n` bytes of file `fd` from `offset` without blocking (a file range of the
  // output queue). 0 without an error: the file ended early. The default reads a chunk
  // with pread and hands it to write_some (TLS must encrypt it); a plain socket overrides
  // it with sendfile(2), which copies nothing through user space. A retry after
  // would_block covers at least the bytes the blocked call was given (OpenSSL needs that).
  virtual std::size_t write_file(int fd, std::uint64_t offset, std::size_t n, std::error_code& ec);
  // While on, only full segments leave (TCP_CORK); off sends what was held. For a response
  // head followed by a file. A no-op where it does not apply (TLS, Unix sockets).
  virtual void cork(bool) noexcept {}

  // Calls owner->on_readable once read_some can make progress (or fails), never from inside
  // this call. Call it only after read_some drained the transport (would_block, or a short
  // read where short_read_drains()): the wait ends at the next readiness edge. One at a time.
  // A null owner: the one of the previous wait (so a connection makes no reference per wait).
  // After close() the transport holds no owner: a wait with a null owner then completes never.
  virtual void wait_readable(std::shared_ptr<io_owner> owner) = 0;
  // wait_readable(nullptr): the owner of the previous wait waits again (per read: no
  // reference passed).
  virtual void wait_readable_again() { wait_readable(nullptr); }
  // Whether a read_some that returned fewer bytes than asked left nothing to read (a plain
  // socket). TLS returns one record per read, so its reader goes on until would_block.
  virtual bool short_read_drains() const noexcept { return false; }
  // Calls owner->on_writable once writing can make progress (or fails). One at a time. A null
  // owner: as for wait_readable.
  virtual void wait_writable(std::shared_ptr<io_owner> owner) = 0;

  // Sends FIN once written (graceful close of the write side).
  virtual void shutdown() noexcept = 0;
  // Closes now; reset = RST. Pending waits complete with operation_aborted.
  virtual void close(bool reset) noexcept = 0;
  virtual bool is_open() const noexcept = 0;
  virtual int native_handle() const noexcept = 0;
  // What the TLS handshake negotiated; null for a plain transport.
  virtual const tls_info* tls() const noexcept { return nullptr; }
};

// TCP or Unix stream socket (connected and non-blocking, as accept4 gives them; owned from
// here on), registered with the loop of `io`; null (logged, the descriptor closed) when it
// cannot be.
std::unique_ptr<transport> make_socket_transport(asio::io_context& io, int fd);

}  // namespace swactor::net
