// NAdam: Adam with Nesterov momentum (Dozat, "Incorporating Nesterov Momentum into
// Adam", ICLR workshop 2016), with the momentum schedule of torch.optim.NAdam and
// optional decoupled weight decay (Loshchilov & Hutter, 2019).
//
//   g <- -g if maximize
//   p <- p * (1 - lr * weight_decay)      if decoupled, else g <- g + weight_decay * p
//   mu_t  <- beta1 * (1 - 0.5 * 0.96^(t * momentum_decay))
//   mu_t1 <- beta1 * (1 - 0.5 * 0.96^((t + 1) * momentum_decay))
//   Pi <- Pi * mu_t                       (the 0-d float32 state `mu_product`)
//   m <- lerp(m, g, 1 - beta1)
//   v <- beta2 * v + (1 - beta2) * g * g
//   denom <- sqrt(v / (1 - beta2^t)) + eps
//   p <- p - lr * (1 - mu_t) / (1 - Pi) * g / denom
//   p <- p - lr * mu_t1 / (1 - Pi * mu_t1) * m / denom
//
// The operation order is torch's single-tensor path. `mu_product` is a float32 tensor
// in torch, multiplied in place by mu_t rounded to float32, so it is rounded the same
// way here before the step sizes are computed from it in double.
#pragma once

#include <cmath>
#include <cstddef>

#include "numoptim/multi_tensor.hpp"
#include "numoptim/storage.hpp"

namespace numoptim {

template <class S>
struct NAdam {
  using T = compute_t<S>;  // S is the storage type, T the arithmetic one
  // Buffers: param, grad, exp_avg, exp_avg_sq.
  static constexpr std::size_t num_buffers = 4;
  // Scalar state: step, mu_product.
  static constexpr std::size_t num_scalar_state = 2;

  double lr, beta1, beta2, eps, weight_decay, momentum_decay;
  bool maximize, decoupled;

  struct Scalars {
    T bias_correction2, grad_coefficient, exp_avg_coefficient;
  };
  // Advances `step` and `mu_product` and computes the two step sizes in double.
  Scalars prepare(float* const* scalar_state, bool /*fresh*/) const {
    const double step = (*scalar_state[0] += 1.0f);
    const double bias_correction2 = 1.0 - std::pow(beta2, step);
    const double mu = beta1 * (1.0 - 0.5 * std::pow(0.96, step * momentum_decay));
    const double mu_next = beta1 * (1.0 - 0.5 * std::pow(0.96, (step + 1.0) * momentum_decay));
    float& mu_product_state = *scalar_state[1];
    mu_product_state = mu_product_state * static_cast<float>(mu);
    const double mu_product = mu_product_state;
    const double mu_product_next = mu_product * mu_next;
    return {T(bias_correction2), T(-lr * (1.0 - mu) / (1.0 - mu_product)),
            T((-lr * mu_next) / (1.0 - mu_product_next))};
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
    const T epsilon = T(eps);
    const bool small_weight1 = std::abs(1.0 - beta1) < 0.5;
    // Everything the loop reads is a local: GCC does not trust that stores through the
    // buffers leave *this and `s` alone, and a member read in the loop stops if-conversion.
    const bool negate = maximize;
    const T bias_correction2 = s.bias_correction2, grad_coefficient = s.grad_coefficient,
            exp_avg_coefficient = s.exp_avg_coefficient;
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
      const T denom = std::sqrt(v_new / bias_correction2) + epsilon;
      param = param + grad_coefficient * g / denom;
      store(p[i], param + exp_avg_coefficient * m_new / denom);
    }
  }
};

}  // namespace numoptim
