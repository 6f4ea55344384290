#include "sluice/transforms/encode.h"

#include <mutex>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/engine/executor.h"
#include "sluice/engine/pipeline.h"
#include "sluice/io/compression.h"
#include "sluice/testing/emitter.h"
#include "sluice/testing/matchers.h"
#include "sluice/testing/pipelines.h"
#include "sluice/transforms/transforms.h"

namespace sluice {
namespace {

using testing::TestNode;

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::StatusIs;

using ::sluice::testing::CollectingEmitter;

std::unique_ptr<Transform> MakeEncode(OptionJson options) {
  NodeRegistry registry;
  RegisterEncodeNode(&registry);
  const NodeTypeInfo* info = registry.Resolve("encode", true);
  EXPECT_NE(info, nullptr);
  // Fill defaults as the loader would.
  for (const auto& o : info->options) {
    if (!options.contains(o.name)) {
      options[o.name] = o.type == OptionType::kInt ? OptionJson(std::stoll(o.default_value))
                                                   : OptionJson(o.default_value);
    }
  }
  auto made = info->make_transform(NodeOptions::ForTest("enc", options, "encode"));
  EXPECT_TRUE(made.ok()) << made.status().ToString();
  return std::move(*made);
}

TEST(EncodeTest, OneCompressedObjectPerBatchWithEveryColumnAndTheInputsTags) {
  auto schema = MakeSchema({{"id", TypeId::kInt64},
                            {"msg", TypeId::kString},
                            {"_meta", TypeId::kString},
                            {"_table", TypeId::kString}});
  ASSERT_OK_AND_ASSIGN(BatchPtr rows, BatchFromJson(schema, R"([[7, "a", "m1", "t"],
                                                               [9, "b\"q", null, "t"]])"));
  BatchPtr in = rows->WithTags(
      {{"database", "db1"}, {"table", "audit"}, {"pg_types", R"({"id":"bigint","_meta":"text"})"}});
  auto encode = MakeEncode({{"format", "jsonl"}, {"compression", "gzip"}});
  ASSERT_OK_AND_ASSIGN(SchemaPtr bound, encode->Bind({schema}));
  EXPECT_TRUE(encoded::IsEncoded(*bound));
  CollectingEmitter out;
  ASSERT_OK(encode->Process(in, 0, &out));
  ASSERT_EQ(out.rows.size(), 1u);
  const Batch& b = *out.rows[0];
  EXPECT_TRUE(encoded::IsEncoded(*b.schema()));
  EXPECT_EQ(b.tags(), in->tags());
  ASSERT_EQ(b.num_rows(), 1);
  ASSERT_OK_AND_ASSIGN(io::EncodedObject o, encoded::ObjectAt(b, 0));
  EXPECT_EQ(o.rows, 2);
  EXPECT_EQ(o.first_key, "7");
  EXPECT_EQ(o.last_key, "9");
  EXPECT_EQ(o.min_key, 7);
  EXPECT_EQ(o.max_key, 9);
  EXPECT_EQ(o.ext, ".jsonl.gz");
  EXPECT_EQ(o.columns.dump(),
            R"([{"name":"id","pg_type":"bigint","type":"int64"},{"name":"msg","type":"string"},)"
            R"({"name":"_meta","pg_type":"text","type":"string"},)"
            R"({"name":"_table","type":"string"}])");
  // Columns named with '_' are the user's data like any other.
  ASSERT_OK_AND_ASSIGN(std::string raw, io::Decompress(io::Codec::kGzip, encoded::PayloadAt(b, 0)));
  EXPECT_EQ(raw,
            "{\"id\":7,\"msg\":\"a\",\"_meta\":\"m1\",\"_table\":\"t\"}\n"
            "{\"id\":9,\"msg\":\"b\\\"q\",\"_meta\":null,\"_table\":\"t\"}\n");
  EXPECT_EQ(o.raw_bytes, static_cast<int64_t>(raw.size()));
}

TEST(EncodeTest, CsvZstdAndTimestampKeys) {
  auto schema = MakeSchema({{"at", TypeId::kTimestamp}, {"v", TypeId::kFloat64}});
  ASSERT_OK_AND_ASSIGN(BatchPtr in, BatchFromJson(schema, R"([["2024-01-02T03:04:05Z", 1.5]])"));
  auto encode = MakeEncode({{"format", "csv"}, {"compression", "zstd"}, {"key_column", "at"}});
  CollectingEmitter out;
  ASSERT_OK(encode->Process(in, 0, &out));
  const Batch& b = *out.rows[0];
  ASSERT_OK_AND_ASSIGN(io::EncodedObject o, encoded::ObjectAt(b, 0));
  EXPECT_EQ(o.first_key, "20240102T030405Z");
  EXPECT_EQ(o.min_key, "2024-01-02T03:04:05Z");
  EXPECT_EQ(o.ext, ".csv.zst");
  EXPECT_TRUE(b.tags().empty());
  ASSERT_OK_AND_ASSIGN(std::string raw, io::Decompress(io::Codec::kZstd, encoded::PayloadAt(b, 0)));
  EXPECT_EQ(raw, "at,v\n2024-01-02T03:04:05Z,1.5\n");
}

TEST(EncodeTest, UnknownKeyColumnIsAConfigError) {
  auto encode = MakeEncode({{"key_column", "nope"}});
  EXPECT_THAT(encode->Bind({MakeSchema({{"id", TypeId::kInt64}})}),
              StatusIs(StatusCode::kConfigError, HasSubstr("'nope' is not a column")));
}

TEST(EncodeTest, ABadPgTypesTagFailsTheBatch) {
  ASSERT_OK_AND_ASSIGN(BatchPtr in, BatchFromJson(MakeSchema({{"id", TypeId::kInt64}}), "[[1]]"));
  auto encode = MakeEncode({});
  CollectingEmitter out;
  EXPECT_THAT(encode->Process(in->WithTags({{"pg_types", "[1]"}}), 0, &out),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("'pg_types' is not a JSON object")));
}

// ---------------------------------------------------------------------------------------------
// Tags travel through transforms that build new batches: the engine gives each output the tags
// of the input it came from.

std::mutex g_seen_mu;
std::vector<BatchPtr>* g_seen = nullptr;  // guarded by g_seen_mu

/// Emits two tagged batches of ids and a `_meta` column, one per "table".
class TaggedSource final : public Source {
 public:
  Result<BatchPtr> Next(uint64_t seq) override {
    if (seq >= 2) return BatchPtr{};
    const std::string table = seq == 0 ? "alpha" : "beta";
    SLUICE_ASSIGN_OR_RETURN(
        BatchPtr b,
        BatchFromJson(Schema(), seq == 0 ? R"([[1, "x"], [2, "y"], [3, "z"]])" : R"([[4, "w"]])"));
    return b->WithTags({{"database", "main"}, {"table", table}, {"date", "2026-01-0" + table}});
  }
  SchemaPtr schema() const override { return Schema(); }
  static SchemaPtr Schema() {
    return MakeSchema({{"id", TypeId::kInt64}, {"_meta", TypeId::kString}});
  }
};

class SeenSink final : public Sink {
 public:
  Status Write(const BatchPtr& batch, AckSet) override {
    std::lock_guard lock(g_seen_mu);
    g_seen->push_back(batch);
    return Status::OK();
  }
};

class TagPropagationTest : public ::testing::TestWithParam<EngineKind> {
 protected:
  void SetUp() override {
    std::lock_guard lock(g_seen_mu);
    g_seen = &seen_;
  }
  void TearDown() override {
    std::lock_guard lock(g_seen_mu);
    g_seen = nullptr;
  }

