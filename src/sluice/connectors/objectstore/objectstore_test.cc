// Unit tests of the object store layer: no server needed.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <limits>
#include <optional>
#include <sstream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/connectors/objectstore/fault_proxy.h"
#include "sluice/connectors/objectstore/local_store.h"
#include "sluice/connectors/objectstore/objectstore.h"
#include "sluice/connectors/objectstore/s3_client.h"
#include "sluice/core/time.h"
#include "sluice/io/compression.h"
#include "sluice/io/encoded.h"
#include "sluice/testing/matchers.h"
#include "sluice/testing/ports.h"
#include "sluice/transforms/encode.h"

namespace sluice {
namespace {

using ::sluice::testing::IsOk;
using ::sluice::testing::StatusIs;
using ::testing::_;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

namespace fs = std::filesystem;

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> KeysOf(const std::vector<ObjectInfo>& infos) {
  std::vector<std::string> keys;
  keys.reserve(infos.size());
  for (const auto& i : infos) keys.push_back(i.key);
  return keys;
}

AckSet MakeAcks(const std::shared_ptr<AckQueue>& queue, uint64_t seq) {
  return AckSet(std::make_shared<AckHandle>(queue, seq));
}

std::vector<AckQueue::Event> Events(const std::shared_ptr<AckQueue>& queue) {
  std::vector<AckQueue::Event> out;
  queue->Drain(&out, /*max_wait_ms=*/0);
  return out;
}

MATCHER_P2(AckEvent, seq, delivered, "") { return arg.seq == seq && arg.delivered == delivered; }

class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(::testing::TempDir()) /
           fmt::format("sluice_objectstore_{}_{}", info->name(), getpid());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
};

// ---------------------------------------------------------------------------------------------
// URLs, keys, hashes

TEST(ObjectStoreUrlTest, ParsesS3FileAndPlainPaths) {
  ASSERT_OK_AND_ASSIGN(ObjectStoreUrl s3, ParseObjectStoreUrl("s3://my-bucket/archive/audit/"));
  EXPECT_EQ(s3.scheme, ObjectStoreUrl::Scheme::kS3);
  EXPECT_EQ(s3.bucket, "my-bucket");
  EXPECT_EQ(s3.prefix, "archive/audit");
  ASSERT_OK_AND_ASSIGN(ObjectStoreUrl bare, ParseObjectStoreUrl("s3://b"));
  EXPECT_EQ(bare.prefix, "");
  ASSERT_OK_AND_ASSIGN(ObjectStoreUrl file, ParseObjectStoreUrl("file:///var/archive"));
  EXPECT_EQ(file.scheme, ObjectStoreUrl::Scheme::kLocal);
  EXPECT_EQ(file.root, "/var/archive");
  ASSERT_OK_AND_ASSIGN(ObjectStoreUrl path, ParseObjectStoreUrl("out/archive"));
  EXPECT_EQ(path.root, "out/archive");

  EXPECT_THAT(ParseObjectStoreUrl("s3:///x"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("names no bucket")));
  EXPECT_THAT(ParseObjectStoreUrl("s3://bad bucket/x"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("not a valid bucket name")));
  EXPECT_THAT(ParseObjectStoreUrl("s3://b/a/../x"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("prefix")));
  EXPECT_THAT(ParseObjectStoreUrl("gs://b/x"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("unsupported scheme 'gs'")));
  EXPECT_THAT(ParseObjectStoreUrl("file://relative"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("absolute path")));
}

TEST(ObjectKeyTest, ValidatesKeys) {
  EXPECT_OK(ValidateObjectKey("a/b/c.jsonl.gz"));
  EXPECT_OK(ValidateObjectKey("x"));
  EXPECT_OK(ValidateObjectKey("a..b/c"));
  EXPECT_THAT(ValidateObjectKey(""), StatusIs(StatusCode::kInvalidArgument, HasSubstr("empty")));
  EXPECT_THAT(ValidateObjectKey("/etc/passwd"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("absolute")));
  EXPECT_THAT(ValidateObjectKey("../x"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("'..' segment")));
  EXPECT_THAT(ValidateObjectKey("a/../../x"), StatusIs(StatusCode::kInvalidArgument, _));
  EXPECT_THAT(ValidateObjectKey("a//b"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("empty, '.' or '..' segment")));
  EXPECT_THAT(ValidateObjectKey("a/./b"), StatusIs(StatusCode::kInvalidArgument, _));
  EXPECT_THAT(ValidateObjectKey("dir/"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("ends with '/'")));
  EXPECT_THAT(ValidateObjectKey(std::string("a\0b", 3)),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("NUL")));
  EXPECT_THAT(ValidateObjectKey(std::string(1025, 'k')), StatusIs(StatusCode::kInvalidArgument, _));
}

TEST(ObjectKeyTest, JoinsWithoutDoubleSlashes) {
  EXPECT_EQ(JoinKey("", "a/b"), "a/b");
  EXPECT_EQ(JoinKey("p", "a"), "p/a");
  EXPECT_EQ(JoinKey("p/", "/a"), "p/a");
  EXPECT_EQ(JoinKey("s3://bucket", "k"), "s3://bucket/k");
}

TEST(Sha256Test, MatchesKnownDigests) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  Sha256 h;
  h.Update("a");
  h.Update("");
  h.Update("bc");
  EXPECT_EQ(h.HexDigest(), Sha256Hex("abc"));
  h.Update("abc");  // reusable after HexDigest
  EXPECT_EQ(h.HexDigest(), Sha256Hex("abc"));
}

// ---------------------------------------------------------------------------------------------
// LocalStore

class LocalStoreTest : public TempDirTest {};

TEST_F(LocalStoreTest, PutHeadGetListDelete) {
  ASSERT_OK_AND_ASSIGN(auto store, LocalStore::Make("file://" + dir_.string()));
  EXPECT_FALSE(fs::exists(dir_)) << "created before the first Put";
  EXPECT_EQ(store->Describe(), "file://" + dir_.string());
  ASSERT_OK(store->Put("a/x.jsonl", "hello\n"));
  ASSERT_OK(store->Put("a/y.jsonl", "world!\n"));
  ASSERT_OK(store->Put("b/z.jsonl", ""));
  EXPECT_EQ(ReadFile(dir_ / "a/x.jsonl"), "hello\n");

  ASSERT_OK_AND_ASSIGN(ObjectInfo info, store->Head("a/y.jsonl"));
  EXPECT_EQ(info.key, "a/y.jsonl");
  EXPECT_EQ(info.size, 7);
  EXPECT_FALSE(info.etag.empty());
  EXPECT_THAT(store->Head("a/none"), StatusIs(StatusCode::kNotFound, HasSubstr("a/none")));
  EXPECT_THAT(store->Head("a"), StatusIs(StatusCode::kNotFound, _)) << "a directory is no object";

  std::string got;
  ASSERT_OK(store->Get("a/x.jsonl", [&](std::string_view chunk) {
    got += chunk;
    return Status::OK();
  }));
  EXPECT_EQ(got, "hello\n");
  EXPECT_THAT(store->Get("nope", [](std::string_view) { return Status::OK(); }),
              StatusIs(StatusCode::kNotFound, _));

  ASSERT_OK_AND_ASSIGN(auto all, store->List(""));
  EXPECT_THAT(KeysOf(all), ElementsAre("a/x.jsonl", "a/y.jsonl", "b/z.jsonl"));
  EXPECT_EQ(all[1].size, 7);
  ASSERT_OK_AND_ASSIGN(auto under_a, store->List("a/"));
  EXPECT_THAT(KeysOf(under_a), ElementsAre("a/x.jsonl", "a/y.jsonl"));
  ASSERT_OK_AND_ASSIGN(auto partial, store->List("a/y"));
  EXPECT_THAT(KeysOf(partial), ElementsAre("a/y.jsonl"));
  ASSERT_OK_AND_ASSIGN(auto missing, store->List("c/"));
  EXPECT_TRUE(missing.empty());

  ASSERT_OK(store->Delete("b/z.jsonl"));
  EXPECT_FALSE(fs::exists(dir_ / "b")) << "the emptied directory is removed";
  EXPECT_OK(store->Delete("b/z.jsonl"));  // deleting an absent object is OK, as in S3
  ASSERT_OK_AND_ASSIGN(auto left, store->List(""));
  EXPECT_THAT(KeysOf(left), ElementsAre("a/x.jsonl", "a/y.jsonl"));
}

TEST_F(LocalStoreTest, RejectsKeysThatEscapeTheRoot) {
  ASSERT_OK_AND_ASSIGN(auto store, LocalStore::Make(dir_.string()));
  EXPECT_THAT(store->Put("../escape", "x"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("'..' segment")));
  EXPECT_THAT(store->Put("/tmp/abs", "x"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("absolute")));
  EXPECT_THAT(store->Head("a/../../b"), StatusIs(StatusCode::kInvalidArgument, _));
  EXPECT_THAT(store->Delete(".."), StatusIs(StatusCode::kInvalidArgument, _));
  EXPECT_FALSE(fs::exists(dir_.parent_path() / "escape"));
}

TEST_F(LocalStoreTest, OverwritesAtomicallyAndLeavesNoTemporaryFiles) {
  ASSERT_OK_AND_ASSIGN(auto store, LocalStore::Make(dir_.string()));
  const std::string a(1 << 20, 'a');
  const std::string b(1 << 20, 'b');
  ASSERT_OK(store->Put("obj", a));
  std::atomic<bool> done{false};
  std::atomic<int> torn{0};
  std::thread reader([&] {
    while (!done.load()) {
      std::string got;
      Status st = store->Get("obj", [&](std::string_view chunk) {
        got += chunk;
        return Status::OK();
      });
      if (!st.ok() || (got != a && got != b)) torn.fetch_add(1);
    }
  });
  for (int i = 0; i < 40; ++i) ASSERT_OK(store->Put("obj", i % 2 == 0 ? b : a));
  done.store(true);
  reader.join();
  EXPECT_EQ(torn.load(), 0) << "a reader saw a partial object";
  int files = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir_)) {
    EXPECT_EQ(e.path().filename().string().find(kLocalTempMarker), std::string::npos);
    ++files;
  }
  EXPECT_EQ(files, 1);
}

