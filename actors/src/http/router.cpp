#include "http/router.hpp"

#include <algorithm>

namespace swactor::detail {

route_result match_route(const listen_config& lc, std::string_view path, std::string_view method) {
  route_result r;
  if (lc.routes.empty()) {
    r.module = lc.module_index;
    if (r.module < 0) r.status = 404;
    return r;
  }
  // The best path first: exact, else the longest matching prefix.
  const route_config* best = nullptr;
  for (const auto& rc : lc.routes) {
    bool hit = rc.exact ? path == rc.match : path.starts_with(rc.match);
    if (!hit) continue;
    if (!best || (rc.exact && !best->exact) || (rc.exact == best->exact && rc.match.size() > best->match.size()))
      best = &rc;
  }
  if (!best) {
    r.status = 404;
    return r;
  }
  // Every entry with that path, in file order: the first that takes the method.
  std::vector<std::string_view> allow;
  for (std::size_t i = 0; i < lc.routes.size(); ++i) {
    const auto& rc = lc.routes[i];
    if (&rc != best && rc.path != best->path) continue;
    if (rc.methods.empty() || std::find(rc.methods.begin(), rc.methods.end(), method) != rc.methods.end()) {
      r.module = rc.module_index;
      r.route = static_cast<int>(i);
      return r;
    }
    for (auto& m : rc.methods)
      if (std::find(allow.begin(), allow.end(), m) == allow.end()) allow.push_back(m);
  }
  r.status = 405;
  for (auto m : allow) {
    if (!r.allow.empty()) r.allow += ", ";
    r.allow += m;
  }
  return r;
}

}  // namespace swactor::detail
