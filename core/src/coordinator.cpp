#include "coordinator.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <system_error>

#include <asio/post.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/send.hpp>
#include <caf/scheduled_actor.hpp>

namespace swactor::detail {
namespace {
// More than one loop with actors in this process: messages may cross loops, so a
// resumable must be routed to its home loop instead of the sender's.
std::atomic<int> live_coordinators{0};
}  // namespace

// -- remote_inbox ----------------------------------------------------------------------

remote_inbox::remote_inbox(asio::io_context& ctx) : fd_(ctx) {
  int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  fd_.assign(fd);
  arm();
}

remote_inbox::~remote_inbox() {
  std::error_code ec;
  fd_.close(ec);
}

void remote_inbox::post(std::function<void()> f) {
  bool first = false;
  {
    std::lock_guard lock(mu_);
    first = items_.empty();
    items_.push_back(std::move(f));
  }
  if (first) {
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(fd_.native_handle(), &one, sizeof one);
  }
}

void remote_inbox::arm() {
  fd_.async_wait(asio::posix::stream_descriptor::wait_read, [this](std::error_code ec) {
    if (ec) return;  // closed
    std::uint64_t count = 0;
    [[maybe_unused]] auto n = ::read(fd_.native_handle(), &count, sizeof count);
    std::vector<std::function<void()>> batch;
    {
      std::lock_guard lock(mu_);
      batch.swap(items_);
    }
    arm();
    for (auto& f : batch) f();
  });
}

// -- loop_clock ------------------------------------------------------------------------

template <class F>
void loop_clock::on_loop(F&& f) {
  // The schedule is not thread-safe: mutate it on the loop thread only.
  if (ctx_.get_executor().running_in_this_thread() || ctx_.stopped()) {
    f();
    rearm();
  } else {
    post_from_outside(ctx_, inbox_, [this, f = std::forward<F>(f)]() mutable {
      f();
      rearm();
    });
  }
}

void loop_clock::rearm() {
  if (schedule_.empty()) {
    if (armed_) {
      timer_.cancel();
      armed_ = false;
    }
    return;
  }
  auto due = schedule_.begin()->first;
  if (armed_ && due == armed_due_) return;
  armed_ = true;
  armed_due_ = due;
  timer_.expires_at(due);
  timer_.async_wait([this](std::error_code ec) {
    if (ec == asio::error::operation_aborted) return;
    armed_ = false;
    trigger_expired_timeouts();
    rearm();
  });
}

void loop_clock::set_ordinary_timeout(time_point t, caf::abstract_actor* self,
                                      caf::atom_value type, uint64_t id) {
  on_loop([=, this] { super::set_ordinary_timeout(t, self, type, id); });
}
void loop_clock::set_multi_timeout(time_point t, caf::abstract_actor* self, caf::atom_value type,
                                   uint64_t id) {
  on_loop([=, this] { super::set_multi_timeout(t, self, type, id); });
}
void loop_clock::set_request_timeout(time_point t, caf::abstract_actor* self,
                                     caf::message_id id) {
  on_loop([=, this] { super::set_request_timeout(t, self, id); });
}
void loop_clock::cancel_ordinary_timeout(caf::abstract_actor* self, caf::atom_value type) {
  on_loop([=, this] { super::cancel_ordinary_timeout(self, type); });
}
void loop_clock::cancel_request_timeout(caf::abstract_actor* self, caf::message_id id) {
  on_loop([=, this] { super::cancel_request_timeout(self, id); });
}
void loop_clock::cancel_timeouts(caf::abstract_actor* self) {
  on_loop([=, this] { super::cancel_timeouts(self); });
}
void loop_clock::schedule_message(time_point t, caf::strong_actor_ptr receiver,
                                  caf::mailbox_element_ptr content) {
  // mailbox_element_ptr is move-only; wrap it so the posted handler stays copyable.
  auto holder = std::make_shared<caf::mailbox_element_ptr>(std::move(content));
  on_loop([this, t, receiver = std::move(receiver), holder]() mutable {
    super::schedule_message(t, std::move(receiver), std::move(*holder));
  });
}
void loop_clock::schedule_message(time_point t, caf::group target, caf::strong_actor_ptr sender,
                                  caf::message content) {
  on_loop([this, t, target = std::move(target), sender = std::move(sender),
           content = std::move(content)]() mutable {
    super::schedule_message(t, std::move(target), std::move(sender), std::move(content));
  });
}
void loop_clock::cancel_all() {
  super::cancel_all();
  if (armed_) {
    timer_.cancel();
    armed_ = false;
  }
}

// -- loop_coordinator --------------------------------------------------------------------

void loop_unit::exec_later(caf::resumable* ptr) {
  if (live_coordinators.load(std::memory_order_relaxed) > 1 &&
      ptr->subtype() == caf::resumable::scheduled_actor) {
    // The one explicit cross-thread hop: an actor always runs on its home loop.
    auto* actor = static_cast<caf::scheduled_actor*>(ptr);
    actor->home_system().scheduler().enqueue(ptr);
    return;
  }
  owner_->enqueue(ptr);
}

loop_coordinator::loop_coordinator(caf::actor_system& sys, asio::io_context& ctx, remote_inbox* inbox)
    : caf::scheduler::abstract_coordinator(sys), ctx_(ctx), inbox_(inbox), clock_(ctx, inbox), unit_(&sys, this) {
  live_coordinators.fetch_add(1);
}

loop_coordinator::~loop_coordinator() { live_coordinators.fetch_sub(1); }

void loop_coordinator::init(caf::actor_system_config& cfg) {
  abstract_coordinator::init(cfg);
  num_workers_ = 1;
}

void loop_coordinator::start() { abstract_coordinator::start(); }

void loop_coordinator::stop() {
  // Let the printer (our only utility actor) see its exit message, then drop timeouts.
  for (auto& a : utility_actors_)
    if (a) caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  ctx_.restart();
  for (int i = 0; i < 64; ++i)
    if (ctx_.poll() == 0) break;
  clock_.cancel_all();
}

void loop_coordinator::enqueue(caf::resumable* ptr) {
  if (ctx_.get_executor().running_in_this_thread()) {
    schedule_local(ptr);
  } else {
    // From another thread (another loop, CAF's own, or before run()).
    post_from_outside(ctx_, inbox_, [this, ptr] { schedule_local(ptr); });
  }
}

void loop_coordinator::schedule_local(caf::resumable* ptr) {
  ready_.push_back(ptr);
  if (!drain_posted_) {
    drain_posted_ = true;
    asio::post(ctx_, [this] { drain(); });
  }
}

void loop_coordinator::drain() {
  // drain_posted_ stays true while we run, so actors woken meanwhile join this batch
  // instead of posting again. The budget bounds the batch so I/O handlers and coroutines
  // get their turn between batches.
  constexpr int kBudget = 1024;
  for (int i = 0; i < kBudget && !ready_.empty(); ++i) {
    auto* ptr = ready_.front();
    ready_.pop_front();
    resume(ptr);
  }
  if (ready_.empty()) {
    drain_posted_ = false;
  } else {
    asio::post(ctx_, [this] { drain(); });
  }
}

void loop_coordinator::resume(caf::resumable* ptr) {
  switch (ptr->resume(&unit_, max_throughput_)) {
    case caf::resumable::resume_later:
      schedule_local(ptr);  // yield to I/O and coroutines before the next batch
      break;
    case caf::resumable::done:
    case caf::resumable::awaiting_message:
      intrusive_ptr_release(ptr);
      break;
    case caf::resumable::shutdown_execution_unit:
      break;
  }
}

}  // namespace swactor::detail
