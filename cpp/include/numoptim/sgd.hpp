// SGD with momentum, dampening, Nesterov momentum and L2 weight decay.
//
//   g <- -g if maximize;   g <- g + weight_decay * p
//   b <- g on the first step, else momentum * b + (1 - dampening) * g
//   g <- g + momentum * b if nesterov, else b          (when momentum != 0)
//   p <- p - lr * g
//
// Sutskever et al., "On the importance of initialization and momentum in deep
// learning" (2013); the momentum form is torch.optim.SGD's.
//
// SGDRows is plain SGD (no momentum, no weight decay) on the rows of a row-sparse
// gradient, for run_row_sparse (row_sparse.hpp): torch adds an uncoalesced sparse
// gradient to the parameter entry by entry, p <- p + (-lr) * g, in the entries' order.
#pragma once

#include <cstddef>

#include "numoptim/storage.hpp"

namespace numoptim {

template <class S>
struct SGD {
  using T = compute_t<S>;  // S is the storage type, T the arithmetic one
  // Buffers: param, grad, momentum_buffer (absent when momentum == 0).
  static constexpr std::size_t num_buffers = 3;
  static constexpr std::size_t num_scalar_state = 0;

  double lr, momentum, dampening, weight_decay;
  bool nesterov, maximize;

  // A fresh momentum buffer takes the gradient as it is (no dampening), which the
  // loop gets from momentum 0 and dampening 0 over a zero-filled buffer.
  struct Scalars {
    T momentum, one_minus_dampening;
  };
  Scalars prepare(float* const* /*scalar_state*/, bool fresh) const {
    if (fresh) return {T(0), T(1)};
    return {T(momentum), T(1.0 - dampening)};
  }

  void update(const Scalars& s, S* const* buffers, std::size_t n) const {
    S* __restrict p = buffers[0];
    const S* __restrict grad = buffers[1];
    S* __restrict buf = buffers[2];
    const T wd = T(weight_decay), neg_lr = T(-lr), mom = T(momentum);
    const bool use_momentum = momentum != 0, decay = weight_decay != 0;
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i) {
      T g = maximize ? -load(grad[i]) : load(grad[i]);
      if (decay) g = g + wd * load(p[i]);
      if (use_momentum) {
        const T b = load(buf[i]) * s.momentum + s.one_minus_dampening * g;
        store(buf[i], b);
        g = nesterov ? g + mom * b : b;
      }
      store(p[i], load(p[i]) + neg_lr * g);
    }
  }
};

template <class S>
struct SGDRows {
  using T = compute_t<S>;  // S is the storage type, T the arithmetic one
  // Buffers: param row, gradient row.
  static constexpr std::size_t num_buffers = 2;

  double lr;
  bool maximize;

  struct Scalars {};

  void update(const Scalars& /*s*/, S* const* buffers, std::size_t n) const {
    S* __restrict p = buffers[0];
    const S* __restrict grad = buffers[1];
    const T neg_lr = T(-lr);
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i) {
      const T g = maximize ? -load(grad[i]) : load(grad[i]);
      store(p[i], load(p[i]) + neg_lr * g);
    }
  }
};

}  // namespace numoptim
