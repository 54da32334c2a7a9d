#include "net_util.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace swactor::detail {

namespace {
bool fill_inet(const std::string& host, std::uint16_t port, sockaddr_storage& ss, socklen_t& len) {
  std::memset(&ss, 0, sizeof ss);
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    len = sizeof(sockaddr_in);
    return true;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    len = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}
}  // namespace

result<int> open_listener(const listen_url& url, const listen_config& cfg, std::string& error) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int type = url.stream() ? SOCK_STREAM : SOCK_DGRAM;
  int family;
  if (url.kind == listen_kind::unix_stream || url.kind == listen_kind::unix_dgram) {
    family = AF_UNIX;
    auto* un = reinterpret_cast<sockaddr_un*>(&ss);
    un->sun_family = AF_UNIX;
    std::strncpy(un->sun_path, url.path.c_str(), sizeof un->sun_path - 1);
    len = sizeof(sockaddr_un);
    // A stale socket file from a previous run would make bind fail; only remove sockets.
    struct stat st {};
    if (::stat(url.path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(url.path.c_str());
  } else {
    if (!fill_inet(url.host, url.port, ss, len)) {
      error = "\"" + url.host + "\" is not an IP address literal";
      return make_error_code(errc::invalid_argument);
    }
    family = ss.ss_family;
  }
  int fd = ::socket(family, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    error = std::string("socket(): ") + std::strerror(errno);
    return std::error_code(errno, std::system_category());
  }
  int one = 1;
  if (family != AF_UNIX) {
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (cfg.reuse_port) ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  }
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    int e = errno;
    error = std::string("bind(") + cfg.url + "): " + std::strerror(e);
    ::close(fd);
    return std::error_code(e, std::system_category());
  }
  if (type == SOCK_STREAM && ::listen(fd, cfg.backlog) != 0) {
    int e = errno;
    error = std::string("listen(") + cfg.url + "): " + std::strerror(e);
    ::close(fd);
    return std::error_code(e, std::system_category());
  }
  return fd;
}

std::string format_address(const sockaddr* sa, socklen_t len) {
  char buf[INET6_ADDRSTRLEN] = {};
  switch (sa->sa_family) {
    case AF_INET: {
      auto* v4 = reinterpret_cast<const sockaddr_in*>(sa);
      inet_ntop(AF_INET, &v4->sin_addr, buf, sizeof buf);
      return std::string(buf) + ":" + std::to_string(ntohs(v4->sin_port));
    }
    case AF_INET6: {
      auto* v6 = reinterpret_cast<const sockaddr_in6*>(sa);
      inet_ntop(AF_INET6, &v6->sin6_addr, buf, sizeof buf);
      return "[" + std::string(buf) + "]:" + std::to_string(ntohs(v6->sin6_port));
    }
    case AF_UNIX: {
      auto* un = reinterpret_cast<const sockaddr_un*>(sa);
      if (len <= static_cast<socklen_t>(offsetof(sockaddr_un, sun_path))) return "";
      return std::string(un->sun_path, strnlen(un->sun_path, len - offsetof(sockaddr_un, sun_path)));
    }
  }
  return "?";
}

bool parse_address(const std::string& text, asio::generic::datagram_protocol::endpoint& out) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (!text.empty() && text[0] == '/') {
    auto* un = reinterpret_cast<sockaddr_un*>(&ss);
    if (text.size() >= sizeof un->sun_path) return false;
    un->sun_family = AF_UNIX;
    std::memcpy(un->sun_path, text.data(), text.size());
    len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + text.size() + 1);
  } else {
    auto u = parse_listen_url("udp://" + text);
    if (!u || !fill_inet(u.host, u.port, ss, len)) return false;
  }
  out = asio::generic::datagram_protocol::endpoint(&ss, len);
  return true;
}

int socket_family(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return -1;
  return ss.ss_family;
}

std::string local_address(int fd) {
  if (fd < 0) return {};
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return {};
  return format_address(reinterpret_cast<const sockaddr*>(&ss), len);
}

}  // namespace swactor::detail
