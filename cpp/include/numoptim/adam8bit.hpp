// 8-bit Adam and AdamW: block-wise quantized state (Dettmers et al., "8-bit Optimizers
// via Block-wise Quantization", ICLR 2022), as bitsandbytes' Adam8bit and AdamW8bit.
//
// Per element, in float32, in bitsandbytes' operation order (its CPU kernel is a chain
// of torch ops; the fused multiply-adds are where torch's vectorized add and addcmul
// fuse):
//   m <- fma(g, 1 - beta1, beta1 * m)
//   v <- fma((1 - beta2) * g, g, beta2 * v)
//   p <- p * (1 - lr * weight_decay)                        if weight_decay > 0
//   p <- p + (-lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// Both optimizers decay decoupled, as bitsandbytes' do; they differ in the default.
//
// The state: blocks of 256 elements share a float32 absmax; each element of m and v is
// one byte, the index of the code nearest to value / absmax in a sorted map of 256 codes
// in [-1, 1] (bitsandbytes' dynamic maps: signed for m, unsigned for v). A step reads a
// block's bytes, dequantizes them (code[q] * absmax), updates m, v and p, and quantizes
// m and v back with the block's new absmax: one pass over memory, 16 B per element for
// float32 parameters. Tensors smaller than min_8bit_size keep m and v in float32 and
// run the same loop without the quantization.
//
// Quantization is to the nearest code, as the paper defines it (ties to the lower code).
// bitsandbytes 0.50's CPU kernel rounds value / absmax to a grid of 65536 points first,
// and so picks a farther code for about 0.2% of m's elements and 3% of v's (those near
// zero, where the dynamic map is finest).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "numoptim/multi_tensor.hpp"
#include "numoptim/storage.hpp"

namespace numoptim {

// ------------------------------------------------------------------ quantization

// Elements per quantization block, as bitsandbytes.
constexpr std::size_t kQuantBlock = 256;
static_assert(kChunkElements % kQuantBlock == 0, "a chunk is whole blocks");

// Nearest code by table lookup. A float's bits split into a key (sign, exponent and the
// top 7 mantissa bits) and its 16 low bits u. Within one key's floats the nearest code
// changes at most once (the table is built only for maps where that holds); the entry
// holds the code nearest to the key's smallest magnitude (bits 16-23) and the largest u
// that still has it (bits 0-15; 0xFFFF when the whole key has it). A larger u moves one
// code away from zero. Magnitudes are clamped to 1 (so are Inf and NaN) and below
// 2^-26 share the lowest key, whose floats all have the same nearest code.
constexpr std::uint32_t kLowestKey = 101u << 7;     // 2^-26
constexpr std::uint32_t kHighestKey = 0x3F800000u >> 16;  // 1.0f
constexpr std::size_t kKeysPerSign = kHighestKey - kLowestKey + 1;
constexpr std::size_t kQuantTableSize = 2 * kKeysPerSign;

// The index of the code nearest to x in the sorted `code` (ties to the lower index).
inline int nearest_code(const float* code, float x) {
  const float* upper = std::lower_bound(code, code + 256, x);  // first code >= x
  if (upper == code) return 0;
  if (upper == code + 256) return 255;
  const int hi = static_cast<int>(upper - code);
  const double below = double(x) - code[hi - 1], above = double(code[hi]) - x;
  return above < below ? hi : hi - 1;
}

// Fills `table` (kQuantTableSize entries) for the sorted map `code`. Returns false
// when the map is not sorted or changes nearest code twice within one key.
inline bool build_quantization_table(const float* code, std::uint32_t* table) {
  if (!std::is_sorted(code, code + 256)) return false;
  for (std::uint32_t sign = 0; sign < 2; ++sign) {
    for (std::uint32_t key = kLowestKey; key <= kHighestKey; ++key) {
      const std::uint32_t high = (sign << 31) | (key << 16);
      auto nearest_at = [&](std::uint32_t u) { return nearest_code(code, float_of(high | u)); };
      // The top key holds 1.0f only; the lowest also holds every smaller magnitude.
      const std::uint32_t last = key == kHighestKey ? 0 : 0xFFFF;
      const int start = key == kLowestKey ? nearest_code(code, sign ? -0.0f : 0.0f) : nearest_at(0);
      const int end = nearest_at(last);
      std::uint32_t threshold = 0xFFFF;
      if (end != start) {
        if (key == kLowestKey || end - start != (sign ? -1 : 1)) return false;
        std::uint32_t lo = 0, hi = last;  // nearest_at(lo) == start, nearest_at(hi) == end
        while (hi - lo > 1) {
          const std::uint32_t mid = (lo + hi) / 2;
          (nearest_at(mid) == start ? lo : hi) = mid;
        }
        threshold = lo;
      }
      table[sign * kKeysPerSign + (key - kLowestKey)] =
          (static_cast<std::uint32_t>(start) << 16) | threshold;
    }
  }
  return true;
}

// The code index of x (a value already divided by its block's absmax).
inline std::uint8_t quantize(float x, const std::uint32_t* table) {
  // 32-bit index arithmetic throughout: GCC vectorizes the table lookup into a gather
  // with 32-bit indices, and not with 64-bit ones.
  const std::uint32_t bits = bits_of(x);
  const std::uint32_t negative = bits >> 31;
  const std::uint32_t magnitude = bits & 0x7FFFFFFFu;
  // Magnitudes above 1 (Inf and NaN included) take 1.0f's key, whose entry has no change
  // point: any u gives 1.0f's code.
  const std::uint32_t key = std::min(std::max(magnitude >> 16, kLowestKey), kHighestKey) - kLowestKey;
  const std::uint32_t entry = table[negative * std::uint32_t(kKeysPerSign) + key];
  // Away from zero: one code up for a positive x, one down (+255 mod 256) for a negative.
  const std::uint32_t away = (magnitude & 0xFFFF) > (entry & 0xFFFF) ? (negative ? 255u : 1u) : 0u;
  return static_cast<std::uint8_t>((entry >> 16) + away);
}

// The largest magnitude of x[0..n), NaN if any is NaN: the maximum of the bits without
// the sign (a NaN's are above every other float's).
inline float absmax_of(const float* x, std::size_t n) {
  std::uint32_t largest = 0;
#pragma omp simd reduction(max : largest)
  for (std::size_t i = 0; i < n; ++i) largest = std::max(largest, bits_of(x[i]) & 0x7FFFFFFFu);
  return float_of(largest);
}

// Quantizes x[0..n) into q with absmax = absmax_of(x). A block of zeros, or one holding
// Inf or NaN, is all the code nearest zero; its absmax (0, Inf or NaN) dequantizes it to
// zeros or NaN.
inline float quantize_block(const float* x, std::uint8_t* q, std::size_t n,
                            const std::uint32_t* table) {
  const float absmax = absmax_of(x, n);
  const float inverse = absmax > 0.0f && absmax < INFINITY ? 1.0f / absmax : 0.0f;
#pragma omp simd
  for (std::size_t i = 0; i < n; ++i) q[i] = quantize(x[i] * inverse, table);
  return absmax;
}

// ------------------------------------------------------------------ the rule

template <class S>
struct Adam8bit {
  using T = float;  // bitsandbytes computes in float32 for every parameter dtype
  // Buffers: param, grad. The state of each tensor comes with its Scalars.
  static constexpr std::size_t num_buffers = 2;
  static constexpr std::size_t num_scalar_state = 0;

