#pragma once
// Process mode: the acceptor (on the master's loop) and the reactor threads. A reactor
// holds client connections in a conn_host, the same connection layer a base-mode worker
// uses; its sink turns connection events into typed messages to the worker chosen by
// dispatch_mode, over one IPC link per worker. Messages for a worker whose link is down
// (it crashed, recycles or reloads) wait until its replacement attaches, so client
// connections survive worker restarts.

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "atoms.hpp"
#include "net/acceptor.hpp"
#include "swactor/actors/app_config.hpp"
#include "swactor/actors/server_state.hpp"
#include "swactor/core/loop.hpp"

namespace swactor::net {
class tls_store;
}

namespace swactor::detail {

using conn_atom = caf::atom_constant<caf::atom("conn")>;
using attach_atom = caf::atom_constant<caf::atom("attach")>;
using dgram_atom = caf::atom_constant<caf::atom("dgram")>;

// new connection (fd, listener index, session id); a worker's link end (worker id, fd);
// serve a datagram listener (listener index, fd); stop (close everything).
using reactor_actor = caf::typed_actor<caf::reacts_to<conn_atom, int, int, std::uint64_t, std::string>,
                                       caf::reacts_to<attach_atom, int, int>,
                                       caf::reacts_to<dgram_atom, int, int>,
                                       caf::reacts_to<stop_atom>>;

// Which worker gets an event (pure: unit-tested). `ip_hash` and `uid` describe the
// connection (0 = unknown); `alive` and `load` describe worker w; `rr` is the round-robin
// cursor, advanced by the modes that use it.
struct dispatch_input {
  std::uint64_t session = 0;
  std::uint64_t ip_hash = 0;
  std::uint64_t uid = 0;
  bool has_connection = false;
};
// A template over the callables (alive(int) -> bool, load(int) -> u32): it runs once per
// request, where building std::function objects cost more than the choice itself.
template <class Alive, class Load>
int pick_worker(dispatch_mode mode, int workers, const dispatch_input& in, std::uint64_t& rr, const Alive& alive,
                const Load& load) {
  auto n = static_cast<std::uint64_t>(workers);
  switch (mode) {
    case dispatch_mode::connection: return static_cast<int>(in.session % n);
    case dispatch_mode::ip:
      if (in.has_connection) return static_cast<int>(in.ip_hash % n);
      break;
    case dispatch_mode::uid:
      if (in.has_connection) return static_cast<int>((in.uid ? in.uid : in.session) % n);
      break;
    case dispatch_mode::idle: {
      // Fewest handlers running, round-robin among equals.
      int best = -1;
      std::uint32_t best_load = 0;
      for (std::uint64_t k = 0; k < n; ++k) {
        int w = static_cast<int>((rr + k) % n);
        if (!alive(w)) continue;
        auto l = load(w);
        if (best < 0 || l < best_load) {
          best = w;
          best_load = l;
        }
      }
      ++rr;
      return best >= 0 ? best : static_cast<int>(rr % n);
    }
    case dispatch_mode::round_robin: break;
  }
  // round_robin (and ip/uid without a connection): next live worker.
  for (std::uint64_t k = 0; k < n; ++k) {
    int w = static_cast<int>(rr++ % n);
    if (alive(w)) return w;
  }
  return static_cast<int>(rr % n);
}

class reactor_thread {
 public:
  // `tls`: the TLS listeners' contexts (shared by every reactor; may be null without any).
  reactor_thread(int id, const app_config& app, server_state* state, const net::tls_store* tls);
  ~reactor_thread();  // stops and joins

  // Starts the thread; returns its actor once the loop runs.
  reactor_actor start();
  void join();
  int id() const noexcept { return id_; }
  // From any thread: the reactor tells its connections the server is going away (HTTP/2:
  // GOAWAY with the last stream id) while their requests are still being answered.
  void go_away();

  struct impl;

 private:
  int id_;
  std::unique_ptr<impl> impl_;
  std::thread thread_;
};

// The reactor threads and the acceptor that feeds them.
class reactor_pool {
 public:
  reactor_pool(swactor::loop& lp, const app_config& app, server_state& state, const net::tls_store* tls);
  ~reactor_pool();

  // Starts the threads and accepts on the inherited listening sockets (one per listener).
  void start(const std::vector<int>& listen_fds);
  void stop_accepting();
  // Every reactor's connections hear that the server is going away (reactor_thread::go_away).
  void go_away();
  // Closes every connection (after queued output) and joins the threads.
  void stop();

  // For the supervisor: a new link per reactor for worker `id` (child ends returned), and
  // after the exec the parent ends go to the reactors.
  std::vector<int> make_links(int id);
  void links_done(int id, bool started);

 private:
  swactor::loop& lp_;
  const app_config& app_;
  server_state& state_;
  const net::tls_store* tls_;
  std::vector<std::unique_ptr<reactor_thread>> threads_;
  std::vector<reactor_actor> actors_;
  std::vector<std::unique_ptr<net::stream_acceptor>> acceptors_;
  std::vector<std::pair<int, int>> pending_links_;  // (ours, theirs) of the spawn in progress
};

}  // namespace swactor::detail
