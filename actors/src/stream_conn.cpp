#include "stream_conn.hpp"

#include <sys/socket.h>

#include <vector>

#include <asio/write.hpp>

#include "swactor/actors/errors.hpp"
#include "swactor/core/coro.hpp"

namespace swactor::detail {
namespace {

task<void> write_loop(std::shared_ptr<stream_conn> c) {
  std::vector<asio::const_buffer> bufs;
  while (!c->out.empty() && !c->closed) {
    bufs.clear();
    std::size_t count = std::min<std::size_t>(c->out.size(), 64);  // one writev, many messages
    for (std::size_t i = 0; i < count; ++i) bufs.push_back(asio::buffer(c->out[i]));
    auto [ec, n] = co_await asio::async_write(c->sock, bufs, asio::experimental::as_tuple(asio::use_awaitable));
    if (ec) {
      c->aborted = true;
      c->close_now();
      break;
    }
    for (std::size_t i = 0; i < count && !c->out.empty(); ++i) {
      c->out_bytes -= c->out.front().size();
      c->out.pop_front();
    }
  }
  c->writing = false;
  if (c->close_requested && !c->closed) {
    std::error_code ignored;
    c->sock.shutdown(asio::socket_base::shutdown_both, ignored);
    c->close_now();
  }
}

}  // namespace

std::error_code stream_conn::queue(std::string_view data) {
  if (closed || close_requested) return server_errc::session_not_found;
  if (out_bytes + data.size() > out_limit && out_bytes > 0) return server_errc::output_buffer_full;
  if (data.empty()) return {};
  if (!writing && out.empty()) {
    // Fast path: most replies fit in the socket buffer; write now, no writer coroutine.
    std::error_code ec;
    if (!sock.non_blocking()) sock.non_blocking(true, ec);
    auto n = sock.write_some(asio::buffer(data), ec);
    if (!ec && n == data.size()) return {};
    if (ec && ec != asio::error::would_block && ec != asio::error::try_again) {
      aborted = true;
      close_now();  // the reader sees it and ends the connection
      return {};
    }
    data.remove_prefix(n);
  }
  out_bytes += data.size();
  out.emplace_back(data);
  if (!writing) {
    writing = true;
    spawn(sock.get_executor(), [self = shared_from_this()]() -> task<void> { co_await write_loop(self); },
          "connection writer");
  }
  return {};
}

void stream_conn::close(bool reset) {
  if (closed) return;
  if (reset) {
    ::linger lg{1, 0};
    ::setsockopt(sock.native_handle(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    aborted = true;
    close_now();
    return;
  }
  close_requested = true;
  if (!writing) {
    std::error_code ignored;
    sock.shutdown(asio::socket_base::shutdown_both, ignored);
    close_now();
  }
}

void stream_conn::close_now() noexcept {
  std::error_code ignored;
  sock.close(ignored);
}

}  // namespace swactor::detail
