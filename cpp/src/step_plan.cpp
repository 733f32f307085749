#include "step_plan.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <unordered_map>
#include <utility>

namespace numoptim::binding {

namespace {

// Python 3.14 has no dict version tags; a free-threaded build changes dicts without the
// GIL. Neither keeps plans.
#if PY_VERSION_HEX < 0x030E0000 && !defined(Py_GIL_DISABLED)
constexpr bool kPlans = true;
std::uint64_t dict_version(PyObject* dict) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  return reinterpret_cast<PyDictObject*>(dict)->ma_version_tag;
#pragma GCC diagnostic pop
}
#else
constexpr bool kPlans = false;
std::uint64_t dict_version(PyObject*) { return 0; }
#endif

// The fields of an array that collect()'s checks read: its type, data pointer, dtype,
// flags (contiguity, alignment, writeability) and shape.
void add_fields(std::vector<std::intptr_t>& out, PyObject* obj) {
  const auto* a = py::detail::array_proxy(obj);
  out.push_back(reinterpret_cast<std::intptr_t>(Py_TYPE(obj)));
  out.push_back(reinterpret_cast<std::intptr_t>(a->data));
  out.push_back(reinterpret_cast<std::intptr_t>(a->descr));
  out.push_back(a->flags);
  out.push_back(a->nd);
  for (int d = 0; d < a->nd; ++d) out.push_back(a->dimensions[d]);
}

// Whether the array still has the fields recorded at `*at`, which moves past them.
bool same_fields(const std::intptr_t*& at, const std::intptr_t* end, PyObject* obj) {
  const auto* a = py::detail::array_proxy(obj);
  if (end - at < 5 || at[0] != reinterpret_cast<std::intptr_t>(Py_TYPE(obj)) ||
      at[1] != reinterpret_cast<std::intptr_t>(a->data) ||
      at[2] != reinterpret_cast<std::intptr_t>(a->descr) || at[3] != a->flags ||
      at[4] != a->nd || end - at < 5 + a->nd)
    return false;
  for (int d = 0; d < a->nd; ++d)
    if (at[5 + d] != a->dimensions[d]) return false;
  at += 5 + a->nd;
  return true;
}

// Every array of an entry, in one order for recording and checking.
template <class Visit>
void for_each_array(const Entry& e, const Visit& visit) {
  visit(e.param.ptr());
  visit(e.grad.ptr());
  for (const py::object& b : e.buffers)
    if (b) visit(b.ptr());
  for (const py::object& s : e.scalars)
    if (s) visit(s.ptr());
  if (e.master) visit(e.master.ptr());
}

bool same_layout(const StateLayout& a, const StateLayout& b) {
  auto same = [](const std::vector<StateLayout::Entry>& x,
                 const std::vector<StateLayout::Entry>& y) {
    if (x.size() != y.size()) return false;
    for (std::size_t k = 0; k < x.size(); ++k)
      if (std::strcmp(x[k].key, y[k].key) != 0 || x[k].initial != y[k].initial ||
          x[k].copy_param != y[k].copy_param || x[k].flat != y[k].flat)
        return false;
    return true;
  };
  return a.master == b.master && same(a.buffers, b.buffers) && same(a.scalars, b.scalars);
}

// A parameter's __dict__ (a new reference), where a Parameter keeps its grad.
py::object instance_dict(PyObject* param) {
  PyObject* dict = PyObject_GenericGetDict(param, nullptr);
  if (dict == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(dict);
}

struct StepPlan {
  py::object params;                // the group's list
  std::vector<py::object> items;    // its items: kept, so that no other object gets an address
  StateLayout layout;
  std::vector<py::object> dicts;    // optimizer.state, the entries' state dicts, the items' __dict__s
  std::vector<std::uint64_t> versions;
  std::vector<std::intptr_t> fields;  // add_fields() of every entry's arrays
  // Each entry's grad, not held: the entries give up their grads once a step has been
  // written (release_grads), so that `p.grad = None` frees the memory as before. While
  // the parameter's __dict__ keeps its version, it still holds this grad.
  std::vector<PyObject*> grads;
  Collected collected;
  bool used = false;  // whether a step has used it

  // Whether the entries are still what collect() would return for these arguments.
  // Parameters that were given new gradients (the __dict__ that keeps a parameter's
  // grad changed, nothing else did) get them read and checked as collect() does, and
  // put in the plan; a bad one raises collect()'s error and leaves the plan as it was.
  bool update(py::handle group_params, const StateLayout& now) {
    PyTypeObject* const parameter = plain_parameter_type();
    const std::size_t n = items.size();
    if (parameter == nullptr || static_cast<std::size_t>(PyList_GET_SIZE(group_params.ptr())) != n ||
        !same_layout(layout, now))
      return false;
    PyObject** const listed = PySequence_Fast_ITEMS(group_params.ptr());
    for (std::size_t i = 0; i < n; ++i)
      if (listed[i] != items[i].ptr() || Py_TYPE(listed[i]) != parameter) return false;
    // The objects are all over the heap: each is fetched a few iterations ahead.
    constexpr std::size_t kAhead = 8;
    const std::size_t first_item_dict = dicts.size() - n;
    std::vector<char> regrad(n, 0);  // items whose __dict__ changed
    bool any_regrad = false;
    for (std::size_t d = 0; d < dicts.size(); ++d) {
      if (d + kAhead < dicts.size()) __builtin_prefetch(dicts[d + kAhead].ptr());
      if (dict_version(dicts[d].ptr()) == versions[d]) continue;
      if (d < first_item_dict) return false;  // optimizer.state or a parameter's state
      regrad[d - first_item_dict] = 1;
      any_regrad = true;
    }
    // An item's __dict__ may have been replaced (p.__dict__ = {...}) rather than changed.
    for (std::size_t i = 0; i < n; ++i)
      if (instance_dict(items[i].ptr()).ptr() != dicts[first_item_dict + i].ptr()) return false;
    // The entries take their grads back (or keep their own, for a step that still holds
    // them), but for the parameters given new ones.
    if (collected.entries.use_count() > 1)
      collected.entries = std::make_shared<std::vector<Entry>>(*collected.entries);
    std::vector<Entry>& entries = *collected.entries;
    for (std::size_t k = 0; k < entries.size(); ++k)
      if (!regrad[entries[k].index]) entries[k].grad = py::reinterpret_borrow<py::object>(grads[k]);
    std::vector<std::size_t> grad_fields;  // where each entry's grad has its fields
    grad_fields.reserve(entries.size());
    const std::intptr_t* at = fields.data();
    const std::intptr_t* const end = at + fields.size();
    bool same = true;
    for (std::size_t k = 0; k < entries.size() && same; ++k) {
      if (k + 2 * kAhead < entries.size())
        for_each_array(entries[k + 2 * kAhead], [](PyObject* a) { __builtin_prefetch(a); });
      if (k + kAhead < entries.size())  // the shapes, once the arrays have arrived
        for_each_array(entries[k + kAhead], [](PyObject* a) {
          if (a != nullptr) __builtin_prefetch(py::detail::array_proxy(a)->dimensions);
        });
      const Entry& e = entries[k];
      int position = 0;  // for_each_array() visits the grad second
      for_each_array(e, [&](PyObject* a) {
        if (position++ == 1) {
          grad_fields.push_back(static_cast<std::size_t>(at - fields.data()));
          // A new grad is checked below; the old one's fields are skipped.
          if (regrad[e.index] && end - at >= 5) {
            at += 5 + at[4];
            return;
          }
        }
        same = same && same_fields(at, end, a);
      });
    }
    if (!same || at != end) return false;
    if (!any_regrad) return true;
    return regrad_entries(regrad, grad_fields);
  }

  // Reads and checks the grads of the entries marked in `regrad` and puts them in.
  bool regrad_entries(const std::vector<char>& regrad, const std::vector<std::size_t>& grad_fields) {
    const GradReader grad_of;
    std::vector<py::object> new_grads(collected.entries->size());
    std::size_t k = 0, with_grad = 0;
    for (std::size_t i = 0; i < items.size(); ++i) {
      const bool entry = k < collected.entries->size() && (*collected.entries)[k].index == i;
      if (regrad[i]) {
        py::object grad = grad_of(items[i]);
        // A parameter that gained or lost its grad, or got a row-sparse one, changes
        // the entries: collect() again.
        if (grad.is_none() != !entry || (entry && !py::isinstance<py::array>(grad)))
          return false;
        if (entry) {
          const Entry& e = (*collected.entries)[k];
          check_grad(grad, py::reinterpret_borrow<py::array>(e.param), i, e.nbytes);
          new_grads[k] = std::move(grad);
          ++with_grad;
        }
      }
      if (entry) ++k;
    }
    // Checked: now the plan changes.
    std::vector<std::intptr_t> record;
    for (std::size_t t = 0; t < new_grads.size(); ++t) {
      if (!new_grads[t]) continue;
      grads[t] = new_grads[t].ptr();
      (*collected.entries)[t].grad = std::move(new_grads[t]);
      record.clear();
      add_fields(record, (*collected.entries)[t].grad.ptr());
      // The same length: a grad has its parameter's shape.
      std::copy(record.begin(), record.end(), fields.begin() + static_cast<std::ptrdiff_t>(grad_fields[t]));
    }
    const std::size_t first_item_dict = dicts.size() - items.size();
    for (std::size_t i = 0; i < items.size(); ++i)
      if (regrad[i]) versions[first_item_dict + i] = dict_version(dicts[first_item_dict + i].ptr());
    if (with_grad > 0) collected.serial = shares_memory(*collected.entries);
    return true;
  }
};

// Whether collect()'s entries can be planned: every item a plain Parameter in a list,
// every entry with complete state that collect() found (so that writing the step
// changes no dict), and no row-sparse gradient left aside.
bool plannable(py::handle params, const std::vector<Entry>& entries, const StateLayout& layout,
               const std::vector<std::size_t>* sparse_grads) {
  PyTypeObject* const parameter = plain_parameter_type();
  if (!kPlans || parameter == nullptr || !PyList_CheckExact(params.ptr()) ||
      (sparse_grads != nullptr && !sparse_grads->empty()))
    return false;
  PyObject** const listed = PySequence_Fast_ITEMS(params.ptr());
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(params.ptr()); ++i)
    if (Py_TYPE(listed[i]) != parameter) return false;
  for (const Entry& e : entries) {
    if (e.fresh || !e.state) return false;
    for (std::size_t k = 0; k < layout.buffers.size(); ++k)
      if (!e.buffers[k]) return false;
    for (std::size_t k = 0; k < layout.scalars.size(); ++k)
      if (!e.scalars[k]) return false;
    if (uses_master(layout, e.storage) && !e.master) return false;
  }
  return true;
}

StepPlan record(py::handle params, py::dict state, const StateLayout& layout,
                Collected collected) {
  StepPlan plan;
  plan.params = py::reinterpret_borrow<py::object>(params);
  plan.layout = layout;
  plan.dicts.push_back(state);
  for (const Entry& e : *collected.entries) plan.dicts.push_back(e.state);
  for (py::handle item : params) {
    plan.items.push_back(py::reinterpret_borrow<py::object>(item));
    plan.dicts.push_back(instance_dict(item.ptr()));
  }
  for (const py::object& d : plan.dicts) plan.versions.push_back(dict_version(d.ptr()));
  for (const Entry& e : *collected.entries) {
    for_each_array(e, [&](PyObject* a) { add_fields(plan.fields, a); });
    plan.grads.push_back(e.grad.ptr());
  }
  plan.collected = std::move(collected);
  plan.collected.complete = true;  // plannable(): every entry's state was found
  return plan;
}

}  // namespace

