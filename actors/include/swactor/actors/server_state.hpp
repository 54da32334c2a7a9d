#pragma once
// Counters shared by the master and every worker: one memfd mapping created by the master
// before it starts anything and inherited by the exec'd processes. Only lock-free atomics
// live here, so a process that dies mid-update cannot wedge anyone. Stats are read from it
// (they survive a worker crash), and session ids come from it (64-bit, monotonic, never
// reused while the master lives).

#include <array>
#include <bit>
#include <atomic>
#include <cstdint>

namespace swactor {

inline constexpr int kMaxProcesses = 2048;  // workers + task workers + user processes
inline constexpr int kMaxListeners = 64;
inline constexpr int kMaxReactors = 256;

enum class proc_state : std::uint32_t { empty = 0, starting, idle, busy, stopping, exited };

// Connection counters of one place that holds connections (a base-mode worker, a reactor
// thread, the process-mode acceptor). Each is written by its own loop only (no shared
// atomic per event); `swactor stats` sums them.
struct conn_counters {
  std::atomic<std::uint64_t> accepted{0};
  std::atomic<std::uint64_t> closed{0};
  std::atomic<std::uint64_t> aborted{0};      // closed by error, limit or reset
  std::atomic<std::uint64_t> refused{0};      // over max_connections
  std::atomic<std::int64_t> open{0};          // open now
  std::atomic<std::uint64_t> streams{0};       // HTTP/2 streams opened (requests)
  std::atomic<std::uint64_t> streams_reset{0}; // ... and reset before their response ended
  std::atomic<std::uint64_t> requests{0};      // answered here, no worker (process mode http_static)
  // Open now per listener, so the master can release them from the listener counters
  // when a process dies without closing them.
  std::atomic<std::int64_t> listener_open[kMaxListeners]{};
};

struct proc_slot {
  std::atomic<std::int32_t> pid{0};
  std::atomic<std::uint32_t> state{0};
  std::atomic<std::uint32_t> in_flight{0};     // handlers running now
  std::atomic<std::uint64_t> messages{0};      // receive/packet events handled (lifetime of slot)
  std::atomic<std::uint64_t> tasks{0};         // task worker: tasks run; worker: tasks started
  std::atomic<std::uint64_t> restarts{0};
  std::atomic<std::int64_t> started_ms{0};
  // The bus, counted by the receiving process: messages given to a handler, dropped because
  // the instance's mailbox was full, dropped because the tag is unknown or the payload bad.
  std::atomic<std::uint64_t> bus_handled{0};
  std::atomic<std::uint64_t> bus_dropped_full{0};
  std::atomic<std::uint64_t> bus_dropped_invalid{0};
  conn_counters conns;                         // base mode: this worker's connections
};

// One entry of the session registry (below). `pid` is the process that holds the session,
// so the master can clear what a process that died (kill -9) never removed.
struct session_slot {
  std::atomic<std::uint64_t> id{0};
  std::atomic<std::int32_t> pid{0};
};

struct listener_counters {
  std::atomic<std::int64_t> connections{0};  // open now, all workers (max_connections)
};

struct server_state {
  static constexpr std::uint64_t kMagic = 0x7377'6163'746f'7204ull;
  std::uint64_t magic = kMagic;
  std::atomic<std::uint64_t> next_session{1};
  std::atomic<std::int64_t> start_ms{0};
  // Written by the master's loop only.
  std::atomic<std::uint64_t> tasks_started{0};
  std::atomic<std::uint64_t> tasks_done{0};
  std::atomic<std::uint64_t> tasks_in_flight{0};
  listener_counters listeners[kMaxListeners];
  conn_counters acceptor;                      // process mode: accepted / refused
  conn_counters reactors[kMaxReactors];        // process mode: closed / open per reactor
  proc_slot procs[kMaxProcesses];
  // TLS session ticket keys: written by the master before it starts any process, then only
  // read, so every worker and reactor encrypts and decrypts tickets alike (resumption works
  // on any of them). In shared memory rather than argv: /proc/PID/cmdline is world-readable.
  std::array<unsigned char, 80> tls_ticket_keys{};
  // The session registry: every open stream session of the server, whichever process
  // holds it, so ctx.exists() answers for any session from any worker. An open-addressed
  // array of `session_slots` entries (a power of two, 0 = none, as in unit tests) right
  // after this struct in the same mapping; an id lives within kSessionProbe slots of its
  // hash. Sized to four times the sum of the stream listeners' max_connections, so a full
  // probe window is practically impossible; if it happens, the session is only not found by
  // other processes (counted in session_registry_full).
  static constexpr int kSessionProbe = 32;
  std::uint64_t session_slots = 0;
  std::atomic<std::uint64_t> session_registry_full{0};

  // Slots for at most `open` sessions at once, and the bytes they take after the struct.
  static std::uint64_t session_slots_for(std::uint64_t open) noexcept;
  // The slot an id's probe window starts at: Fibonacci hashing, the product's high bits (a
  // base-mode id's low bits are its worker's, the same for all its sessions).
  static std::uint64_t session_home(std::uint64_t id, std::uint64_t slots) noexcept {
    return (id * 0x9E3779B97F4A7C15ull) >> (64 - std::countr_zero(slots));
  }
  static std::size_t session_registry_bytes(std::uint64_t slots) noexcept { return slots * sizeof(session_slot); }
  // Lock-free; add/remove are called by the loop that holds the session only.
  void add_session(std::uint64_t id, std::int32_t pid) noexcept;
  void remove_session(std::uint64_t id) noexcept;
  bool has_session(std::uint64_t id) const noexcept;
  // Maps every page of the registry into this process up front (a loop that will hold
  // connections calls it once): its memory is a fixed cost of the configured
  // max_connections, taken at start, not a cost that grows with each connection.
  void map_session_registry() const noexcept;
  // Clears every entry of a process that is gone; returns how many.
  std::size_t purge_sessions(std::int32_t pid) noexcept;

  // Sums over every place that counts (for stats).
  std::uint64_t total_accepted() const noexcept;
  std::uint64_t total_closed() const noexcept;
  std::uint64_t total_aborted() const noexcept;
  std::uint64_t total_refused() const noexcept;
  std::uint64_t total_messages() const noexcept;
  std::uint64_t total_streams() const noexcept;
  std::uint64_t total_streams_reset() const noexcept;
  std::int64_t open_connections(std::size_t listeners_in_use) const noexcept;
};

// Counts one event on a counter of this process's own slot. Relaxed: nothing is ordered
// by it. (An add, not a load+store: during a reload the old and the new process of one id
// share the slot for a moment.) The cache line is not shared with other workers.
template <class T>
inline void bump(std::atomic<T>& c, T by = 1) noexcept {
  c.fetch_add(by, std::memory_order_relaxed);
}

static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

}  // namespace swactor
