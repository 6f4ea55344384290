// The `object_store` source: list objects under a prefix and stream each one, decompressed and
// decoded, into batches in constant memory. Each object is decoded with the columns and types
// the manifest of the run that wrote it records (or with the `schema` option), its batches
// tagged with the recorded PostgreSQL types, database and table so that a `postgres` sink can
// recreate the table; an object a manifest lists is checked against its recorded size and
// SHA-256 as it streams.

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "sluice/connectors/objectstore/local_store.h"
#include "sluice/connectors/objectstore/objectstore.h"
#include "sluice/connectors/objectstore/objectstore_internal.h"
#include "sluice/core/json_text.h"
#include "sluice/core/log.h"
#include "sluice/io/format.h"
#include "sluice/io/stream.h"

namespace sluice {

using objectstore_internal::CancelRelay;
using objectstore_internal::ExplainStoreError;
using objectstore_internal::IntOr;
using objectstore_internal::MakeNodeStore;
using objectstore_internal::StringOr;

namespace {

constexpr int64_t kDefaultBatchRows = 8192;
constexpr size_t kReadChunk = size_t{1} << 20;
// Downloaded bytes buffered ahead of the decoder.
constexpr size_t kMaxBuffered = size_t{8} << 20;

struct SourceConfig {
  ObjectStoreOptions store;
  std::string prefix;                // URL prefix + the `prefix` option
  std::optional<io::Format> format;  // nullopt: by extension
  std::optional<io::Codec> codec;    // nullopt: by extension
  SchemaPtr schema;                  // null: each object's columns from its manifest
  int64_t batch_rows = kDefaultBatchRows;
};

Result<SourceConfig> ParseSourceOptions(const NodeOptions& o) {
  SourceConfig c;
  SLUICE_ASSIGN_OR_RETURN(c.store, ObjectStoreOptionsFromNode(o));
  SLUICE_ASSIGN_OR_RETURN(ObjectStoreUrl url, ParseObjectStoreUrl(c.store.url));
  const std::string prefix = StringOr(o, "prefix", "");
  if (prefix.starts_with('/')) return o.ErrorAt("prefix", "must not start with '/'");
  c.prefix = url.prefix.empty() ? prefix : url.prefix + "/" + prefix;
  const std::string format = StringOr(o, "format", "auto");
  if (format != "auto") {
    auto f = io::ParseFormat(format);
    if (!f.ok()) return o.ErrorAt("format", f.status().message());
    c.format = *f;
  }
  const std::string codec = StringOr(o, "compression", "auto");
  if (codec != "auto") {
    auto k = io::ParseCodec(codec);
    if (!k.ok()) return o.ErrorAt("compression", k.status().message());
    c.codec = *k;
  }
  c.batch_rows = IntOr(o, "batch_rows", kDefaultBatchRows);
  if (c.batch_rows < 1) return o.ErrorAt("batch_rows", "must be at least 1");
  SLUICE_ASSIGN_OR_RETURN(c.schema, o.GetSchema("schema"));
  return c;
}

bool IsManifestKey(std::string_view key) {
  return key.starts_with("_manifests/") || key.find("/_manifests/") != std::string_view::npos;
}

/// What a manifest records about one object. The texts shared by many objects point into
/// sets the source keeps (an archive of 100,000 objects has a few distinct column lists).
struct RecordedObject {
  const std::string* manifest = nullptr;  // where the manifest that lists it is
  const std::string* columns = nullptr;   // the "columns" array, as JSON text
  std::string database;
  std::string table;
  std::string sha256;  // empty: not recorded
  int64_t bytes = -1;  // -1: not recorded
};

/// Return the folders a manifest of objects under `prefix` may be in, besides those under the
/// prefix itself: `<ancestor>/_manifests/` for every ancestor folder of `prefix`, since a sink
/// writes its manifests at the top of its own prefix and a restore may read a deeper one.
std::vector<std::string> AncestorManifestPrefixes(const std::string& prefix) {
  std::vector<std::string> out = {"_manifests/"};
  for (size_t slash = prefix.find('/'); slash != std::string::npos;
       slash = prefix.find('/', slash + 1)) {
    // A prefix ending in '/' names a folder whose manifests its own listing finds.
    if (slash + 1 < prefix.size()) out.push_back(prefix.substr(0, slash + 1) + "_manifests/");
  }
  return out;
}

/// Return the key under which a reader of this store finds an object that the manifest at
/// `manifest_key` lists as `key`, written by a sink whose prefix was `sink_prefix`: the
/// manifest sits at `<sink prefix>/_manifests/`, so keys are taken relative to where it is now
/// (an archive copied to another bucket or folder keeps its manifests valid).
std::string ReaderKey(const std::string& manifest_key, const std::string& sink_prefix,
                      const std::string& key) {
  const size_t at = manifest_key.rfind("_manifests/");
  std::string base = manifest_key.substr(0, at);
  if (!base.empty() && base.back() == '/') base.pop_back();
  if (sink_prefix.empty()) return JoinKey(base, key);
  if (key.size() > sink_prefix.size() && key.starts_with(sink_prefix) &&
      key[sink_prefix.size()] == '/') {
    return JoinKey(base, std::string_view(key).substr(sink_prefix.size() + 1));
  }
  return key;
}

/// Turn the push-style ObjectStore::Get into a pull-style stream: a thread runs the download
/// and hands chunks over through a queue bounded to kMaxBuffered bytes. When `expected_sha256`
/// is not empty, the download is hashed as it goes and ends in DataLoss (naming `manifest`,
/// which recorded it) unless the object has `expected_bytes` bytes and that SHA-256.
class ObjectInputStream final : public io::InputStream {
 public:
  ObjectInputStream(ObjectStore* store, std::string key, std::string expected_sha256 = "",
                    int64_t expected_bytes = -1, std::string manifest = "")
      : store_(store),
        key_(std::move(key)),
        expected_sha256_(std::move(expected_sha256)),
        expected_bytes_(expected_bytes),
        manifest_(std::move(manifest)),
        thread_([this] { Run(); }) {}

