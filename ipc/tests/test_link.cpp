#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <asio/post.hpp>

#include "swactor/core/loop.hpp"
#include "swactor/ipc/link.hpp"

using namespace std::chrono_literals;
using namespace swactor::ipc;
using swactor::task;

namespace {

message msg(std::uint64_t id, std::string payload) {
  message m;
  m.type = message_type::pipe_message;
  m.message_id = id;
  m.src_worker = 1;
  m.dst_worker = 2;
  m.payload = std::move(payload);
  return m;
}

std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + i / 7) & 0xff);
  return s;
}

void write_all_fd(int fd, const std::string& bytes) {
  std::size_t off = 0;
  while (off < bytes.size()) {
    auto n = ::write(fd, bytes.data() + off, bytes.size() - off);
    REQUIRE(n > 0);
    off += static_cast<std::size_t>(n);
  }
}

// A loop and a connected pair of links on it.
struct link_pair {
  swactor::loop lp;
  std::pair<swactor::ipc::link, swactor::ipc::link> ends;
  explicit link_pair(const link_options& opts = {}) : ends(connect(lp, opts)) {}
  static std::pair<swactor::ipc::link, swactor::ipc::link> connect(swactor::loop& lp, const link_options& opts) {
    auto pr = link::make_pair(lp.context().get_executor(), opts);
    REQUIRE(pr);
    return std::move(*pr);
  }
};

}  // namespace

TEST_CASE("link: messages cross a socketpair both ways, batched", "[link]") {
  link_pair p;
  auto& lp = p.lp;
  auto& [a, b] = p.ends;
  std::vector<message> got_b, got_a;
  for (int i = 0; i < 300; ++i) REQUIRE_FALSE(a.send(msg(i, "ping " + std::to_string(i))));
  swactor::spawn(lp.context(), [&]() -> task<void> {
    for (int i = 0; i < 300; ++i) {
      auto r = co_await b.receive(2s);
      REQUIRE(r);
      got_b.push_back(std::move(*r));
      auto sent = b.send(msg(i, "pong"));
      REQUIRE_FALSE(sent);
    }
  });
  swactor::spawn(lp.context(), [&]() -> task<void> {
    for (int i = 0; i < 300; ++i) {
      auto r = co_await a.receive(2s);
      REQUIRE(r);
      got_a.push_back(std::move(*r));
    }
    a.close();
    b.close();
  });
  REQUIRE(lp.run() == 0);
  REQUIRE(got_b.size() == 300);
  REQUIRE(got_a.size() == 300);
  for (int i = 0; i < 300; ++i) {
    CHECK(got_b[i] == msg(i, "ping " + std::to_string(i)));
    CHECK(got_a[i].payload == "pong");
  }
  auto s = a.stats();
  CHECK(s.messages_sent == 300);
  CHECK(s.messages_received == 300);
  CHECK(s.writes < 10);  // queued before the loop ran: gathered into very few writes
  CHECK(a.error() == swactor::errc::closed);
}

TEST_CASE("link: an 8 MiB message arrives whole and byte-exact", "[link]") {
  link_pair p;
  auto& lp = p.lp;
  auto& [a, b] = p.ends;
  const std::string big = pattern(8 * 1024 * 1024 + 5);
  REQUIRE_FALSE(a.send(msg(1, "before")));
  REQUIRE_FALSE(a.send(msg(2, big)));
  REQUIRE_FALSE(a.send(msg(3, "after")));
  std::vector<message> got;
  swactor::spawn(lp.context(), [&]() -> task<void> {
    for (int i = 0; i < 3; ++i) {
      auto r = co_await b.receive(5s);
      REQUIRE(r);
      got.push_back(std::move(*r));
    }
    auto flushed = co_await a.flush(1s);
    CHECK_FALSE(flushed);
    CHECK(a.queued_bytes() == 0);
    a.close();
    b.close();
  });
  REQUIRE(lp.run() == 0);
  REQUIRE(got.size() == 3);
  CHECK(got[0].payload == "before");
  CHECK(got[1].payload.size() == big.size());
  CHECK(got[1].payload == big);
  CHECK(got[2].payload == "after");
}