TEST_F(LocalStoreTest, ListSkipsTemporaryFilesOfInterruptedWrites) {
  ASSERT_OK_AND_ASSIGN(auto store, LocalStore::Make(dir_.string()));
  ASSERT_OK(store->Put("d/done.jsonl", "1\n"));
  std::ofstream(dir_ / fmt::format("d/crashed.jsonl{}123-0", kLocalTempMarker)) << "partial";
  ASSERT_OK_AND_ASSIGN(auto all, store->List("d/"));
  EXPECT_THAT(KeysOf(all), ElementsAre("d/done.jsonl"));
}

TEST_F(LocalStoreTest, GetStreamsInChunksAndStopsOnSinkError) {
  ASSERT_OK_AND_ASSIGN(auto store, LocalStore::Make(dir_.string()));
  std::string big(3 << 20, 'x');
  big[12345] = 'y';
  ASSERT_OK(store->Put("big", big));
  int chunks = 0;
  std::string got;
  ASSERT_OK(store->Get("big", [&](std::string_view chunk) {
    ++chunks;
    got += chunk;
    return Status::OK();
  }));
  EXPECT_EQ(got, big);
  EXPECT_GE(chunks, 3);
  int calls = 0;
  EXPECT_THAT(store->Get("big",
                         [&](std::string_view) {
                           ++calls;
                           return Status::Invalid("consumer says stop");
                         }),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("consumer says stop")));
  EXPECT_EQ(calls, 1);
}

TEST_F(LocalStoreTest, MakeObjectStoreOpensALocalStoreForPathsAndFileUrls) {
  ObjectStoreOptions options;
  options.url = "file://" + dir_.string();
  ASSERT_OK_AND_ASSIGN(auto store, MakeObjectStore(options));
  EXPECT_EQ(store->Describe(), "file://" + dir_.string());
  options.url = dir_.string();
  ASSERT_OK_AND_ASSIGN(auto plain, MakeObjectStore(options));
  ASSERT_OK(plain->Put("k", "v"));
  EXPECT_EQ(ReadFile(dir_ / "k"), "v");
}

// ---------------------------------------------------------------------------------------------
// Key templates

TEST(KeyTemplateTest, ExpandsEveryPlaceholder) {
  ObjectKeyFields f;
  f.node = "archive";
  f.date = "2026-11-24";
  f.seq = 7;
  f.first_key = "100";
  f.last_key = "199";
  f.database = "shop";
  f.table = "audit_log";
  f.batch_id = "audit_log-100";
  f.ext = ".jsonl.gz";
  EXPECT_EQ(ExpandKeyTemplate(kDefaultObjectKeyTemplate, f),
            "shop/audit_log/2026-11-24/100-199.jsonl.gz");
  EXPECT_EQ(ExpandKeyTemplate("{node}/{date}/{seq}_{first_key}-{last_key}{ext}", f),
            "archive/2026-11-24/7_100-199.jsonl.gz");
  EXPECT_EQ(ExpandKeyTemplate("{database}/{batch_id}{ext}", f), "shop/audit_log-100.jsonl.gz");
  EXPECT_TRUE(KeyTemplateUses(kDefaultObjectKeyTemplate, "first_key"));
  EXPECT_TRUE(KeyTemplateUses(kDefaultObjectKeyTemplate, "table"));
  EXPECT_FALSE(KeyTemplateUses(kDefaultObjectKeyTemplate, "seq"));
}

TEST(KeyTemplateTest, SegmentsOfAbsentTagsAreDropped) {
  ObjectKeyFields f;
  f.date = "2026-11-24";
  f.first_key = "1";
  f.last_key = "9";
  f.ext = ".csv";
  EXPECT_EQ(ExpandKeyTemplate(kDefaultObjectKeyTemplate, f), "2026-11-24/1-9.csv");
  EXPECT_EQ(ExpandKeyTemplate("x/{database}/{table}/", f), "x");
  f.table = "t";
  EXPECT_EQ(ExpandKeyTemplate(kDefaultObjectKeyTemplate, f), "t/2026-11-24/1-9.csv");
}

TEST(KeyTemplateTest, RejectsUnknownPlaceholdersAndBadBraces) {
  EXPECT_OK(ValidateKeyTemplate(kDefaultObjectKeyTemplate));
  EXPECT_THAT(ValidateKeyTemplate("{node}/{tabel}.gz"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("unknown placeholder {tabel}")));
  EXPECT_THAT(ValidateKeyTemplate("{node"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("unclosed")));
  EXPECT_THAT(ValidateKeyTemplate("node}"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("unbalanced")));
  EXPECT_THAT(ValidateKeyTemplate(""), StatusIs(StatusCode::kInvalidArgument, _));
}

// ---------------------------------------------------------------------------------------------
// S3 pieces: error documents, status mapping, listing, encoding

TEST(S3ParseTest, ParsesErrorDocuments) {
  const auto e = s3::ParseError(
      R"(<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>NoSuchKey</Code><Message>The specified key does &quot;not&quot; exist.</Message><Key>a/b</Key></Error>)");
  EXPECT_EQ(e.code, "NoSuchKey");
  EXPECT_EQ(e.message, "The specified key does \"not\" exist.");
  EXPECT_EQ(s3::ParseError("").code, "");
  EXPECT_EQ(s3::ParseError("<html>bad gateway</html>").code, "");
  EXPECT_EQ(s3::XmlText("<A><B x=\"1\">v&amp;w&#65;&#x42;</B></A>", "B"), "v&wAB");
  EXPECT_EQ(s3::XmlText("<A><Prefix/><B>1</B></A>", "Prefix"), "");
}

TEST(S3ParseTest, MapsHttpStatusesToStatusCodes) {
  const std::string denied =
      "<Error><Code>InvalidAccessKeyId</Code><Message>The AWS Access Key Id you provided does "
      "not exist in our records.</Message><AWSAccessKeyId>AKIDEXAMPLE</AWSAccessKeyId></Error>";
  Status st = s3::StatusFromHttp("PUT", "s3://b/k", 403, denied);
  EXPECT_THAT(st, StatusIs(StatusCode::kPermissionDenied,
                           AllOf(HasSubstr("S3 PUT s3://b/k: HTTP 403 InvalidAccessKeyId"),
                                 Not(HasSubstr("AKIDEXAMPLE")))));
  EXPECT_THAT(s3::StatusFromHttp("GET", "s3://b/k", 404,
                                 "<Error><Code>NoSuchKey</Code><Message>m</Message></Error>"),
              StatusIs(StatusCode::kNotFound, HasSubstr("NoSuchKey")));
  EXPECT_THAT(
      s3::StatusFromHttp("GET", "s3://nob/k", 404, "<Error><Code>NoSuchBucket</Code></Error>"),
      StatusIs(StatusCode::kNotFound, HasSubstr("s3://nob/k: HTTP 404 NoSuchBucket")));
  EXPECT_THAT(s3::StatusFromHttp("HEAD", "s3://b/k", 404, ""),
              StatusIs(StatusCode::kNotFound, HasSubstr("HTTP 404")));
  EXPECT_THAT(s3::StatusFromHttp("PUT", "s3://b/k", 503, "<Error><Code>SlowDown</Code></Error>"),
              StatusIs(StatusCode::kUnavailable, HasSubstr("SlowDown")));
  EXPECT_THAT(s3::StatusFromHttp("PUT", "s3://b/k", 500, ""),
              StatusIs(StatusCode::kUnavailable, _));
  EXPECT_THAT(s3::StatusFromHttp("PUT", "s3://b/k", 429, ""),
              StatusIs(StatusCode::kUnavailable, _));
  EXPECT_THAT(
      s3::StatusFromHttp("PUT", "s3://b/k", 400, "<Error><Code>RequestTimeout</Code></Error>"),
      StatusIs(StatusCode::kUnavailable, _));
  EXPECT_THAT(
      s3::StatusFromHttp("PUT", "s3://b/k", 400,
                         "<Error><Code>EntityTooSmall</Code><Message>Your proposed\nupload "
                         "is smaller</Message></Error>"),
      StatusIs(StatusCode::kInvalidArgument,
               AllOf(HasSubstr("EntityTooSmall: Your proposed upload"), Not(HasSubstr("\n")))));
  EXPECT_THAT(
      s3::StatusFromHttp("PUT", "s3://b/k", 301, "<Error><Code>PermanentRedirect</Code></Error>"),
      StatusIs(StatusCode::kInvalidArgument, HasSubstr("PermanentRedirect")));
  EXPECT_THAT(s3::StatusFromHttp("PUT", "s3://b/k", 401, ""),
              StatusIs(StatusCode::kPermissionDenied, _));
}

TEST(S3ParseTest, MapsCurlErrorsToStatusCodes) {
  EXPECT_THAT(s3::StatusFromCurl("PUT", "s3://b/k", 7, "Failed to connect to 127.0.0.1 port 1"),
              StatusIs(StatusCode::kUnavailable,
                       HasSubstr("S3 PUT s3://b/k: Failed to connect to 127.0.0.1 port 1")));
  EXPECT_THAT(s3::StatusFromCurl("GET", "s3://b/k", 28, ""),
              StatusIs(StatusCode::kTimeout, HasSubstr("Timeout was reached")));
  EXPECT_THAT(s3::StatusFromCurl("GET", "s3://b/k", 6, "Could not resolve host: nowhere"),
              StatusIs(StatusCode::kUnavailable, _));
  EXPECT_THAT(s3::StatusFromCurl("GET", "s3://b/k", 56, "Recv failure: Connection reset by peer"),
              StatusIs(StatusCode::kUnavailable, _));
  EXPECT_THAT(s3::StatusFromCurl("GET", "s3://b/k", 42, ""), StatusIs(StatusCode::kCancelled, _));
  EXPECT_THAT(s3::StatusFromCurl("GET", "s3://b/k", 3, ""),
              StatusIs(StatusCode::kInvalidArgument, _));
}

