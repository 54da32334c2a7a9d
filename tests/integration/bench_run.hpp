#pragma once
// Runs the real `swactor bench` with --json and hands back its exit status, output and
// parsed report: shared by the load-tester tests (test_bench*.cpp).

#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "harness.hpp"

namespace swactor::testing {

struct bench_run {
  run_result r;
  nlohmann::json report;
};

inline bench_run run_bench(std::vector<std::string> args, duration timeout = std::chrono::seconds(30)) {
  temp_dir dir("swactor-bench");
  const auto report = dir.file("report.json").string();
  std::vector<std::string> argv = {swactor_bin(), "bench"};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back("--json");
  argv.push_back(report);
  bench_run out;
  out.r = run(argv, timeout);
  INFO("stdout: " << out.r.out << "\nstderr: " << out.r.err);
  REQUIRE_FALSE(out.r.timed_out);
  const auto text = read_file(report);
  REQUIRE_FALSE(text.empty());
  out.report = nlohmann::json::parse(text);
  return out;
}

}  // namespace swactor::testing
