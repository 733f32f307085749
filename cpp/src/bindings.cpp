// The native module numoptim._core: one def per update rule, plus threads and config.
//
// Each step function takes a parameter group's `params` list and the optimizer's
// `state` dict, checks everything, creates missing state, and runs the rule over all
// tensors of the group in one multi-threaded call with the GIL released.
#include <omp.h>

#include <pybind11/stl.h>

#include <atomic>

#include "bench_bindings.hpp"
#include "group_buffers.hpp"
#include "numoptim/adadelta.hpp"
#include "numoptim/ademamix.hpp"
#include "numoptim/adagrad.hpp"
#include "numoptim/adam.hpp"
#include "numoptim/adam8bit.hpp"
#include "numoptim/ademamix8bit.hpp"
#include "numoptim/lion8bit.hpp"
#include "numoptim/adamax.hpp"
#include "numoptim/adan.hpp"
#include "numoptim/nadamw.hpp"
#include "numoptim/laprop.hpp"
#include "numoptim/adabelief.hpp"
#include "numoptim/adopt.hpp"
#include "numoptim/asgd.hpp"
#include "numoptim/grad_norm.hpp"
#include "numoptim/lamb.hpp"
#include "numoptim/lars.hpp"
#include "numoptim/prodigy.hpp"
#include "numoptim/lion.hpp"
#include "numoptim/schedule_free.hpp"
#include "numoptim/nadam.hpp"
#include "numoptim/radam.hpp"
#include "numoptim/rmsprop.hpp"
#include "numoptim/rprop.hpp"
#include "numoptim/row_sparse.hpp"
#include "numoptim/sgd.hpp"
#include "numoptim/sparse_adam.hpp"
#include "numoptim/widened.hpp"
#include "step_plan.hpp"

namespace py = pybind11;
using namespace pybind11::literals;
using numoptim::binding::RowSparseEntry;
using numoptim::binding::StateLayout;
using numoptim::binding::step_group;
using numoptim::binding::PreparedStep;

namespace numoptim::binding {

std::atomic<int> g_num_threads{0};

int num_threads() {
  const int n = g_num_threads.load();
  return n > 0 ? n : omp_get_max_threads();
}

}  // namespace numoptim::binding

namespace numoptim::binding {

// Runs the row rule `Rule<T>` over the row-sparse entries of each dtype, in one
// multi-threaded call with the GIL released. `coalesce` sums repeated rows first (as
// torch's grad.coalesce()); `prepare(rule, entry)` gives an entry's Scalars.
template <template <class> class Rule, class MakeRule, class Prepare>
void step_row_sparse(const std::vector<RowSparseEntry>& entries, bool coalesce,
                     MakeRule&& make_rule, Prepare&& prepare) {
  auto run = [&](auto zero) {
    using T = decltype(zero);
    using R = Rule<T>;
    constexpr std::size_t N = R::num_buffers;
    const R rule = make_rule(zero);
    RowSparseList<T, N> list;
    std::vector<typename R::Scalars> scalars;
    for (const RowSparseEntry& e : entries) {
      const auto param = py::reinterpret_borrow<py::array>(e.param);
      if (!has_dtype<T>(param) && !has_dtype<std::complex<T>>(param)) continue;
      typename RowSparseList<T, N>::Tensor t{};
      t.base[0] = data_of<T>(e.param);
      t.base[1] = data_of<T>(e.values);
      for (std::size_t k = 0; 2 + k < N; ++k) t.base[2 + k] = data_of<T>(e.buffers[k]);
      t.rows = data_of<std::int64_t>(e.indices);
      t.entries = e.entries;
      t.width = e.width;
      list.tensors.push_back(t);
      scalars.push_back(prepare(rule, e));
    }
    if (list.tensors.empty()) return;
    py::gil_scoped_release release;
    // Coalesced copies of the gradients whose rows are not already sorted and unique.
    std::vector<std::vector<std::int64_t>> rows(coalesce ? list.tensors.size() : 0);
    std::vector<std::vector<T>> values(rows.size());
    for (std::size_t i = 0; i < rows.size(); ++i) {
      auto& t = list.tensors[i];
      if (strictly_increasing(t.rows, t.entries)) continue;
      coalesce_rows(t.rows, t.base[1], t.entries, t.width, rows[i], values[i]);
      t.rows = rows[i].data();
      t.base[1] = values[i].data();
      t.entries = rows[i].size();
    }
    run_row_sparse(rule, scalars, list, num_threads(), active_isa());
  };
  run(float{});
  run(double{});
}

}  // namespace numoptim::binding

