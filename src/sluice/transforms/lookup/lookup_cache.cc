#include "sluice/transforms/lookup/lookup_cache.h"

#include <algorithm>
#include <functional>

#include "sluice/transforms/group_key.h"

namespace sluice::lookup {

LookupCache::LookupCache(CacheOptions options, Clock* clock) : options_(options), clock_(clock) {}

int64_t LookupCache::Jitter(int64_t ttl_us) {
  // xorshift: a spread of ttl * [0.9, 1.1), no need for quality.
  jitter_state_ ^= jitter_state_ << 13;
  jitter_state_ ^= jitter_state_ >> 7;
  jitter_state_ ^= jitter_state_ << 17;
  const double f = 0.9 + 0.2 * static_cast<double>(jitter_state_ >> 11) * 0x1.0p-53;
  return static_cast<int64_t>(static_cast<double>(ttl_us) * f);
}

int32_t LookupCache::FindLocked(std::string_view key, uint64_t hash) const {
  if (slots_.empty()) return -1;
  for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
    const Slot& s = slots_[i];
    if (s.entry < 0) return -1;
    if (s.hash == hash && entries_[static_cast<size_t>(s.entry)].key() == key) return s.entry;
  }
}

void LookupCache::GrowLocked() {
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(std::max<size_t>(1024, old.size() * 2), Slot{});
  mask_ = slots_.size() - 1;
  for (const Slot& s : old) {
    if (s.entry < 0) continue;
    size_t i = s.hash & mask_;
    while (slots_[i].entry >= 0) i = (i + 1) & mask_;
    slots_[i] = s;
  }
}

int32_t LookupCache::InsertLocked(std::string_view key, uint64_t hash) {
  if (static_cast<size_t>(count_ + 1) * 2 > slots_.size()) GrowLocked();
  int32_t id;
  if (!free_.empty()) {
    id = free_.back();
    free_.pop_back();
  } else {
    id = static_cast<int32_t>(entries_.size());
    entries_.emplace_back();
  }
  Entry& e = entries_[static_cast<size_t>(id)];
  e.data.assign(key);
  e.key_size = static_cast<uint32_t>(key.size());
  e.hash = hash;
  e.freq = 0;
  e.absent = false;
  e.main = false;
  size_t i = hash & mask_;
  while (slots_[i].entry >= 0) i = (i + 1) & mask_;
  slots_[i] = {hash, id};
  ++count_;
  return id;
}

void LookupCache::EraseLocked(int32_t id) {
  Entry& e = entries_[static_cast<size_t>(id)];
  size_t i = e.hash & mask_;
  while (slots_[i].entry != id) i = (i + 1) & mask_;
  // Backward-shift deletion: pull later entries of the probe run into the hole, so lookups
  // need no tombstones.
  for (size_t j = i;;) {
    j = (j + 1) & mask_;
    if (slots_[j].entry < 0) break;
    const size_t home = slots_[j].hash & mask_;
    const bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
    if (stays) continue;
    slots_[i] = slots_[j];
    i = j;
  }
  slots_[i].entry = -1;
  e.data.clear();
  e.data.shrink_to_fit();
  free_.push_back(id);
  --count_;
}

void LookupCache::GetMany(const std::vector<std::string_view>& keys,
                          const std::vector<uint64_t>& hashes, std::vector<Probe>* probes,
                          std::vector<std::string>* values) {
  const size_t n = keys.size();
  probes->assign(n, Probe::kMiss);
  if (values->size() < n) values->resize(n);
  const int64_t now = clock_->NowMicros();
  std::lock_guard lock(mu_);
  if (slots_.empty()) return;
  // Three passes, each prefetching a few keys ahead, so that the cache misses of a batch's
  // lookups (slot, entry, its bytes) overlap instead of following one another.
  constexpr size_t kAhead = 8;
  found_.resize(n);
  for (size_t i = 0; i < std::min(n, kAhead); ++i) __builtin_prefetch(&slots_[hashes[i] & mask_]);
  for (size_t i = 0; i < n; ++i) {
    if (i + kAhead < n) __builtin_prefetch(&slots_[hashes[i + kAhead] & mask_]);
    found_[i] = -1;
    for (size_t k = hashes[i] & mask_;; k = (k + 1) & mask_) {
      const Slot& s = slots_[k];
      if (s.entry < 0) break;
      if (s.hash == hashes[i]) {
        found_[i] = s.entry;
        __builtin_prefetch(&entries_[static_cast<size_t>(s.entry)]);
        break;
      }
    }
  }
  for (size_t i = 0; i < n; ++i) {
    if (i + kAhead < n && found_[i + kAhead] >= 0) {
      __builtin_prefetch(entries_[static_cast<size_t>(found_[i + kAhead])].data.data());
    }
    if (found_[i] < 0) continue;
    Entry& e = entries_[static_cast<size_t>(found_[i])];
    if (e.key() != keys[i]) {  // a hash collision: the slow way
      found_[i] = FindLocked(keys[i], hashes[i]);
      if (found_[i] < 0) continue;
    }
    Entry& hit = entries_[static_cast<size_t>(found_[i])];
    if (hit.expires_us <= now) continue;  // stays until evicted; a Put refreshes it
    if (hit.freq < 3) ++hit.freq;
    if (hit.absent) {
      (*probes)[i] = Probe::kAbsent;
    } else {
      (*probes)[i] = Probe::kFound;
      (*values)[i].assign(hit.value());
    }
  }
}

