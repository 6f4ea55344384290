#include "sluice/transforms/encode.h"

namespace sluice {

const OptionSchema& ObjectEncodingOptions() {
  static const OptionSchema kOptions = {
      {"format", OptionType::kEnum, "jsonl", "Record format.", false, {"jsonl", "csv"}},
      {"compression",
       OptionType::kEnum,
       "gzip",
       "Compression of each object.",
       false,
       {"gzip", "zstd", "none"}},
      {"level",
       OptionType::kInt,
       "0",
       "Compression level (gzip 1-12, zstd 1-19); 0: the codec's default (6 / 3).",
       false,
       {}},
      {"key_column",
       OptionType::kString,
       "id",
       "Column whose first and last values fill {first_key}/{last_key} of object keys and whose "
       "min/max the manifest records (empty: none).",
       false,
       {}},
  };
  return kOptions;
}

Result<io::ObjectEncoding> ObjectEncodingFromNode(const NodeOptions& o) {
  io::ObjectEncoding e;
  if (o.Has("format")) {
    auto format = io::ParseFormat(o.GetString("format"));
    if (!format.ok()) return o.ErrorAt("format", format.status().message());
    e.format = *format;
  }
  if (o.Has("compression")) {
    auto codec = io::ParseCodec(o.GetString("compression"));
    if (!codec.ok()) return o.ErrorAt("compression", codec.status().message());
    e.codec = *codec;
  }
  if (o.Has("level")) e.level = static_cast<int>(o.GetInt("level"));
  if (e.level < 0) return o.ErrorAt("level", "must not be negative");
  if (o.Has("key_column")) e.key_column = o.GetString("key_column");
  return e;
}

namespace {

class EncodeTransform final : public Transform {
 public:
  explicit EncodeTransform(io::ObjectEncoding encoding) : encoder_(std::move(encoding)) {}

  static Result<std::unique_ptr<Transform>> Make(const NodeOptions& o) {
    SLUICE_ASSIGN_OR_RETURN(io::ObjectEncoding encoding, ObjectEncodingFromNode(o));
    return std::unique_ptr<Transform>(new EncodeTransform(std::move(encoding)));
  }

  Status Open(NodeContext* ctx) override {
    ctx_ = ctx;
    return Status::OK();
  }

  Result<SchemaPtr> Bind(const std::vector<SchemaPtr>& inputs) override {
    const std::string& key = encoder_.encoding().key_column;
    if (!key.empty() && inputs[0]->FieldIndex(key) < 0) {
      return Status::ConfigError("option 'key_column': '{}' is not a column of the input ({})", key,
                                 inputs[0]->ToString());
    }
    return encoded::Schema();
  }

  Status Process(const BatchPtr& batch, int input, Emitter* out) override {
    if (batch->num_rows() == 0) return Status::OK();
    SLUICE_RETURN_NOT_OK(encoder_.Encode(*batch, &object_));
    const std::string& key = encoder_.encoding().key_column;
    if (!key.empty() && !object_.has_keys) {
      return Status::Invalid("key_column '{}' is not a column of the input ({})", key,
                             batch->schema()->ToString());
    }
    if (ctx_ != nullptr) {
      ctx_->stats()->AddPhase("serialize", object_.serialize_ns);
      ctx_->stats()->AddPhase("compress", object_.compress_ns);
    }
    // The tags (database, table, date, ...) name the object at the sink.
    return out->Emit(encoded::ToBatch(object_, batch->tags()));
  }

 private:
  NodeContext* ctx_ = nullptr;
  io::ObjectEncoder encoder_;
  io::EncodedObject object_;  // reused between batches
};

}  // namespace

void RegisterEncodeNode(NodeRegistry* registry) {
  registry->AddTransform(
      "encode",
      "Serialize each batch as JSONL or CSV and compress it: one object per batch, for an "
      "object_store sink. Run it with `parallelism: N` to compress N batches at once.",
      ObjectEncodingOptions(), &EncodeTransform::Make, /*stateless=*/true);
}

}  // namespace sluice
