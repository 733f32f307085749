"""ASGD: averaged stochastic gradient descent."""

from __future__ import annotations

import numpy as np

from . import _core
from ._native import NativeOptimizer, check_flags, check_lr, lr_value, scalar
from .optimizer import ParamsT

__all__ = ["ASGD"]


class ASGD(NativeOptimizer):
    """Averaged SGD (Polyak & Juditsky, "Acceleration of Stochastic Approximation by
    Averaging", 1992), as ``torch.optim.ASGD``.

    With g the gradient (negated when ``maximize``) plus ``weight_decay * p``, and eta
    and mu the state from the previous step::

        p <- p * (1 - lambd * eta) - eta * g
        ax <- ax + mu * (p - ax) if mu != 1 else p
        eta <- lr / (1 + lambd * lr * t)^alpha;   mu <- 1 / max(1, t - t0)

    ``ax`` is the running average of the parameter; averaging starts after step t0.
    State per parameter: ``step``, ``eta`` (starting at lr) and ``mu`` (starting at 1),
    all 0-d float32, and ``ax``.

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate, a float or a 1-element array (default 1e-2).
        lambd: decay term (default 1e-4).
        alpha: power for the eta update (default 0.75).
        t0: the step at which averaging starts (default 1e6).
        weight_decay: L2 penalty (default 0).
        foreach: accepted for torch compatibility; there is one native path.
        maximize: maximize the objective instead of minimizing it (default False).
        differentiable, capturable: must be False.
    """

    _param_shaped_state = ("ax",)
    # torch's __setstate__ fills these in (see NativeOptimizer._load_defaults).
    _load_defaults = (
        ("foreach", None),
        ("maximize", False),
        ("differentiable", False),
        ("capturable", False),
    )
    _float32_scalar_state = ("eta", "mu")

    def __init__(
        self,
        params: ParamsT,
        lr: float | np.ndarray = 1e-2,
        lambd: float = 1e-4,
        alpha: float = 0.75,
        t0: float = 1e6,
        weight_decay: float = 0,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
        capturable: bool = False,
        *,
        master_weights: bool = False,
    ) -> None:
        check_lr(lr)
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        check_flags(foreach=foreach, capturable=capturable, differentiable=differentiable)
        defaults = {
            "lr": lr,
            "lambd": lambd,
            "alpha": alpha,
            "t0": t0,
            "weight_decay": weight_decay,
            "foreach": foreach,
            "maximize": maximize,
            "differentiable": differentiable,
            "capturable": capturable,
        }
        if master_weights:  # beyond torch: in the groups (and repr) only when asked for
            defaults["master_weights"] = True
        super().__init__(params, defaults)

    def _step_group(self, group, defer: bool):
        return _core.asgd_step(
            group["params"],
            self.state,
            lr_value(group["lr"]),
            scalar(group["lambd"]),
            scalar(group["alpha"]),
            scalar(group["t0"]),
            scalar(group["weight_decay"]),
            bool(group["maximize"]),
            bool(group.get("master_weights", False)),
            defer,
        )
