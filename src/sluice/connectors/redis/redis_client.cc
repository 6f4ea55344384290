#include "sluice/connectors/redis/redis_client.h"

#include <sys/time.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <mutex>
#include <utility>

#include "sluice/core/log.h"

namespace sluice::redis {

namespace {

timeval ToTimeval(int64_t micros) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(micros / 1'000'000);
  tv.tv_usec = static_cast<suseconds_t>(micros % 1'000'000);
  return tv;
}

// A blocking hiredis socket with SO_RCVTIMEO/SO_SNDTIMEO reports an expired timeout as an I/O
// error with errno EAGAIN; a connect that ran out of time as ETIMEDOUT.
bool IsTimeoutErrno(int e) { return e == EAGAIN || e == EWOULDBLOCK || e == ETIMEDOUT; }

std::string_view CommandName(const std::vector<std::string_view>& argv) { return argv.front(); }

}  // namespace

StatusCode ClassifyRedisError(std::string_view message) {
  const std::string_view word = message.substr(0, message.find(' '));
  if (word == "LOADING" || word == "BUSY" || word == "TRYAGAIN" || word == "MASTERDOWN" ||
      word == "CLUSTERDOWN") {
    return StatusCode::kUnavailable;
  }
  if (word == "NOAUTH" || word == "WRONGPASS" || word == "NOPERM") {
    return StatusCode::kPermissionDenied;
  }
  if (word == "NOGROUP") return StatusCode::kNotFound;
  return StatusCode::kInvalidArgument;
}

RedisClient::RedisClient(RedisOptions options, RedisUrl url, Clock* clock,
                         const std::atomic<bool>* cancelled)
    : options_(std::move(options)),
      url_(std::move(url)),
      where_(RedactUrl(options_.url)),
      clock_(clock),
      cancelled_(cancelled),
      breaker_(options_.breaker, clock) {}

RedisClient::~RedisClient() { Disconnect(); }

Result<std::unique_ptr<RedisClient>> RedisClient::Make(const RedisOptions& options, Clock* clock,
                                                       const std::atomic<bool>* cancelled) {
  SLUICE_ASSIGN_OR_RETURN(RedisUrl url, ParseRedisUrl(options.url));
  if (!options.password.empty()) url.password = options.password;
  // hiredis writes with write(2): a request sent to a server that has just gone away would
  // raise SIGPIPE and kill the process instead of failing the write (EPIPE), which is retried.
  static std::once_flag ignore_sigpipe;
  std::call_once(ignore_sigpipe, [] { std::signal(SIGPIPE, SIG_IGN); });
  std::unique_ptr<RedisClient> client(new RedisClient(options, std::move(url), clock, cancelled));
  SLUICE_RETURN_NOT_OK(client->Connect());
  return client;
}

void RedisClient::Disconnect() {
  if (context_ != nullptr) redisFree(context_);
  context_ = nullptr;
  pending_names_.clear();
  pending_read_ = 0;
}

Status RedisClient::EnsureConnected() { return context_ != nullptr ? Status::OK() : Connect(); }

