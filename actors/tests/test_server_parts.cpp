// Server parts that need no process: dispatch selection, config resolution, the worker
// command line, the event runner (order per session, stand-ins), the process layout.

#include <catch2/catch.hpp>

#include <map>
#include <new>

#include "master/reactors.hpp"
#include "proc_layout.hpp"
#include "string_pool.hpp"
#include "swactor/actors/app_config.hpp"
#include "swactor/actors/server.hpp"
#include "swactor/actors/server_state.hpp"
#include "swactor/protocols/http1.hpp"
#include "swactor/protocols/http2.hpp"
#include "swactor/protocols/redis.hpp"
#include "swactor/protocols/websocket.hpp"
#include "worker/event_runner.hpp"

using namespace swactor;

namespace {

struct counting_module final : module_base {
  static constexpr std::string_view kName = "counting";
  static constexpr std::string_view kDoc = "test";
  struct options {
    std::int64_t helpers = 0;
  };
  static config::schema<options> schema() {
    config::schema<options> s;
    s.integer("helpers", &options::helpers, "user processes", 0, 8);
    return s;
  }
  static int user_process_count(const options& o) { return static_cast<int>(o.helpers); }
  static inline int constructed = 0;
  explicit counting_module(options) { ++constructed; }
};

std::optional<app_config> parse(const std::string& text, config::diagnostics& diag) {
  static module_registry reg = [] {
    module_registry r;
    r.add<counting_module>();
    return r;
  }();
  return load_app_config_text(text, "app.toml", reg, diag);
}

}  // namespace

TEST_CASE("config: strings are resolved once into enums, URLs, framing and module indexes", "[config]") {
  config::diagnostics diag;
  counting_module::constructed = 0;
  auto app = parse(R"(
[server]
mode = "process"
dispatch_mode = "ip"
workers = 3
[modules.a]
type = "counting"
helpers = 2
[[listen]]
url = "unix:///tmp/x.sock"
module = "a"
framing = { type = "eof", delimiter = "\r\n" }
[[listen]]
url = "udp://127.0.0.1:9000"
module = "counting"
)", diag);
  REQUIRE(app);
  CHECK(app->server.mode_kind == server_mode::process);
  CHECK(app->process_mode());
  CHECK(app->server.dispatch == dispatch_mode::ip);
  REQUIRE(app->listen.size() == 2);
  CHECK(app->listen[0].endpoint.kind == listen_kind::unix_stream);
  CHECK(app->listen[0].endpoint.path == "/tmp/x.sock");
  CHECK(app->listen[0].framing_options.type == protocols::framing_type::eof);
  CHECK(app->listen[0].framing_options.eof == "\r\n");
  CHECK(app->listen[0].module_index == 0);
  CHECK(app->listen[1].endpoint.kind == listen_kind::udp);
  CHECK(app->listen[1].module_index == 1);  // a built-in type named directly: its own instance
  CHECK(app->user_procs == std::vector<std::pair<int, int>>{{0, 0}, {0, 1}});
  CHECK(app->listen[0].max_queued_messages == 64);
  // Validation and the user-process count come from the schema, not from instances.
  CHECK(counting_module::constructed == 0);
}

TEST_CASE("config: defaults resolve too, bad values are refused with the key", "[config]") {
  config::diagnostics diag;
  auto app = parse(R"(
[[listen]]
url = "tcp://127.0.0.1:1"
module = "counting"
)", diag);
  REQUIRE(app);
  CHECK(app->server.mode_kind == server_mode::base);
  CHECK(app->server.dispatch == dispatch_mode::connection);
  CHECK(app->listen[0].endpoint.kind == listen_kind::tcp);
  CHECK(app->listen[0].endpoint.port == 1);
  config::diagnostics bad;
  CHECK_FALSE(parse("[server]\ndispatch_mode = \"fastest\"\n", bad));
  CHECK(bad.to_string().find("server.dispatch_mode") != std::string::npos);
  config::diagnostics bad2;
  CHECK_FALSE(parse("[[listen]]\nurl = \"tcp://127.0.0.1:1\"\nmodule = \"counting\"\nmax_queued_messages = 0\n", bad2));
  CHECK(bad2.to_string().find("max_queued_messages") != std::string::npos);
  CHECK(app->server.busy_poll_us == 0);  // off unless asked for
  config::diagnostics polled;
  auto with_poll = parse("[server]\nbusy_poll_us = 150\n", polled);
  REQUIRE(with_poll);
  CHECK(with_poll->server.busy_poll_us == 150);
  config::diagnostics bad3;
  CHECK_FALSE(parse("[server]\nbusy_poll_us = 200000\n", bad3));
  CHECK(bad3.to_string().find("server.busy_poll_us") != std::string::npos);
}

