// The lookup's reference in a SQLite file: one query per batch of keys, the keys bound as one
// JSON array (`json_each`), the cells read as the connector's source reads them.

#include <sqlite3.h>

#include <algorithm>

#include "sluice/connectors/sqlite/sqlite_internal.h"
#include "sluice/transforms/lookup/lookup_levels.h"

namespace sluice::lookup {

namespace {

namespace sq = sqlite_internal;

/// Append `s` as a JSON string.
void AppendJsonString(std::string_view s, std::string* out) {
  out->push_back('"');
  for (const char ch : s) {
    const auto u = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out->push_back('\\');
      out->push_back(ch);
    } else if (u < 0x20) {
      out->append(fmt::format("\\u{:04x}", u));
    } else {
      out->push_back(ch);
    }
  }
  out->push_back('"');
}

class SqliteReference final : public Reference {
 public:
  const SchemaPtr& value_schema() const override { return value_schema_; }

  Status Fetch(const Batch& keys, std::vector<Found>* found) override {
    // [k, ...] for one key column, [[k1, k2], ...] for several.
    std::string json = "[";
    const bool composite = keys.num_columns() > 1;
    for (int64_t r = 0; r < keys.num_rows(); ++r) {
      if (r > 0) json.push_back(',');
      if (composite) json.push_back('[');
      for (int k = 0; k < keys.num_columns(); ++k) {
        if (k > 0) json.push_back(',');
        const Column& c = keys.column(k);
        if (c.type() == TypeId::kString) {
          AppendJsonString(c.GetView(r), &json);
        } else {
          json.append(fmt::format_int(c.GetInt64(r)).str());
        }
      }
      if (composite) json.push_back(']');
    }
    json.push_back(']');
    sqlite3_stmt* stmt = select_.get();
    sqlite3_reset(stmt);
    if (int rc = sqlite3_bind_text(stmt, 1, json.data(), static_cast<int>(json.size()),
                                   SQLITE_TRANSIENT);
        rc != SQLITE_OK) {
      return sq::SqliteError(rc, db_.get(), context_);
    }
    std::vector<ColumnBuilder> builders;
    for (const auto& f : row_schema_->fields()) builders.emplace_back(f.type, keys.num_rows());
    int64_t n = 0;
    for (;;) {
      const int rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) return sq::SqliteError(rc, db_.get(), context_);
      for (int c = 0; c < row_schema_->num_fields(); ++c) {
        std::string_view why;
        const TypeId type = row_schema_->field(c).type;
        if (!sq::AppendCell(stmt, c, type, &builders[static_cast<size_t>(c)], &why)) {
          return Status::Invalid("{}: column '{}' of a reference row cannot be read as {}{}",
                                 context_, row_schema_->field(c).name, TypeName(type), why);
        }
      }
      ++n;
    }
    sqlite3_reset(stmt);
    std::vector<Column> cols;
    for (auto& b : builders) cols.push_back(b.Finish());
    const BatchPtr rows = Batch::MakeUnchecked(row_schema_, std::move(cols), n, {});
    return EncodeFound(*rows, key_names_.size(), key_names_, found);
  }

