#pragma once
// A client stream connection: socket, framer and a bounded output queue drained by one
// writer coroutine with gathered writes. Base-mode workers and process-mode reactors both
// hold their connections in it (private to actors/).

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>

#include <asio/generic/stream_protocol.hpp>

#include "swactor/protocols/framing.hpp"

namespace swactor::detail {

struct stream_conn : std::enable_shared_from_this<stream_conn> {
  std::uint64_t id = 0;  // session id
  int listener = 0;
  asio::generic::stream_protocol::socket sock;
  protocols::framer framer;
  std::string remote;
  std::uint64_t uid = 0;
  std::deque<std::string> out;
  std::size_t out_bytes = 0;
  std::size_t out_limit = 0;
  bool writing = false;
  bool close_requested = false;  // close once the output queue is empty
  bool closed = false;
  bool aborted = false;          // ended by an error, a limit or a reset
  std::chrono::steady_clock::time_point last_activity = std::chrono::steady_clock::now();

  stream_conn(asio::generic::stream_protocol::socket s, protocols::framing_options f, std::size_t limit)
      : sock(std::move(s)), framer(std::move(f)), out_limit(limit) {}
  virtual ~stream_conn() = default;

  // Queues bytes and starts the writer if it is idle. Errors: server_errc::session_not_found
  // (closed or closing), server_errc::output_buffer_full (the peer is not reading; one
  // message larger than the limit is still accepted into an empty queue).
  // Only the part the socket did not take at once is copied.
  std::error_code queue(std::string_view data);
  // Closes once queued output is written; reset = RST now, queued output dropped. The reader
  // sees the socket close and runs the end-of-connection path.
  void close(bool reset);
  // Closes the socket now (idempotent).
  void close_now() noexcept;
};

}  // namespace swactor::detail
