"""Adan against timm's (foreach=False, loaded through harness.load_timm_module) and a
NumPy rule that needs no timm.

The generic suites run Adan through tests/registry.py (five configurations, a golden
fixture); this file checks every combination of the options live, what numoptim's
float32 results share with timm's bit for bit, the group's step count, restart_opt and
a resume.
"""

from __future__ import annotations

import numoptim
import numpy as np
import pytest
from conftest import assert_close, bits
from numoptim import Parameter

SIZES = [1, 7, 16, 17, 1023, 5003]
STEPS = 25
GROUP_OPTIONS = {"lr": 0.005, "betas": (0.9, 0.8, 0.999), "weight_decay": 0.03}
COMBINATIONS = [
    {"weight_decay": wd, "no_prox": np_, "maximize": m, "betas": b}
    for wd in (0.0, 0.02)
    for np_ in (False, True)
    for m in (False, True)
    for b in ((0.98, 0.92, 0.99), (0.3, 0.5, 0.9))
]


def numpy_step(p, g, state, step, lr, betas, eps, weight_decay, no_prox):
    """Adan in NumPy float64, in timm's order (in place); `step` is the group's."""
    beta1, beta2, beta3 = betas
    if step == 1 or "neg_pre_grad" not in state:
        state["neg_pre_grad"] = -g
    d = state["neg_pre_grad"] + g
    state["m"] += (1 - beta1) * (g - state["m"])
    state["v"][...] = state["v"] * beta2 + d * (1 - beta2)
    q = d * beta2 + g
    state["n"][...] = state["n"] * beta3 + (1 - beta3) * q * q
    denom = np.sqrt(state["n"]) / np.sqrt(1 - beta3**step) + eps
    if no_prox:
        p *= 1 - lr * weight_decay
    p -= lr / (1 - beta1**step) * state["m"] / denom
    p -= lr * beta2 / (1 - beta2**step) * state["v"] / denom
    if not no_prox:
        p /= 1 + lr * weight_decay
    state["neg_pre_grad"] = -g


def name_of(options):
    return "-".join(str(v) for v in options.values())


