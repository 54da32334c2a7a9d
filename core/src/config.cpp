#include "swactor/core/config.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <cerrno>
#include <cstring>

namespace swactor::config {

std::string diagnostic::to_string() const {
  std::string out = file.empty() ? "<config>" : file;
  out += ":" + std::to_string(line) + ":" + std::to_string(column) + ": ";
  if (!key.empty()) out += key + ": ";
  out += message;
  return out;
}

void diagnostics::add(const toml::source_region& where, std::string key, std::string message) {
  diagnostic d;
  d.file = where.path ? *where.path : "";
  d.line = where.begin.line;
  d.column = where.begin.column;
  d.key = std::move(key);
  d.message = std::move(message);
  items_.push_back(std::move(d));
}

std::string diagnostics::to_string() const {
  // toml++ iterates tables in key order; users read errors in file order.
  auto sorted = items_;
  std::stable_sort(sorted.begin(), sorted.end(), [](const diagnostic& a, const diagnostic& b) {
    if (a.file != b.file) return a.file < b.file;
    if (a.line != b.line) return a.line < b.line;
    return a.column < b.column;
  });
  std::string out;
  for (const auto& d : sorted) out += d.to_string() + "\n";
  return out;
}

namespace {

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

// Splits "12.5 MiB" into number and unit.
bool split_number(std::string_view text, double& number, std::string& unit) {
  auto t = trim(text);
  std::size_t i = 0;
  while (i < t.size() && (std::isdigit(static_cast<unsigned char>(t[i])) || t[i] == '.')) ++i;
  if (i == 0) return false;
  try {
    std::size_t used = 0;
    number = std::stod(t.substr(0, i), &used);
    if (used != i) return false;
  } catch (...) {
    return false;
  }
  unit = trim(std::string_view(t).substr(i));
  return true;
}

}  // namespace

std::optional<std::uint64_t> parse_size(std::string_view text, std::string& error) {
  double n = 0;
  std::string unit;
  if (!split_number(text, n, unit)) {
    error = "expected a size like \"512\", \"64KiB\", \"8MiB\" or \"1GiB\", got \"" +
            std::string(text) + "\"";
    return std::nullopt;
  }
  std::string u;
  for (char c : unit) u += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  double mult = 0;
  if (u.empty() || u == "b") mult = 1;
  else if (u == "k" || u == "kb") mult = 1e3;
  else if (u == "kib") mult = 1024.0;
  else if (u == "m" || u == "mb") mult = 1e6;
  else if (u == "mib") mult = 1024.0 * 1024;
  else if (u == "g" || u == "gb") mult = 1e9;
  else if (u == "gib") mult = 1024.0 * 1024 * 1024;
  else {
    error = "unknown size unit \"" + unit + "\" in \"" + std::string(text) +
            "\"; expected B, KB, KiB, MB, MiB, GB or GiB";
    return std::nullopt;
  }
  double v = n * mult;
  // 2^63: above it llround overflows; nobody configures an 8 EiB buffer.
  if (v >= 9.2e18) {
    error = "size \"" + std::string(text) + "\" is too large";
    return std::nullopt;
  }
  return static_cast<std::uint64_t>(std::llround(v));
}

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text, std::string& error) {
  double n = 0;
  std::string unit;
  if (!split_number(text, n, unit)) {
    error = "expected a duration like \"250ms\", \"3s\", \"5m\" or \"1h\", got \"" +
            std::string(text) + "\"";
    return std::nullopt;
  }
  double ms_per = 0;
  if (unit.empty() || unit == "ms") ms_per = 1;
  else if (unit == "s") ms_per = 1000;
  else if (unit == "m" || unit == "min") ms_per = 60'000;
  else if (unit == "h") ms_per = 3'600'000;
  else if (unit == "us") ms_per = 0.001;
  else {
    error = "unknown duration unit \"" + unit + "\" in \"" + std::string(text) +
            "\"; expected us, ms, s, m or h";
    return std::nullopt;
  }
  double ms = n * ms_per;
  if (ms >= 9.2e15) {  // about 290,000 years; also keeps llround far from overflow
    error = "duration \"" + std::string(text) + "\" is too large";
    return std::nullopt;
  }
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(ms)));
}

std::string format_size(std::uint64_t b) {
  static const char* units[] = {"GiB", "MiB", "KiB"};
  static const std::uint64_t mult[] = {1ull << 30, 1ull << 20, 1ull << 10};
  for (int i = 0; i < 3; ++i)
    if (b >= mult[i] && b % mult[i] == 0) return std::to_string(b / mult[i]) + units[i];
  return std::to_string(b);
}

std::string format_duration(std::chrono::milliseconds d) {
  auto ms = d.count();
  if (ms != 0 && ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms != 0 && ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms != 0 && ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

void parse_strings(const toml::node& n, const std::string& path, diagnostics& diag, std::vector<std::string>& out,
                   const std::function<bool(std::string_view)>& valid, std::string_view expected) {
  const auto* arr = n.as_array();
  if (!arr) {
    diag.add(n.source(), path, "expected an array of strings, got " + type_name(n));
    return;
  }
  for (std::size_t k = 0; k < arr->size(); ++k) {
    const auto& el = *arr->get(k);
    const auto* v = el.as_string();
    if (!v || (valid && !valid(v->get()))) {
      diag.add(el.source(), path + "[" + std::to_string(k) + "]", "expected " + std::string(expected));
      continue;
    }
    out.push_back(v->get());
  }
}

std::string type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    default: return "nothing";
  }
}

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '\r': out += "\\r"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned char>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string render_markdown(const std::string& title, const std::string& intro,
                            const std::vector<section_doc>& sections) {
  std::ostringstream out;
  out << "# " << title << "\n\n" << intro << "\n";
  for (const auto& s : sections) {
    out << "\n## `" << s.name << "`\n\n";
    if (!s.doc.empty()) out << s.doc << "\n\n";
    if (s.keys.empty()) {
      out << "_No keys._\n";
      continue;
    }
    out << "| key | type | default | meaning |\n|---|---|---|---|\n";
    for (const auto& k : s.keys) {
      std::string def = k.required ? "**required**" : (k.default_text.empty() ? "`\"\"`" : "`" + k.default_text + "`");
      std::string doc = k.doc;
      std::replace(doc.begin(), doc.end(), '\n', ' ');
      // Pipes would break the table.
      std::string escaped;
      for (char c : doc) escaped += (c == '|') ? std::string("\\|") : std::string(1, c);
      out << "| `" << k.name << "` | " << k.type << " | " << def << " | " << escaped << " |\n";
    }
  }
  return out.str();
}

namespace {
std::optional<toml::table> parse_with(std::string_view text, const std::string& name,
                                      diagnostics& diag) {
  try {
    return toml::parse(text, name);
  } catch (const toml::parse_error& e) {
    diag.add(e.source(), "", "TOML syntax error: " + std::string(e.description()));
    return std::nullopt;
  }
}
}  // namespace

std::optional<toml::table> load_file(const std::string& path, diagnostics& diag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    diagnostic d;
    d.file = path;
    d.message = "cannot open file: " + std::string(std::strerror(errno));
    diag.add(std::move(d));
    return std::nullopt;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_with(ss.str(), path, diag);
}

std::optional<toml::table> load_string(std::string_view text, const std::string& name,
                                       diagnostics& diag) {
  return parse_with(text, name, diag);
}

}  // namespace swactor::config
