#pragma once
// Errors of the shared-memory and process layer: std::error_code with the "swactor.ipc.shm"
// category (ipc::errc in envelope.hpp belongs to the IPC links). Deadlines and closed peers
// use the core codes swactor::errc::timeout and swactor::errc::closed, like the rest of the
// project. System failures (memfd_create, mmap, fork, ...) are reported with
// std::system_category() and the errno value.

#include <system_error>
#include <type_traits>

namespace swactor::ipc {

enum class shm_errc {
  ok = 0,
  table_full = 1,     // no free row left: nothing was written
  key_too_long,       // a table key is longer than table::max_key_length bytes
  value_too_long,     // a string value is longer than its column (never truncated)
  no_such_column,     // unknown column name
  type_mismatch,      // value type does not match the column type (or incr on a string)
  not_found,          // no row with that key
  exists,             // add(): the key is already present
  invalid_schema,     // table_schema::validate() found a problem
  bad_segment,        // attach(): the descriptor does not hold a valid segment of that kind
  would_block,        // try_lock() could not take the lock
  owner_dead,         // a robust lock was taken over from a dead owner (state may be torn)
  message_too_large,  // a framed message exceeds the limit
  not_running,        // the process was never started or was already reaped
  exec_failed,        // exec of the program failed in the child (see the log for errno)
};

const std::error_category& shm_category() noexcept;

inline std::error_code make_error_code(shm_errc e) noexcept {
  return {static_cast<int>(e), shm_category()};
}

}  // namespace swactor::ipc

namespace std {
template <>
struct is_error_code_enum<swactor::ipc::shm_errc> : true_type {};
}  // namespace std
