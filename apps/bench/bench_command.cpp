// `swactor bench`: the CLI face of bench::runner. The subcommand takes its words raw and
// parses them itself (args.cpp), so every bad argument is one line and exit status 2.
#include <signal.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "args.hpp"
#include "commands.hpp"
#include "runner.hpp"

namespace swactor::bench {

namespace {

volatile std::sig_atomic_t sigint_seen = 0;

void on_sigint(int) {
  if (sigint_seen) _exit(130);  // a second ^C: leave now
  sigint_seen = 1;
}

}  // namespace

int run_cli(const std::vector<std::string>& args) {
  auto parsed = parse_args(args);
  if (!parsed.config) {
    std::fprintf(parsed.exit_code == 0 ? stdout : stderr, "%s\n", parsed.message.c_str());
    return parsed.exit_code;
  }
  settings s = std::move(*parsed.config);
  s.progress = isatty(STDOUT_FILENO) == 1;

  std::unique_ptr<runner> engine;
  try {
    engine = std::make_unique<runner>(s);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "swactor bench: %s\n", e.what());
    return 2;
  }

  sigint_seen = 0;
  struct sigaction sa {}, old {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old);

  double last_t = 0;
  std::uint64_t last_n = 0;
  bool shown = false;
  auto res = engine->run([&](const progress& p) {
    if (sigint_seen) engine->stop();
    if (s.progress && p.elapsed_s - last_t >= 1.0) {
      const double rate = static_cast<double>(p.requests - last_n) / (p.elapsed_s - last_t);
      std::printf("\r\033[K%s", format_progress(p, rate).c_str());
      std::fflush(stdout);
      last_t = p.elapsed_s;
      last_n = p.requests;
      shown = true;
    }
  });
  sigaction(SIGINT, &old, nullptr);

  if (shown) std::printf("\r\033[K");
  std::fputs(format_table(s, res).c_str(), stdout);
  std::fflush(stdout);

  int status = res.interrupted ? 130 : (res.error_total() > 0 ? 1 : 0);
  if (!s.json_file.empty()) {
    std::ofstream out(s.json_file);
    out << to_json(s, res).dump(2) << "\n";
    if (!out) {
      std::fprintf(stderr, "swactor bench: cannot write %s\n", s.json_file.c_str());
      if (status == 0) status = 1;
    }
  }
  return status;
}

}  // namespace swactor::bench

namespace swactor::apps {

void add_bench_command(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "bench", "Load tester: bench -s URL -f MODE (-n N | -d DURATION) [...]; bench --help");
  // Every word after `bench` goes to our own parser, --help included.
  sub->prefix_command();
  sub->set_help_flag();
  sub->callback([sub] {
    const int status = bench::run_cli(sub->remaining());
    std::fflush(nullptr);
    std::exit(status);
  });
}

}  // namespace swactor::apps