namespace {

using numoptim::binding::check_row_sparse;

// Dense SGD over the group. Parameters whose grad is a RowSparseGrad raise
// SparseGradientError unless `allow_sparse`; then they are left for sgd_sparse_step (or
// NumPy, with momentum): the step is returned unwritten, with their positions in
// `params`, for Python to check them before anything is written.
py::object sgd_step(py::handle params, py::dict state, double lr, double momentum,
                    double dampening, double weight_decay, bool nesterov, bool maximize,
                    bool allow_sparse, bool master, bool defer) {
  StateLayout layout;
  layout.master = master;
  if (momentum != 0) layout.buffers = {{"momentum_buffer", 0.0}};
  return step_group<numoptim::SGD>(
      params, state, layout,
      [=](auto zero) {
        return numoptim::SGD<decltype(zero)>{lr, momentum, dampening, weight_decay, nesterov,
                                             maximize};
      },
      defer, allow_sparse);
}

// A row-sparse step as the binding returns it: written at once (None), or unwritten.
py::object defer_or_write(PreparedStep&& step, bool defer) {
  if (defer) return py::cast(std::move(step));
  step.write();
  return py::none();
}

// Checks the RowSparseGrad of params[k] for each position k in `positions`.
std::vector<RowSparseEntry> check_row_sparse_grads(py::handle params,
                                                   const std::vector<std::size_t>& positions) {
  const py::sequence seq = py::reinterpret_borrow<py::sequence>(params);
  std::vector<RowSparseEntry> entries;
  entries.reserve(positions.size());
  for (std::size_t k : positions) {
    py::object p = seq[k];
    entries.push_back(check_row_sparse(p, p.attr("grad"), k));
  }
  return entries;
}

// Plain SGD (no momentum, no weight decay) on the touched rows of params[k] for each
// position k (all with a RowSparseGrad), entry by entry in order, as torch's
// param.add_(sparse_grad).
py::object sgd_sparse_step(py::handle params, const std::vector<std::size_t>& positions,
                           double lr, bool maximize, bool defer) {
  PreparedStep step;
  step.write = [entries = check_row_sparse_grads(params, positions), lr, maximize] {
    numoptim::binding::step_row_sparse<numoptim::SGDRows>(
        entries, /*coalesce=*/false,
        [&](auto zero) { return numoptim::SGDRows<decltype(zero)>{lr, maximize}; },
        [](const auto& rule, const RowSparseEntry&) {
          return typename std::decay_t<decltype(rule)>::Scalars{};
        });
  };
  return defer_or_write(std::move(step), defer);
}

// SparseAdam over a group: every parameter with a grad must have a RowSparseGrad.
py::object sparse_adam_step(py::handle params, py::dict state, double lr, double beta1,
                            double beta2, double eps, bool maximize, bool defer) {
  const py::handle grad_attr = numoptim::binding::key_object("grad");
  static const std::vector<const char*> keys = {"exp_avg", "exp_avg_sq"};
  std::vector<RowSparseEntry> entries;
  std::size_t index = 0;
  for (py::handle p : params) {
    const std::size_t i = index++;
    py::object grad = py::getattr(p, grad_attr, py::none());
    if (grad.is_none()) continue;
    if (!numoptim::binding::is_row_sparse(grad))
      throw std::runtime_error(
          "SparseAdam does not support dense gradients, please consider Adam instead");
    entries.push_back(check_row_sparse(p, grad, i));
    numoptim::binding::find_row_sparse_state(entries.back(), state, keys, /*int_step=*/true);
  }
  PreparedStep step;
  step.write = [entries = std::move(entries), state, lr, beta1, beta2, eps, maximize]() mutable {
    if (entries.empty()) return;
    numoptim::binding::create_row_sparse_state(entries, state, keys, /*int_step=*/true);
    numoptim::binding::step_row_sparse<numoptim::SparseAdam>(
        entries, /*coalesce=*/true,
        [&](auto zero) {
          return numoptim::SparseAdam<decltype(zero)>{lr, beta1, beta2, eps, maximize};
        },
        [](const auto& rule, const RowSparseEntry& e) { return rule.prepare(e.step_count); });
  };
  return defer_or_write(std::move(step), defer);
}

py::object adam_step(py::handle params, py::dict state, double lr, double beta1, double beta2,
               double eps, double weight_decay, bool amsgrad, bool maximize, bool decoupled, bool master, bool defer) {
  StateLayout layout;
  layout.master = master;
  layout.scalars = {{"step", 0.0}};
  layout.buffers = {{"exp_avg", 0.0}, {"exp_avg_sq", 0.0}};
  if (amsgrad) layout.buffers.push_back({"max_exp_avg_sq", 0.0});
  return step_group<numoptim::Adam>(params, state, layout, [=](auto zero) {
    return numoptim::Adam<decltype(zero)>{lr,      beta1,    beta2,    eps, weight_decay,
                                          amsgrad, maximize, decoupled};
  }, defer);
}

// Adagrad's state is created in the constructor (python/numoptim/adagrad.py); a
// parameter added later gets it here, `sum` filled with the constructor's value.
py::object adagrad_step(py::handle params, py::dict state, double lr, double lr_decay,
                  double weight_decay, double eps, double initial_accumulator_value,
                  bool maximize, bool master, bool defer) {
  StateLayout layout;
  layout.master = master;
  layout.scalars = {{"step", 0.0}};
  layout.buffers = {{"sum", initial_accumulator_value}};
  return step_group<numoptim::Adagrad>(params, state, layout, [=](auto zero) {
    return numoptim::Adagrad<decltype(zero)>{lr, lr_decay, weight_decay, eps, maximize};
  }, defer);
}

py::object rmsprop_step(py::handle params, py::dict state, double lr, double alpha, double eps,
                  double weight_decay, double momentum, bool centered, bool maximize, bool master, bool defer) {
  StateLayout layout;
  layout.master = master;
  layout.scalars = {{"step", 0.0}};
  layout.buffers = {{"square_avg", 0.0}};
  if (momentum > 0) layout.buffers.push_back({"momentum_buffer", 0.0});
  if (centered) layout.buffers.push_back({"grad_avg", 0.0});
  return step_group<numoptim::RMSprop>(params, state, layout, [=](auto zero) {
    return numoptim::RMSprop<decltype(zero)>{lr,       alpha,    eps, weight_decay,
                                             momentum, centered, maximize};
  }, defer);
}

py::object adadelta_step(py::handle params, py::dict state, double lr, double rho, double eps,
                   double weight_decay, bool maximize, bool master, bool defer) {
  StateLayout layout;
  layout.master = master;
  layout.scalars = {{"step", 0.0}};
  layout.buffers = {{"square_avg", 0.0}, {"acc_delta", 0.0}};
  return step_group<numoptim::Adadelta>(params, state, layout, [=](auto zero) {
    return numoptim::Adadelta<decltype(zero)>{lr, rho, eps, weight_decay, maximize};
  }, defer);
}

py::object adamax_step(py::handle params, py::dict state, double lr, double beta1, double beta2,
                 double eps, double weight_decay, bool maximize, bool master, bool defer) {
  StateLayout layout;
  layout.master = master;
  layout.scalars = {{"step", 0.0}};
  layout.buffers = {{"exp_avg", 0.0}, {"exp_inf", 0.0}};
  return step_group<numoptim::Adamax>(params, state, layout, [=](auto zero) {
    return numoptim::Adamax<decltype(zero)>{lr, beta1, beta2, eps, weight_decay, maximize};
  }, defer);
}

// Schedule-Free SGD, AdamW and RAdam: the group's scalars come from Python
// (python/numoptim/schedule_free.py), which also keeps the step count in the group.
// z starts as a copy of the parameter; exp_avg_sq exists when `adaptive`.
py::object schedule_free_step(py::handle params, py::dict state, double lr, double y_lr,
                              double ckp1, double beta2, double bias_correction2, double eps,
                              double weight_decay, bool adaptive, bool normalize, bool master,
                              bool defer) {
  StateLayout layout;
  layout.master = master;
  layout.buffers = {{"z", 0.0, /*copy_param=*/true}};
  if (adaptive) layout.buffers.push_back({"exp_avg_sq", 0.0});
  return step_group<numoptim::ScheduleFree>(params, state, layout, [=](auto zero) {
    return numoptim::ScheduleFree<decltype(zero)>{
        lr, y_lr, ckp1, beta2, bias_correction2, eps, weight_decay, adaptive, normalize};
  }, defer);
}

// Lion has no step counter: its only state is exp_avg.
py::object lion_step(py::handle params, py::dict state, double lr, double beta1, double beta2,
                     double weight_decay, bool maximize, bool master, bool defer) {
  StateLayout layout;
  layout.master = master;
  layout.buffers = {{"exp_avg", 0.0}};
  return step_group<numoptim::Lion>(params, state, layout, [=](auto zero) {
    return numoptim::Lion<decltype(zero)>{lr, beta1, beta2, weight_decay, maximize};
  }, defer);
}

// AdEMAMix: three running averages under numoptim's torch-style names (bitsandbytes
// stacks the two first-moment ones in one (2, *shape) `state1`), and a step count.
py::object ademamix_step(py::handle params, py::dict state, double lr, double beta1,
                         double beta2, double beta3, double alpha, double t_alpha,
                         double t_beta3, double eps, double weight_decay, bool maximize,
                         bool master, bool defer) {
  StateLayout layout;
  layout.master = master;
  layout.scalars = {{"step", 0.0}};
  layout.buffers = {{"exp_avg_fast", 0.0}, {"exp_avg_slow", 0.0}, {"exp_avg_sq", 0.0}};
  return step_group<numoptim::AdEMAMix>(params, state, layout, [=](auto zero) {
    return numoptim::AdEMAMix<decltype(zero)>{lr,      beta1,   beta2,        beta3,
                                              alpha,   eps,     weight_decay, t_alpha,
                                              t_beta3, maximize};
  }, defer);
}

// Adan: timm keeps the step count in the group; Python passes this step's (the count
// after it) and writes it back to the group with the step.
py::object adan_step(py::handle params, py::dict state, double lr, double beta1, double beta2,
                     double beta3, double eps, double weight_decay, double step, bool no_prox,
                     bool maximize, bool master, bool defer) {
  StateLayout layout;
  layout.master = master;
  layout.buffers = {
      {"exp_avg", 0.0}, {"exp_avg_sq", 0.0}, {"exp_avg_diff", 0.0}, {"neg_pre_grad", 0.0}};
  return step_group<numoptim::Adan>(params, state, layout, [=](auto zero) {
    return numoptim::Adan<decltype(zero)>{lr,           beta1, beta2,   beta3,   eps,
                                          weight_decay, step,  no_prox, maximize};
  }, defer);
}

// LAMB: timm keeps the step count in the group, so Python passes this step's bias
// corrections; `clip` is the global grad-norm divisor (1: none), `decay` the decoupled
// decay's factor. Per-tensor norms make it a two-pass rule (two_pass.hpp).
py::object lamb_step(py::handle params, py::dict state, double lr, double beta1, double beta2,
                     double beta3, double bias_correction1, double bias_correction2, double eps,
                     double weight_decay, double decay, double clip, bool decoupled, bool adapt,
                     bool trust_clip, bool maximize, bool master, bool defer) {
  StateLayout layout;
  layout.master = master;
  layout.buffers = {{"exp_avg", 0.0}, {"exp_avg_sq", 0.0}};
  return step_group<numoptim::Lamb>(params, state, layout, [=](auto zero) {
    return numoptim::Lamb<decltype(zero)>{
        lr,           beta1, beta2, beta3,     bias_correction1, bias_correction2, eps,
        weight_decay, decay, clip,  decoupled, adapt,            trust_clip,       maximize};
  }, defer);
}

// LARS: SGD's momentum_buffer (only with momentum), scaled by per-tensor norms.
py::object lars_step(py::handle params, py::dict state, double lr, double momentum,
                     double dampening, double weight_decay, double trust_coeff, double eps,
                     bool nesterov, bool trust_clip, bool adapt, bool maximize, bool master,
                     bool defer) {
  StateLayout layout;
  layout.master = master;
  if (momentum != 0) layout.buffers = {{"momentum_buffer", 0.0}};
  return step_group<numoptim::Lars>(params, state, layout, [=](auto zero) {
    return numoptim::Lars<decltype(zero)>{lr,  momentum, dampening,  weight_decay, trust_coeff,
                                          eps, nesterov, trust_clip, adapt,        maximize};
  }, defer);
}

// NAdamW (timm): each parameter's own float32 step; Python gives the decay's scale
// (lr, or lr^2 / max_lr with corrected weight decay).
py::object nadamw_step(py::handle params, py::dict state, double lr, double beta1, double beta2,
                       double eps, double weight_decay, double wd_scale, bool maximize,
                       bool master, bool defer) {
  StateLayout layout;
  layout.master = master;
  layout.scalars = {{"step", 0.0}};
  layout.buffers = {{"exp_avg", 0.0}, {"exp_avg_sq", 0.0}};
  return step_group<numoptim::NAdamW>(params, state, layout, [=](auto zero) {
    return numoptim::NAdamW<decltype(zero)>{lr, beta1, beta2, eps, weight_decay, wd_scale,
                                            maximize};
  }, defer);
}

// LaProp (timm): step and exp_avg_lr_2 are each parameter's 0-d float32; exp_avg_lr_1
// (a Python float) is the Python class's, which gives the step size of the parameters
// it passes (those that share it) and the decay's scale.
py::object laprop_step(py::handle params, py::dict state, double beta1, double beta2, double eps,
                       double momentum_scale, double neg_step_size, double decay_scale,
                       bool decay, bool tensor_scales, bool maximize, bool master, bool defer) {
  StateLayout layout;
  layout.master = master;
  layout.scalars = {{"step", 0.0}, {"exp_avg_lr_2", 0.0}};
  layout.buffers = {{"exp_avg", 0.0}, {"exp_avg_sq", 0.0}};
  return step_group<numoptim::LaProp>(params, state, layout, [=](auto zero) {
    return numoptim::LaProp<decltype(zero)>{beta1,       beta2, eps,           momentum_scale,
                                            neg_step_size, decay_scale, decay, tensor_scales,
                                            maximize};
  }, defer);
}

// AdaBelief (timm): the step count is a Python int in each parameter's state, kept by
// the Python class, which passes the parameters of one count with its constants.
py::object adabelief_step(py::handle params, py::dict state, double beta1, double beta2,
                          double eps, double weight_decay, double decay_factor,
                          double neg_step_size, double bias_correction2_sqrt, int update_kind,
                          bool amsgrad, bool decoupled, bool maximize, bool master, bool defer) {
  StateLayout layout;
  layout.master = master;
  layout.buffers = {{"exp_avg", 0.0}, {"exp_avg_var", 0.0}};
  if (amsgrad) layout.buffers.push_back({"max_exp_avg_var", 0.0});
  return step_group<numoptim::AdaBelief>(params, state, layout, [=](auto zero) {
    return numoptim::AdaBelief<decltype(zero)>{
        beta1,      beta2,   eps,       weight_decay, decay_factor, neg_step_size,
        bias_correction2_sqrt, update_kind, amsgrad, decoupled,    maximize};
  }, defer);
}

// Adopt (timm): each parameter's own float32 step; its first step (the one that creates
// its state) only accumulates the second moment.
py::object adopt_step(py::handle params, py::dict state, double lr, double beta1, double beta2,
                      double eps, double weight_decay, double wd_scale, double clip_exp,
                      bool clip, bool decoupled, bool maximize, bool master, bool defer) {
  StateLayout layout;
  layout.master = master;
  layout.scalars = {{"step", 0.0}};
  layout.buffers = {{"exp_avg", 0.0}, {"exp_avg_sq", 0.0}};
  return step_group<numoptim::Adopt>(params, state, layout, [=](auto zero) {
    return numoptim::Adopt<decltype(zero)>{lr,       beta1, beta2,     eps,      weight_decay,
                                           wd_scale, clip_exp, clip, decoupled, maximize};
  }, defer);
}

// Prodigy's state: p0 starts as a copy of the parameter; exp_avg exists when beta1 > 0.
// Its `step`, a Python int, is the Python class's.
StateLayout prodigy_layout(bool momentum, bool master) {
  StateLayout layout;
  layout.master = master;
  // s and p0 are flat, as prodigyopt's (p.flatten()[::slice_p] with slice_p = 1).
  layout.buffers = {{"s", 0.0, false, /*flat=*/true},
                    {"p0", 0.0, /*copy_param=*/true, /*flat=*/true},
                    {"exp_avg_sq", 0.0}};
  if (momentum) layout.buffers.push_back({"exp_avg", 0.0});
  return layout;
}

// Prodigy's first pass over a group (numoptim/prodigy.hpp): the moments and s, and per
// parameter the dot product g . (p0 - p) and the sum of |s| into `out`.
py::object prodigy_moments(py::handle params, py::dict state, double beta1, double beta2,
                           double beta3, double weight_m, double weight_v, double weight_s,
                           double weight_decay, bool l2, bool active, bool maximize, bool master,
                           py::array out, bool defer) {
  return numoptim::binding::reduce_group<numoptim::ProdigyMoments>(
      params, state, prodigy_layout(beta1 > 0, master),
      [=](auto zero) {
        return numoptim::ProdigyMoments<decltype(zero)>{
            beta1, beta2, beta3, weight_m, weight_v, weight_s, weight_decay, l2, active, maximize};
      },
      out, defer);
}

// Prodigy's second pass over a group, with the step's d: the parameter update.
py::object prodigy_step(py::handle params, py::dict state, double dlr, double d, double eps,
                        double weight_decay, bool l2, bool decoupled, bool momentum,
                        bool maximize, bool master, bool defer) {
  return step_group<numoptim::ProdigyStep>(
      params, state, prodigy_layout(momentum, master),
      [=](auto zero) {
        return numoptim::ProdigyStep<decltype(zero)>{dlr, d,         eps,      weight_decay,
                                                     l2,  decoupled, momentum, maximize};
      },
      defer);
}

py::object nadam_step(py::handle params, py::dict state, double lr, double beta1, double beta2,
                double eps, double weight_decay, double momentum_decay, bool maximize,
                bool decoupled, bool master, bool defer) {
  StateLayout layout;
  layout.master = master;
  layout.scalars = {{"step", 0.0}, {"mu_product", 1.0}};
  layout.buffers = {{"exp_avg", 0.0}, {"exp_avg_sq", 0.0}};
  return step_group<numoptim::NAdam>(params, state, layout, [=](auto zero) {
    return numoptim::NAdam<decltype(zero)>{
        lr, beta1, beta2, eps, weight_decay, momentum_decay, maximize, decoupled};
  }, defer);
}

py::object radam_step(py::handle params, py::dict state, double lr, double beta1, double beta2,
                double eps, double weight_decay, bool maximize, bool decoupled, bool master, bool defer) {
  StateLayout layout;
  layout.master = master;
  layout.scalars = {{"step", 0.0}};
  layout.buffers = {{"exp_avg", 0.0}, {"exp_avg_sq", 0.0}};
  return step_group<numoptim::RAdam>(params, state, layout, [=](auto zero) {
    return numoptim::RAdam<decltype(zero)>{lr,           beta1,    beta2,    eps,
                                           weight_decay, maximize, decoupled};
  }, defer);
}

py::object asgd_step(py::handle params, py::dict state, double lr, double lambd, double alpha,
               double t0, double weight_decay, bool maximize, bool master, bool defer) {
  StateLayout layout;
  layout.master = master;
  // eta starts at the group's lr (rounded to float32, as torch's 0-d tensor).
  layout.scalars = {{"step", 0.0}, {"eta", lr}, {"mu", 1.0}};
  layout.buffers = {{"ax", 0.0}};
  return step_group<numoptim::ASGD>(params, state, layout, [=](auto zero) {
    return numoptim::ASGD<decltype(zero)>{lr, lambd, alpha, t0, weight_decay, maximize};
  }, defer);
}

py::object rprop_step(py::handle params, py::dict state, double lr, double etaminus, double etaplus,
                double step_size_min, double step_size_max, bool maximize, bool master, bool defer) {
  StateLayout layout;
  layout.master = master;
  layout.scalars = {{"step", 0.0}};
  // The step sizes start at the group's lr when the state is created.
  layout.buffers = {{"prev", 0.0}, {"step_size", lr}};
  return step_group<numoptim::Rprop>(params, state, layout, [=](auto zero) {
    return numoptim::Rprop<decltype(zero)>{etaminus, etaplus, step_size_min, step_size_max,
                                           maximize};
  }, defer);
}

// ------------------------------------------------------------------ 8-bit state

// Checks one array of an 8-bit step: an ndarray of dtype T, `size` elements (any shape),
// C-contiguous and aligned, and writeable when `writeable`. Returns its data.
template <class T>
T* checked_array(py::handle obj, const std::string& what, std::size_t size, bool writeable,
                 const char* dtype_name) {
  using numoptim::binding::describe;
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(what + " must be a numpy.ndarray, got " + describe(obj));
  const auto a = py::reinterpret_borrow<py::array>(obj);
  if (!numoptim::binding::has_dtype<T>(a))
    throw py::type_error(what + " must have dtype " + dtype_name + ", got " +
                         py::str(a.dtype()).cast<std::string>());
  if (static_cast<std::size_t>(a.size()) != size)
    throw py::value_error(what + " has " + std::to_string(a.size()) + " elements, expected " +
                          std::to_string(size));
  if (!(a.flags() & py::array::c_style) ||
      !(a.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_))
    throw py::value_error(what + " is not C-contiguous and aligned");
  if (writeable && !a.writeable()) throw py::value_error(what + " is read-only");
  return numoptim::binding::data_of<T>(py::reinterpret_borrow<py::object>(obj));
}

// One tensor of an 8-bit step, checked: its K state streams, each 8-bit (codes, absmax
// per block, map and table) or float32 (values).
template <std::size_t K>
struct EightBitTensor {
  numoptim::binding::Storage storage;
  void* param;
  const void* grad;
  std::size_t size;
  double step;
  std::uint8_t* codes[K] = {};
  float* absmax[K] = {};
  float* values[K] = {};
  const float* code[K] = {};
  const std::uint32_t* table[K] = {};
};

// Checks the tensors of an 8-bit step, each a tuple (index, param, grad, step, state1,
// state2, absmax1, absmax2, qmap1, qmap2, table1, table2): state1 (and state2) uint8 with
// the rest arrays (8-bit state), or float32 with the rest None. `step` is the tensor's step
// count after this step. state1 holds the first `InState1` streams (bitsandbytes stacks
// AdEMAMix's m1 and m2 in a state1 of shape (2, *shape), with an absmax1 of (2, blocks));
// state2, when `InState2` is 1, the last (its items are None otherwise).
template <std::size_t InState1, std::size_t InState2>
std::vector<EightBitTensor<InState1 + InState2>> check_8bit_tensors(py::list tensors) {
  using numoptim::binding::Storage;
  constexpr std::size_t K = InState1 + InState2;
  std::vector<EightBitTensor<K>> checked;
  for (py::handle item : tensors) {
    const auto t = py::reinterpret_borrow<py::tuple>(item);
    if (t.size() != 12) throw py::value_error("an 8-bit step takes 12-tuples");
    const std::string name = "parameter " + py::str(t[0]).cast<std::string>();
    EightBitTensor<K> e;
    if (!py::isinstance<py::array>(t[1]))
      throw py::type_error(name + " must be a numpy.ndarray");
    const auto param = py::reinterpret_borrow<py::array>(t[1]);
    e.storage = numoptim::binding::storage_of_array(param);
    e.size = static_cast<std::size_t>(param.size());
    auto both = [&](auto zero, const char* dtype) {
      using S = decltype(zero);
      e.param = checked_array<S>(t[1], name, e.size, true, dtype);
      e.grad = checked_array<S>(t[2], "the grad of " + name, e.size, false, dtype);
    };
    if (e.storage == Storage::float32) both(float{}, "float32");
    else if (e.storage == Storage::float16) both(numoptim::float16{}, "float16");
    else if (e.storage == Storage::bfloat16) both(numoptim::bfloat16{}, "bfloat16");
    else
      throw py::type_error(name + " has dtype " + py::str(param.dtype()).cast<std::string>() +
                           ": 8-bit optimizers step float32, float16 and bfloat16 parameters");
    const auto grad = py::reinterpret_borrow<py::array>(t[2]);
    if (grad.ndim() != param.ndim() ||
        !std::equal(param.shape(), param.shape() + param.ndim(), grad.shape()))
      throw py::value_error("the grad of " + name + " does not have the parameter's shape");
    e.step = t[3].cast<double>();
    const bool quantized = py::isinstance<py::array>(t[4]) &&
                           numoptim::binding::has_dtype<std::uint8_t>(
                               py::reinterpret_borrow<py::array>(t[4]));
    const std::size_t blocks = (e.size + numoptim::kQuantBlock - 1) / numoptim::kQuantBlock;
    // The streams of state<which> (1 or 2): `count` of them stacked in its array.
    auto streams = [&](std::size_t which, std::size_t first, std::size_t count) {
      const std::string n = std::to_string(which), of = " of " + name;
      if (quantized) {
        std::uint8_t* codes = checked_array<std::uint8_t>(t[3 + which], "state" + n + of,
                                                          count * e.size, true, "uint8");
        float* absmax = checked_array<float>(t[5 + which], "absmax" + n + of, count * blocks,
                                             true, "float32");
        const float* code =
            checked_array<float>(t[7 + which], "qmap" + n + of, 256, false, "float32");
        const std::uint32_t* table = checked_array<std::uint32_t>(
            t[9 + which], "the quantization table" + of, numoptim::kQuantTableSize, false,
            "uint32");
        for (std::size_t k = 0; k < count; ++k) {
          e.codes[first + k] = codes + k * e.size;
          e.absmax[first + k] = absmax + k * blocks;
          e.code[first + k] = code;
          e.table[first + k] = table;
        }
      } else {
        float* values =
            checked_array<float>(t[3 + which], "state" + n + of, count * e.size, true, "float32");
        for (std::size_t k = 0; k < count; ++k) e.values[first + k] = values + k * e.size;
      }
    };
    streams(1, 0, InState1);
    if (InState2 != 0) streams(2, InState1, InState2);
    checked.push_back(e);
  }
  return checked;
}

// Runs a checked 8-bit step (or, with `defer`, returns the write): `make_rule(zero, maps)`
// makes the rule for storage type decltype(zero) and the streams' maps.
template <template <class> class Rule, std::size_t K, class MakeRule>
py::object step_8bit(std::vector<EightBitTensor<K>> checked, MakeRule make_rule, bool defer) {
  using numoptim::binding::Storage;
  // Parameters that overlap each other or a gradient step one after the other, in order,
  // as in the other optimizers (with threads, the result would depend on timing).
  std::vector<std::pair<std::uintptr_t, std::uintptr_t>> spans;
  for (const EightBitTensor<K>& e : checked) {
    const std::size_t bytes = e.size * (e.storage == Storage::float32 ? 4 : 2);
    spans.push_back({reinterpret_cast<std::uintptr_t>(e.param), bytes});
    spans.push_back({reinterpret_cast<std::uintptr_t>(e.grad), bytes});
  }
  std::sort(spans.begin(), spans.end());
  bool serial = false;
  for (std::size_t k = 1; k < spans.size(); ++k)
    serial |= spans[k].first < spans[k - 1].first + spans[k - 1].second;
  PreparedStep step;
  step.write = [checked = std::move(checked), make_rule, serial]() {
    const int threads = serial ? 1 : numoptim::binding::num_threads();
    const numoptim::Isa isa = numoptim::active_isa();
    auto run = [&](auto zero) {
      using S = decltype(zero);
      using Tensor = EightBitTensor<K>;
      // One rule per set of maps: all tensors share bitsandbytes' maps unless a loaded
      // state dict brought others.
      std::vector<const Tensor*> left;
      for (const Tensor& e : checked)
        if (e.storage == numoptim::binding::storage_of<S>) left.push_back(&e);
      while (!left.empty()) {
        // The maps of the first 8-bit tensor left (none: all have float32 state).
        auto quantized = std::find_if(left.begin(), left.end(),
                                      [](const Tensor* e) { return e->codes[0] != nullptr; });
        const Tensor& first = quantized == left.end() ? *left.front() : **quantized;
        numoptim::StateMaps<K> maps;
        std::copy(first.code, first.code + K, maps.code);
        std::copy(first.table, first.table + K, maps.table);
        const Rule<S> rule = make_rule(zero, maps);
        auto same_maps = [&](const Tensor* e) {
          for (std::size_t k = 0; k < K; ++k)
            if (!std::equal(e->code[k], e->code[k] + 256, first.code[k])) return false;
          return true;
        };
        numoptim::TensorList<S, 2> list;
        std::vector<typename Rule<S>::Scalars> scalars;
        std::vector<const Tensor*> rest;
        for (const Tensor* e : left) {
          if (e->codes[0] != nullptr && !same_maps(e)) {
            rest.push_back(e);
            continue;
          }
          auto s = rule.scalars(e->step);
          s.state.param = static_cast<const S*>(e->param);
          std::copy(e->codes, e->codes + K, s.state.codes);
          std::copy(e->absmax, e->absmax + K, s.state.absmax);
          std::copy(e->values, e->values + K, s.state.values);
          list.buffers.push_back({static_cast<S*>(e->param),
                                  const_cast<S*>(static_cast<const S*>(e->grad))});
          list.sizes.push_back(e->size);
          scalars.push_back(s);
        }
        {
          py::gil_scoped_release release;
          numoptim::run_multi_tensor(rule, scalars, list, threads, isa);
        }
        left = std::move(rest);
      }
    };
    run(float{});
    run(numoptim::float16{});
    run(numoptim::bfloat16{});
  };
  return defer_or_write(std::move(step), defer);
}

// Adam8bit/AdamW8bit: state1 is m, state2 is v.
py::object adam8bit_step(py::list tensors, double lr, double beta1, double beta2, double eps,
                         double weight_decay, bool defer) {
  return step_8bit<numoptim::Adam8bit>(
      check_8bit_tensors<1, 1>(tensors), [=](auto zero, const numoptim::StateMaps<2>& maps) {
        return numoptim::Adam8bit<decltype(zero)>{lr, beta1, beta2, eps, weight_decay, maps};
      }, defer);
}

// Lion8bit: state1 is m; there is no state2.
py::object lion8bit_step(py::list tensors, double lr, double beta1, double beta2,
                         double weight_decay, bool defer) {
  return step_8bit<numoptim::Lion8bit>(
      check_8bit_tensors<1, 0>(tensors), [=](auto zero, const numoptim::StateMaps<1>& maps) {
        return numoptim::Lion8bit<decltype(zero)>{lr, beta1, beta2, weight_decay, maps};
      }, defer);
}

// AdEMAMix8bit: state1 stacks m1 and m2, state2 is nu.
py::object ademamix8bit_step(py::list tensors, double lr, double beta1, double beta2,
                             double beta3, double alpha, double t_alpha, double t_beta3,
                             double eps, double weight_decay, bool defer) {
  const numoptim::AdEMAMixHyperparameters hyper{lr,           beta1,   beta2,  beta3, alpha,
                                                eps,          weight_decay, t_alpha, t_beta3};
  return step_8bit<numoptim::AdEMAMix8bit>(
      check_8bit_tensors<2, 1>(tensors), [=](auto zero, const numoptim::StateMaps<3>& maps) {
        return numoptim::AdEMAMix8bit<decltype(zero)>{hyper, maps};
      }, defer);
}

// ------------------------------------------------------------------ gradient norms

// The storage type of a checked float array, or a TypeError naming it.
numoptim::binding::Storage float_storage(py::handle obj, const std::string& what) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(what + " must be a numpy.ndarray, got " +
                         numoptim::binding::describe(obj));
  const auto a = py::reinterpret_borrow<py::array>(obj);
  const auto storage = numoptim::binding::storage_of_array(a);
  if (storage == numoptim::binding::Storage::none)
    throw py::type_error(what + " has dtype " + py::str(a.dtype()).cast<std::string>() +
                         ": expected float32, float64, float16 or bfloat16");
  if (!(a.flags() & py::array::c_style) ||
      !(a.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_))
    throw py::value_error(what + " is not C-contiguous and aligned");
  return storage;
}

