// Plugins through the real binary: module types in shared libraries (plugin = "..."), the
// errors of bad ones at `check` and at start, the example built out of tree against the
// installed package, and a reload that picks up rebuilt plugin code under load.
//
// The "[installed]" cases need the CTest fixture "plugins: install the package and build the
// example against it" (build_example.cmake), which leaves under PLUGIN_EXAMPLE_OUT:
//   prefix/                  `cmake --install` of this build tree
//   hello/libgreeter.so      apps/examples/plugin built against prefix/, GREETING=hello
//   bonjour/libgreeter.so    the same rebuilt with GREETING=bonjour
#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "harness.hpp"
#include "line_client.hpp"
#include "server_helpers.hpp"

using namespace std::chrono_literals;
namespace t = swactor::testing;
namespace fs = std::filesystem;
using swactor::testing::line_client;
using swactor::testing::server::server_under_test;

namespace {

const fs::path example_out = PLUGIN_EXAMPLE_OUT;

fs::path installed_swactor() { return example_out / "prefix" / "bin" / "swactor"; }
fs::path greeter(const char* greeting) { return example_out / greeting / "libgreeter.so"; }

void require_example() {
  INFO("run the fixture first: ctest -R 'plugins: install'");
  REQUIRE(fs::exists(installed_swactor()));
  REQUIRE(fs::exists(greeter("hello")));
  REQUIRE(fs::exists(greeter("bonjour")));
}

// How an operator should replace a plugin under a running server: a new file renamed over the
// old name (processes that mapped the old file keep their copy; overwriting it in place
// would change the code under them).
void replace_atomically(const fs::path& from, const fs::path& to) {
  auto tmp = to;
  tmp += ".tmp";
  fs::copy_file(from, tmp, fs::copy_options::overwrite_existing);
  fs::rename(tmp, to);
}

// The 1-based line of `needle` in `text` (0 when absent), for the positions in messages.
int line_of(const std::string& text, const std::string& needle) {
  auto at = text.find(needle);
  if (at == std::string::npos) return 0;
  return 1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(at), '\n'));
}

// An app.toml with one line listener on `port` and a [modules.m] table of `module_keys`.
std::string app_text(std::uint16_t port, const std::string& module_keys, const std::string& server_keys = "") {
  return "[server]\nworkers = 1\n" + server_keys +
         "\n[[listen]]\nurl = \"tcp://127.0.0.1:" + std::to_string(port) +
         "\"\nmodule = \"m\"\nframing = { type = \"eof\", delimiter = \"\\n\" }\n\n[modules.m]\n" + module_keys;
}

// With SWACTOR_BIN set, server_under_test runs that binary (the installed one here).
// Decrements a counter when it goes out of scope (a client thread's exit, however it ends).
struct count_down {
  explicit count_down(std::atomic<int>& n) : n_(n) {}
  ~count_down() { --n_; }
  std::atomic<int>& n_;
};

struct use_binary {
  explicit use_binary(const fs::path& bin) { ::setenv("SWACTOR_BIN", bin.c_str(), 1); }
  ~use_binary() { ::unsetenv("SWACTOR_BIN"); }
};

}  // namespace

TEST_CASE("plugins: an ABI mismatch is a clear error at check and at start", "[plugins]") {
  t::temp_dir dir("swactor-plugin");
  fs::copy_file(PLUGIN_WRONG_ABI, dir.file("libwrong.so"));
  auto text = app_text(t::free_tcp_port(), "plugin = \"libwrong.so\"\n");
  auto cfg = dir.write("app.toml", text);
  const auto where = "app.toml:" + std::to_string(line_of(text, "plugin =")) + ":";
  const auto versions = "built for swactor plugin ABI version 999, this swactor has plugin ABI version " +
                        std::to_string(SWACTOR_PLUGIN_ABI_VERSION);

  auto check = t::run({t::swactor_bin(), "check", cfg.string()}, 20s);
  INFO("check stderr: " << check.err);
  CHECK(check.exit_code == 1);
  CHECK(check.err.find(where) != std::string::npos);
  CHECK(check.err.find("modules.m.plugin") != std::string::npos);
  CHECK(check.err.find(versions) != std::string::npos);

  auto start = t::run({t::swactor_bin(), "run", cfg.string()}, 20s);
  INFO("run stderr: " << start.err);
  CHECK_FALSE(start.timed_out);
  CHECK(start.exit_code == 1);
  CHECK(start.err.find(where) != std::string::npos);
  CHECK(start.err.find(versions) != std::string::npos);
}

