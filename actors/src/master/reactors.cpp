#include "master/reactors.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <deque>
#include <future>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include <asio/generic/datagram_protocol.hpp>

#include "http/router.hpp"
#include "net/conn_host.hpp"
#include "net_util.hpp"
#include "string_pool.hpp"
#include "swactor/actors/errors.hpp"
#include "swactor/actors/http.hpp"
#include "swactor/actors/static_files.hpp"
#include "swactor/core/log.hpp"
#include "swactor/ipc/link.hpp"
#include "swactor/ipc/messages.hpp"
#include "swactor/protocols/http1.hpp"
#include "swactor/protocols/http2.hpp"
#include "swactor/protocols/http2_streams.hpp"

namespace swactor::detail {

using namespace std::chrono_literals;

// -- dispatch -----------------------------------------------------------------------------------

// -- a reactor thread ---------------------------------------------------------------------------

namespace {

struct worker_link {
  std::shared_ptr<ipc::link> link;   // current process of this worker id
  std::deque<ipc::message> backlog;  // waiting for a live link, or for room in its queue
  bool draining = false;             // a coroutine hands the backlog over as the link drains
  // Connections that stopped reading because their messages went to the backlog (a worker
  // slower than its clients, an upload): they read again once the backlog is handed over,
  // so the backlog holds a few messages per connection, not a whole upload.
  std::vector<std::uint64_t> held;
};

// What a connection's TLS handshake negotiated, into conn_open / conn_adopt (info().tls).
template <class M>
void set_tls(M& m, const tls_info* t) {
  if (!t) return;
  m.tls = true;
  m.tls_version = t->version;
  m.tls_cipher = t->cipher;
  m.tls_sni = t->sni;
  m.tls_alpn = t->alpn;
  m.tls_peer_subject = t->peer_subject;
  m.tls_peer_fingerprint = t->peer_fingerprint;
  m.tls_resumed = t->resumed;
}

}  // namespace

struct reactor_thread::impl final : net::connection_sink {
  int id;
  const app_config& app;
  server_state* state;
  // Only this thread touches the loop: asio takes no locks (the master reaches it through
  // CAF messages and loop::post_any).
  loop lp{{.on_stall = stall_action::log,
           .single_thread_io = true,
           .stall_check_after = std::chrono::milliseconds(50),
           .busy_poll = std::chrono::microseconds(app.server.busy_poll_us)}};
  net::conn_host host;
  std::vector<worker_link> workers;
  std::unordered_map<ipc::link*, std::shared_ptr<ipc::link>> live_links;
  std::unordered_set<ipc::link*> drained_links;  // links whose worker said it is leaving
  // The upgrade request target of each WebSocket: a new process of its worker gets it with
  // the connection (module on_adopt). Most WebSockets share a few targets, so a connection
  // holds one of these (ws_target) instead of a string of its own.
  string_pool ws_targets;
  // A WebSocket's target handle lives in its sink_tag: the client IP hash kept there is for
  // dispatching, and a WebSocket is never dispatched again (it stays with sink_worker).
  static const std::string* ws_target(const net::connection& c) noexcept {
    return reinterpret_cast<const std::string*>(static_cast<std::uintptr_t>(c.sink_tag));
  }
  void set_ws_target(net::connection& c, std::string target) {
    if (c.ws_module >= 0) ws_targets.release(ws_target(c));  // a second upgrade message (not expected)
    c.sink_tag = reinterpret_cast<std::uintptr_t>(ws_targets.acquire(std::move(target)));
  }
  // HTTP/2 connections: their streams are dispatched one by one (by the dispatch mode, as
  // connections are), so each has a map stream -> worker id while the stream needs its
  // worker, and the workers that were told about the connection (conn_open), which all hear
  // its close. A side table: the connection object stays as small as for any other protocol.
  struct h2_stream {
    std::uint32_t id = 0;
    int worker = 0;
    const ipc::link* link = nullptr;  // the process of `worker` that took it (null: backlogged)
  };
  // An http_static reply on an HTTP/2 stream: nghttp2 frames file bytes as DATA, so the
  // connection cannot sendfile(2) them; the reactor reads them in pieces as the connection's
  // output drains (the file is open from the reply's start to its end).
  struct h2_static {
    std::uint32_t stream = 0;
    std::deque<http::static_piece> pieces;
    int fd = -1;
    h2_static() = default;
    h2_static(h2_static&& o) noexcept : stream(o.stream), pieces(std::move(o.pieces)), fd(std::exchange(o.fd, -1)) {}
    h2_static& operator=(h2_static&& o) noexcept {
      if (this != &o) {
        if (fd >= 0) ::close(fd);
        stream = o.stream;
        pieces = std::move(o.pieces);
        fd = std::exchange(o.fd, -1);
      }
      return *this;
    }
    ~h2_static() {
      if (fd >= 0) ::close(fd);
    }
  };
  struct h2_conn {
    // Unordered and small (the streams in flight, and finished ones until the next prune):
    // a scan of a few cache lines costs less than a hash map's node per stream.
    std::vector<h2_stream> streams;
    h2_stream* find(std::uint32_t stream) {
      for (auto& st : streams)
        if (st.id == stream) return &st;
      return nullptr;
    }
    void erase(h2_stream* st) {
      *st = streams.back();
      streams.pop_back();
    }
    std::vector<bool> told;        // by worker id
    // The processes whose writers wait for the output to drain (conn_watch), with how many
    // watches each sent: each is answered once, on the link it came from (so a process that
    // is reloading hears it too). One answer per watch lets one writer go on, not all of
    // them: several streams of one worker write at once, and waking them all per answer
    // would let each add a piece past the limit.
    std::vector<std::pair<std::shared_ptr<ipc::link>, std::uint32_t>> watching;
    std::size_t prune_at = 16;     // forget finished streams when the map reaches this size
    // Streams answered here from an http_static route whose body is still being read from
    // its file (front first; see pump_static).
    std::deque<h2_static> statics;
  };
  std::unordered_map<std::uint64_t, h2_conn> h2_conns;
  // Connections whose requests went to more than one worker (round_robin, idle): the
  // workers told of them (conn_open), by worker id; each hears the close.
  std::unordered_map<std::uint64_t, std::vector<bool>> spread;
  // WebSocket replies dropped for a full output (a peer that does not read): one log line
  // a second at most, counting the ones left out, as broadcast skips are logged.
  std::chrono::steady_clock::time_point ws_drop_logged{};
  std::uint64_t ws_drops_unlogged = 0;
  std::uint64_t rr = 0;
  bool stopping = false;
  std::size_t max_backlog = 100000;
  // The reactor waits for connections handed over by the acceptor: nothing of its own is
  // pending in between, so keep the loop running until stop().
  asio::executor_work_guard<asio::io_context::executor_type> keep_alive{lp.context().get_executor()};

