// ws_chat: rooms are groups (the engine fans a broadcast out to every process that holds a
// member), so this module keeps no list of who is where and works the same in both modes.

#include <charconv>

#include <nlohmann/json.hpp>

#include "swactor/actors/html.hpp"
#include "modules/ws_modules.hpp"

namespace swactor::apps {
namespace {

using nlohmann::json;

// Room and nick characters: what reads well in a URL and a chat line without escaping.
bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
         c == '.';
}

bool valid_name(std::string_view s, std::size_t max) {
  if (s.empty() || s.size() > max) return false;
  for (char c : s)
    if (!name_char(c)) return false;
  return true;
}

std::string to_text(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }


// The page: without a nick it asks for one (and a room); with one it opens a WebSocket to
// its own URL. @TITLE@ and @BASE@ are filled in (escaped) per request.
constexpr std::string_view kPage = R"html(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>@TITLE@</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px system-ui,sans-serif;margin:0;display:flex;flex-direction:column;height:100vh}
header{padding:.5em 1em;background:#234;color:#fff}#log{flex:1;overflow:auto;padding:.5em 1em;margin:0;list-style:none}
#log li.note{color:#777}#log li.me b{color:#06c}form{display:flex;gap:.5em;padding:.5em 1em;border-top:1px solid #ccc}
form input[type=text]{flex:1;padding:.4em}
</style></head><body>
<header><b>@TITLE@</b> <span id="where"></span> <small id="status">not connected</small></header>
<ul id="log"></ul>
<form id="join" hidden><input type="text" id="nick" placeholder="nickname" maxlength="24" required>
<input type="text" id="room" placeholder="room (lobby)" maxlength="32"><button>Join</button></form>
<form id="say" hidden><input type="text" id="text" placeholder="message, or /to ID text" autocomplete="off">
<button>Send</button></form>
<script>
const base = "@BASE@", q = new URLSearchParams(location.search), log = document.getElementById("log");
function line(text, cls) {
  const li = document.createElement("li");
  if (cls) li.className = cls;
  li.textContent = text;
  log.appendChild(li);
  log.scrollTop = log.scrollHeight;
  return li;
}
if (!q.get("nick")) {
  const f = document.getElementById("join");
  f.hidden = false;
  f.onsubmit = e => {
    e.preventDefault();
    const room = document.getElementById("room").value.trim();
    location.href = base + (room ? "/" + encodeURIComponent(room) : "") + "?nick=" +
                    encodeURIComponent(document.getElementById("nick").value.trim());
  };
} else {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host +
                           location.pathname + location.search);
  let me = 0;
  window.chat = ws;
  ws.onopen = () => {
    document.getElementById("status").textContent = "connected" + (ws.extensions ? " (" + ws.extensions + ")" : "");
    document.getElementById("say").hidden = false;
  };
  ws.onclose = e => {
    document.getElementById("status").textContent = "closed (" + e.code + (e.reason ? " " + e.reason : "") + ")";
  };
  ws.onmessage = e => {
    const m = JSON.parse(e.data);
    if (m.type === "welcome") {
      me = m.id;
      document.getElementById("where").textContent = "#" + m.room + " as " + m.nick;
      line("welcome, " + m.nick + " (#" + m.id + ")", "note");
    } else if (m.type === "join" || m.type === "leave") {
      line(m.nick + " (#" + m.id + ") " + (m.type === "join" ? "joined" : "left"), "note");
    } else if (m.type === "message") {
      const li = line(": " + m.text, m.id === me ? "me" : "");
      const b = document.createElement("b");
      b.textContent = m.nick;
      li.prepend(b);
    } else if (m.type === "private") {
      line(m.nick + " (#" + m.id + ", to you): " + m.text);
    } else if (m.type === "error") {
      line(m.text, "note");
    }
  };
  document.getElementById("say").onsubmit = e => {
    e.preventDefault();
    const t = document.getElementById("text");
    if (t.value && ws.readyState === 1) ws.send(t.value);
    t.value = "";
  };
}
</script></body></html>
)html";

}  // namespace

std::string ws_chat::room_of(std::string_view path) const {
  std::string_view rest = path;
  std::string_view base = opts_.base_path;
  while (!base.empty() && base.back() == '/') base.remove_suffix(1);
  if (rest.starts_with(base) && (rest.size() == base.size() || rest[base.size()] == '/')) rest.remove_prefix(base.size());
  while (!rest.empty() && rest.front() == '/') rest.remove_prefix(1);
  while (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.empty()) return "lobby";
  return valid_name(rest, 32) ? std::string(rest) : std::string();
}

