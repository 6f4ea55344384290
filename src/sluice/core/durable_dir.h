#pragma once

// Directories whose entries survive a crash or power loss: a file fsynced into a directory
// that was itself just created can still vanish after a power loss unless the new directory's
// entry in its parent is fsynced too.

#include <string>
#include <vector>

#include "sluice/core/result.h"

namespace sluice {

/// fsync the directory `dir` ("" means "."), making the entries created, renamed or removed in
/// it durable. Errors are kIOError naming the directory. Thread-safe.
Status FsyncDirectory(const std::string& dir);

/// Create `dir` and every missing parent (like `mkdir -p`), then fsync the parent of each
/// directory it created, so that all of them survive a power loss. Return the directories it
/// created, outermost first (empty if `dir` already existed). A directory that another process
/// creates at the same moment counts as existing. A component that exists but is not a directory
/// is kIOError naming it. Thread-safe; idempotent.
Result<std::vector<std::string>> CreateDirectoriesDurably(const std::string& dir);

}  // namespace sluice
