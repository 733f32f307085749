"""Adagrad, for dense and row-sparse gradients."""

from __future__ import annotations

import numpy as np

from . import _core
from ._native import NativeOptimizer, check_flags, check_fused_params, check_lr, lr_value, scalar
from .optimizer import ParamsT
from .sparse import RowSparseGrad

__all__ = ["Adagrad"]


def _fill_sum(total: np.ndarray, value: float) -> None:
    """Fills a new ``sum`` with ``initial_accumulator_value``.

    A complex ``sum`` starts at ``complex(value, value)``, as torch's: both halves of
    the real pairs that the rule steps start at the value.
    """
    if total.dtype.kind == "c":
        total = total.view(np.finfo(total.dtype).dtype)
    total.fill(value)


class Adagrad(NativeOptimizer):
    """Adagrad (Duchi et al., 2011), as ``torch.optim.Adagrad``.

    With g the gradient (negated when ``maximize``) plus ``weight_decay * p`` and t the
    step count::

        clr <- lr / (1 + (t - 1) * lr_decay)
        s <- s + g^2
        p <- p - clr * g / (sqrt(s) + eps)

    State per parameter: ``step`` (0-d float32) and ``sum``, created by the constructor
    for every parameter as torch does, ``sum`` filled with ``initial_accumulator_value``
    (the constructor's: a per-group value is ignored, as in torch).

    A parameter's grad may be a :class:`RowSparseGrad`: it is coalesced and only its
    rows of ``sum`` and of the parameter are read and written. Weight decay cannot be
    combined with a sparse gradient.

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate, a float or a 1-element array (default 1e-2).
        lr_decay: learning rate decay (default 0).
        weight_decay: L2 penalty (default 0).
        initial_accumulator_value: initial value of ``sum`` (default 0).
        eps: added to the denominator for numerical stability (default 1e-10).
        foreach, fused: accepted for torch compatibility; there is one native path.
        maximize: maximize the objective instead of minimizing it (default False).
        differentiable: must be False.
    """

    _param_shaped_state = ("sum",)
    # torch's __setstate__ fills these in (see NativeOptimizer._load_defaults).
    _load_defaults = (
        ("foreach", None),
        ("maximize", False),
        ("differentiable", False),
        ("fused", None),
    )

    def __init__(
        self,
        params: ParamsT,
        lr: float | np.ndarray = 1e-2,
        lr_decay: float = 0,
        weight_decay: float = 0,
        initial_accumulator_value: float = 0,
        eps: float = 1e-10,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        master_weights: bool = False,
    ) -> None:
        check_lr(lr)
        if not 0.0 <= lr_decay:
            raise ValueError(f"Invalid lr_decay value: {lr_decay}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= initial_accumulator_value:
            raise ValueError(
                f"Invalid initial_accumulator_value value: {initial_accumulator_value}"
            )
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if fused and differentiable:
            raise RuntimeError("`fused` does not support `differentiable`")
        check_flags(foreach=foreach, fused=fused, differentiable=differentiable)
        defaults = {
            "lr": lr,
            "lr_decay": lr_decay,
            "eps": eps,
            "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value,
            "foreach": foreach,
            "maximize": maximize,
            "differentiable": differentiable,
            "fused": fused,
        }
        if master_weights:  # beyond torch: in the groups (and repr) only when asked for
            defaults["master_weights"] = True
        super().__init__(params, defaults)
        # Unlike the other optimizers, torch creates Adagrad's state here, for every
        # parameter, whether or not it will ever have a gradient.
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                state["step"] = np.array(0.0, dtype=np.float32)
                # With master weights, a 16-bit parameter's state is float32 (its master
                # copy is made on the first step).
                float32 = master_weights and p.dtype.itemsize == 2
                state["sum"] = _core.state_zeros(p.shape, np.float32 if float32 else p.dtype)
                _fill_sum(state["sum"], initial_accumulator_value)

    def _step_group(self, group, defer: bool):
        check_fused_params(group)
        options = {
            "lr": lr_value(group["lr"]),
            "lr_decay": scalar(group["lr_decay"]),
            "eps": scalar(group["eps"]),
            "maximize": bool(group["maximize"]),
        }
        dense = (
            lr_value(group["lr"]),
            scalar(group["lr_decay"]),
            scalar(group["weight_decay"]),
            scalar(group["eps"]),
            scalar(self.defaults["initial_accumulator_value"]),
            bool(group["maximize"]),
            bool(group.get("master_weights", False)),
        )
        # The native call takes dense gradients only; it checks every gradient before it
        # writes anything, so a group with row-sparse ones raises there untouched and is
        # then split. Dense groups pay nothing for the sparse path.
        try:
            return _core.adagrad_step(group["params"], self.state, *dense, defer)
        except TypeError:
            sparse = [p for p in group["params"] if isinstance(p.grad, RowSparseGrad)]
            if not sparse:
                raise
        if group["weight_decay"] != 0:
            raise RuntimeError("weight_decay option is not compatible with sparse gradients")
        positions = [i for i, p in enumerate(group["params"]) if isinstance(p.grad, RowSparseGrad)]
        _core.sgd_sparse_step(group["params"], positions, 0.0, False, True)  # checks the grads
        for p in sparse:
            self._check_sparse(p)
        params = [p for p in group["params"] if not isinstance(p.grad, RowSparseGrad)]
        dense_step = _core.adagrad_step(params, self.state, *dense, True)

        def write() -> None:
            dense_step()
            for p in sparse:
                self._sparse_update(p, **options)

        return write if defer else write()

    def _check_sparse(self, p) -> None:
        """Checks a row-sparse grad and the state it will update, writing nothing."""
        grad = p.grad
        if grad.shape != p.shape:
            raise ValueError(
                f"a sparse grad of shape {grad.shape} was given for a parameter of shape {p.shape}"
            )
        if grad.dtype != p.dtype:
            raise TypeError(
                f"a sparse grad of dtype {grad.dtype} was given for a parameter of dtype {p.dtype}"
            )
        state = self.state.get(p)
        if not state:
            return
        step, total = state.get("step"), state.get("sum")
        if not (isinstance(step, np.ndarray) and step.dtype == np.float32 and step.ndim == 0):
            raise TypeError("state['step'] must be a 0-d float32 array")
        if not (
            isinstance(total, np.ndarray) and total.dtype == p.dtype and total.shape == p.shape
        ):
            raise TypeError("state['sum'] must be an array of the parameter's shape and dtype")
        if not (step.flags.writeable and total.flags.writeable):
            raise ValueError("the state of a parameter is read-only")

    def _sparse_update(self, p, *, lr, lr_decay, eps, maximize) -> None:
        """torch's sparse Adagrad step on the rows of ``p.grad`` only.

        As torch: the grad is coalesced (its update is not linear, so repeated rows must
        be summed first); then, on those rows, ``sum += g^2``,
        ``std = sqrt(sum) + eps`` and ``p += -clr * (g / std)``.
        """
        state = self.state[p]
        if not state:
            state["step"] = np.array(0.0, dtype=np.float32)
            state["sum"] = _core.state_zeros(p.shape, p.dtype)
            _fill_sum(state["sum"], self.defaults["initial_accumulator_value"])
        step = state["step"]
        step += np.float32(1)
        clr = lr / (1 + (float(step) - 1) * lr_decay)
        grad = p.grad.coalesce()
        rows, values = grad.indices, grad.values
        if maximize:
            values = -values
        total = state["sum"]
        summed = total[rows] + values * values
        total[rows] = summed
        std = np.sqrt(summed) + eps
        param = p.view(np.ndarray)
        param[rows] = param[rows] + -clr * (values / std)
