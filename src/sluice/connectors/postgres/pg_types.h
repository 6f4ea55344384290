#pragma once

// Binary encoding and decoding between sluice columns and PostgreSQL values: the send/recv
// formats used by binary COPY and by binary query parameters and results.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/connectors/postgres/pq_api.h"
#include "sluice/core/batch.h"
#include "sluice/core/column.h"
#include "sluice/core/result.h"

namespace sluice::pg {

class PgConnection;
class PgResult;

/// OIDs of the built-in types the codecs know (fixed by PostgreSQL's catalog). Extension types,
/// PostGIS geometry among them, have per-database OIDs: look them up by name (ResolveColumns,
/// LookupTypeOid).
namespace oids {
inline constexpr Oid kBool = 16;
inline constexpr Oid kBytea = 17;
inline constexpr Oid kName = 19;
inline constexpr Oid kInt8 = 20;
inline constexpr Oid kInt2 = 21;
inline constexpr Oid kInt4 = 23;
inline constexpr Oid kText = 25;
inline constexpr Oid kOid = 26;
inline constexpr Oid kJson = 114;
inline constexpr Oid kFloat4 = 700;
inline constexpr Oid kFloat8 = 701;
inline constexpr Oid kBpchar = 1042;
inline constexpr Oid kVarchar = 1043;
inline constexpr Oid kDate = 1082;
inline constexpr Oid kTimestamp = 1114;
inline constexpr Oid kTimestampTz = 1184;
inline constexpr Oid kNumeric = 1700;
inline constexpr Oid kUuid = 2950;
inline constexpr Oid kJsonb = 3802;
}  // namespace oids

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01 00:00:00 UTC).
inline constexpr int64_t kPgEpochOffsetMicros = 946'684'800'000'000;
/// Days between 1970-01-01 and 2000-01-01.
inline constexpr int32_t kPgEpochOffsetDays = 10'957;

/// How the values of one PostgreSQL column travel in binary format.
enum class PgCodec : uint8_t {
  kBool,
  kInt2,
  kInt4,
  kInt8,
  kOid,
  kFloat4,
  kFloat8,
  kNumeric,
  kText,  ///< text, varchar, bpchar, name, citext, enums: the bytes of the string.
  kBytea,
  kJson,
  kJsonb,  ///< A version byte (1), then JSON text.
  kUuid,
  kTimestamp,    ///< timestamp without time zone: read and written as if UTC.
  kTimestampTz,  ///< µs since 2000-01-01 UTC.
  kDate,         ///< Days since 2000-01-01; read as midnight UTC.
  kGeometry,     ///< PostGIS geometry or geography: EWKB bytes.
};

/// Return the codec's name, e.g. "jsonb", for messages.
std::string_view PgCodecName(PgCodec codec);

/// Return the codec for a column of type `oid`; `type_name` (pg_type.typname) and `type_type`
/// (pg_type.typtype, 'e' for enums) matter only for types without a fixed OID: geometry,
/// geography, citext and enums. Return nullopt for types sluice does not read or write in
/// binary (arrays, intervals, ...): cast those to text in the query.
std::optional<PgCodec> CodecForType(Oid oid, std::string_view type_name = "", char type_type = 'b');

/// Return the sluice type a column read with `codec` gets unless told otherwise, chosen so that
/// every value survives exactly: integers int64, floats float64 (NaN and infinities included),
/// numeric an exact decimal string ("12.50", "NaN", "-Infinity"), text and uuid string, json
/// and jsonb string (their exact text: JSON `null` stays distinct from SQL NULL), date string
/// ("2024-05-01", "0044-03-15 BC", "infinity"; see FormatDate), timestamps timestamp (±infinity
/// as INT64_MAX / INT64_MIN), bytea bytes, geometry geometry.
TypeId DefaultTypeFor(PgCodec codec);
/// Return true when values of `codec` can be read into a sluice column of `type` (besides the
/// default: numeric as float64 (nearest double), integers as float64, json and jsonb as json,
/// dates as timestamp (midnight UTC; a date beyond the µs range is an error), ...).
bool CanDecode(PgCodec codec, TypeId type);
/// Return true when a sluice column of `type` can be written to a column with `codec`
/// (e.g. int64 to int2/int4/int8/float/numeric, string to text/json/jsonb/uuid/numeric/date).
bool CanEncode(TypeId type, PgCodec codec);
/// Return the PostgreSQL type CREATE TABLE declares for a sluice type: bool boolean, int64
/// bigint, float64 double precision, string text, bytes bytea, timestamp timestamptz,
/// geometry geometry, json jsonb.
std::string_view PgTypeNameFor(TypeId type);

/// Return PostgreSQL µs (since 2000-01-01) as Unix µs; ±infinity stay INT64_MAX / INT64_MIN.
int64_t PgMicrosToUnix(int64_t pg_micros);
/// Return Unix µs as PostgreSQL µs; INT64_MAX / INT64_MIN become ±infinity. Values too small
/// to represent become one past -infinity, which the server rejects as out of range.
int64_t UnixMicrosToPg(int64_t unix_micros);

