#pragma once
// WebSocket modules: `ws_echo` sends every message back with its opcode (the conformance and
// benchmark target); with `subprotocols` it picks the first of them the client offers.

#include <string>
#include <vector>

#include "swactor/actors/context.hpp"
#include "swactor/actors/http.hpp"
#include "swactor/actors/module.hpp"
#include "swactor/core/log.hpp"

namespace swactor::apps {

class ws_echo final : public module_base {
 public:
  static constexpr std::string_view kName = "ws_echo";
  static constexpr std::string_view kDoc =
      "WebSocket echo: every message comes back with its opcode. Put it on a ws:// listener (or an "
      "http:// one with a websocket table).";
  struct options {
    std::vector<std::string> subprotocols;
  };
  static config::schema<options> schema() {
    config::schema<options> s;
    s.strings("subprotocols", &options::subprotocols,
              "Subprotocols it speaks, preferred first; the first one the client offers is chosen.");
    return s;
  }
  explicit ws_echo(options o) : opts_(std::move(o)) {}

  bool websocket() const override { return true; }

  task<void> on_handshake(context&, const http::request&, ws_handshake& hs) override {
    for (const auto& p : opts_.subprotocols)
      if (hs.select_protocol(p)) break;
    co_return;
  }

  task<void> on_message(context& ctx, session_id s, ws_message m) override {
    if (auto ec = ctx.push(s, m.data, m.opcode))
      log::debug("ws_echo: push to session {} failed: {}", s, ec.message());
    co_return;
  }

 private:
  options opts_;
};

}  // namespace swactor::apps