// The plans of one optimizer's state, one per parameter group and state layout, the most
// recently used first.
class PlanCache {
 public:
  // The entries of the plan for (params, layout) when it holds; one that no longer holds
  // is dropped.
  const Collected* find(py::handle params, const StateLayout& layout) {
    for (std::size_t k = 0; k < plans_.size(); ++k) {
      StepPlan& plan = plans_[k];
      if (plan.params.ptr() != params.ptr() || !same_layout(plan.layout, layout)) continue;
      if (!plan.update(params, layout)) {
        if (!plan.used) back_off(params.ptr());
        plans_.erase(plans_.begin() + static_cast<std::ptrdiff_t>(k));
        return nullptr;
      }
      if (!plan.used) waits_.erase(params.ptr());
      plan.used = true;
      ++hits_;
      std::rotate(plans_.begin(), plans_.begin() + static_cast<std::ptrdiff_t>(k),
                  plans_.begin() + static_cast<std::ptrdiff_t>(k) + 1);
      plans_[0].collected.planned = true;
      return &plans_[0].collected;
    }
    return nullptr;
  }

  // Whether to record a plan for the group now: not while it waits after plans that
  // never held for a step (a loop that assigns new gradients before every step changes
  // the parameters' __dict__s each time, and a plan would cost without ever serving).
  bool may_record(PyObject* params) {
    const auto it = waits_.find(params);
    if (it == waits_.end() || it->second.left == 0) return true;
    --it->second.left;
    return false;
  }