TEST_CASE("dispatch: each mode picks as documented", "[dispatch]") {
  std::vector<bool> up = {true, true, true, true};
  std::vector<std::uint32_t> load = {3, 1, 0, 0};
  auto alive = [&](int w) { return up[static_cast<std::size_t>(w)]; };
  auto busy = [&](int w) { return load[static_cast<std::size_t>(w)]; };
  std::uint64_t rr = 0;
  detail::dispatch_input in;
  in.has_connection = true;
  in.session = 10;
  CHECK(detail::pick_worker(dispatch_mode::connection, 4, in, rr, alive, busy) == 2);
  // ip: same address hash, same worker, whatever the session.
  in.ip_hash = 77;
  int by_ip = detail::pick_worker(dispatch_mode::ip, 4, in, rr, alive, busy);
  in.session = 11;
  CHECK(detail::pick_worker(dispatch_mode::ip, 4, in, rr, alive, busy) == by_ip);
  CHECK(by_ip == 77 % 4);
  // uid: the bound uid decides; unbound falls back to the session.
  in.uid = 6;
  CHECK(detail::pick_worker(dispatch_mode::uid, 4, in, rr, alive, busy) == 2);
  in.uid = 0;
  CHECK(detail::pick_worker(dispatch_mode::uid, 4, in, rr, alive, busy) == 3);
  // round_robin skips a dead worker.
  up[1] = false;
  rr = 0;
  std::vector<int> seen;
  for (int i = 0; i < 4; ++i) seen.push_back(detail::pick_worker(dispatch_mode::round_robin, 4, in, rr, alive, busy));
  CHECK(seen == std::vector<int>{0, 2, 3, 0});
  // idle: the least loaded live worker; among equals the first from the cursor, which
  // advances by one per pick (load 3, dead, 0, 0).
  rr = 0;
  CHECK(detail::pick_worker(dispatch_mode::idle, 4, in, rr, alive, busy) == 2);
  CHECK(detail::pick_worker(dispatch_mode::idle, 4, in, rr, alive, busy) == 2);  // from w1 (dead)
  CHECK(detail::pick_worker(dispatch_mode::idle, 4, in, rr, alive, busy) == 2);  // from w2
  CHECK(detail::pick_worker(dispatch_mode::idle, 4, in, rr, alive, busy) == 3);  // from w3
  CHECK(rr == 4);
  // ip without a connection (a datagram): round robin.
  detail::dispatch_input none;
  rr = 0;
  CHECK(detail::pick_worker(dispatch_mode::ip, 4, none, rr, alive, busy) == 0);
}

TEST_CASE("worker command line: built and parsed by the same code", "[worker_args]") {
  worker_args w;
  w.role = proc_role::task;
  w.id = 5;
  w.ipc_fd = 7;
  w.config_fd = 8;
  w.state_fd = 9;
  w.listen_fds = {10, 11};
  w.table_fds = {12};
  w.config_name = "my app.toml";
  auto argv = w.to_argv("/usr/bin/swactor");
  REQUIRE(argv.size() > 2);
  CHECK(argv[1] == "worker");
  std::string err;
  auto back = worker_args::parse(std::vector<std::string>(argv.begin() + 2, argv.end()), err);
  REQUIRE(back);
  CHECK(back->role == proc_role::task);
  CHECK(back->id == 5);
  CHECK(back->listen_fds == std::vector<int>{10, 11});
  CHECK(back->reactor_fds.empty());
  CHECK(back->table_fds == std::vector<int>{12});
  CHECK(back->config_name == "my app.toml");
  CHECK(w.inherited_fds() == std::vector<int>{7, 8, 9, 10, 11, 12});
  CHECK_FALSE(worker_args::parse({"--role", "boss", "--id", "1"}, err));
  CHECK(err.find("--role") != std::string::npos);
  CHECK_FALSE(worker_args::parse({"--id", "x"}, err));
  CHECK_FALSE(worker_args::parse({"--role", "worker"}, err));
  CHECK(err.find("required") != std::string::npos);
  CHECK_FALSE(worker_args::parse({"--listen-fds", "1,,2"}, err));
}

