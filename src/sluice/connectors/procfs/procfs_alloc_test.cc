// Counts every heap allocation of the process while the procfs collectors take samples: once
// warmed up, a sample must allocate nothing. A binary of its own, since it replaces the global
// operator new (and, outside sanitizer builds — which intercept malloc themselves — malloc,
// calloc and realloc, so that C library calls are counted too).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "sluice/connectors/procfs/procfs_test_util.h"
#include "sluice/connectors/procfs/sampler.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define PROCFS_ALLOC_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define PROCFS_ALLOC_SANITIZED 1
#endif
#endif

namespace {

std::atomic<bool> g_counting{false};
std::atomic<int64_t> g_allocations{0};

void Count() {
  if (g_counting.load(std::memory_order_relaxed)) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
  }
}

#ifdef PROCFS_ALLOC_SANITIZED
constexpr bool kCountInNew = true;  // malloc is the sanitizer's: count in operator new
#else
constexpr bool kCountInNew = false;  // operator new calls malloc, which counts
#endif

void* Allocate(std::size_t n) {
  if (kCountInNew) Count();
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void* AllocateAligned(std::size_t n, std::align_val_t a) {
  Count();  // aligned_alloc is not interposed below
  const auto align = static_cast<std::size_t>(a);
  void* p = std::aligned_alloc(align, (n + align - 1) / align * align);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

}  // namespace

#ifndef PROCFS_ALLOC_SANITIZED
extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* malloc(size_t n) {
  Count();
  return __libc_malloc(n);
}
void* calloc(size_t n, size_t m) {
  Count();
  return __libc_calloc(n, m);
}
void* realloc(void* p, size_t n) {
  Count();
  return __libc_realloc(p, n);
}
}
#endif

void* operator new(std::size_t n) { return Allocate(n); }
void* operator new[](std::size_t n) { return Allocate(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return Allocate(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return Allocate(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new(std::size_t n, std::align_val_t a) { return AllocateAligned(n, a); }
void* operator new[](std::size_t n, std::align_val_t a) { return AllocateAligned(n, a); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

namespace sluice::procfs {
namespace {

using testing::RecordedEnv;
using testing::TreePath;

/// Allocations while `fn` runs.
template <typename Fn>
int64_t AllocationsOf(Fn fn) {
  g_allocations.store(0);
  g_counting.store(true);
  fn();
  g_counting.store(false);
  return g_allocations.load();
}

TEST(ProcfsAllocations, TheCounterSeesAllocations) {
  std::vector<int>* v = nullptr;
  EXPECT_EQ(AllocationsOf([&] { v = new std::vector<int>(100); }), 2);
  delete v;
#ifndef PROCFS_ALLOC_SANITIZED
  void* p = nullptr;
  EXPECT_EQ(AllocationsOf([&] { p = std::malloc(10); }), 1);
  std::free(p);
#endif
}

// Alternating two recorded samples makes every collector compute rates on one sample and see
// counters go backwards on the next, so both paths run while counting.
TEST(ProcfsAllocations, NoneInASampleOnceWarmedUp) {
  const std::string a = TreePath("a"), b = TreePath("b");
  for (int threads : {1, 3}) {
    SCOPED_TRACE(threads);
    RecordedEnv env(a);
    env.SetFs("/", {.size_bytes = 1000, .free_bytes = 10, .available_bytes = 5});
    env.SetFs("/data", {}, EACCES);
    SamplerOptions o;
    o.threads = threads;
    o.config.root = std::string(RecordedEnv::kRoot);
    o.config.env = &env;
    auto made = Sampler::Make(o);
    ASSERT_TRUE(made.ok());
    Sampler& s = **made;
    int64_t now = 0;
    for (int i = 0; i < 6; ++i) {  // warm-up: every buffer grows to the larger sample
      env.Use(i % 2 == 0 ? a : b);
      s.Collect(now += 1'000'000);
    }
    const int64_t during = AllocationsOf([&] {
      for (int i = 0; i < 100; ++i) {
        env.Use(i % 2 == 0 ? a : b);  // same length: the string keeps its memory
        s.Collect(now += 1'000'000);
      }
    });
    EXPECT_EQ(during, 0);
    for (const auto& r : s.results()) EXPECT_EQ(r->outcome, Outcome::kOk) << r->name;
    EXPECT_GT(s.results()[7]->rows.size(), 20u);  // processes ran, with the top list

    // Making the batch allocates its buffers: as many for b's sample as for a's, which has
    // fewer rows. (The first batch of the process also makes the schema.)
    s.ToBatch(0, "recorded-host");
    const int64_t batch_b = AllocationsOf([&] { s.ToBatch(0, "recorded-host"); });
    env.Use(a);
    s.Collect(now += 1'000'000);
    const int64_t batch_a = AllocationsOf([&] { s.ToBatch(0, "recorded-host"); });
    EXPECT_EQ(batch_a, batch_b);
    EXPECT_GT(batch_a, 0);
    EXPECT_LE(batch_a, 64);
  }
}

}  // namespace
}  // namespace sluice::procfs
