#pragma once
// Where connections live on one loop: the base-mode worker and each process-mode reactor
// thread own one conn_host. It registers accepted sockets as connections, counts them,
// closes idle ones (heartbeat), serves datagram listeners, and hands everything that
// happens to a connection_sink: the worker's local sink runs module handlers, the
// reactor's sink sends typed messages to workers. Nothing here knows which mode it is in.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <asio/generic/datagram_protocol.hpp>
#include <asio/generic/stream_protocol.hpp>
#include <asio/io_context.hpp>

#include "net/connection.hpp"
#include "swactor/actors/app_config.hpp"
#include "swactor/actors/server_state.hpp"
#include "swactor/core/coro.hpp"

namespace swactor::net {

class tls_store;
class tls_handshake;

class connection_sink {
 public:
  // A connection was registered (before its first event).
  virtual void on_open(connection& c) = 0;
  // One decoded event; the view is valid during the call only. Return false to stop
  // reading this connection until c.resume() (the look-ahead bound).
  virtual bool on_event(connection& c, const protocols::event& e) = 0;
  // The codec's look-ahead hint (protocols::event_sink::on_ahead): events about to come.
  virtual void on_ahead(connection& c, std::span<const protocols::event> upcoming) {
    (void)c;
    (void)upcoming;
  }
  // Whether on_event takes events in typed form (protocols::event::object): a sink in the
  // process that handles them; a sink that forwards bytes says no.
  virtual bool takes_objects() const noexcept { return false; }
  // The connection is gone (once per connection, after it was counted).
  virtual void on_closed(connection& c, std::string_view reason) = 0;
  // The connection's queued output fell below half its limit after watch_drain().
  virtual void on_drained(connection& c) { (void)c; }
  // A datagram on a datagram listener; `from` is "ip:port", "[v6]:port" or a path.
  virtual void on_datagram(int listener, std::string from, std::string_view data) = 0;

 protected:
  ~connection_sink() = default;
};

class conn_host {
 public:
  // `counters` is this process's (or reactor's) own slot: only this loop writes it.
  conn_host(asio::io_context& io, const app_config& app, server_state& state, conn_counters& counters,
            connection_sink& sink);
  ~conn_host();
  conn_host(const conn_host&) = delete;
  conn_host& operator=(const conn_host&) = delete;

  // The TLS contexts of this process's listeners (https://, tls://, wss://); must outlive
  // the host. Without it a TLS listener's connections are refused.
  void set_tls(const tls_store* store) noexcept { tls_ = store; }

  // -- connections ---------------------------------------------------------------------
  // Registers an accepted socket (a non-blocking descriptor, owned from here on; accepted
  // on this loop or, in process mode, the acceptor's) of listener `listener` as session
  // `id` and starts it. On a TLS listener the handshake runs first (bounded by its
  // handshake_timeout): the session exists, and the sink hears of it, only once it
  // succeeded; a failed one is one log line.
  void adopt(int fd, int listener, std::uint64_t id, std::string remote);
  // Same over any transport (tests use an in-memory one); `remote` as info() shows it.
  std::shared_ptr<connection> adopt(std::unique_ptr<transport> t, int listener, std::uint64_t id,
                                    std::string remote);
  connection* find(std::uint64_t id) const {
    // (A closed one may still be the decoding one: the map says whether it is still here.)
    if (decoding_ && decoding_->id() == id && !decoding_->closed()) return decoding_;
    return find_in_map(id);
  }
  // The connection whose input is being decoded (its handlers' replies usually go to it:
  // find() then skips the map), or null.
  connection* decoding() const noexcept { return decoding_; }
  void set_decoding(connection* c) noexcept { decoding_ = c; }
  std::size_t size() const noexcept { return conns_.size(); }
  std::size_t handshaking() const noexcept { return handshakes_.size(); }
  std::vector<std::uint64_t> ids() const;

  std::error_code send(std::uint64_t id, std::string_view data, std::uint8_t kind = 0);
  std::error_code close(std::uint64_t id, bool reset);
  std::error_code bind(std::uint64_t id, std::uint64_t uid);
  // Graceful close of every connection (queued output is written first).
  void close_all();
  // Tells every connection whose protocol can say so that the server is going away (see
  // connection::go_away); returns how many were told.
  std::size_t go_away_all();
  void abort_all();

  // -- groups (WebSocket push to many) ----------------------------------------------------
  // Membership lives with the connection, on the loop that holds it, so it survives a
  // worker restart in process mode and ends with the connection.
  // The connection is now a WebSocket served by module instance `module`: it is in the
  // "every WebSocket" group ("") from now on.
  std::error_code set_websocket(std::uint64_t id, int module);
  // Errors: session_not_found. Joining twice / leaving a group it is not in is no error.
  std::error_code join(std::uint64_t id, std::string_view group);
  std::error_code leave(std::uint64_t id, std::string_view group);
  // A typed reply to each member on this loop ("" = every WebSocket); returns how many
  // took it (a member whose output is full loses this one, as its push would).
  std::size_t broadcast(std::string_view group, std::string_view data, std::uint8_t kind);

  // -- datagrams -----------------------------------------------------------------------
  // Serves the (inherited) datagram socket `fd` of listener `listener`; false if unusable.
  bool serve_datagrams(int listener, int fd);
  // listener -1: the first datagram listener of the address's family.
  std::error_code sendto(const std::string& address, std::string_view data, int listener);
  void stop_datagrams();

