// Fuzzes FlatReply, the flat token list hiredis's reader builds through our reply-object
// hooks: for any bytes, fed in pieces (split where the first byte says), a reader with the
// hooks and a plain reader (redisReply trees) must agree on every reply — same types, array
// sizes, integers and string bytes in the same order — and fail on the same input.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include <hiredis/hiredis.h>

#include "sluice/connectors/redis/flat_reply.h"

namespace {

using sluice::redis::FlatReply;

// Flatten a redisReply tree in the order FlatReply lists tokens.
void Flatten(const redisReply* r, std::vector<FlatReply::Token>* out, std::string* bytes) {
  FlatReply::Token t;
  t.type = r->type;
  switch (r->type) {
    case REDIS_REPLY_ARRAY:
      t.value = static_cast<int64_t>(r->elements);
      out->push_back(t);
      for (size_t i = 0; i < r->elements; ++i) Flatten(r->element[i], out, bytes);
      return;
    case REDIS_REPLY_INTEGER:
      t.value = r->integer;
      break;
    case REDIS_REPLY_NIL:
      break;
    default:
      t.offset = bytes->size();
      t.length = r->len;
      bytes->append(r->str, r->len);
      break;
  }
  out->push_back(t);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  // The plain reader (the oracle) allocates an array's element pointers as soon as it reads
  // the header, so "*333333332" alone makes it ask for 2.6 GB: leave out inputs whose array
  // headers claim more elements than the input has bytes (each element takes at least 3).
  for (size_t i = input.find('*'); i != std::string_view::npos; i = input.find('*', i + 1)) {
    uint64_t n = 0;
    for (size_t j = i + 1; j < input.size() && input[j] >= '0' && input[j] <= '9' && n < (1u << 30);
         ++j) {
      n = n * 10 + static_cast<uint64_t>(input[j] - '0');
    }
    if (n > input.size()) return 0;
  }
  const size_t split = std::min<size_t>(data[0], input.size());
  redisReader* plain = redisReaderCreate();
  redisReader* flat = redisReaderCreateWithFunctions(FlatReply::Functions());
  for (std::string_view piece : {input.substr(0, split), input.substr(split)}) {
    redisReaderFeed(plain, piece.data(), piece.size());
    redisReaderFeed(flat, piece.data(), piece.size());
  }
  for (int replies = 0; replies < 64; ++replies) {
    void* tree = nullptr;
    const int plain_rc = redisReaderGetReply(plain, &tree);
    FlatReply got;
    void* root = nullptr;
    int flat_rc;
    {
      // Filling installs the hooks itself; the reader here has them already.
      FlatReply::Filling filling(flat, &got);
      flat_rc = redisReaderGetReply(flat, &root);
    }
    if (plain_rc != flat_rc) __builtin_trap();
    if (plain_rc != REDIS_OK) break;  // both refused the bytes
    if ((tree == nullptr) != (root == nullptr)) __builtin_trap();
    if (tree == nullptr) break;  // both need more
    std::vector<FlatReply::Token> want;
    std::string want_bytes;
    Flatten(static_cast<redisReply*>(tree), &want, &want_bytes);
    freeReplyObject(tree);
    if (want.size() != got.tokens().size()) __builtin_trap();
    for (size_t i = 0; i < want.size(); ++i) {
      const auto& w = want[i];
      const auto& g = got.tokens()[i];
      if (w.type != g.type || w.value != g.value || w.length != g.length) __builtin_trap();
      if (std::string_view(want_bytes.data() + w.offset, w.length) != got.text(g)) {
        __builtin_trap();
      }
    }
  }
  redisReaderFree(plain);
  redisReaderFree(flat);
  return 0;
}
