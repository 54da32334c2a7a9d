#pragma once
// HTTP content codings (RFC 9110 §8.4.1): gzip and deflate through zlib, br through brotli.
// Sans-I/O stream encoders and decoders (feed / flush / finish on byte strings), the
// Accept-Encoding negotiation (RFC 9110 §12.5.3) and the "is this response worth
// compressing" policy, so the HTTP layer only asks and frames.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace swactor::protocols::compression {

enum class coding : std::uint8_t { identity, gzip, deflate, br };

// "identity", "gzip", "deflate", "br".
std::string_view to_string(coding c) noexcept;
// A content-coding token (case-insensitive; "x-gzip" is gzip, RFC 9110 §8.4.1.3); nullopt
// when unknown.
std::optional<coding> parse_coding(std::string_view token) noexcept;

// The coding to send for an Accept-Encoding value (every field of the request joined with
// ", "), among `offered` (the server's codings, most preferred first). `present` = the
// request had the header at all. RFC 9110 §12.5.3: no header = any coding is acceptable,
// but identity is chosen (clients that want compression say so); q=0 excludes a coding;
// `*` covers codings not named; the highest q wins and ties go to the earlier entry of
// `offered`. identity when nothing offered is acceptable (identity is always sent rather
// than 406, even when "identity;q=0" excludes it: a body the client can read beats none).
coding negotiate(std::string_view accept_encoding, bool present, const std::vector<coding>& offered);

// -- encoders -------------------------------------------------------------------------------

class encoder {
 public:
  virtual ~encoder() = default;
  // Compresses `in`, appending whatever output is ready to `out` (maybe nothing).
  virtual void feed(std::string_view in, std::string& out) = 0;
  // Appends everything needed for a decoder to produce all input fed so far (a sync
  // flush: zlib's Z_SYNC_FLUSH, brotli's FLUSH), so a streamed piece is readable at once.
  virtual void flush(std::string& out) = 0;
  // Ends the stream (gzip trailer, brotli last block). No feed after it.
  virtual void finish(std::string& out) = 0;
};

// level: gzip/deflate 1..9 (zlib), br 0..11 (brotli quality). size_hint: the whole input's
// size when known (0 = unknown): a small body gets a small window, so it costs less memory
// and set-up. nullptr for identity. Throws std::bad_alloc when the library cannot start.
std::unique_ptr<encoder> make_encoder(coding c, int level, std::uint64_t size_hint = 0);
// The whole of `in`, compressed (feed + finish).
std::string compress(coding c, int level, std::string_view in);

// -- decoders -------------------------------------------------------------------------------

enum class decode_status : std::uint8_t {
  ok,         // all input consumed, output appended
  too_large,  // the output would pass max_output (nothing past it was produced)
  corrupt,    // not valid data of that coding (or data after its end)
};

class decoder {
 public:
  virtual ~decoder() = default;
  // Decompresses `in`, appending to `out`. Never appends more than max_output bytes over
  // the decoder's life: a zip bomb costs max_output bytes of memory, not what it expands to.
  virtual decode_status feed(std::string_view in, std::string& out) = 0;
  // The input ended: ok only when the compressed stream ended too (else corrupt: truncated).
  virtual decode_status finish() = 0;
  virtual std::uint64_t produced() const noexcept = 0;
};

// gzip (also several members back to back), deflate (the zlib format, RFC 1950, as RFC 9110
// says), br. nullptr for identity.
std::unique_ptr<decoder> make_decoder(coding c, std::uint64_t max_output);

// -- response policy ------------------------------------------------------------------------

// A [[listen]] compression table, resolved.
struct options {
  bool enabled = true;
  std::uint64_t min_size = 1024;  // smaller whole bodies go as they are
  int gzip_level = 6;
  int deflate_level = 6;
  int brotli_quality = 4;
  std::vector<coding> offered{coding::br, coding::gzip, coding::deflate};  // preference order
  // Media types not compressed ("image/png", "video/*"); compared without parameters,
  // case-insensitively. `types`, when not empty, is the only types that are compressed.
  std::vector<std::string> excluded_types;
  std::vector<std::string> types;
  bool inflate_requests = true;

  int level(coding c) const noexcept {
    return c == coding::br ? brotli_quality : c == coding::deflate ? deflate_level : gzip_level;
  }
};

// The default excluded_types: formats that are already compressed.
const std::vector<std::string>& default_excluded_types();

// Whether a Content-Type value ("" = none) may be compressed under `o`.
bool compressible_type(std::string_view content_type, const options& o);

}  // namespace swactor::protocols::compression
