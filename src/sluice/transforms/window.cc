// The `window` transform: event-time windows (tumbling, hopping, session) per group key, with
// aggregates, lateness policies, and the acks of absorbed rows held until the window's row is
// durable downstream.

#include <cstring>
#include <numeric>

#include "sluice/core/time.h"
#include "sluice/engine/pipeline.h"
#include "sluice/engine/registry.h"
#include "sluice/transforms/group_key.h"
#include "sluice/transforms/transforms_internal.h"
#include "sluice/transforms/window_internal.h"
#include "sluice/transforms/window_marks.h"
#include "sluice/transforms/window_output.h"

namespace sluice::transforms_internal {

using namespace window_internal;  // NOLINT(google-build-using-namespace)

namespace {

enum class OnError : uint8_t { kFail, kSkip, kDeadLetter };

class WindowTransform final : public Transform {
 public:
  WindowTransform(NodeOptions options, WindowConfig config, std::string time,
                  std::vector<std::string> group_by, std::vector<AggSpec> aggs, OnError on_error,
                  std::string state)
      : options_(std::move(options)),
        c_(config),
        time_name_(std::move(time)),
        group_by_(std::move(group_by)),
        aggs_(std::move(aggs)),
        on_error_(on_error),
        state_(std::move(state)) {}

  Status Open(NodeContext* ctx) override {
    ctx_ = ctx;
    if (state_.empty()) return Status::OK();
    auto marks = FiredMarks::Open(state_, options_.id(), ctx->instance());
    if (!marks.ok()) return marks.status().WithContext("node '{}': state", options_.id());
    marks_ = std::move(*marks);
    if (marks_->restored().has_value()) {
      // An earlier run wrote every window ending by here: their rows from now on are late.
      restored_ = *marks_->restored();
      watermark_ = std::max(watermark_, restored_);
      finite_watermark_ = watermark_;
    }
    return Status::OK();
  }

  Result<SchemaPtr> Bind(const std::vector<SchemaPtr>& inputs) override {
    if (inputs.empty() || inputs[0] == nullptr) return SchemaPtr{};
    SLUICE_RETURN_NOT_OK(BindTo(inputs[0]));
    return output_schema_;
  }

  Status Process(const BatchPtr& batch, int input, Emitter* out) override {
    SLUICE_RETURN_NOT_OK(BindTo(batch->schema()));
    ++calls_;
    output_->set_emitter(out);
    const AckSet acks = out->HoldAcks();
    const Column& time = batch->column(time_col_);
    const int64_t n = batch->num_rows();
    store_of_.assign(static_cast<size_t>(n), nullptr);
    group_of_.assign(static_cast<size_t>(n), 0);
    late_mask_.assign(static_cast<size_t>(n), 0);
    touched_.clear();
    also_rows_.clear();
    int64_t late = 0, late_folded = 0;
    if (sessions_ == nullptr) {
      // Encode and hash every key first, so that each lookup's slot can be prefetched a few
      // rows ahead.
      key_bytes_.clear();
      key_ends_.resize(static_cast<size_t>(n));
      key_hashes_.resize(static_cast<size_t>(n));
      for (int64_t r = 0; r < n; ++r) {
        const size_t begin = key_bytes_.size();
        EncodeKey(*batch, key_cols_, r, &key_bytes_);
        key_hashes_[static_cast<size_t>(r)] =
            KeyIndex::Hash(std::string_view(key_bytes_).substr(begin));
        key_ends_[static_cast<size_t>(r)] = key_bytes_.size();
      }
    }
    constexpr int64_t kAhead = 16;
    for (int64_t r = 0; r < n; ++r) {
      if (time.IsNull(r)) {
        SLUICE_RETURN_NOT_OK(Reject(*batch, r));
        continue;
      }
      const int64_t t = time.GetInt64(r);
      max_event_us_ = std::max(max_event_us_, t);
      if (sessions_ != nullptr) {
        key_.clear();
        EncodeKey(*batch, key_cols_, r, &key_);
        AggStore* st = sessions_->Assign(key_, t, watermark_, acks, calls_);
        if (st == nullptr) {
          late_mask_[static_cast<size_t>(r)] = 1;
          ++late;
          continue;
        }
        SLUICE_RETURN_NOT_OK(layout_.UpdateRow(*batch, time, r, st, 0));
        continue;
      }
      if (r + kAhead < n) slices_->keys()->Prefetch(key_hashes_[static_cast<size_t>(r + kAhead)]);
      const SliceWindows::Fate fate = slices_->Classify(t, watermark_);
      if (fate == SliceWindows::Fate::kLate) {
        late_mask_[static_cast<size_t>(r)] = 1;
        ++late;
        continue;
      }
      const size_t begin = r == 0 ? 0 : key_ends_[static_cast<size_t>(r - 1)];
      const int32_t key = slices_->keys()->Intern(
          std::string_view(key_bytes_).substr(begin, key_ends_[static_cast<size_t>(r)] - begin),
          key_hashes_[static_cast<size_t>(r)]);
      Slice* slice = slices_->SliceFor(t, acks, calls_, &also_);
      for (Slice* other : also_)
        also_rows_.push_back({&other->store, other->GroupFor(key, layout_), r});
      const int32_t g = slice->GroupFor(key, layout_);
      store_of_[static_cast<size_t>(r)] = &slice->store;
      group_of_[static_cast<size_t>(r)] = g;
      if (fate == SliceWindows::Fate::kFoldLate) {
        slice->AddLate(g, 1);
        touched_.emplace_back(FloorDiv(t, c_.pane_us) * c_.pane_us, key);
        ++late_folded;
      }
    }
    if (slices_ != nullptr) {
      SLUICE_RETURN_NOT_OK(Context(layout_.Update(*batch, time, store_of_, group_of_)));
      for (const AlsoRow& a : also_rows_) {
        SLUICE_RETURN_NOT_OK(Context(layout_.UpdateRow(*batch, time, a.row, a.store, a.group)));
      }
      if (!touched_.empty()) {
        SLUICE_RETURN_NOT_OK(Context(slices_->Refire(touched_, watermark_, output_.get())));
      }
    }
    if (late_folded > 0) ctx_->stats()->AddCounter("late_updates", late_folded);
    if (late > 0) SLUICE_RETURN_NOT_OK(HandleLate(batch, late, out));
    return AccountState();
  }

