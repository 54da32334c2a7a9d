#pragma once
// CAF atoms and typed interfaces of the server roles (private to actors/).

#include <string>

#include <caf/all.hpp>

namespace swactor::detail {

using stop_atom = caf::atom_constant<caf::atom("stop")>;
using reload_atom = caf::atom_constant<caf::atom("reload")>;
using stats_atom = caf::atom_constant<caf::atom("stats")>;
using ready_atom = caf::atom_constant<caf::atom("ready")>;
using bus_publish_atom = caf::atom_constant<caf::atom("buspub")>;
using bus_stats_atom = caf::atom_constant<caf::atom("busstats")>;

// The manager (in the master): reload (true = task workers only), stop, stats as JSON, an
// operator's bus publish (topic, message -> JSON result) and the bus stats as JSON.
using manager_actor = caf::typed_actor<caf::reacts_to<reload_atom, bool>, caf::reacts_to<stop_atom>,
                                       caf::replies_to<stats_atom>::with<std::string>,
                                       caf::replies_to<bus_publish_atom, std::string, std::string>::with<std::string>,
                                       caf::replies_to<bus_stats_atom>::with<std::string>>;

// A worker or task worker: stop gracefully (the string says why), its own stats as JSON.
using worker_actor = caf::typed_actor<caf::reacts_to<stop_atom, std::string>,
                                      caf::replies_to<stats_atom>::with<std::string>>;

}  // namespace swactor::detail
