#pragma once
// Subcommands of the `swactor` CLI, each defined in its own file.

namespace CLI {
class App;
}

namespace swactor::apps {

// `swactor bench ...` (apps/bench/): adds the subcommand and its callback. The callback
// exits the process with the run's status (0 ok, 1 errors during run, 2 bad arguments).
void add_bench_command(CLI::App& app);

}  // namespace swactor::apps
