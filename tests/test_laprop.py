"""LaProp against timm's (foreach=False, loaded through harness.load_timm_module) where
the generic suites do not reach: an lr that changes every step (a scheduler's), which
LaProp folds into its momentum and into exp_avg_lr_1, the bias correction that timm
keeps in a Python float per parameter.
"""

from __future__ import annotations

import numoptim
import numpy as np
import pytest
from conftest import assert_close, bits
from numoptim import Parameter

SIZES = [1, 7, 17, 1023]
# An lr of 0 first (exp_avg_lr_1 stays 0: the step size is 0, not 0/0), a warm-up,
# a drop, and a decay.
LRS = [0.0, 0.0, 0.002, 0.004, 0.006, 0.01, 0.01, 0.001, *(0.01 * 0.8**k for k in range(16))]


def timm_laprop():
    from harness import timm_or_skip

    return timm_or_skip("laprop", "LaProp")


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_a_changing_lr_matches_timm_at_every_step(dtype, weight_decay):
    torch, LaProp = timm_laprop()
    rng = np.random.default_rng(3)
    values = [rng.standard_normal(n).astype(dtype) for n in SIZES]
    ours = [Parameter(v.copy()) for v in values]
    theirs = [torch.nn.Parameter(torch.from_numpy(v.copy())) for v in values]
    kwargs = {"lr": 0.01, "weight_decay": weight_decay, "corrected_weight_decay": True}
    opt = numoptim.LaProp(ours, **kwargs)
    reference = LaProp(theirs, foreach=False, **kwargs)
    for step, lr in enumerate(LRS):
        for group in (*opt.param_groups, *reference.param_groups):
            group["lr"] = lr
        for k, (p, q) in enumerate(zip(ours, theirs)):
            # The second parameter skips a step: its exp_avg_lr_1 then differs from the
            # others', and it steps in a call of its own.
            g = None if (step == 5 and k == 1) else rng.standard_normal(p.size).astype(dtype)
            p.grad = g
            q.grad = None if g is None else torch.from_numpy(g.copy())
        opt.step()
        reference.step()
        for p, q in zip(ours, theirs):
            assert_close(p, q.detach().numpy(), what=f"step {step}")
            state, expected = opt.state[p], reference.state[q]
            assert type(state["exp_avg_lr_1"]) is float
            assert state["exp_avg_lr_1"] == expected["exp_avg_lr_1"]
            for key in ("step", "exp_avg_lr_2"):
                assert state[key].dtype == np.float32 and state[key] == expected[key].item()
            # exp_avg_sq needs no square root: bit for bit.
            np.testing.assert_array_equal(
                bits(state["exp_avg_sq"]), bits(expected["exp_avg_sq"].numpy())
            )
            assert_close(state["exp_avg"], expected["exp_avg"].numpy(), dtype=np.dtype(dtype))
    assert opt.state[ours[1]]["exp_avg_lr_1"] != opt.state[ours[0]]["exp_avg_lr_1"]


def test_a_zero_lr_leaves_the_parameters_and_counts_the_step():
    p = Parameter(np.linspace(-1, 1, 5))
    opt = numoptim.LaProp([p], lr=0.0, weight_decay=0.1)
    p.grad = np.ones(5)
    opt.step()
    np.testing.assert_array_equal(p, np.linspace(-1, 1, 5))
    state = opt.state[p]
    assert list(state) == ["step", "exp_avg", "exp_avg_lr_1", "exp_avg_lr_2", "exp_avg_sq"]
    assert state["exp_avg_lr_1"] == 0.0 and state["step"] == 1
    assert state["exp_avg_lr_2"] == np.float32(np.float32(0) * np.float32(0.999)) + np.float32(
        1 - 0.999
    )
    np.testing.assert_array_equal(state["exp_avg"], np.zeros(5))


def test_state_dict_resume_is_bit_exact(tmp_path):
    rng = np.random.default_rng(4)
    values = [rng.standard_normal(n).astype(np.float32) for n in SIZES]
    grads = [[rng.standard_normal(n).astype(np.float32) for n in SIZES] for _ in range(6)]

    def make(params):
        return numoptim.LaProp([{"params": params[:2]}, {"params": params[2:], "lr": 0.002}])

    def run(params, opt, steps):
        for gs in steps:
            for p, g in zip(params, gs):
                p.grad = g
            opt.step()

    straight = [Parameter(v.copy()) for v in values]
    opt = make(straight)
    run(straight, opt, grads)
    first = [Parameter(v.copy()) for v in values]
    opt1 = make(first)
    run(first, opt1, grads[:3])
    numoptim.save(opt1.state_dict(), tmp_path / "laprop.ckpt")
    resumed = [Parameter(np.array(p)) for p in first]
    opt2 = make(resumed)
    opt2.load_state_dict(numoptim.load(tmp_path / "laprop.ckpt"))
    run(resumed, opt2, grads[3:])
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(bits(a), bits(b))
        assert opt.state[a]["exp_avg_lr_1"] == opt2.state[b]["exp_avg_lr_1"]
        for key in ("exp_avg", "exp_avg_sq", "exp_avg_lr_2", "step"):
            np.testing.assert_array_equal(bits(opt.state[a][key]), bits(opt2.state[b][key]))
