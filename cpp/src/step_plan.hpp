// A parameter group's checked entries, kept from one step to the next.
//
// collect() finds every parameter's grad and state in Python dicts and checks every
// array, about 0.3 us per tensor: three quarters of an Adam step over 500 tensors of
// 256 elements. Between two steps of a training loop nothing of that changes (the
// values change, in place; flat parameters and gradients that are written in place are
// the extreme case), so a group whose state is complete gets a StepPlan: its entries,
// with everything they were found in and checked against. While that is unchanged, the
// entries are exactly what collect() would return, checked the same, and the step uses
// them without looking anything up:
// - the group's list holds the same objects (each a numoptim.Parameter, whose `grad` is
//   the class's own property);
// - no dict the entries came from was modified: optimizer.state, each parameter's state
//   dict and each parameter's __dict__ (where its grad is kept). CPython gives a dict a
//   new version tag (ma_version_tag) on every change, so this is one compare per dict;
// - every array has the type, data pointer, dtype, flags and shape it was checked with.
// Anything else, or any change, takes collect() again, which records a new plan. The
// plans of an optimizer live in its `state` (numoptim.optimizer._State), and go with it.
// Python 3.14 drops the version tag: there every step takes collect().
#pragma once

#include <memory>
#include <vector>

#include "group_buffers.hpp"

namespace numoptim::binding {

// collect_planned() (group_buffers.hpp) is defined here.

// numoptim._core.PlanCache, the plans of one optimizer's state.
void bind_plan_cache(py::module_& m);

}  // namespace numoptim::binding
