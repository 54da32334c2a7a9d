// A WebSocket module for the tests of the handshake hooks and control frames (test_websocket.cpp):
// on_handshake refuses or decorates by the request path, messages are echoed, and a delivered
// ping or pong comes back as a text message "ping:PAYLOAD" / "pong:PAYLOAD".
#include <swactor/actors/context.hpp>
#include <swactor/actors/http.hpp>
#include <swactor/actors/plugin.hpp>

namespace {

class ws_hooks final : public swactor::module_base {
 public:
  static constexpr std::string_view kName = "ws_hooks";
  static constexpr std::string_view kDoc = "Test module: handshake refusals by path, echo, pings and pongs echoed as text.";
  struct options {};
  static swactor::config::schema<options> schema() { return {}; }
  explicit ws_hooks(options) {}

  bool websocket() const override { return true; }

  swactor::task<void> on_handshake(swactor::context&, const swactor::http::request& req,
                                   swactor::ws_handshake& hs) override {
    auto path = req.path();
    if (path == "/refuse401") {
      hs.add_header("WWW-Authenticate", "Basic realm=\"ws\"");
      hs.refuse(401, "who are you\n");
    } else if (path == "/redirect") {
      hs.add_header("Location", "/elsewhere");
      hs.refuse(302);
    } else if (path == "/busy") {
      hs.add_header("Retry-After", "7");
      hs.refuse(503, "busy\n");
    } else if (path == "/odd") {
      hs.refuse(200);  // not a refusal status: answered 403
    } else {
      hs.add_header("X-Handshake", "yes");
      hs.set_cookie("sid=abc123; Path=/; HttpOnly");
    }
    co_return;
  }

  swactor::task<void> on_message(swactor::context& ctx, swactor::session_id s, swactor::ws_message m) override {
    (void)ctx.push(s, m.data, m.opcode);
    co_return;
  }
  swactor::task<void> on_ping(swactor::context& ctx, swactor::session_id s, std::string payload) override {
    (void)ctx.push(s, "ping:" + payload, swactor::ws_opcode::text);
    co_return;
  }
  swactor::task<void> on_pong(swactor::context& ctx, swactor::session_id s, std::string payload) override {
    (void)ctx.push(s, "pong:" + payload, swactor::ws_opcode::text);
    co_return;
  }
};

void register_types(swactor::module_registry& r) { r.add<ws_hooks>(); }

}  // namespace

SWACTOR_PLUGIN(register_types)
