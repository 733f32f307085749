// 8-bit Adam and AdamW: block-wise quantized state (Dettmers et al., "8-bit Optimizers
// via Block-wise Quantization", ICLR 2022), as bitsandbytes' Adam8bit and AdamW8bit.
//
// Per element, in float32, in bitsandbytes' operation order (its CPU kernel is a chain
// of torch ops; the fused multiply-adds are where torch's vectorized add and addcmul
// fuse):
//   m <- fma(g, 1 - beta1, beta1 * m)
//   v <- fma((1 - beta2) * g, g, beta2 * v)
//   p <- p * (1 - lr * weight_decay)                        if weight_decay > 0
//   p <- p + (-lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// Both optimizers decay decoupled, as bitsandbytes' do; they differ in the default.
//
// The state, m with the signed map and v with the unsigned one, is block-wise 8-bit
// (blockwise8bit.hpp, which also runs the rule block by block): 16 B per element moved
// for float32 parameters. Tensors smaller than min_8bit_size keep m and v in float32 and
// run the same loop without the quantization.
#pragma once

#include <cmath>
#include <cstddef>

#include "numoptim/blockwise8bit.hpp"
#include "numoptim/storage.hpp"

namespace numoptim {

template <class S>
struct Adam8bit {
  using T = float;  // bitsandbytes computes in float32 for every parameter dtype
  // Buffers: param, grad. The state of each tensor comes with its Scalars.
  static constexpr std::size_t num_buffers = 2;
  static constexpr std::size_t num_scalar_state = 0;
  static constexpr std::size_t num_states = 2;  // m (signed map), v (unsigned map)

  double lr, beta1, beta2, eps, weight_decay;
  StateMaps<num_states> maps;

  struct Scalars {
    float neg_step_size, bias_correction2_sqrt;
    BlockwiseState<S, num_states> state;
  };

  // The constants of a tensor's step `step` (already advanced), in double.
  Scalars scalars(double step) const {
    const double bias_correction1 = 1.0 - std::pow(beta1, step);
    const double bias_correction2 = 1.0 - std::pow(beta2, step);
    return {float(-lr / bias_correction1), float(std::sqrt(bias_correction2)), {}};
  }

  // The rule on n elements with float32 m and v (updated in place).
  void rule(const Scalars& s, S* __restrict p, const S* __restrict g, float* const* state,
            std::size_t n, bool /*quantized*/) const {
    float* __restrict m = state[0];
    float* __restrict v = state[1];
    const float b1 = float(beta1), w1 = float(1.0 - beta1);
    const float b2 = float(beta2), w2 = float(1.0 - beta2);
    const float epsilon = float(eps);
    const float decay = weight_decay > 0 ? float(1.0 - lr * weight_decay) : 1.0f;
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i) {
      const float grad = load(g[i]);
      const float m_new = std::fma(grad, w1, m[i] * b1);
      const float v_new = std::fma(w2 * grad, grad, v[i] * b2);
      m[i] = m_new;
      v[i] = v_new;
      const float denom = std::sqrt(v_new) / s.bias_correction2_sqrt + epsilon;
      store(p[i], load(p[i]) * decay + (s.neg_step_size * m_new) / denom);
    }
  }

  void update(const Scalars& s, S* const* buffers, std::size_t n) const {
    update_blockwise(*this, s, buffers, n);
  }
};

}  // namespace numoptim
