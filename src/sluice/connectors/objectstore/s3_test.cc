// Integration tests of the S3 client and the object_store nodes against the s3rver started by
// `scripts/services start`, checked with the independent awscli. A FaultProxy in front of the
// server injects errors, stalls and broken downloads.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <random>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/connectors/objectstore/fault_proxy.h"
#include "sluice/connectors/objectstore/objectstore.h"
#include "sluice/connectors/objectstore/s3_client.h"
#include "sluice/testing/matchers.h"
#include "sluice/testing/ports.h"

namespace sluice {
namespace {

using ::sluice::testing::FaultProxy;
using ::sluice::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kAws = "/usr/bin/aws";

AckSet MakeAcks(const std::shared_ptr<AckQueue>& queue, uint64_t seq) {
  return AckSet(std::make_shared<AckHandle>(queue, seq));
}

std::vector<AckQueue::Event> Events(const std::shared_ptr<AckQueue>& queue) {
  std::vector<AckQueue::Event> out;
  queue->Drain(&out, /*max_wait_ms=*/0);
  return out;
}

MATCHER_P2(AckEvent, seq, delivered, "") { return arg.seq == seq && arg.delivered == delivered; }

// Runs a shell command; returns its stdout and sets `*rc` to its exit status.
std::string Shell(const std::string& command, int* rc) {
  std::string out;
  FILE* p = ::popen(command.c_str(), "r");
  if (p == nullptr) {
    *rc = -1;
    return out;
  }
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int status = ::pclose(p);
  *rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

std::string Random(size_t size, uint32_t seed) {
  std::mt19937 gen(seed);
  std::string s(size, '\0');
  for (size_t i = 0; i + 4 <= size; i += 4) {
    const uint32_t v = gen();
    std::memcpy(&s[i], &v, 4);
  }
  return s;
}

class S3Test : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* endpoint = std::getenv("SLUICE_S3_ENDPOINT");
    const char* bucket = std::getenv("SLUICE_S3_BUCKET");
    if (endpoint == nullptr || bucket == nullptr || std::getenv("AWS_ACCESS_KEY_ID") == nullptr) {
      FAIL() << "SLUICE_S3_ENDPOINT, SLUICE_S3_BUCKET and AWS_ACCESS_KEY_ID are not set: run "
                "`scripts/services start` and `eval \"$(scripts/services env)\"` first";
    }
    endpoint_ = endpoint;
    bucket_ = bucket;
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    prefix_ = fmt::format("it-{}-{}", getpid(), info->name());
  }

  // Removes what the test wrote.
  void TearDown() override {
    if (endpoint_.empty()) return;
    auto client = S3Client::Make(Options());
    if (!client.ok()) return;
    auto objects = (*client)->List(prefix_ + "/");
    if (!objects.ok()) return;
    std::atomic<size_t> next{0};
    std::vector<std::thread> threads;
    threads.reserve(8);
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&] {
        for (size_t i = next++; i < objects->size(); i = next++) {
          EXPECT_OK((*client)->Delete((*objects)[i].key));
        }
      });
    }
    for (auto& t : threads) t.join();
  }

  // Options for a client of the test server: fast retries so failures end quickly.
  S3Options Options(const std::string& endpoint = "") const {
    S3Options o;
    o.bucket = bucket_;
    o.endpoint = endpoint.empty() ? endpoint_ : endpoint;
    o.retry.initial_us = 10'000;
    o.retry.max_us = 50'000;
    o.retry.max_attempts = 3;
    o.breaker.failure_threshold = 100;
    return o;
  }

  std::unique_ptr<S3Client> Client(const S3Options& options) {
    auto c = S3Client::Make(options);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(*c) : nullptr;
  }

  std::string Key(const std::string& name) const { return prefix_ + "/" + name; }

  // Returns what awscli says of `key`: its head-object JSON, or null if it fails.
  nlohmann::json AwsHead(const std::string& key) {
    int rc = 0;
    const std::string out = Shell(fmt::format("{} --endpoint-url {} s3api head-object --bucket {} "
                                              "--key '{}' 2>/dev/null",
                                              kAws, endpoint_, bucket_, key),
                                  &rc);
    if (rc != 0) return nullptr;
    return nlohmann::json::parse(out, nullptr, false);
  }

  // Returns the object's content, downloaded by awscli and piped through `filter` (e.g. "zcat").
  std::string AwsCat(const std::string& key, const std::string& filter = "cat") {
    int rc = 0;
    std::string out = Shell(fmt::format("{} --endpoint-url {} s3 cp 's3://{}/{}' - | {}", kAws,
                                        endpoint_, bucket_, key, filter),
                            &rc);
    EXPECT_EQ(rc, 0) << "aws s3 cp of " << key;
    return out;
  }

  std::string endpoint_;
  std::string bucket_;
  std::string prefix_;
};

