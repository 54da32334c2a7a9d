// llhttp's request fixtures replayed against a real server (http_echo behind an HTTP
// listener), in base and process mode, each case sent whole and again one byte per send().
//
// Verdicts (see shared/conformance/http1/README.md):
//   ok      one echo per complete message, same method, target, version, headers (in
//           order, trailers appended) and body; then a sentinel request is answered unless
//           the last message closes the connection.
//   error   exactly one 4xx/5xx response, no echo (the handler never ran), then EOF.
//   upgrade our decision: the server has no upgrade/tunnel support. An Upgrade request is
//           delivered like any other (one echo), nothing after it is parsed (the sentinel
//           is never answered) and the connection closes; CONNECT is refused with 501.
//   closed  the request after `Connection: close` (or a 1.0 request without keep-alive)
//           is never answered.
//
// HTTP/1.1 cases without Host get `Host: localhost` after their request line (error cases
// too, so that they fail for their own reason, not for the missing Host).
#include <fstream>
#include <map>
#include <set>

#include "http_helpers.hpp"

using namespace std::chrono_literals;
using namespace swactor::testing::server;
namespace http = swactor::testing::http;

namespace {

// Cases that do not pass, by id. `server_bug`: the server is wrong and should change (each
// run that still fails gives a WARN); otherwise the server rightly differs from llhttp's
// verdict or the fixture cannot be replayed against a server.
struct deviation {
  bool server_bug;
  const char* why;
};
const std::map<int, deviation> kDeviations = {
    // Debian's llhttp 8.1 refuses HTAB around a Content-Length value (9.4 accepts it, RFC
    // 9110 §5.5 allows it): refusing a length we might read differently is the safe side.
    {28, {false, "HTAB around the Content-Length value: 400 (llhttp 8.1)"}},
    // llhttp's harness skips the body of the first message here (on_headers_complete
    // returns 1); a server must read the 123 bytes of body.
    {33, {false, "fixture depends on a parser callback skipping the body"}},
    // asterisk-form is for OPTIONS only (RFC 9112 §3.2.4): 400 is right.
    {77, {false, "M-SEARCH * is refused (asterisk-form only for OPTIONS)"}},
    // not HTTP: ICE and RTSP request lines are refused with 400.
    {84, {false, "ICE/1.0 is not HTTP"}},
    {85, {false, "RTSP/1.0 is not HTTP"}},
    {86, {false, "RTSP/1.0 is not HTTP"}},
    // QUERY (draft-ietf-httpbis-safe-method-w-body) is known to llhttp 9, not to 8.1: an
    // unknown method gets 501 Not Implemented (RFC 9110 §9.1).
    {88, {false, "QUERY method: 501 (llhttp 8.1 does not know it)"}},
    // HTTP/0.9 ("GET /" with no version) is not served: 505 is a fair answer.
    {112, {false, "HTTP/0.9 request: 505"}},
    // Debian's llhttp 8.1 refuses a chunk extension after one with a value ("5;a=b;c");
    // RFC 9112 §7.1.1 allows any number. Chunk extensions carry nothing we use; refusing
    // the request is safe, if stricter than 9.4.
    {127, {false, "several chunk extensions with values: 400 (llhttp 8.1)"}},
    {130, {false, "several quoted chunk extensions: 400 (llhttp 8.1)"}},
    // transfer codings other than chunked are not implemented: 501 (RFC 9112 §6.1).
    {140, {false, "Transfer-Encoding: deflate, chunked: 501"}},
    {141, {false, "Transfer-Encoding: deflate + chunked: 501"}},
    // userinfo in an http URI is an error for recipients (RFC 9110 §4.2.4): 400 is right.
    {161, {false, "absolute-form target with userinfo: 400"}},
};

// The status an `error` case must get, by llhttp's reason; 400 for the rest.
std::set<int> error_statuses(const std::string& reason) {
  if (reason == "Invalid HTTP version") return {505};
  // An unknown method is 501 (RFC 9110 §9.1); a broken request line around it 400 or 501.
  if (reason == "Invalid method" || reason == "Expected space after method" ||
      reason == "Invalid method encountered")
    return {400, 501};
  if (reason == "Request has invalid `Transfer-Encoding`") return {501};  // unknown coding
  // "identity" + Content-Length: refused for either reason.
  if (reason == "Content-Length can't be present with Transfer-Encoding") return {400, 501};
  if (reason == "Content-Length overflow") return {400, 413};
  if (reason == "Pause on PRI/Upgrade") return {400, 505};  // the HTTP/2 preface
  return {400};
}

// Fixture quirks: the expected header list cannot be compared (the body still is).
const std::map<int, const char*> kHeaderQuirks = {
    {126, "the fixture glues trailer names onto the header list (\"Transfer-EncodingVary\")"},
};

struct expected_message {
  std::string method, url, version;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool complete = true;
};

struct conformance_case {
  int id = 0;
  std::string title, verdict, raw;
  std::string error_reason;  // llhttp's, for `error` cases
  bool no_scan = false;
  std::vector<expected_message> messages;
};

// The fixtures store header bytes as Latin-1 code points in JSON strings.
std::string latin1(const std::string& utf8) {
  std::string out;
  for (std::size_t i = 0; i < utf8.size(); ++i) {
    auto c = static_cast<unsigned char>(utf8[i]);
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else if ((c & 0xe0) == 0xc0 && i + 1 < utf8.size()) {
      out += static_cast<char>(((c & 0x1f) << 6) | (static_cast<unsigned char>(utf8[i + 1]) & 0x3f));
      ++i;
    } else {
      out += static_cast<char>(c);  // not Latin-1: kept (cannot match anyway)
    }
  }
  return out;
}

std::filesystem::path corpus_path() {
#ifdef SWACTOR_CONFORMANCE_DIR
  return std::filesystem::path(SWACTOR_CONFORMANCE_DIR) / "http1" / "llhttp-cases.jsonl";
#else
  return {};
#endif
}

// The strict request cases (not the pause-harness ones).
std::vector<conformance_case> load_cases(const std::filesystem::path& p) {
  std::vector<conformance_case> out;
  std::ifstream in(p);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto j = json::parse(line);
    if (j.at("type") != "request" || !j.at("pause").is_null()) continue;
    conformance_case k;
    k.id = j.at("id").get<int>();
    k.title = j.at("title").get<std::string>();
    k.verdict = j.at("verdict").get<std::string>();
    k.raw = http::base64_decode(j.at("raw_b64").get<std::string>());
    k.no_scan = j.value("noScan", false);
    if (j.at("error").is_object()) k.error_reason = j.at("error").value("reason", "");
    if (j.contains("messages") && j.at("messages").is_array())
      for (const auto& m : j.at("messages")) {
        expected_message e;
        e.method = m.value("method", "");
        e.url = latin1(m.value("url", ""));
        e.version = m.value("version", "");
        for (const auto& h : m.at("headers"))
          e.headers.emplace_back(latin1(h.at(0).get<std::string>()), latin1(h.at(1).get<std::string>()));
        e.body = http::base64_decode(m.value("body_b64", ""));
        e.complete = m.value("complete", true);
        k.messages.push_back(std::move(e));
      }
    out.push_back(std::move(k));
  }
  return out;
}

