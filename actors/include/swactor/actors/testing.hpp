#pragma once
// The test kit for module authors (docs/modules.md, "Testing a module"): drives a module's
// handlers against an in-memory context, with no process and no socket, from any test
// framework (the kit throws std::runtime_error on misuse and never depends on one).
//
//   swactor::test_kit::module_harness<my_module> h;           // or (test_kit::toml_text{"k = 1"})
//   h.start();                                                // on_worker_start
//   auto s = h.connect();                                     // on_connect
//   h.receive(s, "ping\n");                                   // on_receive_now / on_receive, run to completion
//   CHECK(h.ctx().take_sent(s) == "pong\n");
//   h.advance(std::chrono::seconds(1));                       // ctx.timers(), manual clock
//
// What the context does: sends, closes, binds and datagrams are recorded; task_wait /
// task_wait_all / request are answered by stubs the test sets (default: an error); task(),
// send_message, publish and send_to are recorded and go nowhere (a publish is not looped back
// to the instance: deliver it with h.publish()). ctx.timers() follows a manual clock moved by
// advance(); `co_await sleep(...)` and with_timeout() inside a handler still take real time.
//
// Namespace test_kit, because swactor::testing is the integration harness in tests/.
// Linked from the installed package as swactor::test_kit (part of libswactor_actors).

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "swactor/actors/bus.hpp"
#include "swactor/actors/context.hpp"
#include "swactor/actors/errors.hpp"
#include "swactor/actors/module.hpp"
#include "swactor/core/config.hpp"
#include "swactor/core/error.hpp"
#include "swactor/core/loop.hpp"

namespace swactor::test_kit {

// -- what the context records -----------------------------------------------------------------

struct session_record {
  session_info info;
  std::string delimiter;            // eof framing: payload() drops it from a message's end
  std::string sent;                 // every byte sent, in order (take_sent() empties it)
  std::vector<std::string> sends;   // each send() call
  bool open = true;                 // false after ctx.close() or the peer's close()
  bool closed_by_module = false;    // ctx.close() was called
  bool reset = false;               // ... with reset = true
};

struct datagram {
  std::string address;
  std::string data;
  int listener = -1;
};

enum class task_call_kind { task, task_wait, task_wait_all };
struct task_call {
  task_call_kind kind = task_call_kind::task;
  task_id id;          // task(): the id returned; 0 for the waiting calls
  std::string payload;
  int dst = -1;
};

struct pipe_message {
  int worker_id = 0;
  std::string payload;
};

struct published {
  std::string topic;
  bus::payload message;
  bus::publish_options options;
};

enum class bus_call_kind { send_to, request };
struct bus_call {
  bus_call_kind kind = bus_call_kind::send_to;
  bus::target to;
  bus::payload message;
};

struct bus_reply {
  std::uint64_t request_id = 0;
  bus::payload message;
};

// A task_wait stub: the result for one payload (dst as given to task_wait).
using task_stub = std::function<result<std::string>(const std::string& payload, int dst)>;
// Coroutine form (the harness uses it to answer with the module's own on_task).
using task_handler = std::function<swactor::task<result<std::string>>(std::string payload, int dst)>;
// A request stub: the reply payload, or an error the requester gets.
using request_stub = std::function<result<bus::payload>(const bus::target& to, const bus::payload& message)>;
using request_handler = std::function<swactor::task<result<bus::message>>(bus::target to, bus::payload message)>;

// -- the in-memory context ----------------------------------------------------------------------

class context final : public swactor::context {
 public:
  explicit context(swactor::loop& lp, std::string role = "worker", int worker_id = 0);

  // -- sessions (the harness opens them; a test can too) --
  session_record& open_session(session_info info, std::string delimiter = {});
  // Null when the id was never opened.
  session_record* session(session_id id);
  // What was sent to `id` since the last call (empty for an unknown session).
  std::string take_sent(session_id id);
  const std::map<session_id, session_record>& sessions() const noexcept { return sessions_; }

  // -- recordings --
  const std::vector<datagram>& datagrams() const noexcept { return datagrams_; }
  const std::vector<task_call>& tasks() const noexcept { return tasks_; }
  const std::vector<pipe_message>& pipe_messages() const noexcept { return pipe_messages_; }
  const std::vector<std::string>& subscriptions() const noexcept { return subscriptions_; }
  // True when a current subscription matches `topic` (bus::matches).
  bool subscribed(std::string_view topic) const;
  const std::vector<published>& publishes() const noexcept { return publishes_; }
  const std::vector<bus_call>& bus_calls() const noexcept { return bus_calls_; }
  const std::vector<bus_reply>& replies() const noexcept { return replies_; }
  // Forgets datagrams, tasks, pipe messages, publishes, bus calls and replies (not sessions
  // or subscriptions).
  void clear_records();