Status RedisClient::Connect() {
  Disconnect();
  errno = 0;
  redisContext* c =
      redisConnectWithTimeout(url_.host.c_str(), url_.port, ToTimeval(options_.connect_timeout_us));
  const int saved_errno = errno;
  if (c == nullptr) return Status::Unavailable("{}: connecting: out of memory", where_);
  if (c->err != 0) {
    const std::string why = c->errstr;
    redisFree(c);
    const bool timed_out =
        IsTimeoutErrno(saved_errno) || why.find("timed out") != std::string::npos;
    if (timed_out) {
      return Status::Timeout("{}: connecting: no answer within {} ms ({})", where_,
                             options_.connect_timeout_us / 1000, why);
    }
    return Status::Unavailable("{}: connecting: {}", where_, why);
  }
  context_ = c;
  ++connects_;
  if (options_.command_timeout_us > 0 &&
      redisSetTimeout(context_, ToTimeval(options_.command_timeout_us)) != REDIS_OK) {
    return ConnectionError("setting the command timeout", errno);
  }
  if (!url_.password.empty()) {
    std::vector<std::string_view> auth = {"AUTH"};
    if (!url_.user.empty()) auth.push_back(url_.user);
    auth.push_back(url_.password);
    SLUICE_RETURN_NOT_OK(SetupCommand(auth, "AUTH"));
  }
  if (url_.db != 0) {
    const std::string db = std::to_string(url_.db);
    SLUICE_RETURN_NOT_OK(SetupCommand({"SELECT", db}, "SELECT " + db));
  }
  if (!lost_.empty()) {
    ++reconnects_;
    Log(LogLevel::kWarn, "{}: reconnected {} ms after: {}", where_,
        (clock_->NowMicros() - lost_at_us_) / 1000, lost_);
    lost_.clear();
  }
  return Status::OK();
}

Status RedisClient::SetupCommand(const std::vector<std::string_view>& argv,
                                 std::string_view shown) {
  FillArgv(argv);
  errno = 0;
  RedisReply reply(static_cast<redisReply*>(
      redisCommandArgv(context_, static_cast<int>(argv_.size()), argv_.data(), argv_len_.data())));
  if (!reply.has_value()) return ConnectionError(shown, errno);
  if (!reply.is_error()) return Status::OK();
  // The server's words for a failed AUTH never echo the password; the connection is useless.
  const std::string message(reply.str());
  Disconnect();
  StatusCode code = ClassifyRedisError(message);
  if (code == StatusCode::kInvalidArgument) {
    code = shown == "AUTH" ? StatusCode::kPermissionDenied : StatusCode::kConfigError;
  }
  return Status(code, fmt::format("{}: {}: {}", where_, shown, message));
}

void RedisClient::FillArgv(const std::vector<std::string_view>& argv) {
  argv_.clear();
  argv_len_.clear();
  for (std::string_view arg : argv) {
    argv_.push_back(arg.data());
    argv_len_.push_back(arg.size());
  }
}

Status RedisClient::ConnectionError(std::string_view command, int saved_errno) {
  Status st;
  if (context_ == nullptr) {
    st = Status::Unavailable("{}: {}: not connected", where_, command);
  } else if (context_->err == REDIS_ERR_EOF) {
    st = Status::Unavailable("{}: {}: the server closed the connection", where_, command);
  } else if (context_->err == REDIS_ERR_IO && IsTimeoutErrno(saved_errno)) {
    st = Status::Timeout("{}: {}: no reply within {} ms (command timeout)", where_, command,
                         options_.command_timeout_us / 1000);
  } else if (context_->err == REDIS_ERR_IO) {
    st = Status::Unavailable("{}: {}: connection lost ({})", where_, command, context_->errstr);
  } else {
    // Protocol errors and OOM leave the stream out of step: drop it like a lost connection.
    st = Status::Unavailable("{}: {}: {}", where_, command, context_->errstr);
  }
  Disconnect();
  lost_ = st.message().substr(st.message().starts_with(where_) ? where_.size() + 2 : 0);
  lost_at_us_ = clock_->NowMicros();
  return st;
}

Status RedisClient::ReplyError(const RedisReply& reply, std::string_view command) const {
  if (!reply.is_error()) return Status::OK();
  return Status(ClassifyRedisError(reply.str()),
                fmt::format("{}: {}: {}", where_, command, reply.str()));
}

Status RedisClient::ReplyError(const FlatReply& reply, std::string_view command) const {
  if (reply.error().empty()) return Status::OK();
  return Status(ClassifyRedisError(reply.error()),
                fmt::format("{}: {}: {}", where_, command, reply.error()));
}

