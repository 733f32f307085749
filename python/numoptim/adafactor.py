"""Adafactor: Adam-like steps with a factored (row x column) second moment."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ._checks import Float32Or64Only, check_step_inputs
from ._lerp import lerp
from ._native import lr_value
from .optimizer import Optimizer, ParamsT

__all__ = ["Adafactor"]


def _norm(x: np.ndarray) -> float:
    """||x||_2 as a Python float (torch's ``x.norm(2).item()``)."""
    flat = x.reshape(-1)
    return float(np.sqrt(np.dot(flat, flat)))


def _state_layout(p: np.ndarray) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Adafactor's state for ``p``: factored second moments for matrices (and batches)."""
    layout = {"step": ((), np.dtype(np.float32))}
    if p.ndim > 1:
        layout["row_var"] = (p.shape[:-1] + (1,), p.dtype)
        layout["col_var"] = (p.shape[:-2] + (1,) + p.shape[-1:], p.dtype)
    else:
        layout["variance"] = (p.shape, p.dtype)
    return layout


class Adafactor(Float32Or64Only, Optimizer):
    """Adafactor (Shazeer & Stern, 2018), as ``torch.optim.Adafactor``.

    With g the gradient (negated when ``maximize``), t the step count, and RMS(x) =
    ||x||_2 / sqrt(numel(x))::

        beta2_t = t ** beta2_decay                  (the weight of the new g^2)
        rho_t   = min(lr, 1 / sqrt(t))
        alpha   = max(eps2, RMS(p)) * rho_t         (before weight decay)
        p <- p * (1 - lr * weight_decay)
        ndim >= 2:  R <- lerp(R, mean(g^2, -1), beta2_t);  C <- lerp(C, mean(g^2, -2), beta2_t)
                    V = (R @ C) / max(mean(R, -2), eps1)
        otherwise:  V <- lerp(V, g^2, beta2_t)
        u = g / sqrt(max(V, eps1^2))
        p <- p - alpha / max(1, RMS(u) / d) * u

    Tensors of two or more dimensions keep only the row factor ``row_var`` (the shape
    with the last dimension 1) and the column factor ``col_var`` (the shape with the
    second-to-last dimension 1), so the state is O(rows + columns) per matrix; others
    keep a full ``variance``. ``eps1`` None means the machine epsilon of the first
    updated parameter's dtype in the group (as torch, which fixes it there).

    State per parameter: ``step`` (0-d float32), and ``row_var`` and ``col_var``, or
    ``variance``. The work is NumPy array arithmetic, vectorized per tensor, on float32
    and float64 parameters only: float16 and bfloat16 ones, which torch steps, raise
    TypeError when added and at each step; a complex one raises torch's
    ``RuntimeError("Adafactor does not support complex parameters")`` at the step, once
    it has a gradient, before anything is written.

    Args:
        params: float32 or float64 parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate, a float or a 1-element array (default 1e-2).
        beta2_decay: exponent of the second-moment weight, at most 0 (default -0.8).
        eps: (eps1, eps2): eps1 floors the second moment (None: the dtype's machine
            epsilon), eps2 floors the parameter RMS in the step size (default (None, 1e-3)).
        d: clipping threshold of the update's RMS, at least 1 (default 1.0).
        weight_decay: decoupled weight decay coefficient (default 0.0).
        foreach: accepted for torch compatibility; changes nothing.
        maximize: maximize the objective instead of minimizing it (default False).
    """

    _name = "Adafactor"

    def __init__(
        self,
        params: ParamsT,
        lr: float | np.ndarray = 1e-2,
        beta2_decay: float = -0.8,
        eps: tuple[float | None, float] = (None, 1e-3),
        d: float = 1.0,
        weight_decay: float = 0.0,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
    ) -> None:
        if isinstance(lr, np.ndarray) and lr.size != 1:
            raise ValueError("Tensor lr must be 1-element")
        if not 0.0 <= lr:
            raise ValueError(f"Learning rate should be >= 0 but is: {lr}")
        if not 0.0 >= beta2_decay:
            raise ValueError(f"beta2_decay should be <= 0 but is: {beta2_decay}")
        if eps[0] is not None and not 0.0 <= eps[0]:
            raise ValueError(f"epsilon1 should be >= 0 but is: {eps[0]}")
        if not 0.0 <= eps[1]:
            raise ValueError(f"epsilon2 should be >= 0 but is: {eps[1]}")
        if not 1.0 <= d:
            raise ValueError(f"Clipping threshold d should be >= 1 but is: {d}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"weight_decay should be >= 0 but is: {weight_decay}")
        defaults = {
            "lr": lr,
            "beta2_decay": beta2_decay,
            "eps": eps,
            "d": d,
            "weight_decay": weight_decay,
            "foreach": foreach,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("foreach", None)

    def _init_state(self, p) -> dict[str, Any]:
        """The state of ``p``, created as :func:`_state_layout` says on its first step."""
        state = self.state[p]
        if len(state) == 0:
            for key, (shape, dtype) in _state_layout(p).items():
                state[key] = np.zeros(shape, dtype=dtype)
        return state

    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Performs one optimization step.

        Args:
            closure: optional callable that re-evaluates the model and returns the loss.

        Returns:
            The closure's loss, or None.
        """
        loss = None
        if closure is not None:
            loss = closure()
        check_step_inputs(self, "Adafactor", _state_layout)
        for group in self.param_groups:
            self._step_group(group)
        return loss

    def _step_group(self, group: dict[str, Any]) -> None:
        lr = lr_value(group["lr"])
        eps1, eps2 = group["eps"]
        d = group["d"]
        beta2_decay = group["beta2_decay"]
        weight_decay = group["weight_decay"]
        for p in group["params"]:
            if p.grad is None:
                continue
            grad = -p.grad if group["maximize"] else p.grad
            state = self._init_state(p)
            if p.size == 0:
                # torch divides by the size (ZeroDivisionError); an empty parameter is
                # left as every other optimizer leaves it: its step is counted.
                state["step"] += 1
                continue
            if eps1 is None:
                eps1 = float(np.finfo(p.dtype).eps)
            dtype = p.dtype.type

            state["step"] += 1
            step = float(state["step"])
            beta2_t = step**beta2_decay
            rho_t = min(lr, 1 / (step**0.5))
            alpha = max(eps2, _norm(p) / (p.size**0.5)) * rho_t

            if weight_decay != 0:
                p *= dtype(1 - lr * weight_decay)

            if grad.ndim > 1:
                row_var, col_var = state["row_var"], state["col_var"]
                # mean(g^2) as torch computes it: the norm along the axis, squared.
                row_mean = np.square(np.sqrt(np.sum(grad * grad, axis=-1, keepdims=True)))
                row_mean /= dtype(grad.shape[-1])
                lerp(row_var, row_mean, beta2_t, out=row_var)
                col_mean = np.square(np.sqrt(np.sum(grad * grad, axis=-2, keepdims=True)))
                col_mean /= dtype(grad.shape[-2])
                lerp(col_var, col_mean, beta2_t, out=col_var)
                var_estimate = row_var @ col_var
                var_estimate /= np.maximum(np.mean(row_var, axis=-2, keepdims=True), dtype(eps1))
            else:
                variance = state["variance"]
                lerp(variance, grad * grad, beta2_t, out=variance)
                var_estimate = variance.copy()

            # eps1 is squared because the square root follows.
            np.maximum(var_estimate, dtype(eps1 * eps1), out=var_estimate)
            update = np.reciprocal(np.sqrt(var_estimate, out=var_estimate), out=var_estimate)
            update *= grad
            denom = max(1.0, _norm(update) / ((update.size**0.5) * d))
            p += update * dtype(-alpha / denom)
