#pragma once
// Strings that many connections share (the address a listener was reached at, a WebSocket's
// upgrade target): each holder keeps a pointer to one counted copy rather than a string of
// its own, which is a good part of what an idle connection costs. The last release frees it.

#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>

namespace swactor::detail {

class string_pool {
 public:
  // The pool's copy of `s`, stable until its last release; null for "" (nothing to share).
  const std::string* acquire(std::string s) {
    if (s.empty()) return nullptr;
    auto& e = *refs_.try_emplace(std::move(s), 0).first;
    ++e.second;
    return &e.first;
  }
  // Once per acquire (null: no-op).
  void release(const std::string* s) {
    if (!s) return;
    auto it = refs_.find(*s);
    if (--it->second == 0) refs_.erase(it);
  }
  static std::string_view view(const std::string* s) noexcept { return s ? std::string_view(*s) : std::string_view(); }
  std::size_t size() const noexcept { return refs_.size(); }

 private:
  std::unordered_map<std::string, std::size_t> refs_;
};

}  // namespace swactor::detail
