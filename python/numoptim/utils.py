"""Gradient utilities of ``torch.nn.utils`` for NumPy parameters.

``clip_grad_norm_``, ``get_total_norm``, ``clip_grads_with_norm_``, ``clip_grad_value_``,
``parameters_to_vector`` and ``vector_to_parameters`` with torch's signatures, defaults,
errors and results (0-d arrays where torch returns 0-d tensors). The norms are computed
natively in one multi-threaded pass over the gradients, in a fixed order: a total norm is
bit-identical for every thread count and SIMD level (cpp/include/numoptim/grad_norm.hpp).
As in torch, the total norm is the norm of the per-tensor norms, each rounded to its
tensor's dtype.
"""

from __future__ import annotations

import math
import types
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np

from . import _core
from .parameter import Parameter

__all__ = [
    "clip_grad_norm_",
    "clip_grad_value_",
    "clip_grads_with_norm_",
    "flat_parameters",
    "get_total_norm",
    "parameters_to_vector",
    "vector_to_parameters",
]


def _as_list(tensors: Any) -> list:
    """A single array as a one-element list, any other iterable as a list (torch)."""
    return [tensors] if isinstance(tensors, np.ndarray) else list(tensors)


def _native(array: np.ndarray) -> np.ndarray:
    """The array itself, or a C-contiguous copy (read-only uses) when it is not one."""
    if array.flags.c_contiguous and array.flags.aligned:
        return array
    return np.ascontiguousarray(array)


def _real_dtype(dtype: np.dtype) -> np.dtype:
    """float32 for complex64, float64 for complex128; a real dtype itself."""
    return np.finfo(dtype).dtype if dtype.kind == "c" else dtype


def _norm_input(tensor: Any) -> np.ndarray:
    """What the native norm reduces: the array, or a complex array's magnitudes.

    As ``torch.linalg.vector_norm``, the norm of complex values is that of their
    magnitudes ``|z|`` (in the real dtype: float32 for complex64), for every order.
    """
    array = np.asarray(tensor)
    if array.dtype.kind == "c":
        return np.abs(array)
    return _native(array)


def _finish(reduced: np.ndarray, p: float) -> np.ndarray:
    """The p-norms from their reductions (see grad_norm.hpp), in float64."""
    if p == 2:
        return np.sqrt(reduced)
    if p in (1, 0, math.inf, -math.inf):
        return reduced
    return reduced ** (1.0 / p)


def _result_dtype(dtypes: list[np.dtype]) -> np.dtype:
    """torch.stack's promotion of the per-tensor norms' dtypes."""
    if all(d == dtypes[0] for d in dtypes):
        return dtypes[0]
    return np.dtype(np.float64) if any(d == np.float64 for d in dtypes) else np.dtype(np.float32)


def _total_norm(tensors: list, norm_type: float, dtypes: list[np.dtype]) -> np.ndarray:
    """The norm of the tensors' norms, each norm rounded to its entry of ``dtypes`` (as
    torch's per-tensor norms), the total in their promoted dtype, as a 0-d array."""
    reduced = _core.norm_reductions([_norm_input(t) for t in tensors], norm_type)
    norms = _finish(reduced, norm_type)
    norms = np.array([dtype.type(n) for n, dtype in zip(norms, dtypes)], dtype=np.float64)
    total_reduced = _core.norm_reductions([norms], norm_type)
    return np.array(_finish(total_reduced, norm_type)[0], dtype=_result_dtype(dtypes))


def get_total_norm(
    tensors: Any,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
) -> np.ndarray:
    """The norm of the norms of ``tensors``, as ``torch.nn.utils.get_total_norm``.

    Args:
        tensors: an array or an iterable of arrays (float32, float64, float16, bfloat16,
            complex64 or complex128, whose norm is that of the magnitudes), typically
            gradients.
        norm_type: the order of the norm: any float, ``inf`` or ``-inf`` (default 2).
        error_if_nonfinite: raise when the total norm is NaN or infinite.
        foreach: accepted for torch's signature; there is one native path.

    Returns:
        The total norm as a 0-d array (float32 ``0.0`` for no tensors), in the dtype of
        the per-tensor norms (promoted as ``torch.stack`` does when they differ).

    Raises:
        RuntimeError: the total norm is not finite and ``error_if_nonfinite`` is set, or
            an empty tensor with ``norm_type`` ``inf`` or ``-inf`` (no identity).
    """
    del foreach
    tensors = _as_list(tensors)
    norm_type = float(norm_type)
    if len(tensors) == 0:
        return np.array(0.0, dtype=np.float32)
    if math.isinf(norm_type) and any(t.size == 0 for t in tensors):
        name = "inf" if norm_type > 0 else "-inf"
        raise RuntimeError(
            f"linalg.vector_norm cannot compute the {name} norm on an empty tensor because "
            "the operation does not have an identity"
        )
    total = _total_norm(tensors, norm_type, [_real_dtype(np.asarray(t).dtype) for t in tensors])
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is "
            "non-finite, so it cannot be clipped. To disable this error and scale the "
            "gradients by the non-finite norm anyway, set `error_if_nonfinite=False`"
        )
    return total


