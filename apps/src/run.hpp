#pragma once
#include <string>

#include "swactor/actors/server.hpp"

namespace swactor::apps {
// `swactor run FILE`: exit status of the process.
int cmd_run(const std::string& file);
// `swactor worker ...` (internal: started by the master).
int cmd_worker(const worker_args& args);
}  // namespace swactor::apps
