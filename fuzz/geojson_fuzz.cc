// Fuzzes the GeoJSON decoder and encoder: see text_codec_fuzz.h. The declared schema's geometry
// column `g` takes the features' geometries.
#include "sluice/io/geojson.h"
#include "text_codec_fuzz.h"

namespace {

struct GeoJsonTraits {
  using Decoder = sluice::io::GeoJsonDecoder;
  static void Configure(uint8_t control, sluice::io::DecodeOptions* options) {
    options->geometry_column = "g";
    if ((control & 8) != 0) options->srid = 3857;
  }
  static std::string Encode(const sluice::Batch& batch, const sluice::io::DecodeOptions&) {
    sluice::io::GeoJsonEncoder encoder(batch.schema());
    std::string text;
    encoder.Encode(batch, &text);
    return text;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return sluice_fuzz::FuzzTextCodec<GeoJsonTraits>(data, size);
}
