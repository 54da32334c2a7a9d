#pragma once
// Test harness for the HTTP/1 codec: feeds bytes the way the connection does (it keeps
// what decode() did not consume and appends new bytes), collects the events into whole
// messages, and optionally answers each request so pipelining never blocks.

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "swactor/protocols/http1.hpp"

namespace http1_test {

using namespace swactor::protocols;
using namespace swactor::protocols::http1;

struct recorder final : event_sink {
  std::vector<std::pair<std::uint8_t, std::string>> events;
  std::size_t budget = SIZE_MAX;  // return false once this many events were taken
  bool on_event(const event& e) override {
    events.emplace_back(e.kind, std::string(e.data));
    if (budget != SIZE_MAX && budget > 0) --budget;
    return budget != 0;
  }
};

struct result {
  std::vector<request_head> messages;  // body assembled from body events
  std::vector<header_list> trailers;   // per message (empty when none)
  std::vector<bool> streamed;          // the request came as head + body events
  std::string output;                  // codec output: its own responses + our answers
  std::string pending;                 // bytes it left unconsumed
  bool failed = false;
  int error = 0;
  bool done = false;
  std::size_t events = 0;
};

// Status of the first response in `out` (0 when none).
inline int status_of(std::string_view out) {
  if (out.size() < 12 || out.substr(0, 9) != "HTTP/1.1 ") return 0;
  return std::stoi(std::string(out.substr(9, 3)));
}

inline std::string whole(int status, std::string body = {}, header_list h = {}, bool close = false) {
  response_head r;
  r.status = status;
  r.headers = std::move(h);
  r.close = close;
  return r.encode() + body;
}

// Splits: chunk sizes in order (the last repeats); {} = everything at once.
inline result run(const options& o, std::string_view wire, std::vector<std::size_t> chunks = {},
                  bool answer = false) {
  auto codec = make_server_codec(o);
  result res;
  recorder sink;
  std::size_t off = 0, ci = 0;
  request_head cur;
  auto collect = [&] {
    for (auto& [kind, data] : sink.events) {
      ++res.events;
      bool finished = false;
      if (kind == std::uint8_t(ev::request)) {
        request_head h;
        if (!h.decode(data)) throw std::runtime_error("undecodable request event");
        cur = std::move(h);
        finished = cur.complete;
        if (finished) {
          res.trailers.emplace_back();
          res.streamed.push_back(false);
        }
      } else if (kind == std::uint8_t(ev::body)) {
        if (data.empty()) throw std::runtime_error("empty body event");
        if (data.size() > o.body_chunk_size) throw std::runtime_error("body event too large");
        cur.body += data;
      } else if (kind == std::uint8_t(ev::end)) {
        header_list t;
        std::string_view v(data);
        if (!t.decode_from(v) || !v.empty()) throw std::runtime_error("undecodable trailers");
        res.trailers.push_back(std::move(t));
        res.streamed.push_back(true);
        cur.complete = true;
        finished = true;
      }
      if (finished) {
        res.messages.push_back(cur);
        if (answer) codec->encode(std::uint8_t(out::whole), whole(200, "ok"), res.output);
      }
    }
    sink.events.clear();
  };
  for (;;) {
    std::size_t n = wire.size() - off;
    if (!chunks.empty()) n = std::min(n, chunks[std::min(ci++, chunks.size() - 1)]);
    res.pending.append(wire.substr(off, n));
    off += n;
    // The connection decodes again after each encode while input is left.
    for (int round = 0; round < 1000; ++round) {
      std::size_t used = codec->decode(res.pending, sink);
      res.pending.erase(0, used);
      codec->take_output(res.output);
      bool had = !sink.events.empty();
      collect();
      if (!had || res.pending.empty() || codec->done() || codec->failed()) break;
    }
    if (off >= wire.size()) break;
  }
  res.failed = codec->failed();
  res.error = codec->error().value();
  res.done = codec->done();
  return res;
}

// Chunk plans every byte-string case runs through: whole, byte by byte, random splits.
inline std::vector<std::vector<std::size_t>> plans(std::size_t size, std::uint32_t seed = 7) {
  std::vector<std::vector<std::size_t>> p{{}, {1}};
  std::mt19937 rng(seed);
  for (int k = 0; k < 4; ++k) {
    std::vector<std::size_t> c;
    std::size_t total = 0;
    while (total < size) {
      std::size_t n = 1 + rng() % 17;
      c.push_back(n);
      total += n;
    }
    p.push_back(c);
  }
  return p;
}

}  // namespace http1_test
