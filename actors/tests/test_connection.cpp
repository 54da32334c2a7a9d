// The connection layer without processes or sockets: net::conn_host + net::connection over
// the in-memory transport, with a recording sink.

#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "memory_transport.hpp"
#include "net/conn_host.hpp"
#include "swactor/actors/errors.hpp"

using namespace swactor;
using swactor::test::memory_pipe;
using swactor::test::memory_transport;

namespace {

// Emits one event per line; a line "UPGRADE" asks the sink to switch codecs.
class line_codec final : public protocols::stream_codec {
 public:
  std::string_view name() const noexcept override { return "line"; }
  std::size_t decode(std::string_view in, protocols::event_sink& out) override {
    std::size_t used = 0;
    for (;;) {
      auto nl = in.find('\n', used);
      if (nl == std::string_view::npos) return used;
      protocols::event e{7, in.substr(used, nl - used)};
      used = nl + 1;
      if (!out.on_event(e)) return used;
    }
  }
};

struct recording_sink final : net::connection_sink {
  std::vector<std::string> events;  // "open", "kind:data", "closed:reason"
  std::function<bool(net::connection&, const protocols::event&)> on_event_hook;
  std::vector<std::string> datagrams;

  void on_open(net::connection&) override { events.push_back("open"); }
  bool on_event(net::connection& c, const protocols::event& e) override {
    events.push_back(std::to_string(e.kind) + ":" + std::string(e.data));
    return on_event_hook ? on_event_hook(c, e) : true;
  }
  void on_closed(net::connection&, std::string_view reason) override {
    events.push_back("closed:" + std::string(reason));
  }
  void on_datagram(int, std::string from, std::string_view data) override {
    datagrams.push_back(from + " " + std::string(data));
  }
  std::function<void(net::connection&)> on_drained_hook;
  void on_drained(net::connection& c) override {
    if (on_drained_hook) on_drained_hook(c);
  }
};

struct fixture {
  asio::io_context io;
  std::unique_ptr<server_state> state = std::make_unique<server_state>();
  app_config app;
  recording_sink sink;
  std::unique_ptr<net::conn_host> host;

  explicit fixture(protocols::framing_options f = {}, std::uint64_t out_limit = 1 << 20) {
    listen_config lc;
    lc.url = "tcp://127.0.0.1:1";
    lc.endpoint = parse_listen_url(lc.url);
    lc.framing_options = std::move(f);
    lc.output_buffer_size = out_limit;
    app.listen.push_back(lc);
    host = std::make_unique<net::conn_host>(io, app, *state, state->procs[0].conns, sink);
  }
  ~fixture() {
    host->abort_all();
    io.poll();
  }

  std::shared_ptr<net::connection> connect(const std::shared_ptr<memory_pipe>& p, std::uint64_t id = 1) {
    state->listeners[0].connections.fetch_add(1);  // what the acceptor does
    auto c = host->adopt(std::make_unique<memory_transport>(io, p), 0, id, "peer");
    io.poll();
    return c;
  }
  void run() {
    io.restart();
    io.poll();
  }
};

protocols::framing_options eof_framing() {
  protocols::framing_options f;
  f.type = protocols::framing_type::eof;
  f.eof = "\n";
  return f;
}

}  // namespace

TEST_CASE("connection: frames split at every byte arrive whole and in order", "[connection]") {
  fixture fx(eof_framing());
  auto p = std::make_shared<memory_pipe>();
  auto c = fx.connect(p);
  std::string wire = "hello\nworld\n\nlast\n";
  for (char ch : wire) {
    test::peer_send(fx.io, *p, std::string(1, ch));
    fx.run();
  }
  CHECK(fx.sink.events == std::vector<std::string>{"open", "0:hello\n", "0:world\n", "0:\n", "0:last\n"});
  // Everything consumed: the idle connection keeps no input buffer.
  CHECK(c->buffered_input() == 0);
  test::peer_send(fx.io, *p, "partial");
  fx.run();
  CHECK(c->buffered_input() == 7);
  test::peer_send(fx.io, *p, " frame\n");
  fx.run();
  CHECK(fx.sink.events.back() == "0:partial frame\n");
  CHECK(c->buffered_input() == 0);
}

