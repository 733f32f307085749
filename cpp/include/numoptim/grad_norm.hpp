// Gradient norms in a fixed order, and in-place scaling: torch.nn.utils' clip_grad_norm_.
//
// A vector p-norm reduces |x|^p over every element. Here each tensor is cut into blocks
// of kNormBlock elements; within a block, lane k (of kNormLanes) accumulates the
// elements k, k + kNormLanes, ... in order, in double, and the lanes are combined in a
// fixed pairwise tree; the blocks of a tensor are then added in block order. Threads
// take whole blocks, and a compiler may vectorize the lanes at any width, without
// changing one operation: the result is bit-identical for every thread count and SIMD
// level.
//
// Reductions, by norm order p:
//   p = 2: sum of x^2      p = 1: sum of |x|      other finite p: sum of |x|^p
//   p = inf: max |x|       p = -inf: min |x|      p = 0: count of nonzero x
// The maximum and minimum propagate NaN, as torch's norms do. Sums are exact products in
// double for float and 16-bit inputs.
#pragma once

#include <cmath>
#include <cstddef>
#include <vector>

#include "numoptim/multi_tensor.hpp"
#include "numoptim/parallel.hpp"
#include "numoptim/storage.hpp"

namespace numoptim {

constexpr std::size_t kNormBlock = 1 << 14;
constexpr std::size_t kNormLanes = 16;

enum class NormKind { two, one, power, max, min, count };

inline NormKind norm_kind(double p) {
  if (p == 2) return NormKind::two;
  if (p == 1) return NormKind::one;
  if (p == INFINITY) return NormKind::max;
  if (p == -INFINITY) return NormKind::min;
  if (p == 0) return NormKind::count;
  return NormKind::power;
}

// The NaN-propagating minimum (maximum() is in multi_tensor.hpp).
template <class T>
inline T minimum(T a, T b) {
  return ((a < b) | (a != a)) ? a : b;
}

// The reduction of n <= kNormBlock elements of x.
template <NormKind Kind, class S>
double reduce_block(const S* x, std::size_t n, double p) {
  double lanes[kNormLanes];
  for (double& lane : lanes) lane = Kind == NormKind::min ? INFINITY : 0.0;
  const std::size_t whole = n / kNormLanes * kNormLanes;
  auto add = [&](double& lane, double value) {
    const double a = std::fabs(value);
    if constexpr (Kind == NormKind::two) lane += a * a;
    if constexpr (Kind == NormKind::one) lane += a;
    if constexpr (Kind == NormKind::power) lane += std::pow(a, p);
    if constexpr (Kind == NormKind::max) lane = maximum(lane, a);
    if constexpr (Kind == NormKind::min) lane = minimum(lane, a);
    if constexpr (Kind == NormKind::count) lane += value != 0 ? 1.0 : 0.0;
  };
  for (std::size_t i = 0; i < whole; i += kNormLanes) {
#pragma omp simd
    for (std::size_t k = 0; k < kNormLanes; ++k) add(lanes[k], double(load(x[i + k])));
  }
  for (std::size_t k = 0; whole + k < n; ++k) add(lanes[k], double(load(x[whole + k])));
  for (std::size_t width = kNormLanes / 2; width > 0; width /= 2) {
    for (std::size_t k = 0; k < width; ++k) {
      if constexpr (Kind == NormKind::max) lanes[k] = maximum(lanes[k], lanes[k + width]);
      else if constexpr (Kind == NormKind::min) lanes[k] = minimum(lanes[k], lanes[k + width]);
      else lanes[k] += lanes[k + width];
    }
  }
  return lanes[0];
}

// reduce_block as a rule for the dispatch (update_at compiles it per instruction set):
// update() writes the block's reduction to *Scalars::out.
template <NormKind Kind, class S>
struct NormBlock {
  static constexpr std::size_t num_buffers = 1;
  struct Scalars {
    double* out;
  };
  double p;
  void update(const Scalars& s, S* const* buffers, std::size_t n) const {
    *s.out = reduce_block<Kind>(buffers[0], n, p);
  }
};

// One tensor to reduce: its elements, of storage type S.
template <class S>
struct NormInput {
  const S* data;
  std::size_t size;
};

// Writes, for each tensor, the reduction of its elements (see the top of this file) into
// out, using up to num_threads threads (one block runs on the calling thread).
// reduce(data, count) reduces one block.
template <class S, class ReduceBlock>
void reduce_tensors(const std::vector<NormInput<S>>& tensors, NormKind kind,
                    const ReduceBlock& reduce, double* out, int num_threads) {
  struct Block {
    std::size_t tensor, begin, count;
  };
  std::vector<Block> blocks;
  for (std::size_t t = 0; t < tensors.size(); ++t)
    for (std::size_t b = 0; b < tensors[t].size; b += kNormBlock)
      blocks.push_back({t, b, std::min(kNormBlock, tensors[t].size - b)});
  std::vector<double> partial(blocks.size());
  auto run = [&](std::size_t first, std::size_t last) {
    for (std::size_t b = first; b < last; ++b)
      partial[b] = reduce(tensors[blocks[b].tensor].data + blocks[b].begin, blocks[b].count);
  };
  if (num_threads <= 1 || blocks.size() < 2) {
    run(0, blocks.size());
  } else {
    parallel_region(num_threads, [&](std::size_t thread, std::size_t threads) {
      run(blocks.size() * thread / threads, blocks.size() * (thread + 1) / threads);
    });
  }
  for (std::size_t t = 0; t < tensors.size(); ++t)
    out[t] = kind == NormKind::min ? INFINITY : 0.0;
  for (std::size_t b = 0; b < blocks.size(); ++b) {
    double& total = out[blocks[b].tensor];
    if (kind == NormKind::max) total = maximum(total, partial[b]);
    else if (kind == NormKind::min) total = minimum(total, partial[b]);
    else total += partial[b];
  }
}

// x <- x * coefficient, in the compute type of S (float for 16-bit storage), rounded
// once: a rule for run_multi_tensor with the tensor as its only buffer.
template <class S>
struct Scale {
  using T = compute_t<S>;
  static constexpr std::size_t num_buffers = 1;
  struct Scalars {};
  T coefficient;
  void update(const Scalars&, S* const* buffers, std::size_t n) const {
    S* __restrict x = buffers[0];
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i) store(x[i], load(x[i]) * coefficient);
  }
};

}  // namespace numoptim
