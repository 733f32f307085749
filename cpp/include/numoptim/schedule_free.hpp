// Schedule-Free SGD, AdamW and RAdam (Defazio et al., "The Road Less Scheduled", 2024),
// as schedulefree 1.4.1's SGDScheduleFree, AdamWScheduleFree and RAdamScheduleFree.
//
// The parameter is y, the point where gradients are taken; the state keeps z (the SGD
// iterate, a copy of the parameter at its first step) and, for the adaptive ones, v.
// Per element, with the group's scalars from the Python layer (the warmup or the
// rectification, the averaging weight c = ckp1, and y_lr = lr * (beta1 * (1 - c) - 1)):
//
//   v <- beta2 * v + (1 - beta2) * g * g                      adaptive
//   g <- g / (sqrt(v / bias_correction2) + eps)               adaptive and normalizing
//   g <- g + weight_decay * y                                 (decay at y)
//   y <- lerp(y, z, c);  y <- y + y_lr * g;  z <- z - lr * g
//
// SGD is neither adaptive nor normalizing; RAdam is adaptive and normalizes only once
// its rectification term is defined (before, it steps as SGD: silent_sgd_phase=False).
// The operation order is schedulefree's: where its torch ops fuse a multiply-add in
// torch's CPU kernels (addcmul, add with alpha), this loop calls std::fma; lerp is the
// library's (torch's two formulas). fma is correctly rounded on every target, so
// results stay identical across SIMD levels.
#pragma once

#include <cmath>
#include <cstddef>

#include "numoptim/multi_tensor.hpp"
#include "numoptim/storage.hpp"

namespace numoptim {

template <class S>
struct ScheduleFree {
  using T = compute_t<S>;  // S is the storage type, T the arithmetic one
  // Buffers: param (y), grad, z, exp_avg_sq (only when adaptive).
  static constexpr std::size_t num_buffers = 4;
  // No scalar state: the step count lives in the group.
  static constexpr std::size_t num_scalar_state = 0;

  double lr, y_lr, ckp1, beta2, bias_correction2, eps, weight_decay;
  bool adaptive, normalize;

  struct Scalars {};
  Scalars prepare(float* const* /*scalar_state*/, bool /*fresh*/) const { return {}; }

  // One loop per (adaptive, normalize) setting: GCC 12 vectorizes no loop that
  // branches on them inside.
  void update(const Scalars& /*s*/, S* const* buffers, std::size_t n) const {
    if (!adaptive) return loop<false, false>(buffers, n);
    normalize ? loop<true, true>(buffers, n) : loop<true, false>(buffers, n);
  }

  template <bool Adaptive, bool Normalize>
  void loop(S* const* buffers, std::size_t n) const {
    S* __restrict y = buffers[0];
    const S* __restrict grad = buffers[1];
    S* __restrict z = buffers[2];
    S* __restrict v = buffers[3];
    const T b2 = T(beta2), weight2 = T(1.0 - beta2), bc2 = T(bias_correction2);
    const T epsilon = T(eps), wd = T(weight_decay);
    const T c = T(ckp1), y_step = T(y_lr), neg_lr = T(-lr);
    const bool decay = weight_decay != 0, small_c = std::abs(ckp1) < 0.5;
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i) {
      T g = load(grad[i]);
      if constexpr (Adaptive) {
        const T v_new = std::fma(weight2 * g, g, load(v[i]) * b2);
        store(v[i], v_new);
        if constexpr (Normalize) g = g / (std::sqrt(v_new / bc2) + epsilon);
      }
      const T y_old = load(y[i]), z_old = load(z[i]);
      if (decay) g = std::fma(wd, y_old, g);
      store(y[i], std::fma(y_step, g, lerp(y_old, z_old, c, small_c)));
      store(z[i], std::fma(neg_lr, g, z_old));
    }
  }
};

}  // namespace numoptim
