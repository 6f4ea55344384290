#include "sluice/connectors/objectstore/objectstore.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "sluice/connectors/objectstore/objectstore_internal.h"
#include "sluice/core/time.h"

namespace sluice {

using objectstore_internal::BoolOr;
using objectstore_internal::BytesOr;
using objectstore_internal::IntOr;
using objectstore_internal::MicrosOr;
using objectstore_internal::StringOr;

namespace {

constexpr std::string_view kPlaceholders[] = {
    "node", "date", "seq", "first_key", "last_key", "database", "table", "batch_id", "ext"};

}  // namespace

void RegisterObjectStoreNodes(NodeRegistry* registry) {
  registry->AddSource(kObjectStoreType,
                      "Read JSONL or CSV objects (optionally gzip or zstd compressed) from S3 or a "
                      "local directory, streaming them in constant memory.",
                      ObjectStoreSourceOptions(),
                      [](const NodeOptions& o) { return MakeObjectStoreSource(o); });
  registry->AddSink(kObjectStoreType,
                    "Write each batch as one compressed JSONL or CSV object to S3 or a local "
                    "directory, verified (size and SHA-256) before its rows are acknowledged; "
                    "a manifest lists every object.",
                    ObjectStoreSinkOptions(),
                    [](const NodeOptions& o) { return MakeObjectStoreSink(o); });
}

const OptionSchema& ObjectStoreConnectionOptions() {
  static const OptionSchema kOptions = {
      {"url",
       OptionType::kString,
       "",
       "Where objects live: s3://bucket/prefix, file:///dir or a directory path.",
       true,
       {}},
      {"endpoint",
       OptionType::kString,
       "",
       "S3 endpoint (e.g. http://127.0.0.1:9000); empty for AWS.",
       false,
       {}},
      {"region",
       OptionType::kString,
       "",
       "S3 signing region; empty: $AWS_REGION, $AWS_DEFAULT_REGION, then us-east-1.",
       false,
       {}},
      {"path_style",
       OptionType::kBool,
       "true",
       "Path-style S3 URLs (endpoint/bucket/key) rather than virtual-hosted (bucket.endpoint).",
       false,
       {}},
      {"access_key_id",
       OptionType::kString,
       "",
       "S3 access key; empty: $AWS_ACCESS_KEY_ID. Never logged.",
       false,
       {}},
      {"secret_access_key",
       OptionType::kString,
       "",
       "S3 secret key; empty: $AWS_SECRET_ACCESS_KEY. Never logged.",
       false,
       {}},
      {"session_token",
       OptionType::kString,
       "",
       "S3 session token; empty: $AWS_SESSION_TOKEN. Never logged.",
       false,
       {}},
      {"connect_timeout",
       OptionType::kDuration,
       "10s",
       "Time allowed to connect to S3.",
       false,
       {}},
      {"low_speed_time",
       OptionType::kDuration,
       "30s",
       "Abandon (and retry) an S3 request that moves no byte for this long.",
       false,
       {}},
      {"retry_initial",
       OptionType::kDuration,
       "1s",
       "First retry delay of a failed S3 request (doubling, 0-10% jitter).",
       false,
       {}},
      {"retry_max", OptionType::kDuration, "30s", "Longest retry delay.", false, {}},
      {"retry_max_attempts",
       OptionType::kInt,
       "5",
       "Attempts per S3 request, the first included.",
       false,
       {}},
      {"breaker_failures",
       OptionType::kInt,
       "5",
       "Consecutive failed S3 requests that open the circuit breaker.",
       false,
       {}},
      {"breaker_timeout",
       OptionType::kDuration,
       "60s",
       "Time the circuit breaker stays open before a probe request.",
       false,
       {}},
  };
  return kOptions;
}

Result<ObjectStoreOptions> ObjectStoreOptionsFromNode(const NodeOptions& o) {
  ObjectStoreOptions s;
  s.url = StringOr(o, "url", "");
  if (s.url.empty())
    return o.ErrorAt("url", "an s3://bucket/prefix, file:///dir or path is required");
  auto url = ParseObjectStoreUrl(s.url);
  if (!url.ok()) return o.ErrorAt("url", url.status().message());
  s.endpoint = StringOr(o, "endpoint", "");
  if (!s.endpoint.empty() && !s.endpoint.starts_with("http://") &&
      !s.endpoint.starts_with("https://")) {
    return o.ErrorAt("endpoint", "must start with http:// or https://");
  }
  s.region = StringOr(o, "region", "");
  s.path_style = BoolOr(o, "path_style", true);
  s.access_key_id = StringOr(o, "access_key_id", "");
  s.secret_access_key = StringOr(o, "secret_access_key", "");
  s.session_token = StringOr(o, "session_token", "");
  if (s.access_key_id.empty() != s.secret_access_key.empty()) {
    return o.ErrorAt(s.access_key_id.empty() ? "access_key_id" : "secret_access_key",
                     "access_key_id and secret_access_key go together");
  }
  s.connect_timeout_us = MicrosOr(o, "connect_timeout", s.connect_timeout_us);
  s.low_speed_time_us = MicrosOr(o, "low_speed_time", s.low_speed_time_us);
  if (s.connect_timeout_us <= 0) return o.ErrorAt("connect_timeout", "must be positive");
  if (s.low_speed_time_us <= 0) return o.ErrorAt("low_speed_time", "must be positive");
  s.retry.initial_us = MicrosOr(o, "retry_initial", s.retry.initial_us);
  s.retry.max_us = MicrosOr(o, "retry_max", s.retry.max_us);
  s.retry.max_attempts = static_cast<int>(IntOr(o, "retry_max_attempts", s.retry.max_attempts));
  if (s.retry.initial_us < 0) return o.ErrorAt("retry_initial", "must not be negative");
  if (s.retry.max_us < s.retry.initial_us) {
    return o.ErrorAt("retry_max", "must be at least retry_initial");
  }
  if (s.retry.max_attempts < 1) return o.ErrorAt("retry_max_attempts", "must be at least 1");
  s.breaker.failure_threshold = static_cast<int>(IntOr(o, "breaker_failures", 5));
  s.breaker.recovery_timeout_us = MicrosOr(o, "breaker_timeout", 60'000'000);
  if (s.breaker.failure_threshold < 1) return o.ErrorAt("breaker_failures", "must be at least 1");
  if (s.breaker.recovery_timeout_us <= 0) return o.ErrorAt("breaker_timeout", "must be positive");
  s.multipart_threshold = BytesOr(o, "multipart_threshold", s.multipart_threshold);
  s.part_size = BytesOr(o, "part_size", s.part_size);
  s.upload_parallelism = static_cast<int>(IntOr(o, "upload_parallelism", s.upload_parallelism));
  if (s.multipart_threshold < 1) return o.ErrorAt("multipart_threshold", "must be positive");
  if (s.part_size < (int64_t{5} << 20)) {
    return o.ErrorAt("part_size", "must be at least 5MiB (the S3 minimum)");
  }
  if (s.upload_parallelism < 1) return o.ErrorAt("upload_parallelism", "must be at least 1");
  return s;
}

Status ValidateKeyTemplate(std::string_view t) {
  if (t.empty()) return Status::Invalid("key template is empty");
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i] == '}') return Status::Invalid("key template '{}': unbalanced '}}'", t);
    if (t[i] != '{') continue;
    const size_t end = t.find('}', i);
    if (end == std::string_view::npos)
      return Status::Invalid("key template '{}': unclosed '{{'", t);
    const std::string_view name = t.substr(i + 1, end - i - 1);
    if (std::find(std::begin(kPlaceholders), std::end(kPlaceholders), name) ==
        std::end(kPlaceholders)) {
      return Status::Invalid(
          "key template '{}': unknown placeholder {{{}}} (known: node, date, seq, first_key, "
          "last_key, database, table, batch_id, ext)",
          t, name);
    }
    i = end;
  }
  return Status::OK();
}

