#pragma once
// Fuzz builds only (SWACTOR_FUZZ=ON, force-included with -include for clang < 15):
// clang 14 lacks __builtin_source_location, so libstdc++ 12's <source_location> is empty.
// This provides a minimal std::source_location (file, function, line; column 0) from the
// builtins clang 14 does have. Never used by the normal build.
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
