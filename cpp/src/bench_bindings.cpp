// The roofline kernel of the benchmarks, run through the same driver and dispatch as
// the optimizers (see numoptim/stream.hpp).
#include "bench_bindings.hpp"

#include <string>

#include "group_buffers.hpp"
#include "numoptim/stream.hpp"

namespace numoptim::binding {

namespace {

void bench_stream(py::list arrays) {
  using Rule = Stream<float>;
  const std::size_t count = arrays.size();
  if (count < 2 || count > Rule::max_writes + 1)
    throw py::value_error("bench_stream takes 2 to " + std::to_string(Rule::max_writes + 1) +
                          " arrays");
  TensorList<float, Rule::num_buffers> tensors;
  std::array<float*, Rule::num_buffers> buffers{};
  std::size_t n = 0;
  for (std::size_t b = 0; b < count; ++b) {
    py::object obj = arrays[b];
    if (!py::isinstance<py::array>(obj) ||
        !has_dtype<float>(py::reinterpret_borrow<py::array>(obj)))
      throw py::type_error("bench_stream takes float32 arrays, got " + describe(obj));
    const auto a = py::reinterpret_borrow<py::array>(obj);
    if (!(a.flags() & py::array::c_style) || !a.writeable())
      throw py::value_error("bench_stream takes writeable C-contiguous arrays");
    if (b > 0 && static_cast<std::size_t>(a.size()) != n)
      throw py::value_error("bench_stream takes arrays of one size");
    n = static_cast<std::size_t>(a.size());
    buffers[b] = data_of<float>(obj);
  }
  tensors.buffers.push_back(buffers);
  tensors.sizes.push_back(n);
  const Rule rule{count - 1};
  const std::vector<Rule::Scalars> scalars(1);
  const int threads = num_threads();
  const Isa isa = active_isa();
  py::gil_scoped_release release;
  run_multi_tensor(rule, scalars, tensors, threads, isa);
}

}  // namespace

void register_bench(py::module_& m) {
  using namespace pybind11::literals;
  m.def("bench_stream", &bench_stream, "arrays"_a,
        "Roofline kernel for benchmarks: sums the float32 arrays elementwise and writes the "
        "sum in place to all but the last, with the optimizers' driver, threads and SIMD "
        "level. Moves 4 * (2 * len(arrays) - 1) bytes per element.");
}

}  // namespace numoptim::binding
