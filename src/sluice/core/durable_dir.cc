#include "sluice/core/durable_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace sluice {

namespace {

Status ErrnoError(const std::string& what, int err) {
  return Status::IOError("{}: {}", what, std::strerror(err));
}

bool IsDirectory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

Status FsyncDirectory(const std::string& dir) {
  const std::string path = dir.empty() ? "." : dir;
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("opening directory " + path, errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return ErrnoError("fsync of directory " + path, err);
  return Status::OK();
}

Result<std::vector<std::string>> CreateDirectoriesDurably(const std::string& dir) {
  // The missing directories, innermost first: walk up until one exists.
  std::vector<std::filesystem::path> missing;
  std::filesystem::path p = std::filesystem::path(dir).lexically_normal();
  if (!p.empty() && p.filename().empty()) p = p.parent_path();  // "a/b/" is "a/b"
  for (; !p.empty() && !IsDirectory(p.string()); p = p.parent_path()) {
    missing.push_back(p);
    if (p == p.parent_path()) break;  // a root that is not a directory: mkdir will say so
  }
  std::vector<std::string> created;
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    const std::string path = it->string();
    if (::mkdir(path.c_str(), 0755) == 0) {
      created.push_back(path);
      continue;
    }
    const int err = errno;
    if (err == EEXIST && IsDirectory(path)) continue;  // created by someone else meanwhile
    return ErrnoError("creating directory " + path, err == EEXIST ? ENOTDIR : err);
  }
  // Each new directory's entry lives in its parent; the innermost one's parent is the last
  // created (or existing) directory, so every parent of a created directory is synced.
  for (const std::string& path : created) {
    SLUICE_RETURN_NOT_OK(FsyncDirectory(std::filesystem::path(path).parent_path().string()));
  }
  return created;
}

}  // namespace sluice
