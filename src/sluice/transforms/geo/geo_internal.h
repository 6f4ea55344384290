#pragma once

// Private to src/sluice/transforms/geo: what the geo transforms share — their common options
// (the geometry column, on_error, id_column, validate), the row loop that applies on_error, and
// the factories geo_options.cc registers.

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sluice/engine/node.h"
#include "sluice/engine/options.h"
#include "sluice/expr/expr.h"
#include "sluice/transforms/geo/geo_context.h"
#include "sluice/transforms/transforms_internal.h"

namespace sluice::geo {

/// What a row whose geometry cannot be read or processed does.
enum class OnError : uint8_t {
  kFail,        ///< Fail the batch (and the run) with a message naming the row.
  kSkip,        ///< Drop the row, counted in geometry_errors and discarded_rows.
  kDeadLetter,  ///< Send the row to `<id>.dead_letter`, counted in geometry_errors.
};

/// The options every geo transform reads (geo_options.cc: ReadCommon).
struct CommonConfig {
  std::string column = "geometry";  ///< The input geometry column; "" for make_point.
  std::string id_column;            ///< A column whose value error messages quote.
  OnError on_error = OnError::kFail;
  bool validate = false;  ///< Check each geometry with GEOS's isValid first.
};

/// What one row came to, as a node's Row() reports it.
enum class RowOutcome : uint8_t {
  kKeep,   ///< The row goes on (with the values the node appended).
  kDrop,   ///< A filter drops the row.
  kError,  ///< The row failed; GeoTransform::error_ says why, on_error decides.
};

/// Return the number in row `r` of an int64 or float64 column into `*v`; false for a null.
inline bool NumberAt(const Column& c, int64_t r, double* v) {
  if (c.IsNull(r)) return false;
  *v = c.type() == TypeId::kFloat64 ? c.GetFloat64(r) : static_cast<double>(c.GetInt64(r));
  return true;
}

/// The base of the geo transforms: binds the geometry column, evaluates the node's
/// expressions once per batch, calls Row() for each row and applies on_error to the rows that
/// fail, then emits the input's columns with the node's outputs added or replaced. A node
/// declares its outputs (Outputs) and expressions (Exprs) and appends one value per output
/// column for each row. One instance is called from one thread at a time.
class GeoTransform : public Transform {
 public:
  /// An added or replaced column: when the input has a column of that name, it is replaced.
  struct Output {
    std::string name;
    TypeId type;
  };
  /// A numeric expression the node evaluates per batch, and the option it came from.
  struct NumberExpr {
    std::string option;
    const Expr* expr;
  };

  GeoTransform(NodeOptions options, CommonConfig common);

  Status Open(NodeContext* ctx) override;
  Result<SchemaPtr> Bind(const std::vector<SchemaPtr>& inputs) override;
  Status Process(const BatchPtr& batch, int input, Emitter* out) override;
  std::string LossyBecause() const override;
  /// Dead letters number rows across the instance's batches ("row N"): with on_error:
  /// dead_letter the node is not fused (Transform::BatchLocal).
  bool BatchLocal() const override { return common_.on_error != OnError::kDeadLetter; }

 protected:
  /// What the node does to batches of one input schema.
  struct Plan {
    int geometry = -1;         ///< The geometry column; -1 for a node without one (make_point).
    int id = -1;               ///< The id column; -1 when id_column is not set.
    std::vector<int> targets;  ///< Per Output: its index in the output columns.
    std::vector<std::unique_ptr<BoundExpr>> exprs;  ///< Per NumberExpr, bound.
    SchemaPtr output;
    std::string replaced;  ///< The input columns outputs replace, for LossyBecause.
  };

  /// Return the columns the node adds or replaces (none for filters).
  virtual std::vector<Output> Outputs() const { return {}; }
  /// Return the numeric expressions to evaluate per batch (into values_).
  virtual std::vector<NumberExpr> Exprs() const { return {}; }
  /// Return the output schema for `input` and fill the node's part of `plan` (geometry, id
  /// and exprs are already set). The default places Outputs().
  virtual Result<SchemaPtr> PlanOutput(const SchemaPtr& input, Plan* plan);
  /// Called before the rows of a batch (values_ and builders_ are ready).
  virtual Status BeginBatch(const Batch& batch) { return Status::OK(); }
  /// Handle row `r`, whose geometry (for nodes with one) is the non-null `wkb`: append one
  /// value to each of builders_, or return kDrop, or set error_ and return kError (values
  /// appended for the row are then discarded).
  virtual RowOutcome Row(GeoThread& geo, int64_t r, std::string_view wkb) = 0;
  /// Handle row `r` whose geometry is null: by default its outputs are null and it is kept.
  virtual RowOutcome NullRow(int64_t r) { return RowOutcome::kKeep; }
  /// Emit what the batch came to; the default emits the input's columns with builders_ in
  /// their targets' places, without the rows `keep_` marks 0. Called only when no row failed
  /// the batch.
  virtual Status EndBatch(const BatchPtr& batch, Emitter* out);
  /// Return why the node, as configured, drops rows it receives ("" when it keeps them all).
  virtual std::string DropsRows() const { return {}; }

