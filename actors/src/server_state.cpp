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

}  // namespace

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
