#pragma once

// A Redis reply as a flat list of tokens in one buffer, built by hiredis's own parser through
// its reply-object hooks (redisReplyObjectFunctions) instead of one redisReply allocation per
// element: a stream read of 2,500 entries of 6 fields is 40,000 elements, and allocating and
// freeing them was most of the reading thread's time.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <hiredis/hiredis.h>

namespace sluice::redis {

class FlatReply {
 public:
  /// One element, in the order the reply lists them (an array before its elements).
  struct Token {
    int type = 0;       ///< REDIS_REPLY_STRING, _STATUS, _ERROR, _INTEGER, _NIL or _ARRAY.
    int64_t value = 0;  ///< Element count of an array, value of an integer; else 0.
    size_t offset = 0;  ///< Where a string's bytes start in the buffer.
    size_t length = 0;  ///< How many bytes.
  };

  const std::vector<Token>& tokens() const { return tokens_; }
  std::string_view text(const Token& t) const { return {bytes_.data() + t.offset, t.length}; }
  std::string_view text(size_t token) const { return text(tokens_[token]); }
  bool empty() const { return tokens_.empty(); }
  /// Return the error text when the reply is an error reply, else "".
  std::string_view error() const {
    return !tokens_.empty() && tokens_[0].type == REDIS_REPLY_ERROR ? text(tokens_[0])
                                                                    : std::string_view();
  }
  void Clear() {
    tokens_.clear();
    bytes_.clear();
  }

  /// The hooks that make hiredis's reader fill `Current()`; install them on a reader for the
  /// length of one redisGetReply.
  static redisReplyObjectFunctions* Functions();
  /// The reply the hooks of this thread fill (set by Filling).
  static FlatReply*& Current();

  /// Install the hooks on `reader` for this scope, filling `out` (cleared first).
  class Filling {
   public:
    Filling(redisReader* reader, FlatReply* out);
    ~Filling();
    Filling(const Filling&) = delete;
    Filling& operator=(const Filling&) = delete;

   private:
    redisReader* reader_;
    redisReplyObjectFunctions* saved_;
  };

 private:
  friend struct FlatReplyHooks;
  std::vector<Token> tokens_;
  std::string bytes_;
};

/// A stream entry's fields as FlatReply tokens [name, value, ...]: the field list EntryDecoder
/// reads, like RedisValue's.
class FlatFields {
 public:
  FlatFields(const FlatReply* reply, size_t first, size_t count)
      : reply_(reply), first_(first), count_(count) {}
  bool is_array() const { return true; }
  size_t size() const { return count_; }
  std::string_view str(size_t i) const { return reply_->text(first_ + i); }

 private:
  const FlatReply* reply_;
  size_t first_;
  size_t count_;
};

}  // namespace sluice::redis
