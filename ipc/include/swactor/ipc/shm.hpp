#pragma once
// A shared-memory segment in a memfd. The master creates it before starting workers; a
// forked child keeps the mapping, and a fork+exec'd child maps it again from the inherited
// descriptor with attach(fd). The memfd is created close-on-exec: list it in
// process_options::inherit_fds (or clear FD_CLOEXEC yourself) to hand it to an exec'd child.

#include <cstddef>
#include <string_view>

#include "swactor/core/error.hpp"
#include "swactor/ipc/shm_error.hpp"

namespace swactor::ipc {

class shm_region {
 public:
  shm_region() = default;
  ~shm_region();
  shm_region(shm_region&& other) noexcept;
  shm_region& operator=(shm_region&& other) noexcept;
  shm_region(const shm_region&) = delete;
  shm_region& operator=(const shm_region&) = delete;

  // A zero-filled segment of `size` bytes, mapped read/write, sealed against resizing (so a
  // process that attaches can trust the size). `name` only shows in /proc/PID/fd.
  static result<shm_region> create(std::string_view name, std::size_t size);

  // Maps the whole segment behind `fd`. The descriptor is duplicated: the caller keeps
  // ownership of `fd`.
  static result<shm_region> attach(int fd);

  void* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  // The segment's descriptor (owned by this object; close-on-exec).
  int fd() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return data_ != nullptr; }

 private:
  void reset() noexcept;

  void* data_ = nullptr;
  std::size_t size_ = 0;
  int fd_ = -1;
};

}  // namespace swactor::ipc
