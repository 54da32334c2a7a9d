// Placeholder until the load tester lands.
#include <CLI/CLI.hpp>

#include "commands.hpp"

namespace swactor::apps {
void add_bench_command(CLI::App& app) {
  app.add_subcommand("bench", "Load tester (not built yet)");
}
}  // namespace swactor::apps
