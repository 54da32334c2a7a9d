#pragma once
// Process mode: a reactor thread of the master. It owns client connections (socket I/O,
// framing, output queues, heartbeats) and hands complete messages to workers over one IPC
// link per worker, chosen by dispatch_mode. Messages for a worker whose link is down (it
// crashed, recycles or reloads) wait in a queue until its replacement attaches, so client
// connections survive worker restarts.

#include <memory>
#include <string>
#include <thread>

#include "atoms.hpp"
#include "swactor/actors/app_config.hpp"
#include "swactor/actors/server_state.hpp"
#include "swactor/core/loop.hpp"

namespace swactor::detail {

using conn_atom = caf::atom_constant<caf::atom("conn")>;
using attach_atom = caf::atom_constant<caf::atom("attach")>;
using dgram_atom = caf::atom_constant<caf::atom("dgram")>;

// new connection (fd, listener index, session id); a worker's link end (worker id, fd);
// serve a datagram listener (listener index, fd); stop (close everything).
using reactor_actor = caf::typed_actor<caf::reacts_to<conn_atom, int, int, std::uint64_t>,
                                       caf::reacts_to<attach_atom, int, int>,
                                       caf::reacts_to<dgram_atom, int, int>,
                                       caf::reacts_to<stop_atom>>;

class reactor_thread {
 public:
  reactor_thread(int id, const app_config& app, server_state* state);
  ~reactor_thread();  // stops and joins

  // Starts the thread; returns its actor once the loop runs.
  reactor_actor start();
  void join();
  int id() const noexcept { return id_; }

  struct impl;

 private:
  int id_;
  std::unique_ptr<impl> impl_;
  std::thread thread_;
};

}  // namespace swactor::detail
