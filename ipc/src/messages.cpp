#include "swactor/ipc/messages.hpp"

#include <iterator>
#include <type_traits>
#include <utility>

#include "swactor/core/wire.hpp"

namespace swactor::ipc {
namespace {

// -- fields (swactor/core/wire.hpp) -----------------------------------------------------------

template <class T>
void put(std::string& out, T v) {
  wire::writer(out).integer(v);
}
void put_bool(std::string& out, bool v) { wire::writer(out).boolean(v); }
void put_str(std::string& out, std::string_view s) { wire::writer(out).str(s); }
// The TLS block of conn_open and conn_adopt (read_tls below reads it back).
template <class M>
void put_tls(std::string& out, const M& m) {
  put_bool(out, m.tls);
  if (!m.tls) return;
  for (const auto* f : {&m.tls_version, &m.tls_cipher, &m.tls_sni, &m.tls_alpn, &m.tls_peer_subject,
                        &m.tls_peer_fingerprint})
    put_str(out, *f);
  put_bool(out, m.tls_resumed);
}

// Starts the trailer of a bulk kind: the bulk string becomes the payload (moved, so the
// only possible copy is the reallocation of the appends that follow).
std::size_t begin_trailer(message& out, std::string&& bulk) {
  out.payload = std::move(bulk);
  return out.payload.size();
}

void end_trailer(message& out, std::size_t fields_begin) {
  put<std::uint32_t>(out.payload, static_cast<std::uint32_t>(out.payload.size() - fields_begin));
}

message with_type(message_type t) {
  message m;
  m.type = t;
  return m;
}

using reader = wire::reader;

std::error_code bad() { return make_error_code(errc::bad_message); }

// The fixed fields of the two hot bulk kinds' trailers: conn_data u32 listener + u8 kind,
// conn_send u8 kind.
constexpr std::size_t kConnDataFields = 4 + 1;
constexpr std::size_t kConnSendFields = 1;

// Where a hot kind's fixed fields start (the bulk's size), or npos when its trailer's length is
// not exactly `fields`.
std::size_t fixed_trailer(std::string_view payload, std::size_t fields) noexcept {
  if (payload.size() < fields + 4 || wire::load<std::uint32_t>(payload.data() + payload.size() - 4) != fields)
    return std::string_view::npos;
  return payload.size() - 4 - fields;
}

// Splits a bulk kind's payload: returns the fields' reader, sets `bulk_size`; the caller
// shrinks the payload to bulk_size once the fields are read (shrinking never reallocates).
bool split_trailer(std::string_view payload, std::size_t& bulk_size, std::string_view& fields) {
  if (payload.size() < 4) return false;
  std::uint32_t n = reader(payload.substr(payload.size() - 4)).integer<std::uint32_t>();
  if (n > payload.size() - 4) return false;
  bulk_size = payload.size() - 4 - n;
  fields = payload.substr(bulk_size, n);
  return true;
}

std::string take_bulk(message& m, std::size_t bulk_size) {
  m.payload.resize(bulk_size);
  return std::move(m.payload);
}

// -- decoders, one per kind (the payload is ours to take) -----------------------------------

// The TLS block of conn_open and conn_adopt: bool tls, then (when set) six strings and
// bool resumed.
template <class M>
void read_tls(reader& r, M& v) {
  v.tls = r.boolean();
  if (!v.tls) return;
  for (auto* f : {&v.tls_version, &v.tls_cipher, &v.tls_sni, &v.tls_alpn, &v.tls_peer_subject, &v.tls_peer_fingerprint})
    *f = r.str();
  v.tls_resumed = r.boolean();
}

result<any_message> decode_conn_open(message& m) {
  reader r(m.payload);
  conn_open v;
  v.session = m.session_id;
  v.reactor = m.reactor_id;
  v.listener = r.integer<std::uint32_t>();
  v.connect_ms = r.integer<std::int64_t>();
  v.remote = r.str();
  v.local = r.str();
  v.protocol = r.str();
  read_tls(r, v);
  if (!r.done()) return bad();
  return any_message(std::move(v));
}

// The hot kinds decode through their views (below): one reader of their trailers.
result<any_message> decode_conn_data(message& m) {
  auto v = view_conn_data(view_of(m));
  if (!v) return bad();
  conn_data d{v->session, v->listener, v->reactor, v->kind, {}};
  d.data = take_bulk(m, v->data.size());  // the view's bytes are the payload's prefix
  return any_message(std::move(d));
}

result<any_message> decode_conn_send(message& m) {
  auto v = view_conn_send(view_of(m));
  if (!v) return bad();
  conn_send d{v->session, v->worker, v->kind, {}};
  d.data = take_bulk(m, v->data.size());
  return any_message(std::move(d));
}

}  // namespace

// The trailer's size must be exactly the fields' (pieces_of_conn_data/send write them), read
// directly: these run once per request in process mode.
std::optional<conn_data_view> view_conn_data(const message_view& m) noexcept {
  if (m.type != message_type::receive) return std::nullopt;
  const auto bulk = fixed_trailer(m.payload, kConnDataFields);
  if (bulk == std::string_view::npos) return std::nullopt;
  const char* f = m.payload.data() + bulk;  // u32 listener, u8 kind
  return conn_data_view{m.session_id, wire::load<std::uint32_t>(f), m.reactor_id, static_cast<std::uint8_t>(f[4]),
                        m.payload.substr(0, bulk)};
}

std::optional<conn_send_view> view_conn_send(const message_view& m) noexcept {
  if (m.type != message_type::send) return std::nullopt;
  const auto bulk = fixed_trailer(m.payload, kConnSendFields);
  if (bulk == std::string_view::npos) return std::nullopt;
  return conn_send_view{m.session_id, m.src_worker, static_cast<std::uint8_t>(m.payload[bulk]),  // u8 kind
                        m.payload.substr(0, bulk)};
}

namespace {

result<any_message> decode_conn_closed(message& m) {
  reader r(m.payload);
  conn_closed v;
  v.session = m.session_id;
  v.reactor = m.reactor_id;
  v.listener = r.integer<std::uint32_t>();
  v.aborted = r.boolean();
  v.reason = r.str();
  if (!r.done()) return bad();
  return any_message(std::move(v));
}


result<any_message> decode_conn_close(message& m) {
  reader r(m.payload);
  conn_close v;
  v.session = m.session_id;
  v.reset = r.boolean();
  if (!r.done()) return bad();
  return any_message(v);
}

result<any_message> decode_conn_bind(message& m) {
  reader r(m.payload);
  conn_bind v;
  v.session = m.session_id;
  v.uid = r.integer<std::uint64_t>();
  if (!r.done()) return bad();
  return any_message(v);
}

result<any_message> decode_conn_upgrade(message& m) {
  reader r(m.payload);
  conn_upgrade v;
  v.session = m.session_id;
  v.worker = m.src_worker;
  v.module = r.integer<std::uint32_t>();
  v.target = r.str();
  if (!r.done()) return bad();
  return any_message(std::move(v));
}

result<any_message> decode_conn_adopt(message& m) {
  reader r(m.payload);
  conn_adopt v;
  v.session = m.session_id;
  v.reactor = m.reactor_id;
  v.listener = r.integer<std::uint32_t>();
  v.module = r.integer<std::uint32_t>();
  v.connect_ms = r.integer<std::int64_t>();
  v.remote = r.str();
  v.local = r.str();
  v.target = r.str();
  read_tls(r, v);
  if (!r.done()) return bad();
  return any_message(std::move(v));
}

result<any_message> decode_group_op(message& m) {
  reader r(m.payload);
  group_op v;
  v.session = m.session_id;
  v.worker = m.src_worker;
  v.join = r.boolean();
  v.group = r.str();
  if (!r.done()) return bad();
  return any_message(std::move(v));
}

result<any_message> decode_group_send(message& m) {
  std::size_t bulk = 0;
  std::string_view f;
  if (!split_trailer(m.payload, bulk, f)) return bad();
  reader r(f);
  group_send v;
  v.worker = m.src_worker;
  v.kind = r.integer<std::uint8_t>();
  v.group = r.str();
  if (!r.done()) return bad();
  v.data = take_bulk(m, bulk);
  return any_message(std::move(v));
}

result<any_message> decode_datagram_in(message& m) {
  std::size_t bulk = 0;
  std::string_view f;
  if (!split_trailer(m.payload, bulk, f)) return bad();
  reader r(f);
  datagram_in v;
  v.reactor = m.reactor_id;
  v.listener = r.integer<std::uint32_t>();
  v.from = r.str();
  if (!r.done()) return bad();
  v.data = take_bulk(m, bulk);
  return any_message(std::move(v));
}

result<any_message> decode_datagram_out(message& m) {
  std::size_t bulk = 0;
  std::string_view f;
  if (!split_trailer(m.payload, bulk, f)) return bad();
  reader r(f);
  datagram_out v;
  v.listener = r.integer<std::int32_t>();
  v.to = r.str();
  if (!r.done()) return bad();
  v.data = take_bulk(m, bulk);
  return any_message(std::move(v));
}

result<any_message> decode_stop(message& m) {
  reader r(m.payload);
  stop v;
  v.reason = r.str();
  if (!r.done()) return bad();
  return any_message(std::move(v));
}

result<any_message> decode_task_request(message& m) {
  std::size_t bulk = 0;
  std::string_view f;
  if (!split_trailer(m.payload, bulk, f)) return bad();
  reader r(f);
  task_request v;
  v.task = m.message_id;
  v.src = m.src_worker;
  v.dst = m.dst_worker;
  v.module = r.integer<std::uint32_t>();
  v.wants_finish = r.boolean();
  if (!r.done()) return bad();
  v.payload = take_bulk(m, bulk);
  return any_message(std::move(v));
}

result<any_message> decode_task_result(message& m) {
  std::size_t bulk = 0;
  std::string_view f;
  if (!split_trailer(m.payload, bulk, f)) return bad();
  reader r(f);
  task_result v;
  v.task = m.message_id;
  v.src = m.src_worker;
  v.dst = m.dst_worker;
  v.failed = m.has_error();
  v.module = r.integer<std::uint32_t>();
  if (!r.done()) return bad();
  v.payload = take_bulk(m, bulk);
  return any_message(std::move(v));
}

result<any_message> decode_pipe_message(message& m) {
  std::size_t bulk = 0;
  std::string_view f;
  if (!split_trailer(m.payload, bulk, f)) return bad();
  reader r(f);
  pipe_message v;
  v.src = m.src_worker;
  v.dst = m.dst_worker;
  v.module = r.integer<std::uint32_t>();
  if (!r.done()) return bad();
  v.payload = take_bulk(m, bulk);
  return any_message(std::move(v));
}

result<any_message> decode_bus_message(message& m) {
  std::size_t bulk = 0;
  std::string_view f;
  if (!split_trailer(m.payload, bulk, f)) return bad();
  reader r(f);
  bus_message v;
  v.src = m.src_worker;
  v.dst = m.dst_worker;
  v.request = m.message_id;
  auto op = r.integer<std::uint8_t>();
  auto status = r.integer<std::uint8_t>();
  if (op > static_cast<std::uint8_t>(bus_op::reply) || status > static_cast<std::uint8_t>(bus_status::failed))
    return bad();
  v.op = static_cast<bus_op>(op);
  v.status = static_cast<bus_status>(status);
  v.pick = r.integer<std::uint8_t>();
  if (v.pick > 1) return bad();
  v.self = r.boolean();
  v.src_module = r.integer<std::uint32_t>();
  v.dst_module = r.integer<std::uint32_t>();
  v.seq = r.integer<std::uint64_t>();
  v.topic = r.str();
  v.tag = r.str();
  v.dst_pid = r.integer<std::uint32_t>();
  if (!r.done()) return bad();
  v.data = take_bulk(m, bulk);
  return any_message(std::move(v));
}

result<any_message> decode_bus_subscription(message& m) {
  reader r(m.payload);
  bus_subscription v;
  v.process = m.src_worker;
  v.module = r.integer<std::uint32_t>();
  v.subscribe = r.boolean();
  v.pattern = r.str();
  if (!r.done()) return bad();
  return any_message(std::move(v));
}

}  // namespace

// -- encode -----------------------------------------------------------------------------------

message encode(conn_open m) {
  auto out = with_type(message_type::connect);
  out.session_id = m.session;
  out.reactor_id = m.reactor;
  out.payload.reserve(4 + 8 + 4 + m.remote.size() + 4 + m.local.size() + 4 + m.protocol.size() + 1);
  put<std::uint32_t>(out.payload, m.listener);
  put<std::int64_t>(out.payload, m.connect_ms);
  put_str(out.payload, m.remote);
  put_str(out.payload, m.local);
  put_str(out.payload, m.protocol);
  put_tls(out.payload, m);
  return out;
}

message_pieces pieces_of_conn_data(std::uint64_t session, std::uint32_t listener, std::uint32_t reactor,
                                   std::uint8_t kind, std::string_view data) {
  message_pieces p;
  p.head.type = message_type::receive;
  p.head.session_id = session;
  p.head.reactor_id = reactor;
  p.bulk = data;
  // The trailer (view_conn_data reads it back): listener, kind, then the fields' length.
  wire::store(p.fields, listener);
  p.fields[4] = static_cast<char>(kind);
  wire::store(p.fields + kConnDataFields, std::uint32_t{kConnDataFields});
  p.fields_size = kConnDataFields + 4;
  return p;
}

message_pieces pieces_of_conn_send(std::uint64_t session, std::uint32_t worker, std::uint8_t kind,
                                   std::string_view data) {
  message_pieces p;
  p.head.type = message_type::send;
  p.head.session_id = session;
  p.head.src_worker = worker;
  p.bulk = data;
  p.fields[0] = static_cast<char>(kind);  // kind, then the fields' length
  wire::store(p.fields + kConnSendFields, std::uint32_t{kConnSendFields});
  p.fields_size = kConnSendFields + 4;
  return p;
}

namespace {
// The message of pieces whose bulk is `bulk`, moved in rather than copied: encode() of a
// hot kind, whose trailer pieces_of_*() writes (one layout for both ways of sending).
message with_bulk(const message_pieces& p, std::string&& bulk) {
  message out = p.head;
  out.payload = std::move(bulk);
  out.payload.append(p.fields_view());
  return out;
}
}  // namespace

message encode(conn_data m) {
  return with_bulk(pieces_of_conn_data(m.session, m.listener, m.reactor, m.kind, {}), std::move(m.data));
}

message encode(conn_closed m) {
  auto out = with_type(message_type::close);
  out.session_id = m.session;
  out.reactor_id = m.reactor;
  out.payload.reserve(4 + 1 + 4 + m.reason.size());
  put<std::uint32_t>(out.payload, m.listener);
  put_bool(out.payload, m.aborted);
  put_str(out.payload, m.reason);
  return out;
}

message encode(conn_send m) {
  return with_bulk(pieces_of_conn_send(m.session, m.worker, m.kind, {}), std::move(m.data));
}

message encode(conn_close m) {
  auto out = with_type(message_type::conn_close);
  out.session_id = m.session;
  put_bool(out.payload, m.reset);
  return out;
}

message encode(conn_upgrade m) {
  auto out = with_type(message_type::conn_upgrade);
  out.session_id = m.session;
  out.src_worker = m.worker;
  put<std::uint32_t>(out.payload, m.module);
  put_str(out.payload, m.target);
  return out;
}

message encode(conn_adopt m) {
  auto out = with_type(message_type::conn_adopt);
  out.session_id = m.session;
  out.reactor_id = m.reactor;
  put<std::uint32_t>(out.payload, m.listener);
  put<std::uint32_t>(out.payload, m.module);
  put<std::int64_t>(out.payload, m.connect_ms);
  put_str(out.payload, m.remote);
  put_str(out.payload, m.local);
  put_str(out.payload, m.target);
  put_tls(out.payload, m);
  return out;
}

message encode(group_op m) {
  auto out = with_type(message_type::group_op);
  out.session_id = m.session;
  out.src_worker = m.worker;
  put_bool(out.payload, m.join);
  put_str(out.payload, m.group);
  return out;
}

message encode(group_send m) {
  auto out = with_type(message_type::group_send);
  out.src_worker = m.worker;
  auto f = begin_trailer(out, std::move(m.data));
  put<std::uint8_t>(out.payload, m.kind);
  put_str(out.payload, m.group);
  end_trailer(out, f);
  return out;
}

message encode(conn_bind m) {
  auto out = with_type(message_type::conn_bind);
  out.session_id = m.session;
  put<std::uint64_t>(out.payload, m.uid);
  return out;
}

message encode(datagram_in m) {
  auto out = with_type(message_type::packet);
  out.reactor_id = m.reactor;
  auto f = begin_trailer(out, std::move(m.data));
  put<std::uint32_t>(out.payload, m.listener);
  put_str(out.payload, m.from);
  end_trailer(out, f);
  return out;
}

message encode(datagram_out m) {
  auto out = with_type(message_type::datagram_out);
  auto f = begin_trailer(out, std::move(m.data));
  put<std::int32_t>(out.payload, m.listener);
  put_str(out.payload, m.to);
  end_trailer(out, f);
  return out;
}

message encode(drain m) {
  auto out = with_type(message_type::drain);
  out.src_worker = m.worker;
  return out;
}

message encode(drained m) {
  auto out = with_type(message_type::drained);
  out.reactor_id = m.reactor;
  return out;
}

message encode(ready m) {
  auto out = with_type(message_type::ready);
  out.src_worker = m.process;
  return out;
}

message encode(stop m) {
  auto out = with_type(message_type::stop);
  out.payload.reserve(4 + m.reason.size());
  put_str(out.payload, m.reason);
  return out;
}

message encode(task_request m) {
  auto out = with_type(message_type::task);
  out.message_id = m.task;
  out.src_worker = m.src;
  out.dst_worker = m.dst;
  auto f = begin_trailer(out, std::move(m.payload));
  put<std::uint32_t>(out.payload, m.module);
  put_bool(out.payload, m.wants_finish);
  end_trailer(out, f);
  return out;
}

message encode(task_result m) {
  auto out = with_type(message_type::task_result);
  out.message_id = m.task;
  out.src_worker = m.src;
  out.dst_worker = m.dst;
  if (m.failed) out.flags |= flag::error;
  auto f = begin_trailer(out, std::move(m.payload));
  put<std::uint32_t>(out.payload, m.module);
  end_trailer(out, f);
  return out;
}

message encode(pipe_message m) {
  auto out = with_type(message_type::pipe_message);
  out.src_worker = m.src;
  out.dst_worker = m.dst;
  auto f = begin_trailer(out, std::move(m.payload));
  put<std::uint32_t>(out.payload, m.module);
  end_trailer(out, f);
  return out;
}

message encode(conn_watch m) {
  auto out = with_type(message_type::conn_watch);
  out.session_id = m.session;
  out.src_worker = m.worker;
  return out;
}

message encode(conn_writable m) {
  auto out = with_type(message_type::conn_writable);
  out.session_id = m.session;
  out.reactor_id = m.reactor;
  return out;
}

message encode(conn_pause m) {
  auto out = with_type(message_type::pause);
  out.session_id = m.session;
  out.src_worker = m.worker;
  return out;
}

message encode(conn_resume m) {
  auto out = with_type(message_type::resume);
  out.session_id = m.session;
  out.src_worker = m.worker;
  return out;
}

message encode(bus_message m) {
  auto out = with_type(message_type::bus);
  out.src_worker = m.src;
  out.dst_worker = m.dst;
  out.message_id = m.request;
  auto f = begin_trailer(out, std::move(m.data));
  put<std::uint8_t>(out.payload, static_cast<std::uint8_t>(m.op));
  put<std::uint8_t>(out.payload, static_cast<std::uint8_t>(m.status));
  put<std::uint8_t>(out.payload, m.pick);
  put_bool(out.payload, m.self);
  put<std::uint32_t>(out.payload, m.src_module);
  put<std::uint32_t>(out.payload, m.dst_module);
  put<std::uint64_t>(out.payload, m.seq);
  put_str(out.payload, m.topic);
  put_str(out.payload, m.tag);
  put<std::uint32_t>(out.payload, m.dst_pid);
  end_trailer(out, f);
  return out;
}

message encode(bus_subscription m) {
  auto out = with_type(message_type::bus_subscribe);
  out.src_worker = m.process;
  put<std::uint32_t>(out.payload, m.module);
  put_bool(out.payload, m.subscribe);
  put_str(out.payload, m.pattern);
  return out;
}

message encode(any_message m) {
  return std::visit([](auto& v) { return encode(std::move(v)); }, m);
}

// -- decode -----------------------------------------------------------------------------------

result<any_message> decode(message&& m) {
  auto empty_payload = [&](auto v) -> result<any_message> {
    if (!m.payload.empty()) return bad();
    return any_message(v);
  };
  switch (m.type) {
    case message_type::connect: return decode_conn_open(m);
    case message_type::receive: return decode_conn_data(m);
    case message_type::close: return decode_conn_closed(m);
    case message_type::send: return decode_conn_send(m);
    case message_type::conn_close: return decode_conn_close(m);
    case message_type::conn_bind: return decode_conn_bind(m);
    case message_type::packet: return decode_datagram_in(m);
    case message_type::datagram_out: return decode_datagram_out(m);
    case message_type::drain: return empty_payload(drain{m.src_worker});
    case message_type::drained: return empty_payload(drained{m.reactor_id});
    case message_type::ready: return empty_payload(ready{m.src_worker});
    case message_type::stop: return decode_stop(m);
    case message_type::task: return decode_task_request(m);
    case message_type::task_result: return decode_task_result(m);
    case message_type::pipe_message: return decode_pipe_message(m);
    case message_type::conn_watch: return empty_payload(conn_watch{m.session_id, m.src_worker});
    case message_type::conn_writable: return empty_payload(conn_writable{m.session_id, m.reactor_id});
    case message_type::pause: return empty_payload(conn_pause{m.session_id, m.src_worker});
    case message_type::resume: return empty_payload(conn_resume{m.session_id, m.src_worker});
    case message_type::bus: return decode_bus_message(m);
    case message_type::bus_subscribe: return decode_bus_subscription(m);
    case message_type::conn_upgrade: return decode_conn_upgrade(m);
    case message_type::conn_adopt: return decode_conn_adopt(m);
    case message_type::group_op: return decode_group_op(m);
    case message_type::group_send: return decode_group_send(m);
    default: return bad();
  }
}

result<any_message> decode(const message& m) { return decode(message(m)); }

std::string_view kind_name(const any_message& m) noexcept {
  static constexpr std::string_view names[] = {
      "conn_open", "conn_data",    "conn_closed", "conn_send", "conn_close",
      "conn_bind", "datagram_in",  "datagram_out", "drain",    "drained",
      "ready",     "stop",         "task_request", "task_result", "pipe_message",
      "conn_watch", "conn_writable", "conn_pause", "conn_resume", "bus_message",
      "bus_subscription", "conn_upgrade", "conn_adopt", "group_op", "group_send"};
  static_assert(std::size(names) == std::variant_size_v<any_message>);
  return m.valueless_by_exception() ? std::string_view("valueless") : names[m.index()];
}

}  // namespace swactor::ipc
