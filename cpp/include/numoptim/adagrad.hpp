// Adagrad (Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning
// and Stochastic Optimization", JMLR 2011), with lr decay and L2 weight decay.
//
//   g <- -g if maximize;   g <- g + weight_decay * p
//   clr <- lr / (1 + (t - 1) * lr_decay)
//   s <- s + g * g
//   p <- p - clr * g / (sqrt(s) + eps)
//
// The operation order is torch.optim.Adagrad's single-tensor path (addcmul_, then
// sqrt().add_(eps), then addcdiv_ with value -clr). Row-sparse gradients take a
// separate path in Python (python/numoptim/adagrad.py) that touches only their rows.
#pragma once

#include <cmath>
#include <cstddef>

#include "numoptim/storage.hpp"

namespace numoptim {

template <class S>
struct Adagrad {
  using T = compute_t<S>;  // S is the storage type, T the arithmetic one
  // Buffers: param, grad, sum.
  static constexpr std::size_t num_buffers = 3;
  // Scalar state: step.
  static constexpr std::size_t num_scalar_state = 1;

  double lr, lr_decay, weight_decay, eps;
  bool maximize;

  struct Scalars {
    T neg_clr;
  };
  // Advances `step` (float32, as torch) and decays the lr in double from it.
  Scalars prepare(float* const* scalar_state, bool /*fresh*/) const {
    const double step = (*scalar_state[0] += 1.0f);
    const double clr = lr / (1.0 + (step - 1.0) * lr_decay);
    return {T(-clr)};
  }

  void update(const Scalars& s, S* const* buffers, std::size_t n) const {
    S* __restrict p = buffers[0];
    const S* __restrict grad = buffers[1];
    S* __restrict sum = buffers[2];
    const T wd = T(weight_decay), epsilon = T(eps);
    const bool decay = weight_decay != 0;
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i) {
      T g = maximize ? -load(grad[i]) : load(grad[i]);
      if (decay) g = g + wd * load(p[i]);
      const T sum_new = load(sum[i]) + g * g;
      store(sum[i], sum_new);
      const T std_dev = std::sqrt(sum_new) + epsilon;
      store(p[i], load(p[i]) + s.neg_clr * g / std_dev);
    }
  }
};

}  // namespace numoptim
