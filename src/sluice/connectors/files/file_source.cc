// The `file` source: stream JSONL or CSV files (optionally gzip or zstd compressed) matching a
// glob into batches, in constant memory.

#include <glob.h>
#include <sys/stat.h>

#include <algorithm>
#include <deque>
#include <optional>
#include <vector>

#include "sluice/connectors/files/files.h"
#include "sluice/connectors/files/files_internal.h"
#include "sluice/io/stream.h"

namespace sluice {

using files_internal::BoolOr;
using files_internal::IntOr;
using files_internal::StringOr;

namespace {

constexpr int64_t kDefaultBatchRows = 8192;
constexpr size_t kReadChunk = size_t{1} << 20;

struct SourceConfig {
  std::string pattern;
  std::optional<io::Format> format;  // nullopt: by extension
  std::optional<io::Codec> codec;    // nullopt: by extension
  SchemaPtr schema;                  // null: inferred from the first file
  int64_t batch_rows = kDefaultBatchRows;
  char delimiter = ',';
  bool header = true;
  io::OnError on_error = io::OnError::kFail;
  bool dead_letter = false;  // on_error: dead_letter — skipped records go to that output
  int32_t srid = 0;          // geometries without one: 0 keeps WKT's none, GeoJSON's 4326
  std::string geometry_column = "geometry";
};

Result<SourceConfig> ParseSourceOptions(const NodeOptions& o) {
  SourceConfig c;
  c.pattern = StringOr(o, "path", "");
  if (c.pattern.empty()) return o.ErrorAt("path", "a file path or glob is required");
  SLUICE_ASSIGN_OR_RETURN(c.format, files_internal::ParseFormatOption(o));
  SLUICE_ASSIGN_OR_RETURN(c.codec, files_internal::ParseCompressionOption(o));
  c.batch_rows = IntOr(o, "batch_rows", kDefaultBatchRows);
  if (c.batch_rows < 1) return o.ErrorAt("batch_rows", "must be at least 1");
  SLUICE_ASSIGN_OR_RETURN(c.delimiter, files_internal::ParseDelimiterOption(o));
  c.header = BoolOr(o, "header", true);
  const std::string on_error = StringOr(o, "on_error", "fail");
  if (on_error == "skip" || on_error == "dead_letter") {
    c.on_error = io::OnError::kSkip;
    c.dead_letter = on_error == "dead_letter";
  } else if (on_error != "fail") {
    return o.ErrorAt("on_error",
                     fmt::format("'{}' is not one of fail, skip, dead_letter", on_error));
  }
  SLUICE_ASSIGN_OR_RETURN(c.schema, o.GetSchema("schema"));
  const int64_t srid = IntOr(o, "srid", 0);
  if (srid < 0 || srid > 999999) return o.ErrorAt("srid", "must be an SRID (e.g. 4326) or 0");
  c.srid = static_cast<int32_t>(srid);
  c.geometry_column = StringOr(o, "geometry_column", "geometry");
  if (c.geometry_column.empty()) return o.ErrorAt("geometry_column", "must not be empty");
  return c;
}

/// Produce the rows of every file matching a glob, file after file, in name order. Next() is
/// called from one thread; the files are only read.
class FileSource final : public Source {
 public:
  FileSource(std::string id, SourceConfig config)
      : id_(std::move(id)), config_(std::move(config)), chunk_(kReadChunk) {}

  Status Open(NodeContext* ctx) override {
    ctx_ = ctx;
    auto files = ExpandGlob(config_.pattern);
    if (!files.ok()) return files.status().WithContext("node '{}'", id_);
    files_ = std::move(*files);
    return Status::OK();
  }

