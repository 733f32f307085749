"""Lion: bit-identical to lion-pytorch, checked against a NumPy reference without it.

torch.optim has no Lion; the reference is lion-pytorch (the paper authors' update_fn,
which timm and bitsandbytes' 32-bit Lion reproduce). The generic suites run Lion
through tests/registry.py; this file checks what they do not: every bit of float32 and
float64 against lion-pytorch, the sign at zero and NaN, maximize, and the NumPy rule.
"""

from __future__ import annotations

import numoptim
import numpy as np
import pytest
from conftest import bits
from numoptim import Parameter

SIZES = [1, 7, 16, 17, 1023, 5003]
STEPS = 25


def reference_step(p, g, m, lr, betas, weight_decay, maximize=False):
    """Lion's rule in NumPy, in lion-pytorch's order (in place on p and m)."""
    beta1, beta2 = betas
    if maximize:
        g = -g
    p *= 1.0 - lr * weight_decay
    c = m * beta1 + g * (1.0 - beta1)
    p -= lr * np.sign(np.nan_to_num(c, nan=0.0))  # torch.sign(NaN) is 0
    m *= beta2
    m += g * (1.0 - beta2)


def make_groups(dtype, rng):
    """Two groups of odd sizes, the second with its own lr, betas and weight decay."""
    values = [rng.standard_normal(n).astype(dtype) for n in SIZES]
    return values[:3], values[3:]


GROUP_OPTIONS = {"lr": 0.003, "betas": (0.8, 0.95), "weight_decay": 0.2}


def gradients(rng, dtype, step):
    grads = [rng.standard_normal(n).astype(dtype) for n in SIZES]
    # Zeros (sign 0: no move) and signed zeros in some steps.
    if step % 5 == 0:
        grads[4][::3] = 0
        grads[5][::7] = -0.0
    return grads


