// NAdamW, AdamW with a Nesterov look-ahead (Dozat, "Incorporating Nesterov Momentum into
// Adam", 2016, in the simplified form of the MLCommons AlgoPerf baseline), as timm's NAdamW.
//
//   g <- -g if maximize
//   p <- p * (1 - wd_scale * weight_decay)     wd_scale = lr, or lr^2 / max_lr (corrected)
//   m <- lerp(m, g, 1 - beta1)
//   v <- beta2 * v + (1 - beta2) * g * g
//   m_nesterov <- lerp(m, g, 1 - beta1)        (not stored)
//   p <- p - (lr / (1 - beta1^t)) * m_nesterov / (sqrt(v) / sqrt(1 - beta2^t) + eps)
//
// t is the parameter's own step count (a 0-d float32, as timm's). The operation order is
// timm's single-tensor path (foreach=False), with torch's CPU fusions as in adan.hpp:
// lerp is a fused multiply-add from the nearer end, `mul_(b).addcmul_(g, g, value=c)` is
// fma(c * g, g, v * b), and `addcdiv_(m, denom, value=c)` is p + (c * m) / denom, unfused.
#pragma once

#include <cmath>
#include <cstddef>

#include "numoptim/storage.hpp"

namespace numoptim {

template <class S>
struct NAdamW {
  using T = compute_t<S>;  // S is the storage type, T the arithmetic one
  // Buffers: param, grad, exp_avg, exp_avg_sq: timm's order of creation.
  static constexpr std::size_t num_buffers = 4;
  // Scalar state: step.
  static constexpr std::size_t num_scalar_state = 1;

  double lr, beta1, beta2, eps, weight_decay;
  double wd_scale;  // lr, or lr^2 / max_lr with corrected_weight_decay
  bool maximize;

  struct Scalars {
    T neg_step_size, bias_correction2_sqrt;
  };

  // Advances `step` (float32, as timm's) and computes the bias corrections in double.
  Scalars prepare(float* const* scalar_state, bool /*fresh*/) const {
    const double step = (*scalar_state[0] += 1.0f);
    const double bias_correction1 = 1.0 - std::pow(beta1, step);
    const double bias_correction2 = 1.0 - std::pow(beta2, step);
    return {T(-(lr / bias_correction1)), T(std::pow(bias_correction2, 0.5))};
  }

  void update(const Scalars& s, S* const* buffers, std::size_t n) const {
    S* __restrict p = buffers[0];
    const S* __restrict grad = buffers[1];
    S* __restrict m = buffers[2];
    S* __restrict v = buffers[3];
    const T sign = maximize ? T(-1) : T(1);
    const T decay = T(1.0 - wd_scale * weight_decay);
    const T weight1 = T(1.0 - beta1), one_minus_weight1 = T(1) - weight1;
    const bool small_weight1 = std::abs(1.0 - beta1) < 0.5;
    const T b2 = T(beta2), weight2 = T(1.0 - beta2);
    const T epsilon = T(eps);
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i) {
      const T g = sign * load(grad[i]);
      const T param = load(p[i]) * decay;
      const T m_old = load(m[i]);
      const T toward = g - m_old;
      const T m_new = small_weight1 ? std::fma(weight1, toward, m_old)
                                    : std::fma(-toward, one_minus_weight1, g);
      const T v_new = std::fma(weight2 * g, g, load(v[i]) * b2);
      store(m[i], m_new);
      store(v[i], v_new);
      // The look-ahead: the same lerp again, from the updated average.
      const T ahead = g - m_new;
      const T m_nesterov = small_weight1 ? std::fma(weight1, ahead, m_new)
                                         : std::fma(-ahead, one_minus_weight1, g);
      const T denom = std::sqrt(v_new) / s.bias_correction2_sqrt + epsilon;
      store(p[i], param + s.neg_step_size * m_nesterov / denom);
    }
  }
};

}  // namespace numoptim