  // The http_static instances by module index (null for other modules): their routes are
  // answered here, without a worker round trip.
  std::vector<std::unique_ptr<http::static_site>> static_sites;
  // By listener: its routes to one of them (none: nothing is answered here).
  std::vector<std::vector<const route_config*>> static_routes;
  bool static_listener(const net::connection& c) const {
    return !static_routes[static_cast<std::size_t>(c.listener())].empty();
  }

  // Whether a request for `target` (raw, as received) may go to an http_static route of
  // listener `l`: a quick look on every request, before its head is decoded and its path
  // normalized. A target whose path could change under normalization (percent-encoded,
  // dot-segments, "//") takes the full check.
  bool may_be_static(std::size_t l, std::string_view target) const {
    auto path = target.substr(0, target.find('?'));
    if (path.find('%') != std::string_view::npos || path.find("/.") != std::string_view::npos ||
        path.find("//") != std::string_view::npos || !path.starts_with('/'))
      return true;
    for (const auto* r : static_routes[l])
      if (r->exact ? path == r->match : path.starts_with(r->match)) return true;
    return false;
  }

  impl(int i, const app_config& a, server_state* s)
      : id(i), app(a), state(s), host(lp.context(), a, *s, s->reactors[i], *this) {
    workers.resize(static_cast<std::size_t>(app.server.workers));
    static_sites.resize(app.modules.size());
    for (std::size_t m = 0; m < app.modules.size(); ++m) {
      const auto& mc = app.modules[m];
      if (mc.type != "http_static" || !mc.plugin.empty() || !mc.options) continue;
      http::static_options o;
      config::diagnostics diag;
      http::static_schema().parse(*mc.options, o, diag, "", module_reserved_keys());
      if (!diag.ok()) continue;  // `check` reported it; the workers' instance answers then
      static_sites[m] = std::make_unique<http::static_site>(std::move(o));
    }
    static_routes.resize(app.listen.size());
    for (std::size_t l = 0; l < app.listen.size(); ++l)
      for (const auto& r : app.listen[l].routes)
        if (r.module_index >= 0 && static_sites[static_cast<std::size_t>(r.module_index)]) static_routes[l].push_back(&r);
  }

