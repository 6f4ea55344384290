#include "sluice/io/encoded.h"

namespace sluice {

namespace encoded {

SchemaPtr Schema() {
  static const SchemaPtr kSchema = MakeSchema({{kObject, TypeId::kBytes, false},
                                               {kRows, TypeId::kInt64, false},
                                               {kRawBytes, TypeId::kInt64, false},
                                               {kFirstKey, TypeId::kString, true},
                                               {kLastKey, TypeId::kString, true},
                                               {kExtension, TypeId::kString, false},
                                               {kDatabase, TypeId::kString, true},
                                               {kTable, TypeId::kString, true},
                                               {kDate, TypeId::kString, true}});
  return kSchema;
}

bool IsEncoded(const sluice::Schema& schema) { return schema == *Schema(); }

}  // namespace encoded

}  // namespace sluice
