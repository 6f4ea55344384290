#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstring>

#include "sluice/connectors/sqlite/sqlite_internal.h"
#include "sluice/core/time.h"
#include "sluice/io/geometry.h"

namespace sluice::sqlite_internal {

Status SqliteError(int rc, sqlite3* db, std::string_view context, ErrorPhase phase) {
  const char* raw = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  const std::string message = fmt::format("{}: {}", context, raw != nullptr ? raw : "?");
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Status::Unavailable("{} (the database is locked by another connection)", message);
    case SQLITE_ERROR:
      return phase == ErrorPhase::kPrepare ? Status(StatusCode::kConfigError, message)
                                           : Status(StatusCode::kInvalidArgument, message);
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_TOOBIG:
    case SQLITE_RANGE:
      return Status(StatusCode::kInvalidArgument, message);
    case SQLITE_PERM:
    case SQLITE_READONLY:
    case SQLITE_AUTH:
      return Status(StatusCode::kPermissionDenied, message);
    case SQLITE_NOMEM:
      return Status(StatusCode::kResourceExhausted, message);
    case SQLITE_INTERRUPT:
      return Status(StatusCode::kCancelled, message);
    case SQLITE_CANTOPEN:
    case SQLITE_NOTFOUND:
      return Status(StatusCode::kNotFound, message);
    default:  // SQLITE_IOERR, SQLITE_FULL, SQLITE_CORRUPT, SQLITE_NOTADB, ...
      return Status(StatusCode::kIOError, message);
  }
}

Result<DbPtr> OpenDatabase(const std::string& path, int flags, int64_t busy_timeout_us,
                           std::string_view context) {
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  DbPtr db(raw);  // sqlite3_open_v2 allocates a handle even on failure; it must be closed
  if (rc != SQLITE_OK) {
    return SqliteError(rc, db.get(),
                       fmt::format("{}: opening SQLite database '{}'", context, path));
  }
  sqlite3_extended_result_codes(db.get(), 1);
  const int64_t ms = std::clamp<int64_t>(busy_timeout_us / 1000, 0, INT32_MAX);
  sqlite3_busy_timeout(db.get(), static_cast<int>(ms));
  return db;
}

