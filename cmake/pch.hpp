// Precompiled once and reused: these two dominate compile time.
#include <asio.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/experimental/channel.hpp>
#include <caf/all.hpp>
#include <spdlog/spdlog.h>
