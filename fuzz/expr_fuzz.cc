// Fuzz the expression language: parse arbitrary text and, when it parses and binds against a
// schema with columns of every type, evaluate it over a small batch (whole and sliced at an odd
// offset) and use it as a filter. Errors are fine; crashes, leaks and UB are not. Then evaluate
// it over that batch repeated past one evaluation slice (1024 rows), sliced at an odd offset:
// every row must have the value of the small batch's same row.

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "sluice/core/batch.h"
#include "sluice/expr/expr.h"

namespace {

const sluice::BatchPtr& TestBatch() {
  using sluice::TypeId;
  static const sluice::BatchPtr kBatch = [] {
    auto schema = sluice::MakeSchema({{"b", TypeId::kBool},
                                      {"i", TypeId::kInt64},
                                      {"j", TypeId::kInt64},
                                      {"f", TypeId::kFloat64},
                                      {"s", TypeId::kString},
                                      {"t", TypeId::kTimestamp},
                                      {"by", TypeId::kBytes},
                                      {"g", TypeId::kGeometry},
                                      {"js", TypeId::kJson},
                                      {"odd name", TypeId::kString}});
    auto batch = sluice::BatchFromJson(schema, R"([
      [true, 1, 0, 1.5, "abc", "2024-03-15T10:30:45Z", "00ff", "0101", {"a": 1}, "x"],
      [false, -9223372036854775808, -1, -0.0, "", 0, "", "", null, ""],
      [null, 9223372036854775807, 9223372036854775807, 1e308, "Émile", -9223372036854775808, null, null, "é", null],
      [true, null, null, null, null, null, "ab", "00", [], "z"],
      [false, 0, 2, -1e-308, "ZZZ", 9223372036854775807, "", "", 1, "y"],
      [null, 7, -9223372036854775808, -3.25, "mixed Case", "1969-12-31T23:59:59Z", "ff", "ff", "s", "w"],
      [true, -7, 3, 0.0, "a'b", "2000-02-29", "", "", true, "v"],
      [false, 42, 0, 2.5, "bob", "1900-01-01", "00", "00", false, "u"],
      [true, 3, 9, 6.0, "q", "2100-12-31T23:59:59.999999Z", "0102", "0102", 2.5, "t"]
    ])");
    return batch.ok() ? *batch : nullptr;
  }();
  return kBatch;
}

// TestBatch repeated 131 times (1179 rows).
const sluice::BatchPtr& LargeBatch() {
  static const sluice::BatchPtr kBatch = [] {
    std::vector<sluice::BatchPtr> copies(131, TestBatch());
    auto batch = sluice::Concatenate(copies);
    return batch.ok() ? *batch : nullptr;
  }();
  return kBatch;
}

bool SameValue(const sluice::Column& a, int64_t i, const sluice::Column& b, int64_t j) {
  if (a.IsNull(i) || b.IsNull(j)) return a.IsNull(i) == b.IsNull(j);
  if (sluice::IsVarWidth(a.type())) return a.GetView(i) == b.GetView(j);
  if (a.type() == sluice::TypeId::kBool) return a.GetBool(i) == b.GetBool(j);
  return a.GetInt64(i) == b.GetInt64(j);  // float64 bit for bit
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto expr = sluice::ParseExpr(text);
  if (!expr.ok()) return 0;
  const sluice::BatchPtr& batch = TestBatch();
  if (batch == nullptr) __builtin_trap();
  auto bound = sluice::Bind(**expr, *batch->schema());
  if (!bound.ok()) return 0;
  for (const auto& b : {batch, batch->Slice(3, 5), batch->Slice(0, 0)}) {
    auto column = (*bound)->Evaluate(*b);
    if (column.ok()) {
      if (column->length() != b->num_rows() || column->type() != (*bound)->type()) {
        __builtin_trap();
      }
      // Touch every value so that a bad offset or buffer shows up under ASan.
      for (int64_t r = 0; r < column->length(); ++r) {
        if (column->IsNull(r)) continue;
        if (sluice::IsVarWidth(column->type())) {
          (void)column->GetView(r).size();
        } else if (column->type() == sluice::TypeId::kBool) {
          (void)column->GetBool(r);
        } else {
          (void)column->GetInt64(r);
        }
      }
    }
    if ((*bound)->type() == sluice::TypeId::kBool) {
      auto filtered = (*bound)->Filter(b);
      if (filtered.ok() && (*filtered)->num_rows() > b->num_rows()) __builtin_trap();
    }
  }
  // now() differs between two evaluations: compare only what does not read the clock.
  if (text.find("now") != std::string_view::npos || LargeBatch() == nullptr) return 0;
  const int64_t base = batch->num_rows();
  constexpr int64_t kOffset = 5;
  auto large = LargeBatch()->Slice(kOffset, LargeBatch()->num_rows() - kOffset - 2);
  auto small = (*bound)->Evaluate(*batch);
  auto big = (*bound)->Evaluate(*large);
  if (!small.ok() || !big.ok()) return 0;
  if (big->length() != large->num_rows()) __builtin_trap();
  for (int64_t r = 0; r < big->length(); ++r) {
    if (!SameValue(*big, r, *small, (r + kOffset) % base)) __builtin_trap();
  }
  return 0;
}
