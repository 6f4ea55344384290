#include "sluice/connectors/procfs/parsers.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "sluice/connectors/procfs/procfs_test_util.h"
#include "sluice/connectors/procfs/sample_rows.h"

namespace sluice::procfs {
namespace {

using ::testing::HasSubstr;
using testing::TreePath;

/// The text of a recorded file, kept alive for the views parsers return.
class Recorded {
 public:
  explicit Recorded(const std::string& relative) {
    const std::string path = TreePath(relative);
    EXPECT_EQ(RealHostEnv()->ReadFile(path.c_str(), &buf_), 0) << path;
  }
  std::string_view text() const { return buf_.view(); }

 private:
  FileBuffer buf_;
};

TEST(ProcfsParsers, StatOfTheRecordedHost) {
  Recorded f("a/stat");
  StatFile s;
  Failure why;
  ASSERT_TRUE(ParseStat(f.text(), &s, &why)) << why.message();
  EXPECT_EQ(s.total.user, 3743200u);
  EXPECT_EQ(s.total.nice, 36775u);
  EXPECT_EQ(s.total.system, 565650u);
  EXPECT_EQ(s.total.idle, 2824869u);
  EXPECT_EQ(s.total.iowait, 28282u);
  EXPECT_EQ(s.total.irq, 0u);
  EXPECT_EQ(s.total.softirq, 10549u);
  EXPECT_EQ(s.total.steal, 5750u);
  ASSERT_EQ(s.cpus.size(), 2u);
  EXPECT_EQ(s.cpus[0].first, 0);
  EXPECT_EQ(s.cpus[0].second.user, 1851336u);
  EXPECT_EQ(s.cpus[1].first, 1);
  EXPECT_EQ(s.cpus[1].second.system, 298913u);
  EXPECT_EQ(s.cpus[1].second.steal, 2893u);
  EXPECT_EQ(s.interrupts, 25624317u);
  EXPECT_EQ(s.context_switches, 39082196u);
  EXPECT_EQ(s.boot_time, 1796397333u);
  EXPECT_EQ(s.forks, 495191u);
  EXPECT_EQ(s.procs_running, 5u);
  EXPECT_EQ(s.procs_blocked, 0u);
  EXPECT_TRUE(s.has_context_switches && s.has_interrupts && s.has_forks && s.has_boot_time &&
              s.has_procs);
}

TEST(ProcfsParsers, StatOfAnOldKernelAndItsLimits) {
  StatFile s;
  Failure why;
  // Linux 2.4 had four CPU times and no other counters.
  ASSERT_TRUE(ParseStat("cpu 1 2 3 4\ncpu0 1 2 3 4\n", &s, &why)) << why.message();
  EXPECT_EQ(s.total.idle, 4u);
  EXPECT_EQ(s.total.iowait, 0u);
  EXPECT_FALSE(s.has_context_switches);
  // The largest 64-bit counter is a counter; one more is refused.
  ASSERT_TRUE(ParseStat("cpu 18446744073709551615 0 0 0\n", &s, &why)) << why.message();
  EXPECT_EQ(s.total.user, 18446744073709551615u);
  EXPECT_FALSE(ParseStat("cpu 18446744073709551616 0 0 0\n", &s, &why));
  EXPECT_EQ(why.message(), "line 1: a counter is out of range (more than 64 bits)");
  EXPECT_FALSE(ParseStat("cpu 1 2 3\n", &s, &why));
  EXPECT_EQ(why.message(), "line 1: 3 CPU times, expected at least 4");
  EXPECT_FALSE(ParseStat("cpu 1 2 3 -4\n", &s, &why));
  EXPECT_EQ(why.message(), "line 1: a counter is not a number");
  EXPECT_FALSE(ParseStat("cpux 1 2 3 4\ncpu 1 2 3 4\n", &s, &why));
  EXPECT_EQ(why.message(), "line 1: a CPU line must be named cpuN");
  EXPECT_FALSE(ParseStat("ctxt 5\n", &s, &why));
  EXPECT_EQ(why.message(), "no 'cpu' line");
  EXPECT_FALSE(ParseStat("cpu 1 2 3 4\nctxt 12", &s, &why));
  EXPECT_EQ(why.message(), "line 2: cut short (no newline at the end of the file)");
}

TEST(ProcfsParsers, MemInfoOfTheRecordedHost) {
  Recorded f("a/meminfo");
  std::vector<MemInfoField> fields;
  Failure why;
  ASSERT_TRUE(ParseMemInfo(f.text(), &fields, &why)) << why.message();
  ASSERT_EQ(fields.size(), 54u);
  EXPECT_EQ(fields[0].name, "MemTotal");
  EXPECT_EQ(fields[0].value, 24683792ull * 1024);
  EXPECT_TRUE(fields[0].in_bytes);
  EXPECT_EQ(fields[2].name, "MemAvailable");
  EXPECT_EQ(fields[2].value, 23605856ull * 1024);
  bool saw_hugepages = false;
  for (const auto& f : fields) {
    if (f.name != "HugePages_Total") continue;
    saw_hugepages = true;
    EXPECT_FALSE(f.in_bytes);  // a count, not kB
    EXPECT_EQ(f.value, 0u);
  }
  EXPECT_TRUE(saw_hugepages);
  // 2^64 bytes do not fit, 2^64 - 1024 do.
  ASSERT_TRUE(ParseMemInfo("MemTotal: 18014398509481983 kB\n", &fields, &why));
  EXPECT_EQ(fields[0].value, 18446744073709550592u);
  EXPECT_FALSE(ParseMemInfo("MemTotal: 18014398509481984 kB\n", &fields, &why));
  EXPECT_EQ(why.message(), "line 1: kB is out of range (more than 64 bits)");
  EXPECT_FALSE(ParseMemInfo("MemTotal: 1 MB\n", &fields, &why));
  EXPECT_EQ(why.message(), "line 1: unknown unit (expected kB)");
  EXPECT_FALSE(ParseMemInfo("MemFree: 1 kB\n", &fields, &why));
  EXPECT_EQ(why.message(), "no MemTotal line");
}

TEST(ProcfsParsers, DiskStatsOfTheRecordedHost) {
  Recorded f("a/diskstats");
  std::vector<DiskLine> disks;
  Failure why;
  ASSERT_TRUE(ParseDiskStats(f.text(), &disks, &why)) << why.message();
  ASSERT_EQ(disks.size(), 10u);  // loop0-7, vda, zram0
  const DiskLine& vda = disks[8];
  EXPECT_EQ(vda.name, "vda");
  EXPECT_EQ(vda.reads, 2378701u);
  EXPECT_EQ(vda.reads_merged, 77905u);
  EXPECT_EQ(vda.sectors_read, 59718962u);
  EXPECT_EQ(vda.read_ms, 6750372u);
  EXPECT_EQ(vda.writes, 2742530u);
  EXPECT_EQ(vda.writes_merged, 581169u);
  EXPECT_EQ(vda.sectors_written, 965796040u);
  EXPECT_EQ(vda.write_ms, 5204562u);
  EXPECT_EQ(vda.in_progress, 0u);
  EXPECT_EQ(vda.io_ms, 549976u);
  EXPECT_EQ(vda.weighted_io_ms, 12064469u);
  EXPECT_EQ(vda.discards, 418527u);
  EXPECT_EQ(vda.sectors_discarded, 613793552u);
  EXPECT_EQ(vda.flushes, 472543u);
  // A 4.x kernel's 14 fields: no discards, no flushes.
  ASSERT_TRUE(ParseDiskStats("8 0 sda 1 2 3 4 5 6 7 8 9 10 11\n", &disks, &why));
  EXPECT_EQ(disks[0].weighted_io_ms, 11u);
  EXPECT_EQ(disks[0].discards, 0u);
  EXPECT_FALSE(ParseDiskStats("8 0 sda 1 2 3 4 5 6 7 8 9 10\n", &disks, &why));
  EXPECT_EQ(why.message(), "line 1: 10 counters, expected at least 11");
}

TEST(ProcfsParsers, NetDevOfTheRecordedHost) {
  Recorded f("a/net/dev");
  std::vector<NetLine> devices;
  Failure why;
  ASSERT_TRUE(ParseNetDev(f.text(), &devices, &why)) << why.message();
  ASSERT_EQ(devices.size(), 4u);
  EXPECT_EQ(devices[0].name, "lo");
  EXPECT_EQ(devices[0].rx_bytes, 107038525996u);
  EXPECT_EQ(devices[0].rx_packets, 10108076u);
  EXPECT_EQ(devices[0].tx_bytes, 107038525996u);
  EXPECT_EQ(devices[3].name, "eth0");
  EXPECT_EQ(devices[3].rx_bytes, 277321945u);
  EXPECT_EQ(devices[3].rx_packets, 12841u);
  EXPECT_EQ(devices[3].tx_bytes, 2061282u);
  EXPECT_EQ(devices[3].tx_packets, 13362u);
  // Old kernels wrote a large counter right after the colon.
  const std::string glued = "h|\nh|\neth0:4294967296 1 2 3 0 0 0 0 5 6 7 8 0 0 0 0\n";
  ASSERT_TRUE(ParseNetDev(glued, &devices, &why)) << why.message();
  EXPECT_EQ(devices[0].rx_bytes, 4294967296u);
  EXPECT_EQ(devices[0].rx_drops, 3u);
  EXPECT_EQ(devices[0].tx_drops, 8u);
  EXPECT_FALSE(ParseNetDev("h|\nh|\neth0: 1 2\n", &devices, &why));
  EXPECT_EQ(why.message(), "line 3: 2 counters, expected 16");
  EXPECT_FALSE(ParseNetDev("eth0: 1 2\n", &devices, &why));
  EXPECT_EQ(why.message(), "line 1: not a header");
}

TEST(ProcfsParsers, MountsWithEscapes) {
  Recorded f("a/mounts");
  std::vector<MountLine> mounts;
  Failure why;
  ASSERT_TRUE(ParseMounts(f.text(), &mounts, &why)) << why.message();
  ASSERT_EQ(mounts.size(), 13u);
  EXPECT_EQ(mounts[5].device, "/dev/vda");
  EXPECT_EQ(mounts[5].mount_point, "/");
  EXPECT_EQ(mounts[5].fs_type, "ext4");
  EXPECT_FALSE(mounts[5].readonly);
  EXPECT_EQ(mounts[10].mount_point, "/mnt/my\\040disk");
  EXPECT_TRUE(mounts[10].readonly);
  char out[64];
  ASSERT_EQ(DecodeMountField(mounts[10].mount_point, out, sizeof(out)), 12);
  EXPECT_STREQ(out, "/mnt/my disk");
  ASSERT_EQ(DecodeMountField("a\\134b\\011c\\9", out, sizeof(out)), 7);
  EXPECT_EQ(std::string(out), "a\\b\tc\\9");          // \9 is no octal escape: kept
  EXPECT_EQ(DecodeMountField("abcdef", out, 6), -1);  // no room for the NUL
  EXPECT_FALSE(ParseMounts("/dev/vda /\n", &mounts, &why));
  EXPECT_EQ(why.message(), "line 1: expected device, mount point, type and options");
}

TEST(ProcfsParsers, LoadAvgAndPressure) {
  LoadAvg load;
  Failure why;
  ASSERT_TRUE(ParseLoadAvg(Recorded("a/loadavg").text(), &load, &why)) << why.message();
  EXPECT_EQ(load.load1, 3.13);
  EXPECT_EQ(load.load5, 2.74);
  EXPECT_EQ(load.load15, 2.01);
  EXPECT_EQ(load.runnable, 5u);
  EXPECT_EQ(load.threads, 123u);
  EXPECT_FALSE(ParseLoadAvg("nan 1 1 1/1 1\n", &load, &why));
  EXPECT_EQ(why.message(), "line 1: the 1-minute load is not a number");
  EXPECT_FALSE(ParseLoadAvg("1 -1 1 1/1 1\n", &load, &why));
  EXPECT_EQ(why.message(), "line 1: the 5-minute load is not a number");

  Pressure p;
  ASSERT_TRUE(ParsePressure(Recorded("a/pressure/io").text(), &p, &why)) << why.message();
  EXPECT_TRUE(p.some.present);
  EXPECT_EQ(p.some.avg10, 0.58);
  EXPECT_EQ(p.some.avg60, 0.25);
  EXPECT_EQ(p.some.avg300, 0.16);
  EXPECT_EQ(p.some.total_us, 232782922u);
  EXPECT_TRUE(p.full.present);
  EXPECT_EQ(p.full.avg10, 0.18);
  EXPECT_EQ(p.full.total_us, 174587591u);
  // Before 5.13 the cpu file had no `full` line.
  ASSERT_TRUE(ParsePressure("some avg10=1.00 avg60=2.00 avg300=3.00 total=4\n", &p, &why));
  EXPECT_FALSE(p.full.present);
  EXPECT_FALSE(ParsePressure("some avg10=1.00 total=4\n", &p, &why));
  EXPECT_EQ(why.message(), "line 1: expected avg10, avg60, avg300 and total");
  EXPECT_FALSE(ParsePressure("full avg10=1.00 avg60=2.00 avg300=3.00 total=4\n", &p, &why));
  EXPECT_EQ(why.message(), "no 'some' line");
}

TEST(ProcfsParsers, PidStatAndStatus) {
  // The views parsers return point into the text: keep it alive.
  const Recorded busy("a/8386/stat"), odd("b/4242/stat"), init("a/1/stat");
  PidStat st;
  Failure why;
  ASSERT_TRUE(ParsePidStat(busy.text(), &st, &why)) << why.message();
  EXPECT_EQ(st.pid, 8386);
  EXPECT_EQ(st.comm, "sh");
  EXPECT_EQ(st.state, 'R');
  EXPECT_EQ(st.utime, 41u);
  EXPECT_EQ(st.stime, 0u);
  EXPECT_EQ(st.threads, 1u);
  EXPECT_EQ(st.start_time, 3619993u);
  EXPECT_EQ(st.rss_pages, 402u);
  // A name with blanks and parentheses ends at the last ')'; pid 1's tty_nr is 0, tpgid -1.
  ASSERT_TRUE(ParsePidStat(odd.text(), &st, &why)) << why.message();
  EXPECT_EQ(st.comm, "my (odd) name");
  EXPECT_EQ(st.state, 'S');
  EXPECT_EQ(st.utime + st.stime, 9u);
  EXPECT_EQ(st.threads, 3u);
  EXPECT_EQ(st.rss_pages, 2560u);
  ASSERT_TRUE(ParsePidStat(init.text(), &st, &why)) << why.message();
  EXPECT_EQ(st.comm, "process_api");
  EXPECT_EQ(st.utime, 1716u);
  EXPECT_EQ(st.stime, 12152u);
  EXPECT_EQ(st.threads, 18u);
  EXPECT_FALSE(ParsePidStat("12 (x) S 1 2 3\n", &st, &why));
  EXPECT_EQ(why.message(), "line 1: 6 fields, expected at least 24");
  EXPECT_FALSE(ParsePidStat("x (x) S\n", &st, &why));
  EXPECT_EQ(why.message(), "line 1: the pid is not a positive number");

  PidStatus status;
  ASSERT_TRUE(ParsePidStatus(Recorded("b/4242/status").text(), &status, &why));
  EXPECT_EQ(status.uid, 1001);
  EXPECT_EQ(status.swap_bytes, 512u * 1024);
  ASSERT_TRUE(ParsePidStatus(Recorded("a/300/status").text(), &status, &why));
  EXPECT_EQ(status.uid, 1000);
  EXPECT_EQ(status.swap_bytes, 0u);  // a zombie has no Vm lines
  EXPECT_FALSE(ParsePidStatus("VmSwap:\t12 pages\n", &status, &why));
  EXPECT_EQ(why.message(), "line 1: VmSwap is not in kB");
}

TEST(ProcfsParsers, FailurePrefixAndCut) {
  Failure why;
  EXPECT_FALSE(why.Set("line {}: bad", 3));
  why.Prefix("/proc/stat");
  EXPECT_EQ(why.message(), "/proc/stat: line 3: bad");
  why.Set("{}", std::string(500, 'x'));
  EXPECT_EQ(why.message().size(), 240u);
}

TEST(ProcfsLabels, JsonEscapesAndBadUtf8) {
  SampleRows rows;
  rows.Add("m", 1, {{"a", "q\"b\\s\n\t\x01"}, {"b", "caf\xc3\xa9 \xff\xc3"}});
  EXPECT_EQ(
      rows.labels(rows.row(0)),
      "{\"a\":\"q\\\"b\\\\s\\n\\u0009\\u0001\",\"b\":\"caf\xc3\xa9 \xEF\xBF\xBD\xEF\xBF\xBD\"}");
  rows.Add("n", 2);
  EXPECT_EQ(rows.labels(rows.row(1)), "{}");
  // Overlong forms and surrogates are not UTF-8.
  std::string out;
  AppendJsonStringBody("\xc0\xaf\xed\xa0\x80\xf0\x9f\x98\x80", &out);
  EXPECT_EQ(out, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xf0\x9f\x98\x80");
}

}  // namespace
}  // namespace sluice::procfs
