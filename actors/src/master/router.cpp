#include "master/router.hpp"

#include "swactor/core/log.hpp"

namespace swactor::detail {

bool router::alive(int id) const {
  auto* h = sup_->current(id);
  return h && h->link && h->link->is_open();
}

void router::on_process_message(proc_handle& from, ipc::any_message m) {
  std::visit([&](auto& v) {
    using T = std::decay_t<decltype(v)>;
    if constexpr (std::is_same_v<T, ipc::task_request>) {
      route_task(from, std::move(v));
    } else if constexpr (std::is_same_v<T, ipc::task_result>) {
      route_result(std::move(v));
    } else if constexpr (std::is_same_v<T, ipc::pipe_message>) {
      route_pipe(from, std::move(v));
    } else if constexpr (std::is_same_v<T, ipc::bus_message>) {
      bus_.on_message(from, std::move(v));
    } else if constexpr (std::is_same_v<T, ipc::bus_subscription>) {
      bus_.on_subscription(from, v);
    } else {
      log::warning("unexpected {} message from {}; dropped", ipc::kind_name(m), layout_.name(from.id));
    }
  }, m);
}

void router::route_pipe(proc_handle& from, ipc::pipe_message p) {
  auto dst = static_cast<int>(p.dst);
  if (!alive(dst)) {
    log::warning("pipe message from {} to unknown or stopped process {} dropped", layout_.name(from.id), p.dst);
    return;
  }
  (void)sup_->current(dst)->link->send(ipc::encode(std::move(p)));
}

void router::route_task(proc_handle& from, ipc::task_request t) {
  int n = layout_.task_workers();
  int chosen = -1;
  if (t.dst != ipc::no_worker) {
    int id = static_cast<int>(t.dst);
    chosen = layout_.valid(id) && layout_.role_of(id) == proc_role::task ? layout_.index_of(id) : -1;
  } else {
    // Least loaded task worker, round-robin among equals (Swoole's task_ipc_mode idle).
    int best_load = 0;
    for (int k = 0; k < n; ++k) {
      int i = (task_rr_ + k) % n;
      if (!alive(layout_.id_of(proc_role::task, i))) continue;
      if (chosen < 0 || task_load_[static_cast<std::size_t>(i)] < best_load) {
        chosen = i;
        best_load = task_load_[static_cast<std::size_t>(i)];
      }
    }
    task_rr_ = (task_rr_ + 1) % std::max(n, 1);
  }
  auto fail = [&](const std::string& why) {
    ipc::task_result r;
    r.task = t.task;
    r.dst = t.src;
    r.module = t.module;
    r.failed = true;
    r.payload = why;
    if (from.link) (void)from.link->send(ipc::encode(std::move(r)));
  };
  if (chosen < 0 || chosen >= n) return fail("no task worker available");
  int tw = layout_.id_of(proc_role::task, chosen);
  auto* target = sup_->current(tw);
  if (!target || !target->link) return fail("task worker is not running");
  // The origin may be a retiring process (a reload in progress): its result still goes
  // back to it, not to its replacement.
  auto origin = sup_->handle_of(&from);
  if (origin.expired()) return fail("worker is gone");
  auto rid = ++next_route_;
  routes_[rid] = route{origin, t.task, tw, target};
  ++task_load_[static_cast<std::size_t>(chosen)];
  state_.tasks_started.fetch_add(1, std::memory_order_relaxed);
  state_.tasks_in_flight.fetch_add(1, std::memory_order_relaxed);
  auto original_task = t.task;
  t.task = rid;
  if (auto ec = target->link->send(ipc::encode(std::move(t)))) {
    routes_.erase(rid);
    --task_load_[static_cast<std::size_t>(chosen)];
    state_.tasks_in_flight.fetch_sub(1, std::memory_order_relaxed);
    ipc::task_result r;
    r.task = original_task;
    r.failed = true;
    r.payload = "cannot reach the task worker: " + ec.message();
    if (from.link) (void)from.link->send(ipc::encode(std::move(r)));
  }
}

void router::route_result(ipc::task_result r) {
  auto it = routes_.find(r.task);
  if (it == routes_.end()) return;
  auto rt = it->second;
  routes_.erase(it);
  --task_load_[static_cast<std::size_t>(layout_.index_of(rt.task_worker))];
  state_.tasks_done.fetch_add(1, std::memory_order_relaxed);
  state_.tasks_in_flight.fetch_sub(1, std::memory_order_relaxed);
  if (auto origin = rt.origin.lock(); origin && origin->link) {
    r.task = rt.origin_task;
    (void)origin->link->send(ipc::encode(std::move(r)));
  }
}

void router::on_process_exit(proc_handle& h) {
  bus_.on_process_exit(h);
  if (layout_.role_of(h.id) != proc_role::task) return;
  std::vector<std::uint64_t> lost;
  for (const auto& [rid, rt] : routes_)
    if (rt.target == &h) lost.push_back(rid);
  for (auto rid : lost) {
    ipc::task_result r;
    r.task = rid;
    r.failed = true;
    r.payload = "task worker exited";
    route_result(std::move(r));
  }
}

}  // namespace swactor::detail
