#pragma once
// How a worker's context reaches connections. Chosen once when the worker starts, so the
// context has one implementation and no mode branches:
// - base mode: the connections are on this loop (net::conn_host);
// - process mode: they are in the master's reactor threads, reached by typed messages.

#include <atomic>
#include <memory>
#include <unordered_map>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "swactor/actors/app_config.hpp"
#include "swactor/actors/context.hpp"
#include "swactor/actors/module.hpp"
#include "swactor/core/coro.hpp"
#include "swactor/core/wait_queue.hpp"

namespace swactor::ipc {
class link;
}
namespace swactor::net {
class conn_host;
}

namespace swactor::detail {

class event_runner;

// Coroutines waiting for a session's output to drain (streamed replies), woken by the
// connection (base mode) or the reactor's conn_writable (process mode).
class drain_waits {
 public:
  task<std::error_code> wait(session_id s, duration timeout);
  // Wakes every waiter of `s` with `ec` (session_not_found: the connection is gone).
  void wake(session_id s, std::error_code ec = {});
  // Wakes the longest waiter of `s` (an HTTP/2 connection's reactor answers each watch once).
  void wake_one(session_id s);
  // Wakes every waiter of every session (the runtime's end: they resume while it exists).
  void wake_all(std::error_code ec);

 private:
  std::unordered_map<session_id, std::unique_ptr<wait_queue>> queues_;
};

class session_port {
 public:
  virtual ~session_port() = default;
  // `kind` 0 = raw bytes; other kinds are typed replies the connection's codec frames.
  virtual std::error_code send(session_id s, std::string_view data, std::uint8_t kind = 0) = 0;
  // A typed reply (protocols::reply_object): handed to a connection of this process as it
  // is; the default sends its wire form.
  virtual std::error_code send_object(session_id s, const protocols::reply_object& r, std::uint8_t kind) {
    return send(s, protocols::reply_wire(r).view(), kind);
  }
  // A send to a session this worker does not handle (process mode: another worker's
  // WebSocket, reached through its reactor; the reactor drops it if the session is gone).
  // session_not_found where that cannot be done (base mode: see worker_runtime::forward_ws).
  virtual std::error_code send_any(session_id s, std::string_view data, std::uint8_t kind) {
    (void)s, (void)data, (void)kind;
    return server_errc::session_not_found;
  }
  // -- WebSocket sessions and groups --------------------------------------------------------
  // The connection became a WebSocket of module instance `module` (its 101 is on the way):
  // in process mode its events stay with this worker id from now on.
  virtual std::error_code upgraded(session_id s, int module, std::string_view target) = 0;
  // Joins / leaves a group, where the connection lives. session_not_found: this port
  // cannot reach it (base mode: another worker's).
  virtual std::error_code group(session_id s, std::string_view name, bool join) = 0;
  // A typed reply to each member of `name` ("" = every WebSocket) this port reaches: this
  // worker's connections (base mode), every reactor's (process mode).
  virtual std::error_code broadcast(std::string_view name, std::string_view data, std::uint8_t kind) = 0;
  // Whether this process reaches connections at all (process mode: task workers do not).
  virtual bool reaches_connections() const = 0;
  // Waits until the session's queued output is below half its limit (streamed replies).
  virtual task<std::error_code> drained(session_id s, duration timeout) = 0;
  virtual std::error_code close(session_id s, bool reset) = 0;
  virtual std::error_code bind(session_id s, user_id uid) = 0;
  // Stop / start reading a connection (this worker cannot take more of it for now).
  virtual void pause_reading(session_id s) = 0;
  virtual void resume_reading(session_id s) = 0;
  virtual std::error_code sendto(const std::string& address, std::string_view data, int listener) = 0;
  // What ctx.info() reports: from the connection itself (base mode) or from the worker's
  // stand-in of the session (process mode).
  virtual result<session_info> info(session_id s) = 0;
  // The peer's address without building a session_info ("" when unknown), and whether the
  // session is still open as far as this worker knows: per-request fast paths.
  virtual std::string_view remote_of(session_id s) = 0;
  virtual bool is_open(session_id s) = 0;
};

std::unique_ptr<session_port> make_local_port(net::conn_host& host, int worker_id, drain_waits& waits);

// Process mode. `reactors` are the links to the reactor threads (a session's reactor is
// its id modulo their count); `runner` knows which sessions this worker has seen.
std::unique_ptr<session_port> make_remote_port(const app_config& app, int worker_id,
                                               std::vector<std::unique_ptr<ipc::link>>& reactors,
                                               event_runner& runner, const std::atomic<std::uint64_t>& next_session,
                                               drain_waits& waits);

}  // namespace swactor::detail