  double lr, beta1, beta2, eps, weight_decay;
  const float* code1;  // m's map (signed) and v's (unsigned), 256 codes each
  const float* code2;
  const std::uint32_t* table1;  // their quantization tables
  const std::uint32_t* table2;

  struct Scalars {
    float neg_step_size, bias_correction2_sqrt;
    const S* param;  // the tensor's first element: a chunk's offset in the tensor
    // 8-bit state: m and v as code indices, with an absmax per block...
    std::uint8_t *m8, *v8;
    float *absmax1, *absmax2;
    // ... or float32 state (tensors below min_8bit_size).
    float *m32, *v32;
  };

  // The constants of a tensor's step `step` (already advanced), in double.
  Scalars scalars(double step) const {
    const double bias_correction1 = 1.0 - std::pow(beta1, step);
    const double bias_correction2 = 1.0 - std::pow(beta2, step);
    return {float(-lr / bias_correction1), float(std::sqrt(bias_correction2))};
  }

  // The rule on n elements with float32 m and v (updated in place).
  void rule(const Scalars& s, S* __restrict p, const S* __restrict g, float* __restrict m,
            float* __restrict v, std::size_t n) const {
    const float b1 = float(beta1), w1 = float(1.0 - beta1);
    const float b2 = float(beta2), w2 = float(1.0 - beta2);
    const float epsilon = float(eps);
    const float decay = weight_decay > 0 ? float(1.0 - lr * weight_decay) : 1.0f;
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i) {
      const float grad = load(g[i]);
      const float m_new = std::fma(grad, w1, m[i] * b1);
      const float v_new = std::fma(w2 * grad, grad, v[i] * b2);
      m[i] = m_new;
      v[i] = v_new;
      const float denom = std::sqrt(v_new) / s.bias_correction2_sqrt + epsilon;
      store(p[i], load(p[i]) * decay + (s.neg_step_size * m_new) / denom);
    }
  }

  // A chunk of a tensor: whole blocks from the tensor's start (the driver's chunks are
  // multiples of kQuantBlock), each dequantized, updated and quantized back in L1.
  void update(const Scalars& s, S* const* buffers, std::size_t n) const {
    const std::size_t offset = static_cast<std::size_t>(buffers[0] - s.param);
    S* p = buffers[0];
    const S* g = buffers[1];
    if (s.m8 == nullptr) {
      rule(s, p, g, s.m32 + offset, s.v32 + offset, n);
      return;
    }
    float m[kQuantBlock], v[kQuantBlock];
    for (std::size_t begin = 0; begin < n; begin += kQuantBlock) {
      const std::size_t count = std::min(kQuantBlock, n - begin);
      const std::size_t block = (offset + begin) / kQuantBlock;
      std::uint8_t* m8 = s.m8 + offset + begin;
      std::uint8_t* v8 = s.v8 + offset + begin;
      const float scale1 = s.absmax1[block], scale2 = s.absmax2[block];
#pragma omp simd
      for (std::size_t i = 0; i < count; ++i) {
        m[i] = code1[m8[i]] * scale1;
        v[i] = code2[v8[i]] * scale2;
      }
      rule(s, p + begin, g + begin, m, v, count);
      s.absmax1[block] = quantize_block(m, m8, count, table1);
      s.absmax2[block] = quantize_block(v, v8, count, table2);
    }
  }
};

}  // namespace numoptim