TEST_CASE("connection: many frames in one read, a peer close ends it once", "[connection]") {
  fixture fx(eof_framing());
  auto p = std::make_shared<memory_pipe>();
  auto c = fx.connect(p);
  test::peer_send(fx.io, *p, "a\nb\nc\n");
  fx.run();
  test::peer_close(fx.io, *p);
  fx.run();
  CHECK(fx.sink.events == std::vector<std::string>{"open", "0:a\n", "0:b\n", "0:c\n", "closed:closed by peer"});
  CHECK(c->closed());
  CHECK_FALSE(c->aborted());
  CHECK(fx.host->size() == 0);
  CHECK(fx.state->procs[0].conns.closed.load() == 1);
  CHECK(fx.state->procs[0].conns.aborted.load() == 0);
  CHECK(fx.state->procs[0].conns.open.load() == 0);
  CHECK(fx.state->listeners[0].connections.load() == 0);
}

TEST_CASE("connection: the look-ahead bound pauses reading until the sink resumes it", "[connection]") {
  fixture fx(eof_framing());
  auto p = std::make_shared<memory_pipe>();
  int budget = 2;
  fx.sink.on_event_hook = [&](net::connection&, const protocols::event&) { return --budget > 0; };
  auto c = fx.connect(p);
  test::peer_send(fx.io, *p, "1\n2\n3\n4\n5\n");
  fx.run();
  CHECK(fx.sink.events.size() == 3);  // open + 2
  CHECK(c->paused());
  CHECK(c->buffered_input() == 6);    // "3\n4\n5\n" kept, not lost
  test::peer_send(fx.io, *p, "6\n");  // arrives while paused: not read yet
  fx.run();
  CHECK(fx.sink.events.size() == 3);
  budget = 100;
  c->resume();
  fx.run();
  CHECK(fx.sink.events == std::vector<std::string>{"open", "0:1\n", "0:2\n", "0:3\n", "0:4\n", "0:5\n", "0:6\n"});
  CHECK_FALSE(c->paused());
}

TEST_CASE("connection: a read error at the Nth read closes it as aborted, with the reason", "[connection]") {
  fixture fx(eof_framing());
  auto p = std::make_shared<memory_pipe>();
  auto c = fx.connect(p);
  test::peer_send(fx.io, *p, "x\n");
  fx.run();
  p->fail_read_at = p->reads + 1;  // the next read fails (reads count every attempt)
  test::peer_send(fx.io, *p, "y\n");
  fx.run();
  REQUIRE(fx.sink.events.size() == 3);
  CHECK(fx.sink.events[1] == "0:x\n");
  CHECK(fx.sink.events[2].rfind("closed:", 0) == 0);
  CHECK(fx.sink.events[2].find("reset") != std::string::npos);
  CHECK(c->aborted());
  CHECK(fx.state->procs[0].conns.aborted.load() == 1);
}

TEST_CASE("connection: a protocol error closes only that connection, naming the reason", "[connection]") {
  protocols::framing_options f;
  f.type = protocols::framing_type::length;
  f.max_length = 64;
  fixture fx(f);
  auto bad = std::make_shared<memory_pipe>();
  auto good = std::make_shared<memory_pipe>();
  auto cb = fx.connect(bad, 1);
  auto cg = fx.connect(good, 2);
  test::peer_send(fx.io, *bad, std::string("\x00\x00\x10\x00", 4) + "junk");
  test::peer_send(fx.io, *good, std::string("\x00\x00\x00\x02", 4) + "ok");
  fx.run();
  CHECK(cb->closed());
  CHECK(cb->aborted());
  CHECK_FALSE(cg->closed());
  bool named = false;
  for (auto& e : fx.sink.events) named = named || (e.find("closed:") == 0 && e.find("max_length") != std::string::npos);
  CHECK(named);
  // The good connection's message is delivered (the two connections' events may interleave).
  const auto ok = "0:" + std::string("\x00\x00\x00\x02", 4) + "ok";
  CHECK(std::find(fx.sink.events.begin(), fx.sink.events.end(), ok) != fx.sink.events.end());
}

