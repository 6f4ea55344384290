// Fuzzes the geometry codecs (src/sluice/io/geometry.h). The first byte picks the input kind:
// even — the rest is (E)WKB: checked, written as WKT and GeoJSON, and any WKT that reads back
// must read back to the same WKT; odd — the rest is WKT: what parses must be well-formed EWKB
// whose WKT reads back to the same bytes' WKT.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "sluice/io/geometry.h"

namespace geom = sluice::io::geom;

namespace {

// WKT of `wkb`, which must be well-formed (it came out of our own writer or passed InspectEwkb).
std::string WktOf(std::string_view wkb) {
  std::string text;
  if (!geom::AppendWkt(wkb, /*with_srid=*/true, &text).ok()) __builtin_trap();
  return text;
}

void CheckStable(const std::string& wkt) {
  std::string again;
  if (!geom::WktToEwkb(wkt, 0, &again).ok()) return;  // WKB allows what WKT refuses (open rings)
  if (!geom::InspectEwkb(again).ok()) __builtin_trap();
  if (WktOf(again) != wkt) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  if ((data[0] & 1) == 0) {
    if (!geom::InspectEwkb(input).ok()) {
      std::string out;
      if (geom::AppendWkt(input, true, &out).ok()) __builtin_trap();  // the same checks
      return 0;
    }
    CheckStable(WktOf(input));
    std::string json;
    (void)geom::AppendGeoJson(input, &json);  // may refuse a non-finite coordinate
    return 0;
  }
  std::string wkb = "prefix";
  if (!geom::WktToEwkb(input, 4326, &wkb).ok()) {
    if (wkb != "prefix") __builtin_trap();  // a failed parse leaves the output alone
    return 0;
  }
  const std::string_view mine = std::string_view(wkb).substr(6);
  if (!geom::InspectEwkb(mine).ok()) __builtin_trap();
  CheckStable(WktOf(mine));
  return 0;
}
