// GeoTransform: the row loop of the geo transforms and their on_error handling.

#include <algorithm>

#include "sluice/core/time.h"
#include "sluice/io/format.h"
#include "sluice/transforms/geo/geo_internal.h"

namespace sluice::geo {

using transforms_internal::NoColumn;

std::string ShowValue(const Column& c, int64_t r) {
  if (c.IsNull(r)) return "null";
  switch (c.type()) {
    case TypeId::kBool:
      return c.GetBool(r) ? "true" : "false";
    case TypeId::kInt64:
      return fmt::format("{}", c.GetInt64(r));
    case TypeId::kFloat64:
      return fmt::format("{}", c.GetFloat64(r));
    case TypeId::kTimestamp:
      return FormatTimestamp(c.GetInt64(r));
    default: {
      const std::string_view v = c.GetView(r);
      if (v.size() > 64) return fmt::format("'{}...'", v.substr(0, 64));
      return fmt::format("'{}'", v);
    }
  }
}

int Dimensions(GeoThread& geo, const GEOSGeometry* g) {
  return GEOSGeom_getCoordinateDimension_r(geo.handle(), g) == 3 ? 3 : 2;
}

GeoTransform::GeoTransform(NodeOptions options, CommonConfig common)
    : options_(std::move(options)), common_(std::move(common)) {}

Status GeoTransform::Open(NodeContext* ctx) {
  ctx_ = ctx;
  return Status::OK();
}

Result<SchemaPtr> GeoTransform::Bind(const std::vector<SchemaPtr>& inputs) {
  if (inputs.empty() || inputs[0] == nullptr) return SchemaPtr{};
  SLUICE_ASSIGN_OR_RETURN(const Plan* plan, PlanFor(inputs[0]));
  return plan->output;
}

std::string GeoTransform::LossyBecause() const {
  std::string why = DropsRows();
  if (common_.on_error == OnError::kSkip) {
    why += (why.empty() ? "" : "; ") +
           std::string("drops the rows whose geometry it cannot handle (on_error: skip)");
  }
  if (!lossy_.empty()) why += (why.empty() ? "" : "; ") + lossy_;
  return why;
}

Result<const GeoTransform::Plan*> GeoTransform::PlanFor(const SchemaPtr& schema) {
  return cache_.Get(schema, [&]() -> Result<Plan> {
    Plan plan;
    if (!common_.column.empty()) {
      plan.geometry = schema->FieldIndex(common_.column);
      if (plan.geometry < 0) return options_.ErrorAt("column", NoColumn(common_.column, *schema));
      const TypeId t = schema->field(plan.geometry).type;
      if (t != TypeId::kGeometry) {
        return options_.ErrorAt(
            "column",
            fmt::format("'{}' is {}, not geometry: declare it as geometry in the source's schema "
                        "(a text column of WKT or hex EWKB, a JSONL column of GeoJSON objects), "
                        "or convert it with {{type: cast, columns: {{{}: geometry}}}}",
                        common_.column, TypeName(t), common_.column));
      }
    }
    if (!common_.id_column.empty()) {
      plan.id = schema->FieldIndex(common_.id_column);
      if (plan.id < 0) return options_.ErrorAt("id_column", NoColumn(common_.id_column, *schema));
    }
    for (const auto& e : Exprs()) {
      auto bound = sluice::Bind(*e.expr, *schema);
      if (!bound.ok()) return options_.ErrorAt(e.option, bound.status().message());
      const TypeId t = (*bound)->type();
      if (t != TypeId::kInt64 && t != TypeId::kFloat64) {
        return options_.ErrorAt(
            e.option,
            fmt::format("expression '{}' is {}; it must give a number", e.expr->text, TypeName(t)));
      }
      plan.exprs.push_back(std::move(*bound));
    }
    SLUICE_ASSIGN_OR_RETURN(plan.output, PlanOutput(schema, &plan));
    lossy_ = plan.replaced.empty() ? "" : "replaces the input columns " + plan.replaced;
    return plan;
  });
}

Result<SchemaPtr> GeoTransform::PlanOutput(const SchemaPtr& input, Plan* plan) {
  std::vector<Field> fields = input->fields();
  for (const auto& o : Outputs()) {
    const int i = input->FieldIndex(o.name);
    if (i >= 0) {
      // Replacing the geometry with a geometry derived from it (a buffer) loses the input's.
      plan->replaced += (plan->replaced.empty() ? "" : ", ") + o.name;
      fields[static_cast<size_t>(i)] = {o.name, o.type, true};
      plan->targets.push_back(i);
    } else {
      plan->targets.push_back(static_cast<int>(fields.size()));
      fields.push_back({o.name, o.type, true});
    }
  }
  return MakeSchema(std::move(fields));
}

Status GeoTransform::Process(const BatchPtr& batch, int input, Emitter* out) {
  SLUICE_ASSIGN_OR_RETURN(plan_, PlanFor(batch->schema()));
  const int64_t n = batch->num_rows();
  batch_ = batch.get();
  values_.clear();
  for (const auto& e : plan_->exprs) {
    auto v = e->Evaluate(*batch);
    if (!v.ok()) return v.status().WithContext("node '{}'", options_.id());
    values_.push_back(std::move(*v));
  }
  builders_.clear();
  for (const auto& o : Outputs()) builders_.emplace_back(o.type, n);
  keep_.assign(static_cast<size_t>(n), 1);
  dead_.clear();
  fatal_ = Status::OK();
  SLUICE_RETURN_NOT_OK(BeginBatch(*batch));

  GeoThread& geo = GeoThread::Get();
  const Column* geometry = plan_->geometry >= 0 ? &batch->column(plan_->geometry) : nullptr;
  int64_t failed = 0;
  for (int64_t r = 0; r < n; ++r) {
    RowOutcome outcome;
    if (geometry == nullptr) {
      outcome = Row(geo, r, {});
    } else if (geometry->IsNull(r)) {
      outcome = NullRow(r);
    } else {
      outcome = Row(geo, r, geometry->GetView(r));
    }
    if (outcome == RowOutcome::kError) {
      if (!fatal_.ok()) return fatal_;
      ++failed;
      SLUICE_RETURN_NOT_OK(RowFailed(r));
    } else if (outcome == RowOutcome::kDrop) {
      keep_[static_cast<size_t>(r)] = 0;
    }
    // Every output column has one value per row: a failed or dropped row's are discarded.
    for (auto& b : builders_) {
      if (b.length() <= r) b.AppendNull();
    }
  }
  if (failed > 0 && ctx_ != nullptr) {  // (under fail the first failure returned)
    ctx_->stats()->AddCounter("geometry_errors", failed);
    if (common_.on_error == OnError::kSkip) {
      ctx_->stats()->discarded_rows.fetch_add(failed, std::memory_order_relaxed);
    }
  }
  if (!dead_.empty()) SLUICE_RETURN_NOT_OK(DeadLetterRows(*batch));
  rows_seen_ += n;
  Status st = EndBatch(batch, out);
  batch_ = nullptr;
  return st;
}

Status GeoTransform::EndBatch(const BatchPtr& batch, Emitter* out) {
  std::vector<Column> columns = batch->columns();
  for (size_t k = 0; k < builders_.size(); ++k) {
    const auto target = static_cast<size_t>(plan_->targets[k]);
    if (target < columns.size()) {
      columns[target] = builders_[k].Finish();
    } else {
      columns.push_back(builders_[k].Finish());
    }
  }
  BatchPtr result =
      Batch::MakeUnchecked(plan_->output, std::move(columns), batch->num_rows(), batch->tags());
  const auto kept = static_cast<int64_t>(std::count(keep_.begin(), keep_.end(), 1));
  if (kept == 0) return Status::OK();
  if (kept < batch->num_rows()) result = result->Filter(keep_.data());
  return out->Emit(std::move(result));
}

std::string GeoTransform::RowName(int64_t r) const {
  if (plan_->id < 0) return fmt::format("batch row {}", r);
  return fmt::format("batch row {} ({} = {})", r, common_.id_column,
                     ShowValue(batch_->column(plan_->id), r));
}

Status GeoTransform::RowFailed(int64_t r) {
  keep_[static_cast<size_t>(r)] = 0;
  switch (common_.on_error) {
    case OnError::kFail:
      if (ctx_ != nullptr) ctx_->stats()->AddCounter("geometry_errors", 1);
      return Status::Invalid(
          "node '{}': {}: {} (on_error: skip drops such rows, dead_letter routes "
          "them to '{}.dead_letter')",
          options_.id(), RowName(r), error_, options_.id());
    case OnError::kSkip:
      return Status::OK();
    case OnError::kDeadLetter:
      dead_.emplace_back(r, error_);
      return Status::OK();
  }
  return Status::OK();
}

Status GeoTransform::DeadLetterRows(const Batch& batch) {
  std::vector<int32_t> rows;
  for (const auto& d : dead_) rows.push_back(static_cast<int32_t>(d.first));
  SLUICE_ASSIGN_OR_RETURN(auto encoder, io::MakeEncoder(io::Format::kJsonl, batch.schema()));
  std::string text;
  std::vector<size_t> ends;
  encoder->Encode(*batch.Take(rows), &text, &ends);
  size_t begin = 0;
  for (size_t k = 0; k < dead_.size(); ++k) {
    const std::string_view line(text.data() + begin, ends[k] - begin - 1);  // without '\n'
    // The position counts rows over this instance's input, as cast's dead letters do; the
    // error names the row of the batch (and its id).
    ctx_->DeadLetter(fmt::format("row {}", rows_seen_ + dead_[k].first),
                     fmt::format("{}: {}", RowName(dead_[k].first), dead_[k].second), line);
    begin = ends[k];
  }
  return Status::OK();
}

GeomPtr GeoTransform::ReadGeometry(GeoThread& geo, std::string_view wkb) {
  GeomPtr g = geo.Read(wkb);
  if (g == nullptr) {
    error_ = fmt::format("column '{}' is not WKB/EWKB ({} bytes): {}", common_.column, wkb.size(),
                         geo.TakeError());
    return nullptr;
  }
  if (common_.validate) {
    char* reason = nullptr;
    const char valid = GEOSisValidDetail_r(geo.handle(), g.get(), 0, &reason, nullptr);
    if (valid != 1) {
      error_ = valid == 0 ? fmt::format("invalid geometry: {}", reason != nullptr ? reason : "")
                          : fmt::format("cannot check the geometry: {}", geo.TakeError());
      if (reason != nullptr) GEOSFree_r(geo.handle(), reason);
      return nullptr;
    }
    if (reason != nullptr) GEOSFree_r(geo.handle(), reason);
  }
  return g;
}

bool GeoTransform::WriteGeometry(GeoThread& geo, GEOSGeometry* g, int srid, int dims,
                                 ColumnBuilder* out) {
  GEOSSetSRID_r(geo.handle(), g, srid);
  if (geo.Write(g, dims, out)) return true;
  error_ = fmt::format("cannot write the result as WKB: {}", geo.TakeError());
  return false;
}

RowOutcome GeoTransform::GeosError(GeoThread& geo, std::string_view what) {
  error_ = fmt::format("{}: {}", what, geo.TakeError());
  return RowOutcome::kError;
}

}  // namespace sluice::geo
