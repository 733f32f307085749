"""numoptim.utils: torch.nn.utils' gradient functions."""

import json
import math
import os
import subprocess
import sys
import textwrap

import numoptim
import numpy as np
import pytest
from numoptim import Parameter
from numoptim.utils import (
    clip_grad_norm_,
    clip_grad_value_,
    clip_grads_with_norm_,
    get_total_norm,
    parameters_to_vector,
    vector_to_parameters,
)

NORMS = [2.0, 1.0, math.inf, -math.inf, 0.0, 0.5, 3.0]
SIZES = [0, 1, 17, 16_385, 70_001]  # empty, below and across the 16 Ki-element blocks


def grads_of(dtype, seed=0, sizes=SIZES):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(n) * rng.uniform(0.1, 10)).astype(dtype) for n in sizes]


def exact_norm(values, p):
    """The p-norm of float64 values, as exactly as Python computes it."""
    a = np.abs(np.asarray(values, dtype=np.float64))
    if p == math.inf:
        return a.max()
    if p == -math.inf:
        return a.min()
    if p == 0:
        return float(np.count_nonzero(a))
    return math.fsum(a**p) ** (1 / p)


def reference_total(grads, p):
    """torch's definition: the norm of the per-tensor norms, each in its dtype."""
    norms = [g.dtype.type(exact_norm(g, p)) for g in grads]
    return exact_norm(np.array(norms, dtype=np.float64), p)


@pytest.mark.parametrize("p", NORMS)
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 1e-6)])
def test_total_norm_is_the_norm_of_the_norms(p, dtype, rtol):
    grads = grads_of(dtype)
    if math.isinf(p):
        grads = grads[1:]  # an empty tensor has no inf norm
    total = get_total_norm(grads, p)
    assert total.shape == () and total.dtype == dtype
    np.testing.assert_allclose(float(total), reference_total(grads, p), rtol=rtol)


def test_total_norm_edge_cases():
    empty = get_total_norm([])
    assert empty.shape == () and empty.dtype == np.float32 and float(empty) == 0.0
    single = np.array([3.0, 4.0])
    assert float(get_total_norm(single)) == 5.0  # one array, not an iterable of rows
    with pytest.raises(RuntimeError, match="cannot compute the inf norm on an empty tensor"):
        get_total_norm([np.ones(2), np.zeros(0)], math.inf)
    mixed = get_total_norm([np.ones(4, np.float32), np.ones(9)])
    assert mixed.dtype == np.float64 and float(mixed) == math.sqrt(2.0**2 + 3.0**2)
    assert np.isnan(get_total_norm([np.array([1.0, np.nan])], math.inf))
    assert np.isnan(get_total_norm([np.array([np.nan, 1.0])], -math.inf))
    strided = np.arange(20.0)[::2]
    assert float(get_total_norm([strided], 1)) == strided.sum()


def test_16_bit_norms_are_in_their_dtype():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    for dtype in (np.float16, ml_dtypes.bfloat16):
        g = np.linspace(-3, 3, 1001).astype(dtype)
        total = get_total_norm([g])
        assert total.dtype == dtype
        assert total == dtype(exact_norm(g.astype(np.float64), 2.0))


def test_norm_is_bit_identical_for_every_thread_count(restore_threads):
    grads = grads_of(np.float32, seed=3, sizes=[1_000_003, 50_000, 5])
    results = set()
    for threads in (1, 2, 3, 4):
        numoptim.set_num_threads(threads)
        for p in NORMS[:3] + [0.5]:
            results.add((p, get_total_norm(grads, p).tobytes()))
    assert len(results) == 4


_DISPATCH_SCRIPT = textwrap.dedent(
    """
    import json, math
    import numpy as np
    from numoptim.utils import get_total_norm
    rng = np.random.default_rng(5)
    grads = [rng.standard_normal(n).astype(d) for n in (100_003, 31, 16_384)
             for d in (np.float32, np.float64, np.float16)]
    out = [get_total_norm(grads, p).tobytes().hex() for p in (2, 1, math.inf, 0.5, 3)]
    import numoptim
    print(json.dumps({"level": numoptim._core.simd_level(), "norms": out}))
    """
)


