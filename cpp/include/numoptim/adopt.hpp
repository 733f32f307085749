// ADOPT, Adam that normalizes the gradient by the previous second moment (Taniguchi et
// al., "ADOPT: Modified Adam Can Converge with Any beta2 with the Optimal Rate", NeurIPS
// 2024), as timm's Adopt.
//
//   g <- -g if maximize
//   g <- g + weight_decay * p                  (not decoupled)
//   first step of a parameter: v <- v + g * g, and nothing else (p and m stay)
//   later steps:
//     p <- p - wd_scale * weight_decay * p     (decoupled; wd_scale = lr, or lr^2 / max_lr)
//     u <- g / max(sqrt(v), eps)
//     u <- clamp(u, -(t - 1)^clip_exp, (t - 1)^clip_exp)    (unless clip_exp is None)
//     m <- lerp(m, u, 1 - beta1)
//     p <- p - lr * m
//     v <- beta2 * v + (1 - beta2) * g * g
//
// t is the parameter's own step count (a 0-d float32, as timm's); its first step is the
// one that creates its state, as in timm. The operation order is timm's single-tensor
// path (foreach=False), with torch's CPU fusions as in adan.hpp: lerp is a fused
// multiply-add from the nearer end, `add(x, alpha=a)` is fma(x, a, y), `addcmul_(g, g)`
// is fma(g, g, v) and `mul_(b).addcmul_(g, g, value=c)` is fma(c * g, g, v * b). clamp
// keeps a NaN a NaN, as torch's.
#pragma once

#include <cmath>
#include <cstddef>

#include "numoptim/multi_tensor.hpp"
#include "numoptim/storage.hpp"

namespace numoptim {

template <class S>
struct Adopt {
  using T = compute_t<S>;  // S is the storage type, T the arithmetic one
  // Buffers: param, grad, exp_avg, exp_avg_sq: timm's order of creation.
  static constexpr std::size_t num_buffers = 4;
  // Scalar state: step.
  static constexpr std::size_t num_scalar_state = 1;

  double lr, beta1, beta2, eps, weight_decay;
  double wd_scale;  // lr, or lr^2 / max_lr with corrected weight decay
  double clip_exp;
  bool clip, decoupled, maximize;

  struct Scalars {
    T clip_value;
    bool first;  // the parameter's state was created by this step
  };

  // Advances `step` (float32, as timm's); the clip value (t - 1)^clip_exp in double.
  // A parameter listed twice is fresh at both listings, but timm creates its state at
  // the first, so the second (at step 2) is a later step.
  Scalars prepare(float* const* scalar_state, bool fresh) const {
    const double step = (*scalar_state[0] += 1.0f);
    return {clip ? T(std::pow(step - 1.0, clip_exp)) : T(0), fresh && step == 1.0};
  }

  void update(const Scalars& s, S* const* buffers, std::size_t n) const {
    const bool l2 = weight_decay != 0 && !decoupled;
    if (s.first)
      l2 ? first_step<true>(buffers, n) : first_step<false>(buffers, n);
    else if (clip)
      l2 ? loop<true, true>(s, buffers, n) : loop<false, true>(s, buffers, n);
    else
      l2 ? loop<true, false>(s, buffers, n) : loop<false, false>(s, buffers, n);
  }

  template <bool L2>
  void first_step(S* const* buffers, std::size_t n) const {
    const S* __restrict p = buffers[0];
    const S* __restrict grad = buffers[1];
    S* __restrict v = buffers[3];
    const T sign = maximize ? T(-1) : T(1);
    const T wd = T(weight_decay);
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i) {
      T g = sign * load(grad[i]);
      if constexpr (L2) g = std::fma(load(p[i]), wd, g);
      store(v[i], std::fma(g, g, load(v[i])));
    }
  }

  template <bool L2, bool Clip>
  void loop(const Scalars& s, S* const* buffers, std::size_t n) const {
    S* __restrict p = buffers[0];
    const S* __restrict grad = buffers[1];
    S* __restrict m = buffers[2];
    S* __restrict v = buffers[3];
    const T sign = maximize ? T(-1) : T(1);
    const T wd = T(weight_decay);
    const bool shrink = decoupled && weight_decay != 0;
    const T decay = T(-wd_scale * weight_decay);
    const T weight1 = T(1.0 - beta1), one_minus_weight1 = T(1) - weight1;
    const bool small_weight1 = std::abs(1.0 - beta1) < 0.5;
    const T b2 = T(beta2), weight2 = T(1.0 - beta2);
    const T epsilon = T(eps), neg_lr = T(-lr);
    const T hi = s.clip_value, lo = -s.clip_value;
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i) {
      T g = sign * load(grad[i]);
      T param = load(p[i]);
      if constexpr (L2) g = std::fma(param, wd, g);
      const T decayed = std::fma(param, decay, param);
      param = shrink ? decayed : param;
      const T v_old = load(v[i]);
      T normed = g / maximum(std::sqrt(v_old), epsilon);
      if constexpr (Clip) {
        // torch.clamp: a NaN stays a NaN (both comparisons are false for it).
        normed = normed < lo ? lo : normed;
        normed = normed > hi ? hi : normed;
      }
      const T m_old = load(m[i]);
      const T toward = normed - m_old;
      const T m_new = small_weight1 ? std::fma(weight1, toward, m_old)
                                    : std::fma(-toward, one_minus_weight1, normed);
      store(m[i], m_new);
      store(p[i], std::fma(m_new, neg_lr, param));
      store(v[i], std::fma(weight2 * g, g, v_old * b2));
    }
  }
};

}  // namespace numoptim
