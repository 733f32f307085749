// LAMB, layer-wise adaptive moments (You et al., "Large Batch Optimization for Deep
// Learning: Training BERT in 76 minutes", 2020), as timm's Lamb.
//
//   g <- -g if maximize;  g <- g / clip            (clip: the global grad-norm divisor, >= 1)
//   m <- lerp(m, g, 1 - beta1)  if grad_averaging, else beta1 * m + g
//   v <- beta2 * v + (1 - beta2) * g * g
//   u <- (m / bc1) / (sqrt(v) / sqrt(bc2) + eps)
//   decoupled_decay: p <- p - decay * p            (decay = lr * wd, or lr^2 / max_lr * wd)
//   otherwise:       u <- u + wd * p
//   adapt (wd != 0 or always_adapt):
//     r <- ||p|| / ||u||, 1 where either norm is 0; min(r, 1) with trust_clip
//     u <- u * r
//   p <- p - lr * u
//
// A two-pass rule (two_pass.hpp): pass 1 reads p, g, m and v and sums p^2 (of the
// decayed p) and u^2; pass 2 computes the same again, writes m and v, and applies u.
// Nothing is written before the norms are known, so every stored value is the rule's
// float32 result (for 16-bit storage) rounded once: 44 bytes per float32 element, 4 more
// than writing m and v in pass 1 and reading them back. The norms are computed in double
// and rounded to the compute type, as torch returns them. The operation order is timm's single-tensor path (foreach=False): torch's lerp is a fused
// multiply-add from the nearer end, `mul_(b).add_(x, alpha=a)` and `add_(x, alpha=a)`
// are fused (fma(x, a, y * b), fma(x, a, y)), `addcmul_(g, g, value=c)` is
// fma(c * g, g, v), and the divisions are true divisions.
#pragma once

#include <cmath>
#include <cstddef>

#include "numoptim/storage.hpp"

namespace numoptim {

template <class S>
struct Lamb {
  using T = compute_t<S>;  // S is the storage type, T the arithmetic one
  // Buffers: param, grad, exp_avg (m), exp_avg_sq (v).
  static constexpr std::size_t num_buffers = 4;
  static constexpr std::size_t num_scalar_state = 0;  // the step count is the group's
  static constexpr std::size_t num_sums = 2;          // sum of p^2, sum of u^2

  double lr, beta1, beta2, beta3;  // beta3: the gradient's weight in m
  double bias_correction1, bias_correction2, eps, weight_decay;
  double decay;  // decoupled: the factor of p taken off p
  double clip;   // the gradients are divided by it (1: no clipping)
  bool decoupled;  // decoupled_decay with a weight decay: p decays, u has no wd * p
  bool adapt, trust_clip, maximize;

  // The constants of both loops, in the compute type.
  struct Scalars {
    T sign, clip, weight, one_minus_weight, b1, b2, weight2, bc1, bc2_sqrt, eps, wd, decay;
    bool averaging, small_weight, l2, decoupled;
  };
  Scalars prepare(float* const* /*scalar_state*/, bool /*fresh*/) const {
    const bool averaging = beta3 == 1.0 - beta1;
    return {maximize ? T(-1) : T(1), T(clip), T(beta3), T(1) - T(beta3), T(beta1),
            T(beta2),   T(1.0 - beta2), T(bias_correction1), T(std::sqrt(bias_correction2)),
            T(eps),     T(weight_decay), T(-decay), averaging, std::abs(beta3) < 0.5,
            !decoupled && weight_decay != 0, decoupled};
  }

  struct Applied {
    T ratio;
  };

  bool reduces() const { return adapt; }  // without the ratio, pass 2 is the whole step

  // Element i's new m and v, p after the decoupled decay and the update before the
  // trust ratio, from its p, g, m and v: what both passes compute.
  struct Element {
    T m, v, decayed, u;
  };