void LookupCache::Put(std::string_view key, std::optional<std::string_view> value) {
  const int64_t now = clock_->NowMicros();
  const uint64_t hash = transforms_internal::KeyHash(key);
  std::lock_guard lock(mu_);
  int32_t id = FindLocked(key, hash);
  int64_t before = 0;
  if (id < 0) {
    id = InsertLocked(key, hash);
    Entry& e = entries_[static_cast<size_t>(id)];
    if (ghost_set_.erase(hash) > 0) {  // seen lately and evicted too soon: straight to main
      e.main = true;
      main_.push_back(id);
    } else {
      small_.push_back(id);
    }
  } else {
    const Entry& e = entries_[static_cast<size_t>(id)];
    before = EntryBytes(e);
    if (e.expires_us <= now) ++stats_.expirations;
  }
  Entry& e = entries_[static_cast<size_t>(id)];
  e.data.resize(e.key_size);
  if (value.has_value()) e.data.append(*value);
  e.absent = !value.has_value();
  e.expires_us = now + Jitter(e.absent ? options_.negative_ttl_us : options_.ttl_us);
  (e.main ? main_bytes_ : small_bytes_) += EntryBytes(e) - before;
  EvictLocked();
}

void LookupCache::RememberGhostLocked(uint64_t hash) {
  if (!ghost_set_.insert(hash).second) return;
  ghost_.push_back(hash);
  while (ghost_.size() > std::max<size_t>(static_cast<size_t>(count_), 1024)) {
    ghost_set_.erase(ghost_.front());
    ghost_.pop_front();
  }
}

void LookupCache::EvictLocked() {
  const int64_t now = clock_->NowMicros();
  while (small_bytes_ + main_bytes_ > options_.max_bytes && (!small_.empty() || !main_.empty())) {
    const bool from_small =
        !small_.empty() && (small_bytes_ > options_.max_bytes / 10 || main_.empty());
    std::deque<int32_t>& queue = from_small ? small_ : main_;
    const int32_t id = queue.front();
    queue.pop_front();
    Entry& e = entries_[static_cast<size_t>(id)];
    const int64_t bytes = EntryBytes(e);
    const bool live = e.expires_us > now;
    if (from_small) {
      small_bytes_ -= bytes;
      if (live && e.freq > 0) {  // read again while in the small queue: keep it
        e.main = true;
        e.freq = 0;
        main_.push_back(id);
        main_bytes_ += bytes;
        continue;
      }
      if (live) RememberGhostLocked(e.hash);
    } else {
      if (live && e.freq > 0) {  // read since it was last here: another round
        --e.freq;
        main_.push_back(id);
        continue;
      }
      main_bytes_ -= bytes;
    }
    (live ? stats_.evictions : stats_.expirations) += 1;
    EraseLocked(id);
  }
}

void LookupCache::Claim(const std::vector<std::string_view>& keys, std::vector<uint8_t>* mine) {
  mine->assign(keys.size(), 0);
  const int64_t now = clock_->NowMicros();
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < keys.size(); ++i) {
    // Filled since the caller's GetMany (a fetch that ended in between): not the caller's to
    // fetch; it reads the key again.
    const int32_t id = FindLocked(keys[i], transforms_internal::KeyHash(keys[i]));
    if (id >= 0 && entries_[static_cast<size_t>(id)].expires_us > now) continue;
    (*mine)[i] = in_flight_.emplace(keys[i]).second ? 1 : 0;
  }
}

void LookupCache::Done(const std::vector<std::string_view>& keys) {
  {
    std::lock_guard lock(mu_);
    for (const auto k : keys) in_flight_.erase(std::string(k));
  }
  fetched_.notify_all();
}

void LookupCache::AwaitFetches(const std::vector<std::string_view>& keys) {
  std::unique_lock lock(mu_);
  fetched_.wait(lock, [&] {
    return std::none_of(keys.begin(), keys.end(),
                        [&](std::string_view k) { return in_flight_.count(std::string(k)) > 0; });
  });
}

CacheStats LookupCache::stats() const {
  std::lock_guard lock(mu_);
  CacheStats s = stats_;
  s.entries = count_;
  s.bytes = small_bytes_ + main_bytes_;
  return s;
}

int64_t LookupCache::TakeBytesDelta() {
  std::lock_guard lock(mu_);
  const int64_t delta = small_bytes_ + main_bytes_ - reported_bytes_;
  reported_bytes_ += delta;
  return delta;
}

int64_t LookupCache::TakeEvictionsDelta() {
  std::lock_guard lock(mu_);
  const int64_t delta = stats_.evictions - reported_evictions_;
  reported_evictions_ += delta;
  return delta;
}

CacheRegistry* CacheRegistry::Global() {
  static CacheRegistry* registry = new CacheRegistry();
  return registry;
}

std::shared_ptr<LookupCache> CacheRegistry::Get(const std::string& name,
                                                const CacheOptions& options,
                                                const std::string& reference, Clock* clock,
                                                std::string* error) {
  if (name.empty()) return std::make_shared<LookupCache>(options, clock);
  std::lock_guard lock(mu_);
  Entry& slot = caches_[name];
  if (auto cache = slot.cache.lock()) {
    const CacheOptions& o = cache->options();
    if (o.ttl_us != options.ttl_us || o.negative_ttl_us != options.negative_ttl_us ||
        o.max_bytes != options.max_bytes) {
      *error = "cache '" + name + "' is shared with another lookup that sets other ttl, " +
               "negative_ttl or max_bytes: give both the same, or another name";
      return nullptr;
    }
    if (slot.reference != reference) {
      *error = "cache '" + name + "' is shared with another lookup of another reference (or " +
               "other columns): their rows cannot share a cache; give it another name";
      return nullptr;
    }
    return cache;
  }
  auto cache = std::make_shared<LookupCache>(options, clock);
  slot = {cache, reference};
  return cache;
}

}  // namespace sluice::lookup
