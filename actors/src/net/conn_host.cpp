#include "net/conn_host.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include "net/tls.hpp"
#include "net_util.hpp"
#include "swactor/protocols/http1.hpp"
#include "swactor/protocols/http2.hpp"
#include "swactor/protocols/redis.hpp"
#include "swactor/actors/errors.hpp"
#include "swactor/core/log.hpp"

namespace swactor::net {
namespace {

using namespace std::chrono_literals;
using dgram_proto = asio::generic::datagram_protocol;
constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

conn_host::conn_host(asio::io_context& io, const app_config& app, server_state& state,
                     conn_counters& counters, connection_sink& sink)
    : io_(io),
      app_(app),
      state_(state),
      counters_(counters),
      pid_(static_cast<std::int32_t>(::getpid())),
      sink_(sink),
      read_buf_(new char[read_buf_size_]) {
  dgrams_.resize(app.listen.size());
  state_.map_session_registry();
}

conn_host::~conn_host() {
  cancel_handshakes();
  stop_heartbeat();
  stop_datagrams();
  // Connections still here die with this loop: they are no longer open for anyone. Their
  // sockets close now (a pending wait holds its connection until the loop ends it).
  for (const auto& [id, c] : conns_) {
    state_.remove_session(id);
    c->drop();
  }
}

// -- connections ----------------------------------------------------------------------------

void conn_host::adopt(int fd, int listener, std::uint64_t id, std::string remote) {
  const auto& lc = app_.listen[static_cast<std::size_t>(listener)];
  // The socket is registered with the loop once, as it is (no asio socket).
  if (lc.tls.enabled) {
    handshake(fd, listener, id, std::move(remote));
    return;
  }
  auto t = make_socket_transport(io_, fd);
  if (!t) {  // logged; the descriptor is closed
    release(listener, true);
    return;
  }
  adopt(std::move(t), listener, id, std::move(remote));
}

void conn_host::handshake(int fd, int listener, std::uint64_t id, std::string remote) {
  const auto& lc = app_.listen[static_cast<std::size_t>(listener)];
  auto ctx = tls_ ? tls_->get(listener) : nullptr;
  if (!ctx) {
    log::error("listener {}: no TLS context; closing the connection from {}", lc.url, remote);
    ::close(fd);
    release(listener, true);
    return;
  }
  // The context is taken now: a reload later does not change this connection's certificate.
  auto h = start_tls(io_, fd, std::move(ctx), lc.tls.handshake_timeout,
                     [this, listener, id, remote](std::unique_ptr<transport> t, std::string why) mutable {
                       handshakes_.erase(id);
                       if (!t) {
                         log::info("listener {}: TLS handshake with {} failed: {}",
                                   app_.listen[static_cast<std::size_t>(listener)].url, remote, why);
                         release(listener, true);
                         return;
                       }
                       adopt(std::move(t), listener, id, std::move(remote));
                     });
  // A handshake that failed at once has already run its callback.
  if (h && !h->done()) handshakes_.emplace(id, std::move(h));
}

void conn_host::release(int listener, bool aborted) {
  state_.listeners[static_cast<std::size_t>(listener)].connections.fetch_sub(1, std::memory_order_relaxed);
  bump(counters_.closed);
  if (aborted) bump(counters_.aborted);
}

void conn_host::cancel_handshakes() {
  auto pending = std::move(handshakes_);
  handshakes_.clear();
  for (auto& [id, h] : pending) h->cancel();
}

std::shared_ptr<connection> conn_host::adopt(std::unique_ptr<transport> t, int listener, std::uint64_t id,
                                             std::string remote) {
  const auto& lc = app_.listen[static_cast<std::size_t>(listener)];
  std::unique_ptr<protocols::stream_codec> codec;
  if (lc.http() && t->tls() && t->tls()->alpn == "h2")
    codec = protocols::http2::make_server_codec(lc.h2_options);  // ALPN chose HTTP/2 (RFC 9113 §3.2)
  else if (lc.http())
    codec = protocols::http1::make_server_codec(lc.http_options);
  else if (lc.is_redis())
    codec = protocols::redis::make_server_codec(lc.redis_options);
  else
    codec = std::make_unique<protocols::frame_codec>(lc.framing_options);
  auto c = std::make_shared<connection>(*this, std::move(t), std::move(codec), id, listener, lc.output_buffer_size);
  c->remote = std::move(remote);
  c->connect_ms = now_ms();
  conns_.emplace(id, c);
  state_.add_session(id, pid_);  // any process can tell it is open (ctx.exists)
  bump(counters_.open);
  bump(counters_.listener_open[listener]);
  sink_.on_open(*c);
  if (!c->closed()) c->start();
  return c;
}

void conn_host::uncork() {
  if (corked_ == 0 || --corked_ > 0 || corked_conns_.empty()) return;
  // Swapped out first: a flush can close a connection, whose handlers may cork again.
  auto conns = std::move(corked_conns_);
  corked_conns_.clear();
  for (auto& c : conns) c->uncorked();
  conns.clear();
  if (corked_conns_.empty()) corked_conns_ = std::move(conns);  // keep the capacity
}

connection* conn_host::find_in_map(std::uint64_t id) const {
  auto it = conns_.find(id);
  return it == conns_.end() ? nullptr : it->second.get();
}

std::vector<std::uint64_t> conn_host::ids() const {
  std::vector<std::uint64_t> out;
  out.reserve(conns_.size());
  for (const auto& [id, c] : conns_) out.push_back(id);
  return out;
}

std::error_code conn_host::send(std::uint64_t id, std::string_view data, std::uint8_t kind) {
  auto* c = find(id);
  if (!c) return server_errc::session_not_found;
  auto ec = c->send(data, kind);
  // `c` stays valid after a send that closed it: a connection is released on the next loop
  // turn (connection::finish).
  if (c->ws_module >= 0 && ec == server_errc::output_buffer_full && !c->closed()) {
    // A WebSocket peer that does not read: the listener says whether pushes just fail or
    // the connection ends (1008: a policy of this server).
    const auto& wc = app_.listen[static_cast<std::size_t>(c->listener())].websocket;
    if (wc.close_on_output_full) {
      log::info("session {} from {}: output buffer full ({} bytes queued); closing with 1008", id, c->remote,
                c->queued_bytes());
      static constexpr char kClose[] = "\x03\xf0output buffer full";  // 1008 + reason
      (void)c->send(std::string_view(kClose, sizeof kClose - 1),
                    static_cast<std::uint8_t>(protocols::websocket::reply::close), true);
    }
  }
  return ec;
}

std::error_code conn_host::set_websocket(std::uint64_t id, int module) {
  auto* c = find(id);
  if (!c) return server_errc::session_not_found;
  c->ws_module = module;
  return {};
}

std::error_code conn_host::join(std::uint64_t id, std::string_view group) {
  auto* c = find(id);
  if (!c || c->closed()) return server_errc::session_not_found;
  auto g = groups_.find(group);
  if (g == groups_.end()) g = groups_.emplace(std::string(group), std::unordered_set<std::uint64_t>{}).first;
  if (g->second.insert(id).second) member_of_[id].push_back(g->first);
  return {};
}

std::error_code conn_host::leave(std::uint64_t id, std::string_view group) {
  if (!find(id)) return server_errc::session_not_found;
  auto g = groups_.find(group);
  if (g == groups_.end() || !g->second.erase(id)) return {};
  if (g->second.empty()) groups_.erase(g);
  if (auto m = member_of_.find(id); m != member_of_.end()) {
    std::erase(m->second, group);
    if (m->second.empty()) member_of_.erase(m);
  }
  return {};
}

std::size_t conn_host::broadcast(std::string_view group, std::string_view data, std::uint8_t kind) {
  // Ids first: a send can close its connection, which leaves its groups under our feet.
  std::vector<std::uint64_t> to;
  if (group.empty()) {
    for (const auto& [id, c] : conns_)
      if (c->ws_module >= 0) to.push_back(id);
  } else {
    auto g = groups_.find(group);
    if (g == groups_.end()) return 0;
    to.assign(g->second.begin(), g->second.end());
  }
  std::size_t n = 0, full = 0;
  for (auto id : to) {
    auto ec = send(id, data, kind);
    if (!ec) ++n;
    else if (ec == server_errc::output_buffer_full) ++full;
  }
  if (full) {
    // Once a second at most: a peer that stopped reading misses every broadcast.
    full_missed_ += full;
    auto now = std::chrono::steady_clock::now();
    if (now - last_full_log_ >= std::chrono::seconds(1)) {
      log::warning("broadcast{}{}: {} message(s) not sent to members whose output buffer is full", group.empty() ? "" : " to ",
                   group, full_missed_);
      full_missed_ = 0;
      last_full_log_ = now;
    }
  }
  return n;
}

std::error_code conn_host::close(std::uint64_t id, bool reset) {
  auto it = conns_.find(id);
  if (it == conns_.end() || it->second->closed()) return server_errc::session_not_found;
  auto keep = it->second;  // close() may unregister it
  keep->close(reset);
  return {};
}

std::error_code conn_host::bind(std::uint64_t id, std::uint64_t uid) {
  auto* c = find(id);
  if (!c) return server_errc::session_not_found;
  c->uid = uid;
  return {};
}

std::size_t conn_host::go_away_all() {
  std::size_t n = 0;
  for (auto id : ids())
    if (auto it = conns_.find(id); it != conns_.end()) {
      auto keep = it->second;
      if (keep->go_away()) ++n;
    }
  return n;
}

void conn_host::close_all() {
  cancel_handshakes();
  for (auto id : ids()) (void)close(id, false);
}

void conn_host::abort_all() {
  cancel_handshakes();
  for (auto id : ids())
    if (auto it = conns_.find(id); it != conns_.end()) {
      auto keep = it->second;
      keep->abort("server stopping");
    }
}

void conn_host::on_connection_closed(connection& c, bool aborted, std::string_view reason) {
  auto it = conns_.find(c.id());
  if (it == conns_.end() || it->second.get() != &c) return;
  auto keep = std::move(it->second);
  conns_.erase(it);
  state_.remove_session(c.id());
  if (auto m = member_of_.find(c.id()); m != member_of_.end()) {
    for (const auto& name : m->second)
      if (auto g = groups_.find(name); g != groups_.end() && g->second.erase(c.id()) && g->second.empty())
        groups_.erase(g);
    member_of_.erase(m);
  }
  auto l = static_cast<std::size_t>(c.listener());
  state_.listeners[l].connections.fetch_sub(1, std::memory_order_relaxed);
  bump(counters_.open, std::int64_t{-1});
  bump(counters_.listener_open[l], std::int64_t{-1});
  bump(counters_.closed);
  if (aborted) bump(counters_.aborted);
  log::debug("session {} from {} closed: {}", c.id(), c.remote, reason);
  sink_.on_closed(c, reason);
}

// -- datagrams ------------------------------------------------------------------------------

bool conn_host::serve_datagrams(int listener, int fd) {
  auto s = std::make_unique<dgram_proto::socket>(io_);
  std::error_code ec;
  s->assign(dgram_proto(detail::socket_family(fd), SOCK_DGRAM), fd, ec);
  if (ec) {
    log::error("listener {}: cannot adopt inherited socket: {}", app_.listen[static_cast<std::size_t>(listener)].url,
               ec.message());
    return false;
  }
  dgrams_[static_cast<std::size_t>(listener)] = std::move(s);
  spawn(io_, [this, listener]() -> task<void> { co_await datagram_loop(listener); }, "datagram loop");
  return true;
}

task<void> conn_host::datagram_loop(int listener) {
  const auto& lc = app_.listen[static_cast<std::size_t>(listener)];
  std::vector<char> buf(lc.max_packet_size + 1);
  for (;;) {
    auto* sock = dgrams_[static_cast<std::size_t>(listener)].get();
    if (!sock || !sock->is_open()) co_return;
    dgram_proto::endpoint from;
    auto [ec, n] = co_await sock->async_receive_from(asio::buffer(buf), from, use_tuple);
    if (ec) {
      if (ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) co_return;
      log::warning("listener {}: receive failed: {}", lc.url, ec.message());
      continue;
    }
    if (n > lc.max_packet_size) {
      log::warning("listener {}: dropped a datagram larger than max_packet_size ({} bytes)", lc.url,
                   lc.max_packet_size);
      continue;
    }
    sink_.on_datagram(listener, detail::format_endpoint(from), std::string_view(buf.data(), n));
  }
}

std::error_code conn_host::sendto(const std::string& address, std::string_view data, int listener) {
  dgram_proto::endpoint ep;
  if (!detail::parse_address(address, ep)) return server_errc::bad_address;
  for (std::size_t i = 0; i < dgrams_.size(); ++i) {
    auto& s = dgrams_[i];
    if (!s || !s->is_open() || (listener >= 0 && static_cast<int>(i) != listener)) continue;
    std::error_code ec;
    if (listener < 0 && s->local_endpoint(ec).protocol().family() != ep.protocol().family()) continue;
    s->send_to(asio::buffer(data.data(), data.size()), ep, 0, ec);
    return ec;
  }
  return server_errc::not_supported;
}

void conn_host::stop_datagrams() {
  for (auto& d : dgrams_) {
    std::error_code ignored;
    if (d) d->close(ignored);
  }
}

// -- heartbeat ------------------------------------------------------------------------------

void conn_host::start_heartbeat() {
  duration every = duration::max();
  for (const auto& l : app_.listen) {
    if (l.heartbeat_idle_time.count() <= 0 || !l.endpoint.stream()) continue;
    duration d = l.heartbeat_check_interval.count() > 0 ? duration(l.heartbeat_check_interval)
                                                        : duration(l.heartbeat_idle_time / 2);
    every = std::min(every, std::max<duration>(d, 1ms));
  }
  if (every != duration::max())
    heartbeat_ = spawn(io_, [this, every]() -> task<void> { co_await heartbeat_loop(every); }, "heartbeat");
  // Protocol timeouts (HTTP header/body/keep-alive): one sweep per loop, a quarter of the
  // shortest timeout apart, instead of a timer per connection (idle connections stay small;
  // a timeout fires up to a quarter late).
  duration sweep = duration::max();
  for (const auto& l : app_.listen) {
    if (!l.http()) continue;
    for (auto t : {l.header_timeout, l.keepalive_timeout, l.body_timeout})
      if (t.count() > 0) sweep = std::min<duration>(sweep, duration(t) / 4);
    if (l.websocket.enabled)
      for (auto t : {l.websocket.close_timeout, l.websocket.ping_interval, l.websocket.idle_timeout})
        if (t.count() > 0) sweep = std::min<duration>(sweep, duration(t) / 4);
  }
  if (sweep != duration::max()) {
    sweep = std::clamp<duration>(sweep, 25ms, 1s);
    deadlines_ = spawn(io_, [this, sweep]() -> task<void> { co_await deadline_loop(sweep); }, "deadlines");
  }
}

void conn_host::stop_heartbeat() {
  heartbeat_.cancel();
  deadlines_.cancel();
}

task<void> conn_host::deadline_loop(duration every) {
  std::vector<std::shared_ptr<connection>> expired;
  for (;;) {
    // Cancelled (stop_heartbeat(), or the host's end): not one more pass over the host.
    const auto cancelled = co_await sleep(every);
    if (cancelled) co_return;
    auto now = std::chrono::steady_clock::now();
    for (const auto& [id, c] : conns_)
      if (c->deadline_passed(now)) expired.push_back(c);
    for (auto& c : expired) c->expire();
    expired.clear();
  }
}

task<void> conn_host::heartbeat_loop(duration every) {
  for (;;) {
    const auto cancelled = co_await sleep(every);
    if (cancelled) co_return;  // as in deadline_loop()
    auto now = std::chrono::steady_clock::now();
    std::vector<std::pair<std::uint64_t, std::chrono::milliseconds>> idle;
    for (const auto& [id, c] : conns_) {
      auto t = app_.listen[static_cast<std::size_t>(c->listener())].heartbeat_idle_time;
      if (t.count() > 0 && now - c->last_activity >= t) idle.emplace_back(id, t);
    }
    for (auto [id, t] : idle) {
      log::info("closing idle session {} (no data for {} ms)", id, t.count());
      (void)close(id, false);
    }
  }
}

}  // namespace swactor::net