def _scale(grads: list[np.ndarray], coefficient: np.ndarray) -> None:
    """grads *= coefficient in place, each value rounded once to its dtype."""
    native, other = [], []
    seen: set[int] = set()
    for g in grads:
        contiguous = g.flags.c_contiguous and g.flags.aligned
        # A gradient listed twice is scaled twice, as torch's foreach_mul_ does; the
        # repeat runs in its own pass so that no two threads write the same memory.
        if contiguous and id(g) not in seen:
            native.append(g)
            seen.add(id(g))
        else:
            other.append(g)
    _core.scale_arrays([_real_view(g) for g in native], float(coefficient))
    for g in other:
        if g.flags.c_contiguous and g.flags.aligned:
            _core.scale_arrays([_real_view(g)], float(coefficient))
        else:
            np.multiply(g, coefficient.astype(_real_dtype(g.dtype)), out=g)


def _real_view(g: np.ndarray) -> np.ndarray:
    """A C-contiguous complex array as the reals of its memory (scaled alike); else g."""
    return g.view(_real_dtype(g.dtype)) if g.dtype.kind == "c" else g


def clip_grads_with_norm_(
    parameters: Any, max_norm: float, total_norm: Any, foreach: bool | None = None
) -> None:
    """Scales the gradients by ``min(max_norm / (total_norm + 1e-6), 1)``, in place.

    As ``torch.nn.utils.clip_grads_with_norm_``: the coefficient is computed in the dtype
    of ``total_norm`` with torch's operations, and every gradient is multiplied by it,
    even when it is 1.

    Args:
        parameters: a parameter or an iterable of parameters (those without a grad are
            skipped).
        max_norm: the largest norm the gradients may have.
        total_norm: their total norm, as :func:`get_total_norm` returns it.
        foreach: accepted for torch's signature.
    """
    del foreach
    parameters = _as_list(parameters)
    grads = [p.grad for p in parameters if p.grad is not None]
    max_norm = float(max_norm)
    if len(grads) == 0:
        return
    total = np.asarray(total_norm)
    kind = total.dtype.type
    # torch: max_norm / (total + 1e-6) is reciprocal(total + 1e-6) * max_norm.
    denominator = kind(total + kind(1e-6))
    coefficient = kind(kind(kind(1.0) / denominator) * kind(max_norm))
    coefficient = np.minimum(np.asarray(coefficient), kind(1.0))  # NaN stays NaN
    _scale(grads, coefficient)


def clip_grad_norm_(
    parameters: Any,
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
) -> np.ndarray:
    """Clips the gradients' total norm to ``max_norm``, as ``torch.nn.utils.clip_grad_norm_``.

    :func:`get_total_norm` of the gradients, then :func:`clip_grads_with_norm_`.

    Args:
        parameters: a parameter or an iterable of parameters (a generator is read once).
        max_norm: the largest norm the gradients may have.
        norm_type: the order of the norm (default 2; ``inf`` for the largest magnitude).
        error_if_nonfinite: raise instead of scaling by a NaN or infinite norm.
        foreach: accepted for torch's signature.

    Returns:
        The total norm of the gradients before clipping, as a 0-d array.
    """
    if isinstance(parameters, np.ndarray):
        parameters = [parameters]
    else:
        is_generator = isinstance(parameters, types.GeneratorType)
        parameters = list(parameters)
        if is_generator and len(parameters) == 0:
            warnings.warn(
                "`parameters` is an empty generator, no gradient clipping will occur.",
                stacklevel=2,
            )
    grads = [p.grad for p in parameters if p.grad is not None]
    total_norm = get_total_norm(grads, norm_type, error_if_nonfinite, foreach)
    clip_grads_with_norm_(parameters, max_norm, total_norm, foreach)
    return total_norm


