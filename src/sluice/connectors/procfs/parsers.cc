#include "sluice/connectors/procfs/parsers.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

namespace sluice::procfs {

namespace {

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

/// The lines of a file, each without its newline. Every line must end with one: /proc writes
/// whole lines, so text without a final newline was cut short.
class Lines {
 public:
  explicit Lines(std::string_view text) : rest_(text) {}
  /// Take the next line; false at the end, or (with `why` set) at a line cut short.
  bool Next(std::string_view* line, Failure* why) {
    if (rest_.empty()) return false;
    ++number_;
    const size_t nl = rest_.find('\n');
    if (nl == std::string_view::npos) {
      why->Set("line {}: cut short (no newline at the end of the file)", number_);
      rest_ = {};
      cut_ = true;
      return false;
    }
    *line = rest_.substr(0, nl);
    rest_.remove_prefix(nl + 1);
    return true;
  }
  int number() const { return number_; }
  /// Return true when Next stopped at a line cut short (rather than at the end).
  bool cut() const { return cut_; }

 private:
  std::string_view rest_;
  int number_ = 0;
  bool cut_ = false;
};

/// The blank-separated fields of one line.
class Fields {
 public:
  explicit Fields(std::string_view line) : rest_(line) {}
  bool Next(std::string_view* field) {
    size_t i = 0;
    while (i < rest_.size() && (rest_[i] == ' ' || rest_[i] == '\t')) ++i;
    if (i == rest_.size()) {
      rest_ = {};
      return false;
    }
    size_t j = i;
    while (j < rest_.size() && rest_[j] != ' ' && rest_[j] != '\t') ++j;
    *field = rest_.substr(i, j - i);
    rest_.remove_prefix(j);
    return true;
  }
  std::string_view rest() const { return rest_; }

 private:
  std::string_view rest_;
};

enum class NumberError : uint8_t { kNone, kNotANumber, kOutOfRange };

NumberError ToU64(std::string_view s, uint64_t* v) {
  if (s.empty()) return NumberError::kNotANumber;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), *v);
  if (r.ec == std::errc::result_out_of_range) return NumberError::kOutOfRange;
  if (r.ec != std::errc() || r.ptr != s.data() + s.size()) return NumberError::kNotANumber;
  return NumberError::kNone;
}

/// A finite, non-negative decimal.
NumberError ToDouble(std::string_view s, double* v) {
  if (s.empty() || s[0] < '0' || s[0] > '9') return NumberError::kNotANumber;  // no nan, -1
  const auto r = std::from_chars(s.data(), s.data() + s.size(), *v, std::chars_format::fixed);
  if (r.ec == std::errc::result_out_of_range) return NumberError::kOutOfRange;
  if (r.ec != std::errc() || r.ptr != s.data() + s.size()) return NumberError::kNotANumber;
  if (!std::isfinite(*v)) return NumberError::kOutOfRange;
  return NumberError::kNone;
}

bool NumberFailure(NumberError e, int line, std::string_view what, Failure* why) {
  if (e == NumberError::kOutOfRange) {
    return why->Set("line {}: {} is out of range (more than 64 bits)", line, what);
  }
  return why->Set("line {}: {} is not a number", line, what);
}

bool DecimalFailure(NumberError e, int line, std::string_view what, Failure* why) {
  if (e == NumberError::kOutOfRange) return why->Set("line {}: {} is out of range", line, what);
  return why->Set("line {}: {} is not a number", line, what);
}

/// Read the next field of `f` as a number into `*v`; on failure set `why` naming `what`.
bool NextU64(Fields* f, uint64_t* v, int line, std::string_view what, Failure* why) {
  std::string_view field;
  if (!f->Next(&field)) return why->Set("line {}: {} is missing", line, what);
  const NumberError e = ToU64(field, v);
  return e == NumberError::kNone || NumberFailure(e, line, what, why);
}

