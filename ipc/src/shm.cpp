#include "swactor/ipc/shm.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace swactor::ipc {
namespace {
std::error_code last_error() { return {errno, std::system_category()}; }
}  // namespace

shm_region::~shm_region() { reset(); }

shm_region::shm_region(shm_region&& o) noexcept : data_(o.data_), size_(o.size_), fd_(o.fd_) {
  o.data_ = nullptr;
  o.size_ = 0;
  o.fd_ = -1;
}

shm_region& shm_region::operator=(shm_region&& o) noexcept {
  if (this != &o) {
    reset();
    data_ = o.data_;
    size_ = o.size_;
    fd_ = o.fd_;
    o.data_ = nullptr;
    o.size_ = 0;
    o.fd_ = -1;
  }
  return *this;
}

void shm_region::reset() noexcept {
  if (data_) ::munmap(data_, size_);
  if (fd_ >= 0) ::close(fd_);
  data_ = nullptr;
  size_ = 0;
  fd_ = -1;
}

result<shm_region> shm_region::create(std::string_view name, std::size_t size) {
  if (size == 0) return std::make_error_code(std::errc::invalid_argument);
  std::string n(name.empty() ? std::string_view("swactor.shm") : name);
  int fd = ::memfd_create(n.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return last_error();
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    auto ec = last_error();
    ::close(fd);
    return ec;
  }
  // Nobody may resize it later: a shrink would SIGBUS every process that maps it.
  ::fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL);
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    auto ec = last_error();
    ::close(fd);
    return ec;
  }
  shm_region r;
  r.data_ = p;
  r.size_ = size;
  r.fd_ = fd;
  return r;
}

result<shm_region> shm_region::attach(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return last_error();
  if (st.st_size <= 0) return make_error_code(shm_errc::bad_segment);
  int own = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (own < 0) return last_error();
  auto size = static_cast<std::size_t>(st.st_size);
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, own, 0);
  if (p == MAP_FAILED) {
    auto ec = last_error();
    ::close(own);
    return ec;
  }
  shm_region r;
  r.data_ = p;
  r.size_ = size;
  r.fd_ = own;
  return r;
}

}  // namespace swactor::ipc
