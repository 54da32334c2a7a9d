#include <utility>

#include "swactor/core/log.hpp"
#include "swactor/ipc/process.hpp"

namespace swactor::ipc {

// Shared with the supervisor coroutines, so they stay valid if the pool object goes away
// while the loop still runs.
struct process_pool::state {
  asio::any_io_executor ex;
  std::size_t n;
  process::body fn;
  pool_options opts;
  std::vector<std::shared_ptr<process>> procs;
  std::vector<std::uint64_t> restarts;
  std::function<void(std::size_t, exit_status)> on_exit;
  bool started = false;
  bool stopping = false;

  result<std::shared_ptr<process>> launch(std::size_t i) {
    auto po = opts.process;
    // A forked child would otherwise keep its siblings' channels open, and a sibling would
    // not see end-of-file when the parent goes away.
    for (std::size_t j = 0; j < procs.size(); ++j)
      if (j != i && procs[j])
        if (auto* c = procs[j]->channel(); c && c->native_handle() >= 0)
          po.close_in_child.push_back(c->native_handle());
    auto p = process::start(ex, fn, std::move(po), i);
    if (!p) return p.error();
    return std::make_shared<process>(std::move(*p));
  }
};

namespace {
task<void> supervise(std::shared_ptr<process_pool::state> s, std::size_t i) {
  for (;;) {
    auto p = s->procs[i];
    if (!p || s->stopping) co_return;
    auto st = co_await p->wait(no_timeout);
    if (s->stopping) co_return;
    if (!st) {
      log::error("ipc: pool child #{} wait failed: {}", i, st.error().message());
      co_return;
    }
    log::warning("ipc: pool child #{} (pid {}) ended: {}; restarting", i, p->pid(),
                 st->to_string());
    if (s->on_exit) s->on_exit(i, *st);
    for (;;) {
      co_await sleep(s->opts.restart_delay);
      if (s->stopping) co_return;
      auto np = s->launch(i);
      if (np) {
        s->procs[i] = std::move(*np);
        ++s->restarts[i];
        break;
      }
      log::error("ipc: pool child #{} restart failed: {}", i, np.error().message());
    }
  }
}
}  // namespace

process_pool::process_pool(asio::any_io_executor ex, std::size_t n, process::body fn,
                           pool_options opts)
    : s_(std::make_shared<state>()) {
  s_->ex = std::move(ex);
  s_->n = n;
  s_->fn = std::move(fn);
  s_->opts = std::move(opts);
  s_->procs.resize(n);
  s_->restarts.resize(n);
}

process_pool::~process_pool() {
  s_->stopping = true;
  // The supervisors wake up on the exits (if the loop runs again) and see `stopping`.
  for (auto& p : s_->procs)
    if (p) p->kill_and_reap();
}

std::error_code process_pool::start() {
  if (s_->started) return {};
  for (std::size_t i = 0; i < s_->n; ++i) {
    auto p = s_->launch(i);
    if (!p) {
      for (auto& q : s_->procs)
        if (q) q->kill_and_reap();
      return p.error();
    }
    s_->procs[i] = std::move(*p);
  }
  s_->started = true;
  for (std::size_t i = 0; i < s_->n; ++i) spawn(s_->ex, supervise(s_, i), "pool supervisor");
  return {};
}

task<void> process_pool::stop(duration grace) {
  auto s = s_;
  s->stopping = true;
  for (auto& p : s->procs)
    if (p && p->running()) p->kill(SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + grace;
  for (auto& p : s->procs) {
    if (!p || !p->running()) continue;
    auto left = deadline - std::chrono::steady_clock::now();
    if (left > duration::zero()) co_await p->wait(left);
    if (p->running()) p->kill_and_reap();
  }
}

std::size_t process_pool::size() const noexcept { return s_->n; }

pid_t process_pool::pid(std::size_t i) const noexcept {
  if (i >= s_->n || !s_->procs[i] || !s_->procs[i]->running()) return 0;
  return s_->procs[i]->pid();
}

std::uint64_t process_pool::restarts(std::size_t i) const noexcept {
  return i < s_->n ? s_->restarts[i] : 0;
}

void process_pool::on_exit(std::function<void(std::size_t, exit_status)> fn) {
  s_->on_exit = std::move(fn);
}

task<std::error_code> process_pool::send(std::size_t i, std::string_view msg, duration timeout) {
  if (i >= s_->n) co_return std::make_error_code(std::errc::invalid_argument);
  auto p = s_->procs[i];  // keeps this incarnation alive across the await
  if (!p || !p->running()) co_return make_error_code(shm_errc::not_running);
  co_return co_await p->send(msg, timeout);
}

task<result<std::string>> process_pool::recv(std::size_t i, duration timeout) {
  if (i >= s_->n) co_return std::make_error_code(std::errc::invalid_argument);
  auto p = s_->procs[i];
  if (!p || !p->running()) co_return make_error_code(shm_errc::not_running);
  co_return co_await p->recv(timeout);
}

std::error_code process_pool::kill(std::size_t i, int sig) {
  if (i >= s_->n || !s_->procs[i]) return make_error_code(shm_errc::not_running);
  return s_->procs[i]->kill(sig);
}

}  // namespace swactor::ipc