  ~ObjectInputStream() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      closed_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  Result<size_t> Read(char* out, size_t capacity) override {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return !chunks_.empty() || done_; });
    if (chunks_.empty()) {
      if (!status_.ok()) return status_;
      return size_t{0};
    }
    std::string& front = chunks_.front();
    const size_t n = std::min(capacity, front.size() - front_pos_);
    std::copy_n(front.data() + front_pos_, n, out);
    front_pos_ += n;
    if (front_pos_ == front.size()) {
      buffered_ -= front.size();
      chunks_.pop_front();
      front_pos_ = 0;
      cv_.notify_all();
    }
    return n;
  }

 private:
  void Run() {
    Sha256 hash;
    int64_t read = 0;
    Status st = store_->Get(key_, [&](std::string_view chunk) -> Status {
      if (!expected_sha256_.empty()) hash.Update(chunk);
      read += static_cast<int64_t>(chunk.size());
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return buffered_ < kMaxBuffered || closed_; });
      if (closed_) return Status::Cancelled("download of {} no longer wanted", key_);
      chunks_.emplace_back(chunk);
      buffered_ += chunk.size();
      cv_.notify_all();
      return Status::OK();
    });
    if (st.ok() && !expected_sha256_.empty()) {
      // The last chunk is handed over before this check: the decoder sees the error when it
      // asks for more, before its last rows are made into a batch.
      if (expected_bytes_ >= 0 && read != expected_bytes_) {
        st = Status::DataLoss("{}: {} bytes read, {} recorded in manifest {}", key_, read,
                              expected_bytes_, manifest_);
      } else if (const std::string got = hash.HexDigest(); got != expected_sha256_) {
        st = Status::DataLoss("{}: SHA-256 {}, but manifest {} records {}", key_, got, manifest_,
                              expected_sha256_);
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    status_ = std::move(st);
    done_ = true;
    cv_.notify_all();
  }

  ObjectStore* const store_;
  const std::string key_;
  const std::string expected_sha256_;
  const int64_t expected_bytes_;
  const std::string manifest_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> chunks_;  // guarded by mu_
  size_t front_pos_ = 0;            // guarded by mu_
  size_t buffered_ = 0;             // guarded by mu_
  bool closed_ = false;             // guarded by mu_
  bool done_ = false;               // guarded by mu_
  Status status_;                   // guarded by mu_
  std::thread thread_;              // last: starts once the members above exist
};

