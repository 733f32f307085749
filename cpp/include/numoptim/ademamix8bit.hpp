// AdEMAMix with block-wise 8-bit state, as bitsandbytes' AdEMAMix8bit: AdEMAMix's rule
// and schedules (ademamix.hpp) on m1 and m2 kept with the signed dynamic map and nu with
// the unsigned one, one byte per element each (blockwise8bit.hpp). bitsandbytes stacks m1
// and m2 in one state1 of shape (2, *shape) with an absmax1 of shape (2, blocks): here
// they are two streams, state1[0] and state1[1].
//
// bitsandbytes 0.50's 8-bit and 32-bit CPU kernels compute AdEMAMix in the same order,
// the one of ademamix.hpp, so tensors below min_8bit_size step exactly as AdEMAMix does.
#pragma once

#include <cstddef>

#include "numoptim/ademamix.hpp"
#include "numoptim/blockwise8bit.hpp"
#include "numoptim/storage.hpp"

namespace numoptim {

template <class S>
struct AdEMAMix8bit : AdEMAMixHyperparameters {
  using T = float;  // bitsandbytes computes in float32 for every parameter dtype
  // Buffers: param, grad. The state of each tensor comes with its Scalars.
  static constexpr std::size_t num_buffers = 2;
  static constexpr std::size_t num_scalar_state = 0;
  static constexpr std::size_t num_states = 3;  // m1, m2 (signed map), nu (unsigned map)

  StateMaps<num_states> maps;

  struct Scalars {
    AdEMAMixRule<float> ademamix;
    BlockwiseState<S, num_states> state;
  };

  // The constants of a tensor's step `step` (already advanced).
  Scalars scalars(double step) const { return {at<float>(step), {}}; }

  void rule(const Scalars& s, S* __restrict p, const S* __restrict g, float* const* state,
            std::size_t n, bool /*quantized*/) const {
    float* __restrict m1 = state[0];
    float* __restrict m2 = state[1];
    float* __restrict nu = state[2];
    const AdEMAMixRule<float> ademamix = s.ademamix;
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i) {
      float fast = m1[i], slow = m2[i], sq = nu[i];
      store(p[i], ademamix.step(load(p[i]), load(g[i]), fast, slow, sq));
      m1[i] = fast;
      m2[i] = slow;
      nu[i] = sq;
    }
  }

  void update(const Scalars& s, S* const* buffers, std::size_t n) const {
    update_blockwise(*this, s, buffers, n);
  }
};

}  // namespace numoptim
