#include "net/acceptor.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "net_util.hpp"
#include "swactor/core/log.hpp"

namespace swactor::net {

using namespace std::chrono_literals;

task<void> accept_loop(stream_acceptor& acc, asio::io_context& io, const listen_config& lc, int listener,
                       server_state& state, conn_counters& counters, std::function<void(native_socket)> on_accept) {
  for (;;) {
    auto [ec, sock] = co_await acc.async_accept(io, asio::experimental::as_tuple(asio::use_awaitable));
    if (ec) {
      if (ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor || !acc.is_open())
        co_return;
      log::warning("listener {}: accept failed: {}", lc.url, ec.message());
      co_await sleep(50ms);  // EMFILE and friends: do not spin
      continue;
    }
    auto& open = state.listeners[listener].connections;
    if (open.fetch_add(1) >= lc.max_connections) {
      open.fetch_sub(1);
      bump(counters.refused);
      std::error_code ignored;
      log::warning("listener {}: max_connections ({}) reached, refusing {}", lc.url, lc.max_connections,
                   detail::format_endpoint(sock.remote_endpoint(ignored)));
      sock.close(ignored);
      continue;
    }
    if (lc.endpoint.kind == listen_kind::tcp) {
      int one = 1;
      if (lc.tcp_nodelay) ::setsockopt(sock.native_handle(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      if (lc.keepalive) ::setsockopt(sock.native_handle(), SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    }
    bump(counters.accepted);
    on_accept(std::move(sock));
  }
}

}  // namespace swactor::net
