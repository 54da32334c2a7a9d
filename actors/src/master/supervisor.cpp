#include "master/supervisor.hpp"

#include <signal.h>
#include <unistd.h>

#include <algorithm>

#include "swactor/actors/server.hpp"
#include "swactor/core/log.hpp"

namespace swactor::detail {

using namespace std::chrono_literals;

supervisor::supervisor(swactor::loop& lp, const app_config& app, server_state& state, spawn_plan plan,
                       process_messages& sink)
    : lp_(lp), app_(app), state_(state), layout_(app), plan_(std::move(plan)), sink_(sink) {
  slots_.resize(static_cast<std::size_t>(layout_.total()));
}

proc_handle* supervisor::current(int id) const {
  if (!layout_.valid(id)) return nullptr;
  return slots_[static_cast<std::size_t>(id)].current.get();
}

proc_handle* supervisor::process(int id, pid_t pid) const {
  if (auto* c = current(id); c && c->pid == pid) return c;
  for (const auto& [raw, weak] : handles_)
    if (raw->id == id && raw->pid == pid && !weak.expired()) return raw;
  return nullptr;
}

std::weak_ptr<proc_handle> supervisor::handle_of(proc_handle* h) const {
  auto it = handles_.find(h);
  return it == handles_.end() ? std::weak_ptr<proc_handle>() : it->second;
}

pid_t supervisor::pid_of(int id) const {
  auto* h = current(id);
  return h ? h->pid : 0;
}

void supervisor::start_all() {
  for (int id = 0; id < layout_.total(); ++id) slots_[static_cast<std::size_t>(id)].current = spawn_proc(id);
}

std::shared_ptr<proc_handle> supervisor::spawn_proc(int id) {
  if (stopping_) return nullptr;  // a reload or a restart racing the stop starts nothing
  auto h = std::make_shared<proc_handle>();
  h->id = id;
  auto pair = ipc::socket_pair();
  if (!pair) {
    log::error("socketpair for {}: {}", layout_.name(id), pair.error().message());
    return nullptr;
  }
  auto [mine, theirs] = *pair;
  worker_args wa;
  wa.role = layout_.role_of(id);
  wa.id = id;
  wa.ipc_fd = theirs;
  wa.config_fd = plan_.config_fd;
  wa.state_fd = plan_.state_fd;
  wa.table_fds = plan_.table_fds;
  wa.config_name = plan_.config_name;
  bool serves = wa.role == proc_role::worker;
  if (serves && !app_.process_mode()) wa.listen_fds = plan_.listen_fds;
  if (serves && app_.process_mode() && plan_.reactor_links) wa.reactor_fds = plan_.reactor_links(id);
  ipc::process_options po;
  po.channel = false;
  po.inherit_fds = wa.inherited_fds();
  po.die_with_parent = true;
  po.kill_on_destroy = true;
  auto p = ipc::process::exec(lp_.context().get_executor(), wa.to_argv(plan_.exe), po);
  ::close(theirs);
  for (int fd : wa.reactor_fds) ::close(fd);
  // Each reactor swaps in the new link; the old process keeps its own until it exits.
  if (serves && app_.process_mode() && plan_.reactor_links_done) plan_.reactor_links_done(id, static_cast<bool>(p));
  if (!p) {
    ::close(mine);
    log::error("cannot start {}: {}", layout_.name(id), p.error().message());
    return nullptr;
  }
  h->pid = p->pid();
  h->proc.emplace(std::move(*p));
  handles_[h.get()] = h;
  ipc::link_options lo;
  lo.name = layout_.name(id);
  auto l = ipc::link::from_fd(lp_.context().get_executor(), mine, lo);
  if (l) h->link.emplace(std::move(*l));
  state_.procs[id].pid.store(h->pid);
  log::info("started {} (pid {})", layout_.name(id), h->pid);
  spawn(lp_.context(), [this, h]() -> task<void> { co_await read_link(h); }, "ipc link");
  watchers_.add();
  spawn(lp_.context(), [this, h]() -> task<void> { co_await watch(h); }, "supervisor");
  return h;
}

task<void> supervisor::read_link(std::shared_ptr<proc_handle> h) {
  if (!h->link) co_return;
  for (;;) {
    auto r = co_await h->link->receive();
    if (!r) co_return;
    auto m = ipc::decode(std::move(*r));
    if (!m) {
      log::warning("dropped a message from {}: {}", layout_.name(h->id), m.error().message());
      continue;
    }
    if (std::holds_alternative<ipc::ready>(*m)) {
      h->ready.done();
      continue;
    }
    sink_.on_process_message(*h, std::move(*m));
  }
}

task<void> supervisor::watch(std::shared_ptr<proc_handle> h) {
  auto st = co_await h->proc->wait();
  // Cancelled: the supervisor (and the process object with it) is being destroyed at the
  // master's exit, so `this` may be gone already.
  if (!st && st.error() == asio::error::operation_aborted) co_return;
  handles_.erase(h.get());
  auto& sl = slots_[static_cast<std::size_t>(h->id)];
  std::string status = st ? st->to_string() : st.error().message();
  bool crashed = !st || !st->success();
  if (h->link) h->link->close();
  release_connections(*h);
  if (h->ready.count() > 0) h->ready.done();  // a reload waiting for it to be ready stops waiting
  sink_.on_process_exit(*h);
  if (h->retiring || stopping_) {
    // A leaving process is not restarted, but a crash on its way out is still worth a look.
    if (crashed)
      log::warning("{} (pid {}) finished: {}", layout_.name(h->id), h->pid, status);
    else
      log::info("{} (pid {}) finished: {}", layout_.name(h->id), h->pid, status);
    watchers_.done();
    co_return;
  }
  if (sl.current != h) {
    watchers_.done();  // explicit, not a guard: a frame destroyed unresumed must not touch this
    co_return;
  }
  auto lived = std::chrono::steady_clock::now() - h->started;
  duration delay = 0ms;
  if (crashed) {
    // A process that dies soon after start is probably crashing in a loop: back off.
    sl.crash_streak = lived < 2s ? sl.crash_streak + 1 : 0;
    if (sl.crash_streak > 0)
      delay = std::min<duration>(100ms * (1 << std::min(sl.crash_streak - 1, 10)), app_.server.restart_backoff_max);
    log::warning("{} (pid {}) exited unexpectedly: {}; restarting in {} ms", layout_.name(h->id), h->pid, status,
                 std::chrono::duration_cast<std::chrono::milliseconds>(delay).count());
  } else {
    sl.crash_streak = 0;
    log::info("{} (pid {}) exited: {}; starting a new one", layout_.name(h->id), h->pid, status);
  }
  // The back-off ends early when the server stops (stop_all() waits for this watch).
  if (delay > 0ms) (void)co_await stopped_.wait(delay);
  watchers_.done();
  if (stopping_ || sl.current != h) co_return;
  state_.procs[h->id].restarts.fetch_add(1);
  sl.current = spawn_proc(h->id);
}

// A base-mode worker that died (kill -9, crash) never closed its connections: the kernel did.
// Take them off the listener counters so connection_num and max_connections stay true.
void supervisor::release_connections(proc_handle& h) {
  // Its sessions leave the registry whether or not it still owned the slot (a retiring
  // process holds connections too): ctx.exists() must not see them any more.
  state_.purge_sessions(h.pid);
  auto& slot = state_.procs[h.id];
  // Only the registered process of the slot owns its counters (a retiring one does not).
  if (slot.pid.load() != h.pid) return;
  std::int64_t total = 0;
  for (std::size_t i = 0; i < app_.listen.size(); ++i) {
    auto n = slot.conns.listener_open[i].exchange(0);
    if (n <= 0) continue;
    state_.listeners[i].connections.fetch_sub(n);
    total += n;
  }
  slot.conns.open.store(0);
  if (total > 0) {
    slot.conns.closed.fetch_add(static_cast<std::uint64_t>(total));
    slot.conns.aborted.fetch_add(static_cast<std::uint64_t>(total));
    log::info("{} (pid {}) left {} connection(s) open; released", layout_.name(h.id), h.pid, total);
  }
}

task<void> supervisor::reload(bool tasks_only) {
  ++last_reload_.seq;
  last_reload_.error.clear();
  last_reload_.replaced = 0;
  if (stopping_) {
    last_reload_.state = "ignored";
    last_reload_.error = "the server is stopping";
    co_return;
  }
  if (reloading_) {
    log::notice("a reload is already running; ignored");
    last_reload_.state = "ignored";
    last_reload_.error = "a reload is already running";
    co_return;
  }
  reloading_ = true;
  jobs_.add();  // stop_all() waits for this reload (explicit done(): no guard, see watch())
  last_reload_.state = "checking";
  log::notice("reloading {}", tasks_only ? "task workers" : "workers and task workers");
  auto why = co_await check_new_code();
  if (stopping_) {
    last_reload_.state = "ignored";
    last_reload_.error = "the server is stopping";
    reloading_ = false;
    jobs_.done();
    co_return;
  }
  if (!why.empty()) {
    log::error("reload refused, the running processes keep serving: a new one would fail to start: {}", why);
    last_reload_.state = "refused";
    last_reload_.error = "a new process would fail to start: " + why;
    reloading_ = false;
    jobs_.done();
    co_return;
  }
  last_reload_.state = "reloading";
  const auto seq = last_reload_.seq;
  std::vector<std::shared_ptr<proc_handle>> olds, news;
  int first = tasks_only ? layout_.first_task() : 0;
  // User processes are not reloaded (as in Swoole): they restart only when they exit.
  for (int id = first; id < layout_.first_user(); ++id) {
    auto& sl = slots_[static_cast<std::size_t>(id)];
    auto old = sl.current;
    auto fresh = spawn_proc(id);
    if (!fresh) continue;
    sl.current = fresh;
    sl.crash_streak = 0;
    news.push_back(fresh);
    if (old) olds.push_back(old);
  }
  // Replacements serve before the old processes stop taking work.
  for (auto& n : news) (void)co_await n->ready.wait(std::max<duration>(app_.server.max_wait_time, 5s));
  // (A stop meanwhile: stop_all() stops the old processes with every other one.)
  for (auto& o : olds) {
    o->retiring = true;
    if (!o->link || o->link->send(ipc::encode(ipc::stop{"reload"}))) o->proc->kill(SIGTERM);
  }
  for (auto& o : olds) {
    auto st = co_await o->proc->wait(app_.server.max_wait_time + 500ms);
    if (!st) {
      log::warning("{} (pid {}) did not finish within max_wait_time; killing it", layout_.name(o->id), o->pid);
      o->proc->kill(SIGKILL);
    }
  }
  if (stopping_) {
    log::notice("reload ended by the stop");
    if (last_reload_.seq == seq) {
      last_reload_.state = "ignored";
      last_reload_.error = "the server is stopping";
    }
  } else {
    log::notice("reload done ({} process(es) replaced)", news.size());
    if (last_reload_.seq == seq) {
      last_reload_.state = "done";
      last_reload_.replaced = news.size();
    }
  }
  reloading_ = false;
  jobs_.done();
}

// New processes are exec'd, so they load plugin libraries as they are on disk at that moment;
// the master's own copy is the one of its start (a loaded library cannot be reloaded in a
// process). So a short-lived `swactor worker-check` does what a new worker would do first,
// and a plugin that fails there refuses the reload instead of replacing serving processes
// with ones that crash at start.
task<std::string> supervisor::check_new_code() {
  ipc::process_options po;
  po.pipe_stdout = true;
  po.stderr_to_stdout = true;
  po.channel = false;
  po.inherit_fds = {plan_.config_fd};
  po.die_with_parent = true;
  po.kill_on_destroy = true;
  auto p = ipc::process::exec(lp_.context().get_executor(),
                              {plan_.exe, "worker-check", "--config-fd", std::to_string(plan_.config_fd),
                               "--config-name", plan_.config_name},
                              po);
  if (!p) co_return "cannot start " + plan_.exe + ": " + p.error().message();
  constexpr auto limit = 10s;
  check_proc_ = &*p;  // stop_all() ends it rather than wait up to 10 s
  auto out = co_await p->read_all(limit);
  auto st = co_await p->wait(limit);
  check_proc_ = nullptr;
  if (!st) {
    p->kill_and_reap();
    co_return "the check (" + plan_.exe + " worker-check) did not finish within 10 s";
  }
  if (st->success()) co_return std::string();
  std::string text = out ? *out : std::string();
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  for (auto& c : text)
    if (c == '\n') c = ';';
  co_return text.empty() ? "the check exited with " + st->to_string() : text;
}

task<void> supervisor::stop_all() {
  stopping_ = true;
  (void)stopped_.done();  // restart back-offs end now
  if (check_proc_) (void)check_proc_->kill(SIGKILL);  // a reload's check: the reload then ends
  // Every live process: the slots' current ones, and those a reload is replacing.
  std::vector<std::shared_ptr<proc_handle>> all;
  for (auto& [raw, weak] : handles_)
    if (auto h = weak.lock()) all.push_back(std::move(h));
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a->id < b->id; });
  for (auto& h : all)
    if (!h->link || !h->link->is_open() || h->link->send(ipc::encode(ipc::stop{"server stopping"})))
      h->proc->kill(SIGTERM);
  for (auto& h : all) {
    if (!h->proc || !h->proc->running()) continue;
    auto st = co_await h->proc->wait(app_.server.max_wait_time + 500ms);
    if (!st) {
      log::warning("{} (pid {}) did not stop within max_wait_time; killing it", layout_.name(h->id), h->pid);
      h->proc->kill(SIGKILL);
      (void)co_await h->proc->wait(2s);
    }
  }
  // A reload in progress, and each process's own watch, still have steps to take (their
  // wakeups may be queued behind ours): the master's exit must not destroy the supervisor
  // under them.
  (void)co_await jobs_.wait(2s);
  (void)co_await watchers_.wait(1s);
}

}  // namespace swactor::detail
