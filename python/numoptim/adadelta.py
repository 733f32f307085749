"""Adadelta."""

from __future__ import annotations

import numpy as np

from . import _core
from ._native import NativeOptimizer, check_flags, check_lr, lr_value, scalar
from .optimizer import ParamsT

__all__ = ["Adadelta"]


class Adadelta(NativeOptimizer):
    """Adadelta (Zeiler, 2012), as ``torch.optim.Adadelta``.

    With g the gradient (negated when ``maximize``) plus ``weight_decay * p``::

        v <- rho * v + (1 - rho) * g^2
        delta <- sqrt(u + eps) / sqrt(v + eps) * g
        u <- rho * u + (1 - rho) * delta^2
        p <- p - lr * delta

    State per parameter: ``step`` (0-d float32, counted but unused, as torch),
    ``square_avg`` (v) and ``acc_delta`` (u).

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: factor that scales delta before it is applied, a float or a 1-element
            array (default 1.0).
        rho: coefficient of the running averages (default 0.9).
        eps: added inside the square roots for numerical stability (default 1e-6).
        weight_decay: L2 penalty (default 0).
        foreach: accepted for torch compatibility; there is one native path.
        capturable, differentiable: must be False.
        maximize: maximize the objective instead of minimizing it (default False).
    """

    _param_shaped_state = ("square_avg", "acc_delta")
    # torch's __setstate__ fills these in (see NativeOptimizer._load_defaults).
    _load_defaults = (
        ("foreach", None),
        ("maximize", False),
        ("differentiable", False),
        ("capturable", False),
    )

    def __init__(
        self,
        params: ParamsT,
        lr: float | np.ndarray = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0,
        foreach: bool | None = None,
        *,
        capturable: bool = False,
        maximize: bool = False,
        differentiable: bool = False,
        master_weights: bool = False,
    ) -> None:
        check_lr(lr)
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        check_flags(foreach=foreach, capturable=capturable, differentiable=differentiable)
        defaults = {
            "lr": lr,
            "rho": rho,
            "eps": eps,
            "weight_decay": weight_decay,
            "maximize": maximize,
            "capturable": capturable,
            "foreach": foreach,
            "differentiable": differentiable,
        }
        if master_weights:  # beyond torch: in the groups (and repr) only when asked for
            defaults["master_weights"] = True
        super().__init__(params, defaults)

    def _step_group(self, group, defer: bool):
        return _core.adadelta_step(
            group["params"],
            self.state,
            lr_value(group["lr"]),
            scalar(group["rho"]),
            scalar(group["eps"]),
            scalar(group["weight_decay"]),
            bool(group["maximize"]),
            bool(group.get("master_weights", False)),
            defer,
        )
