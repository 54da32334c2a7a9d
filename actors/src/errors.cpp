#include "swactor/actors/errors.hpp"

#include <string>

namespace swactor {
namespace {
class server_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "swactor.server"; }
  std::string message(int ev) const override {
    switch (static_cast<server_errc>(ev)) {
      case server_errc::ok: return "success";
      case server_errc::session_not_found: return "session is closed or unknown";
      case server_errc::output_buffer_full: return "output buffer full: the peer is not reading";
      case server_errc::no_task_workers: return "no task workers configured (server.task_workers = 0)";
      case server_errc::worker_not_found: return "no such worker id";
      case server_errc::not_supported: return "not supported in this role";
      case server_errc::stopping: return "worker is stopping";
      case server_errc::bad_address: return "bad address";
      case server_errc::task_failed: return "task handler failed";
      case server_errc::bad_topic: return "invalid bus topic or pattern";
      case server_errc::module_not_found: return "no module instance of that name";
      case server_errc::no_route: return "no running process to deliver to";
      case server_errc::no_reply: return "the request's handler returned without replying";
      case server_errc::request_failed: return "the request's handler failed";
      case server_errc::message_too_large: return "bus message larger than bus.max_message_size";
      case server_errc::body_too_large: return "the request body inflates past max_body_size";
      case server_errc::bad_body_encoding: return "the request body is not valid data of its Content-Encoding";
      case server_errc::response_gone:
        return "no such HTTP request to answer: it was answered, timed out or its client left";
    }
    return "unknown server error";
  }
};
}  // namespace

// Not a function-local static: no guard check per call (see core/src/error.cpp).
constinit const server_category_impl server_category_instance{};

const std::error_category& server_category() noexcept {
  return server_category_instance;
}

}  // namespace swactor
