#pragma once
// A fixed-size hash table in shared memory (Swoole\Table): created by the master before the
// workers start, used by every process that maps it. Rows have a schema of typed columns;
// keys are at most 63 bytes.
//
// Memory: a memfd holding a header, a power-of-two array of buckets and `size` rows. Each
// bucket has its own lock word (the owner's pid) and a chain of rows; there is no global
// lock: get/set/incr touch one bucket only, and inserts/deletes also update a lock-free
// free list and the row count. Each operation is atomic with respect to the other
// operations on the same key. A process that dies holding a bucket lock does not wedge
// the table: a waiter notices the dead pid after a few milliseconds, takes the lock over
// and logs a warning (the rows of that bucket may hold a half-written value).
//
//   auto t = table::create("sessions", schema);   // master, before fork(+exec)
//   child: auto t = table::attach(fd);            // after exec, fd inherited
//   t->set("user:1", {{"hits", 1}, {"name", "ann"}});
//   auto hits = t->incr("user:1", "hits");          // result<int64_t>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <variant>
#include <vector>

#include "swactor/core/error.hpp"
#include "swactor/ipc/shm.hpp"
#include "swactor/ipc/shm_error.hpp"

namespace swactor::ipc {

// -- schema -------------------------------------------------------------------------------

enum class column_type : std::uint8_t {
  int64 = 1,    // "int": a signed 64-bit integer
  float64 = 2,  // "float": a double
  string = 3,   // "string": up to `size` bytes (binary safe), longer values are rejected
};

std::string_view column_type_name(column_type t) noexcept;
// "int", "float", "string" (the names used in [tables.NAME] config).
std::optional<column_type> parse_column_type(std::string_view name) noexcept;

struct column_def {
  std::string name;
  column_type type = column_type::int64;
  std::size_t size = 0;  // string: max bytes (required); int/float: 0 or 8
};

struct table_schema {
  static constexpr std::size_t max_rows = std::size_t{1} << 30;
  static constexpr std::size_t max_columns = 64;
  static constexpr std::size_t max_column_name = 63;
  static constexpr std::size_t max_string_size = std::size_t{1} << 20;

  std::size_t size = 0;  // rows: the capacity, fixed at creation
  std::vector<column_def> columns;

  table_schema& column(std::string name, column_type type, std::size_t size = 0) {
    columns.push_back({std::move(name), type, size});
    return *this;
  }

  // One human-readable message per problem; empty when the schema is usable.
  std::vector<std::string> validate() const;
};

// -- values and rows ----------------------------------------------------------------------

using value = std::variant<std::int64_t, double, std::string>;
// What set() takes: no allocation, string_view into the caller's data. An int64 value is
// accepted for a float column (converted); anything else must match the column type.
using value_ref = std::variant<std::int64_t, double, std::string_view>;

struct field {
  std::string_view column;
  value_ref value;
};

namespace detail {
struct table_layout;
}

// A copy of one row, read under its lock (so consistent).
class row {
 public:
  const std::string& key() const noexcept { return key_; }
  const std::vector<value>& values() const noexcept { return values_; }
  const std::vector<column_def>& columns() const noexcept;
  // nullptr when there is no such column.
  const value* find(std::string_view column) const noexcept;
  // Throws std::out_of_range (no such column) or std::bad_variant_access (wrong type).
  const value& operator[](std::string_view column) const;
  std::int64_t get_int(std::string_view column) const { return std::get<std::int64_t>((*this)[column]); }
  double get_float(std::string_view column) const { return std::get<double>((*this)[column]); }
  const std::string& get_string(std::string_view column) const {
    return std::get<std::string>((*this)[column]);
  }