  // What an http_static route answers to the request head `head_wire` (its wire form) on
  // connection `c`'s listener; nullopt when no such route takes it, or its body still comes
  // (a worker answers those, with the same module).
  std::optional<http::static_reply> static_answer(const net::connection& c, std::string_view head_wire) {
    namespace h1 = protocols::http1;
    if (!may_be_static(static_cast<std::size_t>(c.listener()), h1::request_head::peek_target(head_wire)))
      return std::nullopt;
    h1::request_head head;
    if (!head.decode(head_wire) || !head.complete) return std::nullopt;
    const auto& lc = app.listen[static_cast<std::size_t>(c.listener())];
    http::request req(std::move(head), session_id(c.id()), std::string());
    if (req.path().find('\0') != std::string::npos) return std::nullopt;  // the worker's 400
    auto route = detail::match_route(lc, req.path(), req.method());
    if (route.status != 0 || route.module < 0) return std::nullopt;
    const auto* site = static_sites[static_cast<std::size_t>(route.module)].get();
    if (!site) return std::nullopt;
    return site->serve(req.method(), req.path(), req.headers());
  }
  // A request to an http_static route, answered here when it is the only one the
  // connection owes (an earlier one still at a worker must be answered first) and it came
  // whole. False: it goes to a worker like any other (whose http_static answers the same).
  bool serve_static(net::connection& c, const protocols::event& e) {
    namespace h1 = protocols::http1;
    if (c.codec().outstanding() != 1) return false;
    auto a = static_answer(c, e.data);
    if (!a) return false;
    auto& r = *a;
    h1::response_head rh;
    rh.status = r.status;
    rh.headers = std::move(r.headers);
    if (!r.has_file()) {
      auto wire = rh.encode();
      for (const auto& p : r.body) wire += p.bytes;
      (void)c.send(wire, static_cast<std::uint8_t>(h1::out::whole));
      return true;
    }
    rh.content_length = static_cast<std::int64_t>(r.content_length);
    (void)c.send(rh.encode(), static_cast<std::uint8_t>(h1::out::head));
    for (const auto& p : r.body) {
      if (p.file)
        (void)c.send(protocols::file_range{p.offset, p.length, r.file}.encode(), protocols::kind_file);
      else
        (void)c.send(p.bytes, static_cast<std::uint8_t>(h1::out::body));
    }
    (void)c.send(h1::header_list{}.encode(), static_cast<std::uint8_t>(h1::out::end));
    return true;
  }
  // The same for an HTTP/2 stream (e.data: stream id, then the request head): the request
  // must have come whole (no body follows), else it goes to a worker. File pieces are read
  // by pump_static.
  bool serve_static_h2(net::connection& c, const protocols::event& e) {
    namespace h1 = protocols::http1;
    namespace h2 = protocols::http2;
    std::string_view rest = e.data;
    std::uint32_t stream = 0;
    if (!h2::take_stream(rest, stream) || stream == 0) return false;
    auto a = static_answer(c, rest);
    if (!a) return false;
    auto& r = *a;
    h1::response_head rh;
    rh.status = r.status;
    rh.headers = std::move(r.headers);
    std::string wire;
    h2::put_stream(wire, stream);
    if (!r.has_file()) {
      wire += rh.encode();
      for (const auto& p : r.body) wire += p.bytes;
      (void)c.send(wire, static_cast<std::uint8_t>(h1::out::whole));
      return true;
    }
    h2_static st;
    st.stream = stream;
    st.fd = ::open(r.file.c_str(), O_RDONLY | O_CLOEXEC);
    if (st.fd < 0) return false;  // gone since serve() looked: the worker answers (404)
    rh.content_length = static_cast<std::int64_t>(r.content_length);
    wire += rh.encode();
    (void)c.send(wire, static_cast<std::uint8_t>(h1::out::head));
    st.pieces.assign(std::make_move_iterator(r.body.begin()), std::make_move_iterator(r.body.end()));
    auto& h = h2_of(c);
    h.statics.push_back(std::move(st));
    // Not from here: inside decode() replies wait in the loop's deferred set, which the
    // output check does not see. The next turn of the loop starts it.
    if (h.statics.size() == 1)
      asio::post(lp.context(), [this, sid = c.id()] {
        auto* conn = host.find(sid);
        auto it = h2_conns.find(sid);
        if (conn && !conn->closed() && it != h2_conns.end()) pump_static(*conn, it->second);
      });
    return true;
  }
  // Sends the static replies' next pieces while the connection's output is below half its
  // limit (64 KiB read per piece), then waits for the drain (on_drained calls it again).
  void pump_static(net::connection& c, h2_conn& h) {
    namespace h1 = protocols::http1;
    namespace h2 = protocols::http2;
    constexpr std::size_t kPiece = 64 * 1024;
    std::string wire;
    auto send = [&](std::uint32_t stream, std::uint8_t kind, std::string_view data) {
      wire.clear();
      h2::put_stream(wire, stream);
      wire += data;
      return c.send(wire, kind);
    };
    while (!h.statics.empty() && !c.closed()) {
      if (c.queued_bytes() > c.output_limit() / 2) {
        c.watch_drain();
        return;
      }
      auto& st = h.statics.front();
      std::error_code ec;
      // A piece is taken off the queue only once it was sent.
      if (st.pieces.empty()) {
        ec = send(st.stream, static_cast<std::uint8_t>(h1::out::end), h1::header_list{}.encode());
        if (!ec) h.statics.pop_front();
      } else if (auto& p = st.pieces.front(); !p.file) {
        ec = send(st.stream, static_cast<std::uint8_t>(h1::out::body), p.bytes);
        if (!ec) st.pieces.pop_front();
      } else {
        std::string piece(static_cast<std::size_t>(std::min<std::uint64_t>(p.length, kPiece)), '\0');
        auto n = ::pread(st.fd, piece.data(), piece.size(), static_cast<off_t>(p.offset));
        if (n <= 0) {
          if (n < 0 && errno == EINTR) continue;
          // Shorter than announced (truncated meanwhile): the stream cannot end well.
          log::warning("session {}: HTTP/2 stream {}: static file read failed ({}); the stream is reset", c.id(),
                       st.stream, n < 0 ? std::strerror(errno) : "end of file");
          (void)send(st.stream, h2::kReplyReset, {});
          h.statics.pop_front();
          continue;
        }
        piece.resize(static_cast<std::size_t>(n));
        ec = send(st.stream, static_cast<std::uint8_t>(h1::out::body), piece);
        if (!ec) {
          p.offset += static_cast<std::uint64_t>(n);
          p.length -= static_cast<std::uint64_t>(n);
          if (p.length == 0) st.pieces.pop_front();
        }
      }
      if (ec == server_errc::output_buffer_full) {  // replies of workers came in between
        c.watch_drain();
        return;
      }
      if (ec) {  // closed meanwhile: nothing more to send anywhere on it
        h.statics.clear();
        return;
      }
    }
  }
  // The stream was reset (by the client, or a timeout): its static reply stops.
  bool drop_static(net::connection& c, std::uint32_t stream) {
    auto it = h2_conns.find(c.id());
    if (it == h2_conns.end()) return false;
    auto& q = it->second.statics;
    auto s = std::find_if(q.begin(), q.end(), [&](const h2_static& x) { return x.stream == stream; });
    if (s == q.end()) return false;
    q.erase(s);
    return true;
  }
  ~impl() {
    stopping = true;
    host.abort_all();
    // A link's close handler posts work that uses the members below (and a backlog hand-over
    // waiting on a link's flush wakes up): closed and run here, while they exist. The loop,
    // declared first, would otherwise run them from its destructor, after them.
    for (auto& [raw, l] : live_links) l->close();  // every open link, current or retiring
    lp.context().restart();
    lp.context().poll();
  }

  bool alive(int w) const {
    auto& l = workers[static_cast<std::size_t>(w)].link;
    return l && l->is_open();
  }

  int pick(const net::connection* c, std::uint64_t session) {
    dispatch_input in;
    in.session = session;
    if (c) {
      in.has_connection = true;
      in.ip_hash = c->sink_tag;
      in.uid = c->uid;
    }
    return pick_worker(app.server.dispatch, app.server.workers, in, rr, [this](int w) { return alive(w); },
                       [this](int w) { return state->procs[w].in_flight.load(std::memory_order_relaxed); });
  }

  void deliver(int w, ipc::message m) {
    auto& wl = workers[static_cast<std::size_t>(w)];
    if (wl.link && wl.link->is_open() && wl.backlog.empty()) {
      // try_send: on queue_full the message is still ours (send() would have consumed it,
      // parking an empty message that the worker then drops as malformed).
      if (!wl.link->try_send(m)) return;
      // queue_full or closed: keep it for later rather than lose it
    }
    if (wl.backlog.size() >= max_backlog) {
      log::warning("reactor {}: backlog for worker {} full ({} messages); dropping a {} message", id, w, max_backlog,
                   ipc::type_name(m.type));
      return;
    }
    wl.backlog.push_back(std::move(m));
    // A full link queue (a worker that reads slower than a connection sends) parks
    // messages here; hand them over as the link drains, not only at the next attach.
    if (wl.link && wl.link->is_open() && !wl.draining) {
      wl.draining = true;
      spawn(lp.context(), [this, w, link = wl.link]() -> task<void> {
        auto& wl = workers[static_cast<std::size_t>(w)];
        while (!wl.backlog.empty() && wl.link == link && link->is_open()) {
          const auto flushed = co_await link->flush(std::chrono::seconds(1));
          if (flushed == errc::closed) break;
          flush_backlog(w);
        }
        wl.draining = false;
        release_held(w);
      }, "reactor backlog");
    }
  }

