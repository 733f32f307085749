// The consumer's own code: it includes numoptim's headers but is compiled with the
// consumer's flags only. Runs three Adam steps on two tensors from exactly representable
// inputs and prints every parameter afterwards, with enough digits to round-trip a float.
#include <cstddef>
#include <cstdio>
#include <vector>

#include "numoptim/dispatch.hpp"

void adam_step(float* const* params, float* const* grads, float* const* exp_avgs,
               float* const* exp_avg_sqs, float* const* steps, const std::size_t* sizes,
               std::size_t count, int num_threads);

int main() {
  // 37 elements: not a multiple of any vector width, so the loops' tails run too.
  const std::size_t sizes[2] = {37, 5};
  std::vector<float> param[2], grad[2], exp_avg[2], exp_avg_sq[2];
  float step[2] = {0.0f, 0.0f};
  for (int t = 0; t < 2; ++t) {
    param[t].resize(sizes[t]);
    grad[t].resize(sizes[t]);
    exp_avg[t].assign(sizes[t], 0.0f);
    exp_avg_sq[t].assign(sizes[t], 0.0f);
    for (std::size_t i = 0; i < sizes[t]; ++i) param[t][i] = float(int(i) - 20 + 3 * t) / 8.0f;
  }
  for (int k = 0; k < 3; ++k) {
    for (int t = 0; t < 2; ++t)
      for (std::size_t i = 0; i < sizes[t]; ++i)
        grad[t][i] = float((int(i) * 7 + k * 3 + t) % 11 - 5) / 16.0f;
    float* p[2] = {param[0].data(), param[1].data()};
    float* g[2] = {grad[0].data(), grad[1].data()};
    float* m[2] = {exp_avg[0].data(), exp_avg[1].data()};
    float* v[2] = {exp_avg_sq[0].data(), exp_avg_sq[1].data()};
    float* s[2] = {&step[0], &step[1]};
    adam_step(p, g, m, v, s, sizes, 2, 2);
  }
  std::printf("isa %s\n", numoptim::isa_name(numoptim::active_isa()));
  for (int t = 0; t < 2; ++t) {
    std::printf("tensor %d step %g\n", t, double(step[t]));
    for (float x : param[t]) std::printf("%.9g\n", double(x));
  }
  return 0;
}
