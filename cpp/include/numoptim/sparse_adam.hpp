// SparseAdam: Adam restricted to the rows a sparse gradient touches (torch.optim.SparseAdam).
//
// With g the coalesced gradient row (negated when maximize) and t the step count, on
// every touched row, and nowhere else:
//
//   m <- m + (1 - beta1) * (g - m)
//   v <- v + (1 - beta2) * (g * g - v)
//   p <- p - (lr * sqrt(1 - beta2^t) / (1 - beta1^t)) * m / (sqrt(v) + eps)
//
// Unlike Adam, eps is added to sqrt(v) without bias correction. The operation order is
// torch's _functional.sparse_adam, which forms the updates (g - m) * (1 - beta1) and
// (g^2 - v) * (1 - beta2) and adds them to the old values, so float64 agrees to rounding.
// The rule is a row rule for run_row_sparse (row_sparse.hpp).
#pragma once

#include <cmath>
#include <cstddef>

#include "numoptim/storage.hpp"

namespace numoptim {

template <class S>
struct SparseAdam {
  using T = compute_t<S>;  // S is the storage type, T the arithmetic one
  // Buffers: param row, gradient row, exp_avg row, exp_avg_sq row.
  static constexpr std::size_t num_buffers = 4;

  double lr, beta1, beta2, eps;
  bool maximize;

  struct Scalars {
    T neg_step_size;
  };
  // `step` is the tensor's step count after this step's increment (a Python int in torch).
  Scalars prepare(double step) const {
    const double t = step;
    const double bias_correction1 = 1.0 - std::pow(beta1, t);
    const double bias_correction2 = 1.0 - std::pow(beta2, t);
    const double step_size = lr * std::sqrt(bias_correction2) / bias_correction1;
    return {T(-step_size)};
  }

  void update(const Scalars& s, S* const* buffers, std::size_t n) const {
    S* __restrict p = buffers[0];
    const S* __restrict grad = buffers[1];
    S* __restrict m = buffers[2];
    S* __restrict v = buffers[3];
    const T weight1 = T(1.0 - beta1), weight2 = T(1.0 - beta2), epsilon = T(eps);
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i) {
      const T g = maximize ? -load(grad[i]) : load(grad[i]);
      const T m_old = load(m[i]), v_old = load(v[i]);
      const T m_new = m_old + (g - m_old) * weight1;
      const T v_new = v_old + (g * g - v_old) * weight2;
      store(m[i], m_new);
      store(v[i], v_new);
      store(p[i], load(p[i]) + s.neg_step_size * (m_new / (std::sqrt(v_new) + epsilon)));
    }
  }
};

}  // namespace numoptim
