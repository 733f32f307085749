// LaProp, momentum over the normalized gradient (Ziyin, Wang & Ueda, "LaProp: Separating
// Momentum and Adaptivity in Adam", 2020), as timm's LaProp.
//
//   g <- -g if maximize                        (numoptim's option; timm has none)
//   c2 <- beta2 * c2 + (1 - beta2)             (exp_avg_lr_2, a 0-d float32: 1 - beta2^t)
//   v <- beta2 * v + (1 - beta2) * g * g
//   m <- beta1 * m + lr * (1 - beta1) * g / (sqrt(v / c2) + eps)
//   p <- p - step_size * m                      step_size = lr / c1
//   p <- p - wd_scale * weight_decay * p        (when weight_decay != 0)
//
// c1 (exp_avg_lr_1 = beta1 * c1 + (1 - beta1) * lr, a Python float: the lr-weighted bias
// correction of m) is kept by the Python class, which gives the step its step_size; the
// parameters of one call share it. The operation order is timm's single-tensor path
// (foreach=False), with torch's CPU fusions as in adan.hpp: `mul_(b).addcmul_(g, g,
// value=c)` is fma(c * g, g, v * b) and `add_(x, alpha=a)` is fma(x, a, y). With an
// array lr, timm's scales are tensors and it multiplies and adds apart (`tensor_scales`).
#pragma once

#include <cmath>
#include <cstddef>

#include "numoptim/storage.hpp"

namespace numoptim {

template <class S>
struct LaProp {
  using T = compute_t<S>;  // S is the storage type, T the arithmetic one
  // Buffers: param, grad, exp_avg, exp_avg_sq: timm's order of creation.
  static constexpr std::size_t num_buffers = 4;
  // Scalar state: step, exp_avg_lr_2.
  static constexpr std::size_t num_scalar_state = 2;

  double beta1, beta2, eps;
  double momentum_scale;  // lr * (1 - beta1)
  double neg_step_size;   // -lr / exp_avg_lr_1 (0 where exp_avg_lr_1 is 0)
  double decay_scale;     // -wd_scale * weight_decay
  bool decay;             // weight_decay != 0
  bool tensor_scales;     // an array lr: unfused multiply, then add
  bool maximize;

  struct Scalars {
    T bias_correction2;
  };

  // Advances `step` and exp_avg_lr_2 in float32, as timm's 0-d float32 tensors:
  // `c2 * beta2 + (1 - beta2)` rounds the product, then the sum.
  Scalars prepare(float* const* scalar_state, bool /*fresh*/) const {
    *scalar_state[0] += 1.0f;
    const float scaled = *scalar_state[1] * static_cast<float>(beta2);
    const float c2 = scaled + static_cast<float>(1.0 - beta2);
    *scalar_state[1] = c2;
    return {T(c2)};
  }

  void update(const Scalars& s, S* const* buffers, std::size_t n) const {
    S* __restrict p = buffers[0];
    const S* __restrict grad = buffers[1];
    S* __restrict m = buffers[2];
    S* __restrict v = buffers[3];
    const T sign = maximize ? T(-1) : T(1);
    const T b1 = T(beta1), b2 = T(beta2), weight2 = T(1.0 - beta2);
    const T epsilon = T(eps), scale = T(momentum_scale), step = T(neg_step_size);
    // A decay of 0 adds p * 0 = 0 (or -0), which leaves p as it is, bit for bit, but
    // would turn an infinite p into NaN, where timm skips the decay.
    const T shrink = T(decay_scale);
    const bool fused = !tensor_scales, decayed = decay;
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i) {
      const T g = sign * load(grad[i]);
      const T v_new = std::fma(weight2 * g, g, load(v[i]) * b2);
      const T denom = std::sqrt(v_new / s.bias_correction2) + epsilon;
      const T normed = g / denom;
      const T m_scaled = load(m[i]) * b1;
      const T m_new = fused ? std::fma(normed, scale, m_scaled) : m_scaled + normed * scale;
      store(v[i], v_new);
      store(m[i], m_new);
      T param = load(p[i]);
      param = fused ? std::fma(m_new, step, param) : param + m_new * step;
      const T decayed_param = fused ? std::fma(param, shrink, param) : param + param * shrink;
      store(p[i], decayed ? decayed_param : param);
    }
  }
};

}  // namespace numoptim