bool KeyTemplateUses(std::string_view key_template, std::string_view placeholder) {
  return key_template.find(fmt::format("{{{}}}", placeholder)) != std::string_view::npos;
}

std::string ExpandKeyTemplate(std::string_view t, const ObjectKeyFields& f) {
  std::string out;
  out.reserve(t.size() + 64);
  for (size_t i = 0; i < t.size(); ++i) {
    const size_t end = t[i] == '{' ? t.find('}', i) : std::string_view::npos;
    if (end == std::string_view::npos) {
      out.push_back(t[i]);
      continue;
    }
    const std::string_view name = t.substr(i + 1, end - i - 1);
    if (name == "node") {
      out += f.node;
    } else if (name == "date") {
      out += f.date;
    } else if (name == "seq") {
      out += std::to_string(f.seq);
    } else if (name == "first_key") {
      out += f.first_key;
    } else if (name == "last_key") {
      out += f.last_key;
    } else if (name == "database") {
      out += f.database;
    } else if (name == "table") {
      out += f.table;
    } else if (name == "batch_id") {
      out += f.batch_id;
    } else if (name == "ext") {
      out += f.ext;
    } else {
      out.append(t.substr(i, end - i + 1));
    }
    i = end;
  }
  // A field left empty (no such tag) must not leave an empty path segment behind.
  std::string key;
  key.reserve(out.size());
  for (char c : out) {
    if (c == '/' && (key.empty() || key.back() == '/')) continue;
    key.push_back(c);
  }
  while (!key.empty() && key.back() == '/') key.pop_back();
  return key;
}

