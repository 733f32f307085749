"""Lion8bit: Lion with block-wise 8-bit state, as bitsandbytes 0.50."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import _core
from ._blockwise8bit import Blockwise8bitOptimizer, check_arguments
from ._native import lr_value
from .optimizer import ParamsT

__all__ = ["Lion8bit"]


class Lion8bit(Blockwise8bitOptimizer):
    """Lion with 8-bit block-wise state, as ``bitsandbytes.optim.Lion8bit`` 0.50.

    :class:`Lion`'s rule (Chen et al., "Symbolic Discovery of Optimization Algorithms",
    2023) with its one running average m kept in one byte per element (bitsandbytes'
    signed dynamic map, a float32 absmax per block of 256): 1 byte of state per element
    instead of 4. Parameters with fewer than ``min_8bit_size`` elements keep float32
    state, as bitsandbytes. The weight decay is decoupled and applied only when positive.
    With g the gradient::

        p <- p * (1 - lr * weight_decay)
        c <- beta1 * m + (1 - beta1) * g
        p <- p - lr * sign(c)
        m <- beta2 * m + (1 - beta2) * g

    computed in float32 in the order of bitsandbytes' CPU kernels (its 8-bit kernel forms
    c from two products, its 32-bit one, for small tensors, with a fused multiply-add).
    m is quantized to the nearest code, as the paper defines it; bitsandbytes' CPU
    quantizer picks a farther code for a small fraction of the elements (see the README).

    State per parameter, bitsandbytes' keys: ``step`` (an int), ``state1`` (m),
    ``qmap1`` and ``absmax1`` (8-bit state only). The groups hold bitsandbytes' keys
    ``lr``, ``betas``, ``eps`` (always 0, unused) and ``weight_decay``.

    Args:
        params: parameters or parameter groups, as torch.optim.
        lr: learning rate (default 1e-4).
        betas: coefficients of the interpolation that gives the update's sign and of the
            running average (default (0.9, 0.99)).
        weight_decay: decoupled weight decay (default 0).
        args: bitsandbytes' configuration object (``optim_bits``, ``min_8bit_size``);
            None builds it from the other arguments.
        min_8bit_size: parameters with fewer elements keep float32 state (default 4096).
        is_paged: accepted; paging does not apply on the CPU (a warning says so).
    """

    _name = "Lion8bit"
    _has_state2 = False

    def __init__(
        self,
        params: ParamsT,
        lr: float | np.ndarray = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0,
        args: Any = None,
        min_8bit_size: int = 4096,
        is_paged: bool = False,
    ) -> None:
        betas = check_arguments(lr, 0.0, betas, weight_decay)
        defaults = {"lr": lr, "betas": betas, "eps": 0.0, "weight_decay": weight_decay}
        super().__init__(params, defaults, args, min_8bit_size, is_paged)

    def _native_step(self, group: dict[str, Any], tensors: list[tuple]) -> Callable[[], None]:
        beta1, beta2 = group["betas"][0], group["betas"][1]
        return _core.lion8bit_step(
            tensors,
            lr_value(group["lr"]),
            float(beta1),
            float(beta2),
            float(group["weight_decay"]),
            True,
        )
