#include "sluice/connectors/http/http_post.h"

#include <gtest/gtest.h>

#include "sluice/testing/matchers.h"

namespace sluice::http {
namespace {

using ::sluice::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(RedactUrlTest, KeepsOnlySchemeAndHost) {
  EXPECT_EQ(RedactUrl("https://user:pw@hooks.example.com/services/T0/B1/XYZ?token=abc"),
            "https://hooks.example.com/…");
  EXPECT_EQ(RedactUrl("https://hooks.example.com"), "https://hooks.example.com");
  EXPECT_EQ(RedactUrl("https://hooks.example.com/"), "https://hooks.example.com/");
  EXPECT_EQ(RedactUrl("http://hooks.example.com/x"), "http://hooks.example.com/…");
}

TEST(RedactUrlTest, DropsUserInfo) {
  EXPECT_EQ(RedactUrl("http://token@host/"), "http://host/");
  EXPECT_EQ(RedactUrl("http://user:s3cret@host"), "http://host");
  // An unencoded '@' in the password: the last '@' before the path ends the user-info.
  EXPECT_EQ(RedactUrl("http://user:p@ss@host:81/p"), "http://host:81/…");
  // An '@' in the path is not user-info.
  EXPECT_EQ(RedactUrl("http://host/path@x:y"), "http://host/…");
}

TEST(RedactUrlTest, HidesPathAndQueryTokens) {
  EXPECT_EQ(RedactUrl("https://hooks.example.com?token=abc"), "https://hooks.example.com/…");
  EXPECT_EQ(RedactUrl("https://hooks.example.com#frag"), "https://hooks.example.com/…");
  EXPECT_EQ(RedactUrl("https://hooks.example.com/?token=abc"), "https://hooks.example.com/…");
  EXPECT_EQ(RedactUrl("https://h.example/api/v1/T0123/secret-token"), "https://h.example/…");
}

TEST(RedactUrlTest, KeepsPorts) {
  EXPECT_EQ(RedactUrl("http://127.0.0.1:9000/hook"), "http://127.0.0.1:9000/…");
  EXPECT_EQ(RedactUrl("http://u:p@127.0.0.1:9000"), "http://127.0.0.1:9000");
  EXPECT_EQ(RedactUrl("http://host:65535/"), "http://host:65535/");
}

TEST(RedactUrlTest, Ipv6Hosts) {
  EXPECT_EQ(RedactUrl("http://[::1]:8080/hook?t=1"), "http://[::1]:8080/…");
  EXPECT_EQ(RedactUrl("https://u:p@[2001:db8::7]/x"), "https://[2001:db8::7]/…");
  EXPECT_EQ(RedactUrl("http://[fe80::1%25eth0]"), "http://[fe80::1%25eth0]");
}

TEST(RedactUrlTest, BadUrlsShowNothingOfThemselves) {
  for (const char* bad : {
           "",
           "hooks.example.com/services/T0/B1/XYZ",  // no scheme
           "://host/secret",                        // empty scheme
           "1http://host/secret",                   // scheme must start with a letter
           "http:///secret",                        // no host
           "http://user:pw@/secret",                // no host after the user-info
           "http://host:port/secret",               // port not a number
           "http://host:123456/secret",             // port too long
           "http://host:/secret",                   // empty port
           "http://ho st/secret",                   // space in the host
           "http://[::1/secret",                    // unclosed IPv6 literal
           "http://[]/secret",                      // empty IPv6 literal
           "http://[zz]/secret",                    // not IPv6
           "http://[::1]x/secret",                  // junk after the literal
       }) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(RedactUrl(bad), "<invalid URL>");
  }
}

TEST(UrlProblemTest, SaysWhatIsWrongWithoutQuotingTheUrl) {
  EXPECT_EQ(UrlProblem("https://hooks.example.com/T0/B1/secret"), "");
  EXPECT_EQ(UrlProblem("http://127.0.0.1:8080/alerts?token=abc"), "");
  EXPECT_EQ(UrlProblem("http://[::1]:9/x"), "");
  EXPECT_EQ(UrlProblem("http://127.0.0.1:99999/secret"),
            "the port is not a number from 1 to 65535");
  EXPECT_EQ(UrlProblem("http://host/a secret"),
            "it has a space or a line break: percent-encode it (%20)");
  for (const char* bad :
       {"http://127.0.0.1:99999/secret", "http://ho st/secret", "http://127.0.0.1:0x50/secret"}) {
    const std::string problem = UrlProblem(bad);
    EXPECT_FALSE(problem.empty()) << bad;
    EXPECT_EQ(problem.find("secret"), std::string::npos) << problem;
  }
}

TEST(ScrubUrlTest, ReplacesTheUrlAndItsSecretParts) {
  const std::string url = "https://bot:pw9@hooks.example.com:8443/services/T0/XYZ?token=abc";
  EXPECT_EQ(ScrubUrl("failed: " + url, url), "failed: https://hooks.example.com:8443/…");
  EXPECT_EQ(ScrubUrl("GET /services/T0/XYZ?token=abc gave 404", url), "GET … gave 404");
  EXPECT_EQ(ScrubUrl("auth bot:pw9 refused", url), "auth … refused");
  EXPECT_EQ(ScrubUrl("Could not resolve host: hooks.example.com", url),
            "Could not resolve host: hooks.example.com");
  // A URL without path keeps a bare "/" in messages (nothing secret in it).
  EXPECT_EQ(ScrubUrl("a / b", "http://h/"), "a / b");
  EXPECT_EQ(ScrubUrl("a /x b", "http://a@h/x"), "a /x b");
}

TEST(StatusFromHttpTest, ClassifiesStatuses) {
  const std::string url = "https://hooks.example.com/T0/B1?token=abc";
  EXPECT_TRUE(StatusFromHttp(200, url).ok());
  EXPECT_TRUE(StatusFromHttp(204, url).ok());
  for (int retryable : {408, 429, 500, 502, 503, 504}) {
    SCOPED_TRACE(retryable);
    EXPECT_THAT(
        StatusFromHttp(retryable, url),
        StatusIs(StatusCode::kUnavailable,
                 HasSubstr(fmt::format("HTTP {} from https://hooks.example.com/…", retryable))));
  }
  for (int refused : {301, 400, 401, 403, 404, 413}) {
    SCOPED_TRACE(refused);
    const Status st = StatusFromHttp(refused, url);
    EXPECT_THAT(st, StatusIs(StatusCode::kInvalidArgument,
                             HasSubstr(fmt::format("HTTP {} from", refused))));
    EXPECT_THAT(st.message(), Not(HasSubstr("T0")));
    EXPECT_THAT(st.message(), Not(HasSubstr("token")));
  }
}

}  // namespace
}  // namespace sluice::http