TEST(S3ParseTest, ParsesListObjectsPages) {
  ASSERT_OK_AND_ASSIGN(auto page, s3::ParseListObjects(
                                      R"(<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>p/</Prefix>
<KeyCount>2</KeyCount><MaxKeys>2</MaxKeys><IsTruncated>true</IsTruncated>
<Contents><Key>p/a&amp;b.jsonl</Key><LastModified>2026-11-24T20:57:32.000Z</LastModified><ETag>&quot;b1946ac9&quot;</ETag><Size>6</Size><StorageClass>STANDARD</StorageClass></Contents>
<Contents><Key>p/c.jsonl</Key><ETag>"x-2"</ETag><Size>12345678901</Size></Contents>
<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken></ListBucketResult>)"));
  ASSERT_EQ(page.objects.size(), 2u);
  EXPECT_EQ(page.objects[0].key, "p/a&b.jsonl");
  EXPECT_EQ(page.objects[0].size, 6);
  EXPECT_EQ(page.objects[0].etag, "b1946ac9");
  EXPECT_EQ(page.objects[1].size, 12345678901);
  EXPECT_TRUE(page.truncated);
  EXPECT_EQ(page.next_marker, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
  ASSERT_OK_AND_ASSIGN(
      auto v1, s3::ParseListObjects("<ListBucketResult><Marker>a</Marker><IsTruncated>true"
                                    "</IsTruncated><Contents><Key>b</Key><Size>1</Size></Contents>"
                                    "<NextMarker>b</NextMarker></ListBucketResult>"));
  EXPECT_EQ(v1.next_marker, "b");
  EXPECT_EQ(v1.objects[0].key, "b");
  ASSERT_OK_AND_ASSIGN(auto last,
                       s3::ParseListObjects("<ListBucketResult><IsTruncated>false</IsTruncated>"
                                            "</ListBucketResult>"));
  EXPECT_TRUE(last.objects.empty());
  EXPECT_FALSE(last.truncated);
  EXPECT_THAT(s3::ParseListObjects("<Error><Code>X</Code></Error>"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("no <ListBucketResult>")));
}

TEST(S3ParseTest, UriEncodesAsSigV4Wants) {
  EXPECT_EQ(s3::UriEncode("a/b c+d~e_f.g-h", true), "a/b%20c%2Bd~e_f.g-h");
  EXPECT_EQ(s3::UriEncode("a/b", false), "a%2Fb");
  EXPECT_EQ(s3::UriEncode("é", true), "%C3%A9");
}

// Sets environment variables for one test and restores them after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    const char* old = std::getenv(name);
    if (old != nullptr) old_ = old;
    if (value == nullptr) {
      ::unsetenv(name);
    } else {
      ::setenv(name, value, 1);
    }
  }
  ~ScopedEnv() {
    if (old_.has_value()) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(S3ClientTest, NeedsCredentialsAndNeverPrintsThem) {
  ScopedEnv key("AWS_ACCESS_KEY_ID", nullptr);
  ScopedEnv secret("AWS_SECRET_ACCESS_KEY", nullptr);
  S3Options options;
  options.bucket = "b";
  EXPECT_THAT(S3Client::Make(options),
              StatusIs(StatusCode::kConfigError, HasSubstr("AWS_ACCESS_KEY_ID")));
  ScopedEnv key2("AWS_ACCESS_KEY_ID", "AKIDENV");
  ScopedEnv secret2("AWS_SECRET_ACCESS_KEY", "very-secret-from-env");
  ScopedEnv region("AWS_REGION", "eu-west-3");
  ASSERT_OK_AND_ASSIGN(auto client, S3Client::Make(options));
  EXPECT_EQ(client->Describe(), "s3://b");
  EXPECT_EQ(client->options().region, "eu-west-3");
  options.endpoint = "ftp://x";
  EXPECT_THAT(S3Client::Make(options),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("http:// or https://")));
}

TEST(S3ClientTest, RefusedConnectionsAreRetriedThenUnavailable) {
  const ::sluice::testing::RefusingPort refusing;  // a loopback port that refuses connections
  ASSERT_GT(refusing.port(), 0);
  FakeClock clock;
  S3Options options;
  options.bucket = "b";
  options.endpoint = fmt::format("http://127.0.0.1:{}", refusing.port());
  options.access_key_id = "AKID";
  options.secret_access_key = "the-secret-key";
  options.retry.max_attempts = 3;
  options.clock = &clock;
  ASSERT_OK_AND_ASSIGN(auto client, S3Client::Make(options));
  Status st = client->Put("k", "data");
  EXPECT_THAT(st, StatusIs(StatusCode::kUnavailable,
                           AllOf(HasSubstr("giving up after 3 attempts"),
                                 HasSubstr("S3 PUT s3://b/k"), Not(HasSubstr("the-secret-key")))));
  EXPECT_EQ(client->retries(), 2);
  EXPECT_EQ(client->requests(), 3);
  // 1 s, then 2 s, each with up to 10 % jitter.
  EXPECT_GE(clock.slept_micros(), 3'000'000);
  EXPECT_LE(clock.slept_micros(), 3'300'000);
}

TEST(S3ClientTest, BreakerOpensAfterConsecutiveFailuresAndRefusesAtOnce) {
  const ::sluice::testing::RefusingPort refusing;  // a loopback port that refuses connections
  ASSERT_GT(refusing.port(), 0);
  FakeClock clock;
  S3Options options;
  options.bucket = "b";
  options.endpoint = fmt::format("http://127.0.0.1:{}", refusing.port());
  options.access_key_id = "AKID";
  options.secret_access_key = "secret";
  options.retry.max_attempts = 2;
  options.breaker.failure_threshold = 3;
  options.clock = &clock;
  ASSERT_OK_AND_ASSIGN(auto client, S3Client::Make(options));
  EXPECT_THAT(client->Head("k"), StatusIs(StatusCode::kUnavailable, _));  // 2 failures
  EXPECT_EQ(client->breaker_trips(), 0);
  EXPECT_FALSE(client->breaker_open());
  EXPECT_THAT(client->Head("k"), StatusIs(StatusCode::kUnavailable, _));  // 3rd opens it
  EXPECT_EQ(client->breaker_trips(), 1);
  EXPECT_EQ(client->breaker_state(), CircuitBreaker::State::kOpen);
  EXPECT_TRUE(client->breaker_open());
  const int64_t requests = client->requests();
  EXPECT_THAT(client->Head("k"),
              StatusIs(StatusCode::kUnavailable, HasSubstr("circuit breaker open")));
  EXPECT_EQ(client->requests(), requests) << "an open breaker sends nothing";
}

// ---------------------------------------------------------------------------------------------
// The object_store sink and source over a local directory

SchemaPtr AuditSchema() {
  return MakeSchema({{"id", TypeId::kInt64}, {"ts", TypeId::kTimestamp}, {"msg", TypeId::kString}});
}

BatchPtr AuditRows(int64_t from, int64_t to) {
  ColumnBuilder id(TypeId::kInt64);
  ColumnBuilder ts(TypeId::kTimestamp);
  ColumnBuilder msg(TypeId::kString);
  for (int64_t i = from; i < to; ++i) {
    id.AppendInt64(i);
    ts.AppendTimestamp(1'700'000'000'000'000 + i * 1'000'000);
    msg.AppendString(fmt::format("event {}", i));
  }
  return Batch::MakeUnchecked(AuditSchema(), {id.Finish(), ts.Finish(), msg.Finish()}, to - from);
}

std::string Today() {
  int64_t y;
  unsigned m, d;
  CivilFromDays(NowMicros() / kMicrosPerDay, &y, &m, &d);
  return fmt::format("{:04d}-{:02d}-{:02d}", y, m, d);
}

// A store that forwards to another and can corrupt downloads or fail uploads.
class FaultyStore final : public ObjectStore {
 public:
  explicit FaultyStore(std::shared_ptr<ObjectStore> inner) : inner_(std::move(inner)) {}
  Status Put(const std::string& key, std::string_view data) override {
    if (fail_puts) return Status::Unavailable("S3 PUT {}: injected", key);
    ++puts[key];
    return inner_->Put(key, data);
  }
  Result<ObjectInfo> Head(const std::string& key) override {
    ++heads;
    SLUICE_ASSIGN_OR_RETURN(ObjectInfo info, inner_->Head(key));
    if (heads <= short_heads) --info.size;  // as a store still writing the object shows it
    if (long_heads) ++info.size;
    return info;
  }
  Status Get(const std::string& key, const std::function<Status(std::string_view)>& sink) override {
    return inner_->Get(key, [&](std::string_view chunk) {
      if (!corrupt_gets) return sink(chunk);
      std::string copy(chunk);
      copy[0] ^= 1;
      return sink(copy);
    });
  }
  Result<std::vector<ObjectInfo>> List(const std::string& prefix) override {
    return inner_->List(prefix);
  }
  Status Delete(const std::string& key) override { return inner_->Delete(key); }
  std::string Describe() const override { return inner_->Describe(); }
  int64_t retries() const override { return 3; }

  bool fail_puts = false;
  bool corrupt_gets = false;
  int short_heads = 0;  // the first HEADs find the object one byte short
  bool long_heads = false;
  int heads = 0;
  std::map<std::string, int> puts;  // key -> PUTs that reached the inner store

 private:
  std::shared_ptr<ObjectStore> inner_;
};

class ObjectStoreNodeTest : public TempDirTest {
 protected:
  NodeContext* Context(const std::string& id, bool dry_run = false) {
    NodeStats* stats = id == "src" ? &source_stats_ : &stats_;
    contexts_.push_back(
        std::make_unique<NodeContext>(id, kObjectStoreType, stats, &cancelled_, dry_run));
    return contexts_.back().get();
  }

  nlohmann::json SinkOptions(const nlohmann::json& extra = nlohmann::json::object()) {
    nlohmann::json o = {{"url", "file://" + dir_.string()}, {"run_id", "run1"}};
    o.update(extra);
    return o;
  }

  Result<std::unique_ptr<Sink>> OpenSink(const nlohmann::json& options, bool dry_run = false) {
    SLUICE_ASSIGN_OR_RETURN(auto sink, MakeObjectStoreSink(NodeOptions::ForTest("arch", options)));
    SLUICE_RETURN_NOT_OK(sink->Open(Context("arch", dry_run)));
    return sink;
  }

  Result<std::vector<BatchPtr>> ReadAll(const nlohmann::json& options) {
    SLUICE_ASSIGN_OR_RETURN(auto source,
                            MakeObjectStoreSource(NodeOptions::ForTest("src", options)));
    SLUICE_RETURN_NOT_OK(source->Open(Context("src")));
    std::vector<BatchPtr> out;
    for (uint64_t seq = 0;; ++seq) {
      SLUICE_ASSIGN_OR_RETURN(BatchPtr b, source->Next(seq));
      if (b == nullptr) break;
      out.push_back(std::move(b));
    }
    SLUICE_RETURN_NOT_OK(source->Close());
    return out;
  }

  NodeStats stats_;         // of the sink
  NodeStats source_stats_;  // of the source
  std::atomic<bool> cancelled_{false};
  std::vector<std::unique_ptr<NodeContext>> contexts_;
};

TEST_F(ObjectStoreNodeTest, SinkWritesOneVerifiedObjectPerBatchAndAManifest) {
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink(SinkOptions()));
  auto queue = std::make_shared<AckQueue>();
  ASSERT_OK(sink->Write(AuditRows(1, 4), MakeAcks(queue, 0)));
  ASSERT_OK(sink->Write(AuditRows(4, 6), MakeAcks(queue, 1)));
  EXPECT_THAT(Events(queue), ElementsAre(AckEvent(0u, true), AckEvent(1u, true)));
  ASSERT_OK(sink->Flush());
  ASSERT_OK(sink->Close());

  // No tags: the default template's {database}/{table} segments are left out.
  const fs::path first = dir_ / Today() / "1-3.jsonl.gz";
  const fs::path second = dir_ / Today() / "4-5.jsonl.gz";
  ASSERT_TRUE(fs::exists(first));
  ASSERT_TRUE(fs::exists(second));
  ASSERT_OK_AND_ASSIGN(std::string text, io::Decompress(io::Codec::kGzip, ReadFile(first)));
  EXPECT_EQ(text,
            "{\"id\":1,\"ts\":\"2023-11-14T22:13:21Z\",\"msg\":\"event 1\"}\n"
            "{\"id\":2,\"ts\":\"2023-11-14T22:13:22Z\",\"msg\":\"event 2\"}\n"
            "{\"id\":3,\"ts\":\"2023-11-14T22:13:23Z\",\"msg\":\"event 3\"}\n");

  const auto manifest = nlohmann::json::parse(ReadFile(dir_ / "_manifests/run1.json"));
  EXPECT_EQ(manifest["node"], "arch");
  EXPECT_EQ(manifest["run_id"], "run1");
  EXPECT_EQ(manifest["store"], "file://" + dir_.string());
  EXPECT_EQ(manifest["format"], "jsonl");
  EXPECT_EQ(manifest["compression"], "gzip");
  EXPECT_EQ(manifest["key_column"], "id");
  EXPECT_EQ(manifest["complete"], true);
  EXPECT_EQ(manifest["total_objects"], 2);
  EXPECT_EQ(manifest["total_rows"], 5);
  ASSERT_EQ(manifest["objects"].size(), 2u);
  const auto& o = manifest["objects"][0];
  EXPECT_EQ(o["key"], fmt::format("{}/1-3.jsonl.gz", Today()));
  EXPECT_EQ(o["rows"], 3);
  EXPECT_EQ(o["bytes"], static_cast<int64_t>(fs::file_size(first)));
  EXPECT_EQ(o["uncompressed_bytes"], static_cast<int64_t>(text.size()));
  EXPECT_EQ(o["sha256"], Sha256Hex(ReadFile(first)));
  EXPECT_EQ(o["min_key"], 1);
  EXPECT_EQ(o["max_key"], 3);
  EXPECT_EQ(o["columns"].dump(),
            R"([{"name":"id","type":"int64"},{"name":"ts","type":"timestamp"},)"
            R"({"name":"msg","type":"string"}])");
  EXPECT_EQ(manifest["objects"][1]["max_key"], 5);
  EXPECT_EQ(manifest["total_bytes"],
            static_cast<int64_t>(fs::file_size(first) + fs::file_size(second)));

  auto counters = stats_.Counters();
  EXPECT_EQ(counters["objects"], 2);
  EXPECT_EQ(counters["manifest_writes"], 1) << "the Flush at the end does not write it early";
  auto phases = stats_.Phases();
  for (const char* phase : {"serialize", "compress", "upload", "verify"}) {
    EXPECT_TRUE(phases.count(phase)) << phase;
  }
}

// The rows a batch of table `table` might hold; `note` changes the content, not the keys.
BatchPtr TaggedAuditRows(int64_t from, int64_t to, const std::string& table,
                         const std::string& note = "") {
  BatchPtr rows = AuditRows(from, to);
  if (!note.empty()) {
    ColumnBuilder msg(TypeId::kString);
    for (int64_t i = from; i < to; ++i) msg.AppendString(note);
    rows = Batch::MakeUnchecked(AuditSchema(), {rows->column(0), rows->column(1), msg.Finish()},
                                rows->num_rows());
  }
  return rows->WithTags({{"database", "main"},
                         {"table", table},
                         {"date", "2026-01-02"},
                         {"pg_types", R"({"id":"bigint","ts":"timestamp with time zone"})"}});
}

TEST_F(ObjectStoreNodeTest, ARerunKeepsAnIdenticalObjectAndNeverReplacesOtherContent) {
  const std::string key = "main/audit/2026-01-02/1-3.jsonl.gz";
  for (int run = 0; run < 2; ++run) {
    ASSERT_OK_AND_ASSIGN(auto sink, OpenSink({{"url", dir_.string()}}));
    auto queue = std::make_shared<AckQueue>();
    ASSERT_OK(sink->Write(TaggedAuditRows(1, 4, "audit"), MakeAcks(queue, 0)));
    EXPECT_THAT(Events(queue), ElementsAre(AckEvent(0u, true)));
    ASSERT_OK(sink->Close());
  }
  EXPECT_EQ(stats_.Counters()["objects_already_stored"], 1) << "the rerun uploaded nothing";
  const std::string stored = ReadFile(dir_ / key);

  // Other content under the same key (the rows changed since, or a template that names two
  // batches alike): the batch fails, its rows are not acknowledged and the object stays.
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink({{"url", dir_.string()}}));
  auto queue = std::make_shared<AckQueue>();
  EXPECT_THAT(
      sink->Write(TaggedAuditRows(1, 4, "audit", "changed"), MakeAcks(queue, 0)),
      StatusIs(StatusCode::kAlreadyExists, AllOf(HasSubstr("node 'arch'"), HasSubstr(key),
                                                 HasSubstr("exists already with other content"),
                                                 HasSubstr("not replacing it"))));
  EXPECT_THAT(Events(queue), ElementsAre(AckEvent(0u, false)));
  EXPECT_EQ(ReadFile(dir_ / key), stored);
  ASSERT_OK(sink->Close());  // lists nothing: no manifest

  ASSERT_OK_AND_ASSIGN(auto store, LocalStore::Make(dir_.string()));
  ASSERT_OK_AND_ASSIGN(auto manifests, store->List("_manifests/"));
  ASSERT_EQ(manifests.size(), 2u) << "one per successful run, under different names";
  for (const auto& m : manifests) {
    const auto manifest = nlohmann::json::parse(ReadFile(dir_ / m.key));
    EXPECT_EQ(manifest["complete"], true);
    EXPECT_EQ(manifest["objects"][0]["key"], key);
    EXPECT_EQ(manifest["objects"][0]["sha256"], Sha256Hex(stored));
  }
}

