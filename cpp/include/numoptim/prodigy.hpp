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
//   sum |s|                                       (of s as stored)
// m, v and s are stored in the state's dtype (the parameter's, as prodigyopt's, or
// float32 master state), and pass 2 reads them back as stored. Between them (Python, python/numoptim/prodigy.py): d from the sums of every tensor of
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
  static constexpr std::size_t num_scalar_state = 0;  // step: a Python int, as prodigyopt's
  static constexpr std::size_t num_sums = 2;          // the dot product, sum of |s|

  double beta1, beta2, beta3;
  double weight_m, weight_v, weight_s;  // d * (1 - beta1), d^2 * (1 - beta2), s's
  double weight_decay;
  bool l2, active, maximize;  // l2: wd added to g; active: the group's lr > 0

  struct Scalars {};
  Scalars prepare(float* const* /*scalar_state*/, bool /*fresh*/) const { return {}; }
  bool reduces() const { return active; }

  // One loop per momentum setting, as ProdigyStep's.
  template <std::size_t Piece>
  void reduce(const Scalars&, S* const* buffers, std::size_t n, double (*terms)[Piece]) const {
    beta1 > 0 ? moments<true>(buffers, n, terms) : moments<false>(buffers, n, terms);
  }

  template <bool Momentum, std::size_t Piece>
  void moments(S* const* buffers, std::size_t n, double (*terms)[Piece]) const {
    const S* __restrict p = buffers[0];
    const S* __restrict grad = buffers[1];
    S* __restrict s = buffers[2];
    const S* __restrict p0 = buffers[3];
    S* __restrict v = buffers[4];
    S* __restrict m = buffers[5];
    const T b1 = T(beta1), b2 = T(beta2), b3 = T(beta3), wd = T(weight_decay);
    const T wm = T(weight_m), wv = T(weight_v), ws = T(weight_s);
    const T sign = maximize ? T(-1) : T(1);
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i) {
      const T param = load(p[i]);
      T g = sign * load(grad[i]);
      if (l2) g = std::fma(param, wd, g);
      terms[0][i] = double(g) * double(load(p0[i]) - param);
      if constexpr (Momentum) store(m[i], std::fma(g, wm, load(m[i]) * b1));
      store(v[i], std::fma(wv * g, g, load(v[i]) * b2));
      const T s_new = std::fma(g, ws, load(s[i]) * b3);
      store(s[i], s_new);
      S stored;  // s as stored (rounded for 16-bit s), which prodigyopt sums
      store(stored, s_new);
      terms[1][i] = std::fabs(double(load(stored)));
    }
  }
};

template <class S>
struct ProdigyStep {
  using T = compute_t<S>;  // S is the storage type, T the arithmetic one
  // Buffers: ProdigyMoments' (s and p0 unused).
  static constexpr std::size_t num_buffers = 6;
  static constexpr std::size_t num_scalar_state = 0;

  double dlr, d, eps, weight_decay;
  bool l2, decoupled, momentum, maximize;  // momentum: beta1 > 0

  struct Scalars {};
  Scalars prepare(float* const* /*scalar_state*/, bool /*fresh*/) const { return {}; }

  // One loop per momentum setting: GCC 12 vectorizes the loops it unswitches on the
  // other flags, not this one. maximize needs no branch: a sign of -1 is exact.
  void update(const Scalars&, S* const* buffers, std::size_t n) const {
    momentum ? loop<true>(buffers, n) : loop<false>(buffers, n);
  }

  template <bool Momentum>
  void loop(S* const* buffers, std::size_t n) const {
    S* __restrict p = buffers[0];
    const S* __restrict grad = buffers[1];
    const S* __restrict v = buffers[4];
    const S* __restrict m = buffers[5];
    const T d_eps = T(d * eps), decay = T(-weight_decay * dlr), wd = T(weight_decay);
    const T neg_dlr = T(-dlr), neg_dlr_d = T(-dlr * d), sign = maximize ? T(-1) : T(1);
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i) {
      const T denom = std::sqrt(load(v[i])) + d_eps;
      T param = load(p[i]);
      T numerator;
      if constexpr (Momentum) {
        numerator = neg_dlr * load(m[i]);
      } else {
        T g = sign * load(grad[i]);
        if (l2) g = std::fma(param, wd, g);
        numerator = neg_dlr_d * g;
      }
      if (decoupled) param = std::fma(param, decay, param);
      store(p[i], param + numerator / denom);
    }
  }
};

}  // namespace numoptim