  std::size_t size() const { return plans_.size(); }
  std::size_t hits() const { return hits_; }

  void add(StepPlan plan) {
    // Plans of groups that are gone (their list is held by nothing else) go first.
    plans_.erase(std::remove_if(plans_.begin(), plans_.end(),
                                [](const StepPlan& p) { return Py_REFCNT(p.params.ptr()) == 1; }),
                 plans_.end());
    if (plans_.size() >= kMaxPlans) plans_.pop_back();
    plans_.insert(plans_.begin(), std::move(plan));
  }

 private:
  // Steps to wait, doubling up to 64 for each plan of the group that never held.
  struct Wait {
    int left = 0, next = 1;
  };
  void back_off(PyObject* params) {
    Wait& wait = waits_[params];
    wait.left = wait.next;
    wait.next = std::min(2 * wait.next, 64);
  }

  static constexpr std::size_t kMaxPlans = 64;
  std::vector<StepPlan> plans_;
  std::size_t hits_ = 0;  // steps served by a plan, for tests
  // By the address of the group's list: a list made later at the same address at worst
  // waits a few steps for its first plan.
  std::unordered_map<PyObject*, Wait> waits_;
};

namespace {

// The PlanCache of a numoptim optimizer's `state`, or null for any other mapping.
PlanCache* plan_cache_of(py::dict state) {
  static PyTypeObject* const state_type = reinterpret_cast<PyTypeObject*>(
      py::object(py::module_::import("numoptim.optimizer").attr("_State")).release().ptr());
  if (Py_TYPE(state.ptr()) != state_type) return nullptr;
  PyObject* cache = PyObject_GetAttr(state.ptr(), key_object("_native_plans"));
  if (cache == nullptr) throw py::error_already_set();
  const py::object owner = py::reinterpret_steal<py::object>(cache);
  // The slot holds the PlanCache that _State made, which lives as long as the state.
  return py::isinstance<PlanCache>(owner) ? owner.cast<PlanCache*>() : nullptr;
}

}  // namespace