TEST_CASE("connection: output the socket does not take is queued, flushed in order, bounded", "[connection]") {
  fixture fx({}, 16);
  auto p = std::make_shared<memory_pipe>();
  auto c = fx.connect(p);
  p->write_capacity = 3;
  CHECK_FALSE(c->send("abcdef"));   // 3 written at once, 3 queued
  CHECK(p->written == "abc");
  CHECK(c->queued_bytes() == 3);
  CHECK_FALSE(c->send("ghijkl"));   // queued behind
  CHECK(c->queued_bytes() == 9);
  CHECK(c->send("0123456789") == server_errc::output_buffer_full);  // over half queued, 9 + 10 > 16
  CHECK_FALSE(c->send("mnopqrs"));  // 9 + 7 fits
  CHECK(c->queued_bytes() == 16);
  test::peer_read_window(fx.io, *p, 5);
  fx.run();
  CHECK(p->written == "abcdefgh");
  test::peer_read_window(fx.io, *p, 100);
  fx.run();
  CHECK(p->written == "abcdefghijklmnopqrs");
  CHECK(c->queued_bytes() == 0);
  // One reply larger than the limit still goes into an empty queue, and behind up to half
  // the limit (a writer woken by a drain gets its piece out, whatever its size).
  p->write_capacity = 0;
  CHECK_FALSE(c->send(std::string(8, 'y')));
  CHECK_FALSE(c->send(std::string(40, 'z')));
  CHECK(c->queued_bytes() == 48);
  CHECK(c->send("!") == server_errc::output_buffer_full);
}

TEST_CASE("connection: a write error at the Nth write closes it", "[connection]") {
  fixture fx;
  auto p = std::make_shared<memory_pipe>();
  p->fail_write_at = 2;
  auto c = fx.connect(p);
  CHECK_FALSE(c->send("one"));
  CHECK_FALSE(c->closed());
  (void)c->send("two");
  fx.run();
  CHECK(c->closed());
  CHECK(c->aborted());
  CHECK(c->send("three") == server_errc::session_not_found);
}

TEST_CASE("connection: graceful close writes queued output first, reset drops it", "[connection]") {
  fixture fx;
  auto p = std::make_shared<memory_pipe>();
  auto c = fx.connect(p, 1);
  p->write_capacity = 2;
  CHECK_FALSE(c->send("hello"));
  CHECK_FALSE(fx.host->close(1, false));
  CHECK_FALSE(c->closed());  // waits for its output
  CHECK(c->send("more") == server_errc::session_not_found);
  test::peer_read_window(fx.io, *p, 100);
  fx.run();
  CHECK(p->written == "hello");
  CHECK(p->shut_down);
  CHECK(c->closed());
  CHECK_FALSE(c->aborted());

  auto p2 = std::make_shared<memory_pipe>();
  auto c2 = fx.connect(p2, 2);
  p2->write_capacity = 0;
  CHECK_FALSE(c2->send("lost"));
  CHECK_FALSE(fx.host->close(2, true));
  CHECK(c2->closed());
  CHECK(p2->reset);
  CHECK(p2->written.empty());
  CHECK(fx.host->close(2, false) == server_errc::session_not_found);
}

