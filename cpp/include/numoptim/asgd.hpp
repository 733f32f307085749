// ASGD: averaged stochastic gradient descent (Polyak & Juditsky, "Acceleration of
// Stochastic Approximation by Averaging", 1992), with torch.optim.ASGD's decaying
// step size eta and averaging weight mu.
//
//   g <- -g if maximize;   g <- g + weight_decay * p
//   p <- p * (1 - lambd * eta)
//   p <- p - eta * g
//   ax <- ax + mu * (p - ax) if mu != 1, else ax <- p
//   then, with the new step t:
//   eta <- lr / (1 + lambd * lr * t)^alpha;   mu <- 1 / max(1, t - t0)
//
// eta and mu are 0-d float32 state; the step uses their values from before this step,
// and the new values are rounded to float32 when stored, as torch's tensors are.
#pragma once

#include <cmath>
#include <cstddef>

#include "numoptim/storage.hpp"

namespace numoptim {

template <class S>
struct ASGD {
  using T = compute_t<S>;  // S is the storage type, T the arithmetic one
  // Buffers: param, grad, ax.
  static constexpr std::size_t num_buffers = 3;
  // Scalar state: step, eta, mu.
  static constexpr std::size_t num_scalar_state = 3;

  double lr, lambd, alpha, t0, weight_decay;
  bool maximize;

  struct Scalars {
    T decay_factor, neg_eta, mu;
    bool average;  // mu != 1: running average; else ax takes the parameter
  };
  // Reads eta and mu for this step, then advances step, eta and mu for the next one.
  Scalars prepare(float* const* scalar_state, bool /*fresh*/) const {
    const double eta = *scalar_state[1];
    const float mu = *scalar_state[2];
    const double step = (*scalar_state[0] += 1.0f);
    *scalar_state[1] = static_cast<float>(lr / std::pow(1.0 + lambd * lr * step, alpha));
    const double past_t0 = step - t0;
    *scalar_state[2] = static_cast<float>(1.0 / (past_t0 > 1.0 ? past_t0 : 1.0));
    return {T(1.0 - lambd * eta), T(-eta), T(mu), mu != 1.0f};
  }

  void update(const Scalars& s, S* const* buffers, std::size_t n) const {
    S* __restrict p = buffers[0];
    const S* __restrict grad = buffers[1];
    S* __restrict ax = buffers[2];
    const T wd = T(weight_decay);
    const bool decay = weight_decay != 0, average = s.average;
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i) {
      T g = maximize ? -load(grad[i]) : load(grad[i]);
      if (decay) g = g + wd * load(p[i]);
      const T param = load(p[i]) * s.decay_factor + s.neg_eta * g;
      store(p[i], param);
      store(ax[i], average ? load(ax[i]) + (param - load(ax[i])) * s.mu : param);
    }
  }
};

}  // namespace numoptim
