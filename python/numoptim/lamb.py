"""LAMB, layer-wise adaptive moments for large batches."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _core
from ._native import add_flags, lr_value, scalar, then
from ._timm import (
    MAX_LR_SNAPSHOT,
    WithMaxLrSnapshot,
    max_lr_snapshot,
    refuse_caution,
    validate_scalar,
    wd_scale,
)
from .optimizer import ParamsT
from .sparse import RowSparseGrad
from .utils import _total_norm

__all__ = ["Lamb"]


class Lamb(WithMaxLrSnapshot):
    """LAMB (You et al., "Large Batch Optimization for Deep Learning: Training BERT in
    76 minutes", 2020), as ``timm.optim.Lamb``.

    torch.optim has no LAMB; this one has timm's arguments, defaults, group keys, state
    and messages, and computes in the order of timm's single-tensor path
    (``foreach=False``). With g the gradient divided by the global clipping factor
    (below), t the group's step and bc1, bc2 its bias corrections::

        m <- lerp(m, g, 1 - beta1)        (beta1 * m + g without grad_averaging)
        v <- beta2 * v + (1 - beta2) * g^2
        u <- (m / bc1) / (sqrt(v) / sqrt(bc2) + eps)
        p <- p - decay * p                (decoupled_decay; else u <- u + wd * p)
        u <- u * ||p|| / ||u||            (when wd != 0 or always_adapt; 1 where either
                                           norm is 0; at most 1 with trust_clip)
        p <- p - lr * u

    The clipping factor is ``max(total_norm / max_grad_norm, 1)``, with the total norm
    of all groups' gradients computed as :func:`numoptim.utils.get_total_norm` does
    (native, the same bits for every thread count; for 16-bit gradients in float32, as
    the rest of the step); the gradients themselves are not modified.
    The per-tensor norms come from a first pass over each tensor in a fixed order, so
    the step too is bit-identical for every thread count and SIMD level.

    State per parameter: ``exp_avg`` and ``exp_avg_sq``. As in timm, the step count is
    the group's ``step`` (a 0-d float32 array, in ``param_groups`` once the group has
    stepped), counted at every step whether or not a parameter has a gradient.

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate, a float or a 1-element array (default 1e-3).
        bias_correction: divide the moments by their bias corrections (default True).
        betas: the running averages' coefficients (default (0.9, 0.999)).
        eps: added to the denominator (default 1e-6).
        weight_decay: weight decay (default 0.01), added to the update (L2) unless
            ``decoupled_decay``.
        grad_averaging: weight the gradient by 1 - beta1 in m (default True).
        max_grad_norm: clip the global gradient norm to it (default 1.0; None: no
            clipping).
        trust_clip: clip the trust ratio at 1 (LAMBC; default False).
        always_adapt: apply the trust ratio also where weight_decay is 0 (default False).
        caution: timm's Cautious LAMB needs a per-tensor mean of a mask before the trust
            ratio, a third pass: only False is accepted (True raises TypeError).
        decoupled_decay: decay the weights directly, as AdamW (default False).
        corrected_weight_decay: with decoupled_decay, decay by lr^2 / max_lr * wd, where
            max_lr is the constructor's lr (default False).
        foreach: accepted for timm compatibility (a group key); one native path.
        maximize: maximize the objective (default False; not in timm, in the groups
            only when True).
        master_weights: keep float32 master copies of 16-bit parameters in the state
            (default False; in the groups only when True).
    """

    _real_only = True  # as its reference (see NativeOptimizer)

    _param_shaped_state = ("exp_avg", "exp_avg_sq")
    _sparse_grad_error = "Lamb does not support sparse gradients, consider SparseAdam instead."
    # timm's __setstate__, for the groups of an older checkpoint.
    _load_defaults = (
        ("caution", False),
        ("decoupled_decay", False),
        ("corrected_weight_decay", False),
        ("max_lr_snapshot", MAX_LR_SNAPSHOT),
        ("foreach", None),
    )

    def __init__(
        self,
        params: ParamsT,
        lr: float | np.ndarray = 1e-3,
        bias_correction: bool = True,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.01,
        grad_averaging: bool = True,
        max_grad_norm: float | None = 1.0,
        trust_clip: bool = False,
        always_adapt: bool = False,
        caution: bool = False,
        decoupled_decay: bool = False,
        corrected_weight_decay: bool = False,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        master_weights: bool = False,
    ) -> None:
        # timm's checks, in its order and words.
        validate_scalar("learning rate", lr)
        validate_scalar("epsilon", eps)
        validate_scalar("weight_decay", weight_decay)
        if caution:
            raise refuse_caution("Lamb")
        defaults: dict[str, Any] = {
            "lr": lr,
            "bias_correction": bias_correction,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "grad_averaging": grad_averaging,
            "max_grad_norm": max_grad_norm,
            "trust_clip": trust_clip,
            "always_adapt": always_adapt,
            "caution": caution,
            "decoupled_decay": decoupled_decay,
            "corrected_weight_decay": corrected_weight_decay,
            "max_lr_snapshot": max_lr_snapshot(lr, corrected_weight_decay),
            "foreach": foreach,
        }
        super().__init__(
            params, add_flags(defaults, maximize=maximize, master_weights=master_weights)
        )
        self._clip = 1.0

    def _before_step(self, groups: list[dict[str, Any]]) -> None:
        """timm's global clipping factor, max(total norm / max_grad_norm, 1) over the
        gradients of all ``groups``, for this step (1: no clipping)."""
        self._clip = 1.0
        max_grad_norm = self.defaults["max_grad_norm"]
        if max_grad_norm is None:
            return
        grads = [p.grad for g in groups for p in g["params"] if p.grad is not None]
        if not grads:
            return
        if any(isinstance(g, RowSparseGrad) for g in grads):
            raise RuntimeError(self._sparse_grad_error)
        # In the compute dtype: float32 for 16-bit gradients, as the rest of the step.
        dtypes = [np.dtype(np.float64 if g.dtype == np.float64 else np.float32) for g in grads]
        total = _total_norm(grads, 2.0, dtypes)
        self._clip = float(np.maximum(total / total.dtype.type(max_grad_norm), 1.0))

    def _step_group(self, group, defer: bool):
        if group.get("caution"):
            raise refuse_caution("Lamb")
        beta1, beta2 = group["betas"]
        beta3 = 1.0 - beta1 if group["grad_averaging"] else 1.0
        step = float(np.float32(group.get("step", 0.0)) + np.float32(1))
        if group["bias_correction"]:
            bias_correction1, bias_correction2 = 1 - beta1**step, 1 - beta2**step
        else:
            bias_correction1, bias_correction2 = 1.0, 1.0
        lr = lr_value(group["lr"])
        weight_decay = scalar(group["weight_decay"])
        decoupled = bool(group.get("decoupled_decay", False)) and weight_decay != 0
        decay = 0.0
        if decoupled:
            decay = wd_scale(group, lr) * weight_decay
        write = _core.lamb_step(
            group["params"],
            self.state,
            lr,
            scalar(beta1),
            scalar(beta2),
            scalar(beta3),
            float(bias_correction1),
            float(bias_correction2),
            scalar(group["eps"]),
            weight_decay,
            decay,
            self._clip,
            decoupled,
            weight_decay != 0 or bool(group["always_adapt"]),
            bool(group["trust_clip"]),
            bool(group.get("maximize", False)),
            bool(group.get("master_weights", False)),
            defer,
        )
        return then(write, lambda: group.__setitem__("step", np.array(step, np.float32)))
