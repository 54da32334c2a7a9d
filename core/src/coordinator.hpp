#pragma once
// The CAF coordinator that runs actors on an asio::io_context (private to core).

#include <deque>
#include <functional>
#include <mutex>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/steady_timer.hpp>
#include <caf/detail/simple_actor_clock.hpp>
#include <caf/execution_unit.hpp>
#include <caf/scheduler/abstract_coordinator.hpp>

namespace swactor::detail {

// Work for a loop from other threads when its io_context takes no locks (a worker process's
// or a reactor thread's loop, ASIO_CONCURRENCY_HINT_UNSAFE: asio::post from another thread
// would race with the loop). Queued under a mutex and signalled through an eventfd that the
// loop itself waits on. The loop owns it (loop_options::single_thread_io); CAF's threads and
// loop::post_any() use it, and rarely.
class remote_inbox {
 public:
  explicit remote_inbox(asio::io_context& ctx);
  ~remote_inbox();
  remote_inbox(const remote_inbox&) = delete;
  remote_inbox& operator=(const remote_inbox&) = delete;

  // Any thread: `f` runs on the loop.
  void post(std::function<void()> f);

 private:
  void arm();

  asio::posix::stream_descriptor fd_;
  std::mutex mu_;
  std::vector<std::function<void()>> items_;
};

// Runs `f` on the loop of `ctx`, called from a thread that is not running that loop: through
// the loop's inbox when it takes no locks (`inbox` set), else through asio's queue.
template <class F>
void post_from_outside(asio::io_context& ctx, remote_inbox* inbox, F&& f) {
  if (inbox)
    inbox->post(std::forward<F>(f));
  else
    asio::post(ctx, std::forward<F>(f));
}

// CAF's actor clock driven by one steady_timer of the loop instead of a clock thread.
class loop_clock final : public caf::detail::simple_actor_clock {
 public:
  using super = caf::detail::simple_actor_clock;
  loop_clock(asio::io_context& ctx, remote_inbox* inbox) : ctx_(ctx), timer_(ctx), inbox_(inbox) {}

  void set_ordinary_timeout(time_point t, caf::abstract_actor* self, caf::atom_value type,
                            uint64_t id) override;
  void set_multi_timeout(time_point t, caf::abstract_actor* self, caf::atom_value type,
                         uint64_t id) override;
  void set_request_timeout(time_point t, caf::abstract_actor* self,
                           caf::message_id id) override;
  void cancel_ordinary_timeout(caf::abstract_actor* self, caf::atom_value type) override;
  void cancel_request_timeout(caf::abstract_actor* self, caf::message_id id) override;
  void cancel_timeouts(caf::abstract_actor* self) override;
  void schedule_message(time_point t, caf::strong_actor_ptr receiver,
                        caf::mailbox_element_ptr content) override;
  void schedule_message(time_point t, caf::group target, caf::strong_actor_ptr sender,
                        caf::message content) override;
  void cancel_all() override;

  std::size_t pending() const noexcept { return schedule_.size(); }

 private:
  template <class F>
  void on_loop(F&& f);
  void rearm();

  asio::io_context& ctx_;
  asio::steady_timer timer_;
  remote_inbox* inbox_;  // null: asio::post is safe from any thread
  bool armed_ = false;
  time_point armed_due_{};
};

class loop_coordinator;

class loop_unit final : public caf::execution_unit {
 public:
  loop_unit(caf::actor_system* sys, loop_coordinator* owner)
      : caf::execution_unit(sys), owner_(owner) {}
  void exec_later(caf::resumable* ptr) override;

 private:
  loop_coordinator* owner_;
};

class loop_coordinator final : public caf::scheduler::abstract_coordinator {
 public:
  // `inbox`: the loop's, when `ctx` takes no locks (other threads reach it through it); null
  // otherwise.
  loop_coordinator(caf::actor_system& sys, asio::io_context& ctx, remote_inbox* inbox = nullptr);
  ~loop_coordinator() override;

  void enqueue(caf::resumable* ptr) override;
  caf::actor_clock& clock() noexcept override { return clock_; }
  bool detaches_utility_actors() const override { return false; }
  void start() override;
  void stop() override;
  void init(caf::actor_system_config& cfg) override;

  asio::io_context& context() noexcept { return ctx_; }
  loop_clock& loop_timers() noexcept { return clock_; }

 private:
  void resume(caf::resumable* ptr);
  void schedule_local(caf::resumable* ptr);
  void drain();

  asio::io_context& ctx_;
  remote_inbox* inbox_;  // the loop's, or null
  // Actors ready to run on this loop. One posted drain handler runs a batch of them, so a
  // message between two actors of the loop costs a queue push, not an asio::post.
  std::deque<caf::resumable*> ready_;
  bool drain_posted_ = false;
  loop_clock clock_;
  loop_unit unit_;
};

}  // namespace swactor::detail
