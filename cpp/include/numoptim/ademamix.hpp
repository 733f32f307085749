// AdEMAMix (Pagliardini, Ablin & Grangier, "The AdEMAMix Optimizer: Better, Faster,
// Older", 2024): Adam with a second, slow running average of the gradient mixed into
// the numerator, and decoupled weight decay.
//
//   g <- -g if maximize
//   m1 <- beta1 * m1 + (1 - beta1) * g                 (fast average, bias-corrected)
//   m2 <- beta3_t * m2 + (1 - beta3_t) * g             (slow average, not bias-corrected)
//   nu <- beta2 * nu + (1 - beta2) * g * g
//   p <- p * (1 - lr * weight_decay)
//   p <- p - lr * (m1 / (1 - beta1^t) + alpha_t * m2) / (sqrt(nu) / sqrt(1 - beta2^t) + eps)
//
// with the schedulers of bitsandbytes (each off unless its length is given):
//   alpha_t = min(t * alpha / t_alpha, alpha)
//   beta3_t = min(exp(ln b1 * ln b3 / ((1 - t/T) * ln b3 + (t/T) * ln b1)), b3), T = t_beta3
//
// The operation order is bitsandbytes 0.50's 32-bit CPU kernel (backends/cpu/ops.py), the
// reference numoptim.AdEMAMix follows. Its `mul_(beta).add_(g, alpha=1 - beta)` is a
// multiply and then a fused multiply-add in torch's CPU kernels, its
// `addcmul_(g, g, value=1 - beta2)` is fma((1 - beta2) * g, g, nu), and its final
// `add_(u, alpha=-lr)` is fma(u, -lr, p): the loop calls std::fma at those points, which
// is correctly rounded on every target, so results stay identical across SIMD levels.
// Every step constant is computed in double and rounded to T once, as torch rounds a
// Python float operand. (bitsandbytes' reference class _ReferenceAdEMAMix applies the
// decay as p - lr * (u + weight_decay * p) instead: the same value up to rounding.)
//
// The rule on one element and its schedules (AdEMAMixRule, AdEMAMixHyperparameters) are
// shared with AdEMAMix8bit (ademamix8bit.hpp).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "numoptim/storage.hpp"

namespace numoptim {

// AdEMAMix's constants of one step, rounded to T once, and the rule on one element.
template <class T>
struct AdEMAMixRule {
  T b1, weight1, b2, weight2, b3, weight3, alpha_t, bias_correction1, bias_correction2_sqrt;
  T neg_lr, epsilon, decay_factor;

  // Returns the new parameter and updates m1, m2 and nu.
  T step(T param, T g, T& m1, T& m2, T& nu) const {
    m1 = std::fma(g, weight1, m1 * b1);
    m2 = std::fma(g, weight3, m2 * b3);
    nu = std::fma(weight2 * g, g, nu * b2);
    const T mixed = m1 / bias_correction1 + alpha_t * m2;
    const T adaptive = std::sqrt(nu) / bias_correction2_sqrt + epsilon;
    return std::fma(mixed / adaptive, neg_lr, param * decay_factor);
  }
};

// AdEMAMix's hyperparameters and schedules (shared with AdEMAMix8bit).
struct AdEMAMixHyperparameters {
  double lr, beta1, beta2, beta3, alpha, eps, weight_decay;
  double t_alpha, t_beta3;  // scheduler lengths; 0 is off (bitsandbytes tests truthiness)

  // The constants of step `step` (1-based), computed in double in bitsandbytes' order.
  template <class T>
  AdEMAMixRule<T> at(double step) const {
    const double alpha_t = t_alpha != 0 ? std::min(step * alpha / t_alpha, alpha) : alpha;
    double beta3_t = beta3;
    if (t_beta3 != 0) {
      const double ln_beta1 = std::log(beta1), ln_beta3 = std::log(beta3);
      const double step_scale = step / t_beta3;
      beta3_t = std::min(
          std::exp((ln_beta1 * ln_beta3) / ((1 - step_scale) * ln_beta3 + step_scale * ln_beta1)),
          beta3);
    }
    const double bias_correction1 = 1.0 - std::pow(beta1, step);
    const double bias_correction2_sqrt = std::sqrt(1.0 - std::pow(beta2, step));
    // bitsandbytes decays only when weight_decay > 0; a factor of 1 would be exact anyway.
    const double decay_factor = weight_decay > 0 ? 1.0 - lr * weight_decay : 1.0;
    return {T(beta1),          T(1.0 - beta1),   T(beta2),
            T(1.0 - beta2),    T(beta3_t),       T(1.0 - beta3_t),
            T(alpha_t),        T(bias_correction1), T(bias_correction2_sqrt),
            T(-lr),            T(eps),           T(decay_factor)};
  }
};

template <class S>
struct AdEMAMix : AdEMAMixHyperparameters {
  using T = compute_t<S>;  // S is the storage type, T the arithmetic one
  // Buffers: param, grad, exp_avg_fast (m1), exp_avg_slow (m2), exp_avg_sq (nu).
  static constexpr std::size_t num_buffers = 5;
  // Scalar state: step.
  static constexpr std::size_t num_scalar_state = 1;

  bool maximize;

  using Scalars = AdEMAMixRule<T>;

  // Advances `step` (float32, as numoptim's other step counts) and computes the
  // step-dependent constants.
  Scalars prepare(float* const* scalar_state, bool /*fresh*/) const {
    return at<T>(*scalar_state[0] += 1.0f);
  }

  void update(const Scalars& s, S* const* buffers, std::size_t n) const {
    S* __restrict p = buffers[0];
    const S* __restrict grad = buffers[1];
    S* __restrict m1 = buffers[2];
    S* __restrict m2 = buffers[3];
    S* __restrict nu = buffers[4];
    const T sign = maximize ? T(-1) : T(1);
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i) {
      T fast = load(m1[i]), slow = load(m2[i]), sq = load(nu[i]);
      const T param = s.step(load(p[i]), sign * load(grad[i]), fast, slow, sq);
      store(m1[i], fast);
      store(m2[i], slow);
      store(nu[i], sq);
      store(p[i], param);
    }
  }
};

}  // namespace numoptim
