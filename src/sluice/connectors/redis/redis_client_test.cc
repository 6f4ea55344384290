// Against the Redis of `scripts/services start` ($SLUICE_REDIS_URL). ctest runs the tests of
// this file in parallel on one server, so each works on keys of its own and disturbs no other
// connection: it kills only its own client (CLIENT KILL ID) and times out with a command that
// blocks only its own connection (BLPOP), not the server (DEBUG SLEEP, which Redis 7 also
// refuses unless started with enable-debug-command).

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/connectors/redis/redis_client.h"
#include "sluice/testing/matchers.h"

namespace sluice::redis {
namespace {

using ::sluice::testing::IsOk;
using ::sluice::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

/// Return $SLUICE_REDIS_URL, or "" after failing the current test (never skipping it).
std::string TestUrl() {
  const char* url = std::getenv("SLUICE_REDIS_URL");
  if (url == nullptr || *url == '\0') {
    ADD_FAILURE() << "SLUICE_REDIS_URL is not set: run `scripts/services start` and "
                     "`eval \"$(scripts/services env)\"` before the integration tests";
    return "";
  }
  return url;
}

/// Return a key no other test (or concurrent test process) uses.
std::string UniqueKey(std::string_view stem) {
  static std::atomic<int> counter{0};
  return fmt::format("sluice:test:{}:{}:{}", stem, getpid(), counter++);
}

/// Return the test server's URL with another user, password and db.
std::string UrlWith(std::string_view user, std::string_view password, int db) {
  auto url = ParseRedisUrl(TestUrl());
  EXPECT_TRUE(url.ok()) << url.status().ToString();
  if (!url.ok()) return "";
  std::string userinfo;
  if (!user.empty() || !password.empty()) userinfo = fmt::format("{}:{}@", user, password);
  return fmt::format("redis://{}{}:{}/{}", userinfo, url->host, url->port, db);
}

RedisOptions TestOptions() {
  RedisOptions options;
  options.url = TestUrl();
  options.retry.initial_us = 10'000;
  options.retry.max_us = 100'000;
  return options;
}

std::unique_ptr<RedisClient> Connect(const RedisOptions& options = TestOptions()) {
  auto client = RedisClient::Make(options);
  EXPECT_TRUE(client.ok()) << client.status().ToString();
  return client.ok() ? std::move(client).ValueOrDie() : nullptr;
}

std::string RandomBytes(size_t size, uint32_t seed) {
  std::mt19937 gen(seed);
  std::string out(size, '\0');
  for (char& c : out) c = static_cast<char>(gen() & 0xff);
  return out;
}

TEST(RedisClientTest, SetGetRoundTripIsBinarySafe) {
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  std::string every_byte;
  for (int i = 0; i < 256; ++i) every_byte.push_back(static_cast<char>(i));
  const std::string with_nuls("a\0b\0\0c\r\n$-1\r\n", 13);
  const std::string one_mib = RandomBytes(1 << 20, 42);
  const std::string key_with_nul = UniqueKey("bin") + std::string("\0k", 2);

  for (const std::string& value : {every_byte, with_nuls, one_mib, std::string()}) {
    SCOPED_TRACE(value.size());
    ASSERT_OK_AND_ASSIGN(RedisReply set, client->Command({"SET", key_with_nul, value}));
    EXPECT_EQ(set.type(), REDIS_REPLY_STATUS);
    EXPECT_EQ(set.str(), "OK");
    ASSERT_OK_AND_ASSIGN(RedisReply get, client->Command({"GET", key_with_nul}));
    ASSERT_EQ(get.type(), REDIS_REPLY_STRING);
    EXPECT_TRUE(get.str() == value) << "value differs after the round trip";
    ASSERT_OK_AND_ASSIGN(RedisReply len, client->Command({"STRLEN", key_with_nul}));
    EXPECT_EQ(len.integer(), static_cast<int64_t>(value.size()));
  }
  ASSERT_OK_AND_ASSIGN(RedisReply del, client->Command({"DEL", key_with_nul}));
  EXPECT_EQ(del.integer(), 1);
  ASSERT_OK_AND_ASSIGN(RedisReply missing, client->Command({"GET", key_with_nul}));
  EXPECT_TRUE(missing.is_nil());
  EXPECT_EQ(client->connects(), 1);
}

TEST(RedisClientTest, TenThousandPipelinedCommandsReplyInOrder) {
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  const std::string key = UniqueKey("pipeline");
  constexpr int kCommands = 10'000;
  for (int i = 0; i < kCommands; ++i) {
    // Alternate commands so that a reply out of place shows in its type as well as its value.
    if (i % 2 == 0) {
      ASSERT_OK(client->Append({"RPUSH", key, std::to_string(i)}));
    } else {
      ASSERT_OK(client->Append({"ECHO", fmt::format("echo-{}", i)}));
    }
  }
  EXPECT_EQ(client->pending(), static_cast<size_t>(kCommands));
  // Read them in two uneven slices: the second continues where the first stopped.
  ASSERT_OK_AND_ASSIGN(std::vector<RedisReply> first, client->Replies(4'001));
  EXPECT_EQ(client->pending(), static_cast<size_t>(kCommands - 4'001));
  ASSERT_OK_AND_ASSIGN(std::vector<RedisReply> second, client->Replies(kCommands - 4'001));
  EXPECT_EQ(client->pending(), 0u);
  ASSERT_EQ(first.size() + second.size(), static_cast<size_t>(kCommands));
  for (int i = 0; i < kCommands; ++i) {
    const RedisReply& reply = i < 4'001 ? first[i] : second[i - 4'001];
    if (i % 2 == 0) {
      ASSERT_EQ(reply.type(), REDIS_REPLY_INTEGER) << "reply " << i;
      ASSERT_EQ(reply.integer(), i / 2 + 1) << "reply " << i;  // the list's new length
    } else {
      ASSERT_EQ(reply.type(), REDIS_REPLY_STRING) << "reply " << i;
      ASSERT_EQ(reply.str(), fmt::format("echo-{}", i)) << "reply " << i;
    }
  }
  ASSERT_OK_AND_ASSIGN(RedisReply list, client->Command({"LRANGE", key, "0", "-1"}));
  ASSERT_EQ(list.size(), static_cast<size_t>(kCommands / 2));
  for (size_t j = 0; j < list.size(); ++j) {
    ASSERT_EQ(list[j].str(), std::to_string(j * 2)) << "element " << j;
  }
  EXPECT_OK(client->Command({"DEL", key}));
}

TEST(RedisClientTest, PipelinedErrorRepliesComeBackInPlace) {
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  const std::string key = UniqueKey("pipeline-error");
  ASSERT_OK(client->Append({"SET", key, "v"}));
  ASSERT_OK(client->Append({"LPUSH", key, "x"}));
  ASSERT_OK(client->Append({"GET", key}));
  ASSERT_OK_AND_ASSIGN(std::vector<RedisReply> replies, client->Replies(3));
  ASSERT_EQ(replies.size(), 3u);
  EXPECT_EQ(replies[0].str(), "OK");
  EXPECT_OK(client->ReplyError(replies[0], "SET"));
  EXPECT_TRUE(replies[1].is_error());
  EXPECT_THAT(client->ReplyError(replies[1], "LPUSH"),
              StatusIs(StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(client->where()), HasSubstr("LPUSH: WRONGTYPE"))));
  EXPECT_EQ(replies[2].str(), "v");
  EXPECT_OK(client->Command({"DEL", key}));
}

TEST(RedisClientTest, CommandRefusedWhilePipelinedRepliesAreUnread) {
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  EXPECT_THAT(client->Command({}), StatusIs(StatusCode::kInvalidArgument, HasSubstr("empty")));
  EXPECT_THAT(client->Append({}), StatusIs(StatusCode::kInvalidArgument, HasSubstr("empty")));
  EXPECT_EQ(client->pending(), 0u);
  ASSERT_OK(client->Append({"PING"}));
  EXPECT_THAT(client->Command({"PING"}),
              StatusIs(StatusCode::kInternal, HasSubstr("1 pipelined replies unread")));
  EXPECT_THAT(client->Replies(2),
              StatusIs(StatusCode::kInternal, HasSubstr("2 replies asked for, 1 commands")));
  ASSERT_OK_AND_ASSIGN(std::vector<RedisReply> replies, client->Replies(1));
  EXPECT_EQ(replies[0].str(), "PONG");
  ASSERT_OK_AND_ASSIGN(RedisReply pong, client->Command({"PING"}));
  EXPECT_EQ(pong.str(), "PONG");
}

// Kill `client`'s connection from a second client; return false (after failing) if that did
// not happen.
bool KillFromOutside(RedisClient* client) {
  auto id = client->Command({"CLIENT", "ID"});
  EXPECT_TRUE(id.ok()) << id.status().ToString();
  if (!id.ok()) return false;
  auto killer = Connect();
  if (killer == nullptr) return false;
  auto killed = killer->Command({"CLIENT", "KILL", "ID", std::to_string(id->integer())});
  EXPECT_TRUE(killed.ok()) << killed.status().ToString();
  if (!killed.ok()) return false;
  EXPECT_EQ(killed->integer(), 1) << "CLIENT KILL ID killed no client";
  return killed->integer() == 1;
}

TEST(RedisClientTest, ALostConnectionIsUnavailableAndTheNextCommandReconnects) {
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(KillFromOutside(client.get()));
  EXPECT_THAT(
      client->Command({"PING"}),
      StatusIs(StatusCode::kUnavailable, AllOf(HasSubstr(client->where()), HasSubstr("PING: "))));
  EXPECT_FALSE(client->connected());
  EXPECT_OK(client->Ping());
  EXPECT_EQ(client->connects(), 2);
  EXPECT_EQ(client->reconnects(), 1);
}

TEST(RedisClientTest, WithRetryReconnectsAfterTheServerKillsTheConnection) {
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  const std::string key = UniqueKey("retry");
  ASSERT_TRUE(KillFromOutside(client.get()));
  auto set = client->WithRetry([&] { return client->Command({"SET", key, "after-kill"}); });
  ASSERT_THAT(set, IsOk());
  EXPECT_EQ(set->str(), "OK");
  EXPECT_EQ(client->connects(), 2);
  EXPECT_EQ(client->retry_stats().retries, 1);
  EXPECT_EQ(client->breaker().consecutive_failures(), 0);

  // A pipeline retried as a whole: the kill loses every appended command, the retry appends
  // them again on the new connection.
  ASSERT_TRUE(KillFromOutside(client.get()));
  auto replies = client->WithRetry([&]() -> Result<std::vector<RedisReply>> {
    for (int i = 0; i < 100; ++i) {
      SLUICE_RETURN_NOT_OK(client->Append({"SET", fmt::format("{}:{}", key, i), "p"}));
    }
    return client->Replies(100);
  });
  ASSERT_THAT(replies, IsOk());
  EXPECT_EQ(replies->size(), 100u);
  EXPECT_EQ(client->connects(), 3);

  auto other = Connect();
  ASSERT_NE(other, nullptr);
  ASSERT_OK_AND_ASSIGN(RedisReply get, other->Command({"GET", key}));
  EXPECT_EQ(get.str(), "after-kill");
  ASSERT_OK_AND_ASSIGN(RedisReply last, other->Command({"GET", key + ":99"}));
  EXPECT_EQ(last.str(), "p");
}

TEST(RedisClientTest, WithRetryStopsAtTheBreakerAndProbesAfterRecoveryTimeout) {
  RedisOptions options = TestOptions();
  options.retry.max_attempts = 4;
  options.breaker.failure_threshold = 2;
  options.breaker.recovery_timeout_us = 1'000'000;
  FakeClock clock;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisClient> client, RedisClient::Make(options, &clock));
  int calls = 0;
  const Status failed = client->WithRetry([&] {
    ++calls;
    return Status::Unavailable("injected");
  });
  // Two real failures open the breaker; the last two attempts are refused without calling op.
  EXPECT_EQ(calls, 2);
  EXPECT_THAT(failed, StatusIs(StatusCode::kUnavailable,
                               AllOf(HasSubstr("giving up after 4 attempts"),
                                     HasSubstr("circuit breaker open after 2 failures"))));
  EXPECT_EQ(client->breaker().state(), CircuitBreaker::State::kOpen);

  clock.Advance(1'000'000);  // recovery timeout: the next attempt is the probe
  auto pong = client->WithRetry([&] { return client->Command({"PING"}); });
  ASSERT_THAT(pong, IsOk());
  EXPECT_EQ(pong->str(), "PONG");
  EXPECT_EQ(client->breaker().state(), CircuitBreaker::State::kClosed);
}

TEST(RedisClientTest, WithRetryByDefaultRidesOutAServerDownForTwentySeconds) {
  RedisOptions options;  // the default retry and breaker, as the nodes use them
  options.url = TestUrl();
  FakeClock clock;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisClient> client, RedisClient::Make(options, &clock));
  constexpr int64_t kBackAtUs = 20'000'000;  // a restart that reloads a large AOF
  int64_t answered_at_us = -1;
  auto pong = client->WithRetry([&]() -> Result<RedisReply> {
    if (clock.NowMicros() < kBackAtUs) return Status::Unavailable("injected: server down");
    answered_at_us = clock.NowMicros();
    return client->Command({"PING"});
  });
  ASSERT_THAT(pong, IsOk());
  EXPECT_EQ(pong->str(), "PONG");
  // Found by the first attempt after it is back (waits are at most 2 s plus 10% jitter): the
  // open breaker lets every attempt of WithRetry through as a probe, refusing none.
  EXPECT_LE(answered_at_us - kBackAtUs, 2'200'000);
  EXPECT_EQ(client->breaker().state(), CircuitBreaker::State::kClosed);
}

TEST(RedisClientTest, ACommandTimeoutIsRetryableAndTheClientWorksAfterwards) {
  RedisOptions options = TestOptions();
  options.command_timeout_us = 200'000;
  auto client = Connect(options);
  ASSERT_NE(client, nullptr);
  // BLPOP on an empty list answers after 1 s: longer than the 200 ms command timeout.
  const auto blocked = client->Command({"BLPOP", UniqueKey("empty"), "1"});
  EXPECT_THAT(blocked,
              StatusIs(StatusCode::kTimeout, AllOf(HasSubstr(client->where()), HasSubstr("BLPOP"),
                                                   HasSubstr("no reply within 200 ms"))));
  EXPECT_TRUE(blocked.status().IsRetryable());
  EXPECT_FALSE(client->connected());
  ASSERT_OK_AND_ASSIGN(RedisReply pong, client->Command({"PING"}));
  EXPECT_EQ(pong.str(), "PONG");
  EXPECT_EQ(client->connects(), 2);
}

TEST(RedisClientTest, AnErrorReplyIsPermanentNamesTheCommandAndKeepsTheConnection) {
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  const std::string key = UniqueKey("wrongtype");
  ASSERT_OK(client->Command({"SET", key, "a string"}));
  const auto pushed = client->WithRetry([&] { return client->Command({"LPUSH", key, "x"}); });
  EXPECT_THAT(pushed, StatusIs(StatusCode::kInvalidArgument,
                               AllOf(HasSubstr(client->where()), HasSubstr("LPUSH: WRONGTYPE"))));
  EXPECT_FALSE(pushed.status().IsRetryable());
  EXPECT_EQ(client->retry_stats().retries, 0);
  EXPECT_EQ(client->retry_stats().permanent_failures, 1);
  EXPECT_TRUE(client->connected());
  EXPECT_EQ(client->connects(), 1);
  EXPECT_THAT(client->Command({"XREADGROUP", "GROUP", "nogroup", "c", "STREAMS", key, ">"}),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("XREADGROUP: WRONGTYPE")));
  const std::string stream = UniqueKey("stream");
  ASSERT_OK(client->Command({"XADD", stream, "*", "f", "v"}));
  EXPECT_THAT(client->Command({"XREADGROUP", "GROUP", "nogroup", "c", "STREAMS", stream, ">"}),
              StatusIs(StatusCode::kNotFound, HasSubstr("XREADGROUP: NOGROUP")));
  ASSERT_OK_AND_ASSIGN(RedisReply get, client->Command({"GET", key}));
  EXPECT_EQ(get.str(), "a string");
  EXPECT_OK(client->Command({"DEL", key, stream}));
}

TEST(RedisClientTest, AWrongPasswordIsPermissionDeniedAndNeverShown) {
  auto admin = Connect();
  ASSERT_NE(admin, nullptr);
  const std::string user = fmt::format("sluice_test_{}", getpid());
  ASSERT_OK(admin->Command(
      {"ACL", "SETUSER", user, "reset", "on", ">Right-Pass-1", "~*", "&*", "+@all"}));

  RedisOptions wrong = TestOptions();
  wrong.url = UrlWith(user, "Wrong-Pass-7", 0);
  const auto refused = RedisClient::Make(wrong);
  EXPECT_THAT(refused, StatusIs(StatusCode::kPermissionDenied,
                                AllOf(HasSubstr("AUTH: WRONGPASS"), HasSubstr(user + ":***@"),
                                      Not(HasSubstr("Wrong-Pass-7")))));

  // The password option wins over the URL's, and is never shown either.
  RedisOptions override_wrong = TestOptions();
  override_wrong.url = UrlWith(user, "Right-Pass-1", 0);
  override_wrong.password = "Other-Wrong-9";
  const auto refused_too = RedisClient::Make(override_wrong);
  EXPECT_THAT(refused_too,
              StatusIs(StatusCode::kPermissionDenied,
                       AllOf(Not(HasSubstr("Other-Wrong-9")), Not(HasSubstr("Right-Pass-1")))));

  RedisOptions override_right = TestOptions();
  override_right.url = UrlWith(user, "", 0);  // redis://user:@host:port/0
  override_right.password = "Right-Pass-1";
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<RedisClient> client, RedisClient::Make(override_right));
  ASSERT_OK_AND_ASSIGN(RedisReply whoami, client->Command({"ACL", "WHOAMI"}));
  EXPECT_EQ(whoami.str(), user);

  EXPECT_OK(admin->Command({"ACL", "DELUSER", user}));
}

TEST(RedisClientTest, SelectsTheDatabaseOfTheUrl) {
  RedisOptions db3 = TestOptions();
  db3.url = UrlWith("", "", 3);
  auto in_db3 = Connect(db3);
  ASSERT_NE(in_db3, nullptr);
  const std::string key = UniqueKey("db");
  ASSERT_OK(in_db3->Command({"SET", key, "three"}));
  auto in_db0 = Connect();
  ASSERT_NE(in_db0, nullptr);
  ASSERT_OK_AND_ASSIGN(RedisReply missing, in_db0->Command({"GET", key}));
  EXPECT_TRUE(missing.is_nil());
  ASSERT_OK_AND_ASSIGN(RedisReply found, in_db3->Command({"GET", key}));
  EXPECT_EQ(found.str(), "three");
  EXPECT_OK(in_db3->Command({"DEL", key}));

  RedisOptions no_such_db = TestOptions();
  no_such_db.url = UrlWith("", "", 99'999);
  EXPECT_THAT(RedisClient::Make(no_such_db),
              StatusIs(StatusCode::kConfigError, HasSubstr("SELECT 99999: ERR DB index")));
}

TEST(RedisClientTest, NoServerIsUnavailableNamingTheUrl) {
  RedisOptions options;
  options.url = "redis://:Secret-3@127.0.0.1:1/0";  // nothing listens on port 1
  EXPECT_THAT(RedisClient::Make(options),
              StatusIs(StatusCode::kUnavailable,
                       AllOf(HasSubstr("redis://:***@127.0.0.1:1/0: connecting: "),
                             Not(HasSubstr("Secret-3")))));
}

}  // namespace
}  // namespace sluice::redis
