// The collectors of devices: disk (/proc/diskstats), network (/proc/net/dev) and filesystem
// (/proc/mounts and statfs).

#include <climits>

#include "sluice/connectors/procfs/collectors.h"
#include "sluice/connectors/procfs/collectors_internal.h"

namespace sluice::procfs {

using internal::DeviceHistory;
using internal::HasPrefix;
using internal::KeptFile;
using internal::RateOf;
using internal::ReadOrFail;

namespace {

// /proc/diskstats counts 512-byte sectors whatever the device's own sector size.
constexpr double kSectorBytes = 512;

class DiskCollector final : public Collector {
 public:
  explicit DiskCollector(const CollectorConfig& c)
      : env_(c.env), path_(c.root + "/diskstats"), exclude_(c.disk_exclude) {}

  std::string_view name() const override { return "disk"; }

  Outcome Collect(int64_t now_us, SampleRows* out, Failure* why) override {
    if (ReadOrFail(env_, path_, &file_, &buf_, why) != 0) return Outcome::kFailed;
    if (!ParseDiskStats(buf_.view(), &disks_, why)) {
      why->Prefix(path_);
      return Outcome::kFailed;
    }
    const double seconds = static_cast<double>(now_us - prev_us_) / 1e6;
    history_.Begin();
    for (const DiskLine& d : disks_) {
      if (HasPrefix(d.name, exclude_)) continue;
      const std::initializer_list<Label> labels = {{"device", d.name}};
      const auto add = [&](std::string_view metric, double v) { out->Add(metric, v, labels); };
      add("disk_reads_total", static_cast<double>(d.reads));
      add("disk_writes_total", static_cast<double>(d.writes));
      add("disk_read_bytes_total", static_cast<double>(d.sectors_read) * kSectorBytes);
      add("disk_written_bytes_total", static_cast<double>(d.sectors_written) * kSectorBytes);
      add("disk_read_seconds_total", static_cast<double>(d.read_ms) / 1e3);
      add("disk_write_seconds_total", static_cast<double>(d.write_ms) / 1e3);
      add("disk_io_seconds_total", static_cast<double>(d.io_ms) / 1e3);
      add("disk_io_in_progress", static_cast<double>(d.in_progress));
      add("disk_discards_total", static_cast<double>(d.discards));
      add("disk_flushes_total", static_cast<double>(d.flushes));
      const auto* before =
          history_.Record(d.name, {d.reads, d.writes, d.sectors_read, d.sectors_written, d.io_ms});
      if (!has_prev_ || before == nullptr) continue;
      const auto& p = before->values;
      double rate = 0;
      if (RateOf(p[0], d.reads, seconds, &rate)) add("disk_reads_per_second", rate);
      if (RateOf(p[1], d.writes, seconds, &rate)) add("disk_writes_per_second", rate);
      if (RateOf(p[2], d.sectors_read, seconds, &rate)) {
        add("disk_read_bytes_per_second", rate * kSectorBytes);
      }
      if (RateOf(p[3], d.sectors_written, seconds, &rate)) {
        add("disk_written_bytes_per_second", rate * kSectorBytes);
      }
      // Milliseconds with I/O in flight per second of wall time: the share of time busy.
      if (RateOf(p[4], d.io_ms, seconds, &rate)) add("disk_busy_ratio", std::min(rate / 1e3, 1.0));
    }
    history_.Commit();
    prev_us_ = now_us;
    has_prev_ = true;
    return Outcome::kOk;
  }

 private:
  HostEnv* env_;
  std::string path_;
  KeptFile file_;
  std::vector<std::string> exclude_;
  FileBuffer buf_;
  std::vector<DiskLine> disks_;
  DeviceHistory<5> history_;
  int64_t prev_us_ = 0;
  bool has_prev_ = false;
};

class NetworkCollector final : public Collector {
 public:
  explicit NetworkCollector(const CollectorConfig& c) : env_(c.env), path_(c.root + "/net/dev") {}

  std::string_view name() const override { return "network"; }

  Outcome Collect(int64_t now_us, SampleRows* out, Failure* why) override {
    if (ReadOrFail(env_, path_, &file_, &buf_, why) != 0) return Outcome::kFailed;
    if (!ParseNetDev(buf_.view(), &devices_, why)) {
      why->Prefix(path_);
      return Outcome::kFailed;
    }
    const double seconds = static_cast<double>(now_us - prev_us_) / 1e6;
    history_.Begin();
    for (const NetLine& d : devices_) {
      const std::initializer_list<Label> labels = {{"device", d.name}};
      const auto add = [&](std::string_view metric, double v) { out->Add(metric, v, labels); };
      add("network_receive_bytes_total", static_cast<double>(d.rx_bytes));
      add("network_transmit_bytes_total", static_cast<double>(d.tx_bytes));
      add("network_receive_packets_total", static_cast<double>(d.rx_packets));
      add("network_transmit_packets_total", static_cast<double>(d.tx_packets));
      add("network_receive_errors_total", static_cast<double>(d.rx_errors));
      add("network_transmit_errors_total", static_cast<double>(d.tx_errors));
      add("network_receive_drops_total", static_cast<double>(d.rx_drops));
      add("network_transmit_drops_total", static_cast<double>(d.tx_drops));
      const auto* before =
          history_.Record(d.name, {d.rx_bytes, d.tx_bytes, d.rx_packets, d.tx_packets});
      if (!has_prev_ || before == nullptr) continue;
      const auto& p = before->values;
      double rate = 0;
      if (RateOf(p[0], d.rx_bytes, seconds, &rate)) add("network_receive_bytes_per_second", rate);
      if (RateOf(p[1], d.tx_bytes, seconds, &rate)) add("network_transmit_bytes_per_second", rate);
      if (RateOf(p[2], d.rx_packets, seconds, &rate)) {
        add("network_receive_packets_per_second", rate);
      }
      if (RateOf(p[3], d.tx_packets, seconds, &rate)) {
        add("network_transmit_packets_per_second", rate);
      }
    }
    history_.Commit();
    prev_us_ = now_us;
    has_prev_ = true;
    return Outcome::kOk;
  }

