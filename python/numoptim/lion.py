"""Lion, the sign-momentum optimizer found by program search."""

from __future__ import annotations

import numpy as np

from . import _core
from ._native import NativeOptimizer, add_flags, check_betas_and_decay, check_lr, lr_value, scalar
from .optimizer import ParamsT

__all__ = ["Lion"]


class Lion(NativeOptimizer):
    """Lion (Chen et al., "Symbolic Discovery of Optimization Algorithms", 2023), as
    ``lion_pytorch.Lion``.

    torch.optim has no Lion; this one has lion-pytorch's arguments, defaults, group keys
    and state, and its float32 and float64 results bit for bit (timm's and
    bitsandbytes' 32-bit Lion compute the same rule). With g the gradient (negated when
    ``maximize``) and m the running average::

        p <- p * (1 - lr * weight_decay)
        c <- beta1 * m + (1 - beta1) * g
        p <- p - lr * sign(c)
        m <- beta2 * m + (1 - beta2) * g

    ``sign`` is ``torch.sign``'s: 0 at 0 (the element does not move) and 0 at NaN, so a
    NaN gradient leaves the parameter where the decay puts it and makes m NaN.

    State per parameter: ``exp_avg`` (m) only, no step count.

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate, a float or a 1-element array (default 1e-4). Lion's update
            has unit size per element, so its lr is usually 3-10 times smaller than
            AdamW's.
        betas: coefficients of the interpolation that gives the update's sign and of
            the running average (default (0.9, 0.99)).
        weight_decay: decoupled weight decay, applied as ``p * (1 - lr * weight_decay)``
            (default 0).
        maximize: maximize the objective instead of minimizing it (default False;
            timm's option, in the groups only when True).
        foreach: accepted for timm compatibility; there is one native path.
        master_weights: keep float32 master copies of 16-bit parameters in the state
            (default False; in the groups only when True).
    """

    _param_shaped_state = ("exp_avg",)
    _real_only = True

    def __init__(
        self,
        params: ParamsT,
        lr: float | np.ndarray = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        master_weights: bool = False,
    ) -> None:
        check_lr(lr)
        check_betas_and_decay(betas, weight_decay)
        # lion-pytorch's group keys; the options beyond it only when asked for, so that
        # repr and state_dict match lion-pytorch's and its state dicts load either way.
        defaults: dict = {"lr": lr, "betas": betas, "weight_decay": weight_decay}
        super().__init__(
            params, add_flags(defaults, maximize=maximize, master_weights=master_weights)
        )

    def _step_group(self, group, defer: bool):
        beta1, beta2 = group["betas"]
        return _core.lion_step(
            group["params"],
            self.state,
            lr_value(group["lr"]),
            scalar(beta1),
            scalar(beta2),
            scalar(group["weight_decay"]),
            bool(group.get("maximize", False)),
            bool(group.get("master_weights", False)),
            defer,
        )
