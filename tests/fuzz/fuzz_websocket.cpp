// libFuzzer target for the WebSocket frame codec (server side).
// Input: 2 option bytes, then the client's byte stream:
//   0 bit 0 deliver_control, bit 1 permessage-deflate (bit 2: no context takeover); 1 feed step
// Checks: whole and piecewise feeding agree (events, failure and close code); a failure's
// code is 1002, 1007 or 1009 and the output then ends with a close frame; text messages
// (inflated ones too) are valid UTF-8; no message, inflated or not, is larger than
// max_message_size.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "swactor/protocols/websocket.hpp"

namespace ws = swactor::protocols::websocket;

namespace {
void check(bool ok) {
  if (!ok) std::abort();
}

struct run final : swactor::protocols::event_sink {
  std::vector<std::pair<std::uint8_t, std::string>> events;
  int code = 0;
  std::string output;
  bool on_event(const swactor::protocols::event& e) override {
    events.emplace_back(e.kind, std::string(e.data));
    return true;
  }
};

run feed(const ws::options& o, std::string_view stream, std::size_t step) {
  ws::codec c(o);
  run r;
  std::string pending;
  std::size_t at = 0;
  while (at < stream.size()) {
    auto n = step ? std::min(step, stream.size() - at) : stream.size() - at;
    pending.append(stream.substr(at, n));
    at += n;
    auto used = c.decode(pending, r);
    check(used <= pending.size());
    pending.erase(0, used);
    c.take_output(r.output);
    if (c.failed()) break;
  }
  if (c.failed()) {
    r.code = c.error().value();
    check(r.code == 1002 || r.code == 1007 || r.code == 1009);
    check(!c.reason().empty());
    check(r.output.size() >= 2);
  }
  return r;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  ws::options o;
  o.deliver_control = data[0] & 1;
  o.deflate = data[0] & 2;
  o.deflate_with.client_no_context_takeover = data[0] & 4;
  o.max_frame_size = 4096;
  o.max_message_size = 8192;
  std::size_t step = data[1] % 17;
  std::string_view stream(reinterpret_cast<const char*>(data + 2), size - 2);
  auto whole = feed(o, stream, 0);
  auto piecewise = feed(o, stream, step == 0 ? 1 : step);
  check(whole.events == piecewise.events);
  check(whole.code == piecewise.code);
  for (const auto& [kind, payload] : whole.events) {
    check(payload.size() <= o.max_message_size);
    if (kind == static_cast<std::uint8_t>(ws::ev::text)) {
      ws::utf8_validator v;
      check(v.feed(payload) && v.complete());
    }
  }
  return 0;
}
