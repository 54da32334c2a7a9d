#pragma once
// `probe`: a diagnostics module driven by a line protocol. Put it on a listener with eof
// framing on "\n" (`framing = { type = "eof", delimiter = "\n" }`); every command line gets
// exactly one reply line (errors start with "error: "):
//
//   whoami                       -> "worker ID pid PID"
//   task_wait MS PAYLOAD         -> the task's result, or "error: <message>" (timeout after MS)
//   task_wait_all MS P1 P2 ...   -> the results in order, space separated; timed-out or failed
//                                   ones as "timeout" / "error"
//   send_message WORKER TEXT     -> "ok"; worker WORKER's probe records TEXT in its inbox
//   inbox                        -> what this worker's probe received: "SRC:TEXT" items joined
//                                   by "|" (empty line when nothing arrived)
//   info                         -> "id=.. remote=.. listener=.. worker=.. reactor=.. uid=..
//                                   connect_time_ms=.. last_receive_ms=.."
//   bind UID                     -> "ok"
//   stats                        -> ctx.stats() (one JSON line)
//   sleep MS                     -> "slept MS" after MS milliseconds
//   close / reset                -> "bye", then a graceful close / an immediate RST (the reply
//                                   is usually lost on reset)
//   now TEXT                     -> "now TEXT inline" when on_receive_now answered it, "now
//                                   TEXT queued" when on_receive did (it queued behind a
//                                   running handler of the session)
//   now_fail                     -> on_receive_now throws (logged; no reply)
//
// The bus (raw text messages; module instance = this probe instance everywhere):
//   subscribe PATTERN            -> "ok" or "error: ..."; unsubscribe PATTERN likewise
//   publish TOPIC TEXT           -> "ok": raw TEXT to TOPIC
//   publish_note TOPIC TEXT      -> "ok": a typed probe.note carrying TEXT
//   publish_tag TOPIC TAG TEXT   -> "ok": raw TEXT under tag TAG (receivers drop an unknown
//                                   tag, or a probe.note whose bytes do not decode)
//   bus_send PROC TEXT           -> "ok": a direct message to process PROC's probe
//   request PROC TEXT MS         -> the reply, or "error: <message>"; PROC -1 = any worker
//                                   (round robin), -2 = the least loaded worker.
//                                   The receiving probe answers "PROC:TEXT", except: TEXT
//                                   "inbox" / "summary" answers its bus_inbox / bus_summary,
//                                   "subscribe:PATTERN" subscribes it ("ok"), "burst:TOPIC:N"
//                                   publishes N messages ("ok N"), "sleep:MS2" answers after
//                                   MS2 ms, "noreply" returns without replying, "fail" throws
//   publish_burst TOPIC N        -> "ok N": publishes raw "0".."N-1" to TOPIC
//   bus_inbox                    -> what this probe received: "SENDER SEQ TOPIC TEXT" items
//                                   joined by "|" (TOPIC "-" for direct messages)
//   bus_summary                  -> "total=N" then " SENDER:COUNT:ordered|unordered" per sender
//                                   (ordered: each sender's seq numbers only increased)
//   bus_clear                    -> "ok": empties the bus inbox
//
// WebSocket groups (sessions of any WebSocket listener, held by any process):
//   ws_join GROUP SESSION / ws_leave GROUP SESSION  -> "ok" or "error: ..."
//   ws_broadcast GROUP TEXT      -> "ok": TEXT to every member (GROUP "*": every WebSocket)
//   ws_push SESSION TEXT         -> "ok" or "error: ..."
//   exists SESSION               -> "yes" or "no": ctx.exists() (any session, any process)
// and from a task worker, as task payloads (task_wait MS ws_broadcast:GROUP:TEXT):
//   "ws_broadcast:GROUP:TEXT", "ws_join:GROUP:SESSION" -> "ok" or "error: ..."
//   "exists:SESSION" -> "yes" or "no"
// A published or direct message "sleep:MS" keeps this instance's bus handler busy for MS ms
// (its mailbox fills meanwhile).
//
// Options: user_processes = N runs N user processes of this instance (they idle, and answer
// bus requests like any probe).
//
// Tasks (on_task) interpret their payload: "sleep:MS:TEXT" sleeps MS ms then returns TEXT;
// "fail:TEXT" throws (the waiter sees an error); anything else is returned unchanged.
// Datagrams are answered with the same commands (reply sent to the sender).

#include <charconv>
#include <chrono>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

#include "swactor/actors/context.hpp"
#include "swactor/actors/module.hpp"
#include "swactor/core/log.hpp"

