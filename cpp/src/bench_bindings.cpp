// The roofline kernel of the benchmarks, run through the same driver and dispatch as
// the optimizers (see numoptim/stream.hpp).
#include "bench_bindings.hpp"

#include <string>

#include "group_buffers.hpp"
#include "numoptim/stream.hpp"

namespace numoptim::binding {

namespace {

using Rule = Stream<float>;

// Adds one tensor, given as its 2 to max_writes + 1 arrays of one size, to `tensors`.
void add_tensor(py::handle arrays_obj, TensorList<float, Rule::num_buffers>& tensors) {
  const auto arrays = py::reinterpret_borrow<py::list>(arrays_obj);
  const std::size_t count = arrays.size();
  if (count < 1 || count > Rule::max_writes + 1)
    throw py::value_error("bench_stream takes 1 to " + std::to_string(Rule::max_writes + 1) +
                          " arrays per tensor");
  if (!tensors.buffers.empty() && tensors.buffers.front()[count - 1] == nullptr)
    throw py::value_error("bench_stream takes the same number of arrays for every tensor");
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
      throw py::value_error("bench_stream takes arrays of one size per tensor");
    n = static_cast<std::size_t>(a.size());
    buffers[b] = data_of<float>(obj);
  }
  tensors.buffers.push_back(buffers);
  tensors.sizes.push_back(n);
}

// `arrays`: one tensor's arrays, or a list of tensors, each a list of its arrays (the
// roofline over the same tensors as a multi-tensor optimizer step).
void bench_stream(py::list arrays, bool read_only) {
  TensorList<float, Rule::num_buffers> tensors;
  if (arrays.size() > 0 && py::isinstance<py::list>(arrays[0])) {
    for (py::handle tensor : arrays) add_tensor(tensor, tensors);
  } else {
    add_tensor(arrays, tensors);
  }
  const std::size_t count = py::len(arrays.size() > 0 && py::isinstance<py::list>(arrays[0])
                                        ? py::reinterpret_borrow<py::list>(arrays[0])
                                        : arrays);
  if (!read_only && count < 2)
    throw py::value_error("bench_stream takes 2 arrays or more per tensor, or read_only");
  const int threads = num_threads();
  const Isa isa = active_isa();
  py::gil_scoped_release release;
  if (read_only) {
    const ReadStream<float> rule{count};
    run_multi_tensor(rule, std::vector<ReadStream<float>::Scalars>(tensors.sizes.size()), tensors,
                     threads, isa);
    return;
  }
  const Rule rule{count - 1};
  const std::vector<Rule::Scalars> scalars(tensors.sizes.size());
  run_multi_tensor(rule, scalars, tensors, threads, isa);
}

}  // namespace

void register_bench(py::module_& m) {
  using namespace pybind11::literals;
  m.def("bench_stream", &bench_stream, "arrays"_a, "read_only"_a = false,
        "Roofline kernel for benchmarks: sums the float32 arrays elementwise and writes the "
        "sum in place to all but the last, with the optimizers' driver, threads and SIMD "
        "level. Moves 4 * (2 * len(arrays) - 1) bytes per element. `arrays` may also be a "
        "list of tensors, each a list of its arrays. With read_only, only sums them (the first "
        "pass of a two-pass optimizer): 4 * len(arrays) bytes per element.");
}

}  // namespace numoptim::binding