/// Produce the rows of every object under a prefix, in key order. Next() is called from one
/// thread; objects are only read.
class ObjectStoreSource final : public Source {
 public:
  /// `relay` (may be null) carries the run's cancellation into `store` from Open() on.
  ObjectStoreSource(std::string id, SourceConfig config, std::shared_ptr<ObjectStore> store,
                    std::unique_ptr<CancelRelay> relay)
      : id_(std::move(id)),
        config_(std::move(config)),
        relay_(std::move(relay)),
        store_(std::move(store)),
        chunk_(kReadChunk) {}

  Status Open(NodeContext* ctx) override {
    ctx_ = ctx;
    // Retries, backoff sleeps and stalled transfers end as soon as the run is cancelled.
    if (relay_ != nullptr && ctx != nullptr) relay_->Watch(ctx);
    auto listed = store_->List(config_.prefix);
    if (!listed.ok()) return Explain(listed.status());
    std::vector<std::string> manifests;
    for (auto& info : *listed) {
      if (IsManifestKey(info.key)) {
        manifests.push_back(info.key);
      } else {
        objects_.emplace_back().info = std::move(info);
      }
    }
    std::sort(objects_.begin(), objects_.end(),
              [](const ObjectToRead& a, const ObjectToRead& b) { return a.info.key < b.info.key; });
    if (objects_.empty()) {
      return Status::NotFound("node '{}': no object under {}", id_,
                              JoinKey(store_->Describe(), config_.prefix) + "*");
    }
    for (const std::string& prefix : AncestorManifestPrefixes(config_.prefix)) {
      auto more = store_->List(prefix);
      // A key may be allowed to list only its own prefix, not the folders above it.
      if (!more.ok() && more.status().code() == StatusCode::kPermissionDenied) continue;
      if (!more.ok()) return Explain(more.status());
      for (const ObjectInfo& info : *more) manifests.push_back(info.key);
    }
    std::sort(manifests.begin(), manifests.end());
    manifests.erase(std::unique(manifests.begin(), manifests.end()), manifests.end());
    std::map<std::string, RecordedObject> recorded;
    for (const std::string& key : manifests) {
      Status st = ReadManifest(key, &recorded);
      if (!st.ok() && st.code() == StatusCode::kInvalidArgument && config_.schema != nullptr) {
        // The `schema` option says how to read every object; a manifest is not needed.
        Log(LogLevel::kWarn, "{}; ignored, since option 'schema' is given", st.message());
        continue;
      }
      SLUICE_RETURN_NOT_OK(st);
    }
    return PlanObjects(recorded);
  }

  Result<BatchPtr> Next(uint64_t seq) override {
    while (ready_.empty()) {
      if (ctx_ != nullptr && ctx_->cancelled()) {
        return Status::Cancelled("node '{}': cancelled", id_);
      }
      if (stream_ == nullptr) {
        if (next_object_ >= objects_.size()) return BatchPtr();
        SLUICE_RETURN_NOT_OK(OpenNextObject());
      }
      auto n = stream_->Read(chunk_.data(), chunk_.size());
      if (!n.ok()) return WithObject(n.status());
      std::vector<BatchPtr> batches;
      Status st = *n == 0 ? decoder_->Finish(&batches)
                          : decoder_->Feed(std::string_view(chunk_.data(), *n), &batches);
      if (!st.ok()) return st;
      for (auto& b : batches) {
        object_rows_ += b->num_rows();
        ready_.push_back(tags_.empty() ? std::move(b) : b->WithTags(tags_));
      }
      if (*n == 0) {
        stream_.reset();
        decoder_.reset();
      }
    }
    BatchPtr batch = std::move(ready_.front());
    ready_.pop_front();
    return batch;
  }

