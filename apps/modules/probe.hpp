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
//
// Tasks (on_task) interpret their payload: "sleep:MS:TEXT" sleeps MS ms then returns TEXT;
// "fail:TEXT" throws (the waiter sees an error); anything else is returned unchanged.
// Datagrams are answered with the same commands (reply sent to the sender).

#include <charconv>
#include <chrono>
#include <cstdint>
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
      "reset; one reply line per command. Tasks: \"sleep:MS:TEXT\" and \"fail:TEXT\".";
  struct options {};
  static config::schema<options> schema() { return {}; }
  explicit probe(options) {}

  task<void> on_receive(context& ctx, session_id s, std::string msg) override {
    auto line = trim(msg);
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

  task<std::string> on_task(context&, task_id, int, std::string payload) override {
    std::string_view p = payload;
    if (p.starts_with("sleep:")) {
      p.remove_prefix(6);
      auto colon = p.find(':');
      auto ms = to_int(p.substr(0, colon));
      co_await sleep(std::chrono::milliseconds(ms));
      co_return colon == std::string_view::npos ? std::string() : std::string(p.substr(colon + 1));
    }
    if (p.starts_with("fail:")) throw std::runtime_error(std::string(p.substr(5)));
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
          " last_receive_ms=" + std::to_string(i->last_receive_ms);
    }
    if (cmd == "bind") {
      auto ec = ctx.bind(s, user_id(static_cast<std::uint64_t>(to_int(word(rest)))));
      co_return ec ? "error: " + ec.message() : "ok";
    }
    if (cmd == "stats") co_return ctx.stats();
    if (cmd == "sleep") {
      auto ms = to_int(word(rest));
      co_await sleep(std::chrono::milliseconds(ms));
      co_return "slept " + std::to_string(ms);
    }
    co_return "error: unknown command \"" + std::string(cmd) + "\"";
  }

  std::string inbox_;
};

}  // namespace swactor::apps
