// The one context implementation. Every operation goes to what the worker chose at start
// (session_port, the runner's stand-ins, the master link); nothing here knows the mode.

#include "worker/runtime.hpp"

namespace swactor::detail {

using namespace std::chrono_literals;

std::error_code server_context::send(session_id s, std::string_view data) { return rt_.port().send(s, data); }

std::error_code server_context::sendto(const std::string& a, std::string_view d, int l) {
  return rt_.port().sendto(a, d, l);
}

std::error_code server_context::close(session_id s, bool reset) { return rt_.port().close(s, reset); }

result<session_info> server_context::info(session_id s) { return rt_.port().info(s); }

std::string_view server_context::payload(session_id s, std::string_view message) {
  auto i = rt_.port().info(s);
  if (!i || i->listener < 0 || i->listener >= static_cast<int>(rt_.app().listen.size())) return message;
  return protocols::frame_payload(rt_.app().listen[static_cast<std::size_t>(i->listener)].framing_options, message);
}

std::error_code server_context::bind(session_id s, user_id uid) { return rt_.port().bind(s, uid); }

std::error_code server_context::push(session_id s, std::string_view data, ws_opcode op) {
  namespace ws = protocols::websocket;
  auto kind = static_cast<std::uint8_t>(op == ws_opcode::binary ? ws::reply::binary : ws::reply::text);
  auto ec = rt_.port().send(s, data, kind);
  // A session another worker handles: through that worker (base mode) or its reactor.
  if (ec == server_errc::session_not_found) return rt_.send_elsewhere(module_, s, kind, data);
  return ec;
}

std::error_code server_context::disconnect(session_id s, std::uint16_t code, std::string_view reason) {
  if (code < 1000 || code > 4999) return std::make_error_code(std::errc::invalid_argument);
  std::string payload;
  payload.push_back(static_cast<char>(code >> 8));
  payload.push_back(static_cast<char>(code));
  payload.append(reason.substr(0, 123));
  const auto kind = static_cast<std::uint8_t>(protocols::websocket::reply::close);
  auto ec = rt_.port().send(s, payload, kind);
  if (ec == server_errc::session_not_found) return rt_.send_elsewhere(module_, s, kind, payload);
  return ec;
}

bool server_context::exists(session_id s) {
  // The shared registry knows the sessions of every process (the one that holds the
  // connection writes it); only if an entry did not fit there is the local view the answer.
  const auto& st = rt_.state();
  if (st.session_slots != 0 && st.session_registry_full.load(std::memory_order_relaxed) == 0)
    return st.has_session(s.value());
  return rt_.port().is_open(s) || st.has_session(s.value());
}

namespace {
bool valid_group(std::string_view g) { return !g.empty() && g.size() <= 255; }
}  // namespace

std::error_code server_context::join(std::string_view group, session_id s) {
  if (!valid_group(group)) return std::make_error_code(std::errc::invalid_argument);
  return rt_.ws_group(module_, s, group, true);
}

std::error_code server_context::leave(std::string_view group, session_id s) {
  if (!valid_group(group)) return std::make_error_code(std::errc::invalid_argument);
  return rt_.ws_group(module_, s, group, false);
}

std::error_code server_context::broadcast(std::string_view group, std::string_view data, ws_opcode op) {
  if (!group.empty() && !valid_group(group)) return std::make_error_code(std::errc::invalid_argument);
  namespace ws = protocols::websocket;
  auto kind = static_cast<std::uint8_t>(op == ws_opcode::binary ? ws::reply::binary : ws::reply::text);
  return rt_.ws_broadcast(module_, group, kind, data);
}

result<task_id> server_context::task(std::string payload, int dst) {
  return rt_.start_task(module_, std::move(payload), dst, true, nullptr);
}

swactor::task<result<std::string>> server_context::task_wait(std::string payload, duration timeout, int dst) {
  auto ch = std::make_shared<channel<result<std::string>>>(1);
  auto id = rt_.start_task(module_, std::move(payload), dst, false, ch);
  if (!id) co_return id.error();
  auto r = co_await ch->pop(timeout);
  if (!r) {
    rt_.forget_task(*id);  // a late result is dropped, never handed to a later call
    co_return r.error();
  }
  co_return std::move(*r);
}

swactor::task<std::vector<result<std::string>>> server_context::task_wait_all(std::vector<std::string> payloads,
                                                                             duration timeout) {
  std::vector<std::pair<result<task_id>, std::shared_ptr<channel<result<std::string>>>>> started;
  for (auto& p : payloads) {
    auto ch = std::make_shared<channel<result<std::string>>>(1);
    auto id = rt_.start_task(module_, std::move(p), -1, false, ch);
    started.emplace_back(std::move(id), std::move(ch));
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<result<std::string>> out;
  for (auto& [id, ch] : started) {
    if (!id) {
      out.emplace_back(id.error());
      continue;
    }
    // One deadline for the whole batch: later tasks get what is left of it.
    auto left = timeout == no_timeout ? no_timeout
                                      : std::max<duration>(deadline - std::chrono::steady_clock::now(), 0ms);
    if (left == 0ms) {
      if (auto v = ch->try_pop()) {
        out.push_back(std::move(*v));
      } else {
        rt_.forget_task(*id);
        out.emplace_back(errc::timeout);
      }
      continue;
    }
    auto got = co_await ch->pop(left);
    if (got) {
      out.push_back(std::move(*got));
    } else {
      rt_.forget_task(*id);
      out.emplace_back(got.error());
    }
  }
  co_return out;
}

std::error_code server_context::send_message(int worker_id, std::string payload) {
  return rt_.send_message(module_, worker_id, std::move(payload));
}

std::string server_context::stats() { return rt_.stats_json(); }

ipc::table* server_context::table(std::string_view name) { return rt_.find_table(name); }

int server_context::user_process_id(int index) const { return rt_.user_process_id(module_, index); }

int server_context::workers() const { return rt_.app().server.workers; }

// -- the bus: the process's bus_endpoint, as this module instance ---------------------------------

std::error_code server_context::subscribe(std::string_view pattern) { return rt_.bus().subscribe(module_, pattern, true); }

std::error_code server_context::unsubscribe(std::string_view pattern) {
  return rt_.bus().subscribe(module_, pattern, false);
}

std::error_code server_context::publish(std::string_view topic, bus::payload message, bus::publish_options options) {
  return rt_.bus().publish(module_, topic, std::move(message), options);
}

std::error_code server_context::send_to(const bus::target& to, bus::payload message) {
  return rt_.bus().send(module_, to, std::move(message));
}

swactor::task<result<bus::message>> server_context::request(bus::target to, bus::payload message, duration timeout) {
  co_return co_await rt_.bus().request(module_, std::move(to), std::move(message), timeout);
}

std::error_code server_context::reply(const bus::message& request, bus::payload message) {
  return rt_.bus().reply(module_, request, std::move(message));
}

}  // namespace swactor::detail
