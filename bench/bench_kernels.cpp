// Throughput of each update rule through numoptim::run_multi_tensor, over tensor sizes
// and thread counts, next to the Stream rule (the roofline: the same bytes, no math).
//
// One tensor of n float32 elements per benchmark; bytes_per_second counts each array
// the rule reads or writes once per element (Adam: p, g, m, v read, p, m, v written =
// 28 B). The kernels run at the SIMD level the CPU supports, lowered by
// NUMOPTIM_DISPATCH=avx2|baseline, as in the Python module.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "numoptim/adadelta.hpp"
#include "numoptim/adagrad.hpp"
#include "numoptim/adam.hpp"
#include "numoptim/adamax.hpp"
#include "numoptim/ademamix.hpp"
#include "numoptim/adan.hpp"
#include "numoptim/nadamw.hpp"
#include "numoptim/laprop.hpp"
#include "numoptim/adabelief.hpp"
#include "numoptim/adopt.hpp"
#include "numoptim/lion.hpp"
#include "numoptim/asgd.hpp"
#include "numoptim/dispatch.hpp"
#include "numoptim/multi_tensor.hpp"
#include "numoptim/nadam.hpp"
#include "numoptim/radam.hpp"
#include "numoptim/rmsprop.hpp"
#include "numoptim/rprop.hpp"
#include "numoptim/sgd.hpp"
#include "numoptim/stream.hpp"

namespace {

using namespace numoptim;

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};
using Array = std::unique_ptr<float[], FreeDeleter>;

// `arrays` buffers of n floats (the rule's first buffers: param, grad, state...), of
// which `written` are written per element. Gradients are small and state starts at
// zero, so the values stay finite and normal however long the benchmark runs.
template <class Rule>
void run_rule(benchmark::State& state, Rule rule, int arrays, int written) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const int threads = static_cast<int>(state.range(1));
  constexpr std::size_t N = Rule::num_buffers;
  std::vector<Array> data;
  numoptim::TensorList<float, N> tensors;
  std::array<float*, N> buffers{};
  for (int b = 0; b < arrays; ++b) {
    data.emplace_back(static_cast<float*>(std::aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64)));
    buffers[b] = data.back().get();
  }
  tensors.buffers.push_back(buffers);
  tensors.sizes.push_back(n);
  // Scalar state (step, and e.g. NAdam's mu_product, ASGD's eta and mu) starts at 1.
  std::array<float, 4> scalar_values;
  scalar_values.fill(1.0f);
  float* scalar_state[4] = {&scalar_values[0], &scalar_values[1], &scalar_values[2],
                            &scalar_values[3]};
  std::vector<typename Rule::Scalars> scalars{rule.prepare(scalar_state, true)};
  const numoptim::Isa isa = numoptim::active_isa();
  // First touch by the threads, in the static split that the driver's chunks follow.
  for (int b = 0; b < arrays; ++b) {
    float* a = buffers[b];
    const float value = b == 0 ? 1.0f : b == 1 ? 1e-3f : 0.0f;  // param, grad, state
#pragma omp parallel for schedule(static) num_threads(threads)
    for (std::size_t i = 0; i < n; ++i) a[i] = value;
  }

  for (auto _ : state) {
    scalars[0] = rule.prepare(scalar_state, false);
    numoptim::run_multi_tensor(rule, scalars, tensors, threads, isa);
    benchmark::ClobberMemory();
  }
  const auto elements = static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(n);
  state.SetItemsProcessed(elements);
  state.SetBytesProcessed(elements * 4 * (arrays + written));
}

template <class Rule>
void add(const char* name, Rule rule, int arrays, int written) {
  const int max_threads = omp_get_max_threads();
  benchmark::RegisterBenchmark(name, [=](benchmark::State& s) { run_rule(s, rule, arrays, written); })
      ->ArgNames({"n", "threads"})
      ->ArgsProduct({benchmark::CreateRange(1 << 10, 1 << 26, 4),
                     benchmark::CreateDenseRange(1, max_threads, 1)})
      ->UseRealTime();
}

}  // namespace

int main(int argc, char** argv) {
  // One line per rule: name, rule (float32), arrays it touches, arrays it writes.
  add("Stream/12B", Stream<float>{1}, 2, 1);
  add("SGD", SGD<float>{1e-2, 0.0, 0.0, 0.0, false, false}, 2, 1);
  add("Stream/20B", Stream<float>{2}, 3, 2);
  add("SGD-momentum", SGD<float>{1e-2, 0.9, 0.0, 0.0, false, false}, 3, 2);
  add("Stream/28B", Stream<float>{3}, 4, 3);
  add("Adam", Adam<float>{1e-3, 0.9, 0.999, 1e-8, 0.0, false, false, false}, 4, 3);
  add("AdamW", Adam<float>{1e-3, 0.9, 0.999, 1e-8, 1e-2, false, false, true}, 4, 3);
  add("Adagrad", Adagrad<float>{1e-2, 0.0, 0.0, 1e-10, false}, 3, 2);
  add("RMSprop", RMSprop<float>{1e-2, 0.99, 1e-8, 0.0, 0.0, false, false}, 3, 2);
  add("Adadelta", Adadelta<float>{1.0, 0.9, 1e-6, 0.0, false}, 4, 3);
  add("Adamax", Adamax<float>{2e-3, 0.9, 0.999, 1e-8, 0.0, false}, 4, 3);
  add("NAdam", NAdam<float>{2e-3, 0.9, 0.999, 1e-8, 0.0, 4e-3, false, false}, 4, 3);
  add("RAdam", RAdam<float>{1e-3, 0.9, 0.999, 1e-8, 0.0, false, false}, 4, 3);
  add("ASGD", ASGD<float>{1e-2, 1e-4, 0.75, 1e6, 0.0, false}, 3, 2);
  add("Rprop", Rprop<float>{0.5, 1.2, 1e-6, 50.0, false}, 4, 3);
  add("Lion", Lion<float>{1e-4, 0.9, 0.99, 0.0, false}, 3, 2);
  add("Stream/36B", Stream<float>{4}, 5, 4);
  add("AdEMAMix", AdEMAMix<float>{1e-3, 0.9, 0.999, 0.9999, 5.0, 1e-8, 1e-2, 0.0, 0.0, false}, 5, 4);
  add("Stream/44B", Stream<float>{5}, 6, 5);
  add("Adan", Adan<float>{1e-3, 0.98, 0.92, 0.99, 1e-8, 0.0, 2.0, false, false}, 6, 5);
  add("NAdamW", NAdamW<float>{1e-3, 0.9, 0.999, 1e-8, 1e-2, 1e-3, false}, 4, 3);
  add("LaProp", LaProp<float>{0.9, 0.999, 1e-15, 4e-5, -4e-4, 0.0, false, false, false}, 4, 3);
  add("AdaBelief", AdaBelief<float>{0.9, 0.999, 1e-16, 0.0, 1.0, -1e-3, 1.0, 1, false, true, false},
      4, 3);
  add("Adopt", Adopt<float>{1e-3, 0.9, 0.9999, 1e-6, 0.0, 1e-3, 0.333, true, false, false}, 4, 3);

  benchmark::AddCustomContext("numoptim_simd", numoptim::isa_name(numoptim::active_isa()));
  benchmark::AddCustomContext("numoptim_cpu_simd", numoptim::isa_name(numoptim::cpu_isa()));
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
