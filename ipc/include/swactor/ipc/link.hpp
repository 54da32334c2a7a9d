#pragma once
// A message link over a connected AF_UNIX SOCK_STREAM socket (a socketpair end, or an fd
// inherited across fork+exec). Both directions carry envelope.hpp messages:
//
// - send() queues a message without suspending; one writer coroutine, started on demand,
//   drains the queue with gathered writes (many envelopes per writev, large payloads not
//   copied). The queue is bounded: past link_options::max_queued_bytes send() fails with
//   ipc::errc::queue_full (send_wait() waits for room instead).
// - a reader coroutine, started by the constructor, reads and decodes continuously into a
//   bounded receive queue (when it is full, reading pauses and the peer feels backpressure);
//   receive(timeout) pops the next complete message.
// - a peer that sends garbage is disconnected: the reason is logged (log::warning), the link
//   closes, and receive() returns the protocol error once queued good messages are drained.
//
// Single loop: every member must be called on the loop that runs the socket's executor,
// which must be an asio::io_context's (its epoll set reports the socket's readiness, see
// swactor/core/readiness.hpp; another executor throws std::invalid_argument), and links
// must be destroyed before their io_context.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include <asio/any_io_executor.hpp>
#include <asio/local/stream_protocol.hpp>

#include "swactor/core/coro.hpp"
#include "swactor/core/error.hpp"
#include "swactor/ipc/envelope.hpp"

namespace swactor::ipc {

struct link_options {
  codec_options codec;
  std::size_t max_queued_bytes = 16 * 1024 * 1024;  // encoded bytes waiting to be written
  std::size_t max_batch_bytes = 1024 * 1024;        // bytes gathered into one write
  std::size_t read_buffer_size = 64 * 1024;
  std::size_t receive_queue = 1024;                 // decoded messages held for receive()
  std::size_t socket_buffer_size = 0;               // SO_SNDBUF/SO_RCVBUF; 0 = system default
  duration write_timeout = no_timeout;  // a write batch not done by then closes the link
  std::string name = "ipc";             // names the link in log lines ("worker#3")
};

struct link_stats {
  std::uint64_t messages_sent = 0;      // written to the socket
  std::uint64_t messages_received = 0;  // decoded
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_received = 0;
  std::uint64_t writes = 0;             // gathered write batches
  std::size_t queued_messages = 0;      // accepted by send(), not yet written
  std::size_t queued_bytes = 0;
  std::size_t received_pending = 0;     // decoded, waiting for receive()
};

class link {
 public:
  using socket_type = asio::local::stream_protocol::socket;

  // Takes a connected socket and starts reading.
  explicit link(socket_type socket, link_options opts = {});
  // Adopts `fd` (a connected AF_UNIX stream socket, e.g. inherited); the fd is owned by
  // the link from here on, and closed even on error. Anything else (a pipe, a UDP socket,
  // a closed fd) gives swactor::errc::invalid_argument.
  static result<link> from_fd(const asio::any_io_executor& ex, int fd, link_options opts = {});
  // Two links connected to each other (tests, in-process pairs).
  static result<std::pair<link, link>> make_pair(const asio::any_io_executor& ex,
                                                 link_options opts = {});

  link(link&&) noexcept = default;
  link& operator=(link&& other) noexcept;
  ~link();  // close()

  // -- sending ------------------------------------------------------------------------------

  // Queues `m`. Errors: errc::closed (swactor core) when the link is closed,
  // ipc::errc::message_too_large, ipc::errc::queue_full (nothing queued). A message larger
  // than max_queued_bytes is accepted when the queue is empty, so every message up to
  // max_message_size can be sent.
  std::error_code send(message m);
  // Like send(), but `m` is taken only when it is accepted: on an error it is still there
  // (to keep for a retry, e.g. after queue_full).
  std::error_code try_send(message& m);
  // Like try_send() for a message given in pieces (envelope.hpp): a small one is copied
  // straight into the link's buffer, with no payload string built.
  std::error_code try_send_pieces(const message_pieces& m);
  // Like send(), but waits (up to `timeout`) for the queue to have room.
  task<std::error_code> send_wait(message m, duration timeout = no_timeout);
  // Waits until everything queued so far has been written to the socket.
  task<std::error_code> flush(duration timeout = no_timeout);

  // -- receiving ----------------------------------------------------------------------------

  // The next complete message. Errors: swactor::errc::timeout (the link stays open), or,
  // once the link is closed and queued messages are drained, error(): swactor::errc::closed
  // (peer EOF or local close), an ipc::errc protocol error, or an I/O error.
  task<result<message>> receive(duration timeout = no_timeout);
  // Callback mode, for consumers that do not wait (the server's reactor links): every
  // message is handed to `on_message` on the link's loop as soon as it is decoded (no
  // queue, no coroutine switch); `on_close` runs once with the reason when the link closes.
  // Messages already queued for receive() are handed over first. `on_batch_end`, when
  // given, runs after the messages of one read (one batch of the peer's gathered writes)
  // were handed over, also when one of them closed the link: a consumer can hold what the
  // messages cause (socket writes) and do it once per batch.
  void set_handler(std::function<void(message&&)> on_message, std::function<void(std::error_code)> on_close,
                   std::function<void()> on_batch_end = {});
  // With set_handler: a frame that arrived whole in one read is first offered here in place
  // (its payload a view into the read buffer, valid during the call): returning true takes
  // it, and no message is made of it (no payload copy); false hands it to on_message as
  // usual. The order of all messages is kept (a frame decoded after one that waits for
  // on_message is not offered). It counts as a message received and ends in on_batch_end's
  // batch like the others.
  void set_view_handler(std::function<bool(const message_view&)> on_view);

  // -- state --------------------------------------------------------------------------------

  // Closes the socket now: unwritten messages are dropped, receivers wake up with
  // errc::closed after draining what was already decoded. Idempotent.
  void close();
  bool is_open() const noexcept;
  // Why the link closed (empty while open), and a human-readable reason for logs.
  std::error_code error() const noexcept;
  std::string reason() const;
  link_stats stats() const noexcept;
  std::size_t queued_bytes() const noexcept;
  const link_options& options() const noexcept;
  int native_handle() const noexcept;
  asio::any_io_executor get_executor() const noexcept;

  struct state;

 private:
  explicit link(std::shared_ptr<state> st) : st_(std::move(st)) {}
  std::shared_ptr<state> st_;
};

// A connected AF_UNIX SOCK_STREAM pair as raw fds, both close-on-exec. The caller owns
// them. The master keeps one end (link::from_fd) and lets the child inherit the other
// (dup2 to a known fd number in the child clears close-on-exec).
result<std::pair<int, int>> socket_pair();

}  // namespace swactor::ipc
