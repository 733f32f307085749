"""Shared test helpers: tolerances and element-wise comparison."""

from __future__ import annotations

import numpy as np
import pytest

# float64 agrees with torch to rounding: the kernels do torch's operations in torch's
# order, and only FMA contraction (torch's vectorized add-with-alpha fuses, numoptim
# never does, so results match across SIMD levels) changes the last bit of a step.
# float32: one rounding difference per step in an intermediate is about 6e-8 relative;
# over 23 steps, and through Adam's division by sqrt(v) + eps, measured worst cases
# stay under 1e-6 relative. Both also carry an absolute floor for elements that cancel
# to near zero (p - lr * g, or a momentum buffer momentum * b + g / avg whose terms
# nearly cancel), where relative error is meaningless: a rounding error is relative to
# the terms that were summed, not to their small result, so the floor is the tolerance
# times the array's own scale, max(1, max |expected|). A wrong formula still misses by
# orders of magnitude (it is off by O(1) of that scale).
TOLERANCE = {np.dtype(np.float32): 2e-6, np.dtype(np.float64): 1e-12}


def assert_close(actual, expected, dtype=None, what=""):
    """Every element within the dtype's tolerance (relative, with an absolute floor)."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    tol = TOLERANCE[np.dtype(dtype or expected.dtype)]
    finite = expected[np.isfinite(expected)]
    scale = max(1.0, float(np.abs(finite).max())) if finite.size else 1.0
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * scale, err_msg=what)


@pytest.fixture
def restore_threads():
    import numoptim

    n = numoptim.get_num_threads()
    yield
    numoptim.set_num_threads(n)
