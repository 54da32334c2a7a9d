// libFuzzer target for the multipart/form-data parser.
// Input: byte 0 = feed step (0 = whole), byte 1 = boundary length 1..8 (its bytes follow),
// then the body.
// Checks: whole and piecewise feeding agree (same parts, data, error); part data never
// contains the delimiter; nothing is reported after an error.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "swactor/protocols/multipart.hpp"

namespace mp = swactor::protocols::multipart;

namespace {
void check(bool ok) {
  if (!ok) std::abort();
}

struct recorder final : mp::part_sink {
  std::vector<std::string> log;  // "B<name>|<filename>|<type>", "D<bytes>", "E"
  std::vector<std::string> data;
  bool open = false;
  std::error_code on_part_begin(const mp::part_head& h) override {
    check(!open);
    open = true;
    log.push_back("B" + h.name + "|" + (h.has_filename ? h.filename : "-") + "|" + h.content_type);
    data.emplace_back();
    return {};
  }
  std::error_code on_part_data(std::string_view d) override {
    check(open && !d.empty());
    data.back().append(d);
    return {};
  }
  std::error_code on_part_end() override {
    check(open);
    open = false;
    log.push_back("E");
    return {};
  }
};

struct run {
  recorder r;
  std::error_code ec;
};

void feed(const std::string& boundary, std::string_view body, std::size_t step, run& out) {
  mp::parser p(boundary, {.max_header_size = 512, .max_parts = 64, .max_part_size = 1 << 16});
  if (step == 0) {
    out.ec = p.feed(body, out.r);
  } else {
    for (std::size_t i = 0; i < body.size() && !out.ec; i += step) out.ec = p.feed(body.substr(i, step), out.r);
  }
  if (!out.ec) out.ec = p.finish();
  std::size_t parts = out.r.data.size();
  check(parts <= 64);
  check(p.feed("more", out.r) == out.ec || !out.ec);
  check(out.r.data.size() == parts);
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  if (size < 2) return 0;
  std::string_view in(reinterpret_cast<const char*>(bytes), size);
  std::size_t step = static_cast<unsigned char>(in[0]) % 32;
  std::size_t blen = static_cast<unsigned char>(in[1]) % 8 + 1;
  if (in.size() < 2 + blen) return 0;
  std::string boundary(in.substr(2, blen));
  auto body = in.substr(2 + blen);
  run whole, pieces;
  feed(boundary, body, 0, whole);
  feed(boundary, body, step == 0 ? 1 : step, pieces);
  check(whole.ec == pieces.ec);
  check(whole.r.log == pieces.r.log);
  check(whole.r.data == pieces.r.data);
  for (const auto& d : whole.r.data) check(d.find("\r\n--" + boundary) == std::string::npos);
  // Content-Type parsing must not crash on the same bytes.
  (void)mp::boundary_of(body.substr(0, 200));
  mp::disposition disp;
  (void)mp::parse_disposition(body.substr(0, 200), disp);
  return 0;
}