/// Read up to `n` numbers of `f` into `out`; return how many were read, -1 on a bad one.
int ReadCounters(Fields* f, uint64_t* const* out, int n, int line, Failure* why) {
  std::string_view field;
  int read = 0;
  while (read < n && f->Next(&field)) {
    const NumberError e = ToU64(field, out[read]);
    if (e != NumberError::kNone) {
      NumberFailure(e, line, "a counter", why);
      return -1;
    }
    ++read;
  }
  return read;
}

bool ParseCpuLine(Fields* f, CpuTicks* t, int line, Failure* why) {
  uint64_t* const fields[] = {&t->user,   &t->nice, &t->system,  &t->idle,
                              &t->iowait, &t->irq,  &t->softirq, &t->steal};
  *t = CpuTicks{};
  const int n = ReadCounters(f, fields, 8, line, why);
  if (n < 0) return false;
  if (n < 4) return why->Set("line {}: {} CPU times, expected at least 4", line, n);
  // guest and guest_nice follow: already part of user and nice, but they must be numbers.
  uint64_t guest = 0, guest_nice = 0;
  uint64_t* const rest[] = {&guest, &guest_nice};
  return ReadCounters(f, rest, 2, line, why) >= 0;
}

bool Single(Fields* f, uint64_t* v, bool* has, int line, std::string_view what, Failure* why) {
  if (!NextU64(f, v, line, what, why)) return false;
  *has = true;
  return true;
}

}  // namespace

bool ParseStat(std::string_view text, StatFile* out, Failure* why) {
  out->cpus.clear();
  out->has_context_switches = out->has_interrupts = out->has_forks = false;
  out->has_boot_time = out->has_procs = false;
  bool has_total = false, has_blocked = false;
  Lines lines(text);
  std::string_view line;
  while (lines.Next(&line, why)) {
    const int n = lines.number();
    Fields f(line);
    std::string_view key;
    if (!f.Next(&key)) continue;
    if (key == "cpu") {
      if (!ParseCpuLine(&f, &out->total, n, why)) return false;
      has_total = true;
    } else if (key.size() > 3 && key.substr(0, 3) == "cpu") {
      uint64_t cpu = 0;
      if (ToU64(key.substr(3), &cpu) != NumberError::kNone || cpu > INT32_MAX) {
        return why->Set("line {}: a CPU line must be named cpuN", n);
      }
      CpuTicks t;
      if (!ParseCpuLine(&f, &t, n, why)) return false;
      out->cpus.emplace_back(static_cast<int32_t>(cpu), t);
    } else if (key == "ctxt") {
      if (!Single(&f, &out->context_switches, &out->has_context_switches, n, "ctxt", why)) {
        return false;
      }
    } else if (key == "intr") {  // the total; the per-interrupt counts after it are not kept
      if (!Single(&f, &out->interrupts, &out->has_interrupts, n, "intr", why)) return false;
    } else if (key == "processes") {
      if (!Single(&f, &out->forks, &out->has_forks, n, "processes", why)) return false;
    } else if (key == "btime") {
      if (!Single(&f, &out->boot_time, &out->has_boot_time, n, "btime", why)) return false;
    } else if (key == "procs_running") {
      if (!Single(&f, &out->procs_running, &out->has_procs, n, "procs_running", why)) {
        return false;
      }
    } else if (key == "procs_blocked") {
      if (!Single(&f, &out->procs_blocked, &has_blocked, n, "procs_blocked", why)) return false;
    }
  }
  if (lines.cut()) return false;
  if (!has_total) return why->Set("no 'cpu' line");
  out->has_procs = out->has_procs && has_blocked;
  return true;
}

