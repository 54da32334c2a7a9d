#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "swactor/protocols/multipart.hpp"

using namespace swactor::protocols;
namespace mp = swactor::protocols::multipart;

namespace {

struct collected {
  struct part {
    mp::part_head head;
    std::string data;
    bool ended = false;
  };
  std::vector<part> parts;
};

struct collector final : mp::part_sink {
  collected out;
  std::error_code on_part_begin(const mp::part_head& h) override {
    out.parts.push_back({h, {}, false});
    return {};
  }
  std::error_code on_part_data(std::string_view d) override {
    REQUIRE(!out.parts.empty());
    REQUIRE(!d.empty());
    out.parts.back().data.append(d);
    return {};
  }
  std::error_code on_part_end() override {
    out.parts.back().ended = true;
    return {};
  }
};

// Feeds `body` in pieces of `step` bytes (0 = whole), then finishes.
std::error_code parse(const std::string& boundary, std::string_view body, std::size_t step, collected& out,
                      mp::options o = {}) {
  mp::parser p(boundary, o);
  collector c;
  std::error_code ec;
  if (step == 0) {
    ec = p.feed(body, c);
  } else {
    for (std::size_t i = 0; i < body.size() && !ec; i += step) ec = p.feed(body.substr(i, step), c);
  }
  if (!ec) ec = p.finish();
  out = std::move(c.out);
  return ec;
}

const std::string kBody =
    "preamble to ignore\r\n"
    "--XyZ\r\n"
    "Content-Disposition: form-data; name=\"title\"\r\n"
    "\r\n"
    "hello\r\nworld\r\n"
    "--XyZ\r\n"
    "content-disposition: form-data; name=\"doc\"; filename=\"a b.txt\"\r\n"
    "Content-Type: application/octet-stream\r\n"
    "\r\n"
    "\r\n--XyQ not a delimiter\r-\n--X\r\n"
    "--XyZ  \r\n"
    "Content-Disposition: form-data; name=\"empty\"; filename=\"\"\r\n"
    "\r\n"
    "\r\n"
    "--XyZ--\r\n"
    "epilogue, ignored";

}  // namespace

TEST_CASE("multipart: boundary_of", "[multipart]") {
  CHECK(mp::boundary_of("multipart/form-data; boundary=abc") == "abc");
  CHECK(mp::boundary_of("Multipart/Form-Data;boundary=\"a b:c\"") == "a b:c");
  CHECK(mp::boundary_of("multipart/form-data; charset=utf-8; boundary=----x") == "----x");
  CHECK_FALSE(mp::boundary_of("multipart/mixed; boundary=abc"));
  CHECK_FALSE(mp::boundary_of("multipart/form-data"));
  CHECK_FALSE(mp::boundary_of("multipart/form-data; boundary="));
  CHECK_FALSE(mp::boundary_of("multipart/form-data; boundary=\"abc"));
  CHECK_FALSE(mp::boundary_of("multipart/form-data; boundary=\"ab \""));  // trailing space
  CHECK_FALSE(mp::boundary_of("multipart/form-data; boundary=" + std::string(71, 'a')));
  CHECK(mp::boundary_of("multipart/form-data; boundary=" + std::string(70, 'a')));
  CHECK_FALSE(mp::boundary_of("multipart/form-data; boundary=a\"b"));
  CHECK(mp::is_form_data(" multipart/form-data ; x=y"));
  CHECK_FALSE(mp::is_form_data("text/plain"));
}

TEST_CASE("multipart: Content-Disposition parameters", "[multipart]") {
  mp::disposition d;
  REQUIRE(mp::parse_disposition("form-data; name=\"a\\\"b\"; filename=plain.txt", d));
  CHECK(d.type == "form-data");
  CHECK(*d.param("name") == "a\"b");
  CHECK(*d.param("filename") == "plain.txt");
  // filename* (RFC 8187) wins whichever comes first.
  REQUIRE(mp::parse_disposition("Form-Data; filename*=UTF-8''%e2%82%ac%20rates.txt; FILENAME=\"fallback\"; name=x", d));
  CHECK(*d.param("filename") == "\xe2\x82\xac rates.txt");
  REQUIRE(mp::parse_disposition("form-data; name=x; filename=\"fallback\"; filename*=iso-8859-1'en'%A3", d));
  CHECK(*d.param("filename") == "\xc2\xa3");
  // An undecodable filename* is ignored, the plain one stays.
  REQUIRE(mp::parse_disposition("form-data; filename=\"f\"; filename*=KOI8-R''%C1", d));
  CHECK(*d.param("filename") == "f");
  CHECK_FALSE(mp::parse_disposition("form-data; name=\"open", d));
  CHECK_FALSE(mp::parse_disposition("form-data; name", d));
  CHECK_FALSE(mp::parse_disposition("form-data; name=\"a\" junk", d));
}

TEST_CASE("multipart: parts, split at every byte", "[multipart]") {
  for (std::size_t step = 0; step <= kBody.size(); ++step) {
    CAPTURE(step);
    collected c;
    REQUIRE_FALSE(parse("XyZ", kBody, step, c));
    REQUIRE(c.parts.size() == 3);
    CHECK(c.parts[0].head.name == "title");
    CHECK_FALSE(c.parts[0].head.has_filename);
    CHECK(c.parts[0].head.content_type == "text/plain");
    CHECK(c.parts[0].data == "hello\r\nworld");
    CHECK(c.parts[1].head.name == "doc");
    CHECK(c.parts[1].head.has_filename);
    CHECK(c.parts[1].head.filename == "a b.txt");
    CHECK(c.parts[1].head.content_type == "application/octet-stream");
    CHECK(c.parts[1].data == "\r\n--XyQ not a delimiter\r-\n--X");
    CHECK(c.parts[2].head.has_filename);
    CHECK(c.parts[2].head.filename.empty());
    CHECK(c.parts[2].data.empty());
    for (auto& p : c.parts) CHECK(p.ended);
    if (step == 0) break;
  }
}

