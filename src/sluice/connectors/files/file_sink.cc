// The `file` sink: write batches as JSONL or CSV files, optionally compressed, rolled by
// rows or bytes, published atomically (write, fsync, rename, fsync the directory).

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <set>
#include <vector>

#include "sluice/connectors/files/files.h"
#include "sluice/connectors/files/files_internal.h"
#include "sluice/core/durable_dir.h"
#include "sluice/core/time.h"
#include "sluice/io/stream.h"

namespace sluice {

using files_internal::BoolOr;
using files_internal::IntOr;
using files_internal::PhaseTimer;
using files_internal::StringOr;

namespace {

struct SinkConfig {
  std::string path_template;  // with {n}, {node}, {date}
  io::Format format = io::Format::kJsonl;
  io::Codec codec = io::Codec::kNone;
  int level = io::kDefaultLevel;
  int64_t roll_rows = 0;   // 0: never
  int64_t roll_bytes = 0;  // 0: never; counted on uncompressed bytes
  bool verify = false;
  bool fsync = true;
  char delimiter = ',';
  bool header = true;
  io::GeometryText geometry = io::GeometryText::kHex;
};

bool IsDirectory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

Result<SinkConfig> ParseSinkOptions(const NodeOptions& o) {
  SinkConfig c;
  const std::string path = StringOr(o, "path", "");
  if (path.empty()) return o.ErrorAt("path", "a directory or file name template is required");
  SLUICE_ASSIGN_OR_RETURN(std::optional<io::Format> format, files_internal::ParseFormatOption(o));
  SLUICE_ASSIGN_OR_RETURN(std::optional<io::Codec> codec,
                          files_internal::ParseCompressionOption(o));
  if (path.ends_with('/') || IsDirectory(path)) {
    // A directory: name files after the node, with the extensions of format and compression.
    c.format = format.value_or(io::Format::kJsonl);
    c.codec = codec.value_or(io::Codec::kNone);
    std::string dir = path;
    while (dir.size() > 1 && dir.ends_with('/')) dir.pop_back();
    c.path_template = fmt::format("{}/{{node}}-{{n}}{}{}", dir, io::FormatExtension(c.format),
                                  io::CodecExtension(c.codec));
  } else {
    c.path_template = path;
    c.codec = codec.value_or(io::CodecFromPath(path));
    if (format.has_value()) {
      c.format = *format;
    } else {
      auto f = io::FormatFromPath(path);
      if (!f.ok()) return o.ErrorAt("format", f.status().message() + "; set option 'format'");
      c.format = *f;
    }
  }
  if (o.Has("level")) c.level = static_cast<int>(o.GetInt("level"));
  c.roll_rows = IntOr(o, "roll_rows", 0);
  if (c.roll_rows < 0) return o.ErrorAt("roll_rows", "must be 0 (never) or positive");
  c.roll_bytes = o.Has("roll_bytes") ? o.GetByteSize("roll_bytes") : 0;
  if (c.roll_bytes < 0) return o.ErrorAt("roll_bytes", "must be 0 (never) or positive");
  const bool has_n = c.path_template.find("{n}") != std::string::npos;
  if ((c.roll_rows > 0 || c.roll_bytes > 0) && !has_n) {
    return o.ErrorAt("path", "rolling files (roll_rows, roll_bytes) needs {n} in the file name");
  }
  c.verify = BoolOr(o, "verify", false);
  c.fsync = BoolOr(o, "fsync", true);
  SLUICE_ASSIGN_OR_RETURN(c.delimiter, files_internal::ParseDelimiterOption(o));
  c.header = BoolOr(o, "header", true);
  auto geometry = io::ParseGeometryText(StringOr(o, "geometry", "hex"));
  if (!geometry.ok()) return o.ErrorAt("geometry", geometry.status().message());
  c.geometry = *geometry;
  return c;
}

Status ErrnoError(const std::string& what) {
  return Status::IOError("{}: {}", what, std::strerror(errno));
}

Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("writing " + path);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::OK();
}

/// Write batches to files it names from a template, one open file at a time. Called from one
/// thread. Holds the acks of the rows in the open file until it is published.
class FileSink final : public Sink {
 public:
  FileSink(std::string id, SinkConfig config) : id_(std::move(id)), config_(std::move(config)) {}
  ~FileSink() override { AbandonFile(); }