Result<StmtPtr> Prepare(sqlite3* db, const std::string& sql, std::string_view context) {
  sqlite3_stmt* raw = nullptr;
  const int rc = sqlite3_prepare_v3(db, sql.c_str(), static_cast<int>(sql.size()),
                                    SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
  StmtPtr stmt(raw);
  if (rc != SQLITE_OK) {
    return SqliteError(rc, db, fmt::format("{}: in SQL `{}`", context, sql), ErrorPhase::kPrepare);
  }
  if (stmt == nullptr) {
    return Status::ConfigError("{}: SQL `{}` contains no statement", context, sql);
  }
  return stmt;
}

Status Exec(sqlite3* db, const std::string& sql, std::string_view context) {
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return SqliteError(rc, db, fmt::format("{}: `{}`", context, sql));
  return Status::OK();
}

namespace {

/// Streaming 64-bit hash: each 64-bit word goes through splitmix64's finalizer, a bijection, after
/// being xored into the state, so inputs that differ in their last word never collide and others
/// collide with probability about 2^-64. Not cryptographic: it guards against accidents (a row
/// updated or a rowid reused), not against someone crafting a collision.
class Digest {
 public:
  void AddWord(uint64_t w) { state_ = Mix(state_ ^ w); }
  void AddBytes(const void* data, size_t n) {
    AddWord(n);
    const auto* p = static_cast<const unsigned char*>(data);
    for (; n >= 8; p += 8, n -= 8) {
      uint64_t w;
      std::memcpy(&w, p, 8);
      AddWord(w);
    }
    if (n > 0) {
      uint64_t w = 0;
      std::memcpy(&w, p, n);
      AddWord(w);
    }
  }
  uint64_t value() const { return state_; }

 private:
  static uint64_t Mix(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
  }
  uint64_t state_ = 0x736c75696365ULL;  // "sluice"
};

void RowDigestFunction(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  Digest digest;
  for (int i = 0; i < argc; ++i) {
    sqlite3_value* v = argv[i];
    const int type = sqlite3_value_type(v);
    digest.AddWord(static_cast<uint64_t>(type));  // 1 is INTEGER 1, not REAL 1.0 or TEXT '1'
    switch (type) {
      case SQLITE_INTEGER:
        digest.AddWord(static_cast<uint64_t>(sqlite3_value_int64(v)));
        break;
      case SQLITE_FLOAT: {
        const double d = sqlite3_value_double(v);
        uint64_t bits;
        std::memcpy(&bits, &d, sizeof(bits));
        digest.AddWord(bits);
        break;
      }
      case SQLITE_TEXT: {
        const unsigned char* text = sqlite3_value_text(v);  // before _bytes: it may convert
        digest.AddBytes(text, static_cast<size_t>(sqlite3_value_bytes(v)));
        break;
      }
      case SQLITE_BLOB: {
        const void* blob = sqlite3_value_blob(v);
        digest.AddBytes(blob, static_cast<size_t>(sqlite3_value_bytes(v)));
        break;
      }
      default:  // NULL: the type word says it all
        break;
    }
  }
  sqlite3_result_int64(ctx, static_cast<sqlite3_int64>(digest.value()));
}

}  // namespace

Status RegisterRowDigest(sqlite3* db, std::string_view context) {
  const std::string name(kRowDigestFunction);
  const int rc = sqlite3_create_function_v2(db, name.c_str(), -1,
                                            SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_DIRECTONLY,
                                            nullptr, &RowDigestFunction, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) {
    return SqliteError(rc, db, fmt::format("{}: registering SQL function {}", context, name));
  }
  return Status::OK();
}

std::string QuoteIdentifier(std::string_view name) {
  std::string out;
  out.reserve(name.size() + 2);
  out.push_back('"');
  for (char c : name) {
    if (c == '.') {
      out += "\".\"";
    } else if (c == '"') {
      out += "\"\"";
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

std::optional<TypeId> TypeFromDeclared(const char* declared) {
  if (declared == nullptr || *declared == '\0') return std::nullopt;
  std::string upper(declared);
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  auto has = [&](std::string_view s) { return upper.find(s) != std::string::npos; };
  // Order matters: "DATETIME" and "TIMESTAMP" hold no "INT", but "POINT" would; and the
  // affinity rules of SQLite (INT, then CHAR/CLOB/TEXT, then BLOB, then REAL/FLOA/DOUB)
  // decide the rest, as SQLite itself would store the values.
  if (has("TIMESTAMP") || has("DATETIME")) return TypeId::kTimestamp;
  if (has("BOOL")) return TypeId::kBool;
  if (has("JSON")) return TypeId::kJson;
  if (has("GEOMETRY")) return TypeId::kGeometry;
  // GeoPackage declares geometry columns by their geometry type (a "POINT" holds no integer).
  for (std::string_view name : {"POINT", "LINESTRING", "POLYGON", "MULTIPOINT", "MULTILINESTRING",
                                "MULTIPOLYGON", "GEOMETRYCOLLECTION"}) {
    if (upper == name) return TypeId::kGeometry;
  }
  if (has("INT")) return TypeId::kInt64;
  if (has("CHAR") || has("CLOB") || has("TEXT")) return TypeId::kString;
  if (has("BLOB")) return TypeId::kBytes;
  if (has("REAL") || has("FLOA") || has("DOUB")) return TypeId::kFloat64;
  return std::nullopt;
}

std::string_view DeclaredTypeFor(TypeId type) {
  switch (type) {
    case TypeId::kInt64:
      return "INTEGER";
    case TypeId::kFloat64:
      return "REAL";
    case TypeId::kString:
    case TypeId::kJson:
      return "TEXT";
    case TypeId::kBytes:
      return "BLOB";
    // The three below are stored as the spec'd storage classes (INTEGER 0/1, BLOB of WKB, TEXT
    // ISO-8601 or INTEGER µs) but declared by name, so that the sqlite source reads them back as
    // the same sluice type. Their NUMERIC affinity never converts such values.
    case TypeId::kBool:
      return "BOOLEAN";
    case TypeId::kGeometry:
      return "GEOMETRY";
    case TypeId::kTimestamp:
      return "TIMESTAMP";
  }
  return "BLOB";
}

std::string_view ColumnText(sqlite3_stmt* stmt, int c) {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt, c));
  const int n = sqlite3_column_bytes(stmt, c);
  return p == nullptr ? std::string_view() : std::string_view(p, static_cast<size_t>(n));
}

std::string_view ColumnBlob(sqlite3_stmt* stmt, int c) {
  const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt, c));
  const int n = sqlite3_column_bytes(stmt, c);
  return p == nullptr ? std::string_view() : std::string_view(p, static_cast<size_t>(n));
}

