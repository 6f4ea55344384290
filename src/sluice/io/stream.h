#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "sluice/core/result.h"
#include "sluice/io/compression.h"

namespace sluice::io {

/// A source of bytes read front to back (a file, a decompressed file, a download).
/// Not thread-safe.
class InputStream {
 public:
  virtual ~InputStream() = default;
  /// Read up to `capacity` bytes into `out`; return how many were read, 0 only at the end.
  virtual Result<size_t> Read(char* out, size_t capacity) = 0;
};

/// Return a stream over the file at `path`, which it owns and closes. A missing file is
/// NotFound; errors name the path.
Result<std::unique_ptr<InputStream>> OpenFileStream(const std::string& path);

/// Return a stream of the decompressed bytes of `raw`, which holds data compressed with
/// `codec` (kNone passes bytes through). Reads `raw` in pieces of `read_size` bytes, so memory
/// stays bounded whatever the compression ratio. A truncated or corrupt input is an error at
/// the Read that reaches it.
Result<std::unique_ptr<InputStream>> MakeDecompressingStream(std::unique_ptr<InputStream> raw,
                                                             Codec codec,
                                                             size_t read_size = 256 << 10);

}  // namespace sluice::io
