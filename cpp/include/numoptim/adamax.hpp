// Adamax, the infinity-norm variant of Adam (Kingma & Ba, "Adam: A Method for
// Stochastic Optimization", 2015, section 7.1), with L2 weight decay.
//
//   g <- -g if maximize;   g <- g + weight_decay * p
//   m <- lerp(m, g, 1 - beta1)
//   u <- max(beta2 * u, |g| + eps)           (eps inside the max, as torch)
//   p <- p - (lr / (1 - beta1^t)) * m / u
//
// The operation order is torch.optim.Adamax's single-tensor path. The max propagates
// NaN from either side, as torch.maximum does.
#pragma once

#include <cmath>
#include <cstddef>

#include "numoptim/multi_tensor.hpp"
#include "numoptim/storage.hpp"

namespace numoptim {

template <class S>
struct Adamax {
  using T = compute_t<S>;  // S is the storage type, T the arithmetic one
  // Buffers: param, grad, exp_avg (m), exp_inf (u).
  static constexpr std::size_t num_buffers = 4;
  // Scalar state: step.
  static constexpr std::size_t num_scalar_state = 1;

  double lr, beta1, beta2, eps, weight_decay;
  bool maximize;

  struct Scalars {
    T neg_clr;
  };
  // Advances `step` (float32, as torch) and computes the bias correction in double.
  Scalars prepare(float* const* scalar_state, bool /*fresh*/) const {
    const double step = (*scalar_state[0] += 1.0f);
    const double bias_correction = 1.0 - std::pow(beta1, step);
    return {T(-(lr / bias_correction))};
  }

  void update(const Scalars& s, S* const* buffers, std::size_t n) const {
    S* __restrict p = buffers[0];
    const S* __restrict grad = buffers[1];
    S* __restrict m = buffers[2];
    S* __restrict u = buffers[3];
    const T wd = T(weight_decay), weight1 = T(1.0 - beta1), b2 = T(beta2);
    const T epsilon = T(eps);
    const bool small_weight1 = std::abs(1.0 - beta1) < 0.5;
    const bool decay = weight_decay != 0;
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i) {
      T g = maximize ? -load(grad[i]) : load(grad[i]);
      if (decay) g = g + wd * load(p[i]);
      const T m_new = lerp(load(m[i]), g, weight1, small_weight1);
      store(m[i], m_new);
      const T u_new = maximum(load(u[i]) * b2, std::abs(g) + epsilon);
      store(u[i], u_new);
      store(p[i], load(p[i]) + s.neg_clr * m_new / u_new);
    }
  }
};

}  // namespace numoptim
