#pragma once
// Helpers for multi-process tests: children report through their exit code (no Catch
// macros after fork), and every child is killed and reaped before the helper returns.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <functional>
#include <thread>
#include <vector>

namespace swactor::ipc::testing {

// Forks a child running fn(); its return value is the exit code.
inline pid_t fork_child(const std::function<int()>& fn) {
  std::fflush(nullptr);  // or the child would print the parent's buffered output again
  pid_t pid = ::fork();
  if (pid == 0) {
    int code = 100;
    try {
      code = fn();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child threw: %s\n", e.what());
    } catch (...) {
    }
    std::fflush(nullptr);
    ::_exit(code);
  }
  return pid;
}

// Waits for `pid` up to `timeout`; SIGKILLs it after that. Returns the raw wait status.
inline int reap(pid_t pid, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  int st = 0;
  for (;;) {
    pid_t r = ::waitpid(pid, &st, WNOHANG);
    if (r == pid) return st;
    if (r < 0) return -1;
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &st, 0);
      return st;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

// Runs fn(i) in n children concurrently; returns their exit codes (-1 = killed/timeout).
inline std::vector<int> run_children(int n, const std::function<int(int)>& fn,
                                     std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  std::vector<pid_t> pids;
  for (int i = 0; i < n; ++i) pids.push_back(fork_child([&fn, i] { return fn(i); }));
  std::vector<int> codes;
  for (pid_t p : pids) {
    int st = reap(p, timeout);
    codes.push_back(st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1);
  }
  return codes;
}

}  // namespace swactor::ipc::testing
