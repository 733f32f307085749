"""Rprop: resilient backpropagation."""

from __future__ import annotations

import numpy as np

from . import _core
from ._native import NativeOptimizer, check_flags, check_lr, lr_value, scalar
from .optimizer import ParamsT

__all__ = ["Rprop"]


class Rprop(NativeOptimizer):
    """Rprop (Riedmiller & Braun, "A Direct Adaptive Method for Faster Backpropagation
    Learning: The RPROP Algorithm", 1993), as ``torch.optim.Rprop``.

    With g the gradient (negated when ``maximize``) and s = sign(g * prev)::

        step_size <- clamp(step_size * (etaplus if s > 0, etaminus if s < 0, else 1),
                           *step_sizes)
        g <- 0 where s < 0
        p <- p - sign(g) * step_size;   prev <- g

    ``lr`` only sets the initial step size. State per parameter: ``step`` (0-d
    float32), ``prev`` (starting at 0) and ``step_size`` (starting at the group's lr).

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: initial step size, a float or a 1-element array (default 1e-2).
        etas: (etaminus, etaplus), the factors that shrink and grow the step size,
            with 0 < etaminus < 1 < etaplus (default (0.5, 1.2)).
        step_sizes: the minimal and maximal step size (default (1e-6, 50)).
        capturable, differentiable: must be False.
        foreach: accepted for torch compatibility; there is one native path.
        maximize: maximize the objective instead of minimizing it (default False).
    """

    _param_shaped_state = ("prev", "step_size")
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
        lr: float | np.ndarray = 1e-2,
        etas: tuple[float, float] = (0.5, 1.2),
        step_sizes: tuple[float, float] = (1e-6, 50),
        *,
        capturable: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
        master_weights: bool = False,
    ) -> None:
        check_lr(lr)
        if not 0.0 < etas[0] < 1.0 < etas[1]:
            raise ValueError(f"Invalid eta values: {etas[0]}, {etas[1]}")
        check_flags(foreach=foreach, capturable=capturable, differentiable=differentiable)
        defaults = {
            "lr": lr,
            "etas": etas,
            "step_sizes": step_sizes,
            "foreach": foreach,
            "maximize": maximize,
            "differentiable": differentiable,
            "capturable": capturable,
        }
        if master_weights:  # beyond torch: in the groups (and repr) only when asked for
            defaults["master_weights"] = True
        super().__init__(params, defaults)

    def _step_group(self, group, defer: bool):
        etaminus, etaplus = group["etas"]
        step_size_min, step_size_max = group["step_sizes"]
        return _core.rprop_step(
            group["params"],
            self.state,
            lr_value(group["lr"]),
            scalar(etaminus),
            scalar(etaplus),
            scalar(step_size_min),
            scalar(step_size_max),
            bool(group["maximize"]),
            bool(group.get("master_weights", False)),
            defer,
        )