  // The loops come in three forms. GCC 12 vectorizes a loop that selects on one
  // run-time option, not on several (measured: scalar, 4.5x the roofline), so the
  // common options are compiled into two forms: grad_averaging with beta1 >= 0.5 (the
  // lerp from m), with the L2 decay (a run-time select) or the decoupled one. Every
  // other combination takes the general form, scalar, with every option at run time.
  // The three compute the same values.
  enum Form { general, lerp_l2, lerp_decoupled };
  static Form form_of(const Scalars& c) {
    if (!c.averaging || !c.small_weight) return general;
    return c.decoupled ? lerp_decoupled : lerp_l2;
  }

  template <Form F>
  static Element at(const Scalars& c, const S* p, const S* grad, const S* m, const S* v,
                    std::size_t i) {
    const T param = load(p[i]);
    const T g = c.sign * load(grad[i]) / c.clip;  // exact when clip is 1
    const T m_old = load(m[i]);
    const T toward = g - m_old;
    Element e;
    if constexpr (F == general)
      e.m = !c.averaging     ? std::fma(g, c.weight, m_old * c.b1)
            : c.small_weight ? std::fma(c.weight, toward, m_old)
                             : std::fma(-toward, c.one_minus_weight, g);
    else
      e.m = std::fma(c.weight, toward, m_old);
    e.v = std::fma(c.weight2 * g, g, load(v[i]) * c.b2);
    const bool decoupled = F == lerp_decoupled || (F == general && c.decoupled);
    e.decayed = decoupled ? std::fma(param, c.decay, param) : param;
    const T update = (e.m / c.bc1) / (std::sqrt(e.v) / c.bc2_sqrt + c.eps);
    const bool l2 = F != lerp_decoupled && c.l2;
    e.u = l2 ? std::fma(param, c.wd, update) : update;
    return e;
  }

  template <std::size_t Piece>
  void reduce(const Scalars& s, S* const* buffers, std::size_t n,
              double (*terms)[Piece]) const {
    switch (form_of(s)) {
      case lerp_l2: return reduce_loop<lerp_l2>(s, buffers, n, terms);
      case lerp_decoupled: return reduce_loop<lerp_decoupled>(s, buffers, n, terms);
      default: return reduce_loop<general>(s, buffers, n, terms);
    }
  }

  template <Form F, std::size_t Piece>
  static void reduce_loop(const Scalars& s, S* const* buffers, std::size_t n,
                          double (*terms)[Piece]) {
    const Scalars c = s;  // a local copy: its options are then hoisted out of the loop
    const S* __restrict p = buffers[0];
    const S* __restrict grad = buffers[1];
    const S* __restrict m = buffers[2];
    const S* __restrict v = buffers[3];
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i) {
      const Element e = at<F>(c, p, grad, m, v, i);
      terms[0][i] = double(e.decayed) * double(e.decayed);
      terms[1][i] = double(e.u) * double(e.u);
    }
  }

  Applied finish(const Scalars&, const double* sums) const {
    if (!adapt) return {T(1)};
    const T w_norm = T(std::sqrt(sums[0])), u_norm = T(std::sqrt(sums[1]));
    T ratio = (w_norm > T(0) && u_norm > T(0)) ? w_norm / u_norm : T(1);
    if (trust_clip && ratio > T(1)) ratio = T(1);  // a NaN ratio stays NaN, as torch.clamp
    return {ratio};
  }

  void apply(const Scalars& s, const Applied& a, S* const* buffers, std::size_t n) const {
    switch (form_of(s)) {
      case lerp_l2: return apply_loop<lerp_l2>(s, a, buffers, n);
      case lerp_decoupled: return apply_loop<lerp_decoupled>(s, a, buffers, n);
      default: return apply_loop<general>(s, a, buffers, n);
    }
  }

  template <Form F>
  void apply_loop(const Scalars& s, const Applied& a, S* const* buffers, std::size_t n) const {
    const Scalars c = s;  // a local copy: its options are then hoisted out of the loop
    S* __restrict p = buffers[0];
    const S* __restrict grad = buffers[1];
    S* __restrict m = buffers[2];
    S* __restrict v = buffers[3];
    const T neg_lr = T(-lr), ratio = a.ratio;
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i) {
      const Element e = at<F>(c, p, grad, m, v, i);
      store(m[i], e.m);
      store(v[i], e.v);
      store(p[i], std::fma(e.u * ratio, neg_lr, e.decayed));
    }
  }
};

}  // namespace numoptim
