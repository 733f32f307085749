"""Shared test helpers: tolerances and element-wise comparison."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).parent / "fixtures"

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


def real_pairs(array) -> np.ndarray:
    """A complex array as its real and imaginary parts (a last axis of 2), as
    torch.view_as_real, the form the rules step; a real array itself."""
    array = np.asarray(array)
    if array.dtype.kind != "c":
        return array
    return np.stack([array.real, array.imag], axis=-1)


def tolerance(dtype) -> float:
    """The tolerance of a dtype; a complex one's is that of its parts."""
    dtype = np.dtype(dtype)
    return TOLERANCE[np.finfo(dtype).dtype if dtype.kind == "c" else dtype]


def bits(a: np.ndarray) -> np.ndarray:
    """The IEEE bits of a float32 or float64 array, as unsigned integers."""
    a = np.ascontiguousarray(a)
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


def ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise distance in units in the last place between same-signed floats."""
    return np.abs(bits(a).astype(np.int64) - bits(b).astype(np.int64))


def assert_close(actual, expected, dtype=None, what=""):
    """Every element within the dtype's tolerance (relative, with an absolute floor).

    Complex arrays are compared part by part (real and imaginary), each part as a real.
    """
    complex_kinds = (np.asarray(actual).dtype.kind == "c", np.asarray(expected).dtype.kind == "c")
    assert complex_kinds[0] == complex_kinds[1], f"{what}: complex and real compared"
    actual = real_pairs(actual)
    expected = real_pairs(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    tol = tolerance(dtype or expected.dtype)
    finite = expected[np.isfinite(expected)]
    scale = max(1.0, float(np.abs(finite).max())) if finite.size else 1.0
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * scale, err_msg=what)


def assert_close_or_closer(actual, expected, exact, what=""):
    """float32 results within the tolerance of torch's, or no further from the exact run.

    Over many steps float32 roundings accumulate, and a rule that divides by a small
    running average (Adamax's exp_inf, Adam's exp_avg_sq) amplifies them: torch and
    numoptim can then both sit a few 1e-6 from the exact result, on opposite sides
    (live parity, seed 689039253, Adamax: -2.0e-6 and +2.2e-6 on one element of 16,911).
    Such an element passes when numoptim is no further from ``exact`` (torch's float64
    run on the same inputs) than torch's float32 result is, within the tolerance; every
    other element must be within the tolerance of torch's, as in assert_close.
    Complex arrays (complex64, with a complex128 ``exact``) are compared part by part.
    """
    actual, expected, exact = (
        np.asarray(real_pairs(a), dtype=np.float64) for a in (actual, expected, exact)
    )
    assert actual.shape == expected.shape == exact.shape, what
    tol = TOLERANCE[np.dtype(np.float32)]
    finite = expected[np.isfinite(expected)]
    scale = max(1.0, float(np.abs(finite).max())) if finite.size else 1.0
    with np.errstate(invalid="ignore"):
        close = np.abs(actual - expected) <= tol * scale + tol * np.abs(expected)
        closer = np.abs(actual - exact) <= np.abs(expected - exact) + tol * scale
    same_special = (np.isnan(actual) & np.isnan(expected)) | (actual == expected)
    bad = ~(close | closer | same_special)
    assert not bad.any(), (
        f"{what}: {int(bad.sum())} elements neither within {tol} of torch nor as close to "
        f"the float64 run, first at {np.flatnonzero(bad)[:5].tolist()}: ours "
        f"{actual[bad][:5].tolist()}, torch {expected[bad][:5].tolist()}, float64 "
        f"{exact[bad][:5].tolist()}"
    )


@pytest.fixture
def restore_threads():
    import numoptim

    n = numoptim.get_num_threads()
    yield
    numoptim.set_num_threads(n)


def load_golden(filename: str) -> dict:
    """The arrays of a golden fixture made from torch (tests/fixtures/make_*.py).

    The sdist leaves the golden_*.npz files out (48 MB; they are in the git
    repository): there the tests that need them skip and say why. In CI they must be
    present.
    """
    path = FIXTURES / filename
    if not path.exists() and not os.environ.get("CI"):
        pytest.skip(f"{path} is not in this source tree (the sdist leaves the golden fixtures out)")
    with np.load(path) as data:
        return dict(data)
