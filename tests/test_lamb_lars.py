"""Lamb and Lars against NumPy rules that need no timm, and against timm live.

The generic suites run both through tests/registry.py (golden fixtures from timm, live
parity, resume, threads and SIMD levels). This file checks what the per-tensor norms
add: tensors of several norm blocks (16384 elements each) and zero tensors (the trust
ratio is 1 where a norm is 0), Lamb's global clipping over all groups without touching
the gradients, and bit-identical results for every thread count on large tensors.
"""

from __future__ import annotations

import numoptim
import numpy as np
import pytest
from conftest import assert_close, bits
from numoptim import Parameter

# 3 norm blocks and a part, a small odd size, and an all-zero tensor (added below).
SIZES = [3 * 16384 + 5, 7, 1000]
STEPS = 12


def lamb_numpy(p, g, m, v, step, o, clip):
    """timm's Lamb step in NumPy float64 (in place)."""
    beta1, beta2 = o["betas"]
    beta3 = 1 - beta1 if o["grad_averaging"] else 1.0
    bc1, bc2 = (1 - beta1**step, 1 - beta2**step) if o["bias_correction"] else (1.0, 1.0)
    g = g / clip
    m[...] = m * beta1 + beta3 * g
    v[...] = v * beta2 + (1 - beta2) * g * g
    u = (m / bc1) / (np.sqrt(v) / np.sqrt(bc2) + o["eps"])
    wd = o["weight_decay"]
    if wd != 0:
        if o["decoupled_decay"]:
            p -= o["lr"] * wd * p
        else:
            u = u + wd * p
    if wd != 0 or o["always_adapt"]:
        w_norm, u_norm = np.linalg.norm(p), np.linalg.norm(u)
        ratio = w_norm / u_norm if w_norm > 0 and u_norm > 0 else 1.0
        if o["trust_clip"]:
            ratio = min(ratio, 1.0)
        u = u * ratio
    p -= o["lr"] * u


def lars_numpy(p, g, state, o):
    """timm's Lars step in NumPy float64 (in place)."""
    wd = o["weight_decay"]
    if wd != 0 or o["always_adapt"]:
        w_norm, g_norm = np.linalg.norm(p), np.linalg.norm(g)
        ratio = o["trust_coeff"] * w_norm / (g_norm + w_norm * wd + o["eps"])
        if not (w_norm > 0 and g_norm > 0):
            ratio = 1.0
        if o["trust_clip"]:
            ratio = min(ratio / o["lr"], 1.0)
        g = (g + wd * p) * ratio
    if o["momentum"] != 0:
        if "buf" not in state:
            state["buf"] = g.copy()
        else:
            state["buf"][...] = o["momentum"] * state["buf"] + (1 - o["dampening"]) * g
        g = g + o["momentum"] * state["buf"] if o["nesterov"] else state["buf"]
    p -= o["lr"] * g


LAMB_DEFAULTS = {
    "lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-6, "weight_decay": 0.01,
    "grad_averaging": True, "bias_correction": True, "max_grad_norm": 1.0,
    "trust_clip": False, "always_adapt": False, "decoupled_decay": False,
}  # fmt: skip
LAMB_OPTIONS = [
    {},
    {"max_grad_norm": None, "trust_clip": True, "lr": 0.05},
    {"weight_decay": 0.0, "always_adapt": True},
    {"weight_decay": 0.05, "decoupled_decay": True, "max_grad_norm": 100.0},
    {"grad_averaging": False, "bias_correction": False, "betas": (0.3, 0.9)},
]
LARS_DEFAULTS = {
    "lr": 1.0, "momentum": 0, "dampening": 0, "weight_decay": 0, "nesterov": False,
    "trust_coeff": 0.001, "eps": 1e-8, "trust_clip": False, "always_adapt": False,
}  # fmt: skip
LARS_OPTIONS = [
    {"weight_decay": 0.01, "momentum": 0.9},
    {"weight_decay": 0.01, "momentum": 0.9, "nesterov": True, "lr": 0.1},
    {"always_adapt": True, "momentum": 0.5, "dampening": 0.25, "trust_clip": True},
    {"momentum": 0.9},  # no adaptation: SGD with momentum
]


def values(rng):
    return [rng.standard_normal(n) for n in SIZES] + [np.zeros(33)]


