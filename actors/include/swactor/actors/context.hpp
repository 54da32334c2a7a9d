#pragma once
// What a handler can do. Each module instance gets its own context in each process; it
// belongs to that process's loop (single-threaded: no locks needed).

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "swactor/actors/bus.hpp"
#include "swactor/actors/errors.hpp"
#include "swactor/actors/module.hpp"
#include "swactor/actors/tls_info.hpp"
#include "swactor/core/error.hpp"
#include "swactor/core/loop.hpp"

namespace swactor {

namespace ipc {
class table;
}
namespace http {
class response;
struct response_handle;
}  // namespace http

struct session_info {
  session_id id;
  std::string remote;             // "ip:port", "[v6]:port" or a unix path
  std::string local;              // the address it connected to (same forms)
  int listener = 0;               // [[listen]] index
  std::int64_t connect_time_ms = 0;   // unix epoch milliseconds
  std::int64_t last_receive_ms = 0;   // 0 = nothing received yet
  int worker = 0;                 // worker that handles its events
  int reactor = -1;               // process mode: reactor thread; -1 in base mode
  user_id uid;                    // bound uid, 0 = none
  // Set on the sessions of https://, tls://, wss:// listeners. A pointer: a worker keeps a
  // session_info per open session of process mode, and most have no TLS.
  std::shared_ptr<const tls_info> tls;
  // The protocol the connection speaks now, as its codec names it: "raw", "length" or
  // "eof" (framed tcp://, unix://, tls://), "http/1.1", "h2" (over TLS or cleartext: see
  // `tls`), "websocket", "redis". Static storage. Process mode: as of the last event this
  // worker got for the session (an h2c connection shows "h2" from its first stream on).
  std::string_view protocol;
};

class context {
 public:
  context(swactor::loop& lp, std::string role, int id) : loop_(lp), role_(std::move(role)), id_(id) {}
  virtual ~context() = default;

  swactor::loop& loop() noexcept { return loop_; }
  swactor::timers& timers() { return loop_.timers(); }
  asio::io_context::executor_type executor() noexcept { return loop_.executor(); }

  // "worker" or "task", and the id within the server: workers 0..workers-1, task workers
  // workers..workers+task_workers-1 (Swoole's numbering).
  const std::string& role() const noexcept { return role_; }
  int worker_id() const noexcept { return id_; }

  // -- connections -----------------------------------------------------------------
  // Queues bytes for a connection. Errors: session_not_found, output_buffer_full.
  [[nodiscard]] virtual std::error_code send(session_id, std::string_view data) {
    (void)data;
    return server_errc::not_supported;
  }
  // Sends a datagram from datagram listener `listener` to "ip:port" / "[v6]:port" / path.
  [[nodiscard]] virtual std::error_code sendto(const std::string& address, std::string_view data,
                                 int listener = -1) {
    (void)address, (void)data, (void)listener;
    return server_errc::not_supported;
  }
  // Closes after queued output is written; reset = RST at once, queued output dropped.
  [[nodiscard]] virtual std::error_code close(session_id, bool reset = false) {
    (void)reset;
    return server_errc::not_supported;
  }
  [[nodiscard]] virtual result<session_info> info(session_id) {
    return make_error_code(server_errc::not_supported);
  }
  // A framed message without its framing (eof delimiter, length header), by the framing of
  // the session's listener. `message` as on_receive got it; the view points into it.
  [[nodiscard]] virtual std::string_view payload(session_id, std::string_view message) { return message; }
  // Binds a connection to a uid (dispatch_mode = uid routes by it in process mode).
  [[nodiscard]] virtual std::error_code bind(session_id, user_id uid) {
    (void)uid;
    return server_errc::not_supported;
  }

  // -- WebSocket --------------------------------------------------------------------
  // A message to a WebSocket session of this worker (base mode) or of the server (process
  // mode). Errors: session_not_found, output_buffer_full.
  [[nodiscard]] virtual std::error_code push(session_id s, std::string_view data, ws_opcode op = ws_opcode::text) {
    (void)s, (void)data, (void)op;
    return server_errc::not_supported;
  }
  // Starts the close handshake (code 1000..4999, reason up to 123 bytes); the connection
  // closes when the client answers or after the listener's close_timeout.
  [[nodiscard]] virtual std::error_code disconnect(session_id s, std::uint16_t code = 1000, std::string_view reason = {}) {
    (void)s, (void)code, (void)reason;
    return server_errc::not_supported;
  }
  // Whether the session is open (any stream listener), whichever process holds it: every
  // connection is in a registry in shared memory from its open to its close (a base-mode
  // worker that dies takes its sessions out of it when the master notices).
  virtual bool exists(session_id s) {
    (void)s;
    return false;
  }

  // -- WebSocket groups -------------------------------------------------------------
  // A group is a name (1..255 bytes) for a set of WebSocket sessions of the whole server;
  // membership lives with the connection (the worker that holds it in base mode, its
  // reactor in process mode), so a connection that closes leaves its groups and, in process
  // mode, a worker reload keeps them. Join / leave work for any session from any worker or
  // task worker; a session another process holds is told asynchronously (an unknown one is
  // then ignored there). Errors: invalid_argument (name), session_not_found.
  [[nodiscard]] virtual std::error_code join(std::string_view group, session_id s) {
    (void)group, (void)s;
    return server_errc::not_supported;
  }
  [[nodiscard]] virtual std::error_code leave(std::string_view group, session_id s) {
    (void)group, (void)s;
    return server_errc::not_supported;
  }
  // Sends a message to every member of `group` (all_websockets: every WebSocket of the
  // server) in every process; members get broadcasts from one sender in the order sent. A
  // member whose output is full misses it (or is closed: the listener's on_output_full).
  [[nodiscard]] virtual std::error_code broadcast(std::string_view group, std::string_view data,
                                                  ws_opcode op = ws_opcode::text) {
    (void)group, (void)data, (void)op;
    return server_errc::not_supported;
  }
  static constexpr std::string_view all_websockets{};

