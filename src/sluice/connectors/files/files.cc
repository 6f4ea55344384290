#include "sluice/connectors/files/files.h"

namespace sluice {

void RegisterFileNodes(NodeRegistry* registry) {
  registry->AddSource(
      kFileSourceType,
      "Read JSONL, CSV or GeoJSON files (optionally gzip or zstd compressed) matching a "
      "glob, streaming them in constant memory.",
      FileSourceOptions(), &MakeFileSource);
  registry->AddSink(
      kFileSinkType,
      "Write JSONL, CSV or GeoJSON files, optionally compressed and rolled by rows or bytes; "
      "each file is published atomically before its rows are acknowledged.",
      FileSinkOptions(), &MakeFileSink);
}

}  // namespace sluice
