// The `object_store` source: list objects under a prefix and stream each one, decompressed and
// decoded, into batches in constant memory.

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>

#include "sluice/connectors/objectstore/local_store.h"
#include "sluice/connectors/objectstore/objectstore.h"
#include "sluice/connectors/objectstore/objectstore_internal.h"
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
  SchemaPtr schema;                  // null: inferred from the first object with rows
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

/// Turn the push-style ObjectStore::Get into a pull-style stream: a thread runs the download
/// and hands chunks over through a queue bounded to kMaxBuffered bytes.
class ObjectInputStream final : public io::InputStream {
 public:
  ObjectInputStream(ObjectStore* store, std::string key)
      : store_(store), key_(std::move(key)), thread_([this] { Run(); }) {}

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
    Status st = store_->Get(key_, [this](std::string_view chunk) -> Status {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return buffered_ < kMaxBuffered || closed_; });
      if (closed_) return Status::Cancelled("download of {} no longer wanted", key_);
      chunks_.emplace_back(chunk);
      buffered_ += chunk.size();
      cv_.notify_all();
      return Status::OK();
    });
    std::lock_guard<std::mutex> lock(mu_);
    status_ = std::move(st);
    done_ = true;
    cv_.notify_all();
  }

  ObjectStore* const store_;
  const std::string key_;
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
    if (!listed.ok())
      return ExplainStoreError(listed.status(), id_, config_.store, "list and read");
    for (auto& info : *listed) {
      if (IsManifestKey(info.key)) continue;
      objects_.push_back(std::move(info));
    }
    if (objects_.empty()) {
      return Status::NotFound("node '{}': no object under {}", id_,
                              JoinKey(store_->Describe(), config_.prefix) + "*");
    }
    return Status::OK();
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
        ready_.push_back(std::move(b));
      }
      if (*n == 0) {
        // Later objects are decoded with the schema of the first one that had rows, so that
        // every batch has the same schema.
        if (config_.schema == nullptr && object_rows_ > 0) config_.schema = decoder_->schema();
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
  Status OpenNextObject() {
    const ObjectInfo& info = objects_[next_object_++];
    key_ = info.key;
    where_ = JoinKey(store_->Describe(), key_);
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
    options.schema = config_.schema;
    options.batch_rows = config_.batch_rows;
    options.source_name = where_;
    SLUICE_ASSIGN_OR_RETURN(decoder_, io::MakeDecoder(format, std::move(options)));
    auto raw = std::make_unique<ObjectInputStream>(store_.get(), key_);
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
    return ExplainStoreError(named, id_, config_.store, "list and read");
  }

  std::string id_;
  SourceConfig config_;
  std::unique_ptr<CancelRelay> relay_;  // before store_, which watches its flag
  std::shared_ptr<ObjectStore> store_;
  NodeContext* ctx_ = nullptr;
  std::vector<ObjectInfo> objects_;
  size_t next_object_ = 0;
  std::string key_;    // the object being read
  std::string where_;  // ... with its store
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
         "Column name -> type; when absent, types are inferred from the first 1000 records.",
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
