#include "swactor/actors/server_state.hpp"

namespace swactor {
namespace {

template <class F>
std::uint64_t sum(const server_state& s, F field) {
  std::uint64_t n = field(s.acceptor);
  for (const auto& r : s.reactors) n += field(r);
  for (const auto& p : s.procs) n += field(p.conns);
  return n;
}

session_slot* registry(const server_state& s) noexcept {
  // The entries follow the struct in the same shared mapping (see server_state.hpp).
  return reinterpret_cast<session_slot*>(
      const_cast<char*>(reinterpret_cast<const char*>(&s) + sizeof(server_state)));
}

}  // namespace

std::uint64_t server_state::session_slots_for(std::uint64_t open) noexcept {
  // Load factor at most 1/4; at least 1,024 slots, at most 2^24 (256 MiB of address space,
  // of which only touched pages take memory).
  std::uint64_t want = open > (1ull << 22) ? (1ull << 24) : open * 4;
  std::uint64_t n = 1024;
  while (n < want) n <<= 1;
  return n;
}

void server_state::add_session(std::uint64_t id, std::int32_t pid) noexcept {
  if (session_slots == 0 || id == 0) return;
  auto* r = registry(*this);
  const std::uint64_t mask = session_slots - 1;
  std::uint64_t at = session_home(id, session_slots);
  for (int i = 0; i < kSessionProbe; ++i, at = (at + 1) & mask) {
    std::uint64_t empty = 0;
    if (r[at].id.load(std::memory_order_relaxed) == 0 &&
        r[at].id.compare_exchange_strong(empty, id, std::memory_order_acq_rel)) {
      r[at].pid.store(pid, std::memory_order_release);
      return;
    }
  }
  session_registry_full.fetch_add(1, std::memory_order_relaxed);
}

void server_state::remove_session(std::uint64_t id) noexcept {
  if (session_slots == 0 || id == 0) return;
  auto* r = registry(*this);
  const std::uint64_t mask = session_slots - 1;
  std::uint64_t at = session_home(id, session_slots);
  for (int i = 0; i < kSessionProbe; ++i, at = (at + 1) & mask) {
    if (r[at].id.load(std::memory_order_relaxed) != id) continue;
    r[at].pid.store(0, std::memory_order_relaxed);
    r[at].id.store(0, std::memory_order_release);
    return;
  }
}

void server_state::map_session_registry() const noexcept {
  if (session_slots == 0) return;
  const auto* p = reinterpret_cast<const volatile unsigned char*>(registry(*this));
  const std::size_t bytes = session_registry_bytes(session_slots);
  // A read is enough (a shared memfd page is allocated on any fault); never a write: other
  // processes may be registering sessions already.
  for (std::size_t at = 0; at < bytes; at += 4096) (void)p[at];
}

bool server_state::has_session(std::uint64_t id) const noexcept {
  if (session_slots == 0 || id == 0) return false;
  const auto* r = registry(*this);
  const std::uint64_t mask = session_slots - 1;
  std::uint64_t at = session_home(id, session_slots);
  // No early stop at an empty slot: a removal leaves holes inside a probe window.
  for (int i = 0; i < kSessionProbe; ++i, at = (at + 1) & mask)
    if (r[at].id.load(std::memory_order_acquire) == id) return true;
  return false;
}

std::size_t server_state::purge_sessions(std::int32_t pid) noexcept {
  if (session_slots == 0 || pid <= 0) return 0;
  auto* r = registry(*this);
  std::size_t n = 0;
  for (std::uint64_t i = 0; i < session_slots; ++i) {
    if (r[i].pid.load(std::memory_order_acquire) != pid) continue;
    // The process is gone: nothing else writes a slot that still holds its id. The pid goes
    // first, so a slot another process claims right after the id is cleared keeps its own.
    auto id = r[i].id.load(std::memory_order_relaxed);
    r[i].pid.store(0, std::memory_order_relaxed);
    if (id != 0 && r[i].id.compare_exchange_strong(id, 0, std::memory_order_acq_rel)) ++n;
  }
  return n;
}

std::uint64_t server_state::total_accepted() const noexcept {
  return sum(*this, [](const conn_counters& c) { return c.accepted.load(std::memory_order_relaxed); });
}
std::uint64_t server_state::total_closed() const noexcept {
  return sum(*this, [](const conn_counters& c) { return c.closed.load(std::memory_order_relaxed); });
}
std::uint64_t server_state::total_aborted() const noexcept {
  return sum(*this, [](const conn_counters& c) { return c.aborted.load(std::memory_order_relaxed); });
}
std::uint64_t server_state::total_refused() const noexcept {
  return sum(*this, [](const conn_counters& c) { return c.refused.load(std::memory_order_relaxed); });
}
std::uint64_t server_state::total_streams() const noexcept {
  return sum(*this, [](const conn_counters& c) { return c.streams.load(std::memory_order_relaxed); });
}
std::uint64_t server_state::total_streams_reset() const noexcept {
  return sum(*this, [](const conn_counters& c) { return c.streams_reset.load(std::memory_order_relaxed); });
}
std::uint64_t server_state::total_messages() const noexcept {
  std::uint64_t n = 0;
  for (const auto& p : procs) n += p.messages.load(std::memory_order_relaxed);
  for (const auto& r : reactors) n += r.requests.load(std::memory_order_relaxed);
  return n;
}
std::int64_t server_state::open_connections(std::size_t listeners_in_use) const noexcept {
  std::int64_t n = 0;
  for (std::size_t i = 0; i < listeners_in_use && i < static_cast<std::size_t>(kMaxListeners); ++i)
    n += listeners[i].connections.load(std::memory_order_relaxed);
  return n;
}

}  // namespace swactor
