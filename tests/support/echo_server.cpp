// swactor_test_echo: a minimal single-threaded epoll echo server on raw sockets (no asio).
// It is the physical-limit reference for benchmarks and the target of integration tests.
//
//   swactor_test_echo [--tcp HOST:PORT] [--udp] [--unix PATH] [--faulty]
//
// --tcp    listen on TCP (port 0 = pick a free one). --udp also serves UDP on the same
//          host and port number. --unix serves a Unix stream socket at PATH.
// Once everything is bound it prints `unix=PATH`, `udp_port=N`, then `port=N` (TCP) and
// `ready`, each on its own line, flushed: wait for `port=` or `ready`.
// Echo is framing-agnostic: every byte read is written back unchanged.
// --faulty: every 10th accepted connection is closed, alternately right after accept and
// after reading its first request (without replying); every 100th reply has its middle
// byte flipped. Exits on SIGTERM/SIGINT.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

volatile sig_atomic_t stop_flag = 0;
void on_signal(int) { stop_flag = 1; }

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "swactor_test_echo: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

[[noreturn]] void usage(const std::string& msg) {
  std::fprintf(stderr,
               "swactor_test_echo: %s\nusage: swactor_test_echo [--tcp HOST:PORT] [--udp] "
               "[--unix PATH] [--faulty]\n",
               msg.c_str());
  std::exit(2);
}


// Resolves HOST:PORT ([v6]:port accepted) to a sockaddr.
bool resolve(const std::string& hostport, sockaddr_storage& ss, socklen_t& len) {
  std::string host, port;
  if (!hostport.empty() && hostport[0] == '[') {
    auto close = hostport.find(']');
    if (close == std::string::npos || close + 1 >= hostport.size() || hostport[close + 1] != ':')
      return false;
    host = hostport.substr(1, close - 1);
    port = hostport.substr(close + 2);
  } else {
    auto colon = hostport.rfind(':');
    if (colon == std::string::npos) return false;
    host = hostport.substr(0, colon);
    port = hostport.substr(colon + 1);
  }
  addrinfo hints{};
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || !res) return false;
  std::memcpy(&ss, res->ai_addr, res->ai_addrlen);
  len = res->ai_addrlen;
  freeaddrinfo(res);
  return true;
}

void set_port(sockaddr_storage& ss, std::uint16_t port) {
  if (ss.ss_family == AF_INET6)
    reinterpret_cast<sockaddr_in6&>(ss).sin6_port = htons(port);
  else
    reinterpret_cast<sockaddr_in&>(ss).sin_port = htons(port);
}

std::uint16_t bound_port(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6&>(ss).sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in&>(ss).sin_port);
}

