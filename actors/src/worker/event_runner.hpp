#pragma once
// Runs a worker's connection events through the module handlers: per session in arrival
// order, one handler at a time, while the connection (here or in a reactor) keeps reading.
// It also keeps the worker's stand-in of each session (what info() reports), fed the same
// way in both modes: by the local sink in base mode, by reactor messages in process mode.

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "swactor/actors/context.hpp"
#include "swactor/core/coro.hpp"
#include "swactor/core/wait_group.hpp"

namespace swactor::detail {

// What the runner calls; the worker runtime implements it.
class handler_host {
 public:
  virtual task<void> handle_open(session_id s, int listener) = 0;
  virtual task<void> handle_message(session_id s, int listener, std::string data) = 0;
  virtual task<void> handle_close(session_id s, int listener) = 0;
  // The session's queue fell below the look-ahead bound again (resume reading it).
  virtual void queue_low(session_id s) = 0;

 protected:
  ~handler_host() = default;
};

class event_runner {
 public:
  event_runner(asio::io_context& io, handler_host& host) : io_(io), host_(host) {}

  // A session opened (here or in reactor `reactor`).
  void open(session_id s, int listener, std::string remote, std::int64_t connect_ms, int reactor);
  // One message; returns how many events of the session wait now (look-ahead).
  std::size_t message(session_id s, int listener, std::string data);
  // The session closed; on_close runs after its queued events.
  void closed(session_id s, int listener);

  // The sink stopped reading the session (look-ahead full): queue_low() once it drains one.
  void note_paused(session_id s);
  const session_info* find(session_id s) const;
  bool bind(session_id s, user_id uid);
  std::size_t sessions() const noexcept { return sessions_.size(); }
  std::size_t opened_sessions() const noexcept { return opened_; }
  // Coroutines still draining a session's events.
  wait_group& running() noexcept { return running_; }
  void set_worker(int id) noexcept { worker_ = id; }

 private:
  enum class kind : std::uint8_t { open, message, closed };
  struct pending {
    kind k;
    int listener;
    std::string data;
  };
  struct session_state {
    session_info info;
    bool opened = false;  // saw its open here (else a stand-in for round_robin/idle events)
    bool closed = false;
    bool running = false;
    bool paused = false;
    std::vector<pending> queue;
    std::size_t head = 0;
  };
  session_state& state_of(session_id s, int listener);
  void push(session_id s, session_state& st, pending p);
  task<void> drain(session_id s);

  asio::io_context& io_;
  handler_host& host_;
  int worker_ = 0;
  std::size_t opened_ = 0;
  std::unordered_map<session_id, session_state> sessions_;
  wait_group running_;
};

}  // namespace swactor::detail
