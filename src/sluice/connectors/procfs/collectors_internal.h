#pragma once

// Helpers shared by the collectors. Private to connectors/procfs.

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/connectors/procfs/collectors.h"

namespace sluice::procfs::internal {

/// A file read once a sample, kept open from one sample to the next when the env can keep it
/// (HostEnv::Keep: a /proc file), else read by path. A kept file that fails to read is closed
/// and read by path, so a failure is always that of a read by path. Not thread-safe.
class KeptFile {
 public:
  KeptFile() = default;
  ~KeptFile() { Close(); }
  KeptFile(const KeptFile&) = delete;
  KeptFile& operator=(const KeptFile&) = delete;

  /// Read the whole of `path` into `out` as env->ReadFile does (ReadRecord with
  /// `one_record`); return 0 or the errno.
  int Read(HostEnv* env, const char* path, FileBuffer* out, bool one_record = false) {
    if (handle_ < 0 && !by_path_) {
      const int err = env->Keep(path, &handle_);
      if (err == ENOTSUP) {
        by_path_ = true;  // not a procfs file, or an env that reads by path only
      } else if (err != 0) {
        handle_ = -1;
        return err;  // the open failed as a read by path would have (tried again next time)
      } else {
        env_ = env;
      }
    }
    if (handle_ >= 0) {
      if (env->ReadKept(handle_, out, one_record) == 0) return 0;
      Close();
    }
    return one_record ? env->ReadRecord(path, out) : env->ReadFile(path, out);
  }
  /// Close the file if it is kept (the next Read opens it again).
  void Close() {
    if (handle_ >= 0) env_->Release(handle_);
    handle_ = -1;
  }
  bool kept() const { return handle_ >= 0; }

 private:
  HostEnv* env_ = nullptr;  // that kept handle_
  int handle_ = -1;
  bool by_path_ = false;
};

/// Read `path` into `buf` through `file`; on failure set `why` to "<path>: <reason>" and
/// return the errno.
inline int ReadOrFail(HostEnv* env, const std::string& path, KeptFile* file, FileBuffer* buf,
                      Failure* why) {
  const int err = file->Read(env, path.c_str(), buf);
  if (err != 0) {
    char text[128];
    why->Set("{}: {}", path, ErrnoText(err, text, sizeof(text)));
  }
  return err;
}

/// Set `*per_second` to the rate of a counter that went from `prev` to `cur` in `seconds`;
/// false when it went backwards (a reset or wrap: no rate this time).
inline bool RateOf(uint64_t prev, uint64_t cur, double seconds, double* per_second) {
  if (cur < prev || seconds <= 0) return false;
  *per_second = static_cast<double>(cur - prev) / seconds;
  return true;
}

/// Return true when `name` starts with one of `prefixes`.
inline bool HasPrefix(std::string_view name, const std::vector<std::string>& prefixes) {
  for (const std::string& p : prefixes) {
    if (name.substr(0, p.size()) == p) return true;
  }
  return false;
}

/// The counters of one device (a disk, an interface) from the last good sample, under a name
/// held in place (device names are at most 32 bytes in Linux; longer ones get no rates).
template <size_t N>
struct DeviceCounters {
  std::array<char, 48> name{};
  uint8_t name_size = 0;
  std::array<uint64_t, N> values{};

  std::string_view view() const { return {name.data(), name_size}; }
  bool Set(std::string_view n) {
    if (n.size() > name.size()) return false;
    std::memcpy(name.data(), n.data(), n.size());
    name_size = static_cast<uint8_t>(n.size());
    return true;
  }
};

/// The previous values of a set of devices, for rates. Devices usually come in the same order
/// every sample, so a lookup tries the same position first. Allocates only when the host has
/// more devices than ever before.
template <size_t N>
class DeviceHistory {
 public:
  /// Start recording this sample's values (those of the last sample stay readable).
  void Begin() { next_.clear(); }
  /// Record device `name`'s values for this sample; return the previous ones, or nullptr.
  const DeviceCounters<N>* Record(std::string_view name, const std::array<uint64_t, N>& values) {
    const size_t position = next_.size();
    next_.emplace_back();
    DeviceCounters<N>& d = next_.back();
    if (!d.Set(name)) {
      next_.pop_back();
      return nullptr;
    }
    d.values = values;
    if (position < last_.size() && last_[position].view() == name) return &last_[position];
    for (const auto& p : last_) {
      if (p.view() == name) return &p;
    }
    return nullptr;
  }
  /// Keep this sample's values for the next one (after a successful collection).
  void Commit() { std::swap(last_, next_); }

 private:
  std::vector<DeviceCounters<N>> last_, next_;
};

}  // namespace sluice::procfs::internal
