#pragma once
// Listener URLs (tcp://, udp://, unix://, unixgram://) and the framing options of a listener.

#include <cstdint>
#include <string>

#include "swactor/actors/app_config.hpp"
#include "swactor/protocols/framing.hpp"

namespace swactor {

enum class listen_kind { tcp, udp, unix_stream, unix_dgram };

struct listen_url {
  listen_kind kind = listen_kind::tcp;
  std::string host;  // tcp/udp: address literal ("127.0.0.1", "::1", "0.0.0.0", "localhost")
  std::uint16_t port = 0;
  std::string path;  // unix
  std::string error_text;  // set when parsing failed
  explicit operator bool() const noexcept { return error_text.empty(); }
  bool stream() const noexcept { return kind == listen_kind::tcp || kind == listen_kind::unix_stream; }
};

listen_url parse_listen_url(const std::string& url);

// "\r\n" escapes in the delimiter are decoded here.
protocols::framing_options to_framing_options(const framing_config& f);
std::string unescape(const std::string& s);

}  // namespace swactor
