// Adan, the adaptive Nesterov momentum algorithm (Xie et al., "Adan: Adaptive Nesterov
// Momentum Algorithm for Faster Optimizing Deep Models", 2022), as timm's Adan.
//
//   g <- -g if maximize
//   d <- g - g_prev                       (0 at the group's first step: g_prev = g)
//   m <- lerp(m, g, 1 - beta1)
//   v <- beta2 * v + (1 - beta2) * d
//   q <- beta2 * d + g
//   n <- beta3 * n + (1 - beta3) * q * q
//   denom <- sqrt(n) / sqrt(1 - beta3^t) + eps
//   no_prox: p <- p * (1 - lr * weight_decay)
//   p <- p - (lr / (1 - beta1^t)) * m / denom
//   p <- p - (lr * beta2 / (1 - beta2^t)) * v / denom
//   otherwise (proximal): p <- p / (1 + lr * weight_decay)
//   g_prev <- g                           (stored negated, as timm's neg_pre_grad)
//
// The betas are the code's, 1 minus the paper's. t is the group's step count (timm keeps
// it in the group, not per parameter). The operation order is timm's single-tensor path
// (foreach=False): torch's CPU lerp is a fused multiply-add from the nearer end,
// `mul_(b).add_(x, alpha=a)` is fma(x, a, y * b), `addcmul_(q, q, value=c)` is
// fma(c * q, q, n), and `addcdiv_(m, denom, value=c)` is p + (c * m) / denom, unfused.
// std::fma is correctly rounded on every target, so results stay identical across SIMD
// levels. Step constants are computed in double and rounded to T once.
#pragma once

#include <cmath>
#include <cstddef>

#include "numoptim/storage.hpp"

namespace numoptim {

template <class S>
struct Adan {
  using T = compute_t<S>;  // S is the storage type, T the arithmetic one
  // Buffers: param, grad, exp_avg (m), exp_avg_sq (n), exp_avg_diff (v), neg_pre_grad:
  // timm's order of creation.
  static constexpr std::size_t num_buffers = 6;
  // No scalar state per parameter: the step count is the group's.
  static constexpr std::size_t num_scalar_state = 0;

  double lr, beta1, beta2, beta3, eps, weight_decay;
  double step;  // the group's step count after this step (1 on the first)
  bool no_prox, maximize;

  struct Scalars {
    T neg_step_size, neg_step_size_diff, bias_correction3_sqrt;
    bool first;  // neg_pre_grad is -g: the group's first step, or a parameter's first
  };

  Scalars prepare(float* const* /*scalar_state*/, bool fresh) const {
    const double bias_correction1 = 1.0 - std::pow(beta1, step);
    const double bias_correction2 = 1.0 - std::pow(beta2, step);
    const double bias_correction3 = 1.0 - std::pow(beta3, step);
    return {T(-(lr / bias_correction1)), T(-(lr * beta2 / bias_correction2)),
            T(std::sqrt(bias_correction3)), fresh || step == 1};
  }

  void update(const Scalars& s, S* const* buffers, std::size_t n) const {
    S* __restrict p = buffers[0];
    const S* __restrict grad = buffers[1];
    S* __restrict m = buffers[2];
    S* __restrict sq = buffers[3];
    S* __restrict v = buffers[4];
    S* __restrict neg_pre_grad = buffers[5];
    const T sign = maximize ? T(-1) : T(1);
    const T weight1 = T(1.0 - beta1), one_minus_weight1 = T(1) - weight1;
    const bool small_weight1 = std::abs(1.0 - beta1) < 0.5;
    const T b2 = T(beta2), weight2 = T(1.0 - beta2);
    const T b3 = T(beta3), weight3 = T(1.0 - beta3);
    const T epsilon = T(eps);
    const T shrink = no_prox ? T(1.0 - lr * weight_decay) : T(1);
    const T prox = no_prox ? T(1) : T(1.0 + lr * weight_decay);
    const bool first = s.first;
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i) {
      const T g = sign * load(grad[i]);
      const T diff = (first ? -g : load(neg_pre_grad[i])) + g;
      const T m_old = load(m[i]);
      const T toward = g - m_old;
      const T m_new = small_weight1 ? std::fma(weight1, toward, m_old)
                                    : std::fma(-toward, one_minus_weight1, g);
      const T v_new = std::fma(diff, weight2, load(v[i]) * b2);
      const T q = diff * b2 + g;
      const T sq_new = std::fma(weight3 * q, q, load(sq[i]) * b3);
      store(m[i], m_new);
      store(v[i], v_new);
      store(sq[i], sq_new);
      store(neg_pre_grad[i], T(0) - g);
      const T denom = std::sqrt(sq_new) / s.bias_correction3_sqrt + epsilon;
      T param = load(p[i]) * shrink;
      param = param + s.neg_step_size * m_new / denom;
      param = param + s.neg_step_size_diff * v_new / denom;
      store(p[i], param / prox);
    }
  }
};

}  // namespace numoptim
