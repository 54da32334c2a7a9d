#include "run.hpp"

#include "modules/builtin.hpp"
#include "swactor/actors/server.hpp"

namespace swactor::apps {

int cmd_run(const std::string& file) { return run_master(file, builtin_modules()); }

int cmd_worker(const worker_args& args) { return run_worker(args, builtin_modules()); }

}  // namespace swactor::apps