  Status Close() override {
    stream_.reset();
    if (relay_ != nullptr) relay_->Disarm();
    return Status::OK();
  }

  SchemaPtr schema() const override { return config_.schema; }

 private:
  /// One object under the prefix, with what its manifest recorded.
  struct ObjectToRead {
    ObjectInfo info;
    SchemaPtr schema;                          // the columns to decode it with
    BatchTags tags;                            // pg_types, database, table (as recorded)
    const RecordedObject* recorded = nullptr;  // into recorded_; null: in no manifest
  };

  static const std::string& KeyOf(const ObjectToRead& o) { return o.info.key; }
  static const std::string& KeyOf(const std::string& key) { return key; }

  Status Explain(const Status& st) const {
    return ExplainStoreError(st, id_, config_.store, "list and read");
  }

  // Reads the manifest at `key` into `recorded` (keyed by the object's key in this store). A
  // later manifest's entry replaces an earlier one's: a rerun lists an object it found stored.
  Status ReadManifest(const std::string& key, std::map<std::string, RecordedObject>* recorded) {
    const std::string where = JoinKey(store_->Describe(), key);
    std::string text;
    Status st = store_->Get(key, [&](std::string_view chunk) {
      text.append(chunk);
      return Status::OK();
    });
    if (!st.ok())
      return Explain(st.message().find(key) != std::string::npos
                         ? st
                         : st.WithContext("reading manifest {}", where));
    const auto manifest = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    auto bad = [&](std::string_view what) {
      return Status::Invalid("node '{}': manifest {}: {}", id_, where, what);
    };
    if (!manifest.is_object() || !manifest.contains("objects") || !manifest["objects"].is_array()) {
      return bad("not a manifest (a JSON object with \"objects\": [...])");
    }
    const auto prefix = manifest.value("prefix", nlohmann::json(""));
    if (!prefix.is_string()) return bad("\"prefix\" is not a string");
    if (!manifest.value("complete", false)) {
      // A run that failed or was killed lists only objects it verified: they are whole.
      Log(LogLevel::kInfo,
          "node '{}': manifest {} is incomplete (its run did not end cleanly); the objects it "
          "lists were verified when stored",
          id_, where);
    }
    for (const auto& o : manifest["objects"]) {
      if (!o.is_object() || !o.contains("key") || !o["key"].is_string()) {
        return bad("an object without a \"key\"");
      }
      std::string object_key =
          ReaderKey(key, prefix.get<std::string>(), o["key"].get<std::string>());
      if (!std::binary_search(objects_.begin(), objects_.end(), object_key,
                              [](const auto& a, const auto& b) { return KeyOf(a) < KeyOf(b); })) {
        continue;  // not under this source's prefix
      }
      RecordedObject r;
      r.manifest = &*manifest_names_.insert(where).first;
      const auto columns = o.value("columns", nlohmann::json::array());
      if (!columns.is_array()) return bad("\"columns\" of an object is not an array");
      r.columns = &*column_lists_.insert(JsonText(columns)).first;
      auto text_of = [&](const char* name) {
        const auto it = o.find(name);
        return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
      };
      r.database = text_of("database");
      r.table = text_of("table");
      r.sha256 = text_of("sha256");
      if (const auto it = o.find("bytes"); it != o.end() && it->is_number_integer()) {
        r.bytes = it->get<int64_t>();
      }
      (*recorded)[std::move(object_key)] = std::move(r);
    }
    return Status::OK();
  }

