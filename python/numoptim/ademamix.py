"""AdEMAMix, Adam with a mixture of a fast and a slow running average of the gradient."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import _core
from ._native import NativeOptimizer, add_flags, check_lr, lr_value, scalar
from .optimizer import ParamsT

__all__ = ["AdEMAMix"]


class AdEMAMix(NativeOptimizer):
    """AdEMAMix (Pagliardini, Ablin & Grangier, "The AdEMAMix Optimizer: Better, Faster,
    Older", 2024), as ``bitsandbytes.optim.AdEMAMix`` with 32-bit state.

    torch.optim has no AdEMAMix; this one has bitsandbytes 0.50's arguments, defaults,
    group keys, error messages and schedulers, and computes in the order of its 32-bit
    CPU kernel. With g the gradient (negated when ``maximize``) and t the step::

        m1 <- beta1 * m1 + (1 - beta1) * g
        m2 <- beta3_t * m2 + (1 - beta3_t) * g
        nu <- beta2 * nu + (1 - beta2) * g * g
        p  <- p * (1 - lr * weight_decay)
        p  <- p - lr * (m1 / (1 - beta1^t) + alpha_t * m2) / (sqrt(nu) / sqrt(1 - beta2^t) + eps)

    m2 is not bias-corrected. ``alpha_t = min(t * alpha / t_alpha, alpha)`` when
    ``t_alpha`` is given (a linear warmup of alpha), and ``beta3_t`` warms up from beta1 to
    beta3 over ``t_beta3`` steps on the paper's half-life schedule; either is off when
    its length is None or 0 (bitsandbytes tests them for truth).

    State per parameter: ``step`` (0-d float32, as numoptim's other optimizers),
    ``exp_avg_fast`` (m1), ``exp_avg_slow`` (m2) and ``exp_avg_sq`` (nu), each shaped like
    the parameter. bitsandbytes stacks m1 and m2 in one ``state1`` of shape ``(2, *shape)``
    and calls nu ``state2``; numoptim keeps torch-style names and parameter-shaped buffers
    so that flat storage, master weights and ZeroRedundancyOptimizer work as for every
    other optimizer. A bitsandbytes state (``state1``/``state2``, an int ``step``) loads:
    :meth:`load_state_dict` splits ``state1``.

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: learning rate, a float or a 1-element array (default 1e-3).
        betas: (beta1, beta2, beta3): the fast average's, the second moment's and the
            slow average's coefficients (default (0.9, 0.999, 0.9999)).
        alpha: weight of the slow average in the update (default 5.0).
        t_alpha: steps of alpha's linear warmup (default None: no warmup).
        t_beta3: steps of beta3's warmup (default None: no warmup). Needs beta1 > 0 (its
            logarithm is taken): with beta1 = 0 the step raises bitsandbytes' "math
            domain error".
        eps: added to the denominator (default 1e-8).
        weight_decay: decoupled weight decay, applied as ``p * (1 - lr * weight_decay)``
            (default 1e-2).
        optim_bits: bits of optimizer state; only 32 (bitsandbytes' default) is
            supported.
        min_8bit_size: accepted for bitsandbytes compatibility; it only matters with
            8-bit state.
        is_paged: accepted for bitsandbytes compatibility; CUDA paged memory has no
            meaning for NumPy arrays, and changes nothing.
        maximize: maximize the objective instead of minimizing it (default False; not in
            bitsandbytes, in the groups only when True).
        master_weights: keep float32 master copies of 16-bit parameters in the state
            (default False; in the groups only when True).
    """

    _real_only = True  # as its reference (see NativeOptimizer)

    _param_shaped_state = ("exp_avg_fast", "exp_avg_slow", "exp_avg_sq")

    def __init__(
        self,
        params: ParamsT,
        lr: float | np.ndarray = 1e-3,
        betas: tuple[float, float, float] = (0.9, 0.999, 0.9999),
        alpha: float = 5.0,
        t_alpha: int | None = None,
        t_beta3: int | None = None,
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        optim_bits: int = 32,
        min_8bit_size: int = 4096,
        is_paged: bool = False,
        *,
        maximize: bool = False,
        master_weights: bool = False,
    ) -> None:
        # bitsandbytes' checks, in its order and words.
        check_lr(lr)
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if len(betas) != 3:
            raise ValueError(f"AdEMAMix takes three betas (beta1, beta2, beta3), got {betas}")
        for i, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {beta}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if optim_bits != 32:
            raise ValueError(
                f"optim_bits={optim_bits} is not supported: numoptim.AdEMAMix keeps 32-bit state"
            )
        defaults: dict[str, Any] = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "alpha": alpha,
            "t_alpha": t_alpha,
            "t_beta3": t_beta3,
        }
        super().__init__(
            params, add_flags(defaults, maximize=maximize, master_weights=master_weights)
        )

    def _step_group(self, group, defer: bool):
        beta1, beta2, beta3 = group["betas"]
        t_alpha, t_beta3 = group["t_alpha"], group["t_beta3"]
        if t_beta3 and beta1 == 0:
            # bitsandbytes' math.log(beta1) at the step; raised before anything is written.
            math.log(beta1)
        return _core.ademamix_step(
            group["params"],
            self.state,
            lr_value(group["lr"]),
            scalar(beta1),
            scalar(beta2),
            scalar(beta3),
            scalar(group["alpha"]),
            scalar(t_alpha or 0),
            scalar(t_beta3 or 0),
            scalar(group["eps"]),
            scalar(group["weight_decay"]),
            bool(group.get("maximize", False)),
            bool(group.get("master_weights", False)),
            defer,
        )

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Loads a state from :meth:`state_dict`, or from bitsandbytes' AdEMAMix.

        A bitsandbytes state (arrays for tensors) has ``state1`` of shape ``(2, *shape)``
        holding m1 and m2, ``state2`` holding nu and an int ``step``; each is renamed
        (``state1`` split) to numoptim's keys before the usual checks.
        """
        state = state_dict.get("state", {})
        if any(isinstance(s, dict) and "state1" in s for s in state.values()):
            state_dict = {**state_dict, "state": {k: _from_bnb(s) for k, s in state.items()}}
        super().load_state_dict(state_dict)


def _from_bnb(entry: dict[str, Any]) -> dict[str, Any]:
    """One parameter's bitsandbytes AdEMAMix state under numoptim's keys."""
    if "state1" not in entry:
        return entry
    out = {k: v for k, v in entry.items() if k not in ("state1", "state2", "step")}
    stacked = np.asarray(entry["state1"])
    if stacked.dtype == np.uint8:
        raise ValueError(
            "loaded state dict has 8-bit AdEMAMix state (uint8 'state1'): "
            "numoptim.AdEMAMix keeps 32-bit state"
        )
    if stacked.ndim == 0 or stacked.shape[0] != 2:
        raise ValueError(
            f"loaded state dict has a 'state1' of shape {stacked.shape}: bitsandbytes' "
            "AdEMAMix stacks m1 and m2 along a first axis of length 2"
        )
    out["step"] = np.array(entry.get("step", 0), dtype=np.float32)
    out["exp_avg_fast"] = stacked[0]
    out["exp_avg_slow"] = stacked[1]
    out["exp_avg_sq"] = np.asarray(entry["state2"])
    return out