bool has_header(const std::vector<std::pair<std::string, std::string>>& h, std::string_view name) {
  for (const auto& [n, v] : h)
    if (http::iequals(n, name)) return true;
  return false;
}

// Whether the server keeps the connection after this message (RFC 9112 §9.3).
bool keeps_alive(const expected_message& m) {
  bool close = false, keep = false;
  for (const auto& [n, v] : m.headers) {
    if (!http::iequals(n, "Connection")) continue;
    std::size_t at = 0;
    while (at <= v.size()) {
      auto comma = v.find(',', at);
      auto tok = v.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
      while (!tok.empty() && (tok.front() == ' ' || tok.front() == '\t')) tok.erase(0, 1);
      while (!tok.empty() && (tok.back() == ' ' || tok.back() == '\t')) tok.pop_back();
      if (http::iequals(tok, "close")) close = true;
      if (http::iequals(tok, "keep-alive")) keep = true;
      if (comma == std::string::npos) break;
      at = comma + 1;
    }
  }
  if (close) return false;
  return m.version == "1.1" || keep;
}

// Inserts "Host: localhost" after the request line of every HTTP/1.1 message without Host.
// Messages are found in order by their request line. For cases without messages (errors),
// the first line gets it when it is a plain "... HTTP/1.1\r\n" and no Host appears at all.
std::string with_host(const conformance_case& k, std::vector<bool>& inserted) {
  std::string raw = k.raw;
  inserted.assign(k.messages.size(), false);
  const std::string host = "Host: localhost\r\n";
  if (k.messages.empty() || k.verdict == "error") {
    std::string lower;
    for (char c : raw) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    auto eol = raw.find("\r\n");
    if (lower.find("host") == std::string::npos && eol != std::string::npos && eol >= 8 &&
        raw.compare(eol - 8, 8, "HTTP/1.1") == 0)
      raw.insert(eol + 2, host);
    return raw;
  }
  std::size_t at = 0;
  for (std::size_t i = 0; i < k.messages.size(); ++i) {
    const auto& m = k.messages[i];
    auto line = m.method + " " + m.url + " HTTP/" + m.version;
    auto p = raw.find(line, at);
    if (p == std::string::npos) break;
    auto eol = raw.find('\n', p);
    if (eol == std::string::npos) break;
    at = eol + 1;
    if (m.version == "1.1" && !has_header(m.headers, "Host")) {
      raw.insert(at, host);
      at += host.size();
      inserted[i] = true;
    }
  }
  return raw;
}

