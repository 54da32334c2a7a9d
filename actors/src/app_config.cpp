#include "swactor/actors/app_config.hpp"

#include "swactor/actors/listen_url.hpp"
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <limits>
#include <set>

#include "net/tls.hpp"

namespace swactor {

int app_config::module_index(const std::string& instance) const {
  for (std::size_t i = 0; i < modules.size(); ++i)
    if (modules[i].instance == instance) return static_cast<int>(i);
  return -1;
}

const config::schema<framing_config>& framing_schema() {
  static const auto s = [] {
    config::schema<framing_config> s;
    s.string("type", &framing_config::type,
             "`raw`: bytes as they arrive; `eof`: one message per delimiter (Swoole's "
             "open_eof_split); `length`: a length field gives the frame size (Swoole's "
             "open_length_check).",
             {"raw", "eof", "length"})
        .string("delimiter", &framing_config::delimiter,
                "eof: the 1-8 byte delimiter; escapes \\r \\n \\t \\0 \\\\ and \\xHH "
                "are understood. The message handed to the module keeps it.")
        .integer("length_size", &framing_config::length_size,
                 "length: size of the length field in bytes: 1, 2, 4 or 8.", 1, 8)
        .integer("length_offset", &framing_config::length_offset,
                 "length: where the length field starts (Swoole's package_length_offset).", 0,
                 65535)
        .integer("body_offset", &framing_config::body_offset,
                 "length: frame size = body_offset + length value (Swoole's "
                 "package_body_offset).",
                 0, 65535)
        .boolean("big_endian", &framing_config::big_endian,
                 "length: byte order of the length field (true = network order).")
        .boolean("signed", &framing_config::is_signed,
                 "length: the length field is signed; a negative value closes the connection.")
        .size("max_length", &framing_config::max_length,
              "Largest frame (length) or undelimited buffer (eof); beyond it the connection is "
              "closed with a log line (Swoole's package_max_length).",
              1, 1ull << 30);
    return s;
  }();
  return s;
}

namespace {

void parse_methods(const toml::node& v, route_config& rc, config::parse_context& ctx) {
  const auto* ma = v.as_array();
  if (!ma) {
    ctx.diag.add(v.source(), ctx.path,
                 "expected an array of method names like [\"GET\", \"HEAD\"], got " + config::type_name(v));
    return;
  }
  for (auto&& m : *ma) {
    auto ms = m.value<std::string>();
    bool token = m.is_string() && ms && !ms->empty() &&
                 std::all_of(ms->begin(), ms->end(), [](char c) { return c >= 'A' && c <= 'Z'; });
    if (!token) {
      ctx.diag.add(m.source(), ctx.path,
                   "expected an upper-case method name like \"GET\", got " +
                       (m.is_string() ? "\"" + *ms + "\"" : config::type_name(m)));
      continue;
    }
    rc.methods.push_back(*ms);
  }
}

void parse_routes(const toml::node& n, listen_config& lc, config::parse_context& ctx) {
  const auto* arr = n.as_array();
  if (!arr) {
    ctx.diag.add(n.source(), ctx.path,
                 "expected an array of tables like [ { path = \"/api/\", module = \"api\" } ], got " +
                     config::type_name(n));
    return;
  }
  for (std::size_t i = 0; i < arr->size(); ++i) {
    const auto& el = *arr->get(i);
    auto path = ctx.path + "[" + std::to_string(i) + "]";
    const auto* t = el.as_table();
    if (!t) {
      ctx.diag.add(el.source(), path, "expected a table { path, module, methods }, got " + config::type_name(el));
      continue;
    }
    route_config rc;
    auto before = ctx.diag.items().size();
    route_schema().parse(*t, rc, ctx.diag, path);
    if (t->contains("module") && rc.module.empty())
      ctx.diag.add(el.source(), path + ".module", "expected a module instance name, got \"\"");
    rc.exact = !rc.path.empty() && rc.path[0] == '=';
    rc.match = rc.exact ? rc.path.substr(1) : rc.path;
    if (ctx.diag.items().size() == before && (rc.match.empty() || rc.match[0] != '/'))
      ctx.diag.add(el.source(), path + ".path",
                   "expected a path starting with \"/\" (or \"=/\" for an exact match), got \"" + rc.path + "\"");
    rc.where = el.source();
    // Kept even when broken (the file is refused anyway), so positions stay route indexes.
    lc.routes.push_back(std::move(rc));
  }
}

}  // namespace

const config::schema<tls_sni_config>& tls_sni_schema() {
  static const auto s = [] {
    config::schema<tls_sni_config> s;
    s.string("host", &tls_sni_config::host,
             "Server name this entry answers: `api.example.com`, or `*.example.com` for any one "
             "label in front of `example.com` (not `example.com` itself). Matched without case.")
        .required()
        .string("cert", &tls_sni_config::cert, "PEM certificate chain for that name.")
        .required()
        .string("key", &tls_sni_config::key,
                "PEM private key of `cert` (the listener's `passphrase_file` decrypts it).")
        .required();
    return s;
  }();
  return s;
}

namespace {

constexpr std::string_view kTlsVersions[] = {"TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"};

void parse_sni(const toml::node& n, tls_config& tc, config::parse_context& ctx) {
  const auto* arr = n.as_array();
  if (!arr) {
    ctx.diag.add(n.source(), ctx.path,
                 "expected an array of tables like [ { host = \"*.example.com\", cert = \"x.pem\", key = "
                 "\"x.key\" } ], got " + config::type_name(n));
    return;
  }
  for (std::size_t i = 0; i < arr->size(); ++i) {
    const auto& el = *arr->get(i);
    auto path = ctx.path + "[" + std::to_string(i) + "]";
    const auto* t = el.as_table();
    if (!t) {
      ctx.diag.add(el.source(), path, "expected a table { host, cert, key }, got " + config::type_name(el));
      continue;
    }
    tls_sni_config sc;
    tls_sni_schema().parse(*t, sc, ctx.diag, path);
    tc.sni.push_back(std::move(sc));
  }
}

}  // namespace

const config::schema<tls_config>& tls_schema() {
  static const auto s = [] {
    config::schema<tls_config> s;
    auto version_ok = [](std::string_view v) {
      return std::find(std::begin(kTlsVersions), std::end(kTlsVersions), v) != std::end(kTlsVersions);
    };
    s.string("cert", &tls_config::cert,
             "PEM certificate chain (the server certificate first, then intermediates). A relative "
             "path is relative to the config file's directory, as for every file below.")
        .required()
        .string("key", &tls_config::key, "PEM private key of `cert` (PKCS#8 or traditional; may be encrypted).")
        .required()
        .string("passphrase_file", &tls_config::passphrase_file,
                "File whose first line is the passphrase of an encrypted `key` (and of the `sni` keys); "
                "\"\" = keys are not encrypted.")
        .string("ca", &tls_config::ca,
                "PEM file of the CAs that client certificates must chain to; needed by `verify_client`.")
        .string("verify_client", &tls_config::verify_client,
                "Mutual TLS: `none` asks for no client certificate; `optional` asks for one and checks it "
                "when given; `required` refuses a handshake without a valid one.",
                {"none", "optional", "required"})
        .custom("protocols", "array of strings", "[\"TLSv1.2\", \"TLSv1.3\"]",
                "TLS versions accepted, from the oldest to the newest named: `TLSv1`, `TLSv1.1`, `TLSv1.2`, "
                "`TLSv1.3`. Older clients fail the handshake (a log line).",
                [version_ok](const toml::node& n, tls_config& tc, config::parse_context& ctx) {
                  std::vector<std::string> v;
                  auto before = ctx.diag.items().size();
                  config::parse_strings(n, ctx.path, ctx.diag, v, version_ok,
                                        "one of \"TLSv1\", \"TLSv1.1\", \"TLSv1.2\", \"TLSv1.3\"");
                  if (ctx.diag.items().size() != before) return;
                  if (v.empty()) {
                    ctx.diag.add(n.source(), ctx.path, "expected at least one TLS version like \"TLSv1.3\"");
                    return;
                  }
                  tc.protocols = std::move(v);
                })
        .string("ciphers", &tls_config::ciphers,
                "TLS 1.2 and older: an OpenSSL cipher list (`ECDHE+AESGCM:ECDHE+CHACHA20`); \"\" = "
                "OpenSSL's default.")
        .string("ciphersuites", &tls_config::ciphersuites,
                "TLS 1.3: an OpenSSL ciphersuite list (`TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256`); "
                "\"\" = OpenSSL's default.")
        .string("curves", &tls_config::curves,
                "Key exchange groups in order of preference (`X25519:P-256`); \"\" = OpenSSL's default.")
        .custom("sni", "array of tables", "[]",
                "More certificates chosen by the server name the client asks for (see [listen.tls.sni]); "
                "a name that matches none gets `cert`.",
                parse_sni)
        .custom("alpn", "array of strings", "[\"http/1.1\"] on HTTP listeners, else []",
                "Application protocols offered by ALPN, in order of preference; a client that offers none "
                "of them continues without ALPN.",
                [](const toml::node& n, tls_config& tc, config::parse_context& ctx) {
                  tc.alpn.clear();
                  tc.alpn_set = true;
                  config::parse_strings(n, ctx.path, ctx.diag, tc.alpn,
                                        [](std::string_view p) { return !p.empty() && p.size() < 256; },
                                        "a protocol name of 1-255 bytes like \"http/1.1\"");
                })
        .boolean("session_tickets", &tls_config::session_tickets,
                 "Resume sessions with tickets (RFC 5077 / TLS 1.3 PSK). The ticket keys are made once by "
                 "the master and shared by every worker and reactor, so a ticket works on any of them; "
                 "false = no resumption.")
        .string("ocsp_file", &tls_config::ocsp_file,
                "DER OCSP response for `cert`, stapled for clients that ask (status_request); re-read "
                "with the certificates on reload. \"\" = no stapling.")
        .duration("handshake_timeout", &tls_config::handshake_timeout,
                  "A client must finish the TLS handshake within this time from its accept, else the "
                  "connection is closed with a log line.",
                  std::chrono::milliseconds(1));
    return s;
  }();
  return s;
}

const config::schema<route_config>& route_schema() {
  static const auto s = [] {
    config::schema<route_config> s;
    s.string("path", &route_config::path,
             "`\"/api/\"`: every path starting with it (the longest such entry wins); "
             "`\"=/healthz\"`: only that path (beats any prefix).")
        .required()
        .string("module", &route_config::module, "Module instance that answers the requests.")
        .required()
        .custom("methods", "array of strings", "[]",
                "Methods this entry takes (`[\"GET\", \"HEAD\"]`); empty = every method.",
                parse_methods)
        .boolean("stream_body", &route_config::stream_body,
                 "on_request runs as soon as the head is here and reads the body piece by "
                 "piece (request::read_body); else it gets the whole body.");
    return s;
  }();
  return s;
}

const config::schema<listen_config>& listen_schema() {
  static const auto s = [] {
    config::schema<listen_config> s;
    s.string("url", &listen_config::url,
             "Where to listen: `tcp://HOST:PORT`, `tcp://[::1]:PORT`, `udp://HOST:PORT`, "
             "`unix:///path` (stream), `unixgram:///path` (datagram), `http://HOST:PORT` or "
             "`http+unix:///path` (HTTP/1.1), `ws://HOST:PORT` or `ws+unix:///path` (HTTP/1.1 "
             "with WebSocket upgrades), `redis://HOST:PORT` or `redis+unix:///path` (the Redis "
             "protocol); over TLS (needs `tls`): `https://HOST:PORT`, `wss://HOST:PORT`, "
             "`tls://HOST:PORT` (framed like tcp://).")
        .required()
        .string("module", &listen_config::module,
                "Module instance that handles this listener's events ([modules.NAME], or a "
                "built-in module type used with default options). Required, except on an "
                "HTTP listener with `routes`.")
        .table("framing", &listen_config::framing, framing_schema(),
               "How a byte stream is cut into messages; see [listen.framing].")
        .size("output_buffer_size", &listen_config::output_buffer_size,
              "Bytes queued for one connection that has not read them yet; beyond it send() "
              "fails with `output buffer full` (Swoole's socket_buffer_size).",
              1024)
        .duration("heartbeat_idle_time", &listen_config::heartbeat_idle_time,
                  "Close a connection that sent nothing for this long; 0 = never.")
        .duration("heartbeat_check_interval", &listen_config::heartbeat_check_interval,
                  "How often idle connections are looked for; 0 = heartbeat_idle_time / 2.")
        .integer("backlog", &listen_config::backlog, "listen() backlog.", 1, 65535)
        .boolean("tcp_nodelay", &listen_config::tcp_nodelay, "Set TCP_NODELAY on connections.")
        .boolean("keepalive", &listen_config::keepalive, "Set SO_KEEPALIVE on connections.")
        .boolean("reuse_port", &listen_config::reuse_port,
                 "Set SO_REUSEPORT on the listening socket.")
        .integer("max_connections", &listen_config::max_connections,
                 "Open connections on this listener across all workers; beyond it new "
                 "connections are closed at once and logged. The stream listeners' sum also "
                 "sizes the shared session registry behind ctx.exists() (64 B per allowed "
                 "connection, at least 16 KiB, mapped at start).",
                 1, 10'000'000)
        .size("max_packet_size", &listen_config::max_packet_size,
              "udp/unixgram: largest datagram received; longer ones are truncated by the "
              "kernel and dropped with a log line.",
              512, 65536)
        .integer("max_queued_messages", &listen_config::max_queued_messages,
                 "Messages read from one connection and waiting for its handler; beyond it "
                 "the connection stops reading until the handler catches up (the look-ahead "
                 "that lets a connection keep reading while a handler runs).",
                 1, 1'000'000)
        .custom("routes", "array of tables", "[]",
                "HTTP listeners: which module answers which request (instead of `module`); "
                "see [listen.routes]. Paths are matched after percent-decoding and dot-segment "
                "removal.",
                parse_routes)
        .size("max_header_size", &listen_config::max_header_size,
              "HTTP: bytes of the request line and header fields together; beyond it 431 and "
              "close.",
              256, 16u << 20)
        .integer("max_headers", &listen_config::max_headers,
                 "HTTP: header fields per request; beyond it 431 and close.", 1, 10000)
        .size("max_body_size", &listen_config::max_body_size,
              "HTTP: request body bytes (Content-Length, or the chunked total); beyond it 413 "
              "and close, before the body is read.")
        .duration("header_timeout", &listen_config::header_timeout,
                  "HTTP: the whole request head must arrive within this time from its first "
                  "byte, else 408 and close (slowloris); a new connection that sends nothing "
                  "within it is closed quietly. 0 = no limit.")
        .duration("keepalive_timeout", &listen_config::keepalive_timeout,
                  "HTTP: a keep-alive connection idle this long between requests is closed "
                  "(quietly). 0 = no limit.")
        .duration("body_timeout", &listen_config::body_timeout,
                  "HTTP: a request body that makes no progress for this long gets 408 and the "
                  "connection is closed. 0 = no limit.")
        .integer("max_requests_per_connection", &listen_config::max_requests_per_connection,
                 "HTTP: the response to this request number carries `Connection: close`; 0 = "
                 "unlimited.",
                 0, std::numeric_limits<std::int64_t>::max())
        .integer("max_concurrency", &listen_config::max_concurrency,
                 "HTTP: requests being handled at once in one worker; beyond it 503 with "
                 "Retry-After.",
                 1, 10'000'000)
        .integer("max_pipelined_requests", &listen_config::max_pipelined_requests,
                 "HTTP: requests of one connection parsed ahead of their responses "
                 "(pipelining); beyond it the connection stops reading until responses go out.",
                 1, 1024)
        .string("server_header", &listen_config::server_header,
                "HTTP: the Server header of responses; \"\" = none.")
        .boolean("h2c", &listen_config::h2c,
                 "HTTP (http://): HTTP/2 in cleartext, by prior knowledge (the connection starts "
                 "with the HTTP/2 preface) or by an `Upgrade: h2c` request (answered on stream 1). "
                 "HTTP/2 over TLS is chosen by ALPN instead (`alpn = [\"h2\", \"http/1.1\"]` in "
                 "[listen.tls]).")
        .boolean("h2c_only", &listen_config::h2c_only,
                 "HTTP (http://): serve HTTP/2 only, by prior knowledge (like `nghttpd --no-tls` "
                 "or a gRPC port): every connection must start with the HTTP/2 preface, and one "
                 "that does not gets GOAWAY PROTOCOL_ERROR instead of an HTTP/1.1 answer. No "
                 "HTTP/1.1, no `Upgrade: h2c`, no WebSocket on this listener. Needs `h2c`; over "
                 "TLS, ALPN chooses (`alpn = [\"h2\"]`).")
        .integer("h2_max_concurrent_streams", &listen_config::h2_max_concurrent_streams,
                 "HTTP/2: streams one connection may have open (SETTINGS_MAX_CONCURRENT_STREAMS); "
                 "more before our SETTINGS are acknowledged get RST_STREAM REFUSED_STREAM, after it "
                 "a connection error.",
                 1, 1'000'000)
        .size("h2_initial_window_size", &listen_config::h2_initial_window_size,
              "HTTP/2: request body bytes a client may send on one stream before its handler "
              "takes them (SETTINGS_INITIAL_WINDOW_SIZE): the window opens as the handler reads "
              "the body, so a stream nobody reads stops here and the others go on. At least "
              "1 KiB: with a smaller window no body could start.",
              1024, 0x7fffffff)
        .size("h2_connection_window_size", &listen_config::h2_connection_window_size,
              "HTTP/2: request body bytes a client may send on the whole connection before its "
              "handlers take them: what the unread bodies of one connection hold at most.",
              65535, 0x7fffffff)
        .size("h2_max_frame_size", &listen_config::h2_max_frame_size,
              "HTTP/2: largest frame payload a client may send (SETTINGS_MAX_FRAME_SIZE).", 16384,
              16777215)
        .size("h2_max_header_list_size", &listen_config::h2_max_header_list_size,
              "HTTP/2: decoded header bytes of one request (names + values + 32 per field, "
              "SETTINGS_MAX_HEADER_LIST_SIZE); beyond it the stream is reset (HPACK bombs stop "
              "here).",
              256, 16u << 20)
        .duration("h2_idle_stream_timeout", &listen_config::h2_idle_stream_timeout,
                  "HTTP/2: a stream with no progress for this long (no frame of it received, no "
                  "body sent, including one stalled on a zero flow-control window) is reset with "
                  "CANCEL. Measured in whole seconds. 0 = no limit.")
        .integer("h2_max_resets_per_second", &listen_config::h2_max_resets_per_second,
                 "HTTP/2: RST_STREAM frames a client may send per second (a token bucket of this "
                 "size refilled at this rate, on a monotonic clock); beyond it GOAWAY "
                 "ENHANCE_YOUR_CALM and close (rapid reset, CVE-2023-44487).",
                 1, 10'000'000)
        .integer("h2_max_control_frames_per_second", &listen_config::h2_max_control_frames_per_second,
                 "HTTP/2: PING, SETTINGS and PRIORITY frames and empty DATA frames a client may "
                 "send per second (a token bucket as for h2_max_resets_per_second); beyond it "
                 "GOAWAY ENHANCE_YOUR_CALM and close (floods).",
                 1, 10'000'000)
        .custom("upload_tmp_dir", "string", "\"/tmp\"",
                "HTTP: where file parts of multipart/form-data bodies above upload_memory_size "
                "are written as they arrive (temporary files, removed when the request ends, "
                "also when the client goes away). Empty: /tmp. It must be an existing writable "
                "directory.",
                [](const toml::node& n, listen_config& lc, config::parse_context& ctx) {
                  auto v = n.value<std::string>();
                  if (!n.is_string() || !v) {
                    ctx.diag.add(n.source(), ctx.path, "expected a string, got " + config::type_name(n));
                    return;
                  }
                  std::error_code ec;
                  if (!v->empty() && (!std::filesystem::is_directory(*v, ec) || ::access(v->c_str(), W_OK | X_OK) != 0)) {
                    ctx.diag.add(n.source(), ctx.path,
                                 "expected an existing writable directory (for upload temporary files), got \"" +
                                     *v + "\"");
                    return;
                  }
                  lc.upload_tmp_dir = std::move(*v);
                })
        .size("upload_memory_size", &listen_config::upload_memory_size,
              "HTTP: a multipart file part up to this size stays in memory; a bigger one goes "
              "to a temporary file in upload_tmp_dir.",
              0, 64u << 20)
        .integer("multipart_max_parts", &listen_config::multipart_max_parts,
                 "HTTP: parts (fields and files) in one multipart/form-data body; beyond it 413 "
                 "and close.",
                 1, 1'000'000)
        .size("multipart_max_part_size", &listen_config::multipart_max_part_size,
              "HTTP: bytes of one multipart file part; beyond it 413 and close (max_body_size "
              "bounds the whole body).",
              1)
        .size("multipart_max_field_size", &listen_config::multipart_max_field_size,
              "HTTP: bytes of one multipart field without a filename (fields are kept in "
              "memory); beyond it 413 and close.",
              1)
        .duration("detached_response_timeout", &listen_config::detached_response_timeout,
                  "HTTP: a response handed to another process (response::detach) must end "
                  "within this time, else 504 (or, once its head went out, the connection "
                  "closes). 0 = no limit.")
        .duration("send_timeout", &listen_config::send_timeout,
                  "HTTP: how long the engine's own writes wait for a client that takes none of "
                  "the bytes queued for it (the rest of an `end()` body too large to queue at "
                  "once, an HTTP/2 file reply); then the connection closes (HTTP/2: the stream "
                  "is reset). A handler's `res.write()` has its own timeout argument. 0 = no "
                  "limit.")
        .table("websocket", &listen_config::websocket, websocket_schema(),
               "HTTP: settings of the WebSocket upgrades on this listener (see [listen.websocket]); "
               "without it they use the defaults.")
        .table("redis", &listen_config::redis, redis_schema(),
               "Redis listeners (redis://, redis+unix://): the RESP limits (see [listen.redis]).")
        .table("tls", &listen_config::tls, tls_schema(),
               "TLS listeners (https://, tls://, wss://): certificates and handshake settings (see "
               "[listen.tls]); required by those URLs, refused on others.")
        .table("compression", &listen_config::compression, compression_schema(),
               "HTTP: response compression (gzip, deflate, br by Accept-Encoding) and compressed "
               "request bodies (see [listen.compression]); on with the defaults when absent.");
    return s;
  }();
  return s;
}

const config::schema<server_config>& server_schema() {
  static const auto s = [] {
    config::schema<server_config> s;
    s.string("mode", &server_config::mode,
             "`base`: each worker accepts and does its own I/O (fastest). `process`: the "
             "master's reactor threads hold every connection and hand complete messages to "
             "workers by dispatch_mode.",
             {"base", "process"})
        .integer("workers", &server_config::workers, "Worker processes (Swoole's worker_num).",
                 1, 1024)
        .integer("task_workers", &server_config::task_workers,
                 "Task worker processes (Swoole's task_worker_num); 0 = no task workers.", 0,
                 1024)
        .integer("reactor_threads", &server_config::reactor_threads,
                 "process mode: reactor threads in the master (Swoole's reactor_num).", 1, 256)
        .string("dispatch_mode", &server_config::dispatch_mode,
                "process mode: how messages are routed to workers: round_robin, connection "
                "(same connection, same worker), idle (least busy worker), ip (same client "
                "address, same worker), uid (same bound uid, same worker).",
                {"round_robin", "connection", "idle", "ip", "uid"})
        .integer("max_request", &server_config::max_request,
                 "Recycle a worker after this many messages; 0 = never.", 0)
        .integer("max_request_grace", &server_config::max_request_grace,
                 "Random extra 0..N messages per worker so workers do not recycle together.", 0)
        .duration("max_wait_time", &server_config::max_wait_time,
                  "How long a stopping or reloading process may finish its work before it is "
                  "killed.")
        .duration("restart_backoff_max", &server_config::restart_backoff_max,
                  "A process that keeps dying is restarted after a delay that doubles from "
                  "100ms up to this.",
                  std::chrono::milliseconds(100))
        .integer("busy_poll_us", &server_config::busy_poll_us,
                 "Microseconds a worker (and, in process mode, a reactor thread) keeps polling "
                 "its sockets after its last event before it sleeps; 0 = sleep at once. The "
                 "window adapts: longer sleeps shrink it to 0, events soon after it grow it "
                 "back to this. Under "
                 "request/response traffic the client then finds the server awake and saves "
                 "waking its CPU (about a microsecond of kernel time per request on a VM), so "
                 "small requests go faster, but each such process keeps a core busy while "
                 "traffic comes. Only for dedicated cores, with no more workers and reactor "
                 "threads than cores (see docs/operations.md).",
                 0, 100000)
        .string("pid_file", &server_config::pid_file,
                "Write the master's pid (line 1) and admin socket path (line 2) here; empty = "
                "none. `swactor stats|reload|stop --pid-file` read it.")
        .string("admin_socket", &server_config::admin_socket,
                "Unix socket for `swactor stats` and admin commands; empty = "
                "`/tmp/swactor-PID.sock`.")
        .string("log_level", &server_config::log_level,
             "Lowest level that is logged (Swoole's log_level).",
             {"debug", "trace", "info", "notice", "warning", "error"})
        .string("log_file", &server_config::log_file,
                "Log file path; empty logs to stderr. Every line is tagged with the role "
                "(master, worker#N, task#N) and pid.");
    return s;
  }();
  return s;
}

const config::schema<compression_config>& compression_schema() {
  static const auto s = [] {
    config::schema<compression_config> s;
    auto list_text = [](const std::vector<std::string>& v) {
      std::string t = "[";
      for (auto& x : v) t += (t.size() > 1 ? ", \"" : "\"") + x + "\"";
      return t + "]";
    };
    auto strings_with_default = [](std::vector<std::string> compression_config::*m, bool codings) {
      return [m, codings](const toml::node& n, compression_config& c, config::parse_context& ctx) {
        std::vector<std::string> v;
        if (codings)
          config::parse_strings(
              n, ctx.path, ctx.diag, v,
              [](std::string_view t) {
                auto k = protocols::compression::parse_coding(t);
                return k && *k != protocols::compression::coding::identity;
              },
              "one of \"br\", \"gzip\", \"deflate\"");
        else
          config::parse_strings(
              n, ctx.path, ctx.diag, v,
              [](std::string_view t) { return !t.empty() && t.find('/') != std::string_view::npos; },
              "a media type (\"text/html\", \"image/*\")");
        c.*m = std::move(v);
      };
    };
    s.boolean("enabled", &compression_config::enabled,
              "Compress responses: the coding is chosen by the request's Accept-Encoding (RFC 9110 "
              "§12.5.3 q-values; ties go to the earlier entry of `algorithms`); `Vary: Accept-Encoding` is "
              "set on every response whose compression depended on it. Not compressed: HEAD, 1xx/204/304, "
              "206 and Content-Range, a response with Content-Encoding or `Cache-Control: no-transform`, "
              "a streamed response given a content_length(), excluded types. A strong ETag becomes weak.")
        .size("min_size", &compression_config::min_size,
              "Whole bodies smaller than this go uncompressed (not worth it); streamed (chunked) bodies "
              "are compressed whatever their size, one flushed piece per write().")
        .integer("gzip_level", &compression_config::gzip_level, "zlib level of gzip: 1 (fastest) .. 9 (smallest).",
                 1, 9)
        .integer("deflate_level", &compression_config::deflate_level,
                 "zlib level of deflate (the zlib format): 1 .. 9.", 1, 9)
        .integer("brotli_quality", &compression_config::brotli_quality,
                 "brotli quality of br: 0 (fastest) .. 11 (smallest; far too slow for dynamic responses).", 0,
                 11)
        .custom("algorithms", "array of strings", list_text(compression_config{}.algorithms),
                "The codings offered, most preferred first (\"br\", \"gzip\", \"deflate\"); [] = no "
                "response compression.",
                strings_with_default(&compression_config::algorithms, true))
        .custom("types", "array of strings", "[]",
                "When not empty, only responses of these media types are compressed (\"text/*\", "
                "\"application/json\"; parameters ignored, case-insensitive). A response without "
                "Content-Type counts as \"\".",
                strings_with_default(&compression_config::types, false))
        .custom("excluded_types", "array of strings", list_text(compression_config{}.excluded_types),
                "Media types never compressed (already compressed formats); \"type/*\" matches a whole "
                "type. Setting it replaces the list.",
                strings_with_default(&compression_config::excluded_types, false))
        .boolean("inflate_requests", &compression_config::inflate_requests,
                 "Request bodies with `Content-Encoding: gzip`, `deflate` or `br` reach the handler inflated "
                 "(the header removed, Content-Length set to the inflated size); the inflated size is bounded "
                 "by max_body_size (beyond it 413 and close, never more than that held in memory); invalid "
                 "data gets 400, an unknown coding 415 (with Accept-Encoding listing ours). false = bodies "
                 "reach the handler as sent.");
    return s;
  }();
  return s;
}

const config::schema<websocket_config>& websocket_schema() {
  static const auto s = [] {
    config::schema<websocket_config> s;
    s.size("max_message_size", &websocket_config::max_message_size,
           "Largest message (fragments reassembled, inflated when compressed); larger closes with 1009.", 1)
        .size("max_frame_size", &websocket_config::max_frame_size,
              "Largest frame payload; larger closes with 1009.", 1)
        .boolean("permessage_deflate", &websocket_config::permessage_deflate,
                 "Accept permessage-deflate (RFC 7692) when the client offers it.")
        .size("deflate_min_size", &websocket_config::deflate_min_size,
              "Messages sent smaller than this go uncompressed.")
        .boolean("no_context_takeover", &websocket_config::no_context_takeover,
                 "Caps the memory of compressed connections: ask for server_no_context_takeover (our "
                 "compressor is reset after each message and shared by the thread's connections), and "
                 "ask a client that offers client_max_window_bits but keeps its context for a 9-bit "
                 "(512 B) window, which is all the connection then keeps of the client's context. RSS "
                 "per idle compressed connection (measured, base mode, after one 100-byte message; "
                 "about 0.9 KB of it any WebSocket's): about 93-97 KB with false (context takeover both "
                 "ways: zlib streams per connection); with true about 950 B when the client offers "
                 "client_no_context_takeover, and about 1.05 KB (at most 0.5 KB more) when it offers "
                 "only client_max_window_bits, as browsers do (9.6 KB before the 9-bit window).")
        .integer("deflate_window_bits", &websocket_config::deflate_window_bits,
                 "Our compressor's window (server_max_window_bits): 9 (512 B) .. 15 (32 KiB).", 9, 15)
        .duration("close_timeout", &websocket_config::close_timeout,
                  "After our close frame, how long the client has to answer before the connection closes.")
        .duration("ping_interval", &websocket_config::ping_interval,
                  "A connection that sent nothing for this long gets a ping (keeps NAT mappings and proxies "
                  "open, and makes a live client answer). 0 = no pings.")
        .duration("idle_timeout", &websocket_config::idle_timeout,
                  "A connection that sent nothing (no frame, no pong) for this long is closed with 1001 "
                  "\"idle timeout\". 0 = never.")
        .strings("origins", &websocket_config::origins,
                 "Allowed Origin header values (\"https://example.com\"); a handshake from another "
                 "origin gets 403. Empty = any.",
                 {}, "a string (an origin such as \"https://example.com\")")
        .string("on_output_full", &websocket_config::on_output_full,
                "A connection whose output reached the listener's output_buffer_size (a peer that does "
                "not read): \"error\" = ctx.push / ctx.broadcast to it fail with output_buffer_full and "
                "the message is dropped; \"close\" = it is also closed with 1008.",
                {"error", "close"})
        .boolean("deliver_control", &websocket_config::deliver_control,
                 "Also hand the client's pings and pongs to the module (on_ping / on_pong, with their "
                 "payload); pings are answered with a pong either way.");
    return s;
  }();
  return s;
}

const config::schema<redis_config>& redis_schema() {
  static const auto s = [] {
    config::schema<redis_config> s;
    s.size("proto_max_bulk_len", &redis_config::proto_max_bulk_len,
           "Largest argument of a command (Redis's proto-max-bulk-len); a longer bulk header gets "
           "`-ERR Protocol error: invalid bulk length` and the connection closes.",
           1)
        .integer("max_multibulk_len", &redis_config::max_multibulk_len,
                 "Most arguments in one command; more gets `-ERR Protocol error: invalid multibulk "
                 "length` and the connection closes.",
                 1, 2147483647)
        .size("max_inline_len", &redis_config::max_inline_len,
              "Longest inline (telnet style) command and longest count line that may wait for "
              "its end: a buffer that holds more without a newline gets `-ERR Protocol error: "
              "too big inline request` and the connection closes (as in redis-server, a longer "
              "line whose newline arrived with it is served).",
              16, std::uint64_t(1) << 30);
    return s;
  }();
  return s;
}

const config::schema<bus_config>& bus_schema() {
  static const auto s = [] {
    config::schema<bus_config> s;
    s.integer("mailbox_limit", &bus_config::mailbox_limit,
              "Bus messages waiting for one module instance's on_bus_message; a message that "
              "arrives when the mailbox is full is dropped and counted (dropped_mailbox_full in "
              "`swactor bus stats`).",
              1, 10'000'000)
        .size("max_message_size", &bus_config::max_message_size,
              "Largest bus message (topic + tag + payload); larger publishes and sends fail with "
              "message_too_large.",
              64, std::uint64_t(1) << 30)
        .integer("max_stats_topics", &bus_config::max_stats_topics,
                 "Topics counted one by one in `swactor bus stats`; later topics are counted "
                 "together under \"(other)\".",
                 0, 1'000'000);
    return s;
  }();
  return s;
}

namespace {

// [tables.NAME]: size = rows, columns = [{ name, type = "int" | "float" | "string", size }].
void parse_table(table_config& tc, const toml::node& node, const std::string& path,
                 config::diagnostics& diag) {
  if (!node.is_table()) {
    diag.add(node.source(), path, "expected a table with `size` and `columns`");
    return;
  }
  const auto& t = *node.as_table();
  bool has_size = false, has_columns = false;
  for (auto&& [k, v] : t) {
    std::string key(k.str());
    if (key == "size") {
      has_size = true;
      if (!v.is_integer() || *v.value<std::int64_t>() < 1) {
        diag.add(v.source(), path + ".size", "expected the number of rows (an integer >= 1)");
        continue;
      }
      tc.schema.size = static_cast<std::size_t>(*v.value<std::int64_t>());
    } else if (key == "columns") {
      has_columns = true;
      if (!v.is_array()) {
        diag.add(v.source(), path + ".columns", "expected an array of { name, type, size } tables");
        continue;
      }
      std::size_t i = 0;
      for (auto&& col : *v.as_array()) {
        auto cpath = path + ".columns[" + std::to_string(i++) + "]";
        if (!col.is_table()) {
          diag.add(col.source(), cpath, "expected { name = \"...\", type = \"int\" | \"float\" | \"string\", size = N }");
          continue;
        }
        ipc::column_def def;
        bool ok = true;
        for (auto&& [ck, cv] : *col.as_table()) {
          std::string ckey(ck.str());
          if (ckey == "name" && cv.is_string()) {
            def.name = *cv.value<std::string>();
          } else if (ckey == "type" && cv.is_string()) {
            auto type = ipc::parse_column_type(*cv.value<std::string>());
            if (!type) {
              diag.add(cv.source(), cpath + ".type", "expected \"int\", \"float\" or \"string\"");
              ok = false;
            } else {
              def.type = *type;
            }
          } else if (ckey == "size" && cv.is_integer() && *cv.value<std::int64_t>() >= 0) {
            def.size = static_cast<std::size_t>(*cv.value<std::int64_t>());
          } else {
            diag.add(cv.source(), cpath + "." + ckey,
                     ckey == "name" || ckey == "type" || ckey == "size"
                         ? "wrong type: name and type are strings, size a non-negative integer"
                         : "unknown key; expected name, type, size");
            ok = false;
          }
        }
        if (ok) tc.schema.columns.push_back(std::move(def));
      }
    } else {
      diag.add(k.source().begin.line ? k.source() : v.source(), path + "." + key,
               "unknown key; expected size, columns");
    }
  }
  if (!has_size) diag.add(t.source(), path + ".size", "missing required key (rows, integer)");
  if (!has_columns) diag.add(t.source(), path + ".columns", "missing required key (array of columns)");
  if (has_size && has_columns)
    for (const auto& problem : tc.schema.validate()) diag.add(t.source(), path, problem);
}

std::string type_names(const module_registry& reg) {
  std::string out;
  for (auto& [n, _] : reg.types()) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// [modules.NAME] plugin = "...": loads the library (a relative path is relative to the config
// file's directory) and picks its module type: `type` when given, else the only one it has.
const module_type* plugin_type(const toml::node& node, const std::string& config_path, const std::string& mpath,
                               bool named_type, module_config& mc, app_config& app, config::diagnostics& diag) {
  const auto key = mpath + ".plugin";
  auto text = node.value<std::string>();
  if (!node.is_string() || text->empty()) {
    diag.add(node.source(), key,
             "expected the path of a plugin library like \"lib/libmymod.so\", got " +
                 (node.is_string() ? std::string("\"\"") : config::type_name(node)));
    return nullptr;
  }
  std::filesystem::path file(*text);
  if (file.is_relative()) file = std::filesystem::path(config_path).parent_path() / file;
  std::error_code ec;
  auto abs = std::filesystem::absolute(file, ec).lexically_normal();
  if (ec) abs = file;
  if (!std::filesystem::is_regular_file(abs, ec)) {
    diag.add(node.source(), key,
             "no plugin file " + abs.string() + " (a relative path is relative to the config file's directory)");
    return nullptr;
  }
  std::string error;
  auto lib = load_plugin(abs.string(), error);
  if (!lib) {
    diag.add(node.source(), key, error);
    return nullptr;
  }
  mc.plugin = abs.string();
  if (std::find(app.plugins.begin(), app.plugins.end(), lib) == app.plugins.end()) app.plugins.push_back(lib);
  const auto& types = lib->types.types();
  if (named_type) {
    if (const auto* t = lib->types.find(mc.type)) return t;
    diag.add(node.source(), key,
             mc.plugin + " registers no module type \"" + mc.type + "\"; it registers: " +
                 (types.empty() ? std::string("none") : type_names(lib->types)));
    return nullptr;
  }
  if (types.size() == 1) {
    mc.type = types.begin()->first;
    return &types.begin()->second;
  }
  diag.add(node.source(), key,
           types.empty() ? mc.plugin + " registers no module type"
                         : mc.plugin + " registers several module types (" + type_names(lib->types) +
                               "): pick one with type = \"" + types.begin()->first + "\"");
  return nullptr;
}

// A tls table: file paths made absolute (relative to the config file), the listener's
// default ALPN, then everything loaded the way the server will load it, so that a missing,
// unreadable, unparsable or mismatched file is reported here with the key that names it.
void resolve_tls(listen_config& lc, const std::string& config_path, const std::string& lpath,
                 const toml::table* el, config::diagnostics& diag) {
  auto& tc = lc.tls;
  auto base = std::filesystem::path(config_path).parent_path();
  auto absolute = [&](std::string& file) {
    if (file.empty()) return;
    std::filesystem::path p(file);
    if (p.is_relative()) p = base / p;
    std::error_code ec;
    auto abs = std::filesystem::absolute(p, ec);
    file = (ec ? p : abs).lexically_normal().string();
  };
  for (auto* f : {&tc.cert, &tc.key, &tc.passphrase_file, &tc.ca, &tc.ocsp_file}) absolute(*f);
  for (auto& e : tc.sni) {
    absolute(e.cert);
    absolute(e.key);
  }
  if (!tc.alpn_set && lc.endpoint.protocol == listen_protocol::http) tc.alpn = {"http/1.1"};
  // An HTTP listener speaks what it offers: a name it does not speak would be negotiated and
  // then answered in HTTP/1.1. Other TLS listeners carry the module's own protocol: any name.
  if (lc.endpoint.protocol == listen_protocol::http) {
    const toml::node* tls_node = el ? el->get("tls") : nullptr;
    const toml::node* alpn_node = tls_node && tls_node->as_table() ? tls_node->as_table()->get("alpn") : nullptr;
    for (std::size_t k = 0; k < tc.alpn.size(); ++k)
      if (tc.alpn[k] != "http/1.1" && tc.alpn[k] != "http/1.0" && tc.alpn[k] != "h2")
        diag.add(alpn_node ? alpn_node->source() : (el ? el->source() : toml::source_region{}),
                 lpath + ".tls.alpn[" + std::to_string(k) + "]",
                 "an HTTP listener speaks \"h2\", \"http/1.1\" and \"http/1.0\", not \"" + tc.alpn[k] + "\"");
  }
  if (tc.verify_client != "none" && tc.ca.empty()) {
    diag.add(el ? el->source() : toml::source_region{}, lpath + ".tls.ca",
             "missing: verify_client = \"" + tc.verify_client + "\" needs ca (the CAs client certificates chain to)");
    return;
  }
  auto problem = net::check_tls(tc);
  if (!problem) return;
  // Point at the key that names the bad file (or at the tls table).
  const toml::node* tls_node = el ? el->get("tls") : nullptr;
  toml::source_region where = tls_node ? tls_node->source() : (el ? el->source() : toml::source_region{});
  std::string key = lpath + ".tls";
  if (const auto* t = tls_node ? tls_node->as_table() : nullptr) {
    if (problem->sni >= 0) {
      key += ".sni[" + std::to_string(problem->sni) + "]";
      if (const auto* arr = t->get("sni") ? t->get("sni")->as_array() : nullptr)
        if (const auto* e = arr->get(static_cast<std::size_t>(problem->sni))) where = e->source();
    } else if (const auto* k = t->get(problem->key)) {
      where = k->source();
    }
  }
  if (!problem->key.empty()) key += "." + problem->key;
  diag.add(where, key, problem->text);
}

}  // namespace

std::optional<app_config> parse_app_config(const toml::table& root, const std::string& path,
                                           const module_registry& reg,
                                           config::diagnostics& diag) {
  app_config app;
  app.file = path;
  auto before = diag.items().size();
  std::vector<toml::source_region> listen_sources;
  std::vector<bool> el_has_redis;  // [[listen]] entries with a redis table
  std::vector<const toml::table*> el_tables;  // the [[listen]] tables (positions of tls keys)
  // Every [modules.NAME], also those with errors (a listener naming one is not an error more).
  std::set<std::string> declared_modules;
  for (auto&& [k, node] : root) {
    std::string key(k.str());
    if (key == "server") {
      if (!node.is_table()) {
        diag.add(node.source(), key, "expected a table, got " + config::type_name(node));
        continue;
      }
      server_schema().parse(*node.as_table(), app.server, diag, "server");
    } else if (key == "bus") {
      if (!node.is_table()) {
        diag.add(node.source(), key, "expected a table, got " + config::type_name(node));
        continue;
      }
      bus_schema().parse(*node.as_table(), app.bus, diag, "bus");
    } else if (key == "listen") {
      if (!node.is_array_of_tables()) {
        diag.add(node.source(), key, "expected [[listen]] tables (an array of tables)");
        continue;
      }
      std::size_t i = 0;
      for (auto&& el : *node.as_array()) {
        listen_config lc;
        auto lpath = "listen[" + std::to_string(i++) + "]";
        listen_schema().parse(*el.as_table(), lc, diag, lpath);
        lc.websocket.enabled = el.as_table()->contains("websocket");
        lc.tls.enabled = el.as_table()->contains("tls");
        el_has_redis.push_back(el.as_table()->contains("redis"));
        el_tables.push_back(el.as_table());
        app.listen.push_back(std::move(lc));
        listen_sources.push_back(el.source());
      }
    } else if (key == "tables") {
      if (!node.is_table()) {
        diag.add(node.source(), key, "expected tables of shared-memory tables ([tables.NAME])");
        continue;
      }
      for (auto&& [tname, tnode] : *node.as_table()) {
        table_config tc;
        tc.name = std::string(tname.str());
        parse_table(tc, tnode, "tables." + tc.name, diag);
        app.tables.push_back(std::move(tc));
      }
    } else if (key == "modules") {
      if (!node.is_table()) {
        diag.add(node.source(), key, "expected a table of module instances ([modules.NAME])");
        continue;
      }
      for (auto&& [name, mnode] : *node.as_table()) {
        std::string inst(name.str());
        declared_modules.insert(inst);
        std::string mpath = "modules." + inst;
        if (!mnode.is_table()) {
          diag.add(mnode.source(), mpath, "expected a table, got " + config::type_name(mnode));
          continue;
        }
        const toml::table* opts = mnode.as_table();
        module_config mc{inst, inst, nullptr, {}, "", nullptr};
        bool named_type = false;
        if (auto* t = opts->get("type")) {
          if (!t->is_string()) {
            diag.add(t->source(), mpath + ".type",
                     "expected a module type name (string), got " + config::type_name(*t));
            continue;
          }
          mc.type = *t->value<std::string>();
          named_type = true;
        }
        const module_type* type = nullptr;
        if (auto* p = opts->get("plugin")) {
          type = plugin_type(*p, path, mpath, named_type, mc, app, diag);
          if (!type) continue;
        } else {
          type = reg.find(mc.type);
          if (!type) {
            diag.add(mnode.source(), mpath,
                     "unknown module type \"" + mc.type + "\"; built-in modules: " + type_names(reg) +
                         " (a module in a shared library is named with plugin = \"path/to/libNAME.so\")");
            continue;
          }
        }
        if (auto* sub = opts->get("subscribe"))
          config::parse_strings(*sub, mpath + ".subscribe", diag, mc.subscribe,
                                [](std::string_view p) { return bus::valid_pattern(p); },
                                "a bus topic pattern: dot-separated tokens, '*' for one token, '>' (last) for "
                                "the rest, e.g. \"orders.*\"");
        mc.resolved = type;
        // Validate the options now so that `check` reports them (no instance is built:
        // each process that runs the module builds it once).
        type->check(opts, diag, mpath);
        mc.options = opts;
        app.modules.push_back(std::move(mc));
      }
    } else {
      diag.add(k.source().begin.line ? k.source() : node.source(), key,
               "unknown top-level key; expected [server], [[listen]], [modules.NAME], [tables.NAME] or [bus]");
    }
  }
  // Cross-checks that need the whole file.
  for (std::size_t i = 0; i < app.listen.size(); ++i) {
    auto& lc = app.listen[i];
    auto lpath = "listen[" + std::to_string(i) + "]";
    if (!lc.url.empty()) {
      lc.endpoint = parse_listen_url(lc.url);
      if (!lc.endpoint) diag.add(listen_sources[i], lpath + ".url", lc.endpoint.error_text);
    }
    // A built-in type named directly gets an instance with default options.
    auto resolve_module = [&](const std::string& name, const std::string& key, const toml::source_region& where) {
      if (app.module_index(name) >= 0 || declared_modules.count(name)) return;
      if (const auto* type = reg.find(name))
        app.modules.push_back(module_config{name, name, nullptr, {}, "", type});
      else
        diag.add(where, key, "no module instance or built-in module named \"" + name + "\"");
    };
    bool http = lc.endpoint && lc.endpoint.protocol == listen_protocol::http;
    if (!lc.routes.empty() && !http) {
      diag.add(listen_sources[i], lpath + ".routes", "routes are for HTTP listeners (http://, http+unix://)");
    } else if (!lc.routes.empty() && !lc.module.empty()) {
      diag.add(listen_sources[i], lpath + ".module",
               "give either module (every request) or routes, not both; add { path = \"/\", module = \"" +
                   lc.module + "\" } to routes instead");
    } else if (lc.module.empty() && lc.routes.empty()) {
      diag.add(listen_sources[i], lpath + ".module",
               http ? "missing: an HTTP listener needs module (every request) or routes"
                    : "missing required key (the module instance that handles this listener)");
    }
    if (!lc.module.empty()) resolve_module(lc.module, lpath + ".module", listen_sources[i]);
    for (std::size_t r = 0; r < lc.routes.size(); ++r) {
      auto& rc = lc.routes[r];
      if (rc.module.empty() || rc.path.empty()) continue;  // reported by the parser
      resolve_module(rc.module, lpath + ".routes[" + std::to_string(r) + "].module", rc.where);
      rc.module_index = app.module_index(rc.module);
      // An entry that an earlier one with the same path shadows can never be reached.
      for (std::size_t q = 0; q < r; ++q) {
        const auto& prev = lc.routes[q];
        if (prev.path != rc.path) continue;
        std::vector<std::string> shared;
        if (prev.methods.empty() || rc.methods.empty()) {
          shared = prev.methods.empty() ? rc.methods : prev.methods;
          if (shared.empty()) shared.push_back("every method");
        } else {
          for (auto& m : rc.methods)
            if (std::find(prev.methods.begin(), prev.methods.end(), m) != prev.methods.end()) shared.push_back(m);
        }
        if (shared.empty()) continue;
        std::string list;
        for (auto& m : shared) list += (list.empty() ? "" : ", ") + m;
        diag.add(rc.where, lpath + ".routes[" + std::to_string(r) + "]",
                 "route " + std::to_string(r) + " (path \"" + rc.path + "\") overlaps route " + std::to_string(q) +
                     " for " + list + ": route " + std::to_string(q) + " wins, so route " + std::to_string(r) +
                     " is unreachable for them");
      }
    }
    if (http) {
      auto& o = lc.http_options;
      o.max_header_size = static_cast<std::size_t>(lc.max_header_size);
      o.max_headers = static_cast<std::size_t>(lc.max_headers);
      o.max_body_size = lc.max_body_size;
      o.max_pipelined = static_cast<std::uint32_t>(lc.max_pipelined_requests);
      o.max_requests_per_connection = static_cast<std::uint64_t>(lc.max_requests_per_connection);
      auto ms = [](std::chrono::milliseconds d) {
        return static_cast<std::uint32_t>(std::min<std::int64_t>(d.count(), 0xffffffffLL));
      };
      o.header_timeout_ms = ms(lc.header_timeout);
      o.keepalive_timeout_ms = ms(lc.keepalive_timeout);
      o.body_timeout_ms = ms(lc.body_timeout);
      o.server_name = lc.server_header;
      auto& h2 = lc.h2_options;
      h2.max_concurrent_streams = lc.h2_max_concurrent_streams;
      h2.initial_window_size = static_cast<std::uint32_t>(lc.h2_initial_window_size);
      h2.connection_window_size = static_cast<std::uint32_t>(lc.h2_connection_window_size);
      h2.max_frame_size = static_cast<std::uint32_t>(lc.h2_max_frame_size);
      h2.max_header_list_size = static_cast<std::uint32_t>(lc.h2_max_header_list_size);
      h2.idle_stream_timeout_ms = ms(lc.h2_idle_stream_timeout);
      h2.max_resets_per_second = lc.h2_max_resets_per_second;
      h2.max_control_frames_per_second = lc.h2_max_control_frames_per_second;
      h2.max_body_size = lc.max_body_size;
      h2.keepalive_timeout_ms = ms(lc.keepalive_timeout);
      h2.server_name = lc.server_header;
      h2.clock_ms = [] {
        return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                              std::chrono::steady_clock::now().time_since_epoch())
                                              .count());
      };
      if (lc.h2c && !lc.tls.enabled) o.h2c = std::make_shared<const protocols::http2::options>(h2);
      o.h2c_only = lc.h2c_only && o.h2c;
      // Upgrades are on for every HTTP listener (the table only changes their settings): a
      // route whose module handles WebSocket is what makes a request upgrade (issue 12).
      auto& w = lc.websocket;
      w.enabled = true;
      w.close_on_output_full = w.on_output_full == "close";
      {
        protocols::websocket::options wo;
        wo.max_message_size = w.max_message_size;
        wo.max_frame_size = w.max_frame_size;
        wo.deflate_min_size = static_cast<std::size_t>(w.deflate_min_size);
        wo.close_timeout_ms = ms(w.close_timeout);
        wo.ping_interval_ms = ms(w.ping_interval);
        wo.idle_timeout_ms = ms(w.idle_timeout);
        wo.deliver_control = w.deliver_control;
        o.websocket = std::make_shared<const protocols::websocket::options>(wo);
      }
    } else if (lc.websocket.enabled) {
      diag.add(listen_sources[i], lpath + ".websocket", "websocket is for HTTP listeners (http://, https://, ws://, wss://)");
    }
    if (!http && lc.endpoint && el_tables[i]) {
      // The HTTP keys (their docs start "HTTP") mean nothing on other listeners: a mistyped
      // URL scheme or a key in the wrong [[listen]] would otherwise pass unnoticed.
      for (const auto& d : listen_schema().docs()) {
        if (!d.doc.starts_with("HTTP") || d.name == "routes" || d.name == "h2c_only" || d.name == "websocket" ||
            d.name == "compression")
          continue;  // those have their own checks and words
        if (const auto* key_node = el_tables[i]->get(d.name))
          diag.add(key_node->source(), lpath + "." + d.name,
                   d.name + " is for HTTP listeners (http://, https://, ws://, wss://, http+unix://); this one is " +
                       lc.url);
      }
    }
    if (lc.h2c_only) {
      if (!http || lc.tls.enabled || lc.endpoint.tls)
        diag.add(listen_sources[i], lpath + ".h2c_only",
                 "h2c_only is for cleartext HTTP listeners (http://); over TLS, ALPN chooses "
                 "HTTP/2 (tls.alpn = [\"h2\"])");
      else if (!lc.h2c)
        diag.add(listen_sources[i], lpath + ".h2c_only", "h2c_only needs h2c = true");
    }
    if (http) {
      auto& cc = lc.compression;
      auto& co = lc.compression_options;
      co.enabled = cc.enabled;
      co.min_size = cc.min_size;
      co.gzip_level = cc.gzip_level;
      co.deflate_level = cc.deflate_level;
      co.brotli_quality = cc.brotli_quality;
      co.offered.clear();
      for (auto& a : cc.algorithms)
        if (auto k = protocols::compression::parse_coding(a);
            k && std::find(co.offered.begin(), co.offered.end(), *k) == co.offered.end())
          co.offered.push_back(*k);
      co.types = cc.types;
      co.excluded_types = cc.excluded_types;
      co.inflate_requests = cc.inflate_requests;
    } else if (el_tables[i]->contains("compression")) {
      diag.add(listen_sources[i], lpath + ".compression", "compression is for HTTP listeners (http://, https://, ws://, wss://)");
    }
    if (lc.is_redis()) {
      auto& o = lc.redis_options;
      o.max_bulk_len = static_cast<std::size_t>(lc.redis.proto_max_bulk_len);
      o.max_multibulk_len = static_cast<std::size_t>(lc.redis.max_multibulk_len);
      o.max_inline_len = static_cast<std::size_t>(lc.redis.max_inline_len);
    } else if (el_has_redis[i]) {
      diag.add(listen_sources[i], lpath + ".redis", "redis is for Redis listeners (redis://, redis+unix://)");
    }
    if (lc.endpoint && lc.endpoint.tls != lc.tls.enabled) {
      diag.add(listen_sources[i], lpath + ".tls",
               lc.endpoint.tls ? "missing: a " + lc.url.substr(0, lc.url.find(':')) +
                                     ":// listener needs tls = { cert = \"server.pem\", key = \"server.key\" }"
                               : std::string("tls is for TLS listeners (https://, tls://, wss://)"));
    } else if (lc.tls.enabled) {
      resolve_tls(lc, path, lpath, el_tables[i], diag);
    }
    lc.framing_options = to_framing_options(lc.framing);
    for (const auto& problem : lc.framing_options.validate())
      diag.add(listen_sources[i], lpath + ".framing", problem);
    lc.module_index = app.module_index(lc.module);
  }
  if (diag.items().size() != before) return std::nullopt;
  app.server.mode_kind = app.server.mode == "process" ? server_mode::process : server_mode::base;
  static constexpr std::pair<std::string_view, dispatch_mode> dispatch_names[] = {
      {"round_robin", dispatch_mode::round_robin}, {"connection", dispatch_mode::connection},
      {"idle", dispatch_mode::idle}, {"ip", dispatch_mode::ip}, {"uid", dispatch_mode::uid}};
  for (auto [name, value] : dispatch_names)
    if (app.server.dispatch_mode == name) app.server.dispatch = value;
  for (std::size_t i = 0; i < app.modules.size(); ++i) {
    const module_type* t = app.modules[i].resolved;
    int n = t ? t->user_processes(app.modules[i].options) : 0;
    for (int k = 0; k < n; ++k) app.user_procs.emplace_back(static_cast<int>(i), k);
  }
  return app;
}

