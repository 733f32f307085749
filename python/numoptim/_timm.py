"""What the optimizers that follow timm's (``timm.optim``) share: its corrected weight
decay and the refusal of its options that need a per-tensor reduction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ._native import NativeOptimizer, lr_value


def validate_scalar(name: str, value: Any) -> None:
    """timm's ``_validate_scalar`` with its messages (a NaN passes, as in timm)."""
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise ValueError(f"{name} must be a scalar or scalar tensor.")
        value_float = lr_value(value)
    else:
        value_float = float(value)
    if value_float < 0.0:
        raise ValueError(f"Invalid {name}: {value}")


def max_lr_snapshot(lr: Any, corrected_weight_decay: bool = False) -> float:
    """timm's ``_max_lr_snapshot``: the constructor's lr as a float, the max lr of the
    corrected weight decay (``lr ** 2 / max_lr``), which must then be positive."""
    max_lr = lr_value(lr)
    if corrected_weight_decay and max_lr <= 0:
        raise ValueError(
            f"Corrected weight decay requires a positive max lr, got {max_lr}. Construct the "
            "optimizer with the peak lr."
        )
    return max_lr


def wd_scale(group: dict[str, Any], lr: float) -> float:
    """timm's scale of the decoupled weight decay: lr, or ``lr ** 2 / max_lr`` when the
    group's ``corrected_weight_decay`` is on (max_lr is its ``max_lr_snapshot``)."""
    if group.get("corrected_weight_decay"):
        return lr**2 / group["max_lr_snapshot"]
    return lr


def refuse_caution(name: str) -> TypeError:
    """The error of ``caution=True``: timm's Cautious variants scale the update by the
    per-tensor mean of a mask, which numoptim's one-pass kernels do not compute."""
    return TypeError(
        f"caution=True is not supported: Cautious {name} needs a per-tensor mean of its "
        f"mask before the update, which numoptim's {name} does not compute"
    )


def run_parts(writes: list[Callable[[], None]], after: Callable[[], None]) -> Callable[[], None]:
    """One deferred write of a group that steps in several native calls (its parameters
    partitioned by a per-parameter constant that timm keeps as a Python number): every
    call was checked before this runs; ``after`` then writes the Python-kept state."""

    def write() -> None:
        for part in writes:
            part()
        after()

    return write


def state_in_order(state: dict[Any, Any], order: tuple[str, ...]) -> None:
    """Puts the keys of a parameter's new state in timm's order of creation (the native
    step creates the arrays, the Python class its Python numbers after them)."""
    items = dict(state)
    state.clear()
    state.update((key, items.pop(key)) for key in order if key in items)
    state.update(items)


# In ``_load_defaults``: the constructor's lr, as timm's ``__setstate__`` fills in a
# missing ``max_lr_snapshot`` (from the optimizer's defaults).
MAX_LR_SNAPSHOT = object()


class WithMaxLrSnapshot(NativeOptimizer):
    """A timm optimizer with corrected weight decay: a loaded group without
    ``max_lr_snapshot`` (a state dict from an older timm) gets the defaults' one."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        super(NativeOptimizer, self).__setstate__(state)
        self.defaults.setdefault("max_lr_snapshot", max_lr_snapshot(self.defaults["lr"]))
        for group in self.param_groups:
            for key, value in self._load_defaults:
                if value is MAX_LR_SNAPSHOT:
                    value = self.defaults["max_lr_snapshot"]
                group.setdefault(key, value)
