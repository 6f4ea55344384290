#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "sluice/connectors/objectstore/object_store.h"

namespace sluice {

/// An object store over a local directory: key "a/b.jsonl" is the file <root>/a/b.jsonl.
/// Put writes a temporary file next to the target (named with kLocalTempMarker), fsyncs it,
/// renames it into place and fsyncs the directory, so an object is either absent, the old one
/// or the complete new one, even after a crash. Thread-safe (it keeps no state but a counter).
class LocalStore final : public ObjectStore {
 public:
  /// Return a store rooted at `root` (a path, or a `file://` URL). A missing directory is
  /// created by the first Put (so a dry run creates nothing). With `fsync` false, Put skips the
  /// fsyncs (tests, scratch data).
  static Result<std::unique_ptr<LocalStore>> Make(const std::string& root, bool fsync = true);

  Status Put(const std::string& key, std::string_view data) override;
  Result<ObjectInfo> Head(const std::string& key) override;
  Status Get(const std::string& key, const std::function<Status(std::string_view)>& sink) override;
  /// Return the objects under the root whose keys start with `prefix`; temporary files of
  /// writes in progress (or abandoned by a crash) are not objects.
  Result<std::vector<ObjectInfo>> List(const std::string& prefix) override;
  /// Remove the file, and the directories the removal left empty (up to the root).
  Status Delete(const std::string& key) override;
  std::string Describe() const override { return "file://" + root_; }

  /// Return the absolute root directory.
  const std::string& root() const { return root_; }

 private:
  LocalStore(std::string root, bool fsync) : root_(std::move(root)), fsync_(fsync) {}

  std::string PathOf(const std::string& key) const { return root_ + "/" + key; }

  const std::string root_;  // absolute, without a trailing '/'
  const bool fsync_;
  std::atomic<uint64_t> temp_counter_{0};
};

/// The marker in the names of a LocalStore's temporary files.
inline constexpr std::string_view kLocalTempMarker = ".sluice-tmp-";

}  // namespace sluice
