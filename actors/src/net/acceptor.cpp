#include "net/acceptor.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <string>

#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>

#include "net_util.hpp"
#include "swactor/core/log.hpp"

namespace swactor::net {

using namespace std::chrono_literals;

namespace {

// At most this many accepts in a row before the loop's other work gets a turn.
constexpr int kAcceptsPerTurn = 64;

}  // namespace

task<void> accept_loop(stream_acceptor& acc, const listen_config& lc, int listener, server_state& state,
                       conn_counters& counters, std::function<void(int, std::string)> on_accept) {
  {
    std::error_code ec;
    acc.non_blocking(true, ec);  // accept4 below must not block when the queue is empty
  }
  int in_a_row = 0;
  for (;;) {
    if (!acc.is_open()) co_return;
    // The peer's address comes with the descriptor (no getpeername per connection).
    sockaddr_storage peer{};
    socklen_t peer_len = sizeof peer;
    const bool tcp = lc.endpoint.kind == listen_kind::tcp;
    const int fd = ::accept4(acc.native_handle(), tcp ? reinterpret_cast<sockaddr*>(&peer) : nullptr,
                             tcp ? &peer_len : nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      const int err = errno;
      if (err == EINTR || err == ECONNABORTED || err == EPROTO) continue;  // that one connection is gone
      if (err == EAGAIN || err == EWOULDBLOCK) {
        // Drained: wait for the next connection (asio re-arms the listener's epoll entry).
        in_a_row = 0;
        auto [ec] = co_await acc.async_wait(asio::socket_base::wait_read,
                                            asio::experimental::as_tuple(asio::use_awaitable));
        if (ec && (ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor || !acc.is_open()))
          co_return;
        continue;
      }
      if (err == EBADF || err == EINVAL || !acc.is_open()) co_return;  // closed under us
      log::warning("listener {}: accept failed: {}", lc.url, std::error_code(err, std::system_category()).message());
      const auto cancelled = co_await sleep(50ms);  // EMFILE and friends: do not spin
      if (cancelled || !acc.is_open()) co_return;   // stopped meanwhile
      continue;
    }
    std::string remote = tcp ? detail::format_address(reinterpret_cast<const sockaddr*>(&peer), peer_len)
                             : lc.endpoint.path;
    auto& open = state.listeners[listener].connections;
    if (open.fetch_add(1) >= lc.max_connections) {
      open.fetch_sub(1);
      bump(counters.refused);
      log::warning("listener {}: max_connections ({}) reached, refusing {}", lc.url, lc.max_connections,
                   remote);
      ::close(fd);
      continue;
    }
    if (tcp) {
      int one = 1;
      if (lc.tcp_nodelay) ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      if (lc.keepalive) ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    }
    bump(counters.accepted);
    on_accept(fd, std::move(remote));
    if (++in_a_row >= kAcceptsPerTurn) {
      in_a_row = 0;
      co_await asio::post(acc.get_executor(), asio::use_awaitable);  // a flood does not starve the loop
    }
  }
}

}  // namespace swactor::net
