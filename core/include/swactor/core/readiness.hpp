#pragma once
// Readiness of one descriptor, reported straight from the loop's own epoll set.
//
// asio's reactor turns every wait into an operation: allocated, queued on the descriptor
// under its mutex, performed (a recv through glibc's cancellable wrapper), completed through
// the scheduler and freed: about 550 instructions per message, more than the rest of a
// base-mode echo round trip. A readiness registration puts the descriptor into the same
// epoll set with an edge-triggered entry whose event the scheduler runs directly as one
// operation that lives as long as the registration: no allocation, no queue, no read of
// ours done by asio. It is driven by whoever runs the io_context (io.run(), poll(),
// run_one()), in asio's own order, so timers, posts and other asio I/O on the loop work as
// before. Two differences from asio's own waits: a registration is not work (run() with
// nothing else to do returns; servers keep their loops running on their own), and the
// io_context must be run by one thread (concurrency hint 1 or UNSAFE, as every swactor
// loop is): two threads could run one entry's events at once. The asio internals this relies on are checked against the one asio release the
// build supports (Debian 12's 1.22.1) in core/src/readiness.cpp.

#include <cstdint>
#include <system_error>

#include <asio/io_context.hpp>

namespace swactor {

class readiness {
 public:
  // What a registration reports to. `events` is epoll's mask (EPOLLIN, EPOLLOUT, EPOLLRDHUP,
  // EPOLLHUP, EPOLLERR). Called on the loop's thread while it runs, never from inside a
  // call of ours.
  class target {
   public:
    virtual void on_ready(std::uint32_t events) = 0;

   protected:
    ~target() = default;
  };

  // Registers `fd` (a non-blocking socket) for the read side; the write side is added by
  // want_writes(). Edge-triggered: an event means something changed since the last one,
  // so the target reads or writes until would_block before it relies on the next event.
  readiness(asio::io_context& io, int fd, target& t, std::error_code& ec);
  // Deregisters (call it while `fd` is still open: a descriptor that a forked child shares
  // would otherwise stay in the set). An event already taken from epoll is dropped.
  ~readiness();
  readiness(const readiness&) = delete;
  readiness& operator=(const readiness&) = delete;

  // Adds the write side once (one epoll_ctl per registration; kept afterwards, as asio does).
  void want_writes(std::error_code& ec);

 private:
  struct entry;
  asio::io_context& io_;
  entry* entry_ = nullptr;
  int fd_;
  bool writes_ = false;
};

}  // namespace swactor
