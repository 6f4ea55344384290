// URL parsing and redaction, and the classification of error replies: no server needed.

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/connectors/redis/redis_client.h"
#include "sluice/connectors/redis/redis_url.h"
#include "sluice/connectors/redis/stream_decode.h"
#include "sluice/connectors/redis/stream_sink.h"
#include "sluice/core/time.h"
#include "sluice/testing/matchers.h"

namespace sluice::redis {
namespace {

using ::sluice::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(ParseRedisUrlTest, HostAlone) {
  ASSERT_OK_AND_ASSIGN(RedisUrl url, ParseRedisUrl("redis://cache.internal"));
  EXPECT_EQ(url.host, "cache.internal");
  EXPECT_EQ(url.port, 6379);
  EXPECT_EQ(url.db, 0);
  EXPECT_EQ(url.user, "");
  EXPECT_EQ(url.password, "");
}

TEST(ParseRedisUrlTest, EveryPart) {
  ASSERT_OK_AND_ASSIGN(RedisUrl url, ParseRedisUrl("redis://app:s3cret@10.0.0.5:6380/7"));
  EXPECT_EQ(url.host, "10.0.0.5");
  EXPECT_EQ(url.port, 6380);
  EXPECT_EQ(url.db, 7);
  EXPECT_EQ(url.user, "app");
  EXPECT_EQ(url.password, "s3cret");
}

TEST(ParseRedisUrlTest, PasswordWithoutUser) {
  ASSERT_OK_AND_ASSIGN(RedisUrl url, ParseRedisUrl("redis://:pw@127.0.0.1:1234/0"));
  EXPECT_EQ(url.user, "");
  EXPECT_EQ(url.password, "pw");
  EXPECT_EQ(url.port, 1234);
}

TEST(ParseRedisUrlTest, UserWithoutPassword) {
  ASSERT_OK_AND_ASSIGN(RedisUrl url, ParseRedisUrl("redis://reader@h/2"));
  EXPECT_EQ(url.user, "reader");
  EXPECT_EQ(url.password, "");
  EXPECT_EQ(url.host, "h");
  EXPECT_EQ(url.db, 2);
}

TEST(ParseRedisUrlTest, PercentEncodedAndUnescapedPasswordCharacters) {
  ASSERT_OK_AND_ASSIGN(RedisUrl encoded, ParseRedisUrl("redis://u%40x:p%3Aw%2F%40d@h:1/0"));
  EXPECT_EQ(encoded.user, "u@x");
  EXPECT_EQ(encoded.password, "p:w/@d");
  // The last '@' ends the userinfo, so '@', ':' and '/' in a password need no escape.
  ASSERT_OK_AND_ASSIGN(RedisUrl raw, ParseRedisUrl("redis://:a@b:c/d@h:2/3"));
  EXPECT_EQ(raw.password, "a@b:c/d");
  EXPECT_EQ(raw.host, "h");
  EXPECT_EQ(raw.port, 2);
  EXPECT_EQ(raw.db, 3);
}

TEST(ParseRedisUrlTest, Ipv6HostAndTrailingSlash) {
  ASSERT_OK_AND_ASSIGN(RedisUrl url, ParseRedisUrl("redis://[::1]:7000/"));
  EXPECT_EQ(url.host, "::1");
  EXPECT_EQ(url.port, 7000);
  EXPECT_EQ(url.db, 0);
  ASSERT_OK_AND_ASSIGN(RedisUrl no_port, ParseRedisUrl("redis://[fe80::2]/4"));
  EXPECT_EQ(no_port.host, "fe80::2");
  EXPECT_EQ(no_port.port, 6379);
  EXPECT_EQ(no_port.db, 4);
}

TEST(ParseRedisUrlTest, EveryErrorIsAConfigErrorSayingWhatIsWrong) {
  const struct {
    const char* url;
    const char* why;
  } cases[] = {
      {"rediss://h:6379/0", "TLS (rediss://) is not supported"},
      {"unix:///tmp/redis.sock", "expected redis://"},
      {"http://h:6379", "expected redis://"},
      {"h:6379", "expected redis://"},
      {"", "expected redis://"},
      {"redis://", "no host"},
      {"redis://:pw@/0", "no host"},
      {"redis://h:/0", "empty port"},
      {"redis://h:abc/0", "port 'abc' is not a number in 1..65535"},
      {"redis://h:0/0", "port '0' is not a number in 1..65535"},
      {"redis://h:65536/0", "port '65536' is not a number in 1..65535"},
      {"redis://h:-1/0", "port '-1' is not a number"},
      {"redis://h:63 79/0", "port '63 79' is not a number"},
      {"redis://h:6379/x", "database 'x' is not a number"},
      {"redis://h:6379/-1", "database '-1' is not a number"},
      {"redis://h:6379/1/2", "database '1/2' is not a number"},
      {"redis://h:6379/0?timeout=1", "query strings and fragments are not supported"},
      {"redis://h/0#frag", "query strings and fragments are not supported"},
      {"redis://[::1/0", "unterminated '['"},
      {"redis://[::1]x/0", "expected ':port' after ']'"},
      {"redis://[::1]:/0", "empty port"},
      {"redis://u%4:pw@h/0", "bad percent escape in the user name"},
      {"redis://u:p%zz@h/0", "bad percent escape in the password"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.url);
    EXPECT_THAT(ParseRedisUrl(c.url), StatusIs(StatusCode::kConfigError,
                                               AllOf(HasSubstr("Redis URL '"), HasSubstr(c.why))));
  }
}

TEST(ParseRedisUrlTest, ErrorsNeverShowThePassword) {
  for (const char* url : {"redis://app:TopSecret9@h:99999/0", "rediss://:TopSecret9@h/0",
                          "redis://:TopSecret9@h/zz", "redis://:TopSecret9@h/0?x=1"}) {
    SCOPED_TRACE(url);
    const auto parsed = ParseRedisUrl(url);
    ASSERT_FALSE(parsed.ok());
    EXPECT_THAT(parsed.status().message(), AllOf(Not(HasSubstr("TopSecret9")), HasSubstr("***")));
  }
}

TEST(RedactUrlTest, MasksThePasswordOnly) {
  EXPECT_EQ(RedactUrl("redis://app:s3cret@h:6380/7"), "redis://app:***@h:6380/7");
  EXPECT_EQ(RedactUrl("redis://:s3cret@h"), "redis://:***@h");
  EXPECT_EQ(RedactUrl("redis://:a@b:c/d@h:2/3"), "redis://:***@h:2/3");
  EXPECT_EQ(RedactUrl("rediss://u:pw@h/0"), "rediss://u:***@h/0");
}

TEST(RedactUrlTest, LeavesUrlsWithoutPasswordAlone) {
  EXPECT_EQ(RedactUrl("redis://h:6379/0"), "redis://h:6379/0");
  EXPECT_EQ(RedactUrl("redis://reader@h:6379/0"), "redis://reader@h:6379/0");
  EXPECT_EQ(RedactUrl("redis://[::1]:6379/0"), "redis://[::1]:6379/0");
  EXPECT_EQ(RedactUrl("not a url"), "not a url");
  EXPECT_EQ(RedactUrl(""), "");
}

TEST(ClassifyRedisErrorTest, ByFirstWord) {
  EXPECT_EQ(ClassifyRedisError("WRONGTYPE Operation against a key holding the wrong kind of value"),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ClassifyRedisError("ERR unknown command 'FOO'"), StatusCode::kInvalidArgument);
  EXPECT_EQ(ClassifyRedisError("BUSYGROUP Consumer Group name already exists"),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ClassifyRedisError("NOGROUP No such key 's' or consumer group 'g'"),
            StatusCode::kNotFound);
  EXPECT_EQ(ClassifyRedisError("WRONGPASS invalid username-password pair"),
            StatusCode::kPermissionDenied);
  EXPECT_EQ(ClassifyRedisError("NOAUTH Authentication required."), StatusCode::kPermissionDenied);
  EXPECT_EQ(ClassifyRedisError("NOPERM this user has no permissions"),
            StatusCode::kPermissionDenied);
  EXPECT_EQ(ClassifyRedisError("LOADING Redis is loading the dataset in memory"),
            StatusCode::kUnavailable);
  EXPECT_EQ(ClassifyRedisError("BUSY Redis is busy running a script"), StatusCode::kUnavailable);
  EXPECT_EQ(ClassifyRedisError("TRYAGAIN"), StatusCode::kUnavailable);
  EXPECT_EQ(ClassifyRedisError("MASTERDOWN Link with MASTER is down"), StatusCode::kUnavailable);
  EXPECT_EQ(ClassifyRedisError(""), StatusCode::kInvalidArgument);
}

TEST(RedisClientTest, MakeRejectsABadUrlBeforeConnecting) {
  RedisOptions options;
  options.url = "rediss://:hunter2@h:6379/0";
  auto client = RedisClient::Make(options);
  EXPECT_THAT(client, StatusIs(StatusCode::kConfigError, AllOf(HasSubstr("rediss://:***@h:6379/0"),
                                                               Not(HasSubstr("hunter2")))));
}

std::string FieldText(ColumnBuilder b) {
  Column c = b.Finish();
  std::string out;
  AppendFieldText(c, 0, &out);
  return out;
}

TEST(AppendFieldTextTest, EachTypeAsItsText) {
  ColumnBuilder i(TypeId::kInt64);
  i.AppendInt64(-42);
  EXPECT_EQ(FieldText(std::move(i)), "-42");
  ColumnBuilder f(TypeId::kFloat64);
  f.AppendFloat64(0.1);
  EXPECT_EQ(FieldText(std::move(f)), "0.1");
  ColumnBuilder f2(TypeId::kFloat64);
  f2.AppendFloat64(1.0 / 3.0);
  EXPECT_EQ(std::stod(FieldText(std::move(f2))), 1.0 / 3.0);  // shortest round trip
  ColumnBuilder b(TypeId::kBool);
  b.AppendBool(true);
  EXPECT_EQ(FieldText(std::move(b)), "true");
  ColumnBuilder s(TypeId::kString);
  s.AppendString(std::string_view("a\0b", 3));
  EXPECT_EQ(FieldText(std::move(s)), std::string("a\0b", 3));
  ColumnBuilder t(TypeId::kTimestamp);
  ASSERT_OK_AND_ASSIGN(int64_t at, ParseTimestamp("2026-01-02T03:04:05.000006Z"));
  t.AppendTimestamp(at);
  EXPECT_EQ(FieldText(std::move(t)), "2026-01-02T03:04:05.000006Z");
  ColumnBuilder whole(TypeId::kTimestamp);
  whole.AppendTimestamp(at - 6);
  EXPECT_EQ(FieldText(std::move(whole)), "2026-01-02T03:04:05.000000Z");
  ColumnBuilder before(TypeId::kTimestamp);
  before.AppendTimestamp(-1);
  EXPECT_EQ(FieldText(std::move(before)), "1969-12-31T23:59:59.999999Z");
}

// A hand-built flat field array [name, value, ...], as XREADGROUP returns an entry's fields.
class FakeFields {
 public:
  explicit FakeFields(std::vector<std::string> texts) : texts_(std::move(texts)) {
    items_.resize(texts_.size());
    for (size_t i = 0; i < texts_.size(); ++i) {
      items_[i] = redisReply{};
      items_[i].type = REDIS_REPLY_STRING;
      items_[i].str = texts_[i].data();
      items_[i].len = texts_[i].size();
      pointers_.push_back(&items_[i]);
    }
    array_ = redisReply{};
    array_.type = REDIS_REPLY_ARRAY;
    array_.elements = pointers_.size();
    array_.element = pointers_.data();
  }
  RedisValue value() const { return RedisValue(&array_); }

