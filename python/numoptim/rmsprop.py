"""RMSprop, optionally centered and with momentum."""

from __future__ import annotations

import numpy as np

from . import _core
from ._native import NativeOptimizer, check_flags, check_lr, lr_value, scalar
from .optimizer import ParamsT

__all__ = ["RMSprop"]


class RMSprop(NativeOptimizer):
    """RMSprop (Hinton, 2012; centered as Graves, 2013), as ``torch.optim.RMSprop``.

    With g the gradient (negated when ``maximize``) plus ``weight_decay * p``::

        v <- alpha * v + (1 - alpha) * g^2
        avg <- sqrt(v - g_avg^2) + eps, after g_avg <- lerp(g_avg, g, 1 - alpha),
               if centered; else sqrt(v) + eps
        b <- momentum * b + g / avg, p <- p - lr * b      if momentum > 0
        p <- p - lr * g / avg                              otherwise

    State per parameter: ``step`` (0-d float32, counted but unused, as torch),
    ``square_avg``, ``momentum_buffer`` when momentum > 0, ``grad_avg`` when centered.

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate, a float or a 1-element array (default 1e-2).
        alpha: smoothing constant of the running averages (default 0.99).
        eps: added to the denominator for numerical stability (default 1e-8).
        weight_decay: L2 penalty (default 0).
        momentum: momentum factor (default 0).
        centered: normalize by the estimated variance of the gradient (default False).
        capturable: must be False.
        foreach: accepted for torch compatibility; there is one native path.
        maximize: maximize the objective instead of minimizing it (default False).
        differentiable: must be False.
    """

    _param_shaped_state = ("square_avg", "momentum_buffer", "grad_avg")
    # torch's __setstate__ fills these in (see NativeOptimizer._load_defaults).
    _load_defaults = (
        ("momentum", 0),
        ("centered", False),
        ("foreach", None),
        ("maximize", False),
        ("differentiable", False),
        ("capturable", False),
    )

    def __init__(
        self,
        params: ParamsT,
        lr: float | np.ndarray = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
        capturable: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
        *,
        master_weights: bool = False,
    ) -> None:
        check_lr(lr)
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= momentum:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= alpha:
            raise ValueError(f"Invalid alpha value: {alpha}")
        check_flags(foreach=foreach, capturable=capturable, differentiable=differentiable)
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "alpha": alpha,
            "eps": eps,
            "centered": centered,
            "weight_decay": weight_decay,
            "capturable": capturable,
            "foreach": foreach,
            "maximize": maximize,
            "differentiable": differentiable,
        }
        if master_weights:  # beyond torch: in the groups (and repr) only when asked for
            defaults["master_weights"] = True
        super().__init__(params, defaults)

    def _step_group(self, group, defer: bool):
        return _core.rmsprop_step(
            group["params"],
            self.state,
            lr_value(group["lr"]),
            scalar(group["alpha"]),
            scalar(group["eps"]),
            scalar(group["weight_decay"]),
            scalar(group["momentum"]),
            bool(group["centered"]),
            bool(group["maximize"]),
            bool(group.get("master_weights", False)),
            defer,
        )
