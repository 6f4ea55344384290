#include "sluice/connectors/redis/flat_reply.h"

namespace sluice::redis {

struct FlatReplyHooks {
  // hiredis wants a non-null object for every element; the tokens need none.
  static void* Object() { return &FlatReply::Current(); }

  static void* String(const redisReadTask* task, char* str, size_t len) {
    FlatReply* r = FlatReply::Current();
    r->tokens_.push_back({task->type, 0, r->bytes_.size(), len});
    r->bytes_.append(str, len);
    return Object();
  }
  static void* Array(const redisReadTask*, int elements) {
    FlatReply::Current()->tokens_.push_back({REDIS_REPLY_ARRAY, elements, 0, 0});
    return Object();
  }
  static void* Integer(const redisReadTask*, long long value) {
    FlatReply::Current()->tokens_.push_back({REDIS_REPLY_INTEGER, value, 0, 0});
    return Object();
  }
  static void* Nil(const redisReadTask*) {
    FlatReply::Current()->tokens_.push_back({REDIS_REPLY_NIL, 0, 0, 0});
    return Object();
  }
  static void Free(void*) {}
};

redisReplyObjectFunctions* FlatReply::Functions() {
  static redisReplyObjectFunctions functions = {&FlatReplyHooks::String, &FlatReplyHooks::Array,
                                                &FlatReplyHooks::Integer, &FlatReplyHooks::Nil,
                                                &FlatReplyHooks::Free};
  return &functions;
}

FlatReply*& FlatReply::Current() {
  thread_local FlatReply* current = nullptr;
  return current;
}

FlatReply::Filling::Filling(redisReader* reader, FlatReply* out)
    : reader_(reader), saved_(reader->fn) {
  out->Clear();
  Current() = out;
  reader_->fn = Functions();
}

FlatReply::Filling::~Filling() {
  reader_->fn = saved_;
  Current() = nullptr;
}

}  // namespace sluice::redis
