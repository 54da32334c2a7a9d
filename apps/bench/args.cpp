#include "args.hpp"

#include <algorithm>

#include <CLI/CLI.hpp>

#include "mode.hpp"
#include "swactor/core/config.hpp"
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
  std::string url, duration_text, timeout_text = "5s", eof_text = "\\r\\n", size_text = "64";
  std::string max_length_text = config::format_size(s.frame.max_length), length_type;
  std::string value_size_text = std::to_string(s.redis.value_size);
  bool big = false, little = false;

  CLI::App app("Load tester for TCP, UDP, Unix-socket, HTTP/1.1, HTTP/2, Redis and WebSocket servers", "swactor bench");
  app.footer(
      "Durations and sizes are read as in app.toml: a bare number is milliseconds (-d 500 "
      "runs for half a second; write -d 10s for ten) and bytes; units us ms s m h and B KB "
      "KiB MB MiB GB GiB. The framing flags mean what the [[listen]].framing keys of the "
      "same names mean, with the same defaults.");
  app.add_option("-s,--server", url,
                 "tcp://HOST:PORT, udp://HOST:PORT, unix:///PATH, http://HOST[:PORT][/PATH], "
                 "http+unix:///PATH, redis://HOST[:PORT], ws://HOST[:PORT][/PATH], or for the "
                 "h2 mode also h2c://HOST[:PORT][/PATH] and https://HOST[:PORT][/PATH] (TLS, ALPN h2)")
      ->required();
  std::string modes_help = "mode:";
  for (auto& m : mode_list()) modes_help += "\n  " + std::string(m.name) + ": " + std::string(m.help);
  app.add_option("-f,--mode", s.mode, modes_help)->required();
  app.add_option("-n,--requests", s.requests, "stop after exactly N requests");
  app.add_option("-d,--duration", duration_text,
                 "run for a duration: 10s, 500ms, 2m (a bare number is milliseconds)");
  app.add_option("-c,--connections", s.connections, "connections (total)")->capture_default_str();
  app.add_option("-t,--threads", s.threads, "threads, one loop each")->capture_default_str();
  app.add_option("--size", size_text,
                 "payload bytes per request (websocket: the message size): 64, 4KiB, 1MiB")
      ->capture_default_str();
  app.add_option("--pipeline,-m,--streams", s.pipeline,
                 "requests in flight per connection (redis: commands per round, written at "
                 "once, all replies read before the next round; h2: concurrent streams per "
                 "connection, as h2load -m)")
      ->capture_default_str();
  app.add_option("--rate", s.rate,
                 "total requests/s at a fixed schedule; latency from the intended send time");
  app.add_flag("--verify", s.verify, "check every reply against its request");
  app.add_option("--timeout", timeout_text,
                 "timeout of every connect/read/write (a bare number is milliseconds)")
      ->capture_default_str();
  app.add_option("--json", s.json_file, "write the report as JSON to FILE");
  app.add_option("--eof", eof_text, "eof mode delimiter, escapes \\r \\n \\t \\0 \\xHH")
      ->capture_default_str();
  auto* lsize = app.add_option("--length-size", s.frame.length_size,
                               "length mode: field size 1|2|4|8")
                    ->capture_default_str();
  app.add_option("--length-offset", s.frame.length_offset, "length mode: field offset")
      ->capture_default_str();
  app.add_option("--body-offset", s.frame.body_offset,
                 "length mode: frame size = body offset + length value; 0 = the length counts "
                 "the whole frame")
      ->capture_default_str();
  auto* be = app.add_flag("--big-endian", big, "length field is big-endian (default)");
  auto* le = app.add_flag("--little-endian", little, "length field is little-endian");
  le->excludes(be);
  auto* sig = app.add_flag("--signed", s.frame.length_signed, "length field is signed");
  auto* ltype = app.add_option("--length-type", length_type,
                               "length mode: size, sign and byte order as Swoole's "
                               "package_length_type letter (c C s S n v l L N V q Q J P)");
  for (auto* o : {lsize, be, le, sig}) ltype->excludes(o);
  app.add_option("--method", s.http.method, "http and h2 modes: request method")->capture_default_str();
  app.add_option("--path", s.http.path, "http and h2 modes: request target (default: the URL's path, or /)");
  // One value per --header: a header value may look like anything.
  app.add_option("--header", s.http.headers,
                 "http and h2 modes: extra request header \"Name: value\" (repeatable)")
      ->allow_extra_args(false)
      ->take_all();
  std::string body_text, verify_body_text;
  auto* body_opt = app.add_option("--body", body_text, "http and h2 modes: request body (sets Content-Length)");
  auto* vbody_opt = app.add_option("--verify-body", verify_body_text,
                                   "http and h2 modes with --verify: the response body must be exactly this");
  app.add_flag("--deflate", s.deflate,
               "websocket modes: offer permessage-deflate (the server must accept it); every "
               "message goes compressed, replies may come compressed");
  app.add_option("--mix", s.redis.mix,
                 "redis mode: commands (get set incr ping) with weights: get, set,get or "
                 "get:8,set:2")
      ->capture_default_str();
  app.add_option("--keyspace", s.redis.keyspace,
                 "redis mode: random keys key:000000000000 .. N-1 (redis-benchmark -r)")
      ->capture_default_str();
  app.add_option("--value-size", value_size_text,
                 "redis mode: SET value bytes (redis-benchmark -d)")
      ->capture_default_str();
  app.add_option("--max-length", max_length_text,
                 "eof and length modes: largest reply frame (the server's max_length)")
      ->capture_default_str();

  try {
    std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 parses from the back
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    return {std::nullopt, 0, app.help()};
  } catch (const CLI::ParseError& e) {
    return fail(e.what());
  }

  if (auto err = parse_url(url, s.server); !err.empty()) return fail(err);
  if (body_opt->count() > 0) s.http.body = body_text;
  if (vbody_opt->count() > 0) s.http.verify_body = verify_body_text;
  std::string why;
  // core's parsers: the same text means the same value here and in app.toml.
  if (!duration_text.empty()) {
    auto d = config::parse_duration(duration_text, why);
    if (!d) return fail("-d: " + why);
    s.duration = *d;
  }
  if (auto t = config::parse_duration(timeout_text, why))
    s.timeout = *t;
  else
    return fail("--timeout: " + why);
  if (auto n = config::parse_size(size_text, why))
    s.size = static_cast<std::size_t>(*n);
  else
    return fail("--size: " + why);
  if (auto n = config::parse_size(value_size_text, why))
    s.redis.value_size = static_cast<std::size_t>(*n);
  else
    return fail("--value-size: " + why);
  if (auto n = config::parse_size(max_length_text, why))
    s.frame.max_length = static_cast<std::size_t>(*n);
  else
    return fail("--max-length: " + why);
  if (!unescape(eof_text, s.frame.eof)) return fail("bad escape in --eof '" + eof_text + "'");
  s.frame.length_order = little ? protocols::byte_order::little : protocols::byte_order::big;
  if (!length_type.empty() && !s.frame.set_length_type(length_type))
    return fail("--length-type '" + length_type + "' is not one of c C s S n v l L N V q Q J P");
  if (auto err = validate(s); !err.empty()) return fail(err);
  return {std::move(s), 0, {}};
}

}  // namespace swactor::bench