 private:
  std::vector<std::string> texts_;
  std::vector<redisReply> items_;
  std::vector<redisReply*> pointers_;
  redisReply array_;
};

SchemaPtr ReadingSchema() {
  return MakeSchema({{"meter_id", TypeId::kString, true},
                     {"ts", TypeId::kTimestamp, true},
                     {"kwh", TypeId::kFloat64, true},
                     {"n", TypeId::kInt64, true},
                     {"ok", TypeId::kBool, true}});
}

TEST(EntryDecoderTest, FieldsByNameInAnyOrderMissingIsNullExtraIgnored) {
  EntryDecoder d(ReadingSchema());
  FakeFields a({"kwh", "0.25", "meter_id", "m-000001", "ts", "2026-01-02T03:04:05.000006Z", "n",
                "-7", "ok", "true", "extra", "x"});
  FakeFields b({"meter_id", "m-000002"});
  // a's order again after b's, and a's places holding other fields.
  FakeFields c(
      {"kwh", "1.5", "meter_id", "m-000003", "n", "4", "ts", "2026-01-02T03:04:05.000006Z"});
  ASSERT_OK(d.Append(a.value()));
  ASSERT_OK(d.Append(b.value()));
  ASSERT_OK(d.Append(c.value()));
  BatchPtr batch = d.Finish();
  ASSERT_EQ(batch->num_rows(), 3);
  EXPECT_EQ(batch->column(0).GetView(2), "m-000003");
  EXPECT_EQ(batch->column(2).GetFloat64(2), 1.5);
  EXPECT_EQ(batch->column(3).GetInt64(2), 4);
  EXPECT_EQ(batch->column(1).GetInt64(2), batch->column(1).GetInt64(0));
  EXPECT_TRUE(batch->column(4).IsNull(2));
  EXPECT_EQ(batch->column(0).GetView(0), "m-000001");
  ASSERT_OK_AND_ASSIGN(int64_t ts, ParseTimestamp("2026-01-02T03:04:05.000006Z"));
  EXPECT_EQ(batch->column(1).GetInt64(0), ts);
  EXPECT_EQ(batch->column(2).GetFloat64(0), 0.25);
  EXPECT_EQ(batch->column(3).GetInt64(0), -7);
  EXPECT_TRUE(batch->column(4).GetBool(0));
  EXPECT_EQ(batch->column(0).GetView(1), "m-000002");
  for (int c = 1; c < 5; ++c) EXPECT_TRUE(batch->column(c).IsNull(1)) << c;
  EXPECT_EQ(d.Finish()->num_rows(), 0);  // Finish starts anew
}

TEST(EntryDecoderTest, ABadValueNamesTheFieldAndAppendsNothing) {
  EntryDecoder d(ReadingSchema());
  FakeFields bad_float({"meter_id", "m-1", "kwh", "12x"});
  FakeFields bad_int({"n", "1.5"});
  FakeFields bad_ts({"ts", "yesterday"});
  FakeFields bad_bool({"ok", "yes"});
  FakeFields empty_float({"kwh", ""});
  EXPECT_THAT(d.Append(bad_float.value()),
              StatusIs(StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("field 'kwh'"), HasSubstr("'12x'"), HasSubstr("float64"))));
  EXPECT_THAT(d.Append(bad_int.value()),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("field 'n'")));
  EXPECT_THAT(d.Append(bad_ts.value()),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("field 'ts'")));
  EXPECT_THAT(d.Append(bad_bool.value()),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("field 'ok'")));
  EXPECT_THAT(d.Append(empty_float.value()),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("field 'kwh'")));
  EXPECT_EQ(d.rows(), 0);
  FakeFields good({"meter_id", "m-2", "kwh", "1e-3"});
  ASSERT_OK(d.Append(good.value()));
  BatchPtr batch = d.Finish();
  ASSERT_EQ(batch->num_rows(), 1);
  EXPECT_EQ(batch->column(0).GetView(0), "m-2");
  EXPECT_EQ(batch->column(2).GetFloat64(0), 0.001);
}

