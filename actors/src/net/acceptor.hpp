#pragma once
// The accept side of a stream listener, written once for both modes: a base-mode worker
// accepts on the shared listening socket and adopts the connection into its conn_host;
// the process-mode acceptor hands the socket to a reactor thread.

#include <functional>
#include <string>

#include <asio/basic_socket_acceptor.hpp>
#include <asio/generic/stream_protocol.hpp>

#include "swactor/actors/app_config.hpp"
#include "swactor/actors/server_state.hpp"
#include "swactor/core/coro.hpp"

namespace swactor::net {

using stream_acceptor = asio::basic_socket_acceptor<asio::generic::stream_protocol>;

// Accepts until the acceptor is closed. A connection over the listener's max_connections
// is closed at once with a log line (counted as refused); others get the listener's socket
// options and go to `on_accept` as a bare non-blocking descriptor (close-on-exec) with the
// peer's address (a Unix listener's path), counted as accepted in `counters`: its loop
// registers it once (no asio socket to take it out of).
task<void> accept_loop(stream_acceptor& acc, const listen_config& lc, int listener, server_state& state,
                       conn_counters& counters, std::function<void(int, std::string)> on_accept);

}  // namespace swactor::net