  void flush_backlog(int w) {
    auto& wl = workers[static_cast<std::size_t>(w)];
    while (!wl.backlog.empty() && wl.link && wl.link->is_open()) {
      if (wl.link->send(wl.backlog.front())) break;
      wl.backlog.pop_front();
    }
  }

  // -- connection_sink: events become typed messages to a worker ----------------------------

  void on_open(net::connection& c) override {
    if (app.listen[static_cast<std::size_t>(c.listener())].endpoint.kind == listen_kind::tcp) {
      auto colon = c.remote.rfind(':');
      c.sink_tag = std::hash<std::string_view>{}(std::string_view(c.remote).substr(0, colon));
    }
    c.sink_worker = pick(&c, c.id());
    c.sink_sticky = app.listen[static_cast<std::size_t>(c.listener())].is_redis();
    tell_open(c, c.sink_worker);
  }
  ipc::conn_open open_message(net::connection& c) const {
    ipc::conn_open m;
    m.session = c.id();
    m.listener = static_cast<std::uint32_t>(c.listener());
    m.reactor = static_cast<std::uint32_t>(id);
    m.remote = c.remote;
    m.local = local_address(c.native_handle());
    m.protocol.assign(c.codec().name());
    m.connect_ms = c.connect_ms;
    set_tls(m, c.tls());
    return m;
  }
  void tell_open(net::connection& c, int w) { deliver(w, ipc::encode(open_message(c))); }

