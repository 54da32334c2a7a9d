#pragma once
// Black-box test harness: start real programs (the swactor binary, test servers, third-party
// tools), talk to them over loopback, and never leave a process behind.
//
//   swactor::testing::temp_dir dir;
//   auto cfg = dir.write("app.toml", "...");
//   swactor::testing::process srv({swactor::testing::swactor_bin(), "run", cfg.string()});
//   auto port = srv.wait_for("listening on .*:(\\d+)", 5s);   // group 1, or nullopt
//   auto r = swactor::testing::run({"curl", "-s", url}, 10s);  // exit code + output
//
// Children run in their own process group with stdin from /dev/null and stdout/stderr in
// files; they get SIGKILL when the test process dies (PR_SET_PDEATHSIG) and their group
// is killed and reaped when the `process` object goes away.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

namespace swactor::testing {

using duration = std::chrono::steady_clock::duration;

// Built programs: the compile definitions SWACTOR_BIN / SWACTOR_TEST_ECHO, overridden by
// environment variables of the same names.
std::string swactor_bin();
std::string echo_server_bin();

// -- files ---------------------------------------------------------------------------------

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
class temp_dir {
 public:
  explicit temp_dir(std::string_view prefix = "swactor-test");
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  temp_dir(temp_dir&& other) noexcept;
  temp_dir& operator=(temp_dir&&) = delete;

  const std::filesystem::path& path() const noexcept { return path_; }
  std::filesystem::path file(std::string_view name) const { return path_ / name; }
  // Writes `content` to path()/name (creating parent dirs); returns the full path.
  std::filesystem::path write(std::string_view name, std::string_view content) const;

 private:
  std::filesystem::path path_;
};

void write_file(const std::filesystem::path& p, std::string_view content);
std::string read_file(const std::filesystem::path& p);  // "" when missing

// -- ports ---------------------------------------------------------------------------------

// A port that was free on 127.0.0.1 a moment ago (bind to port 0, read it back, close).
std::uint16_t free_tcp_port();
std::uint16_t free_udp_port();

// -- processes -----------------------------------------------------------------------------

struct spawn_options {
  std::vector<std::string> env;           // extra "NAME=value" entries (override inherited)
  std::filesystem::path cwd;              // empty: inherit
  std::filesystem::path output_dir;       // where stdout/stderr files go; empty: own temp dir
};

class process {
 public:
  // Starts argv[0] (looked up in PATH when it has no '/'). Throws std::runtime_error when
  // the program cannot be started.
  explicit process(std::vector<std::string> argv, spawn_options opts = {});
  ~process();  // SIGKILL to the process group if still running, then reap
  process(const process&) = delete;
  process& operator=(const process&) = delete;
  process(process&& other) noexcept;
  process& operator=(process&&) = delete;

  pid_t pid() const noexcept { return pid_; }
  bool running();                       // reaps the child when it has exited
  // Exit status once exited: the exit code, or 128 + signal number.
  std::optional<int> exit_code() const noexcept { return status_; }

  // Waits until a complete stdout line matches `re` (std::regex_search). Returns the match
  // groups ([0] = the matched text, [1].. = groups), or nullopt on timeout or when the
  // process exits without printing such a line.
  std::optional<std::vector<std::string>> wait_for_line(const std::regex& re, duration timeout);
  // Same with a pattern string; returns group 1 if the pattern has one, else the match.
  std::optional<std::string> wait_for(const std::string& pattern, duration timeout);

  std::string stdout_text() const;
  std::string stderr_text() const;
  const std::filesystem::path& stdout_path() const noexcept { return out_path_; }
  const std::filesystem::path& stderr_path() const noexcept { return err_path_; }

  bool signal(int sig);                           // to the process only
  std::optional<int> wait(duration timeout);      // exit status, nullopt if still running
  int terminate(duration grace = std::chrono::seconds(2));  // SIGTERM, then SIGKILL group
  int kill();                                     // SIGKILL to the group, reap

 private:
  void reap_blocking();

  std::optional<temp_dir> own_dir_;
  std::filesystem::path out_path_;
  std::filesystem::path err_path_;
  pid_t pid_ = -1;
  std::optional<int> status_;
};

struct run_result {
  int exit_code = -1;     // exit code, or 128 + signal
  bool timed_out = false; // killed after `timeout`
  std::string out;
  std::string err;
  double elapsed_s = 0;
};

// Runs a command to completion (killing it after `timeout`) and collects its output.
run_result run(std::vector<std::string> argv, duration timeout, spawn_options opts = {});

// The lines of `text` (without newlines).
std::vector<std::string> lines(const std::string& text);

}  // namespace swactor::testing
