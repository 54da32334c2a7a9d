#pragma once
// Strict TOML configuration (toml++) into typed structs. One table of keys per section
// (name, type, default, doc, constraints) drives parsing, validation and docs/config.md.
// Every error names file:line:column, the key path and what was expected; all errors of a
// file are collected in one pass.

#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <algorithm>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <toml++/toml.h>

namespace swactor::config {

// -- diagnostics ---------------------------------------------------------------------

struct diagnostic {
  std::string file;
  std::uint32_t line = 0;
  std::uint32_t column = 0;
  std::string key;      // dotted path, e.g. "listen[0].framing.max_length"
  std::string message;  // what is wrong and what was expected
  std::string to_string() const;  // "file:line:column: key: message"
};

class diagnostics {
 public:
  void add(const toml::source_region& where, std::string key, std::string message);
  void add(diagnostic d) { items_.push_back(std::move(d)); }
  bool ok() const noexcept { return items_.empty(); }
  const std::vector<diagnostic>& items() const noexcept { return items_; }
  std::string to_string() const;  // one line per error, in file order

 private:
  std::vector<diagnostic> items_;
};

// -- value parsers (also used directly by modules) --------------------------------------

// "8MiB", "64KiB", "1GB", "512" or an integer: bytes. Error text on failure.
std::optional<std::uint64_t> parse_size(std::string_view text, std::string& error);
// "3s", "250ms", "1m", "1h", "1.5s" or an integer (ms). Error text on failure.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text, std::string& error);
std::string format_size(std::uint64_t bytes);
std::string format_duration(std::chrono::milliseconds d);
std::string type_name(const toml::node& n);
// An array of strings into `out` (appended). Each element must be a string and, when `valid`
// is given, pass it; otherwise "PATH[i]: expected <expected>" is reported (wrong elements
// are skipped, the others kept). A non-array node is reported as a whole.
void parse_strings(const toml::node& n, const std::string& path, diagnostics& diag, std::vector<std::string>& out,
                   const std::function<bool(std::string_view)>& valid = {}, std::string_view expected = "a string");
// Control characters as TOML escapes (\r, \n, \t, \u00XX), for docs and messages.
std::string escape(const std::string& s);

// -- key documentation --------------------------------------------------------------

struct key_doc {
  std::string name;          // relative to the section, e.g. "log_level"
  std::string type;          // "string", "integer", "size", "duration", "boolean", ...
  std::string default_text;  // "" = required
  std::string doc;
  bool required = false;
};

struct section_doc {
  std::string name;  // "[server]", "[[listen]]", "[modules.echo]"
  std::string doc;
  std::vector<key_doc> keys;
};

// Renders sections as the Markdown of docs/config.md.
std::string render_markdown(const std::string& title, const std::string& intro,
                            const std::vector<section_doc>& sections);

// -- schema ---------------------------------------------------------------------------

using milliseconds = std::chrono::milliseconds;

// Context handed to custom key parsers.
struct parse_context {
  diagnostics& diag;
  std::string path;  // dotted path of the node being parsed
};

template <class S>
class schema {
 public:
  using apply_fn = std::function<void(const toml::node&, S&, parse_context&)>;

  schema() = default;

  schema& string(std::string name, std::string S::*m, std::string doc,
                 std::vector<std::string> choices = {}) {
    std::string type = "string";
    if (!choices.empty()) {
      type = "one of";
      for (auto& c : choices) type += " `" + c + "`";
    }
    auto text = "\"" + escape(S{}.*m) + "\"";
    return add(std::move(name), type, text, std::move(doc),
               [m, choices](const toml::node& n, S& s, parse_context& ctx) {
                 auto v = n.value<std::string>();
                 if (!n.is_string() || !v) {
                   ctx.diag.add(n.source(), ctx.path, "expected a string, got " + type_name(n));
                   return;
                 }
                 if (!choices.empty() &&
                     std::find(choices.begin(), choices.end(), *v) == choices.end()) {
                   std::string list;
                   for (auto& c : choices) list += (list.empty() ? "" : ", ") + ("\"" + c + "\"");
                   ctx.diag.add(n.source(), ctx.path,
                                "expected one of " + list + ", got \"" + *v + "\"");
                   return;
                 }
                 s.*m = *v;
               });
  }