TEST(EntryDecoderTest, SinkTextsDecodeToTheSameValues) {
  // What the sink writes, the source reads back exactly (floats and µs timestamps).
  ColumnBuilder f(TypeId::kFloat64), t(TypeId::kTimestamp);
  f.AppendFloat64(221.09897510897426);
  t.AppendTimestamp(1'796'331'329'794'081);
  Column fc = f.Finish(), tc = t.Finish();
  std::string ftext, ttext;
  AppendFieldText(fc, 0, &ftext);
  AppendFieldText(tc, 0, &ttext);
  EntryDecoder d(ReadingSchema());
  FakeFields e({"kwh", ftext, "ts", ttext});
  ASSERT_OK(d.Append(e.value()));
  BatchPtr batch = d.Finish();
  EXPECT_EQ(batch->column(2).GetFloat64(0), 221.09897510897426);
  EXPECT_EQ(batch->column(1).GetInt64(0), 1'796'331'329'794'081);
}

TEST(EntryDecoderTest, AJsonFieldHoldsTheColumns) {
  EntryDecoder d(MakeSchema({{"meter_id", TypeId::kString, true},
                             {"ts", TypeId::kTimestamp, true},
                             {"kwh", TypeId::kFloat64, true},
                             {"n", TypeId::kInt64, true},
                             {"ok", TypeId::kBool, true},
                             {"tags", TypeId::kJson, true}}),
                 "payload");
  FakeFields a(
      {"source", "x", "payload",
       R"({"meter_id":"m-ü1","ts":"2026-01-02T03:04:05.000006Z","kwh":0.1,"n":-9007199254740993,)"
       R"("ok":true,"tags":{"a":[1,"b"]},"other":5})"});
  FakeFields b({"payload", R"({"kwh":null,"meter_id":"m-2"})"});
  ASSERT_OK(d.Append(a.value()));
  ASSERT_OK(d.Append(b.value()));
  BatchPtr batch = d.Finish();
  ASSERT_EQ(batch->num_rows(), 2);
  EXPECT_EQ(batch->column(0).GetView(0), "m-ü1");
  ASSERT_OK_AND_ASSIGN(int64_t ts, ParseTimestamp("2026-01-02T03:04:05.000006Z"));
  EXPECT_EQ(batch->column(1).GetInt64(0), ts);
  EXPECT_EQ(batch->column(2).GetFloat64(0), 0.1);
  EXPECT_EQ(batch->column(3).GetInt64(0), -9007199254740993);  // not through a double
  EXPECT_TRUE(batch->column(4).GetBool(0));
  EXPECT_EQ(batch->column(5).GetView(0), R"({"a":[1,"b"]})");
  EXPECT_EQ(batch->column(0).GetView(1), "m-2");
  for (int c = 1; c < 6; ++c) EXPECT_TRUE(batch->column(c).IsNull(1)) << c;

  FakeFields missing({"other", "{}"});
  FakeFields not_json({"payload", "{oops"});
  FakeFields not_object({"payload", "[1]"});
  FakeFields bad_value({"payload", R"({"n":"seven"})"});
  EXPECT_THAT(d.Append(missing.value()),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("no field 'payload'")));
  EXPECT_THAT(d.Append(not_json.value()),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("not JSON")));
  EXPECT_THAT(d.Append(not_object.value()),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("not a JSON object")));
  EXPECT_THAT(d.Append(bad_value.value()),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("field 'n'")));
  EXPECT_EQ(d.rows(), 0);
}