  bool on_event(net::connection& c, const protocols::event& e) override {
    // A connection whose requests are not all answered stays with the worker that has
    // them (HTTP replies go out in request order, whatever the dispatch mode); the first
    // request after that is dispatched anew.
    if (c.ws_module < 0 && e.kind == static_cast<std::uint8_t>(protocols::http1::ev::request) &&
        static_listener(c) && serve_static(c, e)) {
      bump(state->reactors[id].requests);
      return true;
    }
    int w;
    std::uint32_t stream = 0;
    std::string_view rest = e.data;
    if (c.ws_module < 0 && protocols::http2::is_event_kind(e.kind) &&
        app.listen[static_cast<std::size_t>(c.listener())].http() && protocols::http2::take_stream(rest, stream)) {
      if (static_listener(c)) {
        if (e.kind == static_cast<std::uint8_t>(protocols::http2::ev::request) && serve_static_h2(c, e)) {
          bump(state->reactors[id].requests);
          return true;
        }
        if (e.kind == static_cast<std::uint8_t>(protocols::http2::ev::reset) && drop_static(c, stream)) return true;
      }
      w = h2_worker(c, e, stream);
      if (w < 0) return true;  // gone to the process that has the stream, or nobody needs it
    } else if (c.ws_module >= 0 || c.sink_sticky || c.codec().outstanding() > 1 ||
               (c.codec().outstanding() == 1 && !starts_request(c, e))) {
      // A WebSocket stays with the worker id that upgraded it, whatever the dispatch mode:
      // its module state is there, and its messages keep their order. So does a Redis
      // connection (AUTH, SELECT, CLIENT SETNAME, a subscribed context are its state): the
      // dispatch mode picks its worker once, when it opens.
      w = c.sink_worker;
    } else {
      const int before = c.sink_worker;
      w = c.sink_worker = pick(&c, c.id());
      if (w != before && before >= 0) spread_to(c, before, w);
    }
    auto& wl = workers[static_cast<std::size_t>(w)];
    // Straight into the link's buffer when it takes it now (no message built); otherwise as
    // a message, which the backlog can keep.
    const auto p = data_pieces(c, e);
    if (!wl.link || !wl.link->is_open() || !wl.backlog.empty() || wl.link->try_send_pieces(p)) deliver(w, p.assemble());
    if (!wl.backlog.empty() && wl.link && wl.link->is_open()) {
      wl.held.push_back(c.id());
      return false;  // stop reading this connection until the backlog is handed over
    }
    return true;
  }
  // A request of `c` goes to worker `w`, not to `before` that had its events so far: `w`
  // hears conn_open first (the session is open there: info(), its request body), unless it
  // did already.
  void spread_to(net::connection& c, int before, int w) {
    auto& told = spread[c.id()];
    if (told.empty()) {
      told.assign(workers.size(), false);
      told[static_cast<std::size_t>(before)] = true;  // on_open's, or the last one's
    }
    if (told[static_cast<std::size_t>(w)]) return;
    told[static_cast<std::size_t>(w)] = true;
    tell_open(c, w);
  }
  // An event of connection `c` for a worker (its bytes referenced: valid while `e` is).
  ipc::message_pieces data_pieces(const net::connection& c, const protocols::event& e) const {
    return ipc::pieces_of_conn_data(c.id(), static_cast<std::uint32_t>(c.listener()), static_cast<std::uint32_t>(id),
                                    e.kind, e.data);
  }
  // The worker for an event of HTTP/2 stream `stream`: a new request is dispatched by the
  // dispatch mode (round_robin and idle: any worker per stream; connection, ip and uid pick
  // per connection, so all its streams go to one worker, as before); its body, end and
  // reset follow it, to the very process that took the request (one that is reloading
  // finishes its streams). -1: the event went there already, or no worker has the stream
  // (its events are over). A worker that gets the connection's first stream hears conn_open
  // first, so it knows the session (info(), TLS) and its close.
  // The side table of an HTTP/2 connection (made at its first stream).
  h2_conn& h2_of(const net::connection& c) {
    auto& h = h2_conns[c.id()];
    if (h.told.empty()) {
      h.told.assign(workers.size(), false);
      if (c.sink_worker >= 0) h.told[static_cast<std::size_t>(c.sink_worker)] = true;  // on_open's
    }
    return h;
  }
  int h2_worker(net::connection& c, const protocols::event& e, std::uint32_t stream) {
    const auto kind = e.kind;
    auto& h = h2_of(c);
    if (kind != static_cast<std::uint8_t>(protocols::http2::ev::request)) {
      auto* found = h.find(stream);
      if (!found) return -1;
      const auto st = *found;
      if (kind == static_cast<std::uint8_t>(protocols::http2::ev::reset)) h.erase(found);  // its last event
      if (!st.link || st.link == workers[static_cast<std::size_t>(st.worker)].link.get()) return st.worker;
      // The process that took the request is leaving (drain): its streams finish there.
      auto l = live_links.find(const_cast<ipc::link*>(st.link));
      if (l == live_links.end() || !l->second->is_open()) return -1;
      if (auto ec = l->second->try_send_pieces(data_pieces(c, e)))
        log::warning("session {}: HTTP/2 stream {}: an event for the leaving process of worker {} dropped: {}", c.id(),
                     stream, st.worker, ec.message());
      return -1;
    }
    if (h.streams.size() >= h.prune_at) {
      // Forget the streams that are done (amortized: the map stays within twice the open ones).
      std::erase_if(h.streams, [&](const h2_stream& st) { return !protocols::http2::stream_needs_handler(c.codec(), st.id); });
      h.prune_at = std::max<std::size_t>(16, 2 * h.streams.size());
    }
    int w = pick(&c, c.id());
    const auto& wl = workers[static_cast<std::size_t>(w)];
    const ipc::link* link = wl.link && wl.link->is_open() ? wl.link.get() : nullptr;
    if (auto* again = h.find(stream))  // not expected: a stream id is not reused
      *again = {stream, w, link};
    else
      h.streams.push_back({stream, w, link});
    if (!h.told[static_cast<std::size_t>(w)]) {
      h.told[static_cast<std::size_t>(w)] = true;
      tell_open(c, w);
    }
    return w;
  }
  // The process on link `gone` of worker `w` went away (killed, crashed: `reset_streams`) or
  // is leaving (drain): its next process never saw the HTTP/2 connections it was told about.
  // If it went away, the streams it had are reset; the connection and its other streams go
  // on.
  // `drained_before`: the process had said it was leaving (its connections were forgotten
  // then) and went away before its streams ended (killed, or past max_wait_time): only the
  // streams bound to that very process are reset.
  void h2_worker_gone(int w, const ipc::link* gone, bool reset_streams, bool drained_before = false) {
    std::vector<std::pair<std::uint64_t, std::uint32_t>> lost;
    for (auto& [sid, h] : h2_conns) {
      if (!drained_before && static_cast<std::size_t>(w) < h.told.size()) h.told[static_cast<std::size_t>(w)] = false;
      if (!reset_streams) continue;
      std::erase_if(h.streams, [&](const h2_stream& st) {
        const bool its = drained_before ? st.link == gone : st.worker == w && (!st.link || st.link == gone);
        if (its) lost.emplace_back(sid, st.id);
        return its;
      });
    }
    std::string reply;
    for (auto [sid, stream] : lost) {
      auto* c = host.find(sid);
      if (!c || c->closed() || !protocols::http2::stream_needs_handler(c->codec(), stream)) continue;
      reply.clear();
      protocols::http2::put_stream(reply, stream);
      (void)host.send(sid, reply, protocols::http2::kReplyReset);
    }
    if (!lost.empty())
      log::info("reactor {}: {}worker {} went away: its {} HTTP/2 stream(s) reset, their connections go on", id,
                drained_before ? "the leaving process of " : "", w, lost.size());
  }
  // A reply for an HTTP/2 stream that does not fit in the connection's output limit. Its
  // writer sent it after the output drained, but writers of other streams (maybe in other
  // workers) did the same at the same moment: it is taken while the output stays within twice
  // the limit (each writer waits for the drain after each piece, so this bounds them).
  // Beyond that the stream is reset; the connection and its other streams go on.
  std::error_code h2_overflow(std::uint64_t session, std::string_view data, std::uint8_t kind) {
    auto* c = host.find(session);
    if (!c) return server_errc::session_not_found;
    if (c->queued_bytes() + data.size() <= 2 * c->output_limit()) return c->send(data, kind, true);
    std::uint32_t stream = 0;
    std::string_view rest = data;
    if (!protocols::http2::take_stream(rest, stream)) return server_errc::output_buffer_full;
    log::warning("session {}: HTTP/2 stream {}: output at {} bytes (limit {}); a reply of {} bytes dropped, "
                 "the stream reset",
                 session, stream, c->queued_bytes(), c->output_limit(), data.size());
    std::string reset;
    protocols::http2::put_stream(reset, stream);
    (void)c->send(reset, protocols::http2::kReplyReset, true);
    return {};
  }
  void release_held(int w) {
    auto& wl = workers[static_cast<std::size_t>(w)];
    if (!wl.backlog.empty()) return;
    auto held = std::move(wl.held);
    wl.held.clear();
    for (auto sid : held)
      if (auto* c = host.find(sid); c && !c->worker_paused) c->resume();  // the worker's own pause stands
  }
  bool starts_request(const net::connection& c, const protocols::event& e) const {
    const auto& l = app.listen[static_cast<std::size_t>(c.listener())];
    return (l.http() && (e.kind == static_cast<std::uint8_t>(protocols::http1::ev::request) ||
                         e.kind == static_cast<std::uint8_t>(protocols::http2::ev::request))) ||
           (l.is_redis() && protocols::redis::is_command_kind(e.kind));
  }

