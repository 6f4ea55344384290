#pragma once

// Byte loops over text columns (length, upper, lower). Each is built twice on x86-64 — for any
// x86-64 CPU (SSE2: what GCC vectorizes for without -march) and for AVX2, twice the bytes per
// instruction — and the AVX2 build runs where the CPU has it.

#include <cstdint>

namespace sluice::expr_internal {

enum class Isa : uint8_t { kBaseline, kAvx2 };

/// Return the best build of the loops this CPU can run (kAvx2 where it has AVX2).
Isa BestIsa();

/// Return the number of UTF-8 continuation bytes (10xxxxxx) in [p, p + n).
int64_t ContinuationBytes(const char* p, int64_t n);

/// Return true when no byte of [p, p + n) is above 0x7F.
bool IsAscii(const char* p, int64_t n, Isa isa = BestIsa());

/// Copy `size` bytes from `in` to `out`, flipping the case of the ASCII letters in [lo, hi]
/// ('a'-'z' to upper case, 'A'-'Z' to lower case); other bytes are copied unchanged.
void FlipCase(const char* in, char* out, int64_t size, char lo, char hi, Isa isa = BestIsa());

}  // namespace sluice::expr_internal
