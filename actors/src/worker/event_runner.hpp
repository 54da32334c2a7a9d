#pragma once
// Runs a worker's connection events through the module handlers: per session in arrival
// order, one handler at a time, while the connection (here or in a reactor) keeps reading.
// It also keeps the worker's stand-in of each session (what info() reports), fed the same
// way in both modes: by the local sink in base mode, by reactor messages in process mode.
//
// Handlers run on a small pool of runner coroutines, not on a coroutine spawned per event:
// a session with events takes a parked runner, which starts the handler at once (inline,
// in base mode: no scheduler round trip), drains the session's queue, and parks again.
// Only as many runners exist as sessions whose handlers are suspended at the same time.

#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <asio/use_awaitable.hpp>

#include "swactor/actors/context.hpp"
#include "swactor/core/coro.hpp"
#include "swactor/core/wait_group.hpp"
#include "string_pool.hpp"

namespace swactor::detail {

enum class event_kind : std::uint8_t { open, message, closed };

// info().protocol from a codec name that crossed IPC: the same name in static storage, ""
// for one this build does not know.
std::string_view known_protocol(std::string_view name) noexcept;
// The protocol whose codec emits events of `kind`; "" for 0 (every framing codec's kind)
// and kinds no codec emits.
std::string_view protocol_of_kind(std::uint8_t kind) noexcept;

// What the runner calls; the worker runtime implements it.
class handler_host {
 public:
  // The module's handler for an event, not started yet; nullopt when nothing handles it.
  // `kind` is the codec's event kind (messages only).
  virtual std::optional<task<void>> handler_for(event_kind k, std::uint8_t kind, session_id s, int listener,
                                                std::string& data) = 0;
  // After the handler (error: what it threw, or null).
  virtual void handler_done(event_kind k, session_id s, int listener, std::exception_ptr error) = 0;
  // The session's queue has room again (resume reading it).
  virtual void queue_low(session_id s) = 0;

 protected:
  ~handler_host() = default;
};

class event_runner {
 public:
  event_runner(asio::io_context& io, handler_host& host) : io_(io), host_(host) {}
  ~event_runner();
  event_runner(const event_runner&) = delete;
  event_runner& operator=(const event_runner&) = delete;

  // Inline: start handlers from the caller's stack (both server modes: socket callbacks in
  // base mode, the IPC link's reader in process mode, which resumes the parked runner from
  // inside its own coroutine; the handler runs until it suspends, then the reader goes on
  // with the batch). Otherwise they start from a posted call (one scheduler turn each).
  void set_inline_start(bool on) noexcept { inline_start_ = on; }
  // Keep a session's stand-in from its open to its close (process mode: what info()
  // reports). Otherwise (base mode: the connection itself knows) a session's state exists
  // only while it has events, so an idle connection costs the runner nothing.
  void set_keep_stand_ins(bool on) noexcept { keep_stand_ins_ = on; }

  // A session opened (here or in reactor `reactor`).
  void open(session_id s, int listener, std::string remote, std::int64_t connect_ms, int reactor,
            std::string local = {}, std::shared_ptr<const tls_info> tls = {}, std::string_view protocol = {});
  // One message; returns how many events of the session wait now (look-ahead). The
  // stand-in's protocol follows the message's kind (an Upgrade to h2c or WebSocket).
  std::size_t message(session_id s, int listener, std::string data, std::uint8_t kind = 0);
  // The same for bytes that are valid only during this call (a codec's event in base mode):
  // when a parked runner takes the event on this stack they are lent, not copied (a request
  // handler decodes them before it first suspends); otherwise they are copied and queued.
  std::size_t message_lent(session_id s, int listener, std::string_view data, std::uint8_t kind);
  // A handler already made for the session's next event (an HTTP request decoded and routed
  // as it arrived): runs in the session's order, as message() would run it. The caller did
  // the handler's accounting (handler_done() follows it as for any event).
  std::size_t run_next(session_id s, int listener, std::uint8_t kind, task<void> t);
  // The session closed; on_close runs after its queued events.
  void closed(session_id s, int listener);
  // An event that does not pass through the session's queue (an HTTP/2 stream, which runs
  // beside its siblings): in process mode the stand-in notes it as message() would (the
  // last receive time and protocol of info()).
  void note_received(session_id s, int listener, std::uint8_t kind);

  // The sink stopped reading the session (look-ahead full): queue_low() once it drains one.
  void note_paused(session_id s);
  // What info() reports for the session, nullopt when it has no state here.
  std::optional<session_info> info(session_id s) const;
  bool contains(session_id s) const { return sessions_.contains(s); }
  std::string_view remote_of(session_id s) const;
  // The session's close arrived (its on_close may still wait behind running handlers).
  bool closing(session_id s) const;
  // Not closing, and (when `must_know`) known here: one lookup for a send's checks.
  bool may_send(session_id s, bool must_know) const {
    auto it = sessions_.find(s);
    return it == sessions_.end() ? !must_know : !it->second.closed;
  }
  // True when nothing of `s` is queued or running, so its next message may be handled inline
  // by the caller, in order, instead of through message() (redis commands). Notes the receive
  // time as message() would.
  bool idle_for_inline(session_id s);
  bool bind(session_id s, user_id uid);
  // Runs `t` on one of the pool's runners, outside every session's order (an HTTP/2 stream
  // runs beside its siblings), started as messages are (inline or posted), without a
  // coroutine spawned per call. Counted in running() until it ends; what it throws is logged.
  void run_beside(task<void> t);
  // The session was upgraded here (WebSocket): its stand-in says so before its first frame.
  void set_protocol(session_id s, std::string_view protocol);
  std::size_t sessions() const noexcept { return sessions_.size(); }
  std::size_t opened_sessions() const noexcept { return opened_; }
  // Sessions whose events are being handled (stop waits for it to reach zero).
  wait_group& running() noexcept { return running_; }
  void set_worker(int id) noexcept { worker_ = id; }
  std::size_t runners() const noexcept { return *runners_; }