  void on_drained(net::connection& c) override {
    if (auto it = h2_conns.find(c.id()); it != h2_conns.end() && !it->second.statics.empty() && !c.closed())
      pump_static(c, it->second);
    if (auto it = h2_conns.find(c.id()); it != h2_conns.end() && !it->second.watching.empty()) {
      // Writers of several workers may wait on one HTTP/2 connection: each hears it.
      auto watching = std::move(it->second.watching);
      it->second.watching.clear();
      for (auto& [l, n] : watching)
        for (std::uint32_t k = 0; k < n && l->is_open(); ++k)
          (void)l->send(ipc::encode(ipc::conn_writable{c.id(), static_cast<std::uint32_t>(id)}));
      return;
    }
    if (c.watcher >= 0) deliver(c.watcher, ipc::encode(ipc::conn_writable{c.id(), static_cast<std::uint32_t>(id)}));
  }
  void on_closed(net::connection& c, std::string_view reason) override {
    if (c.ws_module >= 0) {
      ws_targets.release(ws_target(c));
      c.sink_tag = 0;
    }
    if (c.watching_drain()) on_drained(c);  // a writer waiting on it learns now, not at its timeout
    auto close = [&](int w) {
      ipc::conn_closed m;
      m.session = c.id();
      m.listener = static_cast<std::uint32_t>(c.listener());
      m.reactor = static_cast<std::uint32_t>(id);
      m.aborted = c.aborted();
      m.reason.assign(reason);
      deliver(w, ipc::encode(std::move(m)));
    };
    std::vector<bool> spread_told;
    if (auto it = spread.find(c.id()); it != spread.end()) {
      spread_told = std::move(it->second);
      spread.erase(it);
    }
    if (auto it = h2_conns.find(c.id()); it != h2_conns.end()) {
      // Every worker told about it hears the close (its streams' handlers learn it, and no
      // per-session state stays behind there).
      auto told = std::move(it->second.told);
      h2_conns.erase(it);
      for (std::size_t w = 0; w < told.size(); ++w)
        if (told[w] || (w < spread_told.size() && spread_told[w])) close(static_cast<int>(w));
      return;
    }
    if (!spread_told.empty()) {
      for (std::size_t w = 0; w < spread_told.size(); ++w)
        if (spread_told[w]) close(static_cast<int>(w));
      return;
    }
    // With round_robin / idle, close goes where the connect went.
    auto d = app.server.dispatch;
    int w = c.ws_module >= 0 || d == dispatch_mode::round_robin || d == dispatch_mode::idle ? c.sink_worker
                                                                                           : pick(&c, c.id());
    if (w < 0) w = c.sink_worker;
    close(w);
  }

  void on_datagram(int listener, std::string from, std::string_view data) override {
    ipc::datagram_in m;
    m.listener = static_cast<std::uint32_t>(listener);
    m.reactor = static_cast<std::uint32_t>(id);
    m.from = std::move(from);
    m.data.assign(data);
    deliver(pick(nullptr, 0), ipc::encode(std::move(m)));
  }

  // -- from the acceptor and the workers -------------------------------------------------------

  void on_new_conn(int fd, int listener, std::uint64_t session, std::string remote) {
    host.adopt(fd, listener, session, std::move(remote));
  }

  void serve_dgram(int listener, int fd) { host.serve_datagrams(listener, fd); }

  void attach(int w, int fd) {
    ipc::link_options lo;
    lo.name = "reactor" + std::to_string(id) + "->worker#" + std::to_string(w);
    auto l = ipc::link::from_fd(lp.context().get_executor(), fd, lo);
    if (!l) {
      log::error("reactor {}: bad link for worker {}: {}", id, w, l.error().message());
      return;
    }
    auto shared = std::make_shared<ipc::link>(std::move(*l));
    // The previous process of this id keeps its own link until it exits, so replies to
    // what it is still working on reach their clients.
    workers[static_cast<std::size_t>(w)].link = shared;
    // Callback mode: replies go straight to the connection, no queue or coroutine per message.
    // The link stays alive until it closes (a retiring worker's replies still arrive on it).
    std::weak_ptr<ipc::link> weak = shared;
    live_links.emplace(shared.get(), shared);
    hand_over(w, *shared);
    // A batch of the worker's messages (one read of the link) is handed over corked: the
    // replies it carries for one connection leave in one write. Batches of different links
    // never interleave (each is handed over in one go), and nothing else corks this host.
    // conn_send, nearly every message of a worker, is read in place from the link's buffer
    // (no message object, no payload copy): its bytes go straight to the connection.
    shared->set_view_handler([this](const ipc::message_view& m) {
      auto v = ipc::view_conn_send(m);
      if (!v) return false;  // other kinds, and malformed ones (the message path reports them)
      if (!host.corked()) host.cork();
      worker_send(v->session, v->data, v->kind);
      return true;
    });
    shared->set_handler([this, weak, w](ipc::message&& m) {
      if (!host.corked()) host.cork();
      if (auto l = weak.lock()) on_worker_message(l, w, std::move(m));
    }, [this, raw = shared.get(), w](std::error_code) {
      asio::post(lp.context(), [this, raw, w] {
        // A worker that went away without draining (killed, crashed) leaves requests
        // unanswered: their connections get what their protocol says (HTTP: 502), the
        // others stay open for the replacement.
        const bool drained = drained_links.erase(raw) > 0;
        // A leaving process that dies before its HTTP/2 streams end (kill -9, or stopped at
        // max_wait_time) costs those streams an RST_STREAM now, not an idle timeout later.
        if (drained && !stopping) h2_worker_gone(w, raw, true, true);
        if (!drained && !stopping) {
          // HTTP/2 connections lose only the streams this process had.
          h2_worker_gone(w, raw, true);
          for (auto id : host.ids())
            if (auto* c = host.find(id); c && c->sink_worker == w && c->codec().outstanding() > 0 &&
                                         !h2_conns.contains(id))
              c->abandon();
        }
        live_links.erase(raw);
      });
    }, [this] {
      if (host.corked()) host.uncork();
    });
    flush_backlog(w);
    release_held(w);
  }

