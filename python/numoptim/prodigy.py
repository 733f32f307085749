"""Prodigy, Adam with a step size estimated from the iterates."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _core
from ._native import NativeOptimizer, add_flags, lr_value, scalar
from ._timm import state_in_order
from .optimizer import ParamsT
from .parameter import Parameter

__all__ = ["Prodigy"]

_STATE_ORDER = ("step", "s", "p0", "exp_avg", "exp_avg_sq")  # prodigyopt's


class Prodigy(NativeOptimizer):
    """Prodigy (Mishchenko and Defazio, "Prodigy: An Expeditiously Adaptive
    Parameter-Free Learner", 2023), as ``prodigyopt.Prodigy`` 1.1.2.

    torch.optim has no Prodigy; this one has prodigyopt's arguments, defaults, group
    keys (``d``, ``d0``, ``d_max``, ``d_numerator``, ``d_coef``, ``k``, and after a step
    ``d_denom`` and ``d_hat``), state (``step``, ``s``, ``p0``, ``exp_avg``,
    ``exp_avg_sq``) and messages. A step is Adam with the step size ``d * lr``, where d
    grows from ``d0`` by an estimate from sums over every parameter of every group: a
    first native pass updates the moments and ``s`` and sums, per parameter, the dot
    product ``g . (p0 - p)`` and ``|s|``; the estimate is then formed in Python, in
    prodigyopt's order; a second native pass updates the parameters. The sums come in a
    fixed order, so results are bit-identical for every thread count and SIMD level.
    As in prodigyopt, betas, beta3, decouple, use_bias_correction, d_coef and
    growth_rate are read from the first group; every group's lr must be the largest
    one or 0 (a group with lr 0 still moves by the step size, as in prodigyopt).

    ``s`` and ``p0`` are flat (the parameter's size), as prodigyopt's. Unlike
    prodigyopt, the user's gradients are not modified (prodigyopt adds the L2 weight
    decay to ``.grad`` in place), and ``p0`` always has the parameter's size
    (prodigyopt keeps a 0-d zero for an all-zero parameter; such a state dict loads).

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate, a multiplier of d (default 1.0).
        betas: the running averages' coefficients (default (0.9, 0.999)).
        beta3: the coefficient of ``s`` (default None: sqrt(beta2)).
        eps: added to the denominator, times d (default 1e-8).
        weight_decay: weight decay (default 0).
        decouple: decay the weights directly, as AdamW, instead of adding ``wd * p`` to
            the gradient (default True).
        use_bias_correction: Adam's bias correction in the step size (default False).
        safeguard_warmup: the ``s`` update without lr (default False).
        d0: the initial d (default 1e-6).
        d_coef: a multiplier of the estimate (default 1.0).
        growth_rate: the largest factor by which d grows in a step (default inf).
        fsdp_in_use: prodigyopt's all-reduce for torch FSDP: only False is accepted.
        slice_p: prodigyopt's strided estimate: only 1 is accepted.
        maximize: maximize the objective (default False; not in prodigyopt, in the groups
            only when True).
        master_weights: keep float32 master copies of 16-bit parameters in the state
            (default False; in the groups only when True).
    """

    _real_only = True  # as its reference (see NativeOptimizer)
    # Its step size comes from sums over every parameter (ZeroRedundancyOptimizer
    # refuses it: a rank holds the state of its share only).
    _needs_every_parameter = True

    _param_shaped_state = ("exp_avg", "exp_avg_sq")  # s and p0 are flat

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1.0,
        betas: tuple[float, float] = (0.9, 0.999),
        beta3: float | None = None,
        eps: float = 1e-8,
        weight_decay: float = 0,
        decouple: bool = True,
        use_bias_correction: bool = False,
        safeguard_warmup: bool = False,
        d0: float = 1e-6,
        d_coef: float = 1.0,
        growth_rate: float = float("inf"),
        fsdp_in_use: bool = False,
        slice_p: int = 1,
        *,
        maximize: bool = False,
        master_weights: bool = False,
    ) -> None:
        # prodigyopt's checks, in its order and words.
        if not 0.0 < d0:
            raise ValueError(f"Invalid d0 value: {d0}")
        if not 0.0 < lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 < eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if fsdp_in_use:
            raise ValueError(
                "fsdp_in_use=True is not supported: numoptim has no FSDP (its all-reduce "
                "is torch.distributed's on CUDA)"
            )
        if slice_p != 1:
            raise ValueError(
                f"slice_p={slice_p} is not supported: numoptim's Prodigy keeps p0 and s for "
                "every element (slice_p=1)"
            )
        defaults: dict[str, Any] = {
            "lr": lr,
            "betas": betas,
            "beta3": beta3,
            "eps": eps,
            "weight_decay": weight_decay,
            "d": d0,
            "d0": d0,
            "d_max": d0,
            "d_numerator": 0.0,
            "d_coef": d_coef,
            "k": 0,
            "growth_rate": growth_rate,
            "use_bias_correction": use_bias_correction,
            "decouple": decouple,
            "safeguard_warmup": safeguard_warmup,
            "fsdp_in_use": fsdp_in_use,
            "slice_p": slice_p,
        }
        self.d0 = d0
        super().__init__(
            params, add_flags(defaults, maximize=maximize, master_weights=master_weights)
        )

    def _cast_state(self, param: Parameter, key: Any, value: Any, dtype: Any = None) -> Any:
        if key == "step":  # prodigyopt counts steps in a Python int
            return int(value)
        # prodigyopt keeps a 0-d zero as the p0 of a parameter that was all zeros.
        if key == "p0" and isinstance(value, np.ndarray) and value.ndim == 0:
            value = np.full(param.size, value, dtype=value.dtype)
        return super()._cast_state(param, key, value, dtype)

    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Performs one optimization step, as prodigyopt's.

        Every group is checked before the first pass writes any. When no gradient moved
        ``s`` (the sum of ``|s|`` is 0), the step ends after the first pass, as
        prodigyopt's does.

        Raises:
            RuntimeError: a group's lr is neither the largest one nor 0 (prodigyopt's
                message), or as :meth:`NativeOptimizer.step`.
        """
        loss = None
        if closure is not None:
            loss = closure()
        groups = self.param_groups
        first = groups[0]
        beta1, beta2 = first["betas"]
        beta3 = first["beta3"] if first["beta3"] is not None else math.sqrt(beta2)
        k, d, d_max = first["k"], first["d"], first["d_max"]
        lr = max(lr_value(group["lr"]) for group in groups)
        if first["use_bias_correction"]:
            bias_correction = ((1 - beta2 ** (k + 1)) ** 0.5) / (1 - beta1 ** (k + 1))
        else:
            bias_correction = 1
        dlr = d * lr * bias_correction
        decouple = first["decouple"]
        d_numerator = first["d_numerator"] * beta3
        for group in groups:
            if lr_value(group["lr"]) not in (lr, 0.0):
                raise RuntimeError(
                    "Setting different lr values in different parameter groups is only "
                    "supported for values of 0"
                )

        sums = [np.zeros((len(group["params"]), 2)) for group in groups]
        try:
            writes = [
                _core.prodigy_moments(
                    group["params"],
                    self.state,
                    scalar(beta1),
                    scalar(beta2),
                    scalar(beta3),
                    d * (1 - beta1),
                    d * d * (1 - beta2),
                    (d / group["d0"]) * (d if group["safeguard_warmup"] else dlr),
                    scalar(group["weight_decay"]),
                    group["weight_decay"] != 0 and not decouple,
                    lr_value(group["lr"]) > 0.0,
                    bool(group.get("maximize", False)),
                    bool(group.get("master_weights", False)),
                    out,
                    True,
                )
                for group, out in zip(groups, sums)
            ]
        except _core.SparseGradientError:
            raise RuntimeError(self._sparse_grad_message()) from None
        for write in writes:
            write()
        with_grads = [p for group in groups for p in group["params"] if p.grad is not None]
        for p in with_grads:  # prodigyopt creates the state with step 0 in this pass
            state = self.state[p]
            if "step" not in state:
                state["step"] = 0
                state_in_order(state, _STATE_ORDER)

        # The sums, each rounded to its parameter's compute dtype (prodigyopt's
        # .item() of a float32 dot product), accumulated in prodigyopt's order.
        delta_numerator = d_denom = 0.0
        for group, out in zip(groups, sums):
            if not lr_value(group["lr"]) > 0.0:
                continue
            for p, (dot, s_sum) in zip(group["params"], out):
                if p.grad is None:
                    continue
                rounded = np.float64 if p.dtype == np.float64 else np.float32
                delta_numerator += (d / group["d0"]) * dlr * float(rounded(dot))
                d_denom += float(rounded(s_sum))
        d_hat = d
        if d_denom == 0:
            return loss
        global_d_numerator = d_numerator + delta_numerator
        global_d_denom = d_denom
        d_hat = first["d_coef"] * global_d_numerator / global_d_denom
        if d == groups[-1]["d0"]:  # prodigyopt reads the last group's d0 here
            d = max(d, d_hat)
        d_max = max(d_max, d_hat)
        d = min(d_max, d * first["growth_rate"])

        steps = []
        for group in groups:
            group["d_numerator"] = global_d_numerator
            group["d_denom"] = global_d_denom
            group["d"] = d
            group["d_max"] = d_max
            group["d_hat"] = d_hat
            weight_decay = scalar(group["weight_decay"])
            steps.append(
                _core.prodigy_step(
                    group["params"],
                    self.state,
                    dlr,
                    d,
                    scalar(group["eps"]),
                    weight_decay,
                    weight_decay != 0 and not decouple,
                    weight_decay != 0 and decouple,
                    beta1 > 0,
                    bool(group.get("maximize", False)),
                    bool(group.get("master_weights", False)),
                    True,
                )
            )
        for group, write in zip(groups, steps):
            write()
            group["k"] = group["k"] + 1
        for p in with_grads:  # each listing of a parameter counts
            self.state[p]["step"] += 1
        return loss
