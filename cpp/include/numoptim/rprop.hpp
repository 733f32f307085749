// Rprop: resilient backpropagation (Riedmiller & Braun, "A Direct Adaptive Method for
// Faster Backpropagation Learning: The RPROP Algorithm", 1993), as torch.optim.Rprop.
//
//   g <- -g if maximize
//   s <- sign(g * prev)
//   step_size <- clamp(step_size * (etaplus if s > 0, etaminus if s < 0, else 1),
//                      step_size_min, step_size_max)
//   g <- 0 where s < 0
//   p <- p - sign(g) * step_size
//   prev <- g
//
// sign is torch's: sign(NaN) = 0, so a NaN product leaves the step size as it is, and a
// NaN gradient moves nothing but is stored in prev. The clamp propagates NaN.
#pragma once

#include <cstddef>

#include "numoptim/storage.hpp"

namespace numoptim {

template <class S>
struct Rprop {
  using T = compute_t<S>;  // S is the storage type, T the arithmetic one
  // Buffers: param, grad, prev, step_size.
  static constexpr std::size_t num_buffers = 4;
  // Scalar state: step (counted, not used).
  static constexpr std::size_t num_scalar_state = 1;

  double etaminus, etaplus, step_size_min, step_size_max;
  bool maximize;

  struct Scalars {};
  Scalars prepare(float* const* scalar_state, bool /*fresh*/) const {
    *scalar_state[0] += 1.0f;
    return {};
  }

  // torch.sign: 0 for zeros and NaN.
  static T sign(T x) { return T(T(0) < x) - T(x < T(0)); }

  void update(const Scalars& /*s*/, S* const* buffers, std::size_t n) const {
    S* __restrict p = buffers[0];
    const S* __restrict grad = buffers[1];
    S* __restrict prev = buffers[2];
    S* __restrict step_size = buffers[3];
    const T plus = T(etaplus), minus = T(etaminus), lo = T(step_size_min),
            hi = T(step_size_max);
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i) {
      T g = maximize ? -load(grad[i]) : load(grad[i]);
      const T direction = sign(g * load(prev[i]));
      const T factor = direction > T(0) ? plus : direction < T(0) ? minus : T(1);
      T size = load(step_size[i]) * factor;
      // torch.clamp: NaN stays NaN (a comparison with NaN is false, so it passes through).
      size = size < lo ? lo : size;
      size = size > hi ? hi : size;
      store(step_size[i], size);
      if (direction < T(0)) g = T(0);
      store(p[i], load(p[i]) + -sign(g) * size);
      store(prev[i], g);
    }
  }
};

}  // namespace numoptim
