// SQLSTATE classification, DSN redaction and connection failures that need no server.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/connectors/postgres/pg_connection.h"
#include "sluice/testing/matchers.h"

namespace sluice::pg {
namespace {

using ::sluice::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(PgErrorsTest, SqlStatesAreClassifiedRetryableOrPermanent) {
  struct Case {
    const char* state;
    StatusCode code;
  };
  for (const Case& c : std::vector<Case>{
           {"08000", StatusCode::kUnavailable},      {"08006", StatusCode::kUnavailable},
           {"08P01", StatusCode::kUnavailable},      {"40001", StatusCode::kUnavailable},
           {"40P01", StatusCode::kUnavailable},      {"57P01", StatusCode::kUnavailable},
           {"57P02", StatusCode::kUnavailable},      {"57P03", StatusCode::kUnavailable},
           {"53300", StatusCode::kUnavailable},      {"55P03", StatusCode::kUnavailable},
           {"57014", StatusCode::kTimeout},          {"28P01", StatusCode::kPermissionDenied},
           {"28000", StatusCode::kPermissionDenied}, {"42501", StatusCode::kPermissionDenied},
           {"42P01", StatusCode::kNotFound},         {"3D000", StatusCode::kNotFound},
           {"3F000", StatusCode::kNotFound},         {"23505", StatusCode::kInvalidArgument},
           {"42601", StatusCode::kInvalidArgument},  {"22P02", StatusCode::kInvalidArgument},
           {"40002", StatusCode::kInvalidArgument},  {"", StatusCode::kInvalidArgument}}) {
    EXPECT_EQ(ClassifySqlState(c.state), c.code) << c.state;
  }
  EXPECT_TRUE(IsRetryable(ClassifySqlState("40P01")));
  EXPECT_FALSE(IsRetryable(ClassifySqlState("23505")));
}

TEST(PgErrorsTest, SqlStateIsReadBackFromTheMessage) {
  EXPECT_EQ(SqlState(Status::NotFound("node 'x': relation \"t\" does not exist [SQLSTATE 42P01]")),
            "42P01");
  EXPECT_EQ(SqlState(Status::NotFound("no state here")), "");
  EXPECT_EQ(SqlState(Status::NotFound("truncated [SQLSTATE 42P")), "");
  // The context a caller prepends does not hide it.
  const Status wrapped = Status::Unavailable("x [SQLSTATE 40001]").WithContext("node 'n'");
  EXPECT_EQ(SqlState(wrapped), "40001");
}

TEST(PgErrorsTest, DescribeDsnNamesTheServerButNeverThePassword) {
  EXPECT_EQ(DescribeDsn("host=db.example port=5433 user=app password=s3cret dbname=audit"),
            "app@db.example:5433/audit");
  EXPECT_EQ(DescribeDsn("postgresql://app:s3cret@db.example:5433/audit?sslmode=disable"),
            "app@db.example:5433/audit");
  EXPECT_EQ(DescribeDsn("audit"), "localhost/audit");
  EXPECT_EQ(DescribeDsn("host=x nonsense"), "(invalid DSN)");
}

TEST(PgErrorsTest, RedactSecretsMasksPasswordsInEveryForm) {
  const std::string dsn = "host=h user=u password=hunter22 dbname=d";
  EXPECT_EQ(RedactSecrets("auth for hunter22 failed", dsn), "auth for *** failed");
  EXPECT_EQ(RedactSecrets("conninfo host=h password=hunter22 dbname=d", "bad"),
            "conninfo host=h password=*** dbname=d");
  EXPECT_EQ(RedactSecrets("conninfo password='a b\\'c' x", "bad"), "conninfo password=*** x");
  EXPECT_EQ(RedactSecrets("uri postgresql://u:pw@h/db here", "bad"),
            "uri postgresql://u:***@h/db here");
  EXPECT_EQ(RedactSecrets("no secrets here", dsn), "no secrets here");
}

TEST(PgErrorsTest, ConnectionStartupFailuresAreRecognisedByTheirText) {
  EXPECT_THAT(ConnectError("connection to server at \"h\", port 5432 failed: FATAL:  password "
                           "authentication failed for user \"u\"\n",
                           "u@h:5432/d"),
              StatusIs(StatusCode::kPermissionDenied,
                       AllOf(HasSubstr("PostgreSQL at u@h:5432/d: cannot connect"),
                             HasSubstr("FATAL: password authentication"),
                             HasSubstr("[SQLSTATE 28P01]"), Not(HasSubstr("\n")))));
  EXPECT_THAT(ConnectError("FATAL:  database \"nope\" does not exist", "w"),
              StatusIs(StatusCode::kNotFound, HasSubstr("[SQLSTATE 3D000]")));
  EXPECT_THAT(ConnectError("FATAL:  role \"nope\" does not exist", "w"),
              StatusIs(StatusCode::kPermissionDenied, HasSubstr("[SQLSTATE 28000]")));
  EXPECT_THAT(ConnectError("FATAL:  sorry, too many clients already", "w"),
              StatusIs(StatusCode::kUnavailable, HasSubstr("[SQLSTATE 53300]")));
  EXPECT_THAT(ConnectError("FATAL:  the database system is starting up", "w"),
              StatusIs(StatusCode::kUnavailable, HasSubstr("[SQLSTATE 57P03]")));
  EXPECT_THAT(ConnectError("could not connect: Connection refused\n\tIs the server running?", "w"),
              StatusIs(StatusCode::kUnavailable,
                       HasSubstr("Connection refused Is the server running? [SQLSTATE 08001]")));
  EXPECT_THAT(ConnectError("timeout expired", "w"), StatusIs(StatusCode::kTimeout, HasSubstr("w")));
}

TEST(PgErrorsTest, MalformedDsnIsAConfigErrorWithoutThePassword) {
  auto conn = PgConnection::Connect("host=127.0.0.1 password=hunter22 bogus_option=1");
  EXPECT_THAT(conn, StatusIs(StatusCode::kConfigError,
                             AllOf(HasSubstr("invalid PostgreSQL DSN"), HasSubstr("bogus_option"),
                                   Not(HasSubstr("hunter22")))));
}

TEST(PgErrorsTest, RefusedPortFailsAtOnceAsUnavailable) {
  // At once: a refusal is kUnavailable, where waiting out the 5 s deadline would be kTimeout.
  auto conn = PgConnection::Connect(
      "host=127.0.0.1 port=1 user=u password=hunter22 dbname=d connect_timeout=30", 5'000'000);
  EXPECT_THAT(conn, StatusIs(StatusCode::kUnavailable,
                             AllOf(HasSubstr("PostgreSQL at u@127.0.0.1:1/d: cannot connect"),
                                   HasSubstr("[SQLSTATE 08001]"), Not(HasSubstr("hunter22")),
                                   Not(HasSubstr("\n")))));
}

TEST(PgErrorsTest, ServerThatNeverAnswersTimesOutAtTheDeadline) {
  // A listening socket that accepts TCP connections (the kernel does) but never speaks.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 4), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const int port = ntohs(addr.sin_port);

  const auto start = std::chrono::steady_clock::now();
  auto conn = PgConnection::Connect(
      "host=127.0.0.1 port=" + std::to_string(port) + " user=u dbname=d", 300'000);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  close(fd);
  EXPECT_THAT(conn, StatusIs(StatusCode::kTimeout, HasSubstr("no answer within 300 ms")));
  // Not before the deadline (the clock is monotonic); the upper bound only guards against a
  // wait far past it (without a deadline the call would never return), not a measure of speed.
  EXPECT_GE(elapsed, std::chrono::milliseconds(290));
  EXPECT_LT(elapsed, std::chrono::seconds(30));
}

}  // namespace
}  // namespace sluice::pg
