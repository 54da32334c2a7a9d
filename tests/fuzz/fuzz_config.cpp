// libFuzzer target for the configuration parsers.
// Input: TOML text. It goes through config::load_string (toml++ plus our diagnostics) and,
// when it parses, through parse_app_config with an empty module registry ([server],
// [[listen]] with framing tables, [modules.NAME] — every module type is then unknown, which
// is itself a checked error path). The raw bytes also go to config::parse_size and
// config::parse_duration. Checks, beyond "no crash / no leak / no UB":
// - a failed parse leaves at least one diagnostic, each with a non-empty message;
// - parse_size / parse_duration give a value xor an error text, and a parsed size printed
//   with format_size parses back to the same value.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "swactor/actors/app_config.hpp"
#include "swactor/actors/module.hpp"
#include "swactor/core/config.hpp"

// `plugin = "..."` would dlopen whatever path the fuzzer spells (running the initializers of
// any library or executable it finds): this target gets a loader that refuses, so the key's
// checks before and after loading are fuzzed, not the system's libraries. (The replay build
// links swactor_actors, whose loader is then not pulled from the archive.)
std::shared_ptr<const swactor::loaded_plugin> swactor::load_plugin(const std::string& path, std::string& error) {
  error = "the fuzz target loads no plugin (" + path + ")";
  return nullptr;
}

namespace {
// toml++ 3.3.0 (Debian 12) reaches TOML_UNREACHABLE (__builtin_unreachable: undefined
// behaviour, also in the release library) in is_non_ascii_horizontal_whitespace() for code
// points of its lookup chunks 0, 11 and 63 that are not whitespace, e.g. U+FEF8
// (tests/fuzz/findings/toml_unreachable_fef8.toml). Not ours to fix: such inputs are
// skipped until toml++ is upgraded or load_string filters them.
bool toml_unreachable_code_point(std::string_view s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    auto b = static_cast<unsigned char>(s[i]);
    char32_t c = 0;
    std::size_t n = 0;
    if (b >= 0xC2 && b < 0xE0) c = b & 0x1F, n = 1;
    else if (b >= 0xE0 && b < 0xF0) c = b & 0x0F, n = 2;
    else continue;
    if (i + n >= s.size()) break;
    for (std::size_t k = 1; k <= n; ++k) c = (c << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    const auto chunk = (c >= 0xA0 && c <= 0xFEFF) ? (c - 0xA0) / 0x3FA : 64;
    if ((chunk == 0 || chunk == 11 || chunk == 63) && c != 0xA0 && c != 0x3000 && c != 0xFEFF)
      return true;
  }
  return false;
}

void check(bool ok) {
  if (!ok) std::abort();
}

void check_diagnostics(const swactor::config::diagnostics& diag) {
  check(!diag.ok());
  for (const auto& d : diag.items()) check(!d.message.empty());
  (void)diag.to_string();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace config = swactor::config;
  std::string_view text(reinterpret_cast<const char*>(data), size);

  if (!toml_unreachable_code_point(text)) {
    config::diagnostics diag;
    auto root = config::load_string(text, "fuzz.toml", diag);
    if (!root) {
      check_diagnostics(diag);
    } else {
      swactor::module_registry reg;  // empty: every [modules.X] is an unknown type
      auto app = swactor::parse_app_config(*root, "fuzz.toml", reg, diag);
      if (!app) {
        check_diagnostics(diag);
      } else {
        check(diag.ok());
        for (const auto& l : app->listen) check(!l.url.empty() || !diag.ok());
      }
    }
  }

  // The value parsers, on the first line of the raw bytes (as a TOML string value would be).
  std::string_view line = text.substr(0, text.find('\n'));
  {
    std::string err;
    auto v = config::parse_size(line, err);
    check(v.has_value() == err.empty());
    if (v) {
      std::string err2;
      auto back = config::parse_size(config::format_size(*v), err2);
      check(back && *back == *v);
    }
  }
  {
    std::string err;
    auto v = config::parse_duration(line, err);
    check(v.has_value() == err.empty());
    if (v) (void)config::format_duration(*v);
  }
  return 0;
}
