"""L-BFGS with an optional strong-Wolfe line search, as ``torch.optim.LBFGS``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ._checks import Float32Or64Only, check_param_dtype
from ._native import check_lr, lr_value
from .optimizer import Optimizer, ParamsT
from .sparse import RowSparseGrad

__all__ = ["LBFGS"]

# Scalars follow torch's types on purpose: where torch holds a 0-d tensor (a dot
# product, ys, H_diag, the first step length) this module holds a NumPy scalar or 0-d
# array of the parameters' dtype, and where torch holds a Python float (losses, lr,
# c1, c2) it holds a Python float. NumPy >= 2 (NEP 50) then rounds mixed float32
# arithmetic and comparisons exactly as torch does, so float32 runs take the same
# branches as torch's.


def _dot(a: np.ndarray, b: np.ndarray):
    """a . b summed in NumPy's pairwise order, the same on every CPU.

    ``np.dot`` calls BLAS, whose summation order depends on the kernel OpenBLAS picks
    for the CPU (AVX2 or AVX-512): a float32 run could then take one more iteration on
    one machine than on another. Products and pairwise sums are exactly rounded the
    same way everywhere.
    """
    return np.add.reduce(a * b)


def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
    """Minimizer of the cubic through (x1, f1, g1) and (x2, f2, g2), clamped to bounds.

    Falls back to the bounds' midpoint when the cubic has no real minimizer
    (minFunc's polyinterp, as torch ports it).
    """
    if bounds is not None:
        xmin_bound, xmax_bound = bounds
    else:
        xmin_bound, xmax_bound = (x1, x2) if x1 <= x2 else (x2, x1)
    # Like tensor arithmetic, a division by zero gives inf/nan here rather than warning.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
        d2_square = d1**2 - g1 * g2
        if d2_square >= 0:
            d2 = np.sqrt(d2_square)
            if x1 <= x2:
                min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
            else:
                min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
            return min(max(min_pos, xmin_bound), xmax_bound)
    return (xmin_bound + xmax_bound) / 2.0


def _strong_wolfe(obj_func, x, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9, max_ls=25):
    """Line search for a step t along d meeting the strong Wolfe conditions.

    Brackets an interval that holds an acceptable step, then zooms in with cubic
    interpolation (minFunc's lswolfe, as torch ports it).

    Returns:
        (loss, flat gradient, t, number of function evaluations) at the accepted step.
    """
    d_norm = np.max(np.abs(d))
    g = g.copy()
    f_new, g_new = obj_func(x, t, d)
    ls_func_evals = 1
    gtd_new = _dot(g_new, d)

    # Bracketing phase: grow t until an interval containing a Wolfe point is found.
    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    ls_iter = 0
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket = [t_prev, t]
            bracket_f = [f_prev, f_new]
            bracket_g = [g_prev, g_new.copy()]
            bracket_gtd = [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket = [t]
            bracket_f = [f_new]
            bracket_g = [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket = [t_prev, t]
            bracket_f = [f_prev, f_new]
            bracket_g = [g_prev, g_new.copy()]
            bracket_gtd = [gtd_prev, gtd_new]
            break
        min_step = t + 0.01 * (t - t_prev)
        max_step = t * 10
        tmp = t
        t = _cubic_interpolate(
            t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds=(min_step, max_step)
        )
        t_prev = tmp
        f_prev = f_new
        g_prev = g_new.copy()
        gtd_prev = gtd_new
        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = _dot(g_new, d)
        ls_iter += 1

    if ls_iter == max_ls:
        bracket = [0, t]
        bracket_f = [f, f_new]
        bracket_g = [g, g_new]

    # Zoom phase: shrink the bracket until a point meets the conditions.
    insuf_progress = False
    low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(
            bracket[0], bracket_f[0], bracket_gtd[0], bracket[1], bracket_f[1], bracket_gtd[1]
        )
        # A trial point too close to an end of the bracket makes little progress; after
        # one such step (or when it lands on an end), move it 10% of the width inside.
        eps = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < eps:
            if insuf_progress or t >= max(bracket) or t <= min(bracket):
                if abs(t - max(bracket)) < abs(t - min(bracket)):
                    t = max(bracket) - eps
                else:
                    t = min(bracket) + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False

        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = _dot(g_new, d)
        ls_iter += 1

        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low_pos]:
            # Armijo condition fails, or no lower than the lowest point: new high end.
            bracket[high_pos] = t
            bracket_f[high_pos] = f_new
            bracket_g[high_pos] = g_new.copy()
            bracket_gtd[high_pos] = gtd_new
            low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high_pos] - bracket[low_pos]) >= 0:
                # The old high end becomes the new low end.
                bracket[high_pos] = bracket[low_pos]
                bracket_f[high_pos] = bracket_f[low_pos]
                bracket_g[high_pos] = bracket_g[low_pos]
                bracket_gtd[high_pos] = bracket_gtd[low_pos]
            bracket[low_pos] = t
            bracket_f[low_pos] = f_new
            bracket_g[low_pos] = g_new.copy()
            bracket_gtd[low_pos] = gtd_new

    return bracket_f[low_pos], bracket_g[low_pos], bracket[low_pos], ls_func_evals


def _loss_float(loss: Any) -> float:
    """The closure's loss as a float, as torch's ``float(loss)`` of a tensor.

    torch converts a one-element tensor of any shape; NumPy 2 refuses ``float()`` of a
    one-element array that has dimensions, so arrays go through a 0-d view.
    """
    if isinstance(loss, np.ndarray):
        if loss.size != 1:
            raise ValueError("only one element tensors can be converted to Python scalars")
        return float(loss.reshape(()))
    return float(loss)


def _as_state_scalar(value: Any) -> Any:
    """A NumPy scalar as a 0-d array (torch keeps a 0-d tensor); Python numbers as they are."""
    return np.asarray(value) if isinstance(value, np.generic) else value


def _real_dtype(dtype: np.dtype) -> np.dtype:
    """float32 for complex64, float64 for complex128; a real dtype itself."""
    return np.finfo(dtype).dtype if dtype.kind == "c" else dtype


def _real_size(p: np.ndarray) -> int:
    """The number of reals in ``p``: two per complex element, as torch's LBFGS counts."""
    return 2 * p.size if p.dtype.kind == "c" else p.size


def _real_flat(a: np.ndarray) -> np.ndarray:
    """``a`` flattened, a complex array as its real pairs (re, im, ...), as
    ``torch.view_as_real(a).view(-1)``: a view of a C-contiguous array, else a copy."""
    flat = np.asarray(a).reshape(-1)
    return flat.view(_real_dtype(flat.dtype)) if flat.dtype.kind == "c" else flat


class LBFGS(Float32Or64Only, Optimizer):
    """L-BFGS (Nocedal, 1980; Liu & Nocedal, 1989), as ``torch.optim.LBFGS``.

    Heavily inspired by minFunc, as torch's. Each :meth:`step` runs up to ``max_iter``
    quasi-Newton iterations, calling ``closure`` to re-evaluate the objective; the
    search direction comes from the two-loop recursion over the last ``history_size``
    pairs of parameter and gradient changes, and the step length is ``lr`` or found by
    a strong-Wolfe line search with cubic interpolation.

    numoptim has no autograd, so the closure must do both halves of torch's
    ``loss.backward()``: compute the loss from the parameters' current values **and**
    set every parameter's ``grad``; it returns the loss as a float or a 0-d array.
    A parameter whose ``grad`` is None counts as a zero gradient.

    Example:
        >>> A, b = np.random.randn(20, 5), np.random.randn(20)
        >>> x = numoptim.Parameter(np.zeros(5))
        >>> opt = numoptim.LBFGS([x], line_search_fn="strong_wolfe")
        >>> def closure():
        ...     r = A @ x - b
        ...     x.grad = A.T @ r          # the gradient of the loss below
        ...     return 0.5 * float(r @ r)
        >>> first_loss = opt.step(closure)

    Parameters must be float32, float64, complex64 or complex128: float16 and bfloat16
    ones, which torch steps, raise TypeError when added and at each step, before the
    closure is called. As in torch, a complex parameter is optimized as its real pairs
    (``torch.view_as_real``): the flat gradient and the state vectors are real.

    There is one parameter group only, and all the state lives under the first
    parameter, with torch's keys: ``func_evals``, ``n_iter`` (ints), ``d``, ``t``,
    ``old_dirs``, ``old_stps``, ``ro``, ``H_diag``, ``prev_flat_grad``, ``prev_loss``
    and ``al``. It keeps ``2 * history_size + 2`` vectors of the size of all
    parameters together.

    Args:
        params: the float32, float64, complex64 or complex128 parameters (a single group).
        lr: learning rate, a float or a 1-element array (default 1).
        max_iter: maximal number of iterations per :meth:`step` (default 20).
        max_eval: maximal number of closure evaluations per :meth:`step`
            (default ``max_iter * 5 // 4``).
        tolerance_grad: stop when the largest gradient entry is at most this (default 1e-7).
        tolerance_change: stop when the loss or the parameters change less (default 1e-9).
        history_size: number of correction pairs kept (default 100).
        line_search_fn: None (fixed step ``lr``) or ``"strong_wolfe"`` (default None).

    Raises:
        ValueError: an invalid lr, or more than one parameter group.
        TypeError: a parameter that is not float32, float64, complex64 or complex128.
    """

    _name = "LBFGS"

    def __init__(
        self,
        params: ParamsT,
        lr: float | np.ndarray = 1,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        history_size: int = 100,
        line_search_fn: str | None = None,
    ) -> None:
        check_lr(lr)
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        defaults = {
            "lr": lr,
            "max_iter": max_iter,
            "max_eval": max_eval,
            "tolerance_grad": tolerance_grad,
            "tolerance_change": tolerance_change,
            "history_size": history_size,
            "line_search_fn": line_search_fn,
        }
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        self._params = self.param_groups[0]["params"]

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._params = self.param_groups[0]["params"]

    # ------------------------------------------------- flat views of the params

    def _gather_flat_grad(self) -> np.ndarray:
        """All gradients as one new vector; a None gradient counts as zeros.

        Raises:
            TypeError: a gradient that is not an array (or RowSparseGrad) of its
                parameter's dtype.
            ValueError: one of another shape.
        """
        views = []
        for index, p in enumerate(self._params):
            grad = p.grad
            if grad is None:
                views.append(np.zeros(_real_size(p), dtype=_real_dtype(p.dtype)))
                continue
            what = f"the grad of parameter {index}"
            if not isinstance(grad, (np.ndarray, RowSparseGrad)):
                raise TypeError(f"{what} must be a numpy.ndarray, got {type(grad).__name__}")
            if grad.dtype != p.dtype:
                raise TypeError(
                    f"{what} has dtype {grad.dtype} but the parameter has dtype {p.dtype}"
                )
            if tuple(grad.shape) != p.shape:
                raise ValueError(
                    f"{what} has shape {tuple(grad.shape)} but the parameter has shape {p.shape}"
                )
            if isinstance(grad, RowSparseGrad):
                views.append(_real_flat(grad.to_dense()))
            else:
                views.append(_real_flat(grad))
        return np.concatenate(views)

    def _check_state(self, state: dict[str, Any], history_size: int) -> None:
        """Checks a (possibly loaded) state before a step uses it; writes nothing.

        Raises:
            TypeError: an entry of the wrong type.
            ValueError: a vector of the wrong size, or histories of different lengths.
        """
        numel = sum(_real_size(p) for p in self._params)

        def check_vector(key: str, value: Any) -> None:
            if not (isinstance(value, np.ndarray) and value.dtype.kind == "f"):
                raise TypeError(f"LBFGS state['{key}'] must be a float array, got {value!r:.80}")
            if value.shape != (numel,):
                raise ValueError(
                    f"LBFGS state['{key}'] has shape {value.shape}; the parameters have "
                    f"{numel} elements"
                )

        def check_number(key: str, value: Any) -> None:
            if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind == "f":
                return
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise TypeError(f"LBFGS state['{key}'] must be a number, got {value!r:.80}")

        for key in ("func_evals", "n_iter"):
            value = state.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"LBFGS state['{key}'] must be an int, got {value!r:.80}")
        if state.get("n_iter", 0) == 0:
            return  # no search direction or history is used before the first iteration
        for key in ("d", "prev_flat_grad"):
            check_vector(key, state.get(key))
        for key in ("t", "H_diag", "prev_loss"):
            check_number(key, state.get(key))
        histories = {key: state.get(key) for key in ("old_dirs", "old_stps", "ro")}
        for key, value in histories.items():
            if not isinstance(value, list):
                raise TypeError(f"LBFGS state['{key}'] must be a list, got {value!r:.80}")
        if len({len(value) for value in histories.values()}) != 1:
            raise ValueError("LBFGS state['old_dirs'], ['old_stps'] and ['ro'] differ in length")
        for key in ("old_dirs", "old_stps"):
            for vector in histories[key]:
                check_vector(key, vector)
        for value in histories["ro"]:
            check_number("ro", value)
        if len(histories["old_dirs"]) > history_size:
            raise ValueError(
                f"LBFGS state holds {len(histories['old_dirs'])} corrections, more than "
                f"history_size={history_size}"
            )
        al = state.get("al", [None] * history_size)
        if not isinstance(al, list) or len(al) < history_size:
            raise ValueError(f"LBFGS state['al'] must be a list of {history_size} entries")

    def _add_grad(self, step_size, update: np.ndarray) -> None:
        """p += step_size * update, for each parameter's slice of the flat ``update``."""
        offset = 0
        for p in self._params:
            # A complex parameter is stepped as its real pairs (torch's view_as_real).
            real = _real_flat(p) if p.dtype.kind == "c" else p
            numel = real.size
            # The step size is rounded to the parameter's dtype first, as torch's alpha.
            real += update[offset : offset + numel].reshape(real.shape) * real.dtype.type(step_size)
            offset += numel

    def _clone_param(self) -> list[np.ndarray]:
        return [np.array(p, copy=True) for p in self._params]

    def _set_param(self, params_data: list[np.ndarray]) -> None:
        for p, data in zip(self._params, params_data):
            p[...] = data

    def _directional_evaluate(self, closure, x, t, d):
        self._add_grad(t, d)
        loss = _loss_float(closure())
        flat_grad = self._gather_flat_grad()
        self._set_param(x)
        return loss, flat_grad

    # ---------------------------------------------------------------- the step

    def step(self, closure: Callable[[], float]) -> Any:
        """Runs up to ``max_iter`` L-BFGS iterations.

        Args:
            closure: evaluates the loss at the parameters' current values, sets every
                parameter's ``grad``, and returns the loss (a float or 0-d array).

        Returns:
            The loss of the first closure call (before any update), as returned by it.
        """
        if len(self.param_groups) != 1:
            raise AssertionError(
                f"Expected exactly one param_group, but got {len(self.param_groups)}"
            )
        group = self.param_groups[0]
        lr = lr_value(group["lr"])
        max_iter = group["max_iter"]
        max_eval = group["max_eval"]
        tolerance_grad = group["tolerance_grad"]
        tolerance_change = group["tolerance_change"]
        line_search_fn = group["line_search_fn"]
        history_size = group["history_size"]

        # Every parameter is written (one whose grad is None too), so every one is
        # checked, before the closure runs and before the state counts anything.
        for index, p in enumerate(self._params):
            check_param_dtype(p, index, "LBFGS")
        # LBFGS has only global state; it is kept under the first parameter so that
        # state_dict/load_state_dict handle it like any per-parameter state.
        state = self.state[self._params[0]]
        self._check_state(state, history_size)

        orig_loss = closure()
        loss = _loss_float(orig_loss)
        # Checks every gradient before the state counts this evaluation.
        flat_grad = self._gather_flat_grad()
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)
        current_evals = 1
        state["func_evals"] += 1

        opt_cond = np.max(np.abs(flat_grad)) <= tolerance_grad
        if opt_cond:
            return orig_loss

        d = state.get("d")
        t = state.get("t")
        old_dirs = state.get("old_dirs")
        old_stps = state.get("old_stps")
        ro = state.get("ro")
        H_diag = state.get("H_diag")
        prev_flat_grad = state.get("prev_flat_grad")
        prev_loss = state.get("prev_loss")

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1

            # Search direction.
            if state["n_iter"] == 1:
                d = -flat_grad
                old_dirs, old_stps, ro = [], [], []
                H_diag = 1
            else:
                y = flat_grad - prev_flat_grad
                s = d * t
                ys = _dot(y, s)
                if ys > 1e-10:
                    if len(old_dirs) == history_size:
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(np.asarray(1.0 / ys))
                    H_diag = np.asarray(ys / _dot(y, y))

                # Two-loop recursion: d = -H g with H the L-BFGS inverse Hessian.
                num_old = len(old_dirs)
                if "al" not in state:
                    state["al"] = [None] * history_size
                al = state["al"]
                q = -flat_grad
                for i in range(num_old - 1, -1, -1):
                    al[i] = np.asarray(_dot(old_stps[i], q) * ro[i])
                    q += old_dirs[i] * q.dtype.type(-al[i])
                d = r = q * H_diag
                for i in range(num_old):
                    be_i = _dot(old_dirs[i], r) * ro[i]
                    r += old_stps[i] * r.dtype.type(al[i] - be_i)

            if prev_flat_grad is None:
                prev_flat_grad = flat_grad.copy()
            else:
                prev_flat_grad[...] = flat_grad
            prev_loss = loss

            # Step length.
            if state["n_iter"] == 1:
                t = min(1.0, 1.0 / np.sum(np.abs(flat_grad))) * lr
            else:
                t = lr

            gtd = _dot(flat_grad, d)
            if gtd > -tolerance_change:
                break

            ls_func_evals = 0
            if line_search_fn is not None:
                if line_search_fn != "strong_wolfe":
                    raise RuntimeError("only 'strong_wolfe' is supported")
                x_init = self._clone_param()

                def obj_func(x, t, d):
                    return self._directional_evaluate(closure, x, t, d)

                loss, flat_grad, t, ls_func_evals = _strong_wolfe(
                    obj_func, x_init, t, d, loss, flat_grad, gtd, max_ls=max_eval - current_evals
                )
                self._add_grad(t, d)
                opt_cond = np.max(np.abs(flat_grad)) <= tolerance_grad
            else:
                self._add_grad(t, d)
                if n_iter != max_iter:
                    # Re-evaluate only if another iteration follows: in a stochastic
                    # setting the last evaluation would be wasted.
                    loss = _loss_float(closure())
                    flat_grad = self._gather_flat_grad()
                    opt_cond = np.max(np.abs(flat_grad)) <= tolerance_grad
                    ls_func_evals = 1

            current_evals += ls_func_evals
            state["func_evals"] += ls_func_evals

            # Stopping conditions.
            if n_iter == max_iter:
                break
            if current_evals >= max_eval:
                break
            if opt_cond:
                break
            if np.max(np.abs(d * t)) <= tolerance_change:
                break
            if abs(loss - prev_loss) < tolerance_change:
                break

        state["d"] = d
        state["t"] = _as_state_scalar(t)
        state["old_dirs"] = old_dirs
        state["old_stps"] = old_stps
        state["ro"] = ro
        state["H_diag"] = _as_state_scalar(H_diag)
        state["prev_flat_grad"] = prev_flat_grad
        state["prev_loss"] = prev_loss
        return orig_loss