  // A new process of worker id `w` (reload, crash): before anything else reaches it, it
  // learns the connections its id serves, so they stay open across the restart. WebSockets
  // are adopted (their module's on_adopt, no new handshake). The others that stay with it
  // (connection dispatch, a Redis connection, a request in progress) or that it was told of
  // (spread) are opened there again: without that the new process knew no such session, its
  // replies went nowhere ("session is closed or unknown") and Redis commands hung. Its module
  // hears on_connect for each, as for any connection it sees first.
  void hand_over(int w, ipc::link& l) {
    std::size_t adopted = 0, reopened = 0;
    for (auto sid : host.ids()) {
      auto* c = host.find(sid);
      if (!c || c->closed()) continue;
      std::error_code ec;
      if (c->ws_module >= 0) {
        if (c->sink_worker != w) continue;
        ipc::conn_adopt m;
        m.session = sid;
        m.reactor = static_cast<std::uint32_t>(id);
        m.listener = static_cast<std::uint32_t>(c->listener());
        m.module = static_cast<std::uint32_t>(c->ws_module);
        m.connect_ms = c->connect_ms;
        m.remote = c->remote;
        m.local = local_address(c->native_handle());
        m.target = string_pool::view(ws_target(*c));
        set_tls(m, c->tls());
        ec = l.send(ipc::encode(std::move(m)));
        ++adopted;
      } else {
        auto it = spread.find(sid);
        const bool told = c->sink_worker == w || (it != spread.end() && static_cast<std::size_t>(w) < it->second.size() &&
                                                  it->second[static_cast<std::size_t>(w)]);
        if (!told) continue;
        ec = l.send(ipc::encode(open_message(*c)));
        ++reopened;
      }
      if (ec) log::warning("reactor {}: session {} not handed to worker {}: {}", id, sid, w, ec.message());
    }
    if (adopted) log::info("reactor {}: {} open WebSocket(s) handed to the new process of worker {}", id, adopted, w);
    if (reopened)
      log::info("reactor {}: {} open connection(s) handed to the new process of worker {}", id, reopened, w);
  }

  // A worker's conn_send: bytes or a typed reply for one of this reactor's connections.
  void worker_send(std::uint64_t session, std::string_view data, std::uint8_t kind) {
    auto size = data.size();
    auto ec = host.send(session, data, kind);
    if (ec == server_errc::output_buffer_full && h2_conns.contains(session) && kind != 0)
      ec = h2_overflow(session, data, kind);
    if (ec == server_errc::output_buffer_full) {
      auto* c = host.find(session);
      // A WebSocket message is whole or not sent (the listener's on_output_full already
      // acted); a raw send loses a message, as in base mode where send() reports it; a
      // piece of an HTTP reply cannot be skipped, so that connection ends.
      const bool ws_reply = c && c->ws_module >= 0;
      const bool fatal = c && kind != 0 && !ws_reply;
      if (ws_reply) {
        // The push failed in the worker's eyes too late to tell it: a client that never
        // reads would make a line per message (hundreds a second), so once a second.
        auto now = std::chrono::steady_clock::now();
        if (now - ws_drop_logged >= 1s) {
          log::warning("session {}: output buffer full ({} bytes queued, limit {}); WebSocket message of {} bytes "
                       "dropped ({} more dropped on this reactor since the last such line)",
                       session, c->queued_bytes(), c->output_limit(), size, ws_drops_unlogged);
          ws_drop_logged = now;
          ws_drops_unlogged = 0;
        } else {
          ++ws_drops_unlogged;
        }
      } else {
        log::warning("session {}: output buffer full ({} bytes queued, limit {}); reply of {} bytes dropped{}",
                     session, c ? c->queued_bytes() : 0, c ? c->output_limit() : 0, size,
                     fatal ? ", closing (a protocol reply with a hole in it must not look whole)" : "");
      }
      if (fatal) c->abort("output buffer full");
    }
  }

  void on_worker_message(const std::shared_ptr<ipc::link>& l, int w, ipc::message&& raw) {
    auto m = ipc::decode(std::move(raw));
    if (!m) {
      log::warning("reactor {}: dropped a message from worker {}: {}", id, w, m.error().message());
      return;
    }
    std::visit([&](auto& v) {
      using T = std::decay_t<decltype(v)>;
      if constexpr (std::is_same_v<T, ipc::conn_send>) {
        worker_send(v.session, v.data, v.kind);
      } else if constexpr (std::is_same_v<T, ipc::conn_upgrade>) {
        if (auto* c = host.find(v.session)) {
          set_ws_target(*c, std::move(v.target));  // before set_websocket: it reads ws_module
          (void)host.set_websocket(v.session, static_cast<int>(v.module));
          c->sink_worker = w;
        }
      } else if constexpr (std::is_same_v<T, ipc::group_op>) {
        (void)(v.join ? host.join(v.session, v.group) : host.leave(v.session, v.group));
      } else if constexpr (std::is_same_v<T, ipc::group_send>) {
        (void)host.broadcast(v.group, v.data, v.kind);
      } else if constexpr (std::is_same_v<T, ipc::conn_close>) {
        (void)host.close(v.session, v.reset);
      } else if constexpr (std::is_same_v<T, ipc::conn_watch>) {
        auto* c = host.find(v.session);
        if (!c || c->closed() || c->queued_bytes() <= c->output_limit() / 2)
          (void)l->send(ipc::encode(ipc::conn_writable{v.session, static_cast<std::uint32_t>(id)}));
        else {
          if (auto it = h2_conns.find(v.session); it != h2_conns.end() && v.worker < workers.size()) {
            auto& watching = it->second.watching;
            auto w = std::find_if(watching.begin(), watching.end(), [&](const auto& e) { return e.first == l; });
            if (w == watching.end()) watching.emplace_back(l, 1);
            else ++w->second;
          }
          c->watch_drain(static_cast<int>(v.worker));
        }
      } else if constexpr (std::is_same_v<T, ipc::conn_pause>) {
        if (auto* c = host.find(v.session)) {
          c->worker_paused = true;
          c->pause();
        }
      } else if constexpr (std::is_same_v<T, ipc::conn_resume>) {
        if (auto* c = host.find(v.session)) {
          c->worker_paused = false;
          c->resume();
        }
      } else if constexpr (std::is_same_v<T, ipc::conn_bind>) {
        (void)host.bind(v.session, v.uid);
      } else if constexpr (std::is_same_v<T, ipc::datagram_out>) {
        if (auto ec = host.sendto(v.to, v.data, v.listener))
          log::debug("reactor {}: datagram to {} not sent: {}", id, v.to, ec.message());
      } else if constexpr (std::is_same_v<T, ipc::drain>) {
        // The worker is stopping: nothing more goes to it (its id's messages wait in the
        // backlog for the replacement, or go to other workers). Everything sent before
        // `drained` is already in the link, so the worker handles it before leaving.
        if (workers[static_cast<std::size_t>(w)].link == l) workers[static_cast<std::size_t>(w)].link.reset();
        drained_links.insert(l.get());
        // Its streams finish there; new streams go to the others or to its new process,
        // which has to be told about each connection again.
        h2_worker_gone(w, l.get(), false);
        (void)l->send(ipc::encode(ipc::drained{static_cast<std::uint32_t>(id)}));
      } else {
        log::warning("reactor {}: unexpected {} message from worker {}; dropped", id, ipc::kind_name(*m), w);
      }
    }, *m);
  }

