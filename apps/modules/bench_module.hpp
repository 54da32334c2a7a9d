#pragma once
// `bench`: the load tester as a module, so a load can be composed with other modules in one
// app.toml (e.g. a server and the client that loads it, or a soak load next to a ticker).
// One worker (`worker`) runs it once at start on its own loop, logs the result table,
// optionally writes the JSON report and optionally stops the whole server afterwards.

#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include "runner.hpp"
#include "swactor/actors/context.hpp"
#include "swactor/actors/module.hpp"
#include "swactor/core/log.hpp"

namespace swactor::apps {

class bench_module final : public module_base {
 public:
  static constexpr std::string_view kName = "bench";
  static constexpr std::string_view kDoc =
      "Runs the bundled load tester once from one worker (same engine as `swactor bench`).";

  struct options {
    std::string url;
    std::string mode = "long_tcp";
    std::int64_t requests = 1000;
    std::chrono::milliseconds duration{0};
    int connections = 10;
    std::uint64_t size = 64;
    int pipeline = 1;
    double rate = 0;
    bool verify = false;
    std::chrono::milliseconds timeout{5000};
    std::string eof = "\r\n";
    int length_size = 4;
    std::int64_t length_offset = 0;
    std::int64_t body_offset = 4;  // protocols::framing_options' default, as in [[listen]]
    bool big_endian = true;
    bool is_signed = false;
    std::uint64_t max_length = 2u << 20;
    std::string json;
    int worker = 0;
    bool stop_server = false;
  };

  static config::schema<options> schema() {
    config::schema<options> s;
    s.string("url", &options::url, "Target: tcp://HOST:PORT, udp://HOST:PORT or unix:///path.")
        .required()
        .string("mode", &options::mode, "Load mode, as `swactor bench -f`.",
                {"long_tcp", "short_tcp", "udp", "unix", "eof", "length", "connect"})
        .integer("requests", &options::requests, "Requests to run (-n); 0 = run for `duration`.", 0)
        .duration("duration", &options::duration,
                  "Run time (-d) when requests = 0. A bare number is milliseconds, here and in "
                  "`swactor bench -d`, as for every duration.")
        .integer("connections", &options::connections, "Concurrent connections (-c).", 1, 100000)
        .size("size", &options::size, "Payload bytes per request (--size).", 1, 64u << 20)
        .integer("pipeline", &options::pipeline, "Requests in flight per connection.", 1, 1024)
        .floating("rate", &options::rate, "Fixed total request rate per second; 0 = as fast as possible.", 0)
        .boolean("verify", &options::verify, "Check every reply against its request.")
        .duration("timeout", &options::timeout, "Timeout of every connect/read/write.",
                  std::chrono::milliseconds(1))
        .string("eof", &options::eof, "eof mode: the delimiter.")
        .integer("length_size", &options::length_size, "length mode: size of the length field.", 1, 8)
        .integer("length_offset", &options::length_offset,
                 "length mode: where the length field starts.", 0, 65535)
        .integer("body_offset", &options::body_offset,
                 "length mode: frame size = body_offset + length value, as in [listen.framing].",
                 0, 65535)
        .boolean("big_endian", &options::big_endian, "length mode: byte order of the length field.")
        .boolean("signed", &options::is_signed, "length mode: the length field is signed.")
        .size("max_length", &options::max_length,
              "eof and length modes: largest reply frame, as in [listen.framing].", 1, 1ull << 30)
        .string("json", &options::json, "Write the JSON report here (empty = none).")
        .integer("worker", &options::worker, "Id of the worker that runs the load.", 0, 1023)
        .boolean("stop_server", &options::stop_server,
                 "Stop the server (SIGTERM to the master) when the run is over.");
    return s;
  }

  explicit bench_module(options o) : opts_(std::move(o)) {}

  task<void> on_worker_start(context& ctx) override {
    if (ctx.role() != "worker" || ctx.worker_id() != opts_.worker) co_return;
    bench::settings s;
    if (auto err = bench::parse_url(opts_.url, s.server); !err.empty()) {
      log::error("bench {}: {}", instance_name(), err);
      co_return;
    }
    s.mode = opts_.mode;
    s.requests = static_cast<std::uint64_t>(opts_.requests);
    s.duration = opts_.duration;
    s.connections = static_cast<unsigned>(opts_.connections);
    s.size = opts_.size;
    s.pipeline = static_cast<unsigned>(opts_.pipeline);
    s.rate = opts_.rate;
    s.verify = opts_.verify;
    s.timeout = opts_.timeout;
    s.frame.eof = opts_.eof;
    s.frame.length_size = static_cast<std::size_t>(opts_.length_size);
    s.frame.length_offset = static_cast<std::size_t>(opts_.length_offset);
    s.frame.body_offset = static_cast<std::size_t>(opts_.body_offset);
    s.frame.length_order = opts_.big_endian ? protocols::byte_order::big : protocols::byte_order::little;
    s.frame.length_signed = opts_.is_signed;
    s.frame.max_length = static_cast<std::size_t>(opts_.max_length);
    s.json_file = opts_.json;
    if (auto err = bench::validate(s); !err.empty()) {
      log::error("bench {}: {}", instance_name(), err);
      co_return;
    }
    runner_ = std::make_unique<bench::runner>(s);
    // In a coroutine of its own: on_worker_start must return for the worker to serve.
    spawn(ctx.executor(), [this, s]() -> task<void> {
      log::notice("bench {}: {} against {}", instance_name(), s.mode, s.server.url);
      auto r = co_await runner_->run_here();
      std::istringstream table(bench::format_table(s, r));
      for (std::string line; std::getline(table, line);) log::notice("bench {}: {}", instance_name(), line);
      if (!s.json_file.empty()) std::ofstream(s.json_file) << bench::to_json(s, r).dump(2) << "\n";
      if (opts_.stop_server) ::kill(::getppid(), SIGTERM);
    }, "bench run");
  }

  task<void> on_worker_stop(context&) override {
    if (runner_) runner_->stop();
    co_return;
  }

 private:
  options opts_;
  std::unique_ptr<bench::runner> runner_;
};

}  // namespace swactor::apps