  static Result<std::unique_ptr<Reference>> Open(const ReferenceOptions& o,
                                                 const std::vector<TypeId>& key_types) {
    std::unique_ptr<SqliteReference> ref(new SqliteReference());
    ref->context_ = fmt::format("SQLite reference {}", o.sqlite);
    ref->key_names_ = o.key;
    auto db = sq::OpenDatabase(o.sqlite, SQLITE_OPEN_READONLY, o.timeout_us, ref->context_);
    if (!db.ok()) return db.status();
    ref->db_ = std::move(*db);
    const std::string relation =
        o.query.empty() ? sq::QuoteIdentifier(o.table) : "(" + o.query + ")";
    // The reference's columns and their declared types.
    auto probe =
        sq::Prepare(ref->db_.get(), "SELECT * FROM " + relation + " LIMIT 0", ref->context_);
    if (!probe.ok()) return probe.status();
    std::vector<std::pair<std::string, TypeId>> columns;
    std::vector<bool> declared_type;  // the column's type came from its declaration
    for (int c = 0; c < sqlite3_column_count(probe->get()); ++c) {
      const auto declared = sq::TypeFromDeclared(sqlite3_column_decltype(probe->get(), c));
      columns.emplace_back(sqlite3_column_name(probe->get(), c),
                           declared.value_or(TypeId::kString));
      declared_type.push_back(declared.has_value());
    }
    auto find = [&](const std::string& name) -> const std::pair<std::string, TypeId>* {
      for (const auto& c : columns) {
        if (c.first == name) return &c;
      }
      return nullptr;
    };
    std::string names;
    for (const auto& c : columns) names += (names.empty() ? "" : ", ") + c.first;
    std::vector<Field> fields;
    for (size_t k = 0; k < o.key.size(); ++k) {
      if (find(o.key[k]) == nullptr) {
        return Status::ConfigError("{}: no column '{}'; the reference has: {}", ref->context_,
                                   o.key[k], names);
      }
      // SQLite compares 1 and '1' as different values: a key of another type than the
      // reference's declared one would match nothing, silently.
      const auto* ref_key = find(o.key[k]);
      const size_t index = static_cast<size_t>(ref_key - columns.data());
      if (declared_type[index] && ref_key->second != key_types[k]) {
        return Status::ConfigError(
            "{}: reference key '{}' is declared {}, but the input's key column {} is {}: they "
            "would never be equal; cast one of them (a `map` before the lookup, or a `query` "
            "with CAST)",
            ref->context_, o.key[k], TypeName(ref_key->second), k + 1, TypeName(key_types[k]));
      }
      if (key_types[k] != TypeId::kString && key_types[k] != TypeId::kInt64) {
        return Status::ConfigError(
            "{}: key column {} is {}; a SQLite lookup key is a string or "
            "an int64",
            ref->context_, k + 1, TypeName(key_types[k]));
      }
      fields.push_back({o.key[k], key_types[k], true});
    }
    std::vector<std::string> values = o.columns;
    if (values.empty()) {
      for (const auto& c : columns) {
        if (std::find(o.key.begin(), o.key.end(), c.first) == o.key.end()) {
          values.push_back(c.first);
        }
      }
    }
    std::vector<Field> value_fields;
    for (const auto& v : values) {
      const auto* c = find(v);
      if (c == nullptr) {
        return Status::ConfigError("{}: no column '{}'; the reference has: {}", ref->context_, v,
                                   names);
      }
      fields.push_back({v, c->second, true});
      value_fields.push_back({v, c->second, true});
    }
    std::string select, on, from_json;
    for (const auto& f : fields) {
      select += (select.empty() ? "" : ", ") + sq::QuoteIdentifier(f.name);
    }
    for (size_t k = 0; k < o.key.size(); ++k) {
      on += (k ? ", " : "") + sq::QuoteIdentifier(o.key[k]);
      from_json += o.key.size() == 1
                       ? std::string("value")
                       : fmt::format("{}json_extract(value, '$[{}]')", k ? ", " : "", k);
    }
    const std::string sql =
        fmt::format("SELECT {} FROM {} WHERE ({}) IN (SELECT {} FROM json_each(?1))", select,
                    relation, on, from_json);
    auto stmt = sq::Prepare(ref->db_.get(), sql, ref->context_);
    if (!stmt.ok()) return stmt.status();
    ref->select_ = std::move(*stmt);
    ref->row_schema_ = MakeSchema(std::move(fields));
    ref->value_schema_ = MakeSchema(std::move(value_fields));
    return std::unique_ptr<Reference>(std::move(ref));
  }

 private:
  SqliteReference() = default;

  std::string context_;
  std::vector<std::string> key_names_;
  sq::DbPtr db_;
  sq::StmtPtr select_;
  SchemaPtr row_schema_;
  SchemaPtr value_schema_;
};

}  // namespace

Result<std::unique_ptr<Reference>> OpenSqliteReference(const ReferenceOptions& options,
                                                       const std::vector<TypeId>& key_types) {
  return SqliteReference::Open(options, key_types);
}

}  // namespace sluice::lookup