bool ParseMemInfo(std::string_view text, std::vector<MemInfoField>* out, Failure* why) {
  out->clear();
  bool has_total = false;
  Lines lines(text);
  std::string_view line;
  while (lines.Next(&line, why)) {
    const int n = lines.number();
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      return why->Set("line {}: expected 'Name: value'", n);
    }
    MemInfoField field;
    field.name = line.substr(0, colon);
    Fields f(line.substr(colon + 1));
    if (!NextU64(&f, &field.value, n, "the value", why)) return false;
    std::string_view unit;
    if (f.Next(&unit)) {
      if (unit != "kB") return why->Set("line {}: unknown unit (expected kB)", n);
      if (field.value > kMax / 1024) return NumberFailure(NumberError::kOutOfRange, n, "kB", why);
      field.value *= 1024;
      field.in_bytes = true;
    }
    std::string_view extra;
    if (f.Next(&extra)) return why->Set("line {}: unexpected text after the value", n);
    has_total = has_total || field.name == "MemTotal";
    out->push_back(field);
  }
  if (lines.cut()) return false;
  if (!has_total) return why->Set("no MemTotal line");
  return true;
}

bool ParseDiskStats(std::string_view text, std::vector<DiskLine>* out, Failure* why) {
  out->clear();
  Lines lines(text);
  std::string_view line;
  while (lines.Next(&line, why)) {
    const int n = lines.number();
    Fields f(line);
    uint64_t major = 0, minor = 0;
    std::string_view first;
    if (!f.Next(&first)) continue;  // a blank line
    if (ToU64(first, &major) != NumberError::kNone) {
      return why->Set("line {}: the major number is not a number", n);
    }
    if (!NextU64(&f, &minor, n, "the minor number", why)) return false;
    DiskLine d;
    if (!f.Next(&d.name)) return why->Set("line {}: the device name is missing", n);
    // Fields 4-14 of iostats.rst, then discards (4.18: 15-18) and flushes (5.5: 19-20).
    uint64_t discards_merged = 0, discard_ms = 0, flush_ms = 0;
    uint64_t* const fields[] = {
        &d.reads,          &d.reads_merged,    &d.sectors_read,  &d.read_ms,           &d.writes,
        &d.writes_merged,  &d.sectors_written, &d.write_ms,      &d.in_progress,       &d.io_ms,
        &d.weighted_io_ms, &d.discards,        &discards_merged, &d.sectors_discarded, &discard_ms,
        &d.flushes,        &flush_ms};
    const int read = ReadCounters(&f, fields, 17, n, why);
    if (read < 0) return false;
    if (read < 11) return why->Set("line {}: {} counters, expected at least 11", n, read);
    out->push_back(d);
  }
  return !lines.cut();
}

bool ParseNetDev(std::string_view text, std::vector<NetLine>* out, Failure* why) {
  out->clear();
  Lines lines(text);
  std::string_view line;
  while (lines.Next(&line, why)) {
    const int n = lines.number();
    if (n <= 2) {  // the two header lines
      if (line.find('|') == std::string_view::npos) return why->Set("line {}: not a header", n);
      continue;
    }
    // Interface names cannot hold ':', and a large counter may follow it without a blank.
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) return why->Set("line {}: expected 'name: counters'", n);
    NetLine d;
    Fields name(line.substr(0, colon));
    if (!name.Next(&d.name)) return why->Set("line {}: the interface name is missing", n);
    uint64_t fifo = 0, frame = 0, compressed = 0, multicast = 0, colls = 0, carrier = 0;
    uint64_t tx_compressed = 0;
    uint64_t* const fields[] = {&d.rx_bytes, &d.rx_packets, &d.rx_errors, &d.rx_drops,
                                &fifo,       &frame,        &compressed,  &multicast,
                                &d.tx_bytes, &d.tx_packets, &d.tx_errors, &d.tx_drops,
                                &fifo,       &colls,        &carrier,     &tx_compressed};
    Fields f(line.substr(colon + 1));
    const int read = ReadCounters(&f, fields, 16, n, why);
    if (read < 0) return false;
    if (read < 16) return why->Set("line {}: {} counters, expected 16", n, read);
    out->push_back(d);
  }
  if (lines.cut()) return false;
  if (lines.number() < 2) return why->Set("the two header lines are missing");
  return true;
}