  Status OnWatermark(int64_t watermark, Emitter* out) override {
    watermark_ = std::max(watermark_, watermark);
    if (watermark_ != INT64_MAX) finite_watermark_ = watermark_;
    return FireAll(out);
  }

  Status Finish(Emitter* out) override {
    if (ctx_ != nullptr && ctx_->stopping() && input_schema_ != nullptr) {
      // A stop (a signal, --until-idle) is not the end of the input: the open windows are
      // incomplete. Emit none of them, and give up the acknowledgements of the rows they hold,
      // so that the source keeps those rows for the next run, which completes the windows.
      const int64_t open = slices_ != nullptr ? slices_->AbandonOpen() : sessions_->AbandonOpen();
      if (open > 0) ctx_->stats()->AddCounter("windows_abandoned", open);
      return AccountState();
    }
    watermark_ = INT64_MAX;  // the input ended: every window is complete
    return FireAll(out);
  }

  int64_t OutputWatermark(int64_t input_watermark) const override {
    // Rows re-emitted for late: update end up to allowed_lateness before the watermark.
    return SatAdd(input_watermark, -c_.lateness_us);
  }

  Status Close() override {
    if (ctx_ != nullptr && held_ != 0) ctx_->HoldMemory(-held_);
    held_ = 0;
    if (marks_ != nullptr && !ctx_->cancelled()) {
      return Context(marks_->Collect(NowMicros(), kMarkEveryUs, true));
    }
    return Status::OK();
  }

  std::string LossyBecause() const override {
    return "replaces its input rows by one aggregate row per window and key";
  }
  bool HoldsAcksUntilWatermark() const override { return true; }