TEST_CASE("plugins: a missing file or entry point and an undefined symbol are clear errors", "[plugins]") {
  t::temp_dir dir("swactor-plugin");
  fs::copy_file(PLUGIN_NO_ENTRY, dir.file("libnoentry.so"));
  fs::copy_file(PLUGIN_UNDEFINED, dir.file("libundefined.so"));
  struct bad_case {
    std::string file;
    std::string says;
  };
  const std::vector<bad_case> cases = {
      {"libmissing.so", "no plugin file " + dir.file("libmissing.so").string() +
                            " (a relative path is relative to the config file's directory)"},
      {"libnoentry.so", "is not a swactor plugin: no entry point `swactor_plugin_entry` (dlsym: " +
                            dir.file("libnoentry.so").string() + ": undefined symbol: swactor_plugin_entry)"},
      {"libundefined.so", "undefined symbol: swactor_test_no_such_function"},
  };
  {
    auto text = app_text(t::free_tcp_port(), "plugin = 42\n");
    auto cfg = dir.write("number.toml", text);
    auto r = t::run({t::swactor_bin(), "check", cfg.string()}, 20s);
    INFO(r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("number.toml:" + std::to_string(line_of(text, "plugin =")) +
                     ":10: modules.m.plugin: expected the path of a plugin library like \"lib/libmymod.so\", got "
                     "an integer") != std::string::npos);
  }
  for (const auto& c : cases) {
    auto text = app_text(t::free_tcp_port(), "type = \"x\"\nplugin = \"" + c.file + "\"\n");
    auto cfg = dir.write("app.toml", text);
    auto r = t::run({t::swactor_bin(), "check", cfg.string()}, 20s);
    INFO(c.file << ": " << r.err);
    CHECK(r.exit_code == 1);
    // file:line:column: key: message, one line.
    CHECK(r.err.find(cfg.string() + ":" + std::to_string(line_of(text, "plugin =")) + ":10: modules.m.plugin: ") !=
          std::string::npos);
    CHECK(r.err.find(c.says) != std::string::npos);
    if (c.file == "libundefined.so") CHECK(r.err.find(dir.file(c.file).string()) != std::string::npos);
  }
}

TEST_CASE("plugins: type picks one of several module types", "[plugins]") {
  t::temp_dir dir("swactor-plugin");
  fs::create_directories(dir.file("lib"));
  fs::copy_file(PLUGIN_TWO_TYPES, dir.file("lib/libtwo.so"));

  // Without `type`, a plugin with two types is ambiguous; an unknown `type` is named.
  auto ambiguous = dir.write("ambiguous.toml", app_text(t::free_tcp_port(), "plugin = \"lib/libtwo.so\"\n"));
  auto r = t::run({t::swactor_bin(), "check", ambiguous.string()}, 20s);
  INFO(r.err);
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("registers several module types (first, second): pick one with type = \"first\"") !=
        std::string::npos);
  auto unknown =
      dir.write("unknown.toml", app_text(t::free_tcp_port(), "type = \"third\"\nplugin = \"lib/libtwo.so\"\n"));
  r = t::run({t::swactor_bin(), "check", unknown.string()}, 20s);
  INFO(r.err);
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("registers no module type \"third\"; it registers: first, second") != std::string::npos);
  // The plugin type's own options are checked like a built-in's.
  auto option_text = app_text(t::free_tcp_port(), "type = \"first\"\nplugin = \"lib/libtwo.so\"\ntimes = 99\n");
  auto bad_option = dir.write("option.toml", option_text);
  r = t::run({t::swactor_bin(), "check", bad_option.string()}, 20s);
  INFO(r.err);
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("option.toml:" + std::to_string(line_of(option_text, "times =")) + ":9: modules.m.times: ") !=
        std::string::npos);

  // Two instances of one plugin, one per type, on two listeners of a running server.
  server_under_test srv("workers = 2", R"([[listen]]
url = "tcp://127.0.0.1:{port}"
module = "one"
framing = { type = "eof", delimiter = "\n" }
[[listen]]
url = "tcp://127.0.0.1:{port2}"
module = "two"
framing = { type = "eof", delimiter = "\n" }
[modules.one]
plugin = ")" + dir.file("lib/libtwo.so").string() + R"("
type = "first"
[modules.two]
plugin = ")" + dir.file("lib/libtwo.so").string() + R"("
type = "second"
times = 2
user_processes = 1
)");
  line_client one(srv.port), two(srv.port2);
  REQUIRE(one.ok());
  REQUIRE(two.ok());
  CHECK(one.call("x") == "first: x");
  CHECK(two.call("y") == "second: y y");
  // The master counted the user processes through the plugin's type; the process runs it.
  CHECK(srv.wait_log("second: user process 0 runs the plugin's code", 10s));
  // Its coroutine keeps running across suspensions (stop_and_check: no crash was restarted).
  CHECK(srv.wait_log("second: user process 0 still runs after 5 sleeps", 10s));
  auto stats = srv.stats();
  REQUIRE(stats.is_object());
  CHECK(stats["user_processes"].size() == 1);

  auto listed = t::run({t::swactor_bin(), "modules", "--config", srv.config}, 20s);
  INFO(listed.out << listed.err);
  CHECK(listed.exit_code == 0);
  CHECK(listed.out.find("plugin " + dir.file("lib/libtwo.so").string() + " (used by [modules.one], [modules.two])") !=
        std::string::npos);
  CHECK(listed.out.find("times (integer (1 .. 10), default 1): How many times the line is repeated.") !=
        std::string::npos);
  srv.stop_and_check();
}