TEST_CASE("link: a peer sending garbage is disconnected with the protocol error", "[link]") {
  swactor::loop lp;
  auto fds = socket_pair();
  REQUIRE(fds);
  auto l = link::from_fd(lp.context().get_executor(), fds->first);
  REQUIRE(l);
  int peer = fds->second;
  std::string good;
  REQUIRE_FALSE(encode(msg(1, "good one"), good));
  write_all_fd(peer, good + "this is not an envelope, this is garbage of some length....");
  std::vector<message> got;
  std::error_code final_error;
  swactor::spawn(lp.context(), [&]() -> task<void> {
    for (;;) {
      auto r = co_await l->receive(2s);
      if (!r) {
        final_error = r.error();
        break;
      }
      got.push_back(std::move(*r));
    }
  });
  REQUIRE(lp.run() == 0);
  REQUIRE(got.size() == 1);  // the good message before the garbage is delivered
  CHECK(got[0].payload == "good one");
  CHECK(final_error == errc::bad_magic);
  CHECK_FALSE(l->is_open());
  CHECK(l->error() == errc::bad_magic);
  CHECK(l->reason().find("bad magic") != std::string::npos);
  CHECK(l->send(msg(2, "x")) == swactor::errc::closed);
  // The peer sees the disconnect.
  char c;
  CHECK(::read(peer, &c, 1) == 0);
  ::close(peer);
}

TEST_CASE("link: peer EOF and truncated streams", "[link]") {
  swactor::loop lp;
  auto fds = socket_pair();
  REQUIRE(fds);
  auto l = link::from_fd(lp.context().get_executor(), fds->first);
  REQUIRE(l);
  std::string bytes;
  REQUIRE_FALSE(encode(msg(1, "complete"), bytes));
  bool truncated = false;
  SECTION("clean close") {}
  SECTION("close inside a frame") {
    std::string half;
    REQUIRE_FALSE(encode(msg(2, "incomplete"), half));
    bytes += half.substr(0, 30);
    truncated = true;
  }
  write_all_fd(fds->second, bytes);
  ::close(fds->second);
  std::error_code first, second;
  std::string payload;
  swactor::spawn(lp.context(), [&]() -> task<void> {
    auto r = co_await l->receive(2s);
    if (r) payload = r->payload;
    auto r2 = co_await l->receive(2s);
    second = r2.error();
  });
  REQUIRE(lp.run() == 0);
  CHECK(payload == "complete");
  if (truncated) {
    CHECK(second == errc::truncated);
  } else {
    CHECK(second == swactor::errc::closed);
  }
  CHECK_FALSE(l->is_open());
}

TEST_CASE("link: receive times out and the link stays usable", "[link]") {
  link_pair p;
  auto& lp = p.lp;
  auto& [a, b] = p.ends;
  std::error_code timed_out;
  std::string later;
  swactor::spawn(lp.context(), [&]() -> task<void> {
    auto r = co_await b.receive(20ms);
    timed_out = r.error();
    auto sent = a.send(msg(1, "late"));
    CHECK_FALSE(sent);
    auto r2 = co_await b.receive(1s);
    if (r2) later = r2->payload;
    a.close();
    b.close();
  });
  REQUIRE(lp.run() == 0);
  CHECK(timed_out == swactor::errc::timeout);
  CHECK(later == "late");
}

TEST_CASE("link: the send queue is bounded", "[link]") {
  link_options opts;
  opts.max_queued_bytes = 1024 * 1024;
  link_pair p(opts);
  auto& lp = p.lp;
  auto& [a, b] = p.ends;
  const std::string payload(100000, 'q');
  const std::size_t each = encoded_size(payload.size());
  int accepted = 0;
  std::error_code refused;
  for (int i = 0; i < 100; ++i) {
    auto ec = a.send(msg(i, payload));
    if (ec) {
      refused = ec;
      break;
    }
    ++accepted;
  }
  CHECK(refused == errc::queue_full);
  CHECK(accepted == int(opts.max_queued_bytes / each));
  CHECK(a.queued_bytes() == accepted * each);
  CHECK(a.stats().queued_messages == std::size_t(accepted));

  int received = 0;
  std::error_code waited;
  swactor::spawn(lp.context(), [&]() -> task<void> {
    // send_wait waits for room instead of failing.
    for (int i = 0; i < 20; ++i) {
      waited = co_await a.send_wait(msg(1000 + i, payload), 2s);
      if (waited) break;
    }
  });
  swactor::spawn(lp.context(), [&]() -> task<void> {
    while (received < accepted + 20) {
      auto r = co_await b.receive(2s);
      if (!r) break;
      ++received;
    }
    a.close();
    b.close();
  });
  REQUIRE(lp.run() == 0);
  CHECK_FALSE(waited);
  CHECK(received == accepted + 20);
}