  // Gives every object the schema to decode it with and its tags, from `recorded` or the
  // `schema` option.
  Status PlanObjects(std::map<std::string, RecordedObject>& recorded) {
    recorded_ = std::move(recorded);
    // One schema and one set of tags per distinct column list, database and table.
    std::map<std::string, std::pair<SchemaPtr, BatchTags>> planned;
    std::vector<std::string> unlisted;
    for (ObjectToRead& object : objects_) {
      const auto it = recorded_.find(object.info.key);
      if (it != recorded_.end()) object.recorded = &it->second;
      if (object.recorded == nullptr || *object.recorded->columns == "[]") {
        if (config_.schema == nullptr) unlisted.push_back(object.info.key);
        object.schema = config_.schema;
        continue;
      }
      const RecordedObject& r = *object.recorded;
      auto& [planned_schema, planned_tags] =
          planned[*r.columns + '\n' + r.database + '\n' + r.table];
      if (planned_schema != nullptr) {
        object.schema = config_.schema != nullptr ? config_.schema : planned_schema;
        object.tags = planned_tags;
        continue;
      }
      std::vector<BatchTags::Entry> tags;
      if (!r.database.empty()) tags.emplace_back(tag::kDatabase, r.database);
      if (!r.table.empty()) tags.emplace_back(tag::kTable, r.table);
      nlohmann::json pg_types = nlohmann::json::object();
      std::vector<Field> fields;
      const auto columns = nlohmann::json::parse(*r.columns, nullptr, /*allow_exceptions=*/false);
      for (const auto& c : columns) {
        const auto name = c.is_object() ? c.value("name", nlohmann::json()) : nlohmann::json();
        const auto type = c.is_object() ? c.value("type", nlohmann::json()) : nlohmann::json();
        if (!name.is_string() || !type.is_string()) {
          return Status::Invalid(
              "node '{}': manifest {}: a column of {} has no \"name\" and \"type\" strings: {}",
              id_, *r.manifest, object.info.key, JsonText(c).substr(0, 200));
        }
        auto parsed = ParseTypeName(type.get<std::string>());
        if (!parsed.ok()) {
          return parsed.status().WithContext("node '{}': manifest {}: column '{}' of {}", id_,
                                             *r.manifest, name.get<std::string>(), object.info.key);
        }
        fields.push_back(Field{name.get<std::string>(), *parsed, true});
        const auto pg_type = c.value("pg_type", nlohmann::json());
        if (pg_type.is_string()) pg_types[name.get<std::string>()] = pg_type;
      }
      if (!pg_types.empty()) tags.emplace_back(tag::kPgTypes, JsonText(pg_types));
      planned_tags = BatchTags(std::move(tags));
      planned_schema = MakeSchema(std::move(fields));
      object.tags = planned_tags;
      // The option overrides what was recorded.
      object.schema = config_.schema != nullptr ? config_.schema : planned_schema;
    }
    if (!unlisted.empty()) {
      return Status::ConfigError(
          "node '{}': {} object{} under {}* {} listed in no manifest with its columns (first: "
          "{}), so the types to read {} with are unknown; give option 'schema' (column name -> "
          "type, see docs/ARCHIVE_FORMAT.md), or read only objects an object_store sink wrote "
          "(option 'prefix')",
          id_, unlisted.size(), unlisted.size() == 1 ? "" : "s",
          JoinKey(store_->Describe(), config_.prefix), unlisted.size() == 1 ? "is" : "are",
          JoinKey(store_->Describe(), unlisted.front()), unlisted.size() == 1 ? "it" : "them");
    }
    return Status::OK();
  }

  Status OpenNextObject() {
    const ObjectToRead& object = objects_[next_object_++];
    const ObjectInfo& info = object.info;
    key_ = info.key;
    where_ = JoinKey(store_->Describe(), key_);
    tags_ = object.tags;
    io::Format format;
    if (config_.format.has_value()) {
      format = *config_.format;
    } else {
      auto f = io::FormatFromPath(key_);
      if (!f.ok()) {
        return Status::ConfigError("node '{}': {}; set option 'format'", id_, f.status().message());
      }
      format = *f;
    }
    const io::Codec codec = config_.codec.value_or(io::CodecFromPath(key_));
    io::DecodeOptions options;
    options.schema = object.schema;
    options.batch_rows = config_.batch_rows;
    options.source_name = where_;
    SLUICE_ASSIGN_OR_RETURN(decoder_, io::MakeDecoder(format, std::move(options)));
    std::unique_ptr<ObjectInputStream> raw;
    if (object.recorded != nullptr && !object.recorded->sha256.empty()) {
      raw = std::make_unique<ObjectInputStream>(store_.get(), key_, object.recorded->sha256,
                                                object.recorded->bytes, *object.recorded->manifest);
    } else {
      raw = std::make_unique<ObjectInputStream>(store_.get(), key_);
    }
    SLUICE_ASSIGN_OR_RETURN(stream_, io::MakeDecompressingStream(std::move(raw), codec));
    object_rows_ = 0;
    if (ctx_ != nullptr) {
      ctx_->stats()->AddCounter("objects", 1);
      ctx_->stats()->bytes_in.fetch_add(info.size, std::memory_order_relaxed);
    }
    return Status::OK();
  }

