#include <gtest/gtest.h>

#include <set>

#include "common/util.hpp"

namespace zgrid {
namespace {

TEST(Util, Durations) {
  EXPECT_EQ(parse_duration("300s").value(), 300'000);
  EXPECT_EQ(parse_duration("5m").value(), 300'000);
  EXPECT_EQ(parse_duration("1500ms").value(), 1'500);
  EXPECT_EQ(parse_duration("2").value(), 2'000);
  EXPECT_EQ(parse_duration("1.5s").value(), 1'500);
  EXPECT_EQ(parse_duration("1h").value(), 3'600'000);
  for (const char* bad : {"", "soon", "5x", "-1s", "nan", "1e300s"})
    EXPECT_FALSE(parse_duration(bad).ok()) << bad;
  EXPECT_EQ(format_duration(300'000), "5m");
  EXPECT_EQ(format_duration(1'500), "1500ms");
  EXPECT_EQ(format_duration(2'000), "2s");
}

TEST(Util, Ids) {
  std::set<std::string> ids;
  for (int i = 0; i < 1000; ++i) {
    std::string id = random_id128();
    EXPECT_EQ(id.size(), 32u);
    EXPECT_TRUE(ids.insert(id).second);
  }
  EXPECT_TRUE(valid_name("node-1"));
  EXPECT_FALSE(valid_name(""));
  EXPECT_FALSE(valid_name("has space"));
  EXPECT_FALSE(valid_name(std::string(65, 'a')));
}

TEST(Util, StatusFormatting) {
  Status st = Status::NotFound("unknown session x");
  EXPECT_EQ(st.ToString(), "not_found: unknown session x");
  Result<int> r = Status::TimedOut("late");
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kTimedOut);
  Result<int> v = 5;
  EXPECT_EQ(*v, 5);
}

}  // namespace
}  // namespace zgrid

namespace zgrid {
namespace {
TEST(Util, EveryCodeHasAWireName) {
  // Appending a Code without a name would turn it into "internal" on the wire.
  for (int c = 0; c <= static_cast<int>(Code::kOutOfSequence); ++c) {
    EXPECT_EQ(code_from_int(static_cast<std::uint64_t>(c)), static_cast<Code>(c)) << c;
    if (c != static_cast<int>(Code::kInternal)) {
      EXPECT_NE(code_name(static_cast<Code>(c)), "internal") << c;
    }
  }
}

TEST(Util, JsonStringsEscapeAndOptionallyRepairUtf8) {
  std::string out;
  append_json_string(out, "a\"b\\c\nd\x01");
  EXPECT_EQ(out, "\"a\\\"b\\\\c\\nd\\u0001\"");
  out.clear();
  append_json_string(out, "ok \xC3\xA9 bad \xFF \xC3 \xED\xA0\x80", true);
  // é kept; a stray byte, a cut sequence and a surrogate each become U+FFFD.
  EXPECT_EQ(out,
            "\"ok \xC3\xA9 bad \xEF\xBF\xBD \xEF\xBF\xBD \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"");
  out.clear();
  append_json_string(out, "\xFF");  // without the repair: as it is
  EXPECT_EQ(out, "\"\xFF\"");
}

}  // namespace
}  // namespace zgrid
