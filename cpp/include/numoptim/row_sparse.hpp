// The driver of row-sparse updates: a rule applied to the rows a sparse gradient touches.
//
// A row-sparse gradient (the gradient of an embedding lookup, torch's sparse COO grad
// with one sparse dimension) is a list of row indices into a parameter's first
// dimension and one row of values per index. A row rule is an elementwise rule (see
// multi_tensor.hpp) whose loop runs over one row of `width` elements: buffers[1] points
// at the gradient's values for that entry, every other buffer at the parameter's row
// (the parameter itself and its state buffers, which are shaped like it).
//
// Entries are applied in their order. When a row index repeats, two entries update the
// same row, so rows are shared among threads by owner (a hash of the row index): every
// thread walks all entries and applies those of its own rows, in order, which keeps the
// result identical to the serial one for any thread count.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <vector>

#include "numoptim/dispatch.hpp"
#include "numoptim/multi_tensor.hpp"

namespace numoptim {

// The row-sparse tensors of one dtype in one group.
template <class T, std::size_t NumBuffers>
struct RowSparseList {
  struct Tensor {
    std::array<T*, NumBuffers> base;  // parameter, gradient values, state buffers
    const std::int64_t* rows;         // one row index per entry
    std::size_t entries;              // number of entries (rows of values)
    std::size_t width;                // elements per row
  };
  std::vector<Tensor> tensors;
};

// Sums the values of repeated rows, as torch's coalesce(): the result has sorted,
// unique rows, and the values of one row are added in the order they appear (the
// first copied, then each later one added), so it matches torch bit for bit.
// `rows`/`values` receive the coalesced gradient.
template <class T>
void coalesce_rows(const std::int64_t* indices, const T* values, std::size_t entries,
                   std::size_t width, std::vector<std::int64_t>& rows, std::vector<T>& summed) {
  std::vector<std::size_t> order(entries);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return indices[a] < indices[b]; });
  rows.clear();
  summed.clear();
  rows.reserve(entries);
  summed.reserve(entries * width);
  for (std::size_t k = 0; k < entries; ++k) {
    const std::int64_t row = indices[order[k]];
    const T* v = values + order[k] * width;
    if (!rows.empty() && rows.back() == row) {
      T* out = summed.data() + (rows.size() - 1) * width;
      for (std::size_t i = 0; i < width; ++i) out[i] = out[i] + v[i];
    } else {
      rows.push_back(row);
      summed.insert(summed.end(), v, v + width);
    }
  }
}

// Whether the indices are strictly increasing: already coalesced.
inline bool strictly_increasing(const std::int64_t* indices, std::size_t entries) {
  for (std::size_t k = 1; k < entries; ++k)
    if (indices[k] <= indices[k - 1]) return false;
  return true;
}

// Runs rule.update over every entry of every tensor; scalars[t] are tensor t's Scalars.
template <class Rule, class Scalars, class T, std::size_t N>
void run_row_sparse(const Rule& rule, const std::vector<Scalars>& scalars,
                    const RowSparseList<T, N>& list, int num_threads, Isa isa) {
  std::size_t total = 0;
  for (const auto& t : list.tensors) total += t.entries * t.width;
  auto apply = [&](std::size_t t, std::size_t k) {
    const auto& tensor = list.tensors[t];
    const std::size_t row_offset = static_cast<std::size_t>(tensor.rows[k]) * tensor.width;
    std::array<T*, N> row;
    for (std::size_t b = 0; b < N; ++b)
      row[b] = tensor.base[b] == nullptr ? nullptr
                                         : tensor.base[b] + (b == 1 ? k * tensor.width : row_offset);
    update_at(isa, rule, scalars[t], row.data(), tensor.width);
  };
  if (num_threads <= 1 || total * N * sizeof(T) < kParallelThresholdBytes) {
    for (std::size_t t = 0; t < list.tensors.size(); ++t)
      for (std::size_t k = 0; k < list.tensors[t].entries; ++k) apply(t, k);
    return;
  }
  parallel_region(num_threads, [&](std::size_t me, std::size_t owners) {
    for (std::size_t t = 0; t < list.tensors.size(); ++t) {
      const auto& tensor = list.tensors[t];
      for (std::size_t k = 0; k < tensor.entries; ++k) {
        // A multiplicative hash spreads strided row patterns over the threads.
        const std::uint64_t h = static_cast<std::uint64_t>(tensor.rows[k]) * 0x9E3779B97F4A7C15ull;
        if ((h >> 32) % owners == me) apply(t, k);
      }
    }
  });
}

}  // namespace numoptim
