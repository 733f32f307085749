"""Adam8bit and AdamW8bit: Adam with block-wise 8-bit state, as bitsandbytes 0.50.

Beyond torch.optim. The names, signatures, defaults, ``param_groups`` and state layout
are bitsandbytes' (``state1``/``state2`` for m and v, ``qmap1``/``qmap2``,
``absmax1``/``absmax2``, an int ``step``), so that a bitsandbytes state dict with its
tensors turned into arrays loads, and the other way round. The native kernel
(cpp/include/numoptim/adam8bit.hpp) dequantizes, updates and requantizes each block of
256 elements in one pass; see there for the rule and blockwise8bit.hpp for where it
departs from bitsandbytes' CPU kernel (nearest-code quantization, as the paper defines it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import _core
from ._blockwise8bit import Blockwise8bitOptimizer, check_arguments, create_dynamic_map
from ._native import lr_value
from .optimizer import ParamsT

__all__ = ["Adam8bit", "AdamW8bit", "create_dynamic_map"]


class _Adam8bitBase(Blockwise8bitOptimizer):
    """What Adam8bit and AdamW8bit share (bitsandbytes' Optimizer2State for "adam")."""

    _name = "Adam8bit"

    def __init__(
        self,
        params: ParamsT,
        lr: float | np.ndarray = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        optim_bits: int = 32,
        args: Any = None,
        min_8bit_size: int = 4096,
        is_paged: bool = False,
    ) -> None:
        if amsgrad:
            raise ValueError(f"{self._name} does not support amsgrad=True")
        if optim_bits != 32:
            raise ValueError(
                f"{self._name} only supports optim_bits=32 (default value for compatibility)"
            )
        betas = check_arguments(lr, eps, betas, weight_decay)
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "alpha": 0.0,
            "t_alpha": None,
            "t_beta3": None,
        }
        super().__init__(params, defaults, args, min_8bit_size, is_paged)

    def _native_step(self, group: dict[str, Any], tensors: list[tuple]) -> Callable[[], None]:
        beta1, beta2 = group["betas"][0], group["betas"][1]
        return _core.adam8bit_step(
            tensors,
            lr_value(group["lr"]),
            float(beta1),
            float(beta2),
            float(group["eps"]),
            float(group["weight_decay"]),
            True,
        )


class Adam8bit(_Adam8bitBase):
    """Adam with 8-bit block-wise state, as ``bitsandbytes.optim.Adam8bit`` 0.50.

    m and v take one byte per element (plus a float32 absmax per block of 256) instead
    of four each: 2 bytes of state per element instead of 8. Parameters with fewer than
    ``min_8bit_size`` elements keep float32 state, as bitsandbytes. A ``weight_decay``
    is decoupled (the parameter shrinks by ``1 - lr * weight_decay``), as bitsandbytes'
    kernels apply it for both Adam8bit and AdamW8bit.

    Args:
        params: parameters or parameter groups, as torch.optim.
        lr: learning rate (default 1e-3).
        betas: coefficients of the running averages of the gradient and its square.
        eps: added to the denominator (default 1e-8).
        weight_decay: decoupled weight decay (default 0).
        amsgrad: must be False (not supported, as bitsandbytes).
        optim_bits: must be 32 (kept for bitsandbytes' signature; the state is 8-bit).
        args: bitsandbytes' configuration object (``optim_bits``, ``min_8bit_size``);
            None builds it from the other arguments.
        min_8bit_size: parameters with fewer elements keep float32 state (default 4096).
        is_paged: accepted; paging does not apply on the CPU (a warning says so).
    """

    _name = "Adam8bit"


class AdamW8bit(_Adam8bitBase):
    """AdamW with 8-bit block-wise state, as ``bitsandbytes.optim.AdamW8bit`` 0.50.

    :class:`Adam8bit` with ``weight_decay=1e-2`` by default.
    """

    _name = "AdamW8bit"

    def __init__(
        self,
        params: ParamsT,
        lr: float | np.ndarray = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        optim_bits: int = 32,
        args: Any = None,
        min_8bit_size: int = 4096,
        is_paged: bool = False,
    ) -> None:
        super().__init__(
            params, lr, betas, eps, weight_decay, amsgrad, optim_bits, args, min_8bit_size, is_paged
        )