namespace swactor::apps {

class probe final : public module_base {
 public:
  static constexpr std::string_view kName = "probe";
  static constexpr std::string_view kDoc =
      "Diagnostics over a line protocol (use eof framing \"\\n\"): whoami, task_wait MS P, "
      "task_wait_all MS P..., send_message W TEXT, inbox, info, bind UID, stats, sleep MS, close, "
      "reset; bus: subscribe P, unsubscribe P, publish T TEXT, publish_note T TEXT, publish_tag T "
      "TAG TEXT, bus_send PROC TEXT, request PROC TEXT MS, bus_inbox, bus_summary, bus_clear; "
      "WebSocket groups: ws_join G S, ws_leave G S, ws_broadcast G TEXT (G * = all), ws_push S TEXT; one "
      "reply line per command. Tasks: \"sleep:MS:TEXT\", \"fail:TEXT\", \"ws_broadcast:G:TEXT\", "
      "\"ws_join:G:S\".";
  struct options {
    int user_processes = 0;
  };
  static config::schema<options> schema() {
    config::schema<options> s;
    s.integer("user_processes", &options::user_processes,
              "User processes of this instance (they idle and answer bus requests).", 0, 64);
    return s;
  }
  static int user_process_count(const options& o) { return o.user_processes; }

  // A typed bus message: one string.
  struct note {
    static constexpr std::string_view bus_tag = "probe.note";
    std::string text;
    void bus_write(bus::writer& w) const { w.str(text); }
    bool bus_read(bus::reader& r) {
      text = r.str();
      return r.ok();
    }
  };

  explicit probe(options) { accept_bus_type<note>(); }

  task<void> on_user_process(context&, int) override {
    for (;;) co_await sleep(std::chrono::hours(1));
  }

  task<void> on_bus_message(context& ctx, const bus::message& m) override {
    std::string text = m.data;
    if (auto* n = m.as<note>()) text = "note:" + n->text;
    if (text.starts_with("sleep:") && !m.is_request())
      co_await sleep(std::chrono::milliseconds(to_int(std::string_view(text).substr(6))));
    if (m.is_request()) {
      if (text == "noreply") co_return;
      if (text.starts_with("subscribe:")) {
        auto ec = ctx.subscribe(std::string_view(text).substr(10));
        (void)ctx.reply(m, bus::payload::raw(ec ? "error: " + ec.message() : "ok"));
        co_return;
      }
      if (text.starts_with("burst:")) {
        std::string_view spec = std::string_view(text).substr(6);
        auto colon = spec.rfind(':');
        auto n = burst(ctx, spec.substr(0, colon), to_int(spec.substr(colon + 1)));
        (void)ctx.reply(m, bus::payload::raw(n));
        co_return;
      }
      if (text == "summary") {
        (void)ctx.reply(m, bus::payload::raw(summary()));
        co_return;
      }
      if (text == "fail") throw std::runtime_error("probe: asked to fail");
      if (text.starts_with("sleep:")) co_await sleep(std::chrono::milliseconds(to_int(std::string_view(text).substr(6))));
      auto answer = text == "inbox" ? bus_inbox_ : std::to_string(ctx.worker_id()) + ":" + text;
      (void)ctx.reply(m, bus::payload::raw(std::move(answer)));
      co_return;
    }
    if (!bus_inbox_.empty()) bus_inbox_ += "|";
    bus_inbox_ += std::to_string(m.sender) + " " + std::to_string(m.seq) + " " +
                  (m.topic.empty() ? std::string("-") : m.topic) + " " + text;
    ++bus_total_;
    auto& s = senders_[m.sender];
    if (s.count > 0 && m.seq <= s.last_seq) s.ordered = false;
    ++s.count;
    s.last_seq = m.seq;
  }

  bool on_receive_now(context& ctx, session_id s, std::string_view msg) override {
    auto line = trim(msg);
    if (line == "now_fail") throw std::runtime_error("now_fail asked");
    if (!line.starts_with("now ")) return false;  // the rest may wait: on_receive
    (void)ctx.send(s, std::string(line) + " inline\n");
    return true;
  }

  task<void> on_receive(context& ctx, session_id s, std::string msg) override {
    auto line = trim(msg);
    if (line.starts_with("now ")) {
      (void)ctx.send(s, std::string(line) + " queued\n");
      co_return;
    }
    if (line == "close" || line == "reset") {
      (void)ctx.send(s, "bye\n");
      (void)ctx.close(s, line == "reset");
      co_return;
    }
    auto reply = co_await handle(ctx, s, line);
    if (auto ec = ctx.send(s, reply + "\n"))
      log::warning("probe: send to session {} failed: {}", s, ec.message());
  }

  task<void> on_packet(context& ctx, const packet_info& p, std::string data) override {
    if (p.address.empty()) co_return;
    auto reply = co_await handle(ctx, session_id{}, trim(data));
    (void)ctx.sendto(p.address, reply + "\n", p.listener);
  }

