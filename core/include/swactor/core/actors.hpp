#pragma once
// Actors and coroutines on one loop: a coroutine co_awaits a typed request to an actor
// with a timeout. A timeout or a failed request is an error value, never an exception,
// and leaves nothing behind (the helper actor exits with the reply or the timeout).

#include <chrono>
#include <memory>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>

#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/post.hpp>
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/sec.hpp>

#include "swactor/core/coro.hpp"
#include "swactor/core/error.hpp"
#include "swactor/core/loop.hpp"

namespace swactor {

namespace detail {
inline std::error_code from_caf(const caf::error& err) {
  if (err == caf::sec::request_timeout) return make_error_code(errc::timeout);
  return make_error_code(errc::request_failed);
}

struct unit_t {};
}  // namespace detail

// request<R>(sys, dest, timeout, args...): the reply of type R, or an error.
// R = void for an empty reply (the result then holds an empty struct).
template <class R, class Handle, class... Ts>
task<result<std::conditional_t<std::is_void_v<R>, detail::unit_t, R>>> request(
    caf::actor_system& sys, Handle dest, duration timeout, Ts... args) {
  using value_type = std::conditional_t<std::is_void_v<R>, detail::unit_t, R>;
  using out_type = result<value_type>;
  auto token = asio::experimental::as_tuple(asio::use_awaitable);
  auto [ec, value] = co_await asio::async_initiate<
      decltype(token),
      void(std::error_code, std::optional<value_type>)>(
      [&](auto handler) {
        using handler_type = decltype(handler);
        // CAF wants copyable callbacks; the awaitable handler is move-only.
        auto shared = std::make_shared<std::optional<handler_type>>(std::move(handler));
        auto finish = [shared](std::error_code e, std::optional<value_type> v) {
          if (!*shared) return;
          auto h = std::move(**shared);
          shared->reset();
          auto ex = asio::get_associated_executor(h);
          asio::post(ex, [h = std::move(h), e, v = std::move(v)]() mutable {
            std::move(h)(e, std::move(v));
          });
        };
        auto span = std::chrono::duration_cast<caf::timespan>(timeout);
        sys.spawn([=](caf::event_based_actor* self) {
          if constexpr (std::is_void_v<R>) {
            self->request(dest, span, args...)
                .then([finish]() { finish({}, value_type{}); },
                      [finish](caf::error& err) { finish(detail::from_caf(err), std::nullopt); });
          } else {
            self->request(dest, span, args...)
                .then([finish](R& r) { finish({}, std::move(r)); },
                      [finish](caf::error& err) { finish(detail::from_caf(err), std::nullopt); });
          }
        });
      },
      token);
  if (ec) co_return out_type(ec);
  co_return out_type(std::move(*value));
}

}  // namespace swactor
