// The built-in modules, driven by the module test kit (swactor/actors/testing.hpp): no
// process, no socket; tasks and requests answered by stubs, timers on a manual clock.
#include <catch2/catch.hpp>

#include <chrono>
#include <string>

#include "modules/echo.hpp"
#include "modules/probe.hpp"
#include "modules/ticker.hpp"
#include "swactor/actors/testing.hpp"
#include "swactor/core/channel.hpp"

using namespace std::chrono_literals;
namespace kit = swactor::test_kit;
using swactor::make_error_code;
using swactor::server_errc;
using swactor::bus::payload;

namespace {
// One command line to the probe, its reply line.
std::string ask(kit::harness& h, swactor::session_id s, const std::string& line) {
  h.receive(s, line + "\n");
  return h.ctx().take_sent(s);
}
}  // namespace

// -- echo ----------------------------------------------------------------------------------------

TEST_CASE("echo replies with the framed bytes and echoes datagrams to their sender", "[modules][echo]") {
  kit::module_harness<swactor::apps::echo> h;
  h.start();
  auto s = h.connect();
  h.receive(s, "hello\n");
  h.receive(s, "again\n");
  CHECK(h.ctx().session(s)->sends == std::vector<std::string>{"hello\n", "again\n"});
  CHECK(h.ctx().take_sent(s) == "hello\nagain\n");
  CHECK(h.ctx().take_sent(s).empty());

  h.packet("dgram", {"10.1.2.3:7000", 2});
  h.packet("nowhere", {"", 0});  // an unnamed sender: nothing to reply to
  REQUIRE(h.ctx().datagrams().size() == 1);
  CHECK(h.ctx().datagrams()[0].address == "10.1.2.3:7000");
  CHECK(h.ctx().datagrams()[0].data == "dgram");
  CHECK(h.ctx().datagrams()[0].listener == 2);

  h.close(s);
  CHECK_FALSE(h.ctx().session(s)->open);
  CHECK(h.ctx().send(s, "late") == make_error_code(server_errc::session_not_found));
}

TEST_CASE("task_echo answers through task_wait: the stub, the module's own on_task, a failure",
          "[modules][echo]") {
  kit::module_harness<swactor::apps::task_echo> h(kit::toml_text{"timeout = \"250ms\""});
  auto s = h.connect();

  h.ctx().set_task_stub([](const std::string& p, int) -> swactor::result<std::string> { return "<" + p + ">"; });
  h.receive(s, "one");
  CHECK(h.ctx().take_sent(s) == "<one>");
  REQUIRE(h.ctx().tasks().size() == 1);
  CHECK(h.ctx().tasks()[0].kind == kit::task_call_kind::task_wait);
  CHECK(h.ctx().tasks()[0].payload == "one");

  h.answer_tasks_with_module();
  h.receive(s, "two");
  CHECK(h.ctx().take_sent(s) == "two");

  kit::log_capture logs;
  h.ctx().set_task_stub({});  // default: no task workers
  h.receive(s, "three");
  CHECK(h.ctx().take_sent(s).empty());
  CHECK(logs.contains("task_echo: task for session 1 failed"));

  CHECK(h.run_task("direct").value() == "direct");
}

TEST_CASE("task_echo options are checked by its schema", "[modules][echo]") {
  CHECK(kit::option_errors<swactor::apps::task_echo>(kit::toml_text{"timeout = \"2s\""}).empty());
  CHECK(kit::parse_options<swactor::apps::task_echo>(kit::toml_text{"timeout = \"2s\""}).timeout == 2s);
  CHECK(kit::option_errors<swactor::apps::task_echo>(kit::toml_text{"type = \"task_echo\""}).empty());
  auto unknown = kit::option_errors<swactor::apps::task_echo>(kit::toml_text{"timeuot = \"2s\""});
  CHECK_THAT(unknown, Catch::Contains("timeuot"));
  CHECK_THROWS_AS(kit::module_harness<swactor::apps::task_echo>(kit::toml_text{"timeout = \"0ms\""}),
                  kit::option_error);
  CHECK_THROWS_AS(kit::parse_options<swactor::apps::task_echo>(kit::toml_text{"timeout = "}), kit::option_error);
}

// -- probe: sessions and tasks ------------------------------------------------------------------

