// RAdam: Adam with the variance of the adaptive learning rate rectified (Liu et al.,
// "On the Variance of the Adaptive Learning Rate and Beyond", ICLR 2020), with
// optional decoupled weight decay (Loshchilov & Hutter, 2019).
//
//   g <- -g if maximize
//   p <- p * (1 - lr * weight_decay)      if decoupled, else g <- g + weight_decay * p
//   m <- lerp(m, g, 1 - beta1);   v <- beta2 * v + (1 - beta2) * g * g
//   m_hat <- m / (1 - beta1^t)
//   rho_inf <- 2 / (1 - beta2) - 1;   rho_t <- rho_inf - 2 t beta2^t / (1 - beta2^t)
//   if rho_t > 5:
//     r <- sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
//     p <- p - m_hat * lr * (1 / (sqrt(v) + eps)) * sqrt(1 - beta2^t) * r
//   else:
//     p <- p - m_hat * lr
//
// rho_t, and so the branch, depends only on the tensor's step, so it is decided per
// tensor in prepare(). The operation order is torch's single-tensor path, including its
// `scalar / tensor`, which torch evaluates as `tensor.reciprocal() * scalar`.
#pragma once

#include <cmath>
#include <cstddef>

#include "numoptim/multi_tensor.hpp"
#include "numoptim/storage.hpp"

namespace numoptim {

template <class S>
struct RAdam {
  using T = compute_t<S>;  // S is the storage type, T the arithmetic one
  // Buffers: param, grad, exp_avg, exp_avg_sq.
  static constexpr std::size_t num_buffers = 4;
  // Scalar state: step.
  static constexpr std::size_t num_scalar_state = 1;

  double lr, beta1, beta2, eps, weight_decay;
  bool maximize, decoupled;

  struct Scalars {
    T bias_correction1, bias_correction2_sqrt, rectification;
    bool rectify;
  };
  // Advances `step` and computes the bias corrections and the rectification in double,
  // as torch does with Python floats (x ** 0.5 is pow, not sqrt).
  Scalars prepare(float* const* scalar_state, bool /*fresh*/) const {
    const double step = (*scalar_state[0] += 1.0f);
    const double bias_correction1 = 1.0 - std::pow(beta1, step);
    const double bias_correction2 = 1.0 - std::pow(beta2, step);
    const double rho_inf = 2.0 / (1.0 - beta2) - 1.0;
    const double rho_t = rho_inf - 2.0 * step * std::pow(beta2, step) / bias_correction2;
    const bool rectify = rho_t > 5.0;
    double rectification = 0.0;
    if (rectify)
      rectification = std::pow((rho_t - 4.0) * (rho_t - 2.0) * rho_inf /
                                   ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t),
                               0.5);
    return {T(bias_correction1), T(std::pow(bias_correction2, 0.5)), T(rectification), rectify};
  }

  // The weight decay mode is a template argument so that the loop has no condition
  // around a floating-point operation: GCC will not if-convert one (it might trap) and
  // then leaves the whole loop scalar.
  void update(const Scalars& s, S* const* buffers, std::size_t n) const {
    if (weight_decay == 0) return loop<false, false>(s, buffers, n);
    if (decoupled) return loop<false, true>(s, buffers, n);
    loop<true, false>(s, buffers, n);
  }

  template <bool L2, bool Shrink>
  void loop(const Scalars& s, S* const* buffers, std::size_t n) const {
    S* __restrict p = buffers[0];
    const S* __restrict grad = buffers[1];
    S* __restrict m = buffers[2];
    S* __restrict v = buffers[3];
    const T wd = T(weight_decay), decay_factor = T(1.0 - lr * weight_decay);
    const T weight1 = T(1.0 - beta1), b2 = T(beta2), one_minus_b2 = T(1.0 - beta2);
    const T epsilon = T(eps), learning_rate = T(lr);
    const bool small_weight1 = std::abs(1.0 - beta1) < 0.5;
    // Everything the loop reads is a local: GCC does not trust that stores through the
    // buffers leave *this and `s` alone, and a member read in the loop stops if-conversion.
    const bool negate = maximize, rectify = s.rectify;
    const T bias_correction1 = s.bias_correction1,
            bias_correction2_sqrt = s.bias_correction2_sqrt, rectification = s.rectification;
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i) {
      T g = negate ? -load(grad[i]) : load(grad[i]);
      T param = load(p[i]);
      if (Shrink) param = param * decay_factor;
      if (L2) g = g + wd * param;
      const T m_new = lerp(load(m[i]), g, weight1, small_weight1);
      const T v_new = load(v[i]) * b2 + one_minus_b2 * g * g;
      store(m[i], m_new);
      store(v[i], v_new);
      const T m_hat_lr = m_new / bias_correction1 * learning_rate;
      if (rectify) {
        const T adaptive_lr = T(1) / (std::sqrt(v_new) + epsilon) * bias_correction2_sqrt;
        store(p[i], param - m_hat_lr * adaptive_lr * rectification);
      } else {
        store(p[i], param - m_hat_lr);
      }
    }
  }
};

}  // namespace numoptim
