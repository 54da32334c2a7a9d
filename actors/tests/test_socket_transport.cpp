// The plain socket transport over the loop's epoll set (net/transport.cpp on
// swactor/core/readiness.hpp), on real socket pairs: waits before and after the bytes, end
// of stream, a full socket, and waits that end with the transport's close.

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <asio/executor_work_guard.hpp>

#include "net/transport.hpp"
#include "swactor/ipc/link.hpp"

using namespace swactor;

namespace {

// A socket pair (ipc::socket_pair, both ends non-blocking): one end in a transport on `io`,
// the other (`peer`) for the test to write, read and close.
struct transport_pair {
  std::unique_ptr<net::transport> t;
  int peer = -1;
  explicit transport_pair(asio::io_context& io) {
    auto fds = ipc::socket_pair();
    REQUIRE(fds);
    for (int fd : {fds->first, fds->second}) REQUIRE(::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK) == 0);
    peer = fds->second;
    t = net::make_socket_transport(io, fds->first);
    REQUIRE(t);
  }
  ~transport_pair() {
    if (peer >= 0) ::close(peer);
  }
};

void put(int fd, std::string_view s) { REQUIRE(::write(fd, s.data(), s.size()) == static_cast<ssize_t>(s.size())); }

struct owner final : net::io_owner, std::enable_shared_from_this<owner> {
  std::vector<std::string> calls;  // "r", "r:aborted", "w", ...
  void on_readable(std::error_code ec) override { calls.push_back(ec ? "r:" + ec.message() : "r"); }
  void on_writable(std::error_code ec) override { calls.push_back(ec ? "w:" + ec.message() : "w"); }
};


}  // namespace

TEST_CASE("socket transport: a wait after an unwatched event completes once and later, close aborts a pending wait",
          "[socket_transport]") {
  asio::io_context io;
  transport_pair p(io);
  auto& t = p.t;
  CHECK(t->short_read_drains());
  auto o = std::make_shared<owner>();
  auto guard = asio::make_work_guard(io);

  // Bytes arrive while nobody waits (a paused connection): the event is remembered.
  put(p.peer, "abc");
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
  put(p.peer, "d");
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
  CHECK(::read(p.peer, buf, sizeof buf) == 0);
}

TEST_CASE("socket transport: end of stream and writes", "[socket_transport]") {
  asio::io_context io;
  transport_pair p(io);
  auto& t = p.t;
  auto o = std::make_shared<owner>();
  auto guard = asio::make_work_guard(io);
  iovec iov[2] = {{const_cast<char*>("ab"), 2}, {const_cast<char*>("cd"), 2}};
  std::error_code ec;
  CHECK(t->write_some(iov, 2, ec) == 4);
  CHECK_FALSE(ec);
  char buf[8];
  CHECK(::read(p.peer, buf, sizeof buf) == 4);
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
  while (::read(p.peer, chunk.data(), chunk.size()) > 0) {
  }
  io.poll();
  CHECK(o->calls == std::vector<std::string>{"w"});

  t->wait_readable(o);
  ::shutdown(p.peer, SHUT_WR);
  io.poll();
  CHECK(o->calls == std::vector<std::string>{"w", "r"});
  CHECK(t->read_some(buf, sizeof buf, ec) == 0);
  CHECK_FALSE(ec);  // 0 without an error: end of stream
}
