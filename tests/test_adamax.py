"""Adamax's max propagates NaN from either side, as torch.maximum does."""

from __future__ import annotations

import numoptim
import numpy as np
import pytest

# Gradients with a NaN in one element, and a step where exp_inf already holds NaN.
GRADS = [
    np.array([1.0, np.nan, -2.0, 0.5, np.inf, -np.inf, 0.0, 3.0]),
    np.array([0.5, 1.0, np.nan, -0.5, 1.0, 1.0, 0.0, -3.0]),
    np.array([0.1, 0.2, 0.3, np.nan, 0.5, 0.6, 0.7, 0.8]),
]


def run_numoptim(dtype, steps=3):
    p = numoptim.Parameter(np.linspace(-1, 1, 8).astype(dtype))
    opt = numoptim.Adamax([p], lr=0.01)
    with np.errstate(invalid="ignore"):
        for g in GRADS[:steps]:
            p.grad = g.astype(dtype)
            opt.step()
    return np.array(p), opt.state[p]


def reference(dtype, steps=3):
    """torch's formula in NumPy: np.maximum propagates NaN as torch.maximum does."""
    p = np.linspace(-1, 1, 8).astype(dtype)
    m, u = np.zeros_like(p), np.zeros_like(p)
    beta1, beta2, eps, lr = 0.9, 0.999, 1e-8, 0.01
    with np.errstate(invalid="ignore"):
        for t, g in enumerate(GRADS[:steps], 1):
            g = g.astype(dtype)
            m = m + dtype(1 - beta1) * (g - m)
            u = np.maximum(u * dtype(beta2), np.abs(g) + dtype(eps))
            p = p + dtype(-(lr / (1 - beta1**t))) * m / u
    return p, m, u


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("steps", [1, 3])
def test_nan_propagates_like_numpy_maximum(dtype, steps):
    p, state = run_numoptim(dtype, steps)
    expected_p, _, expected_u = reference(dtype, steps)
    np.testing.assert_array_equal(np.isnan(state["exp_inf"]), np.isnan(expected_u))
    np.testing.assert_array_equal(np.isnan(p), np.isnan(expected_p))
    finite = np.isfinite(expected_p)
    np.testing.assert_allclose(p[finite], expected_p[finite], rtol=1e-6)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_and_inf_match_torch(dtype):
    torch = pytest.importorskip("torch")
    t = torch.nn.Parameter(torch.from_numpy(np.linspace(-1, 1, 8).astype(dtype)))
    topt = torch.optim.Adamax([t], lr=0.01)
    for g in GRADS:
        t.grad = torch.from_numpy(g.astype(dtype))
        topt.step()
    p, state = run_numoptim(dtype)
    expected = t.detach().numpy()
    np.testing.assert_array_equal(np.isnan(p), np.isnan(expected))
    np.testing.assert_array_equal(
        np.isnan(state["exp_inf"]), np.isnan(topt.state[t]["exp_inf"].numpy())
    )
    finite = np.isfinite(expected)
    np.testing.assert_allclose(p[finite], expected[finite], rtol=2e-6, atol=2e-6)
