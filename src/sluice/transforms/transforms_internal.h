#pragma once

// Private to src/sluice/transforms: the factories that transforms.cc registers, and the helpers
// they share.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "sluice/core/schema.h"
#include "sluice/engine/node.h"
#include "sluice/engine/options.h"
#include "sluice/engine/registry.h"

namespace sluice::transforms_internal {

/// Remember what a transform derived from an input schema (a bound expression, a column
/// mapping), so that batches after the first reuse it. Looks schemas up by pointer, then by
/// value; keeps the last few. Not thread-safe: each transform instance owns one.
template <typename State>
class SchemaCache {
 public:
  /// Return the state for `schema`, calling `make` (returning Result<State>) on a miss.
  template <typename MakeFn>
  Result<const State*> Get(const SchemaPtr& schema, MakeFn make) {
    for (const auto& e : entries_) {
      if (e.schema == schema) return e.state.get();
    }
    for (const auto& e : entries_) {
      if (*e.schema == *schema) {
        auto state = e.state;
        Insert(schema, state);
        return state.get();
      }
    }
    SLUICE_ASSIGN_OR_RETURN(State made, make());
    auto state = std::make_shared<const State>(std::move(made));
    Insert(schema, state);
    return state.get();
  }

 private:
  static constexpr size_t kMaxEntries = 8;
  struct Entry {
    SchemaPtr schema;  // held so that its address cannot be reused by another schema
    std::shared_ptr<const State> state;
  };
  void Insert(const SchemaPtr& schema, std::shared_ptr<const State> state) {
    if (entries_.size() >= kMaxEntries) entries_.erase(entries_.begin());
    entries_.push_back({schema, std::move(state)});
  }
  std::vector<Entry> entries_;
};

/// Read a kMap option as ordered (key, value-text) pairs. Accepts a mapping (whose keys come in
/// the order the JSON object keeps: alphabetical) or a list of one-entry mappings (in list
/// order). Scalar values that YAML typed (numbers, booleans, null) come back as their text.
Result<std::vector<std::pair<std::string, std::string>>> ReadPairs(const NodeOptions& options,
                                                                   const std::string& name,
                                                                   bool* ordered = nullptr);

/// Return "no column 'x' in the input" with the nearest column name as a suggestion, for
/// option errors of nodes that name columns.
std::string NoColumn(const std::string& name, const Schema& schema);

/// Return a column of `rows` nulls of `type`.
Column NullColumn(TypeId type, int64_t rows);

Result<std::unique_ptr<Transform>> MakeFilter(const NodeOptions& options);
Result<std::unique_ptr<Transform>> MakeMap(const NodeOptions& options);
Result<std::unique_ptr<Transform>> MakeSelect(const NodeOptions& options);
Result<std::unique_ptr<Transform>> MakeRename(const NodeOptions& options);
Result<std::unique_ptr<Transform>> MakeCast(const NodeOptions& options);
Result<std::unique_ptr<Transform>> MakeUnion(const NodeOptions& options);
Result<std::unique_ptr<Transform>> MakeWindow(const NodeOptions& options);
void RegisterWindowNode(NodeRegistry* registry);
Result<std::unique_ptr<Transform>> MakeAnomaly(const NodeOptions& options);
void RegisterAnomalyNode(NodeRegistry* registry);
void RegisterReplicateNode(NodeRegistry* registry);

}  // namespace sluice::transforms_internal
