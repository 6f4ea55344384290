#include "sluice/connectors/procfs/sampler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "sluice/connectors/procfs/procfs_test_util.h"
#include "sluice/testing/matchers.h"

namespace sluice::procfs {
namespace {

using sluice::testing::StatusIs;
using testing::ErrorOf;
using ::testing::HasSubstr;
using testing::RecordedEnv;
using testing::RowsOf;
using testing::TreePath;
using testing::ValueOf;

constexpr int64_t kTs = 1'796'400'000'000'000;
constexpr int64_t kSecond = 1'000'000;

/// A sampler over RecordedEnv's root with the recorded host's units (USER_HZ 100, 4 KiB
/// pages), whatever this machine's are. The recorded mounts answer statfs from a table:
/// "/" and "/mnt/my disk" have figures, "/data" is refused.
class SamplerTest : public ::testing::Test {
 protected:
  SamplerTest() : env_(TreePath("a")) {
    env_.SetFs("/", {.size_bytes = 100'000'000'000,
                     .free_bytes = 40'000'000'000,
                     .available_bytes = 35'000'000'000,
                     .files = 6'000'000,
                     .files_free = 5'000'000,
                     .readonly = false});
    env_.SetFs("/mnt/my disk", {.size_bytes = 1000,
                                .free_bytes = 250,
                                .available_bytes = 250,
                                .files = 10,
                                .files_free = 4,
                                .readonly = false});
    env_.SetFs("/data", {}, EACCES);
  }

  std::unique_ptr<Sampler> Make(int threads = 1, std::vector<std::string> collectors = {},
                                int top = 5) {
    SamplerOptions o;
    o.threads = threads;
    o.collectors = std::move(collectors);
    o.config.root = std::string(RecordedEnv::kRoot);
    o.config.env = &env_;
    o.config.clock_ticks = 100;
    o.config.page_size = 4096;
    o.config.top_processes = top;
    auto s = Sampler::Make(std::move(o));
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return std::move(*s);
  }

  BatchPtr Sample(Sampler* s, const std::string& tree, int64_t now_us) {
    env_.Use(TreePath(tree));
    s->Collect(now_us);
    return s->ToBatch(kTs + now_us, "recorded-host");
  }