nlohmann::json ManifestToJson(const Manifest& m) {
  nlohmann::json objects = nlohmann::json::array();
  int64_t rows = 0;
  int64_t bytes = 0;
  for (const ManifestEntry& e : m.objects) {
    nlohmann::json o = {{"key", e.key},           {"rows", e.rows},
                        {"bytes", e.bytes},       {"uncompressed_bytes", e.uncompressed_bytes},
                        {"sha256", e.sha256},     {"first_key", e.first_key},
                        {"last_key", e.last_key}, {"min_key", e.min_key},
                        {"max_key", e.max_key}};
    if (!e.database.empty()) o["database"] = e.database;
    if (!e.table.empty()) o["table"] = e.table;
    o["columns"] = e.columns.is_null() ? nlohmann::json::array() : e.columns;
    objects.push_back(std::move(o));
    rows += e.rows;
    bytes += e.bytes;
  }
  return {{"node", m.node},
          {"run_id", m.run_id},
          {"store", m.store},
          {"prefix", m.prefix},
          {"format", m.format},
          {"compression", m.compression},
          {"key_column", m.key_column},
          {"created", FormatTimestamp(m.created_us)},
          {"complete", m.complete},
          {"total_objects", static_cast<int64_t>(m.objects.size())},
          {"total_rows", rows},
          {"total_bytes", bytes},
          {"objects", std::move(objects)}};
}

namespace {

/// One look at the stored object: DataLoss when it differs from what was uploaded, with
/// `*shorter` set when it is shorter (the store may still be writing it).
Status VerifyOnce(ObjectStore* store, const std::string& key, const std::string& where,
                  int64_t expected_size, const std::string& expected_sha256, bool* shorter) {
  *shorter = false;
  SLUICE_ASSIGN_OR_RETURN(ObjectInfo info, store->Head(key));
  if (info.size != expected_size) {
    *shorter = info.size < expected_size;
    return Status::DataLoss("verifying {}: {} bytes stored, {} uploaded", where, info.size,
                            expected_size);
  }
  Sha256 hash;
  int64_t read = 0;
  SLUICE_RETURN_NOT_OK(store->Get(key, [&](std::string_view chunk) {
    hash.Update(chunk);
    read += static_cast<int64_t>(chunk.size());
    return Status::OK();
  }));
  if (read != expected_size) {
    *shorter = read < expected_size;
    return Status::DataLoss("verifying {}: {} bytes read back, {} uploaded", where, read,
                            expected_size);
  }
  const std::string got = hash.HexDigest();
  if (got != expected_sha256) {
    return Status::DataLoss("verifying {}: SHA-256 of the stored object is {}, uploaded {}", where,
                            got, expected_sha256);
  }
  return Status::OK();
}

}  // namespace

