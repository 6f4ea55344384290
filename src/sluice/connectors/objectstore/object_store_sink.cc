// The `object_store` sink: one compressed JSONL or CSV object per batch, verified before its
// rows are acknowledged, and a manifest of every object at the end of the run.

#include <set>

#include "sluice/connectors/objectstore/objectstore.h"
#include "sluice/connectors/objectstore/objectstore_internal.h"
#include "sluice/core/json_text.h"
#include "sluice/core/log.h"
#include "sluice/core/time.h"
#include "sluice/io/compression.h"
#include "sluice/io/encoded.h"
#include "sluice/io/format.h"

namespace sluice {

using objectstore_internal::BoolOr;
using objectstore_internal::CancelRelay;
using objectstore_internal::ExplainStoreError;
using objectstore_internal::IntOr;
using objectstore_internal::MakeNodeStore;
using objectstore_internal::PhaseTimer;
using objectstore_internal::StringOr;

namespace {

struct SinkConfig {
  ObjectStoreOptions store;
  std::string prefix;  // of the URL (S3), prepended to every key
  std::string key_template = kDefaultObjectKeyTemplate;
  std::string key_column = "id";
  io::Format format = io::Format::kJsonl;
  io::Codec codec = io::Codec::kGzip;
  int level = io::kDefaultLevel;
  bool verify = true;
  bool manifest = true;
  std::string run_id;  // empty: the UTC time of Open, plus the node id
  bool log_objects = false;
};

Result<SinkConfig> ParseSinkOptions(const NodeOptions& o) {
  SinkConfig c;
  SLUICE_ASSIGN_OR_RETURN(c.store, ObjectStoreOptionsFromNode(o));
  SLUICE_ASSIGN_OR_RETURN(ObjectStoreUrl url, ParseObjectStoreUrl(c.store.url));
  c.prefix = url.prefix;
  c.key_template = StringOr(o, "key", kDefaultObjectKeyTemplate);
  Status st = ValidateKeyTemplate(c.key_template);
  if (!st.ok()) return o.ErrorAt("key", st.message());
  c.key_column = StringOr(o, "key_column", "id");
  auto format = io::ParseFormat(StringOr(o, "format", "jsonl"));
  if (!format.ok()) return o.ErrorAt("format", format.status().message());
  c.format = *format;
  auto codec = io::ParseCodec(StringOr(o, "compression", "gzip"));
  if (!codec.ok()) return o.ErrorAt("compression", codec.status().message());
  c.codec = *codec;
  c.level = static_cast<int>(IntOr(o, "level", io::kDefaultLevel));
  c.verify = BoolOr(o, "verify", true);
  c.manifest = BoolOr(o, "manifest", true);
  c.run_id = StringOr(o, "run_id", "");
  if (!c.run_id.empty()) {
    st = ValidateObjectKey(c.run_id);
    if (!st.ok() || c.run_id.find('/') != std::string::npos) {
      return o.ErrorAt("run_id", "must be a plain name (no '/')");
    }
  }
  c.log_objects = BoolOr(o, "log_objects", false);
  return c;
}

// Returns the time as yyyymmddThhmmssZ.
std::string CompactUtc(int64_t micros) {
  std::string s = FormatTimestamp(micros - micros % kMicrosPerSecond);
  s.erase(std::remove_if(s.begin(), s.end(), [](char c) { return c == '-' || c == ':'; }), s.end());
  return s;
}

double Millis(int64_t nanos) { return static_cast<double>(nanos) / 1e6; }

/// Write each batch as one object. Called from one thread; the store may use more (parts).
class ObjectStoreSink final : public Sink {
 public:
  /// `relay` (may be null) carries the run's cancellation into `store` from Open() on.
  ObjectStoreSink(std::string id, SinkConfig config, std::shared_ptr<ObjectStore> store,
                  std::unique_ptr<CancelRelay> relay)
      : id_(std::move(id)),
        config_(std::move(config)),
        relay_(std::move(relay)),
        store_(std::move(store)) {}

  Status Open(NodeContext* ctx) override {
    ctx_ = ctx;
    open_us_ = NowMicros();
    // Retries, backoff sleeps and stalled transfers end as soon as the run is cancelled.
    if (relay_ != nullptr && ctx != nullptr) relay_->Watch(ctx);
    if (config_.run_id.empty()) config_.run_id = fmt::format("{}-{}", CompactUtc(open_us_), id_);
    return Status::OK();
  }

