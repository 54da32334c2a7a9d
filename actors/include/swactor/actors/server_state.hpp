#pragma once
// Counters shared by the master and every worker: one memfd mapping created by the master
// before it starts anything and inherited by the exec'd processes. Only lock-free atomics
// live here, so a process that dies mid-update cannot wedge anyone. Stats are read from it
// (they survive a worker crash), and session ids come from it (64-bit, monotonic, never
// reused while the master lives).

#include <atomic>
#include <cstdint>

namespace swactor {

inline constexpr int kMaxProcesses = 2048;  // workers + task workers
inline constexpr int kMaxListeners = 64;  // also the size of proc_slot::listener_connections

enum class proc_state : std::uint32_t { empty = 0, starting, idle, busy, stopping, exited };

struct proc_slot {
  std::atomic<std::int32_t> pid{0};
  std::atomic<std::uint32_t> state{0};
  std::atomic<std::uint32_t> in_flight{0};     // handlers running now
  std::atomic<std::uint64_t> messages{0};      // receive/packet events handled (lifetime of slot)
  std::atomic<std::uint64_t> connections{0};   // open now (base mode)
  std::atomic<std::uint64_t> tasks{0};         // task worker: tasks run; worker: tasks started
  std::atomic<std::uint64_t> restarts{0};
  std::atomic<std::int64_t> started_ms{0};
  // Base mode: connections this process holds per listener, so the master can release them
  // from the listener counters when the process dies without closing them.
  std::atomic<std::int64_t> listener_connections[64]{};
};

struct listener_counters {
  std::atomic<std::int64_t> connections{0};  // open now, all workers
};

struct server_state {
  static constexpr std::uint64_t kMagic = 0x7377'6163'746f'7201ull;
  std::uint64_t magic = kMagic;
  std::atomic<std::uint64_t> next_session{1};
  std::atomic<std::int64_t> start_ms{0};
  std::atomic<std::uint64_t> accepted{0};
  std::atomic<std::uint64_t> closed{0};
  std::atomic<std::uint64_t> aborted{0};      // closed by error, limit or reset
  std::atomic<std::uint64_t> refused{0};      // over max_connections
  std::atomic<std::uint64_t> messages{0};
  std::atomic<std::uint64_t> tasks_started{0};
  std::atomic<std::uint64_t> tasks_done{0};
  std::atomic<std::uint64_t> tasks_in_flight{0};
  listener_counters listeners[kMaxListeners];
  proc_slot procs[kMaxProcesses];
};

static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

}  // namespace swactor