  Result<BatchPtr> Next(uint64_t seq) override {
    while (ready_.empty()) {
      // A file of bad records must not pile up its dead letters in memory until a good row
      // comes: hand them out (with no rows) a batch's worth at a time.
      if (ctx_ != nullptr && ctx_->dead_letters()->size() >= config_.batch_rows) {
        return Batch::MakeUnchecked(MakeSchema({}), {}, 0);
      }
      if (ctx_ != nullptr && ctx_->cancelled())
        return Status::Cancelled("node '{}': cancelled", id_);
      if (stream_ == nullptr) {
        if (next_file_ >= files_.size()) return BatchPtr();
        SLUICE_RETURN_NOT_OK(OpenNextFile());
      }
      auto n = stream_->Read(chunk_.data(), chunk_.size());
      if (!n.ok()) return WithPath(n.status());
      std::vector<BatchPtr> batches;
      Status st = *n == 0 ? decoder_->Finish(&batches)
                          : decoder_->Feed(std::string_view(chunk_.data(), *n), &batches);
      CountSkipped();
      if (!st.ok()) return st;
      for (auto& b : batches) {
        file_rows_ += b->num_rows();
        ready_.push_back(std::move(b));
      }
      if (*n == 0) {
        // Later files are decoded with the schema of the first file that had rows, so every
        // batch has the same one (a header-only CSV file says nothing of the column types).
        if (config_.schema == nullptr && file_rows_ > 0) config_.schema = decoder_->schema();
        stream_.reset();
        decoder_.reset();
      }
    }
    BatchPtr batch = std::move(ready_.front());
    ready_.pop_front();
    return batch;
  }

  SchemaPtr schema() const override { return config_.schema; }
  int64_t EstimatedRows() const override { return -1; }

 private:
  Status OpenNextFile() {
    path_ = files_[next_file_++];
    io::Format format;
    if (config_.format.has_value()) {
      format = *config_.format;
    } else {
      auto f = io::FormatFromPath(path_);
      if (!f.ok()) {
        return Status::ConfigError("node '{}': {}; set option 'format'", id_, f.status().message());
      }
      format = *f;
    }
    const io::Codec codec = config_.codec.value_or(io::CodecFromPath(path_));
    io::DecodeOptions options;
    options.schema = config_.schema;
    options.batch_rows = config_.batch_rows;
    options.on_error = config_.on_error;
    if (config_.dead_letter && ctx_ != nullptr) {
      // Sent with the batch of the Next call that read the record (file reads need no ack).
      options.on_skip = [ctx = ctx_, path = path_](int64_t line, const Status& error,
                                                   std::string_view record) {
        ctx->DeadLetter(fmt::format("{}:{}", path, line), error.message(), record);
      };
    }
    options.source_name = path_;
    options.delimiter = config_.delimiter;
    options.header = config_.header;
    options.srid = config_.srid;
    options.geometry_column = config_.geometry_column;
    SLUICE_ASSIGN_OR_RETURN(decoder_, io::MakeDecoder(format, std::move(options)));
    SLUICE_ASSIGN_OR_RETURN(auto raw, io::OpenFileStream(path_));
    SLUICE_ASSIGN_OR_RETURN(stream_, io::MakeDecompressingStream(std::move(raw), codec));
    skipped_reported_ = 0;
    file_rows_ = 0;
    if (ctx_ != nullptr) ctx_->stats()->AddCounter("files", 1);
    return Status::OK();
  }

  // Names the file in errors that do not already (decompression errors).
  Status WithPath(const Status& st) const {
    if (st.message().find(path_) != std::string::npos) return st;
    return st.WithContext("{}", path_);
  }

  void CountSkipped() {
    if (decoder_ == nullptr) return;
    const int64_t skipped = decoder_->skipped_rows();
    // Routed records are counted as dead_letter_records by the engine, not as discarded.
    if (ctx_ != nullptr && skipped > skipped_reported_ && !config_.dead_letter) {
      ctx_->stats()->discarded_rows.fetch_add(skipped - skipped_reported_,
                                              std::memory_order_relaxed);
    }
    skipped_reported_ = skipped;
  }

