// Adadelta (Zeiler, "ADADELTA: An Adaptive Learning Rate Method", 2012), with an lr
// factor and L2 weight decay.
//
//   g <- -g if maximize;   g <- g + weight_decay * p
//   v <- rho * v + (1 - rho) * g * g
//   delta <- sqrt(u + eps) / sqrt(v + eps) * g
//   u <- rho * u + (1 - rho) * delta * delta
//   p <- p - lr * delta
//
// The operation order is torch.optim.Adadelta's single-tensor path. `step` is
// counted, as torch does, but no update depends on it.
#pragma once

#include <cmath>
#include <cstddef>

#include "numoptim/storage.hpp"

namespace numoptim {

template <class S>
struct Adadelta {
  using T = compute_t<S>;  // S is the storage type, T the arithmetic one
  // Buffers: param, grad, square_avg (v), acc_delta (u).
  static constexpr std::size_t num_buffers = 4;
  // Scalar state: step.
  static constexpr std::size_t num_scalar_state = 1;

  double lr, rho, eps, weight_decay;
  bool maximize;

  struct Scalars {};
  Scalars prepare(float* const* scalar_state, bool /*fresh*/) const {
    *scalar_state[0] += 1.0f;
    return {};
  }

  void update(const Scalars& /*s*/, S* const* buffers, std::size_t n) const {
    S* __restrict p = buffers[0];
    const S* __restrict grad = buffers[1];
    S* __restrict v = buffers[2];
    S* __restrict u = buffers[3];
    const T wd = T(weight_decay), r = T(rho), one_minus_r = T(1.0 - rho);
    const T epsilon = T(eps), neg_lr = T(-lr);
    const bool decay = weight_decay != 0;
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i) {
      T g = maximize ? -load(grad[i]) : load(grad[i]);
      if (decay) g = g + wd * load(p[i]);
      const T v_new = load(v[i]) * r + one_minus_r * g * g;
      store(v[i], v_new);
      const T std_dev = std::sqrt(v_new + epsilon);
      const T delta = std::sqrt(load(u[i]) + epsilon) / std_dev * g;
      store(u[i], load(u[i]) * r + one_minus_r * delta * delta);
      store(p[i], load(p[i]) + neg_lr * delta);
    }
  }
};

}  // namespace numoptim
