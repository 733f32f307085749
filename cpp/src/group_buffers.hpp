// Turns one parameter group's Python objects into checked raw buffers for the kernels.
//
// The update of a group is all-or-nothing: every parameter, gradient and state buffer
// is checked (dtype, C-contiguity, writeability, shape) before anything is created or
// written, so a bad input raises and leaves the optimizer and the parameters as they
// were. pybind11's array_t would silently convert a wrong array into a copy, and an
// in-place update of a copy is lost, so arrays are only ever inspected, never converted.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <array>
#include <complex>
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "numoptim/master_weights.hpp"
#include "numoptim/multi_tensor.hpp"
#include "numoptim/storage.hpp"
#include "numoptim/two_pass.hpp"
#include "numoptim/widened.hpp"

namespace numoptim::binding {

namespace py = pybind11;

int num_threads();

// A zero-filled array for optimizer state. Buffers of 2 MiB or more start on a 2 MiB
// boundary, span whole huge pages and are advised for them (MADV_HUGEPAGE, where THP is
// "madvise"), whatever NumPy's own threshold; smaller ones start on a 64-byte line.
// Huge pages were worth 13-23% of a large Adam step at 1 thread. The memory is freed
// with the array.
py::array state_zeros(const py::dtype& dtype, const std::vector<py::ssize_t>& shape);

// The per-parameter state a rule keeps: buffers shaped like the parameter, and 0-d
// float32 scalars (`step`, ...). A missing entry is created with the given fill value.
struct StateLayout {
  struct Entry {
    const char* key;
    double initial;
    // The buffer starts as a copy of the parameter instead (Schedule-Free's z).
    bool copy_param = false;
    // Shaped (size,) instead of like the parameter, as prodigyopt's p.flatten() state.
    bool flat = false;
  };
  std::vector<Entry> buffers;  // in the rule's buffer order after param and grad
  std::vector<Entry> scalars;  // in the rule's scalar-state order
  // fp32 master weights (the optimizer's master_weights=True): a float16 or bfloat16
  // parameter keeps a float32 copy under kMasterKey and float32 buffers.
  bool master = false;
};

// The state key of a 16-bit parameter's float32 master copy.
inline constexpr const char* kMasterKey = "master_param";


std::string describe(py::handle obj);

// An interned Python str for `key`, made once and never freed. Python objects must not
// have static storage duration: their destructors would run after the interpreter is
// finalized (a crash at exit on Python 3.12+), so strings the bindings reuse live here.
PyObject* key_object(const char* key);

// Raised by collect() for a parameter whose grad is a RowSparseGrad when the rule takes
// dense gradients only. The module exposes it as numoptim._core.SparseGradientError;
// the Python optimizer turns it into torch's RuntimeError with its own name
// ("Adam does not support sparse gradients, ..."), so no binding needs to know it.
struct SparseGradientError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Whether a grad is a numoptim.RowSparseGrad.
bool is_row_sparse(py::handle grad);

// The NumPy dtype object of a storage type, made once and kept for good (never destroyed
// after the interpreter). bfloat16's is ml_dtypes', looked up the first time an array
// that is none of the builtin float types is met; null when ml_dtypes is not installed.
template <class T>
PyObject* dtype_object() {
  static PyObject* const dtype = py::dtype::of<T>().release().ptr();
  return dtype;
}
template <>
PyObject* dtype_object<float16>();
template <>
PyObject* dtype_object<bfloat16>();

// Whether `a` holds native-endian T. NumPy's builtin descriptors are singletons, so the
// common case is one pointer comparison; only another descriptor object of the same type
// number (byte-swapped, or unpickled) is left to NumPy to judge.
template <class T>
bool has_dtype(const py::array& a) {
  PyObject* const native = dtype_object<T>();
  PyObject* descr = reinterpret_cast<PyObject*>(py::detail::array_proxy(a.ptr())->descr);
  if (descr == native) return true;
  if (native == nullptr) return false;
  if (py::detail::array_descriptor_proxy(descr)->type_num !=
      py::detail::array_descriptor_proxy(native)->type_num)
    return false;
  return py::detail::npy_api::get().PyArray_EquivTypes_(descr, native);
}

// The element types numoptim steps: a parameter's dtype, its gradient's and its state's.
enum class Storage : unsigned char { none, float32, float64, float16, bfloat16 };

template <class T>
constexpr Storage storage_of = std::is_same_v<T, float>      ? Storage::float32
                               : std::is_same_v<T, double>   ? Storage::float64
                               : std::is_same_v<T, float16>  ? Storage::float16
                               : std::is_same_v<T, bfloat16> ? Storage::bfloat16
                                                             : Storage::none;

// The storage type of an array, or Storage::none for any other dtype.
Storage storage_of_array(const py::array& a);

// The real storage under a complex64 (float32) or complex128 (float64) array, or
// Storage::none for any other dtype. The rules step a complex tensor of n elements as
// the 2n reals of its memory (re, im, re, ...), as torch.optim does through
// torch.view_as_real. A rule knows about complex numbers only where torch computes on
// the complex tensor before that view with other roundings (HasComplexVariant below).
Storage complex_storage_of_array(const py::array& a);

// Whether a parameter of this storage steps on a float32 master copy under `layout`.
inline bool uses_master(const StateLayout& layout, Storage storage) {
  return layout.master && (storage == Storage::float16 || storage == Storage::bfloat16);
}

// One tensor of the group: its arrays, checked, and its state entries.
// (py::object members, not py::array: a default py::array is an empty array, not null.)
struct Entry {
  std::size_t index;  // position in the group's params, for error messages
  py::object param, grad;
  py::object state;                   // the parameter's dict in optimizer.state
  std::array<py::object, 6> buffers;  // state buffers in layout order
  std::array<py::object, 4> scalars;  // 0-d float32 state in layout order
  bool fresh;                         // no state yet: this is the parameter's first step
  py::object master;                  // the float32 master copy (master weights), or null
  Storage storage;                    // the (real) dtype the rule steps: see `complex`
  bool complex = false;               // complex parameter, grad and state, stepped as reals
  std::size_t nbytes;                 // of the parameter, and so of its grad
};

// The data pointer of a checked array.
template <class T>
T* data_of(const py::object& array) {
  return reinterpret_cast<T*>(py::detail::array_proxy(array.ptr())->data);
}

// Finds the parameters of `params` that have a gradient, and checks them, their
// gradients and any state they already have against `layout`. Writes nothing.
// A row-sparse gradient raises SparseGradientError, unless `sparse_grads` is given:
// then the parameter is left out and its position in `params` appended there (for
// optimizers such as SGD that handle sparse gradients apart).
std::vector<Entry> collect(py::handle params, py::dict state, const StateLayout& layout,
                           std::vector<std::size_t>* sparse_grads = nullptr);

// A group's checked entries, and whether its tensors share memory (shares_memory).
struct Collected {
  std::shared_ptr<std::vector<Entry>> entries;
  bool serial;
  bool complete = false;  // every entry has all its state: none to create
  bool planned = false;   // the entries are a plan's: release_grads() once written
};

// collect() and shares_memory(), or their results kept from an earlier step in a plan
// that still holds (step_plan.hpp).
Collected collect_planned(py::handle params, py::dict state, const StateLayout& layout,
                          std::vector<std::size_t>* sparse_grads = nullptr);

// Drops the grads of a planned group's entries after its step was written (the plan
// keeps no gradient memory alive between steps; see step_plan.hpp).
void release_grads(const Collected& written);

// numoptim.Parameter, and its `grad` property as the class defines it.
struct ParameterType {
  PyTypeObject* type;
  PyObject* grad_property;
};

// Reads parameters' `grad`. A numoptim.Parameter keeps it in its `_grad` attribute, and
// while the class's `grad` is still its own property (an attrgetter of `_grad`), the
// reader takes `_grad` from the instance's __dict__: going through the property was two
// attribute lookups and a call per parameter, a tenth of a flat 500-tensor step. Any
// other object (a subclass, a patched class) goes through getattr.
class GradReader {
 public:
  GradReader();
  py::object operator()(py::handle p) const;

