// Readiness straight from the loop's epoll set (net/readiness) and the plain socket
// transport over it, on real socket pairs: events, the write side, deregistration while an
// event of the same batch is still queued, and waits that end with the transport's close.

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <asio/post.hpp>

#include "net/readiness.hpp"
#include "net/transport.hpp"

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

struct recorder final : net::readiness::target {
  std::vector<std::uint32_t> events;
  std::function<void()> hook;
  void on_ready(std::uint32_t ev) override {
    events.push_back(ev);
    if (hook) hook();
  }
};

void put(int fd, std::string_view s) { REQUIRE(::write(fd, s.data(), s.size()) == static_cast<ssize_t>(s.size())); }

struct owner final : net::io_owner, std::enable_shared_from_this<owner> {
  std::vector<std::string> calls;  // "r", "r:aborted", "w", ...
  void on_readable(std::error_code ec) override { calls.push_back(ec ? "r:" + ec.message() : "r"); }
  void on_writable(std::error_code ec) override { calls.push_back(ec ? "w:" + ec.message() : "w"); }
};

std::unique_ptr<net::transport> transport_on(asio::io_context& io, int fd) {
  net::native_socket s(io.get_executor());
  std::error_code ec;
  s.assign(asio::generic::stream_protocol(AF_UNIX, SOCK_STREAM), fd, ec);
  REQUIRE_FALSE(ec);
  return net::make_socket_transport(std::move(s));
}

}  // namespace

TEST_CASE("readiness: bytes from the peer reach the target once per arrival, from the running loop",
          "[readiness]") {
  asio::io_context io;
  socket_pair p;
  recorder r;
  std::error_code ec;
  net::readiness reg(io, p.a, r, ec);
  REQUIRE_FALSE(ec);
  // A registration keeps no work of its own: the loop is kept running by a guard here.
  auto guard = asio::make_work_guard(io);
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

TEST_CASE("readiness: the write side reports room made after a full socket", "[readiness]") {
  asio::io_context io;
  socket_pair p;
  recorder r;
  std::error_code ec;
  net::readiness reg(io, p.a, r, ec);
  REQUIRE_FALSE(ec);
  auto guard = asio::make_work_guard(io);
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
  auto reg1 = std::make_unique<net::readiness>(io, p1.a, r1, ec);
  REQUIRE_FALSE(ec);
  auto reg2 = std::make_unique<net::readiness>(io, p2.a, r2, ec);
  REQUIRE_FALSE(ec);
  bool dropped = false;
  auto drop_other = [&](std::unique_ptr<net::readiness>& other) {
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

TEST_CASE("socket transport: a wait after an unwatched event completes once, later; close aborts a pending wait",
          "[readiness]") {
  asio::io_context io;
  socket_pair p;
  const int fd = p.a;
  p.a = -1;  // the transport owns it now
  auto t = transport_on(io, fd);
  REQUIRE(t);
  CHECK(t->short_read_drains());
  auto o = std::make_shared<owner>();
  auto guard = asio::make_work_guard(io);

  // Bytes arrive while nobody waits (a paused connection): the event is remembered.
  put(p.b, "abc");
  io.poll();
  CHECK(o->calls.empty());
  t->wait_readable(o);
  CHECK(o->calls.empty());  // never from inside the call
  io.poll();
  REQUIRE(o->calls == std::vector<std::string>{"r"});
  char buf[16];
  std::error_code ec;
  CHECK(t->read_some(buf, sizeof buf, ec) == 3);
  CHECK_FALSE(ec);
  CHECK(t->read_some(buf, sizeof buf, ec) == 0);
  CHECK(ec == std::errc::operation_would_block);

  // A wait taken before the bytes: completed by their event.
  t->wait_readable(o);
  io.poll();
  CHECK(o->calls.size() == 1);
  put(p.b, "d");
  io.poll();
  CHECK(o->calls == std::vector<std::string>{"r", "r"});
  CHECK(t->read_some(buf, sizeof buf, ec) == 1);

  // Closing with a wait pending: it ends with operation_aborted, after the call, and the
  // transport lets go of its owner.
  t->wait_readable(o);
  CHECK(o.use_count() == 2);
  t->close(false);
  CHECK_FALSE(t->is_open());
  io.poll();
  REQUIRE(o->calls.size() == 3);
  CHECK(o->calls[2].rfind("r:", 0) == 0);
  CHECK(o.use_count() == 1);
  // The peer sees the close.
  CHECK(::read(p.b, buf, sizeof buf) == 0);
}

TEST_CASE("socket transport: end of stream and writes", "[readiness]") {
  asio::io_context io;
  socket_pair p;
  const int fd = p.a;
  p.a = -1;
  auto t = transport_on(io, fd);
  REQUIRE(t);
  auto o = std::make_shared<owner>();
  auto guard = asio::make_work_guard(io);
  iovec iov[2] = {{const_cast<char*>("ab"), 2}, {const_cast<char*>("cd"), 2}};
  std::error_code ec;
  CHECK(t->write_some(iov, 2, ec) == 4);
  CHECK_FALSE(ec);
  char buf[8];
  CHECK(::read(p.b, buf, sizeof buf) == 4);
  CHECK(std::string(buf, 4) == "abcd");

  // A full socket: the writer's wait ends once the peer reads.
  std::array<char, 4096> chunk{};
  iovec big{chunk.data(), chunk.size()};
  while (t->write_some(&big, 1, ec) > 0) {
  }
  CHECK(ec == std::errc::operation_would_block);
  t->wait_writable(o);
  io.poll();
  CHECK(o->calls.empty());
  while (::read(p.b, chunk.data(), chunk.size()) > 0) {
  }
  io.poll();
  CHECK(o->calls == std::vector<std::string>{"w"});

  t->wait_readable(o);
  ::shutdown(p.b, SHUT_WR);
  io.poll();
  CHECK(o->calls == std::vector<std::string>{"w", "r"});
  CHECK(t->read_some(buf, sizeof buf, ec) == 0);
  CHECK_FALSE(ec);  // 0 without an error: end of stream
}