bool ParseBoolText(std::string_view s, bool* out) {
  if (s == "1" || s == "true" || s == "TRUE" || s == "True" || s == "t" || s == "T") {
    *out = true;
    return true;
  }
  if (s == "0" || s == "false" || s == "FALSE" || s == "False" || s == "f" || s == "F") {
    *out = false;
    return true;
  }
  return false;
}

bool AppendCell(sqlite3_stmt* stmt, int c, TypeId type, ColumnBuilder* b, std::string_view* why) {
  *why = "";
  const int storage = sqlite3_column_type(stmt, c);
  if (storage == SQLITE_NULL) {
    b->AppendNull();
    return true;
  }
  switch (type) {
    case TypeId::kInt64:
      if (storage == SQLITE_INTEGER) {
        b->AppendInt64(sqlite3_column_int64(stmt, c));
        return true;
      }
      if (storage == SQLITE_FLOAT) {
        const double d = sqlite3_column_double(stmt, c);
        if (d == std::trunc(d) && d >= -9.2e18 && d <= 9.2e18) {
          b->AppendInt64(static_cast<int64_t>(d));
          return true;
        }
      } else if (storage == SQLITE_TEXT) {
        const std::string_view s = ColumnText(stmt, c);
        int64_t v = 0;
        auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec == std::errc() && end == s.data() + s.size() && !s.empty()) {
          b->AppendInt64(v);
          return true;
        }
      }
      return false;
    case TypeId::kFloat64:
      if (storage == SQLITE_INTEGER || storage == SQLITE_FLOAT) {
        b->AppendFloat64(sqlite3_column_double(stmt, c));
        return true;
      }
      if (storage == SQLITE_TEXT) {
        const std::string_view s = ColumnText(stmt, c);
        double v = 0;
        auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec == std::errc() && end == s.data() + s.size() && !s.empty()) {
          b->AppendFloat64(v);
          return true;
        }
      }
      return false;
    case TypeId::kBool:
      if (storage == SQLITE_INTEGER || storage == SQLITE_FLOAT) {
        b->AppendBool(sqlite3_column_double(stmt, c) != 0.0);
        return true;
      }
      if (storage == SQLITE_TEXT) {
        bool v = false;
        if (ParseBoolText(ColumnText(stmt, c), &v)) {
          b->AppendBool(v);
          return true;
        }
      }
      *why = " (expected 0/1 or true/false)";
      return false;
    case TypeId::kTimestamp:
      if (storage == SQLITE_INTEGER) {
        b->AppendTimestamp(sqlite3_column_int64(stmt, c));
        return true;
      }
      if (storage == SQLITE_TEXT) {
        auto ts = ParseTimestamp(ColumnText(stmt, c));
        if (ts.ok()) {
          b->AppendTimestamp(*ts);
          return true;
        }
      }
      *why = " (expected ISO-8601 text or integer microseconds)";
      return false;
    case TypeId::kString:
    case TypeId::kJson:
      b->AppendString(storage == SQLITE_BLOB ? ColumnBlob(stmt, c) : ColumnText(stmt, c));
      return true;
    case TypeId::kBytes:
      b->AppendString(ColumnBlob(stmt, c));
      return true;
    case TypeId::kGeometry: {
      // A GeoPackage blob (its header, then WKB), EWKB as the sqlite sink writes it, or text
      // (WKT or hex EWKB).
      thread_local std::string ewkb;
      ewkb.clear();
      const std::string_view v = storage == SQLITE_BLOB ? ColumnBlob(stmt, c) : ColumnText(stmt, c);
      Status st;
      if (storage != SQLITE_BLOB) {
        st = io::geom::TextToEwkb(v, 0, &ewkb);
      } else if (io::geom::IsGeoPackageBlob(v)) {
        st = io::geom::GeoPackageToEwkb(v, &ewkb);
      } else {
        st = io::geom::InspectEwkb(v).status();
        if (st.ok()) ewkb.assign(v);
      }
      if (!st.ok()) {
        *why = " (expected a GeoPackage geometry, EWKB or WKT)";
        return false;
      }
      b->AppendString(ewkb);
      return true;
    }
  }
  return false;
}

}  // namespace sluice::sqlite_internal
