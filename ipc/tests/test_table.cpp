#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <set>
#include <string>
#include <thread>

#include "fork_helpers.hpp"
#include "swactor/core/loop.hpp"
#include "swactor/ipc/atomic.hpp"
#include "swactor/ipc/process.hpp"
#include "swactor/ipc/table.hpp"

using namespace swactor::ipc;
using swactor::ipc::testing::fork_child;
using swactor::ipc::testing::reap;
using swactor::ipc::testing::run_children;

namespace {

table_schema counters_schema(std::size_t rows = 1024) {
  table_schema s;
  s.size = rows;
  s.column("n", column_type::int64).column("f", column_type::float64).column("s", column_type::string, 16);
  return s;
}

table make_table(const table_schema& s) {
  auto t = table::create("test", s);
  REQUIRE(t);
  return std::move(*t);
}

// When this binary is exec'd as a table child (see "attach after fork+exec"), it does its
// part before main() and exits: Catch never starts in the child.
struct exec_child_hook {
  exec_child_hook() {
    const char* fd = std::getenv("SWACTOR_IPC_TEST_TABLE_FD");
    if (!fd) return;
    auto t = table::attach(std::atoi(fd));
    if (!t) ::_exit(10);
    if (!t->incr("exec", "n", 5)) ::_exit(11);
    if (t->set("from_exec", {{"s", "hello"}})) ::_exit(12);
    ::_exit(0);
  }
} exec_child_hook_instance;

}  // namespace

TEST_CASE("table schema validation reports every problem", "[table]") {
  table_schema s;
  CHECK(s.validate().size() == 1);  // size 0
  s.size = 10;
  s.column("a", column_type::int64)
      .column("a", column_type::float64)
      .column("", column_type::int64)
      .column("str", column_type::string, 0)
      .column("i", column_type::int64, 4);
  auto errs = s.validate();
  CHECK(errs.size() == 4);
  for (const auto& e : errs) INFO(e);
  auto t = table::create("bad", s);
  REQUIRE_FALSE(t);
  CHECK(t.error() == shm_errc::invalid_schema);
  CHECK(counters_schema().validate().empty());
  CHECK(parse_column_type("int") == column_type::int64);
  CHECK(parse_column_type("float") == column_type::float64);
  CHECK(parse_column_type("string") == column_type::string);
  CHECK_FALSE(parse_column_type("blob"));
}

TEST_CASE("table set/get/exists/del/count in one process", "[table]") {
  auto t = make_table(counters_schema());
  CHECK(t.count() == 0);
  CHECK_FALSE(t.set("k1", {{"n", 42}, {"f", 1.5}, {"s", "abc"}}));
  CHECK(t.exists("k1"));
  CHECK_FALSE(t.exists("k2"));
  CHECK(t.count() == 1);
  auto r = t.get("k1");
  REQUIRE(r);
  CHECK(r->key() == "k1");
  CHECK(r->get_int("n") == 42);
  CHECK(r->get_float("f") == 1.5);
  CHECK(r->get_string("s") == "abc");
  CHECK(*t.get_int("k1", "n") == 42);
  CHECK(*t.get_float("k1", "f") == 1.5);
  CHECK(*t.get_string("k1", "s") == "abc");
  auto v = t.get("k1", "s");
  REQUIRE(v);
  CHECK(std::get<std::string>(*v) == "abc");

  // partial update keeps the other columns
  CHECK_FALSE(t.set("k1", "n", 7));
  CHECK(*t.get_int("k1", "n") == 7);
  CHECK(*t.get_string("k1", "s") == "abc");
  // an insert zeroes what it does not set
  CHECK_FALSE(t.set("k2", {{"s", "x"}}));
  CHECK(*t.get_int("k2", "n") == 0);
  CHECK(*t.get_float("k2", "f") == 0.0);
  // int accepted for a float column
  CHECK_FALSE(t.set("k2", "f", 3));
  CHECK(*t.get_float("k2", "f") == 3.0);

  CHECK_FALSE(t.del("k1"));
  CHECK(t.del("k1") == shm_errc::not_found);
  CHECK(t.get("k1").error() == shm_errc::not_found);
  CHECK(t.get_int("k1", "n").error() == shm_errc::not_found);
  CHECK(t.count() == 1);
  // binary-safe keys and values
  std::string bin("a\0b", 3);
  CHECK_FALSE(t.set(bin, "s", std::string_view("\0\1", 2)));
  CHECK(*t.get_string(bin, "s") == std::string("\0\1", 2));
  CHECK_FALSE(t.exists("a"));
}

