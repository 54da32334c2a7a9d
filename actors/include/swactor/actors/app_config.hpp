#pragma once
// The app.toml schema: [server], [modules.NAME]. Parsing validates module options against
// the module registry, so `swactor check` reports every mistake of a file in one run.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "swactor/actors/module.hpp"
#include "swactor/actors/plugin.hpp"
#include "swactor/core/config.hpp"
#include "swactor/ipc/table.hpp"
#include "swactor/protocols/compression.hpp"
#include "swactor/protocols/framing.hpp"
#include "swactor/protocols/http1.hpp"
#include "swactor/protocols/http2.hpp"
#include "swactor/protocols/redis.hpp"

namespace swactor {

// -- resolved values ------------------------------------------------------------------
// The file holds strings; parse_app_config() resolves them once into these, and nothing on
// a hot path looks at the strings again.

enum class server_mode { base, process };
enum class dispatch_mode { round_robin, connection, idle, ip, uid };

std::string_view to_string(server_mode m) noexcept;
std::string_view to_string(dispatch_mode m) noexcept;

enum class listen_kind { tcp, udp, unix_stream, unix_dgram };
// What a stream listener speaks: framed messages (tcp://, unix://), HTTP (http://,
// http+unix://) or the Redis protocol (redis://, redis+unix://).
enum class listen_protocol { framed, http, redis };

// A parsed listener URL: tcp://, udp://, unix://, unixgram://, http://, http+unix://, ws://,
// ws+unix://, redis://, redis+unix://, and over TLS https://, tls:// (framed), wss://.
struct listen_url {
  listen_kind kind = listen_kind::tcp;
  listen_protocol protocol = listen_protocol::framed;
  std::string host;  // tcp/udp: address literal ("127.0.0.1", "::1", "0.0.0.0", "localhost")
  std::uint16_t port = 0;
  std::string path;  // unix
  bool websocket = false;  // ws://, ws+unix://: HTTP with WebSocket upgrades
  bool tls = false;        // https://, tls://, wss://: the stream is TLS (listen_config::tls)
  std::string error_text;  // set when parsing failed
  explicit operator bool() const noexcept { return error_text.empty(); }
  bool stream() const noexcept { return kind == listen_kind::tcp || kind == listen_kind::unix_stream; }
};

listen_url parse_listen_url(const std::string& url);

struct server_config {
  std::string mode = "base";
  int workers = 2;
  int task_workers = 0;
  int reactor_threads = 2;
  std::string dispatch_mode = "connection";
  std::int64_t max_request = 0;
  std::int64_t max_request_grace = 0;
  std::chrono::milliseconds max_wait_time{3000};
  std::chrono::milliseconds restart_backoff_max{5000};
  std::int64_t busy_poll_us = 0;
  std::string pid_file;
  std::string admin_socket;
  std::string log_level = "info";
  std::string log_file;

  // Resolved from the strings above by parse_app_config().
  server_mode mode_kind = server_mode::base;
  swactor::dispatch_mode dispatch = swactor::dispatch_mode::connection;
};

// One [[listen]] entry.
struct framing_config {
  std::string type = "raw";
  std::string delimiter = "\r\n";
  int length_size = 4;
  std::int64_t length_offset = 0;
  std::int64_t body_offset = 4;
  bool big_endian = true;
  bool is_signed = false;
  std::uint64_t max_length = 2u << 20;
};

// [[listen]] websocket = { ... }: WebSocket upgrades on an HTTP listener (ws:// turns them
// on with these defaults).
struct websocket_config {
  std::uint64_t max_message_size = 16u << 20;
  std::uint64_t max_frame_size = 16u << 20;
  bool permessage_deflate = true;
  std::uint64_t deflate_min_size = 64;
  bool no_context_takeover = false;
  int deflate_window_bits = 15;
  std::chrono::milliseconds close_timeout{5000};
  std::chrono::milliseconds ping_interval{30000};
  std::chrono::milliseconds idle_timeout{90000};
  std::vector<std::string> origins;  // empty = any Origin
  std::string on_output_full = "error";  // "error" | "close"
  bool deliver_control = false;  // pings and pongs reach the module's on_ping / on_pong

