#pragma once
// A blocking line-protocol client for integration tests: connect to 127.0.0.1:PORT, send a
// line, read one reply line (5 s receive timeout).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>

namespace swactor::testing {

class line_client {
 public:
  explicit line_client(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~line_client() { ::close(fd_); }
  line_client(const line_client&) = delete;
  line_client& operator=(const line_client&) = delete;

  bool ok() const { return ok_; }

  // Sends `line` + "\n" and returns the reply line without its "\n", or "<send failed>" /
  // "<no reply>".
  std::string call(const std::string& line) {
    std::string out = line + "\n";
    if (::send(fd_, out.data(), out.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(out.size()))
      return "<send failed>";
    std::string reply;
    char c;
    while (::recv(fd_, &c, 1, 0) == 1) {
      if (c == '\n') return reply;
      reply += c;
    }
    return "<no reply>";
  }

  // The probe module's `whoami` ("worker N pid P") as N, or -1.
  int whoami() {
    auto r = call("whoami");
    if (r.rfind("worker ", 0) != 0) return -1;
    return std::atoi(r.c_str() + 7);
  }

 private:
  int fd_ = -1;
  bool ok_ = false;
};

}  // namespace swactor::testing
