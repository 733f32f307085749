// The driver for rules that reduce over each tensor before they update it: LAMB and LARS
// scale a tensor's update by a ratio of its norms.
//
// Pass 1 runs over each tensor in the fixed blocks of grad_norm.hpp, updating whatever
// state it may and summing terms per element in that header's fixed lanes and order;
// from a tensor's sums, finish() gives the constants of pass 2, an elementwise update run
// by run_multi_tensor. The sums, and so the results, are bit-identical for every thread
// count and SIMD level.
//
// A two-pass rule is a struct with
//   static constexpr std::size_t num_buffers, num_scalar_state, num_sums;
//   Scalars prepare(float* const* scalar_state, bool fresh) const;   // as a one-pass rule
//   bool reduces() const;                  // whether pass 1 runs at all
//   void reduce(const Scalars&, S* const* buffers, std::size_t n,
//               double (*terms)[kReducePiece]) const;
//                                          // pass 1 over n <= kReducePiece elements:
//                                          // terms[j][i], element i's num_sums terms
//   Applied finish(const Scalars&, const double* sums) const;   // per tensor
//   void apply(const Scalars&, const Applied&, S* const* buffers, std::size_t n) const;
//                                          // pass 2: the loop over n elements
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstring>
#include <type_traits>
#include <vector>

#include "numoptim/grad_norm.hpp"
#include "numoptim/master_weights.hpp"
#include "numoptim/multi_tensor.hpp"

