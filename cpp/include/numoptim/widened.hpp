// float16 storage stepped by the float32 rule, a block at a time.
//
// A rule computes in float32 for 16-bit storage and rounds each stored value once
// (storage.hpp), so stepping a block of float16 buffers is: widen every buffer of the
// block to float32, run the float32 rule on the copies, and round back every buffer the
// rule writes (all but the gradient). The results are those of the rule written for
// float16, bit for bit, because no rule reads back a value it stored in the same
// element. At the AVX2 and AVX-512 levels the conversions are F16C's instructions, eight
// values each, which give the same bits as the portable conversions of storage.hpp
// (tests/test_low_precision.py compares them on every float16 and on NaN payloads).
// Measured on a 2-core Zen 3, Adam on 2^24 float16 elements at 2 threads: 57 ms per step
// with the conversions written into the rule's loop (GCC 12 vectorizes float16
// conversions only as integer arithmetic, 25 instructions per element, and spills), 38
// ms through this block loop with those same conversions, 16-23 ms with F16C (torch's
// fused kernel: 11-12 ms).
//
// bfloat16 keeps the rule's own loop: its conversions are a shift and a rounding add,
// and the fused loop measured faster at 2 threads (14.5 against 17.5 ms on 2^24).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <type_traits>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define NUMOPTIM_F16C 1
#endif

#include "numoptim/dispatch.hpp"
#include "numoptim/storage.hpp"

namespace numoptim {

#ifdef NUMOPTIM_F16C
__attribute__((target("avx2,f16c"))) inline void widen_f16c(const float16* from, float* to,
                                                            std::size_t n) {
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(to + i, _mm256_cvtph_ps(_mm_loadu_si128(
                                 reinterpret_cast<const __m128i*>(from + i))));
  for (; i < n; ++i) to[i] = load(from[i]);
}

__attribute__((target("avx2,f16c"))) inline void narrow_f16c(const float* from, float16* to,
                                                             std::size_t n) {
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(to + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(from + i),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  for (; i < n; ++i) store(to[i], from[i]);
}
#endif

// n values of 16-bit storage S read into float32, with F16C where `isa` has it.
template <class S>
inline void widen_block(Isa isa, const S* from, float* to, std::size_t n) {
#ifdef NUMOPTIM_F16C
  if constexpr (std::is_same_v<S, float16>) {
    if (isa != Isa::baseline) return widen_f16c(from, to, n);
  }
#endif
  (void)isa;
#pragma omp simd
  for (std::size_t i = 0; i < n; ++i) to[i] = load(from[i]);
}

// n float32 values rounded once into 16-bit storage S, with F16C where `isa` has it.
template <class S>
inline void narrow_block(Isa isa, const float* from, S* to, std::size_t n) {
#ifdef NUMOPTIM_F16C
  if constexpr (std::is_same_v<S, float16>) {
    if (isa != Isa::baseline) return narrow_f16c(from, to, n);
  }
#endif
  (void)isa;
#pragma omp simd
  for (std::size_t i = 0; i < n; ++i) store(to[i], from[i]);
}

template <class Rule, class S>
struct Widened {
  static_assert(std::is_same_v<S, float16> || std::is_same_v<S, bfloat16>);
  static constexpr std::size_t num_buffers = Rule::num_buffers;
  static constexpr std::size_t num_scalar_state = Rule::num_scalar_state;
  using Scalars = typename Rule::Scalars;

  Rule rule;  // the float32 rule
  Isa isa;    // the level the conversions run at: the rule's

  Scalars prepare(float* const* scalar_state, bool fresh) const {
    return rule.prepare(scalar_state, fresh);
  }

  void update(const Scalars& s, S* const* buffers, std::size_t n) const {
    // Small enough that the blocks of all buffers stay in L1 with the rule's loop.
    constexpr std::size_t kBlock = 256;
    alignas(64) float block[num_buffers][kBlock];
    for (std::size_t begin = 0; begin < n; begin += kBlock) {
      const std::size_t count = std::min(kBlock, n - begin);
      std::array<float*, num_buffers> at{};
      for (std::size_t b = 0; b < num_buffers; ++b) {
        if (buffers[b] == nullptr) continue;  // an optional buffer the rule does not use
        at[b] = block[b];
        widen_block(isa, buffers[b] + begin, block[b], count);
      }
      rule.update(s, at.data(), count);
      for (std::size_t b = 0; b < num_buffers; ++b) {
        if (b == 1 || buffers[b] == nullptr) continue;  // the gradient is only read
        narrow_block(isa, block[b], buffers[b] + begin, count);
      }
    }
  }
};

}  // namespace numoptim
