"""Stochastic gradient descent, optionally with (Nesterov) momentum."""

from __future__ import annotations

from . import _core
from ._native import NativeOptimizer, check_flags, check_lr, scalar

__all__ = ["SGD"]


class SGD(NativeOptimizer):
    """Stochastic gradient descent, as ``torch.optim.SGD``.

    With g the gradient (negated when ``maximize``) plus ``weight_decay * p``::

        b <- g (first step), then momentum * b + (1 - dampening) * g
        g <- g + momentum * b if nesterov else b           (when momentum != 0)
        p <- p - lr * g

    State per parameter: ``momentum_buffer`` (only when momentum != 0).

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate, a float or a 1-element array (default 1e-3).
        momentum: momentum factor (default 0).
        dampening: dampening of the momentum (default 0).
        weight_decay: L2 penalty (default 0).
        nesterov: Nesterov momentum (default False); needs momentum > 0, dampening 0.
        maximize: maximize the objective instead of minimizing it (default False).
        foreach, fused: accepted for torch compatibility; there is one native path.
        differentiable: must be False.
    """

    _param_shaped_state = ("momentum_buffer",)

    def __init__(
        self,
        params,
        lr=1e-3,
        momentum=0,
        dampening=0,
        weight_decay=0,
        nesterov=False,
        *,
        maximize=False,
        foreach=None,
        differentiable=False,
        fused=None,
    ) -> None:
        check_lr(lr)
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        check_flags(foreach=foreach, fused=fused, differentiable=differentiable)
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
            "foreach": foreach,
            "differentiable": differentiable,
            "fused": fused,
        }
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, defaults)

    def _step_group(self, group) -> None:
        _core.sgd_step(
            group["params"],
            self.state,
            lr=scalar(group["lr"]),
            momentum=scalar(group["momentum"]),
            dampening=scalar(group["dampening"]),
            weight_decay=scalar(group["weight_decay"]),
            nesterov=bool(group["nesterov"]),
            maximize=bool(group["maximize"]),
        )
