#include "worker/event_runner.hpp"

#include <chrono>

namespace swactor::detail {
namespace {

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

event_runner::session_state& event_runner::state_of(session_id s, int listener) {
  auto [it, fresh] = sessions_.try_emplace(s);
  if (fresh) {
    it->second.info.id = s;
    it->second.info.listener = listener;
    it->second.info.worker = worker_;
  }
  return it->second;
}

void event_runner::open(session_id s, int listener, std::string remote, std::int64_t connect_ms, int reactor) {
  auto& st = state_of(s, listener);
  st.opened = true;
  ++opened_;
  st.info.remote = std::move(remote);
  st.info.connect_time_ms = connect_ms;
  st.info.reactor = reactor;
  push(s, st, pending{kind::open, listener, {}});
}

std::size_t event_runner::message(session_id s, int listener, std::string data) {
  auto& st = state_of(s, listener);
  st.info.last_receive_ms = now_ms();
  push(s, st, pending{kind::message, listener, std::move(data)});
  return st.queue.size() - st.head;
}

void event_runner::closed(session_id s, int listener) {
  auto& st = state_of(s, listener);
  st.closed = true;
  push(s, st, pending{kind::closed, listener, {}});
}

const session_info* event_runner::find(session_id s) const {
  auto it = sessions_.find(s);
  return it == sessions_.end() ? nullptr : &it->second.info;
}

void event_runner::note_paused(session_id s) {
  if (auto it = sessions_.find(s); it != sessions_.end()) it->second.paused = true;
}

bool event_runner::bind(session_id s, user_id uid) {
  auto it = sessions_.find(s);
  if (it == sessions_.end()) return false;
  it->second.info.uid = uid;
  return true;
}

void event_runner::push(session_id s, session_state& st, pending p) {
  st.queue.push_back(std::move(p));
  if (st.running) return;
  st.running = true;
  running_.add();
  spawn(io_, [this, s]() -> task<void> {
    co_await drain(s);
    running_.done();
  }, "session events");
}

task<void> event_runner::drain(session_id s) {
  for (;;) {
    auto it = sessions_.find(s);
    if (it == sessions_.end()) co_return;
    auto& st = it->second;
    if (st.head == st.queue.size()) {
      st.queue.clear();
      st.head = 0;
      st.running = false;
      // A stand-in that never saw its open (another worker has it, round_robin / idle)
      // lives only while it has events; a closed session is done.
      if (!st.opened || st.closed) {
        if (st.opened) --opened_;
        sessions_.erase(it);
      }
      co_return;
    }
    auto ev = std::move(st.queue[st.head++]);
    if (st.paused) {
      st.paused = false;
      host_.queue_low(s);  // room for one more: the connection reads again
    }
    switch (ev.k) {
      case kind::open: co_await host_.handle_open(s, ev.listener); break;
      case kind::message:
        co_await host_.handle_message(s, ev.listener, std::move(ev.data));
        break;
      case kind::closed: co_await host_.handle_close(s, ev.listener); break;
    }
  }
}

}  // namespace swactor::detail
