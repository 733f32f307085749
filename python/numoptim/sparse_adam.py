"""SparseAdam: Adam on the rows that a row-sparse gradient touches."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _core
from ._native import NativeOptimizer, lr_value, scalar
from .optimizer import ParamsT
from .parameter import Parameter

__all__ = ["SparseAdam"]


class SparseAdam(NativeOptimizer):
    """A masked Adam for row-sparse gradients, as ``torch.optim.SparseAdam``.

    Every gradient must be a :class:`~numoptim.RowSparseGrad` (the gradient of an
    embedding lookup). Its repeated rows are summed first (as torch's ``coalesce``);
    then, with g a touched row (negated when ``maximize``) and t the step count, only
    the touched rows of the parameter and its moments are read and written::

        m <- m + (1 - beta1) * (g - m)
        v <- v + (1 - beta2) * (g^2 - v)
        p <- p - lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps)

    Unlike :class:`Adam`, eps is not bias-corrected, and rows the gradient does not
    touch keep their moments and values exactly. ``step`` counts every step that had a
    gradient, even one with no rows.

    State per parameter: ``step`` (a Python int, as in torch), ``exp_avg``,
    ``exp_avg_sq``.

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate, a float or a 1-element array, > 0 (default 1e-3).
        betas: coefficients of the running averages of g and g^2 (default (0.9, 0.999)).
        eps: added to the denominator, > 0 (default 1e-8).
        maximize: maximize the objective instead of minimizing it (default False).

    Raises:
        ValueError: a complex parameter (torch's message).
        RuntimeError: at ``step``, a parameter has a dense (ndarray) gradient.
    """

    _param_shaped_state = ("exp_avg", "exp_avg_sq")

    def __init__(
        self,
        params: ParamsT,
        lr: float | np.ndarray = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        maximize: bool = False,
    ) -> None:
        if isinstance(lr, np.ndarray) and lr.size != 1:
            raise ValueError("Tensor lr must be 1-element")
        if not 0.0 < lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 < eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        defaults = {"lr": lr, "betas": betas, "eps": eps, "maximize": maximize}
        super().__init__(params, defaults)
        # torch rejects sparse and complex parameters here (a numoptim Parameter is always
        # dense), listing them as [group, position] pairs, and only here: a group added
        # later is not checked.
        complex_params = [
            [group_index, index]
            for group_index, group in enumerate(self.param_groups)
            for index, p in enumerate(group["params"])
            if p.dtype.kind == "c"
        ]
        if complex_params:
            raise ValueError(
                f"Complex params at indices {complex_params}: SparseAdam does not support "
                "complex parameters"
            )

    def _step_group(self, group: dict[str, Any], defer: bool):
        beta1, beta2 = group["betas"]
        return _core.sparse_adam_step(
            group["params"],
            self.state,
            lr_value(group["lr"]),
            scalar(beta1),
            scalar(beta2),
            scalar(group["eps"]),
            bool(group.get("maximize", False)),
            defer,
        )

    def _cast_state(self, param: Parameter, key: Any, value: Any, dtype: Any = None) -> Any:
        # SparseAdam's step is a Python int in torch, not the 0-d float32 of the others.
        if key == "step":
            return int(value)
        return super()._cast_state(param, key, value, dtype)