  void stop() {
    stopping = true;
    keep_alive.reset();
    host.stop_datagrams();
    // Upgraded connections hear 1001 first and get a moment for the close handshake (the
    // deadline sweep still ends the ones that do not answer); then the rest is closed.
    const bool told = host.go_away_all() > 0;
    spawn(lp.context(), [this, told]() -> task<void> {
      if (told)
        for (int i = 0; i < 50 && host.size() > 0; ++i) co_await sleep(10ms);
      host.stop_heartbeat();
      host.close_all();
      for (int i = 0; i < 100 && host.size() > 0; ++i) co_await sleep(10ms);
      host.abort_all();
      for (auto& w : workers)
        if (w.link) (void)co_await w.link->flush(500ms);
      lp.stop();
    }, "reactor stop");
  }
};

reactor_thread::reactor_thread(int id, const app_config& app, server_state* state, const net::tls_store* tls)
    : id_(id), impl_(std::make_unique<impl>(id, app, state)) {
  impl_->host.set_tls(tls);
}

reactor_thread::~reactor_thread() { join(); }

void reactor_thread::go_away() {
  auto* i = impl_.get();
  i->lp.post_any([i] {
    if (auto n = i->host.go_away_all()) log::info("reactor {}: told {} connection(s) the server is going away", i->id, n);
  });
}

reactor_actor reactor_thread::start() {
  std::promise<reactor_actor> ready;
  auto fut = ready.get_future();
  thread_ = std::thread([this, &ready] {
    log::debug("reactor {} running", id_);
    auto* im = impl_.get();
    auto a = im->lp.actors().spawn([im](reactor_actor::pointer) -> reactor_actor::behavior_type {
      return {
          [im](conn_atom, int fd, int listener, std::uint64_t session, const std::string& remote) {
            im->on_new_conn(fd, listener, session, remote);
          },
          [im](attach_atom, int worker, int fd) { im->attach(worker, fd); },
          [im](dgram_atom, int listener, int fd) { im->serve_dgram(listener, fd); },
          [im](stop_atom) { im->stop(); },
      };
    });
    im->host.start_heartbeat();
    ready.set_value(a);
    im->lp.run();
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    im->lp.context().restart();
    im->lp.context().poll();
  });
  return fut.get();
}

void reactor_thread::join() {
  if (thread_.joinable()) thread_.join();
}

// -- the pool and its acceptor --------------------------------------------------------------------

reactor_pool::reactor_pool(swactor::loop& lp, const app_config& app, server_state& state, const net::tls_store* tls)
    : lp_(lp), app_(app), state_(state), tls_(tls) {}

reactor_pool::~reactor_pool() { stop(); }

void reactor_pool::start(const std::vector<int>& listen_fds) {
  for (int r = 0; r < app_.server.reactor_threads && r < kMaxReactors; ++r) {
    threads_.push_back(std::make_unique<reactor_thread>(r, app_, &state_, tls_));
    actors_.push_back(threads_.back()->start());
  }
  for (std::size_t i = 0; i < app_.listen.size() && i < listen_fds.size(); ++i) {
    const auto& lc = app_.listen[i];
    int fd = ::fcntl(listen_fds[i], F_DUPFD_CLOEXEC, 0);
    int index = static_cast<int>(i);
    if (!lc.endpoint.stream()) {
      // Datagram listeners are served by reactor 0.
      caf::anon_send(actors_[0], dgram_atom::value, index, fd);
      continue;
    }
    auto acc = std::make_unique<net::stream_acceptor>(lp_.context());
    std::error_code ec;
    acc->assign(asio::generic::stream_protocol(socket_family(fd), SOCK_STREAM), fd, ec);
    if (ec) {
      log::error("listener {}: {}", lc.url, ec.message());
      continue;
    }
    auto* a = acc.get();
    acceptors_.push_back(std::move(acc));
    spawn(lp_.context(), [this, a, index]() -> task<void> {
      co_await net::accept_loop(*a, app_.listen[static_cast<std::size_t>(index)], index, state_,
                                state_.acceptor, [this, index](int fd, std::string remote) {
                                  auto session = state_.next_session.fetch_add(1);
                                  // A session's reactor is a function of its id, so a worker finds it
                                  // without asking.
                                  auto r = session % actors_.size();
                                  caf::anon_send(actors_[r], conn_atom::value, fd, index, session, std::move(remote));
                                });
    }, "acceptor");
  }
  log::info("process mode: {} reactor thread(s), dispatch_mode {}", threads_.size(), to_string(app_.server.dispatch));
}

void reactor_pool::stop_accepting() {
  for (auto& a : acceptors_) {
    std::error_code ignored;
    a->close(ignored);
  }
}

void reactor_pool::go_away() {
  for (auto& t : threads_) t->go_away();
}

void reactor_pool::stop() {
  stop_accepting();
  for (auto& a : actors_) caf::anon_send(a, stop_atom::value);
  for (auto& t : threads_) t->join();
  threads_.clear();
  actors_.clear();
}

std::vector<int> reactor_pool::make_links(int) {
  pending_links_.clear();
  std::vector<int> theirs;
  for (std::size_t r = 0; r < actors_.size(); ++r) {
    auto rp = ipc::socket_pair();
    if (!rp) continue;
    pending_links_.push_back(*rp);
    theirs.push_back(rp->second);
  }
  return theirs;
}

void reactor_pool::links_done(int id, bool started) {
  for (std::size_t r = 0; r < pending_links_.size() && r < actors_.size(); ++r) {
    if (started)
      caf::anon_send(actors_[r], attach_atom::value, id, pending_links_[r].first);
    else
      ::close(pending_links_[r].first);
  }
  pending_links_.clear();
}

}  // namespace swactor::detail
