"""Checks that the optimizers stepping in NumPy (Adafactor, Muon) run before any write.

The native optimizers check every parameter, gradient and state buffer of every group
in C++ before they write anything (cpp/src/group_buffers.cpp); this is the same promise
for the optimizers whose update is NumPy code, with the same messages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .sparse import RowSparseGrad

# The state a parameter needs: key -> (shape, dtype) of the array kept there.
StateLayout = Callable[[np.ndarray], dict[str, tuple[tuple[int, ...], np.dtype]]]


def _describe(obj: Any) -> str:
    if isinstance(obj, np.ndarray):
        return f"an array of dtype {obj.dtype} and shape {obj.shape}"
    return type(obj).__name__


def check_step_inputs(optimizer, name: str, state_layout: StateLayout) -> None:
    """Checks every group of ``optimizer`` for a NumPy step; writes nothing.

    Args:
        optimizer: the optimizer about to step.
        name: its class name, for torch's sparse-gradient message.
        state_layout: the arrays a parameter's state holds once created.

    Raises:
        RuntimeError: a row-sparse gradient (torch's message).
        TypeError: a parameter, gradient or state entry of the wrong type or dtype.
        ValueError: one of the wrong shape, or read-only where it is written.
    """
    for group in optimizer.param_groups:
        for index, p in enumerate(group["params"]):
            grad = p.grad
            if grad is None:
                continue
            what = f"parameter {index}"
            if isinstance(grad, RowSparseGrad):
                raise RuntimeError(f"{name} does not support sparse gradients")  # noqa: TRY004
            if not isinstance(p, np.ndarray) or p.dtype not in (np.float32, np.float64):
                raise TypeError(
                    f"numoptim optimizes float32 and float64 arrays, but {what} is {_describe(p)}"
                )
            if not p.flags.writeable:
                raise ValueError(f"{what} is read-only")
            if not isinstance(grad, np.ndarray):
                raise TypeError(
                    f"the grad of {what} must be a numpy.ndarray, got {_describe(grad)}"
                )
            if grad.dtype != p.dtype:
                raise TypeError(
                    f"the grad of {what} has dtype {grad.dtype} but the parameter "
                    f"has dtype {p.dtype}"
                )
            if grad.shape != p.shape:
                raise ValueError(
                    f"the grad of {what} has shape {grad.shape} but the parameter "
                    f"has shape {p.shape}"
                )
            state = optimizer.state.get(p)
            if not state:
                continue
            if not isinstance(state, dict):
                raise TypeError(f"optimizer.state of {what} must be a dict, got {_describe(state)}")
            for key, (shape, dtype) in state_layout(p).items():
                value = state.get(key)
                entry = f"state['{key}'] of {what}"
                if value is None:
                    raise ValueError(f"{entry} is missing")
                if not isinstance(value, np.ndarray) or value.dtype != dtype:
                    raise TypeError(
                        f"{entry} must be an array of dtype {np.dtype(dtype)}, got "
                        f"{_describe(value)}"
                    )
                if value.shape != shape:
                    raise ValueError(f"{entry} has shape {value.shape} but must have shape {shape}")
                if not value.flags.writeable:
                    raise ValueError(f"{entry} is read-only")
