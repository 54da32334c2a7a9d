#pragma once
// A bench mode is the protocol half of a load test: what a request looks like, when a
// reply is complete and whether it is right. The runner owns sockets, timeouts, pacing,
// pipelining and statistics. One mode = one file (mode_*.cpp) plus one line in the table
// in mode.cpp. Modes are immutable after construction and shared by all threads.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "results.hpp"
#include "settings.hpp"

namespace swactor::bench {

enum class transport {
  stream,    // TCP or Unix stream: replies are cut out of a byte stream by reply_size()
  datagram,  // UDP: one datagram is one reply
};

enum class session {
  persistent,    // connect once, many exchanges (reconnect after an error)
  one_shot,      // connect, one exchange, close: per request
  connect_only,  // connect and close: the request is the connection itself
};

// A multiplexed session (HTTP/2): one per connection, sans-I/O. Many requests are in
// flight at once and their replies end in any order, so the runner cannot cut replies out
// of the byte stream; the session does, and reports each finished exchange by its tag.
class mux_session {
 public:
  virtual ~mux_session() = default;

  struct done {
    std::size_t tag = 0;  // as given to submit()
    int status = 0;       // the reply's status, 0 = none arrived
    std::optional<error_kind> error;  // reset, refused or malformed: counted as this kind
  };

  // Queues request `seq` under `tag` (the runner's slot for its start time).
  virtual void submit(std::uint64_t seq, std::size_t tag) = 0;
  // Bytes from the peer. false: a session-level protocol error (why() says which).
  virtual bool feed(std::string_view in) = 0;
  // Appends what is to be sent to `out`. false: a session-level error.
  virtual bool output(std::string& out) = 0;
  // Moves the exchanges finished since the last call into `out` (appended).
  virtual void take_done(std::vector<done>& out) = 0;
  // false once the session cannot carry more requests (the peer sent GOAWAY, or an error).
  virtual bool usable() const = 0;
  virtual std::string why() const = 0;
  // The most requests that were on the wire at once (sent, not yet answered).
  virtual std::size_t peak_in_flight() const = 0;
};

class mode {
 public:
  virtual ~mode() = default;

  virtual std::string_view name() const = 0;
  virtual transport kind() const { return transport::stream; }
  virtual session pattern() const { return session::persistent; }
  // Whether the mode runs over this -s target (http:// targets are for the http modes,
  // redis:// ones for the redis mode).
  virtual bool accepts(const target& t) const {
    return !t.http && !t.tls && !t.redis && !t.websocket && (t.kind == scheme::tcp || t.kind == scheme::unix_stream);
  }
  // Settings this mode cannot honour (empty = fine), e.g. --pipeline with one_shot.
  virtual std::string check(const settings&) const { return {}; }

  // Request number `seq` of connection `conn`, written into `out` (cleared first).
  // Different (conn, seq) give different bytes so a stale or misrouted reply is caught.
  virtual void make_request(std::uint64_t conn, std::uint64_t seq, std::string& out) const = 0;

  // Stream modes: the size of the complete reply at the front of `in` (to `request`),
  // 0 while more bytes are needed, -1 when `in` cannot start a valid reply.
  virtual std::ptrdiff_t reply_size(std::string_view in, std::string_view request) const = 0;

  // What cut_reply() found at the front of the buffer.
  struct cut {
    std::ptrdiff_t size = 0;  // as reply_size(): > 0 whole, 0 more bytes needed, -1 invalid
    int status = 0;           // the reply's status (HTTP: 100..599), 0 = none
    bool last = false;        // the peer closes the connection after this reply
    bool failed = false;      // a whole, well-formed reply that reports a failure (a RESP
                              // error): counted as error_kind::server_error, not ok
  };
  // The form of reply_size() the runner calls, for protocols whose replies say more than
  // their size. `at_close`: the peer closed the connection with `in` (not empty) still
  // unconsumed; the reply the close completes (an HTTP body without a length), or size -1
  // (cut short). Default: reply_size(), and a close cuts any reply short.
  virtual cut cut_reply(std::string_view in, std::string_view request, bool at_close) const {
    if (at_close) return {-1};
    return {reply_size(in, request)};
  }
  // Whether cut_reply() reports statuses (the results then count them by class).
  virtual bool has_status() const { return false; }

  // --pipeline N as rounds (redis-benchmark -P): N requests go out in one write, all N
  // replies are read, then the next round. false: a window of N requests in flight, each
  // written as soon as a slot frees up.
  virtual bool pipeline_rounds() const { return false; }

