// The test kit for module authors (swactor/actors/testing.hpp).
#include "swactor/actors/testing.hpp"

#include "swactor/actors/redis.hpp"

#include <algorithm>
#include <exception>
#include <mutex>

#include <asio/co_spawn.hpp>
#include <fmt/format.h>
#include <spdlog/sinks/base_sink.h>
#include <toml++/toml.h>

namespace swactor::test_kit {

// -- context ---------------------------------------------------------------------------------------

context::context(swactor::loop& lp, std::string role, int worker_id)
    : swactor::context(lp, std::move(role), worker_id),
      stats_(fmt::format("{{\"worker_id\":{},\"worker_request_count\":0,\"worker_connections\":0}}", worker_id)) {
  set_task_stub({});
  set_request_stub({});
}

session_record& context::open_session(session_info info, std::string delimiter) {
  auto id = info.id;
  auto& rec = sessions_[id];
  rec = session_record{};
  rec.info = std::move(info);
  rec.delimiter = std::move(delimiter);
  return rec;
}

session_record* context::session(session_id id) {
  auto it = sessions_.find(id);
  return it == sessions_.end() ? nullptr : &it->second;
}

std::string context::take_sent(session_id id) {
  auto* s = session(id);
  if (!s) return {};
  return std::exchange(s->sent, std::string());
}

bool context::subscribed(std::string_view topic) const {
  return std::any_of(subscriptions_.begin(), subscriptions_.end(),
                     [&](const std::string& p) { return bus::matches(p, topic); });
}

void context::clear_records() {
  datagrams_.clear();
  tasks_.clear();
  pipe_messages_.clear();
  publishes_.clear();
  bus_calls_.clear();
  replies_.clear();
}

void context::set_task_stub(task_stub fn) {
  if (!fn) fn = [](const std::string&, int) -> result<std::string> { return make_error_code(server_errc::no_task_workers); };
  // The stub lives in the handler (not in a coroutine lambda's captures, which would dangle).
  task_handler_ = [fn = std::move(fn)](std::string payload, int dst) -> swactor::task<result<std::string>> {
    return [](task_stub f, std::string p, int d) -> swactor::task<result<std::string>> { co_return f(p, d); }(
        fn, std::move(payload), dst);
  };
}

void context::set_request_stub(request_stub fn) {
  if (!fn) fn = [](const bus::target&, const bus::payload&) -> result<bus::payload> { return make_error_code(server_errc::no_route); };
  request_handler_ = [fn = std::move(fn)](bus::target to, bus::payload message) -> swactor::task<result<bus::message>> {
    return [](request_stub f, bus::target t, bus::payload m) -> swactor::task<result<bus::message>> {
      auto r = f(t, m);
      if (!r) co_return result<bus::message>(r.error());
      bus::message reply;
      reply.kind = bus::kind::direct;
      reply.tag = std::move(r->tag);
      reply.data = std::move(r->data);
      reply.sender_module = t.module;
      reply.sender = t.process;
      co_return reply;
    }(fn, std::move(to), std::move(message));
  };
}

std::error_code context::send(session_id id, std::string_view data) {
  auto* s = session(id);
  if (!s || !s->open) return server_errc::session_not_found;
  s->sent.append(data);
  s->sends.emplace_back(data);
  return {};
}

std::error_code context::sendto(const std::string& address, std::string_view data, int listener) {
  if (address.empty()) return server_errc::bad_address;
  datagrams_.push_back({address, std::string(data), listener});
  return {};
}

std::error_code context::close(session_id id, bool reset) {
  auto* s = session(id);
  if (!s || !s->open) return server_errc::session_not_found;
  s->open = false;
  s->closed_by_module = true;
  s->reset = reset;
  return {};
}

result<session_info> context::info(session_id id) {
  auto* s = session(id);
  if (!s || !s->open) return make_error_code(server_errc::session_not_found);
  return s->info;
}

std::string_view context::payload(session_id id, std::string_view message) {
  auto* s = session(id);
  if (s && !s->delimiter.empty() && message.ends_with(s->delimiter)) message.remove_suffix(s->delimiter.size());
  return message;
}

std::error_code context::bind(session_id id, user_id uid) {
  auto* s = session(id);
  if (!s || !s->open) return server_errc::session_not_found;
  s->info.uid = uid;
  return {};
}

result<task_id> context::task(std::string payload, int dst) {
  task_id id(next_task_++);
  tasks_.push_back({task_call_kind::task, id, std::move(payload), dst});
  return id;
}

swactor::task<result<std::string>> context::task_wait(std::string payload, duration timeout, int dst) {
  (void)timeout;  // the stub answers at once
  tasks_.push_back({task_call_kind::task_wait, task_id{}, payload, dst});
  co_return co_await task_handler_(std::move(payload), dst);
}

swactor::task<std::vector<result<std::string>>> context::task_wait_all(std::vector<std::string> payloads,
                                                                       duration timeout) {
  (void)timeout;
  std::vector<result<std::string>> out;
  out.reserve(payloads.size());
  for (auto& p : payloads) {
    tasks_.push_back({task_call_kind::task_wait_all, task_id{}, p, -1});
    out.push_back(co_await task_handler_(std::move(p), -1));
  }
  co_return out;
}

std::error_code context::send_message(int worker_id, std::string payload) {
  if (worker_id < 0) return server_errc::worker_not_found;
  pipe_messages_.push_back({worker_id, std::move(payload)});
  return {};
}

std::error_code context::subscribe(std::string_view pattern) {
  if (!bus::valid_pattern(pattern)) return server_errc::bad_topic;
  if (std::find(subscriptions_.begin(), subscriptions_.end(), pattern) == subscriptions_.end())
    subscriptions_.emplace_back(pattern);
  return {};
}

std::error_code context::unsubscribe(std::string_view pattern) {
  if (!bus::valid_pattern(pattern)) return server_errc::bad_topic;
  std::erase(subscriptions_, pattern);
  return {};
}

std::error_code context::publish(std::string_view topic, bus::payload message, bus::publish_options options) {
  if (!bus::valid_topic(topic)) return server_errc::bad_topic;
  publishes_.push_back({std::string(topic), std::move(message), options});
  return {};
}

std::error_code context::send_to(const bus::target& to, bus::payload message) {
  bus_calls_.push_back({bus_call_kind::send_to, to, std::move(message)});
  return {};
}

swactor::task<result<bus::message>> context::request(bus::target to, bus::payload message, duration timeout) {
  (void)timeout;  // the stub answers at once
  bus_calls_.push_back({bus_call_kind::request, to, message});
  co_return co_await request_handler_(std::move(to), std::move(message));
}

std::error_code context::reply(const bus::message& request, bus::payload message) {
  if (!request.is_request() || request.replied_) return server_errc::not_supported;
  request.replied_ = true;
  replies_.push_back({request.request_id, std::move(message)});
  return {};
}

ipc::table* context::table(std::string_view name) {
  auto it = tables_.find(name);
  return it == tables_.end() ? nullptr : it->second;
}

int context::user_process_id(int index) const {
  if (index < 0 || static_cast<std::size_t>(index) >= user_process_ids_.size()) return -1;
  return user_process_ids_[static_cast<std::size_t>(index)];
}

// -- options ---------------------------------------------------------------------------------------

toml::table detail::parse_toml(const std::string& text) {
  try {
    return toml::parse(std::string_view(text), std::string_view("modules.test"));
  } catch (const toml::parse_error& e) {
    throw option_error(fmt::format("TOML syntax error at line {}: {}", e.source().begin.line, e.description()));
  }
}

// -- harness ---------------------------------------------------------------------------------------

harness::harness(std::unique_ptr<module_base> module, harness_options opts)
    : opts_(std::move(opts)),
      loop_(std::make_unique<swactor::loop>()),
      ctx_(std::make_unique<test_kit::context>(*loop_, opts_.role, opts_.worker_id)),
      module_(std::move(module)) {
  if (!module_) throw std::invalid_argument("test_kit::harness: no module");
  if (!opts_.instance.empty()) module_->set_instance_name(opts_.instance);
  if (opts_.manual_clock) loop_->timers().use_manual_clock();
}

harness::~harness() {
  // A handler that hit the cap may still be suspended. The module goes first: what it owns
  // (a channel, a wait group) completes its waiters by posting to the loop, which is still
  // there; then the loop is destroyed without running, destroying those frames unresumed.
  loop_->timers().clear_all();
  module_.reset();
  loop_.reset();
}

void harness::run(swactor::task<void> body, std::string_view what) {
  // Shared: a handler that hit the cap may still complete later, after this call threw.
  struct state {
    bool done = false;
    std::exception_ptr error;
  };
  auto st = std::make_shared<state>();
  auto& io = loop_->context();
  asio::co_spawn(io, std::move(body), [st](std::exception_ptr ep) {
    st->done = true;
    st->error = ep;
  });
  const auto deadline = std::chrono::steady_clock::now() + opts_.handler_limit;
  while (!st->done) {
    if (io.stopped()) io.restart();
    if (io.run_one_until(deadline) > 0) continue;
    if (st->done) break;
    if (std::chrono::steady_clock::now() >= deadline)
      throw handler_stuck(fmt::format("{} did not finish within {} ms (real time; harness_options::handler_limit)",
                                      what, opts_.handler_limit.count()));
    if (io.stopped())
      throw handler_stuck(fmt::format("{} is suspended with nothing on the loop that could resume it (a manual-clock "
                                      "timer needs advance(); a channel needs a sender)",
                                      what));
  }
  poll();
  if (st->error) std::rethrow_exception(st->error);
}

void harness::poll() {
  auto& io = loop_->context();
  if (io.stopped()) io.restart();
  io.poll();
}

std::uint64_t harness::advance(std::chrono::milliseconds d) {
  auto n = loop_->timers().advance(d);
  poll();
  return n;
}

void harness::start() { run(module_->on_worker_start(*ctx_), "on_worker_start"); }
void harness::stop() { run(module_->on_worker_stop(*ctx_), "on_worker_stop"); }

session_id harness::connect(connect_options opts) {
  session_info info;
  info.id = session_id(next_session_++);
  info.remote = std::move(opts.remote);
  info.local = std::move(opts.local);
  info.listener = opts.listener;
  info.connect_time_ms = ctx_->clock_ms();
  info.worker = ctx_->worker_id();
  ctx_->open_session(info, std::move(opts.delimiter));
  run(module_->on_connect(*ctx_, info.id), "on_connect");
  return info.id;
}

void harness::receive(session_id s, std::string message) {
  auto* rec = ctx_->session(s);
  if (!rec || !rec->open) throw std::invalid_argument(fmt::format("test_kit: receive on session {}, which is not open", s));
  rec->info.last_receive_ms = ctx_->clock_ms();
  // As the server does for a session with nothing queued or running: the inline handler
  // first, the coroutine when it declines.
  if (module_->on_receive_now(*ctx_, s, message)) return;
  run(module_->on_receive(*ctx_, s, std::move(message)), "on_receive");
}

std::string harness::command(session_id s, std::vector<std::string> args) {
  auto* rec = ctx_->session(s);
  if (!rec || !rec->open) throw std::invalid_argument(fmt::format("test_kit: command on session {}, which is not open", s));
  std::string raw = "*" + std::to_string(args.size()) + "\r\n";
  for (const auto& a : args) {
    raw += "$" + std::to_string(a.size()) + "\r\n";
    raw += a;
    raw += "\r\n";
  }
  namespace pr = protocols::redis;
  auto kind = static_cast<std::uint8_t>(pr::ev::command);
  if (redis_protocol(s) == 3) kind |= pr::resp3_flag;
  redis::command cmd(std::move(raw), kind);
  rec->info.last_receive_ms = ctx_->clock_ms();
  run(module_->on_command(*ctx_, s, cmd), "on_command");
  if (cmd.switched_protocol()) redis_protocol_[s] = cmd.switched_protocol();
  if (!cmd.replied()) return "-ERR the command handler returned without a reply\r\n";
  return cmd.reply_bytes();
}

int harness::redis_protocol(session_id s) const {
  auto it = redis_protocol_.find(s);
  return it == redis_protocol_.end() ? 2 : it->second;
}

void harness::close(session_id s) {
  auto* rec = ctx_->session(s);
  if (!rec) throw std::invalid_argument(fmt::format("test_kit: close of session {}, which was never opened", s));
  rec->open = false;
  run(module_->on_close(*ctx_, s), "on_close");
}

void harness::packet(std::string data, packet_info from) {
  run(module_->on_packet(*ctx_, from, std::move(data)), "on_packet");
}

result<std::string> harness::run_task(std::string payload, int src_worker) {
  // Shared: the frame may outlive this call when the handler hits the cap.
  auto out = std::make_shared<result<std::string>>(make_error_code(server_errc::task_failed));
  run([](harness& h, std::shared_ptr<result<std::string>> out, std::string p, int src) -> swactor::task<void> {
    try {
      *out = co_await h.module_->on_task(*h.ctx_, task_id(h.next_task_++), src, std::move(p));
    } catch (const std::exception&) {
      *out = make_error_code(server_errc::task_failed);  // what the waiter of a throwing task gets
    }
  }(*this, out, std::move(payload), src_worker), "on_task");
  return *out;
}

void harness::finish(task_id id, std::string result) {
  run(module_->on_finish(*ctx_, id, std::move(result)), "on_finish");
}

void harness::pipe_message(int src_worker, std::string payload) {
  run(module_->on_pipe_message(*ctx_, src_worker, std::move(payload)), "on_pipe_message");
}

void harness::answer_tasks_with_module() {
  ctx_->set_task_handler([this](std::string payload, int) -> swactor::task<result<std::string>> {
    return [](harness& h, std::string p) -> swactor::task<result<std::string>> {
      try {
        co_return co_await h.module_->on_task(*h.ctx_, task_id(h.next_task_++), h.ctx_->worker_id(), std::move(p));
      } catch (const std::exception&) {
      }
      co_return make_error_code(server_errc::task_failed);
    }(*this, std::move(payload));
  });
}

void harness::answer_requests_with_module() {
  ctx_->set_request_handler([this](bus::target, bus::payload message) -> swactor::task<result<bus::message>> {
    return [](harness& h, bus::payload m) -> swactor::task<result<bus::message>> {
      bus::message req;
      req.kind = bus::kind::request;
      req.tag = std::move(m.tag);
      req.data = std::move(m.data);
      req.sender = h.ctx_->worker_id();
      req.sender_module = h.module_->instance_name();
      req.seq = h.next_seq_++;
      req.request_id = h.next_request_++;
      auto before = h.ctx_->replies().size();
      bool threw = false;
      try {
        co_await h.module_->on_bus_message(*h.ctx_, req);
      } catch (const std::exception&) {
        threw = true;
      }
      for (auto i = before; i < h.ctx_->replies().size(); ++i) {
        const auto& r = h.ctx_->replies()[i];
        if (r.request_id != req.request_id) continue;
        bus::message reply;
        reply.kind = bus::kind::direct;
        reply.tag = r.message.tag;
        reply.data = r.message.data;
        reply.sender = h.ctx_->worker_id();
        reply.sender_module = h.module_->instance_name();
        co_return reply;
      }
      co_return make_error_code(threw ? server_errc::request_failed : server_errc::no_reply);
    }(*this, std::move(message));
  });
}

void harness::deliver(const bus::message& m) { run(module_->on_bus_message(*ctx_, m), "on_bus_message"); }

namespace {
// What the runtime checks before a handler sees a tagged message (bus_endpoint.cpp).
bool accepted(const module_base& mod, bus::message& m) {
  if (m.tag.empty()) return true;
  if (!mod.bus_types().knows(m.tag)) return false;
  m.decoded_ = mod.bus_types().decode(m.tag, m.data);
  return static_cast<bool>(m.decoded_);
}
}  // namespace

bus::message harness::incoming(bus::kind kind, bus::payload message, int sender, std::string sender_module) {
  bus::message m;
  m.kind = kind;
  m.tag = std::move(message.tag);
  m.data = std::move(message.data);
  m.sender = sender;
  m.sender_module = std::move(sender_module);
  m.seq = next_seq_++;
  return m;
}

bool harness::publish(std::string topic, bus::payload message, int sender, std::string sender_module) {
  if (!bus::valid_topic(topic)) throw std::invalid_argument("test_kit: publish to an invalid topic \"" + topic + "\"");
  if (!ctx_->subscribed(topic)) return false;
  auto m = incoming(bus::kind::publish, std::move(message), sender, std::move(sender_module));
  m.topic = std::move(topic);
  if (!accepted(*module_, m)) return false;
  deliver(m);
  return true;
}

bool harness::send_direct(bus::payload message, int sender, std::string sender_module) {
  auto m = incoming(bus::kind::direct, std::move(message), sender, std::move(sender_module));
  if (!accepted(*module_, m)) return false;
  deliver(m);
  return true;
}

result<bus::message> harness::request(bus::payload message, int sender, std::string sender_module) {
  auto m = incoming(bus::kind::request, std::move(message), sender, std::move(sender_module));
  m.request_id = next_request_++;
  if (!accepted(*module_, m)) return make_error_code(server_errc::request_failed);
  auto before = ctx_->replies().size();
  try {
    deliver(m);
  } catch (const handler_stuck&) {
    throw;
  } catch (const std::exception&) {
    return make_error_code(server_errc::request_failed);  // the runtime answers a throw so
  }
  for (auto i = before; i < ctx_->replies().size(); ++i) {
    const auto& r = ctx_->replies()[i];
    if (r.request_id != m.request_id) continue;
    bus::message reply;
    reply.kind = bus::kind::direct;
    reply.tag = r.message.tag;
    reply.data = r.message.data;
    reply.sender = ctx_->worker_id();
    reply.sender_module = module_->instance_name();
    return reply;
  }
  return make_error_code(server_errc::no_reply);
}

// -- log_capture -------------------------------------------------------------------------------------

struct log_capture::sink final : spdlog::sinks::base_sink<std::mutex> {
  std::vector<std::string> snapshot() {
    std::lock_guard lock(mutex_);
    return lines;
  }
  void reset() {
    std::lock_guard lock(mutex_);
    lines.clear();
  }

 protected:
  std::vector<std::string> lines;

  void sink_it_(const spdlog::details::log_msg& msg) override { lines.emplace_back(msg.payload.data(), msg.payload.size()); }
  void flush_() override {}
};

log_capture::log_capture() : sink_(std::make_shared<sink>()) { spdlog::default_logger()->sinks().push_back(sink_); }

log_capture::~log_capture() {
  auto& sinks = spdlog::default_logger()->sinks();
  std::erase(sinks, std::static_pointer_cast<spdlog::sinks::sink>(sink_));
}

std::vector<std::string> log_capture::lines() const { return sink_->snapshot(); }

bool log_capture::contains(std::string_view text) const {
  auto all = lines();
  return std::any_of(all.begin(), all.end(), [&](const std::string& l) { return l.find(text) != std::string::npos; });
}

void log_capture::clear() { sink_->reset(); }

}  // namespace swactor::test_kit
