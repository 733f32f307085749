// Adam and AdamW (Kingma & Ba, "Adam: A Method for Stochastic Optimization", 2015;
// Loshchilov & Hutter, "Decoupled Weight Decay Regularization", 2019), with AMSGrad
// (Reddi et al., "On the Convergence of Adam and Beyond", 2018).
//
//   g <- -g if maximize
//   p <- p * (1 - lr * weight_decay)      if decoupled (AdamW), else g <- g + weight_decay * p
//   m <- lerp(m, g, 1 - beta1)
//   v <- beta2 * v + (1 - beta2) * g * g
//   v_hat <- max(v_max, v) (stored back in v_max) if amsgrad, else v
//   p <- p - (lr / (1 - beta1^t)) * m / (sqrt(v_hat) / sqrt(1 - beta2^t) + eps)
//
// The operation order is torch.optim.Adam's single-tensor path, so float64 agrees to
// rounding and float32 to a few ulps.
#pragma once

#include <cmath>
#include <cstddef>

#include "numoptim/multi_tensor.hpp"
#include "numoptim/storage.hpp"

namespace numoptim {

template <class S>
struct Adam {
  using T = compute_t<S>;  // S is the storage type, T the arithmetic one
  // Buffers: param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq (only read when amsgrad).
  static constexpr std::size_t num_buffers = 5;
  // Scalar state: step.
  static constexpr std::size_t num_scalar_state = 1;

  double lr, beta1, beta2, eps, weight_decay;
  bool amsgrad, maximize, decoupled;

  struct Scalars {
    T neg_step_size, bias_correction2_sqrt;
  };
  // Advances `step` (float32, as torch) and computes the bias corrections in double.
  Scalars prepare(float* const* scalar_state, bool /*fresh*/) const {
    const double step = (*scalar_state[0] += 1.0f);
    const double bias_correction1 = 1.0 - std::pow(beta1, step);
    const double bias_correction2 = 1.0 - std::pow(beta2, step);
    return {T(-(lr / bias_correction1)), T(std::sqrt(bias_correction2))};
  }

  // One loop per (amsgrad, L2) setting: GCC 12 vectorizes none of the loops that
  // branch on them inside. maximize and the decoupled decay need no branch: a sign of
  // -1 and a factor of 1 are exact.
  void update(const Scalars& s, S* const* buffers, std::size_t n) const {
    const bool l2 = weight_decay != 0 && !decoupled;
    if (amsgrad)
      l2 ? loop<true, true>(s, buffers, n) : loop<true, false>(s, buffers, n);
    else
      l2 ? loop<false, true>(s, buffers, n) : loop<false, false>(s, buffers, n);
  }

  template <bool AmsGrad, bool L2>
  void loop(const Scalars& s, S* const* buffers, std::size_t n) const {
    S* __restrict p = buffers[0];
    const S* __restrict grad = buffers[1];
    S* __restrict m = buffers[2];
    S* __restrict v = buffers[3];
    S* __restrict v_max = buffers[4];
    const bool shrink = weight_decay != 0 && decoupled;
    const T sign = maximize ? T(-1) : T(1);
    const T wd = T(weight_decay), decay_factor = shrink ? T(1.0 - lr * weight_decay) : T(1);
    const T weight1 = T(1.0 - beta1), b2 = T(beta2), one_minus_b2 = T(1.0 - beta2);
    const T epsilon = T(eps);
    const bool small_weight1 = std::abs(1.0 - beta1) < 0.5;
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i) {
      T g = sign * load(grad[i]);
      const T param = load(p[i]) * decay_factor;
      if constexpr (L2) g = g + wd * param;
      const T m_new = lerp(load(m[i]), g, weight1, small_weight1);
      const T v_new = load(v[i]) * b2 + one_minus_b2 * g * g;
      store(m[i], m_new);
      store(v[i], v_new);
      T v_hat = v_new;
      if constexpr (AmsGrad) {
        v_hat = maximum(load(v_max[i]), v_new);
        store(v_max[i], v_hat);
      }
      const T denom = std::sqrt(v_hat) / s.bias_correction2_sqrt + epsilon;
      store(p[i], param + s.neg_step_size * m_new / denom);
    }
  }
};

}  // namespace numoptim
