"""AdaBelief against timm's (foreach=False, loaded through harness.load_timm_module) at
every step, through the phases of its rectified update (SGD's or none while RAdam's
rho_t < 5, then rectified), with every combination of its options; and what the
generic suites do not reach: its Python int step, the parameters at different steps
in one group, reset() and a resume.
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
COMBINATIONS = [
    dict(zip(("rectify", "degenerated_to_sgd", "amsgrad", "decay"), values))
    for values in itertools.product(
        (True, False), (True, False), (False, True), ("decoupled", "fixed", "l2")
    )
    if values[0] or values[1]  # degenerated_to_sgd acts only with rectify
]
DECAY = {
    "decoupled": {"weight_decay": 0.05},
    "fixed": {"weight_decay": 0.002, "fixed_decay": True},
    "l2": {"weight_decay": 0.05, "decoupled_decay": False},
}


def timm_adabelief():
    from harness import timm_or_skip

    return timm_or_skip("adabelief", "AdaBelief")


def name_of(options):
    return "-".join(f"{k}={v}" for k, v in options.items())


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options", COMBINATIONS, ids=name_of)
def test_every_step_matches_timm(options, dtype):
    torch, AdaBelief = timm_adabelief()
    options = dict(options)
    decay = DECAY[options.pop("decay")]
    # beta2 = 0.9: rho_t < 5 for the first steps, then rectified.
    kwargs = {"lr": 0.01, "betas": (0.8, 0.9), "eps": 1e-10, **decay, **options}
    rng = np.random.default_rng(7)
    values = [rng.standard_normal(n).astype(dtype) for n in SIZES]
    ours = [Parameter(v.copy()) for v in values]
    theirs = [torch.nn.Parameter(torch.from_numpy(v.copy())) for v in values]
    opt = numoptim.AdaBelief(ours, **kwargs)
    reference = AdaBelief(theirs, foreach=False, **kwargs)
    # m and s need no square root unless the decay goes through the gradient (l2): then
    # bit for bit.
    exact_state = not (decay.get("decoupled_decay") is False)
    for step in range(STEPS):
        for k, (p, q) in enumerate(zip(ours, theirs)):
            # The second parameter skips a step, so the group steps at two counts.
            g = None if (step == 2 and k == 1) else rng.standard_normal(p.size).astype(dtype)
            p.grad = g
            q.grad = None if g is None else torch.from_numpy(g.copy())
        opt.step()
        reference.step()
        for p, q in zip(ours, theirs):
            assert_close(p, q.detach().numpy(), what=f"step {step}")
            state, expected = opt.state[p], reference.state[q]
            assert type(state["step"]) is int and state["step"] == expected["step"]
            assert list(state) == list(expected)
            for key in ("exp_avg", "exp_avg_var", "max_exp_avg_var"):
                if key not in expected:
                    continue
                value = expected[key].numpy()
                if exact_state:
                    np.testing.assert_array_equal(bits(state[key]), bits(value), err_msg=key)
                else:
                    assert_close(state[key], value, dtype=np.dtype(dtype), what=key)
    assert opt.state[ours[1]]["step"] == STEPS - 1 and opt.state[ours[0]]["step"] == STEPS


def test_no_update_while_not_rectified_without_degenerated_to_sgd():
    """rectify without degenerated_to_sgd: while rho_t < 5 only the decay moves p."""
    start = np.linspace(-1, 1, 9)
    p = Parameter(start.copy())
    opt = numoptim.AdaBelief([p], lr=0.1, weight_decay=0.2, degenerated_to_sgd=False)
    expected = start.copy()
    for _ in range(5):  # beta2 = 0.999: rho_t < 5 for 5 steps (4.996 at the 5th)
        p.grad = np.cos(np.arange(9.0))
        opt.step()
        expected = expected * (1.0 - 0.1 * 0.2)
        np.testing.assert_array_equal(p, expected)
    p.grad = np.cos(np.arange(9.0))
    opt.step()
    assert not np.allclose(p, expected * (1.0 - 0.1 * 0.2))  # rectified from here


def test_state_dict_resume_and_reset(tmp_path):
    rng = np.random.default_rng(4)
    values = [rng.standard_normal(n).astype(np.float32) for n in SIZES]
    grads = [[rng.standard_normal(n).astype(np.float32) for n in SIZES] for _ in range(8)]

    def make(params):
        return numoptim.AdaBelief(
            [{"params": params[:2]}, {"params": params[2:], "lr": 0.002}], amsgrad=True
        )

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
    sd = opt1.state_dict()
    assert sd["state"][0]["step"] == 3 and type(sd["state"][0]["step"]) is int
    numoptim.save(sd, tmp_path / "adabelief.ckpt")
    resumed = [Parameter(np.array(p)) for p in first]
    opt2 = make(resumed)
    opt2.load_state_dict(numoptim.load(tmp_path / "adabelief.ckpt"))
    assert type(opt2.state[resumed[0]]["step"]) is int
    run(resumed, opt2, grads[3:])
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(bits(a), bits(b))
        assert opt.state[a]["step"] == opt2.state[b]["step"] == 8
        for key in ("exp_avg", "exp_avg_var", "max_exp_avg_var"):
            np.testing.assert_array_equal(bits(opt.state[a][key]), bits(opt2.state[b][key]))
    # reset(): step 0 and zeros, so the next steps are a fresh optimizer's.
    opt2.reset()
    fresh = [Parameter(np.array(p)) for p in resumed]
    opt3 = make(fresh)
    run(resumed, opt2, grads[:2])
    run(fresh, opt3, grads[:2])
    for a, b in zip(resumed, fresh):
        np.testing.assert_array_equal(bits(a), bits(b))
        assert opt2.state[a]["step"] == 2
