#include "swactor/core/timers.hpp"

#include <algorithm>

namespace swactor {

timer_id timers::add(milliseconds interval, bool repeating, callback fn) {
  if (interval < milliseconds(1)) interval = milliseconds(1);  // 1 ms resolution
  auto id = next_id_++;
  auto due = now() + interval;
  entries_.emplace(id, entry{interval, repeating, 0, due, std::move(fn)});
  heap_.push({due, id});
  ++stats_.created;
  arm();
  return id;
}

bool timers::clear(timer_id id) {
  // The heap item stays behind and is skipped when it surfaces.
  return entries_.erase(id) != 0;
}

void timers::clear_all() {
  entries_.clear();
  heap_ = {};
  if (armed_) {
    timer_.cancel();
    armed_ = false;
  }
}

std::optional<timer_info> timers::info(timer_id id) const {
  auto it = entries_.find(id);
  if (it == entries_.end()) return std::nullopt;
  const auto& e = it->second;
  auto left = std::chrono::duration_cast<milliseconds>(e.due - now());
  return timer_info{id, e.interval, e.repeating, e.exec_count, e.due,
                    std::max(left, milliseconds(0))};
}

std::vector<timer_id> timers::list() const {
  std::vector<timer_id> ids;
  ids.reserve(entries_.size());
  for (const auto& [id, e] : entries_) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  return ids;
}

timer_stats timers::stats() const {
  auto s = stats_;
  s.count = entries_.size();
  return s;
}

void timers::arm() {
  // Drop cleared entries from the top so we never wake up for nothing.
  while (!heap_.empty()) {
    auto it = entries_.find(heap_.top().id);
    if (it != entries_.end() && it->second.due == heap_.top().due) break;
    heap_.pop();
  }
  if (heap_.empty() || manual_) {  // manual clock: advance() runs what is due
    if (armed_) {
      timer_.cancel();
      armed_ = false;
    }
    return;
  }
  auto due = heap_.top().due;
  if (armed_ && armed_due_ <= due) return;
  armed_ = true;
  armed_due_ = due;
  timer_.expires_at(due);
  timer_.async_wait([this](std::error_code ec) {
    if (ec == asio::error::operation_aborted) return;
    armed_ = false;
    fire(std::chrono::steady_clock::now());
  });
}

void timers::use_manual_clock() {
  if (manual_) return;
  manual_now_ = std::chrono::steady_clock::now();
  manual_ = true;
  arm();  // cancels the asio timer
}

std::uint64_t timers::advance(milliseconds d) {
  if (!manual_) return 0;
  const auto before = stats_.fired;
  const auto target = manual_now_ + std::max(d, milliseconds(0));
  for (;;) {
    // Step to the earliest live entry, so entries run in due order and a tick sees each of
    // its due times (fire() reschedules it one interval on).
    arm();  // drops cleared entries from the top of the heap
    if (heap_.empty() || heap_.top().due > target) break;
    manual_now_ = std::max(manual_now_, heap_.top().due);
    fire(manual_now_);
    // Coroutines spawned by the callbacks run until they suspend.
    if (ctx_.stopped()) ctx_.restart();
    ctx_.poll();
  }
  manual_now_ = target;
  return stats_.fired - before;
}

void timers::fire(std::chrono::steady_clock::time_point now) {  // now: the clock entries follow
  ++stats_.rounds;
  while (!heap_.empty() && heap_.top().due <= now) {
    auto item = heap_.top();
    heap_.pop();
    auto it = entries_.find(item.id);
    if (it == entries_.end() || it->second.due != item.due) continue;  // cleared or stale
    auto& e = it->second;
    ++e.exec_count;
    ++stats_.fired;
    if (e.repeating) {
      // Keep the cadence; if we fell behind by more than one interval, do not burst.
      e.due += e.interval;
      if (e.due <= now) e.due = now + e.interval;
      heap_.push({e.due, item.id});
      // Move the callback out while it runs: it may clear its own timer.
      auto fn = std::move(e.fn);
      fn(item.id);
      if (auto again = entries_.find(item.id); again != entries_.end()) again->second.fn = std::move(fn);
    } else {
      auto fn = std::move(e.fn);
      entries_.erase(it);
      fn(item.id);
    }
  }
  arm();
}

}  // namespace swactor