// For each array, the reduction of its elements for the vector norm of order p (the sum
// of |x|^p, the max or min of |x|, or the count of nonzeros; see grad_norm.hpp), in
// double, bit-identical for every thread count and SIMD level.
py::array_t<double> norm_reductions(py::list arrays, double p) {
  using numoptim::binding::Storage;
  std::vector<Storage> storages;
  std::size_t index = 0;
  for (py::handle a : arrays)
    storages.push_back(float_storage(a, "tensor " + std::to_string(index++)));
  py::array_t<double> out(static_cast<py::ssize_t>(storages.size()));
  double* result = out.mutable_data();
  const numoptim::NormKind kind = numoptim::norm_kind(p);
  const int threads = numoptim::binding::num_threads();
  const numoptim::Isa isa = numoptim::active_isa();
  auto run = [&](auto zero) {
    using S = decltype(zero);
    std::vector<numoptim::NormInput<S>> inputs;
    std::vector<std::size_t> positions;
    for (std::size_t i = 0; i < storages.size(); ++i) {
      if (storages[i] != numoptim::binding::storage_of<S>) continue;
      const auto a = py::reinterpret_borrow<py::array>(arrays[i]);
      inputs.push_back({static_cast<const S*>(a.data()), static_cast<std::size_t>(a.size())});
      positions.push_back(i);
    }
    if (inputs.empty()) return;
    std::vector<double> reduced(inputs.size());
    auto with_kind = [&](auto kind_constant) {
      constexpr numoptim::NormKind Kind = decltype(kind_constant)::value;
      const numoptim::NormBlock<Kind, S> rule{p};
      auto reduce = [&](const S* x, std::size_t n) {
        double value = 0;
        S* buffers[1] = {const_cast<S*>(x)};
        numoptim::update_at(isa, rule, typename numoptim::NormBlock<Kind, S>::Scalars{&value},
                            buffers, n);
        return value;
      };
      py::gil_scoped_release release;
      numoptim::reduce_tensors(inputs, Kind, reduce, reduced.data(), threads);
    };
    using K = numoptim::NormKind;
    switch (kind) {
      case K::two: with_kind(std::integral_constant<K, K::two>{}); break;
      case K::one: with_kind(std::integral_constant<K, K::one>{}); break;
      case K::power: with_kind(std::integral_constant<K, K::power>{}); break;
      case K::max: with_kind(std::integral_constant<K, K::max>{}); break;
      case K::min: with_kind(std::integral_constant<K, K::min>{}); break;
      case K::count: with_kind(std::integral_constant<K, K::count>{}); break;
    }
    for (std::size_t k = 0; k < positions.size(); ++k) result[positions[k]] = reduced[k];
  };
  run(float{});
  run(double{});
  run(numoptim::float16{});
  run(numoptim::bfloat16{});
  return out;
}

