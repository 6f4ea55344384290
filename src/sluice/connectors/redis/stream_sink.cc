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
    SLUICE_ASSIGN_OR_RETURN(client_, RedisClient::Make(options_, ctx->clock()));
    return Status::OK();
  }

  Status Write(const BatchPtr& batch, AckSet acks) override {
    if (ctx_->dry_run() || batch->num_rows() == 0) return Status::OK();
    const auto& fields = batch->schema()->fields();
    std::vector<std::string> values(fields.size());
    std::vector<std::string_view> argv;
    for (int64_t start = 0; start < batch->num_rows(); start += kChunkRows) {
      const int64_t end = std::min(batch->num_rows(), start + kChunkRows);
      for (int64_t row = start; row < end; ++row) {
        argv.clear();
        argv.push_back("XADD");
        argv.push_back(stream_);
        if (maxlen_ > 0) {
          argv.push_back("MAXLEN");
          argv.push_back("~");
          argv.push_back(maxlen_text_);
        }
        argv.push_back("*");
        for (size_t c = 0; c < fields.size(); ++c) {
          const Column& col = batch->column(static_cast<int>(c));
          if (col.IsNull(row)) continue;
          values[c].clear();
          AppendFieldText(col, row, &values[c]);
          argv.push_back(fields[c].name);
          argv.push_back(values[c]);
        }
        if (argv.size() == (maxlen_ > 0 ? 5u : 2u) + 1) {
          // Every field NULL: XADD needs one pair; an empty field name says "no value".
          argv.push_back("");
          argv.push_back("");
        }
        SLUICE_RETURN_NOT_OK(client_->Append(argv));
      }
      SLUICE_ASSIGN_OR_RETURN(std::vector<RedisReply> replies,
                              client_->Replies(static_cast<size_t>(end - start)));
      for (size_t i = 0; i < replies.size(); ++i) {
        Status st = client_->ReplyError(replies[i], "XADD");
        if (!st.ok()) {
          return Status(st.code(), fmt::format("stream '{}' row {} of the batch: {}", stream_,
                                               start + static_cast<int64_t>(i), st.message()));
        }
      }
    }
    ctx_->stats()->AddCounter("entries_added", batch->num_rows());
    return Status::OK();  // every reply OK: `acks` is released here
  }

 private:
  NodeContext* ctx_ = nullptr;
  const RedisOptions options_;
  const std::string stream_;
  const int64_t maxlen_;
  std::string maxlen_text_;
  std::unique_ptr<RedisClient> client_;
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
