#include "sluice/transforms/lookup/lookup_cache.h"

#include <algorithm>
#include <functional>

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

void LookupCache::GetMany(const std::vector<std::string_view>& keys, std::vector<Probe>* probes,
                          std::vector<std::string>* values) {
  probes->assign(keys.size(), Probe::kMiss);
  values->resize(keys.size());
  const int64_t now = clock_->NowMicros();
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < keys.size(); ++i) {
    auto it = map_.find(std::string(keys[i]));
    if (it == map_.end()) continue;
    Entry& e = it->second;
    if (e.expires_us <= now) continue;  // stays until evicted; a Put refreshes it
    if (e.freq < 3) ++e.freq;
    if (e.absent) {
      (*probes)[i] = Probe::kAbsent;
    } else {
      (*probes)[i] = Probe::kFound;
      (*values)[i].assign(e.value);
    }
  }
}

void LookupCache::Put(std::string_view key, std::optional<std::string_view> value) {
  const int64_t now = clock_->NowMicros();
  const std::string_view v = value.value_or(std::string_view());
  std::lock_guard lock(mu_);
  auto [it, added] = map_.try_emplace(std::string(key));
  Entry& e = it->second;
  const int64_t before = added ? 0 : EntryBytes(key, e.value);
  if (added) {
    e.key = &it->first;
    const uint64_t h = std::hash<std::string_view>{}(key);
    if (ghost_set_.erase(h) > 0) {  // seen lately and evicted too soon: straight to main
      e.main = true;
      main_.push_back(e.key);
    } else {
      small_.push_back(e.key);
    }
  } else if (e.expires_us <= now) {
    ++stats_.expirations;
  }
  e.value.assign(v);
  e.absent = !value.has_value();
  e.expires_us = now + Jitter(e.absent ? options_.negative_ttl_us : options_.ttl_us);
  const int64_t delta = EntryBytes(key, e.value) - before;
  (e.main ? main_bytes_ : small_bytes_) += delta;
  EvictLocked();
}

void LookupCache::RememberGhostLocked(uint64_t hash) {
  if (!ghost_set_.insert(hash).second) return;
  ghost_.push_back(hash);
  while (ghost_.size() > std::max<size_t>(map_.size(), 1024)) {
    ghost_set_.erase(ghost_.front());
    ghost_.pop_front();
  }
}

void LookupCache::EvictLocked() {
  const int64_t now = clock_->NowMicros();
  while (small_bytes_ + main_bytes_ > options_.max_bytes && (!small_.empty() || !main_.empty())) {
    const bool from_small =
        !small_.empty() && (small_bytes_ > options_.max_bytes / 10 || main_.empty());
    std::deque<const std::string*>& queue = from_small ? small_ : main_;
    const std::string* key = queue.front();
    queue.pop_front();
    auto it = map_.find(*key);
    Entry& e = it->second;
    const int64_t bytes = EntryBytes(*key, e.value);
    const bool live = e.expires_us > now;
    if (from_small) {
      small_bytes_ -= bytes;
      if (live && e.freq > 0) {  // read again while in the small queue: keep it
        e.main = true;
        e.freq = 0;
        main_.push_back(key);
        main_bytes_ += bytes;
        continue;
      }
      if (live) RememberGhostLocked(std::hash<std::string_view>{}(*key));
    } else {
      if (live && e.freq > 0) {  // read since it was last here: another round
        --e.freq;
        main_.push_back(key);
        continue;
      }
      main_bytes_ -= bytes;
    }
    (live ? stats_.evictions : stats_.expirations) += 1;
    map_.erase(it);
  }
}

void LookupCache::Claim(const std::vector<std::string_view>& keys, std::vector<uint8_t>* mine) {
  mine->assign(keys.size(), 0);
  const int64_t now = clock_->NowMicros();
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < keys.size(); ++i) {
    // Filled since the caller's GetMany (a fetch that ended in between): not the caller's to
    // fetch; it reads the key again.
    auto it = map_.find(std::string(keys[i]));
    if (it != map_.end() && it->second.expires_us > now) continue;
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
  s.entries = static_cast<int64_t>(map_.size());
  s.bytes = small_bytes_ + main_bytes_;
  return s;
}

CacheRegistry* CacheRegistry::Global() {
  static CacheRegistry* registry = new CacheRegistry();
  return registry;
}

std::shared_ptr<LookupCache> CacheRegistry::Get(const std::string& name,
                                                const CacheOptions& options, Clock* clock,
                                                std::string* error) {
  if (name.empty()) return std::make_shared<LookupCache>(options, clock);
  std::lock_guard lock(mu_);
  std::weak_ptr<LookupCache>& slot = caches_[name];
  if (auto cache = slot.lock()) {
    const CacheOptions& o = cache->options();
    if (o.ttl_us != options.ttl_us || o.negative_ttl_us != options.negative_ttl_us ||
        o.max_bytes != options.max_bytes) {
      *error = "cache '" + name + "' is shared with another lookup that sets other ttl, " +
               "negative_ttl or max_bytes: give both the same, or another name";
      return nullptr;
    }
    return cache;
  }
  auto cache = std::make_shared<LookupCache>(options, clock);
  slot = cache;
  return cache;
}

}  // namespace sluice::lookup