 private:
  friend class table;
  std::shared_ptr<const detail::table_layout> layout_;
  std::string key_;
  std::vector<value> values_;
};

struct table_stats {
  std::size_t rows = 0;           // rows in use now
  std::size_t capacity = 0;       // schema.size
  std::size_t buckets = 0;        // hash buckets (power of two >= capacity)
  std::size_t longest_chain = 0;  // rows in the fullest bucket, now
  std::size_t chained_rows = 0;   // rows that are not first in their bucket, now
  std::uint64_t collisions = 0;   // inserts that landed in a non-empty bucket (cumulative)
  std::uint64_t inserts = 0;      // cumulative, all processes
  std::uint64_t updates = 0;      // set/incr/cmpset on an existing row
  std::uint64_t deletes = 0;
  std::uint64_t full_failures = 0;    // inserts refused because the table was full
  std::uint64_t lock_recoveries = 0;  // bucket locks taken over from a dead process
  std::size_t memory_bytes = 0;       // size of the shared segment
};

// -- in-place access ----------------------------------------------------------------------

class table;

// One row as modify() / scan() / inspect() see it: its columns read and written in place,
// by column index (table::column_index), while the row's bucket is locked (inspect: while a
// seqlock read is stable). Only valid inside the callback; the callback must not call the
// table (its bucket lock is held and not re-entrant).
class row_ref {
 public:
  bool exists() const noexcept { return index_ != 0; }
  std::string_view key() const noexcept;
  // Reads of an absent row give 0 / 0.0 / "". The column must exist and have that type.
  std::int64_t get_int(int column) const noexcept;
  double get_float(int column) const noexcept;
  std::string_view get_string(int column) const noexcept;
  // Writes (modify/scan only). An absent row is created (zeroed) by the first write; errors:
  // type_mismatch, value_too_long, table_full (nothing written then).
  std::error_code set(int column, value_ref v) noexcept;
  // Removes the row (modify/scan only); a no-op when absent.
  void erase() noexcept;

 private:
  friend class table;
  void* table_ = nullptr;  // table::impl
  void* bucket_ = nullptr;
  std::string_view key_;
  std::uint32_t h32_ = 0;
  std::uint32_t index_ = 0;  // row index + 1, 0 = absent
  bool writable_ = false;
};

// -- the table ----------------------------------------------------------------------------

class table {
 public:
  static constexpr std::size_t max_key_length = 63;

  // Validates the schema (shm_errc::invalid_schema; call schema.validate() for the reasons)
  // and creates the segment. The table's descriptor is fd() (close-on-exec).
  static result<table> create(std::string_view name, const table_schema& schema);
  // Maps a table created by another process, from an inherited descriptor (which the
  // caller keeps). shm_errc::bad_segment if `fd` is not a table.
  static result<table> attach(int fd);

  table(table&&) noexcept;
  table& operator=(table&&) noexcept;
  ~table();

  int fd() const noexcept;
  const table_schema& schema() const noexcept;

  // -- writes: errors are shm_errc::{key_too_long, no_such_column, type_mismatch,
  //    value_too_long, table_full}; all are checked before anything is written.

  // Inserts or updates; an update changes only the given columns, an insert zeroes the rest.
  std::error_code set(std::string_view key, std::span<const field> fields);
  std::error_code set(std::string_view key, std::initializer_list<field> fields) {
    return set(key, std::span<const field>(fields.begin(), fields.size()));
  }
  std::error_code set(std::string_view key, std::string_view column, value_ref v) {
    field f{column, std::move(v)};
    return set(key, std::span<const field>(&f, 1));
  }
  // Insert only: shm_errc::exists if the key is present (nothing changed).
  std::error_code add(std::string_view key, std::span<const field> fields);
  std::error_code add(std::string_view key, std::initializer_list<field> fields) {
    return add(key, std::span<const field>(fields.begin(), fields.size()));
  }
  // Update only: shm_errc::not_found if the key is absent.
  std::error_code update(std::string_view key, std::span<const field> fields);
  std::error_code update(std::string_view key, std::initializer_list<field> fields) {
    return update(key, std::span<const field>(fields.begin(), fields.size()));
  }
  // shm_errc::not_found if absent.
  std::error_code del(std::string_view key);

  // Adds `by` to an int column (a float column needs the double overload) and returns the
  // new value. A missing row is created (zeroed) first.
  result<std::int64_t> incr(std::string_view key, std::string_view column, std::int64_t by = 1);
  result<double> incr(std::string_view key, std::string_view column, double by);
  template <std::integral I>
  result<std::int64_t> incr(std::string_view key, std::string_view column, I by) {
    return incr(key, column, static_cast<std::int64_t>(by));
  }
  result<std::int64_t> decr(std::string_view key, std::string_view column, std::int64_t by = 1) {
    return incr(key, column, -by);
  }
  result<double> decr(std::string_view key, std::string_view column, double by) {
    return incr(key, column, -by);
  }
  template <std::integral I>
  result<std::int64_t> decr(std::string_view key, std::string_view column, I by) {
    return incr(key, column, -static_cast<std::int64_t>(by));
  }