int bind_socket(const sockaddr_storage& ss, socklen_t len, int type) {
  int fd = socket(ss.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, reinterpret_cast<const sockaddr*>(&ss), len) != 0) {
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

struct conn {
  int fd = -1;
  std::string pending;   // bytes read but not yet written back
  bool drop_after_first_read = false;
  bool want_out = false;
};

struct server {
  int ep = -1;
  int tcp_fd = -1, udp_fd = -1, unix_fd = -1;
  bool faulty = false;
  std::uint64_t accepted = 0;
  std::uint64_t replies = 0;
  std::unordered_map<int, conn> conns;
  std::vector<char> buf = std::vector<char>(256 * 1024);

  void add(int fd, std::uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) die("epoll_ctl");
  }
  void modify(int fd, std::uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
  }
  void drop(int fd) {
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
    close(fd);
    conns.erase(fd);
  }

  // Flips the middle byte of every 100th reply in faulty mode.
  void maybe_corrupt(char* data, std::size_t n) {
    if (!faulty || n == 0) return;
    if (++replies % 100 == 0) data[n / 2] = static_cast<char>(data[n / 2] ^ 0x5a);
  }

  void accept_all(int lfd) {
    for (;;) {
      int fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR) continue;
        return;  // EAGAIN, or a transient error (EMFILE, ...): try again on the next event
      }
      ++accepted;
      bool drop_after_first = false;
      if (faulty && accepted % 10 == 0) {
        if ((accepted / 10) % 2 == 1) {
          close(fd);  // closed right after accept
          continue;
        }
        drop_after_first = true;
      }
      if (lfd == tcp_fd) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      }
      conns[fd] = conn{fd, {}, drop_after_first, false};
      add(fd, EPOLLIN | EPOLLRDHUP);
    }
  }

  // Writes what is pending; false when the connection is gone.
  bool flush(conn& c) {
    while (!c.pending.empty()) {
      ssize_t w = send(c.fd, c.pending.data(), c.pending.size(), MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) break;
        return false;
      }
      c.pending.erase(0, static_cast<std::size_t>(w));
    }
    // Stop reading while replies are stuck: the peer must read before it may send more.
    const bool out = !c.pending.empty();
    if (out != c.want_out) {
      c.want_out = out;
      modify(c.fd, out ? (EPOLLOUT | EPOLLRDHUP) : (EPOLLIN | EPOLLRDHUP));
    }
    return true;
  }

  void on_conn(int fd, std::uint32_t events) {
    auto it = conns.find(fd);
    if (it == conns.end()) return;
    conn& c = it->second;
    if (events & EPOLLOUT) {
      if (!flush(c)) return drop(fd);
      if (c.want_out) return;
    }
    if (!(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) return;
    // A bounded number of reads per event keeps one busy connection from starving others.
    for (int round = 0; round < 4 && !c.want_out; ++round) {
      ssize_t n = recv(fd, buf.data(), buf.size(), 0);
      if (n == 0) return drop(fd);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) return;
        return drop(fd);
      }
      if (c.drop_after_first_read) return drop(fd);
      maybe_corrupt(buf.data(), static_cast<std::size_t>(n));
      if (c.pending.empty()) {
        ssize_t w = send(fd, buf.data(), static_cast<std::size_t>(n), MSG_NOSIGNAL);
        if (w < 0) {
          if (errno != EAGAIN && errno != EINTR) return drop(fd);
          w = 0;
        }
        if (w < n) c.pending.assign(buf.data() + w, static_cast<std::size_t>(n - w));
      } else {
        c.pending.append(buf.data(), static_cast<std::size_t>(n));
      }
      if (!flush(c)) return drop(fd);
      if (n < static_cast<ssize_t>(buf.size())) return;  // drained for now
    }
  }

  void on_udp() {
    for (int i = 0; i < 64; ++i) {
      sockaddr_storage from{};
      socklen_t flen = sizeof from;
      ssize_t n = recvfrom(udp_fd, buf.data(), buf.size(), 0,
                           reinterpret_cast<sockaddr*>(&from), &flen);
      if (n < 0) return;
      maybe_corrupt(buf.data(), static_cast<std::size_t>(n));
      sendto(udp_fd, buf.data(), static_cast<std::size_t>(n), 0,
             reinterpret_cast<sockaddr*>(&from), flen);
    }
  }

  void run() {
    std::vector<epoll_event> events(256);
    while (!stop_flag) {
      int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 200);
      if (n < 0) {
        if (errno == EINTR) continue;
        die("epoll_wait");
      }
      for (int i = 0; i < n; ++i) {
        int fd = events[i].data.fd;
        if (fd == tcp_fd || fd == unix_fd)
          accept_all(fd);
        else if (fd == udp_fd)
          on_udp();
        else
          on_conn(fd, events[i].events);
      }
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  std::string tcp_addr, unix_path;
  bool udp = false;
  server s;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char* name) -> std::string {
      if (i + 1 >= argc) usage(std::string("missing value for ") + name);
      return argv[++i];
    };
    if (a == "--tcp")
      tcp_addr = value("--tcp");
    else if (a.rfind("--tcp=", 0) == 0)
      tcp_addr = a.substr(6);
    else if (a == "--udp")
      udp = true;
    else if (a == "--unix")
      unix_path = value("--unix");
    else if (a.rfind("--unix=", 0) == 0)
      unix_path = a.substr(7);
    else if (a == "--faulty")
      s.faulty = true;
    else if (a == "-h" || a == "--help")
      usage("help");
    else
      usage("unknown argument " + a);
  }
  if (tcp_addr.empty() && unix_path.empty()) usage("give --tcp and/or --unix");
  if (udp && tcp_addr.empty()) usage("--udp needs --tcp HOST:PORT");

  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa{};
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  s.ep = epoll_create1(EPOLL_CLOEXEC);
  if (s.ep < 0) die("epoll_create1");

  std::uint16_t port = 0;
  if (!tcp_addr.empty()) {
    sockaddr_storage ss{};
    socklen_t len = 0;
    if (!resolve(tcp_addr, ss, len)) usage("bad --tcp address " + tcp_addr);
    const bool pick = (ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6&>(ss).sin6_port
                                                : reinterpret_cast<sockaddr_in&>(ss).sin_port) == 0;
    // With port 0 and --udp, retry until one port number is free for both protocols.
    for (int attempt = 0; attempt < 50; ++attempt) {
      if (pick) set_port(ss, 0);
      s.tcp_fd = bind_socket(ss, len, SOCK_STREAM);
      if (s.tcp_fd < 0) die("bind tcp " + tcp_addr);
      port = bound_port(s.tcp_fd);
      if (!udp) break;
      set_port(ss, port);
      s.udp_fd = bind_socket(ss, len, SOCK_DGRAM);
      if (s.udp_fd >= 0) break;
      if (!pick) die("bind udp " + tcp_addr);
      close(s.tcp_fd);
      s.tcp_fd = -1;
    }
    if (s.tcp_fd < 0 || (udp && s.udp_fd < 0)) die("no free port for tcp+udp");
    if (listen(s.tcp_fd, 4096) != 0) die("listen");
    s.add(s.tcp_fd, EPOLLIN);
    if (s.udp_fd >= 0) {
      int size = 4 * 1024 * 1024;
      setsockopt(s.udp_fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
      s.add(s.udp_fd, EPOLLIN);
    }
  }
  if (!unix_path.empty()) {
    sockaddr_un un{};
    if (unix_path.size() >= sizeof un.sun_path) usage("unix path too long");
    un.sun_family = AF_UNIX;
    std::memcpy(un.sun_path, unix_path.c_str(), unix_path.size() + 1);
    unlink(unix_path.c_str());
    sockaddr_storage ss{};
    std::memcpy(&ss, &un, sizeof un);
    s.unix_fd = bind_socket(ss, sizeof un, SOCK_STREAM);
    if (s.unix_fd < 0) die("bind unix " + unix_path);
    if (listen(s.unix_fd, 4096) != 0) die("listen unix");
    s.add(s.unix_fd, EPOLLIN);
    std::printf("unix=%s\n", unix_path.c_str());
  }
  if (s.udp_fd >= 0) std::printf("udp_port=%u\n", port);
  if (s.tcp_fd >= 0) std::printf("port=%u\n", port);
  std::printf("ready\n");
  std::fflush(stdout);

  s.run();
  if (!unix_path.empty()) unlink(unix_path.c_str());
  return 0;
}
