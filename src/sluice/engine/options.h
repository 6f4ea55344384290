#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sluice/core/result.h"
#include "sluice/core/schema.h"

namespace sluice {

/// Option values as JSON that keeps the order keys were written in (a schema's columns, a map's
/// expressions), unlike nlohmann::json, which sorts object keys.
using OptionJson = nlohmann::ordered_json;

/// The type of one node option, checked by the config loader before any node is built.
enum class OptionType : uint8_t {
  kString,
  kInt,
  kFloat,
  kBool,
  kByteSize,    ///< "512MiB", "10MB" or a number of bytes.
  kDuration,    ///< "500ms", "2s", "90d".
  kStringList,  ///< A YAML list of strings (a single string is accepted as a list of one).
  kExpr,        ///< An expression in sluice's expression language (parsed by the node).
  kMap,         ///< A free-form mapping (e.g. column name -> type); checked by the node.
  kEnum,        ///< One of `choices`.
};

std::string_view OptionTypeName(OptionType type);

/// How the mapping of a kMap option is checked by the config loader.
enum class MapShape : uint8_t {
  kFree,          ///< Any keys; the node checks them (column -> type, name -> expression).
  kRecord,        ///< Only the keys declared in `fields`, each checked like an option.
  kNamedRecords,  ///< Keys the user names (database names, table names); each value is a
                  ///< record of `fields` (absent or empty: no field set).
};

/// Declare one option of a node type: its name, type, default, and a one-line doc. This one
/// table drives YAML validation, `sluice nodes` and docs/nodes.md. A mapping option may declare
/// the keys it holds (`fields`, any depth), so a misspelt nested key is a config error at its
/// line, never a silent default.
struct OptionSpec {
  OptionSpec() = default;
  OptionSpec(std::string name_, OptionType type_, std::string default_value_ = "",
             std::string doc_ = "", bool required_ = false, std::vector<std::string> choices_ = {})
      : name(std::move(name_)),
        type(type_),
        default_value(std::move(default_value_)),
        doc(std::move(doc_)),
        required(required_),
        choices(std::move(choices_)) {}

  /// Return a kMap option holding exactly the keys `fields` (e.g. `defaults: {cutoff: 90d}`).
  static OptionSpec Record(std::string name, std::string doc, std::vector<OptionSpec> fields,
                           bool required = false);
  /// Return a kMap option of user-chosen names, each mapped to a record of `fields`
  /// (`databases: {main: {dsn: ...}}`). With `names_as_list`, a list of names is accepted too
  /// (`tables: [a, b]` is `tables: {a: {}, b: {}}`); the loader stores the mapping form.
  static OptionSpec NamedRecords(std::string name, std::string doc, std::vector<OptionSpec> fields,
                                 bool required = false, bool names_as_list = false);

  std::string name;
  OptionType type = OptionType::kString;
  std::string default_value;  ///< As the user would write it; empty means "no default".
  std::string doc;
  bool required = false;
  std::vector<std::string> choices;  ///< For kEnum.
  MapShape shape = MapShape::kFree;  ///< For kMap.
  std::vector<OptionSpec> fields;    ///< For kRecord and kNamedRecords maps: the keys allowed.
  bool names_as_list = false;        ///< For kNamedRecords: a list of names is accepted.
};

using OptionSchema = std::vector<OptionSpec>;

/// The validated options of one node: values from the config (defaults filled in) as JSON,
/// plus where each was written, so a node can report a semantic error at the right line.
class NodeOptions {
 public:
  NodeOptions() = default;
  NodeOptions(std::string node_id, std::string node_type, OptionJson values,
              std::map<std::string, std::string> locations, std::string node_location)
      : id_(std::move(node_id)),
        type_(std::move(node_type)),
        values_(std::move(values)),
        locations_(std::move(locations)),
        node_location_(std::move(node_location)) {}

  const std::string& id() const { return id_; }
  const std::string& type() const { return type_; }
  const OptionJson& values() const { return values_; }

  bool Has(const std::string& name) const {
    return values_.contains(name) && !values_[name].is_null();
  }
  std::string GetString(const std::string& name) const;
  int64_t GetInt(const std::string& name) const;
  double GetFloat(const std::string& name) const;
  bool GetBool(const std::string& name) const;
  /// Return a kByteSize option in bytes (the loader stores sizes as integers; strings such as
  /// "64MiB" given through ForTest are parsed here).
  int64_t GetByteSize(const std::string& name) const;
  /// Return a kDuration option in microseconds (stored as an integer of µs by the loader; a
  /// plain number in YAML means seconds).
  int64_t GetDurationMicros(const std::string& name) const;
  std::vector<std::string> GetStringList(const std::string& name) const;
  const OptionJson& GetJson(const std::string& name) const;
  /// Return a kMap option of column name -> type name ("id: int64") as a Schema, in the order
  /// written; null when the option is absent; a config error at the option's line otherwise.
  Result<SchemaPtr> GetSchema(const std::string& name) const;

  /// Return "file:line:col" of option `name` (or of the node when the option is absent). A
  /// nested key is named by its path: "databases.main.tables.audit.cutoff".
  std::string LocationOf(const std::string& name) const;
  /// Return a kConfigError naming the option's location and the node: use for semantic errors
  /// found while building the node ("file:3:5: node 'x': option 'path': ...").
  Status ErrorAt(const std::string& name, const std::string& message) const;

  /// Build options directly (tests, embedding): values must already have the right types.
  static NodeOptions ForTest(std::string id, OptionJson values, std::string type = "");

 private:
  std::string id_;
  std::string type_;
  OptionJson values_ = OptionJson::object();
  std::map<std::string, std::string> locations_;
  std::string node_location_;
};

/// What a database source reads: a `table` (optionally with `where` and `columns`) or a `query`.
struct TableOrQuery {
  std::string table;
  std::string query;
  std::string where;
  std::vector<std::string> columns;
};

/// Read the `table`, `query`, `where` and `columns` options: exactly one of table and query;
/// where and columns only with table. Errors name the option, as NodeOptions::ErrorAt does.
Result<TableOrQuery> GetTableOrQuery(const NodeOptions& o);

}  // namespace sluice
