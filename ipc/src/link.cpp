#include "swactor/ipc/link.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <functional>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

#include <asio/buffer.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include "swactor/core/channel.hpp"
#include "swactor/core/log.hpp"
#include "swactor/core/plain_io.hpp"
#include "swactor/core/readiness.hpp"

namespace swactor::ipc {
namespace {

constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);
using clock = std::chrono::steady_clock;
constexpr std::size_t kMaxIov = 1024;  // IOV_MAX on Linux

// The io_context behind a link's executor: its epoll set reports the socket's readiness.
asio::io_context& io_context_of(const asio::any_io_executor& ex) {
  const auto* io = ex.target<asio::io_context::executor_type>();
  if (!io) throw std::invalid_argument("ipc::link needs an asio::io_context's executor");
  return io->context();
}

// The socket as a bare non-blocking descriptor, out of asio's reactor (its readiness is
// registered on its own), or -1.
int take_descriptor(link::socket_type& s) {
  asio::error_code ec;
  const int fd = s.release(ec);
  if (ec) return -1;
  const int fl = ::fcntl(fd, F_GETFL);
  if (fl < 0 || ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

// Shared by the link handle and its reader/writer coroutines, which keep it alive until
// they have seen the socket close.
struct link::state : std::enable_shared_from_this<link::state>, readiness::target {
  state(socket_type s, link_options o)
      : opts(std::move(o)),
        executor(s.get_executor()),
        io(io_context_of(executor)),
        fd(take_descriptor(s)),
        read_wake(executor),
        write_wake(executor),
        notify(executor),
        inbox(std::max<std::size_t>(opts.receive_queue, 1)),
        dec(opts.codec),
        enc(opts.codec) {
    notify.expires_at(clock::time_point::max());
  }
  ~state() { close_descriptor(); }

  // Registers the descriptor with the loop; a link that cannot be registered starts closed.
  void start_io() {
    std::error_code ec = fd < 0 ? make_error_code(std::errc::bad_file_descriptor) : std::error_code{};
    if (!ec) {
      reg.emplace(io, fd, *this, ec);
      if (ec) reg.reset();
    }
    if (ec) {
      log::warning("ipc link {}: cannot register its socket with the loop: {}", opts.name, ec.message());
      fail(ec, "cannot register the socket: " + ec.message());
    }
  }

  link_options opts;
  asio::any_io_executor executor;
  asio::io_context& io;
  // The socket, read and written with plain system calls; its readiness comes from the
  // loop's epoll set (swactor/core/readiness.hpp): no asio operation per read.
  int fd;
  std::optional<readiness> reg;
  // Coroutines waiting for the socket (the reader before a handler is set, the writer of a
  // batch the socket did not take): the timers never expire on their own (the writer's
  // expires at its write_timeout); on_ready cancels them to wake the waiter.
  asio::steady_timer read_wake;
  asio::steady_timer write_wake;
  bool read_waiting = false;
  bool write_waiting = false;
  bool callback_reads = false;  // a handler is set: events read and dispatch at once (read_ready)
  bool reading = false;         // inside read_ready (an event during a handler waits for it)
  bool read_again = false;      // an event came while read_ready ran
  asio::steady_timer notify;  // never expires: cancel() wakes everyone waiting for progress
  channel<message> inbox;
  decoder dec;
  encoder enc;
  // Small messages sent while `pending` is empty, already encoded (frames back to back):
  // they come before everything in `pending`, and cost no queue entry and no encoder pass.
  std::string small;
  std::size_t small_count = 0;
  std::deque<message> pending;
  std::vector<message> inflight;  // owns the payloads the encoder references during a write
  std::string small_inflight;     // the batch's share of `small` while it is written
  std::size_t small_inflight_count = 0;
  std::size_t pending_bytes = 0;
  std::size_t inflight_bytes = 0;
  std::vector<asio::const_buffer> rest;  // the unwritten tail of the batch in `inflight`
  std::size_t progress_waiters = 0;      // send_wait / flush callers parked on `notify`
  std::function<void(message&&)> handler;               // set: messages go here, not to inbox
  std::function<void(std::error_code)> closed_handler;  // with `handler`: the link closed
  std::function<void()> batch_end_handler;              // with `handler`: after each read's messages
  std::function<bool(const message_view&)> view_handler;  // with `handler`: whole frames, in place
  bool view_taken = false;  // the view handler took a frame of the current read
  static bool offer_view(void* ctx, const message_view& v) {
    auto* st = static_cast<state*>(ctx);
    if (!st->open) return true;  // an earlier frame's handler closed the link: dropped, as the rest
    if (!st->view_handler(v)) return false;
    ++st->counters.messages_received;
    st->view_taken = true;
    return true;
  }
  bool open = true;
  bool writing = false;
  std::error_code error;
  std::string reason;
  link_stats counters;

  std::size_t queued() const noexcept { return pending_bytes + inflight_bytes; }
  bool has_pending() const noexcept { return !small.empty() || !pending.empty(); }
  // A write batch is over (written or failed): its buffers are free again.
  void drop_inflight() {
    inflight.clear();
    enc.clear();
    inflight_bytes = 0;
    small_inflight.clear();
    // A burst's big buffer is not kept for the quiet time after it.
    if (small_inflight.capacity() > opts.max_batch_bytes) std::string().swap(small_inflight);
    small_inflight_count = 0;
  }
  // Cancelling the timer takes the reactor's timer lock: only when someone waits.
  void wake() {
    if (progress_waiters > 0) notify.cancel();
  }

  void close_descriptor() noexcept {
    if (fd < 0) return;
    reg.reset();  // out of the epoll set while the descriptor is still ours
    ::shutdown(fd, SHUT_RDWR);
    ::close(fd);
    fd = -1;
    // Waiters resume (operation_aborted) and find the link closed.
    if (read_waiting) read_wake.cancel();
    if (write_waiting) write_wake.cancel();
  }

  void on_ready(std::uint32_t events) override {
    auto self = shared_from_this();  // a handler may drop the last link handle
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) {
      if (write_waiting) write_wake.cancel();
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
      if (callback_reads) {
        if (reading)
          read_again = true;
        else
          read_ready();
      } else if (read_waiting) {
        read_wake.cancel();
      }
    }
  }

  void fail(std::error_code ec, std::string why) {
    if (!open) return;
    open = false;
    error = ec;
    reason = std::move(why);
    close_descriptor();
    inbox.close();
    pending.clear();
    small.clear();
    small_count = 0;
    pending_bytes = 0;
    wake();
    if (closed_handler) {
      auto h = std::move(closed_handler);  // `handler` stays: it may be the caller
      h(ec);
    }
  }

  // The checks every send makes: `size` is the message's encoded size when it is accepted.
  std::error_code admit(std::size_t payload, std::size_t& size) const {
    if (!open) return swactor::errc::closed;
    if (payload > opts.codec.max_message_size) return errc::message_too_large;
    size = encoded_size(payload, opts.codec);
    if (queued() > 0 && queued() + size > opts.max_queued_bytes) return errc::queue_full;
    return {};
  }
  // A small message while nothing larger waits is encoded into `small` at once (copied: the
  // caller's `m` is left as it was).
  template <class M>
  bool take_small(const M& m, std::size_t payload) {
    if (!pending.empty() || payload > opts.codec.copy_threshold || !append_frame(m, small, opts.codec)) return false;
    ++small_count;
    return true;
  }
  void accepted(std::size_t size) {
    pending_bytes += size;
    if (!writing) {
      writing = true;
      // Sent by a handler of this link's own read: flushed when the read's messages are
      // handed (one write for all their replies, no post and no scheduler turn).
      if (!dispatching) post_flush();
    }
  }
  // After the caller's turn: what it sends meanwhile goes out in the same write. Posted to
  // the io_context itself: the type-erased executor's dispatch costs as much as the rest
  // of the post.
  void post_flush() { asio::post(io, [self = shared_from_this()] { self->flush_now(); }); }

  std::error_code try_send(message& m) {
    std::size_t size = 0;
    if (auto ec = admit(m.payload.size(), size)) return ec;
    if (!take_small(m, m.payload.size())) pending.push_back(std::move(m));
    accepted(size);
    return {};
  }

  std::error_code try_send_pieces(const message_pieces& m) {
    std::size_t size = 0;
    if (auto ec = admit(m.size(), size)) return ec;
    if (!take_small(m, m.size())) pending.push_back(m.assemble());
    accepted(size);
    return {};
  }

  // Moves the encoded small messages and whole pending messages (up to max_batch_bytes, at
  // least one) into the batch and encodes them; returns the batch size.
  std::size_t take_batch() {
    std::size_t batch = 0;
    drop_inflight();
    if (!small.empty()) {
      small_inflight.swap(small);  // `small` gets the old (empty) buffer back
      small_inflight_count = small_count;
      small_count = 0;
      batch = small_inflight.size();
      enc.append_encoded(std::as_bytes(std::span(small_inflight.data(), small_inflight.size())), small_inflight_count);
    }
    while (!pending.empty()) {
      std::size_t size = encoded_size(pending.front().payload.size(), opts.codec);
      if (batch > 0 && batch + size > opts.max_batch_bytes) break;
      batch += size;
      inflight.push_back(std::move(pending.front()));
      pending.pop_front();
    }
    pending_bytes -= batch;
    inflight_bytes = batch;
    for (const auto& m : inflight) (void)enc.append(m);  // sizes were checked by send()
    return batch;
  }

  void batch_written(std::size_t batch) {
    counters.messages_sent += inflight.size() + small_inflight_count;
    counters.bytes_sent += batch;
    ++counters.writes;
    drop_inflight();
    rest.clear();
  }

  // The common case without a coroutine: one non-blocking gathered write of everything
  // pending. Only what the socket does not take goes to the writer coroutine.
  void flush_now() {
    for (int round = 0; round < 4 && open && has_pending(); ++round) {
      auto batch = take_batch();
      const auto& b = enc.buffers();
      if (b.size() > kMaxIov) {  // more than IOV_MAX: the writer coroutine splits it
        for (auto x : b) rest.emplace_back(x.data(), x.size());
        break;
      }
      iovec iov[kMaxIov];
      for (std::size_t i = 0; i < b.size(); ++i) iov[i] = {const_cast<std::byte*>(b[i].data()), b[i].size()};
      msghdr mh{};
      mh.msg_iov = iov;
      mh.msg_iovlen = b.size();
      ssize_t n;
      // One buffer (small messages only, the usual batch): send() spares the kernel the msghdr.
      do n = b.size() == 1 ? plain_io::send(fd, iov[0].iov_base, iov[0].iov_len, MSG_DONTWAIT | MSG_NOSIGNAL)
                           : plain_io::sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
      while (n < 0 && errno == EINTR);
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        std::error_code ec(errno, std::system_category());
        log::info("ipc link {}: write failed, closing: {}", opts.name, ec.message());
        drop_inflight();
        fail(ec, "write failed: " + ec.message());
        writing = false;
        return;
      }
      std::size_t done = n < 0 ? 0 : static_cast<std::size_t>(n);
      if (done == batch) {
        batch_written(batch);
        wake();
        continue;
      }
      // Partial: the rest of this batch first, then the writer carries on.
      for (auto x : b) {
        if (done >= x.size()) {
          done -= x.size();
          continue;
        }
        rest.emplace_back(x.data() + done, x.size() - done);
        done = 0;
      }
      break;
    }
    if (!open) {
      writing = false;
      return;
    }
    if (rest.empty() && !has_pending()) {
      writing = false;
      wake();
      return;
    }
    spawn(executor, [self = shared_from_this()]() -> task<void> { co_await self->write_loop(); },
          "ipc link writer");
  }

  // Waits for the writer to make progress (or the link to close), up to `deadline`.
  task<std::error_code> wait_progress(std::optional<clock::time_point> deadline) {
    auto self = shared_from_this();
    struct count {
      std::size_t& n;
      explicit count(std::size_t& c) : n(c) { ++n; }
      ~count() { --n; }
    } waiting(progress_waiters);
    if (!deadline) {
      co_await notify.async_wait(use_tuple);
      co_return std::error_code{};
    }
    auto now = clock::now();
    if (now >= *deadline) co_return make_error_code(swactor::errc::timeout);
    co_return co_await with_timeout(wait_notify(self), *deadline - now);
  }

  static task<void> wait_notify(std::shared_ptr<state> self) {
    co_await self->notify.async_wait(use_tuple);
  }

  // Writes all of `bufs` (consumed as it goes), waiting for room when the socket is full;
  // the whole batch within write_timeout.
  task<std::error_code> write_all(std::vector<asio::const_buffer>& bufs) {
    std::optional<clock::time_point> deadline;
    if (opts.write_timeout != no_timeout) deadline = clock::now() + opts.write_timeout;
    std::size_t first = 0;
    while (first < bufs.size()) {
      if (fd < 0) co_return make_error_code(swactor::errc::closed);
      iovec iov[kMaxIov];
      const std::size_t count = std::min(bufs.size() - first, kMaxIov);
      for (std::size_t i = 0; i < count; ++i)
        iov[i] = {const_cast<void*>(bufs[first + i].data()), bufs[first + i].size()};
      msghdr mh{};
      mh.msg_iov = iov;
      mh.msg_iovlen = count;
      ssize_t n;
      do n = plain_io::sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
      while (n < 0 && errno == EINTR);
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) co_return std::error_code(errno, std::system_category());
      auto done = static_cast<std::size_t>(std::max<ssize_t>(n, 0));
      while (done > 0 && first < bufs.size()) {
        auto& b = bufs[first];
        if (done >= b.size()) {
          done -= b.size();
          ++first;
        } else {
          b += done;
          done = 0;
        }
      }
      if (first == bufs.size()) break;
      if (n < 0) {  // full: wait for room (an edge after this write)
        std::error_code rec;
        reg->want_writes(rec);
        if (rec) co_return rec;
        if (deadline && clock::now() >= *deadline) co_return make_error_code(swactor::errc::timeout);
        write_wake.expires_at(deadline ? *deadline : clock::time_point::max());
        write_waiting = true;
        auto [wec] = co_await write_wake.async_wait(use_tuple);
        write_waiting = false;
        if (!open) co_return make_error_code(swactor::errc::closed);
        if (!wec) co_return make_error_code(swactor::errc::timeout);  // expired: no room in time
      }
    }
    co_return std::error_code{};
  }

