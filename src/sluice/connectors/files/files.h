#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "sluice/engine/node.h"
#include "sluice/engine/options.h"
#include "sluice/engine/registry.h"
#include "sluice/io/compression.h"
#include "sluice/io/format.h"

namespace sluice {

/// The node type names: one name, resolved to the source for a node without inputs and to the
/// sink for a node with inputs (NodeRegistry::Resolve).
inline constexpr const char* kFileSourceType = "file";
inline constexpr const char* kFileSinkType = "file";

/// Register the file source (kFileSourceType) and sink (kFileSinkType) in `registry`.
void RegisterFileNodes(NodeRegistry* registry);

/// Return the option schema of the `file` source.
const OptionSchema& FileSourceOptions();
/// Return the option schema of the `file` sink.
const OptionSchema& FileSinkOptions();

/// Build a `file` source from validated options; kConfigError names the offending option.
/// The source streams every file matching `path` (a glob, expanded and sorted at Open) in
/// chunks of 1 MiB, so memory stays constant whatever the file sizes. Files are not consumed:
/// Commit and Abandon do nothing.
Result<std::unique_ptr<Source>> MakeFileSource(const NodeOptions& options);

/// Build a `file` sink from validated options; kConfigError names the offending option.
/// Files are written to `<final>.tmp-<pid>`, fsynced, renamed to their final name, and the
/// directory fsynced; only then are the acks of the batches they hold released.
Result<std::unique_ptr<Sink>> MakeFileSink(const NodeOptions& options);

/// Return the regular files matching the glob(3) `pattern` (braces allowed), sorted. No match
/// is NotFound naming the pattern.
Result<std::vector<std::string>> ExpandGlob(const std::string& pattern);

/// Return the file name for `path_template` with `{n}` replaced by `n` zero-padded to 5
/// digits, `{node}` by `node` and `{date}` by `date` (yyyy-mm-dd).
std::string ExpandPathTemplate(const std::string& path_template, int64_t n, const std::string& node,
                               const std::string& date);

/// What a closed file must hold, checked by VerifyFile.
struct FileExpectation {
  int64_t rows = 0;                ///< Data rows, not counting a CSV header.
  int64_t uncompressed_bytes = 0;  ///< Bytes after decompression, header included.
  int64_t file_bytes = 0;          ///< Bytes on disk.
  bool csv_header = false;         ///< The file starts with a CSV header row.
};

/// Re-read the file at `path` in full, decompressing it, and return DataLoss naming the path
/// if its size on disk, its decompressed size or its number of rows differs from `expected`,
/// or if it does not decompress. Rows are counted as line ends (outside quotes for CSV), which
/// is exact for files written by the sink.
Status VerifyFile(const std::string& path, io::Format format, io::Codec codec,
                  const FileExpectation& expected);

}  // namespace sluice