// Multiplies every array in place by `coefficient` (converted to float for float32 and
// 16-bit arrays, each value rounded once), in one multi-threaded pass. All arrays are
// checked before any is written.
void scale_arrays(py::list arrays, double coefficient) {
  using numoptim::binding::Storage;
  std::vector<Storage> storages;
  std::size_t index = 0;
  for (py::handle a : arrays) {
    const std::string what = "tensor " + std::to_string(index++);
    storages.push_back(float_storage(a, what));
    if (!py::reinterpret_borrow<py::array>(a).writeable())
      throw py::value_error(what + " is read-only");
  }
  const int threads = numoptim::binding::num_threads();
  const numoptim::Isa isa = numoptim::active_isa();
  auto run = [&](auto zero) {
    using S = decltype(zero);
    using Rule = numoptim::Scale<S>;
    numoptim::TensorList<S, 1> list;
    for (std::size_t i = 0; i < storages.size(); ++i) {
      if (storages[i] != numoptim::binding::storage_of<S>) continue;
      const auto a = py::reinterpret_borrow<py::array>(arrays[i]);
      list.buffers.push_back({numoptim::binding::data_of<S>(py::reinterpret_borrow<py::object>(arrays[i]))});
      list.sizes.push_back(static_cast<std::size_t>(a.size()));
    }
    if (list.sizes.empty()) return;
    const Rule rule{typename Rule::T(coefficient)};
    const std::vector<typename Rule::Scalars> scalars(list.sizes.size());
    py::gil_scoped_release release;
    numoptim::run_multi_tensor(rule, scalars, list, threads, isa);
  };
  run(float{});
  run(double{});
  run(numoptim::float16{});
  run(numoptim::bfloat16{});
}