def test_norm_is_bit_identical_at_every_dispatch_level():
    levels = ["baseline", "avx2", "avx512"]
    best = numoptim._core.cpu_simd_level()
    results = {}
    for level in levels[: levels.index(best) + 1]:
        env = dict(os.environ, NUMOPTIM_DISPATCH=level)
        out = subprocess.run(
            [sys.executable, "-c", _DISPATCH_SCRIPT],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(out.stdout)
        assert result["level"] == level
        results[level] = tuple(result["norms"])
    assert len(set(results.values())) == 1, results


def params_with(grads):
    params = []
    for g in grads:
        p = Parameter(np.zeros_like(g))
        p.grad = g.copy()
        params.append(p)
    return params


def test_clip_grad_norm_scales_by_the_clamped_coefficient():
    grads = grads_of(np.float32, seed=1)
    params = params_with(grads)
    params.append(Parameter(np.ones(3, np.float32)))  # no grad: skipped
    total = clip_grad_norm_(params, max_norm=1.0)
    assert total.dtype == np.float32 and total.shape == ()
    kind = np.float32
    coefficient = min(kind(kind(1) / kind(total + kind(1e-6))) * kind(1.0), kind(1))
    for p, g in zip(params, grads):
        np.testing.assert_array_equal(p.grad, g * coefficient)
    assert params[-1].grad is None
    np.testing.assert_allclose(float(get_total_norm([p.grad for p in params[:-1]])), 1.0,
                               rtol=1e-5)  # fmt: skip
    # Below max_norm the coefficient is 1: gradients unchanged.
    before = [p.grad.copy() for p in params[:-1]]
    clip_grad_norm_(params, max_norm=1e9)
    for p, b in zip(params, before):
        np.testing.assert_array_equal(p.grad, b)


def test_clip_grad_norm_non_finite():
    p = Parameter(np.ones(3))
    p.grad = np.array([1.0, np.inf, 2.0])
    with pytest.raises(RuntimeError, match="The total norm of order 2.0 for gradients"):
        clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    np.testing.assert_array_equal(p.grad, [1.0, np.inf, 2.0])  # untouched
    clip_grad_norm_([p], 1.0)
    assert np.isnan(p.grad[1]) and p.grad[0] == 0.0  # scaled by 1 / inf, as torch


def test_clip_grad_norm_inputs():
    p = Parameter(np.full(4, 2.0, np.float32))
    p.grad = np.full(4, 2.0, np.float32)
    assert float(clip_grad_norm_(p, 100.0)) == 4.0  # a single parameter
    with pytest.warns(UserWarning, match="empty generator"):
        total = clip_grad_norm_((q for q in []), 1.0)
    assert float(total) == 0.0
    assert float(clip_grad_norm_((q for q in [p]), 100.0, norm_type="inf")) == 2.0

    class Holder:  # any object with a .grad, as torch takes any tensor
        grad = np.full(20, 4.0)[::2]  # not contiguous

    clip_grad_norm_([Holder], 1.0)
    np.testing.assert_allclose(Holder.grad, np.full(10, 4.0 / (math.sqrt(160) + 1e-6)))


def test_gradient_listed_twice_is_scaled_twice_as_torch():
    p = Parameter(np.ones(4))
    p.grad = np.full(4, 3.0)
    clip_grads_with_norm_([p, p], 1.0, np.array(2.0))
    expected = 3.0 * min(1.0 / (2.0 + 1e-6), 1.0) ** 2
    np.testing.assert_allclose(p.grad, expected, rtol=1e-15)


def test_clip_grad_value():
    p = Parameter(np.zeros(5, np.float32))
    p.grad = np.array([-3.0, -0.5, 0.0, np.nan, 7.0], np.float32)
    q = Parameter(np.zeros(2))
    clip_grad_value_([p, q], 1)
    np.testing.assert_array_equal(p.grad, [-1.0, -0.5, 0.0, np.nan, 1.0])
    assert q.grad is None


def test_parameters_to_vector_and_back():
    params = [Parameter(np.arange(6.0).reshape(2, 3)), Parameter(np.array([7.0, 8.0]))]
    vec = parameters_to_vector(params)
    assert type(vec) is np.ndarray and vec.tolist() == [0, 1, 2, 3, 4, 5, 7, 8]
    vector_to_parameters(vec[::-1].copy(), params)
    assert params[0].tolist() == [[8, 7, 5], [4, 3, 2]] and params[1].tolist() == [1, 0]
    with pytest.raises(TypeError, match="expected numpy.ndarray, but got: list"):
        vector_to_parameters([1.0], params)
    with pytest.raises(RuntimeError, match=r"shape '\[2\]' is invalid for input of size 1"):
        vector_to_parameters(np.zeros(7), params)
    assert params[0].tolist() == [[8, 7, 5], [4, 3, 2]]  # nothing written
    with pytest.raises(RuntimeError, match="expected a non-empty list"):
        parameters_to_vector([])


@pytest.mark.torch
@pytest.mark.parametrize("p", [2.0, 1.0, math.inf, 0.5, 3.0])
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 1e-6)])
def test_every_element_agrees_with_torch(p, dtype, rtol):
    torch = pytest.importorskip("torch")
    grads = grads_of(dtype, seed=11, sizes=[1, 17, 16_385, 70_001])
    tparams = []
    for g in grads:
        t = torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.from_numpy(g).dtype))
        t.grad = torch.from_numpy(g.copy())
        tparams.append(t)
    params = params_with(grads)
    expected = torch.nn.utils.clip_grad_norm_(tparams, 0.5, norm_type=p)
    total = clip_grad_norm_(params, 0.5, norm_type=p)
    assert total.dtype == dtype
    exact = reference_total(grads, p)
    np.testing.assert_allclose(float(total), exact, rtol=rtol)
    # torch's float32 1-, 0.5- and 3-norms sum in float32 and drift from the exact norm
    # by up to 4e-6 on 70001 elements (its 2-norm and float64 stay within the
    # tolerance); ours must be within the tolerance of torch plus torch's own error.
    torch_error = abs(float(expected) - exact) / exact
    tolerance = rtol + torch_error
    assert dtype == np.float32 or torch_error <= rtol
    assert abs(float(total) - float(expected)) <= tolerance * exact
    for ours, theirs in zip(params, tparams):
        np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=tolerance, atol=0)
    # After clipping, the norm is max_norm to within rounding: ours (accumulated in
    # double) to 1e-6; torch's float32 sums of 70001 elements drift by up to 2e-6.
    clipped = float(get_total_norm([q.grad for q in params], p))
    np.testing.assert_allclose(clipped, reference_total([q.grad for q in params], p), rtol=rtol)