  Status Write(const BatchPtr& batch, AckSet acks) override {
    const int64_t seq = next_seq_++;
    if (batch->num_rows() == 0) return Status::OK();
    Status st = encoded::IsEncoded(*batch->schema()) ? WriteEncodedObjects(*batch, seq)
                                                     : WriteObject(*batch, seq);
    if (!st.ok()) {
      acks.Fail();
      return st;
    }
    return Status::OK();  // dropping `acks` releases them: the object is stored and verified
  }

  Status Flush() override { return WriteManifest(/*complete=*/true); }

  Status Close() override {
    // A run that failed or was cancelled still lists the objects it verified (whose rows the
    // source may have deleted), marked incomplete: the cancellation must not stop that write.
    if (relay_ != nullptr) relay_->Disarm();
    if (manifest_written_) return Status::OK();
    return WriteManifest(/*complete=*/false);
  }

 private:
  NodeStats* stats() const { return ctx_ == nullptr ? nullptr : ctx_->stats(); }
  bool dry_run() const { return ctx_ != nullptr && ctx_->dry_run(); }

  Status WriteManifest(bool complete) {
    if (!config_.manifest || manifest_.objects.empty() || dry_run()) return Status::OK();
    manifest_.complete = complete;
    manifest_.node = id_;
    manifest_.run_id = config_.run_id;
    manifest_.store = store_->Describe();
    manifest_.prefix = config_.prefix;
    manifest_.format = std::string(io::FormatName(config_.format));
    manifest_.compression = std::string(io::CodecName(config_.codec));
    if (!encoded_ext_.empty()) {  // the objects came encoded: say what the encoder made
      auto format = io::FormatFromPath(encoded_ext_);
      if (format.ok()) manifest_.format = std::string(io::FormatName(*format));
      manifest_.compression = std::string(io::CodecName(io::CodecFromPath(encoded_ext_)));
    }
    manifest_.key_column = config_.key_column;
    manifest_.created_us = NowMicros();
    const std::string body = JsonText(ManifestToJson(manifest_), 2) + "\n";
    const std::string key = JoinKey(config_.prefix, "_manifests/" + config_.run_id + ".json");
    {
      PhaseTimer t(stats(), "upload");
      SLUICE_RETURN_NOT_OK(Explain(store_->Put(key, body)));
    }
    if (config_.verify) {
      PhaseTimer t(stats(), "verify");
      SLUICE_RETURN_NOT_OK(Explain(
          VerifyObject(store_.get(), key, static_cast<int64_t>(body.size()), Sha256Hex(body))));
    }
    UpdateStoreCounters();
    manifest_written_ = true;
    Log(LogLevel::kInfo, "node '{}': {}manifest {} lists {} objects", id_,
        complete ? "" : "incomplete run: ", JoinKey(store_->Describe(), key),
        manifest_.objects.size());
    return Status::OK();
  }

  // One object ready to be stored, and what the manifest and the log say of it.
  struct PreparedObject {
    ObjectKeyFields fields;
    std::string_view bytes;
    int64_t rows = 0;
    int64_t raw_bytes = 0;
    const Column* key_column = nullptr;  // for the manifest's min/max key; may be null
    int64_t serialize_ns = 0;
    int64_t compress_ns = 0;
  };

  ObjectKeyFields BaseFields(int64_t seq) const {
    ObjectKeyFields fields;
    fields.node = id_;
    fields.date = UtcDate();
    fields.seq = seq;
    return fields;
  }

