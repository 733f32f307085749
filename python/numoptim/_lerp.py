"""torch's ``lerp`` for NumPy arrays, for the optimizers written in NumPy."""

from __future__ import annotations

import numpy as np


def lerp(start: np.ndarray, end: np.ndarray, weight: float, out: np.ndarray | None = None):
    """start + weight * (end - start), with torch's two formulas; written to ``out``.

    torch evaluates ``start + w * (end - start)`` for ``|w| < 0.5`` and
    ``end - (end - start) * (1 - w)`` otherwise (exact at w = 1), with ``w`` rounded to
    the arrays' dtype first. ``out`` may be ``start`` for torch's in-place ``lerp_``.

    Returns:
        ``out``, or a new array when ``out`` is None.
    """
    dtype = np.result_type(start, end).type
    w = dtype(weight)
    diff = np.subtract(end, start)
    if abs(w) < 0.5:
        diff *= w
        return np.add(start, diff, out=out)
    diff *= dtype(1) - w
    return np.subtract(end, diff, out=out)
