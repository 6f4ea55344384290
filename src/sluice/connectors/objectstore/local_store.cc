#include "sluice/connectors/objectstore/local_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

namespace sluice {

namespace {

namespace fs = std::filesystem;

constexpr size_t kReadChunk = size_t{1} << 20;

Status ErrnoStatus(const std::string& what, int err) {
  const std::string msg = fmt::format("{}: {}", what, std::strerror(err));
  if (err == ENOENT) return Status(StatusCode::kNotFound, msg);
  if (err == EACCES || err == EPERM) return Status(StatusCode::kPermissionDenied, msg);
  return Status(StatusCode::kIOError, msg);
}

Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("writing " + path, errno);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::OK();
}

Status FsyncDirectory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("opening directory " + dir, errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return ErrnoStatus("fsync of directory " + dir, err);
  return Status::OK();
}

}  // namespace

Result<std::unique_ptr<LocalStore>> LocalStore::Make(const std::string& root, bool fsync) {
  std::string path = root;
  if (path.starts_with("file://")) path = path.substr(7);
  if (path.empty()) return Status::Invalid("local object store: empty directory path");
  std::error_code ec;
  fs::path abs = fs::absolute(path, ec);
  if (ec) return Status::IOError("resolving {}: {}", path, ec.message());
  std::string normal = abs.lexically_normal().string();
  while (normal.size() > 1 && normal.ends_with('/')) normal.pop_back();
  if (fs::exists(normal, ec) && !fs::is_directory(normal, ec)) {
    return Status::IOError("{} is not a directory", normal);
  }
  return std::unique_ptr<LocalStore>(new LocalStore(std::move(normal), fsync));
}

Status LocalStore::Put(const std::string& key, std::string_view data) {
  SLUICE_RETURN_NOT_OK(ValidateObjectKey(key));
  const std::string path = PathOf(key);
  const std::string dir = fs::path(path).parent_path().string();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status::IOError("creating directory {}: {}", dir, ec.message());
  const std::string tmp = fmt::format("{}{}{}-{}", path, kLocalTempMarker, ::getpid(),
                                      temp_counter_.fetch_add(1, std::memory_order_relaxed));
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus("creating " + tmp, errno);
  Status st = WriteAll(fd, data, tmp);
  if (st.ok() && fsync_ && ::fsync(fd) != 0) st = ErrnoStatus("fsync of " + tmp, errno);
  if (::close(fd) != 0 && st.ok()) st = ErrnoStatus("closing " + tmp, errno);
  if (st.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    st = ErrnoStatus("renaming " + tmp + " to " + path, errno);
  }
  if (!st.ok()) {
    ::unlink(tmp.c_str());
    return st;
  }
  if (fsync_) return FsyncDirectory(dir);
  return Status::OK();
}

Result<ObjectInfo> LocalStore::Head(const std::string& key) {
  SLUICE_RETURN_NOT_OK(ValidateObjectKey(key));
  const std::string path = PathOf(key);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) {
      return Status::NotFound("no object {}/{}", Describe(), key);
    }
    return ErrnoStatus("stat of " + path, errno);
  }
  if (!S_ISREG(st.st_mode)) return Status::NotFound("no object {}/{}", Describe(), key);
  const int64_t mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 +
                           static_cast<int64_t>(st.st_mtim.tv_nsec);
  return ObjectInfo{key, static_cast<int64_t>(st.st_size),
                    fmt::format("{:x}-{:x}", static_cast<int64_t>(st.st_size), mtime_ns)};
}

Status LocalStore::Get(const std::string& key,
                       const std::function<Status(std::string_view)>& sink) {
  SLUICE_RETURN_NOT_OK(ValidateObjectKey(key));
  const std::string path = PathOf(key);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR || errno == EISDIR) {
      return Status::NotFound("no object {}/{}", Describe(), key);
    }
    return ErrnoStatus("opening " + path, errno);
  }
  std::vector<char> buf(kReadChunk);
  Status st;
  while (true) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      st = ErrnoStatus("reading " + path, errno);
      break;
    }
    if (n == 0) break;
    st = sink(std::string_view(buf.data(), static_cast<size_t>(n)));
    if (!st.ok()) break;
  }
  ::close(fd);
  return st;
}

Result<std::vector<ObjectInfo>> LocalStore::List(const std::string& prefix) {
  // Walk only the deepest directory the prefix names, not the whole tree.
  std::string start = root_;
  const size_t slash = prefix.rfind('/');
  if (slash != std::string::npos) {
    const std::string dir = prefix.substr(0, slash);
    if (!ValidateObjectKey(dir).ok()) return std::vector<ObjectInfo>{};
    start = PathOf(dir);
  }
  std::vector<ObjectInfo> out;
  std::error_code ec;
  if (!fs::is_directory(start, ec)) return out;
  fs::recursive_directory_iterator it(start, ec);
  if (ec) return Status::IOError("listing {}: {}", start, ec.message());
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) return Status::IOError("listing {}: {}", start, ec.message());
    if (!it->is_regular_file(ec)) continue;
    const std::string path = it->path().string();
    std::string key = path.substr(root_.size() + 1);
    if (!key.starts_with(prefix)) continue;
    if (it->path().filename().string().find(kLocalTempMarker) != std::string::npos) continue;
    const auto size = static_cast<int64_t>(it->file_size(ec));
    if (ec) continue;  // removed meanwhile
    out.push_back(ObjectInfo{std::move(key), size, ""});
  }
  std::sort(out.begin(), out.end(),
            [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
  return out;
}

Status LocalStore::Delete(const std::string& key) {
  SLUICE_RETURN_NOT_OK(ValidateObjectKey(key));
  const std::string path = PathOf(key);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT && errno != ENOTDIR) {
    return ErrnoStatus("removing " + path, errno);
  }
  // Remove the directories left empty, so that List and `ls` do not show husks.
  fs::path dir = fs::path(path).parent_path();
  while (dir.string().size() > root_.size() && ::rmdir(dir.c_str()) == 0) dir = dir.parent_path();
  return Status::OK();
}

}  // namespace sluice
