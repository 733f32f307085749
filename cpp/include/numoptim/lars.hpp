// LARS, layer-wise adaptive rate scaling (You et al., "Large Batch Training of
// Convolutional Networks", 2017), with LARC's clipping, as timm's Lars.
//
//   g <- -g if maximize
//   adapt (weight_decay != 0 or always_adapt):
//     r <- trust_coeff * ||p|| / (||g|| + ||p|| * weight_decay + eps), 1 where either
//          norm is 0; with trust_clip, r <- min(r / lr, 1)
//     g <- (g + weight_decay * p) * r
//   b <- g on the first step, else momentum * b + (1 - dampening) * g   (momentum != 0)
//   g <- g + momentum * b if nesterov, else b
//   p <- p - lr * g
//
// A two-pass rule (two_pass.hpp): pass 1 sums p^2 and g^2 (only when adapting), pass 2
// is the momentum step. The norms are computed in double and rounded to the compute
// type, as torch returns them; the ratio is computed from them in that type, in timm's
// order. The operation order is timm's single-tensor path (foreach=False): torch's
// `add(x, alpha=a)` is fma(x, a, y) and `mul_(b).add_(x, alpha=a)` is fma(x, a, y * b).
#pragma once

#include <cstddef>

#include "numoptim/storage.hpp"

namespace numoptim {

template <class S>
struct Lars {
  using T = compute_t<S>;  // S is the storage type, T the arithmetic one
  // Buffers: param, grad, momentum_buffer (absent when momentum == 0).
  static constexpr std::size_t num_buffers = 3;
  static constexpr std::size_t num_scalar_state = 0;
  static constexpr std::size_t num_sums = 2;  // sum of p^2, sum of g^2

  double lr, momentum, dampening, weight_decay, trust_coeff, eps;
  bool nesterov, trust_clip, adapt, maximize;

  struct Scalars {
    bool fresh;  // no momentum buffer yet: it starts as the gradient
  };
  Scalars prepare(float* const* /*scalar_state*/, bool fresh) const { return {fresh}; }

  struct Applied {
    T ratio;
  };

  bool reduces() const { return adapt; }

  template <std::size_t Piece>
  void reduce(const Scalars&, S* const* buffers, std::size_t n, double (*terms)[Piece]) const {
    const S* __restrict p = buffers[0];
    const S* __restrict grad = buffers[1];
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i) {
      const double param = double(load(p[i])), g = double(load(grad[i]));
      terms[0][i] = param * param;
      terms[1][i] = g * g;  // the same for -g
    }
  }

  Applied finish(const Scalars&, const double* sums) const {
    if (!adapt) return {T(1)};
    const T w_norm = T(std::sqrt(sums[0])), g_norm = T(std::sqrt(sums[1]));
    const T wd = T(weight_decay);
    T ratio = T(trust_coeff) * w_norm / (g_norm + w_norm * wd + T(eps));
    if (!(w_norm > T(0) && g_norm > T(0))) ratio = T(1);
    if (trust_clip) {
      ratio = ratio / T(lr);
      if (ratio > T(1)) ratio = T(1);  // a NaN ratio stays NaN, as torch.clamp
    }
    return {ratio};
  }

  void apply(const Scalars& s, const Applied& a, S* const* buffers, std::size_t n) const {
    S* __restrict p = buffers[0];
    const S* __restrict grad = buffers[1];
    S* __restrict buf = buffers[2];
    const T sign = maximize ? T(-1) : T(1), wd = T(weight_decay), ratio = a.ratio;
    const T mom = T(momentum), one_minus_dampening = T(1.0 - dampening), neg_lr = T(-lr);
    const bool use_momentum = momentum != 0, fresh = s.fresh;
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i) {
      const T param = load(p[i]);
      T g = sign * load(grad[i]);
      if (adapt) g = std::fma(param, wd, g) * ratio;
      if (use_momentum) {
        const T b = fresh ? g : std::fma(g, one_minus_dampening, load(buf[i]) * mom);
        store(buf[i], b);
        g = nesterov ? std::fma(b, mom, g) : b;
      }
      store(p[i], std::fma(g, neg_lr, param));
    }
  }
};

}  // namespace numoptim