/// The most bytes FormatDate writes ("5874897-12-31", "4714-11-24 BC", "-infinity").
inline constexpr size_t kMaxDateChars = 16;
/// Write the date `pg_days` (days since 2000-01-01; INT32_MAX / INT32_MIN are ±infinity) as
/// PostgreSQL writes it with DateStyle ISO: "YYYY-MM-DD" (at least four year digits), " BC"
/// after years before 1, "infinity", "-infinity". Return the number of bytes written.
size_t FormatDate(int32_t pg_days, char* out);
/// Parse what FormatDate writes (also "+infinity"); kInvalidArgument otherwise, or when the
/// date is outside PostgreSQL's range (4714-11-24 BC to 5874897-12-31).
Result<int32_t> ParseDate(std::string_view text);

/// Append the binary numeric for the decimal `text` ("-12.50", "1e-7", "NaN", "Infinity") to
/// `out`; kInvalidArgument when it is not a number.
Status EncodeNumeric(std::string_view text, std::string* out);
/// Append the binary numeric for `value` (exact).
void EncodeNumeric(int64_t value, std::string* out);
/// Append the binary numeric for the shortest decimal that round-trips `value`.
void EncodeNumeric(double value, std::string* out);
/// Replace `out` with the decimal text of binary numeric `value` (to its display scale).
Status NumericToText(std::string_view value, std::string* out);
/// Return binary numeric `value` as the nearest double; `scratch` is reused between calls.
Result<double> NumericToDouble(std::string_view value, std::string* scratch);

/// Write the 16 bytes of the UUID in `text` (32 hex digits, hyphens allowed, optional braces).
Status ParseUuid(std::string_view text, uint8_t out[16]);
/// Write the 36-character lower-case form of a 16-byte UUID to `out`.
void FormatUuid(const uint8_t* uuid, char out[36]);

/// Append one binary value of `codec` to `out`, a builder of a type CanDecode allows.
/// `scratch` is reused between calls (numeric formatting); no allocation per value otherwise.
Status DecodeValue(PgCodec codec, std::string_view value, ColumnBuilder* out, std::string* scratch);

/// Decode a binary COPY stream (COPY ... TO STDOUT (FORMAT binary)) into column builders.
/// The stream may be split anywhere; rows are appended whole. Not thread-safe.
class CopyBinaryDecoder {
 public:
  /// Decode columns named and typed by `schema` (the builders' types) from values of `codecs`.
  CopyBinaryDecoder(SchemaPtr schema, std::vector<PgCodec> codecs);

  /// Decode the next bytes of the stream, appending every complete row to `builders` (one per
  /// schema field) and adding the number of rows to `*rows`. A partial row at the end is kept
  /// for the next call.
  Status Consume(std::string_view chunk, std::vector<ColumnBuilder>* builders, int64_t* rows);
  /// Return true once the trailer has been read.
  bool finished() const { return finished_; }

 private:
  Status Parse(std::string_view data, size_t* consumed, std::vector<ColumnBuilder>* builders,
               int64_t* rows);

  SchemaPtr schema_;
  std::vector<PgCodec> codecs_;
  bool header_done_ = false;
  bool finished_ = false;
  std::string carry_;    // bytes of a row split across chunks
  std::string scratch_;  // reused by DecodeValue
};

/// Encode rows of batches as binary COPY tuples (COPY ... FROM STDIN (FORMAT binary)), one
/// column at a time. Not thread-safe; reuse one encoder per sink to reuse its scratch space.
class CopyBinaryEncoder {
 public:
  CopyBinaryEncoder() = default;
  /// Return an encoder writing each field of `schema` as `targets[i]`; kInvalidArgument naming
  /// the column when CanEncode refuses a pair.
  static Result<CopyBinaryEncoder> Make(SchemaPtr schema, std::vector<PgCodec> targets);

  /// Append the 19-byte header that starts a binary COPY stream.
  static void AppendHeader(std::string* out);
  /// Append the trailer (-1 as int16) that ends it.
  static void AppendTrailer(std::string* out);
  /// Append rows [begin, end) of `batch` (whose schema equals the encoder's) as tuples. On
  /// error (a value the target cannot hold: int4 overflow, a malformed uuid or numeric) `out`
  /// is left as it was and the Status names the row and column.
  Status AppendRows(const Batch& batch, int64_t begin, int64_t end, std::string* out);

  const SchemaPtr& schema() const { return schema_; }
  const std::vector<PgCodec>& targets() const { return targets_; }

 private:
  CopyBinaryEncoder(SchemaPtr schema, std::vector<PgCodec> targets)
      : schema_(std::move(schema)), targets_(std::move(targets)) {}
  Status EncodeColumn(int c, const Column& col, int64_t begin, int64_t n, char* base);