TEST_CASE("process layout: one place for server-wide ids", "[layout]") {
  app_config app;
  app.server.workers = 2;
  app.server.task_workers = 3;
  app.user_procs = {{0, 0}};
  detail::proc_layout l(app);
  CHECK(l.total() == 6);
  CHECK(l.role_of(1) == proc_role::worker);
  CHECK(l.role_of(2) == proc_role::task);
  CHECK(l.index_of(4) == 2);
  CHECK(l.role_of(5) == proc_role::user);
  CHECK(l.id_of(proc_role::task, 1) == 3);
  CHECK(l.name(5) == "user#0");
  CHECK(l.name(3) == "task#1");
  CHECK_FALSE(l.valid(6));
  CHECK_FALSE(l.valid(-1));
}

namespace {

// Runs what is ready; parked runners keep the context busy, so io.run() would not return.
void settle(asio::io_context& io) {
  io.restart();
  while (io.poll() > 0) {
  }
}

struct recording_host final : detail::handler_host {
  asio::io_context& io;
  std::vector<std::string> log;
  std::vector<session_id> lows;
  explicit recording_host(asio::io_context& i) : io(i) {}
  task<void> run_message(session_id s, std::string data) {
    // A handler that suspends: later events of the session must still wait for it.
    co_await asio::post(io, asio::use_awaitable);
    log.push_back("msg " + std::to_string(s.value()) + " " + data);
  }
  task<void> note(std::string what) {
    log.push_back(std::move(what));
    co_return;
  }
  std::optional<task<void>> handler_for(detail::event_kind k, std::uint8_t, session_id s, int,
                                        std::string& data) override {
    switch (k) {
      case detail::event_kind::open: return note("open " + std::to_string(s.value()));
      case detail::event_kind::message: return run_message(s, std::move(data));
      case detail::event_kind::closed: return note("close " + std::to_string(s.value()));
    }
    return std::nullopt;
  }
  void handler_done(detail::event_kind, session_id, int, std::exception_ptr) override {}
  void queue_low(session_id s) override { lows.push_back(s); }
};

}  // namespace

TEST_CASE("event runner: per session in order, one handler at a time, close last", "[runner]") {
  asio::io_context io;
  recording_host host(io);
  detail::event_runner runner(io, host);
  session_id a(1), b(2);
  runner.open(a, 0, "1.2.3.4:5", 1000, -1);
  runner.message(a, 0, "x");
  runner.open(b, 0, "peer", 1000, -1);
  runner.message(b, 0, "y");
  CHECK(runner.message(a, 0, "z") == 3);  // open, x, z wait: nothing ran yet
  runner.closed(a, 0);
  REQUIRE(runner.info(a));
  CHECK(runner.info(a)->remote == "1.2.3.4:5");
  CHECK(runner.bind(a, user_id(9)));
  CHECK(runner.info(a)->uid == user_id(9));
  settle(io);
  std::vector<std::string> only_a;
  for (auto& l : host.log)
    if (l.find(" 1") != std::string::npos) only_a.push_back(l);
  CHECK(only_a == std::vector<std::string>{"open 1", "msg 1 x", "msg 1 z", "close 1"});
  CHECK(!runner.info(a));  // closed and drained: gone
  CHECK(runner.contains(b));  // still open
  CHECK(runner.running().count() == 0);
}

TEST_CASE("event runner: a stand-in without an open lives only while it has events", "[runner]") {
  asio::io_context io;
  recording_host host(io);
  detail::event_runner runner(io, host);
  session_id s(5);
  runner.message(s, 0, "only");  // round_robin: another worker saw the open
  REQUIRE(runner.info(s));
  CHECK(runner.info(s)->listener == 0);
  settle(io);
  CHECK(host.log == std::vector<std::string>{"msg 5 only"});
  CHECK(!runner.info(s));
  CHECK(runner.sessions() == 0);
}