TEST_F(ObjectStoreNodeTest, TwoTablesWithTheSameIdsOnTheSameDayGetTheirOwnObjects) {
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink(SinkOptions()));
  ASSERT_OK(sink->Write(TaggedAuditRows(1, 4, "audit"), AckSet()));
  ASSERT_OK(sink->Write(TaggedAuditRows(1, 4, "audit/old"), AckSet()));
  ASSERT_OK(sink->Write(TaggedAuditRows(1, 4, "audit_old"), AckSet()));
  ASSERT_OK(sink->Close());
  EXPECT_TRUE(fs::exists(dir_ / "main/audit/2026-01-02/1-3.jsonl.gz"));
  EXPECT_TRUE(fs::exists(dir_ / "main/audit%2Fold/2026-01-02/1-3.jsonl.gz"));
  EXPECT_TRUE(fs::exists(dir_ / "main/audit_old/2026-01-02/1-3.jsonl.gz"));
  const auto manifest = nlohmann::json::parse(ReadFile(dir_ / "_manifests/run1.json"));
  EXPECT_EQ(manifest["objects"][1]["table"], "audit/old");
  EXPECT_EQ(manifest["objects"][1]["database"], "main");
  EXPECT_EQ(manifest["objects"][1]["columns"].dump(),
            R"([{"name":"id","pg_type":"bigint","type":"int64"},)"
            R"({"name":"ts","pg_type":"timestamp with time zone","type":"timestamp"},)"
            R"({"name":"msg","type":"string"}])");
}

