#pragma once
// WebSocket modules: `ws_echo` sends every message back with its opcode (the conformance and
// benchmark target); with `subprotocols` it picks the first of them the client offers.
// `ws_chat` is one chat room across every worker: what a client says reaches every client,
// whichever worker holds it (a bus topic per instance), and "/to ID text" reaches one client
// on any worker (ctx.push forwards to the worker that holds it).

#include <charconv>
#include <string>
#include <unordered_set>
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

class ws_chat final : public module_base {
 public:
  static constexpr std::string_view kName = "ws_chat";
  static constexpr std::string_view kDoc =
      "WebSocket chat room across all workers: each text message goes to every client as \"#ID: text\"; "
      "\"/to ID text\" goes to one client; joins and leaves are announced.";
  struct options {
    std::string welcome = "welcome";
  };
  static config::schema<options> schema() {
    config::schema<options> s;
    s.string("welcome", &options::welcome, "First line a client gets, followed by \", you are #ID\".");
    return s;
  }
  explicit ws_chat(options o) : opts_(std::move(o)) {}

  bool websocket() const override { return true; }

  task<void> on_worker_start(context& ctx) override {
    // Every worker's instance hears the room; task workers have no clients.
    if (ctx.role() == "worker") {
      if (auto ec = ctx.subscribe(topic()))
        log::error("ws_chat {}: cannot subscribe to {}: {}", instance_name(), topic(), ec.message());
    }
    co_return;
  }

  task<void> on_open(context& ctx, session_id s, const http::request&) override {
    here_.insert(s);
    (void)ctx.push(s, fmt::format("{}, you are #{}", opts_.welcome, s));
    say(ctx, fmt::format("* #{} joined", s));
    co_return;
  }

  task<void> on_message(context& ctx, session_id s, ws_message m) override {
    std::string_view text = m.data;
    if (text.starts_with("/to ")) {
      text.remove_prefix(4);
      auto space = text.find(' ');
      std::uint64_t id = 0;
      auto [p, ec] = std::from_chars(text.data(), text.data() + (space == std::string_view::npos ? text.size() : space), id);
      if (ec != std::errc{} || space == std::string_view::npos) {
        (void)ctx.push(s, "usage: /to ID text");
        co_return;
      }
      if (auto e = ctx.push(session_id(id), fmt::format("#{} (to you): {}", s, text.substr(space + 1))))
        (void)ctx.push(s, fmt::format("#{}: {}", id, e.message()));
      co_return;
    }
    say(ctx, fmt::format("#{}: {}", s, text));
    co_return;
  }

  task<void> on_close(context& ctx, session_id s, std::uint16_t, std::string) override {
    if (here_.erase(s)) say(ctx, fmt::format("* #{} left", s));
    co_return;
  }

  task<void> on_bus_message(context& ctx, const bus::message& m) override {
    if (m.kind != bus::kind::publish || m.topic != topic()) co_return;
    for (auto s : std::vector<session_id>(here_.begin(), here_.end())) (void)ctx.push(s, m.data);
  }

 private:
  std::string topic() const { return "ws_chat." + instance_name(); }
  void say(context& ctx, std::string line) {
    if (auto ec = ctx.publish(topic(), bus::payload::raw(std::move(line))))
      log::warning("ws_chat {}: publish failed: {}", instance_name(), ec.message());
  }
  options opts_;
  std::unordered_set<session_id> here_;  // this worker's clients
};

}  // namespace swactor::apps
