"""NAdam: Adam with Nesterov momentum."""

from __future__ import annotations

import numpy as np

from . import _core
from ._native import NativeOptimizer, check_adam_family, check_flags, lr_value, scalar
from .optimizer import ParamsT

__all__ = ["NAdam"]


class NAdam(NativeOptimizer):
    """NAdam (Dozat, "Incorporating Nesterov Momentum into Adam", 2016), as
    ``torch.optim.NAdam``.

    With g the gradient (negated when ``maximize``), t the step count and
    ``mu_t = beta1 * (1 - 0.5 * 0.96^(t * momentum_decay))``::

        p <- p * (1 - lr * weight_decay) if decoupled_weight_decay else g <- g + wd * p
        mu_product <- mu_product * mu_t
        m <- beta1 * m + (1 - beta1) * g;   v <- beta2 * v + (1 - beta2) * g^2
        denom <- sqrt(v / (1 - beta2^t)) + eps
        p <- p - lr * (1 - mu_t) / (1 - mu_product) * g / denom
               - lr * mu_{t+1} / (1 - mu_product * mu_{t+1}) * m / denom

    State per parameter: ``step`` and ``mu_product`` (0-d float32, ``mu_product``
    starting at 1), ``exp_avg``, ``exp_avg_sq``.

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate, a float or a 1-element array (default 2e-3).
        betas: coefficients of the running averages of g and g^2 (default (0.9, 0.999)).
        eps: added to the denominator for numerical stability (default 1e-8).
        weight_decay: weight decay (default 0).
        momentum_decay: the momentum schedule's decay psi (default 4e-3).
        decoupled_weight_decay: decay the parameter as AdamW does (NAdamW) instead of
            adding ``weight_decay * p`` to the gradient (default False).
        foreach: accepted for torch compatibility; there is one native path.
        maximize: maximize the objective instead of minimizing it (default False).
        capturable, differentiable: must be False.
    """

    _param_shaped_state = ("exp_avg", "exp_avg_sq")
    # torch's __setstate__ fills these in (see NativeOptimizer._load_defaults).
    _load_defaults = (
        ("maximize", False),
        ("foreach", None),
        ("capturable", False),
        ("differentiable", False),
        ("decoupled_weight_decay", False),
    )
    _float32_scalar_state = ("mu_product",)

    def __init__(
        self,
        params: ParamsT,
        lr: float | np.ndarray = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum_decay: float = 4e-3,
        decoupled_weight_decay: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        master_weights: bool = False,
    ) -> None:
        check_adam_family(lr, betas, eps, weight_decay)
        if not 0.0 <= momentum_decay:
            raise ValueError(f"Invalid momentum_decay value: {momentum_decay}")
        check_flags(foreach=foreach, capturable=capturable, differentiable=differentiable)
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "momentum_decay": momentum_decay,
            "decoupled_weight_decay": decoupled_weight_decay,
            "maximize": maximize,
            "foreach": foreach,
            "capturable": capturable,
            "differentiable": differentiable,
        }
        if master_weights:  # beyond torch: in the groups (and repr) only when asked for
            defaults["master_weights"] = True
        super().__init__(params, defaults)

    def _step_group(self, group, defer: bool):
        beta1, beta2 = group["betas"]
        return _core.nadam_step(
            group["params"],
            self.state,
            lr_value(group["lr"]),
            scalar(beta1),
            scalar(beta2),
            scalar(group["eps"]),
            scalar(group["weight_decay"]),
            scalar(group["momentum_decay"]),
            bool(group["maximize"]),
            bool(group["decoupled_weight_decay"]),
            bool(group.get("master_weights", False)),
            defer,
        )
