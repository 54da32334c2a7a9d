// libFuzzer target for the Redis (RESP) server codec, split_multibulk and split_inline.
// Input: byte 0 is the feed step (0 = all at once), byte 1 flags (bit 0: answer HELLO with
// reply_resp3, else reply_resp2); the rest is the client's byte stream. Every command is
// answered after each decode(), so HELLO never blocks for good.
// Checks: whole and piecewise feeding agree (events, failure, output), except that feeding
// in pieces may hit a "too big" limit first (Redis's limits look at what is pending), and
// then its events are a prefix of the whole run's; consumption never exceeds the input;
// every multibulk event splits and starts with '*', every inline event has arguments and
// no line end; the RESP3 flag follows the HELLO answers; a failure says "Protocol error:
// ..." and its "-ERR" line ends the output once everything before it is answered.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "swactor/protocols/redis.hpp"

namespace redis = swactor::protocols::redis;
using swactor::protocols::event;

namespace {
void check(bool ok) {
  if (!ok) std::abort();
}

struct collector final : swactor::protocols::event_sink {
  std::vector<std::pair<std::uint8_t, std::string>> events;
  bool on_event(const event& e) override {
    events.emplace_back(e.kind, std::string(e.data));
    return true;
  }
};

struct outcome {
  std::vector<std::pair<std::uint8_t, std::string>> events;
  bool failed = false;
  std::string reason;
  std::string output;
};

outcome feed(std::string_view stream, std::size_t step, bool hello3, const redis::options& o) {
  auto codec = redis::make_server_codec(o);
  collector sink;
  outcome r;
  std::string pending;
  bool resp3 = false;
  std::size_t at = 0;
  while (at < stream.size() && !codec->failed() && !codec->done()) {
    auto n = step ? std::min(step, stream.size() - at) : stream.size() - at;
    pending.append(stream.substr(at, n));
    at += n;
    for (;;) {
      const std::size_t before = sink.events.size();
      const std::size_t used = codec->decode(pending, sink);
      check(used <= pending.size());
      pending.erase(0, used);
      codec->take_output(r.output);
      for (std::size_t i = before; i < sink.events.size(); ++i) {
        const auto& [kind, data] = sink.events[i];
        check(redis::is_command_kind(kind));
        check(redis::is_resp3_kind(kind) == resp3);
        std::string first;
        if ((kind & ~redis::resp3_flag) == static_cast<std::uint8_t>(redis::ev::command)) {
          std::vector<std::string_view> args;
          check(!data.empty() && data[0] == '*');
          check(redis::split_multibulk(data, args) && !args.empty());
          check(args.size() <= o.max_multibulk_len);
          for (auto a : args) check(a.size() <= o.max_bulk_len);
          first = args[0];
        } else {
          check(data.find('\n') == std::string::npos);
          auto args = redis::split_inline(data);
          check(args && !args->empty());
          first = (*args)[0];
        }
        bool hello = first.size() == 5;
        for (std::size_t k = 0; hello && k < 5; ++k) hello = (first[k] | 0x20) == "hello"[k];
        auto out = redis::out::reply;
        if (hello) {
          out = hello3 ? redis::out::reply_resp3 : redis::out::reply_resp2;
          resp3 = hello3;
          check(i + 1 == sink.events.size());  // nothing is decoded after a HELLO
        }
        std::string reply;
        redis::writer w(reply, resp3 ? 3 : 2);
        w.integer(static_cast<long long>(i));
        codec->encode(static_cast<std::uint8_t>(out), reply, r.output);
        codec->take_output(r.output);
      }
      check(codec->outstanding() == 0);
      check(!codec->blocked() || codec->failed());
      if (sink.events.size() == before || pending.empty() || codec->failed()) break;
    }
  }
  r.failed = codec->failed();
  r.reason = codec->reason();
  if (r.failed) {
    check(codec->done());
    check(r.reason.rfind("Protocol error: ", 0) == 0);
    const std::string last = "-ERR " + r.reason + "\r\n";
    check(r.output.size() >= last.size() &&
          r.output.compare(r.output.size() - last.size(), last.size(), last) == 0);
  }
  r.events = std::move(sink.events);
  return r;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::size_t step = data[0];
  const bool hello3 = data[1] & 1;
  std::string_view stream(reinterpret_cast<const char*>(data + 2), size - 2);

  // Small limits, so that the fuzzer reaches them.
  redis::options o;
  o.max_inline_len = 64;
  o.max_bulk_len = 512;
  o.max_multibulk_len = 16;

  (void)redis::split_inline(stream);
  std::vector<std::string_view> args;
  (void)redis::split_multibulk(stream, args);

  auto whole = feed(stream, 0, hello3, o);
  auto pieces = feed(stream, step ? step : 1, hello3, o);
  if (pieces.failed && pieces.reason.find("too big") != std::string::npos) {
    // A limit on pending bytes depends on how they arrive: pieces may stop earlier.
    check(pieces.events.size() <= whole.events.size());
    for (std::size_t i = 0; i < pieces.events.size(); ++i) check(pieces.events[i] == whole.events[i]);
    if (pieces.events.size() == whole.events.size() && whole.reason == pieces.reason)
      check(whole.output == pieces.output);
    return 0;
  }
  check(whole.failed == pieces.failed);
  check(whole.reason == pieces.reason);
  check(whole.events == pieces.events);
  check(whole.output == pieces.output);
  return 0;
}
