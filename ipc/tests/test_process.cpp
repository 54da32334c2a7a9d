#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <optional>
#include <string>

#include "swactor/core/loop.hpp"
#include "swactor/ipc/process.hpp"

using namespace swactor::ipc;
using namespace std::chrono_literals;
using swactor::task;

namespace {
// Runs `body` as the only coroutine of a fresh loop; the loop ends when it returns.
template <class F>
void run_on_loop(F body) {
  swactor::loop lp;
  bool finished = false;
  swactor::spawn(lp.context(), [&]() -> task<void> {
    co_await body(lp.executor());
    finished = true;
  });
  lp.run();
  REQUIRE(finished);
}
}  // namespace

TEST_CASE("exec captures stdout and the exit code", "[process]") {
  std::string out;
  std::optional<exit_status> st, st3;
  std::error_code start_ec;
  run_on_loop([&](asio::any_io_executor ex) -> task<void> {
    process_options o;
    o.pipe_stdout = true;
    o.channel = false;
    auto p = process::exec(ex, {"echo", "hello", "world"}, o);
    if (!p) {
      start_ec = p.error();
      co_return;
    }
    auto r = co_await p->read_all(5s);
    if (r) out = *r;
    auto s = co_await p->wait(5s);
    if (s) st = *s;

    auto q = process::exec(ex, {"sh", "-c", "echo err >&2; exit 3"}, o);
    if (!q) co_return;
    auto s3 = co_await q->wait(5s);
    if (s3) st3 = *s3;
  });
  REQUIRE_FALSE(start_ec);
  CHECK(out == "hello world\n");
  REQUIRE(st);
  CHECK(st->success());
  REQUIRE(st3);
  CHECK(st3->exited());
  CHECK(st3->code == 3);
  CHECK(st3->to_string() == "exit code 3");
}

TEST_CASE("exec of a missing program fails cleanly", "[process]") {
  std::error_code ec;
  run_on_loop([&](asio::any_io_executor ex) -> task<void> {
    auto p = process::exec(ex, {"/nonexistent/program"});
    if (!p) ec = p.error();
    co_return;
  });
  CHECK(ec == shm_errc::exec_failed);
}

TEST_CASE("kill reports the signal, wait times out while the child runs", "[process]") {
  std::optional<exit_status> st;
  std::error_code early, after;
  run_on_loop([&](asio::any_io_executor ex) -> task<void> {
    auto p = process::exec(ex, {"sleep", "30"});
    if (!p) co_return;
    auto w = co_await p->wait(50ms);
    early = w ? std::error_code{} : w.error();
    p->kill(SIGTERM);
    auto s = co_await p->wait(5s);
    if (s) st = *s;
    after = p->kill(SIGTERM);
  });
  CHECK(early == swactor::errc::timeout);
  REQUIRE(st);
  CHECK(st->signal == SIGTERM);
  CHECK_FALSE(st->exited());
  CHECK(st->to_string().find("SIGTERM") != std::string::npos);
  CHECK(after == shm_errc::not_running);
}

TEST_CASE("stdin and stdout pipes round trip through cat", "[process]") {
  std::string out;
  std::error_code wec;
  run_on_loop([&](asio::any_io_executor ex) -> task<void> {
    process_options o;
    o.pipe_stdin = true;
    o.pipe_stdout = true;
    o.channel = false;
    auto p = process::exec(ex, {"cat"}, o);
    if (!p) co_return;
    // Larger than a pipe buffer: cat blocks on its stdout, so write and read concurrently.
    auto* proc = &*p;
    swactor::spawn(ex, [&wec, proc]() -> task<void> {
      std::string big(200000, 'x');
      wec = co_await proc->write(big, 5s);
      proc->close_stdin();
    });
    auto r = co_await p->read_all(5s);
    if (r) out = *r;
    co_await p->wait(5s);
  });
  CHECK_FALSE(wec);
  CHECK(out.size() == 200000);
}

