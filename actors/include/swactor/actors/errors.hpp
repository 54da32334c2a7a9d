#pragma once
// Errors of the server layer (module API, sessions, tasks).

#include <system_error>

namespace swactor {

enum class server_errc {
  ok = 0,
  session_not_found = 1,  // closed or never existed (in this worker, in base mode)
  output_buffer_full,     // the peer does not read; output_buffer_size reached
  no_task_workers,        // task() with task_workers = 0
  worker_not_found,       // send_message() to an id that is not a worker or task worker
  not_supported,          // the call makes no sense here (e.g. task() in a task worker)
  stopping,               // the worker is stopping and takes no new work
  bad_address,            // sendto() address that cannot be parsed
  task_failed,            // on_task threw; the result carries the message
  bad_topic,              // bus: not a valid topic (or pattern, for subscribe)
  module_not_found,       // bus: no module instance of that name
  no_route,               // bus: no running process has the target
  no_reply,               // bus: the request's handler returned without replying
  request_failed,         // bus: the request's handler threw
  message_too_large,      // bus: over [bus] max_message_size
  body_too_large,         // http: a compressed request body inflates past max_body_size
  bad_body_encoding,      // http: a compressed request body is not valid data of its coding
  response_gone,          // http: a detached response's request no longer exists
};

const std::error_category& server_category() noexcept;
inline std::error_code make_error_code(server_errc e) noexcept {
  return {static_cast<int>(e), server_category()};
}

}  // namespace swactor

namespace std {
template <>
struct is_error_code_enum<swactor::server_errc> : true_type {};
}  // namespace std