// The quantization table of a sorted map of 256 float32 codes (see adam8bit.hpp).
py::array_t<std::uint32_t> quantization_table(py::handle code) {
  const float* c = checked_array<float>(code, "the quantization map", 256, false, "float32");
  py::array_t<std::uint32_t> table(numoptim::kQuantTableSize);
  if (!numoptim::build_quantization_table(c, table.mutable_data()))
    throw py::value_error(
        "unsupported quantization map: it must be 256 sorted codes in [-1, 1], and no "
        "two changes of nearest code closer than 1/128 of their magnitude");
  return table;
}

// The code indices of `values` (float32) by `table`: the quantizer alone, for tests.
py::array_t<std::uint8_t> quantize_values(py::handle values, py::handle table) {
  const auto a = py::reinterpret_borrow<py::array>(values);
  const float* x = checked_array<float>(values, "values", a.size(), false, "float32");
  const std::uint32_t* t = checked_array<std::uint32_t>(table, "the quantization table",
                                                        numoptim::kQuantTableSize, false, "uint32");
  py::array_t<std::uint8_t> out(a.size());
  std::uint8_t* q = out.mutable_data();
  for (py::ssize_t i = 0; i < a.size(); ++i) q[i] = numoptim::quantize(x[i], t);
  return out;
}

