#include "runner.hpp"

#include <algorithm>
#include <cerrno>
#include <array>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include <asio/connect.hpp>
#include <asio/generic/datagram_protocol.hpp>
#include <asio/generic/stream_protocol.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ip/udp.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>
#include <asio/experimental/awaitable_operators.hpp>

#include "mode.hpp"
#include "tls_client.hpp"
#include "swactor/core/channel.hpp"
#include "swactor/core/wait_group.hpp"

namespace swactor::bench {

namespace {

using clock_type = std::chrono::steady_clock;
using stream_socket = asio::generic::stream_protocol::socket;
using dgram_socket = asio::generic::datagram_protocol::socket;
constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

std::uint64_t ns_between(clock_type::time_point a, clock_type::time_point b) {
  auto d = std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count();
  return d > 0 ? static_cast<std::uint64_t>(d) : 0;
}

// asio reports socket errors in its own "asio.system" category, which does not compare
// equal to std::errc values: match errno values in any system-like category.
bool is_errno(const std::error_code& ec, int value) {
  return ec.value() == value &&
         (ec.category() == asio::system_category() || ec.category() == std::system_category() ||
          ec.category() == std::generic_category());
}

error_kind classify(const std::error_code& ec, bool timed_out) {
  if (timed_out) return error_kind::timeout;
  if (ec == asio::error::eof) return error_kind::short_read;
  if (is_errno(ec, ECONNREFUSED) || is_errno(ec, ENOENT)) return error_kind::connect_refused;
  if (is_errno(ec, ECONNRESET) || is_errno(ec, EPIPE) || is_errno(ec, ECONNABORTED))
    return error_kind::reset;
  return error_kind::other;
}

struct shard;
struct connection;

}  // namespace

// -- shared state of one run --------------------------------------------------------------

struct runner::impl {
  settings cfg;
  std::unique_ptr<mode> proto;
  std::unique_ptr<tls_client_context> tls;  // https:// targets
  asio::generic::stream_protocol::endpoint stream_ep;
  asio::generic::datagram_protocol::endpoint dgram_ep;

  std::atomic<std::int64_t> tickets{0};
  std::atomic<bool> no_more{false};     // no new requests
  std::atomic<bool> hard{false};        // cancel what is in flight, count nothing more
  std::atomic<bool> interrupted{false};
  std::atomic<bool> started{false};
  clock_type::time_point start{};
  clock_type::time_point deadline = clock_type::time_point::max();       // -d
  clock_type::time_point hard_deadline = clock_type::time_point::max();  // -d + grace

  mutable std::mutex mu;  // guards `live`
  std::vector<shard*> live;

  explicit impl(settings s);
  void begin();
  bool claim() { return claim(cfg.requests > 0 ? clock_type::time_point{} : clock_type::now()); }
  // `now` only matters with -d: the hot loop passes the clock reading it already has.
  bool claim(clock_type::time_point now) {
    if (no_more.load(std::memory_order_relaxed)) return false;
    if (cfg.requests > 0) {
      if (tickets.fetch_sub(1, std::memory_order_relaxed) > 0) return true;
    } else if (now < deadline) {
      return true;
    }
    no_more.store(true, std::memory_order_relaxed);
    return false;
  }
  void enter(shard* s);
  void leave(shard* s);
  void stop();
  progress snapshot() const;
};

namespace {

// -- one loop's share of the connections ------------------------------------------------

struct shard {
  runner::impl& rt;
  asio::any_io_executor ex;
  std::vector<std::uint64_t> conn_ids;
  results res;
  // Mirrors of res counters for snapshot(): written by this loop only, read anywhere.
  std::atomic<std::uint64_t> done{0};
  std::atomic<std::uint64_t> failed{0};
  std::vector<connection*> conns;
  bool aborted = false;

  // Connections that sent a request and yield until the loop's other ready work has run
  // (see connection::run_sequential): one posted flush per round resumes them all, instead
  // of a post (an allocated operation and a scheduler round trip) per request. The
  // wait_group resumes shard::run() by a post, so the shard outlives any flush.
  using resume_handler = asio::async_result<asio::use_awaitable_t<>, void()>::handler_type;
  std::vector<resume_handler> parked, resuming;

  auto yield_to_others() {
    return asio::async_initiate<const asio::use_awaitable_t<>&, void()>(
        [this](resume_handler h) {
          parked.push_back(std::move(h));
          if (parked.size() == 1) asio::post(ex, [this] { flush(); });
        },
        asio::use_awaitable);
  }
  void flush() {
    resuming.swap(parked);  // who parks again meanwhile waits for the next flush
    for (auto& h : resuming) h();
    resuming.clear();
  }

  shard(runner::impl& r, asio::any_io_executor e, std::vector<std::uint64_t> ids)
      : rt(r), ex(std::move(e)), conn_ids(std::move(ids)) {
    res.has_status = rt.proto->has_status();
  }