Status VerifyObject(ObjectStore* store, const std::string& key, int64_t expected_size,
                    const std::string& expected_sha256) {
  const std::string where = JoinKey(store->Describe(), key);
  // A store that answers a PUT before the object is whole on its disk (s3rver resolves on the
  // request stream's end, not the file's) shows a shorter object for a moment: look again a
  // few times, 20 ms to 160 ms apart (0.3 s in all), before calling it lost. Any other
  // difference fails at once.
  Status st;
  bool shorter = false;
  for (int attempt = 0; attempt < 5; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(20 << (attempt - 1)));
    st = VerifyOnce(store, key, where, expected_size, expected_sha256, &shorter);
    if (!shorter) return st;
  }
  return Status::DataLoss("{} (still, 0.3 s after the upload)", st.message());
}

namespace objectstore_internal {

void CancelRelay::Watch(const NodeContext* ctx) {
  ctx_ = ctx;
  thread_ = std::thread([this] { Poll(); });
}

CancelRelay::~CancelRelay() { Disarm(); }

void CancelRelay::Disarm() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  flag_.store(false, std::memory_order_release);
}

void CancelRelay::Poll() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    if (ctx_ != nullptr && ctx_->cancelled()) {
      flag_.store(true, std::memory_order_release);
      return;
    }
    cv_.wait_for(lock, std::chrono::milliseconds(10));
  }
}

Result<NodeStore> MakeNodeStore(const std::string& node, ObjectStoreOptions options) {
  // Every object's digest; a missing libcrypto is an error naming its package.
  if (Status st = LoadSha256(); !st.ok()) return st.WithContext("node '{}'", node);
  NodeStore out;
  out.relay = std::make_unique<CancelRelay>();
  options.cancelled = out.relay->flag();
  auto store = MakeObjectStore(options);
  if (!store.ok()) {
    return Status(store.status().code() == StatusCode::kInvalidArgument ? StatusCode::kConfigError
                                                                        : store.status().code(),
                  fmt::format("node '{}': {}", node, store.status().message()));
  }
  out.store = std::move(*store);
  return out;
}

Status ExplainStoreError(const Status& st, const std::string& node, const ObjectStoreOptions& store,
                         const char* action) {
  if (st.ok()) return st;
  std::string message = st.message();
  if (message.find("node '") == std::string::npos) {
    message = fmt::format("node '{}': {}", node, message);
  }
  auto url = ParseObjectStoreUrl(store.url);
  if (!url.ok()) return Status(st.code(), std::move(message));
  if (url->scheme == ObjectStoreUrl::Scheme::kS3) {
    const std::string where =
        !store.endpoint.empty() ? store.endpoint
                                : (store.region.empty() ? std::string("AWS S3")
                                                        : fmt::format("AWS S3 ({})", store.region));
    if (st.code() == StatusCode::kNotFound && message.find("NoSuchBucket") != std::string::npos) {
      message += fmt::format(
          "; check that bucket '{}' exists at {} (create it, or fix option 'url' or 'endpoint')",
          url->bucket, where);
    } else if (st.code() == StatusCode::kPermissionDenied) {
      message += fmt::format(
          "; check the credentials (options access_key_id and secret_access_key, else "
          "$AWS_ACCESS_KEY_ID and $AWS_SECRET_ACCESS_KEY) and that they may {} bucket '{}' at {}",
          action, url->bucket, where);
    }
  } else if (st.code() == StatusCode::kPermissionDenied) {
    message += fmt::format("; check that this user may {} the directory '{}'", action, url->root);
  }
  return Status(st.code(), std::move(message));
}

}  // namespace objectstore_internal

}  // namespace sluice
