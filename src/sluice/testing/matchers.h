#pragma once

#include <string>

#include <gmock/gmock.h>

#include "sluice/core/result.h"

namespace sluice::testing {

inline const Status& GetStatus(const Status& s) { return s; }
template <typename T>
const Status& GetStatus(const Result<T>& r) {
  return r.status();
}

/// Match a Status or Result whose code is `code` and whose message matches `message_matcher`.
MATCHER_P2(StatusIs, code, message_matcher,
           std::string("status code is ") + std::string(StatusCodeName(code))) {
  const Status& s = GetStatus(arg);
  *result_listener << "status is " << s.ToString();
  return s.code() == code &&
         ::testing::ExplainMatchResult(message_matcher, s.message(), result_listener);
}

MATCHER(IsOk, "is OK") {
  const Status& s = GetStatus(arg);
  *result_listener << "status is " << s.ToString();
  return s.ok();
}

}  // namespace sluice::testing

#define ASSERT_OK(expr)                                              \
  do {                                                               \
    const ::sluice::Status _st = ::sluice::testing::GetStatus(expr); \
    ASSERT_TRUE(_st.ok()) << _st.ToString();                         \
  } while (false)

#define EXPECT_OK(expr)                                              \
  do {                                                               \
    const ::sluice::Status _st = ::sluice::testing::GetStatus(expr); \
    EXPECT_TRUE(_st.ok()) << _st.ToString();                         \
  } while (false)

#define ASSERT_OK_AND_ASSIGN(lhs, rexpr)                     \
  auto SLUICE_CONCAT(_res_, __LINE__) = (rexpr);             \
  ASSERT_TRUE(SLUICE_CONCAT(_res_, __LINE__).ok())           \
      << SLUICE_CONCAT(_res_, __LINE__).status().ToString(); \
  lhs = std::move(SLUICE_CONCAT(_res_, __LINE__)).ValueOrDie()
