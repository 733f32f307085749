// Storage types and the arithmetic type they compute in.
//
// A rule is written once, for a storage type S: it loads each operand into compute_t<S>
// (float for bfloat16 and float16, the type itself for float and double), computes, and
// rounds once on store, as torch's fused CPU kernels do for low-precision tensors. For
// float and double, load and store are the identity, so those loops are unchanged.
//
// Both conversions round to nearest even and keep NaN a NaN, and they are exact integer
// or IEEE operations, so results are the same at every SIMD level: float16 uses the
// compiler's _Float16 (F16C instructions where the target has them, exact software
// otherwise); bfloat16 is the upper half of a float, rounded with integer arithmetic.
#pragma once

#include <cstdint>
#include <cstring>

namespace numoptim {

// bfloat16: the upper 16 bits of an IEEE float (NumPy's via ml_dtypes.bfloat16).
struct bfloat16 {
  std::uint16_t bits;
};

// IEEE binary16 (NumPy's float16).
using float16 = _Float16;

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
inline float load(float16 x) { return static_cast<float>(x); }
inline float load(bfloat16 x) {
  const std::uint32_t bits = std::uint32_t(x.bits) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

template <class T>
inline void store(T& out, T value) {
  out = value;
}
inline void store(float16& out, float value) { out = static_cast<float16>(value); }
inline void store(bfloat16& out, float value) {
  std::uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  // Round to nearest even: add just under half an ulp of the result, plus the bit that
  // breaks ties towards even. A NaN is truncated instead, with its quiet bit set, so
  // that rounding cannot carry it into an infinity.
  const std::uint32_t rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
  const bool nan = (bits & 0x7FFFFFFFu) > 0x7F800000u;
  out.bits = static_cast<std::uint16_t>(nan ? ((bits >> 16) | 0x40u) : rounded);
}

}  // namespace numoptim
