"""LaProp, momentum over the gradient normalized by its running second moment."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _core
from ._native import add_flags, lr_value, scalar
from ._timm import (
    MAX_LR_SNAPSHOT,
    WithMaxLrSnapshot,
    max_lr_snapshot,
    refuse_caution,
    run_parts,
    state_in_order,
    validate_scalar,
)
from .optimizer import ParamsT

__all__ = ["LaProp"]

_STATE_ORDER = ("step", "exp_avg", "exp_avg_lr_1", "exp_avg_lr_2", "exp_avg_sq")


class LaProp(WithMaxLrSnapshot):
    """LaProp (Ziyin, Wang & Ueda, "LaProp: Separating Momentum and Adaptivity in Adam",
    2020), as ``timm.optim.LaProp``.

    torch.optim has no LaProp; this one has timm's arguments, defaults, group keys,
    state and messages, and computes in the order of timm's single-tensor path
    (``foreach=False``). With g the gradient (negated when ``maximize``)::

        c1 <- beta1 * c1 + (1 - beta1) * lr        (exp_avg_lr_1)
        c2 <- beta2 * c2 + (1 - beta2)             (exp_avg_lr_2)
        v <- beta2 * v + (1 - beta2) * g^2
        m <- beta1 * m + lr * (1 - beta1) * g / (sqrt(v / c2) + eps)
        p <- p - (lr / c1) * m                     (0 while c1 is 0)
        p <- p - wd_scale * weight_decay * p       (wd_scale: lr, or lr^2 / max_lr)

    The momentum is of the normalized gradient, with the lr inside it, so that a change
    of lr acts gradually; c1 corrects its bias for the lr's history.

    State per parameter, as timm's: ``step`` and ``exp_avg_lr_2`` (0-d float32 arrays),
    ``exp_avg`` (m), ``exp_avg_lr_1`` (a Python float, or an array of the lr's dtype
    when lr is an array) and ``exp_avg_sq`` (v).

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate, a float or a 1-element array (default 4e-4).
        betas: coefficients of the running averages of the normalized gradient and of
            the squared gradient (default (0.9, 0.999)).
        eps: added to the denominator (default 1e-15).
        weight_decay: decoupled weight decay, applied after the update (default 0).
        caution: timm's Cautious LaProp needs a per-tensor mean of a mask before the
            update, which numoptim's one-pass kernel does not compute: only False is
            accepted (True raises TypeError).
        corrected_weight_decay: scale the decay by ``lr ** 2 / max_lr`` instead of lr,
            where max_lr is the constructor's lr (the group's ``max_lr_snapshot``)
            (default False).
        foreach: accepted for timm compatibility; there is one native path.
        maximize: maximize the objective instead of minimizing it (default False; not in
            timm, in the groups only when True).
        master_weights: keep float32 master copies of 16-bit parameters in the state
            (default False; in the groups only when True).
    """

    _real_only = True  # as its reference (see NativeOptimizer)

    _param_shaped_state = ("exp_avg", "exp_avg_sq")
    _float32_scalar_state = ("exp_avg_lr_2",)
    _load_defaults = (
        ("caution", False),
        ("corrected_weight_decay", False),
        ("max_lr_snapshot", MAX_LR_SNAPSHOT),
        ("foreach", None),
    )

    def __init__(
        self,
        params: ParamsT,
        lr: float | np.ndarray = 4e-4,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-15,
        weight_decay: float = 0.0,
        caution: bool = False,
        corrected_weight_decay: bool = False,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        master_weights: bool = False,
    ) -> None:
        # timm's checks, in its order and words (it does not check weight_decay).
        validate_scalar("learning rate", lr)
        validate_scalar("epsilon", eps)
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if caution:
            raise refuse_caution("LaProp")
        defaults: dict[str, Any] = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "caution": caution,
            "corrected_weight_decay": corrected_weight_decay,
            "max_lr_snapshot": max_lr_snapshot(lr, corrected_weight_decay),
            "foreach": foreach,
        }
        super().__init__(
            params, add_flags(defaults, maximize=maximize, master_weights=master_weights)
        )

    def _cast_state(self, param, key, value, dtype=None):
        # exp_avg_lr_1 is the lr's type (a Python float, or an array of the lr's dtype),
        # not the parameter's.
        if key == "exp_avg_lr_1":
            return np.array(value, copy=True) if isinstance(value, np.ndarray) else value
        return super()._cast_state(param, key, value, dtype)

    def _step_group(self, group, defer: bool):
        if group.get("caution"):
            raise refuse_caution("LaProp")
        lr = group["lr"]
        beta1, beta2 = group["betas"]
        weight_decay = scalar(group["weight_decay"])
        tensor_lr = isinstance(lr, np.ndarray)
        if not tensor_lr:
            lr = scalar(lr)
        # Each parameter's new exp_avg_lr_1, as timm computes it (Python floats, or the
        # lr's dtype for an array lr); the parameters that share it step together.
        new_lr_1: list[tuple[Any, Any]] = []
        parts: dict[Any, tuple[list[Any], Any]] = {}
        latest: dict[int, Any] = {}  # a parameter listed twice steps twice
        for p in group["params"]:
            if p.grad is None:
                continue
            if id(p) in latest:
                lr_1 = latest[id(p)]
            else:
                state = self.state.get(p)
                lr_1 = state.get("exp_avg_lr_1") if state else None
                if lr_1 is None:
                    lr_1 = np.zeros_like(lr) if tensor_lr else 0.0
            lr_1 = lr_1 * beta1 + (1 - beta1) * lr
            if tensor_lr:
                lr_1 = np.asarray(lr_1)  # NumPy makes a 0-d result a scalar
            latest[id(p)] = lr_1
            new_lr_1.append((p, lr_1))
            key = np.asarray(lr_1).tobytes()  # NaN equals itself, -0.0 is not 0.0
            parts.setdefault(key, ([], lr_1))[0].append(p)
        if not parts:
            return None if not defer else (lambda: None)
        if group.get("corrected_weight_decay"):
            decay_scale = -(lr**2 / group["max_lr_snapshot"]) * weight_decay
        else:
            decay_scale = -lr * weight_decay
        momentum_scale = lr * (1 - beta1)
        common = (
            scalar(beta2),
            scalar(group["eps"]),
            lr_value(momentum_scale),
        )
        flags = (
            lr_value(decay_scale),
            weight_decay != 0,
            tensor_lr,
            bool(group.get("maximize", False)),
            bool(group.get("master_weights", False)),
        )

        def neg_step_size(lr_1: Any) -> float:
            if tensor_lr:
                nonzero = lr_1 != 0
                safe = np.where(nonzero, lr_1, np.ones_like(lr_1))
                return lr_value(-np.where(nonzero, lr / safe, np.zeros_like(lr_1)))
            return -(lr / lr_1 if lr_1 != 0.0 else 0.0)

        def record() -> None:
            for p, lr_1 in new_lr_1:
                state = self.state[p]
                fresh = "exp_avg_lr_1" not in state
                state["exp_avg_lr_1"] = lr_1
                if fresh:
                    state_in_order(state, _STATE_ORDER)

        if len(parts) == 1 and not defer:
            ((params, lr_1),) = parts.values()
            _core.laprop_step(
                params, self.state, scalar(beta1), *common, neg_step_size(lr_1), *flags, False
            )
            record()
            return None
        writes = [
            _core.laprop_step(
                params, self.state, scalar(beta1), *common, neg_step_size(lr_1), *flags, True
            )
            for params, lr_1 in parts.values()
        ]
        write = run_parts(writes, record)
        if defer:
            return write
        write()
        return None