  bool enabled = false;  // resolved: every HTTP listener (before that: the table is present)
  bool close_on_output_full = false;  // resolved from on_output_full
};

// [[listen]] redis = { ... }: the RESP limits of a redis:// listener (Redis's own defaults).
struct redis_config {
  std::uint64_t proto_max_bulk_len = std::uint64_t{512} << 20;
  std::int64_t max_multibulk_len = 2147483647;
  std::uint64_t max_inline_len = 64 * 1024;
};

// One entry of [[listen]] tls.sni: the certificate for clients that ask for `host`.
struct tls_sni_config {
  std::string host;  // "api.example.com" or "*.example.com" (one label)
  std::string cert;
  std::string key;
};

// [[listen]] tls = { ... }: the TLS side of an https://, tls:// or wss:// listener. Paths
// are made absolute (relative to the config file's directory) by parse_app_config().
struct tls_config {
  std::string cert;
  std::string key;
  std::string passphrase_file;
  std::string ca;
  std::string verify_client = "none";
  std::vector<std::string> protocols{"TLSv1.2", "TLSv1.3"};
  std::string ciphers;
  std::string ciphersuites;
  std::string curves;
  std::vector<tls_sni_config> sni;
  std::vector<std::string> alpn;
  bool session_tickets = true;
  std::string ocsp_file;
  std::chrono::milliseconds handshake_timeout{10000};

  bool enabled = false;    // resolved: the table is present
  bool alpn_set = false;   // resolved: `alpn` was given (else the listener's default)
};

// [[listen]] compression = { ... }: HTTP response compression and compressed request
// bodies (on by default for HTTP listeners).
struct compression_config {
  bool enabled = true;
  std::uint64_t min_size = 1024;
  int gzip_level = 6;
  int deflate_level = 6;
  int brotli_quality = 4;
  std::vector<std::string> algorithms{"br", "gzip", "deflate"};
  std::vector<std::string> types;
  std::vector<std::string> excluded_types = protocols::compression::default_excluded_types();
  bool inflate_requests = true;
};

// One entry of an HTTP listener's `routes`.
struct route_config {
  std::string path;    // "/api/" (prefix) or "=/healthz" (exact)
  std::string module;  // module instance
  std::vector<std::string> methods;  // empty = every method
  bool stream_body = false;  // on_request runs at the head; the body via read_body()

  // Resolved by parse_app_config().
  bool exact = false;
  std::string match;  // path without the "=" marker
  int module_index = -1;
  toml::source_region where;  // for check's messages
};

struct listen_config {
  std::string url;
  std::string module;
  framing_config framing;
  std::uint64_t output_buffer_size = 8u << 20;
  std::chrono::milliseconds heartbeat_idle_time{0};
  std::chrono::milliseconds heartbeat_check_interval{0};
  int backlog = 512;
  bool tcp_nodelay = true;
  bool keepalive = false;
  bool reuse_port = false;
  int max_connections = 10000;
  std::uint64_t max_packet_size = 65536;
  std::uint64_t max_queued_messages = 64;
  // HTTP listeners
  std::vector<route_config> routes;
  websocket_config websocket;
  std::uint64_t max_header_size = 16 * 1024;
  int max_headers = 100;
  std::uint64_t max_body_size = 8u << 20;
  std::chrono::milliseconds header_timeout{10000};
  std::chrono::milliseconds keepalive_timeout{60000};
  std::chrono::milliseconds body_timeout{60000};
  std::int64_t max_requests_per_connection = 0;
  int max_concurrency = 10000;
  int max_pipelined_requests = 16;
  std::string server_header = "swactor";
  // HTTP/2 (h2c on http://, h2 by ALPN on https://)
  bool h2c = true;
  bool h2c_only = false;  // http:// serving HTTP/2 by prior knowledge only (no HTTP/1.1)
  std::uint32_t h2_max_concurrent_streams = 128;
  std::uint64_t h2_initial_window_size = 65535;
  std::uint64_t h2_connection_window_size = 1u << 20;
  std::uint64_t h2_max_frame_size = 16384;
  std::uint64_t h2_max_header_list_size = 64 * 1024;
  std::chrono::milliseconds h2_idle_stream_timeout{60000};
  std::uint32_t h2_max_resets_per_second = 1000;
  std::uint32_t h2_max_control_frames_per_second = 1000;
  // multipart/form-data bodies (http::form_options)
  std::string upload_tmp_dir = "/tmp";
  std::uint64_t upload_memory_size = 64 * 1024;
  int multipart_max_parts = 128;
  std::uint64_t multipart_max_part_size = 1ull << 30;
  std::uint64_t multipart_max_field_size = 1u << 20;
  std::chrono::milliseconds detached_response_timeout{60000};
  std::chrono::milliseconds send_timeout{30000};
  // Redis listeners
  redis_config redis;
  // TLS listeners (https://, tls://, wss://)
  tls_config tls;
  // HTTP compression
  compression_config compression;

