#include "admin.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>

namespace swactor::apps {

int cmd_admin(const std::string& cmd, const std::string& pid_file, const std::string& socket,
              const std::string& command_line) {
  std::string path = socket;
  if (path.empty()) {
    if (pid_file.empty()) {
      std::cerr << "swactor " << cmd << ": give --pid-file FILE or --socket PATH\n";
      return 2;
    }
    // The pid file holds the master's pid and, on its second line, the admin socket.
    std::ifstream in(pid_file);
    std::string pid;
    if (!in || !std::getline(in, pid) || !std::getline(in, path) || path.empty()) {
      std::cerr << "swactor " << cmd << ": cannot read " << pid_file << " (is the server running?)\n";
      return 1;
    }
  }
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    std::cerr << "swactor " << cmd << ": socket path too long\n";
    return 2;
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  timeval tv{20, 0};  // reload answers once the new code was tried
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    std::cerr << "swactor " << cmd << ": cannot connect to " << path << ": " << std::strerror(errno) << "\n";
    ::close(fd);
    return 1;
  }
  std::string line = (command_line.empty() ? cmd : command_line) + "\n";
  if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    std::cerr << "swactor " << cmd << ": write failed: " << std::strerror(errno) << "\n";
    ::close(fd);
    return 1;
  }
  std::string reply;
  char buf[4096];
  for (;;) {
    auto n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    reply.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  if (reply.empty()) {
    std::cerr << "swactor " << cmd << ": no reply from " << path << "\n";
    return 1;
  }
  std::cout << reply;
  return reply.find("\"error\"") == std::string::npos ? 0 : 1;
}

}  // namespace swactor::apps