TEST_F(ObjectStoreNodeTest, ATemplateThatRepeatsAKeyFailsTheBatch) {
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink(SinkOptions({{"key", "{node}/{date}{ext}"}})));
  auto queue = std::make_shared<AckQueue>();
  ASSERT_OK(sink->Write(AuditRows(1, 2), MakeAcks(queue, 0)));
  EXPECT_THAT(sink->Write(AuditRows(2, 3), MakeAcks(queue, 1)),
              StatusIs(StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("for two batches of this run"), HasSubstr("{batch_id}"),
                             HasSubstr("not {seq}, which restarts every run"))));
  EXPECT_THAT(Events(queue), ElementsAre(AckEvent(0u, true), AckEvent(1u, false)));
}

TEST_F(ObjectStoreNodeTest, BatchIdTagNamesTheObject) {
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink(SinkOptions({{"key", "{table}/{batch_id}{ext}"}})));
  ASSERT_OK(sink->Write(
      AuditRows(1, 3)->WithTags({{"table", "audit"}, {"batch_id", "audit-1 of 2"}}), AckSet()));
  EXPECT_TRUE(fs::exists(dir_ / "audit/audit-1%20of%202.jsonl.gz"));
  EXPECT_THAT(sink->Write(AuditRows(3, 4), AckSet()),
              StatusIs(StatusCode::kInvalidArgument,
                       HasSubstr("uses {batch_id}, but the batch has no tag 'batch_id'")));
}

TEST_F(ObjectStoreNodeTest, TagsNameTheObjectAndUnderscoreColumnsAreUserData) {
  auto batch = BatchFromJson(
      MakeSchema(
          {{"_database", TypeId::kString}, {"_meta", TypeId::kString}, {"id", TypeId::kInt64}}),
      R"([["x", "m1", 7], [null, "m2", 9]])");
  ASSERT_OK(batch);
  ASSERT_OK_AND_ASSIGN(auto sink,
                       OpenSink(SinkOptions({{"format", "csv"}, {"compression", "zstd"}})));
  ASSERT_OK(sink->Write((*batch)->WithTags({{"database", "shop"}, {"table", "audit"}}), AckSet()));
  ASSERT_OK(sink->Close());
  const fs::path path = dir_ / "shop/audit" / Today() / "7-9.csv.zst";
  ASSERT_TRUE(fs::exists(path));
  ASSERT_OK_AND_ASSIGN(std::string text, io::Decompress(io::Codec::kZstd, ReadFile(path)));
  EXPECT_EQ(text, "_database,_meta,id\nx,m1,7\n,m2,9\n");
  const auto manifest = nlohmann::json::parse(ReadFile(dir_ / "_manifests/run1.json"));
  EXPECT_EQ(manifest["objects"][0]["database"], "shop");
  EXPECT_EQ(manifest["objects"][0]["table"], "audit");
}

TEST_F(ObjectStoreNodeTest, SinkStoresObjectsAnEncodeTransformMade) {
  io::EncodedObject o;
  o.rows = 2;
  o.raw_bytes = 100;
  o.has_keys = true;
  o.last_key = "20240102T000000Z";
  o.ext = ".csv.zst";
  o.columns = nlohmann::json::parse(R"([{"name":"at","type":"timestamp"}])");
  const BatchTags tags{{"database", "shop"}, {"table", "audit/log"}, {"date", "2024-01-01"}};
  o.bytes = "first object";
  o.first_key = "20240101T000000Z";
  BatchPtr one = encoded::ToBatch(o, tags);
  o.bytes = "second object";
  o.first_key = "20240101T120000Z";
  ASSERT_OK_AND_ASSIGN(BatchPtr both, Concatenate({one, encoded::ToBatch(o, tags)}));

  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink(SinkOptions()));
  auto queue = std::make_shared<AckQueue>();
  ASSERT_OK(sink->Write(both, MakeAcks(queue, 0)));
  EXPECT_THAT(Events(queue), ElementsAre(AckEvent(0u, true)));
  ASSERT_OK(sink->Close());
  const fs::path dir = dir_ / "shop/audit%2Flog/2024-01-01";
  EXPECT_EQ(ReadFile(dir / "20240101T000000Z-20240102T000000Z.csv.zst"), "first object");
  EXPECT_EQ(ReadFile(dir / "20240101T120000Z-20240102T000000Z.csv.zst"), "second object");
  const auto manifest = nlohmann::json::parse(ReadFile(dir_ / "_manifests/run1.json"));
  EXPECT_EQ(manifest["format"], "csv");
  EXPECT_EQ(manifest["compression"], "zstd");
  EXPECT_EQ(manifest["total_rows"], 4);
  const auto& m = manifest["objects"][0];
  EXPECT_EQ(m["sha256"], Sha256Hex("first object"));
  EXPECT_EQ(m["uncompressed_bytes"], 100);
  EXPECT_EQ(m["first_key"], "20240101T000000Z");
  EXPECT_EQ(m["last_key"], "20240102T000000Z");
  EXPECT_EQ(m["table"], "audit/log");
  EXPECT_EQ(m["columns"], o.columns);
  EXPECT_EQ(stats_.Counters()["objects"], 2);
}

// The same batches give the same keys and the same bytes whether the sink encodes them or an
// `encode` transform did.
TEST_F(ObjectStoreNodeTest, KeysAndObjectsAreTheSameWithAndWithoutEncode) {
  auto batch = BatchFromJson(
      MakeSchema({{"k", TypeId::kString}, {"_meta", TypeId::kJson}, {"n", TypeId::kFloat64}}),
      R"([["a/b c%", {"x": 1}, 1.5], ["z", null, -2e300]])");
  ASSERT_OK(batch);
  const BatchPtr tagged = (*batch)->WithTags({{"database", "db 1"},
                                              {"table", "t"},
                                              {"date", "2026-01-02"},
                                              {"pg_types", R"({"k":"text"})"}});
  const nlohmann::json encoding = {
      {"format", "jsonl"}, {"compression", "zstd"}, {"level", 5}, {"key_column", "k"}};

  nlohmann::json direct = {{"url", (dir_ / "direct").string()}, {"run_id", "r"}};
  direct.update(encoding);
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink(direct));
  ASSERT_OK(sink->Write(tagged, AckSet()));
  ASSERT_OK(sink->Close());

  NodeRegistry registry;
  RegisterEncodeNode(&registry);
  ASSERT_OK_AND_ASSIGN(auto encode,
                       registry.Resolve("encode", true)
                           ->make_transform(NodeOptions::ForTest("enc", encoding, "encode")));
  struct Collect final : Emitter {
    Status Emit(BatchPtr b) override {
      out.push_back(std::move(b));
      return Status::OK();
    }
    Status Emit(BatchPtr b, AckSet) override { return Emit(std::move(b)); }
    AckSet HoldAcks() override { return AckSet(); }
    std::vector<BatchPtr> out;
  } collect;
  ASSERT_OK(encode->Process(tagged, 0, &collect));
  ASSERT_EQ(collect.out.size(), 1u);
  ASSERT_OK_AND_ASSIGN(
      auto after_encode,
      OpenSink({{"url", (dir_ / "encoded").string()}, {"run_id", "r"}, {"key_column", "other"}}));
  ASSERT_OK(after_encode->Write(collect.out[0], AckSet()));
  ASSERT_OK(after_encode->Close());

  const std::string key = "db%201/t/2026-01-02/a%2Fb%20c%25-z.jsonl.zst";
  ASSERT_TRUE(fs::exists(dir_ / "direct" / key));
  EXPECT_EQ(ReadFile(dir_ / "encoded" / key), ReadFile(dir_ / "direct" / key));
  auto a = nlohmann::json::parse(ReadFile(dir_ / "direct/_manifests/r.json"))["objects"][0];
  auto b = nlohmann::json::parse(ReadFile(dir_ / "encoded/_manifests/r.json"))["objects"][0];
  EXPECT_EQ(a, b);
  EXPECT_EQ(a["min_key"], "a/b c%");
  EXPECT_EQ(a["columns"][0]["pg_type"], "text");
}

TEST_F(ObjectStoreNodeTest, UnderscoreColumnsAreWritten) {
  auto batch = BatchFromJson(MakeSchema({{"id", TypeId::kInt64}, {"_partition", TypeId::kInt64}}),
                             R"([[1, 9]])");
  ASSERT_OK(batch);
  ASSERT_OK_AND_ASSIGN(
      auto sink, OpenSink(SinkOptions({{"key", "{first_key}{ext}"}, {"compression", "none"}})));
  ASSERT_OK(sink->Write(*batch, AckSet()));
  EXPECT_EQ(ReadFile(dir_ / "1.jsonl"), "{\"id\":1,\"_partition\":9}\n");
}

// Manifests: one name per run, complete only after a run that ended well, and written at most
// every manifest_interval while the run goes on.