  // Optional copy-free form of make_request(), for requests that are a short head
  // followed by bytes the mode keeps alive (a payload pattern): writes the head into
  // `head` and returns the rest, so that head + tail is exactly what make_request() would
  // write. Only for modes whose reply_size() looks at request.size() alone; the runner uses
  // it without --verify (which compares bytes). nullopt: not supported.
  virtual std::optional<std::string_view> split_request(std::uint64_t, std::uint64_t,
                                                        std::string&) const {
    return std::nullopt;
  }

  // An opening exchange once per connection, right after the connect and before any
  // request (WebSocket's upgrade). The runner treats it as part of connecting: a failure is
  // error_kind::handshake and the connection is dropped. Writes the bytes to send into
  // `out` and what handshake_reply() checks the answer against into `state`; false: the
  // mode has no handshake.
  virtual bool make_handshake(std::uint64_t /*conn*/, std::string& /*out*/,
                              std::string& /*state*/) const {
    return false;
  }
  // The size of the whole handshake answer at the front of `in`, 0 while more bytes are
  // needed, -1 when it refuses the session (`why` says how, for the report).
  virtual std::ptrdiff_t handshake_reply(std::string_view /*in*/, std::string_view /*state*/,
                                         std::string& why) const {
    why = "no handshake";
    return -1;
  }
  // one_shot sessions: bytes that end the session after the exchange (a WebSocket close
  // frame). The runner sends them and waits for goodbye_reply() or the peer's EOF before
  // the request counts; empty: just close.
  virtual std::string_view goodbye() const { return {}; }
  // The size of the peer's answer to goodbye() at the front of `in`: as reply_size().
  virtual std::ptrdiff_t goodbye_reply(std::string_view in) const { return in.empty() ? 0 : -1; }

  // Multiplexed modes: a fresh session for connection `conn`, used instead of
  // make_request() and cut_reply(); --pipeline is then the streams in flight per connection.
  // nullptr: not multiplexed.
  virtual bool multiplexed() const { return false; }
  virtual std::unique_ptr<mux_session> open_mux(std::uint64_t /*conn*/) const { return nullptr; }
  // TLS targets (https://): the ALPN protocol the mode needs the server to choose ("h2").
  virtual std::string_view alpn() const { return {}; }

  // --verify: whether `reply` is the right answer to `request` (echo: identical bytes).
  virtual bool matches(std::string_view request, std::string_view reply) const {
    return request == reply;
  }
};

// The mode named settings.mode configured from `s`, or nullptr when there is none.
std::unique_ptr<mode> make_mode(const settings& s);

struct mode_info {
  std::string_view name;
  std::string_view help;
};
std::vector<mode_info> mode_list();

// Request payloads: `size` printable bytes that encode (conn, seq) and never contain a
// byte of `avoid` (e.g. the EOF delimiter). Built by memcpy from a precomputed pattern:
// the load tester must not spend its time making payloads.
class payload {
 public:
  payload(std::size_t size, std::string_view avoid = {});
  bool usable() const noexcept { return radix_ > 0; }  // false if `avoid` excludes every byte
  void fill(std::string& out, std::uint64_t conn, std::uint64_t seq) const;
  void append(std::string& out, std::uint64_t conn, std::uint64_t seq) const;
  // The same bytes as fill() in two parts: the first (at most 12) bytes, which encode
  // (conn, seq), written into `head`; the rest returned as a view into the pattern.
  std::string_view split(std::string& head, std::uint64_t conn, std::uint64_t seq) const;

 private:
  std::size_t size_;
  std::string alphabet_;
  std::size_t radix_ = 0;
  std::string pattern_;  // alphabet repeated to size + radix bytes
};

// Raw echo over a stream: a reply is complete once request.size() bytes arrived.
class raw_echo_mode : public mode {
 public:
  explicit raw_echo_mode(const settings& s) : payload_(s.size) {}
  void make_request(std::uint64_t conn, std::uint64_t seq, std::string& out) const override {
    payload_.fill(out, conn, seq);
  }
  std::ptrdiff_t reply_size(std::string_view in, std::string_view request) const override {
    return in.size() >= request.size() ? static_cast<std::ptrdiff_t>(request.size()) : 0;
  }
  std::optional<std::string_view> split_request(std::uint64_t conn, std::uint64_t seq,
                                                std::string& head) const override {
    if (!payload_.usable()) return std::nullopt;
    return payload_.split(head, conn, seq);
  }

 private:
  payload payload_;
};

}  // namespace swactor::bench
