// Readiness straight from the loop's epoll set (swactor/core/readiness.hpp) on real socket
// pairs: events, the write side, and deregistration while an event of the same batch is
// still queued.

#include <catch2/catch.hpp>

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include "swactor/core/readiness.hpp"

using namespace swactor;

namespace {

struct socket_pair {
  int a = -1, b = -1;
  socket_pair() {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0);
    a = fds[0];
    b = fds[1];
  }
  ~socket_pair() {
    if (a >= 0) ::close(a);
    if (b >= 0) ::close(b);
  }
};

struct recorder final : readiness::target {
  std::vector<std::uint32_t> events;
  std::function<void()> hook;
  void on_ready(std::uint32_t ev) override {
    events.push_back(ev);
    if (hook) hook();
  }
};

void put(int fd, std::string_view s) { REQUIRE(::write(fd, s.data(), s.size()) == static_cast<ssize_t>(s.size())); }

// One end of a socket pair registered with a loop that a guard keeps running (a
// registration keeps no work of its own).
struct registered {
  asio::io_context io;
  socket_pair p;
  recorder r;
  std::error_code ec;
  readiness reg{io, p.a, r, ec};
  asio::executor_work_guard<asio::io_context::executor_type> guard = asio::make_work_guard(io);
};

}  // namespace

TEST_CASE_METHOD(registered, "readiness: bytes from the peer reach the target once per arrival, from the running loop",
                 "[readiness]") {
  REQUIRE_FALSE(ec);
  io.poll();
  CHECK(r.events.empty());  // nothing arrived yet (edge-triggered: no event for a quiet socket)
  put(p.b, "hello");
  io.poll();
  REQUIRE(r.events.size() == 1);
  CHECK((r.events[0] & EPOLLIN) != 0);
  CHECK((r.events[0] & EPOLLOUT) == 0);  // the write side is not registered until asked for
  io.poll();
  CHECK(r.events.size() == 1);  // no new bytes, no new event
  ::close(p.b);
  p.b = -1;
  io.poll();
  REQUIRE(r.events.size() == 2);
  CHECK((r.events[1] & (EPOLLRDHUP | EPOLLHUP)) != 0);
}

TEST_CASE_METHOD(registered, "readiness: the write side reports room made after a full socket", "[readiness]") {
  REQUIRE_FALSE(ec);
  std::array<char, 4096> chunk{};
  while (::write(p.a, chunk.data(), chunk.size()) > 0) {
  }
  REQUIRE(errno == EAGAIN);
  reg.want_writes(ec);
  REQUIRE_FALSE(ec);
  io.poll();
  CHECK(r.events.empty());
  // The peer drains: room again.
  while (::read(p.b, chunk.data(), chunk.size()) > 0) {
  }
  io.poll();
  REQUIRE_FALSE(r.events.empty());
  CHECK((r.events.back() & EPOLLOUT) != 0);
}

TEST_CASE("readiness: a registration dropped while its event of the same batch is queued is not reported",
          "[readiness]") {
  // Two descriptors ready in one epoll batch; the first one's target drops the second's
  // registration (a handler closing another connection). The second's queued event then
  // runs with no target: nothing is reported and nothing freed is touched (ASan's job).
  asio::io_context io;
  socket_pair p1, p2;
  recorder r1, r2;
  std::error_code ec;
  auto reg1 = std::make_unique<readiness>(io, p1.a, r1, ec);
  REQUIRE_FALSE(ec);
  auto reg2 = std::make_unique<readiness>(io, p2.a, r2, ec);
  REQUIRE_FALSE(ec);
  bool dropped = false;
  auto drop_other = [&](std::unique_ptr<readiness>& other) {
    if (dropped) return;
    dropped = true;
    other.reset();
  };
  r1.hook = [&] { drop_other(reg2); };
  r2.hook = [&] { drop_other(reg1); };
  auto guard = asio::make_work_guard(io);
  put(p1.b, "x");
  put(p2.b, "y");
  io.poll();
  // Whichever came first ran; the other was dropped before its turn.
  REQUIRE(dropped);
  CHECK(r1.events.size() + r2.events.size() == 1);
  recorder& survivor = reg1 ? r1 : r2;
  recorder& gone = reg1 ? r2 : r1;
  CHECK(survivor.events.size() == 1);
  // The dropped one stays silent afterwards; the other goes on.
  put(p1.b, "x");
  put(p2.b, "y");
  io.poll();
  CHECK(survivor.events.size() == 2);
  CHECK(gone.events.empty());
}