  // -- stubs and settings --
  // task_wait and task_wait_all ask this (default: every task fails with no_task_workers).
  void set_task_stub(task_stub fn);
  void set_task_handler(task_handler fn) { task_handler_ = std::move(fn); }
  // request asks this (default: no_route). The reply's sender_module is the target's module.
  void set_request_stub(request_stub fn);
  void set_request_handler(request_handler fn) { request_handler_ = std::move(fn); }
  void set_stats(std::string json) { stats_ = std::move(json); }
  void add_table(std::string name, ipc::table& t) { tables_[std::move(name)] = &t; }
  void set_user_process_ids(std::vector<int> ids) { user_process_ids_ = std::move(ids); }
  // ctx.workers() (default 1).
  void set_workers(int n) noexcept { workers_ = n; }
  int workers() const override { return workers_; }
  // Milliseconds since the epoch reported in session_info (fixed, so tests can assert on it).
  void set_clock_ms(std::int64_t ms) noexcept { clock_ms_ = ms; }
  std::int64_t clock_ms() const noexcept { return clock_ms_; }

  // -- swactor::context --
  std::error_code send(session_id, std::string_view data) override;
  std::error_code sendto(const std::string& address, std::string_view data, int listener = -1) override;
  std::error_code close(session_id, bool reset = false) override;
  result<session_info> info(session_id) override;
  std::string_view payload(session_id, std::string_view message) override;
  std::error_code bind(session_id, user_id uid) override;
  result<task_id> task(std::string payload, int dst = -1) override;
  swactor::task<result<std::string>> task_wait(std::string payload, duration timeout, int dst = -1) override;
  swactor::task<std::vector<result<std::string>>> task_wait_all(std::vector<std::string> payloads,
                                                                duration timeout) override;
  std::error_code send_message(int worker_id, std::string payload) override;
  std::error_code subscribe(std::string_view pattern) override;
  std::error_code unsubscribe(std::string_view pattern) override;
  std::error_code publish(std::string_view topic, bus::payload message,
                          bus::publish_options options = {}) override;
  std::error_code send_to(const bus::target& to, bus::payload message) override;
  swactor::task<result<bus::message>> request(bus::target to, bus::payload message, duration timeout) override;
  std::error_code reply(const bus::message& request, bus::payload message) override;
  std::string stats() override { return stats_; }
  ipc::table* table(std::string_view name) override;
  int user_process_id(int index) const override;

 private:
  std::map<session_id, session_record> sessions_;
  std::vector<datagram> datagrams_;
  std::vector<task_call> tasks_;
  std::vector<pipe_message> pipe_messages_;
  std::vector<std::string> subscriptions_;
  std::vector<published> publishes_;
  std::vector<bus_call> bus_calls_;
  std::vector<bus_reply> replies_;
  task_handler task_handler_;
  request_handler request_handler_;
  std::string stats_;
  std::map<std::string, ipc::table*, std::less<>> tables_;
  std::vector<int> user_process_ids_;
  int workers_ = 1;
  std::uint64_t next_task_ = 1;
  std::int64_t clock_ms_ = 1'700'000'000'000;
};

// -- building a module from option text ------------------------------------------------------

// Option errors (or a TOML syntax error) of module_harness(toml_text{...}) / parse_options.
class option_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The body of a [modules.NAME] table, e.g. `interval = "250ms"`.
struct toml_text {
  std::string text;
};

namespace detail {
// Parses `text` as TOML; throws option_error on a syntax error.
toml::table parse_toml(const std::string& text);
}  // namespace detail

// The options M's schema makes of `text` (reserved keys such as `type` are skipped, as in an
// app config). Throws option_error with the diagnostics ("modules.test.key: ...").
template <class M>
typename M::options parse_options(const toml_text& text) {
  auto tbl = detail::parse_toml(text.text);
  typename M::options opts;
  config::diagnostics diag;
  M::schema().parse(tbl, opts, diag, "modules.test", module_reserved_keys());
  if (!diag.ok()) throw option_error(diag.to_string());
  return opts;
}

// The diagnostics text for `text` ("" when the options are valid).
template <class M>
std::string option_errors(const toml_text& text) {
  try {
    (void)parse_options<M>(text);
  } catch (const option_error& e) {
    return e.what();
  }
  return {};
}

// -- the harness -----------------------------------------------------------------------------------

struct harness_options {
  std::string instance;            // instance_name(); "" = the module's kName
  std::string role = "worker";     // ctx.role(): "worker" or "task"
  int worker_id = 0;
  // Real-time cap for one driving call: a handler still running after this fails the test
  // (throws handler_stuck) instead of hanging it.
  std::chrono::milliseconds handler_limit{5000};
  bool manual_clock = true;        // ctx.timers() on a manual clock (advance())
};

// A driving call whose handler did not finish: it ran past handler_limit, or waits for
// something that can never come (nothing left on the loop that could resume it).
class handler_stuck : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct connect_options {
  std::string remote = "127.0.0.1:40000";
  std::string local = "127.0.0.1:9501";
  int listener = 0;
  std::string delimiter;  // eof framing of the listener, for ctx.payload() ("" = none)
};

// Owns a loop, the in-memory context and a module instance; every driving call runs one
// handler to completion on the loop (an exception it throws reaches the caller), then the
// coroutines it spawned until they suspend. Not copyable or movable (the context and the
// module refer to the loop).
class harness {
 public:
  explicit harness(std::unique_ptr<module_base> module, harness_options opts = {});
  virtual ~harness();
  harness(const harness&) = delete;
  harness& operator=(const harness&) = delete;

