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

/// Read `path` into `buf`; on failure set `why` to "<path>: <reason>" and return the errno.
inline int ReadOrFail(HostEnv* env, const std::string& path, FileBuffer* buf, Failure* why) {
  const int err = env->ReadFile(path.c_str(), buf);
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
