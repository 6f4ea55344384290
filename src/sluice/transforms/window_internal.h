#pragma once

// Private to the window transform (window.cc): its configuration, the key index, and the two
// kinds of state — time slices (tumbling and hopping windows) and per-key sessions.

#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "sluice/engine/ack.h"
#include "sluice/transforms/aggregate.h"
#include "sluice/transforms/group_key.h"

namespace sluice::window_internal {

enum class WindowKind : uint8_t { kTumbling, kHopping, kSession };
enum class LatePolicy : uint8_t { kDrop, kOutput, kUpdate };

struct WindowConfig {
  WindowKind kind = WindowKind::kTumbling;
  int64_t size_us = 0;
  int64_t slide_us = 0;  ///< == size_us for tumbling
  int64_t gap_us = 0;    ///< sessions
  int64_t pane_us = 0;   ///< gcd(size, slide): the slices windows are built from
  int64_t lateness_us = 0;
  LatePolicy late = LatePolicy::kDrop;
};

/// Return floor(a / b) for b > 0 (timestamps before 1970 are negative).
inline int64_t FloorDiv(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}

/// a + b, clamped to the int64 range (watermarks are INT64_MIN before the first and INT64_MAX
/// at the end of input).
inline int64_t SatAdd(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) return b > 0 ? INT64_MAX : INT64_MIN;
  return r;
}

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

/// Gives each distinct group key (the group_by values, encoded as bytes) a dense id, so that a
/// slice can find a key's group by index. An open-addressing table of (hash, id) slots over an
/// arena of key bytes: one cache line per lookup, which the caller can prefetch a few rows
/// ahead (the lookup is the window's hottest loop). Rebuilt (Compact) when most ids belong to
/// keys no open window holds, so that memory follows the open windows, not the stream's history.
class KeyIndex {
 public:
  static uint64_t Hash(std::string_view key) { return transforms_internal::KeyHash(key); }
  void Prefetch(uint64_t hash) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[hash & mask_]);
  }
  int32_t Intern(std::string_view key) { return Intern(key, Hash(key)); }
  int32_t Intern(std::string_view key, uint64_t hash) {
    if ((size() + 1) * 2 > static_cast<int64_t>(slots_.size())) Grow();
    for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.id < 0) {
        s = {hash, size()};
        offsets_.push_back(static_cast<uint32_t>(arena_.size()));
        arena_.append(key);
        return s.id;
      }
      if (s.hash == hash && this->key(s.id) == key) return s.id;
    }
  }
  std::string_view key(int32_t id) const {
    const auto i = static_cast<size_t>(id);
    const uint32_t end =
        i + 1 < offsets_.size() ? offsets_[i + 1] : static_cast<uint32_t>(arena_.size());
    return std::string_view(arena_).substr(offsets_[i], end - offsets_[i]);
  }
  int32_t size() const { return static_cast<int32_t>(offsets_.size()); }
  int64_t Bytes() const {
    return static_cast<int64_t>(slots_.capacity() * sizeof(Slot) + arena_.capacity() +
                                offsets_.capacity() * 4);
  }
  void Clear() {
    slots_.clear();
    mask_ = 0;
    arena_.clear();
    offsets_.clear();
  }

 private:
  struct Slot {
    uint64_t hash = 0;
    int32_t id = -1;
  };
  void Grow() {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(std::max<size_t>(1024, old.size() * 2), Slot{});
    mask_ = slots_.size() - 1;
    for (const Slot& s : old) {
      if (s.id < 0) continue;
      size_t i = s.hash & mask_;
      while (slots_[i].id >= 0) i = (i + 1) & mask_;
      slots_[i] = s;
    }
  }

  std::vector<Slot> slots_;  // a power of two, at most half full
  size_t mask_ = 0;
  std::string arena_;              // every key's bytes, by id
  std::vector<uint32_t> offsets_;  // where key `id` starts in arena_
};

/// One pane of time [start, start + pane): the groups of every key with rows in it.
struct Slice {
  AggStore store;
  std::vector<int32_t> group_of_key;  ///< by key id; -1: none
  std::vector<int32_t> key_of_group;
  /// By group: rows folded in after a window holding them fired (late: update). Empty while
  /// the slice has none — most never do — so that new groups, merges and output rows carry no
  /// count until then.
  std::vector<int64_t> late_of_group;
  AckSet acks;             ///< of every input batch with rows here
  uint64_t acks_call = 0;  ///< the Process call whose acks were last merged

  void AddLate(int32_t g, int64_t rows) {
    if (late_of_group.empty()) late_of_group.assign(static_cast<size_t>(store.groups), 0);
    late_of_group[static_cast<size_t>(g)] += rows;
  }
  int64_t LateOf(int32_t g) const {
    return late_of_group.empty() ? 0 : late_of_group[static_cast<size_t>(g)];
  }