TEST_F(ObjectStoreNodeTest, TwoSinksOpenedTogetherWriteTwoManifests) {
  ASSERT_OK_AND_ASSIGN(auto first, OpenSink({{"url", dir_.string()}}));
  ASSERT_OK_AND_ASSIGN(auto second, OpenSink({{"url", dir_.string()}}));
  ASSERT_OK(first->Write(TaggedAuditRows(1, 3, "a"), AckSet()));
  ASSERT_OK(second->Write(TaggedAuditRows(1, 3, "b"), AckSet()));
  ASSERT_OK(first->Close());
  ASSERT_OK(second->Close());
  ASSERT_OK_AND_ASSIGN(auto store, LocalStore::Make(dir_.string()));
  ASSERT_OK_AND_ASSIGN(auto manifests, store->List("_manifests/"));
  ASSERT_EQ(manifests.size(), 2u);
  std::set<std::string> tables;
  for (const auto& m : manifests) {
    EXPECT_THAT(m.key, ::testing::MatchesRegex("_manifests/[0-9]{8}T[0-9]{6}Z-arch-[0-9a-f]{16}"
                                               "\\.json"));
    tables.insert(nlohmann::json::parse(ReadFile(dir_ / m.key))["objects"][0]["table"]);
  }
  EXPECT_EQ(tables, (std::set<std::string>{"a", "b"}));
}

TEST_F(ObjectStoreNodeTest, AChosenRunIdThatNamesAnotherRunsManifestIsRefused) {
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink(SinkOptions()));
  ASSERT_OK(sink->Write(AuditRows(1, 3), AckSet()));
  ASSERT_OK(sink->Close());
  EXPECT_THAT(
      OpenSink(SinkOptions()),
      StatusIs(StatusCode::kAlreadyExists, AllOf(HasSubstr("_manifests/run1.json exists already"),
                                                 HasSubstr("option 'run_id'"))));
}

TEST_F(ObjectStoreNodeTest, TheManifestOfACancelledRunIsIncomplete) {
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink(SinkOptions()));
  ASSERT_OK(sink->Write(AuditRows(1, 3), AckSet()));
  ASSERT_OK(sink->Flush());  // the engine's last Flush of a run that is cancelled afterwards
  cancelled_.store(true);
  ASSERT_OK(sink->Close());
  const auto manifest = nlohmann::json::parse(ReadFile(dir_ / "_manifests/run1.json"));
  EXPECT_EQ(manifest["complete"], false);
  EXPECT_EQ(manifest["total_objects"], 1);
}

TEST_F(ObjectStoreNodeTest, IdleFlushesDoNotRewriteTheManifest) {
  ASSERT_OK_AND_ASSIGN(auto local, LocalStore::Make(dir_.string()));
  auto counting = std::make_shared<FaultyStore>(std::shared_ptr<ObjectStore>(std::move(local)));
  const std::string manifest_key = "_manifests/run1.json";
  auto open = [&](const nlohmann::json& options) -> std::unique_ptr<Sink> {
    auto sink = MakeObjectStoreSink(NodeOptions::ForTest("arch", options), counting);
    EXPECT_OK(sink.status());
    EXPECT_OK((*sink)->Open(Context("arch")));
    return std::move(*sink);
  };

  // The default interval (60s): 15 idle flushes during a run write nothing; Close writes once.
  auto sink = open(SinkOptions());
  for (int64_t b = 0; b < 3; ++b) {
    ASSERT_OK(sink->Write(AuditRows(b * 10, b * 10 + 5), AckSet()));
    for (int i = 0; i < 5; ++i) ASSERT_OK(sink->Flush());
  }
  EXPECT_EQ(counting->puts[manifest_key], 0);
  ASSERT_OK(sink->Close());
  EXPECT_EQ(counting->puts[manifest_key], 1);
  EXPECT_EQ(nlohmann::json::parse(ReadFile(dir_ / manifest_key))["complete"], true);

  // Interval 0: a flush writes the manifest (incomplete) only when it has new objects to list.
  auto eager = open(SinkOptions({{"run_id", "run2"}, {"manifest_interval", 0}}));
  const std::string eager_key = "_manifests/run2.json";
  ASSERT_OK(eager->Flush());
  EXPECT_EQ(counting->puts[eager_key], 0) << "nothing to list yet";
  ASSERT_OK(eager->Write(AuditRows(100, 105), AckSet()));
  ASSERT_OK(eager->Flush());
  ASSERT_OK(eager->Flush());
  EXPECT_EQ(counting->puts[eager_key], 1);
  auto running = nlohmann::json::parse(ReadFile(dir_ / eager_key));
  EXPECT_EQ(running["complete"], false);
  EXPECT_EQ(running["total_objects"], 1);
  ASSERT_OK(eager->Write(AuditRows(200, 205), AckSet()));
  ASSERT_OK(eager->Flush());
  ASSERT_OK(eager->Close());
  EXPECT_EQ(counting->puts[eager_key], 3);
  auto done = nlohmann::json::parse(ReadFile(dir_ / eager_key));
  EXPECT_EQ(done["complete"], true);
  EXPECT_EQ(done["total_objects"], 2);
}

TEST_F(ObjectStoreNodeTest, MissingKeyColumnIsAnError) {
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink(SinkOptions({{"key_column", "event_id"}})));
  auto queue = std::make_shared<AckQueue>();
  EXPECT_THAT(sink->Write(AuditRows(1, 2), MakeAcks(queue, 0)),
              StatusIs(StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("key column 'event_id'"), HasSubstr("id:int64"))));
  EXPECT_THAT(Events(queue), ElementsAre(AckEvent(0u, false)));
}

TEST_F(ObjectStoreNodeTest, DryRunEncodesAndCountsButWritesNothing) {
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink(SinkOptions(), /*dry_run=*/true));
  ASSERT_OK(sink->Write(AuditRows(1, 4), AckSet()));
  ASSERT_OK(sink->Write(AuditRows(4, 9), AckSet()));
  ASSERT_OK(sink->Flush());
  ASSERT_OK(sink->Close());
  EXPECT_FALSE(fs::exists(dir_));
  EXPECT_EQ(stats_.Counters()["objects"], 2);
  EXPECT_TRUE(stats_.Phases().count("compress"));
  EXPECT_FALSE(stats_.Phases().count("upload"));
}

TEST_F(ObjectStoreNodeTest, VerifyWaitsBrieflyForAnObjectTheStoreIsStillWriting) {
  ASSERT_OK_AND_ASSIGN(auto local, LocalStore::Make(dir_.string()));
  auto faulty = std::make_shared<FaultyStore>(std::shared_ptr<ObjectStore>(std::move(local)));
  ASSERT_OK(faulty->Put("a.bin", "0123456789"));
  const std::string sha = Sha256Hex("0123456789");
  faulty->short_heads = 2;  // whole at the third look
  EXPECT_OK(VerifyObject(faulty.get(), "a.bin", 10, sha));
  EXPECT_EQ(faulty->heads, 3);
  faulty->heads = 0;
  faulty->short_heads = 1000;  // never whole: lost, after a few looks
  EXPECT_THAT(VerifyObject(faulty.get(), "a.bin", 10, sha),
              StatusIs(StatusCode::kDataLoss,
                       AllOf(HasSubstr("9 bytes stored, 10 uploaded"), HasSubstr("still"))));
  EXPECT_EQ(faulty->heads, 5);
  faulty->heads = 0;
  faulty->short_heads = 0;
  faulty->long_heads = true;  // longer than uploaded: lost at once
  EXPECT_THAT(VerifyObject(faulty.get(), "a.bin", 10, sha),
              StatusIs(StatusCode::kDataLoss, HasSubstr("11 bytes stored, 10 uploaded")));
  EXPECT_EQ(faulty->heads, 1);
}

TEST_F(ObjectStoreNodeTest, AnObjectThatReadsBackWrongFailsTheBatch) {
  ASSERT_OK_AND_ASSIGN(auto local, LocalStore::Make(dir_.string()));
  auto faulty = std::make_shared<FaultyStore>(std::shared_ptr<ObjectStore>(std::move(local)));
  faulty->corrupt_gets = true;
  ASSERT_OK_AND_ASSIGN(auto sink,
                       MakeObjectStoreSink(NodeOptions::ForTest("arch", SinkOptions()), faulty));
  ASSERT_OK(sink->Open(Context("arch")));
  auto queue = std::make_shared<AckQueue>();
  EXPECT_THAT(
      sink->Write(AuditRows(1, 4), MakeAcks(queue, 0)),
      StatusIs(StatusCode::kDataLoss, AllOf(HasSubstr("verifying file://"),
                                            HasSubstr("1-3.jsonl.gz"), HasSubstr("SHA-256"))));
  EXPECT_THAT(Events(queue), ElementsAre(AckEvent(0u, false)));
  EXPECT_EQ(stats_.Counters()["retries"], 3) << "the store's retries are reported";
}

TEST_F(ObjectStoreNodeTest, AFailedUploadFailsTheBatchAndWritesNoManifestEntry) {
  ASSERT_OK_AND_ASSIGN(auto local, LocalStore::Make(dir_.string()));
  auto faulty = std::make_shared<FaultyStore>(std::shared_ptr<ObjectStore>(std::move(local)));
  ASSERT_OK_AND_ASSIGN(auto sink,
                       MakeObjectStoreSink(NodeOptions::ForTest("arch", SinkOptions()), faulty));
  ASSERT_OK(sink->Open(Context("arch")));
  auto queue = std::make_shared<AckQueue>();
  ASSERT_OK(sink->Write(AuditRows(1, 2), MakeAcks(queue, 0)));
  faulty->fail_puts = true;
  EXPECT_THAT(sink->Write(AuditRows(2, 3), MakeAcks(queue, 1)),
              StatusIs(StatusCode::kUnavailable, HasSubstr("injected")));
  EXPECT_THAT(Events(queue), ElementsAre(AckEvent(0u, true), AckEvent(1u, false)));
  // The engine does not Flush a failed run; Close lists the verified object all the same.
  faulty->fail_puts = false;
  ASSERT_OK(sink->Close());
  const auto manifest = nlohmann::json::parse(ReadFile(dir_ / "_manifests/run1.json"));
  EXPECT_EQ(manifest["total_objects"], 1);
  EXPECT_EQ(manifest["complete"], false);
}

