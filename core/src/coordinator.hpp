#pragma once
// The CAF coordinator that runs actors on an asio::io_context (private to core).

#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/steady_timer.hpp>
#include <caf/detail/simple_actor_clock.hpp>
#include <caf/execution_unit.hpp>
#include <caf/scheduler/abstract_coordinator.hpp>

namespace swactor::detail {

// Work for a loop from other threads when its io_context takes no locks (a worker process's
// loop, ASIO_CONCURRENCY_HINT_UNSAFE: asio::post from another thread would race with the
// loop). Queued under a mutex and signalled through an eventfd that the loop itself waits
// on. Made on the loop's thread; only CAF's own threads use it, and rarely.
class remote_inbox {
 public:
  explicit remote_inbox(asio::io_context& ctx);
  ~remote_inbox();
  remote_inbox(const remote_inbox&) = delete;
  remote_inbox& operator=(const remote_inbox&) = delete;

  bool on_loop_thread() const noexcept { return std::this_thread::get_id() == owner_; }
  // Any thread: `f` runs on the loop.
  void post(std::function<void()> f);

 private:
  void arm();

  std::thread::id owner_;
  asio::posix::stream_descriptor fd_;
  std::mutex mu_;
  std::vector<std::function<void()>> items_;
};

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
  // lock_free_loop: `ctx` takes no locks (ASIO_CONCURRENCY_HINT_UNSAFE), so other threads
  // reach it through a remote_inbox instead of asio::post.
  loop_coordinator(caf::actor_system& sys, asio::io_context& ctx, bool lock_free_loop = false);
  ~loop_coordinator() override;

  void enqueue(caf::resumable* ptr) override;
  caf::actor_clock& clock() noexcept override { return clock_; }
  bool detaches_utility_actors() const override { return false; }
  void start() override;
  void stop() override;
  void init(caf::actor_system_config& cfg) override;

  asio::io_context& context() noexcept { return ctx_; }
  loop_clock& loop_timers() noexcept { return clock_; }
  // From any thread: `f` runs on the loop (through the remote inbox when there is one).
  void post_remote(std::function<void()> f);

 private:
  void resume(caf::resumable* ptr);
  void schedule_local(caf::resumable* ptr);
  void drain();

  asio::io_context& ctx_;
  std::unique_ptr<remote_inbox> inbox_;  // before clock_, which points to it
  // Actors ready to run on this loop. One posted drain handler runs a batch of them, so a
  // message between two actors of the loop costs a queue push, not an asio::post.
  std::deque<caf::resumable*> ready_;
  bool drain_posted_ = false;
  loop_clock clock_;
  loop_unit unit_;
};

}  // namespace swactor::detail
