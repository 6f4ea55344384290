// The state of the window transform: time slices for tumbling and hopping windows, and
// per-key sessions. See window_internal.h.

#include <algorithm>
#include <set>

#include "sluice/transforms/window_internal.h"

namespace sluice::window_internal {

// ---- SliceWindows ----

SliceWindows::Fate SliceWindows::Classify(int64_t t, int64_t watermark) const {
  const int64_t s = FloorDiv(t, c_.pane_us) * c_.pane_us;
  if (FirstEnd(s) > watermark) return Fate::kFold;  // no window holding it has fired
  if (c_.late == LatePolicy::kUpdate) {
    // Windows an earlier run wrote are not kept here: a row only they hold is late.
    if (LastEnd(s) <= restored_through_) return Fate::kLate;
    return SatAdd(LastEnd(s), c_.lateness_us) > watermark ? Fate::kFoldLate : Fate::kLate;
  }
  // Windows that fired do not see it, but a later window holding the slice still will.
  return LastEnd(s) > watermark ? Fate::kFold : Fate::kLate;
}

Slice* SliceWindows::SliceFor(int64_t t, const AckSet& acks, uint64_t call,
                              std::vector<Slice*>* also) {
  also->clear();
  const int64_t s = FloorDiv(t, c_.pane_us) * c_.pane_us;
  if (suffixed_block_ != INT64_MIN && s >= suffixed_block_ &&
      s < SatAdd(suffixed_block_, c_.size_us)) {
    // The block's slices hold suffixes: the row goes into each open window's that covers it,
    // those starting in the block at or before it.
    Slice* first = nullptr;
    for (int64_t u = FloorDiv(s, c_.slide_us) * c_.slide_us;
         u >= suffixed_block_ && SatAdd(u, c_.size_us) > fired_through_; u -= c_.slide_us) {
      Slice* slice = Touch(u, acks, call);
      if (first == nullptr) {
        first = slice;
      } else {
        also->push_back(slice);
      }
    }
    if (first != nullptr) return first;
  }
  if (s < shared_horizon()) DropShared();  // a late row changes what they were built from
  return Touch(s, acks, call);
}

Slice* SliceWindows::Touch(int64_t s, const AckSet& acks, uint64_t call) {
  auto it = slices_.find(s);
  if (it == slices_.end()) it = slices_.emplace(s, TakeSpare()).first;
  Slice& slice = it->second;
  if (slice.acks_call != call) {
    slice.acks.Merge(acks);
    slice.acks_call = call;
  }
  return &slice;
}

Status SliceWindows::Fire(int64_t watermark, RowSink* out) {
  if (watermark <= fired_through_) return Status::OK();
  std::set<int64_t> ends;
  for (const auto& [s, slice] : slices_) {
    int64_t e = FirstEnd(s);
    if (e <= fired_through_) {
      // Skip the windows that fired already: the first end after fired_through_.
      const int64_t behind = fired_through_ - e;
      e = SatAdd(e, (behind / c_.slide_us + 1) * c_.slide_us);
    }
    for (const int64_t last = LastEnd(s); e <= last && e <= watermark; e = SatAdd(e, c_.slide_us)) {
      ends.insert(e);
      if (e == INT64_MAX) break;
    }
  }
  for (const int64_t e : ends) {
    SLUICE_RETURN_NOT_OK(c_.slide_us < c_.size_us ? EmitHopping(e, out)
                                                  : EmitWindow(e, out, nullptr));
  }
  fired_through_ = watermark;
  const int64_t keep = Retention();
  for (auto it = slices_.begin(); it != slices_.end();) {
    if (SatAdd(LastEnd(it->first), keep) > watermark) {
      ++it;
      continue;
    }
    Recycle(std::move(it->second));
    it = slices_.erase(it);
  }
  Compact();
  return Status::OK();
}

Status SliceWindows::Refire(const std::vector<std::pair<int64_t, int32_t>>& touched,
                            int64_t watermark, RowSink* out) {
  std::map<int64_t, std::vector<int32_t>> keys_by_end;
  for (const auto& [s, key] : touched) {
    for (int64_t e = FirstEnd(s), last = LastEnd(s); e <= last; e = SatAdd(e, c_.slide_us)) {
      // Fired (e <= watermark) and still kept: re-emit; not fired yet: it will be.
      if (e <= watermark && SatAdd(e, c_.lateness_us) > watermark && e > restored_through_) {
        keys_by_end[e].push_back(key);
      }
      if (e == INT64_MAX) break;
    }
  }
  for (auto& [e, keys] : keys_by_end) {
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    SLUICE_RETURN_NOT_OK(EmitWindow(e, out, &keys));
  }
  return Status::OK();
}

Status SliceWindows::EmitWindow(int64_t end, RowSink* out, const std::vector<int32_t>* only_keys) {
  const int64_t start = end - c_.size_us;
  const auto first = slices_.lower_bound(start);
  const auto last = slices_.lower_bound(end);
  if (first == last) return Status::OK();
  WindowRow row;
  row.start = start;
  row.end = end;
  if (std::next(first) == last && only_keys == nullptr) {
    // One slice is the whole window (tumbling): its groups are the rows.
    const Slice& slice = first->second;
    SLUICE_RETURN_NOT_OK(out->AddSlice(slice, keys_, start, end));
    return out->Flush(slice.acks);
  }
  // Merge the slices' groups per key into merged_.
  if (merged_group_.size() < static_cast<size_t>(keys_.size())) {
    merged_group_.resize(static_cast<size_t>(keys_.size()), -1);
  }
  AckSet acks;
  bool ok = true;
  auto merge_group = [&](const Slice& slice, int32_t g) {
    const int32_t key = slice.key_of_group[static_cast<size_t>(g)];
    int32_t& mg = merged_group_[static_cast<size_t>(key)];
    if (mg < 0) {
      mg = layout_->AddGroup(&merged_);
      merged_keys_.push_back(key);
      merged_late_.push_back(0);
    }
    ok &= layout_->Merge(&merged_, mg, slice.store, g);
    merged_late_[static_cast<size_t>(mg)] += slice.LateOf(g);
  };
  for (auto it = first; it != last; ++it) {
    const Slice& slice = it->second;
    acks.Merge(slice.acks);
    if (only_keys == nullptr) {
      for (int32_t g = 0; g < slice.store.groups; ++g) merge_group(slice, g);
    } else {
      for (const int32_t key : *only_keys) {
        if (static_cast<size_t>(key) >= slice.group_of_key.size()) continue;
        const int32_t g = slice.group_of_key[static_cast<size_t>(key)];
        if (g >= 0) merge_group(slice, g);
      }
    }
  }
  Status st = ok ? Status::OK()
                 : Status::Invalid("an int64 sum of the window [{}, {}) overflows", start, end);
  row.store = &merged_;
  for (size_t mg = 0; st.ok() && mg < merged_keys_.size(); ++mg) {
    row.key = keys_.key(merged_keys_[mg]);
    row.group = static_cast<int32_t>(mg);
    row.late = merged_late_[mg];
    st = out->Add(row);
  }
  if (st.ok()) st = out->Flush(acks);
  for (const int32_t key : merged_keys_) merged_group_[static_cast<size_t>(key)] = -1;
  merged_keys_.clear();
  merged_late_.clear();
  merged_.Reset();
  return st;
}

bool SliceWindows::MergeSliceInto(Slice* dst, const Slice& src) {
  const auto n = static_cast<size_t>(src.store.groups);
  dst_groups_.resize(n);
  for (size_t g = 0; g < n; ++g) dst_groups_[g] = dst->GroupFor(src.key_of_group[g], *layout_);
  if (!src.late_of_group.empty()) {
    for (size_t g = 0; g < n; ++g) {
      if (src.late_of_group[g] != 0) dst->AddLate(dst_groups_[g], src.late_of_group[g]);
    }
  }
  dst->acks.Merge(src.acks);
  return layout_->MergeGroups(&dst->store, dst_groups_.data(), src.store, src.store.groups);
}

Slice SliceWindows::TakeSpare() {
  if (spare_.empty()) {
    // Room for as many groups as the largest open slice, and some: growing by doubling would
    // touch twice the memory and copy it (hopping windows keep a window's worth of such
    // slices, and a suffix gains the keys of the slices after it).
    int32_t most = 0;
    for (const auto& [s, slice] : slices_) most = std::max(most, slice.store.groups);
    most += most / 4;
    Slice fresh;
    layout_->Reserve(&fresh.store, most);
    fresh.key_of_group.reserve(static_cast<size_t>(most));
    return fresh;
  }
  Slice s = std::move(spare_.back());
  spare_.pop_back();
  return s;
}

void SliceWindows::Recycle(Slice&& slice) {
  const int64_t most = std::min<int64_t>(c_.size_us / c_.pane_us + 2, 64);
  if (static_cast<int64_t>(spare_.size()) >= most) return;
  slice.Reset();
  spare_.push_back(std::move(slice));
}

void SliceWindows::DropShared() {
  for (auto& [s, suffix] : suffixes_) Recycle(std::move(suffix));
  suffixes_.clear();
  suffix_block_ = INT64_MIN;
  prefix_.Reset();
  prefix_block_ = INT64_MIN;
  prefix_end_ = INT64_MIN;
}

Status SliceWindows::BuildSuffixes(int64_t block) {
  suffixes_.clear();
  suffix_block_ = block;
  const auto lo = slices_.lower_bound(block);
  auto it = slices_.lower_bound(SatAdd(block, c_.size_us));
  Slice acc = TakeSpare();
  bool ok = true;
  // Window starts in the block, last first; acc holds the slices from the start to the end.
  for (int64_t s = FloorDiv(SatAdd(block, c_.size_us - 1), c_.slide_us) * c_.slide_us; s >= block;
       s -= c_.slide_us) {
    while (it != lo && std::prev(it)->first >= s) {
      --it;
      ok &= MergeSliceInto(&acc, it->second);
    }
    if (SatAdd(s, c_.size_us) <= fired_through_) break;  // this window and earlier ones fired
    if (s == block) {
      suffixes_.emplace(s, std::move(acc));
      acc = TakeSpare();
      break;
    }
    Slice copy = TakeSpare();
    copy.CopyFrom(acc);
    suffixes_.emplace(s, std::move(copy));
  }
  Recycle(std::move(acc));
  if (!ok) return Status::Invalid("an int64 sum in the block at {} overflows", block);
  return Status::OK();
}

Status SliceWindows::SuffixesInPlace(int64_t block) {
  suffixed_block_ = block;
  const int64_t block_end = SatAdd(block, c_.size_us);
  // Every open window starting in the block gets a slice, to hold its suffix.
  for (int64_t u = FloorDiv(block_end - 1, c_.slide_us) * c_.slide_us; u >= block;
       u -= c_.slide_us) {
    if (SatAdd(u, c_.size_us) <= fired_through_) break;
    if (!slices_.contains(u)) slices_.emplace(u, TakeSpare());
  }
  const auto lo = slices_.lower_bound(block);
  auto it = slices_.lower_bound(block_end);
  bool ok = true;
  // Last to first: each slice takes in the one after it, which already holds the rest.
  while (it != lo && std::prev(it) != lo) {
    const auto prev = std::prev(it, 2);
    if (LastEnd(prev->first) <= fired_through_) break;  // every window holding it fired
    ok &= MergeSliceInto(&prev->second, std::prev(it)->second);
    --it;
  }
  if (!ok) return Status::Invalid("an int64 sum in the block at {} overflows", block);
  return Status::OK();
}

Status SliceWindows::EmitHopping(int64_t end, RowSink* out) {
  const int64_t start = end - c_.size_us;
  const int64_t block = FloorDiv(start, c_.size_us) * c_.size_us;
  const int64_t next = block + c_.size_us;
  std::map<int64_t, Slice>::iterator it;
  if (in_place()) {
    if (suffixed_block_ != block) SLUICE_RETURN_NOT_OK(SuffixesInPlace(block));
    it = slices_.find(start);
    if (it == slices_.end()) return Status::OK();  // fired before (cannot happen: ends rise)
  } else {
    if (suffix_block_ != block || !suffixes_.contains(start))
      SLUICE_RETURN_NOT_OK(BuildSuffixes(block));
    it = suffixes_.find(start);
    if (it == suffixes_.end()) return Status::OK();  // fired before (cannot happen: ends rise)
  }
  Slice& window = it->second;
  if (end > next) {
    // Extend the next block's prefix to the window's end, then fold it into the suffix.
    if (prefix_block_ != next) {
      prefix_.Reset();
      prefix_block_ = next;
      prefix_end_ = next;
    }
    bool ok = true;
    for (auto s = slices_.lower_bound(prefix_end_); s != slices_.end() && s->first < end; ++s) {
      ok &= MergeSliceInto(&prefix_, s->second);
    }
    prefix_end_ = std::max(prefix_end_, end);
    ok &= MergeSliceInto(&window, prefix_);
    if (!ok) return Status::Invalid("an int64 sum of the window [{}, {}) overflows", start, end);
  }
  Status st = out->AddSlice(window, keys_, start, end);
  if (st.ok()) st = out->Flush(window.acks);
  if (in_place()) return st;  // Fire drops the slice: this was the last window holding it
  Recycle(std::move(window));
  suffixes_.erase(it);
  return st;
}

int64_t SliceWindows::AbandonOpen() {
  const auto open = static_cast<int64_t>(slices_.size());
  for (auto& [s, slice] : slices_) slice.acks.Fail();
  slices_.clear();
  DropShared();
  suffixed_block_ = INT64_MIN;
  keys_.Clear();
  merged_group_.clear();
  return open;
}

void SliceWindows::Compact() {
  if (slices_.empty()) {
    keys_.Clear();
    DropShared();
    suffixed_block_ = INT64_MIN;
    merged_group_.clear();
    return;
  }
  int64_t most = 0;  // a lower bound of the live keys, cheap to find
  for (const auto& [s, slice] : slices_) most = std::max<int64_t>(most, slice.store.groups);
  if (keys_.size() < 4096 || keys_.size() <= 2 * most) return;
  std::vector<uint8_t> live(static_cast<size_t>(keys_.size()), 0);
  int64_t distinct = 0;
  for (const auto& [s, slice] : slices_) {
    for (const int32_t k : slice.key_of_group) {
      distinct += live[static_cast<size_t>(k)] == 0;
      live[static_cast<size_t>(k)] = 1;
    }
  }
  if (keys_.size() <= 2 * distinct) return;
  // Most ids belong to keys no open slice holds: give the live keys new, dense ids.
  KeyIndex fresh;
  for (auto& [s, slice] : slices_) {
    std::vector<int32_t> group_of_key;
    for (size_t g = 0; g < slice.key_of_group.size(); ++g) {
      const int32_t id = fresh.Intern(keys_.key(slice.key_of_group[g]));
      if (static_cast<size_t>(id) >= group_of_key.size()) {
        group_of_key.resize(static_cast<size_t>(id) + 1, -1);
      }
      group_of_key[static_cast<size_t>(id)] = static_cast<int32_t>(g);
      slice.key_of_group[g] = id;
    }
    slice.group_of_key = std::move(group_of_key);
  }
  keys_ = std::move(fresh);
  DropShared();  // they hold the old key ids
  merged_group_.assign(static_cast<size_t>(keys_.size()), -1);
}

int64_t SliceWindows::Bytes() const {
  int64_t n = keys_.Bytes() + merged_.Bytes() + static_cast<int64_t>(merged_group_.capacity() * 4) +
              prefix_.Bytes();
  for (const auto& [s, suffix] : suffixes_) n += suffix.Bytes() + 64;
  for (const auto& [s, slice] : slices_) n += slice.Bytes() + 64;
  for (const Slice& slice : spare_) n += slice.Bytes();
  return n;
}

// ---- SessionWindows ----

AggStore* SessionWindows::Assign(std::string_view key, int64_t t, int64_t watermark,
                                 const AckSet& acks, uint64_t call) {
  auto it = by_key_.find(key);
  if (it == by_key_.end()) {
    if (SatAdd(t, c_.gap_us) <= watermark) return nullptr;  // its session would have fired
    it = by_key_.emplace(std::string(key), std::vector<Session>()).first;
  }
  std::vector<Session>& list = it->second;
  // The sessions this row touches: rows less than `gap` apart share a session.
  size_t first = list.size(), count = 0;
  for (size_t i = 0; i < list.size(); ++i) {
    if (t > SatAdd(list[i].start, -c_.gap_us) && t < SatAdd(list[i].last, c_.gap_us)) {
      if (first == list.size()) first = i;
      ++count;
    }
  }
  if (count == 0) {
    if (SatAdd(t, c_.gap_us) <= watermark) {
      if (list.empty()) by_key_.erase(it);
      return nullptr;
    }
    auto pos = std::lower_bound(list.begin(), list.end(), t,
                                [](const Session& s, int64_t v) { return s.start < v; });
    pos = list.insert(pos, Session{});
    pos->start = pos->last = t;
    layout_->AddGroup(&pos->store);
    first = static_cast<size_t>(pos - list.begin());
    bytes_ += SessionBytes(key);
    ++open_;
  }
  Session& s = list[first];
  // A row can bridge sessions: fold the later ones into the first (they are consecutive).
  for (size_t k = 1; k < count; ++k) {
    Session& next = list[first + k];
    layout_->Merge(&s.store, 0, next.store, 0);
    s.acks.Merge(next.acks);
    s.last = std::max(s.last, next.last);
    bytes_ -= SessionBytes(key);
    --open_;
  }
  if (count > 1) {
    list.erase(list.begin() + static_cast<ptrdiff_t>(first + 1),
               list.begin() + static_cast<ptrdiff_t>(first + count));
  }
  const int64_t old_end = count == 0 ? INT64_MIN : SatAdd(s.last, c_.gap_us);
  s.start = std::min(s.start, t);
  s.last = std::max(s.last, t);
  if (const int64_t end = SatAdd(s.last, c_.gap_us); end != old_end) {
    due_.emplace(end, std::string(key));
  }
  if (s.acks_call != call) {
    s.acks.Merge(acks);
    s.acks_call = call;
  }
  return &s.store;
}

int64_t SessionWindows::AbandonOpen() {
  const int64_t open = open_;
  for (auto& [key, list] : by_key_) {
    for (auto& s : list) s.acks.Fail();
  }
  by_key_.clear();
  due_ = {};
  bytes_ = 0;
  open_ = 0;
  return open;
}

Status SessionWindows::Fire(int64_t watermark, RowSink* out) {
  AckSet acks;
  bool any = false;
  while (!due_.empty() && due_.top().first <= watermark) {
    const std::string key = due_.top().second;
    due_.pop();
    auto it = by_key_.find(key);
    if (it == by_key_.end()) continue;  // fired through an earlier entry
    std::vector<Session>& list = it->second;
    for (auto s = list.begin(); s != list.end();) {
      const int64_t end = SatAdd(s->last, c_.gap_us);
      if (end > watermark) {
        ++s;
        continue;
      }
      WindowRow row;
      row.key = it->first;
      row.start = s->start;
      row.end = end;
      row.store = &s->store;
      SLUICE_RETURN_NOT_OK(out->Add(row));
      acks.Merge(s->acks);
      any = true;
      bytes_ -= SessionBytes(key);
      --open_;
      s = list.erase(s);
    }
    if (list.empty()) by_key_.erase(it);
  }
  return any ? out->Flush(acks) : Status::OK();
}

}  // namespace sluice::window_internal
