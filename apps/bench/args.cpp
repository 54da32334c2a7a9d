#include "args.hpp"

#include <algorithm>

#include <CLI/CLI.hpp>

#include "mode.hpp"
#include "runner.hpp"

namespace swactor::bench {

namespace {

parsed_args fail(std::string msg) {
  // One line, whatever the source of the message.
  std::replace(msg.begin(), msg.end(), '\n', ' ');
  while (!msg.empty() && msg.back() == ' ') msg.pop_back();
  return {std::nullopt, 2, "swactor bench: " + msg};
}

}  // namespace

parsed_args parse_args(const std::vector<std::string>& args) {
  settings s;
  std::string url, duration_text, timeout_text = "5s", eof_text = "\\r\\n";
  std::size_t body_offset = 0;
  bool big = false, little = false;

  CLI::App app("Load tester for TCP, UDP and Unix-socket servers", "swactor bench");
  app.add_option("-s,--server", url, "tcp://HOST:PORT, udp://HOST:PORT or unix:///PATH")
      ->required();
  std::string modes_help = "mode:";
  for (auto& m : mode_list()) modes_help += "\n  " + std::string(m.name) + ": " + std::string(m.help);
  app.add_option("-f,--mode", s.mode, modes_help)->required();
  app.add_option("-n,--requests", s.requests, "stop after exactly N requests");
  app.add_option("-d,--duration", duration_text, "run for a duration: 10s, 500ms, 2m");
  app.add_option("-c,--connections", s.connections, "connections (total)")->capture_default_str();
  app.add_option("-t,--threads", s.threads, "threads, one loop each")->capture_default_str();
  app.add_option("--size", s.size, "payload bytes per request")->capture_default_str();
  app.add_option("--pipeline", s.pipeline, "requests in flight per connection")
      ->capture_default_str();
  app.add_option("--rate", s.rate,
                 "total requests/s at a fixed schedule; latency from the intended send time");
  app.add_flag("--verify", s.verify, "check every reply against its request");
  app.add_option("--timeout", timeout_text, "timeout of every connect/read/write")
      ->capture_default_str();
  app.add_option("--json", s.json_file, "write the report as JSON to FILE");
  auto* eof = app.add_option("--eof", eof_text, "eof mode delimiter, escapes \\r \\n \\t \\0 \\xHH")
                  ->capture_default_str();
  app.add_option("--length-size", s.frame.length_size, "length mode: field size 1|2|4|8")
      ->capture_default_str();
  app.add_option("--length-offset", s.frame.length_offset, "length mode: field offset")
      ->capture_default_str();
  auto* body = app.add_option("--body-offset", body_offset,
                              "length mode: body start (default offset + size)");
  auto* be = app.add_flag("--big-endian", big, "length field is big-endian (default)");
  auto* le = app.add_flag("--little-endian", little, "length field is little-endian");
  le->excludes(be);
  app.add_flag("--signed", s.frame.is_signed, "length field is signed");
  (void)eof;

  try {
    std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 parses from the back
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    return {std::nullopt, 0, app.help()};
  } catch (const CLI::ParseError& e) {
    return fail(e.what());
  }

  if (auto err = parse_url(url, s.server); !err.empty()) return fail(err);
  if (!duration_text.empty() && !parse_duration(duration_text, s.duration))
    return fail("bad duration '" + duration_text + "' (e.g. 10s, 500ms, 2m)");
  if (!parse_duration(timeout_text, s.timeout))
    return fail("bad timeout '" + timeout_text + "' (e.g. 5s, 200ms)");
  if (!unescape(eof_text, s.frame.eof)) return fail("bad escape in --eof '" + eof_text + "'");
  if (*body) s.frame.body_offset = body_offset;
  s.frame.big_endian = !little;
  if (auto err = validate(s); !err.empty()) return fail(err);
  return {std::move(s), 0, {}};
}

}  // namespace swactor::bench
