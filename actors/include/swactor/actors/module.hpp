#pragma once
// The module API. A module is a class with `kName`, an `options` struct parsed from its
// `[modules.NAME]` table by `static config::schema<options> schema()` (unknown keys are
// errors), and whichever coroutine handlers it needs. Built-in modules are registered at
// compile time with `module_registry::add<M>()`.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "swactor/actors/bus.hpp"
#include "swactor/core/config.hpp"
#include "swactor/core/coro.hpp"

#include <fmt/format.h>

namespace swactor {

class context;  // what a handler can do: see swactor/actors/context.hpp
namespace http {
class request;  // see swactor/actors/http.hpp
class response;
}  // namespace http
namespace redis {
class command;  // see swactor/actors/redis.hpp
}

// Ids are distinct types: passing a task id where a session id belongs does not compile.
// 0 is "none" for each. value() gives the number (for logs, maps, protocols).
template <class Tag>
class basic_id {
 public:
  constexpr basic_id() noexcept = default;
  constexpr explicit basic_id(std::uint64_t v) noexcept : v_(v) {}
  constexpr std::uint64_t value() const noexcept { return v_; }
  constexpr explicit operator bool() const noexcept { return v_ != 0; }
  friend constexpr bool operator==(basic_id, basic_id) noexcept = default;
  friend constexpr auto operator<=>(basic_id, basic_id) noexcept = default;

 private:
  std::uint64_t v_ = 0;
};

using session_id = basic_id<struct session_id_tag>;  // a connection, server-wide unique
using task_id = basic_id<struct task_id_tag>;        // a task, unique in its worker
using user_id = basic_id<struct user_id_tag>;        // the uid bound to a connection

// WebSocket (docs/modules.md, "WebSocket modules").
enum class ws_opcode : std::uint8_t { text = 1, binary = 2 };
struct ws_message {
  ws_opcode opcode = ws_opcode::text;
  std::string data;  // text: valid UTF-8 (checked before the handler runs)
  bool is_text() const noexcept { return opcode == ws_opcode::text; }
};
// What on_handshake decides for one upgrade request: a subprotocol from the client's list,
// extra response headers and cookies, or a refusal with any 3xx-5xx status (which carries
// the headers and cookies too: a 302 with Location, a 401 with WWW-Authenticate).
class ws_handshake {
 public:
  explicit ws_handshake(std::vector<std::string> offered) : offered_(std::move(offered)) {}
  // Subprotocols the client offered (Sec-WebSocket-Protocol), in its order.
  const std::vector<std::string>& offered_protocols() const noexcept { return offered_; }
  // Picks one of them (false, and nothing changes, for one not offered).
  bool select_protocol(std::string_view p) {
    for (const auto& o : offered_)
      if (o == p) {
        protocol_ = o;
        return true;
      }
    return false;
  }
  const std::string& protocol() const noexcept { return protocol_; }
  // A header for the response, the 101 or a refusal (Location, WWW-Authenticate, ...). CR
  // and LF are not allowed in either; the engine's framing headers (Content-Length,
  // Transfer-Encoding, Connection, Upgrade) are its own and dropped.
  void add_header(std::string name, std::string value) { headers_.emplace_back(std::move(name), std::move(value)); }
  // A Set-Cookie header (http::cookie's to_string(): name, value and attributes).
  void set_cookie(std::string set_cookie_value) { add_header("Set-Cookie", std::move(set_cookie_value)); }
  const std::vector<std::pair<std::string, std::string>>& headers() const noexcept { return headers_; }
  // Answers the request with `status` (300-599; another one answers 403), the headers added
  // above and `body` instead of upgrading. The connection closes after it.
  void refuse(int status, std::string body = {}) {
    refused_ = status;
    body_ = std::move(body);
  }
  int refused() const noexcept { return refused_; }
  const std::string& refusal_body() const noexcept { return body_; }

