// Prodigy (Mishchenko and Defazio, "Prodigy: An Expeditiously Adaptive Parameter-Free
// Learner", 2023), as prodigyopt 1.1.2's Prodigy: Adam whose step size d is estimated
// from sums over all parameters, so a step is two passes with a global reduction
// between them.
//
// Pass 1, ProdigyMoments (groups with lr > 0), with the step's d, dlr = d * lr * bc:
//   g <- -g if maximize;  g <- g + wd * p  (unless decouple)
//   dot <- sum of g * (p0 - p)                    (p0: the parameter at its first step)
//   m <- beta1 * m + d * (1 - beta1) * g          (beta1 > 0)
//   v <- beta2 * v + d^2 * (1 - beta2) * g^2
//   s <- beta3 * s + (d / d0) * dlr * g           ((d / d0) * d with safeguard_warmup)
//   sum |s|
// Between them (Python, python/numoptim/prodigy.py): d from the sums of every tensor of
// every group. Pass 2, ProdigyStep, with the new d and the dlr of pass 1:
//   decouple: p <- p - wd * dlr * p
//   p <- p - dlr * m / (sqrt(v) + d * eps)        (beta1 > 0)
//   p <- p - dlr * d * g / (sqrt(v) + d * eps)    (beta1 = 0; g as in pass 1)
//
// The sums are per tensor, in the fixed lanes and blocks of two_pass.hpp (bit-identical
// for every thread count and SIMD level), in double. The operation order is
// prodigyopt's: `mul_(b).add_(x, alpha=a)` is fma(x, a, y * b), `addcmul_(g, g,
// value=c)` is fma(c * g, g, v), `add_(x, alpha=a)` is fma(x, a, y) and `addcdiv_(m,
// denom, value=c)` is p + (c * m) / denom, unfused.
#pragma once

#include <cmath>
#include <cstddef>

#include "numoptim/storage.hpp"

namespace numoptim {

template <class S>
struct ProdigyMoments {
  using T = compute_t<S>;  // S is the storage type, T the arithmetic one
  // Buffers: param, grad, s, p0, exp_avg_sq, exp_avg (absent when beta1 == 0).
  static constexpr std::size_t num_buffers = 6;
  static constexpr std::size_t num_scalar_state = 1;  // step: counted by ProdigyStep
  static constexpr std::size_t num_sums = 2;          // the dot product, sum of |s|

  double beta1, beta2, beta3;
  double weight_m, weight_v, weight_s;  // d * (1 - beta1), d^2 * (1 - beta2), s's
  double weight_decay;
  bool l2, active, maximize;  // l2: wd added to g; active: the group's lr > 0

  struct Scalars {};
  Scalars prepare(float* const* /*scalar_state*/, bool /*fresh*/) const { return {}; }
  bool reduces() const { return active; }

  void reduce(const Scalars&, S* const* buffers, std::size_t i, double* terms) const {
    const T param = load(buffers[0][i]);
    T g = load(buffers[1][i]);
    if (maximize) g = -g;
    if (l2) g = std::fma(param, T(weight_decay), g);
    terms[0] = double(g) * double(load(buffers[3][i]) - param);
    if (beta1 > 0) store(buffers[5][i], std::fma(g, T(weight_m), load(buffers[5][i]) * T(beta1)));
    store(buffers[4][i], std::fma(T(weight_v) * g, g, load(buffers[4][i]) * T(beta2)));
    const T s_new = std::fma(g, T(weight_s), load(buffers[2][i]) * T(beta3));
    store(buffers[2][i], s_new);
    terms[1] = std::fabs(double(s_new));
  }
};

template <class S>
struct ProdigyStep {
  using T = compute_t<S>;  // S is the storage type, T the arithmetic one
  // Buffers: ProdigyMoments' (s and p0 unused).
  static constexpr std::size_t num_buffers = 6;
  static constexpr std::size_t num_scalar_state = 1;  // step

  double dlr, d, eps, weight_decay;
  bool l2, decoupled, momentum, maximize;  // momentum: beta1 > 0

  struct Scalars {};
  Scalars prepare(float* const* scalar_state, bool /*fresh*/) const {
    *scalar_state[0] += 1;
    return {};
  }

  void update(const Scalars&, S* const* buffers, std::size_t n) const {
    S* __restrict p = buffers[0];
    const S* __restrict grad = buffers[1];
    const S* __restrict v = buffers[4];
    const S* __restrict m = buffers[5];
    const T d_eps = T(d * eps), decay = T(-weight_decay * dlr), wd = T(weight_decay);
    const T neg_dlr = T(-dlr), neg_dlr_d = T(-dlr * d);
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i) {
      const T denom = std::sqrt(load(v[i])) + d_eps;
      T param = load(p[i]);
      T numerator;
      if (momentum) {
        numerator = neg_dlr * load(m[i]);
      } else {
        T g = maximize ? -load(grad[i]) : load(grad[i]);
        if (l2) g = std::fma(param, wd, g);
        numerator = neg_dlr_d * g;
      }
      if (decoupled) param = std::fma(param, decay, param);
      store(p[i], param + numerator / denom);
    }
  }
};

}  // namespace numoptim
