#include "master/admin.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <asio/read_until.hpp>
#include <asio/streambuf.hpp>
#include <asio/write.hpp>

#include <nlohmann/json.hpp>

#include "swactor/core/actors.hpp"

namespace swactor::detail {

using namespace std::chrono_literals;

std::error_code admin_endpoint::open(const std::string& path, std::string& error) {
  path_ = path;
  ::unlink(path_.c_str());
  acceptor_ = std::make_unique<asio::local::stream_protocol::acceptor>(lp_.context());
  std::error_code ec;
  acceptor_->open(asio::local::stream_protocol(), ec);
  if (!ec) acceptor_->bind(asio::local::stream_protocol::endpoint(path_), ec);
  if (!ec) acceptor_->listen(16, ec);
  if (ec) {
    error = "cannot open the admin socket " + path_ + ": " + ec.message();
    return ec;
  }
  ::chmod(path_.c_str(), 0600);
  return {};
}

void admin_endpoint::start() {
  spawn(lp_.context(), [this]() -> task<void> { co_await accept_loop(); }, "admin");
}

void admin_endpoint::close() {
  if (!acceptor_) return;
  std::error_code ignored;
  acceptor_->close(ignored);
  acceptor_.reset();
  if (!path_.empty()) ::unlink(path_.c_str());
}

task<void> admin_endpoint::finish(duration timeout) {
  close();
  (void)co_await sessions_.wait(timeout);
}

task<void> admin_endpoint::accept_loop() {
  for (;;) {
    if (!acceptor_) co_return;
    auto [ec, sock] = co_await acceptor_->async_accept(asio::experimental::as_tuple(asio::use_awaitable));
    if (ec) co_return;
    sessions_.add();
    spawn(lp_.context(), [this, s = std::make_shared<asio::local::stream_protocol::socket>(std::move(sock))]() -> task<void> {
      co_await session(std::move(*s));
      sessions_.done();  // explicit: a frame destroyed unresumed must not touch this
    }, "admin session");
  }
}

task<void> admin_endpoint::session(asio::local::stream_protocol::socket sock) {
  // Room for `bus_publish TOPIC MESSAGE` up to bus.max_message_size's default (1 MiB).
  asio::streambuf buf(2 << 20);
  auto read = co_await with_timeout(
      [&]() -> task<std::size_t> { co_return co_await asio::async_read_until(sock, buf, '\n', asio::use_awaitable); }(),
      2s);
  std::string reply;
  if (!read) {
    reply = "{\"error\":\"expected a command line within 2s\"}\n";
  } else {
    std::istream in(&buf);
    std::string cmd;
    std::getline(in, cmd);
    if (!cmd.empty() && cmd.back() == '\r') cmd.pop_back();
    if (cmd == "stats") {
      auto r = co_await request<std::string>(lp_.actors(), manager_, 2s, stats_atom::value);
      reply = (r ? *r : std::string("{\"error\":\"stats request failed\"}")) + "\n";
    } else if (cmd == "reload" || cmd == "reload-tasks") {
      reply = co_await reload(cmd == "reload-tasks") + "\n";
    } else if (cmd == "bus_stats") {
      auto r = co_await request<std::string>(lp_.actors(), manager_, 2s, bus_stats_atom::value);
      reply = (r ? *r : std::string("{\"error\":\"bus stats request failed\"}")) + "\n";
    } else if (cmd.starts_with("bus_publish ")) {
      // bus_publish TOPIC MESSAGE (the rest of the line)
      std::string_view rest(cmd);
      rest.remove_prefix(12);
      auto sp = rest.find(' ');
      std::string topic(rest.substr(0, sp));
      std::string text(sp == std::string_view::npos ? std::string_view() : rest.substr(sp + 1));
      auto r = co_await request<std::string>(lp_.actors(), manager_, 2s, bus_publish_atom::value, topic, text);
      reply = (r ? *r : std::string("{\"error\":\"bus publish request failed\"}")) + "\n";
    } else if (cmd == "stop") {
      caf::anon_send(manager_, stop_atom::value);
      reply = "{\"ok\":true}\n";
    } else {
      reply = "{\"error\":\"unknown command; expected stats, reload, reload-tasks, stop, bus_stats or bus_publish TOPIC MESSAGE\"}\n";
    }
  }
  (void)co_await with_timeout(
      [&]() -> task<void> { co_await asio::async_write(sock, asio::buffer(reply), asio::use_awaitable); }(), 2s);
}

// A reload, answered once it was accepted (new processes start: {"ok":true,...}) or refused
// (bad certificates, a plugin or module that would not start: {"error":...}), read from the
// manager's stats ("reload": seq, state, error).
task<std::string> admin_endpoint::reload(bool tasks_only) {
  auto last = [&]() -> task<nlohmann::json> {
    auto r = co_await request<std::string>(lp_.actors(), manager_, 2s, stats_atom::value);
    if (!r) co_return nlohmann::json();
    auto j = nlohmann::json::parse(*r, nullptr, false);
    co_return j.is_object() && j.contains("reload") ? j["reload"] : nlohmann::json();
  };
  auto before = co_await last();
  const auto seq = before.is_object() ? before.value("seq", std::uint64_t{0}) : std::uint64_t{0};
  caf::anon_send(manager_, reload_atom::value, tasks_only);
  // The new code is tried first (a `swactor worker-check` process): seconds at most.
  const auto until = std::chrono::steady_clock::now() + 15s;
  nlohmann::json now;
  while (std::chrono::steady_clock::now() < until) {
    now = co_await last();
    if (now.is_object() && now.value("seq", std::uint64_t{0}) > seq && now.value("state", "") != "checking") break;
    (void)co_await sleep(50ms);
  }
  const std::string state = now.is_object() ? now.value("state", "") : "";
  if (state == "refused" || state == "ignored") {
    nlohmann::json e;
    e["error"] = (state == "refused" ? "reload refused: " : "reload ignored: ") + now.value("reason", std::string());
    co_return e.dump();
  }
  nlohmann::json ok;
  ok["ok"] = true;
  ok["state"] = state.empty() ? "checking" : state;  // still checking after 15 s: it goes on
  co_return ok.dump();
}

}  // namespace swactor::detail
