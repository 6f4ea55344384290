#pragma once

// Test helpers for the procfs collectors: a HostEnv that reads recorded trees
// (tests/data/procfs/) and injects failures, and lookups of rows in a sample's batch.

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "sluice/connectors/procfs/host_env.h"
#include "sluice/core/batch.h"

namespace sluice::procfs::testing {

/// The recorded trees (SLUICE_PROCFS_TESTDATA is set by CMake).
inline std::string TreePath(std::string_view name) {
  return std::string(SLUICE_PROCFS_TESTDATA) + "/" + std::string(name);
}

/// Reads a recorded tree as if it were mounted at kRoot, wraps the real reads with failures
/// chosen by the test, and answers statfs from a table (a recorded tree's mount points are not
/// this machine's). Switching trees between samples plays a host whose counters move. Reads
/// allocate nothing (paths are mapped in a fixed buffer), so the allocation test can use it.
class RecordedEnv final : public HostEnv {
 public:
  static constexpr std::string_view kRoot = "/recorded/proc";

  explicit RecordedEnv(std::string tree) : tree_(std::move(tree)) {}

  /// Read from `tree` from now on (a directory under tests/data/procfs or any path). Copies
  /// into the string kept, so switching between paths of one length allocates nothing.
  void Use(const std::string& tree) { tree_.assign(tree); }
  /// Fail reads of `relative` (a path below the root: "diskstats", "1/stat") with `err`; 0
  /// reads it again.
  void FailRead(std::string relative, int err) { read_failures_[std::move(relative)] = err; }
  /// Answer statfs of `mount_point` with `stats`, or with `err` when it is not 0.
  void SetFs(std::string mount_point, FsStats stats, int err = 0) {
    fs_[std::move(mount_point)] = {stats, err};
  }

  int ReadFile(const char* path, FileBuffer* out) override { return Read(path, out, false); }
  int ReadRecord(const char* path, FileBuffer* out) override { return Read(path, out, true); }
  int ListPids(const char* path, std::vector<int32_t>* out) override {
    char mapped[PATH_MAX];
    if (!Map(path, mapped)) return ENOENT;
    return RealHostEnv()->ListPids(mapped, out);
  }
  int StatFs(const char* path, FsStats* out) override {
    auto it = fs_.find(std::string_view(path));
    if (it == fs_.end()) return ENOENT;
    if (it->second.second != 0) return it->second.second;
    *out = it->second.first;
    return 0;
  }

 private:
  int Read(const char* path, FileBuffer* out, bool record) {
    char mapped[PATH_MAX];
    if (!Map(path, mapped)) return ENOENT;
    const std::string_view p(path);
    if (p.size() > kRoot.size() + 1) {
      auto it = read_failures_.find(p.substr(kRoot.size() + 1));
      if (it != read_failures_.end() && it->second != 0) return it->second;
    }
    return record ? RealHostEnv()->ReadRecord(mapped, out) : RealHostEnv()->ReadFile(mapped, out);
  }
  // kRoot/x -> tree_/x in `out`.
  bool Map(const char* path, char (&out)[PATH_MAX]) const {
    const std::string_view p(path);
    if (p.substr(0, kRoot.size()) != kRoot) return false;
    const std::string_view rest = p.substr(kRoot.size());
    if (tree_.size() + rest.size() + 1 > sizeof(out)) return false;
    std::memcpy(out, tree_.data(), tree_.size());
    std::memcpy(out + tree_.size(), rest.data(), rest.size());
    out[tree_.size() + rest.size()] = '\0';
    return true;
  }

  std::string tree_;
  std::map<std::string, int, std::less<>> read_failures_;
  std::map<std::string, std::pair<FsStats, int>, std::less<>> fs_;
};

/// Return the value of the row (metric, labels) of `batch`, or nullopt when it has none.
/// `labels` is the labels column's exact text, e.g. R"({"mode":"user"})".
inline std::optional<double> ValueOf(const Batch& batch, std::string_view metric,
                                     std::string_view labels = "{}") {
  const Column* m = batch.GetColumn("metric");
  const Column* l = batch.GetColumn("labels");
  const Column* v = batch.GetColumn("value");
  for (int64_t r = 0; r < batch.num_rows(); ++r) {
    if (m->GetView(r) == metric && l->GetView(r) == labels) return v->GetFloat64(r);
  }
  return std::nullopt;
}

/// Return how many rows of `batch` have `metric`.
inline int64_t RowsOf(const Batch& batch, std::string_view metric) {
  const Column* m = batch.GetColumn("metric");
  int64_t n = 0;
  for (int64_t r = 0; r < batch.num_rows(); ++r) n += m->GetView(r) == metric ? 1 : 0;
  return n;
}

/// Return the error column of collector `name`'s collector_success row ("" when null or
/// absent).
inline std::string ErrorOf(const Batch& batch, std::string_view name) {
  const Column* m = batch.GetColumn("metric");
  const Column* l = batch.GetColumn("labels");
  const Column* e = batch.GetColumn("error");
  const std::string labels = R"({"collector":")" + std::string(name) + "\"}";
  for (int64_t r = 0; r < batch.num_rows(); ++r) {
    if (m->GetView(r) == "collector_success" && l->GetView(r) == labels) {
      return e->IsNull(r) ? "" : std::string(e->GetView(r));
    }
  }
  return "";
}

}  // namespace sluice::procfs::testing
