#include "sluice/engine/partition.h"

#include <cstring>

namespace sluice {

namespace {

uint64_t Fnv1a(const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t h = 14695981039346656037ull;
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace

int PartitionOf(const Column& column, int64_t row, int instances) {
  if (instances <= 1 || column.IsNull(row)) return 0;
  uint64_t h = 0;
  switch (column.type()) {
    case TypeId::kBool: {
      const bool v = column.GetBool(row);
      h = Fnv1a(&v, sizeof v);
      break;
    }
    case TypeId::kInt64:
    case TypeId::kTimestamp: {
      const int64_t v = column.GetInt64(row);
      h = Fnv1a(&v, sizeof v);
      break;
    }
    case TypeId::kFloat64: {
      double v = column.GetFloat64(row);
      if (v == 0) v = 0;  // -0.0 and 0.0 are one key
      h = Fnv1a(&v, sizeof v);
      break;
    }
    default: {
      const std::string_view v = column.GetView(row);
      h = Fnv1a(v.data(), v.size());
      break;
    }
  }
  return static_cast<int>(h % static_cast<uint64_t>(instances));
}

Result<std::unique_ptr<KeyPartitioner>> KeyPartitioner::Make(const std::string& expression,
                                                             int instances) {
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<Expr> expr, ParseExpr(expression));
  return std::unique_ptr<KeyPartitioner>(new KeyPartitioner(std::move(expr), instances));
}

Result<std::vector<std::vector<int32_t>>> KeyPartitioner::Split(const Batch& batch) const {
  const BoundExpr* bound = nullptr;
  {
    std::lock_guard lock(mu_);
    auto it = bound_.find(batch.schema().get());
    if (it == bound_.end()) {
      SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<BoundExpr> b, Bind(*expr_, *batch.schema()));
      it = bound_.emplace(batch.schema().get(), std::make_pair(batch.schema(), std::move(b))).first;
    }
    bound = it->second.second.get();  // immutable once bound; Evaluate is thread-safe
  }
  SLUICE_ASSIGN_OR_RETURN(Column keys, bound->Evaluate(batch));
  std::vector<std::vector<int32_t>> out(static_cast<size_t>(instances_));
  for (int64_t r = 0; r < batch.num_rows(); ++r) {
    out[static_cast<size_t>(PartitionOf(keys, r, instances_))].push_back(static_cast<int32_t>(r));
  }
  return out;
}

}  // namespace sluice
