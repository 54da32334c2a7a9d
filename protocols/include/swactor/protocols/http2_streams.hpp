#pragma once
// What process mode asks an HTTP/2 codec about one stream (http2.hpp stays small: the
// config header includes it).

#include <cstdint>

#include "swactor/protocols/codec.hpp"

namespace swactor::protocols::http2 {

// Stream `stream` of an HTTP/2 codec still needs whoever took its request: its body is
// still arriving, or its response is not all handed over. The reactor dispatches streams
// one by one and forgets a stream's worker once this is false. False for other codecs.
bool stream_needs_handler(const stream_codec& codec, std::uint32_t stream) noexcept;

}  // namespace swactor::protocols::http2