bool ParseMounts(std::string_view text, std::vector<MountLine>* out, Failure* why) {
  out->clear();
  Lines lines(text);
  std::string_view line;
  while (lines.Next(&line, why)) {
    const int n = lines.number();
    Fields f(line);
    MountLine m;
    std::string_view options;
    if (!f.Next(&m.device)) continue;
    if (!f.Next(&m.mount_point) || !f.Next(&m.fs_type) || !f.Next(&options)) {
      return why->Set("line {}: expected device, mount point, type and options", n);
    }
    while (!options.empty()) {
      const size_t comma = options.find(',');
      if (options.substr(0, comma) == "ro") m.readonly = true;
      if (comma == std::string_view::npos) break;
      options.remove_prefix(comma + 1);
    }
    out->push_back(m);
  }
  return !lines.cut();
}

int64_t DecodeMountField(std::string_view raw, char* out, size_t size) {
  size_t o = 0;
  for (size_t i = 0; i < raw.size(); ++i) {
    char c = raw[i];
    if (c == '\\' && i + 3 < raw.size() && raw[i + 1] >= '0' && raw[i + 1] <= '3' &&
        raw[i + 2] >= '0' && raw[i + 2] <= '7' && raw[i + 3] >= '0' && raw[i + 3] <= '7') {
      c = static_cast<char>((raw[i + 1] - '0') * 64 + (raw[i + 2] - '0') * 8 + (raw[i + 3] - '0'));
      i += 3;
    }
    if (o + 1 >= size) return -1;
    out[o++] = c;
  }
  if (o >= size) return -1;
  out[o] = '\0';
  return static_cast<int64_t>(o);
}

bool ParseLoadAvg(std::string_view text, LoadAvg* out, Failure* why) {
  Lines lines(text);
  std::string_view line;
  if (!lines.Next(&line, why)) {
    return lines.cut() ? false : why->Set("empty file");
  }
  Fields f(line);
  double* const loads[] = {&out->load1, &out->load5, &out->load15};
  const char* const names[] = {"the 1-minute load", "the 5-minute load", "the 15-minute load"};
  for (int i = 0; i < 3; ++i) {
    std::string_view field;
    if (!f.Next(&field)) return why->Set("line 1: {} is missing", names[i]);
    const NumberError e = ToDouble(field, loads[i]);
    if (e != NumberError::kNone) return DecimalFailure(e, 1, names[i], why);
  }
  std::string_view tasks;
  if (!f.Next(&tasks)) return why->Set("line 1: runnable/total threads is missing");
  const size_t slash = tasks.find('/');
  if (slash == std::string_view::npos) return why->Set("line 1: expected runnable/total threads");
  NumberError e = ToU64(tasks.substr(0, slash), &out->runnable);
  if (e == NumberError::kNone) e = ToU64(tasks.substr(slash + 1), &out->threads);
  if (e != NumberError::kNone) return NumberFailure(e, 1, "runnable/total threads", why);
  return true;
}

bool ParsePressure(std::string_view text, Pressure* out, Failure* why) {
  *out = Pressure{};
  Lines lines(text);
  std::string_view line;
  while (lines.Next(&line, why)) {
    const int n = lines.number();
    Fields f(line);
    std::string_view kind;
    if (!f.Next(&kind)) continue;
    PressureLine* p = kind == "some" ? &out->some : kind == "full" ? &out->full : nullptr;
    if (p == nullptr) return why->Set("line {}: expected 'some' or 'full'", n);
    bool seen[4] = {false, false, false, false};
    std::string_view field;
    while (f.Next(&field)) {
      const size_t eq = field.find('=');
      if (eq == std::string_view::npos) return why->Set("line {}: expected key=value", n);
      const std::string_view key = field.substr(0, eq), value = field.substr(eq + 1);
      NumberError e = NumberError::kNone;
      if (key == "avg10") {
        e = ToDouble(value, &p->avg10), seen[0] = true;
      } else if (key == "avg60") {
        e = ToDouble(value, &p->avg60), seen[1] = true;
      } else if (key == "avg300") {
        e = ToDouble(value, &p->avg300), seen[2] = true;
      } else if (key == "total") {
        e = ToU64(value, &p->total_us), seen[3] = true;
        if (e != NumberError::kNone) return NumberFailure(e, n, key, why);
      }
      if (e != NumberError::kNone) return DecimalFailure(e, n, key, why);
    }
    if (!(seen[0] && seen[1] && seen[2] && seen[3])) {
      return why->Set("line {}: expected avg10, avg60, avg300 and total", n);
    }
    p->present = true;
  }
  if (lines.cut()) return false;
  if (!out->some.present) return why->Set("no 'some' line");
  return true;
}