TEST_CASE("connection: a corked host writes a connection's later output of the period in one write when it uncorks",
          "[connection]") {
  fixture fx;
  auto p = std::make_shared<memory_pipe>();
  auto q = std::make_shared<memory_pipe>();
  auto c = fx.connect(p, 1);
  auto d = fx.connect(q, 2);
  fx.host->cork();
  CHECK_FALSE(c->send("one "));  // a connection's first write of the period: at once, no copy
  CHECK_FALSE(d->send("alpha "));
  CHECK(p->writes == 1);
  CHECK(q->writes == 1);
  CHECK_FALSE(c->send("two "));  // its later ones wait for the uncork
  CHECK_FALSE(c->send("three"));
  CHECK_FALSE(d->send("beta"));
  CHECK(p->writes == 1);
  CHECK(q->writes == 1);
  CHECK(c->queued_bytes() == 9);
  fx.host->cork();  // nested: only the outer uncork writes
  fx.host->uncork();
  CHECK(p->writes == 1);
  fx.host->uncork();
  CHECK(p->writes == 2);  // "two three" in one write
  CHECK(p->written == "one two three");
  CHECK(q->writes == 2);
  CHECK(q->written == "alpha beta");
  CHECK(c->queued_bytes() == 0);
  CHECK_FALSE(fx.host->corked());
  // Uncorked: every write goes out at once again.
  CHECK_FALSE(c->send("!"));
  CHECK_FALSE(c->send("?"));
  CHECK(p->writes == 4);

  // What a full socket leaves stays queued and waits for writability as usual. (c had
  // several writes in its last corked period: now its first one is held too.)
  fx.host->cork();
  p->write_capacity = 3;
  CHECK_FALSE(c->send("abcdef"));
  CHECK(p->writes == 4);
  CHECK_FALSE(c->send("gh"));
  fx.host->uncork();
  CHECK(p->written == "one two three!?abc");
  CHECK(c->queued_bytes() == 5);
  test::peer_read_window(fx.io, *p, 100);
  fx.run();
  CHECK(p->written == "one two three!?abcdefgh");

  // A reset while output is held: what was sent before it goes out first, as without the
  // cork; a graceful close writes it and then closes.
  fx.host->cork();
  CHECK_FALSE(c->send("last "));
  CHECK_FALSE(c->send("words"));
  CHECK(c->queued_bytes() == 10);
  CHECK_FALSE(fx.host->close(1, true));
  CHECK(c->closed());
  CHECK(p->reset);
  CHECK(p->written == "one two three!?abcdefghlast words");
  CHECK_FALSE(d->send(" gamma"));
  CHECK_FALSE(d->send(" delta"));
  CHECK_FALSE(fx.host->close(2, false));
  CHECK_FALSE(d->closed());
  fx.host->uncork();
  fx.run();
  CHECK(q->written == "alpha beta gamma delta");
  CHECK(q->shut_down);
  CHECK(d->closed());

  // A connection that got several writes in a period holds the first of the next one; a
  // period with a single write ends that.
  auto o = std::make_shared<memory_pipe>();
  auto f = fx.connect(o, 4);
  fx.host->cork();
  CHECK_FALSE(f->send("1"));
  CHECK_FALSE(f->send("2"));
  fx.host->uncork();
  CHECK(o->writes == 2);
  fx.host->cork();
  CHECK_FALSE(f->send("3"));  // held: the last period had two
  CHECK(o->writes == 2);
  fx.host->uncork();
  CHECK(o->writes == 3);
  fx.host->cork();
  CHECK_FALSE(f->send("4"));  // at once: the last period had one
  CHECK(o->writes == 4);
  fx.host->uncork();
  CHECK(o->written == "1234");

  // A lot for one connection in one batch is not held back: past 64 KiB it is written.
  auto r = std::make_shared<memory_pipe>();
  auto e = fx.connect(r, 3);
  fx.host->cork();
  CHECK_FALSE(e->send("x"));
  CHECK_FALSE(e->send(std::string(40 * 1024, 'a')));
  CHECK(r->writes == 1);
  CHECK_FALSE(e->send(std::string(40 * 1024, 'b')));
  CHECK(r->writes == 2);
  CHECK(e->queued_bytes() == 0);
  CHECK(r->written.size() == 1 + 80 * 1024);
  fx.host->uncork();
  CHECK(r->writes == 2);
}

TEST_CASE("connection: the codec is replaced mid-read, the rest of the bytes go to the new one",
          "[connection]") {
  protocols::framing_options length;
  length.type = protocols::framing_type::length;
  length.length_size = 2;
  length.body_offset = 2;
  fixture fx(eof_framing());
  auto p = std::make_shared<memory_pipe>();
  fx.sink.on_event_hook = [&](net::connection& c, const protocols::event& e) {
    if (e.data == "UPGRADE") c.replace_codec(std::make_unique<protocols::frame_codec>(length));
    return true;
  };
  auto c = fx.connect(p);
  c->replace_codec(std::make_unique<line_codec>());  // before any byte: the first protocol
  // One read holds the last line of the old protocol and two frames of the new one.
  test::peer_send(fx.io, *p, std::string("hi\nUPGRADE\n") + std::string("\x00\x03", 2) + "abc" +
                                 std::string("\x00\x01", 2) + "z");
  fx.run();
  CHECK(fx.sink.events == std::vector<std::string>{"open", "7:hi", "7:UPGRADE",
                                                   "0:" + std::string("\x00\x03", 2) + "abc",
                                                   "0:" + std::string("\x00\x01", 2) + "z"});
  CHECK(c->codec().name() == "length");
  CHECK(c->buffered_input() == 0);
}

TEST_CASE("connection: heartbeat-free host counts what it adopts", "[connection]") {
  fixture fx;
  auto p = std::make_shared<memory_pipe>();
  auto c = fx.connect(p, 9);
  CHECK(fx.host->find(9) == c.get());
  CHECK(fx.state->procs[0].conns.open.load() == 1);
  CHECK(fx.state->procs[0].conns.listener_open[0].load() == 1);
  CHECK_FALSE(fx.host->bind(9, 42));
  CHECK(c->uid == 42);
  CHECK(fx.host->send(10, "x") == server_errc::session_not_found);
}

