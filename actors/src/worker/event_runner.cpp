#include "worker/event_runner.hpp"

#include <chrono>

#include <asio/post.hpp>

#include "swactor/core/log.hpp"
#include "swactor/protocols/http1.hpp"
#include "swactor/protocols/http2.hpp"
#include "swactor/protocols/redis.hpp"
#include "swactor/protocols/websocket.hpp"

namespace swactor::detail {
namespace {

// Parked runners kept for the next burst; more than this exit once they are idle.
constexpr std::size_t kMaxIdleRunners = 64;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

constexpr std::string_view kProtocols[] = {"raw", "length", "eof", "http/1.1", "h2", "websocket", "redis"};

// A session's protocol as its state keeps it: 1 + its index in kProtocols, 0 for none.
constexpr std::uint8_t protocol_index(std::string_view name) noexcept {
  for (std::size_t i = 0; i < std::size(kProtocols); ++i)
    if (kProtocols[i] == name) return static_cast<std::uint8_t>(i + 1);
  return 0;
}

constexpr std::uint8_t kHttp1 = protocol_index("http/1.1"), kH2 = protocol_index("h2"),
                       kWebSocket = protocol_index("websocket"), kRedis = protocol_index("redis");
static_assert(kHttp1 && kH2 && kWebSocket && kRedis);

std::string_view protocol_name(std::uint8_t index) noexcept {
  return index == 0 || index > std::size(kProtocols) ? std::string_view() : kProtocols[index - 1];
}

// The protocol index of the codec that emits events of `kind` (per message: no string
// compares).
std::uint8_t protocol_index_of_kind(std::uint8_t kind) noexcept {
  using k = std::uint8_t;
  if (kind >= k(protocols::http1::ev::request) && kind <= k(protocols::http1::ev::end)) return kHttp1;
  if (protocols::http2::is_event_kind(kind)) return kH2;
  if (kind >= k(protocols::websocket::ev::text) && kind <= k(protocols::websocket::ev::close)) return kWebSocket;
  if (kind == k(protocols::redis::ev::command) || kind == k(protocols::redis::ev::inline_command)) return kRedis;
  return 0;
}

}  // namespace

std::string_view known_protocol(std::string_view name) noexcept { return protocol_name(protocol_index(name)); }

std::string_view protocol_of_kind(std::uint8_t kind) noexcept { return protocol_name(protocol_index_of_kind(kind)); }

event_runner::~event_runner() {
  // Dropping a parked handler ends its coroutine (asio destroys it on the loop), and with
  // it the runner it owns.
  auto idle = std::move(idle_);
  for (auto* r : idle) {
    r->stop = true;
    auto h = std::move(r->parked);
    r->parked.reset();
    h.reset();
  }
}

event_runner::session_state& event_runner::state_of(session_id s, int listener) {
  auto it = sessions_.find(s);
  if (it != sessions_.end()) return it->second;
  if (!spare_.empty()) {
    auto nh = std::move(spare_.back());
    spare_.pop_back();
    nh.key() = s;
    // Field by field, keeping the queue the node came with (drop() left it empty): base mode
    // makes and drops a state per burst of events, so this is on every message's path.
    auto& st = nh.mapped();
    st.remote.clear();
    st.local = nullptr;
    st.connect_time_ms = st.last_receive_ms = 0;
    st.uid = user_id();
    st.reactor = -1;
    st.protocol = 0;
    st.opened = st.closed = st.running = st.paused = st.tls = false;
    it = sessions_.insert(std::move(nh)).position;
  } else {
    it = sessions_.try_emplace(s).first;
  }
  it->second.listener = listener;
  // A runner is inside this session's direct event: what comes now queues behind it.
  if (!direct_.empty() && direct_running(s)) it->second.running = true;
  return it->second;
}

bool event_runner::direct_running(session_id s) const noexcept {
  for (const auto& d : direct_)
    if (d.s == s && !d.done) return true;
  return false;
}

void event_runner::direct_done(session_id s) noexcept {
  for (auto i = direct_.size(); i-- > 0;)
    if (direct_[i].s == s && !direct_[i].done) {
      direct_[i].done = true;
      return;
    }
}

bool event_runner::can_run_direct(session_id s) const {
  return inline_start_ && !keep_stand_ins_ && !idle_.empty() && !direct_running(s) && !sessions_.contains(s);
}

void event_runner::start_first(session_id s, pending&& p) {
  running_.add();
  auto* r = take_runner();  // a parked one: the callers saw one
  r->next = s;
  r->first.emplace(std::move(p));
  start(r);  // runs the handler on this stack until it suspends or the runner parks again
}

std::size_t event_runner::run_direct(session_id s, int listener, pending&& p) {
  direct_.push_back({s, false});
  start_first(s, std::move(p));
  // Nested direct runs started by this handler have popped their entries: ours is last.
  const bool done = direct_.back().done;
  direct_.pop_back();
  if (!done) state_of(s, listener).running = true;  // suspended: later events queue behind it
  return 0;
}

void event_runner::drop(std::unordered_map<session_id, session_state>::iterator it) {
  constexpr std::size_t kMaxSpare = 64;
  auto& st = it->second;
  locals_.release(st.local);
  st.local = nullptr;
  if (st.tls) tls_.erase(it->first);
  if (spare_.size() < kMaxSpare) {
    // A spare node keeps its (emptied) queue for the next state made from it.
    if (st.queue) {
      st.queue->items.clear();
      st.queue->head = 0;
    }
    spare_.push_back(sessions_.extract(it));
  } else {
    release_queue(st);
    sessions_.erase(it);
  }
}

void event_runner::open(session_id s, int listener, std::string remote, std::int64_t connect_ms, int reactor,
                        std::string local, std::shared_ptr<const tls_info> tls, std::string_view protocol) {
  auto& st = state_of(s, listener);
  st.opened = true;
  ++opened_;
  st.remote = std::move(remote);
  locals_.release(st.local);  // a second open of the session (not expected): the newer wins
  st.local = locals_.acquire(std::move(local));
  st.connect_time_ms = connect_ms;
  st.reactor = reactor;
  const bool had_tls = st.tls;
  st.tls = tls != nullptr;
  if (st.tls)
    tls_[s] = std::move(tls);
  else if (had_tls)
    tls_.erase(s);
  st.protocol = protocol_index(protocol);
  push(s, st, pending{event_kind::open, 0, listener, {}});
}

std::size_t event_runner::message(session_id s, int listener, std::string data, std::uint8_t kind) {
  if (can_run_direct(s)) return run_direct(s, listener, pending{event_kind::message, kind, listener, std::move(data)});
  auto& st = state_of(s, listener);
  return deliver(s, st, pending{event_kind::message, kind, listener, std::move(data)});
}

std::size_t event_runner::message_lent(session_id s, int listener, std::string_view data, std::uint8_t kind) {
  const bool direct = can_run_direct(s);
  session_state* st = direct ? nullptr : &state_of(s, listener);
  // Lent only when a parked runner starts inline below and takes this event first, before
  // this call returns: the bytes are still the caller's then. Otherwise they are copied.
  pending p{event_kind::message, kind, listener, {}};
  if (lent_busy_ || (!direct && !takes_at_once(*st))) {
    p.data.assign(data);
  } else {
    lent_busy_ = true;
    lent_.assign(data);
    p.lent = true;
  }
  return direct ? run_direct(s, listener, std::move(p)) : deliver(s, *st, std::move(p));
}

std::size_t event_runner::run_next(session_id s, int listener, std::uint8_t kind, task<void> t) {
  pending p{event_kind::message, kind, listener, {}};
  p.made.emplace(std::move(t));
  if (can_run_direct(s)) return run_direct(s, listener, std::move(p));
  return deliver(s, state_of(s, listener), std::move(p));
}

std::size_t event_runner::deliver(session_id s, session_state& st, pending&& p) {
  note_receive(st, p.kind);
  if (takes_at_once(st)) {
    // Not through the session's queue (process mode's common case; base mode gets here only
    // for a session with state).
    st.running = true;
    start_first(s, std::move(p));  // may end the session: `st` is stale now
    return 0;
  }
  enqueue(st, std::move(p));
  if (st.running) return waiting(st);
  st.running = true;
  running_.add();
  assign(s);  // may run the handler inline, which may end the session: `st` is stale now
  return 0;
}

void event_runner::note_receive(session_state& st, std::uint8_t kind) {
  if (!keep_stand_ins_) return;  // base mode: the connection itself knows these
  st.last_receive_ms = now_ms();
  if (auto k = protocol_index_of_kind(kind)) st.protocol = k;
}

void event_runner::note_received(session_id s, int listener, std::uint8_t kind) {
  if (keep_stand_ins_) note_receive(state_of(s, listener), kind);
}

void event_runner::closed(session_id s, int listener) {
  auto& st = state_of(s, listener);
  st.closed = true;
  push(s, st, pending{event_kind::closed, 0, listener, {}});
}

void event_runner::note_paused(session_id s) {
  if (auto it = sessions_.find(s); it != sessions_.end()) it->second.paused = true;
}

std::optional<session_info> event_runner::info(session_id s) const {
  auto it = sessions_.find(s);
  if (it == sessions_.end()) return std::nullopt;
  const auto& st = it->second;
  session_info i;
  i.id = s;
  i.remote = st.remote;
  i.local = string_pool::view(st.local);
  i.listener = st.listener;
  i.connect_time_ms = st.connect_time_ms;
  i.last_receive_ms = st.last_receive_ms;
  i.worker = worker_;
  i.reactor = st.reactor;
  i.uid = st.uid;
  if (st.tls) i.tls = tls_.at(s);
  i.protocol = protocol_name(st.protocol);
  return i;
}

std::string_view event_runner::remote_of(session_id s) const {
  auto it = sessions_.find(s);
  return it == sessions_.end() ? std::string_view() : std::string_view(it->second.remote);
}

bool event_runner::idle_for_inline(session_id s) {
  // Base mode keeps no state for idle sessions: usually there is none at all to look up.
  auto it = sessions_.empty() ? sessions_.end() : sessions_.find(s);
  if (it == sessions_.end()) return !direct_running(s);  // no state: nothing can be ahead of it
  auto& st = it->second;
  if (st.running || st.closed || waiting(st) != 0) return false;
  if (keep_stand_ins_) st.last_receive_ms = now_ms();
  return true;
}

bool event_runner::closing(session_id s) const {
  auto it = sessions_.find(s);
  return it != sessions_.end() && it->second.closed;
}

void event_runner::set_protocol(session_id s, std::string_view protocol) {
  if (auto it = sessions_.find(s); it != sessions_.end()) it->second.protocol = protocol_index(protocol);
}

bool event_runner::bind(session_id s, user_id uid) {
  auto it = sessions_.find(s);
  if (it == sessions_.end()) return false;
  it->second.uid = uid;
  return true;
}

void event_runner::enqueue(session_state& st, pending&& p) {
  if (!st.queue) {
    if (spare_queues_.empty()) {
      st.queue = std::make_unique<event_queue>();
    } else {
      st.queue = std::move(spare_queues_.back());
      spare_queues_.pop_back();
    }
  }
  st.queue->items.push_back(std::move(p));
}

void event_runner::release_queue(session_state& st) {
  constexpr std::size_t kMaxSpareQueues = 64;
  if (!st.queue) return;
  if (spare_queues_.size() < kMaxSpareQueues) {
    st.queue->items.clear();
    st.queue->head = 0;
    spare_queues_.push_back(std::move(st.queue));
  } else {
    st.queue.reset();
  }
}

void event_runner::push(session_id s, session_state& st, pending p) {
  enqueue(st, std::move(p));
  if (st.running) return;
  st.running = true;
  running_.add();
  assign(s);
}

// Gives session `s` to a runner: a parked one if there is one, else a new one.
event_runner::runner* event_runner::take_runner() {
  if (idle_.empty()) return new runner;
  auto* r = idle_.back();
  idle_.pop_back();
  return r;
}

void event_runner::assign(session_id s) {
  auto* r = take_runner();
  r->next = s;
  start(r);
}

void event_runner::run_beside(task<void> t) {
  running_.add();
  auto* r = take_runner();
  r->job.emplace(std::move(t));
  start(r);
}

void event_runner::start(runner* r) {
  if (!r->count) {  // new
    r->count = runners_;
    ++*runners_;
    spawn(io_, [this, r]() -> task<void> { co_await run(r); }, "event runner");
    return;
  }
  auto h = std::move(*r->parked);
  r->parked.reset();
  if (inline_start_)
    h();  // resumes the runner on this stack until its handler suspends or it parks again
  else
    asio::post(io_, std::move(h));
}

task<void> event_runner::run(runner* r) {
  struct owner {
    runner* r;
    ~owner() {
      --*r->count;
      delete r;
    }
  } own{r};
  for (;;) {
    if (r->job) {
      auto job = std::move(*r->job);
      r->job.reset();
      try {
        co_await std::move(job);
      } catch (const std::exception& e) {
        log::error("a handler run beside the session queues failed: {}", e.what());
      } catch (...) {
        log::error("a handler run beside the session queues failed: non-standard exception");
      }
    }
    auto s = r->next;
    r->next = session_id();
    // A direct event (run_direct) first, then the session's queue if one was made meanwhile.
    std::optional<pending> first = std::move(r->first);
    r->first.reset();
    // Drain the session: its events in order, one handler at a time.
    for (;;) {
      pending ev;
      const bool direct = first.has_value();
      if (direct) {
        ev = std::move(*first);
        first.reset();
      } else {
        auto it = sessions_.find(s);
        if (it == sessions_.end()) break;
        auto& st = it->second;
        if (waiting(st) == 0) {
          st.running = false;
          // A stand-in that never saw its open (another worker has it, round_robin / idle)
          // lives only while it has events; a closed session is done.
          if (!st.opened || st.closed || !keep_stand_ins_) {
            if (st.opened) --opened_;
            drop(it);
          } else {
            release_queue(st);  // it stays open, maybe idle for long
          }
          break;
        }
        ev = std::move(st.queue->items[st.queue->head++]);
        if (st.paused) {
          st.paused = false;
          host_.queue_low(s);  // room for one more: the connection reads again
        }
      }
      auto h = ev.made ? std::move(ev.made) : host_.handler_for(ev.k, ev.kind, s, ev.listener, ev.lent ? lent_ : ev.data);
      if (ev.lent) lent_busy_ = false;  // the handler holds what it needs of them now
      if (h) {
        std::exception_ptr error;
        try {
          co_await std::move(*h);
        } catch (...) {
          error = std::current_exception();
        }
        host_.handler_done(ev.k, s, ev.listener, error);
      }
      if (direct) direct_done(s);
    }
    running_.done();
    if (r->stop || idle_.size() >= kMaxIdleRunners) co_return;
    idle_.push_back(r);
    // Park: the completion handler is kept, and assign() calls it (no coroutine frame).
    co_await asio::async_initiate<const asio::use_awaitable_t<>&, void()>(
        [r](auto&& handler) { r->parked.emplace(std::move(handler)); }, asio::use_awaitable);
    if (r->stop) co_return;
  }
}

}  // namespace swactor::detail
