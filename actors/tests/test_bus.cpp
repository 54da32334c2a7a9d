// The bus's pieces that need no process: topic and pattern rules, matching, the serializer
// helpers, typed payloads and the receiver's tag check.
#include <catch2/catch.hpp>

#include "swactor/actors/bus.hpp"

namespace bus = swactor::bus;

namespace {
struct point {
  static constexpr std::string_view bus_tag = "test.point";
  std::int64_t x = 0;
  std::int64_t y = 0;
  std::string label;
  void bus_write(bus::writer& w) const {
    w.i64(x);
    w.i64(y);
    w.str(label);
  }
  bool bus_read(bus::reader& r) {
    x = r.i64();
    y = r.i64();
    label = r.str();
    return r.ok();
  }
};

// A type that cannot be changed: traits specialized from outside.
struct legacy {
  double v = 0;
};
}  // namespace

template <>
struct swactor::bus::traits<legacy> {
  static constexpr std::string_view tag = "test.legacy";
  static void write(const legacy& l, writer& w) { w.f64(l.v); }
  static bool read(legacy& l, reader& r) {
    l.v = r.f64();
    return r.ok();
  }
};

TEST_CASE("bus: topic and pattern rules", "[bus]") {
  for (auto t : {"a", "room.lobby", "a.b.c.d", "orders:eu.1"}) CHECK(bus::valid_topic(t));
  CHECK(bus::valid_topic(std::string(bus::kMaxTopic, 'x')));
  for (auto t : {"", ".", "a.", ".a", "a..b", "a b", "a.*", "a.>", "*", "tab\tx", "\x7f"})
    CHECK_FALSE(bus::valid_topic(t));
  CHECK_FALSE(bus::valid_topic(std::string(bus::kMaxTopic + 1, 'x')));
  for (auto p : {"a", "*", ">", "a.*", "*.b", "a.>", "a.*.c.>", "*.*"}) CHECK(bus::valid_pattern(p));
  for (auto p : {"", "a.>.b", ">.a", "a*", "a.b*", "a>", "a..*", "a.*."}) CHECK_FALSE(bus::valid_pattern(p));
}

TEST_CASE("bus: '*' matches one token, '>' one or more trailing tokens", "[bus]") {
  struct row {
    const char* pattern;
    const char* topic;
    bool match;
  };
  const row rows[] = {
      {"room.lobby", "room.lobby", true}, {"room.lobby", "room.lobbyx", false}, {"room.lobby", "room", false},
      {"room.*", "room.a", true},         {"room.*", "room.a.b", false},        {"room.*", "room", false},
      {"room.>", "room.a", true},         {"room.>", "room.a.b", true},         {"room.>", "room", false},
      {"*.a", "x.a", true},               {"*.a", "x.b", false},                {">", "anything.at.all", true},
      {"*", "one", true},                 {"*", "one.two", false},              {"a.*.c", "a.b.c", true},
      {"a.*.c", "a.b.d", false},          {"a.*.>", "a.b.c.d", true},           {"a.*.>", "a.b", false},
      {"room.a", "room.a.b", false},
  };
  for (const auto& r : rows) {
    INFO(r.pattern << " vs " << r.topic);
    CHECK(bus::matches(r.pattern, r.topic) == r.match);
  }
}

TEST_CASE("bus: typed payloads round trip, short or long bytes do not decode", "[bus]") {
  auto p = bus::payload::of(point{-3, 1'000'000'000'000, "here"});
  CHECK(p.tag == "test.point");
  point back;
  REQUIRE(bus::decode(p.data, back));
  CHECK(back.x == -3);
  CHECK(back.y == 1'000'000'000'000);
  CHECK(back.label == "here");
  CHECK_FALSE(bus::decode(p.data.substr(0, p.data.size() - 1), back));  // short
  CHECK_FALSE(bus::decode(p.data + "x", back));                          // trailing bytes
  CHECK_FALSE(bus::decode(std::string("\xff\xff\xff\xff", 4), back));

  auto l = bus::payload::of(legacy{2.5});
  CHECK(l.tag == "test.legacy");
  legacy lb;
  REQUIRE(bus::decode(l.data, lb));
  CHECK(lb.v == 2.5);

  bus::message m;
  m.tag = p.tag;
  m.data = p.data;
  REQUIRE(m.as<point>());
  CHECK(m.as<point>()->label == "here");
  CHECK(m.as<legacy>() == nullptr);  // another type's tag
  bus::message bad;
  bad.tag = "test.point";
  bad.data = std::string(2, 'x');
  CHECK(bad.as<point>() == nullptr);
  auto raw = bus::payload::raw("bytes");
  CHECK(raw.tag.empty());
  CHECK(raw.data == "bytes");
}

TEST_CASE("bus: the reader refuses bad bools and reads past the end once", "[bus]") {
  std::string s;
  bus::writer w(s);
  w.boolean(true);
  w.u32(7);
  bus::reader r(s);
  CHECK(r.boolean());
  CHECK(r.u32() == 7);
  CHECK(r.done());
  CHECK(r.u64() == 0);  // past the end
  CHECK_FALSE(r.ok());
  bus::reader b(std::string_view("\x02", 1));
  (void)b.boolean();
  CHECK_FALSE(b.ok());
}

TEST_CASE("bus: a receiver's type set knows its tags and decodes once", "[bus]") {
  bus::type_set types;
  CHECK(types.empty());
  types.add<point>();
  CHECK(types.knows("test.point"));
  CHECK_FALSE(types.knows("test.legacy"));
  auto p = bus::payload::of(point{1, 2, "z"});
  auto decoded = types.decode(p.tag, p.data);
  REQUIRE(decoded);
  CHECK(static_cast<const point*>(decoded.get())->label == "z");
  CHECK(types.decode(p.tag, "garbage") == nullptr);
  CHECK(types.decode("unknown", p.data) == nullptr);
}
