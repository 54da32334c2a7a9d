#pragma once
// A worker, task worker or user process (`swactor worker ...`, exec'd by the master).
// Concerns, each its own type:
// - event_runner: connection events through module handlers, in order per session;
// - session_port: how the context reaches connections (local conn_host or the reactors);
// - local_sink (base mode): the conn_host's events into the runner;
// - this runtime: modules and their contexts, the link to the master (tasks, pipe
//   messages, stop), the reactor links (process mode), start and stop.

#include <unistd.h>

#include <deque>
#include <exception>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "net/acceptor.hpp"
#include "net/conn_host.hpp"
#include "net/tls.hpp"
#include "proc_layout.hpp"
#include "swactor/actors/app_config.hpp"
#include "swactor/actors/context.hpp"
#include "swactor/actors/http.hpp"
#include "swactor/actors/redis.hpp"
#include "swactor/actors/server.hpp"
#include "swactor/actors/server_state.hpp"
#include "swactor/core/channel.hpp"
#include "swactor/core/loop.hpp"
#include "swactor/core/wait_group.hpp"
#include "swactor/ipc/link.hpp"
#include "swactor/ipc/messages.hpp"
#include "swactor/ipc/table.hpp"
#include "worker/bus_endpoint.hpp"
#include "worker/event_runner.hpp"
#include "worker/session_port.hpp"

namespace swactor::detail {

class worker_runtime;

// An HTTP reply piece of http1::out kind `kind` for session `s`; on an HTTP/2 connection
// (`stream` != 0) it names its stream first (http_events.cpp).
std::error_code send_reply(session_port& port, session_id s, std::uint32_t stream, std::uint8_t kind,
                           std::string_view data);

// The one context implementation: what a handler can do, the same in both modes.
class server_context final : public context {
 public:
  server_context(worker_runtime& rt, int module, swactor::loop& lp, std::string role, int id)
      : context(lp, std::move(role), id), rt_(rt), module_(module) {}

  std::error_code send(session_id s, std::string_view data) override;
  std::error_code sendto(const std::string& address, std::string_view data, int listener) override;
  std::error_code close(session_id s, bool reset) override;
  result<session_info> info(session_id s) override;
  std::string_view payload(session_id s, std::string_view message) override;
  std::error_code bind(session_id s, user_id uid) override;
  std::error_code push(session_id s, std::string_view data, ws_opcode op) override;
  std::error_code disconnect(session_id s, std::uint16_t code, std::string_view reason) override;
  bool exists(session_id s) override;
  std::error_code join(std::string_view group, session_id s) override;
  std::error_code leave(std::string_view group, session_id s) override;
  std::error_code broadcast(std::string_view group, std::string_view data, ws_opcode op) override;
  result<task_id> task(std::string payload, int dst) override;
  swactor::task<result<std::string>> task_wait(std::string payload, duration timeout, int dst) override;
  swactor::task<std::vector<result<std::string>>> task_wait_all(std::vector<std::string> payloads,
                                                               duration timeout) override;
  std::error_code send_message(int worker_id, std::string payload) override;
  std::error_code subscribe(std::string_view pattern) override;
  std::error_code unsubscribe(std::string_view pattern) override;
  std::error_code publish(std::string_view topic, bus::payload message, bus::publish_options options) override;
  std::error_code send_to(const bus::target& to, bus::payload message) override;
  swactor::task<result<bus::message>> request(bus::target to, bus::payload message, duration timeout) override;
  std::error_code reply(const bus::message& request, bus::payload message) override;
  swactor::task<result<std::unique_ptr<http::response>>> http_response(const http::response_handle& handle,
                                                                       duration timeout) override;
  std::string stats() override;
  ipc::table* table(std::string_view name) override;
  int user_process_id(int index) const override;
  int workers() const override;

