#pragma once
// The waits of a transport over a bare socket descriptor (plain and TLS): the descriptor's
// entry in the loop's epoll set (swactor/core/readiness.hpp), the pending wait of each side
// as an owner pointer, and the close that ends them. A wait is a flag here, not an asio
// operation: an event hands the pending owner its callback at once.

#include <cstdint>
#include <memory>
#include <optional>
#include <system_error>

#include <asio/io_context.hpp>

#include "net/transport.hpp"
#include "swactor/core/readiness.hpp"

namespace swactor::net {

class socket_waits : public readiness::target {
 public:
  socket_waits(asio::io_context& io, int fd) noexcept : io_(io), fd_(fd) {}
  socket_waits(const socket_waits&) = delete;
  socket_waits& operator=(const socket_waits&) = delete;

  // Registers the descriptor with the loop (a separate step: it can fail; the caller reports,
  // and the descriptor is closed with this object).
  std::error_code open();

  int fd() const noexcept { return fd_; }
  asio::io_context& io() noexcept { return io_; }

  // transport::wait_readable (null owner: the one held). `via_write`: the read can only go
  // on once the socket takes bytes (TLS's record layer must write first), so room ends the wait.
  void wait_read(std::shared_ptr<io_owner> owner, bool via_write = false) {
    if (!owner && !via_write) return wait_read_again();
    wait_read_slow(std::move(owner), via_write);
  }
  // The common wait (the same owner, nothing unseen): a flag.
  void wait_read_again() {
    if (owner_ && reg_ && !unwatched_) {
      read_via_write_ = false;
      reading_ = true;
      return;
    }
    wait_read_slow(nullptr, false);
  }
  // transport::wait_writable (adds the write side to the entry the first time).
  void wait_write(std::shared_ptr<io_owner> owner);
  // A read is being made: what an event without a waiter announced is being seen now.
  void read_seen() noexcept { unwatched_ = false; }

  // Deregisters and closes (reset: RST); pending waits end with operation_aborted, later,
  // as asio's did.
  void close_descriptor(bool reset) noexcept;

  void on_ready(std::uint32_t events) override;

 protected:
  ~socket_waits() { close_descriptor(false); }

 private:
  void wait_read_slow(std::shared_ptr<io_owner> owner, bool via_write);
  // A new owner for the waits; the old one is let go of later (its callback may be running).
  void set_owner(std::shared_ptr<io_owner>&& o);
  // The owner's callback(s) with `ec`, posted (never from inside the caller's call);
  // `let_go`: the posted handler takes the owner with it (a close).
  void complete_later(bool read, bool write, std::error_code ec, bool let_go = false);

  asio::io_context& io_;
  int fd_;
  std::optional<readiness> reg_;
  // Whom the waits report to, held from its first wait until the descriptor is closed (then
  // let go of by a posted handler): a wait is a flag, not a reference made per wait, and
  // the owner outlives any callback of this object's events.
  std::shared_ptr<io_owner> owner_;
  bool reading_ = false;         // a wait_read is pending
  bool writing_ = false;         // a wait_write is pending
  bool unwatched_ = false;       // a read event came with no wait pending
  bool read_via_write_ = false;  // the pending read waits for room
};

}  // namespace swactor::net