 private:
  Status BindTo(const SchemaPtr& schema) {
    if (input_schema_ != nullptr) {
      if (schema == input_schema_ || *schema == *input_schema_) return Status::OK();
      return Status::Invalid("node '{}': the input's columns changed during the run",
                             options_.id());
    }
    time_col_ = schema->FieldIndex(time_name_);
    if (time_col_ < 0) return options_.ErrorAt("time", NoColumn(time_name_, *schema));
    if (schema->field(time_col_).type != TypeId::kTimestamp) {
      return options_.ErrorAt(
          "time", fmt::format("'{}' is {}, and the event time must be a timestamp (cast it first)",
                              time_name_, TypeName(schema->field(time_col_).type)));
    }
    std::vector<Field> fields;
    key_cols_.clear();
    for (const auto& g : group_by_) {
      const int c = schema->FieldIndex(g);
      if (c < 0) return options_.ErrorAt("group_by", NoColumn(g, *schema));
      key_cols_.push_back(c);
      fields.push_back({g, schema->field(c).type, true});
    }
    auto st = layout_.Bind(aggs_, *schema, time_col_);
    if (!st.ok()) return options_.ErrorAt("aggregates", st.message());
    fields.push_back({"window_start", TypeId::kTimestamp, false});
    fields.push_back({"window_end", TypeId::kTimestamp, false});
    for (const auto& a : layout_.specs()) fields.push_back({a.output, a.output_type, true});
    fields.push_back({"late_rows", TypeId::kInt64, false});
    for (size_t i = 0; i < fields.size(); ++i) {
      for (size_t j = 0; j < i; ++j) {
        if (fields[i].name == fields[j].name) {
          return options_.ErrorAt(
              "aggregates",
              fmt::format("two output columns are called '{}' (the group_by columns, "
                          "window_start, window_end, the aggregates and late_rows share one "
                          "row); rename the aggregate",
                          fields[i].name));
        }
      }
    }
    output_schema_ = MakeSchema(std::move(fields));
    input_schema_ = schema;
    output_ =
        std::make_unique<OutputRows>(output_schema_, &layout_, static_cast<int>(key_cols_.size()));
    if (c_.kind == WindowKind::kSession) {
      sessions_ = std::make_unique<SessionWindows>(c_, &layout_);
    } else {
      slices_ = std::make_unique<SliceWindows>(c_, &layout_);
      if (restored_ != INT64_MIN) slices_->RestoreFiredThrough(restored_);
    }
    return Status::OK();
  }

  Status FireAll(Emitter* out) {
    const bool any_input = input_schema_ != nullptr;
    AckSet mark;
    if (marks_ != nullptr) {
      // At the end of the input every window fires; the mark says only how far rows went (or
      // the input's watermark, for an instance that had few rows or none).
      mark = marks_->Begin(watermark_ == INT64_MAX ? std::max(CoveredThrough(), finite_watermark_)
                                                   : watermark_);
    }
    Status st;
    if (any_input) {
      output_->set_emitter(out);
      output_->set_extra_acks(mark);
      st = Context(sessions_ != nullptr ? sessions_->Fire(watermark_, output_.get())
                                        : slices_->Fire(watermark_, output_.get()));
      output_->set_extra_acks(AckSet());
    }
    if (!st.ok()) {
      mark.Fail();  // some windows of this firing were not sent: the mark must not pass them
      return st;
    }
    mark.Release();
    // A cancelled run may have dropped sent rows unwritten without failing them: save nothing.
    if (marks_ != nullptr && !ctx_->cancelled()) {
      SLUICE_RETURN_NOT_OK(Context(marks_->Collect(NowMicros(), kMarkEveryUs, false)));
    }
    return any_input ? AccountState() : Status::OK();
  }

  /// The end of the last window holding the latest event time seen: every window a row so far
  /// could be in ends by then.
  int64_t CoveredThrough() const {
    if (max_event_us_ == INT64_MIN) return watermark_ == INT64_MAX ? restored_ : watermark_;
    if (c_.kind == WindowKind::kSession) return SatAdd(max_event_us_, c_.gap_us);
    return SatAdd(FloorDiv(max_event_us_, c_.slide_us) * c_.slide_us, c_.size_us);
  }

  /// A row without an event time cannot go to any window.
  Status Reject(const Batch& batch, int64_t r) {
    const std::string error = fmt::format("'{}' is null: the row has no event time", time_name_);
    switch (on_error_) {
      case OnError::kFail:
        return Status::Invalid(
            "node '{}': row {}: {} (set on_error: skip or dead_letter to go "
            "on without it)",
            options_.id(), r, error);
      case OnError::kSkip:
        ctx_->stats()->AddCounter("skipped", 1);
        return Status::OK();
      case OnError::kDeadLetter: {
        auto one = batch.Slice(r, 1);
        ctx_->DeadLetter(fmt::format("row {}", r), error, one->ToString());
        return Status::OK();
      }
    }
    return Status::OK();
  }

  Status HandleLate(const BatchPtr& batch, int64_t late, Emitter* out) {
    if (c_.late == LatePolicy::kOutput) {
      ctx_->stats()->AddCounter("late_output", late);
      return out->EmitOn(kLateOutput, batch->Filter(late_mask_.data()));
    }
    ctx_->stats()->AddCounter("late_dropped", late);
    return Status::OK();
  }