TEST_CASE("plugins: the example built from the installed package answers", "[plugins][installed]") {
  require_example();
  t::temp_dir dir("swactor-plugin");
  fs::create_directories(dir.file("lib"));
  fs::copy_file(greeter("hello"), dir.file("lib/libgreeter.so"));
  const auto port = t::free_tcp_port();
  auto cfg = dir.write("app.toml", app_text(port, "plugin = \"lib/libgreeter.so\"\npunctuation = \"?\"\n",
                                            "pid_file = \"" + dir.file("swactor.pid").string() + "\"\n"));
  const auto bin = installed_swactor().string();

  auto check = t::run({bin, "check", cfg.string()}, 20s);
  INFO(check.out << check.err);
  CHECK(check.exit_code == 0);
  auto listed = t::run({bin, "modules", "--config", cfg.string()}, 20s);
  INFO(listed.out << listed.err);
  CHECK(listed.exit_code == 0);
  CHECK(listed.out.find("plugin " + dir.file("lib/libgreeter.so").string() + " (used by [modules.m])") !=
        std::string::npos);
  CHECK(listed.out.find("  greeter ") != std::string::npos);
  CHECK(listed.out.find("punctuation (string, default \"!\"): Appended to every greeting.") != std::string::npos);

  // Started from another directory: the plugin path is relative to the config file.
  t::spawn_options so;
  so.cwd = "/";
  t::process srv({bin, "run", cfg.string()}, so);
  auto log_has = [&](const std::string& what) {
    for (auto until = std::chrono::steady_clock::now() + 15s; std::chrono::steady_clock::now() < until;
         std::this_thread::sleep_for(20ms))
      if (srv.stderr_text().find(what) != std::string::npos) return true;
    return false;
  };
  INFO(srv.stderr_text());
  REQUIRE(log_has("swactor master started"));
  // The master is up before its worker serves: a connection is accepted by the worker.
  line_client c(port);
  REQUIRE(c.ok());
  CHECK(c.call("world") == "hello, world?");
  CHECK(srv.terminate(5s) == 0);
}

