// Shared-memory table throughput: get/set in one process and in two processes on
// different keys, against std::unordered_map + std::mutex in one process (the reference).
// Target (issue 5): >= 10 M get/s in one process.
//
//   cmake --build build-shm --target bench_table && build-shm/tests/bench/bench_table

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "bench_report.hpp"
#include "swactor/ipc/atomic.hpp"
#include "swactor/ipc/table.hpp"

namespace {

using clock_type = std::chrono::steady_clock;
using namespace swactor::ipc;

constexpr auto run_for = std::chrono::milliseconds(500);

std::vector<std::string> make_keys(std::size_t key_count) {
  std::vector<std::string> keys;
  keys.reserve(key_count);
  for (std::size_t i = 0; i < key_count; ++i) keys.push_back("user:" + std::to_string(i * 7919));
  return keys;
}

// A shuffled visiting order, so that neither side benefits from sequential prefetch.
std::vector<std::uint32_t> make_order(std::size_t n, std::uint32_t seed) {
  std::vector<std::uint32_t> o(n);
  for (std::size_t i = 0; i < n; ++i) o[i] = static_cast<std::uint32_t>(i);
  std::mt19937 rng(seed);
  std::shuffle(o.begin(), o.end(), rng);
  return o;
}

// Runs op(i) until `run_for` has elapsed; returns ops/s. The clock is read every 1024 ops.
double measure(const std::function<void(std::size_t)>& op) {
  std::size_t ops = 0;
  auto start = clock_type::now();
  auto end = start + run_for;
  clock_type::time_point now;
  do {
    for (std::size_t k = 0; k < 1024; ++k) op(ops + k);
    ops += 1024;
    now = clock_type::now();
  } while (now < end);
  return ops / std::chrono::duration<double>(now - start).count();
}

// The same measurement in `procs` forked processes at once; returns the summed ops/s.
double measure_in_processes(int procs, const std::function<void(int, std::size_t)>& op) {
  auto go = atomic::create(0);
  auto total = atomic64::create(0);
  if (!go || !total) return 0;
  std::vector<pid_t> pids;
  std::fflush(nullptr);
  for (int p = 0; p < procs; ++p) {
    pid_t pid = ::fork();
    if (pid == 0) {
      while (go->get() == 0) go->wait_while(0, std::chrono::milliseconds(100));
      double r = measure([&](std::size_t i) { op(p, i); });
      total->add(static_cast<std::int64_t>(r));
      ::_exit(0);
    }
    pids.push_back(pid);
  }
  go->set(1);
  go->notify(-1);
  for (pid_t pid : pids) {
    int st;
    ::waitpid(pid, &st, 0);
  }
  return static_cast<double>(total->get());
}

struct ref_row {
  std::int64_t n = 0;
  double f = 0;
  char s[32] = {};
};

// One full set of measurements with `key_count` keys in a table of `table_rows` rows.
bool run(std::size_t key_count, swactor::bench::report& rep) {
  const std::size_t table_rows = key_count + key_count / 4;
  const auto keys = make_keys(key_count);
  const auto order = make_order(key_count, 42);

  table_schema schema;
  schema.size = table_rows;
  schema.column("n", column_type::int64)
      .column("f", column_type::float64)
      .column("s", column_type::string, 32);
  auto created = table::create("bench", schema);
  if (!created) {
    std::fprintf(stderr, "table::create: %s\n", created.error().message().c_str());
    return false;
  }
  table& t = *created;
  for (std::size_t i = 0; i < key_count; ++i)
    t.set(keys[i], {{"n", static_cast<std::int64_t>(i)}, {"f", 0.5}, {"s", "value"}});

  std::unordered_map<std::string, ref_row> map;
  map.reserve(table_rows);
  std::mutex mu;
  for (std::size_t i = 0; i < key_count; ++i) map[keys[i]].n = static_cast<std::int64_t>(i);

  volatile std::int64_t sink = 0;
  const std::size_t mask_n = key_count;

  // -- one process --------------------------------------------------------------------
  double ref_get = measure([&](std::size_t i) {
    const auto& k = keys[order[i % mask_n]];
    std::lock_guard g(mu);
    auto it = map.find(k);
    if (it != map.end()) sink = sink + it->second.n;
  });
  double ref_set = measure([&](std::size_t i) {
    const auto& k = keys[order[i % mask_n]];
    std::lock_guard g(mu);
    map[k].n = static_cast<std::int64_t>(i);
  });
  double tbl_get = measure([&](std::size_t i) {
    auto v = t.get_int(keys[order[i % mask_n]], "n");
    if (v) sink = sink + *v;
  });
  double tbl_set = measure([&](std::size_t i) {
    t.set(keys[order[i % mask_n]], "n", static_cast<std::int64_t>(i));
  });
  double tbl_get_row = measure([&](std::size_t i) {
    auto r = t.get(keys[order[i % mask_n]]);
    if (r) sink = sink + static_cast<std::int64_t>(r->values().size());
  });
  double tbl_incr = measure([&](std::size_t i) { t.incr(keys[order[i % mask_n]], "n"); });

  // -- two processes, disjoint halves of the keys ----------------------------------------
  const std::size_t half = key_count / 2;
  auto key_of = [&](int p, std::size_t i) -> const std::string& {
    std::uint32_t k = order[i % mask_n];
    return keys[(k % half) + static_cast<std::size_t>(p) * half];
  };
  double tbl_get2 = measure_in_processes(2, [&](int p, std::size_t i) {
    auto v = t.get_int(key_of(p, i), "n");
    if (v) sink = sink + *v;
  });
  double tbl_set2 = measure_in_processes(2, [&](int p, std::size_t i) {
    t.set(key_of(p, i), "n", static_cast<std::int64_t>(i));
  });

  auto st = t.stats();
  std::printf("table: %zu rows in %zu buckets, longest chain %zu, %.1f MiB shared\n", st.rows,
              st.buckets, st.longest_chain, st.memory_bytes / 1048576.0);

  const std::string ref = "std::unordered_map + std::mutex, 1 process";
  const std::string tag = ", " + std::to_string(key_count / 1000) + "k keys";
  rep.add({"table get_int, 1 process" + tag, tbl_get, "ops/s", ref_get, ref, std::nullopt});
  rep.add({"table set (1 column), 1 process" + tag, tbl_set, "ops/s", ref_set, ref, std::nullopt});
  rep.add({"table get_int, 2 processes (sum)" + tag, tbl_get2, "ops/s", ref_get, ref, std::nullopt});
  rep.add({"table set, 2 processes (sum)" + tag, tbl_set2, "ops/s", ref_set, ref, std::nullopt});
  rep.add({"table get (whole row copy), 1 process" + tag, tbl_get_row, "ops/s", ref_get, ref,
           std::nullopt});
  rep.add({"table incr, 1 process" + tag, tbl_incr, "ops/s", ref_set, ref, std::nullopt});
  rep.add({"table get_int vs target 10M/s" + tag, tbl_get, "ops/s", 10e6,
           "issue 5 target: 10,000,000 get/s", 1.0});
  return true;
}

}  // namespace

int main() {
  swactor::bench::report rep("bench_table");
  // A working set that fits the caches, and one that does not (random order both times).
  for (std::size_t keys : {std::size_t{10'000}, std::size_t{100'000}})
    if (!run(keys, rep)) return 1;
  rep.finish();
  return 0;
}