def clip_grad_value_(parameters: Any, clip_value: float, foreach: bool | None = None) -> None:
    """Clamps every gradient to ``[-clip_value, clip_value]`` in place (NaN stays NaN).

    Args:
        parameters: a parameter or an iterable of parameters.
        clip_value: the largest magnitude a gradient element may have.
        foreach: accepted for torch's signature.

    Raises:
        NotImplementedError: a complex gradient (torch's clamp has none), before any
            gradient is clipped.
    """
    del foreach
    clip_value = float(clip_value)
    grads = [p.grad for p in _as_list(parameters) if p.grad is not None]
    # torch's clamp has no complex version; checked before any gradient is clipped.
    if any(g.dtype.kind == "c" for g in grads):
        raise NotImplementedError("clamp is not supported for complex types")
    for g in grads:
        np.clip(g, g.dtype.type(-clip_value), g.dtype.type(clip_value), out=g)


def parameters_to_vector(parameters: Iterable[np.ndarray]) -> np.ndarray:
    """The parameters flattened and concatenated into a new 1-d array (torch's order).

    Raises:
        RuntimeError: no parameters (as ``torch.cat`` of an empty list).
    """
    flat = [np.asarray(p).reshape(-1) for p in parameters]
    if not flat:
        raise RuntimeError("torch.cat(): expected a non-empty list of Tensors")
    return np.concatenate(flat)


def vector_to_parameters(vec: np.ndarray, parameters: Iterable[np.ndarray]) -> None:
    """Copies consecutive slices of ``vec`` into the parameters, in place.

    torch rebinds each ``param.data`` to a view of ``vec``; NumPy arrays cannot be
    rebound, so the values are copied (cast to each parameter's dtype). Every size is
    checked before any parameter is written.

    Raises:
        TypeError: ``vec`` is not a NumPy array.
        RuntimeError: ``vec`` is too short for the parameters (torch's view error).
    """
    if not isinstance(vec, np.ndarray):
        raise TypeError(f"expected numpy.ndarray, but got: {type(vec).__name__}")
    parameters = list(parameters)
    flat = vec.reshape(-1)
    pointer = 0
    for p in parameters:
        available = max(0, min(p.size, flat.size - pointer))
        if available != p.size:
            shape = ", ".join(str(d) for d in p.shape)
            raise RuntimeError(f"shape '[{shape}]' is invalid for input of size {available}")
        pointer += p.size
    pointer = 0
    for p in parameters:
        p[...] = flat[pointer : pointer + p.size].reshape(p.shape)
        pointer += p.size


def flat_parameters(arrays: Iterable[Any]) -> list[Parameter]:
    """New Parameters with the values of ``arrays``, laid out in one buffer per dtype.

    Flat storage for models of many small tensors: the parameters of each dtype are
    consecutive views into one contiguous buffer, in the order given, and each gets a
    zero gradient that is a view into a second buffer (write gradients into it in place,
    ``p.grad[...] = g``; ``zero_grad(set_to_none=False)`` keeps the views). An optimizer
    then allocates each state buffer of such a group as views into one buffer too, and
    steps a run of parameters with equal step counts in one pass over contiguous memory.
    ``state_dict()`` is unchanged (one array per parameter and key). Results are bit for
    bit those of ordinary parameters with the same values.

    Args:
        arrays: array-likes of float32, float64, float16, bfloat16, complex64 or
            complex128 values.

    Returns:
        The Parameters, in the order of ``arrays``.
    """
    arrays = [np.asarray(a) for a in arrays]
    by_dtype: dict[np.dtype, list[int]] = {}
    for i, a in enumerate(arrays):
        by_dtype.setdefault(a.dtype, []).append(i)
    out: list[Any] = [None] * len(arrays)
    for dtype, indices in by_dtype.items():
        total = sum(arrays[i].size for i in indices)
        values = _core.state_zeros((total,), dtype)
        grads = _core.state_zeros((total,), dtype)
        offset = 0
        for i in indices:
            a = arrays[i]
            p = Parameter(values[offset : offset + a.size].reshape(a.shape))
            p[...] = a
            p.grad = grads[offset : offset + a.size].reshape(a.shape)
            out[i] = p
            offset += a.size
    return out
