#include "sluice/connectors/postgres/archive_rows.h"

#include <algorithm>
#include <cstdio>
#include <map>

#include <nlohmann/json.hpp>

#include "sluice/connectors/postgres/postgres_internal.h"
#include "sluice/core/json_text.h"
#include "sluice/core/time.h"

namespace sluice::pg_archive {

namespace {

// The text columns every page starts with, before the table's own.
constexpr int kCtidColumn = 0;
constexpr int kKeyColumn = 1;
constexpr int kTsColumn = 2;     // as text: a parameter of the keyset bound
constexpr int kTsRawColumn = 3;  // in binary: the row's place in the batch order
constexpr int kPrefixColumns = 4;

// Queries name the table `src` and qualify ORDER BY with it: an output column (the prefix's
// or the user's own) could otherwise carry the same name and make ORDER BY ambiguous.
std::string Prefix(const TablePlan& plan) {
  return fmt::format("src.ctid::text, src.{0}::text, src.{1}::text, src.{1}, ", plan.quoted_key,
                     plan.quoted_ts);
}

bool IsTimestampType(std::string_view pg_type) {
  return pg_type.starts_with("timestamp") || pg_type == "date";
}

}  // namespace

Result<TablePlan> PlanTable(pg::PgConnection* conn, const std::string& quoted_table,
                            const TableSettings& settings, bool unique_key) {
  TablePlan plan;
  SLUICE_ASSIGN_OR_RETURN(static_cast<pg::RelationPlan&>(plan),
                          pg::PlanRelation(conn, quoted_table));
  const int ts = plan.Find(settings.timestamp_column);
  if (ts < 0 || !IsTimestampType(plan.columns[static_cast<size_t>(ts)].pg_type)) {
    return Status::ConfigError(
        "there is no timestamp column '{}'{} (set timestamp_column to a timestamptz, timestamp "
        "or date column)",
        settings.timestamp_column,
        ts < 0 ? ""
               : " of a timestamp type: it is " + plan.columns[static_cast<size_t>(ts)].pg_type);
  }
  if (plan.Find(settings.key_column) < 0) {
    return Status::ConfigError(
        "there is no key column '{}' (set key_column to the column that orders and names "
        "batches, e.g. the primary key)",
        settings.key_column);
  }
  // A ctid names a row only within one table: a partitioned table or one with inheritance
  // children would match the same ctid in several of them.
  auto kind = conn->ExecParams(
      "SELECT c.relkind::text, EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhparent = c.oid) "
      "FROM pg_class c WHERE c.oid = $1::regclass",
      {quoted_table});
  if (!kind.ok()) return kind.status();
  if (kind->num_rows() == 1 && (kind->Value(0, 0) != "r" || kind->Value(0, 1) == "t")) {
    return Status::ConfigError(
        "it is {}: the archiver deletes rows by their physical id, which is only unique within "
        "one table; list its partitions (or child tables) under `tables:` instead",
        kind->Value(0, 0) == "p" ? "a partitioned table"
        : kind->Value(0, 0) != "r"
            ? "not a plain table (relkind " + std::string(kind->Value(0, 0)) + ")"
            : "a table with inheritance children");
  }
  plan.quoted_ts = pg_internal::QuoteName(settings.timestamp_column);
  plan.quoted_key = pg_internal::QuoteName(settings.key_column);
  if (unique_key) {
    auto r = conn->ExecParams(
        "SELECT a.attnotnull, EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid "
        "AND i.indisunique AND i.indnatts = 1 AND i.indkey[0] = a.attnum AND i.indpred IS NULL) "
        "FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attname = $2",
        {quoted_table, settings.key_column});
    if (!r.ok()) return r.status();
    if (r->num_rows() != 1 || r->Value(0, 0) != "t" || r->Value(0, 1) != "t") {
      return Status::ConfigError(
          "reading on a replica matches rows by key_column '{}', which must be NOT NULL with a "
          "unique index of its own (add a primary key or unique constraint on it, pick another "
          "key_column, or drop replica_dsn)",
          settings.key_column);
    }
  }
  nlohmann::ordered_json types = nlohmann::ordered_json::object();
  for (const auto& c : plan.columns) types[c.name] = c.pg_type;
  plan.tags_json = JsonText(types);
  return plan;
}

namespace {

/// Return a row's position in (timestamp, ctid) order: the timestamp as sent in binary (int8
/// µs for timestamp and timestamptz, int4 days for date; ±infinity sort at the ends) and the
/// ctid's block and offset.
struct RowOrder {
  int64_t ts = 0;
  uint64_t ctid = 0;
  bool operator<(const RowOrder& o) const { return ts != o.ts ? ts < o.ts : ctid < o.ctid; }
};

int64_t BigEndian(std::string_view v) {
  uint64_t x = 0;
  for (unsigned char c : v) x = (x << 8) | c;
  if (v.size() == 4) return static_cast<int32_t>(static_cast<uint32_t>(x));
  return static_cast<int64_t>(x);
}

uint64_t CtidOrder(std::string_view ctid) {  // "(block,offset)"
  uint64_t block = 0;
  uint64_t offset = 0;
  size_t i = 1;
  for (; i < ctid.size() && ctid[i] != ','; ++i) block = block * 10 + (ctid[i] - '0');
  for (++i; i < ctid.size() && ctid[i] != ')'; ++i) offset = offset * 10 + (ctid[i] - '0');
  return (block << 16) | offset;
}

}  // namespace

namespace {

int PrefixColumns(RowsPrefix prefix) { return prefix == RowsPrefix::kCtid ? 1 : kPrefixColumns; }

/// Return the rows whose binary ctid (block uint32, offset uint16, big-endian) and table
/// columns are `all`, in ctid order.
Result<RowsRead> RowsFromCtidColumns(const TablePlan& plan, std::vector<Column> all, int64_t rows) {
  const Column& ctid = all[kCtidColumn];
  RowsRead out;
  std::vector<uint64_t> order(static_cast<size_t>(rows));
  bool sorted = true;
  for (int64_t r = 0; r < rows; ++r) {
    std::string_view v = ctid.IsNull(r) ? std::string_view() : ctid.GetView(r);
    if (v.size() != 6) return Status::Internal("a ctid of {} bytes", v.size());
    const auto block = static_cast<uint64_t>(BigEndian(v.substr(0, 4))) & 0xffffffffu;
    const auto offset = static_cast<uint64_t>(BigEndian(v.substr(4, 2))) & 0xffffu;
    order[static_cast<size_t>(r)] = (block << 16) | offset;
    if (r > 0 && order[static_cast<size_t>(r)] < order[static_cast<size_t>(r - 1)]) sorted = false;
  }
  std::vector<int32_t> perm(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) perm[static_cast<size_t>(r)] = static_cast<int32_t>(r);
  if (!sorted) {
    std::sort(perm.begin(), perm.end(), [&](int32_t a, int32_t b) {
      return order[static_cast<size_t>(a)] < order[static_cast<size_t>(b)];
    });
    std::vector<uint64_t> sorted_order(order.size());
    for (size_t i = 0; i < perm.size(); ++i) {
      sorted_order[i] = order[static_cast<size_t>(perm[i])];
    }
    order = std::move(sorted_order);
  }
  out.ctids.reserve(static_cast<size_t>(rows));
  for (uint64_t o : order) out.ctids.push_back(fmt::format("({},{})", o >> 16, o & 0xffff));
  out.ctid_digest = CtidDigest(order);
  if (rows > 0) out.last_ctid = out.ctids.back();
  all.erase(all.begin());
  out.batch = Batch::MakeUnchecked(plan.schema, std::move(all), rows);
  if (!sorted) out.batch = out.batch->Take(perm);
  return out;
}

/// Return the rows whose prefix (ctid, key and timestamp as text, timestamp in binary, all as
/// bytes) and table columns are `all`, in ctid order, with the keyset bound of the page: its
/// last row in (timestamp, ctid) order.
Result<RowsRead> RowsFromColumns(const TablePlan& plan, std::vector<Column> all, int64_t rows,
                                 RowsPrefix prefix) {
  if (prefix == RowsPrefix::kCtid) return RowsFromCtidColumns(plan, std::move(all), rows);
  const Column& ctid = all[kCtidColumn];
  const Column& key = all[kKeyColumn];
  const Column& ts = all[kTsColumn];
  const Column& ts_raw = all[kTsRawColumn];
  RowsRead out;
  std::vector<RowOrder> order(static_cast<size_t>(rows));
  bool sorted = true;  // by ctid
  int64_t last = 0;    // the greatest (timestamp, ctid)
  for (int64_t r = 0; r < rows; ++r) {
    if (ts_raw.IsNull(r)) return Status::Internal("a row without a timestamp");
    RowOrder& o = order[static_cast<size_t>(r)];
    o = {BigEndian(ts_raw.GetView(r)), CtidOrder(ctid.GetView(r))};
    if (r > 0) {
      if (o.ctid < order[static_cast<size_t>(r - 1)].ctid) sorted = false;
      if (order[static_cast<size_t>(last)] < o) last = r;
    }
  }
  // A batch is in ctid order whatever order the server sent it in (the DELETE's TID scan
  // already sends it so), so a batch redone after a crash has the same content.
  std::vector<int32_t> perm(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) perm[static_cast<size_t>(r)] = static_cast<int32_t>(r);
  if (!sorted) {
    std::sort(perm.begin(), perm.end(), [&](int32_t a, int32_t b) {
      return order[static_cast<size_t>(a)].ctid < order[static_cast<size_t>(b)].ctid;
    });
  }
  out.ctids.reserve(static_cast<size_t>(rows));
  out.keys.reserve(static_cast<size_t>(rows));
  std::vector<uint64_t> ctid_order;
  ctid_order.reserve(static_cast<size_t>(rows));
  for (int32_t r : perm) ctid_order.push_back(order[static_cast<size_t>(r)].ctid);
  out.ctid_digest = CtidDigest(ctid_order);
  for (int32_t r : perm) {
    out.ctids.emplace_back(ctid.GetView(r));
    if (key.IsNull(r)) {
      out.keys.emplace_back(std::nullopt);
    } else {
      out.keys.emplace_back(std::string(key.GetView(r)));
    }
  }
  if (rows > 0) {
    out.first_ts = std::string(ts.GetView(perm.front()));
    out.last_ts = std::string(ts.GetView(last));
    out.last_ctid = std::string(ctid.GetView(last));
  }
  all.erase(all.begin(), all.begin() + kPrefixColumns);
  out.batch = Batch::MakeUnchecked(plan.schema, std::move(all), rows);
  if (!sorted) out.batch = out.batch->Take(perm);
  return out;
}

/// Return the codecs and builders for a result of the plan's queries (prefix, then columns).
std::vector<pg::PgCodec> Codecs(const TablePlan& plan, RowsPrefix prefix) {
  std::vector<pg::PgCodec> codecs;
  codecs.reserve(kPrefixColumns + plan.codecs.size());
  for (int i = 0; i < PrefixColumns(prefix); ++i) codecs.push_back(pg::PgCodec::kBytea);
  for (pg::PgCodec c : plan.codecs) codecs.push_back(c);
  return codecs;
}

std::vector<Field> Fields(const TablePlan& plan, RowsPrefix prefix) {
  std::vector<Field> fields;
  fields.reserve(kPrefixColumns + plan.codecs.size());
  for (int i = 0; i < PrefixColumns(prefix); ++i) fields.push_back({"", TypeId::kBytes, true});
  for (const auto& f : plan.schema->fields()) fields.push_back(f);
  return fields;
}

}  // namespace

Result<RowsRead> DecodeRows(const TablePlan& plan, const pg::PgResult& result, std::string* scratch,
                            RowsPrefix prefix) {
  const int rows = result.num_rows();
  const int want = PrefixColumns(prefix) + static_cast<int>(plan.codecs.size());
  if (result.num_columns() != want) {
    return Status::Internal("expected {} columns, the query returned {}", want,
                            result.num_columns());
  }
  std::vector<ColumnBuilder> builders;
  for (const auto& f : Fields(plan, prefix)) builders.emplace_back(f.type, rows);
  SLUICE_RETURN_NOT_OK(pg::AppendResultRows(result, Codecs(plan, prefix), &builders, scratch));
  std::vector<Column> all;
  all.reserve(builders.size());
  for (auto& b : builders) all.push_back(b.Finish());
  return RowsFromColumns(plan, std::move(all), rows, prefix);
}

Result<RowsRead> CopyRows(pg::PgConnection* conn, const TablePlan& plan, const std::string& query,
                          int64_t expected_rows, RowsPrefix prefix, RowSizes* sizes) {
  SLUICE_RETURN_NOT_OK(conn->BeginCopyOut("COPY (" + query + ") TO STDOUT (FORMAT binary)"));
  const std::vector<Field> fields = Fields(plan, prefix);
  pg::CopyBinaryDecoder decoder(MakeSchema(fields), Codecs(plan, prefix));
  std::vector<ColumnBuilder> builders;
  for (const auto& f : fields) builders.emplace_back(f.type, expected_rows);
  if (sizes != nullptr && sizes->bytes_per_row.size() == builders.size()) {
    for (size_t i = 0; i < builders.size(); ++i) {  // a little over what the last page held
      builders[i].ReserveBytes(static_cast<int64_t>(sizes->bytes_per_row[i] * 1.05 *
                                                    static_cast<double>(expected_rows)));
    }
  }
  int64_t rows = 0;
  std::string_view chunk;
  while (true) {
    auto more = conn->ReadCopyData(&chunk);
    if (!more.ok()) return more.status();
    if (!*more) break;
    SLUICE_RETURN_NOT_OK(decoder.Consume(chunk, &builders, &rows));
  }
  if (!decoder.finished()) return Status::Internal("the COPY stream ended without its trailer");
  if (sizes != nullptr && rows > 0) {
    sizes->bytes_per_row.resize(builders.size());
    for (size_t i = 0; i < builders.size(); ++i) {
      sizes->bytes_per_row[i] =
          static_cast<double>(builders[i].data_bytes()) / static_cast<double>(rows);
    }
  }
  std::vector<Column> all;
  all.reserve(builders.size());
  for (auto& b : builders) all.push_back(b.Finish());
  return RowsFromColumns(plan, std::move(all), rows, prefix);
}

std::string PageQuery(const TablePlan& plan, const TableSettings& settings,
                      const std::string& quoted_table, int64_t limit, const std::string& last_ts,
                      const std::string& last_ctid, bool lock, pg::PgParams* params) {
  // Keyset paging: start after the last row of the previous batch, so the index scan does
  // not wade through the entries of rows this run already deleted (they stay in the index
  // until VACUUM). `ts >= $2` lets an index on the timestamp start there; the row comparison
  // makes the bound exact. Rows skipped behind the bound (locked by another archiver that
  // then rolled back) are picked up by a sweep from the start when the bounded reads run dry.
  *params = {FormatTimestamp(settings.cutoff_us)};
  std::string bound;
  if (!last_ts.empty()) {
    params->push_back(last_ts);
    params->push_back(last_ctid);
    bound =
        fmt::format(" AND src.{0} >= $2 AND (src.{0}, src.ctid) > ($2, $3::tid)", plan.quoted_ts);
  }
  return fmt::format(
      "SELECT {0}{1} FROM {2} AS src WHERE src.{3} < $1::timestamptz{4} ORDER BY src.{3}, "
      "src.ctid LIMIT {5}{6}",
      Prefix(plan), plan.select_list, quoted_table, plan.quoted_ts, bound, limit,
      lock ? " FOR UPDATE SKIP LOCKED" : "");
}

std::string DeleteQuery(const TablePlan& plan, const TableSettings& settings,
                        const std::string& quoted_table, int64_t limit, const std::string& last_ts,
                        const std::string& last_ctid, const std::string& lower,
                        const std::string& upper) {
  // COPY takes no parameters: the values are quoted literals.
  const std::string cutoff =
      pg_internal::QuoteLiteral(FormatTimestamp(settings.cutoff_us)) + "::timestamptz";
  std::string bound;
  if (!lower.empty()) {
    bound += fmt::format(" AND {} >= {}", plan.quoted_ts, pg_internal::QuoteLiteral(lower));
  }
  if (!upper.empty()) {
    bound += fmt::format(" AND {} < {}", plan.quoted_ts, pg_internal::QuoteLiteral(upper));
  }
  if (!last_ts.empty()) {
    bound += fmt::format(" AND {0} >= {1} AND ({0}, ctid) > ({1}, {2}::tid)", plan.quoted_ts,
                         pg_internal::QuoteLiteral(last_ts), pg_internal::QuoteLiteral(last_ctid));
  }
  // The page is chosen in (timestamp, ctid) order by a plain read; the DELETE then takes
  // exactly those rows by ctid (a TID scan), re-checking the cutoff on the version it deletes.
  // The server returns them in its own order; RowsFromColumns puts them in ctid order (sorting
  // them here would cost a sort of the whole rows on the server).
  return fmt::format(
      "WITH page AS MATERIALIZED (SELECT ctid FROM {0} WHERE {1} < {2}{3} ORDER BY {1}, ctid "
      "LIMIT {4}) DELETE FROM {0} AS src WHERE src.ctid = ANY (ARRAY(SELECT ctid FROM page)) AND "
      "src.{1} < {2} RETURNING {5}{6}",
      quoted_table, plan.quoted_ts, cutoff, bound, limit, Prefix(plan), plan.select_list);
}

namespace {

std::string BlockRange(uint32_t first_block, uint32_t end_block) {
  return fmt::format("src.ctid >= '({},0)'::tid AND src.ctid < '({},0)'::tid", first_block,
                     end_block);
}

}  // namespace

std::string BlockDeleteQuery(const TablePlan& plan, const TableSettings& settings,
                             const std::string& quoted_table, uint32_t first_block,
                             uint32_t end_block) {
  // A TID range scan: the blocks in order, each row's cutoff checked on the version deleted.
  return fmt::format(
      "DELETE FROM {0} AS src WHERE {1} AND src.{2} < {3}::timestamptz RETURNING src.ctid, {4}",
      quoted_table, BlockRange(first_block, end_block), plan.quoted_ts,
      pg_internal::QuoteLiteral(FormatTimestamp(settings.cutoff_us)), plan.select_list);
}

std::string RecoveryQuery(const TablePlan& plan, const TableSettings& settings,
                          const std::string& quoted_table, const Intent& intent,
                          pg::PgParams* params, RowsPrefix* prefix) {
  uint32_t first_block = 0;
  uint32_t end_block = 0;
  if (!intent.blocks.empty() &&
      std::sscanf(intent.blocks.c_str(), "%u-%u", &first_block, &end_block) == 2) {
    *prefix = RowsPrefix::kCtid;
    const std::string current = FormatTimestamp(settings.cutoff_us);
    *params = {intent.cutoff.empty() ? current : intent.cutoff, current};
    return fmt::format(
        "SELECT src.ctid, {0} FROM {1} AS src WHERE {2} AND src.{3} < least($1::timestamptz, "
        "$2::timestamptz) ORDER BY src.ctid FOR UPDATE",
        plan.select_list, quoted_table, BlockRange(first_block, end_block), plan.quoted_ts);
  }
  *prefix = RowsPrefix::kKeyset;
  const bool by_ctid = !intent.ctids.empty();
  *params = {by_ctid ? intent.ctids : intent.keys, FormatTimestamp(settings.cutoff_us)};
  return fmt::format(
      "SELECT {0}{1} FROM {2} AS src WHERE {3} AND src.{4} < $2::timestamptz ORDER BY src.ctid "
      "FOR UPDATE",
      Prefix(plan), plan.select_list, quoted_table,
      by_ctid ? std::string("src.ctid = ANY($1::tid[])")
              : fmt::format("src.{}::text = ANY($1::text[])", plan.quoted_key),
      plan.quoted_ts);
}

namespace {

/// Keep the rows of `rows` whose mask entry is set.
void KeepMasked(const std::vector<uint8_t>& mask, int64_t kept, RowsRead* rows) {
  if (kept == rows->batch->num_rows()) return;
  rows->batch = rows->batch->Filter(mask.data());
  std::vector<std::string> ctids;
  std::vector<std::optional<std::string>> keys;
  for (size_t i = 0; i < mask.size(); ++i) {
    if (mask[i] == 0) continue;
    ctids.push_back(std::move(rows->ctids[i]));
    keys.push_back(std::move(rows->keys[i]));
  }
  rows->ctids = std::move(ctids);
  rows->keys = std::move(keys);
}

}  // namespace

Result<int64_t> KeepRecordedRows(const Intent& intent, RowsRead* rows, bool* identical) {
  const auto n = static_cast<int64_t>(rows->ctids.size());
  if (!intent.blocks.empty()) {
    *identical = n == intent.rows && fmt::format("{:016x}", rows->ctid_digest) == intent.digest;
    return n;
  }
  *identical = false;
  if (intent.ctids.empty()) {  // an older record: the keys selected the rows
    *identical = n == intent.rows;
    return n;
  }
  auto ctids = ParseArrayLiteral(intent.ctids);
  auto keys = ParseArrayLiteral(intent.keys);
  // A record we cannot read must not pass as "none of its rows left": the record would be
  // forgotten and its rows archived a second time.
  if (!ctids.ok() || !keys.ok() || ctids->size() != keys->size()) {
    return Status::DataLoss(
        "the state record of batch {} cannot be read (ctids or keys "
        "malformed); fix or delete it by hand",
        intent.batch_id);
  }
  std::map<std::string, std::optional<std::string>> recorded;
  for (size_t i = 0; i < ctids->size(); ++i) {
    if ((*ctids)[i]) recorded[*(*ctids)[i]] = (*keys)[i];
  }
  std::vector<uint8_t> mask(static_cast<size_t>(n), 0);
  int64_t kept = 0;
  for (int64_t i = 0; i < n; ++i) {
    auto it = recorded.find(rows->ctids[static_cast<size_t>(i)]);
    if (it != recorded.end() && it->second == rows->keys[static_cast<size_t>(i)]) {
      mask[static_cast<size_t>(i)] = 1;
      ++kept;
    }
  }
  KeepMasked(mask, kept, rows);
  *identical = kept == intent.rows;
  return kept;
}

int64_t KeepLockedRows(const pg::PgResult& locked, RowsRead* page) {
  std::map<std::string, std::string> primary_ctid;  // key -> ctid on the primary
  for (int i = 0; i < locked.num_rows(); ++i) {
    primary_ctid[std::string(locked.Value(i, 1))] = std::string(locked.Value(i, 0));
  }
  const auto n = static_cast<int64_t>(page->ctids.size());
  std::vector<uint8_t> mask(static_cast<size_t>(n), 0);
  int64_t kept = 0;
  for (int64_t i = 0; i < n; ++i) {
    const auto& key = page->keys[static_cast<size_t>(i)];
    if (!key) continue;
    auto it = primary_ctid.find(*key);
    if (it == primary_ctid.end()) continue;
    page->ctids[static_cast<size_t>(i)] = it->second;
    mask[static_cast<size_t>(i)] = 1;
    ++kept;
  }
  KeepMasked(mask, kept, page);
  // Put the batch in the primary's ctid order, as a redo of it reads it there.
  std::vector<int32_t> perm(page->ctids.size());
  for (size_t i = 0; i < perm.size(); ++i) perm[i] = static_cast<int32_t>(i);
  auto by_ctid = [&](int32_t a, int32_t b) {
    return CtidOrder(page->ctids[static_cast<size_t>(a)]) <
           CtidOrder(page->ctids[static_cast<size_t>(b)]);
  };
  if (!std::is_sorted(perm.begin(), perm.end(), by_ctid)) {
    std::sort(perm.begin(), perm.end(), by_ctid);
    page->batch = page->batch->Take(perm);
    std::vector<std::string> ctids;
    std::vector<std::optional<std::string>> keys;
    for (int32_t i : perm) {
      ctids.push_back(std::move(page->ctids[static_cast<size_t>(i)]));
      keys.push_back(std::move(page->keys[static_cast<size_t>(i)]));
    }
    page->ctids = std::move(ctids);
    page->keys = std::move(keys);
  }
  return kept;
}

uint64_t CtidDigest(const std::vector<uint64_t>& ctids) {
  uint64_t h = 14695981039346656037ull;
  for (uint64_t c : ctids) {
    for (int i = 0; i < 6; ++i) {
      h ^= (c >> (8 * i)) & 0xff;
      h *= 1099511628211ull;
    }
  }
  return h;
}

std::string BatchId(const RowsRead& rows, const std::string& run_token) {
  if (rows.end_block > 0) {
    return fmt::format("blocks{}-{}-{}", rows.first_block, rows.end_block, run_token);
  }
  // The first row's timestamp (its digits) and ctid: unique among open batches (a row is in
  // one batch at a time), and readable in an object key: "20250101103000123456-412.7".
  std::string id;
  for (char c : rows.first_ts) {
    if (c >= '0' && c <= '9') id += c;
  }
  id += '-';
  for (char c : rows.ctids.empty() ? std::string() : rows.ctids.front()) {
    if (c >= '0' && c <= '9') {
      id += c;
    } else if (c == ',') {
      id += '.';
    }
  }
  id += '-';
  id += run_token;
  return id;
}

std::string TextArrayLiteral(const std::vector<std::optional<std::string>>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    if (!values[i]) {
      out += "NULL";
      continue;
    }
    out += '"';
    for (char c : *values[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  out += '}';
  return out;
}

std::string TidArrayLiteral(const std::vector<std::string>& ctids) {
  std::string out = "{";
  for (size_t i = 0; i < ctids.size(); ++i) {
    if (i > 0) out += ',';
    out += '"' + ctids[i] + '"';
  }
  out += '}';
  return out;
}

Result<std::vector<std::optional<std::string>>> ParseArrayLiteral(std::string_view text) {
  if (text.size() < 2 || text.front() != '{' || text.back() != '}') {
    return Status::Invalid("not an array literal: {}", text.substr(0, 40));
  }
  std::vector<std::optional<std::string>> out;
  size_t i = 1;
  const size_t end = text.size() - 1;
  if (i == end) return out;
  while (i <= end) {
    if (text[i] == '"') {
      std::string v;
      ++i;
      while (i < end && text[i] != '"') {
        if (text[i] == '\\' && i + 1 < end) ++i;
        v += text[i++];
      }
      if (i >= end) return Status::Invalid("unterminated element in array literal");
      ++i;  // the closing quote
      out.emplace_back(std::move(v));
    } else {
      const size_t comma = text.find(',', i);
      const size_t stop = comma == std::string_view::npos || comma > end ? end : comma;
      std::string_view v = text.substr(i, stop - i);
      if (v == "NULL") {
        out.emplace_back(std::nullopt);
      } else {
        out.emplace_back(std::string(v));
      }
      i = stop;
    }
    if (i == end) break;
    if (text[i] != ',') return Status::Invalid("expected ',' in array literal");
    ++i;
  }
  return out;
}

}  // namespace sluice::pg_archive
