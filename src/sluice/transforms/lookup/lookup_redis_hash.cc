// The lookup's reference in Redis hashes: the row of key k is the hash `key_prefix + k`, read
// with one pipelined HMGET per key of a batch.

#include <charconv>
#include <cmath>
#include <cstdlib>

#include "sluice/connectors/redis/redis_client.h"
#include "sluice/connectors/sqlite/sqlite_internal.h"
#include "sluice/core/time.h"
#include "sluice/transforms/lookup/lookup_levels.h"

namespace sluice::lookup {

namespace {

/// Append the text `v` of a hash field as `type`; false when it is not one.
bool AppendText(std::string_view v, TypeId type, ColumnBuilder* b) {
  switch (type) {
    case TypeId::kInt64: {
      int64_t x = 0;
      auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
      if (ec != std::errc() || end != v.data() + v.size() || v.empty()) return false;
      b->AppendInt64(x);
      return true;
    }
    case TypeId::kFloat64: {
      // strtod takes inf, -inf, nan as Redis writes them (INCRBYFLOAT, clients).
      const std::string text(v);
      char* end = nullptr;
      const double x = std::strtod(text.c_str(), &end);
      if (text.empty() || end != text.c_str() + text.size()) return false;
      b->AppendFloat64(x);
      return true;
    }
    case TypeId::kBool: {
      bool x = false;  // as the SQLite connector reads text: 1/0, true/false, t/f
      if (!sqlite_internal::ParseBoolText(v, &x)) return false;
      b->AppendBool(x);
      return true;
    }
    case TypeId::kTimestamp: {
      auto t = ParseTimestamp(v);
      if (!t.ok()) return false;
      b->AppendTimestamp(*t);
      return true;
    }
    default:
      b->AppendString(v);
      return true;
  }
}

class RedisHashReference final : public Reference {
 public:
  const SchemaPtr& value_schema() const override { return value_schema_; }

  Status Fetch(const Batch& keys, std::vector<Found>* found) override {
    const Column& key = keys.column(0);
    std::vector<std::string> names;
    names.reserve(static_cast<size_t>(keys.num_rows()));
    for (int64_t r = 0; r < keys.num_rows(); ++r) {
      names.push_back(prefix_ + (key.type() == TypeId::kString
                                     ? std::string(key.GetView(r))
                                     : std::string(fmt::format_int(key.GetInt64(r)).str())));
    }
    std::vector<std::string_view> argv;
    for (const auto& name : names) {
      argv.assign({"HMGET", name});
      for (const auto& f : value_schema_->fields()) argv.push_back(f.name);
      SLUICE_RETURN_NOT_OK(client_->Append(argv));
    }
    auto replies = client_->Replies(names.size());
    if (!replies.ok()) return replies.status();
    std::vector<ColumnBuilder> builders;
    for (const auto& f : row_schema_->fields()) builders.emplace_back(f.type, keys.num_rows());
    int64_t n = 0;
    for (size_t i = 0; i < names.size(); ++i) {
      const redis::RedisReply& reply = (*replies)[i];
      SLUICE_RETURN_NOT_OK(client_->ReplyError(reply, "HMGET"));
      bool any = false;
      for (size_t f = 0; f < reply.size(); ++f) any |= !reply[f].is_nil();
      if (!any) continue;  // no such hash (or none of the fields): absent
      if (key.type() == TypeId::kString) {
        builders[0].AppendString(key.GetView(static_cast<int64_t>(i)));
      } else {
        builders[0].AppendInt64(key.GetInt64(static_cast<int64_t>(i)));
      }
      for (size_t f = 0; f < reply.size(); ++f) {
        const Field& field = value_schema_->field(static_cast<int>(f));
        ColumnBuilder* b = &builders[f + 1];
        if (reply[f].is_nil()) {
          b->AppendNull();
        } else if (!AppendText(reply[f].str(), field.type, b)) {
          return Status::Invalid("Redis hash '{}', field '{}': '{}' is not a {}", names[i],
                                 field.name, reply[f].str().substr(0, 40), TypeName(field.type));
        }
      }
      ++n;
    }
    std::vector<Column> cols;
    for (auto& b : builders) cols.push_back(b.Finish());
    const BatchPtr rows = Batch::MakeUnchecked(row_schema_, std::move(cols), n, {});
    return EncodeFound(*rows, 1, {key_name_}, found);
  }

  static Result<std::unique_ptr<Reference>> Open(const ReferenceOptions& o,
                                                 const std::vector<TypeId>& key_types) {
    if (key_types.size() != 1 ||
        (key_types[0] != TypeId::kString && key_types[0] != TypeId::kInt64)) {
      return Status::ConfigError(
          "a Redis hash reference takes one key column, a string or an "
          "int64 (the hash is key_prefix + its value)");
    }
    if (o.hash_fields.empty()) {
      return Status::ConfigError(
          "a Redis hash reference needs `schema`: the fields to add and "
          "their types, e.g. {{region: string, capacity_kw: float64}}");
    }
    std::unique_ptr<RedisHashReference> ref(new RedisHashReference());
    redis::RedisOptions ro;
    ro.url = o.redis;
    ro.command_timeout_us = o.timeout_us;
    auto client = redis::RedisClient::Make(ro);
    if (!client.ok()) return client.status();
    ref->client_ = std::move(*client);
    ref->prefix_ = o.key_prefix;
    ref->key_name_ = o.key.empty() ? std::string("key") : o.key[0];
    std::vector<Field> fields = {{ref->key_name_, key_types[0], true}};
    for (const auto& f : o.hash_fields) fields.push_back(f);
    ref->row_schema_ = MakeSchema(std::move(fields));
    ref->value_schema_ = MakeSchema(o.hash_fields);
    return std::unique_ptr<Reference>(std::move(ref));
  }

 private:
  RedisHashReference() = default;

  std::unique_ptr<redis::RedisClient> client_;
  std::string prefix_;
  std::string key_name_;
  SchemaPtr row_schema_;
  SchemaPtr value_schema_;
};

}  // namespace

Result<std::unique_ptr<Reference>> OpenRedisHashReference(const ReferenceOptions& options,
                                                          const std::vector<TypeId>& key_types) {
  return RedisHashReference::Open(options, key_types);
}

}  // namespace sluice::lookup
