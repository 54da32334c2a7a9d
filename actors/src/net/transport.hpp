#pragma once
// The byte pipe under a connection. The connection layer works in readiness style: it waits
// until the transport can make progress, then reads into a loop-wide buffer and writes
// without blocking, so an idle connection holds no read buffer and no coroutine frame.
// TCP and Unix stream sockets implement it today; TLS slots in later as one more
// implementation, without touching protocol code.

#include <sys/uio.h>

#include <cstddef>
#include <memory>
#include <string>
#include <system_error>

#include <asio/generic/stream_protocol.hpp>

namespace swactor::net {

// What a transport reports readiness to (the connection). It is kept alive by the transport
// until the callback has run.
class io_owner {
 public:
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

  // Calls owner->on_readable / on_writable once reading / writing can make progress (or
  // fails). Only call wait_readable after read_some came back short or would_block. At
  // most one wait of each kind is pending.
  virtual void wait_readable(std::shared_ptr<io_owner> owner) = 0;
  virtual void wait_writable(std::shared_ptr<io_owner> owner) = 0;

  // Sends FIN once written (graceful close of the write side).
  virtual void shutdown() noexcept = 0;
  // Closes now; reset = RST. Pending waits complete with operation_aborted.
  virtual void close(bool reset) noexcept = 0;
  virtual bool is_open() const noexcept = 0;
  virtual int native_handle() const noexcept = 0;
};

// TCP or Unix stream socket (already connected; made non-blocking here).
std::unique_ptr<transport> make_socket_transport(asio::generic::stream_protocol::socket sock);

}  // namespace swactor::net