TEST_CASE("connection: a large read is decoded from the loop's buffer, only the unconsumed tail kept", "[connection]") {
  fixture fx(eof_framing());
  auto p = std::make_shared<memory_pipe>();
  auto c = fx.connect(p);
  std::string a(150, 'a'), b(200, 'b');
  test::peer_send(fx.io, *p, a + "\n" + b + "\npart");
  fx.run();
  CHECK(fx.sink.events == std::vector<std::string>{"open", "0:" + a + "\n", "0:" + b + "\n"});
  CHECK(c->buffered_input() == 4);  // only the unconsumed tail is kept
  test::peer_send(fx.io, *p, "ial\n");
  fx.run();
  CHECK(fx.sink.events.back() == "0:partial\n");
  CHECK(c->buffered_input() == 0);
}

TEST_CASE("connection: a typed reply behind a reply kept as bytes is framed for its own request", "[connection]") {
  // Two pipelined requests answered inline in one decode(): the first (HEAD) with a streamed
  // head, body and end (kept as bytes until decode() returns), the second (GET) with a whole
  // response in typed form. Each must be framed for its own request: no body after the HEAD's
  // head, the GET's body after its own.
  fixture fx;
  fx.app.listen[0].url = "http://127.0.0.1:1";
  fx.app.listen[0].endpoint = parse_listen_url(fx.app.listen[0].url);
  fx.host = std::make_unique<net::conn_host>(fx.io, fx.app, *fx.state, fx.state->procs[0].conns, fx.sink);
  namespace h1 = protocols::http1;
  int n = 0;
  fx.sink.on_event_hook = [&](net::connection& c, const protocols::event& e) {
    if (e.kind != static_cast<std::uint8_t>(h1::ev::request)) return true;
    h1::response_head r;
    r.headers.add("Date", "Sun, 06 Dec 2026 20:00:00 GMT");
    if (++n == 1) {
      r.content_length = 5;
      CHECK_FALSE(c.send(r.encode(), static_cast<std::uint8_t>(h1::out::head)));
      CHECK_FALSE(c.send("xxxxx", static_cast<std::uint8_t>(h1::out::body)));
      CHECK_FALSE(c.send(h1::header_list{}.encode(), static_cast<std::uint8_t>(h1::out::end)));
    } else {
      CHECK_FALSE(c.send_object(h1::response_reply(r, "second"), static_cast<std::uint8_t>(h1::out::whole)));
    }
    return true;
  };
  auto p = std::make_shared<memory_pipe>();
  auto c = fx.connect(p);
  test::peer_send(fx.io, *p, "HEAD /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n");
  fx.run();
  REQUIRE(n == 2);
  const auto& w = p->written;
  const auto second = w.find("HTTP/1.1 200", 1);
  REQUIRE(second != std::string::npos);
  CHECK(w.substr(0, second).find("xxxxx") == std::string::npos);  // HEAD: no body bytes
  CHECK(w.substr(0, second).find("Content-Length: 5\r\n") != std::string::npos);
  CHECK(w.substr(second).find("Content-Length: 6\r\n") != std::string::npos);
  CHECK(w.substr(w.size() - 6) == "second");
}

TEST_CASE("connection: what a drain makes the sink send goes to that connection, not the next to decode",
          "[connection]") {
  // A handler asks to hear when its connection drains, while the connection is decoding
  // (nothing is queued, so it is drained at once). The sink's answer to the drain sends a
  // reply that the codec frames (kind 1): it must reach this connection, and nothing of it
  // may be left in the loop's buffer of kept replies for another connection's decode().
  fixture fx;
  fx.sink.on_event_hook = [&](net::connection& c, const protocols::event&) {
    if (c.id() == 1) c.watch_drain();
    return true;
  };
  fx.sink.on_drained_hook = [&](net::connection& c) { CHECK_FALSE(c.send("late", 1)); };
  auto a = std::make_shared<memory_pipe>();
  auto b = std::make_shared<memory_pipe>();
  auto ca = fx.connect(a, 1);
  auto cb = fx.connect(b, 2);
  test::peer_send(fx.io, *a, "hello");
  fx.run();
  test::peer_send(fx.io, *b, "world");
  fx.run();
  CHECK(a->written.find("late") != std::string::npos);
  CHECK(b->written.find("late") == std::string::npos);
}
