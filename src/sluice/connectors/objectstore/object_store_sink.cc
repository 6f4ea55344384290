// The `object_store` sink: one compressed JSONL or CSV object per batch, verified before its
// rows are acknowledged, never replacing other content, and a manifest of every object.

#include <random>
#include <set>

#include "sluice/connectors/objectstore/objectstore.h"
#include "sluice/connectors/objectstore/objectstore_internal.h"
#include "sluice/core/json_text.h"
#include "sluice/core/log.h"
#include "sluice/core/time.h"
#include "sluice/io/encoded.h"
#include "sluice/transforms/encode.h"

namespace sluice {

using objectstore_internal::BoolOr;
using objectstore_internal::CancelRelay;
using objectstore_internal::ExplainStoreError;
using objectstore_internal::MakeNodeStore;
using objectstore_internal::MicrosOr;
using objectstore_internal::PhaseTimer;
using objectstore_internal::StringOr;

namespace {

struct SinkConfig {
  ObjectStoreOptions store;
  std::string prefix;  // of the URL (S3), prepended to every key
  std::string key_template = kDefaultObjectKeyTemplate;
  io::ObjectEncoding encoding;
  bool verify = true;
  bool manifest = true;
  int64_t manifest_interval_us = 60'000'000;
  std::string run_id;  // empty: made unique at Open
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
  SLUICE_ASSIGN_OR_RETURN(c.encoding, ObjectEncodingFromNode(o));
  c.verify = BoolOr(o, "verify", true);
  c.manifest = BoolOr(o, "manifest", true);
  c.manifest_interval_us = MicrosOr(o, "manifest_interval", c.manifest_interval_us);
  if (c.manifest_interval_us < 0) return o.ErrorAt("manifest_interval", "must not be negative");
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

// Returns a run id no other run shares: the start time (for sorting and reading), the node,
// and 64 random bits (two archivers started in the same second differ there).
std::string UniqueRunId(int64_t now_us, const std::string& node) {
  std::random_device random;
  const uint64_t bits = (static_cast<uint64_t>(random()) << 32) ^ random();
  return fmt::format("{}-{}-{:016x}", CompactUtc(now_us), io::EscapeKeyText(node), bits);
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
        store_(std::move(store)),
        encoder_(config_.encoding) {}

  Status Open(NodeContext* ctx) override {
    ctx_ = ctx;
    open_us_ = NowMicros();
    last_manifest_us_ = open_us_;
    // Retries, backoff sleeps and stalled transfers end as soon as the run is cancelled.
    if (relay_ != nullptr && ctx != nullptr) relay_->Watch(ctx);
    if (KeyTemplateUses(config_.key_template, "seq") && !UsesKeys() &&
        !KeyTemplateUses(config_.key_template, "batch_id")) {
      Log(LogLevel::kWarn,
          "node '{}': the key template '{}' names objects by {{seq}}, which restarts every run: "
          "a rerun writes the same rows again under new keys (use {{first_key}}-{{last_key}} or "
          "{{batch_id}})",
          id_, config_.key_template);
    }
    if (config_.run_id.empty()) {
      config_.run_id = UniqueRunId(open_us_, id_);
    } else if (config_.manifest && !dry_run()) {
      // A chosen run id must not replace the manifest of another run.
      auto head = store_->Head(ManifestKey());
      if (head.ok()) {
        return Status(
            StatusCode::kAlreadyExists,
            fmt::format("node '{}': manifest {} exists already: option 'run_id' ('{}') names "
                        "another run's manifest (leave it empty for a unique name per run)",
                        id_, JoinKey(store_->Describe(), ManifestKey()), config_.run_id));
      }
      if (head.status().code() != StatusCode::kNotFound) return Explain(head.status());
    }
    return Status::OK();
  }

  Status Write(const BatchPtr& batch, AckSet acks) override {
    const int64_t seq = next_seq_++;
    if (batch->num_rows() == 0) return Status::OK();
    Status st = encoded::IsEncoded(*batch->schema()) ? WriteEncodedObjects(*batch, seq)
                                                     : WriteObject(*batch, seq);
    if (!st.ok()) {
      failed_ = true;
      acks.Fail();
      return st;
    }
    return Status::OK();  // dropping `acks` releases them: the object is stored and verified
  }

  /// While the run goes on, list the objects so far (marked incomplete) at most every
  /// manifest_interval: a run killed outright still leaves a list of what it stored.
  Status Flush() override {
    if (manifest_.objects.size() == listed_objects_) return Status::OK();
    if (NowMicros() - last_manifest_us_ < config_.manifest_interval_us) return Status::OK();
    return WriteManifest(/*complete=*/false);
  }

  Status Close() override {
    // Every run that stored an object lists it, complete or not (the source may have deleted
    // its rows): the cancellation must not stop that write.
    if (relay_ != nullptr) relay_->Disarm();
    const bool complete = !failed_ && (ctx_ == nullptr || !ctx_->cancelled());
    return WriteManifest(complete);
  }

 private:
  NodeStats* stats() const { return ctx_ == nullptr ? nullptr : ctx_->stats(); }
  bool dry_run() const { return ctx_ != nullptr && ctx_->dry_run(); }
  std::string ManifestKey() const {
    return JoinKey(config_.prefix, "_manifests/" + config_.run_id + ".json");
  }

  Status WriteManifest(bool complete) {
    if (!config_.manifest || manifest_.objects.empty() || dry_run()) return Status::OK();
    manifest_.complete = complete;
    manifest_.node = id_;
    manifest_.run_id = config_.run_id;
    manifest_.store = store_->Describe();
    manifest_.prefix = config_.prefix;
    manifest_.format = std::string(io::FormatName(config_.encoding.format));
    manifest_.compression = std::string(io::CodecName(config_.encoding.codec));
    if (!encoded_ext_.empty()) {  // the objects came encoded: say what the encoder made
      auto format = io::FormatFromPath(encoded_ext_);
      if (format.ok()) manifest_.format = std::string(io::FormatName(*format));
      manifest_.compression = std::string(io::CodecName(io::CodecFromPath(encoded_ext_)));
    }
    manifest_.key_column = config_.encoding.key_column;
    manifest_.created_us = NowMicros();
    const std::string body = JsonText(ManifestToJson(manifest_), 2) + "\n";
    const std::string key = ManifestKey();
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
    listed_objects_ = manifest_.objects.size();
    last_manifest_us_ = NowMicros();
    if (stats() != nullptr) stats()->AddCounter("manifest_writes", 1);
    Log(complete ? LogLevel::kInfo : LogLevel::kDebug, "node '{}': {}manifest {} lists {} objects",
        id_, complete ? "" : "incomplete run so far: ", JoinKey(store_->Describe(), key),
        manifest_.objects.size());
    return Status::OK();
  }

  // Encodes and compresses rows, then stores them as one object.
  Status WriteObject(const Batch& batch, int64_t seq) {
    Status st = encoder_.Encode(batch, &object_);
    if (!st.ok()) return st.WithContext("node '{}'", id_);
    if (stats() != nullptr) {
      stats()->AddPhase("serialize", object_.serialize_ns);
      stats()->AddPhase("compress", object_.compress_ns);
    }
    return StoreObject(object_.bytes, object_, batch, seq);
  }

  // Stores the objects an `encode` transform made: one per row of the batch.
  Status WriteEncodedObjects(const Batch& batch, int64_t seq) {
    for (int64_t i = 0; i < batch.num_rows(); ++i) {
      auto object = encoded::ObjectAt(batch, i);
      if (!object.ok()) return object.status().WithContext("node '{}'", id_);
      if (encoded_ext_.empty()) encoded_ext_ = object->ext;
      SLUICE_RETURN_NOT_OK(StoreObject(encoded::PayloadAt(batch, i), *object, batch, seq));
    }
    return Status::OK();
  }

  bool UsesKeys() const {
    return KeyTemplateUses(config_.key_template, "first_key") ||
           KeyTemplateUses(config_.key_template, "last_key");
  }

  // Returns the key of `object`, made from `batch` (its tags) as batch number `seq`.
  Result<std::string> ObjectKey(const io::EncodedObject& object, const Batch& batch,
                                int64_t seq) const {
    const BatchTags& tags = batch.tags();
    ObjectKeyFields f;
    f.node = io::EscapeKeyText(id_);
    f.seq = seq;
    f.ext = object.ext;
    const std::string* date = tags.Find(tag::kDate);
    f.date = date != nullptr ? io::EscapeKeyText(*date) : UtcDate();
    if (const std::string* v = tags.Find(tag::kDatabase)) f.database = io::EscapeKeyText(*v);
    if (const std::string* v = tags.Find(tag::kTable)) f.table = io::EscapeKeyText(*v);
    if (const std::string* v = tags.Find(tag::kBatchId)) {
      f.batch_id = io::EscapeKeyText(*v);
    } else if (KeyTemplateUses(config_.key_template, "batch_id")) {
      return Status::Invalid(
          "node '{}': the key template '{}' uses {{batch_id}}, but the batch has no tag "
          "'batch_id' (tags: {})",
          id_, config_.key_template, TagNames(tags));
    }
    if (object.has_keys) {
      f.first_key = object.first_key;
      f.last_key = object.last_key;
    } else if (UsesKeys()) {
      return Status::Invalid(
          "node '{}': the key template '{}' uses the key column '{}', which the batch lacks "
          "(columns: {}); set option 'key_column'",
          id_, config_.key_template, config_.encoding.key_column,
          object.columns.is_null() ? batch.schema()->ToString() : ColumnNames(object.columns));
    }
    std::string key = JoinKey(config_.prefix, ExpandKeyTemplate(config_.key_template, f));
    Status st = ValidateObjectKey(key);
    if (!st.ok()) return st.WithContext("node '{}': key template '{}'", id_, config_.key_template);
    return key;
  }

  static std::string TagNames(const BatchTags& tags) {
    std::string out;
    for (const auto& [name, value] : tags.entries()) out += (out.empty() ? "" : ", ") + name;
    return out.empty() ? "none" : out;
  }

  static std::string ColumnNames(const nlohmann::json& columns) {
    std::string out;
    for (const auto& c : columns) {
      out +=
          fmt::format("{}{}:{}", out.empty() ? "" : ", ", c.value("name", ""), c.value("type", ""));
    }
    return out;
  }

  // Checks whether an object is already stored under `key`. Returns true when it holds exactly
  // `bytes` (a rerun of the same batch: nothing to upload); AlreadyExists when it holds
  // anything else, which must not be replaced — its rows may be gone from the source.
  Result<bool> AlreadyStored(const std::string& key, std::string_view bytes,
                             const std::string& sha256) {
    auto head = store_->Head(key);
    if (!head.ok()) {
      if (head.status().code() == StatusCode::kNotFound) return false;
      return head.status();
    }
    std::string stored_sha256;
    if (head->size == static_cast<int64_t>(bytes.size())) {
      Sha256 hash;
      SLUICE_RETURN_NOT_OK(store_->Get(key, [&](std::string_view chunk) {
        hash.Update(chunk);
        return Status::OK();
      }));
      stored_sha256 = hash.HexDigest();
      if (stored_sha256 == sha256) return true;
    }
    return Status(
        StatusCode::kAlreadyExists,
        fmt::format(
            "node '{}': {} exists already with other content ({} bytes{}{}) than this batch's "
            "object ({} bytes, SHA-256 {}); not replacing it, since the rows it holds may be "
            "deleted from the source already. Move it aside if it is stale, or use a key "
            "template that names different batches differently ({{first_key}}-{{last_key}}, "
            "{{batch_id}})",
            id_, JoinKey(store_->Describe(), key), head->size,
            stored_sha256.empty() ? "" : ", SHA-256 ", stored_sha256, bytes.size(), sha256));
  }

  // Names, uploads and verifies one object, and records it for the manifest.
  Status StoreObject(std::string_view bytes_view, const io::EncodedObject& o, const Batch& batch,
                     int64_t seq) {
    SLUICE_ASSIGN_OR_RETURN(const std::string key, ObjectKey(o, batch, seq));
    if (!written_.insert(key).second) {
      // A second object under the same key would replace the first, whose rows were already
      // acknowledged: that would lose them.
      return Status::Invalid(
          "node '{}': the key template '{}' gave '{}' for two batches of this run; name objects "
          "by what tells batches apart on every run — {{first_key}}-{{last_key}} of a unique "
          "key_column, or {{batch_id}} — not {{seq}}, which restarts every run",
          id_, config_.key_template, key);
    }
    const auto bytes = static_cast<int64_t>(bytes_view.size());
    const std::string where = JoinKey(store_->Describe(), key);
    if (stats() != nullptr) stats()->AddCounter("objects", 1);
    if (dry_run()) {
      if (stats() != nullptr) stats()->bytes_out.fetch_add(bytes, std::memory_order_relaxed);
      Log(LogLevel::kInfo, "node '{}': dry run: would write {} ({} rows, {} bytes)", id_, where,
          o.rows, bytes);
      return Status::OK();
    }

    const std::string sha256 = Sha256Hex(bytes_view);
    int64_t upload_ns = 0;
    int64_t verify_ns = 0;
    Result<bool> stored = false;
    {
      PhaseTimer check(stats(), "verify");
      stored = AlreadyStored(key, bytes_view, sha256);
      verify_ns += check.Stop();
    }
    UpdateStoreCounters();
    if (!stored.ok()) return Explain(stored.status());
    if (*stored) {
      if (stats() != nullptr) stats()->AddCounter("objects_already_stored", 1);
      Log(LogLevel::kInfo,
          "node '{}': {} is stored already with the same {} bytes and SHA-256 (a rerun): kept", id_,
          where, bytes);
    } else {
      // Upload, then prove the object is there and whole before the rows may be deleted.
      PhaseTimer upload(stats(), "upload");
      Status st = store_->Put(key, bytes_view);
      upload_ns = upload.Stop();
      UpdateStoreCounters();
      SLUICE_RETURN_NOT_OK(Explain(st));
      PhaseTimer verify(stats(), "verify");
      if (config_.verify) st = VerifyObject(store_.get(), key, bytes, sha256);
      verify_ns += verify.Stop();
      if (stats() != nullptr) {
        stats()->request_latency.Record(upload_ns);
        if (config_.verify) stats()->request_latency.Record(verify_ns);
      }
      UpdateStoreCounters();
      SLUICE_RETURN_NOT_OK(Explain(st));
      if (stats() != nullptr) stats()->bytes_out.fetch_add(bytes, std::memory_order_relaxed);
    }

    ManifestEntry entry;
    entry.key = key;
    entry.rows = o.rows;
    entry.bytes = bytes;
    entry.uncompressed_bytes = o.raw_bytes;
    entry.sha256 = sha256;
    entry.first_key = o.first_key;
    entry.last_key = o.last_key;
    entry.min_key = o.min_key;
    entry.max_key = o.max_key;
    entry.database = std::string(batch.tags().Get(tag::kDatabase));
    entry.table = std::string(batch.tags().Get(tag::kTable));
    entry.columns = o.columns;
    manifest_.objects.push_back(std::move(entry));
    Log(config_.log_objects ? LogLevel::kInfo : LogLevel::kDebug,
        "node={} object={} database={} table={} batch={} records={} bytes={} serialize_ms={:.1f} "
        "compress_ms={:.1f} upload_ms={:.1f} verify_ms={:.1f}",
        id_, where, batch.tags().Get(tag::kDatabase), batch.tags().Get(tag::kTable), seq, o.rows,
        bytes, Millis(o.serialize_ns), Millis(o.compress_ns), Millis(upload_ns), Millis(verify_ns));
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
  io::ObjectEncoder encoder_;
  io::EncodedObject object_;  // the batch being written, encoded (reused)
  std::set<std::string> written_;
  Manifest manifest_;
  size_t listed_objects_ = 0;     // objects in the last manifest written
  int64_t last_manifest_us_ = 0;  // when it was written (Open before the first)
  bool failed_ = false;           // a Write failed: the run cannot be complete
  std::string encoded_ext_;       // of the first object an `encode` transform made, if any
  int64_t reported_retries_ = 0;
  int64_t reported_trips_ = 0;
};

}  // namespace

const OptionSchema& ObjectStoreSinkOptions() {
  static const OptionSchema kOptions = [] {
    OptionSchema o = ObjectStoreConnectionOptions();
    const OptionSchema& encoding = ObjectEncodingOptions();
    o.insert(o.end(), encoding.begin(), encoding.end());
    const OptionSchema own = {
        {"key",
         OptionType::kString,
         kDefaultObjectKeyTemplate,
         "Object key template under the URL's prefix: {database}, {table}, {date} (the batch's "
         "tags; {date} else the UTC day of writing), {first_key}, {last_key} (key_column of the "
         "first and last rows), {batch_id} (tag), {node}, {seq} (restarts every run) and {ext}. "
         "Values are percent-escaped; segments left empty are dropped. An object already stored "
         "is kept if identical and never replaced by other content.",
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
         "Write <prefix>/_manifests/<run_id>.json listing every object (key, rows, bytes, "
         "sha256, min/max key, columns and their source types); \"complete\": true only "
         "after a run that ended without an error.",
         false,
         {}},
        {"manifest_interval",
         OptionType::kDuration,
         "60s",
         "While the run goes on, rewrite the manifest (marked incomplete) at most this often; "
         "it is written once more at the end.",
         false,
         {}},
        {"run_id",
         OptionType::kString,
         "",
         "Name of the manifest; empty: the UTC start time, the node id and a random part, "
         "unique per run. A name another run's manifest has is refused.",
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
  SLUICE_RETURN_NOT_OK(LoadSha256());  // every object's digest (MakeNodeStore's, otherwise)
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