TEST_CASE("a forked callable exchanges framed messages and exits with its code", "[process]") {
  std::vector<std::string> replies;
  std::optional<exit_status> st;
  std::error_code recv_timeout;
  std::string out;
  run_on_loop([&](asio::any_io_executor ex) -> task<void> {
    process_options o;
    o.pipe_stdout = true;
    auto p = process::start(
        ex,
        [](child_context& ctx) {
          std::printf("child says hi\n");
          auto& ch = ctx.channel();
          for (;;) {
            auto m = ch.recv_sync(5s);
            if (!m) return 1;
            if (*m == "quit") return 7;
            std::string up = *m;
            std::transform(up.begin(), up.end(), up.begin(), ::toupper);
            if (ch.send_sync(up)) return 2;
          }
        },
        o);
    if (!p) co_return;
    auto quiet = co_await p->recv(30ms);  // nothing sent yet
    recv_timeout = quiet ? std::error_code{} : quiet.error();
    for (std::string m : {std::string("ping"), std::string(), std::string(100000, 'a')}) {
      auto ec = co_await p->send(m, 2s);
      if (ec) co_return;
      auto r = co_await p->recv(2s);
      if (!r) co_return;
      replies.push_back(*r);
    }
    co_await p->send("quit", 2s);
    auto all = co_await p->read_all(5s);
    if (all) out = *all;
    auto s = co_await p->wait(5s);
    if (s) st = *s;
  });
  CHECK(recv_timeout == swactor::errc::timeout);
  REQUIRE(replies.size() == 3);
  CHECK(replies[0] == "PING");
  CHECK(replies[1] == "");
  CHECK(replies[2] == std::string(100000, 'A'));
  CHECK(out == "child says hi\n");
  REQUIRE(st);
  CHECK(st->code == 7);
}

TEST_CASE("a child that dies closes the channel, destroying a process kills it", "[process]") {
  std::error_code ec;
  pid_t orphan = 0;
  run_on_loop([&](asio::any_io_executor ex) -> task<void> {
    auto p = process::start(ex, [](child_context&) { return 0; });
    if (!p) co_return;
    auto r = co_await p->recv(5s);
    ec = r ? std::error_code{} : r.error();
    co_await p->wait(5s);
    {
      auto q = process::exec(ex, {"sleep", "30"});
      if (!q) co_return;
      orphan = q->pid();
    }  // ~process: SIGKILL + reap
  });
  CHECK(ec == swactor::errc::closed);
  REQUIRE(orphan > 0);
  CHECK(::kill(orphan, 0) != 0);  // gone and reaped
}

TEST_CASE("process pool: messages by index, a killed child is restarted", "[process][pool]") {
  std::vector<std::string> before, after;
  std::size_t exits = 0;
  pid_t old_pid = 0, new_pid = 0;
  std::uint64_t restarts = 0;
  run_on_loop([&](asio::any_io_executor ex) -> task<void> {
    pool_options o;
    o.restart_delay = 10ms;
    process_pool pool(
        ex, 3,
        [](child_context& ctx) {
          auto& ch = ctx.channel();
          for (;;) {
            auto m = ch.recv_sync();
            if (!m) return 0;
            if (ch.send_sync(std::to_string(ctx.index()) + ":" + *m)) return 1;
          }
        },
        o);
    pool.on_exit([&](std::size_t, exit_status) { ++exits; });
    if (pool.start()) co_return;
    for (std::size_t i = 0; i < 3; ++i) {
      co_await pool.send(i, "hello", 2s);
      auto r = co_await pool.recv(i, 2s);
      before.push_back(r ? *r : r.error().message());
    }
    old_pid = pool.pid(1);
    ::kill(old_pid, SIGKILL);
    for (int i = 0; i < 200 && (pool.pid(1) == 0 || pool.pid(1) == old_pid); ++i)
      co_await swactor::sleep(10ms);
    new_pid = pool.pid(1);
    restarts = pool.restarts(1);
    for (std::size_t i = 0; i < 3; ++i) {
      co_await pool.send(i, "again", 2s);
      auto r = co_await pool.recv(i, 2s);
      after.push_back(r ? *r : r.error().message());
    }
    co_await pool.stop(1s);
    for (std::size_t i = 0; i < 3; ++i)
      if (pool.pid(i) != 0) after.push_back("still running");
  });
  CHECK(before == std::vector<std::string>{"0:hello", "1:hello", "2:hello"});
  CHECK(new_pid != 0);
  CHECK(new_pid != old_pid);
  CHECK(restarts == 1);
  CHECK(exits == 1);
  CHECK(after == std::vector<std::string>{"0:again", "1:again", "2:again"});
}
