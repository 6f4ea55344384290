#include "sluice/connectors/redis/stream_sink.h"

#include <charconv>

#include "sluice/connectors/redis/redis.h"
#include "sluice/connectors/redis/redis_client.h"
#include "sluice/core/time.h"

namespace sluice::redis {

namespace {

constexpr int64_t kChunkRows = 1000;

void AppendIso(int64_t micros, std::string* out) {
  int64_t frac = micros % kMicrosPerSecond;
  if (frac < 0) frac += kMicrosPerSecond;
  char buf[48];
  int n = FormatTimestamp(micros - frac, buf);  // "...SSZ": whole seconds print no fraction
  out->append(buf, static_cast<size_t>(n - 1));
  char digits[8];
  const auto len = fmt::format_to_n(digits, sizeof(digits), ".{:06}Z", frac).size;
  out->append(digits, len);
}

class StreamSink final : public Sink {
 public:
  StreamSink(RedisOptions options, std::string stream, int64_t maxlen)
      : options_(std::move(options)), stream_(std::move(stream)), maxlen_(maxlen) {
    if (maxlen_ > 0) maxlen_text_ = std::to_string(maxlen_);
  }

  Status Open(NodeContext* ctx) override {
    ctx_ = ctx;
    if (ctx->dry_run()) return Status::OK();
    SLUICE_ASSIGN_OR_RETURN(client_,
                            RedisClient::Make(options_, ctx->clock(), ctx->cancelled_flag()));
    return Status::OK();
  }

  Status Write(const BatchPtr& batch, AckSet acks) override {
    if (ctx_->dry_run() || batch->num_rows() == 0) return Status::OK();
    const int64_t reconnects_before = client_->reconnects();
    const int64_t retries_before = client_->retry_stats().retries;
    int64_t resent = 0;
    for (int64_t start = 0; start < batch->num_rows(); start += kChunkRows) {
      const int64_t end = std::min(batch->num_rows(), start + kChunkRows);
      int64_t next = start;  // the first row of the chunk not answered OK
      bool sent = false;     // whether the last attempt sent [next, end)
      SLUICE_RETURN_NOT_OK(client_->WithRetry([&] {
        if (sent) resent += end - next;
        sent = false;
        return AddRows(*batch, &next, end, &sent);
      }));
    }
    NodeStats* stats = ctx_->stats();
    stats->AddCounter("entries_added", batch->num_rows());
    if (client_->reconnects() > reconnects_before) {
      stats->AddCounter("reconnects", client_->reconnects() - reconnects_before);
    }
    if (client_->retry_stats().retries > retries_before) {
      stats->AddCounter("retries", client_->retry_stats().retries - retries_before);
    }
    if (resent > 0) stats->AddCounter("resent_entries", resent);
    return Status::OK();  // every reply OK: `acks` is released here
  }

 private:
  // Pipeline one XADD per row of [*next, end) and read their replies in order, moving *next
  // past each row answered OK while every reply before it was OK too. After a lost connection
  // or a reply saying the server will answer soon (-LOADING after a restart) the caller sends
  // [*next, end) again: rows whose reply was lost (or that followed a refused one) may have
  // been added already, and are then added twice. Any other error reply fails the batch.
  // `*sent` is set once the rows are handed to the connection.
  Status AddRows(const Batch& batch, int64_t* next, int64_t end, bool* sent) {
    const auto& fields = batch.schema()->fields();
    values_.resize(fields.size());
    for (int64_t row = *next; row < end; ++row) {
      argv_.clear();
      argv_.push_back("XADD");
      argv_.push_back(stream_);
      if (maxlen_ > 0) {
        argv_.push_back("MAXLEN");
        argv_.push_back("~");
        argv_.push_back(maxlen_text_);
      }
      argv_.push_back("*");
      const size_t head = argv_.size();
      for (size_t c = 0; c < fields.size(); ++c) {
        const Column& col = batch.column(static_cast<int>(c));
        if (col.IsNull(row)) continue;
        values_[c].clear();
        AppendFieldText(col, row, &values_[c]);
        argv_.push_back(fields[c].name);
        argv_.push_back(values_[c]);
      }
      if (argv_.size() == head) {
        // Every field NULL: XADD needs one pair; an empty field name says "no value".
        argv_.push_back("");
        argv_.push_back("");
      }
      SLUICE_RETURN_NOT_OK(client_->Append(argv_));
    }
    *sent = true;
    // Every reply is read, even after an error reply, so that the connection stays in step.
    Status first_error;
    for (int64_t row = *next; row < end; ++row) {
      SLUICE_ASSIGN_OR_RETURN(RedisReply reply, client_->Reply());
      Status st = client_->ReplyError(reply, "XADD");
      if (!st.ok() && first_error.ok()) {
        first_error = Status(st.code(), fmt::format("stream '{}' row {} of the batch: {}", stream_,
                                                    row, st.message()));
      }
      if (first_error.ok()) *next = row + 1;
    }
    return first_error;
  }

  NodeContext* ctx_ = nullptr;
  const RedisOptions options_;
  const std::string stream_;
  const int64_t maxlen_;
  std::string maxlen_text_;
  std::unique_ptr<RedisClient> client_;
  // Scratch for AddChunk: one row's field texts and the XADD arguments (views of them).
  std::vector<std::string> values_;
  std::vector<std::string_view> argv_;
};

}  // namespace

void AppendFieldText(const Column& column, int64_t row, std::string* out) {
  char buf[48];
  switch (column.type()) {
    case TypeId::kBool:
      out->append(column.GetBool(row) ? "true" : "false");
      break;
    case TypeId::kInt64: {
      auto r = std::to_chars(buf, buf + sizeof(buf), column.GetInt64(row));
      out->append(buf, r.ptr);
      break;
    }
    case TypeId::kFloat64: {
      auto r = std::to_chars(buf, buf + sizeof(buf), column.GetFloat64(row));
      out->append(buf, r.ptr);
      break;
    }
    case TypeId::kTimestamp:
      AppendIso(column.GetInt64(row), out);
      break;
    case TypeId::kString:
    case TypeId::kJson:
    case TypeId::kBytes:
    case TypeId::kGeometry:
      out->append(column.GetView(row));
      break;
  }
}

OptionSchema StreamSinkOptionSpecs() {
  OptionSchema o = ConnectionOptionSpecs();
  const OptionSchema own = {
      {"stream", OptionType::kString, "", "The stream key to XADD to.", true, {}},
      {"maxlen",
       OptionType::kInt,
       "0",
       "Trim the stream to about this many entries (XADD MAXLEN ~ n); 0: no trimming.",
       false,
       {}},
  };
  o.insert(o.end(), own.begin(), own.end());
  return o;
}

Result<std::unique_ptr<Sink>> MakeStreamSink(const NodeOptions& o) {
  SLUICE_ASSIGN_OR_RETURN(RedisOptions options, ConnectionOptionsFrom(o));
  const std::string stream = o.GetString("stream");
  if (stream.empty()) return o.ErrorAt("stream", "must not be empty");
  const int64_t maxlen = o.GetInt("maxlen");
  if (maxlen < 0) return o.ErrorAt("maxlen", "must be >= 0 (0: no trimming)");
  return std::unique_ptr<Sink>(new StreamSink(std::move(options), stream, maxlen));
}

}  // namespace sluice::redis