TEST_F(ObjectStoreNodeTest, SourceReadsBackWhatTheSinkWroteSkippingManifests) {
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink(SinkOptions({{"key", "audit/{first_key}{ext}"}})));
  ASSERT_OK(sink->Write(AuditRows(10, 20), AckSet()));
  ASSERT_OK(sink->Write(AuditRows(1, 10), AckSet()));
  ASSERT_OK(sink->Flush());
  ASSERT_OK_AND_ASSIGN(
      auto batches,
      ReadAll({{"url", dir_.string()},
               {"batch_rows", 4},
               {"schema", {{"id", "int64"}, {"ts", "timestamp"}, {"msg", "string"}}}}));
  int64_t rows = 0;
  std::vector<int64_t> ids;
  for (const auto& b : batches) {
    EXPECT_LE(b->num_rows(), 4);
    rows += b->num_rows();
    for (int64_t i = 0; i < b->num_rows(); ++i) ids.push_back(b->column(0).GetInt64(i));
  }
  EXPECT_EQ(rows, 19);
  EXPECT_EQ(ids.front(), 1) << "objects are read in key order: audit/1 before audit/10";
  EXPECT_EQ(ids.back(), 19);
  // (nlohmann::json sorts the mapping's keys; the config loader keeps their order.)
  EXPECT_EQ(batches[0]->schema()->ToString(), "id:int64, msg:string, ts:timestamp");
  EXPECT_EQ(source_stats_.Counters()["objects"], 2);

  EXPECT_THAT(ReadAll({{"url", dir_.string()}, {"prefix", "nothing/"}}),
              StatusIs(StatusCode::kNotFound, HasSubstr("no object under file://")));
}

// Values that inference would change: NaN and infinite floats, infinite timestamps, numeric
// text, bytes with a zero byte, SQL NULL beside the JSON text "null".
BatchPtr ExactRows() {
  SchemaPtr schema = MakeSchema({{"id", TypeId::kInt64},
                                 {"f", TypeId::kFloat64},
                                 {"ts", TypeId::kTimestamp},
                                 {"n", TypeId::kString},
                                 {"b", TypeId::kBytes},
                                 {"j", TypeId::kString},
                                 {"_meta", TypeId::kString}});
  ColumnBuilder id(TypeId::kInt64), f(TypeId::kFloat64), ts(TypeId::kTimestamp);
  ColumnBuilder n(TypeId::kString), b(TypeId::kBytes), j(TypeId::kString), meta(TypeId::kString);
  const double floats[] = {std::numeric_limits<double>::quiet_NaN(),
                           std::numeric_limits<double>::infinity(), -0.0, 0.1};
  const int64_t stamps[] = {INT64_MAX, INT64_MIN, 0, 1'700'000'000'123'456};
  const char* numerics[] = {"12345678901234567890.1234567890", "NaN", "-Infinity", "1.10"};
  for (int i = 0; i < 4; ++i) {
    id.AppendInt64(i + 1);
    f.AppendFloat64(floats[i]);
    ts.AppendTimestamp(stamps[i]);
    n.AppendString(numerics[i]);
    b.AppendString(std::string_view("\x00\xff", 2));
    if (i == 3) {
      j.AppendNull();
      meta.AppendNull();
    } else {
      j.AppendString("null");
      meta.AppendString("12");
    }
  }
  return Batch::MakeUnchecked(
      schema,
      {id.Finish(), f.Finish(), ts.Finish(), n.Finish(), b.Finish(), j.Finish(), meta.Finish()}, 4,
      BatchTags(
          {{"database", "main"},
           {"table", "t"},
           {"date", "2026-01-02"},
           {"pg_types", R"j({"id":"integer","f":"double precision","ts":"timestamp with time )j"
                        R"j(zone","n":"numeric(30,10)","b":"bytea","j":"json"})j"}}));
}

// Without a schema, each object is read with the columns its manifest records: every value as
// it was written (no inference), each batch tagged with the recorded PostgreSQL types, database
// and table, so that a postgres sink can recreate the table.
TEST_F(ObjectStoreNodeTest, SourceReadsEachObjectWithTheColumnsItsManifestRecords) {
  const BatchPtr rows = ExactRows();
  ASSERT_OK_AND_ASSIGN(auto sink,
                       OpenSink(SinkOptions({{"key", "{database}/{table}/{first_key}{ext}"}})));
  ASSERT_OK(sink->Write(rows, AckSet()));
  ASSERT_OK(sink->Close());
  for (const std::string prefix : {"", "main/", "main/t/1", "main/t/"}) {
    SCOPED_TRACE("prefix " + prefix);
    ASSERT_OK_AND_ASSIGN(auto batches, ReadAll({{"url", dir_.string()}, {"prefix", prefix}}));
    ASSERT_EQ(batches.size(), 1u);
    EXPECT_EQ(*batches[0]->schema(), *rows->schema());
    EXPECT_EQ(batches[0]->ToString(), rows->ToString());
    EXPECT_TRUE(std::isnan(batches[0]->column(1).GetFloat64(0)));
    EXPECT_TRUE(std::signbit(batches[0]->column(1).GetFloat64(2)));
    EXPECT_TRUE(batches[0]->column(5).IsNull(3));
    EXPECT_EQ(batches[0]->column(5).GetView(0), "null");
    EXPECT_EQ(batches[0]->tags().Get(tag::kDatabase), "main");
    EXPECT_EQ(batches[0]->tags().Get(tag::kTable), "t");
    EXPECT_EQ(nlohmann::json::parse(batches[0]->tags().Get(tag::kPgTypes)),
              nlohmann::json::parse(rows->tags().Get(tag::kPgTypes)));
  }

  // A copy of the archive in another folder keeps its manifests valid: keys are taken
  // relative to where the manifest is.
  fs::create_directories(dir_ / "copy");
  fs::copy(dir_ / "main", dir_ / "copy/main", fs::copy_options::recursive);
  fs::copy(dir_ / "_manifests", dir_ / "copy/_manifests", fs::copy_options::recursive);
  ASSERT_OK_AND_ASSIGN(auto copied, ReadAll({{"url", (dir_ / "copy").string()}}));
  ASSERT_EQ(copied.size(), 1u);
  EXPECT_EQ(copied[0]->ToString(), rows->ToString());
}

TEST_F(ObjectStoreNodeTest, SourceRefusesObjectsInNoManifestUnlessGivenASchema) {
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink(SinkOptions({{"key", "{first_key}{ext}"}})));
  ASSERT_OK(sink->Write(AuditRows(1, 4), AckSet()));
  ASSERT_OK(sink->Close());
  fs::create_directories(dir_ / "extra");
  fs::copy_file(dir_ / "1.jsonl.gz", dir_ / "extra/1.jsonl.gz");
  EXPECT_THAT(ReadAll({{"url", dir_.string()}}),
              StatusIs(StatusCode::kConfigError,
                       AllOf(HasSubstr("node 'src': 1 object under file://"),
                             HasSubstr("is listed in no manifest"), HasSubstr("extra/1.jsonl.gz"),
                             HasSubstr("give option 'schema'"))));
  // The `schema` option reads every object, overriding what manifests record.
  ASSERT_OK_AND_ASSIGN(
      auto batches, ReadAll({{"url", dir_.string()},
                             {"schema", {{"id", "int64"}, {"msg", "string"}, {"ts", "string"}}}}));
  ASSERT_EQ(batches.size(), 2u);
  EXPECT_EQ(batches[0]->ToString(), batches[1]->ToString());
  EXPECT_EQ(batches[0]->schema()->ToString(), "id:int64, msg:string, ts:string");
  // Without the option, objects that a manifest lists are read.
  ASSERT_OK_AND_ASSIGN(auto listed, ReadAll({{"url", dir_.string()}, {"prefix", "1"}}));
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0]->ToString(), AuditRows(1, 4)->ToString());
}

// A manifest that cannot be read as one fails the restore that needs it, naming it; with the
// `schema` option no manifest is needed, and such a one is ignored.
TEST_F(ObjectStoreNodeTest, SourceNamesAManifestItCannotRead) {
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink(SinkOptions({{"key", "{first_key}{ext}"}})));
  ASSERT_OK(sink->Write(AuditRows(1, 4), AckSet()));
  ASSERT_OK(sink->Close());
  {
    std::ofstream out(dir_ / "_manifests/z-broken.json");
    out << "{\"objects\": [{\"key\": \"1.jsonl.gz\", \"columns\": [{\"name\": \"id\", \"type\": "
           "\"int65\"}]}]}";
  }
  EXPECT_THAT(ReadAll({{"url", dir_.string()}}),
              StatusIs(StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("node 'src': manifest file://"),
                             HasSubstr("_manifests/z-broken.json: column 'id' of 1.jsonl.gz"),
                             HasSubstr("int65"))));
  {
    std::ofstream out(dir_ / "_manifests/z-broken.json");
    out << "not json";
  }
  EXPECT_THAT(ReadAll({{"url", dir_.string()}}),
              StatusIs(StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("_manifests/z-broken.json: not a manifest"))));
  ASSERT_OK_AND_ASSIGN(
      auto batches,
      ReadAll({{"url", dir_.string()},
               {"schema", {{"id", "int64"}, {"ts", "timestamp"}, {"msg", "string"}}}}));
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0]->num_rows(), 3);
}

// The objects of a run that failed are listed in a manifest marked incomplete: they were
// verified when stored, so they are read like any other.
TEST_F(ObjectStoreNodeTest, SourceReadsTheObjectsOfAnIncompleteManifest) {
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink(SinkOptions({{"key", "{first_key}{ext}"}})));
  ASSERT_OK(sink->Write(AuditRows(1, 4), AckSet()));
  cancelled_ = true;  // the run was cancelled: Close writes the manifest incomplete
  ASSERT_OK(sink->Close());
  cancelled_ = false;
  const auto manifest = nlohmann::json::parse(ReadFile(dir_ / "_manifests/run1.json"));
  ASSERT_EQ(manifest["complete"], false);
  ASSERT_OK_AND_ASSIGN(auto batches, ReadAll({{"url", dir_.string()}}));
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0]->ToString(), AuditRows(1, 4)->ToString());
}

