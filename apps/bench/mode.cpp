#include "mode.hpp"

#include <array>

namespace swactor::bench {

// -- the mode table: one line per mode --------------------------------------------------

std::unique_ptr<mode> make_long_tcp_mode(const settings&);
std::unique_ptr<mode> make_short_tcp_mode(const settings&);
std::unique_ptr<mode> make_udp_mode(const settings&);
std::unique_ptr<mode> make_unix_mode(const settings&);
std::unique_ptr<mode> make_eof_mode(const settings&);
std::unique_ptr<mode> make_length_mode(const settings&);
std::unique_ptr<mode> make_connect_mode(const settings&);

namespace {
struct entry {
  mode_info info;
  std::unique_ptr<mode> (*make)(const settings&);
};

const entry table[] = {
    {{"long_tcp", "persistent connections, request/response (raw echo)"}, make_long_tcp_mode},
    {{"short_tcp", "connect, one exchange, close"}, make_short_tcp_mode},
    {{"udp", "datagram request/response (udp://)"}, make_udp_mode},
    {{"unix", "persistent Unix stream connections (unix:///path)"}, make_unix_mode},
    {{"eof", "messages ending with --eof DELIM"}, make_eof_mode},
    {{"length", "length-prefixed messages (--length-size/-offset, --body-offset)"},
     make_length_mode},
    {{"connect", "connection rate only: connect and close"}, make_connect_mode},
};
}  // namespace

std::unique_ptr<mode> make_mode(const settings& s) {
  for (const auto& e : table)
    if (e.info.name == s.mode) return e.make(s);
  return nullptr;
}

std::vector<mode_info> mode_list() {
  std::vector<mode_info> out;
  for (const auto& e : table) out.push_back(e.info);
  return out;
}

// -- payloads ---------------------------------------------------------------------------

bool fill_payload(std::string& out, std::size_t n, std::uint64_t conn, std::uint64_t seq,
                  std::string_view avoid) {
  static constexpr std::string_view all =
      "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  std::array<char, all.size()> alphabet{};
  std::size_t a = 0;
  for (char c : all)
    if (avoid.find(c) == std::string_view::npos) alphabet[a++] = c;
  out.resize(n);
  if (a == 0) return false;
  // The first bytes spell seq then conn in base a; the rest is a pattern shifted by both,
  // so payloads differ everywhere and a corrupted byte anywhere is detected.
  std::size_t i = 0;
  for (std::uint64_t v = seq; i < n && i < 8; ++i, v /= a) out[i] = alphabet[v % a];
  for (std::uint64_t v = conn; i < n && i < 12; ++i, v /= a) out[i] = alphabet[v % a];
  const std::uint64_t shift = seq * 7 + conn * 13;
  for (; i < n; ++i) out[i] = alphabet[(shift + i) % a];
  return true;
}

}  // namespace swactor::bench
