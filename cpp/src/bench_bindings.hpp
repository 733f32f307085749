// numoptim._core.bench_stream: the roofline kernel for bench/bench_step.py.
#pragma once

#include <pybind11/pybind11.h>

namespace numoptim::binding {

// Adds bench_stream to the module.
void register_bench(pybind11::module_& m);

}  // namespace numoptim::binding
