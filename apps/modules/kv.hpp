#pragma once
// `kv`: a line-protocol key-value store on a shared-memory table, so every worker sees the
// same data; an optional user process logs the table's stats periodically and on request.
//
//   SET key value  -> OK            GET key  -> value | (nil)      DEL key -> 1 | 0
//   INCR key       -> new value     COUNT    -> rows                SNAPSHOT -> OK (the user
//   process logs the stats)         anything else -> ERR <reason>
//
// The table ([tables.NAME], named by `table`) needs a string column `value` and an int
// column `n` (INCR); values longer than the column are refused, not truncated.

#include <sstream>

#include "swactor/actors/context.hpp"
#include "swactor/actors/module.hpp"
#include "swactor/core/log.hpp"
#include "swactor/ipc/table.hpp"

namespace swactor::apps {

class kv final : public module_base {
 public:
  static constexpr std::string_view kName = "kv";
  static constexpr std::string_view kDoc =
      "Line-protocol key-value store (SET/GET/DEL/INCR/COUNT) on a shared [tables.NAME].";

  struct options {
    std::string table = "kv";
    std::chrono::milliseconds snapshot_interval{0};
  };
  static config::schema<options> schema() {
    config::schema<options> s;
    s.string("table", &options::table,
             "Name of the [tables.NAME] to use; it needs columns `value` (string) and `n` (int).")
        .duration("snapshot_interval", &options::snapshot_interval,
                  "When > 0, a user process logs the table's stats this often (and on SNAPSHOT).");
    return s;
  }
  explicit kv(options o) : opts_(std::move(o)) {}

  static int user_process_count(const options& o) { return o.snapshot_interval.count() > 0 ? 1 : 0; }

  task<void> on_worker_start(context& ctx) override {
    if (!ctx.table(opts_.table))
      log::error("kv {}: no table \"{}\"; declare [tables.{}]", instance_name(), opts_.table, opts_.table);
    co_return;
  }

  task<void> on_receive(context& ctx, session_id s, std::string line) override {
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    (void)ctx.send(s, execute(ctx, line) + "\n");
    co_return;
  }

  task<void> on_user_process(context& ctx, int) override {
    for (;;) {
      log_snapshot(ctx, "periodic");
      co_await sleep(opts_.snapshot_interval);
    }
  }

  task<void> on_pipe_message(context& ctx, int src, std::string msg) override {
    if (msg == "snapshot") log_snapshot(ctx, "requested by worker " + std::to_string(src));
    co_return;
  }

 private:
  std::string execute(context& ctx, const std::string& line) {
    auto* t = ctx.table(opts_.table);
    if (!t) return "ERR no table " + opts_.table;
    std::istringstream in(line);
    std::string cmd, key;
    in >> cmd >> key;
    for (auto& c : cmd) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (cmd == "COUNT") return std::to_string(t->count());
    if (cmd == "SNAPSHOT") {
      int id = ctx.user_process_id(0);
      if (id < 0) return "ERR snapshot_interval is 0: no user process";
      auto ec = ctx.send_message(id, "snapshot");
      return ec ? "ERR " + ec.message() : "OK";
    }
    if (key.empty()) return "ERR expected: " + cmd + " key";
    if (cmd == "SET") {
      std::string value;
      std::getline(in >> std::ws, value);
      auto ec = t->set(key, "value", std::string_view(value));
      return ec ? "ERR " + ec.message() : "OK";
    }
    if (cmd == "GET") {
      auto v = t->get_string(key, "value");
      return v ? *v : "(nil)";
    }
    if (cmd == "DEL") return t->del(key) ? "0" : "1";
    if (cmd == "INCR") {
      auto v = t->incr(key, "n", std::int64_t{1});
      return v ? std::to_string(*v) : "ERR " + v.error().message();
    }
    return "ERR unknown command \"" + cmd + "\"";
  }

  void log_snapshot(context& ctx, const std::string& why) {
    auto* t = ctx.table(opts_.table);
    if (!t) return;
    auto st = t->stats();
    log::notice("kv {} snapshot ({}): {} rows of {}, {} inserts, {} updates, {} deletes, longest chain {}",
                instance_name(), why, st.rows, st.capacity, st.inserts, st.updates, st.deletes, st.longest_chain);
  }

  options opts_;
};

}  // namespace swactor::apps
