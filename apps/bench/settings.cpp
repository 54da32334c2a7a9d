#include "settings.hpp"

#include <cctype>
#include <cstdio>
#include <cstdlib>

#include <nlohmann/json.hpp>

namespace swactor::bench {

std::string parse_url(const std::string& url, target& out) {
  out = target{};
  out.url = url;
  auto sep = url.find("://");
  if (sep == std::string::npos)
    return "URL needs a scheme (tcp://, udp://, unix://, http://, https://, h2c://, http+unix://, "
           "redis://, ws://): " + url;
  const std::string sch = url.substr(0, sep);
  std::string rest = url.substr(sep + 3);
  if (sch == "http+unix") {
    out.http = true;
    out.kind = scheme::unix_stream;
    if (rest.empty() || rest[0] != '/')
      return "http+unix URL needs an absolute socket path (http+unix:///path): " + url;
    out.path = rest;
    return {};
  }
  if (sch == "unix") {
    out.kind = scheme::unix_stream;
    if (rest.empty() || rest[0] != '/') return "unix URL needs an absolute path (unix:///path): " + url;
    out.path = rest;
    return {};
  }
  if (sch == "tcp")
    out.kind = scheme::tcp;
  else if (sch == "udp")
    out.kind = scheme::udp;
  else if (sch == "http")
    out.http = true;
  else if (sch == "https")
    out.http = out.tls = true;
  else if (sch == "h2c")
    out.http = out.h2c = true;
  else if (sch == "redis")
    out.redis = true;
  else if (sch == "ws")
    out.websocket = true;
  else if (sch == "wss")
    return "wss:// (TLS) is not supported; use ws://: " + url;
  else
    return "unknown URL scheme '" + sch + "' (tcp, udp, unix, http, https, h2c, http+unix, redis, ws): " + url;
  if (out.redis) {
    // No user, password or database: the bench sends commands, not AUTH or SELECT.
    if (rest.find('@') != std::string::npos)
      return "redis URL: credentials are not supported: " + url;
    if (auto slash = rest.find('/'); slash != std::string::npos) {
      if (slash + 1 != rest.size()) return "redis URL: database selection is not supported: " + url;
      rest.resize(slash);
    }
    const auto bracket = rest.rfind(']');
    const auto colon = rest.rfind(':');
    if (colon == std::string::npos || (bracket != std::string::npos && colon < bracket))
      rest += ":6379";
  }
  if (out.http || out.websocket) {
    // The authority ends at the path; the port is optional.
    if (auto slash = rest.find('/'); slash != std::string::npos) {
      out.http_path = rest.substr(slash);
      rest.resize(slash);
    }
    const auto bracket = rest.rfind(']');
    const auto colon = rest.rfind(':');
    if (colon == std::string::npos || (bracket != std::string::npos && colon < bracket))
      rest += out.tls ? ":443" : ":80";
  }
  std::string host, port;
  if (!rest.empty() && rest[0] == '[') {
    auto close = rest.find(']');
    if (close == std::string::npos || close + 1 >= rest.size() || rest[close + 1] != ':')
      return "bad address in " + url;
    host = rest.substr(1, close - 1);
    port = rest.substr(close + 2);
  } else {
    auto colon = rest.rfind(':');
    if (colon == std::string::npos) return "URL needs a port: " + url;
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  if (!port.empty() && port.back() == '/') port.pop_back();
  if (host.empty()) return "URL needs a host: " + url;
  char* end = nullptr;
  long p = std::strtol(port.c_str(), &end, 10);
  if (port.empty() || *end != '\0' || p < 1 || p > 65535) return "bad port in " + url;
  out.host = host;
  out.port = static_cast<std::uint16_t>(p);
  return {};
}

bool unescape(const std::string& in, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '\\') {
      out += in[i];
      continue;
    }
    if (++i >= in.size()) return false;
    switch (in[i]) {
      case 'r': out += '\r'; break;
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case '0': out += '\0'; break;
      case '\\': out += '\\'; break;
      case 'x': {
        if (i + 2 >= in.size()) return false;
        if (!std::isxdigit(static_cast<unsigned char>(in[i + 1])) ||
            !std::isxdigit(static_cast<unsigned char>(in[i + 2])))
          return false;
        out += static_cast<char>(std::strtol(in.substr(i + 1, 2).c_str(), nullptr, 16));
        i += 2;
        break;
      }
      default: return false;
    }
  }
  return true;
}

std::string escape(const std::string& in) {
  std::string out;
  for (unsigned char c : in) {
    switch (c) {
      case '\r': out += "\\r"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\\': out += "\\\\"; break;
      default:
        if (std::isprint(c)) {
          out += static_cast<char>(c);
        } else {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", c);
          out += buf;
        }
    }
  }
  return out;
}

std::string websocket_path(const settings& s) {
  return s.server.http_path.empty() ? std::string("/") : s.server.http_path;
}

std::string http_path(const settings& s) {
  if (!s.http.path.empty()) return s.http.path;
  return s.server.http_path.empty() ? std::string("/") : s.server.http_path;
}

nlohmann::json to_json(const settings& s) {
  nlohmann::json j = {
      {"url", s.server.url},
      {"mode", s.mode},
      {"requests", s.requests},
      {"duration_s", std::chrono::duration<double>(s.duration).count()},
      {"connections", s.connections},
      {"threads", s.threads},
      {"size", s.size},
      {"pipeline", s.pipeline},
      {"rate", s.rate},
      {"verify", s.verify},
      {"timeout_s", std::chrono::duration<double>(s.timeout).count()},
  };
  if (s.mode == "eof") j["eof"] = escape(s.frame.eof);
  if (s.mode == "length") {
    j["length"] = {{"size", s.frame.length_size},
                   {"offset", s.frame.length_offset},
                   {"body_offset", s.frame.body_offset},
                   {"big_endian", s.frame.length_order == protocols::byte_order::big},
                   {"signed", s.frame.length_signed}};
  }
  if (s.mode == "eof" || s.mode == "length") j["max_length"] = s.frame.max_length;
  if (s.mode == "http" || s.mode == "http_short" || s.mode == "h2") {
    nlohmann::json h = {{"method", s.http.method},
                        {"path", http_path(s)},
                        {"headers", s.http.headers}};
    if (s.http.body) h["body_size"] = s.http.body->size();
    if (s.http.verify_body) h["verify_body"] = *s.http.verify_body;
    j["http"] = std::move(h);
  }
  if (s.mode == "websocket" || s.mode == "websocket_connect")
    j["websocket"] = {{"path", websocket_path(s)}, {"deflate", s.deflate}};
  if (s.mode == "redis")
    j["redis"] = {{"mix", s.redis.mix},
                  {"keyspace", s.redis.keyspace},
                  {"value_size", s.redis.value_size}};
  return j;
}

}  // namespace swactor::bench
