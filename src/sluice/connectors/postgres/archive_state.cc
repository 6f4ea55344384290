#include "sluice/connectors/postgres/archive_state.h"

#include "sluice/connectors/postgres/pg_connection.h"
#include "sluice/connectors/postgres/postgres_internal.h"

namespace sluice::pg_archive {

StateTable::StateTable(std::string name, std::string node)
    : name_(std::move(name)),
      quoted_(pg_internal::QuoteIdentifier(name_)),
      node_(std::move(node)) {}

Status StateTable::Create(pg::PgConnection* conn) const {
  // first_key holds the batch id (the column kept its first name so older tables still work).
  auto r = conn->Exec(fmt::format(
      "CREATE TABLE IF NOT EXISTS {} (table_name text NOT NULL, first_key text NOT NULL, "
      "batch_date text NOT NULL, rows bigint NOT NULL, keys text NOT NULL, node text NOT NULL, "
      "created_at timestamptz NOT NULL DEFAULT now(), ctids text, "
      "PRIMARY KEY (table_name, first_key))",
      quoted_));
  // Two archivers starting at once may race on the CREATE: the loser sees a duplicate.
  const std::string state = r.ok() ? "" : pg::SqlState(r.status());
  if (!r.ok() && state != "23505" && state != "42P07") {
    return r.status().WithContext(
        "creating the state table '{}' (grant CREATE, create it beforehand, or set "
        "state_table: none)",
        name_);
  }
  // Columns added by later versions (a table made by an earlier one lacks them).
  for (const char* column : {"ctids", "blocks", "cutoff", "digest"}) {
    auto altered =
        conn->Exec(fmt::format("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} text", quoted_, column));
    if (!altered.ok() && pg::SqlState(altered.status()) != "42701") {
      return altered.status().WithContext("adding column {} to the state table '{}'", column,
                                          name_);
    }
  }
  return Status::OK();
}

Status StateTable::Record(pg::PgConnection* conn, const std::string& table,
                          const Intent& intent) const {
  auto r = conn->ExecParams(
      fmt::format("INSERT INTO {} (table_name, first_key, batch_date, rows, keys, ctids, node, "
                  "blocks, cutoff, digest) VALUES ($1, $2, $3, $4, $5, $6, $7, nullif($8, ''), "
                  "nullif($9, ''), nullif($10, '')) ON CONFLICT (table_name, first_key) DO "
                  "UPDATE SET batch_date = EXCLUDED.batch_date, rows = EXCLUDED.rows, "
                  "keys = EXCLUDED.keys, ctids = EXCLUDED.ctids, blocks = EXCLUDED.blocks, "
                  "cutoff = EXCLUDED.cutoff, digest = EXCLUDED.digest",
                  quoted_),
      {table, intent.batch_id, intent.date, std::to_string(intent.rows), intent.keys, intent.ctids,
       node_, intent.blocks, intent.cutoff, intent.digest});
  if (!r.ok()) return r.status().WithContext("recording a batch in '{}'", name_);
  return Status::OK();
}

Result<std::deque<Intent>> StateTable::Load(pg::PgConnection* conn,
                                            const std::string& table) const {
  auto r = conn->ExecParams(
      fmt::format("SELECT first_key, batch_date, keys, rows, coalesce(ctids, ''), "
                  "coalesce(blocks, ''), coalesce(cutoff, ''), coalesce(digest, '') FROM {} WHERE "
                  "table_name = $1 ORDER BY created_at, first_key",
                  quoted_),
      {table});
  if (!r.ok()) return r.status().WithContext("reading '{}'", name_);
  std::deque<Intent> out;
  for (int i = 0; i < r->num_rows(); ++i) {
    Intent intent;
    intent.batch_id = std::string(r->Value(i, 0));
    intent.date = std::string(r->Value(i, 1));
    intent.keys = std::string(r->Value(i, 2));
    intent.rows = std::stoll(std::string(r->Value(i, 3)));
    intent.ctids = std::string(r->Value(i, 4));
    intent.blocks = std::string(r->Value(i, 5));
    intent.cutoff = std::string(r->Value(i, 6));
    intent.digest = std::string(r->Value(i, 7));
    out.push_back(std::move(intent));
  }
  return out;
}

Status StateTable::Forget(pg::PgConnection* conn, const std::string& table,
                          const std::string& batch_id) const {
  auto r = conn->ExecParams(
      fmt::format("DELETE FROM {} WHERE table_name = $1 AND first_key = $2", quoted_),
      {table, batch_id});
  if (!r.ok()) return r.status().WithContext("state table '{}'", name_);
  return Status::OK();
}

}  // namespace sluice::pg_archive