  task<std::string> on_task(context& ctx, task_id, int, std::string payload) override {
    std::string_view p = payload;
    if (p.starts_with("sleep:")) {
      p.remove_prefix(6);
      auto colon = p.find(':');
      auto ms = to_int(p.substr(0, colon));
      co_await sleep(std::chrono::milliseconds(ms));
      co_return colon == std::string_view::npos ? std::string() : std::string(p.substr(colon + 1));
    }
    if (p.starts_with("fail:")) throw std::runtime_error(std::string(p.substr(5)));
    if (p.starts_with("exists:"))
      co_return ctx.exists(session_id(static_cast<std::uint64_t>(to_int(p.substr(7))))) ? "yes" : "no";
    if (p.starts_with("ws_broadcast:") || p.starts_with("ws_join:")) {
      const bool cast = p.starts_with("ws_broadcast:");
      p.remove_prefix(p.find(':') + 1);
      auto colon = p.find(':');
      if (colon == std::string_view::npos) co_return "error: usage";
      auto group = p.substr(0, colon);
      if (group == "*") group = context::all_websockets;
      auto ec = cast ? ctx.broadcast(group, p.substr(colon + 1))
                     : ctx.join(group, session_id(static_cast<std::uint64_t>(to_int(p.substr(colon + 1)))));
      co_return ec ? "error: " + ec.message() : std::string("ok");
    }
    co_return payload;
  }

  task<void> on_pipe_message(context&, int src, std::string text) override {
    if (!inbox_.empty()) inbox_ += "|";
    inbox_ += std::to_string(src) + ":" + text;
    co_return;
  }

 private:
  static std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.remove_suffix(1);
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    return s;
  }
  static std::int64_t to_int(std::string_view s) {
    std::int64_t v = 0;
    std::from_chars(s.data(), s.data() + s.size(), v);
    return v;
  }
  // The first word of `rest`, which is advanced past it and the following spaces.
  static std::string_view word(std::string_view& rest) {
    auto sp = rest.find(' ');
    auto w = rest.substr(0, sp);
    rest = sp == std::string_view::npos ? std::string_view() : rest.substr(sp + 1);
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    return w;
  }