  /// Parse `wkb` with GEOS, and with `validate` check it: null with error_ set when it is not
  /// a (valid) geometry.
  GeomPtr ReadGeometry(GeoThread& geo, std::string_view wkb);
  /// Append `g` to `out` as EWKB with the SRID `srid` and `dims` coordinate dimensions; false
  /// with error_ set when GEOS fails.
  bool WriteGeometry(GeoThread& geo, GEOSGeometry* g, int srid, int dims, ColumnBuilder* out);
  /// Set error_ to `what` followed by GEOS's message, and return kError.
  RowOutcome GeosError(GeoThread& geo, std::string_view what);

  /// Return "batch row 3" or, with id_column, "batch row 3 (id = 42)", for messages.
  std::string RowName(int64_t r) const;

  const NodeOptions& options() const { return options_; }
  const CommonConfig& common() const { return common_; }

  NodeContext* ctx_ = nullptr;
  const Plan* plan_ = nullptr;           ///< The current batch's plan.
  const Batch* batch_ = nullptr;         ///< The batch being processed.
  std::vector<ColumnBuilder> builders_;  ///< Per Output, for the current batch.
  std::vector<Column> values_;           ///< Per NumberExpr, over the current batch.
  std::vector<uint8_t> keep_;            ///< Per row of the current batch: 1 to emit it.
  std::string error_;                    ///< Why the current row failed (kError).
  /// A failure that is not the row's fault (a configuration the data shows to be wrong): it
  /// fails the batch whatever on_error says.
  Status fatal_;

 private:
  Result<const Plan*> PlanFor(const SchemaPtr& schema);
  /// Apply on_error to row `r` that failed with error_; a Status when the batch fails.
  Status RowFailed(int64_t r);
  Status DeadLetterRows(const Batch& batch);

  NodeOptions options_;
  CommonConfig common_;
  transforms_internal::SchemaCache<Plan> cache_;
  int64_t rows_seen_ = 0;  ///< Rows of this instance's input before the current batch.
  std::vector<std::pair<int64_t, std::string>> dead_;  ///< (row, error) of the current batch.
  std::string lossy_;
};

/// Return option `name` or, when it is absent (options built for tests have no defaults
/// filled in), `fallback`.
inline std::string StringOr(const NodeOptions& o, const std::string& name, std::string fallback) {
  return o.Has(name) ? o.GetString(name) : fallback;
}
inline int64_t IntOr(const NodeOptions& o, const std::string& name, int64_t fallback) {
  return o.Has(name) ? o.GetInt(name) : fallback;
}
inline double FloatOr(const NodeOptions& o, const std::string& name, double fallback) {
  return o.Has(name) ? o.GetFloat(name) : fallback;
}
inline bool BoolOr(const NodeOptions& o, const std::string& name, bool fallback) {
  return o.Has(name) ? o.GetBool(name) : fallback;
}

/// Return the value of row `r` of `c` as error messages quote it ('text', 42, null).
std::string ShowValue(const Column& c, int64_t r);

/// Parse the expression of option `name`; a config error at the option when it does not parse.
Result<std::unique_ptr<Expr>> ReadExpr(const NodeOptions& o, const std::string& name);

/// Return the geometry's coordinate dimension (2 or 3) as GEOS sees it.
int Dimensions(GeoThread& geo, const GEOSGeometry* g);

/// Read the options every geo transform has (column, id_column, on_error, validate).
Result<CommonConfig> ReadCommon(const NodeOptions& o, bool has_column = true);

Result<std::unique_ptr<Transform>> MakeBuffer(const NodeOptions& o);
Result<std::unique_ptr<Transform>> MakeSimplify(const NodeOptions& o);
Result<std::unique_ptr<Transform>> MakeCentroid(const NodeOptions& o);
Result<std::unique_ptr<Transform>> MakeMakeValid(const NodeOptions& o);
Result<std::unique_ptr<Transform>> MakeArea(const NodeOptions& o);
Result<std::unique_ptr<Transform>> MakeLength(const NodeOptions& o);
Result<std::unique_ptr<Transform>> MakeIsValid(const NodeOptions& o);
Result<std::unique_ptr<Transform>> MakeBboxFilter(const NodeOptions& o);
Result<std::unique_ptr<Transform>> MakeIntersects(const NodeOptions& o);
Result<std::unique_ptr<Transform>> MakeReproject(const NodeOptions& o);
Result<std::unique_ptr<Transform>> MakeMakePoint(const NodeOptions& o);
Result<std::unique_ptr<Transform>> MakeDissolve(const NodeOptions& o);

}  // namespace sluice::geo