TEST_CASE("multipart: the first delimiter may open the body, binary data passes", "[multipart]") {
  std::string data;
  for (int i = 0; i < 4096; ++i) data.push_back(static_cast<char>(i * 7 + i / 256));
  std::string body = "--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x.bin\"\r\n\r\n" + data +
                     "\r\n--b--";
  for (std::size_t step : {std::size_t{0}, std::size_t{1}, std::size_t{3}, std::size_t{1000}}) {
    collected c;
    REQUIRE_FALSE(parse("b", body, step, c));
    REQUIRE(c.parts.size() == 1);
    CHECK(c.parts[0].data == data);
  }
}

TEST_CASE("multipart: malformed bodies", "[multipart]") {
  collected c;
  CHECK(parse("b", "no delimiter at all", 0, c) == mp::errc::no_delimiter);
  CHECK(parse("b", "", 0, c) == mp::errc::no_delimiter);
  CHECK(parse("b", "--b\r\nContent-Disposition: form-data; name=a\r\n\r\nvalue", 0, c) == mp::errc::truncated);
  CHECK(parse("b", "--b\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n--bX\r\n", 0, c) ==
        mp::errc::bad_delimiter);
  CHECK(parse("b", "--b\r\nno colon here\r\n\r\nv\r\n--b--", 0, c) == mp::errc::bad_part_header);
  CHECK(parse("b", "--b\r\nContent-Disposition: form-data;\r\n name=a\r\n\r\nv\r\n--b--", 0, c) ==
        mp::errc::bad_part_header);
  CHECK(parse("b", "--b\r\nContent-Type: text/plain\r\n\r\nv\r\n--b--", 0, c) == mp::errc::no_disposition);
  CHECK(parse("b", "--b\r\nContent-Disposition: attachment; name=a\r\n\r\nv\r\n--b--", 0, c) ==
        mp::errc::no_disposition);
  CHECK(parse("b", "--b\r\nContent-Disposition: form-data; filename=a\r\n\r\nv\r\n--b--", 0, c) ==
        mp::errc::no_disposition);
  CHECK(parse("b", "--b\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n--b\r\n", 0, c) == mp::errc::truncated);
}

TEST_CASE("multipart: limits", "[multipart]") {
  std::string body;
  for (int i = 0; i < 5; ++i) body += "--b\r\nContent-Disposition: form-data; name=\"f" + std::to_string(i) + "\"\r\n\r\n0123456789\r\n";
  body += "--b--\r\n";
  collected c;
  for (std::size_t step : {std::size_t{0}, std::size_t{1}}) {
    CHECK_FALSE(parse("b", body, step, c, {.max_header_size = 1024, .max_parts = 5}));
    CHECK(c.parts.size() == 5);
    CHECK(parse("b", body, step, c, {.max_header_size = 1024, .max_parts = 4}) == mp::errc::too_many_parts);
    CHECK(c.parts.size() == 4);
    CHECK_FALSE(parse("b", body, step, c, {.max_header_size = 1024, .max_parts = 0, .max_part_size = 10}));
    CHECK(parse("b", body, step, c, {.max_header_size = 1024, .max_parts = 0, .max_part_size = 9}) ==
          mp::errc::part_too_large);
    CHECK(parse("b", body, step, c, {.max_header_size = 20, .max_parts = 0}) == mp::errc::header_too_large);
  }
  // A header block that never ends is refused as soon as it passes the limit.
  mp::parser p("b", {.max_header_size = 64});
  collector sink;
  REQUIRE_FALSE(p.feed("--b\r\nX-Long: ", sink));
  CHECK(p.feed(std::string(100, 'a'), sink) == mp::errc::header_too_large);
  CHECK(p.feed("more", sink) == mp::errc::header_too_large);  // sticky
}

TEST_CASE("multipart: a sink's error stops the parser", "[multipart]") {
  struct refusing final : mp::part_sink {
    int data_calls = 0;
    std::error_code on_part_begin(const mp::part_head&) override { return {}; }
    std::error_code on_part_data(std::string_view) override {
      ++data_calls;
      return std::make_error_code(std::errc::file_too_large);
    }
    std::error_code on_part_end() override { return {}; }
  } sink;
  mp::parser p("b");
  CHECK(p.feed("--b\r\nContent-Disposition: form-data; name=a\r\n\r\nvalue\r\n--b--", sink) ==
        std::errc::file_too_large);
  CHECK(p.feed("x", sink) == std::errc::file_too_large);
  CHECK(sink.data_calls == 1);
}

TEST_CASE("multipart: a big part keeps only a delimiter's worth buffered", "[multipart]") {
  struct counter final : mp::part_sink {
    std::uint64_t bytes = 0;
    std::error_code on_part_begin(const mp::part_head&) override { return {}; }
    std::error_code on_part_data(std::string_view d) override {
      bytes += d.size();
      return {};
    }
    std::error_code on_part_end() override { return {}; }
  } sink;
  mp::parser p("boundary");
  REQUIRE_FALSE(p.feed("--boundary\r\nContent-Disposition: form-data; name=f; filename=x\r\n\r\n", sink));
  std::string chunk(65536, 'z');
  for (int i = 0; i < 64; ++i) REQUIRE_FALSE(p.feed(chunk, sink));
  CHECK(sink.bytes >= 64u * 65536 - 20);
  REQUIRE_FALSE(p.feed("\r\n--boundary--\r\n", sink));
  CHECK(p.done());
  CHECK(sink.bytes == 64u * 65536);
  CHECK_FALSE(p.finish());
}
