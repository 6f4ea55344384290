#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "sluice/connectors/objectstore/object_store.h"
#include "sluice/engine/node.h"
#include "sluice/engine/options.h"
#include "sluice/engine/registry.h"

namespace sluice {

/// The node type name of both the object store source (no inputs) and sink (with inputs).
inline constexpr const char* kObjectStoreType = "object_store";

/// Register the `object_store` source and sink in `registry`.
void RegisterObjectStoreNodes(NodeRegistry* registry);

/// Return the options of every node that opens an object store: url, endpoint, region,
/// path_style, access_key_id, secret_access_key, session_token, connect_timeout,
/// low_speed_time, retry_initial, retry_max, retry_max_attempts, breaker_failures,
/// breaker_timeout. A node type that talks to a store (the archiver) appends these to its own.
const OptionSchema& ObjectStoreConnectionOptions();

/// Return the store settings given by the ObjectStoreConnectionOptions of a node (plus, when
/// present, multipart_threshold, part_size and upload_parallelism). kConfigError names the
/// offending option. The store is not opened.
Result<ObjectStoreOptions> ObjectStoreOptionsFromNode(const NodeOptions& options);

/// Return the option schema of the `object_store` sink / source.
const OptionSchema& ObjectStoreSinkOptions();
const OptionSchema& ObjectStoreSourceOptions();

/// Build an `object_store` sink: each batch becomes one object (JSONL or CSV, compressed, by
/// io::ObjectEncoder; a batch from an `encode` transform, see io/encoded.h, holds finished
/// objects, one per row), named by the `key` template under the URL's prefix from the batch's
/// tags (database, table, date, batch_id) and key column. An object already stored under that
/// key is kept when it has the same size and SHA-256 (a rerun) and is never replaced by other
/// content (AlreadyExists). Each upload is verified (HEAD size, GET and compare a SHA-256)
/// before the batch's acks are released. The manifest,
/// `<prefix>/_manifests/<run_id>.json` (run_id unique per run unless set), is written at most
/// every `manifest_interval` while the run goes on, marked incomplete, and at Close, marked
/// complete only when the run ended without an error or a cancellation. A failed upload or
/// verification fails the batch's acks and returns the error. Under --dry-run it encodes and
/// counts, uploads nothing.
Result<std::unique_ptr<Sink>> MakeObjectStoreSink(const NodeOptions& options);
/// Build the sink over `store` instead of the one the options name (tests, embedding, stores
/// wrapped for fault injection). The URL's prefix still applies.
Result<std::unique_ptr<Sink>> MakeObjectStoreSink(const NodeOptions& options,
                                                  std::shared_ptr<ObjectStore> store);

/// Build an `object_store` source: lists the objects under the URL's prefix plus `prefix`
/// (skipping `_manifests/`), in key order, and streams each one (decompressed, decoded) into
/// batches in constant memory. Without the `schema` option, each object is decoded with the
/// columns (name, sluice type) that a sink's manifest under the prefix or in a `_manifests/`
/// folder above it records, and its batches are tagged with the recorded `pg_types`,
/// `database` and `table`; Open fails with kConfigError when an object is in no manifest.
/// An object a manifest lists is checked against its recorded size and SHA-256 as it streams
/// (DataLoss). Objects are not consumed: Commit and Abandon do nothing.
Result<std::unique_ptr<Source>> MakeObjectStoreSource(const NodeOptions& options);
/// Build the source over `store` instead of the one the options name.
Result<std::unique_ptr<Source>> MakeObjectStoreSource(const NodeOptions& options,
                                                      std::shared_ptr<ObjectStore> store);

/// The default object key template of the sink: the database and table the rows came from,
/// the day they belong to and the batch's first and last keys — the same for the same rows on
/// a rerun, different for different tables on the same day.
inline constexpr const char* kDefaultObjectKeyTemplate =
    "{database}/{table}/{date}/{first_key}-{last_key}{ext}";

/// The values an object key template may use, each already escaped (io::EscapeKeyText or
/// io::FormatKeyValue) so that no value can add a path segment or look like another value.
struct ObjectKeyFields {
  std::string node;       ///< {node}: the sink's node id.
  std::string date;       ///< {date}: tag `date`, else UTC yyyy-mm-dd when the object is written.
  int64_t seq = 0;        ///< {seq}: the batch's arrival number at the sink; restarts every run.
  std::string first_key;  ///< {first_key}: io::FormatKeyValue of key_column's first row.
  std::string last_key;   ///< {last_key}: of its last row.
  std::string database;   ///< {database}: tag `database`, or "".
  std::string table;      ///< {table}: tag `table`, or "".
  std::string batch_id;   ///< {batch_id}: tag `batch_id` (required when the template uses it).
  std::string ext;        ///< {ext}: ".jsonl.gz", ".csv.zst", ".jsonl", ...
};

/// Return an InvalidArgument error naming the first unknown `{placeholder}` or unbalanced
/// brace of `key_template`.
Status ValidateKeyTemplate(std::string_view key_template);

/// Return `key_template` with each placeholder replaced by its field; path segments left empty
/// by empty fields are dropped ("{database}/{table}/x" is "x" without tags). Valid templates
/// only.
std::string ExpandKeyTemplate(std::string_view key_template, const ObjectKeyFields& fields);

/// Return true when `key_template` uses `placeholder` (e.g. "first_key").
bool KeyTemplateUses(std::string_view key_template, std::string_view placeholder);

/// One object a sink wrote, as listed in its manifest.
struct ManifestEntry {
  std::string key;  ///< Full key in the store, prefix included.
  int64_t rows = 0;
  int64_t bytes = 0;  ///< Of the object as stored (compressed).
  int64_t uncompressed_bytes = 0;
  std::string sha256;     ///< Of the object as stored.
  std::string first_key;  ///< {first_key} of the object (key text of its first row).
  std::string last_key;   ///< {last_key} of the object.
  /// Smallest and largest key_column values; null when unknown (objects that came encoded by
  /// an `encode` transform carry only their first and last keys).
  nlohmann::json min_key;
  nlohmann::json max_key;
  std::string database;  ///< Tag `database` of the batch, if any.
  std::string table;     ///< Tag `table` of the batch, if any.
  /// The columns: [{"name", "type", "pg_type" (when the batch's tag `pg_types` gave it)}].
  nlohmann::json columns;
};

/// The manifest one sink writes during and at the end of a run.
struct Manifest {
  std::string node;
  std::string run_id;
  std::string store;  ///< ObjectStore::Describe()
  std::string prefix;
  std::string format;
  std::string compression;
  std::string key_column;
  int64_t created_us = 0;  ///< Wall-clock time of writing, µs since the epoch.
  /// True only when written at Close of a run that ended without an error or a cancellation.
  bool complete = false;
  std::vector<ManifestEntry> objects;
};

/// Return the manifest as JSON: {"node", "run_id", "store", "prefix", "format", "compression",
/// "key_column", "created" (ISO-8601), "complete", "total_objects", "total_rows", "total_bytes",
/// "objects": [{"key", "rows", "bytes", "uncompressed_bytes", "sha256", "first_key",
/// "last_key", "min_key", "max_key", "columns" (+ "database", "table" when known)}]}.
nlohmann::json ManifestToJson(const Manifest& manifest);

/// Check that the object at `key` is exactly `expected_size` bytes (HEAD) and that its content
/// hashes to `expected_sha256` (GET, hashed as it streams). DataLoss naming the object when
/// either differs; errors of the store as they are. An object found shorter than uploaded is
/// looked at again for up to 0.3 s first: some S3-compatible stores (s3rver) answer a PUT
/// before the object is whole on their disk.
Status VerifyObject(ObjectStore* store, const std::string& key, int64_t expected_size,
                    const std::string& expected_sha256);

}  // namespace sluice