  RecordedEnv env_;
};

TEST_F(SamplerTest, FirstSampleOfTheRecordedHost) {
  auto s = Make();
  const BatchPtr b = Sample(s.get(), "a", 0);
  const Batch& x = *b;
  // Every row of every collector, counted by hand from tests/data/procfs/a (README).
  EXPECT_EQ(x.num_rows(), 212);
  EXPECT_EQ(ValueOf(x, "cpu_seconds_total", R"({"mode":"user"})"), 37432.0);
  EXPECT_EQ(ValueOf(x, "cpu_seconds_total", R"({"mode":"steal"})"), 57.5);
  EXPECT_EQ(ValueOf(x, "cpu_core_seconds_total", R"({"cpu":"1","mode":"system"})"), 2989.13);
  EXPECT_EQ(ValueOf(x, "cpus"), 2);
  EXPECT_EQ(ValueOf(x, "context_switches_total"), 39082196);
  EXPECT_EQ(ValueOf(x, "interrupts_total"), 25624317);
  EXPECT_EQ(ValueOf(x, "forks_total"), 495191);
  EXPECT_EQ(ValueOf(x, "boot_time_seconds"), 1796397333);
  EXPECT_EQ(ValueOf(x, "procs_running"), 5);
  EXPECT_EQ(ValueOf(x, "procs_blocked"), 0);

  EXPECT_EQ(ValueOf(x, "memory_bytes", R"({"field":"MemTotal"})"), 24683792.0 * 1024);
  EXPECT_EQ(ValueOf(x, "memory_bytes", R"j({"field":"Active(anon)"})j"), 142368.0 * 1024);
  EXPECT_EQ(ValueOf(x, "memory_pages", R"({"field":"HugePages_Total"})"), 0);
  EXPECT_EQ(ValueOf(x, "memory_used_bytes"), (24683792.0 - 23605856.0) * 1024);
  EXPECT_EQ(ValueOf(x, "memory_used_ratio"), 1077936.0 / 24683792.0);

  EXPECT_EQ(ValueOf(x, "load1"), 3.13);
  EXPECT_EQ(ValueOf(x, "load15"), 2.01);
  const std::string cpu_some = R"({"kind":"some","resource":"cpu"})";
  EXPECT_EQ(ValueOf(x, "pressure_stalled_seconds_total", cpu_some), 3744.947356);
  EXPECT_EQ(ValueOf(x, "pressure_avg10_ratio", cpu_some), 39.48 / 100);
  EXPECT_EQ(ValueOf(x, "pressure_avg300_ratio", R"({"kind":"full","resource":"io"})"), 0.02 / 100);

  // Loop devices and zram are left out; vda is the one disk.
  EXPECT_EQ(RowsOf(x, "disk_reads_total"), 1);
  const std::string vda = R"({"device":"vda"})";
  EXPECT_EQ(ValueOf(x, "disk_reads_total", vda), 2378701);
  EXPECT_EQ(ValueOf(x, "disk_read_bytes_total", vda), 59718962.0 * 512);
  EXPECT_EQ(ValueOf(x, "disk_written_bytes_total", vda), 965796040.0 * 512);
  EXPECT_EQ(ValueOf(x, "disk_write_seconds_total", vda), 5204.562);
  EXPECT_EQ(ValueOf(x, "disk_io_seconds_total", vda), 549.976);
  EXPECT_EQ(ValueOf(x, "disk_discards_total", vda), 418527);
  EXPECT_EQ(ValueOf(x, "disk_flushes_total", vda), 472543);

  EXPECT_EQ(RowsOf(x, "network_receive_bytes_total"), 4);
  EXPECT_EQ(ValueOf(x, "network_receive_bytes_total", R"({"device":"eth0"})"), 277321945);
  EXPECT_EQ(ValueOf(x, "network_transmit_packets_total", R"({"device":"eth0"})"), 13362);
  EXPECT_EQ(ValueOf(x, "network_transmit_bytes_total", R"({"device":"lo"})"), 107038525996);

  // Pseudo filesystems and /dev, /proc, /sys are left out; /data counts once (mounted over).
  EXPECT_EQ(RowsOf(x, "filesystem_device_error"), 3);
  const std::string root = R"({"device":"/dev/vda","fstype":"ext4","mountpoint":"/"})";
  const std::string disk = R"({"device":"/dev/vdb","fstype":"ext4","mountpoint":"/mnt/my disk"})";
  const std::string data = R"({"device":"/dev/vdd","fstype":"xfs","mountpoint":"/data"})";
  EXPECT_EQ(ValueOf(x, "filesystem_device_error", root), 0);
  EXPECT_EQ(ValueOf(x, "filesystem_size_bytes", root), 100e9);
  EXPECT_EQ(ValueOf(x, "filesystem_available_bytes", root), 35e9);
  EXPECT_EQ(ValueOf(x, "filesystem_files_free", root), 5e6);
  EXPECT_EQ(ValueOf(x, "filesystem_readonly", root), 0);
  EXPECT_EQ(ValueOf(x, "filesystem_used_ratio", root), 60e9 / 95e9);
  EXPECT_EQ(ValueOf(x, "filesystem_readonly", disk), 1);  // "ro" in the mount options
  EXPECT_EQ(ValueOf(x, "filesystem_used_ratio", disk), 0.75);
  EXPECT_EQ(ValueOf(x, "filesystem_device_error", data), 1);
  EXPECT_EQ(ValueOf(x, "filesystem_size_bytes", data), std::nullopt);

  EXPECT_EQ(ValueOf(x, "processes", R"({"state":"running"})"), 1);
  EXPECT_EQ(ValueOf(x, "processes", R"({"state":"sleeping"})"), 1);
  EXPECT_EQ(ValueOf(x, "processes", R"({"state":"zombie"})"), 1);
  EXPECT_EQ(ValueOf(x, "processes", R"({"state":"idle"})"), 0);
  EXPECT_EQ(ValueOf(x, "threads"), 20);
  EXPECT_EQ(ValueOf(x, "processes_unreadable"), 0);
  const std::string init = R"({"comm":"process_api","pid":"1","uid":"0"})";
  EXPECT_EQ(ValueOf(x, "process_resident_bytes", init), 2756.0 * 4096);
  EXPECT_EQ(ValueOf(x, "process_cpu_seconds_total", init), 138.68);
  EXPECT_EQ(ValueOf(x, "process_threads", init), 18);
  EXPECT_EQ(ValueOf(x, "process_swap_bytes", init), 0);
  EXPECT_EQ(ValueOf(x, "process_resident_bytes", R"({"comm":"defunct","pid":"300","uid":"1000"})"),
            0);

  // The first sample has no rates.
  for (const char* rate :
       {"cpu_usage_ratio", "cpu_busy_ratio", "cpu_core_usage_ratio", "context_switches_per_second",
        "disk_reads_per_second", "disk_busy_ratio", "network_receive_bytes_per_second",
        "pressure_stalled_ratio", "process_cpu_seconds_per_second"}) {
    EXPECT_EQ(RowsOf(x, rate), 0) << rate;
  }
  EXPECT_EQ(RowsOf(x, "collector_success"), 8);
  EXPECT_EQ(RowsOf(x, "collector_duration_seconds"), 8);
  for (const auto& r : s->results()) {
    EXPECT_EQ(ValueOf(x, "collector_success", R"({"collector":")" + std::string(r->name) + "\"}"),
              1);
  }
}

TEST_F(SamplerTest, RatesBetweenTwoRecordedSamples) {
  auto s = Make();
  Sample(s.get(), "a", 0);
  const BatchPtr b = Sample(s.get(), "b", kSecond);
  const Batch& x = *b;
  // cpu: user +168, system +80 ticks, nothing else moved (this VM's idle stood still).
  EXPECT_EQ(ValueOf(x, "cpu_usage_ratio", R"({"mode":"user"})"), 168.0 / 248);
  EXPECT_EQ(ValueOf(x, "cpu_usage_ratio", R"({"mode":"system"})"), 80.0 / 248);
  EXPECT_EQ(ValueOf(x, "cpu_usage_ratio", R"({"mode":"idle"})"), 0);
  EXPECT_EQ(ValueOf(x, "cpu_busy_ratio"), 1);
  EXPECT_EQ(ValueOf(x, "cpu_core_usage_ratio", R"({"cpu":"0","mode":"user"})"), 94.0 / 123);
  EXPECT_EQ(ValueOf(x, "cpu_core_usage_ratio", R"({"cpu":"1","mode":"system"})"), 51.0 / 124);
  EXPECT_EQ(ValueOf(x, "context_switches_per_second"), 1745);
  EXPECT_EQ(ValueOf(x, "interrupts_per_second"), 1042);
  EXPECT_EQ(ValueOf(x, "forks_per_second"), 175);

  const std::string vda = R"({"device":"vda"})";
  EXPECT_EQ(ValueOf(x, "disk_reads_per_second", vda), 12);
  EXPECT_EQ(ValueOf(x, "disk_writes_per_second", vda), 61);
  EXPECT_EQ(ValueOf(x, "disk_read_bytes_per_second", vda), 168.0 * 512);
  EXPECT_EQ(ValueOf(x, "disk_written_bytes_per_second", vda), 18096.0 * 512);  // dd's 8 MiB
  EXPECT_EQ(ValueOf(x, "disk_busy_ratio", vda), 0.012);

  EXPECT_EQ(ValueOf(x, "network_receive_bytes_per_second", R"({"device":"lo"})"), 4200352);
  EXPECT_EQ(ValueOf(x, "network_transmit_packets_per_second", R"({"device":"lo"})"), 116);
  EXPECT_EQ(ValueOf(x, "network_receive_bytes_per_second", R"({"device":"eth0"})"), 0);

  EXPECT_EQ(ValueOf(x, "pressure_stalled_ratio", R"({"kind":"some","resource":"cpu"})"), 0.813347);
  EXPECT_EQ(ValueOf(x, "pressure_stalled_ratio", R"({"kind":"full","resource":"io"})"), 0.000082);

  // The busy loop used 98 ticks in the second; pid 4242 is new, so it has no rate yet.
  EXPECT_EQ(ValueOf(x, "process_cpu_seconds_per_second", R"({"comm":"sh","pid":"8386","uid":"0"})"),
            0.98);
  EXPECT_EQ(
      ValueOf(x, "process_cpu_seconds_per_second", R"({"comm":"process_api","pid":"1","uid":"0"})"),
      0.01);
  const std::string odd = R"({"comm":"my (odd) name","pid":"4242","uid":"1001"})";
  EXPECT_EQ(ValueOf(x, "process_cpu_seconds_per_second", odd), std::nullopt);
  EXPECT_EQ(ValueOf(x, "process_resident_bytes", odd), 2560.0 * 4096);
  EXPECT_EQ(ValueOf(x, "process_swap_bytes", odd), 512.0 * 1024);
  EXPECT_EQ(ValueOf(x, "process_threads", odd), 3);
  EXPECT_EQ(ValueOf(x, "processes", R"({"state":"sleeping"})"), 2);
  EXPECT_EQ(ValueOf(x, "threads"), 23);
  EXPECT_EQ(RowsOf(x, "process_cpu_seconds_per_second"), 3);  // sh, process_api, defunct
}

TEST_F(SamplerTest, CountersGoingBackwardsGiveNoRate) {
  auto s = Make();
  Sample(s.get(), "b", 0);
  const BatchPtr x = Sample(s.get(), "a", kSecond);  // the counters that moved are lower
  for (const char* rate : {"cpu_usage_ratio", "cpu_core_usage_ratio", "context_switches_per_second",
                           "disk_reads_per_second", "disk_written_bytes_per_second"}) {
    EXPECT_EQ(RowsOf(*x, rate), 0) << rate;
  }
  EXPECT_EQ(ValueOf(*x, "network_receive_bytes_per_second", R"({"device":"lo"})"), std::nullopt);
  EXPECT_EQ(ValueOf(*x, "pressure_stalled_ratio", R"({"kind":"some","resource":"cpu"})"),
            std::nullopt);
  // Counters that stood still have a rate of 0.
  EXPECT_EQ(ValueOf(*x, "network_receive_bytes_per_second", R"({"device":"eth0"})"), 0);
  EXPECT_EQ(ValueOf(*x, "pressure_stalled_ratio", R"({"kind":"full","resource":"cpu"})"), 0);
  EXPECT_EQ(ValueOf(*x, "process_cpu_seconds_per_second",
                    R"({"comm":"defunct","pid":"300","uid":"1000"})"),
            0);
  EXPECT_EQ(RowsOf(*x, "process_cpu_seconds_per_second"), 1);
}

TEST_F(SamplerTest, AFailingCollectorIsReportedAndTheSampleGoesOn) {
  env_.FailRead("diskstats", EACCES);
  env_.FailRead("pressure/io", EIO);
  auto s = Make(/*threads=*/2);
  const BatchPtr x = Sample(s.get(), "a", 0);
  EXPECT_EQ(ValueOf(*x, "collector_success", R"({"collector":"disk"})"), 0);
  EXPECT_EQ(ErrorOf(*x, "disk"), "/recorded/proc/diskstats: Permission denied");
  EXPECT_EQ(ValueOf(*x, "collector_success", R"({"collector":"pressure"})"), 0);
  EXPECT_EQ(ErrorOf(*x, "pressure"), "/recorded/proc/pressure/io: Input/output error");
  EXPECT_EQ(RowsOf(*x, "disk_reads_total"), 0);
  EXPECT_EQ(RowsOf(*x, "pressure_avg10_ratio"), 0);  // cpu's and memory's were read: dropped
  EXPECT_EQ(ValueOf(*x, "collector_success", R"({"collector":"cpu"})"), 1);
  EXPECT_EQ(ErrorOf(*x, "cpu"), "");
  EXPECT_EQ(ValueOf(*x, "load1"), 3.13);
  EXPECT_EQ(x->num_rows(), 212 - 10 - 24);
  const auto& results = s->results();
  EXPECT_EQ(results[4]->name, "disk");
  EXPECT_EQ(results[4]->failures, 1);
  EXPECT_EQ(results[0]->failures, 0);

  // Once the file is readable again, the collector's first good sample has no rates yet.
  env_.FailRead("diskstats", 0);
  const BatchPtr y = Sample(s.get(), "b", kSecond);
  EXPECT_EQ(ValueOf(*y, "collector_success", R"({"collector":"disk"})"), 1);
  EXPECT_EQ(ValueOf(*y, "disk_reads_total", R"({"device":"vda"})"), 2378713);
  EXPECT_EQ(RowsOf(*y, "disk_reads_per_second"), 0);
  EXPECT_EQ(RowsOf(*y, "cpu_usage_ratio"), 8);  // cpu had its first sample in x
  const BatchPtr z = Sample(s.get(), "a", 2 * kSecond);
  EXPECT_EQ(results[4]->failures, 1);
  EXPECT_EQ(ValueOf(*z, "collector_success", R"({"collector":"disk"})"), 1);
}

struct MalformedCase {
  const char* tree;
  std::map<std::string, std::string> errors;  // collector -> message ("": succeeds)
};

TEST_F(SamplerTest, MalformedTreesFailTheirCollectorsWithTheLine) {
  const auto at = [](const char* file, int line, const std::string& what) {
    return fmt::format("/recorded/proc/{}: line {}: {}", file, line, what);
  };
  const std::string cut_short = "cut short (no newline at the end of the file)";
  const std::string too_big = "is out of range (more than 64 bits)";
  const MalformedCase cases[] = {
      {"truncated",
       {{"cpu", at("stat", 3, cut_short)},
        {"memory", at("meminfo", 3, cut_short)},
        {"load", at("loadavg", 1, cut_short)},
        {"pressure", at("pressure/cpu", 1, cut_short)},
        {"disk", at("diskstats", 9, cut_short)},
        {"network", at("net/dev", 6, cut_short)},
        {"filesystem", at("mounts", 6, cut_short)},
        {"processes", at("1/stat", 1, cut_short)}}},
      {"huge",
       {{"cpu", at("stat", 3, "a counter " + too_big)},
        {"memory", at("meminfo", 2, "kB " + too_big)},
        {"load", at("loadavg", 1, "the 1-minute load is out of range")},
        {"pressure", at("pressure/cpu", 1, "total " + too_big)},
        {"disk", at("diskstats", 9, "a counter " + too_big)},
        {"network", at("net/dev", 6, "a counter " + too_big)},
        {"filesystem", ""},
        {"processes", at("1/stat", 1, "a field " + too_big)}}},
      {"missing",
       {{"cpu", at("stat", 3, "3 CPU times, expected at least 4")},
        {"memory", at("meminfo", 4, "the value is missing")},
        {"load", at("loadavg", 1, "the 15-minute load is missing")},
        {"disk", "/recorded/proc/diskstats: No such file or directory"},
        {"network", at("net/dev", 6, "4 counters, expected 16")},
        {"filesystem", at("mounts", 12, "expected device, mount point, type and options")},
        {"processes", at("1/stat", 1, "5 fields, expected at least 24")}}},
  };
  for (const MalformedCase& c : cases) {
    SCOPED_TRACE(c.tree);
    auto s = Make(/*threads=*/3);
    const BatchPtr x = Sample(s.get(), c.tree, 0);
    for (const auto& [collector, message] : c.errors) {
      EXPECT_EQ(ValueOf(*x, "collector_success", R"({"collector":")" + collector + "\"}"),
                message.empty() ? 1 : 0)
          << collector;
      EXPECT_EQ(ErrorOf(*x, collector), message) << collector;
    }
    // A collector whose files are absent (no /proc/pressure) makes no rows at all.
    EXPECT_EQ(RowsOf(*x, "collector_success"), static_cast<int64_t>(c.errors.size()));
  }
}