std::string ws_chat::nick_of(const http::request& req, session_id s) {
  auto n = req.query_param("nick");
  if (n && valid_name(*n, 24)) return std::string(*n);
  return "guest-" + std::to_string(s.value());
}

task<void> ws_chat::on_request(context&, http::request& req, http::response& res) {
  if (req.method() != "GET" && req.method() != "HEAD") {
    (void)res.status(405).set_header("Allow", "GET, HEAD").end("only GET\n");
    co_return;
  }
  if (room_of(req.path()).empty()) {
    (void)res.status(404).set_header("Content-Type", "text/plain; charset=utf-8")
        .end("no such room: names are 1-32 of A-Z a-z 0-9 _ - .\n");
    co_return;
  }
  std::string page(kPage);
  auto fill = [&page](std::string_view key, const std::string& value) {
    for (auto at = page.find(key); at != std::string::npos; at = page.find(key, at + value.size()))
      page.replace(at, key.size(), value);
  };
  fill("@TITLE@", http::html_escape(opts_.title));
  fill("@BASE@", http::html_escape(opts_.base_path));
  (void)res.set_header("Content-Type", "text/html; charset=utf-8").set_header("Cache-Control", "no-cache").end(page);
}

task<void> ws_chat::on_handshake(context&, const http::request& req, ws_handshake& hs) {
  if (room_of(req.path()).empty()) hs.refuse(404, "no such room\n");
  co_return;
}

task<void> ws_chat::on_open(context& ctx, session_id s, const http::request& req) {
  member m{nick_of(req, s), room_of(req.path())};
  auto group = group_of(m.room);
  if (auto ec = ctx.join(group, s)) {
    log::warning("ws_chat {}: session {} cannot join {}: {}", instance_name(), s, group, ec.message());
    (void)ctx.disconnect(s, 1011, "cannot join the room");
    co_return;
  }
  (void)ctx.push(s, to_text({{"type", "welcome"}, {"id", s.value()}, {"nick", m.nick}, {"room", m.room},
                             {"worker", ctx.worker_id()}}));
  (void)ctx.broadcast(group, to_text({{"type", "join"}, {"id", s.value()}, {"nick", m.nick}, {"room", m.room}}));
  members_[s] = std::move(m);
  co_return;
}

task<void> ws_chat::on_adopt(context&, session_id s, const http::request& req) {
  // Still in its room's group (the reactor kept it); only our notes about it were lost.
  auto room = room_of(req.path());
  if (!room.empty()) members_[s] = member{nick_of(req, s), std::move(room)};
  co_return;
}

task<void> ws_chat::on_message(context& ctx, session_id s, ws_message msg) {
  auto it = members_.find(s);
  const std::string nick = it != members_.end() ? it->second.nick : "#" + std::to_string(s.value());
  if (msg.opcode != ws_opcode::text) {
    (void)ctx.push(s, to_text({{"type", "error"}, {"text", "text messages only"}}));
    co_return;
  }
  std::string_view text = msg.data;
  if (text.starts_with("/to ")) {
    text.remove_prefix(4);
    auto space = text.find(' ');
    std::uint64_t id = 0;
    auto digits = text.substr(0, space);
    auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), id);
    if (ec != std::errc{} || p != digits.data() + digits.size() || space == std::string_view::npos) {
      (void)ctx.push(s, to_text({{"type", "error"}, {"text", "usage: /to ID text"}}));
      co_return;
    }
    auto body = to_text({{"type", "private"}, {"id", s.value()}, {"nick", nick}, {"text", text.substr(space + 1)}});
    if (auto e = ctx.push(session_id(id), body))
      (void)ctx.push(s, to_text({{"type", "error"}, {"text", "#" + std::to_string(id) + ": " + e.message()}}));
    co_return;
  }
  if (it == members_.end()) {
    (void)ctx.push(s, to_text({{"type", "error"}, {"text", "not in a room"}}));
    co_return;
  }
  auto line = to_text({{"type", "message"}, {"room", it->second.room}, {"id", s.value()}, {"nick", nick}, {"text", text}});
  if (auto ec = ctx.broadcast(group_of(it->second.room), line))
    log::warning("ws_chat {}: broadcast failed: {}", instance_name(), ec.message());
  co_return;
}

task<void> ws_chat::on_close(context& ctx, session_id s, std::uint16_t, std::string) {
  auto it = members_.find(s);
  if (it == members_.end()) co_return;
  // The connection has left the group by now; the others hear it.
  (void)ctx.broadcast(group_of(it->second.room),
                      to_text({{"type", "leave"}, {"id", s.value()}, {"nick", it->second.nick}, {"room", it->second.room}}));
  members_.erase(it);
}

}  // namespace swactor::apps
