// RMSprop (Hinton, "Neural Networks for Machine Learning", lecture 6e, 2012), centered
// as in Graves, "Generating Sequences With Recurrent Neural Networks" (2013), with
// momentum and L2 weight decay.
//
//   g <- -g if maximize;   g <- g + weight_decay * p
//   v <- alpha * v + (1 - alpha) * g * g
//   avg <- sqrt(v - g_avg * g_avg) + eps, g_avg <- lerp(g_avg, g, 1 - alpha) first,
//          if centered; else sqrt(v) + eps
//   b <- momentum * b + g / avg;  p <- p - lr * b      if momentum > 0
//   p <- p - lr * g / avg                               otherwise
//
// The operation order is torch.optim.RMSprop's single-tensor path. `step` is counted,
// as torch does, but no update depends on it. Where torch's CPU kernels fuse a
// multiply-add (addcmul, lerp, add with alpha), this loop calls std::fma: the centered
// variance v - g_avg^2 cancels badly, and only the same single rounding keeps float32
// within a few ulps of torch there. fma is correctly rounded on every target (an
// instruction on AVX2/AVX-512, a libm call on the baseline), so results stay
// identical across SIMD levels. The exception is a complex parameter's weight decay:
// torch adds it to the complex gradient before viewing both as reals, and complex
// arithmetic rounds the product wd * p before the addition (`complex`, set by the driver
// for those tensors). Where the gradient nearly cancels the decay, that rounding decides
// the first steps.
#pragma once

#include <cmath>
#include <cstddef>

#include "numoptim/multi_tensor.hpp"
#include "numoptim/storage.hpp"

namespace numoptim {

template <class S>
struct RMSprop {
  using T = compute_t<S>;  // S is the storage type, T the arithmetic one
  // Buffers: param, grad, square_avg, then momentum_buffer when momentum > 0, then
  // grad_avg when centered (each optional buffer is present only when used, so
  // grad_avg is buffer 3 without momentum and buffer 4 with it).
  static constexpr std::size_t num_buffers = 5;
  // Scalar state: step.
  static constexpr std::size_t num_scalar_state = 1;

  double lr, alpha, eps, weight_decay, momentum;
  bool centered, maximize;
  bool complex = false;  // the tensors are complex ones, viewed as reals (see above)

  struct Scalars {};
  Scalars prepare(float* const* scalar_state, bool /*fresh*/) const {
    *scalar_state[0] += 1.0f;
    return {};
  }

  void update(const Scalars& /*s*/, S* const* buffers, std::size_t n) const {
    // The optional buffers are read and written only under their option, and GCC does
    // not unswitch such a loop by itself: each combination gets its own instance of
    // the loop, so that every one of them vectorizes.
    if (momentum > 0) {
      if (centered) return loop<true, true>(buffers, n);
      return loop<true, false>(buffers, n);
    }
    if (centered) return loop<false, true>(buffers, n);
    loop<false, false>(buffers, n);
  }

 private:
  template <bool UseMomentum, bool Centered>
  void loop(S* const* buffers, std::size_t n) const {
    S* __restrict p = buffers[0];
    const S* __restrict grad = buffers[1];
    S* __restrict v = buffers[2];
    S* __restrict buf = UseMomentum ? buffers[3] : nullptr;
    S* __restrict g_avg = Centered ? buffers[UseMomentum ? 4 : 3] : nullptr;
    const T wd = T(weight_decay), a = T(alpha), one_minus_a = T(1.0 - alpha);
    const T epsilon = T(eps), mom = T(momentum), neg_lr = T(-lr);
    const bool small_weight = std::abs(1.0 - alpha) < 0.5, decay = weight_decay != 0;
    const bool fused_decay = !complex;
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i) {
      T g = maximize ? -load(grad[i]) : load(grad[i]);
      if (decay) g = fused_decay ? std::fma(wd, load(p[i]), g) : g + wd * load(p[i]);
      const T v_new = std::fma(one_minus_a * g, g, load(v[i]) * a);
      store(v[i], v_new);
      T avg;
      if (Centered) {
        const T start = load(g_avg[i]);
        const T ga = small_weight ? std::fma(one_minus_a, g - start, start)
                                  : std::fma(-(g - start), a, g);
        store(g_avg[i], ga);
        avg = std::sqrt(std::fma(-ga, ga, v_new));
      } else {
        avg = std::sqrt(v_new);
      }
      avg = avg + epsilon;
      if (UseMomentum) {
        const T b = load(buf[i]) * mom + g / avg;
        store(buf[i], b);
        store(p[i], std::fma(neg_lr, b, load(p[i])));
      } else {
        store(p[i], load(p[i]) + neg_lr * g / avg);
      }
    }
  }
};

}  // namespace numoptim
