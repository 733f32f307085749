"""Adan, the adaptive Nesterov momentum algorithm."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _core
from ._native import NativeOptimizer, add_flags, check_lr, lr_value, scalar, then
from .optimizer import ParamsT

__all__ = ["Adan"]


class Adan(NativeOptimizer):
    """Adan (Xie et al., "Adan: Adaptive Nesterov Momentum Algorithm for Faster
    Optimizing Deep Models", 2022), as ``timm.optim.Adan``.

    torch.optim has no Adan; this one has timm's arguments, defaults, group keys, state
    and messages, and computes in the order of timm's single-tensor path
    (``foreach=False``). With g the gradient (negated when ``maximize``), d = g - g_prev
    (0 at the first step) and t the group's step::

        m <- lerp(m, g, 1 - beta1)
        v <- beta2 * v + (1 - beta2) * d
        n <- beta3 * n + (1 - beta3) * (g + beta2 * d)^2
        denom <- sqrt(n) / sqrt(1 - beta3^t) + eps
        p <- p * (1 - lr * weight_decay)                         (no_prox only)
        p <- p - lr / (1 - beta1^t) * m / denom - lr * beta2 / (1 - beta2^t) * v / denom
        p <- p / (1 + lr * weight_decay)                         (default: proximal)

    The betas are the code's (sail-sg/Adan, timm), 1 minus the paper's.

    State per parameter: ``exp_avg`` (m), ``exp_avg_sq`` (n), ``exp_avg_diff`` (v) and
    ``neg_pre_grad`` (-g_prev). As in timm, the step count is the group's ``step`` (an
    int, in ``param_groups`` and the state dict's groups once the group has stepped),
    counted at every step whether or not a parameter has a gradient.

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate, a float or a 1-element array (default 1e-3).
        betas: (beta1, beta2, beta3) for the gradient's, the gradient difference's and
            the squared Nesterov gradient's running averages (default (0.98, 0.92, 0.99)).
        eps: added to the denominator (default 1e-8).
        weight_decay: weight decay (default 0), proximal (``p / (1 + lr * wd)`` after
            the update) unless ``no_prox``, then decoupled (``p * (1 - lr * wd)`` before).
        no_prox: apply the weight decay before the update, as AdamW (default False).
        caution: timm's Cautious Adan needs a per-tensor mean of a mask before the
            update, which numoptim's one-pass kernel does not compute: only False is
            accepted (True raises TypeError).
        foreach: accepted for timm compatibility (a group key, as in timm); there is
            one native path.
        maximize: maximize the objective instead of minimizing it (default False; not in
            timm, in the groups only when True).
        master_weights: keep float32 master copies of 16-bit parameters in the state
            (default False; in the groups only when True).
    """

    _real_only = True  # as its reference (see NativeOptimizer)

    _param_shaped_state = ("exp_avg", "exp_avg_sq", "exp_avg_diff", "neg_pre_grad")
    _load_defaults = (("no_prox", False), ("caution", False))

    def __init__(
        self,
        params: ParamsT,
        lr: float | np.ndarray = 1e-3,
        betas: tuple[float, float, float] = (0.98, 0.92, 0.99),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        no_prox: bool = False,
        caution: bool = False,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        master_weights: bool = False,
    ) -> None:
        # timm's checks, in its order and words (it does not check weight_decay).
        check_lr(lr)
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        for i in range(3):
            if not 0.0 <= betas[i] < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {betas[i]}")
        if caution:
            raise TypeError(
                "caution=True is not supported: Cautious Adan needs a per-tensor mean "
                "of its mask before the update, which numoptim's Adan does not compute"
            )
        defaults: dict[str, Any] = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "no_prox": no_prox,
            "caution": caution,
            "foreach": foreach,
        }
        super().__init__(
            params, add_flags(defaults, maximize=maximize, master_weights=master_weights)
        )

    def _step_group(self, group, defer: bool):
        if group.get("caution"):
            raise TypeError("caution=True is not supported by numoptim's Adan")
        beta1, beta2, beta3 = group["betas"]
        step = group.get("step", 0) + 1
        write = _core.adan_step(
            group["params"],
            self.state,
            lr_value(group["lr"]),
            scalar(beta1),
            scalar(beta2),
            scalar(beta3),
            scalar(group["eps"]),
            scalar(group["weight_decay"]),
            float(step),
            bool(group["no_prox"]),
            bool(group.get("maximize", False)),
            bool(group.get("master_weights", False)),
            defer,
        )
        return then(write, lambda: group.__setitem__("step", step))

    def restart_opt(self) -> None:
        """timm's restart: the groups' step counts to 0 and m, n and v to zeros.

        The next step then starts over as a first step (d = 0). Parameters that have no
        state yet keep none (timm creates zeros for them; the next step does the same).
        """
        for group in self.param_groups:
            group["step"] = 0
            for p in group["params"]:
                state = self.state.get(p)
                if state:
                    for key in ("exp_avg", "exp_avg_sq", "exp_avg_diff"):
                        if key in state:
                            state[key][...] = 0