std::string compiler() {
#if defined(__clang__)
  return std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  return "gcc " + std::to_string(__GNUC__) + "." + std::to_string(__GNUC_MINOR__) + "." +
         std::to_string(__GNUC_PATCHLEVEL__);
#else
  return "unknown";
#endif
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "numoptim's native kernels (private: use the numoptim package)";

  py::register_exception<numoptim::binding::SparseGradientError>(m, "SparseGradientError",
                                                                 PyExc_TypeError);

  py::class_<PreparedStep>(m, "PreparedStep",
                           "A checked step of one parameter group; calling it writes it.")
      .def("__call__",
           [](PreparedStep& step) {
             if (!step.write) throw std::runtime_error("this step has been written already");
             auto write = std::move(step.write);
             step.write = nullptr;
             write();
           })
      .def_readonly("sparse_grads", &PreparedStep::sparse_grads);
  numoptim::binding::bind_plan_cache(m);

  // Every step takes `defer` last: false writes at once and returns None; true returns
  // the checked PreparedStep unwritten.
  m.def("sgd_step", &sgd_step, "params"_a, "state"_a, "lr"_a, "momentum"_a, "dampening"_a,
        "weight_decay"_a, "nesterov"_a, "maximize"_a, "allow_sparse"_a, "master_weights"_a,
        "defer"_a);
  m.def("adam_step", &adam_step, "params"_a, "state"_a, "lr"_a, "beta1"_a, "beta2"_a, "eps"_a,
        "weight_decay"_a, "amsgrad"_a, "maximize"_a, "decoupled"_a, "master_weights"_a,
        "defer"_a);
  m.def("sgd_sparse_step", &sgd_sparse_step, "params"_a, "positions"_a, "lr"_a, "maximize"_a,
        "defer"_a);
  m.def("sparse_adam_step", &sparse_adam_step, "params"_a, "state"_a, "lr"_a, "beta1"_a,
        "beta2"_a, "eps"_a, "maximize"_a, "defer"_a);

  m.def("adagrad_step", &adagrad_step, "params"_a, "state"_a, "lr"_a, "lr_decay"_a,
        "weight_decay"_a, "eps"_a, "initial_accumulator_value"_a, "maximize"_a, "master_weights"_a,
        "defer"_a);
  m.def("rmsprop_step", &rmsprop_step, "params"_a, "state"_a, "lr"_a, "alpha"_a, "eps"_a,
        "weight_decay"_a, "momentum"_a, "centered"_a, "maximize"_a, "master_weights"_a,
        "defer"_a);
  m.def("adadelta_step", &adadelta_step, "params"_a, "state"_a, "lr"_a, "rho"_a, "eps"_a,
        "weight_decay"_a, "maximize"_a, "master_weights"_a,
        "defer"_a);
  m.def("adamax_step", &adamax_step, "params"_a, "state"_a, "lr"_a, "beta1"_a, "beta2"_a,
        "eps"_a, "weight_decay"_a, "maximize"_a, "master_weights"_a,
        "defer"_a);
  m.def("schedule_free_step", &schedule_free_step, "params"_a, "state"_a, "lr"_a, "y_lr"_a,
        "ckp1"_a, "beta2"_a, "bias_correction2"_a, "eps"_a, "weight_decay"_a, "adaptive"_a,
        "normalize"_a, "master_weights"_a, "defer"_a);
  m.def("lion_step", &lion_step, "params"_a, "state"_a, "lr"_a, "beta1"_a, "beta2"_a,
        "weight_decay"_a, "maximize"_a, "master_weights"_a, "defer"_a);
  m.def("ademamix_step", &ademamix_step, "params"_a, "state"_a, "lr"_a, "beta1"_a, "beta2"_a,
        "beta3"_a, "alpha"_a, "t_alpha"_a, "t_beta3"_a, "eps"_a, "weight_decay"_a, "maximize"_a,
        "master_weights"_a, "defer"_a);
  m.def("adan_step", &adan_step, "params"_a, "state"_a, "lr"_a, "beta1"_a, "beta2"_a,
        "beta3"_a, "eps"_a, "weight_decay"_a, "step"_a, "no_prox"_a, "maximize"_a,
        "master_weights"_a, "defer"_a);
  m.def("lamb_step", &lamb_step, "params"_a, "state"_a, "lr"_a, "beta1"_a, "beta2"_a, "beta3"_a,
        "bias_correction1"_a, "bias_correction2"_a, "eps"_a, "weight_decay"_a, "decay"_a,
        "clip"_a, "decoupled"_a, "adapt"_a, "trust_clip"_a, "maximize"_a, "master_weights"_a,
        "defer"_a);
  m.def("lars_step", &lars_step, "params"_a, "state"_a, "lr"_a, "momentum"_a, "dampening"_a,
        "weight_decay"_a, "trust_coeff"_a, "eps"_a, "nesterov"_a, "trust_clip"_a, "adapt"_a,
        "maximize"_a, "master_weights"_a, "defer"_a);
  m.def("nadamw_step", &nadamw_step, "params"_a, "state"_a, "lr"_a, "beta1"_a, "beta2"_a,
        "eps"_a, "weight_decay"_a, "wd_scale"_a, "maximize"_a, "master_weights"_a, "defer"_a);
  m.def("laprop_step", &laprop_step, "params"_a, "state"_a, "beta1"_a, "beta2"_a, "eps"_a,
        "momentum_scale"_a, "neg_step_size"_a, "decay_scale"_a, "decay"_a, "tensor_scales"_a,
        "maximize"_a, "master_weights"_a, "defer"_a);
  m.def("adabelief_step", &adabelief_step, "params"_a, "state"_a, "beta1"_a, "beta2"_a,
        "eps"_a, "weight_decay"_a, "decay_factor"_a, "neg_step_size"_a,
        "bias_correction2_sqrt"_a, "update_kind"_a, "amsgrad"_a, "decoupled"_a, "maximize"_a,
        "master_weights"_a, "defer"_a);
  m.def("adopt_step", &adopt_step, "params"_a, "state"_a, "lr"_a, "beta1"_a, "beta2"_a,
        "eps"_a, "weight_decay"_a, "wd_scale"_a, "clip_exp"_a, "clip"_a, "decoupled"_a,
        "maximize"_a, "master_weights"_a, "defer"_a);
  m.def("prodigy_moments", &prodigy_moments, "params"_a, "state"_a, "beta1"_a, "beta2"_a,
        "beta3"_a, "weight_m"_a, "weight_v"_a, "weight_s"_a, "weight_decay"_a, "l2"_a,
        "active"_a, "maximize"_a, "master_weights"_a, "out"_a, "defer"_a);
  m.def("prodigy_step", &prodigy_step, "params"_a, "state"_a, "dlr"_a, "d"_a, "eps"_a,
        "weight_decay"_a, "l2"_a, "decoupled"_a, "momentum"_a, "maximize"_a,
        "master_weights"_a, "defer"_a);
  m.def("nadam_step", &nadam_step, "params"_a, "state"_a, "lr"_a, "beta1"_a, "beta2"_a,
        "eps"_a, "weight_decay"_a, "momentum_decay"_a, "maximize"_a, "decoupled"_a, "master_weights"_a,
        "defer"_a);
  m.def("radam_step", &radam_step, "params"_a, "state"_a, "lr"_a, "beta1"_a, "beta2"_a,
        "eps"_a, "weight_decay"_a, "maximize"_a, "decoupled"_a, "master_weights"_a,
        "defer"_a);
  m.def("asgd_step", &asgd_step, "params"_a, "state"_a, "lr"_a, "lambd"_a, "alpha"_a, "t0"_a,
        "weight_decay"_a, "maximize"_a, "master_weights"_a,
        "defer"_a);
  m.def("rprop_step", &rprop_step, "params"_a, "state"_a, "lr"_a, "etaminus"_a, "etaplus"_a,
        "step_size_min"_a, "step_size_max"_a, "maximize"_a, "master_weights"_a,
        "defer"_a);

  m.def("adam8bit_step", &adam8bit_step, "tensors"_a, "lr"_a, "beta1"_a, "beta2"_a, "eps"_a,
        "weight_decay"_a, "defer"_a);
  m.def("lion8bit_step", &lion8bit_step, "tensors"_a, "lr"_a, "beta1"_a, "beta2"_a,
        "weight_decay"_a, "defer"_a);
  m.def("ademamix8bit_step", &ademamix8bit_step, "tensors"_a, "lr"_a, "beta1"_a, "beta2"_a,
        "beta3"_a, "alpha"_a, "t_alpha"_a, "t_beta3"_a, "eps"_a, "weight_decay"_a, "defer"_a);
  m.def("quantization_table", &quantization_table, "code"_a);
  m.def("_quantize", &quantize_values, "values"_a, "table"_a);
  m.def("norm_reductions", &norm_reductions, "arrays"_a, "p"_a);
  m.def(
      "state_zeros",
      [](py::tuple shape, py::object dtype) {
        std::vector<py::ssize_t> dims;
        for (py::handle d : shape) dims.push_back(d.cast<py::ssize_t>());
        return numoptim::binding::state_zeros(py::dtype::from_args(dtype), dims);
      },
      "shape"_a, "dtype"_a);
  m.def("scale_arrays", &scale_arrays, "arrays"_a, "coefficient"_a);
  m.def("check_assigned_grad", &numoptim::binding::check_assigned_grad, "param"_a, "grad"_a);
  m.def("set_num_threads", [](int n) { numoptim::binding::g_num_threads.store(n); }, "n"_a);
  m.def("get_num_threads", &numoptim::binding::num_threads);
  m.def("simd_level", [] { return numoptim::isa_name(numoptim::active_isa()); });
  m.def("cpu_simd_level", [] { return numoptim::isa_name(numoptim::cpu_isa()); });
  m.def("openmp_version", [] { return static_cast<int>(_OPENMP); });
  m.def("compiler", &compiler);
  // The storage conversions, for tests: float32 values rounded to float16/bfloat16 bits,
  // and such bits read back as float32, as the 16-bit steps convert them at a given
  // level (capped at the CPU's; see widened.hpp and storage.hpp).
  auto level = [](const std::string& name) {
    const numoptim::Isa wanted = name == "avx512" ? numoptim::Isa::avx512
                                 : name == "avx2" ? numoptim::Isa::avx2
                                                  : numoptim::Isa::baseline;
    return std::min(wanted, numoptim::cpu_isa());
  };
  m.def(
      "_to_storage_bits",
      [level](py::array_t<float, py::array::c_style> values, const std::string& dtype,
              const std::string& isa) {
        py::array_t<std::uint16_t> out(values.size());
        const auto n = static_cast<std::size_t>(values.size());
        if (dtype == "float16")
          numoptim::narrow_block(level(isa), values.data(),
                                 reinterpret_cast<numoptim::float16*>(out.mutable_data()), n);
        else
          numoptim::narrow_block(level(isa), values.data(),
                                 reinterpret_cast<numoptim::bfloat16*>(out.mutable_data()), n);
        return out;
      },
      "values"_a, "dtype"_a, "isa"_a = "baseline");
  m.def(
      "_from_storage_bits",
      [level](py::array_t<std::uint16_t, py::array::c_style> bits, const std::string& dtype,
              const std::string& isa) {
        py::array_t<float> out(bits.size());
        const auto n = static_cast<std::size_t>(bits.size());
        if (dtype == "float16")
          numoptim::widen_block(level(isa), reinterpret_cast<const numoptim::float16*>(bits.data()),
                                out.mutable_data(), n);
        else
          numoptim::widen_block(level(isa), reinterpret_cast<const numoptim::bfloat16*>(bits.data()),
                                out.mutable_data(), n);
        return out;
      },
      "bits"_a, "dtype"_a, "isa"_a = "baseline");
  m.attr("__version__") = NUMOPTIM_VERSION;
  numoptim::binding::register_bench(m);
}
