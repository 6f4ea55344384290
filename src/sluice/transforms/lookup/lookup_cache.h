#pragma once

// Level 1 of the lookup transform: an in-process cache of reference rows by key, with a time to
// live, a byte cap and S3-FIFO eviction, shared by name between the nodes (and the instances of
// one node) of a run, with request coalescing: while one caller fetches a key, others asking for
// it wait for that fetch instead of making their own.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "sluice/resilience/clock.h"

namespace sluice::lookup {

struct CacheOptions {
  int64_t ttl_us = 300'000'000;          ///< A found row is kept this long.
  int64_t negative_ttl_us = 30'000'000;  ///< An absent key is remembered this long.
  int64_t max_bytes = 64 << 20;          ///< Keys, values and bookkeeping.
};

/// What the cache knows of one key.
enum class Probe : uint8_t {
  kMiss,    ///< Nothing (or expired): fetch it.
  kFound,   ///< A row; its value is in the probe's output.
  kAbsent,  ///< Fetched before and not in the reference (a negative entry).
};

struct CacheStats {
  int64_t entries = 0;
  int64_t bytes = 0;
  int64_t evictions = 0;
  int64_t expirations = 0;
};

/// S3-FIFO (Yang et al., SOSP 2023): new keys enter a small FIFO queue (a tenth of the bytes);
/// one read again before it leaves moves to the main queue, the others leave and are remembered
/// in a ghost queue (keys only), from which a key that comes back goes straight to main. Main
/// is a FIFO with reinsertion of entries read since they were last looked at. A scan of keys
/// read once passes through the small queue without pushing the hot keys out of main.
///
/// Entries expire (ttl, negative_ttl) with a ±10 % jitter, so that keys filled together do not
/// all expire together and send one burst of fetches to the database.
///
/// Thread-safe; every call takes the cache's mutex once (callers work a batch at a time).
class LookupCache {
 public:
  LookupCache(CacheOptions options, Clock* clock);

  /// For each of `keys`: Found (value copied to (*values)[i]), Absent or Miss. `hashes`
  /// are the keys' KeyHash (the caller has them from grouping its batch).
  void GetMany(const std::vector<std::string_view>& keys, const std::vector<uint64_t>& hashes,
               std::vector<Probe>* probes, std::vector<std::string>* values);
  /// Store the row `value` of `key`, or (nullopt) that the reference has no such key.
  void Put(std::string_view key, std::optional<std::string_view> value);

  /// Coalescing. Split `keys` (misses of GetMany) into those the caller must fetch — marked
  /// in flight until Done() — and the others: being fetched by another caller now, or filled
  /// since the GetMany (AwaitFetches, then GetMany again).
  void Claim(const std::vector<std::string_view>& keys, std::vector<uint8_t>* mine);
  /// Clear the in-flight marks of `keys` (fetched, or failed) and wake the waiters.
  void Done(const std::vector<std::string_view>& keys);
  /// Wait until none of `keys` is in flight.
  void AwaitFetches(const std::vector<std::string_view>& keys);

  CacheStats stats() const;
  /// Return how much the bytes held changed since the last call (by any caller): the callers
  /// count it against the run's memory budget, so that a cache shared by instances or nodes
  /// is counted once.
  int64_t TakeBytesDelta();
  /// Return how many entries were evicted since the last call (by any caller).
  int64_t TakeEvictionsDelta();
  const CacheOptions& options() const { return options_; }

 private:
  struct Entry {
    std::string data;  // the key's bytes, then the value's
    uint32_t key_size = 0;
    uint64_t hash = 0;
    int64_t expires_us = 0;
    uint8_t freq = 0;  // reads since insertion or the last look, up to 3
    bool absent = false;
    bool main = false;  // in the main queue (else the small one)
    std::string_view key() const { return std::string_view(data).substr(0, key_size); }
    std::string_view value() const { return std::string_view(data).substr(key_size); }
  };
  /// An open-addressing slot (linear probing, at most half full): the hash and the entry.
  struct Slot {
    uint64_t hash = 0;
    int32_t entry = -1;
  };

  static int64_t EntryBytes(const Entry& e) {
    return static_cast<int64_t>(e.data.size()) + static_cast<int64_t>(sizeof(Entry) + 32);
  }
  /// Return the entry of `key`, or -1.
  int32_t FindLocked(std::string_view key, uint64_t hash) const;
  int32_t InsertLocked(std::string_view key, uint64_t hash);
  void EraseLocked(int32_t entry);
  void GrowLocked();
  int64_t Jitter(int64_t ttl_us);
  void EvictLocked();
  void RememberGhostLocked(uint64_t hash);

  const CacheOptions options_;
  Clock* const clock_;
  mutable std::mutex mu_;
  std::condition_variable fetched_;
  std::vector<Slot> slots_;  // a power of two
  size_t mask_ = 0;
  std::vector<Entry> entries_;  // by index; free ones listed in free_
  std::vector<int32_t> free_;
  int64_t count_ = 0;
  // Queues of entries. Every entry is in exactly one queue, and is erased only when eviction
  // pops it: an expired entry stays (a miss) until then, and a Put of a key already held
  // updates it in place.
  std::deque<int32_t> small_, main_;
  int64_t small_bytes_ = 0, main_bytes_ = 0;
  std::deque<uint64_t> ghost_;  // hashes of keys evicted from the small queue
  std::unordered_set<uint64_t> ghost_set_;
  std::unordered_set<std::string> in_flight_;
  std::vector<int32_t> found_;  // GetMany's scratch
  uint64_t jitter_state_ = 0x9e3779b97f4a7c15ULL;
  int64_t reported_bytes_ = 0;      // the sum of TakeBytesDelta's answers
  int64_t reported_evictions_ = 0;  // the sum of TakeEvictionsDelta's answers
  CacheStats stats_;
};

/// The caches of a process by name: nodes naming the same cache share one (the first to ask
/// sets its options; a later one asking with other options gets an error).
class CacheRegistry {
 public:
  static CacheRegistry* Global();
  /// Return the cache `name`, made with `options` on `clock` if it does not exist yet. An
  /// empty name makes a private cache. `reference` says what its values are (where they come
  /// from, which columns): a lookup naming a cache that holds another reference's rows gets
  /// an error, not those rows.
  std::shared_ptr<LookupCache> Get(const std::string& name, const CacheOptions& options,
                                   const std::string& reference, Clock* clock, std::string* error);

 private:
  std::mutex mu_;
  struct Entry {
    std::weak_ptr<LookupCache> cache;
    std::string reference;
  };
  std::unordered_map<std::string, Entry> caches_;
};

}  // namespace sluice::lookup