  task<void> write_loop() {
    auto self = shared_from_this();
    std::vector<asio::const_buffer> bufs;
    while (open && (!rest.empty() || has_pending())) {
      std::size_t batch = inflight_bytes;
      if (!rest.empty()) {
        // The tail of the batch flush_now() started.
        bufs = std::move(rest);
        rest.clear();
      } else {
        // Gather whole messages up to max_batch_bytes (always at least one).
        batch = take_batch();
        bufs.clear();
        for (auto b : enc.buffers()) bufs.emplace_back(b.data(), b.size());
      }

      std::error_code ec = co_await write_all(bufs);
      if (ec) {
        drop_inflight();
        if (open) {
          log::info("ipc link {}: write failed, closing: {}", opts.name, ec.message());
          fail(ec, "write failed: " + ec.message());
        }
        break;
      }
      batch_written(batch);
      wake();
    }
    writing = false;
    wake();
  }

  // The read buffer: the reader coroutine's, then the callback reads'.
  std::vector<std::byte> rbuf;
  std::vector<message> rout;

  // Bytes read: decoded and handed to `handler` (view_handler first); with no handler they
  // are left in rout for the coroutine to queue. False when the link closed meanwhile.
  bool take_read(std::size_t n) {
    counters.bytes_received += n;
    view_taken = false;
    dispatch_scope scope(*this);
    auto perr = dec.feed(std::span<const std::byte>(rbuf.data(), n), rout,
                         handler && view_handler ? view_sink{&state::offer_view, this} : view_sink{});
    read_error = perr;
    if (handler) {
      // Complete messages that came before any garbage are still good: deliver them.
      bool handed = view_taken;
      for (auto& m : rout) {
        ++counters.messages_received;
        handed = true;
        handler(std::move(m));  // may close the link
        if (!open) break;
      }
      rout.clear();
      if (handed && batch_end_handler) batch_end_handler();
    }
    scope.end();
    return open;
  }
  // While a read's messages are handed: sends on this link wait for its end (accepted()).
  bool dispatching = false;
  struct dispatch_scope {
    state& st;
    const bool was_writing;  // a flush was under way before: it takes this read's sends too
    explicit dispatch_scope(state& s) : st(s), was_writing(s.writing) { st.dispatching = true; }
    // Whether the read's handlers started a batch that no flush was posted for.
    bool begun() {
      st.dispatching = false;
      return !was_writing && st.writing;
    }
    void end() {
      if (begun()) st.flush_now();  // closed meanwhile: just ends the batch
    }
    ~dispatch_scope() {
      // A handler threw: the flush still happens, after the unwinding.
      if (st.dispatching && begun()) st.post_flush();
    }
  };
  std::error_code read_error;  // the decoder's, from the last take_read

