// The collectors keep /proc files open from one sample to the next (HostEnv::Keep) on the
// real host: what they read through them is made anew each sample, a process that ends has
// its file closed, and a recorded tree (regular files) is read by path every time.

#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <ctime>
#include <map>
#include <string>
#include <vector>

#include "sluice/connectors/procfs/procfs_test_util.h"
#include "sluice/connectors/procfs/sampler.h"

namespace sluice::procfs {
namespace {

using testing::TreePath;

/// Return the files this process has open: the path each descriptor names, and the
/// descriptor.
std::multimap<std::string, int> OpenFiles() {
  std::multimap<std::string, int> files;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return files;
  const int own = ::dirfd(dir);
  while (const dirent* e = ::readdir(dir)) {
    if (e->d_name[0] == '.' || std::stoi(e->d_name) == own) continue;
    char target[4096];
    const std::string link = std::string("/proc/self/fd/") + e->d_name;
    const ssize_t n = ::readlink(link.c_str(), target, sizeof(target) - 1);
    if (n > 0) files.emplace(std::string(target, static_cast<size_t>(n)), std::stoi(e->d_name));
  }
  ::closedir(dir);
  return files;
}

/// Return how many open files are some process's /proc/[pid]/`file`.
size_t OpenPidFiles(const std::string& file) {
  size_t n = 0;
  for (const auto& [f, fd] : OpenFiles()) {
    const std::string_view v(f);
    if (v.size() > 7 + file.size() && v.substr(0, 6) == "/proc/" && v[6] >= '0' && v[6] <= '9' &&
        v.substr(v.size() - file.size() - 1) == "/" + file) {
      ++n;
    }
  }
  return n;
}

/// Return how many /proc/[pid]/stat files the process collector keeps when it has counted
/// `counted` processes: all, up to a quarter of the descriptors this process may have.
double KeptFor(double counted) {
  struct rlimit files;
  if (::getrlimit(RLIMIT_NOFILE, &files) != 0) return std::min(counted, 256.0);
  const rlim_t most =
      files.rlim_cur == RLIM_INFINITY ? 16384 : std::min<rlim_t>(files.rlim_cur / 4, 16384);
  return std::min(counted, static_cast<double>(most));
}

/// Return the value of the row (metric, labels containing `label_part`) of `collector`'s last
/// rows, or -1 when there is none.
double RowValue(const Sampler& s, std::string_view collector, std::string_view metric,
                std::string_view label_part) {
  for (const auto& r : s.results()) {
    if (r->name != collector) continue;
    for (size_t i = 0; i < r->rows.size(); ++i) {
      const SampleRows::Row& row = r->rows.row(i);
      if (row.metric == metric && r->rows.labels(row).find(label_part) != std::string_view::npos) {
        return row.value;
      }
    }
  }
  return -1;
}

/// Return the sum of `collector`'s rows of `metric`.
double RowSum(const Sampler& s, std::string_view collector, std::string_view metric) {
  double sum = 0;
  for (const auto& r : s.results()) {
    if (r->name != collector) continue;
    for (size_t i = 0; i < r->rows.size(); ++i) {
      if (r->rows.row(i).metric == metric) sum += r->rows.row(i).value;
    }
  }
  return sum;
}

/// Use `cpu_ms` of CPU time on this thread.
void BurnCpu(int64_t cpu_ms) {
  const auto now = [] {
    timespec t{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return static_cast<int64_t>(t.tv_sec) * 1000 + t.tv_nsec / 1'000'000;
  };
  volatile uint64_t x = 0;
  for (const int64_t start = now(); now() - start < cpu_ms;) {
    for (int i = 0; i < 100000; ++i) x = x + static_cast<uint64_t>(i);
  }
}

std::unique_ptr<Sampler> HostSampler(std::string root, std::vector<std::string> collectors) {
  // Room to keep every file of a busy host: the soft limit of descriptors raised to the hard.
  struct rlimit files;
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = std::min<rlim_t>(files.rlim_max, 1 << 20);
    EXPECT_EQ(::setrlimit(RLIMIT_NOFILE, &files), 0);
  }
  SamplerOptions o;
  o.collectors = std::move(collectors);
  o.config.root = std::move(root);
  o.config.top_processes = 100000;  // every process by name, this one included
  auto s = Sampler::Make(std::move(o));
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return std::move(*s);
}

TEST(ProcfsKeptFiles, KeptFilesAreReadAnewEachSample) {
  auto s = HostSampler("/proc", {});
  s->Collect(0);
  const std::string self = "/proc/" + std::to_string(::getpid());
  // Each collector's file, kept once (net/dev and mounts name this process's own).
  const std::map<std::string_view, std::vector<std::string>> files = {
      {"cpu", {"/proc/stat"}},
      {"memory", {"/proc/meminfo"}},
      {"load", {"/proc/loadavg"}},
      {"pressure", {"/proc/pressure/cpu", "/proc/pressure/io", "/proc/pressure/memory"}},
      {"disk", {"/proc/diskstats"}},
      {"network", {self + "/net/dev"}},
      {"filesystem", {self + "/mounts"}},
      {"processes", {self + "/stat", self + "/status"}}};  // status: reported by name
  const auto open = OpenFiles();
  std::map<std::string, int> kept;  // path -> descriptor
  for (const auto& r : s->results()) {
    if (r->outcome == Outcome::kAbsent) continue;  // no /proc/pressure on this kernel
    ASSERT_EQ(r->outcome, Outcome::kOk) << r->name << ": " << r->failure.message();
    for (const std::string& f : files.at(r->name)) {
      EXPECT_EQ(open.count(f), 1u) << f << " is not kept open once";
      if (open.count(f) == 1) kept[f] = open.find(f)->second;
    }
  }
  const std::string pid_label = "\"pid\":\"" + std::to_string(::getpid()) + "\"";
  const double own_before = RowValue(*s, "processes", "process_cpu_seconds_total", pid_label);
  const double host_before = RowSum(*s, "cpu", "cpu_seconds_total");
  ASSERT_GE(own_before, 0);
  BurnCpu(200);  // 20 ticks of USER_HZ 100
  s->Collect(1'000'000);
  for (const auto& r : s->results()) {
    if (r->outcome != Outcome::kAbsent) {
      ASSERT_EQ(r->outcome, Outcome::kOk) << r->name;
    }
  }
  EXPECT_GT(RowValue(*s, "processes", "process_cpu_seconds_total", pid_label), own_before);
  EXPECT_GT(RowSum(*s, "cpu", "cpu_seconds_total"), host_before);
  const auto after = OpenFiles();
  for (const auto& [f, fd] : kept) {
    EXPECT_EQ(after.count(f), 1u) << f;
    if (after.count(f) == 1) {
      EXPECT_EQ(after.find(f)->second, fd) << f << " was opened again";
    }
  }
}

TEST(ProcfsKeptFiles, EveryProcessCountedIsKeptAndAnEndedOneIsClosed) {
  auto s = HostSampler("/proc", {"processes"});
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    for (;;) ::pause();
  }
  const std::string child_stat = "/proc/" + std::to_string(child) + "/stat";
  const std::string child_status = "/proc/" + std::to_string(child) + "/status";
  const std::string child_label = "\"pid\":\"" + std::to_string(child) + "\"";
  s->Collect(0);
  ASSERT_EQ(s->results()[0]->outcome, Outcome::kOk);
  EXPECT_EQ(OpenFiles().count(child_stat), 1u);
  EXPECT_EQ(OpenFiles().count(child_status), 1u);
  EXPECT_GE(RowValue(*s, "processes", "process_threads", child_label), 1);
  // Each process read is counted by its state and its file kept (a process that ended
  // between the listing and the read is neither).
  EXPECT_EQ(static_cast<double>(OpenPidFiles("stat")),
            KeptFor(RowSum(*s, "processes", "processes")));