namespace {

// The parsed config keeps its TOML root: module option tables point into it.
std::optional<app_config> parse_keeping_root(std::optional<toml::table> root, const std::string& name,
                                             const module_registry& reg, config::diagnostics& diag) {
  if (!root) return std::nullopt;
  auto shared = std::make_shared<const toml::table>(std::move(*root));
  auto app = parse_app_config(*shared, name, reg, diag);
  if (app) app->root = std::move(shared);
  return app;
}

}  // namespace

std::optional<app_config> load_app_config(const std::string& path, const module_registry& reg,
                                          config::diagnostics& diag) {
  return parse_keeping_root(config::load_file(path, diag), path, reg, diag);
}

std::optional<app_config> load_app_config_text(std::string_view text, const std::string& name,
                                               const module_registry& reg, config::diagnostics& diag) {
  return parse_keeping_root(config::load_string(text, name, diag), name, reg, diag);
}

std::string_view to_string(server_mode m) noexcept { return m == server_mode::process ? "process" : "base"; }

std::string_view to_string(dispatch_mode m) noexcept {
  switch (m) {
    case dispatch_mode::round_robin: return "round_robin";
    case dispatch_mode::connection: return "connection";
    case dispatch_mode::idle: return "idle";
    case dispatch_mode::ip: return "ip";
    case dispatch_mode::uid: return "uid";
  }
  return "?";
}