  // After a read's messages: a protocol error or the end of the stream closes the link.
  // True while the link stays open.
  bool after_read(std::error_code ec) {
    if (!open) return false;
    if (read_error) {
      log::warning("ipc link {}: protocol error from peer, disconnecting: {} ({})", opts.name,
                   read_error.message(), dec.reason());
      fail(read_error, dec.reason());
      return false;
    }
    if (!ec) return true;
    if (ec == asio::error::eof) {
      if (auto fe = dec.finish()) {
        log::warning("ipc link {}: peer closed mid-message: {}", opts.name, dec.reason());
        fail(fe, dec.reason());
      } else {
        log::debug("ipc link {}: peer closed the link", opts.name);
        fail(swactor::errc::closed, "peer closed the link");
      }
    } else {
      log::info("ipc link {}: read failed, closing: {}", opts.name, ec.message());
      fail(ec, "read failed: " + ec.message());
    }
    return false;
  }

  // One non-blocking read into rbuf: bytes, 0 at the end of the stream, or -1 with errno.
  ssize_t read_once() {
    ssize_t n;
    do n = plain_io::recv(fd, rbuf.data(), rbuf.size(), MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    return n;
  }
  // What read_once's result means for after_read (would_block: nothing yet).
  static std::error_code read_outcome(ssize_t n) {
    if (n > 0) return {};
    if (n == 0) return asio::error::eof;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return make_error_code(std::errc::operation_would_block);
    return {errno, std::system_category()};
  }

  // Callback mode (a handler is set): each readiness event reads and dispatches at once, no
  // coroutine and no asio operation. Reads until a short read (the socket is drained: the
  // next bytes raise a new edge); a socket that stays full gets a few reads per turn
  // (fairness) and then a posted continuation.
  void read_ready() {
    reading = true;
    for (int round = 0; round < 4; ++round) {
      read_again = false;
      if (!open) break;
      const ssize_t n = read_once();
      const auto ec = read_outcome(n);
      if (ec == std::errc::operation_would_block) break;
      if (n > 0 && !take_read(static_cast<std::size_t>(n))) break;
      if (!after_read(ec)) break;
      if (static_cast<std::size_t>(n) < rbuf.size() && !read_again) {
        reading = false;
        return;
      }
      if (round == 3) {
        reading = false;
        asio::post(executor, [self = shared_from_this()] {
          if (self->open && !self->reading) self->read_ready();
        });
        return;
      }
    }
    reading = false;
  }

  // Messages queued for receive() go to the handler (set_handler() and a push that waited
  // while it ran); true when there were some.
  // (set_handler() hands them also after the link closed: they were decoded before.)
  bool hand_queued(bool even_closed = false) {
    bool any = false;
    while (handler && (open || even_closed)) {
      auto m = inbox.try_pop();
      if (!m) break;
      any = true;
      handler(std::move(*m));
    }
    return any;
  }

  // Until a handler is set, messages are queued for receive() (waiting while the queue is
  // full); from then on the callback reads take over.
  task<void> read_loop() {
    auto self = shared_from_this();
    rbuf.resize(std::max<std::size_t>(opts.read_buffer_size, 256));
    for (;;) {
      if (!open) co_return;
      const ssize_t got = read_once();
      auto ec = read_outcome(got);
      if (ec == std::errc::operation_would_block) {
        // Nothing there: wait for the next readiness event (it cancels the wait).
        read_wake.expires_at(clock::time_point::max());
        read_waiting = true;
        co_await read_wake.async_wait(use_tuple);
        read_waiting = false;
        continue;
      }
      const auto n = static_cast<std::size_t>(std::max<ssize_t>(got, 0));
      if (n > 0) {
        if (!take_read(n)) co_return;
        bool handed = false;
        for (auto& m : rout) {
          ++counters.messages_received;
          if (!handler) {
            if (auto closed = co_await inbox.push(std::move(m))) co_return;  // closed meanwhile
            continue;
          }
          // set_handler() came while a push waited: what that push queued goes first.
          handed = true;
          hand_queued();
          if (open) handler(std::move(m));
          if (!open) break;
        }
        rout.clear();
        if (handler && open) handed = hand_queued() || handed;
        if (handed && batch_end_handler) batch_end_handler();
        if (!open) co_return;
      }
      if (!after_read(ec)) co_return;
      if (handler) {
        // From here each readiness event reads at once. Bytes may have come while this
        // coroutine waited on the inbox (their event found no reader): read now.
        callback_reads = true;
        read_ready();
        co_return;
      }
    }
  }
};

link::link(socket_type socket, link_options opts)
    : st_(std::make_shared<state>(std::move(socket), std::move(opts))) {
  if (st_->opts.socket_buffer_size > 0 && st_->fd >= 0) {
    auto size = static_cast<int>(st_->opts.socket_buffer_size);
    ::setsockopt(st_->fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    ::setsockopt(st_->fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  }
  st_->start_io();
  spawn(st_->executor, [self = st_]() -> task<void> { co_await self->read_loop(); }, "ipc link reader");
}

result<link> link::from_fd(const asio::any_io_executor& ex, int fd, link_options opts) {
  if (!ex.target<asio::io_context::executor_type>()) {  // its readiness needs the io_context's epoll set
    if (fd >= 0) ::close(fd);
    return swactor::errc::invalid_argument;
  }
  // An inherited fd number can point at anything: refuse what is not a Unix stream socket.
  int type = 0, domain = 0;
  socklen_t len = sizeof type;
  bool ok = ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
  len = sizeof domain;
  ok = ok && ::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 && domain == AF_UNIX;
  if (!ok) {
    if (fd >= 0) ::close(fd);
    return swactor::errc::invalid_argument;
  }
  socket_type s(ex);
  asio::error_code ec;
  s.assign(asio::local::stream_protocol(), fd, ec);
  if (ec) {
    ::close(fd);
    return ec;
  }
  return link(std::move(s), std::move(opts));
}

result<std::pair<link, link>> link::make_pair(const asio::any_io_executor& ex,
                                              link_options opts) {
  auto fds = socket_pair();
  if (!fds) return fds.error();
  auto a = from_fd(ex, fds->first, opts);
  if (!a) {
    ::close(fds->second);
    return a.error();
  }
  auto b = from_fd(ex, fds->second, std::move(opts));
  if (!b) return b.error();
  return std::pair<link, link>(std::move(*a), std::move(*b));
}

link& link::operator=(link&& other) noexcept {
  if (this != &other) {
    close();
    st_ = std::move(other.st_);
  }
  return *this;
}

link::~link() { close(); }

std::error_code link::send(message m) {
  if (!st_) return swactor::errc::closed;
  return st_->try_send(m);
}

std::error_code link::try_send(message& m) {
  if (!st_) return swactor::errc::closed;
  return st_->try_send(m);
}

std::error_code link::try_send_pieces(const message_pieces& m) {
  if (!st_) return swactor::errc::closed;
  return st_->try_send_pieces(m);
}

task<std::error_code> link::send_wait(message m, duration timeout) {
  auto st = st_;  // `this` may move while we wait
  if (!st) co_return make_error_code(swactor::errc::closed);
  std::optional<clock::time_point> deadline;
  if (timeout != no_timeout) deadline = clock::now() + timeout;
  for (;;) {
    auto ec = st->try_send(m);
    if (ec != errc::queue_full) co_return ec;
    if (auto we = co_await st->wait_progress(deadline)) co_return we;
  }
}

task<std::error_code> link::flush(duration timeout) {
  auto st = st_;
  if (!st) co_return make_error_code(swactor::errc::closed);
  std::optional<clock::time_point> deadline;
  if (timeout != no_timeout) deadline = clock::now() + timeout;
  while (st->open && st->queued() > 0) {
    if (auto ec = co_await st->wait_progress(deadline)) co_return ec;
  }
  co_return st->open ? std::error_code{} : st->error;
}

task<result<message>> link::receive(duration timeout) {
  auto st = st_;
  if (!st) co_return result<message>(swactor::errc::closed);
  auto r = co_await st->inbox.pop(timeout);
  if (!r && r.error() == swactor::errc::closed && st->error) {
    co_return result<message>(st->error);
  }
  co_return r;
}

void link::set_handler(std::function<void(message&&)> on_message,
                       std::function<void(std::error_code)> on_close, std::function<void()> on_batch_end) {
  if (!st_) return;
  st_->handler = std::move(on_message);
  st_->closed_handler = std::move(on_close);
  st_->batch_end_handler = std::move(on_batch_end);
  // Messages that arrived before go first, in order.
  if (st_->hand_queued(true) && st_->batch_end_handler) st_->batch_end_handler();
  if (!st_->open && st_->closed_handler) {
    auto h = std::move(st_->closed_handler);
    h(st_->error);
  }
}

void link::set_view_handler(std::function<bool(const message_view&)> on_view) {
  if (st_) st_->view_handler = std::move(on_view);
}

void link::close() {
  if (st_) st_->fail(swactor::errc::closed, "closed locally");
}

bool link::is_open() const noexcept { return st_ && st_->open; }

std::error_code link::error() const noexcept {
  if (!st_) return swactor::errc::closed;
  return st_->error;
}

std::string link::reason() const { return st_ ? st_->reason : "no link"; }

link_stats link::stats() const noexcept {
  if (!st_) return {};
  link_stats s = st_->counters;
  s.queued_messages = st_->pending.size() + st_->inflight.size() + st_->small_count + st_->small_inflight_count;
  s.queued_bytes = st_->queued();
  s.received_pending = st_->inbox.size();
  return s;
}

std::size_t link::queued_bytes() const noexcept { return st_ ? st_->queued() : 0; }

const link_options& link::options() const noexcept {
  static const link_options defaults;
  return st_ ? st_->opts : defaults;
}

int link::native_handle() const noexcept { return st_ ? st_->fd : -1; }

asio::any_io_executor link::get_executor() const noexcept { return st_ ? st_->executor : asio::any_io_executor(); }

result<std::pair<int, int>> socket_pair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    return std::error_code(errno, std::system_category());
  }
  return std::pair<int, int>(fds[0], fds[1]);
}

}  // namespace swactor::ipc
