// Storage types and the arithmetic type they compute in.
//
// A rule is written once, for a storage type S: it loads each operand into compute_t<S>
// (float for bfloat16 and float16, the type itself for float and double), computes, and
// rounds once on store, as torch's fused CPU kernels do for low-precision tensors. For
// float and double, load and store are the identity, so those loops are unchanged.
//
// Both conversions round to nearest even and keep NaN a NaN. They are written as
// branchless integer and IEEE float operations, so the compiler vectorizes them at every
// SIMD level (GCC 12 does not vectorize _Float16 conversions, even with F16C) and the
// results are the same at each.
#pragma once

#include <cstdint>
#include <cstring>

namespace numoptim {

// bfloat16: the upper 16 bits of an IEEE float (NumPy's via ml_dtypes.bfloat16).
struct bfloat16 {
  std::uint16_t bits;
};

// IEEE binary16 (NumPy's float16).
struct float16 {
  std::uint16_t bits;
};

inline std::uint32_t bits_of(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
inline float float_of(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

template <class S>
struct Compute {
  using type = S;
};
template <>
struct Compute<bfloat16> {
  using type = float;
};
template <>
struct Compute<float16> {
  using type = float;
};
// The type a rule computes in for storage S.
template <class S>
using compute_t = typename Compute<S>::type;

template <class T>
inline T load(T x) {
  return x;
}
inline float load(float16 x) {
  // The exponent and mantissa moved into a float's places read as 2^-112 times the
  // value (subnormal halves become normal floats), so one exact multiplication by 2^112
  // finishes the job; infinities and NaNs only need the float's all-ones exponent.
  const std::uint32_t sign = std::uint32_t(x.bits & 0x8000u) << 16;
  const std::uint32_t rest = std::uint32_t(x.bits & 0x7FFFu) << 13;
  const std::uint32_t finite = bits_of(float_of(rest) * 0x1p112f);
  // A NaN comes out quiet, as F16C's conversion makes it (widened.hpp uses both).
  const std::uint32_t quiet = rest > (0x7C00u << 13) ? 0x00400000u : 0u;
  return float_of(sign | (rest >= (0x7C00u << 13) ? (rest | 0x7F800000u | quiet) : finite));
}
inline float load(bfloat16 x) { return float_of(std::uint32_t(x.bits) << 16); }

template <class T>
inline void store(T& out, T value) {
  out = value;
}
inline void store(float16& out, float value) {
  const std::uint32_t bits = bits_of(value);
  const std::uint32_t sign = (bits >> 16) & 0x8000u;
  const std::uint32_t magnitude = bits & 0x7FFFFFFFu;
  // Normal halves: re-bias the exponent and round the 13 dropped mantissa bits to
  // nearest even with integer arithmetic (a carry may bump the exponent, as it should).
  const std::uint32_t normal =
      (magnitude - ((127u - 15u) << 23) + 0xFFFu + ((magnitude >> 13) & 1u)) >> 13;
  // Below 2^-14 the half is subnormal: adding 0.5f makes the float unit rounding
  // (to nearest even) land exactly on the half's last mantissa bit.
  const std::uint32_t subnormal = bits_of(float_of(magnitude) + 0.5f) - bits_of(0.5f);
  std::uint32_t half = magnitude < (113u << 23) ? subnormal : normal;
  half = magnitude >= 0x477FF000u ? 0x7C00u : half;  // 65520 and up round to infinity
  half = magnitude > 0x7F800000u ? (0x7E00u | ((magnitude >> 13) & 0x3FFu)) : half;  // NaN
  out.bits = static_cast<std::uint16_t>(sign | half);
}
inline void store(bfloat16& out, float value) {
  const std::uint32_t bits = bits_of(value);
  // Round to nearest even: add just under half an ulp of the result, plus the bit that
  // breaks ties towards even. A NaN is truncated instead, with its quiet bit set, so
  // that rounding cannot carry it into an infinity. Choosing before the shift, with a
  // float comparison for NaN, keeps the vectorized loop to eight instructions per
  // vector before the narrowing (an integer test of the NaN after the shift took twice
  // as many, and made a bfloat16 Adam step 2.4x slower than float32 in L1).
  const std::uint32_t rounded = bits + 0x7FFFu + ((bits >> 16) & 1u);
  const std::uint32_t kept = value != value ? (bits | 0x00400000u) : rounded;
  out.bits = static_cast<std::uint16_t>(kept >> 16);
}

}  // namespace numoptim