TEST_CASE("event runner: the stand-in's protocol comes from conn_open, then follows the event kinds",
          "[runner]") {
  CHECK(detail::known_protocol("h2") == "h2");
  CHECK(detail::known_protocol("length") == "length");
  CHECK(detail::known_protocol("spdy/3").empty());
  CHECK(detail::protocol_of_kind(0).empty());  // every framing codec's kind
  CHECK(detail::protocol_of_kind(static_cast<std::uint8_t>(protocols::http1::ev::body)) == "http/1.1");
  CHECK(detail::protocol_of_kind(static_cast<std::uint8_t>(protocols::http2::ev::reset)) == "h2");
  CHECK(detail::protocol_of_kind(static_cast<std::uint8_t>(protocols::websocket::ev::close)) == "websocket");
  CHECK(detail::protocol_of_kind(static_cast<std::uint8_t>(protocols::redis::ev::inline_command)) == "redis");
  CHECK(detail::protocol_of_kind(200).empty());

  asio::io_context io;
  recording_host host(io);
  detail::event_runner runner(io, host);
  session_id s(7);
  runner.open(s, 0, "p", 0, 0, {}, {}, detail::known_protocol("http/1.1"));
  REQUIRE(runner.info(s));
  CHECK(runner.info(s)->protocol == "http/1.1");
  runner.message(s, 0, "req", static_cast<std::uint8_t>(protocols::http1::ev::request));
  CHECK(runner.info(s)->protocol == "http/1.1");
  // An h2c upgrade: the next events are streams.
  runner.message(s, 0, "stream", static_cast<std::uint8_t>(protocols::http2::ev::request));
  CHECK(runner.info(s)->protocol == "h2");
  runner.message(s, 0, "framed", 0);  // kind 0 says nothing: unchanged
  CHECK(runner.info(s)->protocol == "h2");
  runner.set_protocol(s, "websocket");
  CHECK(runner.info(s)->protocol == "websocket");
  settle(io);
}

TEST_CASE("event runner: info() gives back every field of the stand-in", "[runner]") {
  asio::io_context io;
  recording_host host(io);
  detail::event_runner runner(io, host);
  runner.set_worker(3);
  auto tls = std::make_shared<tls_info>();
  tls->sni = "example.org";
  session_id a(11), b(12);
  runner.open(a, 2, "10.0.0.1:4000", 1234, 1, "10.0.0.9:8080", tls, "websocket");
  runner.open(b, 2, "10.0.0.2:4001", 1235, 0, "10.0.0.9:8080");
  CHECK(runner.bind(a, user_id(77)));
  runner.message(a, 2, "m", static_cast<std::uint8_t>(protocols::websocket::ev::text));
  auto i = runner.info(a);
  REQUIRE(i);
  CHECK(i->id == a);
  CHECK(i->remote == "10.0.0.1:4000");
  CHECK(i->local == "10.0.0.9:8080");
  CHECK(i->listener == 2);
  CHECK(i->connect_time_ms == 1234);
  CHECK(i->last_receive_ms > 0);
  CHECK(i->worker == 3);
  CHECK(i->reactor == 1);
  CHECK(i->uid == user_id(77));
  REQUIRE(i->tls);
  CHECK(i->tls->sni == "example.org");
  CHECK(i->protocol == "websocket");
  CHECK(runner.remote_of(b) == "10.0.0.2:4001");
  CHECK(runner.info(b)->local == "10.0.0.9:8080");
  CHECK(runner.info(b)->tls == nullptr);
  CHECK(runner.info(b)->last_receive_ms == 0);
  CHECK(runner.remote_of(session_id(99)).empty());
  settle(io);
  runner.closed(a, 2);
  runner.closed(b, 2);
  settle(io);
  CHECK(runner.sessions() == 0);
  CHECK(runner.opened_sessions() == 0);
}