  // If `column` equals `expected`, sets it to `desired` and returns true; false if it
  // differs. shm_errc::not_found if the row is absent.
  result<bool> cmpset(std::string_view key, std::string_view column, value_ref expected,
                      value_ref desired);

  // -- reads ---------------------------------------------------------------------------

  result<row> get(std::string_view key) const;
  result<value> get(std::string_view key, std::string_view column) const;
  // Typed reads without allocation (string excepted); shm_errc::type_mismatch if the column
  // has another type.
  result<std::int64_t> get_int(std::string_view key, std::string_view column) const;
  result<double> get_float(std::string_view key, std::string_view column) const;
  result<std::string> get_string(std::string_view key, std::string_view column) const;
  bool exists(std::string_view key) const;
  // A hint before a batch of operations on `keys`: starts loading their buckets and the
  // first row of each chain into the cache, all at once, so the batch's cache misses
  // overlap instead of coming one per operation. Reads nothing a caller sees, changes
  // nothing; keys too long are skipped.
  void prefetch(std::span<const std::string_view> keys) const noexcept;
  std::size_t count() const noexcept;

  // Visits every row. Each row is copied under its bucket lock (so it is consistent), and
  // `fn` runs after the lock is released (it may use the table). Rows inserted or deleted
  // during the walk may or may not be seen. `fn` returns false to stop. Returns the number
  // of rows visited.
  std::size_t for_each(const std::function<bool(const row&)>& fn) const;

  table_stats stats() const;

  // -- in-place access (row_ref) -------------------------------------------------------
  // Index of a column for row_ref, or -1.
  int column_index(std::string_view column) const noexcept;
  // Runs fn(row_ref&) once under the key's bucket lock: an atomic read-modify-write of one
  // row (present or not) across every process. Errors: key_too_long (fn not run).
  template <class F>
  std::error_code modify(std::string_view key, F&& fn) {
    return modify_impl(key, &call_ref<F>, &fn);
  }
  // Runs fn(const row_ref&) without the lock (seqlock); it may run more than once and must
  // only copy what it needs; its last run saw a consistent row. Errors: key_too_long.
  template <class F>
  std::error_code inspect(std::string_view key, F&& fn) const {
    return inspect_impl(key, &call_ref<F>, &fn);
  }
  // Visits the rows of buckets from `cursor` on, each bucket under its lock, until at least
  // `count` rows were seen or the last bucket was done; fn(row_ref&) may erase the row or
  // write it. Returns the cursor to continue from, 0 after the last bucket. The bucket
  // array never changes size, so a full pass from 0 to 0 sees every row present during the
  // whole pass at least once (Redis's SCAN guarantee).
  template <class F>
  std::uint64_t scan(std::uint64_t cursor, std::size_t count, F&& fn) {
    return scan_impl(cursor, count, &call_ref<F>, &fn);
  }
  std::size_t bucket_count() const noexcept;

  // Testing aid: takes the bucket lock of `key` and never releases it, as a process that
  // dies in the middle of an operation would. Not for production code.
  void debug_leak_lock(std::string_view key);

 private:
  friend class row_ref;
  struct impl;
  explicit table(std::unique_ptr<impl> p);
  using row_fn = void (*)(void*, row_ref&);
  template <class F>
  static void call_ref(void* f, row_ref& r) {
    (*static_cast<std::remove_reference_t<F>*>(f))(r);
  }
  std::error_code modify_impl(std::string_view key, row_fn fn, void* f);
  std::error_code inspect_impl(std::string_view key, row_fn fn, void* f) const;
  std::uint64_t scan_impl(std::uint64_t cursor, std::size_t count, row_fn fn, void* f);
  std::unique_ptr<impl> impl_;
};

}  // namespace swactor::ipc
