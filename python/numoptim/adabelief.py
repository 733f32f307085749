"""AdaBelief, Adam that adapts its step to the belief in the observed gradient."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import _core
from ._native import NativeOptimizer, add_flags, lr_value, scalar
from ._timm import run_parts, state_in_order
from .optimizer import ParamsT

__all__ = ["AdaBelief"]

_STATE_ORDER = ("step", "exp_avg", "exp_avg_var", "max_exp_avg_var")

# The rule's ways of applying the update (cpp/include/numoptim/adabelief.hpp).
_ADAM, _RECTIFIED, _SGD, _NONE = 0, 1, 2, 3


def _update_constants(group: dict[str, Any], lr: float, step: int) -> tuple[int, float, float]:
    """(update kind, negated step size, sqrt(1 - beta2^t)) at a parameter's step t, as
    timm's AdaBelief computes them in Python (RAdam's rectification when ``rectify``)."""
    beta1, beta2 = group["betas"]
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    bias_correction2_sqrt = math.sqrt(bias_correction2)
    if not group["rectify"]:
        return _ADAM, -(lr / bias_correction1), bias_correction2_sqrt
    beta2_t = beta2**step
    num_sma_max = 2 / (1 - beta2) - 1
    num_sma = num_sma_max - 2 * step * beta2_t / (1 - beta2_t)
    if num_sma >= 5:
        step_size = math.sqrt(
            (1 - beta2_t)
            * (num_sma - 4)
            / (num_sma_max - 4)
            * (num_sma - 2)
            / num_sma
            * num_sma_max
            / (num_sma_max - 2)
        ) / (1 - beta1**step)
        return _RECTIFIED, -step_size * lr, bias_correction2_sqrt
    if group["degenerated_to_sgd"]:
        step_size = 1.0 / (1 - beta1**step)
    else:
        step_size = -1
    kind = _SGD if step_size > 0 else _NONE
    return kind, -step_size * lr, bias_correction2_sqrt


class AdaBelief(NativeOptimizer):
    """AdaBelief (Zhuang et al., "AdaBelief Optimizer: Adapting Stepsizes by the Belief
    in Observed Gradients", NeurIPS 2020), as ``timm.optim.AdaBelief``.

    torch.optim has no AdaBelief; this one has timm's arguments, defaults, group keys,
    state and messages, and computes in the order of timm's single-tensor path
    (``foreach=False``). With g the gradient (negated when ``maximize``) and t the
    parameter's step::

        p <- p * (1 - lr * wd), or p * (1 - wd) with fixed_decay   (decoupled_decay)
        g <- g + wd * p                                             (otherwise)
        m <- lerp(m, g, 1 - beta1)
        s <- beta2 * s + (1 - beta2) * (g - m)^2 + eps              (eps stored in s)
        s_max <- max(s_max, s), used for s below                    (amsgrad)
        p <- p - lr / (1 - beta1^t) * m / (sqrt(s) / sqrt(1 - beta2^t) + eps)

    With ``rectify`` (the default) the last line is RAdam's: while the length of the
    approximated simple moving average, rho_t, is below 5 the step is SGD's,
    ``p - lr / (1 - beta1^t) * m`` (``degenerated_to_sgd``, the default) or none (the
    decay still applies); from then on ``p - lr * r_t * m / (sqrt(s) + eps)`` with
    RAdam's r_t (and s, not s_max, as timm).

    State per parameter, as timm's: ``step`` (a Python int), ``exp_avg`` (m),
    ``exp_avg_var`` (s) and, with amsgrad, ``max_exp_avg_var``. timm keeps the state of
    float16 and bfloat16 parameters in float32; numoptim keeps it in the parameter's
    dtype (computing in float32, rounded once), or in float32 with
    ``master_weights=True``.

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate, a float or a 1-element array (default 1e-3).
        betas: coefficients of the running averages of the gradient and of its squared
            deviation from that average (default (0.9, 0.999)).
        eps: added to s and to the denominator (default 1e-16).
        weight_decay: weight decay (default 0).
        amsgrad: use the maximum of s over the steps (default False).
        decoupled_decay: decay the parameter (AdamW) rather than add to the gradient
            (default True).
        fixed_decay: with decoupled_decay, decay by ``weight_decay`` rather than
            ``lr * weight_decay`` (default False).
        rectify: RAdam's rectified update (default True).
        degenerated_to_sgd: with rectify, an SGD step while rho_t < 5 (default True).
        foreach: accepted for timm compatibility; there is one native path.
        maximize: maximize the objective instead of minimizing it (default False; not in
            timm, in the groups only when True).
        master_weights: keep float32 master copies of 16-bit parameters in the state
            (default False; in the groups only when True).
    """

    _real_only = True  # as its reference (see NativeOptimizer)

    _param_shaped_state = ("exp_avg", "exp_avg_var", "max_exp_avg_var")
    _load_defaults = (("amsgrad", False), ("foreach", None))
    _sparse_grad_error = (
        "AdaBelief does not support sparse gradients, please consider SparseAdam instead"
    )

    def __init__(
        self,
        params: ParamsT,
        lr: float | np.ndarray = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-16,
        weight_decay: float = 0,
        amsgrad: bool = False,
        decoupled_decay: bool = True,
        fixed_decay: bool = False,
        rectify: bool = True,
        degenerated_to_sgd: bool = True,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        master_weights: bool = False,
    ) -> None:
        # timm's checks, in its order and words (it does not check weight_decay).
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        defaults: dict[str, Any] = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "degenerated_to_sgd": degenerated_to_sgd,
            "decoupled_decay": decoupled_decay,
            "rectify": rectify,
            "fixed_decay": fixed_decay,
            "foreach": foreach,
        }
        super().__init__(
            params, add_flags(defaults, maximize=maximize, master_weights=master_weights)
        )

    def _cast_state(self, param, key, value, dtype=None):
        # timm counts steps in a Python int.
        if key == "step":
            return int(value)
        return super()._cast_state(param, key, value, dtype)

    def reset(self) -> None:
        """timm's reset: every parameter's state to step 0 and zeros (in the dtype its
        state has, the parameter's when it has none)."""
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                dtype = state["exp_avg"].dtype if "exp_avg" in state else p.dtype
                state["step"] = 0
                state["exp_avg"] = np.zeros(p.shape, dtype)
                state["exp_avg_var"] = np.zeros(p.shape, dtype)
                if group["amsgrad"]:
                    state["max_exp_avg_var"] = np.zeros(p.shape, dtype)

    def _step_group(self, group, defer: bool):
        lr = lr_value(group["lr"])
        beta1, beta2 = group["betas"]
        amsgrad = bool(group["amsgrad"])
        decoupled = bool(group["decoupled_decay"])
        weight_decay = scalar(group["weight_decay"])
        if decoupled:
            decay_factor = 1.0 - (weight_decay if group["fixed_decay"] else lr * weight_decay)
        else:
            decay_factor = 1.0
        # Each parameter's step after this one (timm's Python int); the parameters at
        # the same step share the step constants and step together.
        new_steps: list[tuple[Any, int]] = []
        parts: dict[int, list[Any]] = {}
        latest: dict[int, int] = {}  # a parameter listed twice steps twice
        for p in group["params"]:
            if p.grad is None:
                continue
            if id(p) in latest:
                step = latest[id(p)] + 1
            else:
                state = self.state.get(p)
                step = (state.get("step", 0) if state else 0) + 1
            latest[id(p)] = step
            new_steps.append((p, step))
            parts.setdefault(step, []).append(p)
        if not parts:
            return None if not defer else (lambda: None)
        maximize = bool(group.get("maximize", False))
        master = bool(group.get("master_weights", False))

        def call(params: list[Any], step: int, deferred: bool):
            kind, neg_step_size, bias_correction2_sqrt = _update_constants(group, lr, step)
            return _core.adabelief_step(
                params,
                self.state,
                scalar(beta1),
                scalar(beta2),
                scalar(group["eps"]),
                weight_decay,
                decay_factor,
                neg_step_size,
                bias_correction2_sqrt,
                kind,
                amsgrad,
                decoupled,
                maximize,
                master,
                deferred,
            )

        def record() -> None:
            for p, step in new_steps:
                state = self.state[p]
                fresh = "step" not in state
                state["step"] = step
                if fresh:
                    state_in_order(state, _STATE_ORDER)

        if len(parts) == 1 and not defer:
            ((step, params),) = parts.items()
            call(params, step, False)
            record()
            return None
        write = run_parts([call(params, step, True) for step, params in parts.items()], record)
        if defer:
            return write
        write()
        return None