TEST(FlatReplyTest, TokensOfAStreamReplyFedByteByByte) {
  // An XREADGROUP reply as Redis sends it: one stream, an entry with fields (a value holding
  // CR LF, an empty one) and an entry deleted while pending (nil fields).
  const std::string bytes =
      "*1\r\n*2\r\n$7\r\nreading\r\n*2\r\n"
      "*2\r\n$3\r\n1-1\r\n*4\r\n$3\r\nkwh\r\n$4\r\n1\r\n5\r\n$4\r\nnote\r\n$0\r\n\r\n"
      "*2\r\n$3\r\n1-2\r\n*-1\r\n"
      ":7\r\n";  // and the start of the next reply
  redisReader* reader = redisReaderCreateWithFunctions(FlatReply::Functions());
  FlatReply flat;
  void* root = nullptr;
  {
    FlatReply::Filling filling(reader, &flat);
    for (char c : bytes) {
      ASSERT_EQ(redisReaderFeed(reader, &c, 1), REDIS_OK);
      if (root == nullptr) {
        ASSERT_EQ(redisReaderGetReply(reader, &root), REDIS_OK);
      }
    }
  }
  ASSERT_NE(root, nullptr);
  const auto& t = flat.tokens();
  ASSERT_EQ(t.size(), 14u);
  EXPECT_EQ(t[0].type, REDIS_REPLY_ARRAY);
  EXPECT_EQ(t[0].value, 1);
  EXPECT_EQ(flat.text(2), "reading");
  EXPECT_EQ(t[3].value, 2);  // entries
  EXPECT_EQ(flat.text(5), "1-1");
  EXPECT_EQ(t[6].value, 4);
  EXPECT_EQ(flat.text(8), "1\r\n5");
  EXPECT_EQ(flat.text(9), "note");
  EXPECT_EQ(t[10].type, REDIS_REPLY_STRING);
  EXPECT_EQ(flat.text(10), "");
  EXPECT_EQ(flat.text(12), "1-2");
  EXPECT_EQ(t[13].type, REDIS_REPLY_NIL);
  EXPECT_TRUE(flat.error().empty());
  // The next reply, an error, is its own.
  FlatReply next;
  {
    FlatReply::Filling filling(reader, &next);
    const std::string err = "-NOGROUP No such key\r\n";
    ASSERT_EQ(redisReaderFeed(reader, err.data(), err.size()), REDIS_OK);
    ASSERT_EQ(redisReaderGetReply(reader, &root), REDIS_OK);
    ASSERT_EQ(next.tokens().size(), 1u);
    EXPECT_EQ(next.tokens()[0].value, 7);
    ASSERT_EQ(redisReaderGetReply(reader, &root), REDIS_OK);
  }
  EXPECT_EQ(next.tokens().size(), 2u);
  EXPECT_EQ(next.text(1), "NOGROUP No such key");
  redisReaderFree(reader);
}

}  // namespace
}  // namespace sluice::redis