  // Encodes and compresses rows, then stores them as one object.
  Status WriteObject(const Batch& batch, int64_t seq) {
    PreparedObject o;
    o.fields = BaseFields(seq);
    o.fields.ext =
        fmt::format("{}{}", io::FormatExtension(config_.format), io::CodecExtension(config_.codec));
    if (const Column* c = batch.GetColumn(encoded::kDatabase); c != nullptr && c->IsValid(0)) {
      o.fields.database = FormatKeyValue(*c, 0);
    }
    if (const Column* c = batch.GetColumn(encoded::kTable); c != nullptr && c->IsValid(0)) {
      o.fields.table = FormatKeyValue(*c, 0);
    }
    if (const Column* c = batch.GetColumn(encoded::kDate); c != nullptr && c->IsValid(0)) {
      o.fields.date = FormatKeyValue(*c, 0);
    }
    const Column* key_column = batch.GetColumn(config_.key_column);
    if (key_column == nullptr && UsesKeys()) {
      return Status::Invalid(
          "node '{}': the key template '{}' uses the key column '{}', which the batch lacks "
          "(columns: {}); set option 'key_column'",
          id_, config_.key_template, config_.key_column, batch.schema()->ToString());
    }
    if (key_column != nullptr) {
      o.fields.first_key = FormatKeyValue(*key_column, 0);
      o.fields.last_key = FormatKeyValue(*key_column, batch.num_rows() - 1);
      o.key_column = key_column;
    }

    SLUICE_RETURN_NOT_OK(PrepareEncoder(batch));
    raw_.clear();
    PhaseTimer serialize(stats(), "serialize");
    encoder_->Begin(&raw_);
    if (projection_.empty()) {
      encoder_->Encode(batch, &raw_);
    } else {
      std::vector<Column> columns;
      columns.reserve(projection_.size());
      for (int i : projection_) columns.push_back(batch.column(i));
      encoder_->Encode(*Batch::MakeUnchecked(encoder_schema_, std::move(columns), batch.num_rows()),
                       &raw_);
    }
    o.serialize_ns = serialize.Stop();
    PhaseTimer compress(stats(), "compress");
    std::string compressed;
    if (config_.codec != io::Codec::kNone) {
      SLUICE_ASSIGN_OR_RETURN(compressed, io::Compress(config_.codec, raw_, config_.level));
    }
    o.bytes = config_.codec == io::Codec::kNone ? std::string_view(raw_) : compressed;
    o.compress_ns = compress.Stop();
    o.rows = batch.num_rows();
    o.raw_bytes = static_cast<int64_t>(raw_.size());
    return StoreObject(o);
  }

  // Stores the objects an `encode` transform made: one per row of the batch.
  Status WriteEncodedObjects(const Batch& batch, int64_t seq) {
    const Column& object = *batch.GetColumn(encoded::kObject);
    const Column& rows = *batch.GetColumn(encoded::kRows);
    const Column& raw_bytes = *batch.GetColumn(encoded::kRawBytes);
    const Column& first_key = *batch.GetColumn(encoded::kFirstKey);
    const Column& last_key = *batch.GetColumn(encoded::kLastKey);
    const Column& ext = *batch.GetColumn(encoded::kExtension);
    const Column& database = *batch.GetColumn(encoded::kDatabase);
    const Column& table = *batch.GetColumn(encoded::kTable);
    const Column& date = *batch.GetColumn(encoded::kDate);
    for (int64_t i = 0; i < batch.num_rows(); ++i) {
      PreparedObject o;
      o.fields = BaseFields(seq);
      o.fields.ext = std::string(ext.GetView(i));
      // The transform wrote the keys as text already; only make them safe for a key.
      if (first_key.IsValid(i)) o.fields.first_key = SanitizeKeyText(first_key.GetView(i));
      if (last_key.IsValid(i)) o.fields.last_key = SanitizeKeyText(last_key.GetView(i));
      if (database.IsValid(i)) o.fields.database = SanitizeKeyText(database.GetView(i));
      if (table.IsValid(i)) o.fields.table = SanitizeKeyText(table.GetView(i));
      if (date.IsValid(i)) o.fields.date = SanitizeKeyText(date.GetView(i));
      o.bytes = object.GetView(i);
      o.rows = rows.GetInt64(i);
      o.raw_bytes = raw_bytes.GetInt64(i);
      if (encoded_ext_.empty()) encoded_ext_ = o.fields.ext;
      SLUICE_RETURN_NOT_OK(StoreObject(o));
    }
    return Status::OK();
  }

  bool UsesKeys() const {
    return KeyTemplateUses(config_.key_template, "first_key") ||
           KeyTemplateUses(config_.key_template, "last_key");
  }