TEST_CASE("probe: info, bind, close and reset act on the in-memory session", "[modules][probe]") {
  kit::module_harness<swactor::apps::probe> h;
  h.start();
  h.ctx().set_clock_ms(1000);
  kit::connect_options from;
  from.remote = "10.0.0.7:5555";
  from.listener = 2;
  auto s = h.connect(from);
  h.ctx().set_clock_ms(2500);
  auto info = ask(h, s, "info");
  CHECK_THAT(info, Catch::StartsWith("id=1 remote=10.0.0.7:5555 listener=2 worker=0 reactor=-1 uid=0"));
  CHECK_THAT(info, Catch::Contains("connect_time_ms=1000 last_receive_ms=2500"));
  CHECK(ask(h, s, "bind 42") == "ok\n");
  CHECK(h.ctx().session(s)->info.uid == swactor::user_id(42));
  CHECK_THAT(ask(h, s, "info"), Catch::Contains("uid=42"));
  CHECK_THAT(ask(h, s, "whoami"), Catch::StartsWith("worker 0 pid "));
  CHECK(ask(h, s, "stats") == h.ctx().stats() + "\n");

  CHECK(ask(h, s, "close") == "bye\n");
  CHECK_FALSE(h.ctx().session(s)->open);
  CHECK(h.ctx().session(s)->closed_by_module);
  CHECK_FALSE(h.ctx().session(s)->reset);

  auto r = h.connect();
  CHECK(r != s);
  h.receive(r, "reset\n");
  CHECK(h.ctx().session(r)->reset);
}

TEST_CASE("probe: task_wait and task_wait_all are answered by the stub", "[modules][probe]") {
  kit::module_harness<swactor::apps::probe> h;
  auto s = h.connect();
  // Default stub: the error a worker without task workers gets.
  CHECK(ask(h, s, "task_wait 100 x") == "error: " + make_error_code(server_errc::no_task_workers).message() + "\n");

  h.ctx().set_task_stub([](const std::string& p, int) -> swactor::result<std::string> {
    if (p == "slow") return make_error_code(swactor::errc::timeout);
    if (p == "bad") return make_error_code(server_errc::task_failed);
    return "done:" + p;
  });
  CHECK(ask(h, s, "task_wait 100 hello") == "done:hello\n");
  CHECK(ask(h, s, "task_wait_all 100 a slow bad b") == "done:a timeout error done:b\n");
  REQUIRE(h.ctx().tasks().size() == 6);
  CHECK(h.ctx().tasks()[1].payload == "hello");
  CHECK(h.ctx().tasks()[3].kind == kit::task_call_kind::task_wait_all);
  CHECK(h.ctx().tasks()[3].payload == "slow");
}

TEST_CASE("probe: on_task runs in the harness, a throwing task is task_failed", "[modules][probe]") {
  kit::harness_options task_worker;
  task_worker.role = "task";
  task_worker.worker_id = 2;
  kit::module_harness<swactor::apps::probe> h(swactor::apps::probe::options{}, task_worker);
  CHECK(h.ctx().role() == "task");
  CHECK(h.run_task("plain").value() == "plain");
  CHECK(h.run_task("fail:boom").error() == make_error_code(server_errc::task_failed));

  kit::module_harness<swactor::apps::probe> w;
  w.answer_tasks_with_module();
  auto s = w.connect();
  CHECK(ask(w, s, "task_wait 100 fail:boom") == "error: " + make_error_code(server_errc::task_failed).message() + "\n");
  CHECK(ask(w, s, "task_wait_all 100 a b") == "a b\n");
}

TEST_CASE("probe: send_message is recorded, on_pipe_message fills the inbox", "[modules][probe]") {
  kit::module_harness<swactor::apps::probe> h;
  auto s = h.connect();
  CHECK(ask(h, s, "send_message 3 hi there") == "ok\n");
  REQUIRE(h.ctx().pipe_messages().size() == 1);
  CHECK(h.ctx().pipe_messages()[0].worker_id == 3);
  CHECK(h.ctx().pipe_messages()[0].payload == "hi there");
  CHECK_THAT(ask(h, s, "send_message -1 x"), Catch::StartsWith("error: "));

  h.pipe_message(2, "x");
  h.pipe_message(5, "y");
  CHECK(ask(h, s, "inbox") == "2:x|5:y\n");
}

TEST_CASE("probe: datagrams get their reply by sendto", "[modules][probe]") {
  kit::module_harness<swactor::apps::probe> h;
  h.packet("whoami\n", {"127.0.0.1:6000", 1});
  REQUIRE(h.ctx().datagrams().size() == 1);
  CHECK_THAT(h.ctx().datagrams()[0].data, Catch::StartsWith("worker 0 pid "));
  CHECK(h.ctx().datagrams()[0].address == "127.0.0.1:6000");
}

