"""Checks that the optimizers stepping in NumPy (Adafactor, Muon) run before any write.

The native optimizers check every parameter, gradient and state buffer of every group
in C++ before they write anything (cpp/src/group_buffers.cpp); this is the same promise
for the optimizers whose update is NumPy code, with the same messages where the rules
are the same.

One rule differs: the NumPy optimizers (Adafactor, Muon, LBFGS) step float32 and float64
parameters only. torch steps float16 and bfloat16 ones too, but their NumPy code was
neither written nor tested to round in those dtypes as torch does, and would run anyway,
so numoptim refuses such parameters with a TypeError, when they are added and again at
each step before anything is written, rather than step them differently from torch.
Complex parameters are taken where torch takes them: LBFGS steps them as their real
pairs, and Adafactor and Muon raise torch's RuntimeError at the step (where torch
raises), before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .sparse import RowSparseGrad

# The state a parameter needs: key -> (shape, dtype) of the array kept there.
StateLayout = Callable[[np.ndarray], dict[str, tuple[tuple[int, ...], np.dtype]]]

# The parameter dtypes that the NumPy optimizers accept (complex ones as torch does).
NUMPY_STEP_DTYPES = (
    np.dtype(np.float32),
    np.dtype(np.float64),
    np.dtype(np.complex64),
    np.dtype(np.complex128),
)


def _describe(obj: Any) -> str:
    if isinstance(obj, np.ndarray):
        return f"an array of dtype {obj.dtype} and shape {obj.shape}"
    return type(obj).__name__


def check_param_dtype(p: Any, index: int, name: str) -> None:
    """Refuses a parameter that the NumPy optimizer ``name`` cannot step.

    Args:
        p: the parameter.
        index: its position in its group, for the message.
        name: the optimizer's class name, for the message.

    Raises:
        TypeError: ``p`` is not a float32, float64, complex64 or complex128 array (float16
            and bfloat16 included).
    """
    if not isinstance(p, np.ndarray) or p.dtype not in NUMPY_STEP_DTYPES:
        raise TypeError(
            f"{name} supports float32, float64, complex64 and complex128 parameters, but "
            f"parameter {index} is "
            f"{_describe(p)}"
        )


class Float32Or64Only:
    """Mixin of the optimizers whose step is NumPy code (Adafactor, Muon, LBFGS).

    torch steps float16 and bfloat16 parameters there; numoptim's NumPy step does not,
    so a group that holds one is refused when it is added (the constructor included),
    and the optimizer is left as it was. ``_name`` is the optimizer's torch name.
    """

    _name: str

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Adds a parameter group, as :meth:`Optimizer.add_param_group`.

        Raises:
            TypeError: as the base class, or a parameter that is not float32 or float64.
        """
        super().add_param_group(param_group)
        try:
            for index, p in enumerate(self.param_groups[-1]["params"]):
                check_param_dtype(p, index, self._name)
        except TypeError:
            self.param_groups.pop()
            raise


def check_step_inputs(optimizer, name: str, state_layout: StateLayout) -> None:
    """Checks every group of ``optimizer`` for a NumPy step; writes nothing.

    Args:
        optimizer: the optimizer about to step.
        name: its class name, for torch's sparse-gradient message and the dtype message.
        state_layout: the arrays a parameter's state holds once created.

    Raises:
        RuntimeError: a complex parameter or a row-sparse gradient (torch's messages).
        TypeError: a parameter, gradient or state entry of the wrong type or dtype
            (parameters of float16 or bfloat16 included).
        ValueError: one of the wrong shape, or read-only where it is written.
    """
    for group in optimizer.param_groups:
        for index, p in enumerate(group["params"]):
            grad = p.grad
            if grad is None:
                continue
            what = f"parameter {index}"
            if isinstance(p, np.ndarray) and p.dtype.kind == "c":
                raise RuntimeError(f"{name} does not support complex parameters")
            if isinstance(grad, RowSparseGrad):
                raise RuntimeError(f"{name} does not support sparse gradients")  # noqa: TRY004
            check_param_dtype(p, index, name)
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