TEST_CASE("link: one message above the queue limit still goes when the queue is empty",
          "[link]") {
  link_options opts;
  opts.max_queued_bytes = 1000;
  link_pair p(opts);
  auto& lp = p.lp;
  auto& [a, b] = p.ends;
  CHECK_FALSE(a.send(msg(1, std::string(5000, 'x'))));
  CHECK(a.send(msg(2, "small")) == errc::queue_full);
  opts.codec.max_message_size = 10;
  auto small = link::make_pair(lp.context().get_executor(), opts);
  REQUIRE(small);
  CHECK(small->first.send(msg(3, std::string(11, 'x'))) == errc::message_too_large);
  small->first.close();
  small->second.close();
  std::size_t size = 0;
  swactor::spawn(lp.context(), [&]() -> task<void> {
    auto r = co_await b.receive(2s);
    if (r) size = r->payload.size();
    a.close();
    b.close();
  });
  REQUIRE(lp.run() == 0);
  CHECK(size == 5000);
}

TEST_CASE("link: a peer that stops reading trips the write timeout", "[link]") {
  link_options opts;
  opts.write_timeout = 50ms;
  opts.socket_buffer_size = 4096;
  opts.receive_queue = 1;
  opts.max_queued_bytes = 64 * 1024 * 1024;
  link_pair p(opts);
  auto& lp = p.lp;
  auto& [a, b] = p.ends;
  // b never calls receive(): its inbox holds one message, then the socket buffers fill up.
  for (int i = 0; i < 64; ++i) REQUIRE_FALSE(a.send(msg(i, std::string(256 * 1024, 'w'))));
  swactor::spawn(lp.context(), [&]() -> task<void> {
    auto flushed = co_await a.flush(5s);
    CHECK(flushed == swactor::errc::timeout);
    b.close();
  });
  REQUIRE(lp.run() == 0);
  CHECK_FALSE(a.is_open());
  CHECK(a.error() == swactor::errc::timeout);
}

TEST_CASE("link: closed links and moved-from handles refuse work", "[link]") {
  swactor::loop lp;
  auto pr = link::make_pair(lp.context().get_executor());
  REQUIRE(pr);
  swactor::ipc::link a = std::move(pr->first);
  swactor::ipc::link& b = pr->second;
  CHECK(pr->first.send(msg(1, "x")) == swactor::errc::closed);  // moved-from
  CHECK_FALSE(pr->first.is_open());
  CHECK(a.native_handle() >= 0);
  a.close();
  a.close();  // idempotent
  CHECK(a.send(msg(1, "x")) == swactor::errc::closed);
  CHECK(a.native_handle() == -1);
  std::error_code peer_error;
  swactor::spawn(lp.context(), [&]() -> task<void> {
    auto r = co_await b.receive(2s);
    peer_error = r.error();
  });
  REQUIRE(lp.run() == 0);
  CHECK(peer_error == swactor::errc::closed);
}

TEST_CASE("link: socket_pair fds are close-on-exec", "[link]") {
  auto fds = socket_pair();
  REQUIRE(fds);
  CHECK((::fcntl(fds->first, F_GETFD) & FD_CLOEXEC) != 0);
  CHECK((::fcntl(fds->second, F_GETFD) & FD_CLOEXEC) != 0);
  ::close(fds->first);
  ::close(fds->second);
}

TEST_CASE("link: 50k small messages keep their order", "[link]") {
  link_pair p;
  auto& lp = p.lp;
  auto& [a, b] = p.ends;
  constexpr int n = 50000;
  int in_order = 0;
  swactor::spawn(lp.context(), [&]() -> task<void> {
    for (int i = 0; i < n; ++i) {
      auto ec = co_await a.send_wait(msg(i, "payload of a typical small message"), 2s);
      if (ec) break;
    }
  });
  auto start = std::chrono::steady_clock::now();
  swactor::spawn(lp.context(), [&]() -> task<void> {
    for (int i = 0; i < n; ++i) {
      auto r = co_await b.receive(2s);
      if (!r || r->message_id != std::uint64_t(i)) break;
      ++in_order;
    }
    a.close();
    b.close();
  });
  REQUIRE(lp.run() == 0);
  auto took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(in_order == n);
  CHECK(a.stats().writes < std::uint64_t(n) / 10);  // many envelopes per write
  CHECK(took < 5.0);
}