  Status Open(NodeContext* ctx) override {
    ctx_ = ctx;
    return Status::OK();
  }

  Status Write(const BatchPtr& batch, AckSet acks) override {
    if ((ctx_ != nullptr && ctx_->dry_run()) || batch->num_rows() == 0) return Status::OK();
    Status st = WriteBatch(*batch, acks);
    if (!st.ok()) {
      acks.Fail();
      AbandonFile();
    }
    return st;
  }

  Status Flush() override { return CloseFile(); }
  Status Close() override {
    // The rows of a cancelled run are abandoned and redelivered by their sources next time:
    // publishing them now would write them twice.
    if (ctx_ != nullptr && ctx_->cancelled()) {
      AbandonFile();
      return Status::OK();
    }
    return CloseFile();
  }

 private:
  // The file being written.
  struct OpenFile {
    std::string final_path;
    std::string tmp_path;
    int fd = -1;
    std::unique_ptr<io::Compressor> compressor;
    std::vector<AckSet> acks;  // of every batch with rows in this file
    int64_t rows = 0;
    int64_t raw_bytes = 0;   // before compression, header included
    int64_t file_bytes = 0;  // written to disk
    int64_t n = 0;           // the {n} it was named with
  };

  NodeStats* stats() const { return ctx_ == nullptr ? nullptr : ctx_->stats(); }
  bool HasSequence() const { return config_.path_template.find("{n}") != std::string::npos; }

  std::string LossyBecause() const override {
    if (HasSequence()) return "";
    return "writes '" + config_.path_template +
           "', which the next run replaces (put {n} in the path: numbered files are never "
           "overwritten)";
  }

  Status WriteBatch(const Batch& batch, const AckSet& acks) {
    if (encoder_ == nullptr || !(*batch.schema() == *encoder_schema_)) {
      // A CSV file has one header: rows of another schema start a new file.
      if (config_.format == io::Format::kCsv && file_ != nullptr) SLUICE_RETURN_NOT_OK(CloseFile());
      io::EncodeOptions options;
      options.delimiter = config_.delimiter;
      options.header = config_.header;
      options.geometry = config_.geometry;
      SLUICE_ASSIGN_OR_RETURN(encoder_, io::MakeEncoder(config_.format, batch.schema(), options));
      encoder_schema_ = batch.schema();
    }
    encoded_.clear();
    row_ends_.clear();
    {
      PhaseTimer t(stats(), "serialize");
      encoder_->Encode(batch, &encoded_, &row_ends_);
    }
    // A value the format cannot hold (a non-finite coordinate in GeoJSON) fails the batch:
    // nothing of it is written or acknowledged.
    SLUICE_RETURN_NOT_OK(encoder_->status().WithContext("node '{}'", id_));
    const int64_t rows = batch.num_rows();
    int64_t row = 0;
    while (row < rows) {
      if (file_ == nullptr) SLUICE_RETURN_NOT_OK(OpenNewFile());
      const size_t begin = row == 0 ? 0 : row_ends_[static_cast<size_t>(row - 1)];
      int64_t take = rows - row;
      if (config_.roll_rows > 0) take = std::min(take, config_.roll_rows - file_->rows);
      if (config_.roll_bytes > 0) {
        // The most rows that keep the file within roll_bytes; a file gets at least one row.
        const auto budget =
            static_cast<size_t>(std::max<int64_t>(config_.roll_bytes - file_->raw_bytes, 0));
        const auto first = row_ends_.begin() + row;
        const auto fit = std::upper_bound(first, first + take, begin + budget) - first;
        if (fit == 0 && file_->rows > 0) {
          SLUICE_RETURN_NOT_OK(CloseFile());
          continue;
        }
        take = std::max<int64_t>(fit, 1);
      }
      const size_t end = row_ends_[static_cast<size_t>(row + take - 1)];
      SLUICE_RETURN_NOT_OK(WriteBytes(std::string_view(encoded_).substr(begin, end - begin)));
      file_->rows += take;
      file_->acks.push_back(acks);
      row += take;
      if ((config_.roll_rows > 0 && file_->rows >= config_.roll_rows) ||
          (config_.roll_bytes > 0 && file_->raw_bytes >= config_.roll_bytes)) {
        SLUICE_RETURN_NOT_OK(CloseFile());
      }
    }
    return Status::OK();
  }