TEST_CASE("table add, update, incr/decr and cmpset semantics", "[table]") {
  auto t = make_table(counters_schema());
  CHECK_FALSE(t.add("a", {{"n", 1}}));
  CHECK(t.add("a", {{"n", 2}}) == shm_errc::exists);
  CHECK(*t.get_int("a", "n") == 1);
  CHECK(t.update("b", {{"n", 2}}) == shm_errc::not_found);
  CHECK_FALSE(t.exists("b"));
  CHECK_FALSE(t.update("a", {{"n", 5}}));
  CHECK(*t.get_int("a", "n") == 5);

  CHECK(*t.incr("c", "n") == 1);  // creates the row
  CHECK(*t.incr("c", "n", 10) == 11);
  CHECK(*t.decr("c", "n", 3) == 8);
  CHECK(*t.decr("c", "n") == 7);
  CHECK(*t.incr("c", "f", 0.5) == 0.5);
  CHECK(*t.decr("c", "f", 2.0) == -1.5);
  CHECK(t.incr("c", "s").error() == shm_errc::type_mismatch);
  CHECK(t.incr("c", "f", 1).error() == shm_errc::type_mismatch);  // int on a float column
  CHECK(t.incr("c", "nope").error() == shm_errc::no_such_column);

  auto ok = t.cmpset("c", "n", 7, 100);
  REQUIRE(ok);
  CHECK(*ok);
  auto no = t.cmpset("c", "n", 7, 200);
  REQUIRE(no);
  CHECK_FALSE(*no);
  CHECK(*t.get_int("c", "n") == 100);
  CHECK(*t.cmpset("a", "s", "", "set"));
  CHECK(*t.get_string("a", "s") == "set");
  CHECK(t.cmpset("zz", "n", 0, 1).error() == shm_errc::not_found);
  CHECK(t.cmpset("c", "n", "x", 1).error() == shm_errc::type_mismatch);
  CHECK(t.cmpset("c", "s", "", "way too long for the column").error() ==
        shm_errc::value_too_long);
}

TEST_CASE("table rejects long keys, long strings and wrong types without writing", "[table]") {
  auto t = make_table(counters_schema());
  std::string k63(63, 'k'), k64(64, 'k');
  CHECK_FALSE(t.set(k63, "n", 1));
  CHECK(*t.get_int(k63, "n") == 1);
  CHECK(t.set(k64, "n", 1) == shm_errc::key_too_long);
  CHECK(t.incr(k64, "n").error() == shm_errc::key_too_long);
  CHECK(t.get(k64).error() == shm_errc::key_too_long);
  CHECK(t.del(k64) == shm_errc::key_too_long);
  CHECK_FALSE(t.exists(k64));

  CHECK_FALSE(t.set("s", "s", std::string(16, 'x')));  // exactly the column size
  CHECK(t.set("s", "s", std::string(17, 'y')) == shm_errc::value_too_long);
  CHECK(*t.get_string("s", "s") == std::string(16, 'x'));  // untouched, not truncated
  CHECK(t.set("new", {{"n", 1}, {"s", std::string(17, 'y')}}) == shm_errc::value_too_long);
  CHECK_FALSE(t.exists("new"));  // nothing written, not even the valid field
  CHECK(t.set("s", "n", "text") == shm_errc::type_mismatch);
  CHECK(t.set("s", "s", 5) == shm_errc::type_mismatch);
  CHECK(t.set("s", "n", 1.5) == shm_errc::type_mismatch);
  CHECK(t.set("s", "missing", 1) == shm_errc::no_such_column);
  CHECK(t.get("s", "missing").error() == shm_errc::no_such_column);
  CHECK(t.get_int("s", "s").error() == shm_errc::type_mismatch);
}