 private:
  using wake_handler = asio::async_result<asio::use_awaitable_t<>, void()>::handler_type;

  struct pending {
    event_kind k;
    std::uint8_t kind;  // the codec's event kind
    int listener;
    std::string data;
    bool lent = false;  // the bytes are in lent_ (message_lent), not in data
    std::optional<task<void>> made{};  // run_next(): the handler, made already
  };
  // A session's events not handled yet: only a session that has some holds one.
  struct event_queue {
    std::vector<pending> items;
    std::size_t head = 0;
  };
  // A process-mode worker keeps one per open connection (its stand-in), so it is kept small:
  // info() assembles a session_info from it, the local address is shared (locals_), what
  // TLS negotiated is apart (tls_), the protocol is an index and the queue exists only while
  // events wait.
  struct session_state {
    std::string remote;
    const std::string* local = nullptr;  // in locals_
    std::int64_t connect_time_ms = 0;
    std::int64_t last_receive_ms = 0;
    user_id uid;
    int listener = 0;
    int reactor = -1;
    std::uint8_t protocol = 0;  // 1 + index into the known protocol names, 0 = none
    bool opened = false;        // saw its open here (else a stand-in for round_robin/idle events)
    bool closed = false;
    bool running = false;
    bool paused = false;
    bool tls = false;  // has an entry in tls_
    std::unique_ptr<event_queue> queue;
  };
  // An event arrived for `st`: its stand-in's last receive time and protocol (process mode).
  void note_receive(session_state& st, std::uint8_t kind);
  // With its key and the node's link this is a 112-byte malloc chunk (a session_info alone
  // is 144 bytes).
  static_assert(sizeof(session_state) <= 88);
  struct runner {
    std::optional<wake_handler> parked;
    session_id next;
    std::optional<pending> first;  // run_direct(): the session's event, with no state made
    std::optional<task<void>> job;  // run_beside(): this instead of a session's queue
    bool stop = false;
    // Shared with the runner count: a parked runner destroyed after the event_runner (asio
    // destroys unfinished coroutines later, on its own loop) must not touch it.
    std::shared_ptr<std::size_t> count;
  };

  session_state& state_of(session_id s, int listener);
  void push(session_id s, session_state& st, pending p);
  // message()'s and message_lent()'s common part: notes the receive, queues `p`, starts a
  // runner when none is on the session; how many of its events wait.
  std::size_t deliver(session_id s, session_state& st, pending&& p);
  void assign(session_id s);
  // Base mode, the common case: a session with no state and no runner gets its event on a
  // parked runner started on this stack, with no session state made for it (no map insert
  // and erase per message). Only if the handler suspends (or another event of the session
  // comes while it runs) is a state made, marked running, for later events to queue behind.
  bool can_run_direct(session_id s) const;
  std::size_t run_direct(session_id s, int listener, pending&& p);
  // Nothing of the session queued or running, a parked runner at hand: its next event is
  // taken by that runner on the caller's stack (deliver() and message_lent() agree on it).
  bool takes_at_once(const session_state& st) const noexcept {
    return !st.running && inline_start_ && !idle_.empty() && waiting(st) == 0;
  }
  // A parked runner (there is one) takes `p` as the session's first event, on this stack.
  void start_first(session_id s, pending&& p);
  // A runner ended the handler of a direct event (it may have suspended first).
  void direct_done(session_id s) noexcept;
  bool direct_running(session_id s) const noexcept;
  // A parked runner, else a new one (not started: the caller sets it up, then start()).
  runner* take_runner();
  // Starts runner `r`: resumes a parked one (inline or posted), spawns a new one.
  void start(runner* r);
  task<void> run(runner* r);

  asio::io_context& io_;
  handler_host& host_;
  bool inline_start_ = false;
  bool keep_stand_ins_ = true;
  int worker_ = 0;
  std::size_t opened_ = 0;
  std::unordered_map<session_id, session_state> sessions_;
  string_pool locals_;
  // Only sessions of TLS listeners have one: most sessions would carry an empty pointer.
  std::unordered_map<session_id, std::shared_ptr<const tls_info>> tls_;
  // With transient states (base mode) a state is made and dropped per burst of events: the
  // dropped map nodes are kept and reused, not freed.
  std::vector<std::unordered_map<session_id, session_state>::node_type> spare_;
  void drop(std::unordered_map<session_id, session_state>::iterator it);
  // A session's queue exists while it has events; drained queues (with their buffer) are kept
  // here for the next busy sessions, a few of them.
  std::vector<std::unique_ptr<event_queue>> spare_queues_;
  void enqueue(session_state& st, pending&& p);
  void release_queue(session_state& st);
  static std::size_t waiting(const session_state& st) noexcept {
    return st.queue ? st.queue->items.size() - st.queue->head : 0;
  }
  wait_group running_;
  std::vector<runner*> idle_;
  // Sessions whose direct event's handler was started on the current stack and has not
  // returned to it yet (nested when a handler's action starts another session's handler).
  struct direct_entry {
    session_id s;
    bool done = false;
  };
  std::vector<direct_entry> direct_;
  // message_lent(): the event's bytes while its handler is made; reused, so a handler that
  // only reads them costs no allocation. lent_busy_ while they are out.
  std::string lent_;
  bool lent_busy_ = false;
  std::shared_ptr<std::size_t> runners_ = std::make_shared<std::size_t>(0);
};

}  // namespace swactor::detail
