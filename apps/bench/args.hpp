#pragma once
// `swactor bench` argument parsing, separate from running so it can be tested directly.

#include <optional>
#include <string>
#include <vector>

#include "settings.hpp"

namespace swactor::bench {

struct parsed_args {
  std::optional<settings> config;  // set when the run should go ahead
  int exit_code = 0;               // otherwise: 0 after --help, 2 for bad arguments
  std::string message;             // the help text, or one line "swactor bench: ..."
};

// `args` are the words after `bench`. Checks everything a run needs (validate()),
// so a config returned here does not make runner's constructor throw, except when the
// host name cannot be resolved.
parsed_args parse_args(const std::vector<std::string>& args);

// Parses, runs (live progress on a TTY, SIGINT stops the run), prints the final table
// and writes --json. Returns the exit status: 0 ok, 1 errors during the run, 2 bad
// arguments, 130 interrupted by SIGINT.
int run_cli(const std::vector<std::string>& args);

}  // namespace swactor::bench