std::string trim_ows(std::string v) {
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.pop_back();
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.erase(0, 1);
  return v;
}

// A header value through JSON: http_echo replaces bytes that are not UTF-8 with U+FFFD.
bool same_value(const std::string& expected, const std::string& got) {
  auto e = trim_ows(expected), g = trim_ows(got);
  if (e == g) return true;
  std::string replaced;
  for (char c : e) replaced += static_cast<unsigned char>(c) >= 0x80 ? std::string("\xEF\xBF\xBD") : std::string(1, c);
  return replaced == g;
}

// "" when the echo matches the message, else what differs.
std::string compare_echo(const conformance_case& k, const http::response& r, const expected_message& m, bool host_added) {
  if (r.status != 200) return "status " + std::to_string(r.status) + " body " + r.body.substr(0, 200);
  // The echo of a HEAD request has no body to compare: its head is all there is.
  if (m.method == "HEAD") return r.body.empty() && r.header("Content-Length") ? std::string() : "HEAD response with a body or without Content-Length";
  auto j = r.echo();
  if (!j.is_object()) return "not an echo: " + r.body.substr(0, 200);
  if (j.value("method", "") != m.method) return "method " + j.value("method", "");
  if (j.value("target", "") != m.url) return "target " + j.value("target", "");
  if (j.value("version", "") != "HTTP/" + m.version) return "version " + j.value("version", "");
  auto want = m.headers;
  if (host_added) want.insert(want.begin(), {"Host", "localhost"});
  std::vector<std::pair<std::string, std::string>> got;
  for (const auto* key : {"headers", "trailers"})
    for (const auto& h : j.at(key)) got.emplace_back(h.at(0).get<std::string>(), h.at(1).get<std::string>());
  if (!kHeaderQuirks.count(k.id)) {
    bool same = want.size() == got.size();
    for (std::size_t i = 0; same && i < want.size(); ++i)
      same = want[i].first == got[i].first && same_value(want[i].second, got[i].second);
    if (!same) return "headers " + j.at("headers").dump() + " trailers " + j.at("trailers").dump();
  }
  if (http::base64_decode(j.value("body_base64", "")) != m.body) return "body " + j.value("body_base64", "");
  return {};
}

const std::string kSentinel = "GET /__sentinel HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

bool is_sentinel(const http::response& r) {
  auto j = r.echo();
  return j.is_object() && j.value("target", "") == "/__sentinel";
}

