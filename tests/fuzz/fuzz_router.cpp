// libFuzzer target for HTTP routing and path normalization.
// Input: byte 0 = route count (% 8); per route one flag byte (bit 0 exact, bits 1-4 methods
// GET HEAD POST PUT, none = every method) and a path up to '\n'; then one byte picking the
// method and the rest is the raw request path.
// Checks: remove_dot_segments gives an absolute path without "." or ".." segments; a routed
// request goes to an entry that matches and takes the method, and no entry matches better
// by path; 405 lists methods, none of them the request's; 404 means no entry matches.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "http/router.hpp"
#include "swactor/actors/http.hpp"

using namespace swactor;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

constexpr std::string_view kMethods[] = {"GET", "HEAD", "POST", "PUT"};

bool matches(const route_config& rc, std::string_view path) {
  return rc.exact ? path == rc.match : path.starts_with(rc.match);
}

// Strictly better by path: exact over prefix, then longer prefix.
bool better(const route_config& a, const route_config& b) {
  if (a.exact != b.exact) return a.exact;
  return !a.exact && a.match.size() > b.match.size();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  if (in.empty()) return 0;
  listen_config lc;
  int count = static_cast<std::uint8_t>(in[0]) % 8;
  in.remove_prefix(1);
  for (int i = 0; i < count && !in.empty(); ++i) {
    auto flags = static_cast<std::uint8_t>(in[0]);
    in.remove_prefix(1);
    auto nl = in.find('\n');
    route_config rc;
    rc.exact = flags & 1;
    rc.match = "/" + std::string(in.substr(0, nl));
    rc.path = (rc.exact ? "=" : "") + rc.match;
    rc.module_index = i;
    for (int m = 0; m < 4; ++m)
      if (flags & (2 << m)) rc.methods.emplace_back(kMethods[m]);
    lc.routes.push_back(std::move(rc));
    in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
  }
  std::string_view method = kMethods[in.empty() ? 0 : static_cast<std::uint8_t>(in[0]) % 4];
  if (!in.empty()) in.remove_prefix(1);

  std::string decoded;
  http::percent_decode(in, decoded, false);
  auto path = http::remove_dot_segments(decoded);
  check(!path.empty() && path[0] == '/');
  check(path.find("/./") == std::string::npos && path.find("/../") == std::string::npos);
  check(!path.ends_with("/.") && !path.ends_with("/.."));

  auto r = detail::match_route(lc, path, method);
  if (lc.routes.empty()) {
    check(r.status == 404);
    return 0;
  }
  if (r.status == 0) {
    check(r.route >= 0 && r.route < static_cast<int>(lc.routes.size()));
    const auto& chosen = lc.routes[static_cast<std::size_t>(r.route)];
    check(matches(chosen, path));
    check(chosen.methods.empty() ||
          std::find(chosen.methods.begin(), chosen.methods.end(), method) != chosen.methods.end());
    for (const auto& rc : lc.routes) check(!(matches(rc, path) && better(rc, chosen)));
  } else if (r.status == 405) {
    check(!r.allow.empty());
    check(r.allow.find(method) == std::string::npos);
  } else {
    check(r.status == 404);
    for (const auto& rc : lc.routes) check(!matches(rc, path));
  }
  return 0;
}