TEST_F(S3Test, PutsASmallObjectThatAwsCliSees) {
  auto client = Client(Options());
  ASSERT_NE(client, nullptr);
  const std::string key = Key("dir/hello world+1.txt");
  ASSERT_OK(client->Put(key, "hello, object store\n"));
  const nlohmann::json head = AwsHead(key);
  ASSERT_FALSE(head.is_null());
  EXPECT_EQ(head["ContentLength"], 20);
  EXPECT_EQ(AwsCat(key), "hello, object store\n");
  ASSERT_OK_AND_ASSIGN(ObjectInfo info, client->Head(key));
  EXPECT_EQ(info.size, 20);
  EXPECT_FALSE(info.etag.empty());
  EXPECT_EQ(client->requests(), 2);
  EXPECT_EQ(client->retries(), 0);
}

TEST_F(S3Test, UploadsLargeObjectsInParallelParts) {
  S3Options options = Options();
  options.multipart_threshold = 10 << 20;
  options.part_size = 5 << 20;
  auto client = Client(options);
  ASSERT_NE(client, nullptr);
  const std::string data = Random(25 << 20, 1);
  const std::string key = Key("big.bin");
  ASSERT_OK(client->Put(key, data));
  EXPECT_EQ(client->requests(), 1 + 5 + 1) << "create, 5 parts, complete";
  const nlohmann::json head = AwsHead(key);
  ASSERT_FALSE(head.is_null());
  EXPECT_EQ(head["ContentLength"], 25 << 20);
  EXPECT_EQ(AwsCat(key, "sha256sum | cut -c1-64"), Sha256Hex(data) + "\n");

  // A streamed download: many chunks, in order, each byte once.
  Sha256 hash;
  int64_t bytes = 0;
  int chunks = 0;
  ASSERT_OK(client->Get(key, [&](std::string_view chunk) {
    hash.Update(chunk);
    bytes += static_cast<int64_t>(chunk.size());
    ++chunks;
    return Status::OK();
  }));
  EXPECT_EQ(bytes, 25 << 20);
  EXPECT_GT(chunks, 10);
  EXPECT_EQ(hash.HexDigest(), Sha256Hex(data));
  ASSERT_OK(VerifyObject(client.get(), key, 25 << 20, Sha256Hex(data)));
  EXPECT_THAT(VerifyObject(client.get(), key, 25 << 20, Sha256Hex("other")),
              StatusIs(StatusCode::kDataLoss, HasSubstr("SHA-256")));
  EXPECT_THAT(VerifyObject(client.get(), key, 7, Sha256Hex(data)),
              StatusIs(StatusCode::kDataLoss, HasSubstr("bytes stored, 7 uploaded")));
}

