#include "swactor/core/coro.hpp"

#include <atomic>

#include <asio/execution_context.hpp>
#include <asio/query.hpp>
#include <asio/execution/context.hpp>

#include "swactor/core/log.hpp"

namespace swactor {
namespace {

// Bumped whenever a registry dies, so per-thread caches never return a dead one (a new
// io_context may reuse a dead one's address).
std::atomic<std::uint64_t> registry_epoch{0};

class registry_service final : public asio::execution_context::service {
 public:
  using key_type = registry_service;
  static inline asio::execution_context::id id;
  explicit registry_service(asio::execution_context& ctx)
      : asio::execution_context::service(ctx) {}
  ~registry_service() override { registry_epoch.fetch_add(1); }
  void shutdown() override {}
  coro_registry registry;
};

}  // namespace

coro_registry& registry_of(asio::execution_context& ctx) {
  // use_service takes a mutex; remember the last context this thread asked about.
  thread_local asio::execution_context* last_ctx = nullptr;
  thread_local coro_registry* last_reg = nullptr;
  thread_local std::uint64_t last_epoch = 0;
  auto epoch = registry_epoch.load(std::memory_order_acquire);
  if (last_ctx != &ctx || last_epoch != epoch) {
    last_reg = &asio::use_service<registry_service>(ctx).registry;
    last_ctx = &ctx;
    last_epoch = epoch;
  }
  return *last_reg;
}

coro_registry& registry_of(const asio::any_io_executor& ex) {
  return registry_of(asio::query(ex, asio::execution::context));
}

void coro_registry::add(detail::coro_record* r) noexcept {
  r->owner = this;
  r->next = head_;
  if (head_) head_->prev = r;
  head_ = r;
  ++stats_.live;
  ++stats_.spawned;
  if (stats_.live > stats_.peak) stats_.peak = stats_.live;
}

void coro_registry::remove(detail::coro_record* r) noexcept {
  if (r->prev) r->prev->next = r->next;
  else head_ = r->next;
  if (r->next) r->next->prev = r->prev;
  r->prev = r->next = nullptr;
  --stats_.live;
}

std::vector<coro_info> coro_registry::list() const {
  std::vector<coro_info> out;
  for (auto* r = head_; r; r = r->next) {
    out.push_back({r->id, r->name ? r->name : "",
                   std::string(r->where.file_name()) + ":" + std::to_string(r->where.line())});
  }
  return out;
}

bool coro_handle::cancel() {
  if (!rec_ || rec_->done) return false;
  rec_->signal.emit(asio::cancellation_type::all);
  return true;
}

bool coro_handle::done() const noexcept { return !rec_ || rec_->done; }
std::uint64_t coro_handle::id() const noexcept { return rec_ ? rec_->id : 0; }

namespace detail {

std::shared_ptr<coro_record> make_record(coro_registry& reg, const char* name,
                                         const std::source_location& where) {
  static std::uint64_t next_id = 0;  // ids only need to be unique per process for reports
  auto rec = std::make_shared<coro_record>();
  rec->id = __atomic_add_fetch(&next_id, 1, __ATOMIC_RELAXED);
  rec->name = name;
  rec->where = where;
  reg.add(rec.get());
  return rec;
}

void finish_record(coro_record& r, std::exception_ptr ep) noexcept {
  r.done = true;
  if (r.owner) r.owner->remove(&r);
  if (!ep) return;
  try {
    std::rethrow_exception(ep);
  } catch (const std::system_error& e) {
    if (e.code() == asio::error::operation_aborted || e.code() == errc::cancelled) return;
    log::error("coroutine {} ({}:{}) failed: {}", r.name ? r.name : "#" + std::to_string(r.id),
               r.where.file_name(), r.where.line(), e.what());
  } catch (const std::exception& e) {
    log::error("coroutine {} ({}:{}) failed: {}", r.name ? r.name : "#" + std::to_string(r.id),
               r.where.file_name(), r.where.line(), e.what());
  } catch (...) {
    log::error("coroutine {} ({}:{}) failed with a non-standard exception",
               r.name ? r.name : "#" + std::to_string(r.id), r.where.file_name(), r.where.line());
  }
}

}  // namespace detail

namespace {
// Counts a pending deadline so the stall check knows a timer can still wake something.
struct timed_scope {
  coro_registry& reg;
  explicit timed_scope(coro_registry& r) : reg(r) { reg.timed_begin(); }
  ~timed_scope() { reg.timed_end(); }
};
}  // namespace

task<std::error_code> sleep(duration d) {
  auto ex = co_await asio::this_coro::executor;
  timed_scope scope(registry_of(ex));
  asio::steady_timer timer(ex);
  timer.expires_after(d);
  auto [ec] = co_await timer.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
  if (ec == asio::error::operation_aborted) co_return make_error_code(errc::cancelled);
  co_return ec;
}

task<std::error_code> with_timeout(task<void> op, duration d) {
  using namespace asio::experimental::awaitable_operators;
  auto ex = co_await asio::this_coro::executor;
  timed_scope scope(registry_of(ex));
  asio::steady_timer timer(ex);
  timer.expires_after(d);
  auto r = co_await (std::move(op) ||
                     timer.async_wait(asio::experimental::as_tuple(asio::use_awaitable)));
  if (r.index() == 0) co_return std::error_code{};
  co_return make_error_code(errc::timeout);
}

}  // namespace swactor