bool ParsePidStat(std::string_view text, PidStat* out, Failure* why) {
  Lines lines(text);
  std::string_view line;
  if (!lines.Next(&line, why)) return lines.cut() ? false : why->Set("empty file");
  // The command name may hold anything, ')' and newlines aside: it ends at the last ')'.
  const size_t open = line.find(" (");
  const size_t close = line.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open + 2) {
    return why->Set("line 1: expected 'pid (comm) state ...'");
  }
  uint64_t pid = 0;
  if (ToU64(line.substr(0, open), &pid) != NumberError::kNone || pid == 0 || pid > INT32_MAX) {
    return why->Set("line 1: the pid is not a positive number");
  }
  out->pid = static_cast<int32_t>(pid);
  out->comm = line.substr(open + 2, close - open - 2);
  Fields f(line.substr(close + 1));
  std::string_view state;
  if (!f.Next(&state) || state.size() != 1) return why->Set("line 1: the state is missing");
  out->state = state[0];
  // Fields 4..24 of proc(5); the ones kept are utime (14), stime (15), num_threads (20),
  // starttime (22) and rss (24).
  uint64_t v[21];
  for (int i = 0; i < 21; ++i) {
    std::string_view field;
    if (!f.Next(&field)) return why->Set("line 1: {} fields, expected at least 24", i + 3);
    // Fields 5-8 and 18-19 (pgrp ... tpgid, priority, nice) may be negative.
    const bool is_signed = (i >= 1 && i <= 4) || i == 14 || i == 15;
    if (is_signed && !field.empty() && field[0] == '-') field.remove_prefix(1);
    const NumberError e = ToU64(field, &v[i]);
    if (e != NumberError::kNone) return NumberFailure(e, 1, "a field", why);
  }
  out->utime = v[10];
  out->stime = v[11];
  out->threads = v[16];
  out->start_time = v[18];
  out->rss_pages = v[20];
  return true;
}

bool ParsePidStatus(std::string_view text, PidStatus* out, Failure* why) {
  *out = PidStatus{};
  Lines lines(text);
  std::string_view line;
  while (lines.Next(&line, why)) {
    const int n = lines.number();
    const bool uid = line.substr(0, 4) == "Uid:";
    const bool swap = line.substr(0, 7) == "VmSwap:";
    if (!uid && !swap) continue;
    Fields f(line.substr(uid ? 4 : 7));
    uint64_t v = 0;
    if (!NextU64(&f, &v, n, uid ? "Uid" : "VmSwap", why)) return false;
    if (uid) {
      if (v > INT32_MAX * 2ULL + 1) return NumberFailure(NumberError::kOutOfRange, n, "Uid", why);
      out->uid = static_cast<int64_t>(v);
    } else {
      std::string_view unit;
      if (!f.Next(&unit) || unit != "kB") return why->Set("line {}: VmSwap is not in kB", n);
      if (v > kMax / 1024) return NumberFailure(NumberError::kOutOfRange, n, "VmSwap", why);
      out->swap_bytes = v * 1024;
    }
  }
  return !lines.cut();
}

}  // namespace sluice::procfs