TEST_CASE("table modify/inspect work on one row in place", "[table]") {
  auto t = make_table(counters_schema(64));
  const int n = t.column_index("n"), str = t.column_index("s");
  CHECK(t.column_index("nope") == -1);
  // An absent row: reads give zero values; the first write creates it.
  bool existed = true;
  CHECK_FALSE(t.modify("a", [&](row_ref& r) {
    existed = r.exists();
    CHECK(r.get_int(n) == 0);
    CHECK(r.get_string(str).empty());
    CHECK_FALSE(r.set(n, std::int64_t{7}));
    CHECK_FALSE(r.set(str, std::string_view("hello")));
    CHECK(r.set(str, std::string_view("this is longer than 16")) == shm_errc::value_too_long);
    CHECK(r.set(n, std::string_view("x")) == shm_errc::type_mismatch);
  }));
  CHECK_FALSE(existed);
  CHECK(*t.get_int("a", "n") == 7);
  CHECK(*t.get_string("a", "s") == "hello");
  std::string seen;
  CHECK_FALSE(t.inspect("a", [&](const row_ref& r) { seen = std::string(r.get_string(str)) + std::to_string(r.get_int(n)); }));
  CHECK(seen == "hello7");
  // Read-modify-write, then erase inside modify.
  CHECK_FALSE(t.modify("a", [&](row_ref& r) { (void)r.set(n, r.get_int(n) * 6); }));
  CHECK(*t.get_int("a", "n") == 42);
  CHECK_FALSE(t.modify("a", [&](row_ref& r) {
    r.erase();
    CHECK_FALSE(r.exists());
  }));
  CHECK_FALSE(t.exists("a"));
  CHECK(t.count() == 0);
  // Absent and untouched: nothing is created.
  CHECK_FALSE(t.modify("b", [](row_ref&) {}));
  CHECK_FALSE(t.exists("b"));
  CHECK(t.modify(std::string(64, 'k'), [](row_ref&) { FAIL("ran for a too-long key"); }) == shm_errc::key_too_long);
}

TEST_CASE("table scan visits every row once per pass and may erase", "[table]") {
  auto t = make_table(counters_schema(256));
  const int n = t.column_index("n");
  for (int i = 0; i < 200; ++i) REQUIRE_FALSE(t.set("k" + std::to_string(i), "n", i));
  std::multiset<std::string> keys;
  std::uint64_t cursor = 0;
  int calls = 0;
  do {
    cursor = t.scan(cursor, 10, [&](row_ref& r) {
      keys.insert(std::string(r.key()));
      if (r.get_int(n) % 2 == 0) r.erase();  // erase the even ones while scanning
    });
    ++calls;
  } while (cursor != 0);
  CHECK(calls > 5);  // it stops after about `count` rows
  CHECK(keys.size() == 200);
  CHECK(std::set<std::string>(keys.begin(), keys.end()).size() == 200);
  CHECK(t.count() == 100);
  for (int i = 0; i < 200; ++i) CHECK(t.exists("k" + std::to_string(i)) == (i % 2 == 1));
  CHECK(t.bucket_count() == 256);
}

