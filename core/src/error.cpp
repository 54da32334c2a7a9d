#include "swactor/core/error.hpp"

namespace swactor {
namespace {

class core_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "swactor.core"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::ok: return "success";
      case errc::timeout: return "operation timed out";
      case errc::closed: return "closed";
      case errc::cancelled: return "operation cancelled";
      case errc::negative_counter: return "wait group counter would become negative";
      case errc::not_found: return "not found";
      case errc::invalid_argument: return "invalid argument";
      case errc::request_failed: return "actor request failed";
      case errc::stalled: return "loop stalled: no coroutine can be woken";
    }
    return "unknown swactor.core error";
  }
};

}  // namespace

// Constant-initialized at namespace scope: a function-local static would cost a guard
// check on every call, and error codes are made on hot paths.
constinit const core_category_impl core_category_instance{};

const std::error_category& core_category() noexcept {
  return core_category_instance;
}

}  // namespace swactor
