#pragma once
// The redis mode's protocol pieces (mode_redis.cpp), apart so they can be tested directly:
// the RESP2 reply parser, the --mix parser and the request encoder.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace swactor::bench::resp {

// -- replies ------------------------------------------------------------------------------

struct reply_cut {
  std::ptrdiff_t size = 0;  // > 0: a whole reply of that size; 0: more bytes needed; -1: malformed
  bool error = false;       // a whole reply that is an error reply ("-ERR ...")
};

// Limits of a reply: redis-server's own (proto-max-bulk-len, PROTO_INLINE_MAX_SIZE), so
// nothing it can send is refused, and a stream that is not RESP fails fast instead of
// growing the buffer until the timeout.
inline constexpr std::size_t max_bulk_len = std::size_t{512} << 20;
inline constexpr std::size_t max_line_len = 64 * 1024;

// The RESP2 reply at the front of `in`: simple string (+), error (-), integer (:), bulk
// string ($, $-1 = null) or array (*, *-1 = null; nested to any depth). Only a top-level
// error reply is an error: an error inside an array (EXEC) is part of a whole answer.
reply_cut parse_reply(std::string_view in);

// -- commands -----------------------------------------------------------------------------

enum class command : std::uint8_t { get, set, incr, ping };
std::string_view command_name(command c);  // lower case, as in --mix

struct weighted {
  command cmd;
  unsigned weight;
};

// --mix: "get", "set,get" (equal weights) or "get:8,set:2"; names are case-insensitive,
// weights 1..1000000, a command at most once. Returns the reason when `text` is bad
// (empty on success).
std::string parse_mix(std::string_view text, std::vector<weighted>& out);

// Writes request number `seq` of connection `conn` into `out` (cleared first): the command
// picked by weight and the key, both from a hash of (conn, seq), so every run sends the same
// sequence without a random generator shared between threads. Keys are those of
// redis-benchmark -r: "key:%012u" (GET, SET) and "counter:%012u" (INCR, whose values must
// stay integers), drawn from [0, keyspace); SET values are `value` ('x' bytes, as
// redis-benchmark's -d).
class encoder {
 public:
  encoder(std::vector<weighted> mix, std::uint64_t keyspace, std::size_t value_size);
  void make(std::uint64_t conn, std::uint64_t seq, std::string& out) const;
  // The command a request made by make() carries.
  static command command_of(std::string_view request);

 private:
  std::vector<weighted> mix_;
  std::uint64_t total_ = 0;  // sum of the weights
  std::uint64_t keyspace_;
  std::string set_tail_;  // "\r\n$N\r\n" + value + "\r\n" after a SET's key digits
};

}  // namespace swactor::bench::resp