  // Names, uploads and verifies one object, and records it for the manifest.
  Status StoreObject(const PreparedObject& o) {
    const std::string key =
        JoinKey(config_.prefix, ExpandKeyTemplate(config_.key_template, o.fields));
    Status st = ValidateObjectKey(key);
    if (!st.ok()) return st.WithContext("node '{}': key template '{}'", id_, config_.key_template);
    if (!written_.insert(key).second) {
      // A second object under the same key would replace the first, whose rows were already
      // acknowledged: that would lose them.
      return Status::Invalid(
          "node '{}': the key template '{}' gave '{}' for two batches of this run; add {{seq}} "
          "or a key column that differs between batches",
          id_, config_.key_template, key);
    }
    const auto bytes = static_cast<int64_t>(o.bytes.size());
    const std::string where = JoinKey(store_->Describe(), key);
    if (stats() != nullptr) stats()->AddCounter("objects", 1);
    if (dry_run()) {
      if (stats() != nullptr) stats()->bytes_out.fetch_add(bytes, std::memory_order_relaxed);
      Log(LogLevel::kInfo, "node '{}': dry run: would write {} ({} rows, {} bytes)", id_, where,
          o.rows, bytes);
      return Status::OK();
    }

    // Upload, then prove the object is there and whole before the rows may be deleted.
    PhaseTimer upload(stats(), "upload");
    st = store_->Put(key, o.bytes);
    const int64_t upload_ns = upload.Stop();
    UpdateStoreCounters();
    SLUICE_RETURN_NOT_OK(Explain(st));
    PhaseTimer verify(stats(), "verify");
    const std::string sha256 = Sha256Hex(o.bytes);
    if (config_.verify) st = VerifyObject(store_.get(), key, bytes, sha256);
    const int64_t verify_ns = verify.Stop();
    if (stats() != nullptr) {
      stats()->request_latency.Record(upload_ns);
      if (config_.verify) stats()->request_latency.Record(verify_ns);
    }
    UpdateStoreCounters();
    SLUICE_RETURN_NOT_OK(Explain(st));

    if (stats() != nullptr) stats()->bytes_out.fetch_add(bytes, std::memory_order_relaxed);
    ManifestEntry entry;
    entry.key = key;
    entry.rows = o.rows;
    entry.bytes = bytes;
    entry.uncompressed_bytes = o.raw_bytes;
    entry.sha256 = sha256;
    entry.first_key = o.fields.first_key;
    entry.last_key = o.fields.last_key;
    if (o.key_column != nullptr)
      std::tie(entry.min_key, entry.max_key) = ColumnRange(*o.key_column);
    entry.database = o.fields.database;
    entry.table = o.fields.table;
    manifest_.objects.push_back(std::move(entry));
    Log(config_.log_objects ? LogLevel::kInfo : LogLevel::kDebug,
        "node={} object={} database={} table={} batch={} records={} bytes={} serialize_ms={:.1f} "
        "compress_ms={:.1f} upload_ms={:.1f} verify_ms={:.1f}",
        id_, where, o.fields.database, o.fields.table, o.fields.seq, o.rows, bytes,
        Millis(o.serialize_ns), Millis(o.compress_ns), Millis(upload_ns), Millis(verify_ns));
    return Status::OK();
  }

  // Makes an encoder for the batch's schema without the metadata ('_') columns.
  Status PrepareEncoder(const Batch& batch) {
    if (encoder_ != nullptr && *batch.schema() == *input_schema_) return Status::OK();
    input_schema_ = batch.schema();
    projection_.clear();
    std::vector<Field> fields;
    for (int i = 0; i < batch.num_columns(); ++i) {
      const Field& f = input_schema_->field(i);
      if (f.name.starts_with('_')) continue;
      fields.push_back(f);
      projection_.push_back(i);
    }
    if (static_cast<int>(fields.size()) == batch.num_columns()) {
      projection_.clear();
      encoder_schema_ = input_schema_;
    } else {
      encoder_schema_ = MakeSchema(std::move(fields));
    }
    SLUICE_ASSIGN_OR_RETURN(encoder_, io::MakeEncoder(config_.format, encoder_schema_));
    return Status::OK();
  }

  // Returns an error of the store as one line naming this node and what to check.
  Status Explain(const Status& st) const {
    return ExplainStoreError(st, id_, config_.store, "write to");
  }

  void UpdateStoreCounters() {
    if (stats() == nullptr) return;
    const int64_t retries = store_->retries();
    const int64_t trips = store_->breaker_trips();
    if (retries != reported_retries_) stats()->AddCounter("retries", retries - reported_retries_);
    if (trips != reported_trips_) stats()->AddCounter("breaker_trips", trips - reported_trips_);
    stats()->SetGauge("circuit_breaker_open", store_->breaker_open() ? 1.0 : 0.0);
    reported_retries_ = retries;
    reported_trips_ = trips;
  }

