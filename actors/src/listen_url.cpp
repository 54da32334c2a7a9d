#include "swactor/actors/listen_url.hpp"

#include <charconv>

namespace swactor {

listen_url parse_listen_url(const std::string& url) {
  listen_url out;
  auto scheme_end = url.find("://");
  if (scheme_end == std::string::npos) {
    out.error_text = "expected SCHEME://ADDRESS with scheme tcp, tls, udp, unix, unixgram, http, https, http+unix, ws, wss, ws+unix, redis or redis+unix, got \"" + url + "\"";
    return out;
  }
  auto scheme = url.substr(0, scheme_end);
  auto rest = url.substr(scheme_end + 3);
  // https://, wss:// and tls:// are http://, ws:// and tcp:// over TLS.
  if (scheme == "https" || scheme == "wss" || scheme == "tls") {
    out.tls = true;
    scheme = scheme == "https" ? "http" : scheme == "wss" ? "ws" : "tcp";
  }
  // http:// and http+unix:// are tcp:// and unix:// speaking HTTP; ws:// and ws+unix:// are
  // the same with WebSocket upgrades on.
  if (scheme == "http" || scheme == "http+unix" || scheme == "ws" || scheme == "ws+unix") {
    out.protocol = listen_protocol::http;
    out.websocket = scheme.starts_with("ws");
    scheme = scheme == "http" || scheme == "ws" ? "tcp" : "unix";
    // An http URL may end in "/" (http://127.0.0.1:8080/); nothing else after the port.
    if (out.protocol == listen_protocol::http && scheme == "tcp" && !rest.empty() && rest.back() == '/')
      rest.pop_back();
  }
  if (scheme == "redis" || scheme == "redis+unix") {
    out.protocol = listen_protocol::redis;
    scheme = scheme == "redis" ? "tcp" : "unix";
  }
  if (scheme == "unix" || scheme == "unixgram") {
    out.kind = scheme == "unix" ? listen_kind::unix_stream : listen_kind::unix_dgram;
    if (rest.empty() || rest[0] != '/') {
      out.error_text = "expected an absolute path after " + scheme + "://, as in " + scheme + ":///tmp/app.sock";
      return out;
    }
    if (rest.size() >= 108) {
      out.error_text = "unix socket path longer than 107 bytes";
      return out;
    }
    out.path = rest;
    return out;
  }
  if (scheme != "tcp" && scheme != "udp") {
    out.error_text = "unknown scheme \"" + scheme + "\"; expected tcp, tls, udp, unix, unixgram, http, https, http+unix, ws, wss, ws+unix, redis or redis+unix";
    return out;
  }
  out.kind = scheme == "tcp" ? listen_kind::tcp : listen_kind::udp;
  std::string host, port;
  if (!rest.empty() && rest[0] == '[') {
    auto close = rest.find(']');
    if (close == std::string::npos || close + 1 >= rest.size() || rest[close + 1] != ':') {
      out.error_text = "expected [IPv6]:PORT, got \"" + rest + "\"";
      return out;
    }
    host = rest.substr(1, close - 1);
    port = rest.substr(close + 2);
  } else {
    auto colon = rest.rfind(':');
    if (colon == std::string::npos) {
      out.error_text = "expected HOST:PORT, got \"" + rest + "\"";
      return out;
    }
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  unsigned p = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (ec != std::errc{} || ptr != port.data() + port.size() || p > 65535 || host.empty()) {
    out.error_text = "expected HOST:PORT with a port 0-65535, got \"" + rest + "\"";
    return out;
  }
  out.host = host == "localhost" ? "127.0.0.1" : host;
  out.port = static_cast<std::uint16_t>(p);
  return out;
}

std::string unescape(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 >= s.size()) {
      out += s[i];
      continue;
    }
    char c = s[++i];
    switch (c) {
      case 'r': out += '\r'; break;
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case '0': out += '\0'; break;
      case '\\': out += '\\'; break;
      case 'x':
        if (i + 2 < s.size()) {
          unsigned v = 0;
          auto r = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
          if (r.ec == std::errc{} && r.ptr == s.data() + i + 3) {
            out += static_cast<char>(v);
            i += 2;
            break;
          }
        }
        out += "\\x";
        break;
      default: out += '\\'; out += c;
    }
  }
  return out;
}

protocols::framing_options to_framing_options(const framing_config& f) {
  protocols::framing_options o;
  o.type = f.type == "eof"      ? protocols::framing_type::eof
           : f.type == "length" ? protocols::framing_type::length
                                : protocols::framing_type::raw;
  o.eof = unescape(f.delimiter);
  o.length_size = static_cast<std::size_t>(f.length_size);
  o.length_signed = f.is_signed;
  o.length_order = f.big_endian ? protocols::byte_order::big : protocols::byte_order::little;
  o.length_offset = static_cast<std::size_t>(f.length_offset);
  o.body_offset = static_cast<std::size_t>(f.body_offset);
  o.max_length = f.max_length;
  return o;
}

}  // namespace swactor