TEST_CASE("a full table refuses inserts and overwrites nothing", "[table]") {
  auto s = counters_schema(8);
  auto t = make_table(s);
  for (int i = 0; i < 8; ++i) REQUIRE_FALSE(t.set("k" + std::to_string(i), "n", i));
  CHECK(t.count() == 8);
  CHECK(t.set("extra", "n", 99) == shm_errc::table_full);
  CHECK(t.incr("extra", "n").error() == shm_errc::table_full);
  CHECK(t.add("extra", {{"n", 1}}) == shm_errc::table_full);
  CHECK_FALSE(t.exists("extra"));
  for (int i = 0; i < 8; ++i) CHECK(*t.get_int("k" + std::to_string(i), "n") == i);
  // updates of existing rows still work when full
  CHECK_FALSE(t.set("k3", "n", 33));
  CHECK(*t.get_int("k3", "n") == 33);
  // a delete makes room (the row is recycled)
  CHECK_FALSE(t.del("k0"));
  CHECK_FALSE(t.set("extra", "n", 99));
  CHECK(t.set("extra2", "n", 1) == shm_errc::table_full);
  auto st = t.stats();
  CHECK(st.rows == 8);
  CHECK(st.capacity == 8);
  CHECK(st.full_failures == 4);
  CHECK(st.inserts == 9);
  CHECK(st.deletes == 1);
  CHECK(st.updates == 1);
  CHECK(st.memory_bytes > 0);
}

TEST_CASE("table stats count collisions and chains", "[table]") {
  auto t = make_table(counters_schema(4096));
  for (int i = 0; i < 4096; ++i) REQUIRE_FALSE(t.set("key:" + std::to_string(i), "n", i));
  auto st = t.stats();
  CHECK(st.rows == 4096);
  CHECK(st.buckets == 4096);
  CHECK(st.collisions > 0);  // load factor 1: some buckets hold several rows
  CHECK(st.longest_chain >= 2);
  CHECK(st.longest_chain < 16);
  CHECK(st.chained_rows == st.collisions);
  std::size_t seen = 0;
  std::int64_t sum = 0;
  t.for_each([&](const row& r) {
    ++seen;
    sum += r.get_int("n");
    return true;
  });
  CHECK(seen == 4096);
  CHECK(sum == 4095LL * 4096 / 2);
  // early stop
  CHECK(t.for_each([](const row&) { return false; }) == 1);
}

TEST_CASE("4 processes incr one key: exact total", "[table][multiprocess]") {
  constexpr int procs = 4;
  constexpr int iterations = 1'000'000;
  auto t = make_table(counters_schema());
  auto go = atomic::create(0);
  REQUIRE(go);
  // All children start together so that they really contend (a gate, opened below).
  std::thread opener([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    go->set(1);
    go->notify(-1);
  });
  auto start = std::chrono::steady_clock::now();
  auto codes = run_children(procs, [&](int) {
    while (go->get() == 0) go->wait_while(0, std::chrono::milliseconds(100));
    for (int i = 0; i < iterations; ++i)
      if (!t.incr("hot", "n")) return 1;
    for (int i = 0; i < 1000; ++i)
      if (!t.incr("hotf", "f", 0.5)) return 2;
    return 0;
  }, std::chrono::seconds(40));
  opener.join();
  auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  WARN("4 x 1,000,000 incr on one key: " << secs << " s");
  for (int c : codes) CHECK(c == 0);
  CHECK(*t.get_int("hot", "n") == std::int64_t(procs) * iterations);
  CHECK(*t.get_float("hotf", "f") == procs * 1000 * 0.5);
  CHECK(t.stats().lock_recoveries == 0);
  // The counters are striped by pid: every process's updates are summed.
  CHECK(t.stats().inserts == 2);
  CHECK(t.stats().updates == std::uint64_t(procs) * (iterations + 1000) - 2);
}

TEST_CASE("table prefetch is only a hint", "[table]") {
  auto t = make_table(counters_schema(64));
  REQUIRE_FALSE(t.set("a", "n", 1));
  const std::string long_key(100, 'x');
  std::vector<std::string_view> keys{"a", "absent", long_key, ""};
  for (int i = 0; i < 70; ++i) keys.push_back("a");  // more than one batch
  t.prefetch(keys);
  t.prefetch({});
  CHECK(*t.get_int("a", "n") == 1);
  CHECK_FALSE(t.exists("absent"));
  CHECK(t.count() == 1);
}