  Status OpenNewFile() {
    const std::string date = UtcDate();
    std::string final_path;
    while (true) {
      final_path = ExpandPathTemplate(config_.path_template, next_n_, id_, date);
      if (!HasSequence()) {
        if (published_.count(final_path) > 0) {
          return Status::Invalid(
              "node '{}': '{}' was already written in this run and the path has no {{n}} to "
              "name a second file",
              id_, final_path);
        }
        break;
      }
      // Never overwrite: files of earlier runs keep their names.
      if (!std::filesystem::exists(final_path) && published_.count(final_path) == 0) break;
      ++next_n_;
    }
    auto file = std::make_unique<OpenFile>();
    file->final_path = final_path;
    file->tmp_path = fmt::format("{}.tmp-{}", final_path, ::getpid());
    file->n = next_n_++;
    const std::filesystem::path parent = std::filesystem::path(final_path).parent_path();
    if (!parent.empty()) SLUICE_RETURN_NOT_OK(CreateParentDirectories(parent.string()));
    file->fd = ::open(file->tmp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (file->fd < 0) return ErrnoError("creating " + file->tmp_path);
    SLUICE_ASSIGN_OR_RETURN(file->compressor, io::Compressor::Make(config_.codec, config_.level));
    file_ = std::move(file);
    std::string header;
    encoder_->Begin(&header);
    if (!header.empty()) SLUICE_RETURN_NOT_OK(WriteBytes(header));
    header_bytes_ = static_cast<int64_t>(header.size());
    return Status::OK();
  }

  // Creates the missing directories of a file's path. With fsync, their entries are made durable
  // too: the file's own fsync and the rename's directory fsync do not cover a directory that
  // did not exist, and a power loss could take the published file with it.
  Status CreateParentDirectories(const std::string& dir) {
    if (config_.fsync) {
      SLUICE_ASSIGN_OR_RETURN(std::vector<std::string> created, CreateDirectoriesDurably(dir));
      if (!created.empty() && stats() != nullptr) {
        stats()->AddCounter("directories_created", static_cast<int64_t>(created.size()));
      }
      return Status::OK();
    }
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return Status::IOError("creating directory {}: {}", dir, ec.message());
    return Status::OK();
  }

  Status WriteBytes(std::string_view raw) {
    file_->raw_bytes += static_cast<int64_t>(raw.size());
    std::string_view out = raw;
    if (config_.codec != io::Codec::kNone) {
      PhaseTimer t(stats(), "compress");
      compressed_.clear();
      SLUICE_RETURN_NOT_OK(file_->compressor->Write(raw, &compressed_));
      out = compressed_;
    }
    PhaseTimer t(stats(), "write");
    file_->file_bytes += static_cast<int64_t>(out.size());
    return WriteAll(file_->fd, out, file_->tmp_path);
  }

  // Publishes the open file (finish, fsync, verify, rename, fsync the directory), then
  // releases the acks of its rows.
  Status CloseFile() {
    if (file_ == nullptr) return Status::OK();
    Status st = PublishFile();
    if (!st.ok()) {
      AbandonFile();
      return st;
    }
    file_.reset();  // releases the acks: the rows are durable
    if (stats() != nullptr) stats()->AddCounter("files", 1);
    return Status::OK();
  }

  Status PublishFile() {
    OpenFile& f = *file_;
    if (config_.codec != io::Codec::kNone) {
      compressed_.clear();
      {
        PhaseTimer t(stats(), "compress");
        SLUICE_RETURN_NOT_OK(f.compressor->Finish(&compressed_));
      }
      PhaseTimer t(stats(), "write");
      f.file_bytes += static_cast<int64_t>(compressed_.size());
      SLUICE_RETURN_NOT_OK(WriteAll(f.fd, compressed_, f.tmp_path));
    }
    {
      PhaseTimer t(stats(), "write");
      if (config_.fsync && ::fsync(f.fd) != 0) return ErrnoError("fsync of " + f.tmp_path);
      const int rc = ::close(f.fd);
      f.fd = -1;
      if (rc != 0) return ErrnoError("closing " + f.tmp_path);
    }
    if (config_.verify) {
      PhaseTimer t(stats(), "verify");
      FileExpectation expected;
      expected.rows = f.rows;
      expected.uncompressed_bytes = f.raw_bytes;
      expected.file_bytes = f.file_bytes;
      expected.csv_header = config_.format == io::Format::kCsv && header_bytes_ > 0;
      SLUICE_RETURN_NOT_OK(VerifyFile(f.tmp_path, config_.format, config_.codec, expected));
    }
    PhaseTimer t(stats(), "write");
    SLUICE_RETURN_NOT_OK(Rename(&f));
    published_.insert(f.final_path);
    if (config_.fsync) {
      const std::filesystem::path parent = std::filesystem::path(f.final_path).parent_path();
      SLUICE_RETURN_NOT_OK(FsyncDirectory(parent.empty() ? "." : parent.string()));
    }
    return Status::OK();
  }

  // Renames the temporary file to its final name. A name with {n} is never overwritten: if
  // another writer took it meanwhile, the next free number is used.
  Status Rename(OpenFile* f) {
    if (!HasSequence()) {
      if (::rename(f->tmp_path.c_str(), f->final_path.c_str()) != 0) {
        return ErrnoError("renaming " + f->tmp_path);
      }
      return Status::OK();
    }
    const std::string date = UtcDate();
    for (int attempt = 0; attempt < 1000; ++attempt) {
      if (::renameat2(AT_FDCWD, f->tmp_path.c_str(), AT_FDCWD, f->final_path.c_str(),
                      RENAME_NOREPLACE) == 0) {
        return Status::OK();
      }
      if (errno == EINVAL || errno == ENOSYS) {
        // The filesystem cannot rename without replacing: a hard link fails if the name exists.
        if (::link(f->tmp_path.c_str(), f->final_path.c_str()) == 0) {
          ::unlink(f->tmp_path.c_str());
          return Status::OK();
        }
      }
      if (errno != EEXIST) return ErrnoError("renaming " + f->tmp_path);
      f->n = next_n_++;
      f->final_path = ExpandPathTemplate(config_.path_template, f->n, id_, date);
    }
    return Status::IOError("node '{}': no free file name for '{}'", id_, config_.path_template);
  }

  // Drops the open file unpublished: closes and removes the temporary file, and fails the acks
  // of its rows so that their sources abandon them.
  void AbandonFile() {
    if (file_ == nullptr) return;
    if (file_->fd >= 0) ::close(file_->fd);
    ::unlink(file_->tmp_path.c_str());
    for (const AckSet& a : file_->acks) a.Fail();
    file_.reset();
  }

  std::string id_;
  SinkConfig config_;
  NodeContext* ctx_ = nullptr;
  std::unique_ptr<io::Encoder> encoder_;
  SchemaPtr encoder_schema_;
  std::unique_ptr<OpenFile> file_;
  int64_t next_n_ = 0;
  int64_t header_bytes_ = 0;         // of the open file
  std::set<std::string> published_;  // final names written by this run
  std::string encoded_;              // the batch being written, serialized
  std::vector<size_t> row_ends_;     // end offset of each row in encoded_
  std::string compressed_;
};

}  // namespace

std::string ExpandPathTemplate(const std::string& path_template, int64_t n, const std::string& node,
                               const std::string& date) {
  std::string out;
  out.reserve(path_template.size() + 16);
  for (size_t i = 0; i < path_template.size();) {
    const std::string_view rest = std::string_view(path_template).substr(i);
    if (rest.starts_with("{n}")) {
      out += fmt::format("{:05d}", n);
      i += 3;
    } else if (rest.starts_with("{node}")) {
      out += node;
      i += 6;
    } else if (rest.starts_with("{date}")) {
      out += date;
      i += 6;
    } else {
      out.push_back(path_template[i++]);
    }
  }
  return out;
}

Status VerifyFile(const std::string& path, io::Format format, io::Codec codec,
                  const FileExpectation& expected) {
  auto fail = [&](const Status& st) {
    return Status(StatusCode::kDataLoss, fmt::format("verifying {}: {}", path, st.message()));
  };
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return fail(ErrnoError("stat"));
  if (st.st_size != expected.file_bytes) {
    return Status::DataLoss("verifying {}: {} bytes on disk, expected {}", path,
                            static_cast<int64_t>(st.st_size), expected.file_bytes);
  }
  auto raw = io::OpenFileStream(path);
  if (!raw.ok()) return fail(raw.status());
  auto stream = io::MakeDecompressingStream(std::move(*raw), codec);
  if (!stream.ok()) return fail(stream.status());
  std::vector<char> buf(size_t{1} << 20);
  int64_t bytes = 0;
  int64_t line_ends = 0;
  bool in_quotes = false;
  while (true) {
    auto n = (*stream)->Read(buf.data(), buf.size());
    if (!n.ok()) return fail(n.status());
    if (*n == 0) break;
    bytes += static_cast<int64_t>(*n);
    const char* p = buf.data();
    const char* end = p + *n;
    if (format != io::Format::kCsv) {
      line_ends += std::count(p, end, '\n');  // the encoder escapes line breaks in values
    } else {
      for (; p < end; ++p) {
        if (*p == '"') {
          in_quotes = !in_quotes;
        } else if (*p == '\n' && !in_quotes) {
          ++line_ends;
        }
      }
    }
  }
  if (bytes != expected.uncompressed_bytes) {
    return Status::DataLoss("verifying {}: {} bytes after decompression, expected {}", path, bytes,
                            expected.uncompressed_bytes);
  }
  const int64_t rows = line_ends - (expected.csv_header ? 1 : 0);
  if (rows != expected.rows) {
    return Status::DataLoss("verifying {}: {} rows, expected {}", path, rows, expected.rows);
  }
  return Status::OK();
}

const OptionSchema& FileSinkOptions() {
  static const OptionSchema kOptions = {
      {"path",
       OptionType::kString,
       "",
       "Directory, or file name template with {n} (sequence, 5 digits), {node} and {date} "
       "(UTC yyyy-mm-dd), e.g. out/audit-{n}.jsonl.gz.",
       true,
       {}},
      {"format",
       OptionType::kEnum,
       "auto",
       "Record format; auto picks it by file extension (.jsonl .csv .geojson). geojson writes "
       "one feature per line: the first geometry column is its geometry, the others its "
       "properties.",
       false,
       {"auto", "jsonl", "csv", "geojson"}},
      {"compression",
       OptionType::kEnum,
       "auto",
       "Compression; auto picks it by extension (.gz, .zst).",
       false,
       {"auto", "none", "gzip", "zstd"}},
      {"level",
       OptionType::kInt,
       "",
       "Compression level (gzip 1-12, zstd 1-19; default 6 / 3).",
       false,
       {}},
      {"roll_rows",
       OptionType::kInt,
       "0",
       "Start a new file after this many rows (0: never).",
       false,
       {}},
      {"roll_bytes",
       OptionType::kByteSize,
       "0",
       "Start a new file before it would exceed this many uncompressed bytes (0: never).",
       false,
       {}},
      {"verify",
       OptionType::kBool,
       "false",
       "After closing a file, re-read it and check its rows and bytes (DataLoss if different).",
       false,
       {}},
      {"fsync",
       OptionType::kBool,
       "true",
       "fsync each file and its directory before releasing its rows' acks.",
       false,
       {}},
      {"delimiter",
       OptionType::kString,
       ",",
       "CSV field separator (one character, or \\t).",
       false,
       {}},
      {"header", OptionType::kBool, "true", "CSV: write a header row in each file.", false, {}},
      {"geometry",
       OptionType::kEnum,
       "hex",
       "JSONL and CSV: how geometry columns are written: hex EWKB, EWKT (SRID=4326;POINT (1 2)) "
       "or a GeoJSON geometry object.",
       false,
       {"hex", "wkt", "geojson"}},
  };
  return kOptions;
}

Result<std::unique_ptr<Sink>> MakeFileSink(const NodeOptions& options) {
  SLUICE_ASSIGN_OR_RETURN(SinkConfig config, ParseSinkOptions(options));
  return std::unique_ptr<Sink>(new FileSink(options.id(), std::move(config)));
}

}  // namespace sluice