  template <class I>
  schema& integer(std::string name, I S::*m, std::string doc,
                  std::int64_t min = std::numeric_limits<std::int64_t>::min(),
                  std::int64_t max = std::numeric_limits<std::int64_t>::max()) {
    return add(std::move(name), range_type("integer", min, max), std::to_string(S{}.*m),
               std::move(doc), [m, min, max](const toml::node& n, S& s, parse_context& ctx) {
                 if (!n.is_integer()) {
                   ctx.diag.add(n.source(), ctx.path, "expected an integer, got " + type_name(n));
                   return;
                 }
                 auto v = *n.value<std::int64_t>();
                 if (v < min || v > max) {
                   ctx.diag.add(n.source(), ctx.path,
                                "value " + std::to_string(v) + " out of range, expected " +
                                    range_text(min, max));
                   return;
                 }
                 s.*m = static_cast<I>(v);
               });
  }

  schema& boolean(std::string name, bool S::*m, std::string doc) {
    return add(std::move(name), "boolean", S{}.*m ? "true" : "false", std::move(doc),
               [m](const toml::node& n, S& s, parse_context& ctx) {
                 if (!n.is_boolean()) {
                   ctx.diag.add(n.source(), ctx.path, "expected true or false, got " + type_name(n));
                   return;
                 }
                 s.*m = *n.value<bool>();
               });
  }

  schema& floating(std::string name, double S::*m, std::string doc,
                   double min = -std::numeric_limits<double>::infinity(),
                   double max = std::numeric_limits<double>::infinity()) {
    return add(std::move(name), "float", std::to_string(S{}.*m), std::move(doc),
               [m, min, max](const toml::node& n, S& s, parse_context& ctx) {
                 if (!n.is_number()) {
                   ctx.diag.add(n.source(), ctx.path, "expected a number, got " + type_name(n));
                   return;
                 }
                 auto v = *n.value<double>();
                 if (v < min || v > max) {
                   ctx.diag.add(n.source(), ctx.path,
                                "value " + std::to_string(v) + " out of range [" +
                                    std::to_string(min) + ", " + std::to_string(max) + "]");
                   return;
                 }
                 s.*m = v;
               });
  }

  // Bytes: an integer or a string like "8MiB".
  schema& size(std::string name, std::uint64_t S::*m, std::string doc, std::uint64_t min = 0,
               std::uint64_t max = std::numeric_limits<std::uint64_t>::max()) {
    return add(std::move(name), "size", format_size(S{}.*m), std::move(doc),
               [m, min, max](const toml::node& n, S& s, parse_context& ctx) {
                 std::string err;
                 std::optional<std::uint64_t> v;
                 if (n.is_integer() && *n.value<std::int64_t>() >= 0)
                   v = static_cast<std::uint64_t>(*n.value<std::int64_t>());
                 else if (n.is_string())
                   v = parse_size(*n.value<std::string>(), err);
                 else
                   err = "expected a size (bytes as an integer, or a string like \"8MiB\"), got " +
                         type_name(n);
                 if (!v) {
                   ctx.diag.add(n.source(), ctx.path, err);
                   return;
                 }
                 if (*v < min || *v > max) {
                   ctx.diag.add(n.source(), ctx.path,
                                "size " + format_size(*v) + " out of range, expected " +
                                    format_size(min) + " .. " + format_size(max));
                   return;
                 }
                 s.*m = *v;
               });
  }

  // Milliseconds: an integer or a string like "3s".
  schema& duration(std::string name, milliseconds S::*m, std::string doc,
                   milliseconds min = milliseconds(0), milliseconds max = milliseconds::max()) {
    return add(std::move(name), "duration", format_duration(S{}.*m), std::move(doc),
               [m, min, max](const toml::node& n, S& s, parse_context& ctx) {
                 std::string err;
                 std::optional<milliseconds> v;
                 if (n.is_integer() && *n.value<std::int64_t>() >= 0)
                   v = milliseconds(*n.value<std::int64_t>());
                 else if (n.is_string())
                   v = parse_duration(*n.value<std::string>(), err);
                 else
                   err = "expected a duration (milliseconds as an integer, or a string like "
                         "\"3s\"), got " + type_name(n);
                 if (!v) {
                   ctx.diag.add(n.source(), ctx.path, err);
                   return;
                 }
                 if (*v < min || *v > max) {
                   ctx.diag.add(n.source(), ctx.path,
                                "duration " + format_duration(*v) + " out of range, expected " +
                                    format_duration(min) + " .. " +
                                    (max == milliseconds::max() ? "unbounded"
                                                                : format_duration(max)));
                   return;
                 }
                 s.*m = *v;
               });
  }

  // A nested table parsed with its own schema (documented as its own section).
  template <class Sub>
  schema& table(std::string name, Sub S::*m, const schema<Sub>& sub, std::string doc) {
    auto subp = std::make_shared<schema<Sub>>(sub);
    return add(std::move(name), "table", "see below", std::move(doc),
               [m, subp](const toml::node& n, S& s, parse_context& ctx) {
                 if (!n.is_table()) {
                   ctx.diag.add(n.source(), ctx.path, "expected a table, got " + type_name(n));
                   return;
                 }
                 subp->parse(*n.as_table(), s.*m, ctx.diag, ctx.path);
               });
  }