// Runs one case; "" when the server did what the verdict asks, else what it did.
std::string run_case(std::uint16_t port, const conformance_case& k, bool bytewise) {
  std::vector<bool> host_added;
  auto wire = with_host(k, host_added);
  std::size_t complete = 0;
  for (const auto& m : k.messages) complete += m.complete ? 1 : 0;
  const bool all_complete = complete == k.messages.size();
  // The sentinel follows whole messages: it must be answered after `ok` messages that keep
  // the connection, and never after an upgrade or a close.
  const bool sentinel = k.verdict != "error" && all_complete;

  auto c = connect_tcp("127.0.0.1", port);
  if (!c) return "connect failed";
  if (bytewise)
    http::send_bytewise(c, wire);
  else
    c.send_all(wire);
  if (sentinel) c.send_all(kSentinel);

  http::drained d;
  if (k.verdict == "ok" && !all_complete) {
    // The last message waits for the rest of its body: read the complete ones, then make
    // sure nothing else comes.
    for (std::size_t i = 0; i < complete; ++i) {
      auto r = http::read_response(c, 2s);
      if (!r) return "response " + std::to_string(i) + " missing";
      if (auto why = compare_echo(k, *r, k.messages[i], host_added[i]); !why.empty())
        return "message " + std::to_string(i) + ": " + why;
    }
    auto more = http::read_to_eof(c, 200ms);
    if (!more.data.empty()) return "unexpected bytes after the complete messages: " + more.data.substr(0, 200);
    return {};
  }
  d = http::read_to_eof(c, 2s);
  std::string rest;
  std::vector<bool> head;
  for (const auto& m : k.messages) head.push_back(m.method == "HEAD");
  auto rs = http::split_responses(d.data, &rest, head);
  if (!rest.empty()) return "unparsable bytes: " + rest.substr(0, 200);
  if (!d.closed) return "connection not closed (" + std::to_string(rs.size()) + " responses)";

  auto describe = [&] {
    std::string s = std::to_string(rs.size()) + " responses:";
    for (const auto& r : rs) s += " " + std::to_string(r.status);
    return s;
  };
  if (k.verdict == "error") {
    if (rs.size() != 1) return "expected one error response, got " + describe();
    if (!error_statuses(k.error_reason).count(rs[0].status))
      return "unexpected status for \"" + k.error_reason + "\": " + describe() + " " + rs[0].body.substr(0, 200);
    if (auto j = rs[0].echo(); j.is_object() && j.contains("method")) return "the handler ran";
    return {};
  }
  if (k.verdict == "upgrade") {
    if (rs.size() != 1) return "expected one response, got " + describe();
    if (k.messages.at(0).method == "CONNECT")
      return rs[0].status == 501 ? std::string() : "CONNECT: expected 501, got " + describe();
    return compare_echo(k, rs[0], k.messages.at(0), host_added.at(0));
  }
  // ok and closed: one echo per message, then the sentinel unless the connection closes.
  std::size_t answered = k.messages.size();
  for (std::size_t i = 0; i < k.messages.size(); ++i)
    if (!keeps_alive(k.messages[i])) {
      answered = i + 1;
      break;
    }
  const bool want_sentinel = answered == k.messages.size() && keeps_alive(k.messages.back());
  if (rs.size() != answered + (want_sentinel ? 1 : 0)) return "expected " + std::to_string(answered) + (want_sentinel ? "+sentinel" : "") + ", got " + describe();
  for (std::size_t i = 0; i < answered; ++i)
    if (auto why = compare_echo(k, rs[i], k.messages[i], host_added[i]); !why.empty())
      return "message " + std::to_string(i) + ": " + why;
  if (want_sentinel && !is_sentinel(rs.back())) return "last response is not the sentinel";
  return {};
}

}  // namespace

TEST_CASE("http conformance: llhttp request fixtures, whole and byte by byte", "[http][conformance]") {
  const auto path = corpus_path();
  if (path.empty() || !std::filesystem::exists(path)) {
    WARN("conformance corpus not found (" << path << "): skipped");
    return;
  }
  const auto cases = load_cases(path);
  REQUIRE(cases.size() > 100);

  const std::string mode = GENERATE(as<std::string>{}, "base", "process");
  server_under_test srv(http::server_keys(mode), http::echo_listener());
  INFO("mode " << mode);

  std::size_t passed = 0, total = 0, deviating = 0;
  std::set<int> still_buggy;
  for (const auto& k : cases) {
    for (bool bytewise : {false, true}) {
      ++total;
      auto why = run_case(srv.port, k, bytewise);
      INFO("case " << k.id << " (" << k.verdict << ", " << (bytewise ? "byte by byte" : "whole") << "): " << k.title);
      INFO("request: " << json(k.raw).dump(-1, ' ', false, json::error_handler_t::replace));
      INFO("server: " << why);
      if (auto dev = kDeviations.find(k.id); dev != kDeviations.end()) {
        ++deviating;
        if (why.empty()) WARN("known deviation no longer happens: " << dev->second.why);
        else if (dev->second.server_bug) still_buggy.insert(k.id);
        continue;
      }
      CHECK(why == "");
      if (why.empty()) ++passed;
    }
  }
  for (int id : still_buggy) WARN("server bug (case " << id << "): " << kDeviations.at(id).why);
  WARN("conformance (" << mode << "): " << passed << " of " << total - deviating << " runs passed, "
                       << deviating << " runs of " << kDeviations.size() << " known deviations ("
                       << cases.size() << " cases x whole/byte by byte)");
  srv.stop_and_check();
}
