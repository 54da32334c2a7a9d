#pragma once
// The admin endpoint: a Unix socket (mode 0600) that takes one command line per connection
// (stats, reload, reload-tasks, stop) and answers with one JSON line. It talks to the
// manager only through the manager's typed actor interface.

#include <memory>
#include <string>

#include <asio/local/stream_protocol.hpp>

#include "atoms.hpp"
#include "swactor/core/error.hpp"
#include "swactor/core/loop.hpp"
#include "swactor/core/wait_group.hpp"

namespace swactor::detail {

class admin_endpoint {
 public:
  admin_endpoint(swactor::loop& lp, manager_actor manager) : lp_(lp), manager_(std::move(manager)) {}
  ~admin_endpoint() { close(); }

  // Binds `path` (a stale socket file is replaced); the error text says what failed.
  std::error_code open(const std::string& path, std::string& error);
  void start();
  void close();
  // close(), then waits (at most `timeout`) for the sessions still answering: they use this
  // object, which goes with the master's end.
  task<void> finish(duration timeout);
  const std::string& path() const noexcept { return path_; }

 private:
  task<void> accept_loop();
  task<std::string> reload(bool tasks_only);
  task<void> session(asio::local::stream_protocol::socket sock);

  swactor::loop& lp_;
  manager_actor manager_;
  std::string path_;
  std::unique_ptr<asio::local::stream_protocol::acceptor> acceptor_;
  wait_group sessions_;  // admin sessions running
};

}  // namespace swactor::detail