  ASSERT_EQ(::kill(child, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  s->Collect(1'000'000);
  ASSERT_EQ(s->results()[0]->outcome, Outcome::kOk);
  EXPECT_EQ(OpenFiles().count(child_stat), 0u) << "the ended process's stat is still open";
  EXPECT_EQ(OpenFiles().count(child_status), 0u) << "the ended process's status is still open";
  EXPECT_EQ(RowValue(*s, "processes", "process_threads", child_label), -1);
  EXPECT_EQ(static_cast<double>(OpenPidFiles("stat")),
            KeptFor(RowSum(*s, "processes", "processes")));

  s.reset();
  EXPECT_EQ(OpenPidFiles("stat"), 0u) << "the sampler's end closes what it kept";
  EXPECT_EQ(OpenPidFiles("status"), 0u);
}

TEST(ProcfsKeptFiles, ARecordedTreeIsReadByPath) {
  // Regular files may be rewritten or replaced between samples: none is kept.
  const std::string tree = TreePath("a");
  auto s = HostSampler(tree, {"cpu", "memory", "load", "processes"});
  s->Collect(0);
  s->Collect(1'000'000);
  for (const auto& r : s->results()) EXPECT_EQ(r->outcome, Outcome::kOk) << r->name;
  EXPECT_EQ(RowValue(*s, "memory", "memory_used_bytes", ""), 1103806464);
  for (const auto& [f, fd] : OpenFiles()) {
    EXPECT_NE(f.compare(0, tree.size(), tree), 0) << f << " is kept open";
  }
}

}  // namespace
}  // namespace sluice::procfs
