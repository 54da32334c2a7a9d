#pragma once
// How much the server's processes grew, for tests that must not see a body buffered whole:
// each process's resident peak (VmHWM) is reset to its current size (clear_refs 5), and
// growth() is the largest rise of one process since.
#include <sys/types.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "server_helpers.hpp"

namespace swactor::testing {

inline constexpr long kMiB = 1024;  // in KiB, as /proc reports

using server::status_kib;

struct rss_watch {
  std::vector<pid_t> pids;
  std::vector<long> base;
  explicit rss_watch(std::vector<pid_t> p) : pids(std::move(p)) { reset(); }
  void reset() {
    base.clear();
    for (auto pid : pids) {
      std::ofstream("/proc/" + std::to_string(pid) + "/clear_refs") << "5";
      base.push_back(status_kib(pid, "VmRSS"));
      REQUIRE(base.back() > 0);
      // The peak starts again from here (without that the test could not measure).
      REQUIRE(status_kib(pid, "VmHWM") <= base.back() + 4 * kMiB);
    }
  }
  // The largest peak growth of one process since reset(), in KiB.
  long growth() const {
    long g = 0;
    for (std::size_t i = 0; i < pids.size(); ++i) g = std::max(g, status_kib(pids[i], "VmHWM") - base[i]);
    return g;
  }
  std::string describe() const {
    std::string out;
    for (std::size_t i = 0; i < pids.size(); ++i)
      out += "pid " + std::to_string(pids[i]) + ": " + std::to_string(base[i]) + " KiB -> peak " +
             std::to_string(status_kib(pids[i], "VmHWM")) + " KiB; ";
    return out;
  }
};

// The server's workers and its master (which holds the reactors in process mode).
inline std::vector<pid_t> server_pids(server::server_under_test& s) {
  auto pids = s.worker_pids(s.stats());
  REQUIRE(!pids.empty());
  pids.push_back(s.proc->pid());
  return pids;
}

}  // namespace swactor::testing
