// libFuzzer target for the HTTP/1 server codec and the request_head wire form.
// Input: byte 0 picks the split point (as a fraction of the rest); the rest is the stream.
// Checks: feeding whole and in two pieces agrees (events with body pieces joined, failure,
// output); every request
// event decodes; no body event is empty or above body_chunk_size; consumption never exceeds
// the input; a failed codec is done and has said why. The input is also decoded as a
// request_head, and a head that decodes must re-encode to the same bytes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "swactor/protocols/http1.hpp"

using namespace swactor::protocols;

namespace {
void check(bool ok) {
  if (!ok) std::abort();
}

struct collector final : event_sink {
  std::vector<std::pair<std::uint8_t, std::string>> events;
  bool on_event(const event& e) override {
    events.emplace_back(e.kind, std::string(e.data));
    return true;
  }
  // Body piece boundaries follow the reads: compare the bytes, not the pieces.
  void merge_bodies(std::size_t from) {
    std::vector<std::pair<std::uint8_t, std::string>> merged(events.begin(), events.begin() + from);
    for (std::size_t i = from; i < events.size(); ++i) {
      if (events[i].first == std::uint8_t(http1::ev::body) && !merged.empty() &&
          merged.back().first == std::uint8_t(http1::ev::body))
        merged.back().second += events[i].second;
      else
        merged.push_back(std::move(events[i]));
    }
    events = std::move(merged);
  }
};

struct outcome {
  std::vector<std::pair<std::uint8_t, std::string>> events;
  bool failed = false;
  std::string output;
};

outcome feed(std::string_view stream, std::size_t split, const http1::options& o) {
  auto codec = http1::make_server_codec(o);
  collector sink;
  outcome r;
  std::string pending;
  for (auto part : {stream.substr(0, split), stream.substr(split)}) {
    pending.append(part);
    for (int round = 0; round < 64; ++round) {
      std::size_t before = sink.events.size();
      std::size_t used = codec->decode(pending, sink);
      check(used <= pending.size());
      pending.erase(0, used);
      codec->take_output(r.output);
      // Answer what arrived so pipelining never blocks.
      for (std::size_t i = before; i < sink.events.size(); ++i) {
        auto& [kind, data] = sink.events[i];
        if (kind == std::uint8_t(http1::ev::request)) {
          http1::request_head h;
          check(h.decode(data));
          if (h.complete) codec->encode(std::uint8_t(http1::out::whole), http1::response_head{}.encode(), r.output);
        } else if (kind == std::uint8_t(http1::ev::body)) {
          check(!data.empty() && data.size() <= o.body_chunk_size);
        } else if (kind == std::uint8_t(http1::ev::end)) {
          http1::header_list t;
          std::string_view v(data);
          check(t.decode_from(v) && v.empty());
          codec->encode(std::uint8_t(http1::out::whole), http1::response_head{}.encode(), r.output);
        }
      }
      const bool progress = sink.events.size() != before;
      sink.merge_bodies(before ? before - 1 : 0);
      if (!progress || pending.empty() || codec->done()) break;
    }
  }
  // The codec dates its responses from the clock: a second may pass between two feeds.
  for (std::size_t at = 0; (at = r.output.find("\r\nDate: ", at)) != std::string::npos; at += 9)
    r.output.replace(at + 9, std::min<std::size_t>(29, r.output.size() - at - 9), "-");
  r.failed = codec->failed();
  if (r.failed) check(!codec->reason().empty() && codec->done());
  r.events = std::move(sink.events);
  std::string tail;
  (void)codec->expire(tail);
  return r;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  std::string_view stream(reinterpret_cast<const char*>(data + 1), size - 1);
  const std::size_t split = stream.size() * data[0] / 256;

  http1::request_head h;
  if (h.decode(stream)) check(h.encode() == stream);

  http1::options o;
  o.body_chunk_size = 64;
  o.max_header_size = 2048;
  auto whole = feed(stream, stream.size(), o);
  auto pieces = feed(stream, split, o);
  check(whole.failed == pieces.failed);
  check(whole.events == pieces.events);
  check(whole.output == pieces.output);
  return 0;
}
