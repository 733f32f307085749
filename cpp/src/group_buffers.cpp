#include "group_buffers.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <new>
#include <string_view>

namespace numoptim::binding {

namespace {

std::string shape_str(const py::array& a) {
  return py::str(py::tuple(a.attr("shape"))).cast<std::string>();
}

std::string dtype_str(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

bool same_shape(const py::array& a, const py::array& b) {
  const auto* x = py::detail::array_proxy(a.ptr());
  const auto* y = py::detail::array_proxy(b.ptr());
  if (x->nd != y->nd) return false;
  for (int d = 0; d < x->nd; ++d)  // a loop: std::equal becomes a memcmp call
    if (x->dimensions[d] != y->dimensions[d]) return false;
  return true;
}

// Equal dtypes, not the same dtype object: an unpickled array has its own instance.
// The same object (NumPy's builtin descriptors are singletons) is the common case.
bool same_dtype(const py::array& a, const py::array& b) {
  PyObject* x = reinterpret_cast<PyObject*>(py::detail::array_proxy(a.ptr())->descr);
  PyObject* y = reinterpret_cast<PyObject*>(py::detail::array_proxy(b.ptr())->descr);
  return x == y || py::detail::npy_api::get().PyArray_EquivTypes_(x, y);
}

// Row-sparse gradients are stepped in float32 and float64 only.
bool is_float_array(const py::array& a) { return has_dtype<float>(a) || has_dtype<double>(a); }

std::size_t item_size(Storage storage) {
  switch (storage) {
    case Storage::float64: return 8;
    case Storage::float32: return 4;
    default: return 2;
  }
}

// The bytes an array spans, as addresses (comparable whichever arrays they belong to).
struct Span {
  std::uintptr_t begin, end;
};

// `nbytes` is passed in: py::array::nbytes() builds a dtype object for the item size,
// a cost the hot path pays per tensor.
Span span_of(const py::handle& array, std::size_t nbytes) {
  const auto begin = reinterpret_cast<std::uintptr_t>(py::detail::array_proxy(array.ptr())->data);
  return {begin, begin + nbytes};
}

bool overlap(const Span& x, const Span& y) { return x.begin < y.end && y.begin < x.end; }

std::string state_name(const char* key, std::size_t index) {
  return std::string("state['") + key + "'] of parameter " + std::to_string(index);
}

// How an error message names an array: "parameter 3", "the grad of parameter 3",
// "state['exp_avg'] of parameter 3". Only built into a string when a check fails, so
// that the checks of a group that is fine allocate nothing (the dense hot path).
struct Name {
  enum Kind { param, grad, state } kind;
  std::size_t index;
  const char* key = nullptr;  // the state entry, for Kind::state

  std::string str() const {
    if (kind == state) return state_name(key, index);
    const std::string param_name = "parameter " + std::to_string(index);
    return kind == grad ? "the grad of " + param_name : param_name;
  }
};

std::string name_str(const Name& name) { return name.str(); }
const std::string& name_str(const std::string& name) { return name; }

template <class What>
void check_layout(const py::array& a, const What& what, bool writeable) {
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(name_str(what) + " is not C-contiguous: numoptim updates arrays in "
                                           "place and needs contiguous memory (use "
                                           "np.ascontiguousarray)");
  // The kernels access elements through typed pointers, which must be aligned (an array
  // made by np.frombuffer at an odd offset is not).
  if (!(a.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_))
    throw py::value_error(name_str(what) + " is not aligned to its element size (use "
                                           "np.require(a, requirements='A'))");
  if (writeable && !a.writeable()) throw py::value_error(name_str(what) + " is read-only");
}

// A state buffer must look exactly like its parameter, but for its dtype, which is
// float32 for a 16-bit parameter with master weights (`float32_state`).
// The shape of a state buffer: the parameter's, or (size,) for a `flat` one.
std::vector<py::ssize_t> state_shape(const py::array& param, bool flat) {
  if (flat) return {static_cast<py::ssize_t>(param.size())};
  return std::vector<py::ssize_t>(param.shape(), param.shape() + param.ndim());
}

// The parameter's values in a state buffer's shape (copy_param).
py::object param_values(const py::array& param, bool flat) {
  return flat ? param.attr("reshape")(-1) : py::object(param);
}

template <class What>
void check_buffer(py::handle obj, const What& what, const py::array& param,
                  bool float32_state = false, bool flat = false) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(name_str(what) + " must be a numpy.ndarray, got " + describe(obj));
  py::array a = py::reinterpret_borrow<py::array>(obj);
  if (float32_state && !has_dtype<float>(a))
    throw py::type_error(name_str(what) + " has dtype " + dtype_str(a) +
                         " but the parameter has master weights, kept in float32");
  if (!float32_state && !same_dtype(a, param))
    throw py::type_error(name_str(what) + " has dtype " + dtype_str(a) +
                         " but the parameter has dtype " + dtype_str(param));
  if (flat ? a.ndim() != 1 || a.shape(0) != param.size() : !same_shape(a, param))
    throw py::value_error(name_str(what) + " has shape " + shape_str(a) +
                          " but the parameter has shape " + shape_str(param) +
                          (flat ? " (a flat state buffer has the parameter's size)" : ""));
  check_layout(a, what, true);
}

void check_scalar(py::handle obj, const Name& what) {
  if (!py::isinstance<py::array>(obj) ||
      !has_dtype<float>(py::reinterpret_borrow<py::array>(obj)) ||
      py::reinterpret_borrow<py::array>(obj).ndim() != 0)
    throw py::type_error(what.str() + " must be a 0-d float32 array, got " + describe(obj));
  check_layout(py::reinterpret_borrow<py::array>(obj), what, true);
}

// dict[key], borrowed, or null when absent: PyDict_GetItem without its saving and
// restoring of the error state (1.6% of an Adam step over 500 small tensors).
PyObject* dict_item(PyObject* dict, PyObject* key) {
  PyObject* value = PyDict_GetItemWithError(dict, key);
  if (value == nullptr && PyErr_Occurred()) throw py::error_already_set();
  return value;
}

// The state entry `key` of a parameter's state dict, borrowed, or null. The key is the
// interned str that the setter below stores, so the lookup matches by pointer.
PyObject* state_item(py::handle state, const char* key) {
  return dict_item(state.ptr(), key_object(key));
}

// Stores a state entry under the interned key: a key made from a C string per call is
// another str object, and every later lookup of it would compare the characters.
void set_state_item(py::handle state, const char* key, py::handle value) {
  if (PyDict_SetItem(state.ptr(), key_object(key), value.ptr()) != 0)
    throw py::error_already_set();
}

template <std::size_t N>
std::array<PyObject*, N> key_objects(const std::vector<StateLayout::Entry>& entries) {
  std::array<PyObject*, N> keys{};
  for (std::size_t k = 0; k < entries.size(); ++k) keys[k] = key_object(entries[k].key);
  return keys;
}

}  // namespace

// Python strings for state keys and attribute names, made once per distinct key for the
// life of the process (a handful of names), so that a step neither builds nor hashes a
// new string. The GIL serializes access to the cache.
PyObject* key_object(const char* key) {
  static auto* cache = new std::map<std::string, PyObject*, std::less<>>();  // never freed
  const auto it = cache->find(std::string_view(key));
  if (it != cache->end()) return it->second;
  PyObject* str = PyUnicode_InternFromString(key);
  if (str == nullptr) throw py::error_already_set();
  cache->emplace(key, str);
  return str;
}

template <>
PyObject* dtype_object<float16>() {
  static PyObject* const dtype = py::dtype("float16").release().ptr();
  return dtype;
}

template <>
PyObject* dtype_object<bfloat16>() {
  static PyObject* const dtype = []() -> PyObject* {
    try {
      return py::dtype::from_args(py::module_::import("ml_dtypes").attr("bfloat16"))
          .release()
          .ptr();
    } catch (py::error_already_set& error) {
      if (!error.matches(PyExc_ImportError)) throw;
      return nullptr;  // without ml_dtypes there are no bfloat16 arrays to step
    }
  }();
  return dtype;
}

Storage storage_of_array(const py::array& a) {
  if (has_dtype<float>(a)) return Storage::float32;
  if (has_dtype<double>(a)) return Storage::float64;
  if (has_dtype<float16>(a)) return Storage::float16;
  if (has_dtype<bfloat16>(a)) return Storage::bfloat16;
  return Storage::none;
}

Storage complex_storage_of_array(const py::array& a) {
  if (has_dtype<std::complex<float>>(a)) return Storage::float32;
  if (has_dtype<std::complex<double>>(a)) return Storage::float64;
  return Storage::none;
}

namespace {

// Fills a new state buffer with a rule's initial value. A complex buffer is filled as its
// reals, so that both parts start at the value: torch starts Adagrad's `sum` and Rprop's
// `step_size` of a complex parameter at complex(v, v), which its real view steps as v, v.
void fill_initial(py::array& buffer, double initial, bool complex) {
  if (initial == 0) return;  // state_zeros() zero-filled it
  if (complex) {
    const py::dtype real = py::dtype(buffer.itemsize() == 8 ? "float32" : "float64");
    buffer.attr("view")(real).attr("fill")(initial);
  } else {
    buffer.attr("fill")(initial);
  }
}

}  // namespace

std::string describe(py::handle obj) {
  if (py::isinstance<py::array>(obj)) {
    py::array a = py::reinterpret_borrow<py::array>(obj);
    return "an array of dtype " + dtype_str(a) + " and shape " + shape_str(a);
  }
  return py::str(py::type::handle_of(obj).attr("__name__")).cast<std::string>();
}

bool is_row_sparse(py::handle grad) {
  // Only reached for a grad that is not an ndarray, so the import (a dict lookup once
  // numoptim is loaded) stays off the dense hot path.
  if (py::isinstance<py::array>(grad)) return false;
  return py::isinstance(grad, py::module_::import("numoptim.sparse").attr("RowSparseGrad"));
}

namespace {


const ParameterType& parameter_type() {
  // Made once and never freed, as key_object()'s strings.
  static const ParameterType parameter = [] {
    py::object type = py::module_::import("numoptim.parameter").attr("Parameter");
    auto* t = reinterpret_cast<PyTypeObject*>(type.release().ptr());
    PyObject* property = dict_item(t->tp_dict, key_object("grad"));
    Py_XINCREF(property);
    return ParameterType{t, property};
  }();
  return parameter;
}

}  // namespace

void check_grad(py::handle grad_obj, const py::array& param, std::size_t i, std::size_t nbytes) {
  const Name name{Name::param, i};
  if (!py::isinstance<py::array>(grad_obj))
    throw py::type_error("the grad of " + name.str() + " must be a numpy.ndarray, got " +
                         describe(grad_obj));
  const auto grad = py::reinterpret_borrow<py::array>(grad_obj);
  if (!same_dtype(grad, param))
    throw py::type_error("the grad of " + name.str() + " has dtype " + dtype_str(grad) +
                         " but the parameter has dtype " + dtype_str(param));
  if (!same_shape(grad, param))
    throw py::value_error("the grad of " + name.str() + " has shape " + shape_str(grad) +
                          " but the parameter has shape " + shape_str(param));
  check_layout(grad, Name{Name::grad, i}, false);
  // The loop reads grad[k] as it writes param[k]: a grad that overlaps its parameter
  // at an offset would be read after part of it was overwritten.
  const Span param_span = span_of(param, nbytes), grad_span = span_of(grad_obj, nbytes);
  if (grad_span.begin != param_span.begin && overlap(param_span, grad_span))
    throw py::value_error("the grad of " + name.str() +
                          " overlaps the parameter's memory at an offset");
}

py::object GradReader::operator()(py::handle p) const {
  if (fast_ && Py_TYPE(p.ptr()) == parameter_.type) {
    PyObject* dict = PyObject_GenericGetDict(p.ptr(), nullptr);
    if (dict == nullptr) throw py::error_already_set();
    const py::object owner = py::reinterpret_steal<py::object>(dict);
    if (PyObject* grad = dict_item(dict, stored_)) return py::reinterpret_borrow<py::object>(grad);
  }
  return py::getattr(p, grad_, py::none());
}

GradReader::GradReader()
    : parameter_(parameter_type()),
      grad_(key_object("grad")),
      stored_(key_object("_grad")),
      fast_(parameter_.grad_property != nullptr &&
            dict_item(parameter_.type->tp_dict, grad_) == parameter_.grad_property) {}

PyTypeObject* plain_parameter_type() {
  const ParameterType& parameter = parameter_type();
  const bool own = parameter.grad_property != nullptr &&
                   dict_item(parameter.type->tp_dict, key_object("grad")) == parameter.grad_property;
  return own ? parameter.type : nullptr;
}

std::vector<Entry> collect(py::handle params, py::dict state, const StateLayout& layout,
                           std::vector<std::size_t>* sparse_grads) {
  const GradReader grad_of;
  PyObject* const master_key = key_object(kMasterKey);
  const auto buffer_keys = key_objects<std::tuple_size_v<decltype(Entry::buffers)>>(layout.buffers);
  const auto scalar_keys = key_objects<std::tuple_size_v<decltype(Entry::scalars)>>(layout.scalars);
  std::vector<Entry> entries;
  entries.reserve(py::len_hint(params));
  std::size_t index = 0;
  for (py::handle p : params) {
    const std::size_t i = index++;
    py::object grad_obj = grad_of(p);
    if (grad_obj.is_none()) continue;  // as torch: a parameter without a gradient is skipped
    if (!py::isinstance<py::array>(grad_obj) && is_row_sparse(grad_obj)) {
      if (sparse_grads == nullptr)
        throw SparseGradientError("parameter " + std::to_string(i) +
                                  " has a sparse gradient (RowSparseGrad)");
      sparse_grads->push_back(i);
      continue;
    }
    const Name name{Name::param, i};
    if (!py::isinstance<py::array>(p))
      throw py::type_error("optimizer can only optimize Parameters, but " + name.str() +
                           " is " + describe(p));
    const auto param = py::reinterpret_borrow<py::array>(p);
    Storage storage = storage_of_array(param);
    bool complex = false;
    if (storage == Storage::none) {
      storage = complex_storage_of_array(param);
      complex = storage != Storage::none;
    }
    if (storage == Storage::none)
      throw py::type_error("numoptim optimizes float32, float64, float16, bfloat16, complex64 "
                           "and complex128 arrays, but " + name.str() + " has dtype " +
                           dtype_str(param));
    check_layout(param, name, true);
    const std::size_t nbytes =
        static_cast<std::size_t>(param.size()) * item_size(storage) * (complex ? 2 : 1);
    check_grad(grad_obj, param, i, nbytes);

    Entry e;
    e.index = i;
    e.param = py::reinterpret_borrow<py::object>(p);
    e.grad = grad_obj;
    e.fresh = true;
    e.storage = storage;
    e.complex = complex;
    e.nbytes = nbytes;
    PyObject* st = dict_item(state.ptr(), p.ptr());  // borrowed; no defaultdict insert
    if (st != nullptr) {
      if (!PyDict_Check(st))
        throw py::type_error("optimizer.state of " + name.str() + " must be a dict, got " +
                             describe(st));
      e.state = py::reinterpret_borrow<py::object>(st);
      auto lookup = [&](PyObject* key) -> py::object {
        PyObject* value = dict_item(st, key);
        if (value == nullptr) return py::object();
        e.fresh = false;
        return py::reinterpret_borrow<py::object>(value);
      };
      const bool master = uses_master(layout, storage);
      for (std::size_t k = 0; k < layout.buffers.size(); ++k) {
        e.buffers[k] = lookup(buffer_keys[k]);
        if (e.buffers[k])
          check_buffer(e.buffers[k], Name{Name::state, i, layout.buffers[k].key}, param, master,
                       layout.buffers[k].flat);
      }
      if (master) {
        e.master = lookup(master_key);
        if (e.master) check_buffer(e.master, Name{Name::state, i, kMasterKey}, param, true);
      }
      for (std::size_t k = 0; k < layout.scalars.size(); ++k) {
        e.scalars[k] = lookup(scalar_keys[k]);
        if (e.scalars[k]) check_scalar(e.scalars[k], Name{Name::state, i, layout.scalars[k].key});
      }
    }
    entries.push_back(std::move(e));
  }
  return entries;
}

void check_assigned_grad(const py::array& param, const py::array& grad) {
  if (!same_dtype(grad, param))
    throw py::type_error("assigned grad has data of a different type: " + dtype_str(grad) +
                         " (the parameter is " + dtype_str(param) + ")");
  if (!same_shape(grad, param))
    throw py::value_error("assigned grad has data of a different size: " + shape_str(grad) +
                          " (the parameter is " + shape_str(param) + ")");
  check_layout(grad, std::string("the assigned grad"), false);
  const std::size_t nbytes = static_cast<std::size_t>(param.size()) * param.itemsize();
  const Span param_span = span_of(param, nbytes), grad_span = span_of(grad, nbytes);
  if (grad_span.begin != param_span.begin && overlap(param_span, grad_span))
    throw py::value_error("the assigned grad overlaps the parameter's memory at an offset");
}

py::array state_zeros(const py::dtype& dtype, const std::vector<py::ssize_t>& shape) {
  std::size_t nbytes = static_cast<std::size_t>(dtype.itemsize());
  for (py::ssize_t d : shape) nbytes *= static_cast<std::size_t>(d);
  constexpr std::size_t kHugePage = std::size_t(2) << 20;
  const std::size_t alignment = nbytes >= kHugePage ? kHugePage : 64;
  const std::size_t size = (std::max<std::size_t>(nbytes, 1) + alignment - 1) / alignment * alignment;
  void* data = std::aligned_alloc(alignment, size);
  if (data == nullptr) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
  if (alignment == kHugePage) madvise(data, size, MADV_HUGEPAGE);  // advice: may fail
#endif
  std::memset(data, 0, nbytes);  // after the advice: the first touch takes huge pages
  py::capsule owner(data, [](void* p) { std::free(p); });
  return py::array(dtype, shape, std::vector<py::ssize_t>{}, data, owner);
}

// A view of `param.size` elements of `flat` from element `offset`, in the shape of the
// parameter's state (state_shape).
py::array view_of(const py::array& flat, std::size_t offset, const py::array& param,
                  bool flat_state) {
  auto* base = static_cast<char*>(py::detail::array_proxy(flat.ptr())->data);
  return py::array(flat.dtype(), state_shape(param, flat_state), std::vector<py::ssize_t>{},
                   base + offset * flat.itemsize(), flat);
}

// Flat state for flat parameters: a run of two or more parameters without state, of one
// dtype, each starting where the one before ends in memory (views into one buffer, as
// numoptim.utils.flat_parameters makes them), gets each state buffer as views into one
// new buffer, so that the step can run over the run in one pass (see coalesce()).
void create_flat_state(std::vector<Entry>& entries, py::dict state, const StateLayout& layout) {
  if (layout.buffers.empty()) return;
  auto data_of_param = [](const Entry& e) {
    return reinterpret_cast<std::uintptr_t>(py::detail::array_proxy(e.param.ptr())->data);
  };
  std::size_t begin = 0;
  while (begin < entries.size()) {
    std::size_t end = begin + 1;
    auto stateless = [&](const Entry& e) {
      return !e.state && !uses_master(layout, e.storage) &&
             dict_item(state.ptr(), e.param.ptr()) == nullptr;
    };
    if (stateless(entries[begin])) {
      while (end < entries.size() && stateless(entries[end]) &&
             entries[end].storage == entries[begin].storage &&
             entries[end].complex == entries[begin].complex &&
             data_of_param(entries[end - 1]) + entries[end - 1].nbytes == data_of_param(entries[end]))
        ++end;
    }
    if (end - begin >= 2) {
      std::size_t total = 0;
      for (std::size_t i = begin; i < end; ++i)
        total += static_cast<std::size_t>(py::reinterpret_borrow<py::array>(entries[i].param).size());
      const auto dtype = py::reinterpret_borrow<py::array>(entries[begin].param).dtype();
      for (std::size_t k = 0; k < layout.buffers.size(); ++k) {
        py::array flat = state_zeros(dtype, {static_cast<py::ssize_t>(total)});
        fill_initial(flat, layout.buffers[k].initial, entries[begin].complex);
        std::size_t offset = 0;
        for (std::size_t i = begin; i < end; ++i) {
          Entry& e = entries[i];
          const auto param = py::reinterpret_borrow<py::array>(e.param);
          if (!e.state) {
            e.state = py::dict();
            state[e.param] = e.state;
          }
          const bool flat_state = layout.buffers[k].flat;
          e.buffers[k] = view_of(flat, offset, param, flat_state);
          if (layout.buffers[k].copy_param)
            e.buffers[k].attr("__setitem__")(py::ellipsis(), param_values(param, flat_state));
          set_state_item(e.state, layout.buffers[k].key, e.buffers[k]);
          offset += static_cast<std::size_t>(param.size());
        }
      }
    }
    begin = end;
  }
}

void create_state(std::vector<Entry>& entries, py::dict state, const StateLayout& layout) {
  if (layout.buffers.empty() && layout.scalars.empty() && !layout.master)
    return;  // e.g. SGD without momentum
  create_flat_state(entries, state, layout);
  for (Entry& e : entries) {
    const bool master = uses_master(layout, e.storage);
    if (layout.buffers.empty() && layout.scalars.empty() && !master) continue;
    if (!e.state) {
      // A parameter listed twice shares one state, as in torch: its first entry may have
      // just created it. `fresh` stays as collect() found it, as torch's for-loop, which
      // gathers every listing's state before it updates any (SGD's first momentum
      // buffer is the gradient for both listings).
      if (PyObject* st = dict_item(state.ptr(), e.param.ptr())) {
        e.state = py::reinterpret_borrow<py::object>(st);
      } else {
        e.state = py::dict();
        state[e.param] = e.state;
      }
    }
    const auto param = py::reinterpret_borrow<py::array>(e.param);
    auto existing = [&](const char* key) -> py::object {
      PyObject* value = state_item(e.state, key);
      return value == nullptr ? py::object() : py::reinterpret_borrow<py::object>(value);
    };
    if (master && !e.master && !(e.master = existing(kMasterKey))) {
      // The master starts as the parameter, exactly (every 16-bit value is a float32).
      e.master = state_zeros(py::dtype::of<float>(),
                             std::vector<py::ssize_t>(param.shape(), param.shape() + param.ndim()));
      e.master.attr("__setitem__")(py::ellipsis(), param);
      set_state_item(e.state, kMasterKey, e.master);
    }
    for (std::size_t k = 0; k < layout.buffers.size(); ++k) {
      if (e.buffers[k]) continue;
      if ((e.buffers[k] = existing(layout.buffers[k].key))) continue;
      const bool flat = layout.buffers[k].flat;
      py::array buffer =
          state_zeros(master ? py::dtype::of<float>() : param.dtype(), state_shape(param, flat));
      fill_initial(buffer, layout.buffers[k].initial, e.complex);
      // With master weights, from the master: the parameter's value, exactly.
      if (layout.buffers[k].copy_param)
        buffer.attr("__setitem__")(
            py::ellipsis(),
            param_values(master ? py::reinterpret_borrow<py::array>(e.master) : param, flat));
      set_state_item(e.state, layout.buffers[k].key, buffer);
      e.buffers[k] = buffer;
    }
    for (std::size_t k = 0; k < layout.scalars.size(); ++k) {
      if (e.scalars[k]) continue;
      if ((e.scalars[k] = existing(layout.scalars[k].key))) continue;
      py::array_t<float> scalar(std::vector<py::ssize_t>{});
      *scalar.mutable_data() = static_cast<float>(layout.scalars[k].initial);
      set_state_item(e.state, layout.scalars[k].key, scalar);
      e.scalars[k] = scalar;
    }
  }
}

// Sorts spans by start. Arrays made one after the other mostly come in address order,
// with a few made elsewhere (in memory freed earlier): those few are set aside, sorted
// and merged back, which costs little more than one pass (std::sort on 500 spans was a
// measured 5% of a 500-tensor Adam step).
void sort_by_begin(std::vector<Span>& spans) {
  auto by_begin = [](const Span& a, const Span& b) { return a.begin < b.begin; };
  if (std::is_sorted(spans.begin(), spans.end(), by_begin)) return;
  std::vector<Span> in_order, others;
  in_order.reserve(spans.size());
  for (const Span& span : spans)
    (in_order.empty() || span.begin >= in_order.back().begin ? in_order : others)
        .push_back(span);
  if (!std::is_sorted(others.begin(), others.end(), by_begin))
    std::sort(others.begin(), others.end(), by_begin);
  std::merge(in_order.begin(), in_order.end(), others.begin(), others.end(), spans.begin(),
             by_begin);
}

bool shares_memory(const std::vector<Entry>& entries) {
  if (entries.size() < 2) return false;  // one tensor: its grad was checked in collect()
  // The parameters' bytes (written) and the gradients' (read), each list by start.
  std::vector<Span> params, grads;
  params.reserve(entries.size());
  grads.reserve(entries.size());
  for (const Entry& e : entries) {
    params.push_back(span_of(e.param, e.nbytes));
    grads.push_back(span_of(e.grad, e.nbytes));
  }
  sort_by_begin(params);
  sort_by_begin(grads);
  // Both lists in one pass by start, keeping the furthest end seen so far of the
  // parameters and of all: a span overlaps an earlier one exactly when it starts before
  // that one's end. Two gradients may share bytes; any other overlap is shared memory
  // (a grad that is its own parameter's memory included, harmless but rare).
  std::uintptr_t written_end = 0, any_end = 0;
  for (std::size_t i = 0, j = 0; i < params.size() || j < grads.size();) {
    const bool written =
        j == grads.size() || (i < params.size() && params[i].begin <= grads[j].begin);
    const Span& span = written ? params[i++] : grads[j++];
    if (span.begin == span.end) continue;  // an empty array touches nothing
    if (span.begin < (written ? any_end : written_end)) return true;
    any_end = std::max(any_end, span.end);
    if (written) written_end = std::max(written_end, span.end);
  }
  return false;
}

RowSparseEntry check_row_sparse(py::handle p, py::handle grad, std::size_t i) {
  const std::string name = "parameter " + std::to_string(i);
  if (!py::isinstance<py::array>(p))
    throw py::type_error("optimizer can only optimize Parameters, but " + name + " is " +
                         describe(p));
  const auto param = py::reinterpret_borrow<py::array>(p);
  // A complex parameter's rows are the real pairs of their memory, as for dense steps.
  const bool complex = complex_storage_of_array(param) != Storage::none;
  if (!is_float_array(param) && !complex)
    throw py::type_error("row-sparse gradients need float32, float64, complex64 or complex128 "
                         "parameters, but " + name + " has dtype " + dtype_str(param));
  check_layout(param, name, true);
  if (param.ndim() < 1)
    throw py::value_error("a row-sparse gradient needs a parameter with at least one "
                          "dimension, but " + name + " is 0-d");
  const std::string what = "the RowSparseGrad of " + name;
  if (!py::tuple(grad.attr("shape")).equal(py::tuple(param.attr("shape"))))
    throw py::value_error(what + " has shape " + py::str(grad.attr("shape")).cast<std::string>() +
                          " but the parameter has shape " + shape_str(param));
  py::object indices_obj = grad.attr("indices"), values_obj = grad.attr("values");
  if (!py::isinstance<py::array_t<std::int64_t>>(indices_obj) ||
      py::reinterpret_borrow<py::array>(indices_obj).ndim() != 1)
    throw py::type_error(what + " must have 1-D int64 indices, got " + describe(indices_obj));
  const auto indices = py::reinterpret_borrow<py::array>(indices_obj);
  check_layout(indices, what + "'s indices", false);
  if (!py::isinstance<py::array>(values_obj))
    throw py::type_error(what + " must have array values, got " + describe(values_obj));
  const auto values = py::reinterpret_borrow<py::array>(values_obj);
  if (!values.dtype().is(param.dtype()))
    throw py::type_error(what + " has dtype " + dtype_str(values) +
                         " but the parameter has dtype " + dtype_str(param));
  bool row_shape = values.ndim() == param.ndim() && values.shape(0) == indices.shape(0);
  for (py::ssize_t d = 1; row_shape && d < param.ndim(); ++d)
    row_shape = values.shape(d) == param.shape(d);
  if (!row_shape)
    throw py::value_error(what + " has values of shape " + shape_str(values) + " for " +
                          std::to_string(indices.shape(0)) + " rows of a parameter of shape " +
                          shape_str(param));
  check_layout(values, what + "'s values", false);
  // The kernels write param[row] unchecked, so every index is checked here.
  const auto* rows = static_cast<const std::int64_t*>(indices.data());
  const std::int64_t num_rows = param.shape(0);
  for (py::ssize_t k = 0; k < indices.shape(0); ++k)
    if (rows[k] < 0 || rows[k] >= num_rows)
      throw py::value_error(what + " has row index " + std::to_string(rows[k]) +
                            " out of range for " + std::to_string(num_rows) + " rows");
  RowSparseEntry e;
  e.index = i;
  e.param = py::reinterpret_borrow<py::object>(p);
  e.indices = indices_obj;
  e.values = values_obj;
  e.entries = static_cast<std::size_t>(indices.shape(0));
  e.width = num_rows == 0 ? 0 : static_cast<std::size_t>(param.size() / num_rows);
  if (complex) e.width *= 2;  // reals per row
  return e;
}

void find_row_sparse_state(RowSparseEntry& e, py::dict state,
                           const std::vector<const char*>& keys, bool int_step) {
  PyObject* st = PyDict_GetItem(state.ptr(), e.param.ptr());  // borrowed; no defaultdict insert
  if (st == nullptr) return;
  const std::string name = "parameter " + std::to_string(e.index);
  if (!PyDict_Check(st))
    throw py::type_error("optimizer.state of " + name + " must be a dict, got " + describe(st));
  e.state = py::reinterpret_borrow<py::object>(st);
  const auto param = py::reinterpret_borrow<py::array>(e.param);
  for (std::size_t k = 0; k < keys.size(); ++k) {
    PyObject* value = state_item(st, keys[k]);
    if (value == nullptr) continue;
    e.buffers[k] = py::reinterpret_borrow<py::object>(value);
    check_buffer(e.buffers[k], state_name(keys[k], e.index), param);
  }
  if (int_step) {
    PyObject* step = state_item(st, "step");
    if (step == nullptr) return;
    // torch keeps SparseAdam's step as a Python int; anything usable as an int is taken.
    if (PyBool_Check(step) || !PyIndex_Check(step))
      throw py::type_error(state_name("step", e.index) + " must be an int, got " +
                           describe(step));
    e.step = py::reinterpret_steal<py::object>(PyNumber_Index(step));
    if (!e.step) throw py::error_already_set();
    // An int beyond a double's range (2**1024) has no bias correction to compute.
    if (std::isinf(PyLong_AsDouble(e.step.ptr()) + 1.0) || PyErr_Occurred()) {
      PyErr_Clear();
      throw py::value_error(state_name("step", e.index) + " is too large: " +
                            py::str(e.step).cast<std::string>());
    }
  }
}

void create_row_sparse_state(std::vector<RowSparseEntry>& entries, py::dict state,
                             const std::vector<const char*>& keys, bool int_step) {
  for (RowSparseEntry& e : entries) {
    if (!e.state) {
      // A parameter listed twice: its first entry may have just created the state.
      PyObject* st = PyDict_GetItem(state.ptr(), e.param.ptr());
      if (st != nullptr) {
        e.state = py::reinterpret_borrow<py::object>(st);
      } else {
        e.state = py::dict();
        state[e.param] = e.state;
      }
    }
    const auto param = py::reinterpret_borrow<py::array>(e.param);
    for (std::size_t k = 0; k < keys.size(); ++k) {
      if (e.buffers[k]) continue;
      if (PyObject* existing = state_item(e.state, keys[k])) {
        e.buffers[k] = py::reinterpret_borrow<py::object>(existing);
        continue;
      }
      py::array buffer = state_zeros(
          param.dtype(), std::vector<py::ssize_t>(param.shape(), param.shape() + param.ndim()));
      set_state_item(e.state, keys[k], buffer);
      e.buffers[k] = buffer;
    }
    if (int_step) {
      // The step as it is after this step; a parameter listed twice counts twice, as torch.
      // Python ints, as torch's, so that no count overflows.
      PyObject* current = state_item(e.state, "step");
      py::object before = current == nullptr ? py::object(py::int_(0))
                                             : py::reinterpret_borrow<py::object>(current);
      py::object after = before + py::int_(1);
      set_state_item(e.state, "step", after);
      e.step_count = after.cast<double>();
    }
  }
}

}  // namespace numoptim::binding