  /// Count the state against the run's memory budget, and refuse to hold more than all of it.
  Status AccountState() {
    const int64_t bytes = slices_ != nullptr ? slices_->Bytes() : sessions_->Bytes();
    ctx_->HoldMemory(bytes - held_);
    held_ = bytes;
    // Keyed instances (partition_by) each hold their own: the node's gauges add them up.
    ctx_->stats()->SetInstanceGauge(
        "open_windows", ctx_->instance(),
        static_cast<double>(slices_ != nullptr ? slices_->open_slices()
                                               : sessions_->open_sessions()));
    ctx_->stats()->SetInstanceGauge("state_bytes", ctx_->instance(), static_cast<double>(bytes));
    const int64_t limit = ctx_->memory_limit();
    if (limit > 0 && bytes > limit) {
      return Status(
          StatusCode::kResourceExhausted,
          fmt::format("node '{}': its open windows hold {} MiB, more than the run's "
                      "memory budget of {} MiB; raise settings.memory_limit, make windows "
                      "shorter, or spread keys with parallelism and partition_by",
                      options_.id(), bytes >> 20, limit >> 20));
    }
    return Status::OK();
  }

  Status Context(Status st) const {
    return st.ok() ? st : st.WithContext("node '{}'", options_.id());
  }

  NodeOptions options_;
  WindowConfig c_;
  std::string time_name_;
  std::vector<std::string> group_by_;
  std::vector<AggSpec> aggs_;
  OnError on_error_;
  NodeContext* ctx_ = nullptr;