@pytest.mark.parametrize("options", COMBINATIONS, ids=name_of)
def test_float64_matches_the_numpy_rule(options):
    rng = np.random.default_rng(1)
    values = [rng.standard_normal(n) for n in SIZES]
    ours = [Parameter(v.copy()) for v in values]
    kwargs = {"lr": 0.01, **options}
    opt = numoptim.Adan([{"params": ours[:3]}, {"params": ours[3:], **GROUP_OPTIONS}], **kwargs)
    theirs = [v.copy() for v in values]
    states = [{"m": 0 * v, "v": 0 * v, "n": 0 * v} for v in values]
    sign = -1.0 if options["maximize"] else 1.0
    for step in range(1, STEPS + 1):
        for k, p in enumerate(ours):
            g = rng.standard_normal(p.size)
            p.grad = g
            o = {**kwargs, **(GROUP_OPTIONS if k >= 3 else {})}
            numpy_step(
                theirs[k], sign * g, states[k], step, o["lr"], o["betas"], 1e-8,
                o["weight_decay"], o["no_prox"],
            )  # fmt: skip
        opt.step()
    for k, p in enumerate(ours):
        np.testing.assert_allclose(p, theirs[k], rtol=1e-12, atol=1e-12)
        state = opt.state[p]
        for key, name in (("exp_avg", "m"), ("exp_avg_diff", "v"), ("exp_avg_sq", "n")):
            np.testing.assert_allclose(state[key], states[k][name], rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(state["neg_pre_grad"], states[k]["neg_pre_grad"])
    assert [g["step"] for g in opt.param_groups] == [STEPS, STEPS]


def test_the_group_counts_steps_without_gradients():
    """timm's step is the group's: it advances even when no parameter has a gradient,
    and a parameter's bias corrections use it."""
    a, b = Parameter(np.ones(4)), Parameter(np.ones(4))
    opt = numoptim.Adan([a, b], lr=0.1)
    assert "step" not in opt.param_groups[0]
    opt.step()
    assert opt.param_groups[0]["step"] == 1 and opt.state == {}
    a.grad = np.full(4, 0.5)
    opt.step()
    assert opt.param_groups[0]["step"] == 2 and b not in opt.state
    assert opt.state_dict()["param_groups"][0]["step"] == 2
    # A parameter's first step has d = 0 whatever the group's step (timm sets
    # neg_pre_grad = -g for a parameter that has none), and the group's bias corrections.
    np.testing.assert_array_equal(opt.state[a]["neg_pre_grad"], np.full(4, -0.5))
    np.testing.assert_array_equal(opt.state[a]["exp_avg_diff"], np.zeros(4))
    m, n = 0.02 * 0.5, 0.01 * 0.25
    expected = 1 - 0.1 * m / (1 - 0.98**2) / (np.sqrt(n) / np.sqrt(1 - 0.99**2) + 1e-8)
    np.testing.assert_allclose(a, np.full(4, expected), rtol=1e-14)


def test_state_dict_resume_is_bit_exact(tmp_path):
    rng = np.random.default_rng(4)
    values = [rng.standard_normal(n).astype(np.float32) for n in SIZES]
    grads = [[rng.standard_normal(n).astype(np.float32) for n in SIZES] for _ in range(6)]
    kwargs = {"lr": 0.01, "weight_decay": 0.02}

    def make(params):
        return numoptim.Adan([{"params": params[:3]}, {"params": params[3:]}], **kwargs)

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
    assert set(sd["state"][0]) == {"exp_avg", "exp_avg_sq", "exp_avg_diff", "neg_pre_grad"}
    assert sd["param_groups"][0]["step"] == 3
    numoptim.save(sd, tmp_path / "adan.ckpt")
    resumed = [Parameter(np.array(p)) for p in first]
    opt2 = make(resumed)
    opt2.load_state_dict(numoptim.load(tmp_path / "adan.ckpt"))
    run(resumed, opt2, grads[3:])
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(bits(a), bits(b))
        for key in ("exp_avg", "exp_avg_sq", "exp_avg_diff", "neg_pre_grad"):
            np.testing.assert_array_equal(bits(opt.state[a][key]), bits(opt2.state[b][key]))
    assert opt2.param_groups[0]["step"] == 6


def test_restart_opt_starts_over():
    rng = np.random.default_rng(5)
    start = rng.standard_normal(50)
    grads = [rng.standard_normal(50) for _ in range(6)]
    a, b = Parameter(start.copy()), Parameter(start.copy())
    opt_a, opt_b = numoptim.Adan([a], lr=0.01), numoptim.Adan([b], lr=0.01)
    for g in grads[:3]:
        a.grad = g
        opt_a.step()
    opt_a.restart_opt()
    assert opt_a.param_groups[0]["step"] == 0
    b[...] = a
    for g in grads[3:]:
        a.grad = b.grad = g
        opt_a.step()
        opt_b.step()
    np.testing.assert_array_equal(bits(a), bits(b))


def test_caution_is_refused_before_anything_is_written():
    p = Parameter(np.ones(3))
    with pytest.raises(TypeError, match="caution=True is not supported"):
        numoptim.Adan([p], caution=True)
    opt = numoptim.Adan([{"params": [p]}, {"params": [Parameter(np.ones(2))]}])
    opt.param_groups[1]["caution"] = True
    p.grad = np.ones(3)
    with pytest.raises(TypeError, match="caution=True is not supported"):
        opt.step()
    assert opt.state == {} and np.all(p == 1) and "step" not in opt.param_groups[0]


def test_signature_and_repr_are_timms():
    import inspect

    params = list(inspect.signature(numoptim.Adan).parameters.values())
    assert [p.name for p in params[:8]] == [
        "params", "lr", "betas", "eps", "weight_decay", "no_prox", "caution", "foreach",
    ]  # fmt: skip
    assert [p.default for p in params[1:8]] == [
        1e-3,
        (0.98, 0.92, 0.99),
        1e-8,
        0.0,
        False,
        False,
        None,
    ]
    opt = numoptim.Adan([Parameter(np.zeros(3))])
    assert repr(opt) == (
        "Adan (\nParameter Group 0\n    betas: (0.98, 0.92, 0.99)\n    caution: False\n"
        "    eps: 1e-08\n    foreach: None\n    lr: 0.001\n    no_prox: False\n"
        "    weight_decay: 0.0\n)"
    )


# ------------------------------------------------------------------- live, with timm


def timm_adan():
    from harness import timm_or_skip

    return timm_or_skip("adan", "Adan")


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options", COMBINATIONS, ids=name_of)
def test_matches_timm(options, dtype):
    torch, Adan = timm_adan()
    rng = np.random.default_rng(7)
    values = [rng.standard_normal(n).astype(dtype) for n in SIZES]
    ours = [Parameter(v.copy()) for v in values]
    theirs = [torch.nn.Parameter(torch.tensor(v.copy())) for v in values]
    kwargs = {"lr": 0.01, **options}
    opt_n = numoptim.Adan([{"params": ours[:3]}, {"params": ours[3:], **GROUP_OPTIONS}], **kwargs)
    sign = -1.0 if kwargs.pop("maximize") else 1.0
    opt_t = Adan(
        [{"params": theirs[:3]}, {"params": theirs[3:], **GROUP_OPTIONS}], foreach=False, **kwargs
    )
    for _ in range(STEPS):
        for p, q in zip(ours, theirs):
            g = rng.standard_normal(p.size).astype(dtype)
            p.grad = g
            q.grad = torch.tensor(sign * g)
        opt_n.step()
        opt_t.step()
    same = total = 0
    for p, q in zip(ours, theirs):
        expected = q.detach().numpy()
        assert_close(p, expected)
        same += int((bits(p) == bits(expected)).sum())
        total += p.size
        for key, value in opt_t.state[q].items():
            # The state does not depend on sqrt: bit-identical in both dtypes.
            np.testing.assert_array_equal(bits(opt_n.state[p][key]), bits(value.numpy()), key)
    # torch's float32 sqrt is one ulp off on some inputs (numoptim's is exact).
    assert same / total > (0.9 if dtype is np.float32 else 0.5), f"{same} of {total} identical"
    assert [g["step"] for g in opt_n.param_groups] == [g["step"] for g in opt_t.param_groups]