@pytest.mark.parametrize("options", LAMB_OPTIONS, ids=str)
def test_lamb_float64_matches_the_numpy_rule(options):
    rng = np.random.default_rng(1)
    start = values(rng)
    ours = [Parameter(v.copy()) for v in start]
    opt = numoptim.Lamb([{"params": ours[:2]}, {"params": ours[2:]}], **options)
    o = {**LAMB_DEFAULTS, **options}
    theirs = [v.copy() for v in start]
    m = [np.zeros_like(v) for v in start]
    v2 = [np.zeros_like(v) for v in start]
    for step in range(1, STEPS + 1):
        grads = [rng.standard_normal(p.size) for p in ours]
        grads[-1][:] = 0  # a zero tensor with a zero gradient: both norms 0
        total = np.sqrt(sum(np.linalg.norm(g) ** 2 for g in grads))
        clip = 1.0 if o["max_grad_norm"] is None else max(total / o["max_grad_norm"], 1.0)
        for k, p in enumerate(ours):
            p.grad = grads[k]
            lamb_numpy(theirs[k], grads[k], m[k], v2[k], step, o, clip)
        kept = [g.copy() for g in grads]
        opt.step()
        for g, k in zip(grads, kept):
            np.testing.assert_array_equal(g, k)  # the gradients are not clipped in place
    for k, p in enumerate(ours):
        np.testing.assert_allclose(p, theirs[k], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(opt.state[p]["exp_avg"], m[k], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(opt.state[p]["exp_avg_sq"], v2[k], rtol=1e-12, atol=1e-14)
    for group in opt.param_groups:
        assert group["step"].dtype == np.float32 and group["step"] == STEPS


@pytest.mark.parametrize("options", LARS_OPTIONS, ids=str)
def test_lars_float64_matches_the_numpy_rule(options):
    rng = np.random.default_rng(2)
    start = values(rng)
    ours = [Parameter(v.copy()) for v in start]
    opt = numoptim.Lars([{"params": ours[:2]}, {"params": ours[2:]}], **options)
    o = {**LARS_DEFAULTS, **options}
    theirs = [v.copy() for v in start]
    states: list[dict] = [{} for _ in start]
    for _ in range(STEPS):
        for k, p in enumerate(ours):
            p.grad = rng.standard_normal(p.size)
            lars_numpy(theirs[k], p.grad, states[k], o)
        opt.step()
    for k, p in enumerate(ours):
        np.testing.assert_allclose(p, theirs[k], rtol=1e-12, atol=1e-14)
        if o["momentum"]:
            np.testing.assert_allclose(
                opt.state[p]["momentum_buffer"], states[k]["buf"], rtol=1e-12, atol=1e-14
            )
        else:
            assert opt.state[p] == {}


@pytest.mark.parametrize("name", ["Lamb", "Lars"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_large_tensors_are_bit_identical_for_every_thread_count(name, dtype, restore_threads):
    kwargs = {"Lamb": {"lr": 0.01}, "Lars": {"weight_decay": 0.01, "momentum": 0.9}}[name]
    results = []
    for threads in (1, 2, 3):
        numoptim.set_num_threads(threads)
        rng = np.random.default_rng(3)
        params = [Parameter(rng.standard_normal(n).astype(dtype)) for n in (5 * 16384 + 3, 9)]
        opt = getattr(numoptim, name)(params, **kwargs)
        for _ in range(3):
            for p in params:
                p.grad = rng.standard_normal(p.size).astype(dtype)
            opt.step()
        results.append([bits(p).copy() for p in params])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def timm_class(name):
    from harness import timm_or_skip

    return timm_or_skip(name.lower(), name)[1]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "name, options",
    [("Lamb", o) for o in LAMB_OPTIONS] + [("Lars", o) for o in LARS_OPTIONS],
    ids=str,
)
def test_multi_block_tensors_match_timm(name, options, dtype):
    cls = timm_class(name)  # skips without torch or timm
    import torch

    rng = np.random.default_rng(4)
    start = [v.astype(dtype) for v in values(rng)]
    ours = [Parameter(v.copy()) for v in start]
    theirs = [torch.nn.Parameter(torch.from_numpy(v.copy())) for v in start]
    opt = getattr(numoptim, name)([{"params": ours[:2]}, {"params": ours[2:]}], **options)
    ref = cls(
        [{"params": theirs[:2]}, {"params": theirs[2:]}], foreach=False, **options
    )  # fmt: skip
    for _ in range(STEPS):
        for p, t in zip(ours, theirs):
            g = rng.standard_normal(p.size).astype(dtype)
            p.grad = g
            t.grad = torch.from_numpy(g.copy())
        opt.step()
        ref.step()
    for p, t in zip(ours, theirs):
        assert_close(p, t.detach().numpy(), what=name)