namespace numoptim {

// Elements per piece of pass 1: the rule's loop writes the terms of a piece to a local
// array, which is then folded into the lanes. A multiple of kNormLanes.
constexpr std::size_t kReducePiece = 256;

// Pass 1 as a rule for update_at (compiled per instruction set) and MasterWeights: it
// folds a run of elements into the lanes that its Scalars point to, a piece at a time.
// The rule's own loop computes a piece's terms (a plain loop over elements, vectorized
// as its update loops are), and a second loop adds them into the lanes.
template <class Rule>
struct ReducePass {
  static constexpr std::size_t num_buffers = Rule::num_buffers;
  static constexpr std::size_t num_scalar_state = Rule::num_scalar_state;
  static constexpr bool writes_param = false;  // MasterWeights need not round it back
  struct Scalars {
    typename Rule::Scalars rule;
    double (*lanes)[kNormLanes];  // num_sums rows, folded into
  };
  Rule rule;
  template <class S>
  void update(const Scalars& s, S* const* buffers, std::size_t n) const {
    constexpr std::size_t K = Rule::num_sums;
    alignas(64) double terms[K][kReducePiece];
    // The lanes are folded in a local copy, stored back at the end: the same additions
    // in the same order. Through the Scalars' pointer, which might alias anything, the
    // fold stayed scalar (a load and a store per term: 60% of LAMB's pass 1 in cache).
    alignas(64) double lanes[K][kNormLanes];
    std::memcpy(lanes, s.lanes, sizeof lanes);
    std::array<S*, num_buffers> at;
    for (std::size_t begin = 0; begin < n; begin += kReducePiece) {
      const std::size_t count = std::min(kReducePiece, n - begin);
      for (std::size_t b = 0; b < num_buffers; ++b)
        at[b] = buffers[b] == nullptr ? nullptr : buffers[b] + begin;
      rule.reduce(s.rule, at.data(), count, terms);
      for (std::size_t j = 0; j < K; ++j)
        fold_lanes(lanes[j], count, [&](std::size_t i) { return terms[j][i]; }, plus);
    }
    std::memcpy(s.lanes, lanes, sizeof lanes);
  }
};

// Pass 2 as a rule for run_multi_tensor.
template <class Rule>
struct ApplyPass {
  static constexpr std::size_t num_buffers = Rule::num_buffers;
  static constexpr std::size_t num_scalar_state = Rule::num_scalar_state;
  struct Scalars {
    typename Rule::Scalars rule;
    typename Rule::Applied applied;
  };
  Rule rule;
  template <class S>
  void update(const Scalars& s, S* const* buffers, std::size_t n) const {
    rule.apply(s.rule, s.applied, buffers, n);
  }
};

// How the passes reach a tensor's buffers: as they are (Direct), or through a float32
// master copy of a 16-bit parameter (OnMaster, see master_weights.hpp).
struct Direct {
  template <class Pass>
  using rule = Pass;
  template <class Pass>
  typename Pass::Scalars scalars(std::size_t /*tensor*/, typename Pass::Scalars s) const {
    return s;
  }
  Direct only(std::size_t /*tensor*/) const { return {}; }
};

template <class S>
struct OnMaster {
  template <class Pass>
  using rule = MasterWeights<Pass, S>;
  std::vector<const float*> master;  // per tensor: its first element
  std::vector<const S*> grad;
  std::vector<S*> param;
  template <class Pass>
  typename MasterWeights<Pass, S>::Scalars scalars(std::size_t t,
                                                   typename Pass::Scalars s) const {
    return {s, master[t], grad[t], param[t]};
  }
  OnMaster only(std::size_t t) const { return {{master[t]}, {grad[t]}, {param[t]}}; }
};

// Whether a rule is a two-pass one (it sums terms in pass 1).
template <class Rule, class = void>
struct IsTwoPass : std::false_type {};
template <class Rule>
struct IsTwoPass<Rule, std::void_t<decltype(Rule::num_sums)>> : std::true_type {};

// Pass 1 of a two-pass rule over the tensors, with up to num_threads threads: each
// tensor's num_sums sums, in order (zeros where the rule does not reduce).
template <class Rule, class T, std::size_t N, class Via>
std::vector<double> first_pass(const Rule& rule, const std::vector<typename Rule::Scalars>& scalars,
                               const TensorList<T, N>& tensors, int num_threads, Isa isa,
                               const Via& via) {
  constexpr std::size_t K = Rule::num_sums;
  std::vector<double> sums(tensors.sizes.size() * K, 0.0);
  if (!rule.reduces()) return sums;
  using Pass = ReducePass<Rule>;
  const typename Via::template rule<Pass> pass{Pass{rule}};
  auto block = [&](std::size_t t, std::size_t begin, std::size_t n, double* partial) {
    double lanes[K][kNormLanes] = {};
    std::array<T*, N> at;
    for (std::size_t b = 0; b < N; ++b) {
      T* const base = tensors.buffers[t][b];
      at[b] = base == nullptr ? nullptr : base + begin;
    }
    update_at(isa, pass, via.template scalars<Pass>(t, {scalars[t], lanes}), at.data(), n);
    combine_lanes<K>(lanes, plus, partial);
  };
  reduce_in_blocks<K>(tensors.sizes, block, plus, 0.0, sums.data(), num_threads);
  return sums;
}

// Runs a two-pass rule over the tensors (see the top of this file), with up to
// num_threads threads.
template <class Rule, class T, std::size_t N, class Via>
void run_two_pass(const Rule& rule, const std::vector<typename Rule::Scalars>& scalars,
                  const TensorList<T, N>& tensors, int num_threads, Isa isa, const Via& via) {
  constexpr std::size_t K = Rule::num_sums;
  const std::size_t count = tensors.sizes.size();
  const std::vector<double> sums = first_pass(rule, scalars, tensors, num_threads, isa, via);
  using Pass = ApplyPass<Rule>;
  std::vector<typename Via::template rule<Pass>::Scalars> applied;
  applied.reserve(count);
  for (std::size_t t = 0; t < count; ++t) {
    const typename Rule::Applied constants = rule.finish(scalars[t], &sums[t * K]);
    applied.push_back(via.template scalars<Pass>(t, {scalars[t], constants}));
  }
  run_multi_tensor(typename Via::template rule<Pass>{Pass{rule}}, applied, tensors, num_threads,
                   isa);
}

}  // namespace numoptim