TEST_CASE("string pool: one counted copy per distinct string, freed by its last release", "[runner]") {
  detail::string_pool pool;
  CHECK(pool.acquire("") == nullptr);
  pool.release(nullptr);
  CHECK(detail::string_pool::view(nullptr).empty());
  const auto* a = pool.acquire("/chat");
  const auto* b = pool.acquire(std::string("/chat"));
  const auto* c = pool.acquire("/feed?token=1");
  CHECK(a == b);
  CHECK(*a == "/chat");
  CHECK(detail::string_pool::view(c) == "/feed?token=1");
  CHECK(pool.size() == 2);
  pool.release(a);
  CHECK(pool.size() == 2);
  CHECK(*b == "/chat");  // still held once
  pool.release(b);
  pool.release(c);
  CHECK(pool.size() == 0);
  CHECK(pool.acquire("/chat") != nullptr);
  CHECK(pool.size() == 1);
}

namespace {
task<void> set_flag(bool& flag) {
  flag = true;
  co_return;
}
}  // namespace

TEST_CASE("event runner: run_beside runs outside the session order and counts in running()", "[runner]") {
  asio::io_context io;
  recording_host host(io);
  detail::event_runner runner(io, host);
  session_id s(4);
  runner.open(s, 0, "p", 0, -1);
  runner.message(s, 0, "first");  // suspends once (recording_host posts)
  bool ran = false;
  runner.run_beside(set_flag(ran));
  CHECK(runner.running().count() == 2);  // the session, and the job
  settle(io);
  CHECK(ran);
  CHECK(host.log == std::vector<std::string>{"open 4", "msg 4 first"});
  CHECK(runner.running().count() == 0);
  // A parked runner takes the next job.
  const auto runners = runner.runners();
  bool again = false;
  runner.run_beside(set_flag(again));
  settle(io);
  CHECK(again);
  CHECK(runner.runners() == runners);
  // A burst of jobs, a runner each.
  bool one = false, two = false;
  runner.run_beside(set_flag(one));
  runner.run_beside(set_flag(two));
  CHECK(runner.running().count() == 2);
  settle(io);
  CHECK((one && two));
  CHECK(runner.running().count() == 0);
}

TEST_CASE("event runner: message_lent events reach their handlers whole and in order, taken inline or queued",
          "[runner]") {
  asio::io_context io;
  recording_host host(io);
  detail::event_runner runner(io, host);
  runner.set_inline_start(true);
  session_id s(5);
  runner.open(s, 0, "p", 0, -1);
  settle(io);  // the open ran, its runner is parked
  std::string buf = "lent";
  // Taken inline by the parked runner through the runner's scratch (no queued copy).
  runner.message_lent(s, 0, buf, 0);
  buf = "XXXX";  // the caller's buffer is reused at once
  std::string second = "copy";
  // The session is running (its handler suspended): queued with a copy of its own.
  runner.message_lent(s, 0, second, 0);
  second = "YYYY";
  settle(io);
  CHECK(host.log == std::vector<std::string>{"open 5", "msg 5 lent", "msg 5 copy"});
  CHECK(runner.running().count() == 0);
}

TEST_CASE("event runner: a paused session is resumed once a queued event is taken", "[runner]") {
  asio::io_context io;
  recording_host host(io);
  detail::event_runner runner(io, host);
  session_id s(3);
  runner.open(s, 0, "p", 0, -1);
  runner.message(s, 0, "1");
  runner.note_paused(s);
  settle(io);
  CHECK(host.lows == std::vector<session_id>{s});
}

namespace {

// Base-mode handlers driven by the message text: "sync" ends at once, "wait" suspends once,
// "close" closes its own session from inside the handler, "poke" sends a "sync" message to
// session 2 from inside the handler (a nested direct run on the same stack).
struct scripted_host final : detail::handler_host {
  asio::io_context& io;
  detail::event_runner* runner = nullptr;
  std::vector<std::string> log;
  explicit scripted_host(asio::io_context& i) : io(i) {}
  task<void> run(session_id s, std::string data) {
    const auto who = std::to_string(s.value());
    if (data == "close") runner->closed(s, 0);
    if (data == "poke") runner->message(session_id(2), 0, "sync");
    if (data == "wait") co_await asio::post(io, asio::use_awaitable);
    log.push_back("msg " + who + " " + data);
  }
  task<void> note(std::string what) {
    log.push_back(std::move(what));
    co_return;
  }
  std::optional<task<void>> handler_for(detail::event_kind k, std::uint8_t, session_id s, int,
                                        std::string& data) override {
    if (k == detail::event_kind::message) return run(s, std::move(data));
    if (k == detail::event_kind::closed) return note("close " + std::to_string(s.value()));
    return std::nullopt;
  }
  void handler_done(detail::event_kind, session_id, int, std::exception_ptr) override {}
  void queue_low(session_id) override {}
};

}  // namespace

