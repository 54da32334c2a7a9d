#pragma once
// Typed messages between processes: one struct per kind, encoded into the IPC envelope
// (envelope.hpp). Each struct has its own message_type, so decode() dispatches on the type.
//
// Process ids: one server-wide uint32 per process: workers 0..W-1, task workers W..W+T-1,
// user processes after; ipc::no_worker means none.
//
// Header fields carry only their true meaning:
//   session_id  the connection's session (conn_*, group_op), else 0
//   reactor_id  the reactor thread (conn_open, conn_data, conn_closed, datagram_in, drained,
//               conn_writable, conn_adopt)
//   src_worker  the sending process (conn_send, conn_watch, conn_pause, conn_resume, drain,
//               ready, task_*, pipe_message, bus_*, conn_upgrade, group_*)
//   dst_worker  the receiving process (task_*, pipe_message, bus_message)
//   message_id  the task id (task_request, task_result), the request id (bus_message),
//               else 0
//   flags       flag::error on a failed task_result
// Fields a kind does not use are left as message{} has them (no_worker / 0) by encode(), so
// a router may fill them, and are ignored by decode().
//
// Payload layout: integers little-endian of their exact width, bool as one byte 0 or 1,
// str as u32 length + bytes. Kinds with a bulk string keep it first, untouched, so decoding
// from an rvalue takes it without a copy (the fixed fields are read from the end, then the
// payload is shrunk and moved):
//
//   bulk kinds:  [bulk bytes][fields][u32 size of fields]
//   other kinds: [fields]
//
//   kind          type          payload fields (in order)            bulk
//   conn_open     connect       u32 listener, i64 connect_ms, str remote, str local,
//                               bool tls, and when tls: str version, str cipher, str sni,
//                               str alpn, str peer_subject, str peer_fingerprint,
//                               bool resumed                                          -
//   conn_data     receive       u32 listener, u8 kind                data
//   conn_closed   close         u32 listener, bool aborted, str reason    -
//   conn_send     send          u8 kind                              data
//   conn_close    conn_close    bool reset                           -
//   conn_bind     conn_bind     u64 uid                              -
//   datagram_in   packet        u32 listener, str from               data
//   datagram_out  datagram_out  i32 listener, str to                 data
//   drain         drain         (empty)                              -
//   drained       drained       (empty)                              -
//   ready         ready         (empty)                              -
//   stop          stop          str reason                           -
//   task_request  task          u32 module, bool wants_finish        payload
//   task_result   task_result   u32 module                           payload
//   pipe_message  pipe_message  u32 module                           payload
//   conn_watch    conn_watch    (empty)                              -
//   conn_pause    pause         (empty)                              -
//   conn_resume   resume        (empty)                              -
//   conn_writable conn_writable (empty)                              -
//   bus_message   bus           u8 op, u8 status, u8 pick, bool self, u32 src_module,
//                               u32 dst_module, u64 seq, str topic, str tag    data
//   bus_subscription bus_subscribe  u32 module, bool subscribe, str pattern       -
//   conn_upgrade  conn_upgrade  u32 module, str target               -
//   conn_adopt    conn_adopt    u32 listener, u32 module, i64 connect_ms, str remote,
//                               str local, str target, bool tls
//                               [str x6, bool resumed] (as conn_open) -
//   group_op      group_op      bool join, str group                 -
//   group_send    group_send    u8 kind, str group                   data
//
// decode() refuses anything else with errc::bad_message: unknown type, short payload, a
// length past the end, trailing bytes, a bool byte other than 0/1.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "swactor/core/error.hpp"
#include "swactor/ipc/envelope.hpp"