  int32_t GroupFor(int32_t key, const AggLayout& layout) {
    if (static_cast<size_t>(key) >= group_of_key.size()) {
      group_of_key.resize(std::max<size_t>(static_cast<size_t>(key) + 1, group_of_key.size() * 2),
                          -1);
    }
    int32_t& g = group_of_key[static_cast<size_t>(key)];
    if (g < 0) {
      g = layout.AddGroup(&store);
      key_of_group.push_back(key);
      if (!late_of_group.empty()) late_of_group.push_back(0);
    }
    return g;
  }
  int64_t Bytes() const {
    return store.Bytes() +
           static_cast<int64_t>(group_of_key.capacity() * 4 + key_of_group.capacity() * 4 +
                                late_of_group.capacity() * 8);
  }
  /// Forget every group and release the acks, keeping the memory for the next use.
  void Reset() {
    for (const int32_t k : key_of_group) group_of_key[static_cast<size_t>(k)] = -1;
    key_of_group.clear();
    late_of_group.clear();
    store.Reset();
    acks.Release();
    acks_call = 0;
  }
  /// Become a copy of `o`, in this slice's memory where it is large enough.
  void CopyFrom(const Slice& o) {
    Reset();
    store.CopyFrom(o.store);
    if (group_of_key.size() < o.group_of_key.size()) group_of_key.resize(o.group_of_key.size(), -1);
    for (size_t g = 0; g < o.key_of_group.size(); ++g) {
      group_of_key[static_cast<size_t>(o.key_of_group[g])] = static_cast<int32_t>(g);
    }
    key_of_group = o.key_of_group;
    late_of_group = o.late_of_group;
    acks.Merge(o.acks);
    acks_call = o.acks_call;
  }
};

/// One result row: a key's aggregates over [start, end).
struct WindowRow {
  std::string_view key;
  int64_t start = 0;
  int64_t end = 0;
  const AggStore* store = nullptr;
  int32_t group = 0;
  int64_t late = 0;
};

/// Receives the rows a firing produces, with the acks of the input behind them.
class RowSink {
 public:
  virtual ~RowSink() = default;
  /// Add every group of `slice` as a row of window [start, end), keys from `keys`: Add for a
  /// whole slice, each aggregate appended over all its groups in one pass.
  virtual Status AddSlice(const Slice& slice, const KeyIndex& keys, int64_t start, int64_t end) = 0;
  virtual Status Add(const WindowRow& row) = 0;
  /// Send the rows added so far downstream carrying `acks`.
  virtual Status Flush(const AckSet& acks) = 0;
};

/// Tumbling and hopping windows, kept as slices of gcd(size, slide): a row is folded into one
/// slice, and a window's result merges the slices it covers, so a small slide costs a merge
/// per window and key rather than a fold per window and row.
class SliceWindows {
 public:
  SliceWindows(const WindowConfig& config, const AggLayout* layout) : c_(config), layout_(layout) {}

  /// What becomes of a row at event time `t` given the watermark so far.
  enum class Fate : uint8_t { kFold, kFoldLate, kLate };
  Fate Classify(int64_t t, int64_t watermark) const;
  /// Return the slice for time `t`, made if needed, with `acks` (of Process call `call`)
  /// merged in. When the slice's block already holds suffixes (a late row under late: drop or
  /// output), the row belongs in every open window's suffix that covers `t`: the first is
  /// returned and the others are added to `also` (cleared first), with the acks merged in.
  Slice* SliceFor(int64_t t, const AckSet& acks, uint64_t call, std::vector<Slice*>* also);
  KeyIndex* keys() { return &keys_; }

  /// Fire every window that ends at or before `watermark` and has not fired, then drop the
  /// slices no window can use any more.
  Status Fire(int64_t watermark, RowSink* out);
  /// Re-emit, for late: update, the fired windows still kept that hold each (slice start,
  /// key id) in `touched` — only those keys' rows, once per window and key.
  Status Refire(const std::vector<std::pair<int64_t, int32_t>>& touched, int64_t watermark,
                RowSink* out);

  int64_t Bytes() const;
  int64_t open_slices() const { return static_cast<int64_t>(slices_.size()); }
  /// Treat every window ending at or before `watermark` as fired (an earlier run wrote it).
  void RestoreFiredThrough(int64_t watermark) {
    fired_through_ = std::max(fired_through_, watermark);
    restored_through_ = std::max(restored_through_, watermark);
  }
  /// Drop every open slice and fail the acknowledgements it holds (a stop, not the end of
  /// the input: the source keeps those rows for the next run). Return how many were open.
  int64_t AbandonOpen();

