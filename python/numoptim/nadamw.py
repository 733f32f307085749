"""NAdamW, AdamW with a Nesterov look-ahead on the running average."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _core
from ._native import add_flags, check_flags, check_lr, lr_value, scalar
from ._timm import MAX_LR_SNAPSHOT, WithMaxLrSnapshot, max_lr_snapshot, refuse_caution, wd_scale
from .optimizer import ParamsT

__all__ = ["NAdamW"]


class NAdamW(WithMaxLrSnapshot):
    """NAdamW (AdamW with Nesterov momentum, as the MLCommons AlgoPerf baseline), as
    ``timm.optim.NAdamW``.

    torch.optim has no NAdamW (its NAdam uses a momentum schedule); this one has timm's
    arguments, defaults, group keys, state and messages, and computes in the order of
    timm's single-tensor path (``foreach=False``). With g the gradient (negated when
    ``maximize``) and t the parameter's step::

        p <- p * (1 - wd_scale * weight_decay)       (wd_scale: lr, or lr^2 / max_lr)
        m <- lerp(m, g, 1 - beta1)
        v <- beta2 * v + (1 - beta2) * g^2
        p <- p - lr / (1 - beta1^t) * lerp(m, g, 1 - beta1) / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    State per parameter: ``step`` (a 0-d float32 array), ``exp_avg`` (m) and
    ``exp_avg_sq`` (v).

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate, a float or a 1-element array (default 1e-3).
        betas: coefficients of the running averages of the gradient and its square
            (default (0.9, 0.999)).
        eps: added to the denominator (default 1e-8).
        weight_decay: decoupled weight decay (default 1e-2).
        caution: timm's Cautious NAdamW needs a per-tensor mean of a mask before the
            update, which numoptim's one-pass kernel does not compute: only False is
            accepted (True raises TypeError).
        corrected_weight_decay: scale the decay by ``lr ** 2 / max_lr`` instead of lr,
            where max_lr is the constructor's lr (the group's ``max_lr_snapshot``)
            (default False).
        maximize: maximize the objective instead of minimizing it (default False).
        foreach: accepted for timm compatibility; there is one native path.
        capturable: only False (CUDA graphs have no meaning here).
        clipping_threshold: timm's RMS update clipping (StableAdamW) needs a per-tensor
            norm before the update, which numoptim's one-pass kernel does not compute:
            only None is accepted (a number raises TypeError).
        master_weights: keep float32 master copies of 16-bit parameters in the state
            (default False; in the groups only when True).
    """

    _real_only = True  # as its reference (see NativeOptimizer)

    _param_shaped_state = ("exp_avg", "exp_avg_sq")
    _load_defaults = (
        ("caution", False),
        ("corrected_weight_decay", False),
        ("max_lr_snapshot", MAX_LR_SNAPSHOT),
        ("foreach", None),
        ("maximize", False),
        ("capturable", False),
        ("clipping_threshold", None),
    )

    def __init__(
        self,
        params: ParamsT,
        lr: float | np.ndarray = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        caution: bool = False,
        corrected_weight_decay: bool = False,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        clipping_threshold: float | None = None,
        *,
        master_weights: bool = False,
    ) -> None:
        # timm's checks, in its order and words.
        check_lr(lr)
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if caution:
            raise refuse_caution("NAdamW")
        if clipping_threshold is not None:
            raise TypeError(
                "clipping_threshold is not supported: the RMS clipping of the update needs a "
                "per-tensor norm before the update, which numoptim's NAdamW does not compute"
            )
        check_flags(capturable=capturable)
        defaults: dict[str, Any] = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "caution": caution,
            "corrected_weight_decay": corrected_weight_decay,
            "max_lr_snapshot": max_lr_snapshot(lr, corrected_weight_decay),
            "foreach": foreach,
            "maximize": maximize,
            "capturable": capturable,
            "clipping_threshold": clipping_threshold,
        }
        super().__init__(params, add_flags(defaults, master_weights=master_weights))

    def _step_group(self, group, defer: bool):
        if group.get("caution"):
            raise refuse_caution("NAdamW")
        if group.get("clipping_threshold") is not None:
            raise TypeError("clipping_threshold is not supported by numoptim's NAdamW")
        check_flags(capturable=group.get("capturable", False))
        beta1, beta2 = group["betas"]
        lr = lr_value(group["lr"])
        return _core.nadamw_step(
            group["params"],
            self.state,
            lr,
            scalar(beta1),
            scalar(beta2),
            scalar(group["eps"]),
            scalar(group["weight_decay"]),
            wd_scale(group, lr),
            bool(group["maximize"]),
            bool(group.get("master_weights", False)),
            defer,
        )