 private:
  worker_runtime& rt_;
  int module_;
};

class worker_runtime final : private handler_host,
                             private net::connection_sink,
                             private http::request::address_lookup,
                             private bus_host {
 public:
  worker_runtime(swactor::loop& lp, const worker_args& args, app_config app, server_state* state,
                 ipc::link link, const module_registry& reg);
  ~worker_runtime();

  task<void> start();
  void begin_stop(std::string why);
  int exit_code() const noexcept { return exit_code_; }
  // Handlers still running once the stop sequence gave up on them (max_wait_time).
  std::int64_t unfinished_handlers() noexcept { return runner_.running().count() + in_flight_.count(); }
  std::string stats_json();
  void attach_tables(const std::vector<int>& fds);

  // -- for server_context ----------------------------------------------------------------
  session_port& port() noexcept { return *port_; }
  const server_state& state() const noexcept { return *state_; }
  event_runner& runner() noexcept { return runner_; }
  const app_config& app() const noexcept { return app_; }
  const proc_layout& layout() const noexcept { return layout_; }
  result<task_id> start_task(int module, std::string payload, int dst, bool wants_finish,
                             std::shared_ptr<channel<result<std::string>>> waiter);
  void forget_task(task_id id) { pending_tasks_.erase(id); }
  std::error_code send_message(int module, int dst, std::string payload);
  ipc::table* find_table(std::string_view name);
  int user_process_id(int module, int index) const;
  int id() const noexcept { return args_.id; }
  bus_endpoint& bus() noexcept { return *bus_; }
  // Runs `t` on this worker's loop beside the handlers (stop waits for it, like a handler).
  void spawn_beside(task<void> t, const char* what);
  // -- detached HTTP responses (http_remote.cpp) -------------------------------------------
  // The holding side: a handler's response::detach() registers its request here.
  result<http::response_handle> http_detach(session_id s, std::uint32_t h2_stream = 0);
  // The answering side: claims the request from its worker, then writes through the bus.
  task<result<std::unique_ptr<http::response>>> http_claim(int module, const http::response_handle& h,
                                                            duration timeout);

 private:
  // -- handler_host (the runner calls these) -------------------------------------------------
  std::optional<task<void>> handler_for(event_kind k, std::uint8_t kind, session_id s, int listener,
                                        std::string& data) override;
  // -- HTTP listeners (http_events.cpp) ---------------------------------------------------------
  struct body_pipe;
  struct http_exchange {
    std::unique_ptr<http::request> req;
    int module = -1;
    int route = -1;
    int listener = -1;
    bool stream = false;  // the route streams the body to the handler
    std::shared_ptr<body_pipe> pipe;  // requests whose body follows the head
    std::chrono::milliseconds body_timeout{0};
    // The request body's Content-Encoding, inflated before the handler sees it (identity:
    // none).
    protocols::compression::coding inflate = protocols::compression::coding::identity;
    int status = 0;  // non-zero: answered without a handler (404, 405, 503, 400, 415)
    std::string allow;
    std::string reason;
    std::uint32_t h2_stream = 0;  // HTTP/2: the stream the request came on (0 = HTTP/1)
  };
  std::optional<task<void>> http_event(std::uint8_t kind, session_id s, int listener, std::string_view data);
  // A request whose head is in place (decoded, or copied from the codec's typed event):
  // routed, then answered inline or handed back as the handler's task.
  std::optional<task<void>> http_request(std::unique_ptr<http::request> req, int listener, std::uint32_t h2_stream);
  task<void> serve_http(http_exchange x, bool beside = false);
  // The module's on_request_now for a whole request, inline; false when not taken (then
  // serve_http runs it). Only for a module that answers_requests_now().
  bool http_now(http_exchange& x);
  // A body end() left to the engine (response::take_paced()): sent as the client reads;
  // on failure logged with `what` and the connection closed (HTTP/2: the stream reset).
  // `timeout`: each wait for the client (the listener's send_timeout).
  task<void> finish_paced(http::response_channel& ch, const http::response::paced_body& p, session_id s,
                          std::uint32_t h2_stream, std::string what, duration timeout);
  // The same for an inline handler's response, after http_now (its own channel).
  task<void> paced_reply(session_id s, std::uint32_t h2_stream, std::unique_ptr<http::response::paced_body> p,
                         std::string what, const listen_config& lc);
  struct paced_after_now {
    std::unique_ptr<http::response::paced_body> body;
    std::string what;  // "GET /path", for the log line
  };
  paced_after_now paced_now_;  // set by http_now, taken by http_request
  // A request object to fill: the one of the last request answered inline, or a new one.
  std::unique_ptr<http::request> take_request() {
    return spare_request_ ? std::move(spare_request_) : std::make_unique<http::request>();
  }
  // Kept for the next request (the allocations of a request object and of the two field
  // vectors, request and response, cost about as much as building them).
  std::unique_ptr<http::request> spare_request_;
  std::vector<protocols::http1::header> spare_fields_;
  // An HTTP/1 request of a session with nothing queued or running, routed as it arrived
  // (http_event, http_request): its handler's task, if any, runs now.
  void http_arrived(session_id s, int listener, std::uint8_t kind, std::optional<task<void>>&& t);
  // The response's compression, from the listener's settings and the request.
  void negotiate_compression(http::response& res, const http::request& req, int listener) const;
  void refuse_http(const http_exchange& x);
  task<bool> prepare_body(http_exchange& x);
  void http_handler_done(const http_exchange& x, const http::response& res, int mod, std::exception_ptr error,
                         const char* handler = "on_request");
  // WebSocket (ws_events.cpp): the upgrade, then the connection's frames.
  task<void> serve_ws_handshake(http_exchange x);
  std::optional<task<void>> ws_event(std::uint8_t kind, session_id s, std::string& data);
  std::optional<task<void>> ws_closed(session_id s);
  task<void> adopt(module_base& m, context& ctx, session_id s, std::shared_ptr<http::request> req);
  // The event kind of an adopted WebSocket (conn_adopt), queued as the session's first
  // event: the engine's own, after the codec's WebSocket kinds (16..20).
  static constexpr std::uint8_t kWsAdopted = 21;
  task<void> run_ws(int module, session_id s, const char* event, task<void> t);
  struct ws_session {
    int module = -1;
    bool close_seen = false;  // on_close ran (a close frame came)
  };
  std::unordered_map<session_id, ws_session> ws_sessions_;
  // Redis listeners (redis_events.cpp): one command through the module's on_command.
  task<void> serve_redis(int module, session_id s, std::string data, std::uint8_t kind);
  // The inline path: the module's on_command_now on a reused command over the codec's bytes;
  // false when it is not taken (then the event is queued as usual).
  bool redis_now(int listener, session_id s, std::string_view data, std::uint8_t kind);
  void send_redis_reply(session_id s, redis::command& cmd);
  // The codec's look-ahead: the module's on_commands_ahead over the multibulk commands.
  void redis_ahead(int listener, session_id s, std::span<const protocols::event> upcoming);
  std::unique_ptr<redis::command> redis_cmd_;  // reused by redis_now
  // Stream listeners (tcp, unix, their TLS forms): module `mod`'s on_receive_now over the
  // codec's bytes, on the caller's stack; false when not taken (then the message is queued).
  bool receive_now(int mod, session_id s, std::string_view data);
  // A handler inside redis_now, receive_now or http_now is running: a send from it that
  // reaches this worker's own decode path must not start another one inline.
  bool now_busy_ = false;
  // The one way an inline handler runs (those three): `call()` -> taken, on this stack;
  // then `finish(taken, error)` -> taken (answers, logs what it threw); a taken event counts
  // as a handled message (stats, max_request). Not counted as busy in the shared slot
  // (in_flight, the busy state): it returns before another process could act on either.
  template <class Call, class Finish>
  [[gnu::always_inline]] bool run_now(Call&& call, Finish&& finish) {
    now_busy_ = true;
    bool taken = false;
    std::exception_ptr error;
    try {
      taken = call();
    } catch (...) {
      error = std::current_exception();
    }
    now_busy_ = false;
    taken = finish(taken, error);
    if (taken) {
      bump(slot_->messages);
      if (max_request_ > 0) note_message();
    }
    return taken;
  }
  // An event of a session with nothing queued or running, taken on the caller's stack (both
  // modes' sinks): a Redis command or a stream message by the module's inline handler, an
  // HTTP/1 request routed at once (http_arrived). False: the caller queues it.
  bool event_now(int listener, session_id s, std::uint8_t kind, std::string_view data);
  void http_closed(session_id s);
  // A detached request (response::detach) waiting for its answer from another process.
  struct detached_response {
    session_id session;
    std::uint32_t stream = 0;  // HTTP/2: the request's stream (its replies name it)
    bool claimed = false;  // an http_response() took it (once)
    bool started = false;  // its head went out
    bool done = false;     // ended, or its connection closed
    detail::wait_queue waiters;
  };
  std::unordered_map<std::uint64_t, std::shared_ptr<detached_response>> detached_;
  std::uint64_t next_http_request_ = 0;
  // serve_http's end for a detached response: waits for it (or the timeout: 504 / close).
  task<void> wait_detached(std::uint64_t request, std::chrono::milliseconds timeout, const http::request& req);
  // Runtime bus messages for detached responses (tags swactor.http_*); true when taken.
  bool http_remote_message(const ipc::bus_message& m);
  std::string local_address(session_id s) override;
  // A body/end event as it arrives (not through the runner, which may be running the
  // handler that waits for it); HTTP/1 pauses the connection while too much is unread.
  void http_body_event(session_id s, std::uint8_t kind, std::string_view data);
  void http_body_taken(session_id s, std::size_t n);
  // HTTP/2: the handler of `stream` took (or dropped) `n` bytes of its body: its window opens.
  void h2_body_taken(session_id s, std::uint32_t stream, std::size_t n);
  bool is_http(int listener) const {
    return listener >= 0 && listener < static_cast<int>(app_.listen.size()) &&
           app_.listen[static_cast<std::size_t>(listener)].http();
  }
  bool is_redis(int listener) const {
    return listener >= 0 && listener < static_cast<int>(app_.listen.size()) &&
           app_.listen[static_cast<std::size_t>(listener)].is_redis();
  }
  static bool is_body_event(std::uint8_t kind) {
    return kind == static_cast<std::uint8_t>(protocols::http1::ev::body) ||
           kind == static_cast<std::uint8_t>(protocols::http1::ev::end) ||
           kind == static_cast<std::uint8_t>(protocols::http2::ev::body) ||
           kind == static_cast<std::uint8_t>(protocols::http2::ev::end) ||
           kind == static_cast<std::uint8_t>(protocols::http2::ev::reset);
  }
  // HTTP/2 streams' body, end and reset events, by stream id.
  void h2_body_event(session_id s, std::uint8_t kind, std::string_view data);
  void end_failed(session_id s, std::uint32_t h2_stream);
  void handler_done(event_kind k, session_id s, int listener, std::exception_ptr error) override;
  // -- bus_host ----------------------------------------------------------------------------------
  task<bool> run_bus_handler(int module, const bus::message& m) override;
  bool runtime_message(const ipc::bus_message& m) override;

 public:
  // Base mode: the worker that holds session `s` (its id carries it), or -1 when unknown
  // (process mode: any worker reaches any session through the reactors).
  int session_owner(session_id s) const;
  // A WebSocket reply (push, close) for a session another worker holds: sent there over the
  // bus, in order with this worker's other sends to it.
  std::error_code forward_ws(int module, session_id s, std::uint8_t kind, std::string_view data);
  // The worker that must do a session operation this process cannot, or -1 (do it here).
  int relay_for(session_id s) const;
  // A typed send to a session this worker does not handle: forward_ws in base mode, the
  // reactor directly in process mode (through a worker from a task worker, which has no
  // reactor links).
  std::error_code send_elsewhere(int module, session_id s, std::uint8_t kind, std::string_view data) {
    if (app_.process_mode() && port_->reaches_connections()) return port_->send_any(s, data, kind);
    return forward_ws(module, s, kind, data);
  }
  // Group membership of any session of the server (ctx.join / ctx.leave).
  std::error_code ws_group(int module, session_id s, std::string_view name, bool join);
  // A typed reply to every member of `name` in the server ("" = every WebSocket).
  std::error_code ws_broadcast(int module, std::string_view name, std::uint8_t kind, std::string_view data);
  static constexpr int kSessionWorkerBits = 10;  // workers <= 1024

 private:
  const bus::type_set& bus_types(int module) const override { return modules_[static_cast<std::size_t>(module)]->bus_types(); }
  void queue_low(session_id s) override;
  void handler_begin();
  void handler_end();
  void begin_busy();
  void end_busy();
  void log_failure(int module, const char* event, session_id sid, std::exception_ptr error);

  // -- connection_sink (base mode: this loop's connections) ---------------------------------
  void on_open(net::connection& c) override;
  bool on_event(net::connection& c, const protocols::event& e) override;
  bool takes_objects() const noexcept override { return true; }
  bool on_object_event(net::connection& c, const protocols::event& typed);
  void on_ahead(net::connection& c, std::span<const protocols::event> upcoming) override;
  void on_closed(net::connection& c, std::string_view reason) override;
  void on_drained(net::connection& c) override;
  void on_datagram(int listener, std::string from, std::string_view data) override;

  task<void> invoke(int module, const char* event, session_id sid, swactor::task<void> t);
  task<void> handle_packet(int listener, std::string from, std::string data);
  void start_listeners();
  void start_reactor_links();
  task<void> master_loop();
  void on_reactor_message(ipc::message&& raw);
  // One conn_data, read in place (owned null: copied if it must wait) or decoded (moved).
  void reactor_data(const ipc::conn_data_view& v, std::string* owned);
  void on_master_message(ipc::any_message m);
  task<void> run_task(ipc::task_request t);
  task<void> stop_sequence(std::string why);
  void note_message();
  bool owns_slot() const { return slot_->pid.load(std::memory_order_relaxed) == self_pid_; }
  void set_state(proc_state st) {
    if (owns_slot()) slot_->state.store(static_cast<std::uint32_t>(st), std::memory_order_relaxed);
  }
  int module_of(int listener) const {
    return listener >= 0 && listener < static_cast<int>(app_.listen.size())
               ? app_.listen[static_cast<std::size_t>(listener)].module_index
               : -1;
  }

  swactor::loop& lp_;
  worker_args args_;
  app_config app_;
  proc_layout layout_;
  server_state* state_;
  proc_slot* slot_;
  pid_t self_pid_ = ::getpid();
  ipc::link link_;
  bool is_task_ = false;
  bool is_user_ = false;
  coro_handle user_coro_;
  std::vector<std::pair<std::string, ipc::table>> tables_;
  std::vector<std::unique_ptr<module_base>> modules_;
  std::vector<std::unique_ptr<server_context>> contexts_;
  std::unique_ptr<bus_endpoint> bus_;
  event_runner runner_;
  // base mode
  std::unique_ptr<net::conn_host> host_;
  net::tls_store tls_;  // base mode: this worker's TLS listeners (ticket keys from server_state)
  std::vector<std::unique_ptr<net::stream_acceptor>> acceptors_;
  // process mode
  std::vector<std::unique_ptr<ipc::link>> reactors_;
  wait_group drained_;
  drain_waits drain_waits_;  // before port_, which refers to it
  std::unique_ptr<session_port> port_;
  struct pending_task {
    int module;
    bool wants_finish;
    std::shared_ptr<channel<result<std::string>>> waiter;
  };
  std::unordered_map<task_id, pending_task> pending_tasks_;
  struct http_pipes {
    std::deque<std::shared_ptr<body_pipe>> pipes;  // requests whose body is arriving, oldest first
    std::size_t unread = 0;                        // bytes in them nobody took yet
    bool paused = false;
    // HTTP/2: a pipe per stream whose body is arriving (streams interleave).
    std::unordered_map<std::uint32_t, std::shared_ptr<body_pipe>> streams;
    // The newest stream whose request a handler took here (stream ids only grow): a late
    // event of a stream up to it that has no pipe is for a request already done.
    std::uint32_t h2_taken = 0;
  };
  std::unordered_map<session_id, http_pipes> http_pipes_;
  static constexpr std::size_t kHttpUnreadLimit = 256 * 1024;
  int http_in_flight_ = 0;
  std::uint64_t next_task_ = 0;
  wait_group in_flight_;  // handlers outside the runner (tasks, pipe messages, datagrams)
  std::int64_t busy_ = 0;  // every handler running now
  std::int64_t max_request_ = 0;
  std::int64_t handled_ = 0;
  bool stopping_ = false;
  bool destroying_ = false;
  int exit_code_ = 0;
};

}  // namespace swactor::detail
