#include "sluice/core/time.h"

#include <limits>

#include <gtest/gtest.h>

#include "sluice/testing/matchers.h"

namespace sluice {
namespace {

TEST(TimeTest, FormatsAndParsesRoundTrip) {
  EXPECT_EQ(FormatTimestamp(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(FormatTimestamp(1'700'000'000'123'456), "2023-11-14T22:13:20.123456Z");
  EXPECT_EQ(FormatTimestamp(-1), "1969-12-31T23:59:59.999999Z");
  for (int64_t us : {int64_t{0}, int64_t{-86'400'000'001}, int64_t{1'700'000'000'123'456},
                     int64_t{951'782'400'000'000}}) {
    ASSERT_OK_AND_ASSIGN(int64_t back, ParseTimestamp(FormatTimestamp(us)));
    EXPECT_EQ(back, us);
  }
}

TEST(TimeTest, FormatsExtremesWithoutOverflow) {
  EXPECT_FALSE(FormatTimestamp(std::numeric_limits<int64_t>::min()).empty());
  EXPECT_FALSE(FormatTimestamp(std::numeric_limits<int64_t>::max()).empty());
}

TEST(TimeTest, FormatsDatesInUtc) {
  EXPECT_EQ(FormatDate(0), "1970-01-01");
  EXPECT_EQ(FormatDate(kMicrosPerDay - 1), "1970-01-01");
  EXPECT_EQ(FormatDate(-1), "1969-12-31");
  ASSERT_OK_AND_ASSIGN(int64_t t, ParseTimestamp("2026-11-24T23:59:59.999999Z"));
  EXPECT_EQ(FormatDate(t), "2026-11-24");
}

TEST(TimeTest, ParsesCommonForms) {
  EXPECT_EQ(*ParseTimestamp("2024-02-29"), DaysFromCivil(2024, 2, 29) * kMicrosPerDay);
  EXPECT_EQ(*ParseTimestamp("2024-02-29 01:02:03"),
            DaysFromCivil(2024, 2, 29) * kMicrosPerDay + 3723 * kMicrosPerSecond);
  EXPECT_EQ(*ParseTimestamp("2024-01-01T01:00:00+01:00"), *ParseTimestamp("2024-01-01T00:00:00Z"));
  EXPECT_EQ(*ParseTimestamp("2024-01-01T00:00:00.5Z"), *ParseTimestamp("2024-01-01") + 500'000);
}

TEST(TimeTest, RejectsGarbage) {
  for (const char* bad : {"", "2024", "2024-13-01", "2024-01-01T25:00", "2024-01-01Tx", "abc",
                          "2024-01-01 00:00:00 trailing"}) {
    EXPECT_THAT(ParseTimestamp(bad),
                testing::StatusIs(StatusCode::kInvalidArgument, ::testing::HasSubstr("timestamp")))
        << bad;
  }
}

}  // namespace
}  // namespace sluice

#include "sluice/core/units.h"

namespace sluice {
namespace {

TEST(UnitsTest, ParsesSizesAndDurations) {
  EXPECT_EQ(*ParseByteSize("512MiB"), 512LL << 20);
  EXPECT_EQ(*ParseByteSize("10MB"), 10'000'000);
  EXPECT_EQ(*ParseByteSize("4096"), 4096);
  EXPECT_EQ(*ParseDurationMicros("1h30m"), 5'400'000'000);
  EXPECT_EQ(*ParseDurationMicros("90d"), 90 * 86'400'000'000LL);
  EXPECT_EQ(*ParseDurationMicros("250us"), 250);
  EXPECT_FALSE(ParseByteSize("lots").ok());
  EXPECT_FALSE(ParseDurationMicros("5 parsecs").ok());
  EXPECT_FALSE(ParseDurationMicros("9999999999999w").ok());  // overflow is an error, not UB
  EXPECT_FALSE(ParseDurationMicros("").ok());
}

}  // namespace
}  // namespace sluice
