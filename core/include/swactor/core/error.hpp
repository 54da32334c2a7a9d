#pragma once
// The core error model: std::error_code with the "swactor.core" category, and result<T>
// (value or error) for operations that produce a value.

#include <cassert>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

namespace swactor {

enum class errc {
  ok = 0,
  timeout = 1,        // an operation's deadline passed
  closed,             // the channel / connection / object was closed
  cancelled,          // the operation was cancelled through its handle or slot
  negative_counter,   // a wait group went below zero
  not_found,          // unknown id (timer, session, ...)
  invalid_argument,   // bad argument to an API call
  request_failed,     // an actor request failed (the actor is gone or replied with an error)
  stalled,            // the loop stalled: nothing left that could wake a suspended coroutine
};

const std::error_category& core_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), core_category()};
}

// A value or an error code. Small on purpose: std::expected is C++23.
template <class T>
class result {
 public:
  result(T value) : state_(std::in_place_index<0>, std::move(value)) {}
  result(std::error_code ec) : state_(std::in_place_index<1>, ec) { assert(ec); }
  result(errc e) : result(make_error_code(e)) {}

  bool has_value() const noexcept { return state_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  T& value() & { return std::get<0>(state_); }
  const T& value() const& { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  std::error_code error() const noexcept {
    return has_value() ? std::error_code{} : std::get<1>(state_);
  }

 private:
  std::variant<T, std::error_code> state_;
};

}  // namespace swactor

namespace std {
template <>
struct is_error_code_enum<swactor::errc> : true_type {};
}  // namespace std
