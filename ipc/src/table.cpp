#include "swactor/ipc/table.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstring>
#include <new>
#include <stdexcept>
#include <unordered_set>

#include "pid_lock.hpp"
#include "segment_kind.hpp"

namespace swactor::ipc {

// -- schema -------------------------------------------------------------------------------

std::string_view column_type_name(column_type t) noexcept {
  switch (t) {
    case column_type::int64: return "int";
    case column_type::float64: return "float";
    case column_type::string: return "string";
  }
  return "?";
}

std::optional<column_type> parse_column_type(std::string_view name) noexcept {
  if (name == "int") return column_type::int64;
  if (name == "float") return column_type::float64;
  if (name == "string") return column_type::string;
  return std::nullopt;
}

std::vector<std::string> table_schema::validate() const {
  std::vector<std::string> out;
  if (size == 0) out.push_back("size must be at least 1 row");
  if (size > max_rows)
    out.push_back("size " + std::to_string(size) + " is above the maximum of " +
                  std::to_string(max_rows) + " rows");
  if (columns.size() > max_columns)
    out.push_back("too many columns: " + std::to_string(columns.size()) + " (max " +
                  std::to_string(max_columns) + ")");
  std::unordered_set<std::string_view> seen;
  for (std::size_t i = 0; i < columns.size(); ++i) {
    const auto& c = columns[i];
    std::string who = "column " + std::to_string(i + 1) + " '" + c.name + "'";
    if (c.name.empty()) out.push_back("column " + std::to_string(i + 1) + ": name is empty");
    if (c.name.size() > max_column_name)
      out.push_back(who + ": name longer than " + std::to_string(max_column_name) + " bytes");
    if (!c.name.empty() && !seen.insert(c.name).second)
      out.push_back(who + ": duplicate column name");
    switch (c.type) {
      case column_type::int64:
      case column_type::float64:
        if (c.size != 0 && c.size != 8)
          out.push_back(who + ": " + std::string(column_type_name(c.type)) +
                        " columns are 8 bytes; size must be 0 or 8, not " +
                        std::to_string(c.size));
        break;
      case column_type::string:
        if (c.size == 0) out.push_back(who + ": string columns need a size (max bytes) >= 1");
        if (c.size > max_string_size)
          out.push_back(who + ": string size " + std::to_string(c.size) + " is above " +
                        std::to_string(max_string_size));
        break;
      default: out.push_back(who + ": unknown type"); break;
    }
  }
  return out;
}

// -- shared layout ------------------------------------------------------------------------

namespace {

constexpr std::size_t header_bytes = 8192;
constexpr std::uint32_t key_capacity = 63;

struct shm_column {
  char name[64];
  std::uint32_t type;
  std::uint32_t size;    // string max bytes, 8 for numbers
  std::uint32_t offset;  // from the start of the row's data
  std::uint32_t reserved;
};

struct alignas(64) counter_stripe {
  std::atomic<std::uint64_t> inserts;
  std::atomic<std::uint64_t> updates;  // set/incr/cmpset on an existing row
  std::atomic<std::uint64_t> deletes;
  std::atomic<std::uint64_t> collisions;  // inserts into a non-empty bucket
};
constexpr std::size_t counter_stripes = 16;

struct shm_table_header {
  detail::segment_header seg;
  std::uint64_t total_size;
  std::uint64_t buckets_offset;
  std::uint64_t rows_offset;
  std::uint32_t capacity;
  std::uint32_t bucket_count;
  std::uint32_t row_size;
  std::uint32_t column_count;
  alignas(64) std::atomic<std::uint64_t> count;
  std::atomic<std::uint64_t> free_head;  // generation << 32 | row index (0 = empty)
  std::atomic<std::uint32_t> alloc_next;  // rows [0, alloc_next) were handed out at least once
  std::atomic<std::uint64_t> lock_recoveries;
  std::atomic<std::uint64_t> full_failures;
  // The cumulative counters of stats(), striped by pid: a process bumps a line it mostly
  // keeps to itself, and the buckets stay small (fewer of them per cache miss).
  counter_stripe counters[counter_stripes];
  alignas(64) shm_column columns[table_schema::max_columns];
};
static_assert(sizeof(shm_table_header) <= header_bytes);

// 16 bytes, four to a cache line: the lock word, the chain head and a sequence number. A
// lookup's first cache miss is its bucket, so the array is kept dense (the counters live
// in the header's stripes).
struct bucket {
  std::atomic<std::uint32_t> lock;
  std::atomic<std::uint32_t> head;  // row index + 1, 0 = empty
  // Seqlock: odd while a writer changes the bucket; readers copy without taking the lock
  // and retry if it moved.
  std::atomic<std::uint32_t> seq;
  std::uint32_t reserved;
};
static_assert(sizeof(bucket) == 16);

struct row_header {
  std::atomic<std::uint32_t> next;  // chain link, or free-list link when free
  std::uint32_t hash;               // high half of the key hash: cheap mismatch test
  std::uint8_t key_len;
  char key[key_capacity];
};
static_assert(sizeof(row_header) == 72);

// A counter of this process's stripe; several processes may share a stripe, hence the RMW.
void bump(std::atomic<std::uint64_t>& c) noexcept { c.fetch_add(1, std::memory_order_relaxed); }

inline std::uint64_t rotl(std::uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

// A small multiply-rotate hash over 8-byte words with a final avalanche; keys are short.
inline std::uint64_t hash_key(std::string_view key) noexcept {
  constexpr std::uint64_t k1 = 0x87c37b91114253d5ULL, k2 = 0x4cf5ad432745937fULL;
  const char* p = key.data();
  std::size_t n = key.size();
  std::uint64_t h = 0x9e3779b97f4a7c15ULL ^ (n * k2);
  while (n >= 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    h ^= rotl(w * k1, 31) * k2;
    h = rotl(h, 27) * 5 + 0x52dce729;
    p += 8;
    n -= 8;
  }
  if (n) {
    std::uint64_t w = 0;
    std::memcpy(&w, p, n);
    h ^= rotl(w * k1, 31) * k2;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

constexpr std::size_t align8(std::size_t n) { return (n + 7) & ~std::size_t{7}; }

}  // namespace

namespace detail {
struct table_layout {
  table_schema schema;
  std::vector<std::uint32_t> offsets;  // per column, from the row's data start

  int index_of(std::string_view name) const noexcept {
    for (std::size_t i = 0; i < schema.columns.size(); ++i)
      if (schema.columns[i].name == name) return static_cast<int>(i);
    return -1;
  }
};
}  // namespace detail

// -- row ----------------------------------------------------------------------------------

const std::vector<column_def>& row::columns() const noexcept { return layout_->schema.columns; }

const value* row::find(std::string_view column) const noexcept {
  int i = layout_ ? layout_->index_of(column) : -1;
  return i < 0 ? nullptr : &values_[static_cast<std::size_t>(i)];
}

const value& row::operator[](std::string_view column) const {
  const value* v = find(column);
  if (!v) throw std::out_of_range("no such column: " + std::string(column));
  return *v;
}

// -- table internals ----------------------------------------------------------------------

struct table::impl {
  shm_region region;
  std::shared_ptr<detail::table_layout> layout;
  shm_table_header* header = nullptr;
  bucket* buckets = nullptr;
  char* rows = nullptr;
  std::uint32_t mask = 0;
  std::uint32_t row_size = 0;
  std::uint32_t capacity = 0;

  // This process's counters (the pid changes in a forked child, so it is read each time).
  counter_stripe& counters() const noexcept {
    return header->counters[detail::self_pid() % counter_stripes];
  }

  // A field resolved against the schema, checked before any lock is taken.
  struct resolved {
    const column_def* col;
    std::uint32_t offset;
    value_ref v;
  };

  row_header* row_at(std::uint32_t index1) const noexcept {
    return reinterpret_cast<row_header*>(rows + std::size_t(index1 - 1) * row_size);
  }
  static char* data_of(row_header* r) noexcept { return reinterpret_cast<char*>(r + 1); }

  // RAII bucket lock; recovery from a dead owner is logged by pid_lock and counted here.
  class guard {
   public:
    guard(const impl& t, bucket& b) noexcept : b_(b) {
      if (detail::pid_lock(b.lock, std::chrono::nanoseconds::max(), "table bucket lock") ==
          detail::lock_outcome::recovered)
        t.header->lock_recoveries.fetch_add(1, std::memory_order_relaxed);
    }
    ~guard() { detail::pid_unlock(b_.lock); }
    guard(const guard&) = delete;
    guard& operator=(const guard&) = delete;

   private:
    bucket& b_;
  };

  // A writer: the bucket lock plus an odd sequence number while it holds it, so that
  // optimistic readers discard what they copied meanwhile.
  class write_guard {
   public:
    write_guard(const impl& t, bucket& b) noexcept : g_(t, b), b_(b) {
      auto s = b.seq.load(std::memory_order_relaxed);
      if (s & 1) ++s;  // a writer died mid-change: its lock was recovered, even it up
      b.seq.store(s + 1, std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_release);
    }
    ~write_guard() {
      b_.seq.store(b_.seq.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    }
    write_guard(const write_guard&) = delete;
    write_guard& operator=(const write_guard&) = delete;

   private:
    guard g_;
    bucket& b_;
  };

  // Reads without the lock (seqlock): fn(row_header* or nullptr) copies what it needs and
  // may run several times; its last run saw a stable bucket. The walk is bounded and checks
  // indices, since a concurrent writer may relink rows under it. After a few failed tries
  // (a busy or dead writer) it reads under the lock, which also recovers a dead owner.
  template <class F>
  auto read(std::string_view key, F&& fn) const {
    std::uint64_t h = hash_key(key);
    auto h32 = static_cast<std::uint32_t>(h >> 32);
    bucket& b = buckets[h & mask];
    for (int attempt = 0; attempt < 16; ++attempt) {
      std::uint32_t s1 = b.seq.load(std::memory_order_acquire);
      if (s1 & 1) {
        detail::cpu_pause();
        continue;
      }
      std::uint32_t idx = 0;
      std::uint32_t steps = 0;
      for (std::uint32_t i = b.head.load(std::memory_order_relaxed); i != 0 && i <= capacity &&
                                                                       steps <= capacity;
           ++steps) {
        row_header* r = row_at(i);
        if (r->hash == h32 && r->key_len == key.size() &&
            std::memcmp(r->key, key.data(), key.size()) == 0) {
          idx = i;
          break;
        }
        i = r->next.load(std::memory_order_relaxed);
      }
      auto out = fn(idx ? row_at(idx) : nullptr);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (b.seq.load(std::memory_order_relaxed) == s1) return out;
    }
    write_guard g(*this, b);  // leaves the sequence even, even after a dead writer
    std::uint32_t idx = find(b, h32, key);
    return fn(idx ? row_at(idx) : nullptr);
  }

  // Under the bucket lock: the row holding `key`, and its predecessor (0 = head).
  std::uint32_t find(const bucket& b, std::uint32_t h32, std::string_view key,
                     std::uint32_t* prev = nullptr) const noexcept {
    std::uint32_t p = 0;
    for (std::uint32_t i = b.head.load(std::memory_order_relaxed); i != 0;) {
      row_header* r = row_at(i);
      if (r->hash == h32 && r->key_len == key.size() &&
          std::memcmp(r->key, key.data(), key.size()) == 0) {
        if (prev) *prev = p;
        return i;
      }
      p = i;
      i = r->next.load(std::memory_order_relaxed);
    }
    return 0;
  }

  // Under the bucket's write lock: takes row `idx` (whose predecessor in the chain is
  // `prev`, 0 = head) out of `b`. The caller frees it.
  void unlink(bucket& b, std::uint32_t prev, std::uint32_t idx) noexcept {
    std::uint32_t next = row_at(idx)->next.load(std::memory_order_relaxed);
    if (prev == 0)
      b.head.store(next, std::memory_order_release);
    else
      row_at(prev)->next.store(next, std::memory_order_release);
    bump(counters().deletes);
    header->count.fetch_sub(1, std::memory_order_relaxed);
  }

  // A row from the free list (recycled), else a never-used one; 0 when full. Lock-free:
  // the generation in free_head defeats ABA between processes.
  std::uint32_t alloc_row() noexcept {
    std::uint64_t h = header->free_head.load(std::memory_order_acquire);
    while (static_cast<std::uint32_t>(h) != 0) {
      auto idx = static_cast<std::uint32_t>(h);
      std::uint32_t next = row_at(idx)->next.load(std::memory_order_relaxed);
      std::uint64_t nh = ((h >> 32) + 1) << 32 | next;
      if (header->free_head.compare_exchange_weak(h, nh, std::memory_order_acquire,
                                                  std::memory_order_acquire))
        return idx;
    }
    std::uint32_t n = header->alloc_next.load(std::memory_order_relaxed);
    while (n < capacity) {
      if (header->alloc_next.compare_exchange_weak(n, n + 1, std::memory_order_relaxed))
        return n + 1;
    }
    return 0;
  }

  void free_row(std::uint32_t idx) noexcept {
    std::uint64_t h = header->free_head.load(std::memory_order_relaxed);
    for (;;) {
      row_at(idx)->next.store(static_cast<std::uint32_t>(h), std::memory_order_relaxed);
      std::uint64_t nh = ((h >> 32) + 1) << 32 | idx;
      if (header->free_head.compare_exchange_weak(h, nh, std::memory_order_release,
                                                  std::memory_order_relaxed))
        return;
    }
  }

  std::error_code resolve(std::span<const field> fields, std::vector<resolved>& out) const {
    out.clear();
    for (const auto& f : fields) {
      int i = layout->index_of(f.column);
      if (i < 0) return make_error_code(shm_errc::no_such_column);
      const auto& col = layout->schema.columns[static_cast<std::size_t>(i)];
      if (auto ec = check_value(col, f.value)) return ec;
      out.push_back({&col, layout->offsets[static_cast<std::size_t>(i)], f.value});
    }
    return {};
  }

  static std::error_code check_value(const column_def& col, const value_ref& v) {
    switch (col.type) {
      case column_type::int64:
        if (!std::holds_alternative<std::int64_t>(v)) return make_error_code(shm_errc::type_mismatch);
        break;
      case column_type::float64:
        if (std::holds_alternative<std::string_view>(v))
          return make_error_code(shm_errc::type_mismatch);
        break;
      case column_type::string: {
        auto* s = std::get_if<std::string_view>(&v);
        if (!s) return make_error_code(shm_errc::type_mismatch);
        if (s->size() > col.size) return make_error_code(shm_errc::value_too_long);
        break;
      }
    }
    return {};
  }

  static void write_value(char* data, const column_def& col, std::uint32_t off,
                          const value_ref& v) noexcept {
    char* p = data + off;
    switch (col.type) {
      case column_type::int64: {
        std::int64_t x = std::get<std::int64_t>(v);
        std::memcpy(p, &x, 8);
        break;
      }
      case column_type::float64: {
        double x = std::holds_alternative<double>(v)
                       ? std::get<double>(v)
                       : static_cast<double>(std::get<std::int64_t>(v));
        std::memcpy(p, &x, 8);
        break;
      }
      case column_type::string: {
        auto s = std::get<std::string_view>(v);
        auto len = static_cast<std::uint32_t>(s.size());
        std::memcpy(p, &len, 4);
        if (len) std::memcpy(p + 4, s.data(), len);
        break;
      }
    }
  }

  static value read_value(const char* data, const column_def& col, std::uint32_t off) {
    const char* p = data + off;
    switch (col.type) {
      case column_type::int64: {
        std::int64_t x;
        std::memcpy(&x, p, 8);
        return x;
      }
      case column_type::float64: {
        double x;
        std::memcpy(&x, p, 8);
        return x;
      }
      case column_type::string: {
        std::uint32_t len;
        std::memcpy(&len, p, 4);
        return std::string(p + 4, std::min<std::uint32_t>(len, static_cast<std::uint32_t>(col.size)));
      }
    }
    return std::int64_t{0};
  }

  static bool equal(const char* data, const column_def& col, std::uint32_t off,
                    const value_ref& v) noexcept {
    const char* p = data + off;
    switch (col.type) {
      case column_type::int64: {
        std::int64_t x;
        std::memcpy(&x, p, 8);
        return x == std::get<std::int64_t>(v);
      }
      case column_type::float64: {
        double x;
        std::memcpy(&x, p, 8);
        double y = std::holds_alternative<double>(v)
                       ? std::get<double>(v)
                       : static_cast<double>(std::get<std::int64_t>(v));
        return x == y;
      }
      case column_type::string: {
        std::uint32_t len;
        std::memcpy(&len, p, 4);
        auto s = std::get<std::string_view>(v);
        return len == s.size() && std::memcmp(p + 4, s.data(), len) == 0;
      }
    }
    return false;
  }

  // Under the bucket lock: a new zeroed row linked at the head of `b`; 0 if full.
  std::uint32_t insert(bucket& b, std::uint32_t h32, std::string_view key) noexcept {
    std::uint32_t idx = alloc_row();
    if (idx == 0) {
      header->full_failures.fetch_add(1, std::memory_order_relaxed);
      return 0;
    }
    row_header* r = row_at(idx);
    r->hash = h32;
    r->key_len = static_cast<std::uint8_t>(key.size());
    std::memcpy(r->key, key.data(), key.size());
    // Zero each column's value (a string's length prefix, not its capacity): a row with a
    // large string column is not written through, so untouched pages stay unmapped.
    char* d = data_of(r);
    for (std::size_t c = 0; c < layout->schema.columns.size(); ++c)
      std::memset(d + layout->offsets[c], 0, layout->schema.columns[c].type == column_type::string ? 4 : 8);
    std::uint32_t head = b.head.load(std::memory_order_relaxed);
    if (head != 0) bump(counters().collisions);
    r->next.store(head, std::memory_order_relaxed);
    // Counted before it is published: a process dying in between leaves the count one
    // high with the row leaked, never a reachable row that is not counted.
    header->count.fetch_add(1, std::memory_order_relaxed);
    // One store publishes the fully built row: a process dying before it leaks the row
    // but never leaves a broken chain.
    b.head.store(idx, std::memory_order_release);
    bump(counters().inserts);
    return idx;
  }

  row make_row(row_header* r) const {
    row out;
    out.layout_ = layout;
    out.key_.assign(r->key, r->key_len);
    const char* d = data_of(r);
    out.values_.reserve(layout->schema.columns.size());
    for (std::size_t i = 0; i < layout->schema.columns.size(); ++i)
      out.values_.push_back(read_value(d, layout->schema.columns[i], layout->offsets[i]));
    return out;
  }

  enum class mode { upsert, insert_only, update_only };

  std::error_code write(std::string_view key, std::span<const field> fields, mode m) {
    if (key.size() > key_capacity) return make_error_code(shm_errc::key_too_long);
    // Few fields in practice: a small stack buffer would do, but vector keeps it simple;
    // the single-field case avoids the allocation.
    resolved one{};
    std::vector<resolved> many;
    std::span<const resolved> res;
    if (fields.size() == 1) {
      int i = layout->index_of(fields[0].column);
      if (i < 0) return make_error_code(shm_errc::no_such_column);
      const auto& col = layout->schema.columns[static_cast<std::size_t>(i)];
      if (auto ec = check_value(col, fields[0].value)) return ec;
      one = {&col, layout->offsets[static_cast<std::size_t>(i)], fields[0].value};
      res = std::span<const resolved>(&one, 1);
    } else {
      if (auto ec = resolve(fields, many)) return ec;
      res = many;
    }
    std::uint64_t h = hash_key(key);
    auto h32 = static_cast<std::uint32_t>(h >> 32);
    bucket& b = buckets[h & mask];
    write_guard g(*this, b);
    std::uint32_t idx = find(b, h32, key);
    if (idx != 0) {
      if (m == mode::insert_only) return make_error_code(shm_errc::exists);
      bump(counters().updates);
    } else {
      if (m == mode::update_only) return make_error_code(shm_errc::not_found);
      idx = insert(b, h32, key);
      if (idx == 0) return make_error_code(shm_errc::table_full);
    }
    char* d = data_of(row_at(idx));
    for (const auto& f : res) write_value(d, *f.col, f.offset, f.v);
    return {};
  }

  // Column lookup with a type check; -1 and sets ec on error.
  int column(std::string_view name, std::optional<column_type> want, std::error_code& ec) const {
    int i = layout->index_of(name);
    if (i < 0) {
      ec = make_error_code(shm_errc::no_such_column);
      return -1;
    }
    if (want && layout->schema.columns[static_cast<std::size_t>(i)].type != *want) {
      ec = make_error_code(shm_errc::type_mismatch);
      return -1;
    }
    return i;
  }

  template <class T>
  result<T> get_number(std::string_view key, std::string_view column, column_type type) const {
      const impl& t = *this;
    if (key.size() > key_capacity) return make_error_code(shm_errc::key_too_long);
    std::error_code ec;
    int ci = t.column(column, type, ec);
    if (ci < 0) return ec;
    std::uint32_t off = t.layout->offsets[static_cast<std::size_t>(ci)];
    bool found = false;
    T x{};
    t.read(key, [&](row_header* r) {
      found = r != nullptr;
      if (r) std::memcpy(&x, data_of(r) + off, sizeof x);
      return 0;
    });
    if (!found) return make_error_code(shm_errc::not_found);
    return x;
  }

  template <class T>
  result<T> incr(std::string_view key, std::string_view name, T by, column_type type) {
    if (key.size() > key_capacity) return make_error_code(shm_errc::key_too_long);
    std::error_code ec;
    int ci = column(name, type, ec);
    if (ci < 0) return ec;
    std::uint32_t off = layout->offsets[static_cast<std::size_t>(ci)];
    std::uint64_t h = hash_key(key);
    auto h32 = static_cast<std::uint32_t>(h >> 32);
    bucket& b = buckets[h & mask];
    write_guard g(*this, b);
    std::uint32_t idx = find(b, h32, key);
    if (idx == 0) {
      idx = insert(b, h32, key);
      if (idx == 0) return make_error_code(shm_errc::table_full);
    } else {
      bump(counters().updates);
    }
    char* p = data_of(row_at(idx)) + off;
    T x;
    std::memcpy(&x, p, sizeof x);
    if constexpr (std::is_integral_v<T>) {
      // Wraps like the counters it models instead of being undefined on overflow.
      x = static_cast<T>(static_cast<std::uint64_t>(x) + static_cast<std::uint64_t>(by));
    } else {
      x += by;
    }
    std::memcpy(p, &x, sizeof x);
    return x;
  }
};

// -- table --------------------------------------------------------------------------------

table::table(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
table::table(table&&) noexcept = default;
table& table::operator=(table&&) noexcept = default;
table::~table() = default;

namespace {
std::unique_ptr<detail::table_layout> layout_from(const table_schema& s) {
  auto l = std::make_unique<detail::table_layout>();
  l->schema = s;
  std::uint32_t off = 0;
  for (auto& c : l->schema.columns) {
    if (c.type != column_type::string) c.size = 8;
    l->offsets.push_back(off);
    off += static_cast<std::uint32_t>(c.type == column_type::string ? align8(4 + c.size) : 8);
  }
  return l;
}

std::uint32_t data_size(const detail::table_layout& l) {
  std::uint32_t n = 0;
  for (const auto& c : l.schema.columns)
    n += static_cast<std::uint32_t>(c.type == column_type::string ? align8(4 + c.size) : 8);
  return n;
}
}  // namespace

result<table> table::create(std::string_view name, const table_schema& schema) {
  if (!schema.validate().empty()) return make_error_code(shm_errc::invalid_schema);
  std::shared_ptr<detail::table_layout> layout = layout_from(schema);
  auto capacity = static_cast<std::uint32_t>(schema.size);
  auto buckets = std::bit_ceil(capacity);
  auto row_size = static_cast<std::uint32_t>(align8(sizeof(row_header) + data_size(*layout)));
  std::size_t buckets_offset = header_bytes;
  std::size_t rows_offset = buckets_offset + std::size_t(buckets) * sizeof(bucket);
  std::size_t total = rows_offset + std::size_t(capacity) * row_size;
  auto r = shm_region::create(name.empty() ? "swactor.table" : name, total);
  if (!r) return r.error();
  auto* h = new (r->data()) shm_table_header{};
  h->total_size = total;
  h->buckets_offset = buckets_offset;
  h->rows_offset = rows_offset;
  h->capacity = capacity;
  h->bucket_count = buckets;
  h->row_size = row_size;
  h->column_count = static_cast<std::uint32_t>(schema.columns.size());
  for (std::size_t i = 0; i < layout->schema.columns.size(); ++i) {
    const auto& c = layout->schema.columns[i];
    auto& sc = h->columns[i];
    std::memcpy(sc.name, c.name.data(), c.name.size());
    sc.type = static_cast<std::uint32_t>(c.type);
    sc.size = static_cast<std::uint32_t>(c.size);
    sc.offset = layout->offsets[i];
  }
  // Buckets and rows are zero pages already (fresh memfd): empty chains, free locks.
  detail::stamp(h, detail::segment_kind::table);
  auto p = std::make_unique<impl>();
  p->region = std::move(*r);
  p->layout = std::move(layout);
  p->header = h;
  auto* base = static_cast<char*>(p->region.data());
  p->buckets = reinterpret_cast<bucket*>(base + buckets_offset);
  p->rows = base + rows_offset;
  p->mask = buckets - 1;
  p->row_size = row_size;
  p->capacity = capacity;
  return table(std::move(p));
}

result<table> table::attach(int fd) {
  auto r = shm_region::attach(fd);
  if (!r) return r.error();
  if (!detail::check(*r, detail::segment_kind::table, header_bytes))
    return make_error_code(shm_errc::bad_segment);
  auto* h = static_cast<shm_table_header*>(r->data());
  if (h->total_size != r->size() || h->column_count > table_schema::max_columns ||
      h->capacity == 0 || !std::has_single_bit(h->bucket_count) ||
      h->rows_offset + std::size_t(h->capacity) * h->row_size > r->size())
    return make_error_code(shm_errc::bad_segment);
  table_schema s;
  s.size = h->capacity;
  for (std::uint32_t i = 0; i < h->column_count; ++i) {
    const auto& sc = h->columns[i];
    s.columns.push_back({std::string(sc.name, strnlen(sc.name, sizeof sc.name)),
                         static_cast<column_type>(sc.type), sc.size});
  }
  std::shared_ptr<detail::table_layout> layout = layout_from(s);
  if (sizeof(row_header) + data_size(*layout) > h->row_size)
    return make_error_code(shm_errc::bad_segment);
  auto p = std::make_unique<impl>();
  p->region = std::move(*r);
  p->layout = std::move(layout);
  p->header = h;
  auto* base = static_cast<char*>(p->region.data());
  p->buckets = reinterpret_cast<bucket*>(base + h->buckets_offset);
  p->rows = base + h->rows_offset;
  p->mask = h->bucket_count - 1;
  p->row_size = h->row_size;
  p->capacity = h->capacity;
  return table(std::move(p));
}

int table::fd() const noexcept { return impl_->region.fd(); }
const table_schema& table::schema() const noexcept { return impl_->layout->schema; }

std::error_code table::set(std::string_view key, std::span<const field> fields) {
  return impl_->write(key, fields, impl::mode::upsert);
}
std::error_code table::add(std::string_view key, std::span<const field> fields) {
  return impl_->write(key, fields, impl::mode::insert_only);
}
std::error_code table::update(std::string_view key, std::span<const field> fields) {
  return impl_->write(key, fields, impl::mode::update_only);
}

std::error_code table::del(std::string_view key) {
  if (key.size() > key_capacity) return make_error_code(shm_errc::key_too_long);
  auto& t = *impl_;
  std::uint64_t h = hash_key(key);
  auto h32 = static_cast<std::uint32_t>(h >> 32);
  bucket& b = t.buckets[h & t.mask];
  std::uint32_t idx;
  {
    impl::write_guard g(t, b);
    std::uint32_t prev = 0;
    idx = t.find(b, h32, key, &prev);
    if (idx == 0) return make_error_code(shm_errc::not_found);
    t.unlink(b, prev, idx);
  }
  // Unlinked: nobody can reach it through a chain any more.
  t.free_row(idx);
  return {};
}

result<std::int64_t> table::incr(std::string_view key, std::string_view column, std::int64_t by) {
  return impl_->incr<std::int64_t>(key, column, by, column_type::int64);
}

result<double> table::incr(std::string_view key, std::string_view column, double by) {
  return impl_->incr<double>(key, column, by, column_type::float64);
}

result<bool> table::cmpset(std::string_view key, std::string_view column, value_ref expected,
                           value_ref desired) {
  if (key.size() > key_capacity) return make_error_code(shm_errc::key_too_long);
  auto& t = *impl_;
  std::error_code ec;
  int ci = t.column(column, std::nullopt, ec);
  if (ci < 0) return ec;
  const auto& col = t.layout->schema.columns[static_cast<std::size_t>(ci)];
  std::uint32_t off = t.layout->offsets[static_cast<std::size_t>(ci)];
  if (auto e = impl::check_value(col, desired)) return e;
  // An over-long expected string simply cannot match; only the type must fit.
  if (col.type == column_type::string ? !std::holds_alternative<std::string_view>(expected)
                                      : std::holds_alternative<std::string_view>(expected) ||
                                            (col.type == column_type::int64 &&
                                             !std::holds_alternative<std::int64_t>(expected)))
    return make_error_code(shm_errc::type_mismatch);
  std::uint64_t h = hash_key(key);
  auto h32 = static_cast<std::uint32_t>(h >> 32);
  bucket& b = t.buckets[h & t.mask];
  impl::write_guard g(t, b);
  std::uint32_t idx = t.find(b, h32, key);
  if (idx == 0) return make_error_code(shm_errc::not_found);
  char* d = impl::data_of(t.row_at(idx));
  if (!impl::equal(d, col, off, expected)) return false;
  impl::write_value(d, col, off, desired);
  bump(t.counters().updates);
  return true;
}

result<row> table::get(std::string_view key) const {
  if (key.size() > key_capacity) return make_error_code(shm_errc::key_too_long);
  return impl_->read(key, [&](row_header* r) -> result<row> {
    if (!r) return make_error_code(shm_errc::not_found);
    return impl_->make_row(r);
  });
}

result<value> table::get(std::string_view key, std::string_view column) const {
  if (key.size() > key_capacity) return make_error_code(shm_errc::key_too_long);
  std::error_code ec;
  int ci = impl_->column(column, std::nullopt, ec);
  if (ci < 0) return ec;
  const auto& col = impl_->layout->schema.columns[static_cast<std::size_t>(ci)];
  std::uint32_t off = impl_->layout->offsets[static_cast<std::size_t>(ci)];
  return impl_->read(key, [&](row_header* r) -> result<value> {
    if (!r) return make_error_code(shm_errc::not_found);
    return impl::read_value(impl::data_of(r), col, off);
  });
}

result<std::int64_t> table::get_int(std::string_view key, std::string_view column) const {
  return impl_->get_number<std::int64_t>(key, column, column_type::int64);
}

result<double> table::get_float(std::string_view key, std::string_view column) const {
  return impl_->get_number<double>(key, column, column_type::float64);
}

result<std::string> table::get_string(std::string_view key, std::string_view column) const {
  auto v = get(key, column);
  if (!v) return v.error();
  if (auto* s = std::get_if<std::string>(&*v)) return std::move(*s);
  return make_error_code(shm_errc::type_mismatch);
}

bool table::exists(std::string_view key) const {
  if (key.size() > key_capacity) return false;
  return impl_->read(key, [](row_header* r) { return r != nullptr; });
}

void table::prefetch(std::span<const std::string_view> keys) const noexcept {
  const auto& t = *impl_;
  constexpr std::size_t batch = 32;
  std::array<const bucket*, batch> bs;
  for (std::size_t at = 0; at < keys.size(); at += batch) {
    const std::size_t n = std::min(batch, keys.size() - at);
    for (std::size_t i = 0; i < n; ++i) {
      bs[i] = nullptr;
      if (keys[at + i].size() > key_capacity) continue;
      bs[i] = &t.buckets[hash_key(keys[at + i]) & t.mask];
      __builtin_prefetch(bs[i]);
    }
    // The heads, read racily (only an address to prefetch): the first read waits for its
    // bucket, the others arrived meanwhile. A row's header and its first column values
    // span two cache lines.
    for (std::size_t i = 0; i < n; ++i) {
      if (!bs[i]) continue;
      const std::uint32_t head = bs[i]->head.load(std::memory_order_relaxed);
      if (head == 0 || head > t.capacity) continue;
      const char* r = reinterpret_cast<const char*>(t.row_at(head));
      __builtin_prefetch(r);
      __builtin_prefetch(r + 64);
    }
  }
}

std::size_t table::count() const noexcept {
  return static_cast<std::size_t>(impl_->header->count.load(std::memory_order_relaxed));
}

std::size_t table::for_each(const std::function<bool(const row&)>& fn) const {
  auto& t = *impl_;
  std::size_t visited = 0;
  std::vector<row> batch;
  for (std::uint32_t bi = 0; bi <= t.mask; ++bi) {
    bucket& b = t.buckets[bi];
    if (b.head.load(std::memory_order_relaxed) == 0) continue;
    batch.clear();
    {
      impl::guard g(t, b);
      for (std::uint32_t i = b.head.load(std::memory_order_relaxed); i != 0;
           i = t.row_at(i)->next.load(std::memory_order_relaxed))
        batch.push_back(t.make_row(t.row_at(i)));
    }
    for (const auto& r : batch) {
      ++visited;
      if (!fn(r)) return visited;
    }
  }
  return visited;
}

// -- in-place access ----------------------------------------------------------------------

std::string_view row_ref::key() const noexcept {
  if (!index_) return key_;
  auto* r = static_cast<table::impl*>(table_)->row_at(index_);
  return {r->key, r->key_len};
}

std::int64_t row_ref::get_int(int column) const noexcept {
  if (!index_) return 0;
  auto& t = *static_cast<table::impl*>(table_);
  std::int64_t x;
  std::memcpy(&x, table::impl::data_of(t.row_at(index_)) + t.layout->offsets[static_cast<std::size_t>(column)], 8);
  return x;
}

double row_ref::get_float(int column) const noexcept {
  if (!index_) return 0;
  auto& t = *static_cast<table::impl*>(table_);
  double x;
  std::memcpy(&x, table::impl::data_of(t.row_at(index_)) + t.layout->offsets[static_cast<std::size_t>(column)], 8);
  return x;
}

std::string_view row_ref::get_string(int column) const noexcept {
  if (!index_) return {};
  auto& t = *static_cast<table::impl*>(table_);
  const auto& col = t.layout->schema.columns[static_cast<std::size_t>(column)];
  const char* p = table::impl::data_of(t.row_at(index_)) + t.layout->offsets[static_cast<std::size_t>(column)];
  std::uint32_t len;
  std::memcpy(&len, p, 4);
  // A torn seqlock read may see any length: clamp (the caller's copy is discarded anyway).
  return {p + 4, std::min<std::size_t>(len, col.size)};
}

std::error_code row_ref::set(int column, value_ref v) noexcept {
  if (!writable_ || column < 0) return make_error_code(shm_errc::no_such_column);
  auto& t = *static_cast<table::impl*>(table_);
  if (static_cast<std::size_t>(column) >= t.layout->schema.columns.size())
    return make_error_code(shm_errc::no_such_column);
  const auto& col = t.layout->schema.columns[static_cast<std::size_t>(column)];
  if (auto ec = table::impl::check_value(col, v)) return ec;
  auto& b = *static_cast<bucket*>(bucket_);
  if (!index_) {
    index_ = t.insert(b, h32_, key_);
    if (!index_) return make_error_code(shm_errc::table_full);
  } else {
    bump(t.counters().updates);
  }
  table::impl::write_value(table::impl::data_of(t.row_at(index_)), col,
                           t.layout->offsets[static_cast<std::size_t>(column)], v);
  return {};
}

void row_ref::erase() noexcept {
  if (!writable_ || !index_) return;
  auto& t = *static_cast<table::impl*>(table_);
  auto& b = *static_cast<bucket*>(bucket_);
  std::uint32_t prev = 0;
  for (std::uint32_t i = b.head.load(std::memory_order_relaxed); i != 0 && i != index_;
       i = t.row_at(i)->next.load(std::memory_order_relaxed))
    prev = i;
  t.unlink(b, prev, index_);
  // Unlinked, so no chain reaches it; the bucket's odd sequence makes racing readers retry.
  t.free_row(index_);
  index_ = 0;
}

int table::column_index(std::string_view column) const noexcept { return impl_->layout->index_of(column); }

std::size_t table::bucket_count() const noexcept { return std::size_t(impl_->mask) + 1; }

std::error_code table::modify_impl(std::string_view key, row_fn fn, void* f) {
  if (key.size() > key_capacity) return make_error_code(shm_errc::key_too_long);
  auto& t = *impl_;
  std::uint64_t h = hash_key(key);
  row_ref r;
  r.table_ = &t;
  r.key_ = key;
  r.h32_ = static_cast<std::uint32_t>(h >> 32);
  bucket& b = t.buckets[h & t.mask];
  r.bucket_ = &b;
  r.writable_ = true;
  impl::write_guard g(t, b);
  r.index_ = t.find(b, r.h32_, key);
  fn(f, r);
  return {};
}

std::error_code table::inspect_impl(std::string_view key, row_fn fn, void* f) const {
  if (key.size() > key_capacity) return make_error_code(shm_errc::key_too_long);
  auto& t = *impl_;
  t.read(key, [&](row_header* rh) {
    row_ref r;
    r.table_ = &t;
    r.key_ = key;
    r.index_ = rh ? static_cast<std::uint32_t>((reinterpret_cast<char*>(rh) - t.rows) / t.row_size) + 1 : 0;
    fn(f, r);
    return 0;
  });
  return {};
}

std::uint64_t table::scan_impl(std::uint64_t cursor, std::size_t count, row_fn fn, void* f) {
  auto& t = *impl_;
  std::size_t seen = 0;
  std::uint64_t bi = cursor;
  for (; bi <= t.mask && (seen < count || count == 0); ++bi) {
    bucket& b = t.buckets[bi];
    if (b.head.load(std::memory_order_relaxed) == 0) continue;
    impl::write_guard g(t, b);
    for (std::uint32_t i = b.head.load(std::memory_order_relaxed); i != 0;) {
      std::uint32_t next = t.row_at(i)->next.load(std::memory_order_relaxed);
      row_ref r;
      r.table_ = &t;
      r.bucket_ = &b;
      r.index_ = i;
      r.key_ = {t.row_at(i)->key, t.row_at(i)->key_len};
      r.h32_ = t.row_at(i)->hash;
      r.writable_ = true;
      fn(f, r);
      ++seen;
      i = next;
    }
  }
  return bi > t.mask ? 0 : bi;
}

void table::debug_leak_lock(std::string_view key) {
  auto& t = *impl_;
  bucket& b = t.buckets[hash_key(key) & t.mask];
  detail::pid_lock(b.lock, std::chrono::nanoseconds::max(), "table bucket lock");
  b.seq.fetch_add(1);  // and leaves the bucket "mid-write", as a dying writer would
}

table_stats table::stats() const {
  auto& t = *impl_;
  table_stats s;
  s.rows = count();
  s.capacity = t.capacity;
  s.buckets = std::size_t(t.mask) + 1;
  s.memory_bytes = t.region.size();
  s.full_failures = t.header->full_failures.load(std::memory_order_relaxed);
  s.lock_recoveries = t.header->lock_recoveries.load(std::memory_order_relaxed);
  for (const auto& c : t.header->counters) {
    s.inserts += c.inserts.load(std::memory_order_relaxed);
    s.updates += c.updates.load(std::memory_order_relaxed);
    s.deletes += c.deletes.load(std::memory_order_relaxed);
    s.collisions += c.collisions.load(std::memory_order_relaxed);
  }
  for (std::uint32_t bi = 0; bi <= t.mask; ++bi) {
    bucket& b = t.buckets[bi];
    if (b.head.load(std::memory_order_relaxed) == 0) continue;
    std::size_t len = 0;
    {
      impl::guard g(t, b);
      for (std::uint32_t i = b.head.load(std::memory_order_relaxed); i != 0;
           i = t.row_at(i)->next.load(std::memory_order_relaxed))
        ++len;
    }
    s.longest_chain = std::max(s.longest_chain, len);
    if (len > 1) s.chained_rows += len - 1;
  }
  return s;
}

}  // namespace swactor::ipc