Result<RedisReply> RedisClient::Command(const std::vector<std::string_view>& argv) {
  if (argv.empty()) return Status::Invalid("{}: empty command", where_);
  const std::string_view name = CommandName(argv);
  if (pending() > 0) {
    return Status::Internal("{}: {} called with {} pipelined replies unread", where_, name,
                            pending());
  }
  SLUICE_RETURN_NOT_OK(EnsureConnected());
  FillArgv(argv);
  errno = 0;
  RedisReply reply(static_cast<redisReply*>(
      redisCommandArgv(context_, static_cast<int>(argv_.size()), argv_.data(), argv_len_.data())));
  if (!reply.has_value()) return ConnectionError(name, errno);
  SLUICE_RETURN_NOT_OK(ReplyError(reply, name));
  return reply;
}

Status RedisClient::Append(const std::vector<std::string_view>& argv) {
  if (argv.empty()) return Status::Invalid("{}: empty command", where_);
  SLUICE_RETURN_NOT_OK(EnsureConnected());
  FillArgv(argv);
  if (redisAppendCommandArgv(context_, static_cast<int>(argv_.size()), argv_.data(),
                             argv_len_.data()) != REDIS_OK) {
    return ConnectionError(CommandName(argv), errno);
  }
  pending_names_.emplace_back(CommandName(argv));
  return Status::OK();
}

Status RedisClient::Ping() {
  SLUICE_ASSIGN_OR_RETURN(RedisReply reply, Command({"PING"}));
  if (reply.str() != "PONG") {
    return Status::Unavailable("{}: PING: unexpected reply '{}'", where_, reply.str());
  }
  return Status::OK();
}

Result<std::vector<RedisReply>> RedisClient::Replies(size_t n) {
  if (n > pending()) {
    return Status::Internal("{}: {} replies asked for, {} commands appended", where_, n, pending());
  }
  std::vector<RedisReply> replies;
  replies.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    SLUICE_ASSIGN_OR_RETURN(RedisReply reply, ReadReply());
    replies.push_back(std::move(reply));
  }
  return replies;
}

Status RedisClient::Send() {
  if (context_ == nullptr) return Status::Unavailable("{}: not connected", where_);
  int done = 0;
  while (done == 0) {
    errno = 0;
    if (redisBufferWrite(context_, &done) != REDIS_OK) {
      const int saved_errno = errno;
      return ConnectionError(pending_names_.empty() ? "send" : pending_names_.back(), saved_errno);
    }
  }
  return Status::OK();
}

Result<RedisReply> RedisClient::Reply() {
  if (pending() == 0) return Status::Internal("{}: a reply asked for, no command appended", where_);
  return ReadReply();
}

Status RedisClient::ReplyFlat(FlatReply* out) {
  if (pending() == 0) return Status::Internal("{}: a reply asked for, no command appended", where_);
  void* raw = nullptr;
  errno = 0;
  int rc;
  {
    FlatReply::Filling filling(context_->reader, out);
    rc = redisGetReply(context_, &raw);
  }
  if (rc != REDIS_OK || raw == nullptr) {
    const int saved_errno = errno;
    const std::string command =
        fmt::format("{} (reply {} of {} pipelined)", pending_names_[pending_read_],
                    pending_read_ + 1, pending_names_.size());
    return ConnectionError(command, saved_errno);
  }
  if (++pending_read_ == pending_names_.size()) {
    pending_names_.clear();
    pending_read_ = 0;
  }
  return Status::OK();
}

Result<RedisReply> RedisClient::ReadReply() {
  void* raw = nullptr;
  errno = 0;
  if (redisGetReply(context_, &raw) != REDIS_OK || raw == nullptr) {
    const int saved_errno = errno;
    const std::string command =
        fmt::format("{} (reply {} of {} pipelined)", pending_names_[pending_read_],
                    pending_read_ + 1, pending_names_.size());
    return ConnectionError(command, saved_errno);
  }
  RedisReply reply(static_cast<redisReply*>(raw));
  if (++pending_read_ == pending_names_.size()) {
    pending_names_.clear();
    pending_read_ = 0;
  }
  return reply;
}

}  // namespace sluice::redis