  // Resolved by parse_app_config(): the URL, the framing as codec options, the module
  // instance index (into app_config::modules).
  listen_url endpoint;
  protocols::framing_options framing_options;
  protocols::http1::options http_options;
  protocols::http2::options h2_options;  // h2 by ALPN; http_options.h2c points to a copy
  protocols::redis::options redis_options;
  protocols::compression::options compression_options;
  int module_index = -1;  // -1 for an HTTP listener with routes
  bool http() const noexcept { return endpoint.protocol == listen_protocol::http; }
  bool is_redis() const noexcept { return endpoint.protocol == listen_protocol::redis; }
};

// "\r\n" escapes in the delimiter are decoded here.
protocols::framing_options to_framing_options(const framing_config& f);
std::string unescape(const std::string& s);

// One [tables.NAME]: a shared-memory table created by the master before any worker.
struct table_config {
  std::string name;
  ipc::table_schema schema;
};

struct module_config {
  std::string instance;  // the NAME of [modules.NAME]
  std::string type;      // module type; defaults to the instance name
  const toml::table* options = nullptr;  // points into app_config::root
  std::vector<std::string> subscribe;    // bus patterns every instance subscribes to at start
  std::string plugin;    // absolute path of the shared library; "" for a built-in type
  // The type, from the registry or from the plugin (kept loaded by app_config::plugins).
  const module_type* resolved = nullptr;
};

// [bus]: the message bus between module instances.
struct bus_config {
  std::int64_t mailbox_limit = 10000;        // messages waiting per instance; more are dropped
  std::uint64_t max_message_size = 1 << 20;  // topic + tag + payload bytes
  std::int64_t max_stats_topics = 1000;      // topics counted one by one in bus stats
};

struct app_config {
  std::string file;
  std::shared_ptr<const toml::table> root;  // keeps module option tables (and positions)
  server_config server;
  std::vector<listen_config> listen;
  std::vector<module_config> modules;
  std::vector<table_config> tables;
  bus_config bus;
  // The plugin libraries the modules use (their types stay valid while these live).
  std::vector<std::shared_ptr<const loaded_plugin>> plugins;
  // index of a module instance by name, or -1
  int module_index(const std::string& instance) const;
  // User processes (module index, index within the module), in id order; their ids start
  // at workers + task_workers. Filled by parse_app_config() from the module options.
  std::vector<std::pair<int, int>> user_procs;
  bool process_mode() const noexcept { return server.mode_kind == server_mode::process; }
};

const config::schema<server_config>& server_schema();
const config::schema<listen_config>& listen_schema();
const config::schema<framing_config>& framing_schema();
const config::schema<route_config>& route_schema();
const config::schema<bus_config>& bus_schema();
const config::schema<websocket_config>& websocket_schema();
const config::schema<redis_config>& redis_schema();
const config::schema<tls_config>& tls_schema();
const config::schema<tls_sni_config>& tls_sni_schema();
const config::schema<compression_config>& compression_schema();

// Parses and validates; nullopt (with diagnostics) on any error.
std::optional<app_config> load_app_config(const std::string& path, const module_registry& reg,
                                          config::diagnostics& diag);
// The same from TOML text (`name` for the messages): what the master read from the file,
// the config handed to a worker, a test's string.
std::optional<app_config> load_app_config_text(std::string_view text, const std::string& name,
                                               const module_registry& reg, config::diagnostics& diag);
std::optional<app_config> parse_app_config(const toml::table& root, const std::string& path,
                                           const module_registry& reg,
                                           config::diagnostics& diag);

// docs/config.md, generated from the schemas and the registry.
std::string config_reference_markdown(const module_registry& reg);

}  // namespace swactor