  swactor::loop& loop() noexcept { return *loop_; }
  test_kit::context& ctx() noexcept { return *ctx_; }
  swactor::timers& timers() { return loop_->timers(); }
  module_base& base_module() noexcept { return *module_; }

  // -- lifecycle --
  void start();  // on_worker_start
  void stop();   // on_worker_stop

  // -- stream sessions --
  session_id connect(connect_options opts = {});  // a new session, then on_connect
  // on_receive_now, then on_receive if it declined, as the server runs a message of an idle
  // session (updates last_receive_ms).
  void receive(session_id s, std::string message);
  void close(session_id s);  // the peer closes: on_close, and the session is no longer open
  // Redis listeners: one command (args[0] is its name) through on_command, as the connection
  // speaking RESP `protocol` would send it; returns the reply bytes (an error reply when the
  // handler wrote none). The protocol a HELLO switches to is kept for the session's later
  // commands (redis_protocol()).
  std::string command(session_id s, std::vector<std::string> args);
  int redis_protocol(session_id s) const;

  // -- other events --
  void packet(std::string data, packet_info from = {"127.0.0.1:40001", 0});  // on_packet
  // on_task as a task worker runs it: the result, or task_failed when it throws.
  result<std::string> run_task(std::string payload, int src_worker = 0);
  void finish(task_id id, std::string result);  // on_finish
  void pipe_message(int src_worker, std::string payload);  // on_pipe_message
  // task_wait / task_wait_all in the context run this module's own on_task (as if it also
  // served the task workers; probe and task_echo do), instead of the stub.
  void answer_tasks_with_module();
  // ctx.request() is answered by this instance's own on_bus_message (a request to itself).
  void answer_requests_with_module();

  // -- the bus (each as the runtime delivers it: a tagged message the instance does not accept,
  // or whose bytes do not decode, is dropped before the handler) --
  // A publish to `topic`: delivered only when a subscription of the instance matches it.
  // Returns whether on_bus_message ran.
  bool publish(std::string topic, bus::payload message, int sender = 1, std::string sender_module = "peer");
  bool send_direct(bus::payload message, int sender = 1, std::string sender_module = "peer");
  // A request: what the handler replied, or no_reply / request_failed (it threw or the tag was
  // refused), as the requester would see it.
  result<bus::message> request(bus::payload message, int sender = 1, std::string sender_module = "peer");
  // Any message as is (no subscription or tag check); what the handler throws reaches the caller.
  void deliver(const bus::message& m);

  // -- time --
  // Moves the manual clock (harness_options::manual_clock) and runs what falls due; returns
  // the timer callbacks run.
  std::uint64_t advance(std::chrono::milliseconds d);
  // Runs ready handlers of the loop (spawned coroutines) until none is ready.
  void poll();
  // Runs any coroutine on the loop to completion, with the same cap as the handlers.
  void run(swactor::task<void> body, std::string_view what = "coroutine");

 private:
  // A bus message as the runtime would hand it over (seq numbered here).
  bus::message incoming(bus::kind kind, bus::payload message, int sender, std::string sender_module);
  std::uint64_t next_seq_ = 1;
  std::uint64_t next_request_ = 1;
  std::uint64_t next_session_ = 1;
  std::uint64_t next_task_ = 1;
  std::map<session_id, int> redis_protocol_;
  harness_options opts_;
  // ~harness resets the module, then the loop (frames of a stuck handler are destroyed
  // unresumed), then the context.
  std::unique_ptr<swactor::loop> loop_;
  std::unique_ptr<test_kit::context> ctx_;
  std::unique_ptr<module_base> module_;
  result<std::string> run_task_on_module(std::string payload, int src_worker);
};

// The harness for module type M, built from its options or from option text through its
// schema (module_harness<M>(toml_text{"interval = \"1s\""}); errors throw option_error).
template <class M>
class module_harness : public harness {
 public:
  explicit module_harness(typename M::options opts = {}, harness_options h = {})
      : harness(std::make_unique<M>(std::move(opts)), named(std::move(h))) {}
  explicit module_harness(const toml_text& text, harness_options h = {})
      : module_harness(parse_options<M>(text), std::move(h)) {}

  M& module() noexcept { return static_cast<M&>(base_module()); }

 private:
  static harness_options named(harness_options h) {
    if (h.instance.empty()) h.instance = std::string(M::kName);
    return h;
  }
};

// -- log lines ---------------------------------------------------------------------------------------

// Collects the text of every line swactor::log writes (spdlog's default logger) while it
// lives, so a test can assert on what a module logs (the lines still go to the console).
class log_capture {
 public:
  log_capture();
  ~log_capture();
  log_capture(const log_capture&) = delete;
  log_capture& operator=(const log_capture&) = delete;

  std::vector<std::string> lines() const;  // message text, without level or prefix
  bool contains(std::string_view text) const;  // some line contains `text`
  void clear();

 private:
  struct sink;
  std::shared_ptr<sink> sink_;
};

}  // namespace swactor::test_kit
