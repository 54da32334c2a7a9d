#pragma once
// Socket helpers shared by the master (creating listeners) and workers (using them).

#include <sys/socket.h>

#include <string>

#include <asio/generic/datagram_protocol.hpp>
#include <asio/generic/stream_protocol.hpp>

#include "swactor/actors/listen_url.hpp"
#include "swactor/core/error.hpp"

namespace swactor::detail {

// Creates, binds and (stream) listens; close-on-exec. Errors carry a readable message.
result<int> open_listener(const listen_url& url, const listen_config& cfg, std::string& error);

// "1.2.3.4:5", "[::1]:5" or a unix path.
std::string format_address(const sockaddr* sa, socklen_t len);

template <class Endpoint>
std::string format_endpoint(const Endpoint& ep) {
  return format_address(reinterpret_cast<const sockaddr*>(ep.data()), static_cast<socklen_t>(ep.size()));
}

// Parses "ip:port", "[v6]:port" or "/path" into a generic datagram endpoint.
bool parse_address(const std::string& text, asio::generic::datagram_protocol::endpoint& out);

int socket_family(int fd);

// The local address of a connected socket ("" when unknown).
std::string local_address(int fd);

}  // namespace swactor::detail
