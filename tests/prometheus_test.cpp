// common/prometheus: the exposition writer (escaping, histogram buckets,
// number formats).
#include "common/prometheus.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace zgrid::prom {
namespace {

TEST(Prometheus, EscapesLabelValuesAndHelpAsTheFormatSays) {
  EXPECT_EQ(Writer::escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  EXPECT_EQ(Writer::escape_help("x\\y\nz\"q"), "x\\\\y\\nz\"q");  // quotes stay in help
  Writer w;
  w.family("zgrid_x_total", "counter", "Line one\nline two");
  w.sample({{"service", "say \"hi\"\n"}}, 3);
  EXPECT_EQ(w.text(),
            "# HELP zgrid_x_total Line one\\nline two\n"
            "# TYPE zgrid_x_total counter\n"
            "zgrid_x_total{service=\"say \\\"hi\\\"\\n\"} 3\n");
}

// Label values come from clients and nodes: whatever their bytes, the
// exposition is UTF-8 (each stray byte becomes U+FFFD, valid text stays).
TEST(Prometheus, LabelValuesAreAlwaysValidUtf8) {
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_EQ(Writer::escape_label("\xff\xfe"), fffd + fffd);
  EXPECT_EQ(Writer::escape_label("ab\xc3"), "ab" + fffd);               // cut mid-character
  EXPECT_EQ(Writer::escape_label("\xc0\xaf"), fffd + fffd);             // overlong
  EXPECT_EQ(Writer::escape_label("\xed\xa0\x80"), fffd + fffd + fffd);  // a surrogate
  EXPECT_EQ(Writer::escape_label("\xf4\x90\x80\x80"), fffd + fffd + fffd + fffd);  // > U+10FFFF
  EXPECT_EQ(Writer::escape_label("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
            "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");  // é € 😀 stay
  EXPECT_EQ(Writer::escape_label("\"\xff\\"), "\\\"" + fffd + "\\\\");
  EXPECT_EQ(Writer::escape_help("x\xfe"), "x" + fffd);
}

TEST(Prometheus, FormatsSpecialAndLargeNumbersExactly) {
  EXPECT_EQ(Writer::format_value(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(Writer::format_value(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(Writer::format_value(std::nan("")), "NaN");
  EXPECT_EQ(Writer::format_value(0), "0");
  EXPECT_EQ(Writer::format_value(0.25), "0.25");
  EXPECT_EQ(Writer::format_value(9007199254740992.0), "9007199254740992");
}

TEST(Prometheus, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  Histogram h({0.1, 1, 10});
  for (double v : {0.05, 0.1, 0.5, 2.0, 20.0, 30.0}) h.observe(v);
  EXPECT_EQ(h.count, 6u);
  EXPECT_DOUBLE_EQ(h.sum, 52.65);
  Writer w;
  w.family("zgrid_d_seconds", "histogram", "D.");
  w.histogram({{"service", "s"}}, h);
  EXPECT_EQ(w.text(),
            "# HELP zgrid_d_seconds D.\n# TYPE zgrid_d_seconds histogram\n"
            "zgrid_d_seconds_bucket{service=\"s\",le=\"0.1\"} 2\n"  // 0.1 is in le="0.1"
            "zgrid_d_seconds_bucket{service=\"s\",le=\"1\"} 3\n"
            "zgrid_d_seconds_bucket{service=\"s\",le=\"10\"} 4\n"
            "zgrid_d_seconds_bucket{service=\"s\",le=\"+Inf\"} 6\n"
            "zgrid_d_seconds_sum{service=\"s\"} 52.65\n"
            "zgrid_d_seconds_count{service=\"s\"} 6\n");
}

TEST(Prometheus, MergedHistogramsAddUp) {
  Histogram a({1}), b({1});
  a.observe(0.5);
  b.observe(5);
  b.observe(0.2);
  Histogram m;
  m.merge(a);
  m.merge(b);
  EXPECT_EQ(m.count, 3u);
  EXPECT_EQ(m.counts[0], 2u);
  EXPECT_EQ(m.counts[1], 1u);
}

}  // namespace
}  // namespace zgrid::prom