TEST_F(S3Test, ListsMoreThanOnePageAndDeletes) {
  auto client = Client(Options());
  ASSERT_NE(client, nullptr);
  constexpr int kObjects = 1005;  // more than one ListObjectsV2 page of 1000
  std::atomic<int> next{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  threads.reserve(8);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = next++; i < kObjects; i = next++) {
        if (!client->Put(Key(fmt::format("list/{:05d}", i)), std::to_string(i)).ok()) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(failures.load(), 0);
  ASSERT_OK(client->Put(Key("other"), "x"));
  ASSERT_OK_AND_ASSIGN(auto all, client->List(Key("list/")));
  ASSERT_EQ(all.size(), static_cast<size_t>(kObjects));
  EXPECT_EQ(all.front().key, Key("list/00000"));
  EXPECT_EQ(all.back().key, Key("list/01004"));
  EXPECT_EQ(all.back().size, 4);
  ASSERT_OK_AND_ASSIGN(auto some, client->List(Key("list/0100")));
  EXPECT_EQ(some.size(), 5u);

  ASSERT_OK(client->Delete(Key("other")));
  EXPECT_THAT(client->Head(Key("other")), StatusIs(StatusCode::kNotFound, HasSubstr("HTTP 404")));
  EXPECT_TRUE(AwsHead(Key("other")).is_null());
  EXPECT_OK(client->Delete(Key("other")));  // absent: still OK
  EXPECT_THAT(client->Get(Key("other"), [](std::string_view) { return Status::OK(); }),
              StatusIs(StatusCode::kNotFound, HasSubstr("NoSuchKey")));
}

TEST_F(S3Test, AnUnknownAccessKeyIsPermissionDeniedOnOneLine) {
  S3Options options = Options();
  options.access_key_id = "NOTAKEY";
  options.secret_access_key = "not-the-secret-you-seek";
  auto client = Client(options);
  ASSERT_NE(client, nullptr);
  Status st = client->Put(Key("denied"), "x");
  EXPECT_THAT(st, StatusIs(StatusCode::kPermissionDenied,
                           AllOf(HasSubstr(fmt::format("S3 PUT s3://{}/{}: HTTP 403 "
                                                       "InvalidAccessKeyId",
                                                       bucket_, Key("denied"))),
                                 Not(HasSubstr("not-the-secret-you-seek")), Not(HasSubstr("\n")))));
  EXPECT_EQ(client->retries(), 0) << "permanent errors are not retried";
  EXPECT_THAT(client->List(""), StatusIs(StatusCode::kPermissionDenied, HasSubstr("LIST")));
}

TEST_F(S3Test, AMissingBucketIsNotFound) {
  S3Options options = Options();
  options.bucket = "sluice-no-such-bucket";
  auto client = Client(options);
  ASSERT_NE(client, nullptr);
  EXPECT_THAT(client->Put("k", "x"),
              StatusIs(StatusCode::kNotFound,
                       HasSubstr("S3 PUT s3://sluice-no-such-bucket/k: HTTP 404 NoSuchBucket")));
  EXPECT_THAT(client->List(""), StatusIs(StatusCode::kNotFound, HasSubstr("NoSuchBucket")));
}

TEST_F(S3Test, AnEndpointThatRefusesConnectionsIsUnavailableAfterRetries) {
  const ::sluice::testing::RefusingPort refusing;  // a loopback port that refuses connections
  ASSERT_GT(refusing.port(), 0);
  auto client = Client(Options(fmt::format("http://127.0.0.1:{}", refusing.port())));
  ASSERT_NE(client, nullptr);
  EXPECT_THAT(client->Put(Key("k"), "x"),
              StatusIs(StatusCode::kUnavailable, AllOf(HasSubstr("giving up after 3 attempts"),
                                                       HasSubstr("Failed to connect"))));
  EXPECT_EQ(client->retries(), 2);
}

TEST_F(S3Test, VirtualHostedStyleAddressesTheBucketByHostName) {
  S3Options options = Options("http://s3.amazonaws.com");
  options.path_style = false;
  const std::string port = endpoint_.substr(endpoint_.rfind(':') + 1);
  options.connect_to = {fmt::format("{}.s3.amazonaws.com:80:127.0.0.1:{}", bucket_, port)};
  auto client = Client(options);
  ASSERT_NE(client, nullptr);
  ASSERT_OK(client->Put(Key("vhost"), "virtual"));
  EXPECT_EQ(AwsCat(Key("vhost")), "virtual");
  ASSERT_OK_AND_ASSIGN(auto listed, client->List(Key("")));
  EXPECT_EQ(listed.size(), 1u);
}

// ---------------------------------------------------------------------------------------------
// Faults injected by a proxy in front of the server

class S3FaultTest : public S3Test {
 protected:
  void SetUp() override {
    S3Test::SetUp();
    if (HasFatalFailure()) return;
    auto proxy = FaultProxy::Start(endpoint_);
    ASSERT_TRUE(proxy.ok()) << proxy.status().ToString();
    proxy_ = std::move(*proxy);
  }

  std::unique_ptr<FaultProxy> proxy_;
};

TEST_F(S3FaultTest, ServerErrorsAreRetried) {
  auto client = Client(Options(proxy_->endpoint()));
  ASSERT_NE(client, nullptr);
  proxy_->FailNext(2, 500, "InternalError");
  ASSERT_OK(client->Put(Key("retried"), "payload"));
  EXPECT_EQ(client->retries(), 2);
  EXPECT_EQ(proxy_->faults(), 2);
  EXPECT_EQ(proxy_->requests(), 3);
  EXPECT_EQ(AwsCat(Key("retried")), "payload");
  proxy_->FailNext(1, 503, "SlowDown");
  ASSERT_OK_AND_ASSIGN(ObjectInfo info, client->Head(Key("retried")));
  EXPECT_EQ(info.size, 7);
  EXPECT_EQ(client->retries(), 3);
}

TEST_F(S3FaultTest, TooManyServerErrorsFailWithTheLastOne) {
  auto client = Client(Options(proxy_->endpoint()));
  ASSERT_NE(client, nullptr);
  proxy_->FailNext(100, 503, "SlowDown");
  EXPECT_THAT(client->Put(Key("never"), "x"),
              StatusIs(StatusCode::kUnavailable,
                       AllOf(HasSubstr("giving up after 3 attempts"),
                             HasSubstr("HTTP 503 SlowDown"), HasSubstr(Key("never")))));
  proxy_->ClearFaults();
  EXPECT_TRUE(AwsHead(Key("never")).is_null());
}

TEST_F(S3FaultTest, TheBreakerOpensThenProbesAndCloses) {
  S3Options options = Options(proxy_->endpoint());
  options.retry.max_attempts = 2;
  options.breaker.failure_threshold = 3;
  options.breaker.recovery_timeout_us = 300'000;
  auto client = Client(options);
  ASSERT_NE(client, nullptr);
  ASSERT_OK(client->Put(Key("probe"), "p"));
  proxy_->FailNext(100, 500);
  EXPECT_THAT(client->Head(Key("probe")),
              StatusIs(StatusCode::kUnavailable, HasSubstr("HTTP 500")));
  EXPECT_EQ(client->breaker_trips(), 0);
  // The third failure opens the breaker, which refuses the retry.
  EXPECT_THAT(
      client->Head(Key("probe")),
      StatusIs(StatusCode::kUnavailable,
               AllOf(HasSubstr("circuit breaker open after 3 consecutive failed requests"),
                     HasSubstr("next probe within 300ms"), HasSubstr("last failure: S3 HEAD"))));
  EXPECT_EQ(client->breaker_trips(), 1);
  const int64_t seen = proxy_->requests();
  EXPECT_THAT(client->Head(Key("probe")),
              StatusIs(StatusCode::kUnavailable, HasSubstr("circuit breaker open")));
  EXPECT_EQ(proxy_->requests(), seen) << "an open breaker sends nothing";
  proxy_->ClearFaults();
  std::this_thread::sleep_for(std::chrono::milliseconds(350));
  ASSERT_OK(client->Head(Key("probe")));
  EXPECT_EQ(client->breaker_state(), CircuitBreaker::State::kClosed);
}

TEST_F(S3FaultTest, AStalledRequestTimesOutAndIsRetried) {
  S3Options options = Options(proxy_->endpoint());
  options.low_speed_time_us = 1'000'000;
  auto client = Client(options);
  ASSERT_NE(client, nullptr);
  proxy_->StallNext(1, 10'000'000);
  const auto start = std::chrono::steady_clock::now();
  ASSERT_OK(client->Put(Key("stalled"), "after a stall"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_EQ(client->retries(), 1);
  EXPECT_EQ(AwsCat(Key("stalled")), "after a stall");
  proxy_->StallNext(100, 10'000'000);
  EXPECT_THAT(client->Put(Key("stalled"), "x"),
              StatusIs(StatusCode::kTimeout, HasSubstr("no byte moved for 1s")));
}

TEST_F(S3FaultTest, ABrokenDownloadResumesWhereItStopped) {
  auto client = Client(Options(proxy_->endpoint()));
  ASSERT_NE(client, nullptr);
  const std::string data = Random(3 << 20, 2);
  ASSERT_OK(client->Put(Key("resume"), data));
  proxy_->CutNext(1, 1 << 20, "GET ");
  std::string got;
  ASSERT_OK(client->Get(Key("resume"), [&](std::string_view chunk) {
    got += chunk;
    return Status::OK();
  }));
  EXPECT_EQ(client->retries(), 1);
  EXPECT_EQ(got.size(), data.size());
  EXPECT_TRUE(got == data) << "bytes delivered twice or lost";
}

TEST_F(S3FaultTest, AFailedPartAbortsTheMultipartUpload) {
  S3Options options = Options(proxy_->endpoint());
  // Small parts (S3 would refuse them at completion, which never comes): s3rver does not
  // implement AbortMultipartUpload and keeps the parts of this upload.
  options.multipart_threshold = 1 << 20;
  options.part_size = 1 << 20;
  options.retry.max_attempts = 2;
  auto client = Client(options);
  ASSERT_NE(client, nullptr);
  proxy_->FailNext(100, 500, "InternalError", "partNumber=2&");
  EXPECT_THAT(client->Put(Key("parts"), Random((2 << 20) + 100, 3)),
              StatusIs(StatusCode::kUnavailable,
                       AllOf(HasSubstr("UploadPart 2/3"), HasSubstr("giving up after 2"))));
  proxy_->ClearFaults();
  EXPECT_THAT(client->Head(Key("parts")), StatusIs(StatusCode::kNotFound, HasSubstr("404")));
  EXPECT_TRUE(AwsHead(Key("parts")).is_null());
}

// ---------------------------------------------------------------------------------------------
// The object_store sink and source on S3

SchemaPtr AuditSchema() { return MakeSchema({{"id", TypeId::kInt64}, {"msg", TypeId::kString}}); }

BatchPtr AuditRows(int64_t from, int64_t to) {
  ColumnBuilder id(TypeId::kInt64);
  ColumnBuilder msg(TypeId::kString);
  for (int64_t i = from; i < to; ++i) {
    id.AppendInt64(i);
    msg.AppendString(fmt::format("event {}", i));
  }
  return Batch::MakeUnchecked(AuditSchema(), {id.Finish(), msg.Finish()}, to - from);
}

class S3NodeTest : public S3FaultTest {
 protected:
  nlohmann::json NodeOptionsFor(const std::string& endpoint) const {
    return {{"url", fmt::format("s3://{}/{}", bucket_, prefix_)},
            {"endpoint", endpoint},
            {"retry_initial", "10ms"},
            {"retry_max", "50ms"},
            {"retry_max_attempts", 3},
            {"breaker_failures", 100},
            {"key", "audit/{first_key}-{last_key}{ext}"},
            {"run_id", "run"}};
  }

  NodeContext* Context(const std::string& id) {
    contexts_.push_back(
        std::make_unique<NodeContext>(id, kObjectStoreType, &stats_, &cancelled_, false));
    return contexts_.back().get();
  }

  NodeStats stats_;
  std::atomic<bool> cancelled_{false};
  std::vector<std::unique_ptr<NodeContext>> contexts_;
};

TEST_F(S3NodeTest, SinkArchivesVerifiedObjectsThatTheSourceRestores) {
  ASSERT_OK_AND_ASSIGN(
      auto sink, MakeObjectStoreSink(NodeOptions::ForTest("arch", NodeOptionsFor(endpoint_))));
  ASSERT_OK(sink->Open(Context("arch")));
  auto queue = std::make_shared<AckQueue>();
  ASSERT_OK(sink->Write(AuditRows(1, 1001), MakeAcks(queue, 0)));
  ASSERT_OK(sink->Write(AuditRows(1001, 1501), MakeAcks(queue, 1)));
  EXPECT_THAT(Events(queue), ElementsAre(AckEvent(0u, true), AckEvent(1u, true)));
  ASSERT_OK(sink->Flush());
  ASSERT_OK(sink->Close());

  const std::string text = AwsCat(Key("audit/1-1000.jsonl.gz"), "zcat");
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1000);
  EXPECT_TRUE(text.starts_with("{\"id\":1,\"msg\":\"event 1\"}\n"));
  const auto manifest = nlohmann::json::parse(AwsCat(Key("_manifests/run.json")));
  EXPECT_EQ(manifest["store"], "s3://" + bucket_);
  EXPECT_EQ(manifest["total_rows"], 1500);
  EXPECT_EQ(manifest["objects"][1]["key"], Key("audit/1001-1500.jsonl.gz"));
  EXPECT_EQ(manifest["objects"][1]["min_key"], 1001);
  EXPECT_EQ(AwsCat(Key("audit/1001-1500.jsonl.gz"), "sha256sum | cut -c1-64"),
            manifest["objects"][1]["sha256"].get<std::string>() + "\n");
  EXPECT_EQ(stats_.Counters()["objects"], 2);

  nlohmann::json source_options = NodeOptionsFor(endpoint_);
  source_options.erase("key");
  source_options["schema"] = {{"id", "int64"}, {"msg", "string"}};
  ASSERT_OK_AND_ASSIGN(auto source,
                       MakeObjectStoreSource(NodeOptions::ForTest("restore", source_options)));
  ASSERT_OK(source->Open(Context("restore")));
  int64_t rows = 0;
  int64_t sum = 0;
  for (uint64_t seq = 0;; ++seq) {
    ASSERT_OK_AND_ASSIGN(BatchPtr b, source->Next(seq));
    if (b == nullptr) break;
    rows += b->num_rows();
    for (int64_t i = 0; i < b->num_rows(); ++i) sum += b->column(0).GetInt64(i);
  }
  ASSERT_OK(source->Close());
  EXPECT_EQ(rows, 1500);
  EXPECT_EQ(sum, 1500 * 1501 / 2);
}

TEST_F(S3NodeTest, AnUploadThatFailsAfterRetriesFailsTheBatch) {
  ASSERT_OK_AND_ASSIGN(auto sink, MakeObjectStoreSink(NodeOptions::ForTest(
                                      "arch", NodeOptionsFor(proxy_->endpoint()))));
  ASSERT_OK(sink->Open(Context("arch")));
  auto queue = std::make_shared<AckQueue>();
  proxy_->FailNext(100, 500, "InternalError", "PUT ");
  EXPECT_THAT(sink->Write(AuditRows(1, 11), MakeAcks(queue, 0)),
              StatusIs(StatusCode::kUnavailable,
                       AllOf(HasSubstr("S3 PUT"), HasSubstr("audit/1-10.jsonl.gz"))));
  EXPECT_THAT(Events(queue), ElementsAre(AckEvent(0u, false)));
  EXPECT_EQ(stats_.Counters()["retries"], 2);
  EXPECT_TRUE(AwsHead(Key("audit/1-10.jsonl.gz")).is_null());

  // A failure during verification (reading the object back) fails the batch too, although
  // the object was stored.
  proxy_->ClearFaults();
  proxy_->FailNext(100, 500, "InternalError", "GET ");
  EXPECT_THAT(sink->Write(AuditRows(11, 21), MakeAcks(queue, 1)),
              StatusIs(StatusCode::kUnavailable, HasSubstr("S3 GET")));
  EXPECT_THAT(Events(queue), ElementsAre(AckEvent(1u, false)));
  EXPECT_FALSE(AwsHead(Key("audit/11-20.jsonl.gz")).is_null());

  // So does a failure of the check that the key is free, before anything is uploaded.
  proxy_->ClearFaults();
  proxy_->FailNext(100, 500, "InternalError", "HEAD ");
  EXPECT_THAT(sink->Write(AuditRows(41, 51), MakeAcks(queue, 3)),
              StatusIs(StatusCode::kUnavailable, HasSubstr("S3 HEAD")));
  EXPECT_THAT(Events(queue), ElementsAre(AckEvent(3u, false)));
  EXPECT_TRUE(AwsHead(Key("audit/41-50.jsonl.gz")).is_null());

  proxy_->ClearFaults();
  ASSERT_OK(sink->Write(AuditRows(21, 31), MakeAcks(queue, 2)));
  EXPECT_THAT(Events(queue), ElementsAre(AckEvent(2u, true)));
}

// A rerun that makes the same object keeps the stored one; other content under a key that is
// taken fails the batch and leaves the object as it was. Each run has its own manifest.
TEST_F(S3NodeTest, AnObjectIsKeptWhenIdenticalAndNeverReplacedByOtherContent) {
  nlohmann::json options = NodeOptionsFor(endpoint_);
  options.erase("run_id");
  auto run = [&](const BatchPtr& batch) -> Status {
    SLUICE_ASSIGN_OR_RETURN(auto sink, MakeObjectStoreSink(NodeOptions::ForTest("arch", options)));
    SLUICE_RETURN_NOT_OK(sink->Open(Context("arch")));
    auto queue = std::make_shared<AckQueue>();
    Status st = sink->Write(batch, MakeAcks(queue, 0));
    EXPECT_THAT(Events(queue), ElementsAre(AckEvent(0u, st.ok())));
    SLUICE_RETURN_NOT_OK(sink->Close());
    return st;
  };
  ASSERT_OK(run(AuditRows(1, 101)));
  const std::string key = Key("audit/1-100.jsonl.gz");
  const std::string stored = AwsCat(key, "sha256sum | cut -c1-64");
  ASSERT_OK(run(AuditRows(1, 101)));
  EXPECT_EQ(stats_.Counters()["objects_already_stored"], 1);

  ColumnBuilder id(TypeId::kInt64);
  ColumnBuilder msg(TypeId::kString);
  for (int64_t i = 1; i <= 100; ++i) {
    id.AppendInt64(i);
    msg.AppendString("changed");
  }
  EXPECT_THAT(
      run(Batch::MakeUnchecked(AuditSchema(), {id.Finish(), msg.Finish()}, 100)),
      StatusIs(StatusCode::kAlreadyExists, AllOf(HasSubstr("s3://" + bucket_ + "/" + key),
                                                 HasSubstr("exists already with other content"))));
  EXPECT_EQ(AwsCat(key, "sha256sum | cut -c1-64"), stored);

  int rc = 0;
  const std::string listing = Shell(fmt::format("{} --endpoint-url {} s3 ls 's3://{}/{}/' | wc -l",
                                                kAws, endpoint_, bucket_, Key("_manifests")),
                                    &rc);
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(listing, "2\n") << "one manifest per run that stored an object";
}

// A bucket that does not exist and credentials S3 refuses are permanent: the sink fails the
// batch at once (no retry) with one line naming the node, the bucket and what to check.
TEST_F(S3NodeTest, AMissingBucketFailsTheSinkOnceWithWhatToCheck) {
  nlohmann::json options = NodeOptionsFor(endpoint_);
  options["url"] = "s3://sluice-no-such-bucket/archive";
  ASSERT_OK_AND_ASSIGN(auto sink, MakeObjectStoreSink(NodeOptions::ForTest("upload", options)));
  ASSERT_OK(sink->Open(Context("upload")));
  auto queue = std::make_shared<AckQueue>();
  EXPECT_THAT(
      sink->Write(AuditRows(1, 11), MakeAcks(queue, 0)),
      StatusIs(StatusCode::kNotFound,
               AllOf(HasSubstr("node 'upload': S3 PUT s3://sluice-no-such-bucket/archive/audit/"
                               "1-10.jsonl.gz: HTTP 404 NoSuchBucket"),
                     HasSubstr(fmt::format("check that bucket 'sluice-no-such-bucket' exists at {}",
                                           endpoint_)),
                     Not(HasSubstr("\n")))));
  EXPECT_THAT(Events(queue), ElementsAre(AckEvent(0u, false)));
  EXPECT_EQ(stats_.Counters()["retries"], 0) << "a missing bucket is not retried";
}

// s3rver does not check signatures but answers 403 InvalidAccessKeyId to an access key id it
// does not know (checked with awscli: `AWS_ACCESS_KEY_ID=NOTAKEY aws s3 cp` fails with
// InvalidAccessKeyId), so no fault proxy is needed. The sink's first request is the HEAD that
// checks the key is free; an answer to a HEAD has no body, so no error code either.
TEST_F(S3NodeTest, AnUnknownAccessKeyFailsTheSinkOnceWithWhatToCheck) {
  nlohmann::json options = NodeOptionsFor(endpoint_);
  options.erase("run_id");
  options["access_key_id"] = "NOTAKEY";
  options["secret_access_key"] = "not-the-secret-you-seek";
  ASSERT_OK_AND_ASSIGN(auto sink, MakeObjectStoreSink(NodeOptions::ForTest("upload", options)));
  ASSERT_OK(sink->Open(Context("upload")));
  auto queue = std::make_shared<AckQueue>();
  EXPECT_THAT(
      sink->Write(AuditRows(1, 11), MakeAcks(queue, 0)),
      StatusIs(StatusCode::kPermissionDenied,
               AllOf(HasSubstr("node 'upload': S3 HEAD s3://" + bucket_), HasSubstr("HTTP 403"),
                     HasSubstr("check the credentials (options access_key_id and "
                               "secret_access_key, else $AWS_ACCESS_KEY_ID"),
                     HasSubstr(fmt::format("may write to bucket '{}'", bucket_)),
                     Not(HasSubstr("not-the-secret-you-seek")), Not(HasSubstr("\n")))));
  EXPECT_THAT(Events(queue), ElementsAre(AckEvent(0u, false)));
  EXPECT_EQ(stats_.Counters()["retries"], 0) << "a denied request is not retried";
  EXPECT_TRUE(AwsHead(Key("audit/1-10.jsonl.gz")).is_null());

  // With a chosen run_id, Open checks that no other run's manifest has that name: the
  // refused key fails the sink there, before any row is read.
  options["run_id"] = "run";
  ASSERT_OK_AND_ASSIGN(sink, MakeObjectStoreSink(NodeOptions::ForTest("upload", options)));
  EXPECT_THAT(sink->Open(Context("upload")),
              StatusIs(StatusCode::kPermissionDenied,
                       AllOf(HasSubstr("S3 HEAD"), HasSubstr("_manifests/run.json"),
                             HasSubstr("check the credentials"))));
}

TEST_F(S3NodeTest, AMissingBucketFailsTheSourceAtOpenWithWhatToCheck) {
  nlohmann::json options = NodeOptionsFor(endpoint_);
  options.erase("key");
  options["url"] = "s3://sluice-no-such-bucket/archive";
  ASSERT_OK_AND_ASSIGN(auto source,
                       MakeObjectStoreSource(NodeOptions::ForTest("restore", options)));
  EXPECT_THAT(source->Open(Context("restore")),
              StatusIs(StatusCode::kNotFound,
                       AllOf(HasSubstr("node 'restore': S3 LIST s3://sluice-no-such-bucket"),
                             HasSubstr("check that bucket 'sluice-no-such-bucket' exists"))));
}

}  // namespace
}  // namespace sluice
