#pragma once
// One client connection of a stream listener, for every server mode: the base-mode worker
// and the process-mode reactor hold the same type (in a conn_host). It owns the transport,
// the protocol codec, the unconsumed input and the bounded output queue:
//
//   transport readable -> read into the loop's buffer -> codec.decode() -> events -> sink
//   send() -> codec.encode() -> direct write, or the output queue when the socket is full
//
// The connection keeps reading while handlers run; the sink bounds that look-ahead by
// pausing it (returning false from on_event) and resuming it later. Single loop: every
// member is called on the loop that owns the transport.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "net/transport.hpp"
#include "swactor/protocols/codec.hpp"

namespace swactor::net {

class conn_host;

class connection final : public io_owner,
                         public std::enable_shared_from_this<connection>,
                         private protocols::event_sink {
 public:
  connection(conn_host& host, std::unique_ptr<transport> t, std::unique_ptr<protocols::stream_codec> c,
             std::uint64_t id, int listener, std::size_t out_limit);
  ~connection();

  // -- identity and what info() reports ------------------------------------------------
  std::uint64_t id() const noexcept { return id_; }
  int listener() const noexcept { return listener_; }
  std::string remote;
  std::uint64_t uid = 0;
  std::int64_t connect_ms = 0;  // unix epoch ms
  std::chrono::steady_clock::time_point last_activity;  // connect, then the last read
  // Unix epoch ms of the last read, 0 = nothing received yet. Derived from last_activity
  // when asked (info()), so the read path reads one clock, not two.
  std::int64_t last_receive_ms() const noexcept;
  // For the sink's own use (the reactor keeps its dispatch state here).
  std::uint64_t sink_tag = 0;
  int sink_worker = -1;
  // The module instance serving this connection as a WebSocket, -1 before an upgrade.
  int ws_module = -1;
  // The drain watcher (watch_drain()): the reactor keeps the worker here.
  int watcher = -1;

 private:
  // Data members are ordered so that the object has no padding: every idle connection
  // pays for it.
  int listener_;

 public:

  // Starts reading (after the host registered the connection and told the sink).
  void start();

  // -- output --------------------------------------------------------------------------
  // Queues a reply of `kind` (0 = raw bytes) through the codec. Errors:
  // server_errc::session_not_found (closed or closing), server_errc::output_buffer_full
  // (the peer does not read; one reply larger than the limit still goes into an empty
  // queue). Only what the socket does not take at once is copied. A typed reply is refused
  // before the codec sees it, never after: a stateful codec (permessage-deflate) must not
  // have encoded what is then dropped. `force` queues past the limit (a last close frame).
  // kind_file (protocols/codec.hpp): a file range the connection writes itself; the file
  // is opened here (errc no_such_file_or_directory, invalid_argument when the range is not
  // inside it; the connection then closes, its response's head being out), and read only
  // as the socket takes bytes. kind_consumed: not a reply but a body acknowledgement for the
  // codec (HTTP/2 flow control), taken whatever is queued.
  // (Defined in conn_host.hpp: its fast path reads the host's kept replies.)
  inline std::error_code send(std::string_view data, std::uint8_t kind = 0, bool force = false);
  // A typed reply (an HTTP/1 response in base mode): the codec writes it without a wire
  // form in between, at once even inside decode() where the codec allows it.
  std::error_code send_object(const protocols::reply_object& r, std::uint8_t kind);
  // Closes once queued output is written; reset = RST now, queued output dropped (what a
  // corked host held back is written first, as it would have been without the cork).
  void close(bool reset);
  // The host uncorked (conn_host::uncork): write what was held back.
  void uncorked();
  // The server is stopping: the codec says so if its protocol can (WebSocket: close 1001).
  // True when it did (the connection then ends by the protocol's handshake or timeout).
  bool go_away();
  // Closes now with a reason (limit, protocol error): counted as aborted.
  void abort(std::string_view reason);
  // The host goes away with the loop: the socket closes without a word to the sink.
  void drop() noexcept;

  // -- reading -------------------------------------------------------------------------
  // Look-ahead control for the sink: resume() reads again after on_event returned false.
  void resume();
  // Stops reading until resume() (a sink that cannot take more now).
  void pause() noexcept {
    sink_paused_ = true;
    set_paused();
  }
  bool paused() const noexcept { return paused_; }
  // Protocol timeouts (the host's sweep): whether the codec's current phase outlived its
  // timeout; a new phase starts being measured at the first sweep that sees it.
  bool deadline_passed(std::chrono::steady_clock::time_point now) noexcept;
  // The phase's timeout passed: the codec's last words (HTTP 408), then close.
  void expire();
  // Whoever answers this connection's requests is gone (process mode: its worker died).
  void abandon();
  // Replaces the codec in place (an Upgrade): bytes after the current event go to the new
  // codec. Call it from the sink's on_event.
  void replace_codec(std::unique_ptr<protocols::stream_codec> c);
  const protocols::stream_codec& codec() const noexcept { return *codec_; }

  // -- state ---------------------------------------------------------------------------
  bool closed() const noexcept { return closed_; }
  int native_handle() const noexcept { return transport_->native_handle(); }
  // What TLS negotiated (null on a plain connection).
  const tls_info* tls() const noexcept { return transport_->tls(); }
  bool aborted() const noexcept { return aborted_; }
  // Output not written yet: queued here, or held by the codec (HTTP/2 flow control).
  std::size_t queued_bytes() const noexcept { return out_bytes_ + codec_->held(); }
  std::size_t buffered_input() const noexcept { return pending_.size(); }
  std::size_t output_limit() const noexcept { return out_limit_; }
  // Whether `size` more bytes behind `waiting` ones are over the limit. Up to half of it
  // waiting, anything goes: a writer woken by a drain (below half) always gets its next
  // piece out, whatever its size, and the output stays under half the limit plus a piece.
  bool over_limit(std::size_t waiting, std::size_t size) const noexcept {
    return waiting > out_limit_ / 2 && waiting + size > out_limit_;
  }
  // Asks for one sink.on_drained() once queued output is below half the limit (streamed
  // replies wait for it). `watcher` is for the sink (the reactor keeps the worker here).
  void watch_drain(int watcher = -1) noexcept {
    watching_ = true;
    this->watcher = watcher;
  }
  bool watching_drain() const noexcept { return watching_; }

 private:
  void on_readable(std::error_code ec) override;
  void on_writable(std::error_code ec) override;
  bool on_event(const protocols::event& e) override;
  void on_ahead(std::span<const protocols::event> upcoming) override;
  bool takes_objects() const noexcept override;

  // Reads what the socket holds now (into the loop's buffer, or after a partial frame), then
  // waits for readiness once the transport is drained.
  void read_ready();
  // The peer ended its side: answer what is owed first (a half-close after the last
  // request), unless a request is cut in the middle; else close.
  void peer_closed();
  void arm_read();
  // This connection for the transport's first wait; null after it (the transport holds it).
  std::shared_ptr<io_owner> owner_ref() {
    if (owner_given_) return nullptr;
    owner_given_ = true;
    return shared_from_this();
  }
  // Runs the codec over `input` (pending_ or a buffer), keeps what it did not consume.
  void consume(std::string_view input, bool input_is_pending);
  std::size_t process(std::string_view input);
  void flush();
  void write_codec_output();
  // Tells a drain watcher once queued output (codec-held included) is below half the limit.
  void check_drained();
  std::error_code send_slow(std::string_view data, std::uint8_t kind, bool force);
  // (Inline, defined in conn_host.hpp: the write of most replies, nothing queued before them.)
  inline std::error_code queue_bytes(std::string_view data, bool force = false);
  std::error_code queue_bytes_slow(std::string_view data, bool force);
  // Writes `data` now, nothing queued before it: most replies fit in the socket buffer
  // (nothing copied); what it did not take is kept (wrote_part).
  std::error_code write_now(std::string_view data) {
    iovec iov{const_cast<char*>(data.data()), data.size()};
    std::error_code ec = no_error;
    auto n = transport_->write_some(&iov, 1, ec);
    if (n == data.size()) return {};
    return wrote_part(data, n, ec);
  }
  // After a write that the socket did not take whole (or that failed).
  std::error_code wrote_part(std::string_view data, std::size_t n, const std::error_code& ec);
  // Queues what the socket did not take; `hold`: until the host uncorks.
  void keep(std::string_view data, bool hold);
  // A kind_file reply: opened, framed by the codec, queued behind what is there.
  std::error_code send_file(std::string_view data);
  // send_file(), and on a failure the connection closes (aborted): the head went out.
  std::error_code send_file_reply(std::string_view data);
  // Writes the front file range: done (it is gone from the queue), blocked (the socket is
  // full), yielded (a burst went out; the rest continues from a posted callback), ended
  // (the connection closed: a write error or a file shorter than announced).
  enum class file_step : std::uint8_t { done, blocked, yielded, ended };
  file_step write_front_file();
  // Encodes one reply (bytes, or `obj` when set) and queues it.
  std::error_code encode_now(std::uint8_t kind, std::string_view data, const protocols::reply_object* obj = nullptr);
  // A kind_consumed note: the codec opens its peer's window; not a reply, never refused.
  std::error_code consumed(std::string_view data);
  // Encodes one reply (bytes, or `obj` when set; and what the codec adds) onto `wire`,
  // swapping in a successor codec.
  void encode_into(std::uint8_t kind, std::string_view data, std::string& wire,
                   const protocols::reply_object* obj = nullptr);
  // Replies made inside decode() wait in the loop's buffer until it returns: room for `size`
  // more beside `queued` (the output limit counts them), keeping one, whether all kept are
  // framed.
  std::error_code room_to_keep(std::size_t queued, std::size_t size);
  void keep_reply(std::uint8_t kind, std::string_view data);
  bool only_framed_kept();
  void finish(bool aborted, std::string_view reason, bool reset = false);
  // After the codec ran or encoded: close when the protocol is done, stop reading while it
  // is blocked (or failed with replies still owed), read again when it unblocks.
  void after_codec();
  void set_paused() noexcept { paused_ = sink_paused_ || codec_blocked_; }
  // Hands the sink the events the codec holds without new input (posted), if any.
  void deliver_held_events();

  conn_host& host_;
  std::unique_ptr<transport> transport_;
  std::unique_ptr<protocols::stream_codec> codec_;
  std::unique_ptr<protocols::stream_codec> retired_codec_;  // alive until its decode() returns
  std::uint64_t id_;
  std::string pending_;              // unconsumed input; empty (no allocation) when idle
  // A file range in the output queue: the descriptor is its own (closed with it).
  struct file_part {
    int fd = -1;
    std::uint64_t offset = 0;
    std::uint64_t remaining = 0;
    bool corked = false;  // the transport is corked until its last byte is out
    file_part() = default;
    file_part(const file_part&) = delete;
    file_part& operator=(const file_part&) = delete;
    ~file_part();
  };
  // Bytes, or (file set, bytes empty) a file range. A queued file range counts as
  // kFileWeight bytes against the output limit: it holds a descriptor, not its bytes.
  struct out_item {
    std::string bytes;
    std::unique_ptr<file_part> file;
  };
  static constexpr std::size_t kFileWeight = 16 * 1024;
  std::vector<out_item> out_;        // output the socket did not take; front_sent_ of out_[0] is gone
  std::size_t front_sent_ = 0;
  std::size_t out_bytes_ = 0;
  std::size_t out_limit_;
  std::chrono::steady_clock::time_point deadline_start_;
  std::uint32_t deadline_epoch_ = 0;
  bool paused_ = false;
  bool waiting_read_ = false;
  bool waiting_write_ = false;
  bool close_requested_ = false;
  bool closed_ = false;
  bool aborted_ = false;
  bool codec_switched_ = false;
  bool decoding_ = false;
  bool close_after_decode_ = false;  // close(false) came from a handler inside decode()
  bool received_ = false;
  bool sink_paused_ = false;    // the sink's look-ahead bound
  bool codec_blocked_ = false;  // the codec takes no input now (or failed)
  bool peer_eof_ = false;       // the peer shut down its side with replies still owed
  bool watching_ = false;
  bool deadline_armed_ = false;
  // Whether a short read drained the transport (a plain socket; not TLS).
  bool short_read_drains_;
  // Rare flags in one byte (an idle connection's size counts).
  bool corked_ : 1 = false;          // has output queued while the host was corked
  bool failure_logged_ : 1 = false;
  // The last corked period brought it several writes (HTTP/2 streams, pipelined commands):
  // this one holds its first write too, so the batch leaves in one write. Cleared by a
  // period with one write.
  bool hold_first_ : 1 = false;
  bool held_more_ : 1 = false;       // a second write was held in this period
  bool owner_given_ : 1 = false;     // the transport holds this connection (its waits' owner)
  std::uint8_t wrote_in_period_ = 0;  // the host's cork period in which it last wrote at once

 public:
  bool worker_paused = false;  // process mode: its worker asked to stop reading (conn_pause)
  bool sink_sticky = false;    // process mode: stays with sink_worker whatever the dispatch mode (Redis)
};

}  // namespace swactor::net
