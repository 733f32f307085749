"""Adam, with AMSGrad and decoupled (AdamW) weight decay."""

from __future__ import annotations

import numpy as np

from . import _core
from ._native import NativeOptimizer, check_adam_family, check_flags, scalar

__all__ = ["Adam"]


class Adam(NativeOptimizer):
    """Adam (Kingma & Ba, 2015), as ``torch.optim.Adam``.

    With g the gradient (negated when ``maximize``) and t the step count::

        p <- p * (1 - lr * weight_decay) if decoupled_weight_decay else g <- g + wd * p
        m <- beta1 * m + (1 - beta1) * g
        v <- beta2 * v + (1 - beta2) * g^2           (v_max <- max(v_max, v) if amsgrad)
        p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    State per parameter: ``step`` (0-d float32), ``exp_avg``, ``exp_avg_sq``, and
    ``max_exp_avg_sq`` when amsgrad.

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate, a float or a 1-element array (default 1e-3).
        betas: coefficients of the running averages of g and g^2 (default (0.9, 0.999)).
        eps: added to the denominator for numerical stability (default 1e-8).
        weight_decay: weight decay (default 0).
        amsgrad: use the AMSGrad variant (Reddi et al., 2018) (default False).
        maximize: maximize the objective instead of minimizing it (default False).
        decoupled_weight_decay: AdamW's decoupled decay (default False).
        foreach, fused: accepted for torch compatibility; there is one native path.
        capturable, differentiable: must be False.
    """

    _param_shaped_state = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    # AdamW inherits this message, as in torch.
    _sparse_grad_error = (
        "Adam does not support sparse gradients, please consider SparseAdam instead"
    )

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0,
        amsgrad=False,
        *,
        foreach=None,
        maximize=False,
        capturable=False,
        differentiable=False,
        fused=None,
        decoupled_weight_decay=False,
    ) -> None:
        check_adam_family(lr, betas, eps, weight_decay)
        if not (
            all(isinstance(b, float) for b in betas[:2])
            or all(isinstance(b, np.ndarray) for b in betas[:2])
        ):
            raise ValueError("betas must be either both floats or both Tensors")
        check_flags(
            foreach=foreach, fused=fused, capturable=capturable, differentiable=differentiable
        )
        defaults = {
            "lr": lr,
            "betas": tuple(float(b) for b in betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "foreach": foreach,
            "capturable": capturable,
            "differentiable": differentiable,
            "fused": fused,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def _step_group(self, group) -> None:
        beta1, beta2 = group["betas"]
        # Positional: pybind11 matches keyword arguments by building a str per name per
        # call, about 1 us of a 3.5 us step on a small tensor.
        _core.adam_step(
            group["params"],
            self.state,
            scalar(group["lr"]),
            scalar(beta1),
            scalar(beta2),
            scalar(group["eps"]),
            scalar(group["weight_decay"]),
            bool(group["amsgrad"]),
            bool(group["maximize"]),
            bool(group["decoupled_weight_decay"]),
        )
