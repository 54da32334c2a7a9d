#pragma once
// Counters shared by the master and every worker: one memfd mapping created by the master
// before it starts anything and inherited by the exec'd processes. Only lock-free atomics
// live here, so a process that dies mid-update cannot wedge anyone. Stats are read from it
// (they survive a worker crash), and session ids come from it (64-bit, monotonic, never
// reused while the master lives).

#include <array>
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