TEST_CASE("4 processes race add/del/cmpset: one winner per round", "[table][multiprocess]") {
  constexpr int procs = 4;
  constexpr int rounds = 2000;
  auto s = counters_schema(4096);
  auto t = make_table(s);
  // Every process tries to add "round:i" and to win "claim:i" by cmpset 0 -> its id; the
  // winners count their wins in per-process rows. Then each deletes "gone:i" once added.
  for (int i = 0; i < rounds; ++i) REQUIRE_FALSE(t.set("claim:" + std::to_string(i), "n", 0));
  for (int i = 0; i < 64; ++i) REQUIRE_FALSE(t.set("gone:" + std::to_string(i), "n", i));
  auto codes = run_children(procs, [&](int id) {
    for (int i = 0; i < rounds; ++i) {
      auto r = std::to_string(i);
      auto ec = t.add("round:" + r, {{"n", id + 1}});
      if (!ec) {
        if (!t.incr("add_wins:" + std::to_string(id), "n")) return 1;
      } else if (ec != shm_errc::exists) {
        return 2;
      }
      auto c = t.cmpset("claim:" + r, "n", 0, id + 1);
      if (!c) return 3;
      if (*c && !t.incr("cas_wins:" + std::to_string(id), "n")) return 4;
      if (i < 64) {
        auto d = t.del("gone:" + r);
        if (!d) {
          if (!t.incr("del_wins:" + std::to_string(id), "n")) return 5;
        } else if (d != shm_errc::not_found) {
          return 6;
        }
      }
    }
    return 0;
  });
  for (int c : codes) CHECK(c == 0);
  std::int64_t add_wins = 0, cas_wins = 0, del_wins = 0;
  for (int id = 0; id < procs; ++id) {
    auto a = t.get_int("add_wins:" + std::to_string(id), "n");
    auto c = t.get_int("cas_wins:" + std::to_string(id), "n");
    auto d = t.get_int("del_wins:" + std::to_string(id), "n");
    add_wins += a ? *a : 0;
    cas_wins += c ? *c : 0;
    del_wins += d ? *d : 0;
  }
  CHECK(add_wins == rounds);
  CHECK(cas_wins == rounds);
  CHECK(del_wins == 64);
  int bad = 0;
  for (int i = 0; i < rounds; ++i) {
    auto owner = t.get_int("round:" + std::to_string(i), "n");
    auto claim = t.get_int("claim:" + std::to_string(i), "n");
    if (!owner || *owner < 1 || *owner > procs || !claim || *claim < 1 || *claim > procs) ++bad;
  }
  CHECK(bad == 0);
  for (int i = 0; i < 64; ++i) CHECK_FALSE(t.exists("gone:" + std::to_string(i)));
}

TEST_CASE("a process killed while holding a row lock does not wedge the table",
          "[table][multiprocess]") {
  auto t = make_table(counters_schema());
  REQUIRE_FALSE(t.set("victim", "n", 1));
  auto ready = atomic::create(0);
  REQUIRE(ready);
  pid_t pid = fork_child([&] {
    t.debug_leak_lock("victim");
    ready->set(1);
    ready->notify();
    ::pause();
    return 0;
  });
  while (ready->get() == 0) ready->wait_while(0, std::chrono::milliseconds(100));
  ::kill(pid, SIGKILL);
  // Not reaped yet: the owner is a zombie, which must count as dead too.
  auto start = std::chrono::steady_clock::now();
  auto v = t.incr("victim", "n");
  auto waited = std::chrono::steady_clock::now() - start;
  reap(pid);
  REQUIRE(v);
  CHECK(*v == 2);
  CHECK(waited < std::chrono::seconds(2));
  CHECK(t.stats().lock_recoveries == 1);
  // and it stays usable
  CHECK(*t.incr("victim", "n") == 3);
  CHECK_FALSE(t.del("victim"));

  // A reader (lock-free path) meets the dead writer's bucket first: it falls back to the
  // lock and recovers it too.
  REQUIRE_FALSE(t.set("victim2", "n", 5));
  ready->set(0);
  pid = fork_child([&] {
    t.debug_leak_lock("victim2");
    ready->set(1);
    ready->notify();
    ::pause();
    return 0;
  });
  while (ready->get() == 0) ready->wait_while(0, std::chrono::milliseconds(100));
  ::kill(pid, SIGKILL);
  reap(pid);
  auto g = t.get_int("victim2", "n");
  REQUIRE(g);
  CHECK(*g == 5);
  CHECK(t.stats().lock_recoveries == 2);
  CHECK(*t.incr("victim2", "n") == 6);
}

