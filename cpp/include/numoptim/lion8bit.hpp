// Lion with block-wise 8-bit state, as bitsandbytes' Lion8bit: Lion's rule (lion.hpp) on
// m kept in one byte per element with the signed dynamic map (blockwise8bit.hpp).
//
// Per element, in float32, as bitsandbytes 0.50's CPU kernels compute it:
//   p <- p * (1 - lr * weight_decay)                       if weight_decay > 0
//   c <- beta1 * m + (1 - beta1) * g
//   p <- p - lr * sign(c)
//   m <- fma(g, 1 - beta2, beta2 * m)
// bitsandbytes' 8-bit kernel computes c as two products and a sum (`m.mul(beta1) +
// g.mul(1 - beta1)`); its 32-bit kernel, which steps the tensors below min_8bit_size,
// as a product and a fused multiply-add (lion-pytorch's order). The rule follows each:
// one ulp in c can flip its sign near zero, an lr-sized difference.
#pragma once

#include <cstddef>

#include "numoptim/blockwise8bit.hpp"
#include "numoptim/lion.hpp"
#include "numoptim/storage.hpp"

namespace numoptim {

template <class S>
struct Lion8bit {
  using T = float;  // bitsandbytes computes in float32 for every parameter dtype
  // Buffers: param, grad. The state of each tensor comes with its Scalars.
  static constexpr std::size_t num_buffers = 2;
  static constexpr std::size_t num_scalar_state = 0;
  static constexpr std::size_t num_states = 1;  // m (signed map)

  double lr, beta1, beta2, weight_decay;
  StateMaps<num_states> maps;

  struct Scalars {
    BlockwiseState<S, num_states> state;
  };

  // Lion has no step-dependent constants.
  Scalars scalars(double /*step*/) const { return {}; }

  void rule(const Scalars& /*s*/, S* __restrict p, const S* __restrict g, float* const* state,
            std::size_t n, bool quantized) const {
    float* __restrict m = state[0];
    // bitsandbytes decays only when weight_decay > 0 (a negative one is refused).
    const LionRule<float> lion(lr, beta1, beta2, weight_decay > 0 ? weight_decay : 0.0);
    const bool fused = !quantized;
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i) {
      float average = m[i];
      store(p[i], lion.step(load(p[i]), load(g[i]), average, fused));
      m[i] = average;
    }
  }

  void update(const Scalars& s, S* const* buffers, std::size_t n) const {
    update_blockwise(*this, s, buffers, n);
  }
};

}  // namespace numoptim
