#include "group_buffers.hpp"

#include <unordered_set>

namespace numoptim::binding {

namespace {

std::string shape_str(const py::array& a) {
  return py::str(py::tuple(a.attr("shape"))).cast<std::string>();
}

std::string dtype_str(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

bool same_shape(const py::array& a, const py::array& b) {
  if (a.ndim() != b.ndim()) return false;
  for (py::ssize_t d = 0; d < a.ndim(); ++d)
    if (a.shape(d) != b.shape(d)) return false;
  return true;
}

// Equal dtypes, not the same dtype object: an unpickled array has its own instance.
bool same_dtype(const py::array& a, const py::array& b) {
  return py::detail::npy_api::get().PyArray_EquivTypes_(a.dtype().ptr(), b.dtype().ptr());
}

bool is_float_array(const py::array& a) { return has_dtype<float>(a) || has_dtype<double>(a); }

void check_layout(const py::array& a, const std::string& what, bool writeable) {
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(what + " is not C-contiguous: numoptim updates arrays in place and "
                                 "needs contiguous memory (use np.ascontiguousarray)");
  if (writeable && !a.writeable()) throw py::value_error(what + " is read-only");
}

// A state buffer must look exactly like its parameter.
void check_buffer(py::handle obj, const std::string& what, const py::array& param) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(what + " must be a numpy.ndarray, got " + describe(obj));
  py::array a = py::reinterpret_borrow<py::array>(obj);
  if (!same_dtype(a, param))
    throw py::type_error(what + " has dtype " + dtype_str(a) + " but the parameter has dtype " +
                         dtype_str(param));
  if (!same_shape(a, param))
    throw py::value_error(what + " has shape " + shape_str(a) + " but the parameter has shape " +
                          shape_str(param));
  check_layout(a, what, true);
}

void check_scalar(py::handle obj, const std::string& what) {
  if (!py::isinstance<py::array>(obj) ||
      !has_dtype<float>(py::reinterpret_borrow<py::array>(obj)) ||
      py::reinterpret_borrow<py::array>(obj).ndim() != 0)
    throw py::type_error(what + " must be a 0-d float32 array, got " + describe(obj));
  check_layout(py::reinterpret_borrow<py::array>(obj), what, true);
}

std::string state_name(const char* key, std::size_t index) {
  return std::string("state['") + key + "'] of parameter " + std::to_string(index);
}

}  // namespace

std::string describe(py::handle obj) {
  if (py::isinstance<py::array>(obj)) {
    py::array a = py::reinterpret_borrow<py::array>(obj);
    return "an array of dtype " + dtype_str(a) + " and shape " + shape_str(a);
  }
  return py::str(py::type::handle_of(obj).attr("__name__")).cast<std::string>();
}

std::vector<Entry> collect(py::handle params, py::dict state, const StateLayout& layout) {
  static const py::str grad_attr("grad");
  std::vector<Entry> entries;
  std::size_t index = 0;
  for (py::handle p : params) {
    const std::size_t i = index++;
    py::object grad_obj = py::getattr(p, grad_attr, py::none());
    if (grad_obj.is_none()) continue;  // as torch: a parameter without a gradient is skipped
    const std::string name = "parameter " + std::to_string(i);
    if (!py::isinstance<py::array>(p))
      throw py::type_error("optimizer can only optimize Parameters, but " + name + " is " +
                           describe(p));
    const auto param = py::reinterpret_borrow<py::array>(p);
    if (!is_float_array(param))
      throw py::type_error("numoptim optimizes float32 and float64 arrays, but " + name +
                           " has dtype " + dtype_str(param));
    check_layout(param, name, true);
    if (!py::isinstance<py::array>(grad_obj))
      throw py::type_error("the grad of " + name + " must be a numpy.ndarray, got " +
                           describe(grad_obj));
    const auto grad = py::reinterpret_borrow<py::array>(grad_obj);
    if (!same_dtype(grad, param))
      throw py::type_error("the grad of " + name + " has dtype " + dtype_str(grad) +
                           " but the parameter has dtype " + dtype_str(param));
    if (!same_shape(grad, param))
      throw py::value_error("the grad of " + name + " has shape " + shape_str(grad) +
                            " but the parameter has shape " + shape_str(param));
    check_layout(grad, "the grad of " + name, false);

    Entry e;
    e.index = i;
    e.param = py::reinterpret_borrow<py::object>(p);
    e.grad = grad_obj;
    e.fresh = true;
    PyObject* st = PyDict_GetItem(state.ptr(), p.ptr());  // borrowed; no defaultdict insert
    if (st != nullptr) {
      if (!PyDict_Check(st))
        throw py::type_error("optimizer.state of " + name + " must be a dict, got " +
                             describe(st));
      e.state = py::reinterpret_borrow<py::object>(st);
      auto lookup = [&](const char* key) -> py::object {
        PyObject* value = PyDict_GetItemString(st, key);
        if (value == nullptr) return py::object();
        e.fresh = false;
        return py::reinterpret_borrow<py::object>(value);
      };
      for (std::size_t k = 0; k < layout.buffers.size(); ++k) {
        e.buffers[k] = lookup(layout.buffers[k].key);
        if (e.buffers[k]) check_buffer(e.buffers[k], state_name(layout.buffers[k].key, i), param);
      }
      for (std::size_t k = 0; k < layout.scalars.size(); ++k) {
        e.scalars[k] = lookup(layout.scalars[k].key);
        if (e.scalars[k]) check_scalar(e.scalars[k], state_name(layout.scalars[k].key, i));
      }
    }
    entries.push_back(std::move(e));
  }
  return entries;
}

void create_state(std::vector<Entry>& entries, py::dict state, const StateLayout& layout) {
  if (layout.buffers.empty() && layout.scalars.empty()) return;  // e.g. SGD without momentum
  for (Entry& e : entries) {
    if (!e.state) {
      e.state = py::dict();
      state[e.param] = e.state;
    }
    const auto param = py::reinterpret_borrow<py::array>(e.param);
    for (std::size_t k = 0; k < layout.buffers.size(); ++k) {
      if (e.buffers[k]) continue;
      py::array buffer(param.dtype(),
                       std::vector<py::ssize_t>(param.shape(), param.shape() + param.ndim()));
      buffer.attr("fill")(layout.buffers[k].initial);
      e.state[layout.buffers[k].key] = buffer;
      e.buffers[k] = buffer;
    }
    for (std::size_t k = 0; k < layout.scalars.size(); ++k) {
      if (e.scalars[k]) continue;
      py::array_t<float> scalar(std::vector<py::ssize_t>{});
      *scalar.mutable_data() = static_cast<float>(layout.scalars[k].initial);
      e.state[layout.scalars[k].key] = scalar;
      e.scalars[k] = scalar;
    }
  }
}

bool has_duplicates(const std::vector<Entry>& entries) {
  std::unordered_set<const void*> seen;
  for (const Entry& e : entries)
    if (!seen.insert(data_of<char>(e.param)).second) return true;
  return false;
}

}  // namespace numoptim::binding