  // -- heartbeat -----------------------------------------------------------------------
  // Closes connections idle for their listener's heartbeat_idle_time; checks every
  // heartbeat_check_interval (default idle / 2). No coroutine when no listener wants it.
  void start_heartbeat();
  void stop_heartbeat();

  // -- used by connection ----------------------------------------------------------------
  connection_sink& sink() noexcept { return sink_; }
  asio::io_context& io() noexcept { return io_; }
  char* read_buffer() noexcept { return read_buf_.get(); }
  std::size_t read_buffer_size() const noexcept { return read_buf_size_; }
  void on_connection_closed(connection& c, bool aborted, std::string_view reason);
  // An HTTP/2 stream opened (its request) or was reset before its response ended.
  void count_stream(bool reset) noexcept { bump(reset ? counters_.streams_reset : counters_.streams); }
  const app_config& app() const noexcept { return app_; }
  // Typed replies that handlers sent from inside a connection's decode() (inline, base
  // mode), encoded once decode() returns. One connection decodes at a time on a loop, so
  // one set of buffers serves them all and an idle connection holds none.
  struct deferred_reply {
    std::uint8_t kind;
    std::size_t offset, size;  // into data
  };
  struct deferred_set {
    std::vector<deferred_reply> replies;
    std::string data;
    std::size_t unframed = 0;  // replies not framed yet: while 0, `data` is the wire
    void clear() noexcept {
      replies.clear();
      data.clear();
      unframed = 0;
    }
  };
  deferred_set& deferred_replies() noexcept { return deferred_; }
  // The loop's buffer for encoding one reply; null while it is in use.
  std::string* take_encode_buffer() noexcept {
    if (encode_busy_) return nullptr;
    encode_busy_ = true;
    return &encode_buf_;
  }
  void return_encode_buffer() noexcept { encode_busy_ = false; }

  // -- corked writes -------------------------------------------------------------------
  // Between cork() and uncork() a connection's first write goes out at once (nothing to
  // join it with yet, no copy) unless its last period had several; its later ones are
  // queued, and uncork() writes each such queue in one gathered write (at most 64 KiB is
  // held back). The process-mode reactor corks while it hands over one batch of a
  // worker's replies, so ten replies to one connection cost one system call, not ten.
  // Nested calls count. The period's number tells a connection whether it already wrote
  // in this one (8 bits: a wrap costs one held write).
  void cork() noexcept {
    if (corked_++ == 0 && ++cork_period_ == 0) cork_period_ = 1;
  }
  void uncork();
  bool corked() const noexcept { return corked_ > 0; }
  std::uint8_t cork_period() const noexcept { return cork_period_; }
  void note_corked(std::shared_ptr<connection> c) { corked_conns_.push_back(std::move(c)); }

 private:
  void handshake(int fd, int listener, std::uint64_t id, std::string remote);
  // A connection that never became a session (failed handshake): off the counters.
  void release(int listener, bool aborted);
  void cancel_handshakes();
  task<void> datagram_loop(int listener);
  task<void> heartbeat_loop(duration every);
  task<void> deadline_loop(duration every);

  asio::io_context& io_;
  const app_config& app_;
  server_state& state_;
  conn_counters& counters_;
  std::int32_t pid_;  // owner of this loop's entries in the session registry
  int corked_ = 0;
  std::uint8_t cork_period_ = 0;
  std::vector<std::shared_ptr<connection>> corked_conns_;
  connection_sink& sink_;
  // One read buffer per loop: a connection reads into it and keeps only what its codec
  // did not consume, so an idle connection holds no buffer.
  std::size_t read_buf_size_ = 64 * 1024;
  std::unique_ptr<char[]> read_buf_;
  deferred_set deferred_;
  std::string encode_buf_;
  bool encode_busy_ = false;
  std::unordered_map<std::uint64_t, std::shared_ptr<connection>> conns_;
  connection* decoding_ = nullptr;
  connection* find_in_map(std::uint64_t id) const;
  struct name_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, std::unordered_set<std::uint64_t>, name_hash, std::equal_to<>> groups_;
  std::unordered_map<std::uint64_t, std::vector<std::string>> member_of_;  // only connections in a group
  std::size_t full_missed_ = 0;  // broadcasts lost to full outputs since the last log line
  std::chrono::steady_clock::time_point last_full_log_{};
  const tls_store* tls_ = nullptr;
  std::unordered_map<std::uint64_t, std::shared_ptr<tls_handshake>> handshakes_;  // by session id
  std::vector<std::unique_ptr<asio::generic::datagram_protocol::socket>> dgrams_;  // by listener
  coro_handle heartbeat_;
  coro_handle deadlines_;
};

inline std::error_code connection::send(std::string_view data, std::uint8_t kind, bool force) {
  // Raw bytes go out at once unless typed replies of this decode() wait (order): the common
  // echo costs no copy. (queue_bytes() checks the limit; only a codec holds bytes.)
  if (kind == 0 && !closed_ && !close_requested_ && !close_after_decode_ &&
      (!decoding_ || host_.deferred_replies().replies.empty()))
    return queue_bytes(data, force);
  return send_slow(data, kind, force);
}

inline std::error_code connection::queue_bytes(std::string_view data, bool force) {
  if (!out_.empty() || host_.corked() || closed_ || close_requested_ || data.empty())
    return queue_bytes_slow(data, force);
  return write_now(data);
}

}  // namespace swactor::net