  // -- tasks ------------------------------------------------------------------------
  // Starts a task on a task worker (`dst` = its index among task workers, -1 = any);
  // the result arrives in on_finish. Returns the task id.
  // (Inside this class `task` names this call; the coroutine type is swactor::task<T>.)
  [[nodiscard]] virtual result<task_id> task(std::string payload, int dst = -1) {
    (void)payload, (void)dst;
    return make_error_code(server_errc::not_supported);
  }
  // Starts a task and waits for its result (errc::timeout after `timeout`; a late result
  // is then dropped, never delivered to a later call).
  [[nodiscard]] virtual swactor::task<result<std::string>> task_wait(std::string payload, duration timeout, int dst = -1) {
    (void)payload, (void)timeout, (void)dst;
    co_return make_error_code(server_errc::not_supported);
  }
  // Runs all, waits up to `timeout` in total; results in order, timed-out ones are errors.
  [[nodiscard]] virtual swactor::task<std::vector<result<std::string>>> task_wait_all(std::vector<std::string> payloads,
                                                              duration timeout) {
    (void)timeout;
    co_return std::vector<result<std::string>>(payloads.size(),
                                                make_error_code(server_errc::not_supported));
  }

  // -- HTTP responses from another process ----------------------------------------
  // The response of a request some worker handed over with response::detach(), to answer
  // it from here (a task worker, another worker): status, headers and body (streamed
  // too) go to that worker, which sends them on its connection. Errors: response_gone
  // (the request was answered or timed out, its client left, or the handle is unknown),
  // errc::timeout (its worker did not answer within `timeout`), not_supported.
  [[nodiscard]] virtual swactor::task<result<std::unique_ptr<http::response>>> http_response(
      const http::response_handle& handle, duration timeout = std::chrono::seconds(5));

  // -- other workers ----------------------------------------------------------------
  // Delivers to on_pipe_message of the same module instance in worker `worker_id`.
  [[nodiscard]] virtual std::error_code send_message(int worker_id, std::string payload) {
    (void)worker_id, (void)payload;
    return server_errc::not_supported;
  }

  // -- the bus (docs/modules.md, "The bus") ---------------------------------------------
  // This module instance receives, in on_bus_message, what is published to topics matching
  // `pattern` (bus::matches: "room.*", "room.>") from now on. Errors: bad_topic.
  [[nodiscard]] virtual std::error_code subscribe(std::string_view pattern) {
    (void)pattern;
    return server_errc::not_supported;
  }
  [[nodiscard]] virtual std::error_code unsubscribe(std::string_view pattern) {
    (void)pattern;
    return server_errc::not_supported;
  }
  // To every instance subscribed to a pattern matching `topic`, in every process.
  // At-most-once, FIFO per publisher and subscriber. Errors: bad_topic, message_too_large.
  [[nodiscard]] virtual std::error_code publish(std::string_view topic, bus::payload message,
                                                bus::publish_options options = {}) {
    (void)topic, (void)message, (void)options;
    return server_errc::not_supported;
  }
  // To one module instance (bus::target::worker(id, "module") or ::any("module")); its
  // on_bus_message gets kind::direct. Errors: module_not_found, worker_not_found.
  [[nodiscard]] virtual std::error_code send_to(const bus::target& to, bus::payload message) {
    (void)to, (void)message;
    return server_errc::not_supported;
  }
  // Sends kind::request and waits for the handler's ctx.reply(): the reply, or
  // errc::timeout after `timeout` (a late reply is dropped, never given to a later
  // request), no_route, no_reply (the handler returned without replying), request_failed.
  [[nodiscard]] virtual swactor::task<result<bus::message>> request(bus::target to, bus::payload message,
                                                                    duration timeout) {
    (void)to, (void)message, (void)timeout;
    co_return make_error_code(server_errc::not_supported);
  }
  // Answers a request (once; later calls are ignored and return not_supported).
  [[nodiscard]] virtual std::error_code reply(const bus::message& request, bus::payload message) {
    (void)request, (void)message;
    return server_errc::not_supported;
  }

  // This process's view of the stats as JSON: the server-wide counters of `swactor stats`
  // (start_time, connection_num, accept_count, close_count, request_count), the open
  // connections of each listener (listener_connections, by listener index, all processes)
  // plus worker_id, worker_request_count and worker_connections.
  virtual std::string stats() { return "{}"; }

  // The shared-memory table declared as [tables.NAME], or nullptr.
  virtual ipc::table* table(std::string_view name) {
    (void)name;
    return nullptr;
  }
  // Workers in the server: their ids are 0..workers()-1 (task workers and user processes
  // come after them).
  virtual int workers() const { return 1; }
  // The server-wide id of this module's user process `index` (for send_message), or -1.
  virtual int user_process_id(int index) const {
    (void)index;
    return -1;
  }

 private:
  swactor::loop& loop_;
  std::string role_;
  int id_;
};

}  // namespace swactor
