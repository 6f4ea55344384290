#include "sluice/core/decimal.h"

#include <gtest/gtest.h>

#include <charconv>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>

namespace sluice {
namespace {

std::string_view Written(char* buf, uint64_t v) {
  return {buf, static_cast<size_t>(WriteDecimal(buf, v) - buf)};
}

std::string Expected(uint64_t v) {
  char buf[kMaxDecimalDigits];
  return {buf, std::to_chars(buf, buf + sizeof buf, v).ptr};
}

// Every value below two million as std::to_chars writes it, and nothing past its end.
TEST(WriteDecimal, EveryValueBelowTwoMillionAsToChars) {
  char buf[kMaxDecimalDigits];
  for (uint64_t v = 0; v < 2'000'000; ++v) {
    std::memset(buf, '#', sizeof buf);
    const std::string_view got = Written(buf, v);
    ASSERT_EQ(got, Expected(v)) << v;
    ASSERT_EQ(buf[got.size()], '#') << v;
  }
}

TEST(WriteDecimal, EachSideOfEveryPowerOfTenAndTheLargest) {
  char buf[kMaxDecimalDigits];
  uint64_t power = 1;
  for (int k = 0; k <= 19; ++k, power *= 10) {
    for (const uint64_t v : {power - 1, power, power + 1, power * 9 + 99}) {
      EXPECT_EQ(Written(buf, v), Expected(v)) << v;
    }
  }
  const uint64_t max = std::numeric_limits<uint64_t>::max();
  EXPECT_EQ(Written(buf, max), "18446744073709551615");
  EXPECT_EQ(Written(buf, 99'999'999), "99999999");
  EXPECT_EQ(Written(buf, 100'000'000), "100000000");
}

}  // namespace
}  // namespace sluice