  Status Run(std::vector<NodeSpec> nodes) {
    NodeRegistry registry;
    RegisterTransformNodes(&registry);
    registry.AddSource("tagged", "test", {}, [](const NodeOptions&) {
      return Result<std::unique_ptr<Source>>(std::unique_ptr<Source>(new TaggedSource()));
    });
    registry.AddSink("seen", "test", {}, [](const NodeOptions&) {
      return Result<std::unique_ptr<Sink>>(std::unique_ptr<Sink>(new SeenSink()));
    });
    PipelineSpec spec;
    spec.settings.engine = GetParam();
    spec.nodes = std::move(nodes);
    SLUICE_ASSIGN_OR_RETURN(auto pipeline, Pipeline::Build(std::move(spec), registry));
    PipelineRun run(pipeline.get(), RunOptions{});
    return run.Execute();
  }

  std::vector<BatchPtr> seen_;
};

TEST_P(TagPropagationTest, FilterSelectMapCastAndEncodeKeepTheInputsTags) {
  ASSERT_OK(Run({TestNode("src", "tagged", {}),
                 TestNode("keep", "filter", {"src"}, {{"where", "id != 2"}}),
                 TestNode("pick", "select", {"keep"}, {{"columns", {"_meta", "id"}}}),
                 TestNode("calc", "map", {"pick"}, {{"columns", {{"twice", "id * 2"}}}}),
                 TestNode("str", "cast", {"calc"}, {{"columns", {{"twice", "string"}}}}),
                 TestNode("enc", "encode", {"str"},
                          {{"format", "jsonl"}, {"compression", "none"}, {"key_column", "id"}}),
                 TestNode("out", "seen", {"enc"})}));
  ASSERT_EQ(seen_.size(), 2u);
  std::sort(seen_.begin(), seen_.end(), [](const BatchPtr& a, const BatchPtr& b) {
    return a->tags().Get("table") < b->tags().Get("table");
  });
  EXPECT_EQ(seen_[0]->tags(),
            BatchTags({{"database", "main"}, {"table", "alpha"}, {"date", "2026-01-0alpha"}}));
  EXPECT_EQ(seen_[1]->tags().Get("table"), "beta");
  EXPECT_EQ(
      encoded::PayloadAt(*seen_[0], 0),
      "{\"_meta\":\"x\",\"id\":1,\"twice\":\"2\"}\n{\"_meta\":\"z\",\"id\":3,\"twice\":\"6\"}\n");
  ASSERT_OK_AND_ASSIGN(io::EncodedObject o, encoded::ObjectAt(*seen_[0], 0));
  EXPECT_EQ(o.first_key, "1");
  EXPECT_EQ(o.last_key, "3");
}

INSTANTIATE_TEST_SUITE_P(BothExecutors, TagPropagationTest,
                         ::testing::Values(EngineKind::kParallel, EngineKind::kSequential));

}  // namespace
}  // namespace sluice
