#include "swactor/ipc/shm_error.hpp"

#include <string>

namespace swactor::ipc {
namespace {
class shm_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "swactor.ipc.shm"; }
  std::string message(int ev) const override {
    switch (static_cast<shm_errc>(ev)) {
      case shm_errc::ok: return "ok";
      case shm_errc::table_full: return "table is full: no free row";
      case shm_errc::key_too_long: return "key too long (max 63 bytes)";
      case shm_errc::value_too_long: return "string value longer than its column";
      case shm_errc::no_such_column: return "no such column";
      case shm_errc::type_mismatch: return "value type does not match the column type";
      case shm_errc::not_found: return "key not found";
      case shm_errc::exists: return "key already exists";
      case shm_errc::invalid_schema: return "invalid table schema";
      case shm_errc::bad_segment: return "not a valid shared-memory segment of this kind";
      case shm_errc::would_block: return "lock is held";
      case shm_errc::owner_dead: return "previous lock owner died; state may be inconsistent";
      case shm_errc::message_too_large: return "message too large";
      case shm_errc::not_running: return "process not running";
      case shm_errc::exec_failed: return "exec failed in the child";
    }
    return "unknown ipc error " + std::to_string(ev);
  }
};
}  // namespace

// Not a function-local static: no guard check per call (see core/src/error.cpp).
constinit const shm_category_impl shm_category_instance{};

const std::error_category& shm_category() noexcept {
  return shm_category_instance;
}
}  // namespace swactor::ipc
