#include "sluice/core/status.h"

#include <gtest/gtest.h>

#include "sluice/core/result.h"
#include "sluice/testing/matchers.h"

namespace sluice {
namespace {

using ::testing::HasSubstr;
using testing::StatusIs;

Result<int> Half(int x) {
  if (x % 2 != 0) return Status::Invalid("{} is odd", x);
  return x / 2;
}

Result<int> Quarter(int x) {
  SLUICE_ASSIGN_OR_RETURN(int h, Half(x));
  SLUICE_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

TEST(StatusTest, OkIsCheapAndEmpty) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.ToString(), "OK");
  EXPECT_EQ(s.message(), "");
}

TEST(StatusTest, ContextIsPrefixed) {
  Status s = Status::Unavailable("connection refused").WithContext("node '{}'", "pg");
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_EQ(s.message(), "node 'pg': connection refused");
  EXPECT_TRUE(s.IsRetryable());
  EXPECT_FALSE(Status::Invalid("x").IsRetryable());
  EXPECT_TRUE(Status::OK().WithContext("ignored").ok());
}

TEST(ResultTest, PropagatesErrors) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_THAT(Quarter(6), StatusIs(StatusCode::kInvalidArgument, HasSubstr("3 is odd")));
}

}  // namespace
}  // namespace sluice
