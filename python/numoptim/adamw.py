"""AdamW: Adam with decoupled weight decay."""

from __future__ import annotations

import numpy as np

from .adam import Adam
from .optimizer import ParamsT

__all__ = ["AdamW"]


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter, 2019), as ``torch.optim.AdamW``.

    :class:`Adam` with ``decoupled_weight_decay=True`` and ``weight_decay=1e-2`` by
    default: the parameter shrinks by ``1 - lr * weight_decay`` before the Adam update
    instead of adding ``weight_decay * p`` to the gradient.

    The arguments (``params``, ``lr``, ``betas``, ``eps``, ``weight_decay``, ``amsgrad``,
    ``maximize``, ``foreach``, ``capturable``, ``differentiable``, ``fused``,
    ``master_weights``) are :class:`Adam`'s.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float | np.ndarray = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        master_weights: bool = False,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            foreach=foreach,
            maximize=maximize,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
            decoupled_weight_decay=True,
            master_weights=master_weights,
        )

    def __setstate__(self, state) -> None:
        super().__setstate__(state)
        # A state dict loaded into AdamW is always decoupled, as in torch.
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True
