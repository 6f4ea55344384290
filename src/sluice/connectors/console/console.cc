#include "sluice/connectors/console/console.h"

#include <cstdio>

#include "sluice/io/jsonl.h"

namespace sluice {

namespace {

/// Discards every batch; acknowledges at once. The sink for benchmarks and dry runs.
class NullSink final : public Sink {
 public:
  Status Write(const BatchPtr& batch, AckSet acks) override { return Status::OK(); }
  std::string LossyBecause() const override { return "discards every row"; }
  bool WritesInline() const override { return true; }  // it keeps nothing
};

/// Writes batches to standard output as JSON lines; acknowledges after fflush.
class StdoutSink final : public Sink {
 public:
  explicit StdoutSink(int64_t limit) : limit_(limit) {}
  Status Write(const BatchPtr& batch, AckSet acks) override {
    BatchPtr b = batch;
    if (limit_ >= 0) {
      if (written_ >= limit_) return Status::OK();
      if (b->num_rows() > limit_ - written_) b = b->Slice(0, limit_ - written_);
    }
    if (encoder_ == nullptr || schema_ != b->schema()) {
      schema_ = b->schema();
      encoder_ = std::make_unique<io::JsonlEncoder>(schema_);
    }
    buffer_.clear();
    encoder_->Encode(*b, &buffer_);
    if (std::fwrite(buffer_.data(), 1, buffer_.size(), stdout) != buffer_.size() ||
        std::fflush(stdout) != 0) {
      return Status::IOError("writing to standard output failed");
    }
    written_ += b->num_rows();
    return Status::OK();
  }

  std::string LossyBecause() const override {
    if (limit_ >= 0) return fmt::format("prints only the first {} rows (limit)", limit_);
    // Standard output is not durable storage: a row printed to a closed pipe or a terminal
    // is gone, so it does not count as archived either.
    return "prints rows to standard output, which keeps nothing";
  }

 private:
  int64_t limit_;
  int64_t written_ = 0;
  SchemaPtr schema_;
  std::unique_ptr<io::JsonlEncoder> encoder_;
  std::string buffer_;
};

}  // namespace

void RegisterConsoleNodes(NodeRegistry* registry) {
  registry->AddSink("null", "Discard every row (acknowledged at once).", {},
                    [](const NodeOptions&) -> Result<std::unique_ptr<Sink>> {
                      return std::unique_ptr<Sink>(new NullSink());
                    });
  registry->AddSink(
      "stdout", "Print rows to standard output as JSON lines.",
      {{"limit", OptionType::kInt, "-1", "Print at most this many rows (-1: all).", false, {}}},
      [](const NodeOptions& o) -> Result<std::unique_ptr<Sink>> {
        return std::unique_ptr<Sink>(new StdoutSink(o.GetInt("limit")));
      });
}

}  // namespace sluice