  void count_ok(std::uint64_t latency_ns) {
    ++res.ok;
    ++res.requests;
    res.latency_ns.record(latency_ns);
    done.store(done.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  void count_error(error_kind k) {
    ++res.errors[static_cast<std::size_t>(k)];
    ++res.requests;
    done.store(done.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    failed.store(failed.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

  void abort_all();
  task<void> run();
};

struct inflight {
  clock_type::time_point t0;
  std::string request;
};

// One connection slot: a coroutine that (re)connects as needed and runs requests while
// tickets last. A watchdog coroutine enforces --timeout on every I/O.
struct connection {
  shard& sh;
  runner::impl& rt;
  const mode& proto;
  std::uint64_t id;
  stream_socket stream;
  dgram_socket dgram;
  asio::steady_timer watchdog;
  asio::steady_timer pacer;
  channel<inflight>* window = nullptr;  // pipelined mode only

  clock_type::time_point deadline{};
  int in_io = 0;
  bool timed_out = false;
  bool finished = false;
  bool open = false;
  bool is_tcp;

  clock_type::duration interval{0};  // --rate: this connection's send interval
  clock_type::time_point next_send{};
  std::uint64_t seq = 0;
  std::string req;
  std::string head;  // split_request()'s head
  std::string hs_state;  // mode::make_handshake()'s state for the answer
  std::vector<char> rbuf;
  std::size_t rbeg = 0, rend = 0;
  std::unique_ptr<tls_client> tls;  // https://: the session over `stream`
  std::string plain;                // https://: decrypted bytes not yet handed on
  std::string cipher;               // https://: encrypted bytes to write

  connection(shard& s, std::uint64_t i)
      : sh(s),
        rt(s.rt),
        proto(*s.rt.proto),
        id(i),
        stream(s.ex),
        dgram(s.ex),
        watchdog(s.ex),
        pacer(s.ex),
        is_tcp(s.rt.cfg.server.kind == scheme::tcp) {
    rbuf.resize(std::max<std::size_t>(4096, 2 * rt.cfg.size + 64));
    if (rt.cfg.rate > 0) {
      const double per_conn = rt.cfg.rate / rt.cfg.connections;
      interval = std::chrono::duration_cast<clock_type::duration>(
          std::chrono::duration<double>(1.0 / per_conn));
      // Spread the connections' schedules evenly over one interval.
      next_send = rt.start + std::chrono::duration_cast<clock_type::duration>(
                                 std::chrono::duration<double>(static_cast<double>(id) / rt.cfg.rate));
    }
  }

  // -- timeouts ---------------------------------------------------------------------------
  // I/O marks itself with arm()/disarm(); the watchdog wakes at most once per deadline and
  // cancels the socket when an I/O outlives it. No timer is touched per request.
  void arm() { arm(clock_type::now()); }
  // `from`: when the operation started, if the caller already read the clock.
  void arm(clock_type::time_point from) {
    deadline = from + rt.cfg.timeout;
    timed_out = false;
    ++in_io;
  }
  void disarm() { --in_io; }

  task<void> watch() {
    while (!finished) {
      watchdog.expires_at(in_io > 0 ? deadline : clock_type::now() + rt.cfg.timeout);
      co_await watchdog.async_wait(use_tuple);
      if (finished) break;
      if (in_io > 0 && clock_type::now() >= deadline) {
        timed_out = true;
        // A fresh window: the cancelled operations complete and disarm meanwhile.
        deadline = clock_type::now() + rt.cfg.timeout;
        std::error_code ignored;
        stream.cancel(ignored);
        dgram.cancel(ignored);
      }
    }
  }

  // Hard stop: everything this connection waits on completes now.
  void abort() {
    std::error_code ignored;
    stream.close(ignored);
    dgram.close(ignored);
    pacer.cancel();
    if (window) window->close();
  }

  void close_socket() {
    std::error_code ignored;
    stream.close(ignored);
    dgram.close(ignored);
    open = false;
    rbeg = rend = 0;
    tls.reset();
    plain.clear();
  }

  // The intended send time under --rate (waiting for it), else now.
  task<clock_type::time_point> pace() {
    if (interval.count() == 0) co_return clock_type::now();
    const auto t = next_send;
    next_send += interval;
    if (t > clock_type::now()) {
      pacer.expires_at(t);
      co_await pacer.async_wait(use_tuple);
    }
    co_return t;
  }

  task<void> backoff() {
    pacer.expires_after(std::chrono::milliseconds(1));
    co_await pacer.async_wait(use_tuple);
  }

  // -- connect ----------------------------------------------------------------------------
  task<std::optional<error_kind>> connect() {
    close_socket();
    std::error_code ec;
    if (proto.kind() == transport::datagram) {
      dgram.open(rt.dgram_ep.protocol(), ec);
      if (!ec) dgram.connect(rt.dgram_ep, ec);
      if (ec) {
        close_socket();
        co_return classify(ec, false);
      }
    } else {
      stream.open(rt.stream_ep.protocol(), ec);
      if (ec) co_return error_kind::other;
      if (is_tcp) stream.set_option(asio::ip::tcp::no_delay(true), ec);
      stream.non_blocking(true, ec);  // for the synchronous first try in write_request()
      arm();
      auto [cec] = co_await stream.async_connect(rt.stream_ep, use_tuple);
      disarm();
      if (cec) {
        const auto kind = classify(cec, timed_out);
        close_socket();
        co_return kind;
      }
      ++sh.res.connections;
      if (rt.tls) {
        if (auto err = co_await tls_handshake()) {
          close_socket();
          co_return err;
        }
      }
      if (proto.make_handshake(id, req, hs_state)) {
        if (auto err = co_await handshake()) {
          close_socket();
          co_return err;
        }
      }
      open = true;
      co_return std::nullopt;
    }
    open = true;
    ++sh.res.connections;
    co_return std::nullopt;
  }

  // The mode's opening exchange (`req` holds it): written, then its answer read and
  // consumed. Whatever follows the answer in the buffer belongs to the first request.
  task<std::optional<error_kind>> handshake() {
    if (auto err = co_await write_request(req)) co_return err;
    for (;;) {
      std::string why;
      const auto n =
          proto.handshake_reply(std::string_view(rbuf.data() + rbeg, rend - rbeg), hs_state, why);
      if (n > 0) {
        consume(static_cast<std::size_t>(n));
        co_return std::nullopt;
      }
      if (n < 0) {
        if (sh.res.handshake_error.empty()) sh.res.handshake_error = why;
        co_return error_kind::handshake;
      }
      make_room();
      if (auto err = co_await read_more({})) {
        if (*err == error_kind::short_read && sh.res.handshake_error.empty())
          sh.res.handshake_error = "the server closed the connection during the handshake";
        co_return err;
      }
    }
  }

  // TLS on a fresh connection; the server must choose the mode's ALPN protocol. Whatever
  // application data arrived with the handshake's end waits in `plain`.
  task<std::optional<error_kind>> tls_handshake() {
    tls = std::make_unique<tls_client>(*rt.tls, rt.cfg.server.host);
    std::string_view in;
    for (;;) {
      cipher.clear();
      const auto st = tls->handshake(in, cipher);
      rbeg = rend = 0;
      if (!cipher.empty())
        if (auto err = co_await write_request(cipher)) co_return err;
      if (st == tls_client::step::done) break;
      if (st == tls_client::step::failed) {
        if (sh.res.handshake_error.empty()) sh.res.handshake_error = "TLS: " + tls->why();
        co_return error_kind::handshake;
      }
      if (auto err = co_await read_more({})) {
        if (*err == error_kind::short_read && sh.res.handshake_error.empty())
          sh.res.handshake_error = "the server closed the connection during the TLS handshake";
        co_return err;
      }
      in = std::string_view(rbuf.data() + rbeg, rend - rbeg);
    }
    const auto want = proto.alpn();
    if (!want.empty() && tls->alpn() != want) {
      if (sh.res.handshake_error.empty())
        sh.res.handshake_error = "TLS: the server did not choose ALPN " + std::string(want) +
                                 (tls->alpn().empty() ? " (no ALPN)" : " (chose " + tls->alpn() + ")");
      co_return error_kind::handshake;
    }
    if (!tls->decrypt({}, plain)) {
      if (sh.res.handshake_error.empty()) sh.res.handshake_error = "TLS: " + tls->why();
      co_return error_kind::handshake;
    }
    co_return std::nullopt;
  }

  void consume(std::size_t n) {
    rbeg += n;
    if (rbeg == rend) rbeg = rend = 0;
  }

  // Before a read: moves unconsumed bytes to the front, grows a full buffer.
  void make_room() {
    if (rbeg > 0 && (rbeg == rend || rend == rbuf.size())) {
      std::copy(rbuf.begin() + static_cast<std::ptrdiff_t>(rbeg),
                rbuf.begin() + static_cast<std::ptrdiff_t>(rend), rbuf.begin());
      rend -= rbeg;
      rbeg = 0;
    }
    if (rend == rbuf.size()) rbuf.resize(rbuf.size() * 2);
  }

  // one_shot modes with mode::goodbye(): sends it and waits for the peer's answer to it
  // or for its EOF (either ends the session properly).
  task<std::optional<error_kind>> say_goodbye() {
    req.assign(proto.goodbye());
    if (auto err = co_await write_request(req)) co_return err;
    for (;;) {
      const auto n = proto.goodbye_reply(std::string_view(rbuf.data() + rbeg, rend - rbeg));
      if (n > 0) co_return std::nullopt;
      if (n < 0) co_return error_kind::mismatch;
      make_room();
      if (auto err = co_await read_more({})) {
        if (*err == error_kind::short_read) co_return std::nullopt;
        co_return err;
      }
    }
  }

  // -- stream replies ---------------------------------------------------------------------
  struct reply {
    std::optional<error_kind> error;
    std::size_t size = 0;
    int status = 0;       // mode::cut
    bool last = false;    // the peer closes after it: reconnect for the next request
    bool failed = false;  // a whole reply that reports failure: server_error
  };

  // Reads until the mode sees a whole reply at the front of the buffer. `sent`, when set,
  // is when the request went out (already read from the clock): the first read's timeout
  // counts from there.
  task<reply> read_reply(std::string_view request, clock_type::time_point sent = {}) {
    for (;;) {
      if (auto r = take_reply(request)) co_return *r;
      if (auto err = co_await read_more(sent)) co_return after_error(*err, request);
      sent = {};
    }
  }

  // A read failed with `err`. When the peer closed, what is buffered may be a whole reply
  // that the close ends (an HTTP body without a length); the connection is spent then.
  reply after_error(error_kind err, std::string_view request) {
    if (err != error_kind::short_read || rbeg == rend) return reply{err, 0};
    const auto c = proto.cut_reply(std::string_view(rbuf.data() + rbeg, rend - rbeg), request, true);
    if (c.size <= 0) return reply{err, 0};
    return reply{std::nullopt, static_cast<std::size_t>(c.size), c.status, true, c.failed};
  }

  // The reply at the front of the buffer, if whole (or malformed); else makes room for
  // read_more().
  std::optional<reply> take_reply(std::string_view request) {
    const std::string_view avail(rbuf.data() + rbeg, rend - rbeg);
    const auto c = proto.cut_reply(avail, request, false);
    if (c.size < 0) return reply{error_kind::mismatch, 0};
    if (c.size > 0)
      return reply{std::nullopt, static_cast<std::size_t>(c.size), c.status, c.last, c.failed};
    make_room();
    return std::nullopt;
  }

  // One read into the free end of the buffer; `from`, when set, starts the timeout.
  // Returns the awaitable itself (no coroutine frame of its own): the caller's co_await
  // goes straight to the socket.
  auto read_some(clock_type::time_point from) {
    arm(from != clock_type::time_point{} ? from : clock_type::now());
    return stream.async_read_some(asio::buffer(rbuf.data() + rend, rbuf.size() - rend),
                                  use_tuple);
  }
  std::optional<error_kind> got_some(const std::error_code& ec, std::size_t got) {
    disarm();
    if (ec) return classify(ec, timed_out);
    rend += got;
    sh.res.bytes_received += got;
    return std::nullopt;
  }
  task<std::optional<error_kind>> read_more(clock_type::time_point from) {
    auto [ec, got] = co_await read_some(from);
    co_return got_some(ec, got);
  }

  // Counts a finished exchange; the reply is consumed from the buffer. Returns the clock
  // reading taken for the latency (the caller reuses it for the next -d deadline check).
  clock_type::time_point finish(std::string_view request, const reply& r,
                                clock_type::time_point t0) {
    const auto now = clock_type::now();
    if (auto err = judge(request, r))
      sh.count_error(*err);
    else
      sh.count_ok(ns_between(t0, now));
    return now;
  }
  // finish() without the counting: consumes the reply, returns its failure if any.
  std::optional<error_kind> judge(std::string_view request, const reply& r) {
    const std::string_view got(rbuf.data() + rbeg, r.size);
    if (r.status >= 100 && r.status < 600) ++sh.res.status[static_cast<std::size_t>(r.status / 100 - 1)];
    std::optional<error_kind> err;
    if (r.failed)
      err = error_kind::server_error;
    else if (rt.cfg.verify && !proto.matches(request, got))
      err = error_kind::mismatch;
    consume(r.size);
    return err;
  }

  // Most requests fit the socket buffer: a non-blocking send then saves a round trip
  // through the loop per request (and, being a plain call, a coroutine frame). `done` says
  // how much went out; write_rest() sends the remainder the asynchronous way.
  template <class ConstBuffers>
  std::optional<error_kind> write_now(const ConstBuffers& data, std::size_t& done) {
    std::error_code ec;
    done = stream.write_some(data, ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) ec.clear();
    sh.res.bytes_sent += done;
    if (ec) return classify(ec, false);
    return std::nullopt;
  }

  task<std::optional<error_kind>> write_request(const std::string& data) {
    std::size_t done = 0;
    if (auto err = write_now(asio::buffer(data), done)) co_return err;
    if (done == data.size()) co_return std::nullopt;
    co_return co_await write_rest(data, done);
  }

  task<std::optional<error_kind>> write_rest(const std::string& data, std::size_t done) {
    arm();
    auto [aec, n] =
        co_await asio::async_write(stream, asio::buffer(data.data() + done, data.size() - done), use_tuple);
    disarm();
    sh.res.bytes_sent += n;
    if (aec) co_return classify(aec, timed_out);
    co_return std::nullopt;
  }

  // -- the session patterns ---------------------------------------------------------------

  // persistent, pipeline 1: write, read, repeat; reconnect after an error.
  //
  // With several connections on this loop, the read after a send is deferred behind the
  // loop's other ready work (asio::post). Issued at once, asio's speculative recv() nearly
  // always finds nothing yet (the reply needs a round trip through the server) and costs a
  // wasted syscall per request; issued after the other connections had their turn, the
  // reply is usually there, and a plain non-blocking recv takes it. With one connection
  // there is no other work to go first, and the post would only add a loop turn, so it
  // reads at once. The latency still runs from t0 (before the send) to the whole reply.
  task<void> run_sequential() {
    const bool defer_reads = sh.conn_ids.size() > 1;
    // The last clock reading (end of the previous request): enough for the -d check.
    auto last = clock_type::now();
    while (rt.claim(last)) {
      const auto intended = interval.count() ? co_await pace() : clock_type::time_point{};
      if (rt.hard) break;
      if (!open) {
        auto err = co_await connect();
        if (rt.hard) break;
        if (err) {
          sh.count_error(*err);
          co_await backoff();
          last = clock_type::now();
          continue;
        }
      }
      // Without --verify nothing reads the request's bytes after the send: a mode that
      // can split it sends its head and its (shared, cache-hot) payload pattern in one
      // gather write instead of copying the payload per request. `req` then only carries
      // the size, which is all such a mode's reply_size() looks at.
      // Small payloads are cheaper copied than sent from two pieces (sendmsg's iovec).
      std::optional<std::string_view> tail;
      if (!rt.cfg.verify && rt.cfg.size >= 512) tail = proto.split_request(id, seq, head);
      if (tail)
        req.resize(head.size() + tail->size());
      else
        proto.make_request(id, seq, req);
      const auto sent = clock_type::now();
      const auto t0 = interval.count() ? intended : sent;
      last = sent;
      std::size_t done = 0;
      auto err = tail ? write_now(std::array{asio::buffer(std::as_const(head)), asio::buffer(*tail)},
                                  done)
                      : write_now(asio::buffer(req), done);
      if (!err && done < req.size()) {
        if (tail) proto.make_request(id, seq, req);  // the same bytes, for write_rest()
        err = co_await write_rest(req, done);
        if (rt.hard) break;
      }
      ++seq;
      if (!err) {
        if (defer_reads) {
          co_await sh.yield_to_others();
          if (rt.hard) break;
        }
        // read_reply() inlined: one coroutine frame less per request.
        auto from = done == req.size() ? sent : clock_type::time_point{};
        std::optional<reply> got;
        bool sync_first = defer_reads;
        while (!(got = take_reply(req))) {
          if (sync_first) {
            // After the deferral the reply is usually there: a plain non-blocking recv
            // takes it without an asynchronous operation's trip through the loop. Only
            // when nothing is there yet does it wait the asynchronous way.
            sync_first = false;
            std::error_code ec;
            const auto n = stream.read_some(
                asio::buffer(rbuf.data() + rend, rbuf.size() - rend), ec);
            if (!ec) {
              rend += n;
              sh.res.bytes_received += n;
              continue;
            }
            if (ec != asio::error::would_block && ec != asio::error::try_again) {
              got = after_error(classify(ec, false), req);
              break;
            }
          }
          auto [ec, n] = co_await read_some(from);
          from = {};
          if (auto e = got_some(ec, n)) {
            got = after_error(*e, req);
            break;
          }
        }
        if (rt.hard) break;
        const reply& r = *got;
        if (!r.error) {
          last = finish(req, r, t0);
          if (r.last) close_socket();  // the next request reconnects
          continue;
        }
        err = r.error;
      }
      sh.count_error(*err);
      close_socket();
      last = clock_type::now();  // a failed operation may have taken up to --timeout
    }
  }

  // one_shot: connect, one exchange, close. connect_only: connect, close.
  task<void> run_one_shot(bool exchange) {
    while (rt.claim()) {
      const auto intended = interval.count() ? co_await pace() : clock_type::now();
      if (rt.hard) break;
      const auto t0 = interval.count() ? intended : clock_type::now();
      auto err = co_await connect();
      if (rt.hard) break;
      if (!err && exchange) {
        proto.make_request(id, seq++, req);
        err = co_await write_request(req);
        if (rt.hard) break;
        if (!err) {
          auto r = co_await read_reply(req);
          if (rt.hard) break;
          if (r.error) {
            err = r.error;
          } else if (proto.goodbye().empty()) {
            finish(req, r, t0);
          } else {
            // The session's close is part of the request: count it once that is done.
            err = judge(req, r);
            if (!err && !r.last) err = co_await say_goodbye();
            if (rt.hard) break;
            if (!err) sh.count_ok(ns_between(t0, clock_type::now()));
          }
        }
      } else if (!err) {
        sh.count_ok(ns_between(t0, clock_type::now()));
      }
      if (err) sh.count_error(*err);
      close_socket();
    }
  }

  // datagram, pipeline 1: one datagram out, one back.
  task<void> run_datagram() {
    rbuf.resize(65536);
    while (rt.claim()) {
      const auto intended = interval.count() ? co_await pace() : clock_type::now();
      if (rt.hard) break;
      if (!open) {
        auto err = co_await connect();
        if (err) {
          sh.count_error(*err);
          co_await backoff();
          continue;
        }
      }
      proto.make_request(id, seq++, req);
      const auto t0 = interval.count() ? intended : clock_type::now();
      arm();
      auto [sec, sent] = co_await dgram.async_send(asio::buffer(req), use_tuple);
      disarm();
      if (rt.hard) break;
      sh.res.bytes_sent += sent;
      if (!sec) {
        arm();
        auto [rec, got] = co_await dgram.async_receive(asio::buffer(rbuf), use_tuple);
        disarm();
        if (rt.hard) break;
        if (!rec) {
          sh.res.bytes_received += got;
          if (rt.cfg.verify && !proto.matches(req, std::string_view(rbuf.data(), got)))
            sh.count_error(error_kind::mismatch);
          else
            sh.count_ok(ns_between(t0, clock_type::now()));
          continue;
        }
        sh.count_error(classify(rec, timed_out));
      } else {
        sh.count_error(classify(sec, timed_out));
      }
      close_socket();
    }
  }

  // persistent, pipeline N: a writer keeps up to N requests in flight (the channel is the
  // window), a reader matches replies in order. The first failure ends both; every request
  // already taken is counted with that failure's kind.
  task<void> run_pipelined() {
    using namespace asio::experimental::awaitable_operators;
    while (rt.claim()) {
      if (rt.hard) break;
      auto err = co_await connect();
      if (rt.hard) break;
      if (err) {
        sh.count_error(*err);
        co_await backoff();
        continue;
      }
      channel<inflight> ch(rt.cfg.pipeline - 1);
      window = &ch;
      std::optional<error_kind> failure;
      co_await (writer(ch, failure) && reader(ch, failure));
      window = nullptr;
      close_socket();
      if (!failure) break;  // the writer ran out of tickets
    }
  }

  void fail(channel<inflight>& ch, std::optional<error_kind>& failure, error_kind k) {
    if (!failure) failure = k;
    std::error_code ignored;
    stream.close(ignored);  // wakes the other side
    ch.close();
  }

  // Starts with the ticket claimed by run_pipelined().
  task<void> writer(channel<inflight>& ch, std::optional<error_kind>& failure) {
    bool have_ticket = true;
    for (;;) {
      if (!have_ticket && (failure || !rt.claim())) break;
      have_ticket = false;
      const auto intended = interval.count() ? co_await pace() : clock_type::now();
      if (rt.hard) co_return;
      if (failure) {
        sh.count_error(*failure);
        break;
      }
      inflight f;
      proto.make_request(id, seq++, f.request);
      f.t0 = interval.count() ? intended : clock_type::now();
      req = f.request;
      auto ec = co_await ch.push(std::move(f));
      if (rt.hard) co_return;
      if (ec) {  // the reader failed meanwhile
        sh.count_error(failure.value_or(error_kind::other));
        break;
      }
      auto err = co_await write_request(req);
      if (rt.hard) co_return;
      if (err) {
        fail(ch, failure, *err);
        break;
      }
    }
    ch.close();  // the reader drains what is in flight, then ends
  }

  task<void> reader(channel<inflight>& ch, std::optional<error_kind>& failure) {
    for (;;) {
      auto next = co_await ch.pop();
      if (rt.hard || !next) co_return;
      inflight& f = *next;
      if (failure) {
        sh.count_error(*failure);
        continue;
      }
      auto r = co_await read_reply(f.request);
      if (rt.hard) co_return;
      if (r.error) {
        // After the writer failed, the read only saw the socket being closed.
        const auto kind = failure.value_or(*r.error);
        sh.count_error(kind);
        fail(ch, failure, kind);
        continue;
      }
      finish(f.request, r, f.t0);
    }
  }

  // persistent, --pipeline N in rounds (mode::pipeline_rounds(), redis-benchmark -P): the
  // round's requests go out in one write, then its replies are read in order, and only then
  // does the next round start. Each request counts on its own, its latency running from the
  // round's send (with --rate: from its own intended time) to its own reply. A failure
  // fails the rest of the round with the same kind and the next round reconnects.
  task<void> run_rounds() {
    const unsigned n = rt.cfg.pipeline;
    const bool defer_reads = sh.conn_ids.size() > 1;
    std::vector<std::string> reqs(n);
    std::vector<clock_type::time_point> t0(n);
    std::string batch;
    auto last = clock_type::now();
    for (;;) {
      unsigned k = 0;
      while (k < n && rt.claim(last)) ++k;
      if (k == 0 || rt.hard) co_return;
      if (!open) {
        auto err = co_await connect();
        if (rt.hard) co_return;
        if (err) {
          for (unsigned i = 0; i < k; ++i) sh.count_error(*err);
          co_await backoff();
          last = clock_type::now();
          continue;
        }
      }
      batch.clear();
      for (unsigned i = 0; i < k; ++i) {
        if (interval.count()) t0[i] = co_await pace();
        proto.make_request(id, seq++, reqs[i]);
        batch += reqs[i];
      }
      if (rt.hard) co_return;
      const auto sent = clock_type::now();
      if (!interval.count()) std::fill_n(t0.begin(), k, sent);
      auto err = co_await write_request(batch);
      if (rt.hard) co_return;
      // As in run_sequential(): let the other connections send first, so the replies are
      // usually there when this one reads.
      if (!err && defer_reads) {
        co_await sh.yield_to_others();
        if (rt.hard) co_return;
      }
      unsigned i = 0;
      for (; !err && i < k; ++i) {
        auto r = co_await read_reply(reqs[i]);
        if (rt.hard) co_return;
        if (r.error) {
          err = r.error;
          break;
        }
        last = finish(reqs[i], r, t0[i]);
        if (r.last) {  // the peer closes: what the round still waits for is cut short
          close_socket();
          err = error_kind::short_read;
        }
      }
      if (err) {
        for (; i < k; ++i) sh.count_error(*err);
        close_socket();
        last = clock_type::now();
      }
    }
  }

  // Multiplexed (mode::open_mux(), HTTP/2): one session per connection keeps up to
  // --pipeline requests in flight; replies end in any order and each frees its slot for the
  // next request. One coroutine: submit what the window allows, write what the session has
  // to send, read, feed, count what finished. A failure ends the session and counts every
  // request still in it with that failure's kind; the next session reconnects.
  task<void> run_mux() {
    const std::size_t window_size = rt.cfg.pipeline;
    std::vector<clock_type::time_point> t0(window_size);
    std::vector<std::size_t> free_slots;
    std::vector<mux_session::done> finished_now;
    std::string out;
    bool have_ticket = false;
    // Replies of many streams arrive together: read in large slices.
    rbuf.resize(std::max<std::size_t>(rbuf.size(), 65536));
    while (!rt.hard) {
      if (!have_ticket && !rt.claim()) break;
      have_ticket = true;
      auto err = co_await connect();
      if (rt.hard) break;
      if (err) {
        have_ticket = false;
        sh.count_error(*err);
        co_await backoff();
        continue;
      }
      auto ses = proto.open_mux(id);
      free_slots.clear();
      for (std::size_t i = window_size; i-- > 0;) free_slots.push_back(i);
      std::size_t in_flight = 0;
      std::optional<error_kind> failure;
      // Counts the requests the session finished; `reuse`: their slots take new ones.
      auto count_finished = [&](bool reuse) {
        finished_now.clear();
        ses->take_done(finished_now);
        const auto now = clock_type::now();
        for (const auto& d : finished_now) {
          if (d.status >= 100 && d.status < 600) ++sh.res.status[static_cast<std::size_t>(d.status / 100 - 1)];
          if (d.error)
            sh.count_error(*d.error);
          else
            sh.count_ok(ns_between(t0[d.tag], now));
          if (reuse) free_slots.push_back(d.tag);
          --in_flight;
        }
      };
      for (;;) {
        // Fill the window: the first request uses the ticket claimed above.
        while (!free_slots.empty() && ses->usable() && (have_ticket || rt.claim())) {
          have_ticket = false;
          const auto slot = free_slots.back();
          free_slots.pop_back();
          t0[slot] = clock_type::now();
          ++in_flight;
          ses->submit(seq++, slot);
        }
        out.clear();
        if (!ses->output(out)) failure = error_kind::mismatch;
        if (!failure && !out.empty()) {
          const std::string* wire = &out;
          if (tls) {
            cipher.clear();
            if (!tls->encrypt(out, cipher)) failure = error_kind::other;
            wire = &cipher;
          }
          if (!failure) failure = co_await write_request(*wire);
          if (rt.hard) co_return;
        }
        // Count what finished (also requests the session refused at submit).
        count_finished(true);
        if (failure) break;
        if (in_flight == 0) {
          if (ses->usable() && !rt.no_more.load(std::memory_order_relaxed)) continue;
          break;
        }
        if (!ses->usable() && !ses->why().empty()) {
          failure = error_kind::mismatch;
          break;
        }
        // Decrypted bytes left over from the handshake go first.
        if (plain.empty()) {
          make_room();
          if (auto rerr = co_await read_more({})) {
            failure = rerr;
            break;
          }
          if (rt.hard) co_return;
          const std::string_view got(rbuf.data() + rbeg, rend - rbeg);
          if (tls) {
            if (!tls->decrypt(got, plain)) failure = error_kind::reset;
          } else if (!ses->feed(got)) {
            failure = error_kind::mismatch;
          }
          rbeg = rend = 0;
        }
        if (!failure && !plain.empty()) {
          if (!ses->feed(plain)) failure = error_kind::mismatch;
          plain.clear();
        }
        if (failure) break;
      }
      sh.res.peak_in_flight = std::max<std::uint64_t>(sh.res.peak_in_flight, ses->peak_in_flight());
      // Whatever finished in the last feed was counted; the rest shares the failure.
      count_finished(false);
      if (failure) {
        for (; in_flight > 0; --in_flight) sh.count_error(*failure);
      }
      // A clean end (no tickets left, or the server's GOAWAY) or a failure: a new
      // connection while tickets last.
      ses.reset();
      close_socket();
    }
  }

  task<void> body() {
    if (proto.multiplexed())
      co_await run_mux();
    else if (proto.pattern() == session::connect_only)
      co_await run_one_shot(false);
    else if (proto.pattern() == session::one_shot)
      co_await run_one_shot(true);
    else if (proto.kind() == transport::datagram)
      co_await run_datagram();
    else if (rt.cfg.pipeline > 1 && proto.pipeline_rounds())
      co_await run_rounds();
    else if (rt.cfg.pipeline > 1)
      co_await run_pipelined();
    else
      co_await run_sequential();
    finished = true;
    watchdog.cancel();
    close_socket();
  }

  task<void> run() {
    using namespace asio::experimental::awaitable_operators;
    co_await (body() && watch());
  }
};

void shard::abort_all() {
  aborted = true;
  for (auto* c : conns) c->abort();
}

task<void> shard::run() {
  wait_group wg;
  std::vector<std::unique_ptr<connection>> list;
  for (auto id : conn_ids) list.push_back(std::make_unique<connection>(*this, id));
  for (auto& c : list) conns.push_back(c.get());
  if (rt.hard) abort_all();
  for (auto& c : list) {
    wg.add();
    spawn(ex, [this, &wg, c = c.get()]() -> task<void> {
      try {
        co_await c->run();
      } catch (const std::exception&) {
        count_error(error_kind::other);  // never expected; keeps the run bounded
      }
      wg.done();
    }, "bench connection");
  }
  // With -d, whatever is still in flight after the grace period is cancelled.
  auto guard = std::make_shared<asio::steady_timer>(ex);
  if (rt.hard_deadline != clock_type::time_point::max()) {
    guard->expires_at(rt.hard_deadline);
    spawn(ex, [this, guard]() -> task<void> {
      auto [ec] = co_await guard->async_wait(use_tuple);
      if (!ec) {
        rt.hard = true;
        abort_all();
      }
    }, "bench deadline");
  }
  co_await wg.wait();
  guard->cancel();
  conns.clear();
}

}  // namespace

// -- runner::impl -------------------------------------------------------------------------

runner::impl::impl(settings s) : cfg(std::move(s)) {
  if (auto err = validate(cfg); !err.empty()) throw std::invalid_argument(err);
  proto = make_mode(cfg);
  const auto& t = cfg.server;
  if (t.tls) tls = std::make_unique<tls_client_context>(proto->alpn());
  if (t.kind == scheme::unix_stream) {
    stream_ep = asio::local::stream_protocol::endpoint(t.path);
    return;
  }
  asio::io_context tmp;
  std::error_code ec;
  if (t.kind == scheme::tcp) {
    asio::ip::tcp::resolver res(tmp);
    auto found = res.resolve(t.host, std::to_string(t.port), ec);
    if (ec || found.empty()) throw std::invalid_argument("cannot resolve " + t.host);
    stream_ep = found.begin()->endpoint();
  } else {
    asio::ip::udp::resolver res(tmp);
    auto found = res.resolve(t.host, std::to_string(t.port), ec);
    if (ec || found.empty()) throw std::invalid_argument("cannot resolve " + t.host);
    dgram_ep = found.begin()->endpoint();
  }
}

void runner::impl::begin() {
  if (started.exchange(true)) throw std::logic_error("bench::runner: run only once");
  start = clock_type::now();
  tickets = static_cast<std::int64_t>(cfg.requests);
  if (cfg.requests == 0) {
    deadline = start + cfg.duration;
    const auto grace = std::min<clock_type::duration>(cfg.timeout, std::chrono::seconds(1));
    hard_deadline = deadline + grace;
  }
}

void runner::impl::enter(shard* s) {
  std::lock_guard lock(mu);
  live.push_back(s);
}

void runner::impl::leave(shard* s) {
  std::lock_guard lock(mu);
  live.erase(std::remove(live.begin(), live.end(), s), live.end());
}

void runner::impl::stop() {
  std::lock_guard lock(mu);
  interrupted = true;
  no_more = true;
  hard = true;
  for (auto* s : live) asio::post(s->ex, [s] { s->abort_all(); });
}

progress runner::impl::snapshot() const {
  progress p;
  std::lock_guard lock(mu);
  for (auto* s : live) {
    p.requests += s->done.load(std::memory_order_relaxed);
    p.errors += s->failed.load(std::memory_order_relaxed);
  }
  if (started) p.elapsed_s = std::chrono::duration<double>(clock_type::now() - start).count();
  return p;
}

// -- runner -------------------------------------------------------------------------------

runner::runner(settings s) : impl_(std::make_unique<impl>(std::move(s))) {}
runner::~runner() = default;

const settings& runner::config() const noexcept { return impl_->cfg; }
void runner::stop() { impl_->stop(); }
progress runner::snapshot() const { return impl_->snapshot(); }

results runner::run(const std::function<void(const progress&)>& on_tick,
                    std::chrono::milliseconds tick) {
  auto& rt = *impl_;
  rt.begin();
  const unsigned n = std::max(1u, std::min(rt.cfg.threads, rt.cfg.connections));
  std::vector<std::unique_ptr<asio::io_context>> loops;
  std::vector<std::unique_ptr<shard>> shards;
  for (unsigned i = 0; i < n; ++i) {
    // Every socket and timer of a shard is only touched on its own loop thread (stop()
    // posts there), so the reactor's per-descriptor locks can go; posting stays safe.
    loops.push_back(std::make_unique<asio::io_context>(ASIO_CONCURRENCY_HINT_UNSAFE_IO));
    std::vector<std::uint64_t> ids;
    for (unsigned c = i; c < rt.cfg.connections; c += n) ids.push_back(c);
    shards.push_back(std::make_unique<shard>(rt, loops.back()->get_executor(), std::move(ids)));
    rt.enter(shards.back().get());
  }
  std::mutex done_mu;
  std::condition_variable done_cv;
  unsigned finished = 0;
  std::vector<std::thread> threads;
  for (unsigned i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      auto* sh = shards[i].get();
      spawn(*loops[i], [sh]() -> task<void> { co_await sh->run(); }, "bench shard");
      loops[i]->run();
      std::lock_guard lock(done_mu);
      ++finished;
      done_cv.notify_all();
    });
  }
  {
    std::unique_lock lock(done_mu);
    while (finished < n) {
      done_cv.wait_for(lock, tick);
      if (finished < n && on_tick) {
        lock.unlock();
        on_tick(rt.snapshot());
        lock.lock();
      }
    }
  }
  for (auto& t : threads) t.join();
  const auto end = clock_type::now();
  results out;
  for (auto& s : shards) {
    rt.leave(s.get());
    out.merge(s->res);
  }
  out.duration_s = std::chrono::duration<double>(end - rt.start).count();
  out.interrupted = rt.interrupted;
  return out;
}

task<results> runner::run_here() {
  auto& rt = *impl_;
  auto ex = co_await asio::this_coro::executor;
  rt.begin();
  std::vector<std::uint64_t> ids;
  for (unsigned c = 0; c < rt.cfg.connections; ++c) ids.push_back(c);
  shard sh(rt, ex, std::move(ids));
  rt.enter(&sh);
  co_await sh.run();
  rt.leave(&sh);
  results out;
  out.merge(sh.res);
  out.duration_s = std::chrono::duration<double>(clock_type::now() - rt.start).count();
  out.interrupted = rt.interrupted;
  co_return out;
}

// -- validation ---------------------------------------------------------------------------

std::string validate(const settings& s) {
  auto m = make_mode(s);
  if (!m) {
    std::string names;
    for (auto& i : mode_list()) names += (names.empty() ? "" : ", ") + std::string(i.name);
    return "unknown mode '" + s.mode + "' (" + names + ")";
  }
  if (!m->accepts(s.server))
    return "mode " + s.mode + " does not run over " + s.server.url;
  if (s.requests == 0 && s.duration.count() <= 0) return "give -n REQUESTS or -d DURATION";
  if (s.requests > 0 && s.duration.count() > 0) return "give either -n or -d, not both";
  if (s.connections < 1) return "-c must be at least 1";
  if (s.threads < 1) return "-t must be at least 1";
  if (s.pipeline < 1) return "--pipeline must be at least 1";
  if (s.pipeline > 65536) return "--pipeline must be at most 65536";
  if (s.size < 1 && s.mode != "connect") return "--size must be at least 1";
  if (s.size > (64u << 20)) return "--size must be at most 64 MiB";
  if (s.rate < 0) return "--rate must not be negative";
  if (s.timeout.count() <= 0) return "--timeout must be positive";
  return m->check(s);
}

}  // namespace swactor::bench
