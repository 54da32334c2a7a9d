#pragma once
// Which module answers a request on an HTTP listener: a pure function of the listener's
// resolved routes, the normalized path and the method (unit-tested and fuzzed alone).
//
// The best entry by path wins: an exact entry ("=/healthz") over any prefix, then the
// longest prefix. Entries with that same path may split the methods between them; when
// none of them takes the method the answer is 405 with Allow (their methods). No entry
// by path: 404. A listener with `module` instead of routes sends everything there.

#include <string>
#include <string_view>

#include "swactor/actors/app_config.hpp"

namespace swactor::detail {

struct route_result {
  int status = 0;       // 0 = routed, else 404 or 405
  int module = -1;      // module instance index when routed
  int route = -1;       // index into routes (-1 for a listener-wide module)
  std::string allow;    // 405: "GET, HEAD"
};

route_result match_route(const listen_config& lc, std::string_view path, std::string_view method);

}  // namespace swactor::detail
