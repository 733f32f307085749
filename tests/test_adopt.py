"""ADOPT against timm's (foreach=False, loaded through harness.load_timm_module) at
every step with every combination of its options, and what the generic suites do not
reach: a parameter's first step (only exp_avg_sq), taken by each parameter when it first
has a gradient, and the clip bound (t - 1)^clip_exp.
"""

from __future__ import annotations

import itertools

import numoptim
import numpy as np
import pytest
from conftest import assert_close, bits
from numoptim import Parameter

SIZES = [1, 7, 17, 1023]
STEPS = 24
DECAY = {
    "none": {},
    "l2": {"weight_decay": 0.05},
    "decoupled": {"weight_decay": 0.05, "decoupled": True},
    "corrected": {"weight_decay": 0.05, "decoupled": True, "corrected_weight_decay": True},
}
COMBINATIONS = [
    dict(zip(("clip_exp", "decay", "maximize", "betas"), values))
    for values in itertools.product((0.333, None, 0.6), DECAY, (False, True), ((0.9, 0.9999),))
] + [{"clip_exp": 0.333, "decay": "none", "maximize": False, "betas": (0.3, 0.5)}]


def timm_adopt():
    from harness import timm_or_skip

    return timm_or_skip("adopt", "Adopt")


def name_of(options):
    return "-".join(f"{k}={v}" for k, v in options.items())


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options", COMBINATIONS, ids=name_of)
def test_every_step_matches_timm(options, dtype):
    torch, Adopt = timm_adopt()
    options = dict(options)
    decay = DECAY[options.pop("decay")]
    kwargs = {"lr": 0.01, **decay, **options}
    rng = np.random.default_rng(9)
    values = [rng.standard_normal(n).astype(dtype) for n in SIZES]
    ours = [Parameter(v.copy()) for v in values]
    theirs = [torch.nn.Parameter(torch.from_numpy(v.copy())) for v in values]
    opt = numoptim.Adopt([{"params": ours[:2]}, {"params": ours[2:], "lr": 0.005}], **kwargs)
    reference = Adopt(
        [{"params": theirs[:2]}, {"params": theirs[2:], "lr": 0.005}], foreach=False, **kwargs
    )
    # exp_avg_sq needs no square root unless the decay goes through the gradient.
    exact_sq = decay.get("decoupled", False) or not decay
    for step in range(STEPS):
        for k, (p, q) in enumerate(zip(ours, theirs)):
            # The second parameter has no gradient for its first 3 steps: its first step
            # comes later than the others'.
            g = None if (step < 3 and k == 1) else rng.standard_normal(p.size).astype(dtype)
            p.grad = g
            q.grad = None if g is None else torch.from_numpy(g.copy())
        opt.step()
        reference.step()
        for p, q in zip(ours, theirs):
            assert_close(p, q.detach().numpy(), what=f"step {step}")
            if q not in reference.state:
                assert p not in opt.state
                continue
            state, expected = opt.state[p], reference.state[q]
            assert state["step"].dtype == np.float32 and state["step"] == expected["step"].item()
            assert_close(state["exp_avg"], expected["exp_avg"].numpy(), dtype=np.dtype(dtype))
            if exact_sq:
                np.testing.assert_array_equal(
                    bits(state["exp_avg_sq"]), bits(expected["exp_avg_sq"].numpy())
                )
            else:
                value = expected["exp_avg_sq"].numpy()
                assert_close(state["exp_avg_sq"], value, dtype=np.dtype(dtype))
    assert opt.state[ours[1]]["step"] == STEPS - 3


@pytest.mark.parametrize("decoupled", [False, True])
def test_the_first_step_only_sets_exp_avg_sq(decoupled):
    rng = np.random.default_rng(2)
    start = rng.standard_normal(33)
    a, b = Parameter(start.copy()), Parameter(start.copy())
    opt = numoptim.Adopt([a, b], lr=0.1, weight_decay=0.5, decoupled=decoupled)
    g = rng.standard_normal(33)
    a.grad = g
    opt.step()
    # The parameter does not move (nor decays); with the decay in the gradient (not
    # decoupled), exp_avg_sq is that gradient squared.
    np.testing.assert_array_equal(a, start)
    state = opt.state[a]
    assert set(state) == {"step", "exp_avg", "exp_avg_sq"}
    assert state["step"] == 1 and state["step"].dtype == np.float32
    np.testing.assert_array_equal(state["exp_avg"], np.zeros(33))
    expected = g if decoupled else g + 0.5 * start
    np.testing.assert_allclose(state["exp_avg_sq"], expected * expected, rtol=1e-15)
    # b's first gradient comes a step later: its first step then, while a updates.
    a.grad = b.grad = g
    opt.step()
    np.testing.assert_array_equal(b, start)
    assert not np.array_equal(a, start)
    assert opt.state[b]["step"] == 1 and opt.state[a]["step"] == 2


def test_the_clip_bound_at_the_second_step():
    """At step 2 the bound is (2 - 1)^clip_exp = 1: a gradient far above sqrt(v) moves p
    by lr * (1 - beta1) * 1 exactly."""
    p = Parameter(np.zeros(4))
    opt = numoptim.Adopt([p], lr=0.5, betas=(0.75, 0.9999), clip_exp=0.333)
    p.grad = np.full(4, 1e-3)
    opt.step()
    p.grad = np.array([1.0, -1.0, 1e3, -1e3])
    opt.step()
    np.testing.assert_array_equal(p, [-0.125, 0.125, -0.125, 0.125])
    np.testing.assert_array_equal(opt.state[p]["exp_avg"], [0.25, -0.25, 0.25, -0.25])
