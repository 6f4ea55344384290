#include "sluice/transforms/encode.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/io/compression.h"
#include "sluice/testing/matchers.h"

namespace sluice {
namespace {

using ::testing::HasSubstr;
using testing::StatusIs;

class CollectingEmitter final : public Emitter {
 public:
  Status Emit(BatchPtr batch) override {
    out.push_back(std::move(batch));
    return Status::OK();
  }
  Status Emit(BatchPtr batch, AckSet) override { return Emit(std::move(batch)); }
  AckSet HoldAcks() override { return AckSet(); }
  std::vector<BatchPtr> out;
};

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

TEST(EncodeTest, OneCompressedObjectPerBatchWithoutMetadataColumns) {
  auto schema = MakeSchema({{"id", TypeId::kInt64},
                            {"msg", TypeId::kString},
                            {"_database", TypeId::kString},
                            {"_table", TypeId::kString}});
  ASSERT_OK_AND_ASSIGN(BatchPtr in, BatchFromJson(schema, R"([[7, "a", "db1", "audit"],
                                                             [9, "b\"q", "db1", "audit"]])"));
  auto encode = MakeEncode({{"format", "jsonl"}, {"compression", "gzip"}});
  ASSERT_OK_AND_ASSIGN(SchemaPtr bound, encode->Bind({schema}));
  EXPECT_TRUE(encoded::IsEncoded(*bound));
  CollectingEmitter out;
  ASSERT_OK(encode->Process(in, 0, &out));
  ASSERT_EQ(out.out.size(), 1u);
  const Batch& b = *out.out[0];
  EXPECT_TRUE(encoded::IsEncoded(*b.schema()));
  ASSERT_EQ(b.num_rows(), 1);
  EXPECT_EQ(b.GetColumn(encoded::kRows)->GetInt64(0), 2);
  EXPECT_EQ(b.GetColumn(encoded::kFirstKey)->GetView(0), "7");
  EXPECT_EQ(b.GetColumn(encoded::kLastKey)->GetView(0), "9");
  EXPECT_EQ(b.GetColumn(encoded::kExtension)->GetView(0), ".jsonl.gz");
  EXPECT_EQ(b.GetColumn(encoded::kDatabase)->GetView(0), "db1");
  EXPECT_EQ(b.GetColumn(encoded::kTable)->GetView(0), "audit");
  ASSERT_OK_AND_ASSIGN(std::string raw,
                       io::Decompress(io::Codec::kGzip, b.GetColumn(encoded::kObject)->GetView(0)));
  EXPECT_EQ(raw, "{\"id\":7,\"msg\":\"a\"}\n{\"id\":9,\"msg\":\"b\\\"q\"}\n");
  EXPECT_EQ(b.GetColumn(encoded::kRawBytes)->GetInt64(0), static_cast<int64_t>(raw.size()));
}

TEST(EncodeTest, CsvZstdAndTimestampKeys) {
  auto schema = MakeSchema({{"at", TypeId::kTimestamp}, {"v", TypeId::kFloat64}});
  ASSERT_OK_AND_ASSIGN(BatchPtr in, BatchFromJson(schema, R"([["2024-01-02T03:04:05Z", 1.5]])"));
  auto encode = MakeEncode({{"format", "csv"}, {"compression", "zstd"}, {"key_column", "at"}});
  CollectingEmitter out;
  ASSERT_OK(encode->Process(in, 0, &out));
  const Batch& b = *out.out[0];
  EXPECT_EQ(b.GetColumn(encoded::kFirstKey)->GetView(0), "20240102T030405Z");
  EXPECT_EQ(b.GetColumn(encoded::kExtension)->GetView(0), ".csv.zst");
  EXPECT_TRUE(b.GetColumn(encoded::kDatabase)->IsNull(0));
  ASSERT_OK_AND_ASSIGN(std::string raw,
                       io::Decompress(io::Codec::kZstd, b.GetColumn(encoded::kObject)->GetView(0)));
  EXPECT_EQ(raw, "at,v\n2024-01-02T03:04:05Z,1.5\n");
}

TEST(EncodeTest, UnknownKeyColumnIsAConfigError) {
  auto encode = MakeEncode({{"key_column", "nope"}});
  EXPECT_THAT(encode->Bind({MakeSchema({{"id", TypeId::kInt64}})}),
              StatusIs(StatusCode::kConfigError, HasSubstr("'nope' is not a column")));
}

}  // namespace
}  // namespace sluice
