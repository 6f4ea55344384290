#include "sluice/transforms/encode.h"

#include <chrono>

#include "sluice/core/time.h"
#include "sluice/io/compression.h"
#include "sluice/io/format.h"

namespace sluice {

std::string KeyText(const Column& column, int64_t row) {
  if (row < 0 || row >= column.length() || column.IsNull(row)) return "";
  switch (column.type()) {
    case TypeId::kInt64:
      return std::to_string(column.GetInt64(row));
    case TypeId::kFloat64:
      return fmt::format("{}", column.GetFloat64(row));
    case TypeId::kBool:
      return column.GetBool(row) ? "true" : "false";
    case TypeId::kTimestamp: {
      std::string iso = FormatTimestamp(column.GetInt64(row));
      std::string compact;
      for (char c : iso) {
        if (c != '-' && c != ':') compact.push_back(c);
      }
      return compact;
    }
    default:
      return std::string(column.GetView(row));
  }
}

namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

class EncodeTransform final : public Transform {
 public:
  static Result<std::unique_ptr<Transform>> Make(const NodeOptions& o) {
    auto t = std::make_unique<EncodeTransform>();
    auto format = io::ParseFormat(o.GetString("format"));
    if (!format.ok()) return o.ErrorAt("format", format.status().message());
    t->format_ = *format;
    auto codec = io::ParseCodec(o.GetString("compression"));
    if (!codec.ok()) return o.ErrorAt("compression", codec.status().message());
    t->codec_ = *codec;
    t->level_ = static_cast<int>(o.GetInt("level"));
    t->key_column_ = o.GetString("key_column");
    t->extension_ =
        std::string(io::FormatExtension(t->format_)) + std::string(io::CodecExtension(t->codec_));
    return std::unique_ptr<Transform>(std::move(t));
  }

  Status Open(NodeContext* ctx) override {
    ctx_ = ctx;
    return Status::OK();
  }

  Result<SchemaPtr> Bind(const std::vector<SchemaPtr>& inputs) override {
    if (!key_column_.empty() && inputs[0]->FieldIndex(key_column_) < 0) {
      return Status::ConfigError("option 'key_column': '{}' is not a column of the input ({})",
                                 key_column_, inputs[0]->ToString());
    }
    return encoded::Schema();
  }

  Status Process(const BatchPtr& batch, int input, Emitter* out) override {
    if (batch->num_rows() == 0) return Status::OK();
    SLUICE_RETURN_NOT_OK(PrepareFor(batch->schema()));
    // The payload holds the data columns only; '_' columns are metadata.
    std::vector<Column> data;
    for (int i : data_columns_) data.push_back(batch->column(i));
    BatchPtr payload = Batch::MakeUnchecked(data_schema_, std::move(data), batch->num_rows());

    int64_t t0 = NowNs();
    raw_.clear();
    encoder_->Begin(&raw_);
    encoder_->Encode(*payload, &raw_);
    int64_t t1 = NowNs();
    std::string compressed;
    if (codec_ == io::Codec::kNone) {
      compressed = raw_;
    } else {
      SLUICE_ASSIGN_OR_RETURN(compressed, io::Compress(codec_, raw_, level_));
    }
    const int64_t t2 = NowNs();
    if (ctx_ != nullptr) {
      ctx_->stats()->AddPhase("serialize", t1 - t0);
      ctx_->stats()->AddPhase("compress", t2 - t1);
    }

    std::vector<ColumnBuilder> b;
    for (const auto& f : encoded::Schema()->fields()) b.emplace_back(f.type, 1);
    b[0].AppendString(compressed);
    b[1].AppendInt64(batch->num_rows());
    b[2].AppendInt64(static_cast<int64_t>(raw_.size()));
    const Column* key = key_column_.empty() ? nullptr : batch->GetColumn(key_column_);
    if (key != nullptr) {
      b[3].AppendString(KeyText(*key, 0));
      b[4].AppendString(KeyText(*key, batch->num_rows() - 1));
    } else {
      b[3].AppendNull();
      b[4].AppendNull();
    }
    b[5].AppendString(extension_);
    constexpr const char* kCopied[] = {encoded::kDatabase, encoded::kTable, encoded::kDate};
    for (int k = 0; k < 3; ++k) {
      const Column* meta = batch->GetColumn(kCopied[k]);
      if (meta != nullptr && meta->type() == TypeId::kString && !meta->IsNull(0)) {
        b[static_cast<size_t>(6 + k)].AppendString(meta->GetView(0));
      } else {
        b[static_cast<size_t>(6 + k)].AppendNull();
      }
    }
    std::vector<Column> cols;
    for (auto& builder : b) cols.push_back(builder.Finish());
    return out->Emit(Batch::MakeUnchecked(encoded::Schema(), std::move(cols), 1));
  }

 private:
  Status PrepareFor(const SchemaPtr& schema) {
    if (schema == input_schema_ && encoder_ != nullptr) return Status::OK();
    if (!key_column_.empty() && schema->FieldIndex(key_column_) < 0) {
      return Status::Invalid("key_column '{}' is not a column of the input ({})", key_column_,
                             schema->ToString());
    }
    data_columns_.clear();
    std::vector<Field> fields;
    for (int i = 0; i < schema->num_fields(); ++i) {
      if (!schema->field(i).name.starts_with("_")) {
        data_columns_.push_back(i);
        fields.push_back(schema->field(i));
      }
    }
    data_schema_ = MakeSchema(std::move(fields));
    SLUICE_ASSIGN_OR_RETURN(encoder_, io::MakeEncoder(format_, data_schema_));
    input_schema_ = schema;
    return Status::OK();
  }

  NodeContext* ctx_ = nullptr;
  io::Format format_ = io::Format::kJsonl;
  io::Codec codec_ = io::Codec::kGzip;
  int level_ = io::kDefaultLevel;
  std::string key_column_;
  std::string extension_;
  SchemaPtr input_schema_;
  SchemaPtr data_schema_;
  std::vector<int> data_columns_;
  std::unique_ptr<io::Encoder> encoder_;
  std::string raw_;  // reused between batches
};

}  // namespace

void RegisterEncodeNode(NodeRegistry* registry) {
  registry->AddTransform(
      "encode",
      "Serialize each batch as JSONL or CSV and compress it: one object per batch, for an "
      "object_store sink. Run it with `parallelism: N` to compress N batches at once.",
      {
          {"format", OptionType::kEnum, "jsonl", "Record format.", false, {"jsonl", "csv"}},
          {"compression", OptionType::kEnum, "gzip", "Codec.", false, {"gzip", "zstd", "none"}},
          {"level",
           OptionType::kInt,
           "0",
           "Compression level; 0 = the codec's default.",
           false,
           {}},
          {"key_column",
           OptionType::kString,
           "id",
           "Column whose first and last values name the object (empty: none).",
           false,
           {}},
      },
      &EncodeTransform::Make, /*stateless=*/true);
}

}  // namespace sluice
