// Lion, EvoLved Sign Momentum (Chen et al., "Symbolic Discovery of Optimization
// Algorithms", 2023), with decoupled weight decay.
//
//   g <- -g if maximize
//   p <- p * (1 - lr * weight_decay)
//   c <- beta1 * m + (1 - beta1) * g
//   p <- p - lr * sign(c)
//   m <- beta2 * m + (1 - beta2) * g
//
// The operation order is lion-pytorch's update_fn (the paper authors' reference, which
// timm and bitsandbytes' 32-bit Lion reproduce), on whose float32 and float64 results
// this loop is bit-identical. Its `m.mul(beta).add(g, alpha=1 - beta)` is one multiply
// and then a fused multiply-add in torch's CPU kernel (vector body and tail alike), so
// the loop calls std::fma there: a single ulp in c can flip its sign near zero, and m is
// stored state. fma is correctly rounded on every target, so results stay identical
// across SIMD levels. The decay factor 1 - lr * weight_decay is computed in double and
// rounded to T once, as torch's mul_ by a Python float.
//
// sign is torch.sign's: sign(+-0) = +0 (no move) and sign(NaN) = 0 (torch 2.13's CPU
// kernel computes (0 < c) - (c < 0), which is 0 for NaN). Written as that difference of
// two comparisons, it has no branch and vectorizes.
//
// The rule on one element (LionRule) is shared with Lion8bit (lion8bit.hpp).
#pragma once

#include <cmath>
#include <cstddef>

#include "numoptim/storage.hpp"

namespace numoptim {

// Lion's constants, rounded to T once, and the rule on one element.
template <class T>
struct LionRule {
  T b1, weight1, b2, weight2, neg_lr, decay_factor;
  bool decay;

  LionRule(double lr, double beta1, double beta2, double weight_decay)
      : b1(T(beta1)), weight1(T(1.0 - beta1)), b2(T(beta2)), weight2(T(1.0 - beta2)),
        neg_lr(T(-lr)), decay_factor(T(1.0 - lr * weight_decay)), decay(weight_decay != 0) {}

  // Returns the new parameter and updates m. `fused`: c as one multiply and a fused
  // multiply-add (lion-pytorch, bitsandbytes' 32-bit kernel), or as two products and a sum
  // (bitsandbytes' 8-bit kernel: `m.mul(beta1) + g.mul(1 - beta1)`).
  T step(T param, T g, T& m, bool fused) const {
    if (decay) param = param * decay_factor;
    const T c = fused ? std::fma(g, weight1, m * b1) : m * b1 + g * weight1;
    const T sign = T(T(0) < c) - T(c < T(0));
    m = std::fma(g, weight2, m * b2);
    return param + neg_lr * sign;
  }
};

template <class S>
struct Lion {
  using T = compute_t<S>;  // S is the storage type, T the arithmetic one
  // Buffers: param, grad, exp_avg (m).
  static constexpr std::size_t num_buffers = 3;
  // No scalar state: Lion counts no steps.
  static constexpr std::size_t num_scalar_state = 0;

  double lr, beta1, beta2, weight_decay;
  bool maximize;

  struct Scalars {};
  Scalars prepare(float* const* /*scalar_state*/, bool /*fresh*/) const { return {}; }

  void update(const Scalars& /*s*/, S* const* buffers, std::size_t n) const {
    S* __restrict p = buffers[0];
    const S* __restrict grad = buffers[1];
    S* __restrict m = buffers[2];
    const LionRule<T> rule(lr, beta1, beta2, weight_decay);
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i) {
      const T g = maximize ? -load(grad[i]) : load(grad[i]);
      T average = load(m[i]);
      store(p[i], rule.step(load(p[i]), g, average, true));
      store(m[i], average);
    }
  }
};

}  // namespace numoptim
