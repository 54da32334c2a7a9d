#pragma once
// Shared output for benchmark programs: a table on stdout and JSON in build/bench/NAME.json:
// {"name": ..., "results": [{"metric", "value", "unit", "reference_value", "ratio"}]}.
// A result without a reference has reference_value and ratio null.

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace swactor::bench {

// The median of a run's rounds (0 for none).
inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct result_row {
  std::string metric;
  double value = 0;
  std::string unit;
  std::optional<double> reference_value;  // same metric, measured for the reference
  std::string reference;                  // what the reference is
  std::optional<double> target_ratio;     // the target, when there is one
};

class report {
 public:
  explicit report(std::string name) : name_(std::move(name)) {}

  void add(result_row r) { rows_.push_back(std::move(r)); }

  // Prints the table and writes the JSON; the output dir comes from SWACTOR_BENCH_DIR
  // (default "bench"). Returns the JSON path.
  std::string finish() const {
    std::printf("\n== %s ==\n", name_.c_str());
    std::printf("%-46s %16s %-10s %16s %8s %8s  %s\n", "metric", "value", "unit", "reference",
                "ratio", "target", "reference is");
    nlohmann::json results = nlohmann::json::array();
    for (const auto& r : rows_) {
      std::optional<double> ratio;
      if (r.reference_value && *r.reference_value != 0) ratio = r.value / *r.reference_value;
      char ref[32] = "-", rat[32] = "-", tgt[32] = "-";
      if (r.reference_value) std::snprintf(ref, sizeof ref, "%.1f", *r.reference_value);
      if (ratio) std::snprintf(rat, sizeof rat, "%.3f", *ratio);
      if (r.target_ratio) std::snprintf(tgt, sizeof tgt, "%.2f", *r.target_ratio);
      std::printf("%-46s %16.1f %-10s %16s %8s %8s  %s\n", r.metric.c_str(), r.value,
                  r.unit.c_str(), ref, rat, tgt, r.reference.c_str());
      nlohmann::json j = {{"metric", r.metric}, {"value", r.value}, {"unit", r.unit}};
      j["reference_value"] = r.reference_value ? nlohmann::json(*r.reference_value) : nullptr;
      j["ratio"] = ratio ? nlohmann::json(*ratio) : nullptr;
      if (!r.reference.empty()) j["reference"] = r.reference;
      if (r.target_ratio) j["target_ratio"] = *r.target_ratio;
      results.push_back(std::move(j));
    }
    const char* dir = std::getenv("SWACTOR_BENCH_DIR");
    std::filesystem::path out = dir ? dir : "bench";
    std::filesystem::create_directories(out);
    out /= name_ + ".json";
    std::ofstream(out) << nlohmann::json{{"name", name_}, {"results", results}}.dump(2) << "\n";
    std::printf("-> %s\n", out.c_str());
    return out.string();
  }

 private:
  std::string name_;
  std::vector<result_row> rows_;
};

}  // namespace swactor::bench