TEST_CASE("link: from_fd refuses what is not a Unix stream socket", "[link]") {
  swactor::loop lp;
  int p[2];
  REQUIRE(::pipe(p) == 0);
  auto l = link::from_fd(lp.context().get_executor(), p[0]);
  CHECK(l.error() == swactor::errc::invalid_argument);
  CHECK(::fcntl(p[0], F_GETFD) == -1);  // closed by from_fd
  ::close(p[1]);
  int dgram[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_DGRAM, 0, dgram) == 0);
  CHECK(link::from_fd(lp.context().get_executor(), dgram[0]).error() ==
        swactor::errc::invalid_argument);
  ::close(dgram[1]);
  CHECK(link::from_fd(lp.context().get_executor(), -1).error() ==
        swactor::errc::invalid_argument);
}

TEST_CASE("link: small and large messages interleaved keep their order and count", "[link]") {
  // Small messages are encoded into one buffer as they are sent, large ones are queued and
  // referenced: the order on the wire must still be the order of send(), also when sends
  // come while a large write is still going out.
  link_options opts;
  opts.max_batch_bytes = 64 * 1024;
  link_pair p(opts);
  auto& lp = p.lp;
  auto& [a, b] = p.ends;
  constexpr int n = 400;
  auto payload = [](int i) {
    // Every fifth message is large (above copy_threshold), some are empty.
    return i % 5 == 0 ? pattern(20000 + i) : i % 7 == 0 ? std::string() : "small " + std::to_string(i);
  };
  // Every third message goes in pieces (try_send_pieces), small or large.
  auto send_pieces = [&](int i) {
    const auto body = payload(i);
    message_pieces p;
    p.head = msg(i, "");
    p.bulk = body;
    return a.try_send_pieces(p);
  };
  for (int i = 0; i < 20; ++i) {
    const auto ec = i % 3 == 1 ? send_pieces(i) : a.send(msg(i, payload(i)));
    REQUIRE_FALSE(ec);
  }
  CHECK(a.stats().queued_messages == 20);  // nothing written before the loop runs
  int good = 0;
  swactor::spawn(lp.context(), [&]() -> task<void> {
    for (int i = 20; i < n; ++i) {
      if (i % 3 == 1) {
        if (send_pieces(i)) break;
      } else if (auto ec = co_await a.send_wait(msg(i, payload(i)), 2s)) {
        break;
      }
      if (i % 50 == 0) co_await swactor::sleep(1ms);  // let some writes complete in between
    }
  });
  swactor::spawn(lp.context(), [&]() -> task<void> {
    for (int i = 0; i < n; ++i) {
      auto r = co_await b.receive(2s);
      if (!r || *r != msg(i, payload(i))) break;
      ++good;
    }
    a.close();
    b.close();
  });
  REQUIRE(lp.run() == 0);
  CHECK(good == n);
  CHECK(a.stats().messages_sent == std::uint64_t(n));
  CHECK(b.stats().messages_received == std::uint64_t(n));
}

TEST_CASE("link: a view handler takes frames in place, the rest go to the handler, in order", "[link]") {
  link_pair p;
  auto& lp = p.lp;
  auto& [a, b] = p.ends;
  constexpr int n = 200;
  // Every fourth message is a stop (declined by the view handler), every ninth is large.
  auto make = [](int i) {
    message m = msg(static_cast<std::uint64_t>(i), i % 9 == 0 ? pattern(9000 + i) : "m" + std::to_string(i));
    if (i % 4 == 0) m.type = message_type::stop;
    return m;
  };
  std::vector<std::uint64_t> order;
  int viewed = 0, handled = 0, batches = 0, bad = 0;
  b.set_view_handler([&](const message_view& v) {
    if (v.type == message_type::stop) return false;
    const auto want = make(static_cast<int>(v.message_id));
    if (v.payload != want.payload || v.src_worker != 1 || v.dst_worker != 2) ++bad;
    order.push_back(v.message_id);
    ++viewed;
    return true;
  });
  b.set_handler(
      [&](message&& m) {
        if (m != make(static_cast<int>(m.message_id))) ++bad;
        order.push_back(m.message_id);
        ++handled;
        if (order.size() == std::size_t(n)) {
          a.close();
          b.close();
        }
      },
      [](std::error_code) {}, [&] { ++batches; });
  swactor::spawn(lp.context(), [&]() -> task<void> {
    for (int i = 0; i < n; ++i) {
      if (auto ec = co_await a.send_wait(make(i), 2s)) co_return;
      if (i % 25 == 0) co_await swactor::sleep(1ms);  // several reads, some with a single frame
    }
  });
  REQUIRE(lp.run() == 0);
  CHECK(bad == 0);
  REQUIRE(order.size() == std::size_t(n));
  for (int i = 0; i < n; ++i) CHECK(order[static_cast<std::size_t>(i)] == std::uint64_t(i));
  CHECK(viewed > 0);   // small frames read whole were taken in place
  CHECK(handled >= n / 4);  // every stop at least
  CHECK(viewed + handled == n);
  CHECK(batches > 0);
  CHECK(b.stats().messages_received == std::uint64_t(n));
}