  std::string id_;
  SinkConfig config_;
  std::unique_ptr<CancelRelay> relay_;  // before store_, which watches its flag
  std::shared_ptr<ObjectStore> store_;
  NodeContext* ctx_ = nullptr;
  int64_t open_us_ = 0;
  int64_t next_seq_ = 0;
  SchemaPtr input_schema_;
  SchemaPtr encoder_schema_;
  std::vector<int> projection_;  // input columns encoded; empty: all of them
  std::unique_ptr<io::Encoder> encoder_;
  std::string raw_;  // the batch being written, serialized
  std::set<std::string> written_;
  Manifest manifest_;
  bool manifest_written_ = false;
  std::string encoded_ext_;  // of the first object an `encode` transform made, if any
  int64_t reported_retries_ = 0;
  int64_t reported_trips_ = 0;
};

}  // namespace

const OptionSchema& ObjectStoreSinkOptions() {
  static const OptionSchema kOptions = [] {
    OptionSchema o = ObjectStoreConnectionOptions();
    const OptionSchema own = {
        {"key",
         OptionType::kString,
         kDefaultObjectKeyTemplate,
         "Object key template under the URL's prefix: {node}, {date} (UTC yyyy-mm-dd), {seq}, "
         "{first_key}, {last_key}, {database}, {table}, {ext}. Deterministic keys make a rerun "
         "overwrite instead of duplicate.",
         false,
         {}},
        {"key_column",
         OptionType::kString,
         "id",
         "Column whose first/last values fill {first_key}/{last_key} and whose min/max the "
         "manifest records.",
         false,
         {}},
        {"format", OptionType::kEnum, "jsonl", "Record format.", false, {"jsonl", "csv"}},
        {"compression",
         OptionType::kEnum,
         "gzip",
         "Compression of each object.",
         false,
         {"gzip", "zstd", "none"}},
        {"level",
         OptionType::kInt,
         "",
         "Compression level (gzip 1-12, zstd 1-19; default 6 / 3).",
         false,
         {}},
        {"multipart_threshold",
         OptionType::kByteSize,
         "10MiB",
         "S3: objects larger than this are uploaded in parts.",
         false,
         {}},
        {"part_size",
         OptionType::kByteSize,
         "8MiB",
         "S3: size of each part of a multipart upload (at least 5MiB).",
         false,
         {}},
        {"upload_parallelism",
         OptionType::kInt,
         "4",
         "S3: parts of one object uploaded at once.",
         false,
         {}},
        {"verify",
         OptionType::kBool,
         "true",
         "After each upload, check the stored size (HEAD) and SHA-256 (GET) before "
         "acknowledging the rows.",
         false,
         {}},
        {"manifest",
         OptionType::kBool,
         "true",
         "At the end of the run, write <prefix>/_manifests/<run_id>.json listing every object "
         "(key, rows, bytes, sha256, min/max key).",
         false,
         {}},
        {"run_id",
         OptionType::kString,
         "",
         "Name of the manifest; empty: the UTC start time and the node id.",
         false,
         {}},
        {"log_objects",
         OptionType::kBool,
         "false",
         "Log one line per object with its timings (otherwise at debug level).",
         false,
         {}},
    };
    o.insert(o.end(), own.begin(), own.end());
    return o;
  }();
  return kOptions;
}

Result<std::unique_ptr<Sink>> MakeObjectStoreSink(const NodeOptions& options,
                                                  std::shared_ptr<ObjectStore> store) {
  SLUICE_ASSIGN_OR_RETURN(SinkConfig config, ParseSinkOptions(options));
  return std::unique_ptr<Sink>(
      new ObjectStoreSink(options.id(), std::move(config), std::move(store), nullptr));
}

Result<std::unique_ptr<Sink>> MakeObjectStoreSink(const NodeOptions& options) {
  SLUICE_ASSIGN_OR_RETURN(SinkConfig config, ParseSinkOptions(options));
  // Made now, so that bad settings (credentials, endpoint) fail while the pipeline is built.
  SLUICE_ASSIGN_OR_RETURN(auto made, MakeNodeStore(options.id(), config.store));
  return std::unique_ptr<Sink>(new ObjectStoreSink(options.id(), std::move(config),
                                                   std::move(made.store), std::move(made.relay)));
}

}  // namespace sluice
