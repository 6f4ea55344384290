#include "sluice/connectors/postgres/pg_connection.h"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>

#include "sluice/core/log.h"

namespace sluice::pg {

namespace {

// libpq's own connect_timeout is whole seconds with a floor of 2; the poll loop below enforces
// the exact deadline, so this only needs to be no shorter.
constexpr int kMinLibpqConnectTimeoutSeconds = 2;
// COPY data is handed to libpq in slices: libpq copies each call into its output buffer, which
// would otherwise grow to the size of the largest call.
constexpr size_t kCopySliceBytes = 1 << 20;

// Collapse runs of whitespace (libpq messages hold newlines and tabs) into single spaces.
std::string OneLine(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool space = false;
  for (char c : text) {
    if (c == ' ' || c == '\n' || c == '\t' || c == '\r') {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(c);
  }
  return out;
}

bool LooksLikeConnectionString(const std::string& dsn) {
  return dsn.find('=') != std::string::npos || dsn.rfind("postgresql://", 0) == 0 ||
         dsn.rfind("postgres://", 0) == 0;
}

struct DsnParts {
  bool valid = false;
  std::string error;
  std::string host, port, dbname, user, password;
};

DsnParts ParseDsn(const std::string& dsn) {
  DsnParts parts;
  if (!LooksLikeConnectionString(dsn)) {  // a bare database name (or empty: the environment)
    parts.valid = true;
    parts.dbname = dsn;
    return parts;
  }
  if (Status st = LoadPq(); !st.ok()) {
    parts.error = st.message();
    return parts;
  }
  char* err = nullptr;
  PQconninfoOption* options = PQconninfoParse(dsn.c_str(), &err);
  if (options == nullptr) {
    parts.error = err != nullptr ? err : "out of memory";
    if (err != nullptr) PQfreemem(err);
    return parts;
  }
  parts.valid = true;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    const std::string_view key = o->keyword;
    // libpq lists host before hostaddr: a hostaddr names the server only without a host.
    if (key == "host" || (key == "hostaddr" && parts.host.empty())) {
      parts.host = o->val;
    } else if (key == "port") {
      parts.port = o->val;
    } else if (key == "dbname") {
      parts.dbname = o->val;
    } else if (key == "user") {
      parts.user = o->val;
    } else if (key == "password") {
      parts.password = o->val;
    }
  }
  PQconninfoFree(options);
  return parts;
}

std::string DescribeParts(const std::string& host, const std::string& port,
                          const std::string& dbname, const std::string& user) {
  std::string out;
  if (!user.empty()) out += user + "@";
  out += host.empty() ? "localhost" : host;
  if (!port.empty()) out += ":" + port;
  if (!dbname.empty()) out += "/" + dbname;
  return out;
}

// Mask the value after every "password=" (any case) and the password of a URI's userinfo.
std::string MaskPasswordSpans(std::string text) {
  std::string lower = text;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (size_t pos = lower.find("password="); pos != std::string::npos;
       pos = lower.find("password=", pos + 1)) {
    const size_t begin = pos + 9;
    size_t end = begin;
    if (end < text.size() && text[end] == '\'') {
      ++end;
      while (end < text.size() && text[end] != '\'') end += text[end] == '\\' ? 2 : 1;
      end = std::min(end + 1, text.size());
    } else {
      while (end < text.size() && text[end] != ' ' && text[end] != '&' && text[end] != '"') ++end;
    }
    text.replace(begin, end - begin, "***");
    lower.replace(begin, end - begin, "***");
  }
  for (size_t scheme = text.find("://"); scheme != std::string::npos;
       scheme = text.find("://", scheme + 3)) {
    const size_t at = text.find('@', scheme + 3);
    if (at == std::string::npos) break;
    const size_t colon = text.find(':', scheme + 3);
    const size_t slash = text.find('/', scheme + 3);
    if (colon != std::string::npos && colon < at && (slash == std::string::npos || at < slash)) {
      text.replace(colon + 1, at - colon - 1, "***");
    }
  }
  return text;
}

void OnNotice(void* arg, const PGresult* result);

}  // namespace

StatusCode ClassifySqlState(std::string_view s) {
  if (s.size() != 5) return StatusCode::kInvalidArgument;
  const std::string_view cls = s.substr(0, 2);
  if (cls == "08") return StatusCode::kUnavailable;
  if (s == "40001" || s == "40P01" || s == "57P01" || s == "57P02" || s == "57P03" ||
      s == "53300" || s == "55P03") {
    return StatusCode::kUnavailable;
  }
  if (s == "57014") return StatusCode::kTimeout;
  if (cls == "28" || s == "42501") return StatusCode::kPermissionDenied;
  if (s == "42P01" || s == "3D000" || s == "3F000") return StatusCode::kNotFound;
  return StatusCode::kInvalidArgument;
}

std::string SqlState(const Status& status) {
  constexpr std::string_view kTag = "[SQLSTATE ";
  const std::string& m = status.message();
  const size_t pos = m.rfind(kTag);
  if (pos == std::string::npos || pos + kTag.size() + 6 > m.size()) return "";
  if (m[pos + kTag.size() + 5] != ']') return "";
  return m.substr(pos + kTag.size(), 5);
}

std::string DescribeDsn(const std::string& dsn) {
  const DsnParts parts = ParseDsn(dsn);
  if (!parts.valid) return "(invalid DSN)";
  return DescribeParts(parts.host, parts.port, parts.dbname, parts.user);
}

std::string RedactSecrets(std::string_view text, const std::string& dsn) {
  std::string out(text);
  const DsnParts parts = ParseDsn(dsn);
  // Masking very short passwords would mangle ordinary words; they are masked by the span
  // rules below wherever they appear as part of a DSN.
  if (parts.password.size() >= 3) {
    for (size_t pos = out.find(parts.password); pos != std::string::npos;
         pos = out.find(parts.password, pos + 3)) {
      out.replace(pos, parts.password.size(), "***");
    }
  }
  return MaskPasswordSpans(std::move(out));
}

Status ConnectError(std::string_view message, std::string_view where) {
  const std::string line = OneLine(message);
  auto has = [&](std::string_view s) { return line.find(s) != std::string::npos; };
  std::string_view state = "08001";
  if (has("timeout expired")) {
    return Status::Timeout("PostgreSQL at {}: cannot connect: {}", where, line);
  }
  if (has("password authentication failed")) {
    state = "28P01";
  } else if (has("no pg_hba.conf entry") || has("authentication failed") ||
             (has("role \"") && has("does not exist"))) {
    state = "28000";
  } else if (has("database \"") && has("does not exist")) {
    state = "3D000";
  } else if (has("too many clients") || has("remaining connection slots")) {
    state = "53300";
  } else if (has("the database system is")) {  // starting up, shutting down, in recovery
    state = "57P03";
  }
  return Status(
      ClassifySqlState(state),
      fmt::format("PostgreSQL at {}: cannot connect: {} [SQLSTATE {}]", where, line, state));
}

int64_t PgResult::AffectedRows() const {
  const char* text = PQcmdTuples(result_.get());
  int64_t n = 0;
  if (text == nullptr || *text == '\0') return 0;
  std::from_chars(text, text + std::strlen(text), n);
  return n;
}

PgConnection::PgConnection(PGconn* conn, std::string dsn)
    : conn_(conn),
      dsn_(std::move(dsn)),
      description_(DescribeParts(
          PQhost(conn) != nullptr ? PQhost(conn) : "", PQport(conn) != nullptr ? PQport(conn) : "",
          PQdb(conn) != nullptr ? PQdb(conn) : "", PQuser(conn) != nullptr ? PQuser(conn) : "")) {
  cancel_ = PQgetCancel(conn_);
  PQsetNoticeReceiver(conn_, &OnNotice, &session_ended_);
}

PgConnection::~PgConnection() {
  FreeCopyBuffer();
  if (cancel_ != nullptr) PQfreeCancel(cancel_);
  PQfinish(conn_);
}

Result<std::unique_ptr<PgConnection>> PgConnection::Connect(const std::string& dsn,
                                                            int64_t connect_timeout_us) {
  SLUICE_RETURN_NOT_OK(LoadPq());
  const DsnParts parts = ParseDsn(dsn);
  if (!parts.valid) {
    return Status::ConfigError("invalid PostgreSQL DSN: {}",
                               RedactSecrets(OneLine(parts.error), dsn));
  }
  const std::string where = DescribeParts(parts.host, parts.port, parts.dbname, parts.user);
  const int64_t timeout_us = connect_timeout_us > 0 ? connect_timeout_us : kDefaultConnectTimeoutUs;
  const std::string libpq_timeout = std::to_string(
      std::max<int64_t>(kMinLibpqConnectTimeoutSeconds, (timeout_us + 999'999) / 1'000'000));
  // Entries before dbname are defaults the DSN may override; entries after it override the DSN.
  const char* keywords[] = {"application_name", "keepalives",
                            "keepalives_idle",  "keepalives_interval",
                            "keepalives_count", "tcp_user_timeout",
                            "dbname",           "connect_timeout",
                            "client_encoding",  nullptr};
  const char* values[] = {
      "sluice", "1", "30", "10", "3", "60000", dsn.c_str(), libpq_timeout.c_str(), "UTF8", nullptr};
  PGconn* raw = PQconnectStartParams(keywords, values, /*expand_dbname=*/1);
  if (raw == nullptr) {
    return Status(StatusCode::kResourceExhausted,
                  "PostgreSQL: out of memory starting a connection");
  }
  std::unique_ptr<PGconn, void (*)(PGconn*)> conn(raw, PQfinish);
  auto fail = [&] { return ConnectError(RedactSecrets(PQerrorMessage(raw), dsn), where); };
  if (PQstatus(raw) == CONNECTION_BAD) return fail();

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(timeout_us);
  PostgresPollingStatusType state = PGRES_POLLING_WRITING;
  while (state != PGRES_POLLING_OK) {
    if (state == PGRES_POLLING_FAILED) return fail();
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) {
      return Status::Timeout("PostgreSQL at {}: cannot connect: no answer within {} ms", where,
                             timeout_us / 1000);
    }
    const int fd = PQsocket(raw);
    if (fd >= 0) {
      pollfd pfd{fd, static_cast<short>(state == PGRES_POLLING_READING ? POLLIN : POLLOUT), 0};
      const int rc = poll(&pfd, 1, static_cast<int>(std::min<int64_t>(left, 1000)));
      if (rc < 0 && errno != EINTR) {
        return Status::Unavailable("PostgreSQL at {}: cannot connect: poll: {} [SQLSTATE 08001]",
                                   where, std::strerror(errno));
      }
      if (rc <= 0) continue;  // re-check the deadline
    }
    state = PQconnectPoll(raw);
  }
  return std::unique_ptr<PgConnection>(new PgConnection(conn.release(), dsn));
}

namespace {

void OnNotice(void* arg, const PGresult* result) {
  // A FATAL arriving outside any command (pg_terminate_backend, shutdown) is delivered as a
  // notice: the session is over.
  const char* severity = PQresultErrorField(result, PG_DIAG_SEVERITY_NONLOCALIZED);
  if (severity != nullptr &&
      (std::strcmp(severity, "FATAL") == 0 || std::strcmp(severity, "PANIC") == 0)) {
    *static_cast<bool*>(arg) = true;
  }
  // Other notices ("relation ... already exists, skipping") are not errors; keep them off
  // stderr unless debugging.
  const char* text = PQresultErrorMessage(result);
  if (text != nullptr) Log(LogLevel::kDebug, "postgres: {}", OneLine(text));
}

}  // namespace

Status PgConnection::ErrorFrom(const PGresult* result) const {
  const char* state = result != nullptr ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  if (state == nullptr || *state == '\0') {
    std::string text = OneLine(result != nullptr ? PQresultErrorMessage(result) : "");
    if (text.empty()) text = OneLine(PQerrorMessage(conn_));
    if (PQstatus(conn_) == CONNECTION_BAD) {
      return Status::Unavailable("PostgreSQL at {}: connection lost: {} [SQLSTATE 08006]",
                                 description_, RedactSecrets(text, dsn_));
    }
    return Status::Invalid("PostgreSQL at {}: {}", description_, RedactSecrets(text, dsn_));
  }
  const char* primary = PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY);
  const char* detail = PQresultErrorField(result, PG_DIAG_MESSAGE_DETAIL);
  std::string text = OneLine(primary != nullptr ? primary : "");
  if (detail != nullptr && *detail != '\0') text += " (" + OneLine(detail) + ")";
  return Status(ClassifySqlState(state),
                fmt::format("PostgreSQL at {}: {} [SQLSTATE {}]", description_,
                            RedactSecrets(text, dsn_), state));
}

Result<PgResult> PgConnection::Check(PGresult* raw, ExecStatusType expected) {
  PgResult result(raw);
  if (raw != nullptr) {
    const ExecStatusType st = PQresultStatus(raw);
    if (st == expected) return result;
    if (expected == PGRES_COMMAND_OK && (st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY)) {
      return result;
    }
  }
  return ErrorFrom(raw);
}

Result<PgResult> PgConnection::Exec(const std::string& sql) {
  return Check(PQexec(conn_, sql.c_str()), PGRES_COMMAND_OK);
}

Status PgConnection::ExecCommand(const char* sql) {
  return Check(PQexec(conn_, sql), PGRES_COMMAND_OK).status();
}

namespace {

std::vector<const char*> ParamPointers(const PgParams& params) {
  std::vector<const char*> out;
  out.reserve(params.size());
  for (const auto& p : params) out.push_back(p.has_value() ? p->c_str() : nullptr);
  return out;
}

}  // namespace

Result<PgResult> PgConnection::ExecParams(const std::string& sql, const PgParams& params,
                                          PgFormat result_format) {
  const std::vector<const char*> values = ParamPointers(params);
  return Check(PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr,
                            values.data(), nullptr, nullptr, static_cast<int>(result_format)),
               PGRES_COMMAND_OK);
}

Status PgConnection::Prepare(const std::string& name, const std::string& sql,
                             const std::vector<Oid>& param_types) {
  SLUICE_RETURN_NOT_OK(
      Check(PQprepare(conn_, name.c_str(), sql.c_str(), static_cast<int>(param_types.size()),
                      param_types.empty() ? nullptr : param_types.data()),
            PGRES_COMMAND_OK)
          .status());
  prepared_.insert(name);
  return Status::OK();
}

Result<PgResult> PgConnection::ExecPrepared(const std::string& name, const PgParams& params,
                                            PgFormat result_format) {
  const std::vector<const char*> values = ParamPointers(params);
  return Check(PQexecPrepared(conn_, name.c_str(), static_cast<int>(values.size()), values.data(),
                              nullptr, nullptr, static_cast<int>(result_format)),
               PGRES_COMMAND_OK);
}

Result<PgResult> PgConnection::ExecPreparedBinary(const std::string& name,
                                                  const std::vector<const char*>& values,
                                                  const std::vector<int>& lengths) {
  const std::vector<int> formats(values.size(), 1);
  return Check(PQexecPrepared(conn_, name.c_str(), static_cast<int>(values.size()), values.data(),
                              lengths.data(), formats.data(), 0),
               PGRES_COMMAND_OK);
}

Result<PgResult> PgConnection::Describe(const std::string& sql) {
  SLUICE_RETURN_NOT_OK(
      Check(PQprepare(conn_, "", sql.c_str(), 0, nullptr), PGRES_COMMAND_OK).status());
  return Check(PQdescribePrepared(conn_, ""), PGRES_COMMAND_OK);
}

Status PgConnection::SetStatementTimeout(int64_t ms) {
  if (ms < 0) ms = 0;
  if (ms == statement_timeout_ms_) return Status::OK();
  SLUICE_RETURN_NOT_OK(ExecCommand(fmt::format("SET statement_timeout = {}", ms).c_str()));
  // A SET inside a transaction is undone by ROLLBACK, so only a session-level value is cached.
  statement_timeout_ms_ = InTransaction() ? -1 : ms;
  return Status::OK();
}

bool PgConnection::InTransaction() const {
  const PGTransactionStatusType st = PQtransactionStatus(conn_);
  return st == PQTRANS_INTRANS || st == PQTRANS_INERROR || st == PQTRANS_ACTIVE;
}

Status PgConnection::BeginCopyIn(const std::string& copy_sql) {
  return Check(PQexec(conn_, copy_sql.c_str()), PGRES_COPY_IN).status();
}

namespace {

// Collect the results still queued on `conn` after a failed COPY; return the first error's.
PGresult* TakeFirstResultAndDrain(PGconn* conn) {
  PGresult* first = PQgetResult(conn);
  if (first == nullptr) return nullptr;
  // A broken connection keeps returning results; a bounded drain cannot spin.
  for (int i = 0; i < 16; ++i) {
    PGresult* extra = PQgetResult(conn);
    if (extra == nullptr) break;
    PQclear(extra);
  }
  return first;
}

}  // namespace

Status PgConnection::PutCopyData(std::string_view data) {
  while (!data.empty()) {
    const size_t n = std::min(data.size(), kCopySliceBytes);
    if (PQputCopyData(conn_, data.data(), static_cast<int>(n)) != 1) {
      PgResult result(TakeFirstResultAndDrain(conn_));
      return ErrorFrom(result.get());
    }
    data.remove_prefix(n);
  }
  return Status::OK();
}

Result<int64_t> PgConnection::EndCopyIn() {
  if (PQputCopyEnd(conn_, nullptr) != 1) {
    PgResult result(TakeFirstResultAndDrain(conn_));
    return ErrorFrom(result.get());
  }
  SLUICE_ASSIGN_OR_RETURN(PgResult result, Check(TakeFirstResultAndDrain(conn_), PGRES_COMMAND_OK));
  return result.AffectedRows();
}

void PgConnection::AbortCopyIn(const std::string& reason) {
  if (PQputCopyEnd(conn_, reason.c_str()) == 1) PQclear(TakeFirstResultAndDrain(conn_));
}

Result<int64_t> PgConnection::CopyIn(const std::string& copy_sql, std::string_view data) {
  SLUICE_RETURN_NOT_OK(BeginCopyIn(copy_sql));
  SLUICE_RETURN_NOT_OK(PutCopyData(data));
  return EndCopyIn();
}

Status PgConnection::BeginCopyOut(const std::string& copy_sql) {
  return Check(PQexec(conn_, copy_sql.c_str()), PGRES_COPY_OUT).status();
}

void PgConnection::FreeCopyBuffer() {
  if (copy_buffer_ != nullptr) PQfreemem(copy_buffer_);
  copy_buffer_ = nullptr;
}

Result<bool> PgConnection::ReadCopyData(std::string_view* data) {
  FreeCopyBuffer();
  char* buffer = nullptr;
  const int n = PQgetCopyData(conn_, &buffer, /*async=*/0);
  if (n > 0) {
    copy_buffer_ = buffer;
    *data = std::string_view(buffer, static_cast<size_t>(n));
    return true;
  }
  if (n == -1) {  // the server's end of data: its result says whether the COPY succeeded
    SLUICE_RETURN_NOT_OK(Check(TakeFirstResultAndDrain(conn_), PGRES_COMMAND_OK).status());
    return false;
  }
  PgResult result(TakeFirstResultAndDrain(conn_));
  return ErrorFrom(result.get());
}

bool PgConnection::IsHealthy() {
  if (session_ended_ || PQstatus(conn_) != CONNECTION_OK ||
      PQtransactionStatus(conn_) != PQTRANS_IDLE) {
    return false;
  }
  // An idle session receives nothing unprompted but notices; data waiting on the socket is
  // usually the FATAL a terminated backend sends before closing (its end of the stream may
  // not have arrived yet). Reading and parsing it hands the FATAL to OnNotice, which marks
  // the session ended; reading the end of the stream makes libpq mark the connection bad.
  for (int i = 0; i < 2; ++i) {
    pollfd pfd{PQsocket(conn_), POLLIN, 0};
    const int rc = poll(&pfd, 1, 0);
    if (rc == 0) return true;
    if (rc < 0) return errno == EINTR;
    if ((pfd.revents & (POLLERR | POLLNVAL)) != 0) return false;
    if (PQconsumeInput(conn_) == 0) return false;
    (void)PQisBusy(conn_);  // parses what was read
    if (PQstatus(conn_) != CONNECTION_OK || session_ended_) return false;
  }
  return PQstatus(conn_) == CONNECTION_OK;
}

Status PgConnection::Ping() { return Check(PQexec(conn_, ""), PGRES_EMPTY_QUERY).status(); }

void PgConnection::Cancel() {
  if (cancel_ == nullptr) return;
  char err[256];
  PQcancel(cancel_, err, sizeof(err));
}

}  // namespace sluice::pg