std::string config_reference_markdown(const module_registry& reg) {
  std::vector<config::section_doc> sections;
  sections.push_back({"[server]", "Process-wide settings.", server_schema().docs()});
  sections.push_back({"[bus]",
                      "The message bus between module instances (docs/modules.md, \"The bus\").",
                      bus_schema().docs()});
  sections.push_back({"[[listen]]",
                      "One entry per listening socket. Several listeners may share a module.",
                      listen_schema().docs()});
  sections.push_back({"[tables.NAME]",
                      "A shared-memory table (Swoole\\Table) created by the master before any worker "
                      "starts and shared by all of them; modules reach it with `ctx.table(\"NAME\")`. "
                      "See docs/shared-memory.md for its semantics.",
                      {{"size", "integer (>= 1)", "", "Rows: the fixed capacity.", true},
                       {"columns", "array of `{ name, type, size }`", "", "Columns: `type` is `int` (64-bit), "
                        "`float` (double) or `string` (`size` = max bytes; longer values are rejected).", true}}});
  sections.push_back({"[listen.routes]",
                      "HTTP listeners: an array of inline tables, `routes = [ { path = \"/api/\", "
                      "module = \"api\" }, { path = \"=/healthz\", module = \"health\", methods = "
                      "[\"GET\"] } ]`. No entry matches the path: 404; only the method fails: 405 "
                      "with Allow. Entries with the same path may split the methods. In process mode a route to an "
                      "`http_static` instance is answered by the reactor itself (no worker round trip) whenever the "
                      "request came whole and is the only one its connection still waits for; otherwise a worker's "
                      "instance answers it the same way.",
                      route_schema().docs()});
  sections.push_back({"[listen.websocket]",
                      "HTTP listeners: an inline table, `websocket = { max_message_size = \"1MiB\", "
                      "origins = [\"https://example.com\"] }`. Every HTTP/1.1 listener (`http://`, `https://`, "
                      "`ws://`, `wss://`) upgrades a GET with `Upgrade: websocket` to a route whose module "
                      "has WebSocket handlers (`websocket()` true; docs/modules.md, \"WebSocket modules\"); "
                      "this table only changes the settings, which default as below. A route to a module "
                      "without WebSocket handlers keeps such a request plain HTTP.",
                      websocket_schema().docs()});
  sections.push_back({"[listen.redis]",
                      "Redis listeners: an inline table, `redis = { proto_max_bulk_len = \"64MiB\" }`. "
                      "Every command of the connection goes to the listener's module (`on_command`; "
                      "docs/modules.md, \"Redis modules\").",
                      redis_schema().docs()});
  sections.push_back({"[listen.tls]",
                      "TLS listeners (`https://`, `tls://`, `wss://`): an inline table, `tls = { cert = "
                      "\"server.pem\", key = \"server.key\" }`. The handshake runs where the connection "
                      "lives (the worker in base mode, a reactor thread in process mode); modules see the "
                      "decrypted stream and `ctx.info(session).tls`. `swactor check` loads every file; "
                      "`swactor reload` (SIGUSR1) re-reads them (docs/operations.md, \"TLS\").",
                      tls_schema().docs()});
  sections.push_back({"[listen.compression]",
                      "HTTP listeners: an inline table, `compression = { min_size = \"256B\", gzip_level = 1 }`. "
                      "On by default: responses are compressed in the worker as the handler ends or writes them "
                      "(both server modes), compressed request bodies are inflated before the handler sees them "
                      "(docs/modules.md, \"Compression\").",
                      compression_schema().docs()});
  sections.push_back({"[listen.tls.sni]",
                      "An array of inline tables, `sni = [ { host = \"*.example.com\", cert = \"wild.pem\", "
                      "key = \"wild.key\" } ]`: the first entry whose host matches the name the client "
                      "asks for serves its certificate; the other settings are the listener's.",
                      tls_sni_schema().docs()});
  sections.push_back({"[listen.framing]",
                      "An inline table: `framing = { type = \"eof\", delimiter = \"\\r\\n\" }` or "
                      "`framing = { type = \"length\", length_size = 4, length_offset = 0, "
                      "body_offset = 4, big_endian = true, signed = false, max_length = "
                      "\"8MiB\" }`. Keys of the other type are ignored.",
                      framing_schema().docs()});
  sections.push_back(
      {"[modules.NAME]",
       "A module instance: its type, and the options of that type (the sections below). A listener "
       "may also name a built-in type directly, which gets an instance with default options.",
       {{"type", "string", "NAME", "Module type: a built-in one, or one the `plugin` registers.", false},
        {"plugin", "string", "\"\"",
         "Path of a shared library (`libNAME.so`, relative to this file's directory) whose module "
         "types this instance picks from (`type` may be left out when it registers one). Loaded with "
         "dlopen by `swactor check`, the master and every process that runs the module; see "
         "docs/modules.md, \"Write a plugin\".",
         false},
        {"subscribe", "array of strings", "[]",
         "Bus topic patterns (`room.*`, `orders.>`) this instance subscribes to in every process that "
         "runs it, before on_worker_start; see docs/modules.md, \"The bus\".",
         false}}});
  for (const auto& [name, t] : reg.types()) sections.push_back({"[modules." + name + "]", t.doc, t.keys});
  auto md = config::render_markdown(
      "Configuration reference",
      "Generated by `swactor config-reference` from the schemas the parser uses; "
      "do not edit by hand (`make docs` regenerates it, and a test checks it is current).\n\n"
      "Sizes accept an integer (bytes) or a string such as `\"64KiB\"`, `\"8MiB\"`, `\"1GiB\"` "
      "(KB/MB/GB are powers of 1000). Durations accept an integer (milliseconds) or a string "
      "such as `\"250ms\"`, `\"3s\"`, `\"5m\"`, `\"1h\"`. Unknown keys are errors.",
      sections);
  md += R"(
## Swoole option names

| Swoole `$server->set()` option | swactor key |
|---|---|
| `SWOOLE_BASE` / `SWOOLE_PROCESS` (constructor) | `server.mode` = `base` / `process` |
| `worker_num` | `server.workers` |
| `task_worker_num` | `server.task_workers` |
| `reactor_num` | `server.reactor_threads` |
| `dispatch_mode` 1 / 2 / 3 / 4 / 5 | `server.dispatch_mode` = `round_robin` / `connection` / `idle` / `ip` / `uid` |
| `max_request` | `server.max_request` |
| `max_request_grace` | `server.max_request_grace` |
| `max_wait_time` | `server.max_wait_time` |
| `pid_file` | `server.pid_file` |
| `log_level`, `log_file` | `server.log_level`, `server.log_file` |
| `open_eof_split`, `package_eof` | `listen.framing` `{ type = "eof", delimiter = ... }` |
| `open_length_check`, `package_length_type`, `package_length_offset`, `package_body_offset` | `listen.framing` `{ type = "length", length_size, signed, big_endian, length_offset, body_offset }` |
| `package_max_length` | `listen.framing.max_length` |
| `socket_buffer_size` / `buffer_output_size` | `listen.output_buffer_size` |
| `heartbeat_idle_time`, `heartbeat_check_interval` | `listen.heartbeat_idle_time`, `listen.heartbeat_check_interval` |
| `backlog`, `open_tcp_nodelay`, `open_tcp_keepalive` | `listen.backlog`, `listen.tcp_nodelay`, `listen.keepalive` |
| `enable_reuse_port` | `listen.reuse_port` |
| `max_conn` / `max_connection` | `listen.max_connections` (per listener) |
)";
  return md;
}

}  // namespace swactor
