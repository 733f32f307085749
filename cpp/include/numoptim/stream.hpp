// The roofline of an elementwise step: a rule that moves the bytes an optimizer moves
// and does no other work. Benchmarks only (bench/), never an optimizer.
//
//   s <- buffers[0] + buffers[1] + ... + buffers[writes]
//   buffers[k] <- s for k < writes                                  (in place)
//
// An optimizer reads its parameter, its state and its gradient and writes the
// parameter and state back in place: `writes` arrays read and written, one (the
// gradient, last) only read. Adam: p, m, v, g with writes = 3, 28 bytes per float32
// element. All arrays are streamed in one loop, as the optimizer's loop does, and the
// in-place writes go to lines already in cache, so no write-allocate traffic is counted
// that the optimizer would not pay.
#pragma once

#include <cstddef>

namespace numoptim {

template <class T>
struct Stream {
  static constexpr std::size_t num_buffers = 8;
  static constexpr std::size_t num_scalar_state = 0;
  static constexpr std::size_t max_writes = num_buffers - 1;

  std::size_t writes;  // 1 <= writes <= max_writes

  struct Scalars {};
  Scalars prepare(float* const* /*scalar_state*/, bool /*fresh*/) const { return {}; }

  void update(const Scalars&, T* const* buffers, std::size_t n) const {
    switch (writes) {
      case 1: return loop<1>(buffers, n);
      case 2: return loop<2>(buffers, n);
      case 3: return loop<3>(buffers, n);
      case 4: return loop<4>(buffers, n);
      case 5: return loop<5>(buffers, n);
      case 6: return loop<6>(buffers, n);
      default: return loop<7>(buffers, n);
    }
  }

  // The array count is a template argument so that the loop over arrays unrolls and
  // the loop over elements vectorizes.
  template <std::size_t W>
  static void loop(T* const* buffers, std::size_t n) {
    T* out[W];
    for (std::size_t k = 0; k < W; ++k) out[k] = buffers[k];
    const T* in = buffers[W];
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i) {
      T s = in[i];
      for (std::size_t k = 0; k < W; ++k) s += out[k][i];
      for (std::size_t k = 0; k < W; ++k) out[k][i] = s;
    }
  }
};

// The roofline of a read-only pass (the first pass of LAMB and LARS, two_pass.hpp): sums
// every buffer's elements and writes the sum over the first element of buffers[0], so
// that the reads are not optimized away (one store per chunk; benchmarks only).
template <class T>
struct ReadStream {
  static constexpr std::size_t num_buffers = 8;
  static constexpr std::size_t num_scalar_state = 0;
  std::size_t count;  // arrays read, 1 <= count <= num_buffers
  struct Scalars {};
  Scalars prepare(float* const* /*scalar_state*/, bool /*fresh*/) const { return {}; }
  void update(const Scalars&, T* const* buffers, std::size_t n) const {
    T s = 0;
    for (std::size_t k = 0; k < count; ++k) {
      const T* in = buffers[k];
#pragma omp simd reduction(+ : s)
      for (std::size_t i = 0; i < n; ++i) s += in[i];
    }
    if (n > 0) buffers[0][0] = s;
  }
};

}  // namespace numoptim
