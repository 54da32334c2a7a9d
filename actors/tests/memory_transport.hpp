#pragma once
// An in-memory transport for connection-layer tests (Beast's test::stream idea): the test
// plays the peer, decides how much each write takes, and can make the Nth read or write
// fail. Readiness callbacks are posted to the io_context like a real socket's.

#include <deque>
#include <memory>
#include <string>

#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include "net/transport.hpp"

namespace swactor::test {

struct memory_pipe {
  std::deque<std::string> inbound;  // chunks the peer sent, read in order
  bool peer_closed = false;
  std::string written;              // what the connection wrote
  std::size_t write_capacity = static_cast<std::size_t>(-1);  // bytes the "socket" takes now
  int fail_read_at = 0;             // the Nth read_some fails (1-based; 0 = never)
  int fail_write_at = 0;
  int reads = 0;
  int writes = 0;
  bool closed = false;
  bool reset = false;
  bool shut_down = false;
  std::shared_ptr<net::io_owner> read_waiter;  // a pending wait_readable
  std::shared_ptr<net::io_owner> write_waiter;

  // One read as the socket would do it (counted; may be the one that fails).
  std::size_t read(char* buf, std::size_t n, std::error_code& ec) {
    ++reads;
    if (fail_read_at && reads == fail_read_at) {
      ec = make_error_code(std::errc::connection_reset);
      return 0;
    }
    if (inbound.empty()) {
      if (peer_closed) {
        ec.clear();
        return 0;
      }
      ec = make_error_code(std::errc::operation_would_block);
      return 0;
    }
    auto& front = inbound.front();
    auto k = std::min(n, front.size());
    front.copy(buf, k);
    front.erase(0, k);
    if (front.empty()) inbound.pop_front();
    ec.clear();
    return k;
  }

  // Completes the pending readiness wait if the "socket" has something (data, EOF, an error).
  void complete_read(asio::io_context& io) {
    if (!read_waiter) return;
    if (inbound.empty() && !peer_closed && !(fail_read_at && reads + 1 == fail_read_at)) return;
    auto o = std::move(read_waiter);
    asio::post(io, [o] { o->on_readable({}); });
  }
};

class memory_transport final : public net::transport {
 public:
  memory_transport(asio::io_context& io, std::shared_ptr<memory_pipe> p) : io_(io), p_(std::move(p)) {}
  ~memory_transport() override { close(false); }

  std::size_t read_some(char* buf, std::size_t n, std::error_code& ec) override { return p_->read(buf, n, ec); }

  std::size_t write_some(const iovec* iov, int count, std::error_code& ec) override {
    ++p_->writes;
    if (p_->fail_write_at && p_->writes == p_->fail_write_at) {
      ec = make_error_code(std::errc::broken_pipe);
      return 0;
    }
    if (p_->write_capacity == 0) {
      ec = make_error_code(std::errc::operation_would_block);
      return 0;
    }
    std::size_t total = 0;
    for (int i = 0; i < count && p_->write_capacity > 0; ++i) {
      auto k = std::min(iov[i].iov_len, p_->write_capacity);
      p_->written.append(static_cast<const char*>(iov[i].iov_base), k);
      p_->write_capacity -= k;
      total += k;
    }
    ec.clear();
    return total;
  }

  // A null owner is the previous one (transport.hpp), remembered weakly here: a test may
  // check that a closed connection goes away.
  void wait_readable(std::shared_ptr<net::io_owner> owner) override {
    p_->read_waiter = owned(std::move(owner));
    p_->complete_read(io_);
  }
  void wait_writable(std::shared_ptr<net::io_owner> owner) override { p_->write_waiter = owned(std::move(owner)); }
  void shutdown() noexcept override { p_->shut_down = true; }
  void close(bool reset) noexcept override {
    if (p_->closed) return;
    p_->closed = true;
    p_->reset = reset;
    // Pending waits complete with operation_aborted, as asio's do.
    for (auto* w : {&p_->read_waiter, &p_->write_waiter}) {
      if (auto o = std::move(*w)) {
        bool is_read = w == &p_->read_waiter;
        asio::post(io_, [o, is_read] {
          if (is_read)
            o->on_readable(asio::error::operation_aborted);
          else
            o->on_writable(asio::error::operation_aborted);
        });
      }
    }
  }
  bool is_open() const noexcept override { return !p_->closed; }
  int native_handle() const noexcept override { return -1; }

 private:
  std::shared_ptr<net::io_owner> owned(std::shared_ptr<net::io_owner> o) {
    if (o) last_owner_ = o;
    return o ? o : last_owner_.lock();
  }

  asio::io_context& io_;
  std::shared_ptr<memory_pipe> p_;
  std::weak_ptr<net::io_owner> last_owner_;
};

// The peer's side: send bytes (the connection is told it can read), close, open the window.
inline void peer_send(asio::io_context& io, memory_pipe& p, std::string bytes) {
  p.inbound.push_back(std::move(bytes));
  p.complete_read(io);
}
inline void peer_close(asio::io_context& io, memory_pipe& p) {
  p.peer_closed = true;
  p.complete_read(io);
}
inline void peer_read_window(asio::io_context& io, memory_pipe& p, std::size_t bytes) {
  p.write_capacity = bytes;
  if (auto o = std::move(p.write_waiter)) asio::post(io, [o] { o->on_writable({}); });
}

}  // namespace swactor::test
