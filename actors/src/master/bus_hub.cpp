#include "master/bus_hub.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "swactor/actors/bus.hpp"
#include "swactor/core/log.hpp"

namespace swactor::detail {

namespace {
bool has_wildcard(const std::string& p) {
  return p == "*" || p == ">" || p.starts_with("*.") || p.find(".*") != std::string::npos ||
         p.find(".>") != std::string::npos;
}
}  // namespace

void bus_hub::add_sub(sub s) {
  auto& list = has_wildcard(s.pattern) ? wild_ : exact_[s.pattern];
  for (const auto& e : list)
    if (e.handle == s.handle && e.module == s.module && e.pattern == s.pattern) return;
  list.push_back(std::move(s));
}

void bus_hub::remove_subs(const proc_handle* h) {
  auto gone = [h](const sub& s) { return s.handle == h; };
  std::erase_if(wild_, gone);
  for (auto it = exact_.begin(); it != exact_.end();) {
    std::erase_if(it->second, gone);
    it = it->second.empty() ? exact_.erase(it) : std::next(it);
  }
}

void bus_hub::on_subscription(proc_handle& from, const ipc::bus_subscription& s) {
  // A subscription read from the link after the process exited must not outlive it.
  if (sup_->handle_of(&from).expired()) return;
  if (s.module >= app_.modules.size() || !bus::valid_pattern(s.pattern)) {
    log::warning("bus: bad subscription from {} (module #{}, pattern \"{}\"); ignored", layout_.name(from.id),
                 s.module, s.pattern);
    return;
  }
  // A process replacing this id (reload, restart) takes over: the retiring one's instances
  // get nothing more, so no message is handled twice by the two generations.
  std::vector<const proc_handle*> older;
  auto collect = [&](const sub& e) {
    if (e.process == from.id && e.handle != &from &&
        std::find(older.begin(), older.end(), e.handle) == older.end())
      older.push_back(e.handle);
  };
  for (const auto& e : wild_) collect(e);
  for (const auto& [_, list] : exact_)
    for (const auto& e : list) collect(e);
  for (auto* h : older) remove_subs(h);

  if (s.subscribe) {
    add_sub({&from, from.id, s.module, s.pattern});
    return;
  }
  auto same = [&](const sub& e) { return e.handle == &from && e.module == s.module && e.pattern == s.pattern; };
  if (auto it = exact_.find(s.pattern); it != exact_.end()) {
    std::erase_if(it->second, same);
    if (it->second.empty()) exact_.erase(it);
  }
  std::erase_if(wild_, same);
}

void bus_hub::on_message(proc_handle& from, ipc::bus_message m) {
  m.src = static_cast<std::uint32_t>(from.id);
  switch (m.op) {
    case ipc::bus_op::publish: return publish(&from, std::move(m));
    case ipc::bus_op::direct:
    case ipc::bus_op::request: return direct(from, std::move(m));
    case ipc::bus_op::reply: return reply(std::move(m));
  }
}

std::size_t bus_hub::publish_from_operator(const std::string& topic, std::string data) {
  ipc::bus_message m;
  m.op = ipc::bus_op::publish;
  m.topic = topic;
  m.data = std::move(data);
  auto before = delivered_;
  publish(nullptr, std::move(m));
  return static_cast<std::size_t>(delivered_ - before);
}

bus_hub::counters& bus_hub::topic_counters(const std::string& topic) {
  if (auto it = topics_.find(topic); it != topics_.end()) return it->second;
  if (static_cast<std::int64_t>(topics_.size()) >= app_.bus.max_stats_topics) return other_topics_;
  return topics_[topic];
}

bool bus_hub::deliver(proc_handle& to, ipc::bus_message m) {
  if (!to.link || !to.link->is_open()) {
    ++dropped_link_;
    return false;
  }
  if (auto ec = to.link->send(ipc::encode(std::move(m)))) {
    ++dropped_link_;
    log::warning("bus: message for {} dropped: {}", layout_.name(to.id), ec.message());
    return false;
  }
  ++delivered_;
  return true;
}

void bus_hub::publish(proc_handle* from, ipc::bus_message m) {
  if (!bus::valid_topic(m.topic)) {
    log::warning("bus: publish to invalid topic \"{}\" from {}; dropped", m.topic,
                 from ? layout_.name(from->id) : std::string("the operator"));
    return;
  }
  ++published_;
  auto& tc = topic_counters(m.topic);
  ++tc.published;
  // Each (process, instance) once, even when several of its patterns match.
  std::vector<std::pair<proc_handle*, std::uint32_t>> targets;
  auto consider = [&](const sub& s) {
    if (!m.self && s.handle == from && s.module == m.src_module) return;
    std::pair<proc_handle*, std::uint32_t> t{s.handle, s.module};
    if (std::find(targets.begin(), targets.end(), t) == targets.end()) targets.push_back(t);
  };
  if (auto it = exact_.find(m.topic); it != exact_.end())
    for (const auto& s : it->second) consider(s);
  for (const auto& s : wild_)
    if (bus::matches(s.pattern, m.topic)) consider(s);
  if (targets.empty()) {
    ++no_subscriber_;
    return;
  }
  for (std::size_t i = 0; i < targets.size(); ++i) {
    auto [h, mod] = targets[i];
    // The last one takes the message; the others get a copy.
    ipc::bus_message copy = i + 1 == targets.size() ? std::move(m) : m;
    copy.dst = static_cast<std::uint32_t>(h->id);
    copy.dst_module = mod;
    if (deliver(*h, std::move(copy))) {
      ++tc.delivered;
      ++delivered_to_[{h->id, mod}];
    }
  }
}

proc_handle* bus_hub::pick_worker(std::uint32_t module, std::uint8_t pick) {
  int n = layout_.workers();
  auto& rr = rr_[module];
  proc_handle* best = nullptr;
  std::uint32_t best_load = 0;
  int best_k = 0;
  for (int k = 0; k < n; ++k) {
    int id = static_cast<int>((rr + static_cast<std::uint32_t>(k)) % static_cast<std::uint32_t>(n));
    auto* h = sup_->current(id);
    if (!h || !h->link || !h->link->is_open()) continue;
    if (pick == 0) {
      best = h;
      best_k = k;
      break;
    }
    auto load = state_.procs[id].in_flight.load(std::memory_order_relaxed);
    if (!best || load < best_load) {
      best = h;
      best_load = load;
      best_k = k;
    }
  }
  if (best) rr = (rr + static_cast<std::uint32_t>(best_k) + 1) % static_cast<std::uint32_t>(n);
  return best;
}

void bus_hub::answer(proc_handle& to, std::uint64_t request, std::uint32_t module, ipc::bus_status st,
                     std::string why) {
  ipc::bus_message r;
  r.op = ipc::bus_op::reply;
  r.status = st;
  r.request = request;
  r.dst = static_cast<std::uint32_t>(to.id);
  r.dst_module = module;
  r.data = std::move(why);
  if (to.link && to.link->is_open()) (void)to.link->send(ipc::encode(std::move(r)));
}

void bus_hub::direct(proc_handle& from, ipc::bus_message m) {
  bool is_request = m.op == ipc::bus_op::request;
  auto refuse = [&](const char* why) {
    ++dropped_no_route_;
    if (is_request) answer(from, m.request, m.src_module, ipc::bus_status::no_route, why);
  };
  if (m.dst_module >= app_.modules.size()) return refuse("no such module instance");
  proc_handle* to = nullptr;
  if (m.dst == ipc::no_worker) {
    to = pick_worker(m.dst_module, m.pick);
  } else if (layout_.valid(static_cast<int>(m.dst))) {
    // A given pid: that process, also while it retires (it holds what the message is about);
    // gone, the id's current process answers for it (it knows nothing of it: "gone").
    if (m.dst_pid != 0) to = sup_->process(static_cast<int>(m.dst), static_cast<pid_t>(m.dst_pid));
    if (!to) to = sup_->current(static_cast<int>(m.dst));
    if (to && (!to->link || !to->link->is_open())) to = nullptr;
  }
  if (!to) return refuse("no running process for the target");
  m.dst = static_cast<std::uint32_t>(to->id);
  if (!is_request) {
    (void)deliver(*to, std::move(m));
    return;
  }
  ++requests_;
  // The reply finds the asking process through this route, even if it is retiring.
  auto origin = sup_->handle_of(&from);
  auto rid = ++next_route_;
  routes_[rid] = route{origin, m.request, m.src_module, to};
  auto original = m.request;
  m.request = rid;
  if (!deliver(*to, std::move(m))) {
    routes_.erase(rid);
    answer(from, original, m.src_module, ipc::bus_status::no_route, "cannot reach the target process");
  }
}

void bus_hub::reply(ipc::bus_message m) {
  auto it = routes_.find(m.request);
  if (it == routes_.end()) return;  // the asker is gone
  auto rt = it->second;
  routes_.erase(it);
  auto origin = rt.origin.lock();
  if (!origin || !origin->link || !origin->link->is_open()) return;
  ++replies_;
  m.request = rt.origin_request;
  m.dst = static_cast<std::uint32_t>(origin->id);
  m.dst_module = rt.origin_module;
  (void)origin->link->send(ipc::encode(std::move(m)));
}

void bus_hub::on_process_exit(proc_handle& h) {
  remove_subs(&h);
  std::vector<std::uint64_t> lost;
  for (const auto& [rid, rt] : routes_)
    if (rt.target == &h) lost.push_back(rid);
  for (auto rid : lost) {
    auto rt = routes_[rid];
    routes_.erase(rid);
    if (auto origin = rt.origin.lock())
      answer(*origin, rt.origin_request, rt.origin_module, ipc::bus_status::failed,
             "the process handling the request exited");
  }
  // Routes from this process: their replies have nowhere to go.
  std::erase_if(routes_, [&](const auto& kv) {
    auto o = kv.second.origin.lock();
    return !o || o.get() == &h;
  });
}

nlohmann::json bus_hub::stats() const {
  nlohmann::json j;
  std::uint64_t full = 0, invalid = 0;
  nlohmann::json procs = nlohmann::json::array();
  for (int id = 0; id < layout_.total(); ++id) {
    const auto& p = state_.procs[id];
    auto f = p.bus_dropped_full.load(), b = p.bus_dropped_invalid.load();
    full += f;
    invalid += b;
    procs.push_back({{"id", id},
                     {"name", layout_.name(id)},
                     {"handled", p.bus_handled.load()},
                     {"dropped_mailbox_full", f},
                     {"dropped_invalid", b}});
  }
  j["published"] = published_;
  j["delivered"] = delivered_;
  j["requests"] = requests_;
  j["replies"] = replies_;
  j["no_subscriber"] = no_subscriber_;
  j["dropped"] = dropped_no_route_ + dropped_link_ + full + invalid;
  j["dropped_by_reason"] = {{"no_route", dropped_no_route_},
                            {"link", dropped_link_},
                            {"mailbox_full", full},
                            {"invalid", invalid}};
  j["processes"] = procs;
  nlohmann::json subs = nlohmann::json::array();
  auto add = [&](const sub& s) {
    subs.push_back({{"process", s.process},
                    {"pid", s.handle->pid},
                    {"name", layout_.name(s.process)},
                    {"module", app_.modules[s.module].instance},
                    {"pattern", s.pattern}});
  };
  for (const auto& [_, list] : exact_)
    for (const auto& s : list) add(s);
  for (const auto& s : wild_) add(s);
  j["subscriptions"] = subs;
  nlohmann::json per = nlohmann::json::array();
  for (const auto& [key, n] : delivered_to_)
    per.push_back({{"process", key.first},
                   {"name", layout_.name(key.first)},
                   {"module", key.second < app_.modules.size() ? app_.modules[key.second].instance : "?"},
                   {"delivered", n}});
  j["delivered_per_subscriber"] = per;
  nlohmann::json topics = nlohmann::json::object();
  for (const auto& [t, c] : topics_) topics[t] = {{"published", c.published}, {"delivered", c.delivered}};
  if (other_topics_.published)
    topics["(other)"] = {{"published", other_topics_.published}, {"delivered", other_topics_.delivered}};
  j["topics"] = topics;
  return j;
}

}  // namespace swactor::detail