def assert_same(ours, theirs, what=""):
    """Every element bit for bit, NaN for NaN (a NaN's sign and payload depend on the
    operand order the compiler chose, in torch as here)."""
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    nan = np.isnan(ours)
    np.testing.assert_array_equal(nan, np.isnan(theirs), err_msg=what)
    differ = int((bits(ours)[~nan] != bits(theirs)[~nan]).sum())
    assert differ == 0, f"{what}: {differ} of {ours.size} elements differ"


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_float64_matches_the_numpy_rule(weight_decay):
    rng = np.random.default_rng(1)
    first, second = make_groups(np.float64, rng)
    ours = [Parameter(v.copy()) for v in first + second]
    theirs = [v.copy() for v in first + second]
    moments = [np.zeros_like(v) for v in theirs]
    opt = numoptim.Lion(
        [{"params": ours[:3]}, {"params": ours[3:], **GROUP_OPTIONS}],
        lr=0.01,
        weight_decay=weight_decay,
    )
    for step in range(STEPS):
        grads = gradients(rng, np.float64, step)
        for k, (p, g) in enumerate(zip(ours, grads)):
            p.grad = g
            options = GROUP_OPTIONS if k >= 3 else {"lr": 0.01, "weight_decay": weight_decay}
            reference_step(
                theirs[k], g, moments[k], options["lr"], options.get("betas", (0.9, 0.99)),
                options["weight_decay"],
            )  # fmt: skip
        opt.step()
    for k, p in enumerate(ours):
        np.testing.assert_allclose(p, theirs[k], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(opt.state[p]["exp_avg"], moments[k], rtol=1e-12, atol=1e-12)


def test_sign_at_zero_and_nan():
    """sign(+-0) = 0: the element does not move; a NaN gradient: torch.sign's 0."""
    p = Parameter(np.array([1.0, -2.0, 3.0, 4.0, -0.0, 5.0], np.float32))
    opt = numoptim.Lion([p], lr=0.5)
    p.grad = np.array([0.0, -0.0, np.nan, 1.0, 0.0, -np.inf], np.float32)
    opt.step()
    np.testing.assert_array_equal(p, np.array([1.0, -2.0, 3.0, 3.5, -0.0, 5.5], np.float32))
    assert np.signbit(p[4])
    m = opt.state[p]["exp_avg"]
    assert np.isnan(m[2]) and m[5] == -np.inf and m[0] == 0 and m[1] == 0
    # The NaN stays in m, and with it the element's update stays 0 (as in torch).
    p.grad = np.ones(6, np.float32)
    opt.step()
    assert p[2] == 3.0 and np.isnan(m[2])


def test_weight_decay_moves_a_parameter_whose_update_is_zero():
    p = Parameter(np.array([2.0, -4.0]))
    opt = numoptim.Lion([p], lr=0.1, weight_decay=0.5)
    p.grad = np.zeros(2)
    opt.step()
    np.testing.assert_array_equal(p, np.array([2.0, -4.0]) * (1 - 0.1 * 0.5))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_maximize_is_minimizing_the_negated_gradient(dtype):
    rng = np.random.default_rng(2)
    start = rng.standard_normal(1001).astype(dtype)
    a, b = Parameter(start.copy()), Parameter(start.copy())
    opt_a = numoptim.Lion([a], lr=0.01, weight_decay=0.1, maximize=True)
    opt_b = numoptim.Lion([b], lr=0.01, weight_decay=0.1)
    for _ in range(10):
        g = rng.standard_normal(1001).astype(dtype)
        a.grad, b.grad = g, -g
        opt_a.step()
        opt_b.step()
    np.testing.assert_array_equal(bits(a), bits(b))
    np.testing.assert_array_equal(bits(opt_a.state[a]["exp_avg"]), bits(opt_b.state[b]["exp_avg"]))
    assert opt_a.param_groups[0]["maximize"] is True
    assert "maximize" not in opt_b.param_groups[0]


@pytest.mark.parametrize("lr", [np.array(0.01), np.array([0.01], np.float32)])
def test_an_array_lr_steps_as_its_float(lr):
    rng = np.random.default_rng(3)
    start = rng.standard_normal(100)
    a, b = Parameter(start.copy()), Parameter(start.copy())
    opt_a = numoptim.Lion([a], lr=lr)
    opt_b = numoptim.Lion([b], lr=float(lr.reshape(())))
    for _ in range(3):
        a.grad = b.grad = rng.standard_normal(100)
        opt_a.step()
        opt_b.step()
    np.testing.assert_array_equal(a, b)


def test_state_dict_layout_and_bit_exact_resume():
    rng = np.random.default_rng(4)
    start = [rng.standard_normal(n).astype(np.float32) for n in (5, 300)]
    grads = [[rng.standard_normal(n).astype(np.float32) for n in (5, 300)] for _ in range(6)]

    def run(params, opt, steps):
        for gs in steps:
            for p, g in zip(params, gs):
                p.grad = g
            opt.step()

    whole = [Parameter(v.copy()) for v in start]
    opt = numoptim.Lion(whole, lr=0.01, weight_decay=0.1)
    run(whole, opt, grads)

    half = [Parameter(v.copy()) for v in start]
    first = numoptim.Lion(half, lr=0.01, weight_decay=0.1)
    run(half, first, grads[:3])
    saved = first.state_dict()
    assert list(saved["state"][0]) == ["exp_avg"]  # no step count, as lion-pytorch
    assert saved["param_groups"] == [
        {"lr": 0.01, "betas": (0.9, 0.99), "weight_decay": 0.1, "params": [0, 1]}
    ]
    resumed = [Parameter(np.array(p)) for p in half]
    second = numoptim.Lion(resumed, lr=0.5)
    second.load_state_dict(saved)
    run(resumed, second, grads[3:])
    for p, q in zip(whole, resumed):
        np.testing.assert_array_equal(bits(p), bits(q))


def test_repr_has_lion_pytorch_keys():
    opt = numoptim.Lion([Parameter(np.zeros(2))])
    assert repr(opt) == (
        "Lion (\nParameter Group 0\n    betas: (0.9, 0.99)\n    lr: 0.0001\n"
        "    weight_decay: 0.0\n)"
    )


# ------------------------------------------------------------ live parity (lion-pytorch)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_bit_identical_to_lion_pytorch(dtype, weight_decay):
    torch = pytest.importorskip("torch")
    lion_pytorch = pytest.importorskip("lion_pytorch")
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(5)
    first, second = make_groups(dtype, rng)
    ours = [Parameter(v.copy()) for v in first + second]
    theirs = [torch.nn.Parameter(torch.from_numpy(v.copy())) for v in first + second]
    opt_n = numoptim.Lion(
        [{"params": ours[:3]}, {"params": ours[3:], **GROUP_OPTIONS}],
        lr=0.01,
        weight_decay=weight_decay,
    )
    opt_t = lion_pytorch.Lion(
        [{"params": theirs[:3]}, {"params": theirs[3:], **GROUP_OPTIONS}],
        lr=0.01,
        weight_decay=weight_decay,
    )
    for step in range(STEPS):
        for p, q, g in zip(ours, theirs, gradients(rng, dtype, step)):
            p.grad = g
            q.grad = torch.from_numpy(g.copy())
        opt_n.step()
        opt_t.step()
    for k, (p, q) in enumerate(zip(ours, theirs)):
        assert_same(p, q.detach().numpy(), f"tensor {k}")
        assert_same(opt_n.state[p]["exp_avg"], opt_t.state[q]["exp_avg"].numpy(), f"exp_avg {k}")
    assert opt_n.state_dict()["param_groups"] == opt_t.state_dict()["param_groups"]


@pytest.mark.torch
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_zero_nan_and_inf_as_lion_pytorch(dtype):
    torch = pytest.importorskip("torch")
    lion_pytorch = pytest.importorskip("lion_pytorch")
    start = np.array([1.0, -2.0, 3.0, 4.0, -0.0, 5.0, 0.0, 6.0] * 5, dtype)
    grad = np.array([0.0, -0.0, np.nan, 1.0, 0.0, -np.inf, -0.0, np.inf] * 5, dtype)
    ours = Parameter(start.copy())
    theirs = torch.nn.Parameter(torch.from_numpy(start.copy()))
    opt_n = numoptim.Lion([ours], lr=0.5, weight_decay=0.1)
    opt_t = lion_pytorch.Lion([theirs], lr=0.5, weight_decay=0.1)
    for g in (grad, np.ones_like(grad), -grad):
        ours.grad = g.copy()
        theirs.grad = torch.from_numpy(g.copy())
        opt_n.step()
        opt_t.step()
        assert_same(ours, theirs.detach().numpy(), "param")
        assert_same(opt_n.state[ours]["exp_avg"], opt_t.state[theirs]["exp_avg"].numpy(), "m")


@pytest.mark.torch
def test_signature_starts_as_lion_pytorch():
    """lion-pytorch's positional arguments, in order, with its defaults; then keywords."""
    import inspect

    pytest.importorskip("torch")
    lion_pytorch = pytest.importorskip("lion_pytorch")
    ours = inspect.signature(numoptim.Lion.__init__).parameters
    theirs = inspect.signature(lion_pytorch.Lion.__init__).parameters
    shared = ["self", "params", "lr", "betas", "weight_decay"]
    assert list(ours)[: len(shared)] == list(theirs)[: len(shared)] == shared
    for key in shared[2:]:
        assert ours[key].default == theirs[key].default, key
    for extra in list(ours)[len(shared) :]:
        assert ours[extra].kind == inspect.Parameter.KEYWORD_ONLY, extra


@pytest.mark.torch
def test_bit_identical_to_lion_pytorch_on_a_large_threaded_tensor():
    """2^20 + 3 elements: the chunked multi-threaded path, every element."""
    torch = pytest.importorskip("torch")
    lion_pytorch = pytest.importorskip("lion_pytorch")
    rng = np.random.default_rng(6)
    n = 2**20 + 3
    start = rng.standard_normal(n).astype(np.float32)
    ours = Parameter(start.copy())
    theirs = torch.nn.Parameter(torch.from_numpy(start.copy()))
    threads = numoptim.get_num_threads()
    numoptim.set_num_threads(4)
    try:
        opt_n = numoptim.Lion([ours], lr=1e-3, weight_decay=0.1)
        opt_t = lion_pytorch.Lion([theirs], lr=1e-3, weight_decay=0.1)
        for _ in range(4):
            g = rng.standard_normal(n).astype(np.float32)
            ours.grad, theirs.grad = g, torch.from_numpy(g.copy())
            opt_n.step()
            opt_t.step()
    finally:
        numoptim.set_num_threads(threads)
    assert_same(ours, theirs.detach().numpy(), "param")
    assert_same(opt_n.state[ours]["exp_avg"], opt_t.state[theirs]["exp_avg"].numpy(), "exp_avg")
