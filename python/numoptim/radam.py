"""RAdam: Adam with a rectified adaptive learning rate."""

from __future__ import annotations

import numpy as np

from . import _core
from ._native import NativeOptimizer, check_adam_family, check_flags, lr_value, scalar
from .optimizer import ParamsT

__all__ = ["RAdam"]


class RAdam(NativeOptimizer):
    """RAdam (Liu et al., "On the Variance of the Adaptive Learning Rate and Beyond",
    2020), as ``torch.optim.RAdam``.

    With g the gradient (negated when ``maximize``) and t the step count::

        p <- p * (1 - lr * weight_decay) if decoupled_weight_decay else g <- g + wd * p
        m <- beta1 * m + (1 - beta1) * g;   v <- beta2 * v + (1 - beta2) * g^2
        m_hat <- m / (1 - beta1^t)
        rho_inf <- 2 / (1 - beta2) - 1;   rho_t <- rho_inf - 2 t beta2^t / (1 - beta2^t)
        if rho_t > 5:
            r <- sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
            p <- p - lr * m_hat * r * sqrt(1 - beta2^t) / (sqrt(v) + eps)
        else:
            p <- p - lr * m_hat

    State per parameter: ``step`` (0-d float32), ``exp_avg``, ``exp_avg_sq``.

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate, a float or a 1-element array (default 1e-3).
        betas: coefficients of the running averages of g and g^2 (default (0.9, 0.999)).
        eps: added to the denominator for numerical stability (default 1e-8).
        weight_decay: weight decay (default 0).
        decoupled_weight_decay: decay the parameter as AdamW does instead of adding
            ``weight_decay * p`` to the gradient (default False).
        foreach: accepted for torch compatibility; there is one native path.
        maximize: maximize the objective instead of minimizing it (default False).
        capturable, differentiable: must be False.
    """

    _param_shaped_state = ("exp_avg", "exp_avg_sq")
    # torch's __setstate__ fills these in (see NativeOptimizer._load_defaults).
    _load_defaults = (
        ("foreach", None),
        ("maximize", False),
        ("differentiable", False),
        ("decoupled_weight_decay", False),
        ("capturable", False),
    )

    def __init__(
        self,
        params: ParamsT,
        lr: float | np.ndarray = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        decoupled_weight_decay: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        master_weights: bool = False,
    ) -> None:
        check_adam_family(lr, betas, eps, weight_decay)
        check_flags(foreach=foreach, capturable=capturable, differentiable=differentiable)
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "maximize": maximize,
            "foreach": foreach,
            "capturable": capturable,
            "decoupled_weight_decay": decoupled_weight_decay,
            "differentiable": differentiable,
        }
        if master_weights:  # beyond torch: in the groups (and repr) only when asked for
            defaults["master_weights"] = True
        super().__init__(params, defaults)

    def _step_group(self, group, defer: bool):
        beta1, beta2 = group["betas"]
        return _core.radam_step(
            group["params"],
            self.state,
            lr_value(group["lr"]),
            scalar(beta1),
            scalar(beta2),
            scalar(group["eps"]),
            scalar(group["weight_decay"]),
            bool(group["maximize"]),
            bool(group["decoupled_weight_decay"]),
            bool(group.get("master_weights", False)),
            defer,
        )