namespace {
// An event runner over scripted_host whose handlers start inline, with a parked runner for
// each of sessions 1..3 (the first events of a fresh runner are posted, not inline), and an
// empty log. `stand_ins`: process mode, the sessions opened first.
struct scripted_runner {
  asio::io_context io;
  scripted_host host{io};
  detail::event_runner runner{io, host};
  explicit scripted_runner(bool stand_ins) {
    host.runner = &runner;
    runner.set_inline_start(true);
    runner.set_keep_stand_ins(stand_ins);
    for (std::uint64_t i = 1; stand_ins && i <= 3; ++i) runner.open(session_id(i), 0, "peer", 0, 0);
    for (std::uint64_t i = 1; i <= 3; ++i) runner.message(session_id(i), 0, "wait");
    settle(io);
    REQUIRE(runner.runners() >= 3);
    host.log.clear();
  }
};
}  // namespace

TEST_CASE("event runner: base mode runs a session's first event without state, in order when it suspends",
          "[runner]") {
  scripted_runner fx(false);
  auto& [io, host, runner] = fx;
  session_id a(1);

  SECTION("a handler that ends at once leaves no state behind") {
    CHECK(runner.message(a, 0, "sync") == 0);
    CHECK(host.log == std::vector<std::string>{"msg 1 sync"});
    CHECK(runner.sessions() == 0);
    CHECK(runner.running().count() == 0);
  }
  SECTION("a handler that suspends holds the session's later events behind it") {
    CHECK(runner.message(a, 0, "wait") == 0);
    CHECK(runner.sessions() == 1);  // made when it suspended
    CHECK_FALSE(runner.idle_for_inline(a));
    CHECK(runner.message(a, 0, "sync") == 1);
    runner.closed(a, 0);
    settle(io);
    CHECK(host.log == std::vector<std::string>{"msg 1 wait", "msg 1 sync", "close 1"});
    CHECK(runner.sessions() == 0);
    CHECK(runner.running().count() == 0);
  }
  SECTION("a close from inside the handler runs after it") {
    runner.message(a, 0, "close");
    settle(io);
    CHECK(host.log == std::vector<std::string>{"msg 1 close", "close 1"});
    CHECK(runner.sessions() == 0);
  }
  SECTION("a handler that starts another session's handler inline") {
    runner.message(a, 0, "poke");
    settle(io);
    CHECK(host.log == std::vector<std::string>{"msg 2 sync", "msg 1 poke"});
    CHECK(runner.sessions() == 0);
    CHECK(runner.running().count() == 0);
  }
  SECTION("lent bytes on the direct path") {
    std::string buf = "sync";
    runner.message_lent(a, 0, buf, 0);
    buf = "XXXX";
    CHECK(host.log == std::vector<std::string>{"msg 1 sync"});
  }
}

TEST_CASE("event runner: process mode hands a quiet session's event straight to a parked runner, in order",
          "[runner]") {
  scripted_runner fx(true);  // process mode: stand-ins kept
  auto& [io, host, runner] = fx;
  session_id a(1), b(2), c(3);

  SECTION("an event that ends at once runs before message() returns; the stand-in stays") {
    CHECK(runner.message(a, 0, "sync") == 0);
    CHECK(host.log == std::vector<std::string>{"msg 1 sync"});
    CHECK(runner.contains(a));
    REQUIRE(runner.info(a));
    CHECK(runner.info(a)->last_receive_ms > 0);
    CHECK(runner.running().count() == 0);
    CHECK(runner.idle_for_inline(a));
  }
  SECTION("a handler that suspends holds the session's later events and its close behind it") {
    CHECK(runner.message(a, 0, "wait") == 0);
    CHECK_FALSE(runner.idle_for_inline(a));
    CHECK(runner.message(a, 0, "sync") == 1);
    runner.closed(a, 0);
    CHECK(host.log.empty());
    settle(io);
    CHECK(host.log == std::vector<std::string>{"msg 1 wait", "msg 1 sync", "close 1"});
    CHECK_FALSE(runner.contains(a));
    CHECK(runner.running().count() == 0);
  }
  SECTION("a close from inside the handler, and another session's handler started inline") {
    runner.message(a, 0, "close");
    runner.message(c, 0, "poke");
    settle(io);
    CHECK(host.log == std::vector<std::string>{"msg 1 close", "close 1", "msg 2 sync", "msg 3 poke"});
    CHECK_FALSE(runner.contains(a));
    CHECK(runner.contains(b));
    CHECK(runner.running().count() == 0);
  }
}