  task<std::string> handle(context& ctx, session_id s, std::string_view line) {
    auto rest = line;
    auto cmd = word(rest);
    if (cmd == "whoami") co_return "worker " + std::to_string(ctx.worker_id()) + " pid " + std::to_string(::getpid());
    if (cmd == "task_wait") {
      auto ms = to_int(word(rest));
      auto r = co_await ctx.task_wait(std::string(rest), std::chrono::milliseconds(ms));
      co_return r ? *r : "error: " + r.error().message();
    }
    if (cmd == "task_wait_all") {
      auto ms = to_int(word(rest));
      std::vector<std::string> payloads;
      while (!rest.empty()) payloads.emplace_back(word(rest));
      auto rs = co_await ctx.task_wait_all(std::move(payloads), std::chrono::milliseconds(ms));
      std::string out;
      for (auto& r : rs) {
        if (!out.empty()) out += ' ';
        out += r ? *r : (r.error() == make_error_code(errc::timeout) ? "timeout" : "error");
      }
      co_return out;
    }
    if (cmd == "send_message") {
      auto w = static_cast<int>(to_int(word(rest)));
      auto ec = ctx.send_message(w, std::string(rest));
      co_return ec ? "error: " + ec.message() : "ok";
    }
    if (cmd == "inbox") co_return inbox_;
    if (cmd == "info") {
      auto i = ctx.info(s);
      if (!i) co_return "error: " + i.error().message();
      co_return "id=" + std::to_string(i->id.value()) + " remote=" + i->remote + " listener=" +
          std::to_string(i->listener) + " worker=" + std::to_string(i->worker) +
          " reactor=" + std::to_string(i->reactor) + " uid=" + std::to_string(i->uid.value()) +
          " connect_time_ms=" + std::to_string(i->connect_time_ms) +
          " last_receive_ms=" + std::to_string(i->last_receive_ms) + " protocol=" + std::string(i->protocol) +
          (i->tls ? " tls_version=" + i->tls->version + " tls_cipher=" + i->tls->cipher + " tls_sni=" + i->tls->sni +
                        " tls_alpn=" + i->tls->alpn + " tls_resumed=" + (i->tls->resumed ? "1" : "0") +
                        " tls_peer_fingerprint=" + i->tls->peer_fingerprint + " tls_peer_subject=" + i->tls->peer_subject
                  : std::string());
    }
    if (cmd == "bind") {
      auto ec = ctx.bind(s, user_id(static_cast<std::uint64_t>(to_int(word(rest)))));
      co_return ec ? "error: " + ec.message() : "ok";
    }
    if (cmd == "stats") co_return ctx.stats();
    if (cmd == "subscribe" || cmd == "unsubscribe") {
      auto ec = cmd == "subscribe" ? ctx.subscribe(word(rest)) : ctx.unsubscribe(word(rest));
      co_return ec ? "error: " + ec.message() : "ok";
    }
    if (cmd == "publish" || cmd == "publish_note" || cmd == "publish_tag") {
      auto topic = word(rest);
      bus::payload p;
      if (cmd == "publish_note") {
        p = bus::payload::of(note{std::string(rest)});
      } else if (cmd == "publish_tag") {
        p.tag = std::string(word(rest));
        p.data = std::string(rest);
      } else {
        p = bus::payload::raw(std::string(rest));
      }
      auto ec = ctx.publish(topic, std::move(p));
      co_return ec ? "error: " + ec.message() : "ok";
    }
    if (cmd == "bus_send") {
      auto proc = static_cast<int>(to_int(word(rest)));
      auto ec = ctx.send_to(bus::target::worker(proc), bus::payload::raw(std::string(rest)));
      co_return ec ? "error: " + ec.message() : "ok";
    }
    if (cmd == "request") {
      auto proc = static_cast<int>(to_int(word(rest)));
      // TEXT is everything up to the last word (MS).
      auto last = rest.rfind(' ');
      if (last == std::string_view::npos) co_return "error: usage: request PROC TEXT MS";
      auto ms = to_int(rest.substr(last + 1));
      auto to = proc == -2   ? bus::target::any({}, bus::pick::least_loaded)
                : proc < 0   ? bus::target::any()
                             : bus::target::worker(proc);
      auto r = co_await ctx.request(to, bus::payload::raw(std::string(rest.substr(0, last))),
                                    std::chrono::milliseconds(ms));
      co_return r ? r->data : "error: " + r.error().message();
    }
    if (cmd == "bus_inbox") co_return bus_inbox_;
    if (cmd == "bus_summary") co_return summary();
    if (cmd == "publish_burst") {
      auto topic = word(rest);
      co_return burst(ctx, topic, to_int(word(rest)));
    }
    if (cmd == "bus_clear") {
      bus_inbox_.clear();
      senders_.clear();
      bus_total_ = 0;
      co_return "ok";
    }
    if (cmd == "ws_join" || cmd == "ws_leave") {
      auto group = word(rest);
      session_id target(static_cast<std::uint64_t>(to_int(word(rest))));
      auto ec = cmd == "ws_join" ? ctx.join(group, target) : ctx.leave(group, target);
      co_return ec ? "error: " + ec.message() : std::string("ok");
    }
    if (cmd == "ws_broadcast") {
      auto group = word(rest);
      auto ec = ctx.broadcast(group == "*" ? context::all_websockets : group, rest);
      co_return ec ? "error: " + ec.message() : std::string("ok");
    }
    if (cmd == "ws_push") {
      session_id target(static_cast<std::uint64_t>(to_int(word(rest))));
      auto ec = ctx.push(target, rest);
      co_return ec ? "error: " + ec.message() : std::string("ok");
    }
    if (cmd == "exists")
      co_return ctx.exists(session_id(static_cast<std::uint64_t>(to_int(word(rest))))) ? "yes" : "no";
    if (cmd == "sleep") {
      auto ms = to_int(word(rest));
      co_await sleep(std::chrono::milliseconds(ms));
      co_return "slept " + std::to_string(ms);
    }
    co_return "error: unknown command \"" + std::string(cmd) + "\"";
  }

  std::string summary() const {
    std::string out = "total=" + std::to_string(bus_total_);
    for (const auto& [sender, st] : senders_)
      out += " " + std::to_string(sender) + ":" + std::to_string(st.count) + ":" +
             (st.ordered ? "ordered" : "unordered");
    return out;
  }
  static std::string burst(context& ctx, std::string_view topic, std::int64_t n) {
    for (std::int64_t i = 0; i < n; ++i)
      if (auto ec = ctx.publish(topic, bus::payload::raw(std::to_string(i))))
        return "error: " + ec.message() + " after " + std::to_string(i);
    return "ok " + std::to_string(n);
  }

  std::string inbox_;
  // The bus inbox (kept whole until bus_clear; tests read it) and per-sender order.
  std::string bus_inbox_;
  std::uint64_t bus_total_ = 0;
  struct sender_state {
    std::uint64_t count = 0;
    std::uint64_t last_seq = 0;
    bool ordered = true;
  };
  std::map<int, sender_state> senders_;
};

}  // namespace swactor::apps
