#pragma once
// Force-included (-include) into every source of the SWACTOR_FUZZ build, and only there.
// Never used by the normal build.
//
// 1. toml++ is compiled header-only into the fuzz targets (instrumented), with NDEBUG off so
//    our own asserts fire. toml++'s internal TOML_ASSERT / TOML_ASSERT_ASSUME are kept as in
//    the release library the normal build links (no-ops): toml++ 3.3.0 trips its own
//    assertion in parse_key() on input "[," (tests/fuzz/corpus/config/toml_key_assert.toml),
//    which the release library reports as an ordinary parse error.
#define TOML_ASSERT(expr) static_assert(true)

// 2. clang < 15 lacks __builtin_source_location, so libstdc++ 12's <source_location> is
//    empty. This provides a minimal std::source_location (file, function, line; column 0)
//    from the builtins clang 14 does have (swactor/core/coro.hpp needs it).
#include <version>
#if __has_include(<source_location>)
#include <source_location>
#endif
#if !defined(__cpp_lib_source_location)
#include <cstdint>
namespace std {
struct source_location {
  static constexpr source_location current(const char* file = __builtin_FILE(),
                                           const char* func = __builtin_FUNCTION(),
                                           uint_least32_t line = __builtin_LINE()) noexcept {
    source_location s;
    s.file_ = file;
    s.func_ = func;
    s.line_ = line;
    return s;
  }
  constexpr source_location() noexcept = default;
  constexpr const char* file_name() const noexcept { return file_; }
  constexpr const char* function_name() const noexcept { return func_; }
  constexpr uint_least32_t line() const noexcept { return line_; }
  constexpr uint_least32_t column() const noexcept { return 0; }

 private:
  const char* file_ = "";
  const char* func_ = "";
  uint_least32_t line_ = 0;
};
}  // namespace std
#endif
