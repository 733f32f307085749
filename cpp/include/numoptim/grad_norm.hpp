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

#include <algorithm>
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

// Folds the values of elements 0 .. n-1 into kNormLanes lanes: value(i) gives element
// i's value, and lane i % kNormLanes takes it with op, in element order. A longer run may
// be folded in pieces whose lengths, all but the last, are multiples of kNormLanes: the
// lanes then see the same values in the same order. One row at a time: GCC 12 leaves a
// fold of several rows at once scalar.
template <class Value, class Op>
inline void fold_lanes(double* lanes, std::size_t n, const Value& value, const Op& op) {
  const std::size_t whole = n / kNormLanes * kNormLanes;
  for (std::size_t i = 0; i < whole; i += kNormLanes) {
#pragma omp simd
    for (std::size_t k = 0; k < kNormLanes; ++k) lanes[k] = op(lanes[k], value(i + k));
  }
  for (std::size_t k = 0; whole + k < n; ++k) lanes[k] = op(lanes[k], value(whole + k));
}

// Combines each row of lanes in a fixed pairwise tree with op, into out[j].
template <std::size_t K, class Op>
inline void combine_lanes(double (*lanes)[kNormLanes], const Op& op, double* out) {
  for (std::size_t j = 0; j < K; ++j) {
    for (std::size_t width = kNormLanes / 2; width > 0; width /= 2)
      for (std::size_t k = 0; k < width; ++k) lanes[j][k] = op(lanes[j][k], lanes[j][k + width]);
    out[j] = lanes[j][0];
  }
}

inline double plus(double a, double b) { return a + b; }

// The reduction of n <= kNormBlock elements of x.
template <NormKind Kind, class S>
double reduce_block(const S* x, std::size_t n, double p) {
  double lanes[1][kNormLanes];
  for (double& lane : lanes[0]) lane = Kind == NormKind::min ? INFINITY : 0.0;
  auto term = [&](std::size_t i) {
    const double value = double(load(x[i]));
    const double a = std::fabs(value);
    if constexpr (Kind == NormKind::two) return a * a;
    else if constexpr (Kind == NormKind::power) return std::pow(a, p);
    else if constexpr (Kind == NormKind::count) return value != 0 ? 1.0 : 0.0;
    else return a;  // one, max, min
  };
  auto op = [](double a, double b) {
    if constexpr (Kind == NormKind::max) return maximum(a, b);
    else if constexpr (Kind == NormKind::min) return minimum(a, b);
    else return a + b;
  };
  double out;
  fold_lanes(lanes[0], n, term, op);
  combine_lanes<1>(lanes, op, &out);
  return out;
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

// Cuts tensors of the given sizes into blocks of kNormBlock elements and runs
// reduce(tensor, begin, count, partial) for every block (partial: its K values) on up to
// num_threads threads (one block runs on the calling thread); then combines each
// tensor's partials in block order with op, from `identity`, into out (K per tensor).
// Which thread reduced a block changes nothing.
template <std::size_t K, class ReduceBlock, class Op>
void reduce_in_blocks(const std::vector<std::size_t>& sizes, const ReduceBlock& reduce,
                      const Op& op, double identity, double* out, int num_threads) {
  struct Block {
    std::size_t tensor, begin, count;
  };
  std::vector<Block> blocks;
  for (std::size_t t = 0; t < sizes.size(); ++t)
    for (std::size_t b = 0; b < sizes[t]; b += kNormBlock)
      blocks.push_back({t, b, std::min(kNormBlock, sizes[t] - b)});
  std::vector<double> partial(blocks.size() * K);
  auto run = [&](std::size_t first, std::size_t last) {
    for (std::size_t b = first; b < last; ++b)
      reduce(blocks[b].tensor, blocks[b].begin, blocks[b].count, &partial[b * K]);
  };
  if (num_threads <= 1 || blocks.size() < 2) {
    run(0, blocks.size());
  } else {
    parallel_region(num_threads, [&](std::size_t thread, std::size_t threads) {
      run(blocks.size() * thread / threads, blocks.size() * (thread + 1) / threads);
    });
  }
  std::fill(out, out + sizes.size() * K, identity);
  for (std::size_t b = 0; b < blocks.size(); ++b)
    for (std::size_t j = 0; j < K; ++j)
      out[blocks[b].tensor * K + j] = op(out[blocks[b].tensor * K + j], partial[b * K + j]);
}

// Writes, for each tensor, the reduction of its elements (see the top of this file) into
// out, using up to num_threads threads. reduce(data, count) reduces one block.
template <class S, class ReduceBlock>
void reduce_tensors(const std::vector<NormInput<S>>& tensors, NormKind kind,
                    const ReduceBlock& reduce, double* out, int num_threads) {
  std::vector<std::size_t> sizes;
  for (const auto& t : tensors) sizes.push_back(t.size);
  auto block = [&](std::size_t t, std::size_t begin, std::size_t count, double* partial) {
    *partial = reduce(tensors[t].data + begin, count);
  };
  if (kind == NormKind::max)
    reduce_in_blocks<1>(sizes, block, maximum<double>, 0.0, out, num_threads);
  else if (kind == NormKind::min)
    reduce_in_blocks<1>(sizes, block, minimum<double>, INFINITY, out, num_threads);
  else
    reduce_in_blocks<1>(sizes, block, plus, 0.0, out, num_threads);
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