// An object is checked against the size and SHA-256 its manifest records as it streams.
TEST_F(ObjectStoreNodeTest, SourceFailsOnAnObjectThatDiffersFromItsManifest) {
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink(SinkOptions({{"key", "{first_key}{ext}"}})));
  ASSERT_OK(sink->Write(AuditRows(1, 4), AckSet()));
  ASSERT_OK(sink->Write(AuditRows(4, 7), AckSet()));
  ASSERT_OK(sink->Close());
  // Another valid object of the same size under the first one's key.
  fs::copy_file(dir_ / "4.jsonl.gz", dir_ / "1.jsonl.gz", fs::copy_options::overwrite_existing);
  ASSERT_EQ(fs::file_size(dir_ / "1.jsonl.gz"), fs::file_size(dir_ / "4.jsonl.gz"));
  EXPECT_THAT(ReadAll({{"url", dir_.string()}}),
              StatusIs(StatusCode::kDataLoss, AllOf(HasSubstr("1.jsonl.gz: SHA-256"),
                                                    HasSubstr("manifest file://" + dir_.string() +
                                                              "/_manifests/run1.json"))));
}

TEST_F(ObjectStoreNodeTest, OptionsAreCheckedWhenTheNodeIsBuilt) {
  EXPECT_THAT(MakeObjectStoreSink(NodeOptions::ForTest("arch", nlohmann::json::object())),
              StatusIs(StatusCode::kConfigError, HasSubstr("url")));
  EXPECT_THAT(MakeObjectStoreSink(NodeOptions::ForTest("arch", {{"url", "gs://x"}})),
              StatusIs(StatusCode::kConfigError, HasSubstr("unsupported scheme")));
  EXPECT_THAT(MakeObjectStoreSink(NodeOptions::ForTest("arch", SinkOptions({{"key", "{nod}"}}))),
              StatusIs(StatusCode::kConfigError, HasSubstr("unknown placeholder {nod}")));
  EXPECT_THAT(
      MakeObjectStoreSink(NodeOptions::ForTest("arch", SinkOptions({{"part_size", "1MiB"}}))),
      StatusIs(StatusCode::kConfigError, HasSubstr("at least 5MiB")));
  EXPECT_THAT(
      MakeObjectStoreSink(NodeOptions::ForTest("arch", SinkOptions({{"retry_max_attempts", 0}}))),
      StatusIs(StatusCode::kConfigError, HasSubstr("retry_max_attempts")));
  EXPECT_THAT(MakeObjectStoreSink(
                  NodeOptions::ForTest("arch", SinkOptions({{"access_key_id", "only-half"}}))),
              StatusIs(StatusCode::kConfigError, HasSubstr("go together")));

  ASSERT_OK_AND_ASSIGN(ObjectStoreOptions o, ObjectStoreOptionsFromNode(NodeOptions::ForTest(
                                                 "arch", {{"url", "s3://b/p"},
                                                          {"retry_initial", "10ms"},
                                                          {"retry_max", "50ms"},
                                                          {"retry_max_attempts", 3},
                                                          {"breaker_failures", 2},
                                                          {"breaker_timeout", "2s"},
                                                          {"path_style", false},
                                                          {"multipart_threshold", "20MiB"}})));
  EXPECT_EQ(o.retry.initial_us, 10'000);
  EXPECT_EQ(o.retry.max_us, 50'000);
  EXPECT_EQ(o.retry.max_attempts, 3);
  EXPECT_EQ(o.breaker.failure_threshold, 2);
  EXPECT_EQ(o.breaker.recovery_timeout_us, 2'000'000);
  EXPECT_FALSE(o.path_style);
  EXPECT_EQ(o.multipart_threshold, 20 << 20);
}

// ---------------------------------------------------------------------------------------------
// Cancellation: the nodes make their store in Open() with the run's cancel flag, so a cancelled
// run stops waiting on S3 at once. A FaultProxy (whose upstream is never reached) holds or fails
// every request; nothing else would end the call before its 600 s timeouts and retry delays.

class ObjectStoreCancelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto proxy = testing::FaultProxy::Start("http://127.0.0.1:1");
    ASSERT_TRUE(proxy.ok()) << proxy.status().ToString();
    proxy_ = std::move(*proxy);
  }

  nlohmann::json Options() const {
    return {{"url", "s3://bucket/prefix"},
            {"endpoint", proxy_->endpoint()},
            {"access_key_id", "AKIDEXAMPLE"},
            {"secret_access_key", "secret"},
            {"low_speed_time", "600s"},
            {"retry_initial", "600s"},
            {"retry_max", "600s"},
            {"retry_max_attempts", 5},
            {"key", "{first_key}{ext}"}};
  }

  // Runs `call` on another thread; once the proxy has held or failed `faults` requests, sets
  // the cancel flag (as the executor does) and returns what `call` returned.
  Status CancelDuring(const std::function<Status()>& call, int64_t faults = 1) {
    std::promise<Status> promise;
    std::future<Status> result = promise.get_future();
    std::thread worker([&] { promise.set_value(call()); });
    for (int i = 0; i < 6000 && proxy_->faults() < faults; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_GE(proxy_->faults(), faults) << "not enough requests reached the proxy";
    cancelled_.store(true);
    // Only a guard against hanging the suite: a call that ignores the flag blocks for 600 s.
    if (result.wait_for(std::chrono::seconds(120)) != std::future_status::ready) {
      ADD_FAILURE() << "the call did not return after the run was cancelled";
      std::abort();
    }
    worker.join();
    return result.get();
  }

  std::unique_ptr<testing::FaultProxy> proxy_;
  NodeStats stats_;
  std::atomic<bool> cancelled_{false};
  NodeContext ctx_{"upload", kObjectStoreType, &stats_, &cancelled_, false};
};

TEST_F(ObjectStoreCancelTest, CancellingTheRunEndsAStalledUpload) {
  ASSERT_OK_AND_ASSIGN(auto sink, MakeObjectStoreSink(NodeOptions::ForTest("upload", Options())));
  ASSERT_OK(sink->Open(&ctx_));
  // The sink first asks whether the key is free (HEAD: no such object), then uploads.
  proxy_->FailNext(1, 404, "NoSuchKey", "HEAD ");
  proxy_->StallNext(100, 600'000'000, "PUT ");
  auto queue = std::make_shared<AckQueue>();
  EXPECT_THAT(CancelDuring([&] { return sink->Write(AuditRows(1, 4), MakeAcks(queue, 0)); },
                           /*faults=*/2),
              StatusIs(StatusCode::kCancelled, AllOf(HasSubstr("node 'upload'"),
                                                     HasSubstr("S3 PUT s3://bucket/prefix/1"))));
  EXPECT_THAT(Events(queue), ElementsAre(AckEvent(0u, false)));
}

TEST_F(ObjectStoreCancelTest, CancellingTheRunEndsTheWaitBeforeARetry) {
  ASSERT_OK_AND_ASSIGN(auto sink, MakeObjectStoreSink(NodeOptions::ForTest("upload", Options())));
  ASSERT_OK(sink->Open(&ctx_));
  proxy_->FailNext(100, 503, "SlowDown");
  auto queue = std::make_shared<AckQueue>();
  EXPECT_THAT(CancelDuring([&] { return sink->Write(AuditRows(1, 4), MakeAcks(queue, 0)); }),
              StatusIs(StatusCode::kCancelled, HasSubstr("node 'upload'")));
  EXPECT_EQ(proxy_->requests(), 1) << "no retry after the cancellation";
  EXPECT_THAT(Events(queue), ElementsAre(AckEvent(0u, false)));
}

TEST_F(ObjectStoreCancelTest, CancellingTheRunEndsAStalledListing) {
  nlohmann::json options = Options();
  options.erase("key");
  ASSERT_OK_AND_ASSIGN(auto source, MakeObjectStoreSource(NodeOptions::ForTest("upload", options)));
  proxy_->StallNext(100, 600'000'000);
  EXPECT_THAT(CancelDuring([&] { return source->Open(&ctx_); }),
              StatusIs(StatusCode::kCancelled,
                       AllOf(HasSubstr("node 'upload'"), HasSubstr("S3 LIST s3://bucket"))));
}

TEST(ObjectStoreRegistryTest, RegistersASourceAndASinkUnderOneName) {
  NodeRegistry registry;
  RegisterObjectStoreNodes(&registry);
  const NodeTypeInfo* source = registry.Resolve(kObjectStoreType, /*has_inputs=*/false);
  const NodeTypeInfo* sink = registry.Resolve(kObjectStoreType, /*has_inputs=*/true);
  ASSERT_NE(source, nullptr);
  ASSERT_NE(sink, nullptr);
  EXPECT_EQ(source->kind, NodeKind::kSource);
  EXPECT_EQ(sink->kind, NodeKind::kSink);
  auto has = [](const OptionSchema& schema, const std::string& name) {
    return std::any_of(schema.begin(), schema.end(),
                       [&](const OptionSpec& s) { return s.name == name; });
  };
  for (const char* name : {"url", "endpoint", "key", "verify", "manifest", "multipart_threshold",
                           "retry_initial", "breaker_timeout"}) {
    EXPECT_TRUE(has(sink->options, name)) << name;
  }
  EXPECT_TRUE(has(source->options, "prefix"));
  EXPECT_TRUE(has(source->options, "schema"));
}

}  // namespace
}  // namespace sluice
