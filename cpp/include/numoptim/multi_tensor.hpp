// The driver shared by every elementwise rule: one call updates a list of tensors.
//
// A rule is a struct with
//   static constexpr std::size_t num_buffers;      // parameter, gradient, state...
//   static constexpr std::size_t num_scalar_state; // 0-d float32 state such as `step`
//   Scalars prepare(float* const* scalar_state, bool fresh) const;  // per tensor, in double
//   void update(const Scalars&, T* const* buffers, std::size_t n) const;  // the loop
// `prepare` advances the tensor's scalar state (step += 1, as torch) and returns the
// step-dependent constants; it depends on nothing but the rule, that state and `fresh`
// (prepare_all relies on it). `update` is the elementwise loop over n elements.
//
// The work of all tensors is cut into chunks of whole cache lines and the chunks are
// shared by the threads of one parallel region (parallel.hpp), each thread an equal share of the
// elements; small work runs on the calling thread, since a fork/join costs more than
// it saves.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstring>
#include <vector>

#include "numoptim/dispatch.hpp"
#include "numoptim/parallel.hpp"

namespace numoptim {

// Every tensor's step constants, advancing each tensor's scalar state. A tensor whose
// scalar state (`count` values) and `fresh` equal the previous tensor's before the step
// gets that tensor's results, its advanced state copied and its Scalars reused, without
// calling prepare again: the tensors of a group mostly share a step count, and prepare's
// pow() calls were 6% of an Adam step over 500 tensors of 256 elements. (A parameter
// listed twice shares its state with its previous listing, which then no longer equals
// what that listing saw, so it is prepared again, as it must be.)
template <class Rule>
std::vector<typename Rule::Scalars> prepare_all(const Rule& rule,
                                                const std::vector<std::array<float*, 4>>& state,
                                                const std::vector<bool>& fresh,
                                                std::size_t count) {
  std::vector<typename Rule::Scalars> scalars;
  scalars.reserve(state.size());
  std::array<float, 4> before{}, previous{};
  for (std::size_t t = 0; t < state.size(); ++t) {
    for (std::size_t k = 0; k < count; ++k) before[k] = *state[t][k];
    // Compared as bits: a NaN step equals itself, and -0 is not 0.
    if (t > 0 && fresh[t] == fresh[t - 1] &&
        std::memcmp(before.data(), previous.data(), count * sizeof(float)) == 0) {
      for (std::size_t k = 0; k < count; ++k) *state[t][k] = *state[t - 1][k];
      scalars.push_back(scalars.back());
    } else {
      scalars.push_back(rule.prepare(state[t].data(), fresh[t]));
    }
    previous = before;
  }
  return scalars;
}

// The tensors of one dtype in one parameter group, as raw buffers.
template <class T, std::size_t NumBuffers>
struct TensorList {
  std::vector<std::array<T*, NumBuffers>> buffers;  // per tensor: param, grad, state...
  std::vector<std::size_t> sizes;                   // elements per tensor
};

// Elements per chunk: a multiple of every vector width and of a 64-byte line, small
// enough that a tensor of a few chunks still splits between threads (32 KiB per float32
// array), large enough that a chunk's bookkeeping is noise next to its loop.
constexpr std::size_t kChunkElements = 1 << 13;
// Below this many bytes of buffers in total (elements x num_buffers x sizeof(T)) one
// thread does all the work. Counting bytes rather than elements lets a heavier rule
// split sooner: measured on 2 cores (bench_kernels), 2 threads win from about 2^14
// elements for Adam (5 float buffers) and from about 2^15 for SGD (3).
constexpr std::size_t kParallelThresholdBytes = std::size_t(1) << 18;

template <class Rule, class Scalars, class T, std::size_t N>
void run_multi_tensor(const Rule& rule, const std::vector<Scalars>& scalars,
                      const TensorList<T, N>& tensors, int num_threads, Isa isa) {
  std::size_t total = 0;
  for (std::size_t n : tensors.sizes) total += n;
  if (num_threads <= 1 || total * N * sizeof(T) < kParallelThresholdBytes) {
    for (std::size_t t = 0; t < tensors.sizes.size(); ++t)
      update_at(isa, rule, scalars[t], tensors.buffers[t].data(), tensors.sizes[t]);
    return;
  }
  struct Chunk {
    std::size_t tensor, begin, count;
    std::size_t offset;  // of its first element in all the tensors' elements
  };
  std::vector<Chunk> chunks;
  chunks.reserve(tensors.sizes.size() + total / kChunkElements);
  std::size_t offset = 0;
  for (std::size_t t = 0; t < tensors.sizes.size(); ++t) {
    const std::size_t n = tensors.sizes[t];
    for (std::size_t begin = 0; begin < n; begin += kChunkElements)
      chunks.push_back({t, begin, std::min(kChunkElements, n - begin), offset + begin});
    offset += n;
  }
  // Each thread takes the chunks that start in its equal share of the elements, so a
  // list of many small tensors and a few large ones still splits the work evenly (an
  // equal share of the chunks would not: small tensors make small chunks).
  parallel_region(num_threads, [&](std::size_t thread, std::size_t threads) {
    const std::size_t lo = total * thread / threads, hi = total * (thread + 1) / threads;
    auto c = std::lower_bound(chunks.begin(), chunks.end(), lo,
                              [](const Chunk& chunk, std::size_t v) { return chunk.offset < v; });
    for (; c != chunks.end() && c->offset < hi; ++c) {
      std::array<T*, N> at;
      for (std::size_t b = 0; b < N; ++b) {
        T* const base = tensors.buffers[c->tensor][b];
        at[b] = base == nullptr ? nullptr : base + c->begin;  // an unused buffer stays null
      }
      update_at(isa, rule, scalars[c->tensor], at.data(), c->count);
    }
  });
}

// NaN-propagating maximum, as torch.maximum (std::max drops a NaN in its second argument).
// Both comparisons are always evaluated (`|`, not `||`): a short-circuit is a branch
// that keeps the loop around it from being vectorized.
template <class T>
inline T maximum(T a, T b) {
  return ((a > b) | (a != a)) ? a : b;
}

// torch.lerp's formula for a scalar weight: exact at both ends. Both forms are computed
// and one is selected, so that a loop in which the compiler cannot unswitch on
// `small_weight` still has no branch (it would not vectorize).
template <class T>
inline T lerp(T start, T end, T weight, bool small_weight) {
  const T from_start = start + weight * (end - start);
  const T from_end = end - (end - start) * (T(1) - weight);
  return small_weight ? from_start : from_end;
}

}  // namespace numoptim