  // An array of strings (default: the member's initial value, documented as "[]").
  schema& strings(std::string name, std::vector<std::string> S::*m, std::string doc,
                  std::function<bool(std::string_view)> valid = {}, std::string expected = "a string") {
    return add(std::move(name), "array of strings", "[]", std::move(doc),
               [m, valid = std::move(valid), expected = std::move(expected)](const toml::node& n, S& s,
                                                                             parse_context& ctx) {
                 parse_strings(n, ctx.path, ctx.diag, s.*m, valid, expected);
               });
  }

  // Anything else: the parser is given the node and reports its own errors.
  schema& custom(std::string name, std::string type, std::string default_text, std::string doc,
                 apply_fn fn) {
    return add(std::move(name), std::move(type), std::move(default_text), std::move(doc),
               std::move(fn));
  }

  // The last added key must be present.
  schema& required() {
    keys_.back().doc.required = true;
    keys_.back().doc.default_text.clear();
    return *this;
  }

  // Parses `tbl` into `out`; unknown keys, wrong types, out-of-range values and missing
  // required keys are reported to `diag` (nothing thrown). `path` prefixes key names.
  // `ignored` keys belong to the caller (e.g. a module's `type`).
  void parse(const toml::table& tbl, S& out, diagnostics& diag, const std::string& path = "",
             const std::vector<std::string>& ignored = {}) const {
    for (auto&& [k, node] : tbl) {
      std::string key(k.str());
      if (std::find(ignored.begin(), ignored.end(), key) != ignored.end()) continue;
      auto full = path.empty() ? key : path + "." + key;
      const entry* e = find(key);
      if (!e) {
        diag.add(k.source().begin.line ? k.source() : node.source(), full,
                 "unknown key" + suggestion(key) + (expected_keys()));
        continue;
      }
      parse_context ctx{diag, full};
      e->apply(node, out, ctx);
    }
    for (const auto& e : keys_) {
      if (e.doc.required && !tbl.contains(e.doc.name)) {
        auto full = path.empty() ? e.doc.name : path + "." + e.doc.name;
        diag.add(tbl.source(), full, "missing required key (" + e.doc.type + ")");
      }
    }
  }

  std::vector<key_doc> docs() const {
    std::vector<key_doc> out;
    for (const auto& e : keys_) out.push_back(e.doc);
    return out;
  }

 private:
  struct entry {
    key_doc doc;
    apply_fn apply;
  };

  schema& add(std::string name, std::string type, std::string default_text, std::string doc,
              apply_fn fn) {
    keys_.push_back({key_doc{std::move(name), std::move(type), std::move(default_text),
                             std::move(doc), false},
                     std::move(fn)});
    return *this;
  }

  const entry* find(const std::string& key) const {
    for (const auto& e : keys_)
      if (e.doc.name == key) return &e;
    return nullptr;
  }

  std::string expected_keys() const {
    std::string out = "; expected one of:";
    for (const auto& e : keys_) out += " " + e.doc.name;
    return keys_.empty() ? "; this table takes no keys" : out;
  }

  std::string suggestion(const std::string& key) const;

  static std::string range_text(std::int64_t min, std::int64_t max) {
    if (min == std::numeric_limits<std::int64_t>::min() &&
        max == std::numeric_limits<std::int64_t>::max())
      return "any integer";
    if (max == std::numeric_limits<std::int64_t>::max()) return ">= " + std::to_string(min);
    return std::to_string(min) + " .. " + std::to_string(max);
  }
  static std::string range_type(const std::string& base, std::int64_t min, std::int64_t max) {
    auto r = range_text(min, max);
    return r == "any integer" ? base : base + " (" + r + ")";
  }

  std::vector<entry> keys_;
};

// Edit distance for "did you mean" hints.
std::size_t edit_distance(std::string_view a, std::string_view b);

template <class S>
std::string schema<S>::suggestion(const std::string& key) const {
  std::size_t best = 3;
  std::string hit;
  for (const auto& e : keys_) {
    auto d = edit_distance(key, e.doc.name);
    if (d < best) {
      best = d;
      hit = e.doc.name;
    }
  }
  return hit.empty() ? "" : " (did you mean \"" + hit + "\"?)";
}

// Reads and parses a TOML file. A syntax error is reported as a diagnostic (toml++ stops
// at the first one) and yields nullopt.
std::optional<toml::table> load_file(const std::string& path, diagnostics& diag);
std::optional<toml::table> load_string(std::string_view text, const std::string& name,
                                       diagnostics& diag);

}  // namespace swactor::config
