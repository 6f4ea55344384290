#pragma once

// Aggregates for the window transform: parsing `name: fn(column)`, and the per-group state
// they keep, laid out as a fixed number of 8-byte cells per group so that a window's groups
// live in one flat vector.

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "sluice/core/batch.h"
#include "sluice/core/result.h"
#include "sluice/transforms/quantile_sketch.h"

namespace sluice::window_internal {

enum class AggKind : uint8_t {
  kCountRows,  ///< count(): every row
  kCount,      ///< count(col): rows where col is not null
  kSum,
  kMin,
  kMax,
  kAvg,
  kStddev,  ///< sample standard deviation, as PostgreSQL's stddev
  kFirst,   ///< the value at the earliest event time
  kLast,    ///< the value at the latest event time
  kQuantile,
};

/// One output column of a window: `output: fn(column)`.
struct AggSpec {
  std::string output;
  AggKind kind = AggKind::kCountRows;
  std::string column;  ///< "" for count()
  double q = 0;        ///< for kQuantile: 0.95 for p95
  // Set by AggLayout::Bind:
  int input = -1;  ///< index of `column` in the input schema
  TypeId input_type = TypeId::kInt64;
  TypeId output_type = TypeId::kInt64;
  int offset = 0;  ///< first cell of this aggregate in a group's cells
  /// sum, avg, min, max: the cell counting the column's non-null values, one shared by every
  /// such aggregate of the column (min, max and avg of voltage count the same rows).
  int count = -1;
};

/// Parse "sum(kwh)", "count()", "p95(current)" for output column `output`. Errors say what
/// functions exist.
Result<AggSpec> ParseAggregate(const std::string& output, const std::string& text);

/// The functions ParseAggregate knows, for documentation and messages.
inline constexpr const char* kAggregateFunctions =
    "count(), count(col), sum, min, max, avg, stddev, first, last, p0 to p99 (p95: the 95th "
    "percentile), p999, p9999";

union Cell {
  int64_t i;
  double d;
};

/// A quantile's state in its group's own cells: up to kCapacity values as 16-bit bucket keys
/// (QuantileSketch::ShortKey), unsorted. A window's groups mostly hold a few values each (15
/// one-minute readings in 15 minutes), and hopping windows merge them per key and window: kept
/// here, a merge reads and writes the cache lines of the group's other aggregates, not a
/// second array. With more values, or one whose key needs 32 bits, the group's values move to
/// a QuantileSketch of its store (`spill`) for good.
struct __attribute__((may_alias)) SmallQuantile {
  static constexpr uint32_t kCapacity = 16;
  uint32_t n;     ///< values in keys; 0 once spilled
  int32_t spill;  ///< -1, or the index in AggStore::sketches of the sketch of every value
  int16_t keys[kCapacity];
};
static_assert(sizeof(SmallQuantile) == 5 * sizeof(Cell));

/// The state of some groups: `width` cells per group, plus the quantile sketches groups have
/// spilled to (SmallQuantile::spill).
struct AggStore {
  /// `width` cells per group. Not zero-filled as it grows: AddGroup writes a new group's cells.
  std::vector<Cell, UninitializedAllocator<Cell>> cells;
  std::vector<QuantileSketch> sketches;
  int32_t groups = 0;
  int64_t sketch_heap = 0;   ///< bytes the sketches hold on the heap
  size_t sketches_used = 0;  ///< sketches [0, sketches_used) belong to groups; the rest are spare

  /// Drop every group, keeping the memory (cells, sketches) for the next ones.
  void Reset() {
    cells.clear();
    groups = 0;
    sketches_used = 0;
  }
  /// Return the index of an empty sketch for a group to spill to (a spare one when there is).
  int32_t NewSketch();

  /// Become a copy of `o`, reusing this store's cells and sketches (no allocation once they
  /// are large enough).
  void CopyFrom(const AggStore& o);

  /// Return the bytes held, roughly (for the memory budget).
  int64_t Bytes() const;
};

/// How a window's aggregates lay out their cells, and the operations on them.
class AggLayout {
 public:
  /// Resolve each spec's column in `schema` (with `time_col` the event-time column for
  /// first/last), check types and assign cells. Errors name the aggregate.
  Status Bind(std::vector<AggSpec> specs, const Schema& schema, int time_col);

  const std::vector<AggSpec>& specs() const { return specs_; }
  int width() const { return width_; }