  Status WithObject(const Status& st) const {
    const Status named =
        st.message().find(key_) != std::string::npos ? st : st.WithContext("{}", where_);
    return Explain(named);
  }

  std::string id_;
  SourceConfig config_;
  std::unique_ptr<CancelRelay> relay_;  // before store_, which watches its flag
  std::shared_ptr<ObjectStore> store_;
  NodeContext* ctx_ = nullptr;
  std::set<std::string> manifest_names_;            // RecordedObject::manifest
  std::set<std::string> column_lists_;              // RecordedObject::columns
  std::map<std::string, RecordedObject> recorded_;  // by key in this store
  std::vector<ObjectToRead> objects_;
  size_t next_object_ = 0;
  std::string key_;    // the object being read
  std::string where_;  // ... with its store
  BatchTags tags_;     // ... and its batches' tags
  std::unique_ptr<io::Decoder> decoder_;
  std::unique_ptr<io::InputStream> stream_;  // after decoder_: destroyed first
  int64_t object_rows_ = 0;
  std::vector<char> chunk_;
  std::deque<BatchPtr> ready_;
};

}  // namespace

const OptionSchema& ObjectStoreSourceOptions() {
  static const OptionSchema kOptions = [] {
    OptionSchema o = ObjectStoreConnectionOptions();
    const OptionSchema own = {
        {"prefix",
         OptionType::kString,
         "",
         "Read the objects whose keys (after the URL's prefix) start with this; _manifests/ "
         "is skipped.",
         false,
         {}},
        {"format",
         OptionType::kEnum,
         "auto",
         "Record format; auto picks it by key extension.",
         false,
         {"auto", "jsonl", "csv"}},
        {"compression",
         OptionType::kEnum,
         "auto",
         "Compression; auto picks it by key extension (.gz, .zst).",
         false,
         {"auto", "none", "gzip", "zstd"}},
        {"schema",
         OptionType::kMap,
         "",
         "Column name -> type, for every object (overrides the manifests); when absent, each "
         "object is read with the columns its run's manifest records (an object listed in no "
         "manifest is an error).",
         false,
         {}},
        {"batch_rows", OptionType::kInt, "8192", "Rows per batch.", false, {}},
    };
    o.insert(o.end(), own.begin(), own.end());
    return o;
  }();
  return kOptions;
}

Result<std::unique_ptr<Source>> MakeObjectStoreSource(const NodeOptions& options,
                                                      std::shared_ptr<ObjectStore> store) {
  SLUICE_ASSIGN_OR_RETURN(SourceConfig config, ParseSourceOptions(options));
  SLUICE_RETURN_NOT_OK(LoadSha256());  // every object's digest (MakeNodeStore's, otherwise)
  return std::unique_ptr<Source>(
      new ObjectStoreSource(options.id(), std::move(config), std::move(store), nullptr));
}

Result<std::unique_ptr<Source>> MakeObjectStoreSource(const NodeOptions& options) {
  SLUICE_ASSIGN_OR_RETURN(SourceConfig config, ParseSourceOptions(options));
  // Made now, so that bad settings (credentials, endpoint) fail while the pipeline is built.
  SLUICE_ASSIGN_OR_RETURN(auto made, MakeNodeStore(options.id(), config.store));
  return std::unique_ptr<Source>(new ObjectStoreSource(
      options.id(), std::move(config), std::move(made.store), std::move(made.relay)));
}

}  // namespace sluice