Collected collect_planned(py::handle params, py::dict state, const StateLayout& layout,
                          std::vector<std::size_t>* sparse_grads) {
  PlanCache* const cache = kPlans ? plan_cache_of(state) : nullptr;
  if (cache != nullptr && PyList_CheckExact(params.ptr()))
    if (const Collected* planned = cache->find(params, layout)) return *planned;
  Collected collected;
  collected.entries =
      std::make_shared<std::vector<Entry>>(collect(params, state, layout, sparse_grads));
  collected.serial = shares_memory(*collected.entries);
  if (cache != nullptr && plannable(params, *collected.entries, layout, sparse_grads) &&
      cache->may_record(params.ptr())) {
    collected.planned = true;
    cache->add(record(params, state, layout, collected));
  }
  return collected;
}

void release_grads(const Collected& written) {
  if (!written.planned) return;
  for (Entry& e : *written.entries) e.grad = py::object();
}

void bind_plan_cache(py::module_& m) {
  py::class_<PlanCache>(m, "PlanCache",
                        "The checked parameter groups of an optimizer's state, kept from one "
                        "step to the next (internal)")
      .def(py::init<>())
      .def("__len__", &PlanCache::size)
      .def_property_readonly("hits", &PlanCache::hits, "steps of a group served by its plan");
}

}  // namespace numoptim::binding
