#include "run.hpp"

#include <csignal>
#include <iostream>

#include <asio/signal_set.hpp>

#include "modules/builtin.hpp"
#include "swactor/actors/app_config.hpp"
#include "swactor/actors/context.hpp"
#include "swactor/core/log.hpp"

namespace swactor::apps {

namespace {

task<void> call_handler(module_base& m, const char* event, task<void> t) {
  try {
    co_await std::move(t);
  } catch (const std::exception& e) {
    log::error("module {} failed in {}: {}", m.instance_name(), event, e.what());
  }
}

}  // namespace

int cmd_run(const std::string& file) {
  config::diagnostics diag;
  auto app = load_app_config(file, builtin_modules(), diag);
  if (!app) {
    std::cerr << diag.to_string();
    return 1;
  }
  try {
    log::init(*log::parse_level(app->server.log_level), app->server.log_file, "master");
  } catch (const std::exception& e) {
    std::cerr << "swactor: " << e.what() << "\n";
    return 1;
  }

  // A server waits for the outside world; a stall is reported but does not end it.
  loop lp({.on_stall = stall_action::log});
  context ctx(lp, "standalone", 0);
  std::vector<std::unique_ptr<module_base>> mods;
  for (const auto& mc : app->modules) {
    config::diagnostics d;
    auto m = builtin_modules().find(mc.type)->make(mc.options, d, "modules." + mc.instance);
    m->set_instance_name(mc.instance);
    mods.push_back(std::move(m));
  }

  asio::signal_set signals(lp.context(), SIGINT, SIGTERM);
  spawn(lp.context(), [&]() -> task<void> {
    for (auto& m : mods) co_await call_handler(*m, "on_worker_start", m->on_worker_start(ctx));
    log::info("started {} module instance(s) from {}", mods.size(), file);
  }, "start modules");
  signals.async_wait([&](std::error_code ec, int sig) {
    if (ec) return;
    log::notice("received {}, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    spawn(lp.context(), [&]() -> task<void> {
      for (auto& m : mods) co_await call_handler(*m, "on_worker_stop", m->on_worker_stop(ctx));
      lp.timers().clear_all();
      lp.stop();
    }, "stop modules");
  });
  lp.run();
  log::info("stopped");
  return 0;
}

}  // namespace swactor::apps
