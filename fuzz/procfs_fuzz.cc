// Fuzzes the procfs source's parsers. The first byte picks one (its value modulo 10): 0 stat,
// 1 meminfo, 2 diskstats, 3 net/dev, 4 mounts (and their octal escapes), 5 loadavg,
// 6 pressure, 7 [pid]/stat, 8 [pid]/status, 9 the JSON label writer; the rest is the file's
// text. Besides not crashing: every view a parser returns lies inside the text, a decoded
// mount field is no longer than the raw one, and labels always come out as valid JSON.
// fuzz/corpus/procfs/ holds the files of tests/data/procfs/a and the malformed trees, each
// behind its selector byte.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "sluice/connectors/procfs/parsers.h"
#include "sluice/connectors/procfs/sample_rows.h"

namespace {

using namespace sluice::procfs;

void Check(bool ok) {
  if (!ok) std::abort();
}

/// `view` is empty or inside `text`.
void Inside(std::string_view view, std::string_view text) {
  Check(view.empty() ||
        (view.data() >= text.data() && view.data() + view.size() <= text.data() + text.size()));
}

void Labels(std::string_view text) {
  SampleRows rows;
  const size_t half = text.size() / 2;
  rows.Add("m", 1, {{text.substr(0, half), text.substr(half)}});
  const auto parsed = nlohmann::json::parse(rows.labels(rows.row(0)), nullptr, false);
  Check(!parsed.is_discarded() && parsed.is_object() && parsed.size() == 1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  Failure why;
  switch (data[0] % 10) {
    case 0: {
      StatFile s;
      ParseStat(text, &s, &why);
      break;
    }
    case 1: {
      std::vector<MemInfoField> fields;
      if (ParseMemInfo(text, &fields, &why)) {
        for (const auto& f : fields) Inside(f.name, text);
      }
      break;
    }
    case 2: {
      std::vector<DiskLine> disks;
      if (ParseDiskStats(text, &disks, &why)) {
        for (const auto& d : disks) Inside(d.name, text);
      }
      break;
    }
    case 3: {
      std::vector<NetLine> devices;
      if (ParseNetDev(text, &devices, &why)) {
        for (const auto& d : devices) Inside(d.name, text);
      }
      break;
    }
    case 4: {
      std::vector<MountLine> mounts;
      if (ParseMounts(text, &mounts, &why)) {
        for (const auto& m : mounts) {
          Inside(m.device, text);
          Inside(m.mount_point, text);
          Inside(m.fs_type, text);
          char out[4096];
          const int64_t n = DecodeMountField(m.mount_point, out, sizeof(out));
          Check(n <= static_cast<int64_t>(m.mount_point.size()));
          Check(n < 0 || out[n] == '\0');
        }
      }
      break;
    }
    case 5: {
      LoadAvg load;
      if (ParseLoadAvg(text, &load, &why)) Check(load.load1 >= 0 && load.load15 >= 0);
      break;
    }
    case 6: {
      Pressure p;
      if (ParsePressure(text, &p, &why)) Check(p.some.present);
      break;
    }
    case 7: {
      PidStat st;
      if (ParsePidStat(text, &st, &why)) {
        Inside(st.comm, text);
        Check(st.pid > 0);
      }
      break;
    }
    case 8: {
      PidStatus status;
      ParsePidStatus(text, &status, &why);
      break;
    }
    case 9:
      Labels(text);
      break;
  }
  // A message is cut to the buffer, never past it.
  Check(why.message().size() <= 240);
  return 0;
}
