// AdaBelief, Adam with the variance of the gradient around its running average in place
// of its second moment (Zhuang et al., "AdaBelief Optimizer: Adapting Stepsizes by the
// Belief in Observed Gradients", NeurIPS 2020), as timm's AdaBelief.
//
//   g <- -g if maximize                        (numoptim's option; timm has none)
//   decoupled_decay: p <- p * (1 - lr * weight_decay), or p * (1 - weight_decay) if fixed_decay
//   otherwise:       g <- g + weight_decay * p
//   m <- lerp(m, g, 1 - beta1)
//   s <- beta2 * s + (1 - beta2) * (g - m)^2 + eps          (the eps is stored in s)
//   amsgrad: s_max <- max(s_max, s);  denom <- sqrt(s_max) / sqrt(1 - beta2^t) + eps
//   else:                             denom <- sqrt(s) / sqrt(1 - beta2^t) + eps
//   not rectify:                 p <- p - lr / (1 - beta1^t) * m / denom
//   rectify, rho_t >= 5:         p <- p - lr * r_t * m / (sqrt(s) + eps)   (never s_max)
//   rectify, degenerated_to_sgd: p <- p - lr / (1 - beta1^t) * m
//   rectify, otherwise:          p unchanged (past the decay)
//
// r_t and rho_t are RAdam's rectification (timm's per-parameter step size). t is the
// parameter's own step count, a Python int in the state: the Python class steps the
// parameters of one count together and gives the rule that count's constants. The
// operation order is timm's single-tensor path (foreach=False), with torch's CPU fusions
// as in adan.hpp: lerp is a fused multiply-add from the nearer end, `grad.add(p,
// alpha=wd)` and `add_(m, alpha=a)` are fma(x, a, y), `mul_(b).addcmul_(r, r, value=c)`
// is fma(c * r, r, s * b), and `addcdiv_(m, denom, value=c)` is p + (c * m) / denom,
// unfused.
#pragma once

#include <cmath>
#include <cstddef>

#include "numoptim/multi_tensor.hpp"
#include "numoptim/storage.hpp"

namespace numoptim {

template <class S>
struct AdaBelief {
  using T = compute_t<S>;  // S is the storage type, T the arithmetic one
  // Buffers: param, grad, exp_avg, exp_avg_var, max_exp_avg_var (only with amsgrad).
  static constexpr std::size_t num_buffers = 5;
  // No scalar state: the count is the Python class's (a Python int, as timm's).
  static constexpr std::size_t num_scalar_state = 0;

  // How the update is applied (see the header): Adam's, RAdam's rectified, SGD's or none.
  enum Update : int { adam = 0, rectified = 1, sgd = 2, none = 3 };

  double beta1, beta2, eps, weight_decay;
  double decay_factor;  // 1 - lr * wd or 1 - wd (decoupled), else unused
  double neg_step_size;  // -lr / (1 - beta1^t) (adam), -step_size * lr (rectified, sgd)
  double bias_correction2_sqrt;
  int update_kind;
  bool amsgrad, decoupled, maximize;

  struct Scalars {
    unsigned char unused;
  };

  Scalars prepare(float* const* /*scalar_state*/, bool /*fresh*/) const { return {0}; }

  // One loop per (amsgrad, L2, update) setting, so that each vectorizes without a branch.
  void update(const Scalars& /*s*/, S* const* buffers, std::size_t n) const {
    const bool l2 = !decoupled && weight_decay != 0;
    if (amsgrad)
      l2 ? dispatch<true, true>(buffers, n) : dispatch<true, false>(buffers, n);
    else
      l2 ? dispatch<false, true>(buffers, n) : dispatch<false, false>(buffers, n);
  }

  template <bool AmsGrad, bool L2>
  void dispatch(S* const* buffers, std::size_t n) const {
    switch (update_kind) {
      case adam: return loop<AmsGrad, L2, adam>(buffers, n);
      case rectified: return loop<AmsGrad, L2, rectified>(buffers, n);
      case sgd: return loop<AmsGrad, L2, sgd>(buffers, n);
      default: return loop<AmsGrad, L2, none>(buffers, n);
    }
  }

  template <bool AmsGrad, bool L2, int Kind>
  void loop(S* const* buffers, std::size_t n) const {
    S* __restrict p = buffers[0];
    const S* __restrict grad = buffers[1];
    S* __restrict m = buffers[2];
    S* __restrict var = buffers[3];
    S* __restrict var_max = buffers[4];
    const T sign = maximize ? T(-1) : T(1);
    const T shrink = decoupled ? T(decay_factor) : T(1);
    const T wd = T(weight_decay);
    const T weight1 = T(1.0 - beta1), one_minus_weight1 = T(1) - weight1;
    const bool small_weight1 = std::abs(1.0 - beta1) < 0.5;
    const T b2 = T(beta2), weight2 = T(1.0 - beta2);
    const T epsilon = T(eps), step = T(neg_step_size), bc2_sqrt = T(bias_correction2_sqrt);
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i) {
      T g = sign * load(grad[i]);
      const T param = load(p[i]) * shrink;
      if constexpr (L2) g = std::fma(param, wd, g);
      const T m_old = load(m[i]);
      const T toward = g - m_old;
      const T m_new = small_weight1 ? std::fma(weight1, toward, m_old)
                                    : std::fma(-toward, one_minus_weight1, g);
      const T residual = g - m_new;
      const T var_new = std::fma(weight2 * residual, residual, load(var[i]) * b2) + epsilon;
      store(m[i], m_new);
      store(var[i], var_new);
      T denom;
      if constexpr (AmsGrad) {
        const T var_hat = maximum(load(var_max[i]), var_new);
        store(var_max[i], var_hat);
        denom = std::sqrt(var_hat) / bc2_sqrt + epsilon;
      } else {
        denom = std::sqrt(var_new) / bc2_sqrt + epsilon;
      }
      if constexpr (Kind == adam) {
        store(p[i], param + step * m_new / denom);
      } else if constexpr (Kind == rectified) {
        store(p[i], param + step * m_new / (std::sqrt(var_new) + epsilon));
      } else if constexpr (Kind == sgd) {
        store(p[i], std::fma(m_new, step, param));
      } else {
        store(p[i], param);
      }
    }
  }
};

}  // namespace numoptim
