#include "worker/bus_endpoint.hpp"

#include "swactor/actors/errors.hpp"
#include "swactor/core/log.hpp"

namespace swactor::detail {

namespace {
// Drop lines are logged for the first few and then every 1000th, so a flood of bad
// messages cannot flood the log; the counters in `swactor bus stats` have every one.
bool worth_logging(std::uint64_t n) { return n <= 10 || n % 1000 == 0; }
}  // namespace

bus_endpoint::bus_endpoint(swactor::loop& lp, const app_config& app, int process, ipc::link& master,
                           proc_slot& slot, bus_host& host)
    : lp_(lp), app_(app), layout_(app), process_(process), master_(master), slot_(slot), host_(host) {}

void bus_endpoint::open(std::vector<int> modules) {
  auto limit = static_cast<std::size_t>(app_.bus.mailbox_limit);
  for (int m : modules) {
    boxes_.push_back({m, std::make_unique<channel<bus::message>>(limit)});
    for (const auto& p : app_.modules[static_cast<std::size_t>(m)].subscribe) (void)subscribe(m, p, true);
  }
}

void bus_endpoint::start() {
  if (started_ || closed_) return;
  started_ = true;
  for (auto& b : boxes_) {
    consumers_.add();
    spawn(lp_.context(), [this, &b]() -> task<void> {
      co_await consume(b);
      consumers_.done();
    }, "bus mailbox");
  }
}

void bus_endpoint::close() {
  closed_ = true;
  for (auto& b : boxes_) b.mail->close();
}

bus_endpoint::mailbox* bus_endpoint::box_of(std::uint32_t module) {
  for (auto& b : boxes_)
    if (static_cast<std::uint32_t>(b.module) == module) return &b;
  return nullptr;
}

task<void> bus_endpoint::consume(mailbox& box) {
  for (;;) {
    auto m = co_await box.mail->pop();
    if (!m) co_return;  // closed and empty
    bool ok = co_await host_.run_bus_handler(box.module, *m);
    slot_.bus_handled.fetch_add(1, std::memory_order_relaxed);
    // A request always gets an answer: the handler's reply, or why there is none.
    if (m->is_request() && !m->replied_) {
      answer(*m, box.module, ok ? ipc::bus_status::no_reply : ipc::bus_status::failed,
             ok ? "the handler returned without replying" : "the handler failed");
    }
  }
}

std::error_code bus_endpoint::subscribe(int module, std::string_view pattern, bool on) {
  if (!bus::valid_pattern(pattern)) return server_errc::bad_topic;
  ipc::bus_subscription s;
  s.process = static_cast<std::uint32_t>(process_);
  s.module = static_cast<std::uint32_t>(module);
  s.subscribe = on;
  s.pattern = std::string(pattern);
  return master_.send(ipc::encode(std::move(s)));
}

std::error_code bus_endpoint::check_size(std::string_view topic, const bus::payload& p) const {
  if (topic.size() + p.tag.size() + p.data.size() > app_.bus.max_message_size) return server_errc::message_too_large;
  return {};
}

std::error_code bus_endpoint::publish(int module, std::string_view topic, bus::payload p, bus::publish_options o) {
  if (!bus::valid_topic(topic)) return server_errc::bad_topic;
  if (auto ec = check_size(topic, p)) return ec;
  ipc::bus_message m;
  m.op = ipc::bus_op::publish;
  m.self = o.self;
  m.src = static_cast<std::uint32_t>(process_);
  m.src_module = static_cast<std::uint32_t>(module);
  m.seq = ++seq_;
  m.topic = std::string(topic);
  m.tag = std::move(p.tag);
  m.data = std::move(p.data);
  return master_.send(ipc::encode(std::move(m)));
}

result<ipc::bus_message> bus_endpoint::addressed(int module, const bus::target& to, bus::payload p, ipc::bus_op op) {
  if (auto ec = check_size({}, p)) return ec;
  int dst_module = module;
  if (!to.module.empty()) {
    dst_module = app_.module_index(to.module);
    if (dst_module < 0) return make_error_code(server_errc::module_not_found);
  }
  if (to.process >= 0 && !layout_.valid(to.process)) return make_error_code(server_errc::worker_not_found);
  if (to.process < 0 && layout_.workers() == 0) return make_error_code(server_errc::no_route);
  ipc::bus_message m;
  m.op = op;
  m.pick = static_cast<std::uint8_t>(to.pick);
  m.src = static_cast<std::uint32_t>(process_);
  m.dst = to.process < 0 ? ipc::no_worker : static_cast<std::uint32_t>(to.process);
  m.dst_pid = to.process < 0 ? 0 : to.pid;
  m.src_module = static_cast<std::uint32_t>(module);
  m.dst_module = static_cast<std::uint32_t>(dst_module);
  m.seq = ++seq_;
  m.tag = std::move(p.tag);
  m.data = std::move(p.data);
  return m;
}

std::error_code bus_endpoint::send(int module, const bus::target& to, bus::payload p) {
  auto m = addressed(module, to, std::move(p), ipc::bus_op::direct);
  if (!m) return m.error();
  return master_.send(ipc::encode(std::move(*m)));
}

task<result<bus::message>> bus_endpoint::request(int module, bus::target to, bus::payload p, duration timeout) {
  auto m = addressed(module, to, std::move(p), ipc::bus_op::request);
  if (!m) co_return m.error();
  auto id = ++next_request_;
  m->request = id;
  if (auto ec = master_.send(ipc::encode(std::move(*m)))) co_return ec;
  auto waiter = std::make_shared<channel<result<bus::message>>>(1);
  pending_[id] = waiter;
  auto r = co_await waiter->pop(timeout);
  pending_.erase(id);  // a late reply finds no waiter and is dropped
  if (!r) co_return r.error();
  co_return std::move(*r);
}

std::error_code bus_endpoint::reply(int module, const bus::message& req, bus::payload p) {
  if (!req.is_request() || req.replied_) return server_errc::not_supported;
  if (auto ec = check_size({}, p)) return ec;
  req.replied_ = true;
  ipc::bus_message m;
  m.op = ipc::bus_op::reply;
  m.src = static_cast<std::uint32_t>(process_);
  m.dst = static_cast<std::uint32_t>(req.sender);
  m.request = req.request_id;
  m.src_module = static_cast<std::uint32_t>(module);
  m.seq = ++seq_;
  m.tag = std::move(p.tag);
  m.data = std::move(p.data);
  return master_.send(ipc::encode(std::move(m)));
}

void bus_endpoint::answer(const bus::message& req, int module, ipc::bus_status st, std::string why) {
  req.replied_ = true;
  ipc::bus_message m;
  m.op = ipc::bus_op::reply;
  m.status = st;
  m.src = static_cast<std::uint32_t>(process_);
  m.dst = static_cast<std::uint32_t>(req.sender);
  m.request = req.request_id;
  m.src_module = static_cast<std::uint32_t>(module);
  m.data = std::move(why);
  (void)master_.send(ipc::encode(std::move(m)));
}

void bus_endpoint::note_invalid(const ipc::bus_message& m, const char* why) {
  auto n = slot_.bus_dropped_invalid.fetch_add(1, std::memory_order_relaxed) + 1;
  if (worth_logging(n))
    log::warning("bus: dropped a message for module {} from {} (tag \"{}\", {} bytes): {} [{} dropped so far]",
                 m.dst_module < app_.modules.size() ? app_.modules[m.dst_module].instance : std::string("?"),
                 m.src == ipc::no_worker ? std::string("the operator") : layout_.name(static_cast<int>(m.src)),
                 m.tag, m.data.size(), why, n);
}

void bus_endpoint::on_message(ipc::bus_message m) {
  if (m.op == ipc::bus_op::reply) {
    auto it = pending_.find(m.request);
    if (it == pending_.end()) {
      log::debug("bus: late reply to request {} dropped", m.request);
      return;
    }
    auto waiter = std::move(it->second);
    pending_.erase(it);
    switch (m.status) {
      case ipc::bus_status::ok: break;
      case ipc::bus_status::no_route: waiter->try_push(make_error_code(server_errc::no_route)); return;
      case ipc::bus_status::no_reply: waiter->try_push(make_error_code(server_errc::no_reply)); return;
      case ipc::bus_status::failed: waiter->try_push(make_error_code(server_errc::request_failed)); return;
    }
    bus::message r;
    r.kind = bus::kind::direct;
    r.tag = std::move(m.tag);
    r.data = std::move(m.data);
    r.sender = static_cast<int>(m.src);
    r.sender_module = m.src_module < app_.modules.size() ? app_.modules[m.src_module].instance : std::string();
    r.seq = m.seq;
    waiter->try_push(std::move(r));
    return;
  }
  if ((m.op == ipc::bus_op::direct || m.op == ipc::bus_op::request) && m.tag.starts_with("swactor.") &&
      host_.runtime_message(m))
    return;
  bus::message msg;
  msg.kind = m.op == ipc::bus_op::publish ? bus::kind::publish
             : m.op == ipc::bus_op::request ? bus::kind::request
                                            : bus::kind::direct;
  msg.sender = m.src == ipc::no_worker ? -1 : static_cast<int>(m.src);
  msg.sender_module = m.src_module < app_.modules.size() ? app_.modules[m.src_module].instance : std::string();
  msg.seq = m.seq;
  msg.request_id = m.request;
  int module = static_cast<int>(m.dst_module);
  auto* box = box_of(m.dst_module);
  if (!box) {
    note_invalid(m, "no such module instance in this process");
    if (msg.is_request()) answer(msg, module, ipc::bus_status::no_route, "no such module instance there");
    return;
  }
  if (!m.tag.empty()) {
    // Typed: the instance must accept the tag and the bytes must decode, before any handler
    // sees it. The decoded value travels with the message (as<T>() does not decode again).
    const auto& types = host_.bus_types(module);
    if (!types.knows(m.tag)) {
      note_invalid(m, "unknown tag");
      if (msg.is_request()) answer(msg, module, ipc::bus_status::failed, "unknown tag");
      return;
    }
    msg.decoded_ = types.decode(m.tag, m.data);
    if (!msg.decoded_) {
      note_invalid(m, "payload does not decode as its tag's type");
      if (msg.is_request()) answer(msg, module, ipc::bus_status::failed, "payload does not decode");
      return;
    }
  }
  msg.topic = std::move(m.topic);
  msg.tag = std::move(m.tag);
  msg.data = std::move(m.data);
  bool request = msg.is_request();
  auto sender = msg.sender;
  auto request_id = msg.request_id;
  if (!box->mail->try_push(std::move(msg))) {
    auto n = slot_.bus_dropped_full.fetch_add(1, std::memory_order_relaxed) + 1;
    if (worth_logging(n))
      log::warning("bus: mailbox of module {} is {}; message dropped [{} dropped so far]",
                   app_.modules[static_cast<std::size_t>(module)].instance,
                   closed_ ? "closed (stopping)" : "full (bus.mailbox_limit)", n);
    if (request) {
      bus::message stub;
      stub.kind = bus::kind::request;
      stub.sender = sender;
      stub.request_id = request_id;
      answer(stub, module, ipc::bus_status::failed, "mailbox full");
    }
  }
}

}  // namespace swactor::detail
