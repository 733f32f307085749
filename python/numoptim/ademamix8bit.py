"""AdEMAMix8bit: AdEMAMix with block-wise 8-bit state, as bitsandbytes 0.50."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _core
from ._blockwise8bit import Blockwise8bitOptimizer, check_arguments
from ._native import lr_value
from .optimizer import ParamsT

__all__ = ["AdEMAMix8bit"]


class AdEMAMix8bit(Blockwise8bitOptimizer):
    """AdEMAMix with 8-bit block-wise state, as ``bitsandbytes.optim.AdEMAMix8bit`` 0.50.

    :class:`AdEMAMix`'s rule and schedules (Pagliardini, Ablin & Grangier, "The AdEMAMix
    Optimizer: Better, Faster, Older", 2024) with its three running averages kept in one
    byte per element each (bitsandbytes' dynamic maps, signed for m1 and m2, unsigned for
    nu, a float32 absmax per block of 256): 3 bytes of state per element instead of 12.
    Parameters with fewer than ``min_8bit_size`` elements keep float32 state, as
    bitsandbytes, and then step exactly as :class:`AdEMAMix`. The averages are quantized to
    the nearest code, as the paper defines it; bitsandbytes' CPU quantizer picks a
    farther code for a small fraction of the elements (see the README).

    State per parameter, bitsandbytes' keys and shapes: ``step`` (an int), ``state1`` of
    shape ``(2, *shape)`` (m1 and m2 stacked), ``state2`` (nu), and for 8-bit state
    ``qmap1``, ``qmap2``, ``absmax1`` of shape ``(2, blocks)`` and ``absmax2``. The groups
    hold bitsandbytes' keys ``lr``, ``betas``, ``eps``, ``weight_decay``, ``alpha``,
    ``t_alpha`` and ``t_beta3``.

    Args:
        params: parameters or parameter groups, as torch.optim.
        lr: learning rate (default 1e-3).
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
        min_8bit_size: parameters with fewer elements keep float32 state (default 4096).
        is_paged: accepted; paging does not apply on the CPU (a warning says so).
    """

    _name = "AdEMAMix8bit"
    _stacked = 2

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
        min_8bit_size: int = 4096,
        is_paged: bool = False,
    ) -> None:
        betas = check_arguments(lr, eps, betas, weight_decay)
        if len(betas) != 3:
            # bitsandbytes would take beta3 = 0 (or fail at the step with t_beta3).
            raise ValueError(f"AdEMAMix takes three betas (beta1, beta2, beta3), got {betas}")
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "alpha": alpha,
            "t_alpha": t_alpha,
            "t_beta3": t_beta3,
        }
        super().__init__(params, defaults, None, min_8bit_size, is_paged)

    def _native_step(self, group: dict[str, Any], tensors: list[tuple]) -> Callable[[], None]:
        beta1, beta2, beta3 = group["betas"]
        t_alpha, t_beta3 = group["t_alpha"], group["t_beta3"]
        if tensors and t_beta3 and beta1 == 0:
            # bitsandbytes' math.log(beta1) at the step; raised before anything is written.
            math.log(beta1)
        return _core.ademamix8bit_step(
            tensors,
            lr_value(group["lr"]),
            float(beta1),
            float(beta2),
            float(beta3),
            float(group["alpha"]),
            float(t_alpha or 0),
            float(t_beta3 or 0),
            float(group["eps"]),
            float(group["weight_decay"]),
            True,
        )
