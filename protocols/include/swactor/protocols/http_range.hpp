#pragma once
// The HTTP `Range` request header (RFC 9110 §14.1.2 / §14.2), as a pure function: a header
// value and the representation's size in, the byte ranges to send out. No I/O, no
// allocation beyond the result, so it is unit tested and fuzzed on its own.
//
//   parse_range("bytes=0-99,-100", 1000) -> satisfiable, [0,99] [900,999]
//   parse_range("bytes=5000-", 1000)     -> unsatisfiable (416, Content-Range: bytes */1000)
//   parse_range("items=1-2", 1000)       -> ignore (serve the whole representation)

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace swactor::protocols {

struct byte_range {
  std::uint64_t first = 0;
  std::uint64_t last = 0;  // inclusive, like the header
  std::uint64_t length() const noexcept { return last - first + 1; }
};

enum class range_status : std::uint8_t {
  ignore,         // malformed, another unit, or too many ranges: answer 200 with everything
  satisfiable,    // ranges is non-empty: answer 206
  unsatisfiable,  // well-formed, but no range overlaps the representation: answer 416
};

struct range_result {
  range_status status = range_status::ignore;
  // Sorted by first, overlapping or adjacent ranges merged (RFC 9110 §14.2 lets a server
  // coalesce; it keeps "bytes=0-,0-,0-" from sending a file three times).
  std::vector<byte_range> ranges;
};

// `value` is the Range field value; `size` the selected representation's length.
// More than `max_ranges` range-specs are ignored as a whole (a denial-of-service guard).
range_result parse_range(std::string_view value, std::uint64_t size, std::size_t max_ranges = 16);

}  // namespace swactor::protocols
