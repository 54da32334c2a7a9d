#pragma once
// Running the Node client scripts of tests/integration/node/ (Node `ws`, headless Chromium
// through playwright-core): where install-deps put their npm packages, a check that they
// are there (missing ones fail the test, never skip it), and a run that counts the
// scripts' "ok NAME" / "not ok NAME" lines.
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "harness.hpp"

namespace swactor::testing::node {

// $SWACTOR_NODE_DIR, else the build's node/ dir, else the source tree's build/node
// (install-deps' default when make was not used).
inline std::filesystem::path node_dir() {
  namespace fs = std::filesystem;
  if (const char* e = std::getenv("SWACTOR_NODE_DIR"); e && *e) return e;
  for (fs::path p : {fs::path(SWACTOR_NODE_DIR), fs::path(SWACTOR_NODE_SCRIPTS) / ".." / ".." / ".." / "build" / "node"})
    if (fs::exists(p / "node_modules" / "ws" / "package.json")) return p;
  return SWACTOR_NODE_DIR;
}

// Fails (never skips) when something install-deps provides is missing.
inline void require_deps(bool browser) {
  using namespace std::chrono_literals;
  namespace fs = std::filesystem;
  const auto dir = node_dir();
  INFO("the Node/Chromium client tests need node, npm packages and chromium: run scripts/install-deps.sh "
       "(make test does), with SWACTOR_NODE_DIR=" << dir.string() << " when the build dir is not build/");
  REQUIRE(run({"sh", "-c", "command -v node"}, 10s).exit_code == 0);
  REQUIRE(fs::exists(dir / "node_modules" / "ws" / "package.json"));
  if (browser) {
    REQUIRE(fs::exists(dir / "node_modules" / "playwright-core" / "package.json"));
    REQUIRE(fs::exists("/usr/bin/chromium"));
  }
}

struct script_result {
  run_result run;
  int ok = 0, not_ok = 0;
  std::vector<std::string> lines;
  bool has(const std::string& prefix) const {
    for (const auto& l : lines)
      if (l.rfind(prefix, 0) == 0) return true;
    return false;
  }
};

inline script_result run_script(const std::string& name, std::vector<std::string> args, duration timeout) {
  std::vector<std::string> argv = {"node", std::string(SWACTOR_NODE_SCRIPTS) + "/" + name};
  argv.insert(argv.end(), args.begin(), args.end());
  spawn_options opts;
  opts.env = {"NODE_PATH=" + (node_dir() / "node_modules").string()};
  script_result r;
  r.run = run(argv, timeout, opts);
  r.lines = lines(r.run.out);
  for (const auto& l : r.lines) {
    if (l.rfind("ok ", 0) == 0) ++r.ok;
    if (l.rfind("not ok ", 0) == 0) ++r.not_ok;
  }
  return r;
}

}  // namespace swactor::testing::node
