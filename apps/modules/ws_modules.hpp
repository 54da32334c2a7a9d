#pragma once
// WebSocket modules: `ws_echo` sends every message back with its opcode (the conformance and
// benchmark target); with `subprotocols` it picks the first of them the client offers.
// `ws_chat` (ws_chat.cpp) is a chat with rooms across every worker: a room is a group
// (ctx.join / ctx.broadcast), and "/to ID text" reaches one client on any worker (ctx.push
// forwards to the process that holds it).

#include <string>
#include <unordered_map>
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
      "WebSocket echo: every message comes back with its opcode. Put it on a ws:// or http:// listener "
      "(or a route of one): upgrade requests to it become WebSockets.";
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

class ws_chat final : public module_base {
 public:
  static constexpr std::string_view kName = "ws_chat";
  static constexpr std::string_view kDoc =
      "WebSocket chat with rooms, across every worker: the room is the URL path after `base_path` "
      "(\"/chat/games\" is room \"games\", \"/chat\" is \"lobby\"), the nickname the `nick` query "
      "parameter. Each text message goes to everyone in the room as JSON "
      "{\"type\":\"message\",\"room\",\"nick\",\"id\",\"text\"}; joins and leaves are announced "
      "({\"type\":\"join\"|\"leave\",...}); \"/to ID text\" goes to one client. A plain GET of the same "
      "path answers a small HTML chat page.";
  struct options {
    std::string base_path = "/chat";
    std::string title = "swactor chat";
  };
  static config::schema<options> schema() {
    config::schema<options> s;
    s.string("base_path", &options::base_path,
             "URL path the rooms are under: BASE is room \"lobby\", BASE/NAME is room NAME.")
        .string("title", &options::title, "Title of the HTML page.");
    return s;
  }
  explicit ws_chat(options o) : opts_(std::move(o)) {}

  bool websocket() const override { return true; }
  task<void> on_request(context& ctx, http::request& req, http::response& res) override;
  task<void> on_handshake(context& ctx, const http::request& req, ws_handshake& hs) override;
  task<void> on_open(context& ctx, session_id s, const http::request& req) override;
  task<void> on_adopt(context& ctx, session_id s, const http::request& req) override;
  task<void> on_message(context& ctx, session_id s, ws_message m) override;
  task<void> on_close(context& ctx, session_id s, std::uint16_t code, std::string reason) override;

  // The room of a request path ("" when the path is not a valid room), and a nickname
  // from the query (a default from the session id when missing or unusable).
  std::string room_of(std::string_view path) const;
  static std::string nick_of(const http::request& req, session_id s);

 private:
  struct member {
    std::string nick, room;
  };
  std::string group_of(std::string_view room) const { return "ws_chat." + instance_name() + "." + std::string(room); }
  options opts_;
  // Nick and room of this process's sessions (rebuilt by on_adopt after a process-mode
  // worker restart); membership itself is a group, held with the connection.
  std::unordered_map<session_id, member> members_;
};

}  // namespace swactor::apps
