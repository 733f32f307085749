"""LARS, layer-wise adaptive rate scaling."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _core
from ._native import NativeOptimizer, add_flags, lr_value, scalar
from .optimizer import ParamsT

__all__ = ["Lars"]


class Lars(NativeOptimizer):
    """LARS (You et al., "Large Batch Training of Convolutional Networks", 2017) with
    LARC's clipping, as ``timm.optim.Lars``.

    torch.optim has no LARS; this one has timm's arguments, defaults, group keys, state
    and messages, and computes in the order of timm's single-tensor path
    (``foreach=False``). With g the gradient, when ``weight_decay != 0`` or
    ``always_adapt``::

        r <- trust_coeff * ||p|| / (||g|| + weight_decay * ||p|| + eps)
             (1 where either norm is 0; min(r / lr, 1) with trust_clip)
        g <- (g + weight_decay * p) * r

    then torch.optim.SGD's momentum step with weight decay 0: ``b <- g`` on the first
    step, else ``momentum * b + (1 - dampening) * g``; ``g <- g + momentum * b`` with
    nesterov, else ``b``; ``p <- p - lr * g``. The norms come from a first pass over
    each tensor in a fixed order, so the step is bit-identical for every thread count
    and SIMD level.

    State per parameter: ``momentum_buffer`` (only with momentum).

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate, a float or a 1-element array (default 1.0).
        momentum: momentum factor (default 0).
        dampening: dampening for momentum (default 0).
        weight_decay: weight decay (L2 penalty; default 0).
        nesterov: Nesterov momentum (default False).
        trust_coeff: the trust coefficient of the ratio (default 0.001).
        eps: added to the ratio's denominator (default 1e-8).
        trust_clip: LARC's clipping of the ratio divided by lr at 1 (default False).
        always_adapt: apply the ratio also where weight_decay is 0 (default False).
        foreach: accepted for timm compatibility (a group key); one native path.
        maximize: maximize the objective (default False; not in timm, in the groups
            only when True).
        master_weights: keep float32 master copies of 16-bit parameters in the state
            (default False; in the groups only when True).
    """

    _real_only = True  # as its reference (see NativeOptimizer)

    _param_shaped_state = ("momentum_buffer",)
    _load_defaults = (("nesterov", False), ("foreach", None))

    def __init__(
        self,
        params: ParamsT,
        lr: float | np.ndarray = 1.0,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        trust_coeff: float = 0.001,
        eps: float = 1e-8,
        trust_clip: bool = False,
        always_adapt: bool = False,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        master_weights: bool = False,
    ) -> None:
        # timm's checks, in its order and words.
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        defaults: dict[str, Any] = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "trust_coeff": trust_coeff,
            "eps": eps,
            "trust_clip": trust_clip,
            "always_adapt": always_adapt,
            "foreach": foreach,
        }
        super().__init__(
            params, add_flags(defaults, maximize=maximize, master_weights=master_weights)
        )

    def _step_group(self, group, defer: bool):
        weight_decay = scalar(group["weight_decay"])
        return _core.lars_step(
            group["params"],
            self.state,
            lr_value(group["lr"]),
            scalar(group["momentum"]),
            scalar(group["dampening"]),
            weight_decay,
            scalar(group["trust_coeff"]),
            scalar(group["eps"]),
            bool(group["nesterov"]),
            bool(group["trust_clip"]),
            weight_decay != 0 or bool(group["always_adapt"]),
            bool(group.get("maximize", False)),
            bool(group.get("master_weights", False)),
            defer,
        )