  SchemaPtr input_schema_;
  SchemaPtr output_schema_;
  int time_col_ = -1;
  std::vector<int> key_cols_;
  AggLayout layout_;
  std::unique_ptr<OutputRows> output_;
  std::unique_ptr<SliceWindows> slices_;
  std::unique_ptr<SessionWindows> sessions_;
  int64_t watermark_ = INT64_MIN;
  int64_t max_event_us_ = INT64_MIN;      // the latest event time folded in
  int64_t finite_watermark_ = INT64_MIN;  // the input's last watermark before its end
  std::string state_;                     // the state file, "" for none
  std::unique_ptr<FiredMarks> marks_;
  int64_t restored_ = INT64_MIN;  // the mark an earlier run saved
  static constexpr int64_t kMarkEveryUs = 1'000'000;
  uint64_t calls_ = 0;
  int64_t held_ = 0;
  // Scratch reused across Process calls.
  std::string key_;
  std::string key_bytes_;         // the batch's keys, one after another
  std::vector<size_t> key_ends_;  // where row r's key ends in key_bytes_
  std::vector<uint64_t> key_hashes_;
  std::vector<AggStore*> store_of_;
  std::vector<int32_t> group_of_;
  std::vector<uint8_t> late_mask_;
  std::vector<std::pair<int64_t, int32_t>> touched_;
  // Late rows that also go into other windows' suffixes (SliceWindows::SliceFor).
  struct AlsoRow {
    AggStore* store;
    int32_t group;
    int64_t row;
  };
  std::vector<Slice*> also_;
  std::vector<AlsoRow> also_rows_;
};

}  // namespace

Result<std::unique_ptr<Transform>> MakeWindow(const NodeOptions& o) {
  WindowConfig c;
  const bool has_size = o.Has("size"), has_gap = o.Has("gap");
  if (has_size == has_gap) {
    return o.ErrorAt(has_size ? "gap" : "size",
                     "set exactly one of `size` (tumbling, or hopping with `slide`) and `gap` "
                     "(session windows)");
  }
  if (has_size) {
    c.size_us = o.GetDurationMicros("size");
    if (c.size_us <= 0) return o.ErrorAt("size", "must be positive");
    c.kind = o.Has("slide") ? WindowKind::kHopping : WindowKind::kTumbling;
    c.slide_us = o.Has("slide") ? o.GetDurationMicros("slide") : c.size_us;
    if (c.slide_us <= 0 || c.slide_us > c.size_us) {
      return o.ErrorAt("slide", "must be positive and at most `size`");
    }
    c.pane_us = std::gcd(c.size_us, c.slide_us);
  } else {
    if (o.Has("slide")) return o.ErrorAt("slide", "applies to `size` windows, not sessions");
    c.kind = WindowKind::kSession;
    c.gap_us = o.GetDurationMicros("gap");
    if (c.gap_us <= 0) return o.ErrorAt("gap", "must be positive");
  }
  c.lateness_us = o.GetDurationMicros("allowed_lateness");
  const std::string late = o.GetString("late");
  c.late = late == "output"   ? LatePolicy::kOutput
           : late == "update" ? LatePolicy::kUpdate
                              : LatePolicy::kDrop;
  if (c.late == LatePolicy::kUpdate && c.kind == WindowKind::kSession) {
    return o.ErrorAt("late",
                     "update is not offered for sessions: a late row can move a session's "
                     "start, which is its key downstream; use drop or output");
  }
  if (c.late == LatePolicy::kUpdate && c.lateness_us <= 0) {
    return o.ErrorAt("late",
                     "update needs allowed_lateness: how long a fired window is kept to "
                     "fold late rows into");
  }
  if (c.late != LatePolicy::kUpdate && c.lateness_us > 0) {
    return o.ErrorAt("allowed_lateness",
                     "keeps fired windows for late rows, which only late: update folds in; set "
                     "late: update, or remove allowed_lateness");
  }
  SLUICE_ASSIGN_OR_RETURN(auto pairs, ReadPairs(o, "aggregates"));
  if (pairs.empty()) return o.ErrorAt("aggregates", "needs at least one `name: fn(column)`");
  std::vector<AggSpec> aggs;
  for (const auto& [name, text] : pairs) {
    auto spec = ParseAggregate(name, text);
    if (!spec.ok()) return o.ErrorAt("aggregates", spec.status().message());
    aggs.push_back(std::move(*spec));
  }
  if (!o.GetString("state").empty() && c.kind == WindowKind::kSession) {
    return o.ErrorAt("state",
                     "keeps how far tumbling and hopping windows are written; sessions are not "
                     "supported yet (a session still open would make its earlier rows late)");
  }
  const std::string on_error = o.GetString("on_error");
  const OnError oe = on_error == "skip"          ? OnError::kSkip
                     : on_error == "dead_letter" ? OnError::kDeadLetter
                                                 : OnError::kFail;
  return std::unique_ptr<Transform>(
      std::make_unique<WindowTransform>(o, c, o.GetString("time"), o.GetStringList("group_by"),
                                        std::move(aggs), oe, o.GetString("state")));
}

void RegisterWindowNode(NodeRegistry* registry) {
  registry->AddTransform(
      "window",
      "Aggregate rows per key over event-time windows (tumbling, hopping, session); a window's "
      "row comes out when the watermark passes its end.",
      {
          {"time", OptionType::kString, "", "The event-time column (timestamp).", true, {}},
          {"state",
           OptionType::kString,
           "",
           "A SQLite file (it may be the anomaly node's) keeping, across runs, how far the "
           "window rows are durable: a later run treats rows of windows an earlier run wrote as "
           "late (the `late` policy) instead of making those windows again from them alone.",
           false,
           {}},
          {"group_by",
           OptionType::kStringList,
           "",
           "Key columns: one output row per window and key (a computed key: make it a column "
           "with `map` first). Empty: one row per window.",
           false,
           {}},
          {"size",
           OptionType::kDuration,
           "",
           "Window length; windows align to the Unix epoch (as date_bin with origin "
           "1970-01-01).",
           false,
           {}},
          {"slide",
           OptionType::kDuration,
           "",
           "With size: a new window every `slide` (hopping windows); absent: tumbling.",
           false,
           {}},
          {"gap",
           OptionType::kDuration,
           "",
           "Session windows: rows of a key less than `gap` apart share a window (instead of "
           "size); window_start is its first row's time, window_end its last row's time plus "
           "gap.",
           false,
           {}},
          {"aggregates",
           OptionType::kMap,
           "",
           std::string("Output column -> function(column), as a mapping or a list of one-entry "
                       "mappings (`- kwh: sum(kwh)`, kept in that order). Functions: ") +
               kAggregateFunctions +
               ". count(*) is count(). stddev is the sample standard deviation (PostgreSQL's "
               "stddev_samp); first/last are the values at the earliest/latest event time. "
               "sum, avg, stddev and pNN take int64 or float64 columns; min, max, first and last "
               "also timestamps. Nulls are skipped; pNN are approximate: within 1 % of "
               "PostgreSQL's percentile_disc.",
           true,
           {}},
          {"late",
           OptionType::kEnum,
           "drop",
           "A row whose windows have all fired: drop (counted as late_dropped), output (sent to "
           "`<id>.late`), or update (folded in and the window's row emitted again, within "
           "allowed_lateness).",
           false,
           {"drop", "output", "update"}},
          {"allowed_lateness",
           OptionType::kDuration,
           "0s",
           "With late: update: how long after firing a window is kept for late rows.",
           false,
           {}},
          {"on_error",
           OptionType::kEnum,
           "fail",
           "A row whose time is null fails the run (fail), is counted and dropped (skip), or "
           "goes to `<id>.dead_letter`.",
           false,
           {"fail", "skip", "dead_letter"}},
      },
      &MakeWindow, /*stateless=*/false);
}

}  // namespace sluice::transforms_internal