 private:
  const ParameterType& parameter_;
  PyObject* grad_;    // "grad"
  PyObject* stored_;  // "_grad"
  bool fast_;
};

// collect()'s checks of a parameter's dense gradient (the parameter checked already,
// `nbytes` its size in bytes; `i` its position, for the messages). Writes nothing.
void check_grad(py::handle grad, const py::array& param, std::size_t i, std::size_t nbytes);

// numoptim.Parameter while its `grad` is the class's own property (which keeps the grad
// in the instance's __dict__ under `_grad`), else null.
PyTypeObject* plain_parameter_type();

// The checks of `param.grad = grad` for a dense grad, with the messages the step gives
// for "the assigned grad": dtype (TypeError), shape, layout and an overlap with the
// parameter at an offset (ValueError). Parameter's setter calls it: in Python, finding
// the two addresses alone took 6 us.
void check_assigned_grad(const py::array& param, const py::array& grad);

// Creates the missing state entries (filled with the layout's value) of every entry.
void create_state(std::vector<Entry>& entries, py::dict state, const StateLayout& layout);

// Whether tensors share memory: a parameter listed twice, or parameters and gradients
// that are overlapping views of one buffer. Their updates then run one tensor after the
// other, in the group's order, as torch's for-loop does: with threads, the result would
// depend on which thread got to the shared bytes first.
bool shares_memory(const std::vector<Entry>& entries);

// The writing half of a step whose checks have passed: creates the missing state and
// runs the rule. A binding returns it to Python unrun when asked to (`defer`), so that
// an optimizer checks all its parameter groups before it writes any of them.
struct PreparedStep {
  std::function<void()> write;
  std::vector<std::size_t> sparse_grads;  // SGD: parameters left to the row-sparse path
};

// The gathered buffers of one dtype, ready for run_multi_tensor.
template <class T, std::size_t N>
struct Gathered {
  TensorList<T, N> tensors;
  std::vector<std::array<float*, 4>> scalar_state;
  std::vector<bool> fresh;
};

// The tensors of storage T among entries [first, last).
template <class T, std::size_t N>
Gathered<T, N> gather(const Entry* first, const Entry* last, const StateLayout& layout) {
  static_assert(N >= 2 && N <= 8, "a rule has a param, a grad and up to 6 state buffers");
  Gathered<T, N> out;
  const auto count = static_cast<std::size_t>(last - first);
  out.tensors.buffers.reserve(count);
  out.tensors.sizes.reserve(count);
  out.scalar_state.reserve(count);
  out.fresh.reserve(count);
  for (; first != last; ++first) {
    const Entry& e = *first;
    if (e.storage != storage_of<T>) continue;
    std::array<T*, N> b{};
    b[0] = data_of<T>(e.param);
    b[1] = data_of<T>(e.grad);
    for (std::size_t k = 0; k < layout.buffers.size() && 2 + k < N; ++k)
      b[2 + k] = data_of<T>(e.buffers[k]);
    std::array<float*, 4> s{};
    for (std::size_t k = 0; k < layout.scalars.size(); ++k) s[k] = data_of<float>(e.scalars[k]);
    out.tensors.buffers.push_back(b);
    out.tensors.sizes.push_back(e.nbytes / sizeof(T));  // 2 reals per complex element
    out.scalar_state.push_back(s);
    out.fresh.push_back(e.fresh);
  }
  return out;
}

template <class T, std::size_t N>
Gathered<T, N> gather(const std::vector<Entry>& entries, const StateLayout& layout) {
  return gather<T, N>(entries.data(), entries.data() + entries.size(), layout);
}

// Whether a rule steps complex tensors with other arithmetic than real ones: it then has
// a member `bool complex`, set for its complex tensors (RMSprop: torch adds the weight
// decay to a complex gradient before viewing it as reals, and complex arithmetic does
// not fuse the multiply-add that the real one does).
template <class Rule, class = void>
struct HasComplexVariant : std::false_type {};
template <class Rule>
struct HasComplexVariant<Rule, std::void_t<decltype(Rule::complex)>> : std::true_type {};

// Merges each run of tensors that continue one another in memory (every buffer of a
// tensor starts where the previous tensor's ends) and have bit-identical step constants
// into one tensor: a flat group (parameters, gradients and state views into one buffer
// each, see numoptim.utils.flat_parameters) then runs as one pass over contiguous memory.
// The rules are elementwise, so the results are the same bit for bit.
template <class Scalars, class T, std::size_t N>
void coalesce(std::vector<Scalars>& scalars, TensorList<T, N>& tensors) {
  std::size_t kept = 0;
  for (std::size_t t = 0; t < tensors.sizes.size(); ++t) {
    if (kept > 0) {
      const auto& prev = tensors.buffers[kept - 1];
      const auto& next = tensors.buffers[t];
      bool adjacent = true;
      for (std::size_t b = 0; b < N; ++b)
        adjacent &= prev[b] == nullptr ? next[b] == nullptr
                                       : prev[b] + tensors.sizes[kept - 1] == next[b];
      if (adjacent && std::memcmp(&scalars[kept - 1], &scalars[t], sizeof(Scalars)) == 0) {
        tensors.sizes[kept - 1] += tensors.sizes[t];
        continue;
      }
    }
    tensors.buffers[kept] = tensors.buffers[t];
    tensors.sizes[kept] = tensors.sizes[t];
    scalars[kept] = scalars[t];
    ++kept;
  }
  tensors.buffers.resize(kept);
  tensors.sizes.resize(kept);
  scalars.resize(kept);
}

// The float32 buffers of a group's tensors of 16-bit storage S with master weights: the
// master in the parameter's place, no gradient, and the float32 state; with, per tensor,
// where its master starts and its 16-bit gradient and parameter (see master_weights.hpp).
template <class S, std::size_t N>
struct GatheredMaster {
  TensorList<float, N> tensors;
  std::vector<std::array<float*, 4>> scalar_state;
  std::vector<bool> fresh;
  OnMaster<S> via;
};

template <class S, std::size_t N>
GatheredMaster<S, N> gather_master(const std::vector<Entry>& entries, const StateLayout& layout) {
  GatheredMaster<S, N> out;
  for (const Entry& e : entries) {
    if (e.storage != storage_of<S>) continue;
    std::array<float*, N> b{};
    b[0] = data_of<float>(e.master);
    for (std::size_t k = 0; k < layout.buffers.size() && 2 + k < N; ++k)
      b[2 + k] = data_of<float>(e.buffers[k]);
    std::array<float*, 4> scalar_state{};
    for (std::size_t k = 0; k < layout.scalars.size(); ++k)
      scalar_state[k] = data_of<float>(e.scalars[k]);
    out.tensors.buffers.push_back(b);
    out.tensors.sizes.push_back(e.nbytes / sizeof(S));
    out.scalar_state.push_back(scalar_state);
    out.fresh.push_back(e.fresh);
    out.via.master.push_back(b[0]);
    out.via.grad.push_back(data_of<S>(e.grad));
    out.via.param.push_back(data_of<S>(e.param));
  }
  return out;
}

// Runs MasterWeights<R, S> over the group's tensors of 16-bit storage S (gather_master):
// each tensor's Scalars carry its 16-bit grad and parameter.
template <class R, class S>
void run_master_weights(const R& rule, const std::vector<Entry>& entries,
                        const StateLayout& layout, int threads, Isa isa) {
  using M = MasterWeights<R, S>;
  auto g = gather_master<S, M::num_buffers>(entries, layout);
  if (g.tensors.sizes.empty()) return;
  std::vector<typename M::Scalars> scalars;
  for (std::size_t t = 0; t < g.tensors.sizes.size(); ++t)
    scalars.push_back(g.via.template scalars<R>(
        t, rule.prepare(g.scalar_state[t].data(), g.fresh[t])));
  py::gil_scoped_release release;
  run_multi_tensor(M{rule}, scalars, g.tensors, threads, isa);
}

// Creates the missing state of a checked group and runs `Rule<T>` over its tensors of
// each storage type (16-bit ones with master weights through MasterWeights<Rule<float>>).
// `make_rule` builds the rule for one compute type: make_rule(T{}) -> Rule<T>.
template <template <class> class Rule, class MakeRule>
void write_group(const Collected& checked, py::dict state, const StateLayout& layout,
                 const MakeRule& make_rule) {
  std::vector<Entry>& entries = *checked.entries;
  if (entries.empty()) return;
  if (!checked.complete) create_state(entries, state, layout);
  const bool serial = checked.serial;
  const int threads = serial ? 1 : num_threads();
  const Isa isa = active_isa();
  auto execute = [&](const auto& rule, auto g) {
    if (g.tensors.sizes.empty()) return;
    auto scalars = prepare_all(rule, g.scalar_state, g.fresh, layout.scalars.size());
    coalesce(scalars, g.tensors);
    py::gil_scoped_release release;
    run_multi_tensor(rule, scalars, g.tensors, threads, isa);
  };
  auto run = [&](auto zero) {
    using T = decltype(zero);
    constexpr std::size_t N = Rule<float>::num_buffers;
    if constexpr (std::is_same_v<T, float16>) {  // through the float32 rule (widened.hpp)
      execute(Widened<Rule<float>, T>{make_rule(float{}), isa}, gather<T, N>(entries, layout));
    } else if constexpr (HasComplexVariant<Rule<T>>::value) {
      // Each run of consecutive real or complex tensors with its variant of the rule, in
      // the group's order (tensors that share memory are stepped in that order).
      const Entry* const end = entries.data() + entries.size();
      for (const Entry* first = entries.data(); first != end;) {
        const Entry* last = first;
        while (last != end && last->complex == first->complex) ++last;
        Rule<T> rule = make_rule(zero);
        rule.complex = first->complex;
        execute(rule, gather<T, N>(first, last, layout));
        first = last;
      }
    } else {
      execute(make_rule(zero), gather<T, N>(entries, layout));
    }
  };
  auto run_master = [&](auto zero) {
    run_master_weights<Rule<float>, decltype(zero)>(make_rule(float{}), entries, layout, threads,
                                                     isa);
  };
  // One pass per storage type present: a group may mix them, in one native call.
  bool present[5] = {};
  for (const Entry& e : entries) present[static_cast<int>(e.storage)] = true;
  if (present[static_cast<int>(Storage::float32)]) run(float{});
  if (present[static_cast<int>(Storage::float64)]) run(double{});
  if (present[static_cast<int>(Storage::float16)])
    layout.master ? run_master(float16{}) : run(float16{});
  if (present[static_cast<int>(Storage::bfloat16)])
    layout.master ? run_master(bfloat16{}) : run(bfloat16{});
}

// write_group for a two-pass rule (two_pass.hpp): per-tensor reductions, then the
// update. float16 runs the rule's own loop (no Widened blocks), and tensors that share
// memory are stepped one after the other, each with both its passes, as torch's for-loop.
template <template <class> class Rule, class MakeRule>
void write_group_two_pass(const Collected& checked, py::dict state, const StateLayout& layout,
                          const MakeRule& make_rule) {
  std::vector<Entry>& entries = *checked.entries;
  if (entries.empty()) return;
  if (!checked.complete) create_state(entries, state, layout);
  const bool serial = checked.serial;
  const int threads = serial ? 1 : num_threads();
  const Isa isa = active_isa();
  auto execute = [&](const auto& rule, auto& g, const auto& via) {
    auto scalars = prepare_all(rule, g.scalar_state, g.fresh, layout.scalars.size());
    py::gil_scoped_release release;
    if (!serial) return run_two_pass(rule, scalars, g.tensors, threads, isa, via);
    for (std::size_t t = 0; t < scalars.size(); ++t) {
      auto one = g.tensors;
      one.buffers = {g.tensors.buffers[t]};
      one.sizes = {g.tensors.sizes[t]};
      run_two_pass(rule, std::vector{scalars[t]}, one, threads, isa, via.only(t));
    }
  };
  auto run = [&](auto zero) {
    using T = decltype(zero);
    auto g = gather<T, Rule<float>::num_buffers>(entries, layout);
    if (!g.tensors.sizes.empty()) execute(make_rule(zero), g, Direct{});
  };
  auto run_master = [&](auto zero) {
    auto g = gather_master<decltype(zero), Rule<float>::num_buffers>(entries, layout);
    if (!g.tensors.sizes.empty()) execute(make_rule(float{}), g, g.via);
  };
  bool present[5] = {};
  for (const Entry& e : entries) present[static_cast<int>(e.storage)] = true;
  if (present[static_cast<int>(Storage::float32)]) run(float{});
  if (present[static_cast<int>(Storage::float64)]) run(double{});
  if (present[static_cast<int>(Storage::float16)])
    layout.master ? run_master(float16{}) : run(float16{});
  if (present[static_cast<int>(Storage::bfloat16)])
    layout.master ? run_master(bfloat16{}) : run(bfloat16{});
}

// The first pass alone of a rule whose update needs sums over every group (Prodigy's
// d): checks everything, then writes at once, or returns the write with `defer`. The
// write creates the missing state, runs pass 1 (which may write state, never the
// parameter) and stores each parameter's Rule::num_sums sums in row k of `out` for the
// parameter at position k of `params` (rows of parameters without a grad are left as
// they were). `out` must stay alive until then: the optimizer holds it.
template <template <class> class Rule, class MakeRule>
py::object reduce_group(py::handle params, py::dict state, const StateLayout& layout,
                        const MakeRule& make_rule, py::array out, bool defer) {
  constexpr std::size_t K = Rule<float>::num_sums;
  std::vector<Entry> entries = collect(params, state, layout);
  if (!has_dtype<double>(out) || out.ndim() != 2 ||
      out.shape(0) != static_cast<py::ssize_t>(py::len(params)) ||
      out.shape(1) != static_cast<py::ssize_t>(K) || !(out.flags() & py::array::c_style) ||
      !out.writeable())
    throw py::value_error("out must be a writeable C-contiguous float64 array of shape (len(params), " +
                          std::to_string(K) + ")");
  const bool serial = shares_memory(entries);
  PreparedStep step;
  step.write = [entries = std::move(entries), state, layout, make_rule, out, serial]() mutable {
    if (entries.empty()) return;
    create_state(entries, state, layout);
    const int threads = serial ? 1 : num_threads();
    const Isa isa = active_isa();
    double* rows = data_of<double>(out);
    auto execute = [&](Storage storage, const auto& rule, auto& g, const auto& via) {
      if (g.tensors.sizes.empty()) return;
      auto scalars = prepare_all(rule, g.scalar_state, g.fresh, layout.scalars.size());
      std::vector<double> sums;
      {
        py::gil_scoped_release release;
        sums = first_pass(rule, scalars, g.tensors, threads, isa, via);
      }
      std::size_t t = 0;  // the gathered tensors are the entries of this storage, in order
      for (const Entry& e : entries) {
        if (e.storage != storage) continue;
        for (std::size_t j = 0; j < K; ++j) rows[e.index * K + j] = sums[t * K + j];
        ++t;
      }
    };
    auto run = [&](auto zero) {
      using T = decltype(zero);
      auto g = gather<T, Rule<float>::num_buffers>(entries, layout);
      execute(storage_of<T>, make_rule(zero), g, Direct{});
    };
    auto run_master = [&](auto zero) {
      using S = decltype(zero);
      auto g = gather_master<S, Rule<float>::num_buffers>(entries, layout);
      execute(storage_of<S>, make_rule(float{}), g, g.via);
    };
    run(float{});
    run(double{});
    layout.master ? run_master(float16{}) : run(float16{});
    layout.master ? run_master(bfloat16{}) : run(bfloat16{});
  };
  if (defer) return py::cast(std::move(step));
  step.write();
  return py::none();
}

// One group's step: checks everything, then writes at once and returns None, or, with
// `defer` (or row-sparse gradients left to Python, when `allow_sparse`), returns the
// PreparedStep unwritten. The deferred step keeps `make_rule`, so it must hold values,
// not references.
template <template <class> class Rule, class MakeRule>
py::object step_group(py::handle params, py::dict state, const StateLayout& layout,
                      const MakeRule& make_rule, bool defer, bool allow_sparse = false) {
  std::vector<std::size_t> sparse_grads;
  const Collected checked =
      collect_planned(params, state, layout, allow_sparse ? &sparse_grads : nullptr);
  auto write = [](const Collected& checked, py::dict state, const StateLayout& layout,
                  const MakeRule& make_rule) {
    if constexpr (IsTwoPass<Rule<float>>::value)
      write_group_two_pass<Rule>(checked, state, layout, make_rule);
    else
      write_group<Rule>(checked, state, layout, make_rule);
  };
  if (!defer && sparse_grads.empty()) {
    write(checked, state, layout, make_rule);
    release_grads(checked);
    return py::none();
  }
  PreparedStep step;
  step.write = [checked, state, layout, make_rule, write] {
    write(checked, state, layout, make_rule);
    release_grads(checked);
  };
  step.sparse_grads = std::move(sparse_grads);
  return py::cast(std::move(step));
}

// ------------------------------------------------------------ row-sparse gradients

// One parameter with a RowSparseGrad: its checked arrays and state.
struct RowSparseEntry {
  std::size_t index;  // position in the group's params, for error messages
  py::object param, indices, values;
  py::object state;                   // the parameter's dict in optimizer.state (or null)
  std::array<py::object, 2> buffers;  // state buffers in the caller's key order
  std::size_t entries, width;         // rows of values, reals per row (2 per complex)
  py::object step;                    // the Python int `step` (SparseAdam), or null
  double step_count = 0;              // `step` after this step's increment, for the rule
};

// Checks a parameter and its RowSparseGrad: a C-contiguous writeable float or complex
// parameter (a complex one is stepped as the real pairs of its memory) with at least
// one dimension, int64 row indices inside it, values of the parameter's dtype and row
// shape. Writes nothing.
RowSparseEntry check_row_sparse(py::handle param, py::handle grad, std::size_t index);

// Looks up the parameter's existing state for `keys` (buffers shaped like the
// parameter) and an int `step` when `int_step`. Writes nothing.
void find_row_sparse_state(RowSparseEntry& e, py::dict state,
                           const std::vector<const char*>& keys, bool int_step);

// Creates missing state (zero buffers, step 0), then adds one to every `step`.
void create_row_sparse_state(std::vector<RowSparseEntry>& entries, py::dict state,
                             const std::vector<const char*>& keys, bool int_step);

}  // namespace numoptim::binding