  SchemaPtr schema_;
  std::vector<PgCodec> targets_;
  // Scratch reused between calls: each row's write position, and pre-encoded numerics.
  std::vector<int64_t> cursor_;
  std::string numeric_data_;
  std::vector<int64_t> numeric_offsets_;
  std::vector<size_t> numeric_start_;  // per column: its first entry in numeric_offsets_
};

/// One column of a query result or table as the codecs see it.
struct PgColumn {
  std::string name;
  Oid oid = 0;
  std::string type_name;         ///< pg_type.typname ("int8", "geometry").
  std::optional<PgCodec> codec;  ///< nullopt: no binary codec; cast to text.
};

/// Return the columns of `described` (a Describe() or executed result), looking up the names
/// of types without a fixed OID in pg_type on `conn` (one query, only when there are some).
Result<std::vector<PgColumn>> ResolveColumns(PgConnection* conn, const PgResult& described);

/// Return the OID of type `name` ("geometry") in the connection's database, or kNotFound.
Result<Oid> LookupTypeOid(PgConnection* conn, const std::string& name);

/// Set, on `conn`'s session, the settings under which PostgreSQL's text output of every type is
/// exact and the same whatever the server's configuration: DateStyle ISO (the field order for
/// input is kept), IntervalStyle postgres, extra_float_digits 1 (shortest exact floats),
/// bytea_output hex. Run it on every connection that reads columns as text (PlanRelation's
/// `"col"::text`) or writes text-form values; it lasts for the session (not undone by ROLLBACK
/// of a later transaction, but a SET inside a transaction that rolls back is: call it outside
/// one or before BEGIN).
Status ApplyExactTextSettings(PgConnection* conn);

/// How one column of a relation is read so that every value survives exactly.
struct PgColumnPlan {
  std::string name;
  /// The column's PostgreSQL type as format_type() writes it ("numeric(30,10)", "integer[]",
  /// "character varying(20)", a domain's or enum's name, schema-qualified when not on the
  /// search path): what a CREATE TABLE that restores the column declares. For a subquery,
  /// a domain column shows its base type (the server describes results that way).
  std::string pg_type;
  Oid type_oid = 0;                ///< The type the server sends (a domain's base type).
  PgCodec codec = PgCodec::kText;  ///< How values travel in binary (kText when as_text).
  TypeId type = TypeId::kString;   ///< The sluice type values decode into.
  /// True when the type has no binary codec (inet, arrays, interval, ranges, composites, ...):
  /// the column is selected as its PostgreSQL text form, `"col"::text`, read as a string.
  bool as_text = false;
  /// The column's entry in a select list: `"col"` or `"col"::text AS "col"`.
  std::string select_expr;
};

/// The columns of a relation as sluice reads them. Copyable; no connection kept.
struct RelationPlan {
  std::vector<PgColumnPlan> columns;
  /// The columns' select_expr joined with ", ": the caller runs
  /// `SELECT <select_list> FROM <relation> ...` (or COPY (that) TO STDOUT (FORMAT binary)) and
  /// decodes the binary rows with `codecs` into builders of `schema`'s types (AppendResultRows,
  /// CopyBinaryDecoder).
  std::string select_list;
  SchemaPtr schema;             ///< One nullable field per column: name and sluice type.
  std::vector<PgCodec> codecs;  ///< One per column.

  /// Read column `name` as `type` instead of its default: kept binary when CanDecode allows it,
  /// else (for string or json) read as text; kConfigError naming the column and its PostgreSQL
  /// type otherwise, kNotFound when there is no such column. Rebuilds select_list, schema and
  /// codecs.
  Status Retype(std::string_view name, TypeId type);
  /// Keep only the columns `names`, in that order; kNotFound naming the first missing one.
  Status Keep(const std::vector<std::string>& names);
  /// Return the index of column `name`, or -1.
  int Find(std::string_view name) const;
  /// Recompute select_list, schema and codecs from `columns` (after editing them by hand).
  void Rebuild();
};

/// Describe `relation` — a table, view or other relation name, quoted as SQL wants it
/// (`"audit"."logs"`), or a parenthesized subquery with an alias (`(SELECT ...) AS q`) — and
/// return how to read each of its columns exactly: types with a binary codec are read in binary
/// (DefaultTypeFor gives the sluice type: numeric and json as exact strings, ...), every other
/// type as its text form. Runs a Describe and one or two catalog queries on `conn`; reads no
/// rows. Does not change session settings: call ApplyExactTextSettings on the connections
/// that read. Errors carry the server's message (no such table, syntax error in the query).
Result<RelationPlan> PlanRelation(PgConnection* conn, const std::string& relation);

/// Append every row of `result` (fetched with PgFormat::kBinary) to `builders`, decoding
/// column i with `codecs[i]` into a builder of a type CanDecode allows.
Status AppendResultRows(const PgResult& result, const std::vector<PgCodec>& codecs,
                        std::vector<ColumnBuilder>* builders, std::string* scratch);

}  // namespace sluice::pg
