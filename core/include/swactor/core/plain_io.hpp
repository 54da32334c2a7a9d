#pragma once

#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstddef>

// recv(2), send(2) and sendmsg(2) as bare system calls. glibc's wrappers are cancellation
// points: in a process with other threads (CAF's) each one enables and disables
// asynchronous cancellation around the call, which on a small echo costs more instructions
// than the rest of its user-space path through them. swactor never cancels threads, so the
// plain system call does the same. Results and errno as the wrappers'.
namespace swactor::plain_io {

inline ssize_t recv(int fd, void* buf, std::size_t n, int flags = 0) noexcept {
  return ::syscall(SYS_recvfrom, fd, buf, n, flags, nullptr, nullptr);
}
inline ssize_t send(int fd, const void* buf, std::size_t n, int flags) noexcept {
  return ::syscall(SYS_sendto, fd, buf, n, flags, nullptr, 0);
}
inline ssize_t sendmsg(int fd, const msghdr* mh, int flags) noexcept {
  return ::syscall(SYS_sendmsg, fd, mh, flags);
}

}  // namespace swactor::plain_io