// -- probe: the bus -----------------------------------------------------------------------------

TEST_CASE("probe: subscribe, then publishes matching the subscription reach on_bus_message", "[modules][probe][bus]") {
  kit::module_harness<swactor::apps::probe> h;
  auto s = h.connect();
  CHECK(ask(h, s, "subscribe room.*") == "ok\n");
  CHECK(h.ctx().subscriptions() == std::vector<std::string>{"room.*"});
  CHECK_THAT(ask(h, s, "subscribe room..x"), Catch::StartsWith("error: "));

  CHECK(h.publish("room.a", payload::raw("hello"), 7));
  CHECK_FALSE(h.publish("room.a.b", payload::raw("deeper")));  // '*' is one token
  CHECK_FALSE(h.publish("lobby", payload::raw("elsewhere")));
  CHECK(h.publish("room.b", payload::of(swactor::apps::probe::note{"typed"}), 8));
  // The runtime drops a tag the instance does not accept, and bytes that do not decode.
  CHECK_FALSE(h.publish("room.c", payload{"other.tag", "x"}));
  CHECK_FALSE(h.publish("room.c", payload{"probe.note", "\x01"}));
  CHECK(h.send_direct(payload::raw("direct"), 9));

  auto inbox = ask(h, s, "bus_inbox");
  CHECK_THAT(inbox, Catch::StartsWith("7 1 room.a hello|8 "));
  CHECK_THAT(inbox, Catch::Contains(" room.b note:typed|9 "));
  CHECK_THAT(inbox, Catch::EndsWith(" - direct\n"));
  CHECK(ask(h, s, "bus_summary") == "total=3 7:1:ordered 8:1:ordered 9:1:ordered\n");

  CHECK(ask(h, s, "unsubscribe room.*") == "ok\n");
  CHECK(h.ctx().subscriptions().empty());
  CHECK_FALSE(h.publish("room.a", payload::raw("after")));
}

TEST_CASE("probe: publish, bus_send and request go through the context", "[modules][probe][bus]") {
  kit::module_harness<swactor::apps::probe> h;
  auto s = h.connect();
  CHECK(ask(h, s, "publish news.a text here") == "ok\n");
  CHECK(ask(h, s, "publish_note news.b noted") == "ok\n");
  CHECK_THAT(ask(h, s, "publish bad..topic x"), Catch::StartsWith("error: "));
  REQUIRE(h.ctx().publishes().size() == 2);
  CHECK(h.ctx().publishes()[0].topic == "news.a");
  CHECK(h.ctx().publishes()[0].message.data == "text here");
  swactor::apps::probe::note n;
  CHECK(h.ctx().publishes()[1].message.tag == "probe.note");
  REQUIRE(swactor::bus::decode(h.ctx().publishes()[1].message.data, n));
  CHECK(n.text == "noted");

  CHECK(ask(h, s, "bus_send 3 psst") == "ok\n");
  // Default request stub: nobody there.
  CHECK(ask(h, s, "request 2 hi 100") == "error: " + make_error_code(server_errc::no_route).message() + "\n");
  h.ctx().set_request_stub([](const swactor::bus::target& to, const payload& m) -> swactor::result<payload> {
    return payload::raw(std::to_string(to.process) + " got " + m.data);
  });
  CHECK(ask(h, s, "request 4 how are you 100") == "4 got how are you\n");
  REQUIRE(h.ctx().bus_calls().size() == 3);
  CHECK(h.ctx().bus_calls()[0].kind == kit::bus_call_kind::send_to);
  CHECK(h.ctx().bus_calls()[0].to.process == 3);
  CHECK(h.ctx().bus_calls()[0].message.data == "psst");
  CHECK(h.ctx().bus_calls()[2].kind == kit::bus_call_kind::request);
  CHECK(h.ctx().bus_calls()[2].to.process == 4);

  // A request to itself, answered by its own on_bus_message.
  h.answer_requests_with_module();
  CHECK(ask(h, s, "request -1 ping 100") == "0:ping\n");
  CHECK(ask(h, s, "request -1 noreply 100") == "error: " + make_error_code(server_errc::no_reply).message() + "\n");
}

