#include "master/admin.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <asio/read_until.hpp>
#include <asio/streambuf.hpp>
#include <asio/write.hpp>

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

task<void> admin_endpoint::accept_loop() {
  for (;;) {
    if (!acceptor_) co_return;
    auto [ec, sock] = co_await acceptor_->async_accept(asio::experimental::as_tuple(asio::use_awaitable));
    if (ec) co_return;
    spawn(lp_.context(), [this, s = std::make_shared<asio::local::stream_protocol::socket>(std::move(sock))]() -> task<void> {
      co_await session(std::move(*s));
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
      caf::anon_send(manager_, reload_atom::value, cmd == "reload-tasks");
      reply = "{\"ok\":true}\n";
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

}  // namespace swactor::detail