TEST_CASE("children killed at random while hammering the table leave it usable",
          "[table][multiprocess]") {
  auto t = make_table(counters_schema(64));
  std::vector<pid_t> pids;
  for (int i = 0; i < 3; ++i)
    pids.push_back(fork_child([&, i] {
      for (std::uint64_t n = 0;; ++n) {
        auto k = "k" + std::to_string(n % 8);
        t.incr(k, "n");
        t.set(k, "s", "v" + std::to_string(i));
        if (n % 3 == 0) t.del(k);
      }
      return 0;
    }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  for (pid_t p : pids) ::kill(p, SIGKILL);
  for (pid_t p : pids) reap(p);
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 8; ++i) {
    auto k = "k" + std::to_string(i);
    CHECK(t.incr(k, "n"));
    CHECK(t.exists(k));
  }
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
  // Rows leaked by a death between allocation and linking are the only possible loss.
  CHECK(t.count() >= 8);
}

TEST_CASE("iteration sees consistent rows while other processes write",
          "[table][multiprocess]") {
  table_schema s;
  s.size = 256;
  s.column("a", column_type::int64).column("b", column_type::int64).column("s", column_type::string, 24);
  auto t = make_table(s);
  std::vector<pid_t> pids;
  for (int w = 0; w < 2; ++w)
    pids.push_back(fork_child([&, w] {
      for (std::int64_t v = 0;; ++v) {
        auto k = "row" + std::to_string((v * 7 + w) % 200);
        auto sv = std::to_string(v);
        if (t.set(k, {{"a", v}, {"s", sv}, {"b", v}})) return 1;
        if (v % 5 == 0) t.del("row" + std::to_string((v * 3) % 200));
      }
      return 0;
    }));
  int torn = 0, passes = 0;
  std::size_t rows = 0;
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
  while (std::chrono::steady_clock::now() < until) {
    rows += t.for_each([&](const row& r) {
      auto a = r.get_int("a");
      if (a != r.get_int("b") || std::to_string(a) != r.get_string("s")) ++torn;
      return true;
    });
    ++passes;
  }
  for (pid_t p : pids) ::kill(p, SIGKILL);
  for (pid_t p : pids) reap(p);
  INFO("passes " << passes << ", rows seen " << rows);
  CHECK(torn == 0);
  CHECK(rows > 0);
}

TEST_CASE("a table created before fork+exec is attached from the inherited fd",
          "[table][multiprocess]") {
  auto t = make_table(counters_schema());
  REQUIRE_FALSE(t.set("exec", "n", 1));
  swactor::loop lp;
  std::optional<exit_status> status;
  std::error_code start_error;
  swactor::spawn(lp.context(), [&]() -> swactor::task<void> {
    process_options o;
    o.channel = false;
    o.inherit_fds = {t.fd()};
    o.env = {"SWACTOR_IPC_TEST_TABLE_FD=" + std::to_string(t.fd())};
    auto p = process::exec(lp.executor(), {"/proc/self/exe"}, o);
    if (!p) {
      start_error = p.error();
      co_return;
    }
    auto st = co_await p->wait(std::chrono::seconds(10));
    if (st) status = *st;
  });
  lp.run();
  REQUIRE_FALSE(start_error);
  REQUIRE(status);
  CHECK(status->success());
  CHECK(*t.get_int("exec", "n") == 6);
  CHECK(*t.get_string("from_exec", "s") == "hello");

  // and attach() refuses what is not a table
  auto a = atomic::create(1);
  REQUIRE(a);
  CHECK(table::attach(a->fd()).error() == shm_errc::bad_segment);
  CHECK(table::attach(12345).error());
}
