// fp32 master weights for a float16 or bfloat16 parameter (beyond torch.optim).
//
// The rule runs, unchanged, in float32 on a float32 copy of the parameter (the master)
// and float32 state; the 16-bit gradient is read into float32 a block at a time, and
// after each block the parameter receives its master rounded once. A 16-bit run with
// master weights therefore keeps exactly the weights of a float32 run fed the same
// (upcast) gradients, and moves bf16 g and p, fp32 master, m and v: 28 B per element
// for Adam.
//
// Buffers: the rule's, with the master in the parameter's place and no gradient (the
// driver's lists hold float pointers only). The 16-bit gradient and parameter of a
// tensor come with its Scalars, with the start of its master: a chunk's offset in the
// tensor is where its master starts.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <type_traits>

#include "numoptim/storage.hpp"

namespace numoptim {

// Whether a rule writes the parameter (buffer 0): all do but a pass that only reads it
// (two_pass.hpp's ReducePass, which says so with `writes_param = false`).
template <class Rule, class = void>
struct WritesParam : std::true_type {};
template <class Rule>
struct WritesParam<Rule, std::void_t<decltype(Rule::writes_param)>>
    : std::bool_constant<Rule::writes_param> {};

template <class Rule, class S>
struct MasterWeights {
  static constexpr std::size_t num_buffers = Rule::num_buffers;
  static constexpr std::size_t num_scalar_state = Rule::num_scalar_state;

  struct Scalars {
    typename Rule::Scalars rule;
    const float* master;  // the tensor's first element
    const S* grad;
    S* param;
  };

  Rule rule;  // the float32 rule

  void update(const Scalars& s, float* const* buffers, std::size_t n) const {
    const std::size_t offset = static_cast<std::size_t>(buffers[0] - s.master);
    const S* grad16 = s.grad + offset;
    S* param16 = s.param + offset;
    // Blocks small enough that the converted gradient stays in L1 for the rule's loop.
    constexpr std::size_t kBlock = 2048;
    float grad[kBlock];
    for (std::size_t begin = 0; begin < n; begin += kBlock) {
      const std::size_t count = std::min(kBlock, n - begin);
#pragma omp simd
      for (std::size_t i = 0; i < count; ++i) grad[i] = load(grad16[begin + i]);
      std::array<float*, num_buffers> at{};
      for (std::size_t b = 0; b < num_buffers; ++b)
        at[b] = b == 1 ? grad : buffers[b] == nullptr ? nullptr : buffers[b] + begin;
      rule.update(s.rule, at.data(), count);
      if constexpr (WritesParam<Rule>::value) {
        const float* master = buffers[0] + begin;
#pragma omp simd
        for (std::size_t i = 0; i < count; ++i) store(param16[begin + i], master[i]);
      }
    }
  }
};

}  // namespace numoptim