 private:
  std::vector<std::string> offered_;
  std::string protocol_;
  std::vector<std::pair<std::string, std::string>> headers_;
  int refused_ = 0;
  std::string body_;
};

struct packet_info {
  std::string address;  // "127.0.0.1:5000", "[::1]:5000", or a unix path ("" if unnamed)
  int listener = 0;     // index of the [[listen]] entry
};

class module_base {
 public:
  virtual ~module_base() = default;

  // Instance name from the config ("echo" for [modules.echo]).
  const std::string& instance_name() const noexcept { return instance_; }
  void set_instance_name(std::string n) { instance_ = std::move(n); }
  // The typed bus messages this instance accepts (raw messages are always accepted).
  const bus::type_set& bus_types() const noexcept { return bus_types_; }
  // The module's class overrides on_request_now / on_receive_now (set when module_registry
  // builds it; the engine tries them only then, and costs nothing otherwise).
  bool answers_requests_now() const noexcept { return request_now_; }
  bool answers_messages_now() const noexcept { return receive_now_; }

  // -- handlers (all optional) ---------------------------------------------------------
  // Every handler runs as a coroutine on the worker's loop. A handler that throws is logged
  // with the module, the event and the session; the worker goes on serving.

  // In every worker and task worker, before any other event / after the last one.
  virtual task<void> on_worker_start(context&) { co_return; }
  virtual task<void> on_worker_stop(context&) { co_return; }
  // Stream listeners (tcp, unix): a connection opened, sent one framed message, closed.
  // Events of one connection are delivered in order, one at a time. A framed message
  // arrives whole, delimiter or length header included (as in Swoole, so an echo replies
  // with exactly the framed bytes); ctx.payload(session, message) gives it without them.
  virtual task<void> on_connect(context&, session_id) { co_return; }
  virtual task<void> on_receive(context&, session_id, std::string /*message*/) { co_return; }
  // Optional fast path for messages handled without waiting (an echo, a counter, a reply
  // from memory): handle the message and return true, or return false having done nothing,
  // and on_receive gets it instead. It runs inline as the message is framed (when nothing
  // of the session is queued or running), without a coroutine or a copy of the message, so
  // the bytes are valid only during the call. Same order and stats as on_receive.
  virtual bool on_receive_now(context&, session_id, std::string_view /*message*/) { return false; }
  virtual task<void> on_close(context&, session_id) { co_return; }
  // HTTP listeners (http://, http+unix://): one complete request (body included). Answer
  // with res.end(...) or stream with co_await res.write(...); returning without ending, or
  // throwing, answers 500. Requests of one connection arrive in order, one at a time.
  // The default answers 500 (a route to a module without it is a configuration mistake).
  virtual task<void> on_request(context&, http::request&, http::response&);
  // Optional fast path for requests answered without waiting (a fixed answer, a lookup in
  // memory): answer with res.end(...) and return true, or return false having touched
  // neither, and on_request gets the request instead. It is tried for every whole request
  // (its body here, nothing to inflate, no multipart form, no upgrade) when its turn comes,
  // in order with the connection's other requests; when nothing of the connection is
  // queued or running (HTTP/2: for any stream) that is as the request is parsed, with no
  // coroutine at all. Returning true without ending, or throwing, answers 500 as
  // on_request does; res.detach() needs on_request.
  virtual bool on_request_now(context&, http::request&, http::response&) { return false; }
  // WebSocket, on every HTTP/1.1 listener (http://, ws://, and their TLS forms): a module
  // whose websocket() is true gets the upgrade requests routed to it. on_handshake may pick
  // a subprotocol, add headers or refuse; then on_open, each message in on_message (fragments
  // reassembled), and on_close once with the close code (1006 when the connection ended
  // without a close frame) and reason. Events of one connection arrive in order, one at a
  // time. Send with ctx.push(session, data, opcode), close with ctx.disconnect(...).
  virtual bool websocket() const { return false; }
  virtual task<void> on_handshake(context&, const http::request&, ws_handshake&) { co_return; }
  virtual task<void> on_open(context&, session_id, const http::request&) { co_return; }
  virtual task<void> on_message(context&, session_id, ws_message) { co_return; }
  virtual task<void> on_close(context&, session_id, std::uint16_t /*code*/, std::string /*reason*/) { co_return; }
  // The client's pings and pongs (payload up to 125 bytes), only on a listener with
  // `websocket = { deliver_control = true }`; the engine answers pings with a pong whether
  // or not these run. In order with the connection's other events.
  virtual task<void> on_ping(context&, session_id, std::string /*payload*/) { co_return; }
  virtual task<void> on_pong(context&, session_id, std::string /*payload*/) { co_return; }
  // Process mode: a WebSocket that an earlier process of this worker upgraded (the worker was
  // reloaded or crashed; the reactor kept the connection open). Instead of on_open: the
  // request has the method and target of the upgrade request, no headers. Membership of
  // groups is kept by the engine; rebuild what the module kept per session.
  virtual task<void> on_adopt(context&, session_id, const http::request&) { co_return; }
  // Redis listeners (redis://, redis+unix://): one command of a connection, answered through
  // cmd.reply() (RESP2 or RESP3, as the connection negotiated); the reply goes out when the
  // handler returns (one returning without a reply answers an error). Commands of one
  // connection arrive in order, one at a time; on_connect/on_close run as for tcp://.
  // ctx.send(session, bytes) pushes out-of-band data (pub/sub messages). The default
  // answers Redis's unknown-command error. See swactor/actors/redis.hpp.
  virtual task<void> on_command(context&, session_id, redis::command&);
  // Optional fast path for commands answered without waiting (most of them): answer and
  // return true, or return false having written nothing, and on_command runs instead. It
  // runs inline as the command is parsed, without a coroutine or a copy of the command, so
  // its arguments are valid only during the call.
  virtual bool on_command_now(context&, session_id, redis::command&) { return false; }
  // Optional hint: raw multibulk commands of this connection that a pipelined read is about
  // to hand to the handlers above, in order (redis::first_args reads their arguments); a
  // module may start fetching what they will touch (the shared table's prefetch), so the
  // batch's cache misses overlap. Valid during the call only; changes nothing, answers
  // nothing; base mode only.
  virtual void on_commands_ahead(context&, session_id, std::span<const std::string_view> /*commands*/) {}
  // Datagram listeners (udp, unixgram): one datagram from `from` ("ip:port" or a path).
  virtual task<void> on_packet(context&, const packet_info&, std::string /*data*/) { co_return; }
  // Task workers: the payload of a task() from worker `src_worker`; the return value is the
  // result handed back (to task_wait, or to on_finish after task()). A module without it
  // answers every task with an error result (never a silent echo).
  virtual task<std::string> on_task(context&, task_id, int /*src_worker*/, std::string payload);
  // Workers: the result of a task started with task() (not for task_wait).
  virtual task<void> on_finish(context&, task_id, std::string /*result*/) { co_return; }
  // A message from send_message() of worker `src_worker` (same module instance).
  virtual task<void> on_pipe_message(context&, int /*src_worker*/, std::string) { co_return; }
  // The bus: what this instance subscribed to (ctx.subscribe or `subscribe = [...]` in its
  // config), sent to it (ctx.send_to) or asked of it (ctx.request: answer with ctx.reply;
  // returning without a reply answers the requester with no_reply). One at a time per
  // instance, in arrival order, from the instance's mailbox ([bus] mailbox_limit).
  virtual task<void> on_bus_message(context&, const bus::message&) { co_return; }

