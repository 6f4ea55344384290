#include "sluice/connectors/objectstore/object_store.h"

#include "sluice/connectors/objectstore/local_store.h"
#include "sluice/connectors/objectstore/s3_client.h"

namespace sluice {

namespace {

bool IsBucketChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

std::string TrimSlashes(std::string_view s) {
  while (!s.empty() && s.front() == '/') s.remove_prefix(1);
  while (!s.empty() && s.back() == '/') s.remove_suffix(1);
  return std::string(s);
}

}  // namespace

Result<ObjectStoreUrl> ParseObjectStoreUrl(std::string_view url) {
  ObjectStoreUrl out;
  if (url.empty()) return Status::Invalid("object store URL is empty");
  if (url.starts_with("s3://")) {
    std::string_view rest = url.substr(5);
    const size_t slash = rest.find('/');
    const std::string_view bucket = rest.substr(0, slash);
    if (bucket.empty()) return Status::Invalid("object store URL '{}' names no bucket", url);
    for (char c : bucket) {
      if (!IsBucketChar(c)) {
        return Status::Invalid("object store URL '{}': '{}' is not a valid bucket name", url,
                               bucket);
      }
    }
    out.scheme = ObjectStoreUrl::Scheme::kS3;
    out.bucket = std::string(bucket);
    if (slash != std::string_view::npos) out.prefix = TrimSlashes(rest.substr(slash));
    if (!out.prefix.empty()) {
      Status st = ValidateObjectKey(out.prefix);
      if (!st.ok()) return st.WithContext("object store URL '{}': prefix", url);
    }
    return out;
  }
  if (url.starts_with("file://")) {
    std::string_view path = url.substr(7);
    if (!path.starts_with('/')) {
      return Status::Invalid(
          "object store URL '{}': file:// must be followed by an absolute path "
          "(file:///dir)",
          url);
    }
    out.root = std::string(path);
    return out;
  }
  const size_t scheme_end = url.find("://");
  if (scheme_end != std::string_view::npos) {
    return Status::Invalid("object store URL '{}': unsupported scheme '{}' (use s3:// or file://)",
                           url, url.substr(0, scheme_end));
  }
  out.root = std::string(url);
  return out;
}

std::string JoinKey(std::string_view prefix, std::string_view key) {
  while (!prefix.empty() && prefix.back() == '/') prefix.remove_suffix(1);
  while (!key.empty() && key.front() == '/') key.remove_prefix(1);
  if (prefix.empty()) return std::string(key);
  if (key.empty()) return std::string(prefix);
  std::string out;
  out.reserve(prefix.size() + 1 + key.size());
  out.append(prefix);
  out.push_back('/');
  out.append(key);
  return out;
}

Status ValidateObjectKey(std::string_view key) {
  if (key.empty()) return Status::Invalid("object key is empty");
  if (key.size() > 1024) return Status::Invalid("object key is longer than 1024 bytes");
  if (key.find('\0') != std::string_view::npos) {
    return Status::Invalid("object key '{}' holds a NUL byte", key);
  }
  if (key.front() == '/') return Status::Invalid("object key '{}' is absolute", key);
  if (key.back() == '/') return Status::Invalid("object key '{}' ends with '/'", key);
  size_t start = 0;
  while (start <= key.size()) {
    size_t end = key.find('/', start);
    if (end == std::string_view::npos) end = key.size();
    const std::string_view segment = key.substr(start, end - start);
    if (segment.empty() || segment == "." || segment == "..") {
      return Status::Invalid("object key '{}' has an empty, '.' or '..' segment", key);
    }
    start = end + 1;
  }
  return Status::OK();
}

Result<std::unique_ptr<ObjectStore>> MakeObjectStore(const ObjectStoreOptions& options) {
  SLUICE_ASSIGN_OR_RETURN(ObjectStoreUrl url, ParseObjectStoreUrl(options.url));
  if (url.scheme == ObjectStoreUrl::Scheme::kLocal) {
    SLUICE_ASSIGN_OR_RETURN(auto store, LocalStore::Make(url.root));
    return std::unique_ptr<ObjectStore>(std::move(store));
  }
  S3Options s3;
  s3.bucket = url.bucket;
  s3.endpoint = options.endpoint;
  s3.region = options.region;
  s3.path_style = options.path_style;
  s3.access_key_id = options.access_key_id;
  s3.secret_access_key = options.secret_access_key;
  s3.session_token = options.session_token;
  s3.multipart_threshold = options.multipart_threshold;
  s3.part_size = options.part_size;
  s3.upload_parallelism = options.upload_parallelism;
  s3.connect_timeout_us = options.connect_timeout_us;
  s3.low_speed_time_us = options.low_speed_time_us;
  s3.retry = options.retry;
  s3.breaker = options.breaker;
  s3.clock = options.clock;
  s3.cancelled = options.cancelled;
  SLUICE_ASSIGN_OR_RETURN(auto client, S3Client::Make(std::move(s3)));
  return std::unique_ptr<ObjectStore>(std::move(client));
}

}  // namespace sluice
