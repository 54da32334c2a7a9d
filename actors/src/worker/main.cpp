// `swactor worker ...`: the entry point of every process the master starts.

#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <asio/signal_set.hpp>

#include "atoms.hpp"
#include "swactor/core/actors.hpp"
#include "swactor/core/log.hpp"
#include "swactor/ipc/shm.hpp"
#include "worker/runtime.hpp"

namespace swactor {
namespace {

// Reads the config text the master put in a memfd: [u64 length][text].
std::optional<std::string> read_config_text(int fd) {
  auto region = ipc::shm_region::attach(fd);
  if (!region) return std::nullopt;
  std::uint64_t len = 0;
  std::memcpy(&len, region->data(), sizeof len);
  if (len + sizeof len > region->size()) return std::nullopt;
  return std::string(static_cast<const char*>(region->data()) + sizeof len, len);
}

}  // namespace

task<std::string> module_base::on_task(context&, task_id, int, std::string) {
  throw std::runtime_error("module " + instance_ + " has no on_task handler");
  co_return std::string();
}

task<void> module_base::on_request(context&, http::request&, http::response&) {
  throw std::runtime_error("module " + instance_ + " has no on_request handler");
  co_return;
}

int run_config_check(int config_fd, const std::string& config_name, const module_registry& reg) {
  auto text = read_config_text(config_fd);
  if (!text) {
    std::fprintf(stderr, "cannot read the config from fd %d\n", config_fd);
    return 1;
  }
  config::diagnostics diag;
  auto app = load_app_config_text(*text, config_name, reg, diag);
  if (!app) {
    std::fprintf(stderr, "%s", diag.to_string().c_str());
    return 1;
  }
  for (const auto& mc : app->modules) {
    try {
      if (!mc.resolved->make(mc.options, diag, "modules." + mc.instance)) {
        std::fprintf(stderr, "%s", diag.to_string().c_str());
        return 1;
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "module %s (type %s): its constructor threw: %s\n", mc.instance.c_str(),
                   mc.type.c_str(), e.what());
      return 1;
    }
  }
  return 0;
}

int run_worker(const worker_args& args, const module_registry& reg) {
  // Ctrl-C in a terminal reaches the whole process group: the master decides, not us.
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGPIPE, SIG_IGN);
  auto text = read_config_text(args.config_fd);
  if (!text) {
    std::fprintf(stderr, "swactor worker: cannot read the config from fd %d\n", args.config_fd);
    return 1;
  }
  // Parsed once: the root stays alive for the module option tables.
  config::diagnostics diag;
  auto app = load_app_config_text(*text, args.config_name, reg, diag);
  if (!app) {
    std::fprintf(stderr, "%s", diag.to_string().c_str());
    return 1;
  }
  detail::proc_layout layout(*app);
  if (!layout.valid(args.id) || args.id >= kMaxProcesses) {
    std::fprintf(stderr, "swactor worker: no process #%d in this config\n", args.id);
    return 1;
  }
  try {
    log::init(*log::parse_level(app->server.log_level), app->server.log_file, layout.name(args.id));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "swactor worker: %s\n", e.what());
    return 1;
  }
  auto region = ipc::shm_region::attach(args.state_fd);
  if (!region || region->size() < sizeof(server_state)) {
    log::error("cannot map the server state (fd {})", args.state_fd);
    return 1;
  }
  auto* state = static_cast<server_state*>(region->data());
  if (region->size() < sizeof(server_state) + server_state::session_registry_bytes(state->session_slots)) {
    log::error("the server state (fd {}) is smaller than its session registry", args.state_fd);
    return 1;
  }

  loop lp({.on_stall = stall_action::log,
           .single_thread_io = true,
           .stall_check_after = std::chrono::milliseconds(50),
           .busy_poll = std::chrono::microseconds(app->server.busy_poll_us)});
  ipc::link_options lo;
  lo.name = layout.name(args.id);
  auto link = ipc::link::from_fd(lp.context().get_executor(), args.ipc_fd, lo);
  if (!link) {
    log::error("bad IPC descriptor {}: {}", args.ipc_fd, link.error().message());
    return 1;
  }
  int code = 0;
  {
    detail::worker_runtime rt(lp, args, std::move(*app), state, std::move(*link), reg);
    rt.attach_tables(args.table_fds);
    // The worker's typed actor: stop requests (SIGTERM) and stats arrive here.
    auto self = lp.actors().spawn([&rt](detail::worker_actor::pointer) -> detail::worker_actor::behavior_type {
      return {[&rt](detail::stop_atom, const std::string& why) { rt.begin_stop(why); },
              [&rt](detail::stats_atom) { return rt.stats_json(); }};
    });
    asio::signal_set term(lp.context(), SIGTERM);
    term.async_wait([&](std::error_code ec, int) {
      if (!ec) caf::anon_send(self, detail::stop_atom::value, std::string("SIGTERM"));
    });
    spawn(lp.context(), [&]() -> task<void> { co_await rt.start(); }, "worker start");
    lp.run();
    caf::anon_send_exit(self, caf::exit_reason::user_shutdown);
    lp.context().restart();
    lp.context().poll();
    code = rt.exit_code();
    if (auto n = rt.unfinished_handlers(); n > 0) {
      // Their coroutines wait on objects of `rt`: destroying it wakes them, and the loop's
      // teardown would then resume them on freed memory. max_wait_time is over, so leave
      // without unwinding them (the log is flushed line by line).
      log::warning("{} handler(s) still running past max_wait_time: exiting without unwinding them", n);
      log::info("exited");
      std::fflush(nullptr);
      std::_Exit(code);
    }
  }
  log::info("exited");
  return code;
}

}  // namespace swactor