  // Swoole's addProcess: a module type with a static `int user_process_count(const
  // options&)` gets that many user processes, each calling on_user_process(ctx, index) in a
  // process of its own; one that exits (or whose coroutine returns) is restarted. Workers
  // reach them with ctx.send_message(ctx.user_process_id(index), ...) -> on_pipe_message.
  // (A static function, so the master knows the count without building an instance.)
  virtual task<void> on_user_process(context&, int /*index*/) { co_return; }

 protected:
  // Call in the constructor for each message type on_bus_message handles; a message of any
  // other tag is logged and dropped before the handler runs.
  template <class T>
  void accept_bus_type() {
    bus_types_.add<T>();
  }

 private:
  friend class module_registry;
  std::string instance_;
  bus::type_set bus_types_;
  bool request_now_ = false;
  bool receive_now_ = false;
};

// Keys of a [modules.NAME] table that belong to swactor (the instance), not to the
// module's options: type, plugin, subscribe.
inline const std::vector<std::string>& module_reserved_keys() {
  static const std::vector<std::string> keys = {"type", "plugin", "subscribe"};
  return keys;
}

// Documentation and factory of one module type.
struct module_type {
  std::string name;
  std::string doc;
  std::vector<config::key_doc> keys;
  // Parses options (tbl may be null: all defaults; module_reserved_keys() are skipped) and builds an
  // instance. Errors go to diag; returns null when there were any.
  std::function<std::unique_ptr<module_base>(const toml::table* tbl, config::diagnostics& diag,
                                             const std::string& path)>
      make;
  // Parses options only (validation: `swactor check`, the master). Errors go to diag.
  std::function<void(const toml::table* tbl, config::diagnostics& diag, const std::string& path)> check;
  // How many user processes an instance with these options wants (0 on bad options).
  std::function<int(const toml::table* tbl)> user_processes;
};

class module_registry {
 public:
  template <class M>
  module_registry& add() {
    module_type t;
    t.name = std::string(M::kName);
    t.doc = std::string(M::kDoc);
    t.keys = M::schema().docs();
    t.make = [](const toml::table* tbl, config::diagnostics& diag,
                const std::string& path) -> std::unique_ptr<module_base> {
      typename M::options opts;
      auto before = diag.items().size();
      if (tbl) M::schema().parse(*tbl, opts, diag, path, module_reserved_keys());
      if (diag.items().size() != before) return nullptr;
      auto m = std::make_unique<M>(std::move(opts));
      // &M::on_request_now names module_base's own function unless M (or a base between)
      // declares one.
      static_cast<module_base&>(*m).request_now_ =
          !std::is_same_v<decltype(&M::on_request_now), decltype(&module_base::on_request_now)>;
      static_cast<module_base&>(*m).receive_now_ =
          !std::is_same_v<decltype(&M::on_receive_now), decltype(&module_base::on_receive_now)>;
      return m;
    };
    t.check = [](const toml::table* tbl, config::diagnostics& diag, const std::string& path) {
      typename M::options opts;
      if (tbl) M::schema().parse(*tbl, opts, diag, path, module_reserved_keys());
    };
    t.user_processes = [](const toml::table* tbl) -> int {
      if constexpr (requires(const typename M::options& o) { M::user_process_count(o); }) {
        typename M::options opts;
        config::diagnostics diag;
        if (tbl) M::schema().parse(*tbl, opts, diag, "", module_reserved_keys());
        return diag.ok() ? M::user_process_count(opts) : 0;
      } else {
        (void)tbl;
        return 0;
      }
    };
    types_.emplace(t.name, std::move(t));
    return *this;
  }

  const module_type* find(std::string_view name) const {
    auto it = types_.find(std::string(name));
    return it == types_.end() ? nullptr : &it->second;
  }
  const std::map<std::string, module_type>& types() const noexcept { return types_; }

 private:
  std::map<std::string, module_type> types_;
};

}  // namespace swactor

template <class Tag>
struct std::hash<swactor::basic_id<Tag>> {
  std::size_t operator()(swactor::basic_id<Tag> id) const noexcept { return std::hash<std::uint64_t>{}(id.value()); }
};

template <class Tag>
struct fmt::formatter<swactor::basic_id<Tag>> : fmt::formatter<std::uint64_t> {
  template <class Ctx>
  auto format(swactor::basic_id<Tag> id, Ctx& ctx) const {
    return fmt::formatter<std::uint64_t>::format(id.value(), ctx);
  }
};
