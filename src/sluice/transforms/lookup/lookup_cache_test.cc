#include "sluice/transforms/lookup/lookup_cache.h"

#include "sluice/transforms/group_key.h"

#include <cmath>
#include <random>
#include <thread>

#include <gtest/gtest.h>

namespace sluice::lookup {
namespace {

// (Appended, not "k" + to_string: GCC 12's -Wrestrict misfires on that at -O3.)
std::string Key(int i) {
  std::string k = "k";
  k.append(std::to_string(i));
  return k;
}

Probe Get(LookupCache* cache, const std::string& key, std::string* value = nullptr) {
  std::vector<Probe> probes;
  std::vector<std::string> values;
  cache->GetMany({key}, {transforms_internal::KeyHash(key)}, &probes, &values);
  if (value != nullptr) *value = values[0];
  return probes[0];
}

TEST(LookupCacheTest, RowsAndAbsencesExpireAfterTheirTtl) {
  FakeClock clock(1'000'000);
  LookupCache cache({.ttl_us = 10'000'000, .negative_ttl_us = 1'000'000, .max_bytes = 1 << 20},
                    &clock);
  cache.Put("a", std::string_view("row-a"));
  cache.Put("b", std::nullopt);
  std::string v;
  EXPECT_EQ(Get(&cache, "a", &v), Probe::kFound);
  EXPECT_EQ(v, "row-a");
  EXPECT_EQ(Get(&cache, "b"), Probe::kAbsent);
  EXPECT_EQ(Get(&cache, "c"), Probe::kMiss);
  clock.Advance(1'200'000);  // past the negative ttl (1 s +- 10 %), within the row's
  EXPECT_EQ(Get(&cache, "b"), Probe::kMiss);
  EXPECT_EQ(Get(&cache, "a"), Probe::kFound);
  clock.Advance(10'000'000);  // past the row's (10 s +- 10 %)
  EXPECT_EQ(Get(&cache, "a"), Probe::kMiss);
  cache.Put("a", std::string_view("row-a2"));  // refreshed in place
  EXPECT_EQ(Get(&cache, "a", &v), Probe::kFound);
  EXPECT_EQ(v, "row-a2");
  EXPECT_EQ(cache.stats().entries, 2);
}

TEST(LookupCacheTest, ExpiriesAreSpreadSoThatKeysFilledTogetherDoNotExpireTogether) {
  FakeClock clock(0);
  LookupCache cache({.ttl_us = 100'000'000, .negative_ttl_us = 1, .max_bytes = 64 << 20}, &clock);
  for (int i = 0; i < 1000; ++i) cache.Put(Key(i), std::string_view("v"));
  clock.Advance(100'000'000);  // the middle of the jitter band [90 s, 110 s)
  int live = 0;
  for (int i = 0; i < 1000; ++i) live += Get(&cache, Key(i)) == Probe::kFound;
  EXPECT_GT(live, 300);
  EXPECT_LT(live, 1000 - 300);
}

TEST(LookupCacheTest, StaysUnderItsByteCap) {
  FakeClock clock(0);
  LookupCache cache({.max_bytes = 100'000}, &clock);
  for (int i = 0; i < 10'000; ++i) cache.Put(Key(i), std::string(100, 'x'));
  const CacheStats s = cache.stats();
  // What the callers count against the memory budget adds up to what the cache holds.
  const int64_t first = cache.TakeBytesDelta();
  EXPECT_EQ(first, s.bytes);
  EXPECT_EQ(cache.TakeBytesDelta(), 0);
  for (int i = 0; i < 10; ++i) cache.Put(Key(i), std::string(1000, 'y'));
  EXPECT_EQ(first + cache.TakeBytesDelta(), cache.stats().bytes);
  EXPECT_LE(s.bytes, 100'000);
  EXPECT_GT(s.bytes, 80'000);
  EXPECT_EQ(s.evictions, 10'000 - s.entries);
}

// A hot set read over and over survives a scan of keys read once (S3-FIFO's small queue takes
// the scan), where a plain FIFO or LRU of the same size would have lost it.
TEST(LookupCacheTest, AScanDoesNotPushOutTheHotKeys) {
  FakeClock clock(0);
  LookupCache cache({.max_bytes = 200 * (96 + 10 + 8)}, &clock);  // room for about 200 entries
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 100; ++i) {
      if (Get(&cache, Key(i)) == Probe::kMiss) cache.Put(Key(i), std::string(8, 'h'));
    }
  }
  for (int i = 1000; i < 3000; ++i) cache.Put(Key(i), std::string(8, 's'));  // the scan
  int hot = 0;
  for (int i = 0; i < 100; ++i) hot += Get(&cache, Key(i)) == Probe::kFound;
  EXPECT_GE(hot, 95);
}

// Zipf(1.1) keys over 10,000 with room for 1,000: the hit rate is close to the share of reads
// that go to the most popular 1,000 keys (what an oracle keeping the best 1,000 would get).
TEST(LookupCacheTest, ZipfHitRateNearTheOptimum) {
  const int keys = 10'000, room = 1'000;
  std::vector<double> cdf(keys);
  double sum = 0;
  for (int i = 0; i < keys; ++i) cdf[static_cast<size_t>(i)] = sum += std::pow(i + 1, -1.1);
  double top = cdf[room - 1] / sum;
  FakeClock clock(0);
  LookupCache cache({.max_bytes = room * (96 + 6 + 8)}, &clock);
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> u(0, sum);
  int hits = 0;
  const int reads = 200'000, warm = 50'000;
  for (int n = 0; n < reads; ++n) {
    const int k = static_cast<int>(std::lower_bound(cdf.begin(), cdf.end(), u(rng)) - cdf.begin());
    const bool hit = Get(&cache, Key(k)) == Probe::kFound;
    if (!hit) cache.Put(Key(k), std::string(8, 'v'));
    if (n >= warm) hits += hit;
  }
  const double rate = static_cast<double>(hits) / (reads - warm);
  EXPECT_GT(rate, top - 0.08) << "optimum " << top;
  EXPECT_LE(rate, top + 0.02) << "optimum " << top;
}

// Coalescing: of N callers missing the same keys at once, one fetches each key; the others
// wait for it and then find the row in the cache.
TEST(LookupCacheTest, ConcurrentMissesOfOneKeyMakeOneFetch) {
  FakeClock clock(0);
  LookupCache cache({}, &clock);
  std::atomic<int> fetches{0};
  std::vector<std::thread> threads;
  std::vector<std::string> got(8);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      const std::vector<std::string_view> keys = {"x", "y"};
      std::vector<Probe> probes;
      std::vector<std::string> values;
      const std::vector<uint64_t> hashes = {transforms_internal::KeyHash("x"),
                                            transforms_internal::KeyHash("y")};
      cache.GetMany(keys, hashes, &probes, &values);
      std::vector<uint8_t> mine;
      cache.Claim(keys, &mine);
      std::vector<std::string_view> fetched, waited;
      for (size_t i = 0; i < keys.size(); ++i) (mine[i] ? fetched : waited).push_back(keys[i]);
      for (const auto k : fetched) {
        ++fetches;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));  // a slow database
        std::string row = "row-";
        row.append(k);
        cache.Put(k, row);
      }
      cache.Done(fetched);
      cache.AwaitFetches(waited);
      cache.GetMany(keys, hashes, &probes, &values);
      got[static_cast<size_t>(t)] = values[0];
      got[static_cast<size_t>(t)].append(",").append(values[1]);
    });
  }
  for (auto& t : threads) t.join();
  // Threads that found both rows in the cache fetched nothing; at most one fetch per key.
  EXPECT_LE(fetches.load(), 2);
  EXPECT_GE(fetches.load(), 1);
  for (const auto& g : got) EXPECT_EQ(g, "row-x,row-y");
}

// A cache is shared by name only between lookups of the same reference and columns: another
// reference's rows under the same name are an error, not wrong values.
TEST(LookupCacheTest, ANamedCacheServesOneReference) {
  FakeClock clock(0);
  std::string error;
  auto a = CacheRegistry::Global()->Get("shared-test", {}, "pg meters region", &clock, &error);
  ASSERT_NE(a, nullptr) << error;
  EXPECT_EQ(CacheRegistry::Global()->Get("shared-test", {}, "pg meters region", &clock, &error), a);
  EXPECT_EQ(CacheRegistry::Global()->Get("shared-test", {}, "pg tariffs price", &clock, &error),
            nullptr);
  EXPECT_NE(error.find("another reference"), std::string::npos) << error;
  EXPECT_EQ(CacheRegistry::Global()->Get("shared-test", {.ttl_us = 1}, "pg meters region", &clock,
                                         &error),
            nullptr);
  EXPECT_NE(error.find("other ttl"), std::string::npos) << error;
}

}  // namespace
}  // namespace sluice::lookup