TEST_CASE("link: replies sent by a read's handlers go out in one write when its messages are handed", "[link]") {
  // No posted flush: work the handlers post runs after the write, and the whole read's
  // replies (from the view handler and from the message handler) make one write.
  link_pair p;
  auto& lp = p.lp;
  auto& [a, b] = p.ends;
  constexpr int n = 50;
  for (int i = 0; i < n; ++i) {
    auto m = msg(static_cast<std::uint64_t>(i), "q" + std::to_string(i));
    if (i % 2 == 0) m.type = message_type::stop;  // declined by the view handler
    REQUIRE_FALSE(a.send(std::move(m)));
  }
  std::vector<std::uint64_t> writes_seen;  // b's write count when work posted by each handler ran
  auto reply = [&](std::uint64_t id) {
    asio::post(lp.context(), [&] { writes_seen.push_back(b.stats().writes); });
    REQUIRE_FALSE(b.send(msg(id, "r" + std::to_string(id))));
  };
  int batches = 0;
  b.set_view_handler([&](const message_view& v) {
    if (v.type == message_type::stop) return false;
    reply(v.message_id);
    return true;
  });
  b.set_handler([&](message&& m) { reply(m.message_id); }, [](std::error_code) {}, [&] { ++batches; });
  std::vector<std::uint64_t> got;
  swactor::spawn(lp.context(), [&]() -> task<void> {
    for (int i = 0; i < n; ++i) {
      auto r = co_await a.receive(2s);
      if (!r) break;
      got.push_back(r->message_id);
      CHECK(r->payload == "r" + std::to_string(r->message_id));
    }
    a.close();
    b.close();
  });
  REQUIRE(lp.run() == 0);
  REQUIRE(got.size() == std::size_t(n));
  for (int i = 0; i < n; ++i) CHECK(got[static_cast<std::size_t>(i)] == std::uint64_t(i));
  // a's 50 small messages were one write, so b read them at once: one batch, one write.
  CHECK(batches == 1);
  CHECK(b.stats().writes == 1);
  REQUIRE(writes_seen.size() == std::size_t(n));
  for (auto w : writes_seen) CHECK(w == 1);
}

TEST_CASE("link: bytes that came while the reader waited on a full queue are read when a handler is set",
          "[link]") {
  // The reader takes m0 and m1 in one read, queues m0 and waits for room for m1. m2 arrives
  // meanwhile: its readiness event finds no reader. Setting a handler hands m0 and m1 and
  // must read m2 too, with nothing more coming from the peer.
  link_options opts;
  opts.receive_queue = 1;
  link_pair p(opts);
  auto& io = p.lp.context();
  auto& [a, b] = p.ends;
  REQUIRE_FALSE(a.send(msg(0, "m0")));
  REQUIRE_FALSE(a.send(msg(1, "m1")));
  io.run_for(100ms);
  REQUIRE(b.stats().received_pending == 1);  // m0 queued, the reader waits with m1
  REQUIRE_FALSE(a.send(msg(2, "m2")));
  io.run_for(100ms);
  std::vector<std::uint64_t> got;
  b.set_handler(
      [&](message&& m) {
        got.push_back(m.message_id);
        if (got.size() == 3) io.stop();
      },
      [](std::error_code) {});
  io.run_for(2s);
  CHECK(got == std::vector<std::uint64_t>{0, 1, 2});
}
