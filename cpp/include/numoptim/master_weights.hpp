// fp32 master weights for a float16 or bfloat16 parameter (beyond torch.optim).
//
// The rule runs, unchanged, in float32 on a float32 copy of the parameter (the master)
// and float32 state; the 16-bit gradient is read into float32 a block at a time, and
// after each block the parameter receives its master rounded once. A 16-bit run with
// master weights therefore keeps exactly the weights of a float32 run fed the same
// (upcast) gradients, and moves bf16 g and p, fp32 master, m and v: 28 B per element
// for Adam.
//
// Buffers: master, 16-bit grad, the rule's state buffers, then the 16-bit parameter.
// The driver's lists hold one pointer type, so the two 16-bit arrays travel as float*
// and are only ever accessed as S.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>

#include "numoptim/storage.hpp"

namespace numoptim {

template <class Rule, class S>
struct MasterWeights {
  static constexpr std::size_t num_buffers = Rule::num_buffers + 1;
  static constexpr std::size_t num_scalar_state = Rule::num_scalar_state;
  using Scalars = typename Rule::Scalars;

  Rule rule;  // the float32 rule

  Scalars prepare(float* const* scalar_state, bool fresh) const {
    return rule.prepare(scalar_state, fresh);
  }

  void update(const Scalars& s, float* const* buffers, std::size_t n) const {
    // Blocks small enough that the converted gradient stays in L1 for the rule's loop.
    constexpr std::size_t kBlock = 2048;
    float grad[kBlock];
    const S* grad16 = reinterpret_cast<const S*>(buffers[1]);
    S* param16 = reinterpret_cast<S*>(buffers[Rule::num_buffers]);
    for (std::size_t begin = 0; begin < n; begin += kBlock) {
      const std::size_t count = std::min(kBlock, n - begin);
#pragma omp simd
      for (std::size_t i = 0; i < count; ++i) grad[i] = load(grad16[begin + i]);
      std::array<float*, Rule::num_buffers> at{};
      for (std::size_t b = 0; b < Rule::num_buffers; ++b)
        at[b] = b == 1 ? grad : buffers[b] == nullptr ? nullptr : buffers[b] + begin;
      rule.update(s, at.data(), count);
      const float* master = buffers[0] + begin;
#pragma omp simd
      for (std::size_t i = 0; i < count; ++i) store(param16[begin + i], master[i]);
    }
  }
};

}  // namespace numoptim
