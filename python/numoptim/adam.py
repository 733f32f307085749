"""Adam, with AMSGrad and decoupled (AdamW) weight decay."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _core
from ._native import NativeOptimizer, check_adam_family, check_flags, check_fused_params, scalar
from .optimizer import ParamsT

__all__ = ["Adam"]


def _array_lr(group: dict[str, Any], lr: np.ndarray) -> float:
    """An array ``lr`` as a float, after torch's step-time check of it."""
    # torch checks again at step time, where a group added later (or one whose foreach
    # was changed) can pair an array lr with foreach; a group without grads passes.
    if (
        group["foreach"]
        and not group["capturable"]
        and any(p.grad is not None for p in group["params"])
    ):
        raise RuntimeError("lr as a Tensor is not supported for capturable=False and foreach=True")
    # NumPy 2 refuses float() of a 1-element array that has dimensions, where torch's
    # float() takes any 1-element tensor.
    return float(lr.reshape(()))


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
    # torch's __setstate__ fills these in (see NativeOptimizer._load_defaults).
    _load_defaults = (
        ("amsgrad", False),
        ("maximize", False),
        ("foreach", None),
        ("capturable", False),
        ("differentiable", False),
        ("decoupled_weight_decay", False),
        ("fused", None),
    )
    # AdamW inherits this message, as in torch.
    _sparse_grad_error = (
        "Adam does not support sparse gradients, please consider SparseAdam instead"
    )

    def __init__(
        self,
        params: ParamsT,
        lr: float | np.ndarray = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
        master_weights: bool = False,
    ) -> None:
        # torch's checks and their order: an array lr with foreach is refused before lr's
        # size and value are looked at, and array betas after every range check.
        if isinstance(lr, np.ndarray) and foreach and not capturable:
            raise ValueError(
                "lr as a Tensor is not supported for capturable=False and foreach=True"
            )
        check_adam_family(lr, betas, eps, weight_decay)
        if not (
            all(isinstance(b, float) for b in betas[:2])
            or all(isinstance(b, np.ndarray) for b in betas[:2])
        ):
            raise ValueError("betas must be either both floats or both Tensors")
        for i in (0, 1):
            if isinstance(betas[i], np.ndarray):
                if foreach and not capturable:
                    raise ValueError(
                        f"betas[{i}] as a Tensor is not supported for capturable=False and "
                        "foreach=True"
                    )
                if betas[i].size != 1:
                    raise ValueError(f"Tensor betas[{i}] must be 1-element")
        check_flags(
            foreach=foreach, fused=fused, capturable=capturable, differentiable=differentiable
        )
        defaults = {
            "lr": lr,
            # reshape: NumPy 2 refuses float() of a 1-element array that has dimensions.
            "betas": tuple(float(np.reshape(b, ())) for b in betas),
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
        if master_weights:  # beyond torch: in the groups (and repr) only when asked for
            defaults["master_weights"] = True
        super().__init__(params, defaults)

    def _step_group(self, group, defer: bool):
        check_fused_params(group)
        beta1, beta2 = group["betas"]
        lr = group["lr"]
        if isinstance(lr, np.ndarray):
            lr = _array_lr(group, lr)
        # Positional: pybind11 matches keyword arguments by building a str per name per
        # call, about 1 us of a 3.5 us step on a small tensor.
        return _core.adam_step(
            group["params"],
            self.state,
            scalar(lr),
            scalar(beta1),
            scalar(beta2),
            scalar(group["eps"]),
            scalar(group["weight_decay"]),
            bool(group["amsgrad"]),
            bool(group["maximize"]),
            bool(group["decoupled_weight_decay"]),
            bool(group.get("master_weights", False)),
            defer,
        )
