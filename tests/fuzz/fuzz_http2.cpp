// libFuzzer target for the HTTP/2 server codec (nghttp2 parses; this checks our callbacks and
// stream bookkeeping). Input: 1 option byte, then the client's bytes after the preface:
//   0 bits 0-2: feed step (0 = all at once, else 1 << n bytes), bit 3: the sink refuses every
//     other event (look-ahead stops), bit 4: reply before the request ends, bit 5: streamed
//     replies with trailers, bit 6: handlers take no body (request windows stay shut)
// Body events are reported taken (consumed()) after each decode, and so is a made-up amount
// for a stream that may be closed, unknown or even: the codec must ignore what it cannot use.
// Every request event is answered (whole, or head/body/end with trailers) as soon as it
// arrives; the stream ids it names must be odd and the codec's counters consistent: held()
// never exceeds what was handed to it, outstanding() never exceeds the requests emitted.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "swactor/protocols/http1.hpp"
#include "swactor/protocols/http2.hpp"

namespace h1 = swactor::protocols::http1;
namespace h2 = swactor::protocols::http2;

namespace {
void check(bool ok) {
  if (!ok) std::abort();
}

struct run final : swactor::protocols::event_sink {
  bool refuse_some = false;
  std::size_t seen = 0, requests = 0;
  std::vector<std::uint32_t> to_answer;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> taken;  // body events: stream, bytes
  bool on_event(const swactor::protocols::event& e) override {
    std::string_view d = e.data;
    std::uint32_t id = 0;
    check(h2::is_event_kind(e.kind));
    check(h2::take_stream(d, id));
    check(id % 2 == 1);
    if (e.kind == static_cast<std::uint8_t>(h2::ev::request)) {
      h1::request_head h;
      check(h.decode(d));
      check(h.version_minor == 2);
      ++requests;
      to_answer.push_back(id);
    } else if (e.kind == static_cast<std::uint8_t>(h2::ev::body)) {
      taken.emplace_back(id, static_cast<std::uint32_t>(d.size()));
    }
    return !refuse_some || (++seen % 2) != 0;
  }
};

std::string with_stream(std::uint32_t id, std::string_view payload) {
  std::string s;
  h2::put_stream(s, id);
  s.append(payload);
  return s;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t opt = data[0];
  std::string stream(h2::kPreface);
  stream.append(reinterpret_cast<const char*>(data + 1), size - 1);
  const std::size_t step = (opt & 7) ? std::size_t(1) << (opt & 7) : stream.size();
  h2::options o;
  o.max_concurrent_streams = 8;
  o.body_chunk_size = 64;
  auto c = h2::make_server_codec(o);
  run r;
  r.refuse_some = opt & 8;
  std::string pending, out;
  std::size_t handed = 0;
  for (std::size_t at = 0; at < stream.size() || c->holds_events();) {
    auto n = std::min(step, stream.size() - at);
    pending.append(stream, at, n);
    at += n;
    auto used = c->decode(pending, r);
    check(used <= pending.size());
    pending.erase(0, used);
    if (!(opt & 64))
      for (auto [id, bytes] : r.taken) c->consumed(id, bytes);
    if (!r.taken.empty()) c->consumed(r.taken.back().first + (opt & 1), 1u << 20);
    r.taken.clear();
    for (auto id : r.to_answer) {
      h1::response_head h;
      h.status = 200;
      h.headers.add("X-Test", "1");
      if (opt & 32) {
        c->encode(static_cast<std::uint8_t>(h1::out::head), with_stream(id, h.encode()), out);
        c->encode(static_cast<std::uint8_t>(h1::out::body), with_stream(id, std::string(100, 'b')), out);
        h1::header_list t;
        t.add("grpc-status", "0");
        c->encode(static_cast<std::uint8_t>(h1::out::end), with_stream(id, t.encode()), out);
      } else {
        c->encode(static_cast<std::uint8_t>(h1::out::whole), with_stream(id, h.encode() + "hello"), out);
      }
      handed += 105;
    }
    r.to_answer.clear();
    c->take_output(out);
    out.clear();
    check(c->held() <= handed);
    // Requests held back for a sink that asked to stop count already (not yet handed over).
    if (!c->holds_events()) check(c->outstanding() <= r.requests);
    if (c->failed() || c->done()) break;
    if (n == 0 && used == 0 && !c->holds_events()) break;
  }
  std::string bye;
  c->go_away(bye);
  c->abandon(bye);
  return 0;
}