namespace swactor::ipc {

// -- the kinds ------------------------------------------------------------------------------

// reactor -> worker: a connection was accepted.
struct conn_open {
  std::uint64_t session = 0;
  std::uint32_t listener = 0;
  std::uint32_t reactor = 0;
  std::string remote;
  std::int64_t connect_ms = 0;
  std::string local;  // the address the client connected to
  std::string protocol;  // the codec's name when the connection opened (info().protocol)
  // A TLS listener's session: what the reactor's handshake negotiated (info().tls).
  bool tls = false;
  std::string tls_version, tls_cipher, tls_sni, tls_alpn, tls_peer_subject, tls_peer_fingerprint;
  bool tls_resumed = false;
  friend bool operator==(const conn_open&, const conn_open&) = default;
};

// reactor -> worker: one decoded protocol event (kind 0 = a framed message; later protocols
// define other kinds). Bytes: std::string (conn_data), or std::string_view (conn_data_view:
// read in place from a frame, see view_conn_data).
template <class Bytes>
struct basic_conn_data {
  std::uint64_t session = 0;
  std::uint32_t listener = 0;
  std::uint32_t reactor = 0;
  std::uint8_t kind = 0;
  Bytes data;
  friend bool operator==(const basic_conn_data&, const basic_conn_data&) = default;
};
using conn_data = basic_conn_data<std::string>;
using conn_data_view = basic_conn_data<std::string_view>;

// reactor -> worker: a connection closed.
struct conn_closed {
  std::uint64_t session = 0;
  std::uint32_t listener = 0;
  std::uint32_t reactor = 0;
  bool aborted = false;
  std::string reason;
  friend bool operator==(const conn_closed&, const conn_closed&) = default;
};

// worker -> reactor: bytes / a typed reply for a connection (kind 0 = raw bytes); as
// conn_data, conn_send_view reads one in place.
template <class Bytes>
struct basic_conn_send {
  std::uint64_t session = 0;
  std::uint32_t worker = 0;
  std::uint8_t kind = 0;
  Bytes data;
  friend bool operator==(const basic_conn_send&, const basic_conn_send&) = default;
};
using conn_send = basic_conn_send<std::string>;
using conn_send_view = basic_conn_send<std::string_view>;

// worker -> reactor: close a connection (reset: abortive close).
struct conn_close {
  std::uint64_t session = 0;
  bool reset = false;
  friend bool operator==(const conn_close&, const conn_close&) = default;
};

// worker -> reactor: bind a connection to a uid (dispatch mode uid).
struct conn_bind {
  std::uint64_t session = 0;
  std::uint64_t uid = 0;
  friend bool operator==(const conn_bind&, const conn_bind&) = default;
};

// reactor -> worker: a datagram arrived.
struct datagram_in {
  std::uint32_t listener = 0;
  std::uint32_t reactor = 0;
  std::string from;
  std::string data;
  friend bool operator==(const datagram_in&, const datagram_in&) = default;
};

// worker -> reactor: send a datagram (listener -1: any datagram listener of the address
// family of `to`).
struct datagram_out {
  std::int32_t listener = -1;
  std::string to;
  std::string data;
  friend bool operator==(const datagram_out&, const datagram_out&) = default;
};

// worker -> reactor: send conn_writable once the connection's queued output is below half
// its limit (at once if it already is). Streamed replies wait for it: a client that does not
// read holds its writer, not the reactor's memory.
struct conn_watch {
  std::uint64_t session = 0;
  std::uint32_t worker = 0;
  friend bool operator==(const conn_watch&, const conn_watch&) = default;
};

// worker -> reactor: stop / start reading a connection (a streamed request body the
// handler has not caught up with).
struct conn_pause {
  std::uint64_t session = 0;
  std::uint32_t worker = 0;
  friend bool operator==(const conn_pause&, const conn_pause&) = default;
};
struct conn_resume {
  std::uint64_t session = 0;
  std::uint32_t worker = 0;
  friend bool operator==(const conn_resume&, const conn_resume&) = default;
};

// reactor -> worker: the answer to conn_watch (also when the connection is gone).
struct conn_writable {
  std::uint64_t session = 0;
  std::uint32_t reactor = 0;
  friend bool operator==(const conn_writable&, const conn_writable&) = default;
};

// worker -> reactor: send me nothing more.
struct drain {
  std::uint32_t worker = 0;
  friend bool operator==(const drain&, const drain&) = default;
};

// reactor -> worker: everything before this was sent.
struct drained {
  std::uint32_t reactor = 0;
  friend bool operator==(const drained&, const drained&) = default;
};

// process -> master: serving.
struct ready {
  std::uint32_t process = 0;
  friend bool operator==(const ready&, const ready&) = default;
};

// master -> process: stop gracefully.
struct stop {
  std::string reason;
  friend bool operator==(const stop&, const stop&) = default;
};

// worker -> master -> task worker (dst = no_worker: any task worker).
struct task_request {
  std::uint64_t task = 0;
  std::uint32_t src = 0;
  std::uint32_t dst = no_worker;
  std::uint32_t module = 0;
  bool wants_finish = false;
  std::string payload;
  friend bool operator==(const task_request&, const task_request&) = default;
};

// task worker -> master -> worker (failed: payload is the error text).
struct task_result {
  std::uint64_t task = 0;
  std::uint32_t src = 0;
  std::uint32_t dst = 0;
  std::uint32_t module = 0;
  bool failed = false;
  std::string payload;
  friend bool operator==(const task_result&, const task_result&) = default;
};

// process -> master -> process.
struct pipe_message {
  std::uint32_t src = 0;
  std::uint32_t dst = 0;
  std::uint32_t module = 0;
  std::string payload;
  friend bool operator==(const pipe_message&, const pipe_message&) = default;
};

inline constexpr std::uint32_t no_module = 0xffff'ffffu;

// The message bus (actors/bus): process -> master -> process(es).
enum class bus_op : std::uint8_t { publish = 0, direct = 1, request = 2, reply = 3 };
enum class bus_status : std::uint8_t { ok = 0, no_route = 1, no_reply = 2, failed = 3 };
struct bus_message {
  bus_op op = bus_op::publish;
  bus_status status = bus_status::ok;  // replies
  std::uint8_t pick = 0;               // to any worker (dst = no_worker): 0 round robin, 1 least loaded
  bool self = true;                    // publish: deliver to the publishing instance too
  std::uint32_t src = no_worker;       // sending process (no_worker: the master, for an operator)
  std::uint32_t dst = no_worker;       // receiving process (publish: set by the master per subscriber)
  std::uint32_t dst_pid = 0;           // direct / request to `dst`: that pid of it, if still running (0: current)
  std::uint64_t request = 0;           // request / reply: the requester's id
  std::uint32_t src_module = no_module;
  std::uint32_t dst_module = no_module;  // publish: set by the master per subscriber
  std::uint64_t seq = 0;               // the sending process's bus message counter
  std::string topic;
  std::string tag;
  std::string data;
  friend bool operator==(const bus_message&, const bus_message&) = default;
};

// process -> master: a module instance (un)subscribes to a pattern.
struct bus_subscription {
  std::uint32_t process = 0;
  std::uint32_t module = 0;
  bool subscribe = true;
  std::string pattern;
  friend bool operator==(const bus_subscription&, const bus_subscription&) = default;
};

// worker -> reactor: the connection is now a WebSocket handled by module instance `module`
// of this worker; its events stay with this worker id (a restarted process of it too).
struct conn_upgrade {
  std::uint64_t session = 0;
  std::uint32_t worker = 0;
  std::uint32_t module = 0;
  std::string target;  // of the upgrade request (given back in conn_adopt)
  friend bool operator==(const conn_upgrade&, const conn_upgrade&) = default;
};

// reactor -> worker: an open WebSocket of this worker id, sent to a new process of it
// (after a reload or a crash) before anything else of the session, so it serves the
// connection without a new handshake.
struct conn_adopt {
  std::uint64_t session = 0;
  std::uint32_t reactor = 0;
  std::uint32_t listener = 0;
  std::uint32_t module = 0;
  std::int64_t connect_ms = 0;
  std::string remote;
  std::string local;
  std::string target;  // of the upgrade request
  // A wss:// session: what the reactor's handshake negotiated (info().tls), as in conn_open.
  bool tls = false;
  std::string tls_version, tls_cipher, tls_sni, tls_alpn, tls_peer_subject, tls_peer_fingerprint;
  bool tls_resumed = false;
  friend bool operator==(const conn_adopt&, const conn_adopt&) = default;
};

// worker -> reactor: the connection joins (or leaves) a group; a closing connection leaves
// all of its groups by itself.
struct group_op {
  std::uint64_t session = 0;
  std::uint32_t worker = 0;
  bool join = true;
  std::string group;
  friend bool operator==(const group_op&, const group_op&) = default;
};

// worker -> every reactor: a typed reply (`kind` as conn_send) to each connection of the
// reactor in `group` ("" = every WebSocket).
struct group_send {
  std::uint32_t worker = 0;
  std::uint8_t kind = 0;
  std::string group;
  std::string data;
  friend bool operator==(const group_send&, const group_send&) = default;
};

using any_message =
    std::variant<conn_open, conn_data, conn_closed, conn_send, conn_close, conn_bind, datagram_in,
                 datagram_out, drain, drained, ready, stop, task_request, task_result,
                 pipe_message, conn_watch, conn_writable, conn_pause, conn_resume, bus_message,
                 bus_subscription, conn_upgrade, conn_adopt, group_op, group_send>;

// Bytes a bulk kind appends after its bulk string, address strings (`from`, `to`) aside.
// A bulk string built with this much spare capacity is moved into the payload and never
// reallocated by encode(); without it encode() reallocates (copies) it at most once.
inline constexpr std::size_t trailer_reserve = 16;

// -- encode / decode ------------------------------------------------------------------------

// By value: bulk strings are moved into the payload, not copied.
message encode(conn_open m);
message encode(conn_data m);
// conn_data and conn_send as pieces (link::try_send_pieces): the same message as encode()
// makes, with `data` referenced, not copied.
message_pieces pieces_of_conn_data(std::uint64_t session, std::uint32_t listener, std::uint32_t reactor,
                                   std::uint8_t kind, std::string_view data);
message_pieces pieces_of_conn_send(std::uint64_t session, std::uint32_t worker, std::uint8_t kind,
                                   std::string_view data);
message encode(conn_closed m);
message encode(conn_send m);
message encode(conn_close m);
message encode(conn_upgrade m);
message encode(conn_adopt m);
message encode(group_op m);
message encode(group_send m);
message encode(conn_bind m);
message encode(datagram_in m);
message encode(datagram_out m);
message encode(drain m);
message encode(drained m);
message encode(ready m);
message encode(stop m);
message encode(task_request m);
message encode(task_result m);
message encode(pipe_message m);
message encode(conn_watch m);
message encode(conn_writable m);
message encode(conn_pause m);
message encode(conn_resume m);
message encode(bus_message m);
message encode(bus_subscription m);
message encode(any_message m);

// errc::bad_message when `m` is not a well-formed message of a known kind. The rvalue
// overload moves bulk strings out of m.payload without copying them; m is left unspecified.
result<any_message> decode(message&& m);
result<any_message> decode(const message& m);  // copies the payload

// The two kinds on every process-mode request's path, read in place from a frame the link
// offers (link::set_view_handler): `data` views the frame's payload, valid during that call
// only. nullopt for another kind or a malformed one (decode() of the message then reports it).
std::optional<conn_data_view> view_conn_data(const message_view& m) noexcept;
std::optional<conn_send_view> view_conn_send(const message_view& m) noexcept;

// "conn_open", "conn_data", ... for log lines.
std::string_view kind_name(const any_message& m) noexcept;

}  // namespace swactor::ipc