TEST_F(SamplerTest, BatchLayout) {
  auto s = Make();
  const BatchPtr x = Sample(s.get(), "a", 0);
  ASSERT_EQ(x->schema()->ToString(), Sampler::Schema()->ToString());
  const auto& f = x->schema()->fields();
  ASSERT_EQ(f.size(), 6u);
  EXPECT_EQ(f[0].name, "ts");
  EXPECT_EQ(f[0].type, TypeId::kTimestamp);
  EXPECT_EQ(f[3].name, "labels");
  EXPECT_EQ(f[3].type, TypeId::kJson);
  EXPECT_EQ(f[5].name, "error");
  EXPECT_TRUE(f[5].nullable);
  for (int64_t r = 0; r < x->num_rows(); ++r) {
    EXPECT_EQ(x->column(0).GetInt64(r), kTs);
    EXPECT_EQ(x->column(1).GetView(r), "recorded-host");
    const auto labels = nlohmann::json::parse(x->column(3).GetView(r));
    ASSERT_TRUE(labels.is_object());
    for (const auto& [k, v] : labels.items()) EXPECT_TRUE(v.is_string()) << k;
    EXPECT_TRUE(x->column(5).IsNull(r));
  }
  EXPECT_EQ(HostName(std::string(RecordedEnv::kRoot), &env_), "recorded-host");
}

