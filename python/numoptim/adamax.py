"""Adamax, the infinity-norm variant of Adam."""

from __future__ import annotations

import numpy as np

from . import _core
from ._native import NativeOptimizer, check_adam_family, check_flags, lr_value, scalar
from .optimizer import ParamsT

__all__ = ["Adamax"]


class Adamax(NativeOptimizer):
    """Adamax (Kingma & Ba, 2015, section 7.1), as ``torch.optim.Adamax``.

    With g the gradient (negated when ``maximize``) plus ``weight_decay * p`` and t the
    step count::

        m <- beta1 * m + (1 - beta1) * g
        u <- max(beta2 * u, |g| + eps)        (NaN in either side propagates)
        p <- p - lr / (1 - beta1^t) * m / u

    State per parameter: ``step`` (0-d float32), ``exp_avg`` (m) and ``exp_inf`` (u).

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate, a float or a 1-element array (default 2e-3).
        betas: coefficients of the running average and of the infinity norm
            (default (0.9, 0.999)).
        eps: added to ``|g|`` inside the max for numerical stability (default 1e-8).
        weight_decay: L2 penalty (default 0).
        foreach: accepted for torch compatibility; there is one native path.
        maximize: maximize the objective instead of minimizing it (default False).
        differentiable, capturable: must be False.
    """

    _param_shaped_state = ("exp_avg", "exp_inf")
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
        lr: float | np.ndarray = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        capturable: bool = False,
        master_weights: bool = False,
    ) -> None:
        check_adam_family(lr, betas, eps, weight_decay)
        check_flags(foreach=foreach, capturable=capturable, differentiable=differentiable)
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
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
        beta1, beta2 = group["betas"]
        return _core.adamax_step(
            group["params"],
            self.state,
            lr_value(group["lr"]),
            scalar(beta1),
            scalar(beta2),
            scalar(group["eps"]),
            scalar(group["weight_decay"]),
            bool(group["maximize"]),
            bool(group.get("master_weights", False)),
            defer,
        )
