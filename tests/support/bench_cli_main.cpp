// swactor_bench_cli: the `bench` subcommand on its own, e.g.
//   swactor_bench_cli bench -s tcp://127.0.0.1:9501 -f long_tcp -n 10000
#include <CLI/CLI.hpp>

#include "commands.hpp"

int main(int argc, char** argv) {
  CLI::App app("swactor bench stand-in", "swactor");
  app.require_subcommand(1);
  swactor::apps::add_bench_command(app);
  CLI11_PARSE(app, argc, argv);
  return 0;
}