namespace {

// A server_state with a registry after it, as the master lays out its shared mapping.
struct state_with_registry {
  explicit state_with_registry(std::uint64_t slots)
      : bytes(new (std::align_val_t(alignof(swactor::server_state)))
                  std::byte[sizeof(swactor::server_state) + swactor::server_state::session_registry_bytes(slots)]()) {
    st = new (bytes) swactor::server_state();
    st->session_slots = slots;
  }
  ~state_with_registry() {
    st->~server_state();
    ::operator delete[](bytes, std::align_val_t(alignof(swactor::server_state)));
  }
  std::byte* bytes;
  swactor::server_state* st;
};

}  // namespace

TEST_CASE("session registry: add, find, remove, purge a dead process, a full probe window", "[session_registry]") {
  using swactor::server_state;
  CHECK(server_state::session_slots_for(0) == 1024);
  CHECK(server_state::session_slots_for(10000) == 65536);
  CHECK(server_state::session_slots_for(std::uint64_t{1} << 40) == std::uint64_t{1} << 24);

  server_state plain;  // no registry (unit tests of other parts): nothing is found, nothing breaks
  plain.add_session(5, 1);
  CHECK_FALSE(plain.has_session(5));

  state_with_registry r(1024);
  auto& s = *r.st;
  // Base-mode ids from two workers and process-mode ids, from two processes.
  std::vector<std::uint64_t> mine, theirs;
  for (std::uint64_t i = 1; i <= 200; ++i) {
    mine.push_back((i << 10) | 1);
    theirs.push_back(i + 1000000);
    s.add_session(mine.back(), 100);
    s.add_session(theirs.back(), 200);
  }
  for (auto id : mine) CHECK(s.has_session(id));
  for (auto id : theirs) CHECK(s.has_session(id));
  CHECK_FALSE(s.has_session(0));
  CHECK_FALSE(s.has_session(424242));
  CHECK(s.session_registry_full.load() == 0);

  // Removing one leaves its probe neighbours findable (no early stop at the hole).
  for (std::size_t i = 0; i < mine.size(); i += 2) s.remove_session(mine[i]);
  for (std::size_t i = 0; i < mine.size(); ++i) CHECK(s.has_session(mine[i]) == (i % 2 == 1));
  for (auto id : theirs) CHECK(s.has_session(id));

  // Process 200 died without removing anything.
  CHECK(s.purge_sessions(200) == theirs.size());
  for (auto id : theirs) CHECK_FALSE(s.has_session(id));
  for (std::size_t i = 1; i < mine.size(); i += 2) CHECK(s.has_session(mine[i]));
  CHECK(s.purge_sessions(200) == 0);

  // Ids that all hash into one window: beyond kSessionProbe of them are counted, not stored.
  state_with_registry small(1024);
  std::vector<std::uint64_t> same;
  for (std::uint64_t id = 1; same.size() < server_state::kSessionProbe + 3; ++id)
    if (server_state::session_home(id, 1024) == 7) same.push_back(id);
  for (auto id : same) small.st->add_session(id, 1);
  CHECK(small.st->session_registry_full.load() == 3);
  for (std::size_t i = 0; i < same.size(); ++i)
    CHECK(small.st->has_session(same[i]) == (i < static_cast<std::size_t>(server_state::kSessionProbe)));
  // A removal frees a place in the window for the next one.
  small.st->remove_session(same[0]);
  small.st->add_session(same.back(), 1);
  CHECK(small.st->has_session(same.back()));
}