TEST_CASE("plugins: reload under load in process mode serves the rebuilt plugin", "[plugins][installed]") {
  require_example();
  use_binary installed(installed_swactor());
  t::temp_dir plugins("swactor-plugin");
  const auto lib = plugins.file("libgreeter.so");
  fs::copy_file(greeter("hello"), lib);
  server_under_test srv("mode = \"process\"\nworkers = 2\nreactor_threads = 2\ndispatch_mode = \"round_robin\"\n"
                        "max_wait_time = \"2s\"",
                        R"([[listen]]
url = "tcp://127.0.0.1:{port}"
module = "greeter"
framing = { type = "eof", delimiter = "\n" }
[modules.greeter]
plugin = ")" + lib.string() + "\"\n");
  const auto before = srv.worker_pids(srv.stats());
  REQUIRE(before.size() == 2);
  {
    line_client c(srv.port);
    REQUIRE(c.call("a") == "hello, a!");
  }

  // Clients on connections opened before the reload, asking in a loop (bounded) until told
  // to stop; every answer must be one of the two greetings.
  constexpr int clients = 4;
  std::atomic<bool> stop{false};
  std::atomic<bool> reloaded{false};
  std::atomic<int> answered{0}, failed{0}, new_after_reload{0}, old_after_reload{0}, running{clients};
  std::vector<std::string> odd(clients);
  std::vector<std::thread> load;
  for (int i = 0; i < clients; ++i)
    load.emplace_back([&, i] {
      count_down done(running);
      line_client c(srv.port);
      if (!c.ok()) {
        ++failed;
        odd[static_cast<std::size_t>(i)] = "<connect failed>";
        return;
      }
      const auto name = "c" + std::to_string(i);
      for (int k = 0; k < 200000 && !stop; ++k) {
        // Read before asking: a reply that comes after "reload done" must be the new code's.
        bool after = reloaded;
        auto r = c.call(name);
        if (r == "hello, " + name + "!") {
          ++answered;
          if (after) ++old_after_reload;
        } else if (r == "bonjour, " + name + "!") {
          ++answered;
          if (after) ++new_after_reload;
        } else {
          ++failed;
          odd[static_cast<std::size_t>(i)] = r;
          return;  // "<no reply>": the connection is gone
        }
      }
    });
  // Until the clients got going (bounded: each client stops by itself after its requests).
  auto wait_answers = [&](int n) {
    const auto until = std::chrono::steady_clock::now() + 60s;
    while (answered < n && failed == 0 && running > 0 && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(5ms);
  };
  wait_answers(200);

  replace_atomically(greeter("bonjour"), lib);
  auto r = t::run({installed_swactor().string(), "reload", "--pid-file", srv.pid_file}, 10s);
  INFO("reload: " << r.out << r.err);
  REQUIRE(r.exit_code == 0);
  REQUIRE(srv.wait_log("reload done", 20s));
  reloaded = true;
  const int at_reload = answered;
  wait_answers(at_reload + 200);
  stop = true;
  for (auto& th : load) th.join();

  INFO("log:\n" << server_under_test::tail(srv.log()));
  for (const auto& o : odd) CHECK(o.empty());
  CHECK(failed == 0);
  CHECK(new_after_reload > 0);
  CHECK(old_after_reload == 0);
  // A new connection gets the new code too, from new worker processes.
  line_client fresh(srv.port);
  CHECK(fresh.call("z") == "bonjour, z!");
  auto after = srv.worker_pids(srv.stats());
  REQUIRE(after.size() == before.size());
  for (std::size_t i = 0; i < after.size(); ++i) CHECK(after[i] != before[i]);
  srv.extra_pids = before;
  srv.stop_and_check();
}

TEST_CASE("plugins: a plugin that fails to load on reload leaves the old workers serving", "[plugins][installed]") {
  require_example();
  use_binary installed(installed_swactor());
  t::temp_dir plugins("swactor-plugin");
  const auto lib = plugins.file("libgreeter.so");
  fs::copy_file(greeter("hello"), lib);
  server_under_test srv("workers = 2", R"([[listen]]
url = "tcp://127.0.0.1:{port}"
module = "greeter"
framing = { type = "eof", delimiter = "\n" }
[modules.greeter]
plugin = ")" + lib.string() + "\"\n");
  const auto before = srv.worker_pids(srv.stats());
  REQUIRE(before.size() == 2);

  // A broken file (no entry point) where the plugin was: the reload is refused, with why.
  replace_atomically(PLUGIN_NO_ENTRY, lib);
  const auto pid = std::stoi(t::read_file(srv.pid_file));
  REQUIRE(::kill(pid, SIGUSR1) == 0);
  REQUIRE(srv.wait_log("reload refused", 20s));
  INFO("log:\n" << server_under_test::tail(srv.log()));
  CHECK(srv.count_log("reload refused, the running processes keep serving: a new one would fail to start: .*" +
                      std::string("modules.greeter.plugin: .*is not a swactor plugin: no entry point")) == 1);
  CHECK(srv.worker_pids(srv.stats()) == before);
  for (int i = 0; i < 4; ++i) {
    line_client c(srv.port);
    CHECK(c.call("old") == "hello, old!");
  }

  // Fixed (the rebuilt plugin): the next reload goes through.
  replace_atomically(greeter("bonjour"), lib);
  REQUIRE(::kill(pid, SIGUSR1) == 0);
  REQUIRE(srv.wait_log("reload done", 20s));
  for (int i = 0; i < 4; ++i) {
    line_client c(srv.port);
    CHECK(c.call("new") == "bonjour, new!");
  }
  srv.extra_pids = before;
  srv.stop_and_check();
}