 private:
  /// The end of the first and of the last window holding the slice that starts at `s`.
  int64_t FirstEnd(int64_t s) const {
    return SatAdd((FloorDiv(SatAdd(s, -c_.size_us), c_.slide_us) + 1) * c_.slide_us, c_.size_us);
  }
  int64_t LastEnd(int64_t s) const {
    return SatAdd(FloorDiv(s, c_.slide_us) * c_.slide_us, c_.size_us);
  }
  /// How long a slice outlives its last window: allowed_lateness under late: update.
  int64_t Retention() const { return c_.late == LatePolicy::kUpdate ? c_.lateness_us : 0; }
  Status EmitWindow(int64_t end, RowSink* out, const std::vector<int32_t>* only_keys);
  /// Emit hopping window [end - size, end) as suffix(start) of its block merged with the next
  /// block's prefix up to `end` (blocks are `size` long, aligned to the epoch).
  Status EmitHopping(int64_t end, RowSink* out);
  /// Build the suffix aggregates of the block starting at `block`: for each window start s in
  /// it, the merge of its slices from s to the block's end.
  Status BuildSuffixes(int64_t block);
  /// The same in the block's own slices (no copies, no second set of slices): each slice
  /// becomes the merge of itself and every later slice of its block, and every open window
  /// start gets a slice. Only when no window is re-emitted from its slices (not late: update).
  Status SuffixesInPlace(int64_t block);
  bool in_place() const { return c_.late != LatePolicy::kUpdate; }
  /// The slice at `s`, made if needed, with `acks` merged in once per Process call.
  Slice* Touch(int64_t s, const AckSet& acks, uint64_t call);
  /// Fold every group of `src` (and its acks) into `dst`; false on an int64 sum overflow.
  bool MergeSliceInto(Slice* dst, const Slice& src);
  void DropShared();
  void Compact();
  /// A reset slice, from the spares when there is one (its memory already grown).
  Slice TakeSpare();
  /// Keep `slice`'s memory for a later TakeSpare (up to a window's worth of slices).
  void Recycle(Slice&& slice);

  WindowConfig c_;
  const AggLayout* layout_;
  KeyIndex keys_;
  std::map<int64_t, Slice> slices_;    // by start
  int64_t fired_through_ = INT64_MIN;  // every window ending at or before this has fired
  // Every window ending at or before this was written by an earlier run (RestoreFiredThrough):
  // this run holds none of its rows, so it is never re-emitted (late: update).
  int64_t restored_through_ = INT64_MIN;
  // Scratch for merging slices into windows.
  AggStore merged_;
  std::vector<int32_t> merged_group_;  // by key id; -1: none
  std::vector<int32_t> merged_keys_;
  std::vector<int64_t> merged_late_;
  std::vector<int32_t> dst_groups_;  // MergeSliceInto's: by group of the slice merged in
  // Hopping windows share merges: per block of `size`, suffix aggregates by window start, and
  // a running prefix of the next block. Built from the slices; dropped (and rebuilt when
  // needed) when a late row changes a slice they cover, or key ids are compacted.
  int64_t suffix_block_ = INT64_MIN;
  std::map<int64_t, Slice> suffixes_;  // by window start; each used by its one window
  int64_t prefix_block_ = INT64_MIN;
  int64_t prefix_end_ = INT64_MIN;  // prefix_ holds the slices in [prefix_block_, prefix_end_)
  Slice prefix_;
  std::vector<Slice> spare_;  // reset slices whose memory the next ones reuse
  /// In place (in_place()): the block whose slices hold suffixes, not their own rows.
  int64_t suffixed_block_ = INT64_MIN;
  /// Slices starting before this are covered by suffixes_ or prefix_.
  int64_t shared_horizon() const {
    return std::max(suffix_block_ == INT64_MIN ? INT64_MIN : suffix_block_ + c_.size_us,
                    prefix_end_);
  }
};

/// Session windows: per key, runs of rows less than `gap` apart. A row can extend a session or
/// join two; a session fires when the watermark passes its last row plus the gap.
class SessionWindows {
 public:
  SessionWindows(const WindowConfig& config, const AggLayout* layout)
      : c_(config), layout_(layout) {}

  /// Return the session that takes a row of `key` at `t` (extended or merged as needed), or
  /// null when that session would already have fired (the row is late). The pointer is valid
  /// until the next call: fold the row in at once.
  AggStore* Assign(std::string_view key, int64_t t, int64_t watermark, const AckSet& acks,
                   uint64_t call);
  Status Fire(int64_t watermark, RowSink* out);
  int64_t Bytes() const { return bytes_; }
  int64_t open_sessions() const { return open_; }
  /// Drop every open session and fail the acknowledgements it holds. Return how many.
  int64_t AbandonOpen();

 private:
  struct Session {
    int64_t start = 0;
    int64_t last = 0;  ///< latest row time; the session ends at last + gap
    AggStore store;    ///< one group
    AckSet acks;
    uint64_t acks_call = 0;
  };
  int64_t SessionBytes(std::string_view key) const {
    return static_cast<int64_t>(sizeof(Session) + key.size()) + 64 + layout_->width() * 8;
  }
  WindowConfig c_;
  const AggLayout* layout_;
  std::unordered_map<std::string, std::vector<Session>, StringHash, std::equal_to<>> by_key_;
  /// (end, key) of every session end set; stale entries are skipped when popped.
  using Due = std::pair<int64_t, std::string>;
  std::priority_queue<Due, std::vector<Due>, std::greater<>> due_;
  int64_t bytes_ = 0;
  int64_t open_ = 0;
};

}  // namespace sluice::window_internal
