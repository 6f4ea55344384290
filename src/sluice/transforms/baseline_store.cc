#include "sluice/transforms/baseline_store.h"

#include <sqlite3.h>

namespace sluice::transforms_internal {

namespace {

/// Finalizes a prepared statement when it goes out of scope.
struct Stmt {
  sqlite3_stmt* s = nullptr;
  ~Stmt() { sqlite3_finalize(s); }
};

}  // namespace

Result<std::unique_ptr<BaselineStore>> BaselineStore::Open(const std::string& path,
                                                           const std::string& node) {
  sqlite3* db = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  std::unique_ptr<BaselineStore> store(new BaselineStore(db, path, node));
  if (rc != SQLITE_OK) return store->Error(rc, "open");
  sqlite3_busy_timeout(db, 30'000);
  SLUICE_RETURN_NOT_OK(store->Exec("PRAGMA journal_mode=WAL"));
  SLUICE_RETURN_NOT_OK(store->Exec("PRAGMA synchronous=FULL"));
  SLUICE_RETURN_NOT_OK(
      store->Exec("CREATE TABLE IF NOT EXISTS sluice_baselines (node TEXT NOT NULL, key BLOB NOT "
                  "NULL, n INTEGER NOT NULL, mean REAL NOT NULL, m2 REAL NOT NULL, last_us "
                  "INTEGER NOT NULL, PRIMARY KEY (node, key))"));
  SLUICE_RETURN_NOT_OK(
      store->Exec("CREATE TABLE IF NOT EXISTS sluice_marks (node TEXT NOT NULL, name TEXT NOT "
                  "NULL, value INTEGER NOT NULL, PRIMARY KEY (node, name))"));
  return store;
}

BaselineStore::~BaselineStore() { sqlite3_close_v2(db_); }

Status BaselineStore::Error(int rc, const char* what) const {
  return Status::IOError("baseline state '{}': {}: {}", path_, what,
                         db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc));
}

Status BaselineStore::Exec(const char* sql) {
  const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
  return rc == SQLITE_OK ? Status::OK() : Error(rc, sql);
}

Result<std::optional<int64_t>> BaselineStore::LoadMark(const std::string& prefix) {
  Stmt st;
  int rc = sqlite3_prepare_v2(
      db_, "SELECT min(value) FROM sluice_marks WHERE node = ? AND substr(name, 1, ?) = ?", -1,
      &st.s, nullptr);
  if (rc != SQLITE_OK) return Error(rc, "read");
  sqlite3_bind_text(st.s, 1, node_.data(), static_cast<int>(node_.size()), SQLITE_STATIC);
  sqlite3_bind_int(st.s, 2, static_cast<int>(prefix.size()));
  sqlite3_bind_text(st.s, 3, prefix.data(), static_cast<int>(prefix.size()), SQLITE_STATIC);
  rc = sqlite3_step(st.s);
  if (rc != SQLITE_ROW) return Error(rc, "read");
  if (sqlite3_column_type(st.s, 0) == SQLITE_NULL) return std::optional<int64_t>();
  return std::optional<int64_t>(sqlite3_column_int64(st.s, 0));
}

Status BaselineStore::SaveMark(const std::string& name, int64_t value) {
  Stmt st;
  int rc = sqlite3_prepare_v2(db_,
                              "INSERT INTO sluice_marks (node, name, value) VALUES (?, ?, ?) "
                              "ON CONFLICT (node, name) DO UPDATE SET value = excluded.value",
                              -1, &st.s, nullptr);
  if (rc != SQLITE_OK) return Error(rc, "write");
  sqlite3_bind_text(st.s, 1, node_.data(), static_cast<int>(node_.size()), SQLITE_STATIC);
  sqlite3_bind_text(st.s, 2, name.data(), static_cast<int>(name.size()), SQLITE_STATIC);
  sqlite3_bind_int64(st.s, 3, value);
  rc = sqlite3_step(st.s);
  return rc == SQLITE_DONE ? Status::OK() : Error(rc, "write");
}

Status BaselineStore::Load(std::unordered_map<std::string, Baseline>* out) {
  Stmt st;
  int rc = sqlite3_prepare_v2(
      db_, "SELECT key, n, mean, m2, last_us FROM sluice_baselines WHERE node = ?", -1, &st.s,
      nullptr);
  if (rc != SQLITE_OK) return Error(rc, "read");
  sqlite3_bind_text(st.s, 1, node_.data(), static_cast<int>(node_.size()), SQLITE_STATIC);
  while ((rc = sqlite3_step(st.s)) == SQLITE_ROW) {
    const auto* key = static_cast<const char*>(sqlite3_column_blob(st.s, 0));
    const int len = sqlite3_column_bytes(st.s, 0);
    Baseline b;
    b.n = sqlite3_column_int64(st.s, 1);
    b.mean = sqlite3_column_double(st.s, 2);
    b.m2 = sqlite3_column_double(st.s, 3);
    b.last_us = sqlite3_column_int64(st.s, 4);
    (*out)[std::string(key == nullptr ? "" : key, static_cast<size_t>(len))] = b;
  }
  return rc == SQLITE_DONE ? Status::OK() : Error(rc, "read");
}

Status BaselineStore::Save(
    const std::vector<std::pair<const std::string*, const Baseline*>>& entries) {
  if (entries.empty()) return Status::OK();
  SLUICE_RETURN_NOT_OK(Exec("BEGIN IMMEDIATE"));
  Stmt st;
  int rc = sqlite3_prepare_v2(db_,
                              "INSERT INTO sluice_baselines (node, key, n, mean, m2, last_us) "
                              "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (node, key) DO UPDATE SET "
                              "n = excluded.n, mean = excluded.mean, m2 = excluded.m2, "
                              "last_us = excluded.last_us",
                              -1, &st.s, nullptr);
  Status status = rc == SQLITE_OK ? Status::OK() : Error(rc, "write");
  for (size_t i = 0; status.ok() && i < entries.size(); ++i) {
    const std::string& key = *entries[i].first;
    const Baseline& b = *entries[i].second;
    sqlite3_reset(st.s);
    sqlite3_bind_text(st.s, 1, node_.data(), static_cast<int>(node_.size()), SQLITE_STATIC);
    sqlite3_bind_blob(st.s, 2, key.data(), static_cast<int>(key.size()), SQLITE_STATIC);
    sqlite3_bind_int64(st.s, 3, b.n);
    sqlite3_bind_double(st.s, 4, b.mean);
    sqlite3_bind_double(st.s, 5, b.m2);
    sqlite3_bind_int64(st.s, 6, b.last_us);
    rc = sqlite3_step(st.s);
    if (rc != SQLITE_DONE) status = Error(rc, "write");
  }
  if (!status.ok()) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    return status;
  }
  return Exec("COMMIT");
}

}  // namespace sluice::transforms_internal
