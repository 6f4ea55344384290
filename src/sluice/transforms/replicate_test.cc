#include <map>
#include <set>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/core/batch.h"
#include "sluice/engine/registry.h"
#include "sluice/testing/emitter.h"
#include "sluice/testing/matchers.h"
#include "sluice/transforms/transforms.h"

namespace sluice {
namespace {

Result<std::unique_ptr<Transform>> MakeReplicate(nlohmann::json options) {
  static const NodeRegistry* registry = [] {
    auto* r = new NodeRegistry();
    RegisterTransformNodes(r);
    return r;
  }();
  const NodeTypeInfo* info = registry->Find("replicate");
  if (info == nullptr) return Status::NotFound("no node type 'replicate'");
  return info->make_transform(NodeOptions::ForTest("copies", std::move(options), "replicate"));
}

BatchPtr Replicated(Transform* t, const BatchPtr& in) {
  EXPECT_TRUE(t->Bind({in->schema()}).ok());
  testing::CollectingEmitter out;
  EXPECT_TRUE(t->Process(in, 0, &out).ok());
  auto all = Concatenate(out.rows);
  EXPECT_TRUE(all.ok());
  return *all;
}

BatchPtr Json(SchemaPtr schema, const char* rows) {
  auto batch = BatchFromJson(std::move(schema), rows);
  EXPECT_TRUE(batch.ok()) << batch.status().ToString();
  return *batch;
}

// Resources and relationships replicated by two nodes of one operation agree on every endpoint:
// in copy k, a relationship's source and target are the ids its resources got in copy k.
TEST(Replicate, RelationshipsPointAtTheirResourcesInTheSameCopy) {
  auto resources = Json(MakeSchema({{"id", TypeId::kInt64}, {"name", TypeId::kString}}),
                        R"([[1, "a"], [2, "b"], [3, "c"]])");
  auto relationships = Json(
      MakeSchema(
          {{"id", TypeId::kInt64}, {"source_id", TypeId::kInt64}, {"target_id", TypeId::kInt64}}),
      R"([[10, 1, 2], [11, 2, null], [12, 3, 1]])");
  ASSERT_OK_AND_ASSIGN(auto r,
                       MakeReplicate({{"copies", 3}, {"operation", "op"}, {"remap", {"id"}}}));
  ASSERT_OK_AND_ASSIGN(auto l, MakeReplicate({{"copies", 3},
                                              {"operation", "op"},
                                              {"remap", {"id", "source_id", "target_id"}}}));
  const BatchPtr res = Replicated(r.get(), resources);
  const BatchPtr rel = Replicated(l.get(), relationships);
  ASSERT_EQ(res->num_rows(), 9);
  ASSERT_EQ(rel->num_rows(), 9);
  // (template id, copy) -> the copy's id
  std::map<std::pair<int64_t, int64_t>, int64_t> id_of;
  std::set<int64_t> ids;
  const int tmpl = res->schema()->FieldIndex("template_source_id");
  const int copy = res->schema()->FieldIndex("copy_number");
  for (int64_t i = 0; i < res->num_rows(); ++i) {
    const int64_t id = res->column(0).GetInt64(i);
    EXPECT_GT(id, 0);
    ids.insert(id);
    id_of[{res->column(tmpl).GetInt64(i), res->column(copy).GetInt64(i)}] = id;
    EXPECT_TRUE(res->column(res->schema()->FieldIndex("synthetic")).GetBool(i));
    EXPECT_EQ(res->column(res->schema()->FieldIndex("scale_operation_id")).GetView(i), "op");
  }
  EXPECT_EQ(ids.size(), 9u);  // distinct over copies
  const auto templates = relationships;
  for (int64_t i = 0; i < rel->num_rows(); ++i) {
    const int64_t k = rel->column(rel->schema()->FieldIndex("copy_number")).GetInt64(i);
    const int64_t t = rel->column(rel->schema()->FieldIndex("template_source_id")).GetInt64(i);
    const int64_t row = t - 10;  // the template relationship's row
    EXPECT_EQ(rel->column(1).GetInt64(i), (id_of[{templates->column(1).GetInt64(row), k}]));
    if (templates->column(2).IsValid(row)) {
      EXPECT_EQ(rel->column(2).GetInt64(i), (id_of[{templates->column(2).GetInt64(row), k}]));
    } else {
      EXPECT_FALSE(rel->column(2).IsValid(i));  // a null endpoint stays null
    }
  }
}

// The same operation makes the same ids (a rerun adds nothing to an upsert sink); another
// operation other ids. String ids read <id>~<operation>~<copy>.
TEST(Replicate, IdsAreAFunctionOfOperationCopyAndId) {
  auto in = Json(MakeSchema({{"id", TypeId::kInt64}, {"key", TypeId::kString}}),
                 R"([[1, "a"], [-5, "b"]])");
  auto make = [](const char* op) {
    return MakeReplicate({{"copies", 2}, {"operation", op}, {"remap", {"id", "key"}}});
  };
  ASSERT_OK_AND_ASSIGN(auto a, make("op-1"));
  ASSERT_OK_AND_ASSIGN(auto b, make("op-1"));
  ASSERT_OK_AND_ASSIGN(auto c, make("op-2"));
  const BatchPtr x = Replicated(a.get(), in), y = Replicated(b.get(), in),
                 z = Replicated(c.get(), in);
  EXPECT_EQ(x->ToString(), y->ToString());
  for (int64_t i = 0; i < x->num_rows(); ++i) {
    EXPECT_NE(x->column(0).GetInt64(i), z->column(0).GetInt64(i));
  }
  EXPECT_EQ(x->column(1).GetView(0), "a~op-1~1");
  EXPECT_EQ(x->column(1).GetView(3), "b~op-1~2");
}

TEST(Replicate, RefusesAnInputThatHasItsTagColumnsOrNonIdTypes) {
  ASSERT_OK_AND_ASSIGN(auto t,
                       MakeReplicate({{"copies", 2}, {"operation", "op"}, {"remap", {"id"}}}));
  auto clash = MakeSchema({{"id", TypeId::kInt64}, {"synthetic", TypeId::kBool}});
  EXPECT_THAT(t->Bind({clash}), testing::StatusIs(StatusCode::kConfigError,
                                                  ::testing::HasSubstr("already has a column "
                                                                       "'synthetic'")));
  ASSERT_OK_AND_ASSIGN(auto u,
                       MakeReplicate({{"copies", 2}, {"operation", "op"}, {"remap", {"score"}}}));
  auto floats = MakeSchema({{"score", TypeId::kFloat64}});
  EXPECT_THAT(u->Bind({floats}),
              testing::StatusIs(StatusCode::kConfigError, ::testing::HasSubstr("int64 or string")));
  EXPECT_FALSE(MakeReplicate({{"copies", 0}, {"operation", "op"}, {"remap", {"id"}}}).ok());
}

}  // namespace
}  // namespace sluice