TEST_CASE("probe: requests get the handler's reply, no_reply or request_failed", "[modules][probe][bus]") {
  kit::harness_options worker3;
  worker3.worker_id = 3;
  kit::module_harness<swactor::apps::probe> h(swactor::apps::probe::options{}, worker3);
  auto r = h.request(payload::raw("ping"));
  REQUIRE(r);
  CHECK(r->data == "3:ping");
  CHECK(r->sender_module == "probe");
  REQUIRE(h.ctx().replies().size() == 1);

  auto sub = h.request(payload::raw("subscribe:chat.>"));
  REQUIRE(sub);
  CHECK(sub->data == "ok");
  CHECK(h.ctx().subscribed("chat.room.1"));

  auto burst = h.request(payload::raw("burst:chat.x:3"));
  REQUIRE(burst);
  CHECK(burst->data == "ok 3");
  CHECK(h.ctx().publishes().size() == 3);

  CHECK(h.request(payload::raw("noreply")).error() == make_error_code(server_errc::no_reply));
  CHECK(h.request(payload::raw("fail")).error() == make_error_code(server_errc::request_failed));
  CHECK(h.request(payload{"unknown.tag", ""}).error() == make_error_code(server_errc::request_failed));

  // reply() answers a request once; a second reply or a reply to a publish is refused.
  swactor::bus::message req;
  req.kind = swactor::bus::kind::request;
  CHECK_FALSE(h.ctx().reply(req, payload::raw("1")));
  CHECK(h.ctx().reply(req, payload::raw("2")) == make_error_code(server_errc::not_supported));
  CHECK(h.ctx().reply(swactor::bus::message{}, payload::raw("3")) == make_error_code(server_errc::not_supported));
}

// -- ticker: the manual clock ----------------------------------------------------------------------

TEST_CASE("ticker logs once per interval on the manual clock and stops with the worker", "[modules][ticker]") {
  kit::log_capture logs;
  kit::harness_options named;
  named.instance = "heart";
  kit::module_harness<swactor::apps::ticker> h(kit::toml_text{"interval = \"250ms\"\nmessage = \"beat\""}, named);
  h.start();
  REQUIRE(h.timers().list().size() == 1);
  CHECK(h.advance(249ms) == 0);
  CHECK(logs.lines().empty());
  CHECK(h.advance(1ms) == 1);
  CHECK(logs.lines() == std::vector<std::string>{"heart beat #1"});
  CHECK(h.advance(1000ms) == 4);
  REQUIRE(logs.lines().size() == 5);
  CHECK(logs.lines().back() == "heart beat #5");
  h.stop();
  CHECK(h.timers().list().empty());
  CHECK(h.advance(1000ms) == 0);
  CHECK(logs.lines().size() == 5);
}

TEST_CASE("ticker options: a zero interval and unknown keys are errors", "[modules][ticker]") {
  CHECK_THAT(kit::option_errors<swactor::apps::ticker>(kit::toml_text{"interval = \"0ms\""}), Catch::Contains("interval"));
  CHECK_THAT(kit::option_errors<swactor::apps::ticker>(kit::toml_text{"intervl = \"1s\""}), Catch::Contains("intervl"));
  CHECK(kit::parse_options<swactor::apps::ticker>(kit::toml_text{"message = \"m\""}).message == "m");
}

// -- the kit itself --------------------------------------------------------------------------------

namespace {
// Handlers that never finish, each in its own way.
class stuck final : public swactor::module_base {
 public:
  static constexpr std::string_view kName = "stuck";
  struct options {};
  explicit stuck(options) {}
  swactor::task<void> on_receive(swactor::context&, swactor::session_id, std::string msg) override {
    if (msg == "sleep") co_await swactor::sleep(std::chrono::seconds(30));  // real time
    if (msg == "wait") (void)co_await ch_.pop();                        // nobody sends
    if (msg == "throw") throw std::runtime_error("handler threw");
  }
  swactor::channel<int> ch_;
};
}  // namespace

TEST_CASE("the kit fails a stuck handler instead of hanging, and passes on a throw", "[modules][kit]") {
  kit::harness_options quick;
  quick.handler_limit = 50ms;
  kit::module_harness<stuck> h(stuck::options{}, quick);
  auto s = h.connect();
  CHECK_THROWS_AS(h.receive(s, "sleep"), kit::handler_stuck);
  CHECK_THROWS_AS(h.receive(s, "wait"), kit::handler_stuck);
  CHECK_THROWS_WITH(h.receive(s, "throw"), "handler threw");
  h.receive(s, "fine");  // the harness is still usable
}
