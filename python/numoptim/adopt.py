"""ADOPT, Adam with the gradient normalized by the previous second moment."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _core
from ._native import add_flags, check_flags, check_lr, lr_value, scalar
from ._timm import MAX_LR_SNAPSHOT, WithMaxLrSnapshot, max_lr_snapshot, refuse_caution, wd_scale
from .optimizer import ParamsT

__all__ = ["Adopt"]

_TENSOR_LR_WITH_FOREACH = "lr as a Tensor is not supported for capturable=False and foreach=True"


class Adopt(WithMaxLrSnapshot):
    """ADOPT (Taniguchi et al., "ADOPT: Modified Adam Can Converge with Any beta2 with
    the Optimal Rate", NeurIPS 2024), as ``timm.optim.Adopt``.

    torch.optim has no ADOPT; this one has timm's arguments, defaults, group keys, state
    and messages, and computes in the order of timm's single-tensor path
    (``foreach=False``). With g the gradient (negated when ``maximize``, plus
    ``weight_decay * p`` unless ``decoupled``) and t the parameter's step, the first step
    of a parameter (the one that creates its state) only sets ``v <- v + g^2``; each
    later one::

        p <- p - wd_scale * weight_decay * p       (decoupled; wd_scale: lr, or lr^2 / max_lr)
        u <- g / max(sqrt(v), eps)
        u <- clamp(u, -(t - 1)^clip_exp, (t - 1)^clip_exp)      (unless clip_exp is None)
        m <- lerp(m, u, 1 - beta1)
        p <- p - lr * m
        v <- beta2 * v + (1 - beta2) * g^2

    State per parameter: ``step`` (a 0-d float32 array), ``exp_avg`` (m) and
    ``exp_avg_sq`` (v).

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate, a float or a 1-element array (default 1e-3).
        betas: coefficients of the running averages of the normalized gradient and of
            the squared gradient (default (0.9, 0.9999)).
        eps: the least denominator (default 1e-6).
        clip_exp: the exponent of the clipping bound ``(t - 1) ** clip_exp`` of the
            normalized gradient, or None for no clipping (default 0.333).
        weight_decay: weight decay (default 0).
        decoupled: decay the parameter (AdamW) rather than add to the gradient (default
            False).
        corrected_weight_decay: with decoupled, scale the decay by ``lr ** 2 / max_lr``
            instead of lr, where max_lr is the constructor's lr (the group's
            ``max_lr_snapshot``) (default False).
        caution: timm's Cautious ADOPT needs a per-tensor mean of a mask before the
            update, which numoptim's one-pass kernel does not compute: only False is
            accepted (True raises TypeError).
        foreach: accepted for timm compatibility; there is one native path.
        maximize: maximize the objective instead of minimizing it (default False).
        capturable: only False (CUDA graphs have no meaning here).
        differentiable: only False (numoptim records no autograd graph).
        master_weights: keep float32 master copies of 16-bit parameters in the state
            (default False; in the groups only when True).
    """

    _real_only = True  # as its reference (see NativeOptimizer)

    _param_shaped_state = ("exp_avg", "exp_avg_sq")
    _load_defaults = (
        ("maximize", False),
        ("foreach", None),
        ("capturable", False),
        ("differentiable", False),
        ("clip_exp", None),
        ("caution", False),
        ("corrected_weight_decay", False),
        ("max_lr_snapshot", MAX_LR_SNAPSHOT),
    )
    _sparse_grad_error = "ADOPT does not support sparse gradients"

    def __init__(
        self,
        params: ParamsT,
        lr: float | np.ndarray = 1e-3,
        betas: tuple[float, float] = (0.9, 0.9999),
        eps: float = 1e-6,
        clip_exp: float | None = 0.333,
        weight_decay: float = 0.0,
        decoupled: bool = False,
        corrected_weight_decay: bool = False,
        *,
        caution: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        master_weights: bool = False,
    ) -> None:
        # timm's checks, in its order and words.
        if isinstance(lr, np.ndarray) and foreach and not capturable:
            raise ValueError(_TENSOR_LR_WITH_FOREACH)
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
            raise refuse_caution("Adopt")
        check_flags(capturable=capturable, differentiable=differentiable)
        defaults: dict[str, Any] = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "clip_exp": clip_exp,
            "decoupled": decoupled,
            "corrected_weight_decay": corrected_weight_decay,
            "max_lr_snapshot": max_lr_snapshot(lr, corrected_weight_decay),
            "caution": caution,
            "maximize": maximize,
            "foreach": foreach,
            "capturable": capturable,
            "differentiable": differentiable,
        }
        super().__init__(params, add_flags(defaults, master_weights=master_weights))

    def _step_group(self, group, defer: bool):
        if group.get("caution"):
            raise refuse_caution("Adopt")
        check_flags(
            capturable=group.get("capturable", False),
            differentiable=group.get("differentiable", False),
        )
        if group["foreach"] and isinstance(group["lr"], np.ndarray):
            raise RuntimeError(_TENSOR_LR_WITH_FOREACH)
        beta1, beta2 = group["betas"]
        lr = lr_value(group["lr"])
        clip_exp = group["clip_exp"]
        return _core.adopt_step(
            group["params"],
            self.state,
            lr,
            scalar(beta1),
            scalar(beta2),
            scalar(group["eps"]),
            scalar(group["weight_decay"]),
            wd_scale(group, lr),
            0.0 if clip_exp is None else scalar(clip_exp),
            clip_exp is not None,
            bool(group["decoupled"]),
            bool(group["maximize"]),
            bool(group.get("master_weights", False)),
            defer,
        )