 private:
  HostEnv* env_;
  std::string path_;
  KeptFile file_;
  FileBuffer buf_;
  std::vector<NetLine> devices_;
  DeviceHistory<4> history_;
  int64_t prev_us_ = 0;
  bool has_prev_ = false;
};

/// Return true when `path` is one of `roots` or below one.
bool UnderAny(std::string_view path, const std::vector<std::string>& roots) {
  for (const std::string& r : roots) {
    if (path.substr(0, r.size()) != r) continue;
    if (path.size() == r.size() || path[r.size()] == '/' || (!r.empty() && r.back() == '/')) {
      return true;
    }
  }
  return false;
}

class FilesystemCollector final : public Collector {
 public:
  explicit FilesystemCollector(const CollectorConfig& c)
      : env_(c.env),
        path_(c.root + "/mounts"),
        types_exclude_(c.fs_types_exclude),
        mount_points_exclude_(c.mount_points_exclude) {}

  std::string_view name() const override { return "filesystem"; }

  // A mount point listed twice (mounted over itself) is reported once, as its last mount is
  // the one statfs sees. A mount statfs refuses (gone, or not ours to see) is reported with
  // filesystem_device_error 1 and no figures; it does not fail the others.
  Outcome Collect(int64_t now_us, SampleRows* out, Failure* why) override {
    if (ReadOrFail(env_, path_, &file_, &buf_, why) != 0) return Outcome::kFailed;
    if (!ParseMounts(buf_.view(), &mounts_, why)) {
      why->Prefix(path_);
      return Outcome::kFailed;
    }
    for (size_t i = 0; i < mounts_.size(); ++i) {
      const MountLine& m = mounts_[i];
      char point[PATH_MAX];
      const int64_t size = DecodeMountField(m.mount_point, point, sizeof(point));
      if (size < 0) continue;  // longer than a path can be
      const std::string_view mp(point, static_cast<size_t>(size));
      if (HasType(m.fs_type) || UnderAny(mp, mount_points_exclude_) || MountedAgainLater(i)) {
        continue;
      }
      char device[PATH_MAX];
      const int64_t device_size = DecodeMountField(m.device, device, sizeof(device));
      const std::string_view dev =
          device_size < 0 ? m.device : std::string_view(device, static_cast<size_t>(device_size));
      const std::initializer_list<Label> labels = {
          {"device", dev}, {"fstype", m.fs_type}, {"mountpoint", mp}};
      FsStats st;
      if (env_->StatFs(point, &st) != 0) {
        out->Add("filesystem_device_error", 1, labels);
        continue;
      }
      out->Add("filesystem_device_error", 0, labels);
      out->Add("filesystem_size_bytes", static_cast<double>(st.size_bytes), labels);
      out->Add("filesystem_free_bytes", static_cast<double>(st.free_bytes), labels);
      out->Add("filesystem_available_bytes", static_cast<double>(st.available_bytes), labels);
      out->Add("filesystem_files", static_cast<double>(st.files), labels);
      out->Add("filesystem_files_free", static_cast<double>(st.files_free), labels);
      out->Add("filesystem_readonly", st.readonly || m.readonly ? 1 : 0, labels);
      // Used as df counts it: of the blocks a user could have (used + available).
      const uint64_t used = st.size_bytes > st.free_bytes ? st.size_bytes - st.free_bytes : 0;
      const double room = static_cast<double>(used) + static_cast<double>(st.available_bytes);
      if (room > 0) out->Add("filesystem_used_ratio", static_cast<double>(used) / room, labels);
    }
    return Outcome::kOk;
  }

 private:
  bool HasType(std::string_view type) const {
    for (const std::string& t : types_exclude_) {
      if (t == type) return true;
    }
    return false;
  }
  // Whether a later line mounts on the same point (the same raw field: the same path).
  bool MountedAgainLater(size_t i) const {
    for (size_t j = i + 1; j < mounts_.size(); ++j) {
      if (mounts_[j].mount_point == mounts_[i].mount_point) return true;
    }
    return false;
  }

  HostEnv* env_;
  std::string path_;
  KeptFile file_;
  std::vector<std::string> types_exclude_;
  std::vector<std::string> mount_points_exclude_;
  FileBuffer buf_;
  std::vector<MountLine> mounts_;
};

}  // namespace

std::unique_ptr<Collector> MakeDiskCollector(const CollectorConfig& config) {
  return std::make_unique<DiskCollector>(config);
}
std::unique_ptr<Collector> MakeNetworkCollector(const CollectorConfig& config) {
  return std::make_unique<NetworkCollector>(config);
}
std::unique_ptr<Collector> MakeFilesystemCollector(const CollectorConfig& config) {
  return std::make_unique<FilesystemCollector>(config);
}

}  // namespace sluice::procfs
