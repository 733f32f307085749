// Block-wise 8-bit optimizer state (Dettmers et al., "8-bit Optimizers via Block-wise
// Quantization", ICLR 2022), as bitsandbytes keeps it, and the driver that every 8-bit
// rule (Adam8bit, Lion8bit, AdEMAMix8bit) runs on.
//
// A state stream (m, v, ...) is stored as blocks of 256 elements that share a float32
// absmax; each element is one byte, the index of the code nearest to value / absmax in a
// sorted map of 256 codes in [-1, 1] (bitsandbytes' dynamic maps: signed for averages of
// the gradient, unsigned for averages of its square). A step reads a block's bytes,
// dequantizes them (code[q] * absmax) into float32 in L1, runs the rule on them, and
// quantizes them back with the block's new absmax: one pass over memory. Tensors smaller
// than min_8bit_size keep their streams in float32 and run the same rule on them in place.
//
// Quantization is to the nearest code, as the paper defines it (ties to the lower code).
// bitsandbytes 0.50's CPU kernel rounds value / absmax to a grid of 65536 points first,
// and so picks a farther code for a small fraction of the elements (those near zero,
// where the dynamic map is finest): about 0.2% of Adam's m and 3% of its v.
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

// ------------------------------------------------------------------ the driver

// The maps of a rule's K state streams (several streams may share one), with their
// quantization tables.
template <std::size_t K>
struct StateMaps {
  const float* code[K];
  const std::uint32_t* table[K];
};

// One tensor's K state streams: codes with an absmax per block (8-bit state), or float32
// values (tensors below min_8bit_size; `codes` are then null).
template <class S, std::size_t K>
struct BlockwiseState {
  const S* param = nullptr;  // the tensor's first element: a chunk's offset in the tensor
  std::uint8_t* codes[K] = {};
  float* absmax[K] = {};
  float* values[K] = {};
};

// Runs rule.rule(s, p, g, state, count, quantized) over a chunk of a tensor (param and
// grad in `buffers`, n elements), state[k] pointing at stream k's float32 values for those
// elements: the float32 state itself, or block by block (whole blocks from the tensor's
// start: the driver's chunks are multiples of kQuantBlock) a copy dequantized in L1 and
// quantized back after the rule. `quantized` tells the rule which, for a rule whose
// reference computes its two kernels in different orders (Lion8bit).
template <class Rule, class S>
void update_blockwise(const Rule& rule, const typename Rule::Scalars& s, S* const* buffers,
                      std::size_t n) {
  constexpr std::size_t K = Rule::num_states;
  const BlockwiseState<S, K>& state = s.state;
  const std::size_t offset = static_cast<std::size_t>(buffers[0] - state.param);
  S* p = buffers[0];
  const S* g = buffers[1];
  float* values[K];
  if (state.codes[0] == nullptr) {
    for (std::size_t k = 0; k < K; ++k) values[k] = state.values[k] + offset;
    rule.rule(s, p, g, values, n, false);
    return;
  }
  float blocks[K][kQuantBlock];
  for (std::size_t k = 0; k < K; ++k) values[k] = blocks[k];
  for (std::size_t begin = 0; begin < n; begin += kQuantBlock) {
    const std::size_t count = std::min(kQuantBlock, n - begin);
    const std::size_t block = (offset + begin) / kQuantBlock;
    for (std::size_t k = 0; k < K; ++k) {
      const std::uint8_t* q = state.codes[k] + offset + begin;
      const float* code = rule.maps.code[k];
      const float scale = state.absmax[k][block];
      float* x = blocks[k];
#pragma omp simd
      for (std::size_t i = 0; i < count; ++i) x[i] = code[q[i]] * scale;
    }
    rule.rule(s, p + begin, g + begin, values, count, true);
    for (std::size_t k = 0; k < K; ++k)
      state.absmax[k][block] =
          quantize_block(blocks[k], state.codes[k] + offset + begin, count, rule.maps.table[k]);
  }
}

}  // namespace numoptim
