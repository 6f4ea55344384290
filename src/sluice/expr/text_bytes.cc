#include "sluice/expr/text_bytes.h"

#include <cstring>

namespace sluice::expr_internal {

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SLUICE_HAS_AVX2_BUILD 1
#define SLUICE_AVX2 __attribute__((target("avx2")))
#else
#define SLUICE_HAS_AVX2_BUILD 0
#define SLUICE_AVX2
#endif

namespace {

// The loops, inlined into each build below and vectorized for its instruction set.
inline bool IsAsciiLoop(const char* p, int64_t n) {
  uint64_t any = 0;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, sizeof w);
    any |= w;
  }
  for (; i < n; ++i) any |= static_cast<unsigned char>(p[i]);
  return (any & 0x8080808080808080ULL) == 0;
}

inline void FlipCaseLoop(const char* in, char* out, int64_t size, char lo, char hi) {
  for (int64_t i = 0; i < size; ++i) {
    const char ch = in[i];
    out[i] = (ch >= lo && ch <= hi) ? static_cast<char>(ch ^ 0x20) : ch;
  }
}

bool IsAsciiBaseline(const char* p, int64_t n) { return IsAsciiLoop(p, n); }
void FlipCaseBaseline(const char* in, char* out, int64_t size, char lo, char hi) {
  FlipCaseLoop(in, out, size, lo, hi);
}

#if SLUICE_HAS_AVX2_BUILD
SLUICE_AVX2 bool IsAsciiAvx2(const char* p, int64_t n) { return IsAsciiLoop(p, n); }
SLUICE_AVX2 void FlipCaseAvx2(const char* in, char* out, int64_t size, char lo, char hi) {
  FlipCaseLoop(in, out, size, lo, hi);
}
#endif

}  // namespace

Isa BestIsa() {
#if SLUICE_HAS_AVX2_BUILD
  static const Isa best = __builtin_cpu_supports("avx2") ? Isa::kAvx2 : Isa::kBaseline;
  return best;
#else
  return Isa::kBaseline;
#endif
}

// Eight bytes at a time: a byte continues a sequence when its bit 7 is set and its bit 6 is not
// (w << 1 moves each byte's bit 6 under its bit 7), and the multiply sums the eight bytes' flags
// into the top byte.
int64_t ContinuationBytes(const char* p, int64_t n) {
  int64_t count = 0;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, sizeof w);
    const uint64_t flags = (w & ~(w << 1) & 0x8080808080808080ULL) >> 7;
    count += static_cast<int64_t>((flags * 0x0101010101010101ULL) >> 56);
  }
  for (; i < n; ++i) count += (static_cast<unsigned char>(p[i]) & 0xC0) == 0x80;
  return count;
}

bool IsAscii(const char* p, int64_t n, Isa isa) {
#if SLUICE_HAS_AVX2_BUILD
  if (isa == Isa::kAvx2) return IsAsciiAvx2(p, n);
#endif
  return IsAsciiBaseline(p, n);
}

void FlipCase(const char* in, char* out, int64_t size, char lo, char hi, Isa isa) {
#if SLUICE_HAS_AVX2_BUILD
  if (isa == Isa::kAvx2) return FlipCaseAvx2(in, out, size, lo, hi);
#endif
  FlipCaseBaseline(in, out, size, lo, hi);
}

}  // namespace sluice::expr_internal