TEST_F(SamplerTest, HelperThreadsMakeTheSameRows) {
  auto one = Make(1), four = Make(4);
  std::string rows[2];
  for (int k = 0; k < 2; ++k) {
    Sampler* s = k == 0 ? one.get() : four.get();
    for (int i = 0; i < 5; ++i) {
      const BatchPtr x = Sample(s, i % 2 == 0 ? "a" : "b", i * kSecond);
      const Column& metric = x->column(2);
      rows[k].clear();
      for (int64_t r = 0; r < x->num_rows(); ++r) {
        if (metric.GetView(r) == "collector_duration_seconds") continue;
        rows[k] += fmt::format("{} {} {}\n", metric.GetView(r), x->column(3).GetView(r),
                               x->column(4).GetFloat64(r));
      }
    }
  }
  EXPECT_EQ(rows[0], rows[1]);
  EXPECT_THAT(rows[0], HasSubstr("process_cpu_seconds_per_second"));
}

TEST_F(SamplerTest, ChosenCollectorsAndTopProcesses) {
  auto s = Make(1, {"processes", "cpu"}, /*top=*/1);
  ASSERT_EQ(s->results().size(), 2u);
  EXPECT_EQ(s->results()[0]->name, "cpu");  // in CollectorNames() order
  EXPECT_EQ(s->results()[1]->name, "processes");
  const BatchPtr a = Sample(s.get(), "a", 0);
  // No CPU rates yet: the top 1 by memory only.
  EXPECT_EQ(RowsOf(*a, "process_resident_bytes"), 1);
  EXPECT_EQ(ValueOf(*a, "process_threads", R"({"comm":"process_api","pid":"1","uid":"0"})"), 18);
  const BatchPtr b = Sample(s.get(), "b", kSecond);
  EXPECT_EQ(RowsOf(*b, "process_resident_bytes"), 2);  // the busy loop by CPU, pid 1 by memory
  EXPECT_EQ(ValueOf(*b, "process_threads", R"({"comm":"sh","pid":"8386","uid":"0"})"), 1);

  SamplerOptions bad;
  bad.collectors = {"cpu", "disks"};
  EXPECT_THAT(Sampler::Make(bad),
              StatusIs(StatusCode::kInvalidArgument,
                       HasSubstr("unknown collector 'disks' (collectors: cpu, memory, load, "
                                 "pressure, disk, network, filesystem, processes)")));
}

}  // namespace
}  // namespace sluice::procfs