  /// Add a group to `store` with every aggregate empty; return its index.
  int32_t AddGroup(AggStore* store) const;
  /// Make room in `store` for `groups` groups in all (no allocation until it holds more).
  void Reserve(AggStore* store, int32_t groups) const;
  /// Fold the rows of `batch` in: row r goes to group group_of[r] of store_of[r]; rows whose
  /// store is null are skipped. `time` is the event-time column. Fails on an int64 sum
  /// overflow.
  Status Update(const Batch& batch, const Column& time, const std::vector<AggStore*>& store_of,
                const std::vector<int32_t>& group_of) const;
  /// Fold row `r` of `batch` into group `g` of `store` (the row-at-a-time Update).
  Status UpdateRow(const Batch& batch, const Column& time, int64_t r, AggStore* store,
                   int32_t g) const;
  /// Fold group `src` of `from` into group `dst` of `to`; false when an int64 sum overflows.
  bool Merge(AggStore* to, int32_t dst, const AggStore& from, int32_t src) const;
  /// Fold groups [0, n) of `from` into groups dst[0], ..., dst[n - 1] of `to` (the groups
  /// exist): Merge for many groups, one pass per aggregate. False when an int64 sum overflows.
  bool MergeGroups(AggStore* to, const int32_t* dst, const AggStore& from, int32_t n) const;
  /// Make one builder per aggregate, of its output type.
  std::vector<ColumnBuilder> MakeBuilders(int64_t capacity) const;
  /// Append the result of group `g` of `store` to `builders`.
  void Append(const AggStore& store, int32_t g, std::vector<ColumnBuilder>* builders) const;
  /// Append the results of groups [0, n) of `store`: Append for many groups, one pass per
  /// aggregate.
  void AppendGroups(const AggStore& store, int32_t n, std::vector<ColumnBuilder>* builders) const;

 private:
  std::vector<AggSpec> specs_;
  int time_col_ = -1;
  int width_ = 0;
  std::vector<Cell> empty_;  ///< the cells of a group with every aggregate empty
  /// The shared count cells (AggSpec::count): (input column, cell).
  std::vector<std::pair<int, int>> counts_;
  /// How merging folds a group's cells, by what they hold (Bind): a merge runs each list's
  /// short loop, of the same length for every group, rather than a pass per aggregate.
  struct MergePlan {
    std::vector<int> add_int;      ///< counts, the shared counts
    std::vector<int> add_int_sum;  ///< int64 sums (overflow checked)
    std::vector<int> add_double;   ///< float64 sums, avg's sums
    std::vector<int> min_double, max_double;
    std::vector<int> min_int, max_int;  ///< of int64 and timestamp columns
    std::vector<int> quantiles;
    std::vector<int> stddev, first, last;
  };
  /// The plan of the bound specs and shared counts.
  MergePlan PlanMerges() const;
  MergePlan plan_;
  /// Fold the group whose cells are `b` (of `from`) into the group whose cells are `a` (of
  /// `to`); clears *ok when an int64 sum overflows.
  void MergeGroup(Cell* a, const Cell* b, AggStore* to, const AggStore& from, bool* ok) const;
};

/// The slow paths of AddToQuantile and MergeQuantile: past the 16-bit inline form.
void AddToQuantileSlow(SmallQuantile* q, int32_t key, AggStore* store);
void MergeQuantileSlow(SmallQuantile* a, AggStore* to, const SmallQuantile& b,
                       const AggStore& from);

/// Fold the value of bucket key `key` (QuantileSketch::KeyOf) into quantile `q` of `store`.
inline void AddToQuantile(SmallQuantile* q, int32_t key, AggStore* store) {
  int16_t k;
  if (q->spill < 0 && q->n < SmallQuantile::kCapacity && QuantileSketch::ShortKey(key, &k)) {
    q->keys[q->n++] = k;
    return;
  }
  AddToQuantileSlow(q, key, store);
}

/// Fold quantile `b` of `from` into quantile `a` of `to`.
inline void MergeQuantile(SmallQuantile* a, AggStore* to, const SmallQuantile& b,
                          const AggStore& from) {
  if (a->spill < 0 && b.spill < 0 && a->n + b.n <= SmallQuantile::kCapacity) {
    for (uint32_t i = 0; i < b.n; ++i) a->keys[a->n + i] = b.keys[i];
    a->n += b.n;
    return;
  }
  MergeQuantileSlow(a, to, b, from);
}

/// a > b, with NaN above every number (PostgreSQL's order for floats). Without branches: min
/// and max fold values in no order a branch predictor could learn.
inline bool PgGreater(double a, double b) {
  const bool an = std::isnan(a), bn = std::isnan(b);
  return (a > b) | (an & !bn);
}

/// *to = take ? from : *to, without a branch.
inline void SelectInto(Cell* to, Cell from, bool take) {
  const int64_t mask = -static_cast<int64_t>(take);
  to->i = (from.i & mask) | (to->i & ~mask);
}

}  // namespace sluice::window_internal