  std::string id_;
  SourceConfig config_;
  NodeContext* ctx_ = nullptr;
  std::vector<std::string> files_;
  size_t next_file_ = 0;
  std::string path_;  // the file being read
  std::unique_ptr<io::InputStream> stream_;
  std::unique_ptr<io::Decoder> decoder_;
  int64_t skipped_reported_ = 0;
  int64_t file_rows_ = 0;  // rows decoded from the file being read
  std::vector<char> chunk_;
  std::deque<BatchPtr> ready_;
};

}  // namespace

Result<std::vector<std::string>> ExpandGlob(const std::string& pattern) {
  glob_t g{};
  const int rc = ::glob(pattern.c_str(), GLOB_BRACE, nullptr, &g);
  std::vector<std::string> files;
  if (rc == 0) {
    for (size_t i = 0; i < g.gl_pathc; ++i) {
      struct stat st {};
      if (::stat(g.gl_pathv[i], &st) == 0 && S_ISREG(st.st_mode)) files.emplace_back(g.gl_pathv[i]);
    }
  }
  globfree(&g);
  if (rc != 0 && rc != GLOB_NOMATCH) {
    return Status::IOError("cannot expand '{}': glob failed with code {}", pattern, rc);
  }
  if (files.empty()) return Status::NotFound("no file matches '{}'", pattern);
  std::sort(files.begin(), files.end());
  return files;
}

const OptionSchema& FileSourceOptions() {
  static const OptionSchema kOptions = {
      {"path",
       OptionType::kString,
       "",
       "File or glob to read (e.g. data/*.jsonl.gz); files are read in name order.",
       true,
       {}},
      {"format",
       OptionType::kEnum,
       "auto",
       "Record format; auto picks it by file extension (.jsonl .csv .geojson). geojson reads a "
       "FeatureCollection of any size as a stream, or one feature per line.",
       false,
       {"auto", "jsonl", "csv", "geojson"}},
      {"compression",
       OptionType::kEnum,
       "auto",
       "Compression; auto picks it by extension (.gz, .zst).",
       false,
       {"auto", "none", "gzip", "zstd"}},
      {"schema",
       OptionType::kMap,
       "",
       "Column name -> type; when absent, types are inferred from the first 1000 records.",
       false,
       {}},
      {"batch_rows", OptionType::kInt, "8192", "Rows per batch.", false, {}},
      {"delimiter",
       OptionType::kString,
       ",",
       "CSV field separator (one character, or \\t).",
       false,
       {}},
      {"header", OptionType::kBool, "true", "CSV: the first record names the columns.", false, {}},
      {"srid",
       OptionType::kInt,
       "0",
       "SRID of geometries whose text carries none (WKT without SRID=; GeoJSON). 0: WKT keeps "
       "none, GeoJSON takes its file's crs or 4326.",
       false,
       {}},
      {"geometry_column",
       OptionType::kString,
       "geometry",
       "GeoJSON: the column that holds each feature's geometry (EWKB).",
       false,
       {}},
      {"on_error",
       OptionType::kEnum,
       "fail",
       "What to do with a malformed record (or a value that does not fit `schema`): fail the "
       "run, skip it and count it as discarded, or send it to the `<id>.dead_letter` output "
       "(position path:line, the error, the record's text) and count it.",
       false,
       {"fail", "skip", "dead_letter"}},
  };
  return kOptions;
}

Result<std::unique_ptr<Source>> MakeFileSource(const NodeOptions& options) {
  SLUICE_ASSIGN_OR_RETURN(SourceConfig config, ParseSourceOptions(options));
  if (config.schema == nullptr) {
    // Infer the schema now, from the first batch of the first file, so that the pipeline can
    // type-check downstream expressions and align unions before the run. If the peek fails
    // (no file yet, a malformed record), the run reports it with the file and line instead.
    FileSource peek(options.id(), config);
    if (peek.Open(nullptr).ok()) {
      auto first = peek.Next(0);
      if (first.ok() && *first != nullptr) config.schema = (*first)->schema();
    }
  }
  return std::unique_ptr<Source>(new FileSource(options.id(), std::move(config)));
}

}  // namespace sluice
