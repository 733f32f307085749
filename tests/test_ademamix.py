"""AdEMAMix against bitsandbytes 0.50 (float32), its _ReferenceAdEMAMix (float64) and a
NumPy rule that needs neither.

The generic suites run AdEMAMix through tests/registry.py (six configurations, a golden
fixture); this file checks every combination of the options live, what numoptim's
float32 results share with bitsandbytes' bit for bit, the schedulers, a bitsandbytes
state loading, and the errors at the step.

Agreement measured with bitsandbytes 0.50.2 (CPU, torch 2.13): the state (m1, m2, nu) is
bit-identical in float32 at every step; the parameters differ only where torch's
vectorized float32 sqrt is not correctly rounded (one ulp off on about 17% of inputs on
an AVX2 CPU; numoptim's sqrt is exact), which moves an element's update by an ulp and so
a parameter near zero by more ulps of its own (up to a few thousand ulps, relative 3e-4,
of elements below 1e-3 in size; always within 2e-6 of the largest parameter).
"""

from __future__ import annotations

import math
import warnings

import numoptim
import numpy as np
import pytest
from conftest import assert_close, bits, ulps
from numoptim import Parameter

SIZES = [1, 7, 16, 17, 1023, 5003]
STEPS = 25
GROUP_OPTIONS = {"lr": 0.005, "betas": (0.8, 0.99, 0.999), "alpha": 3.0, "weight_decay": 0.05}
COMBINATIONS = [
    {"weight_decay": wd, "t_alpha": ta, "t_beta3": tb, "maximize": m}
    for wd in (0.0, 0.01)
    for ta in (None, 10)
    for tb in (None, 15)
    for m in (False, True)
]


def schedules(step, alpha, beta1, beta3, t_alpha, t_beta3):
    """bitsandbytes' alpha_t and beta3_t (each off when its length is None or 0)."""
    alpha_t = min(step * alpha / t_alpha, alpha) if t_alpha else alpha
    if t_beta3:
        ln1, ln3 = math.log(beta1), math.log(beta3)
        s = step / t_beta3
        beta3 = min(math.exp(ln1 * ln3 / ((1 - s) * ln3 + s * ln1)), beta3)
    return alpha_t, beta3


def numpy_step(p, g, state, lr, betas, alpha, t_alpha, t_beta3, eps, weight_decay):
    """AdEMAMix in NumPy float64, in bitsandbytes' CPU kernel's order (in place)."""
    beta1, beta2, beta3 = betas
    state["step"] += 1
    t = state["step"]
    alpha_t, beta3_t = schedules(t, alpha, beta1, beta3, t_alpha, t_beta3)
    m1, m2, nu = state["m1"], state["m2"], state["nu"]
    m1[...] = m1 * beta1 + g * (1 - beta1)
    m2[...] = m2 * beta3_t + g * (1 - beta3_t)
    nu[...] = nu * beta2 + (1 - beta2) * g * g
    if weight_decay > 0:
        p *= 1 - lr * weight_decay
    mixed = m1 / (1 - beta1**t) + alpha_t * m2
    p -= lr * (mixed / (np.sqrt(nu) / math.sqrt(1 - beta2**t) + eps))


def make_values(dtype, rng):
    return [rng.standard_normal(n).astype(dtype) for n in SIZES]


def groups_of(params, kwargs):
    return [{"params": params[:3]}, {"params": params[3:], **GROUP_OPTIONS}], kwargs


@pytest.mark.parametrize("options", COMBINATIONS, ids=lambda o: "-".join(map(str, o.values())))
def test_float64_matches_the_numpy_rule(options):
    rng = np.random.default_rng(1)
    values = make_values(np.float64, rng)
    ours = [Parameter(v.copy()) for v in values]
    kwargs = {"lr": 0.01, **options}
    opt = numoptim.AdEMAMix([{"params": ours[:3]}, {"params": ours[3:], **GROUP_OPTIONS}], **kwargs)
    theirs = [v.copy() for v in values]
    states = [{"step": 0, "m1": 0 * v, "m2": 0 * v, "nu": 0 * v} for v in values]
    sign = -1.0 if options["maximize"] else 1.0
    for _ in range(STEPS):
        grads = make_values(np.float64, rng)
        for k, (p, g) in enumerate(zip(ours, grads)):
            p.grad = g
            o = {"betas": (0.9, 0.999, 0.9999), "alpha": 5.0, **kwargs}
            if k >= 3:
                o.update(GROUP_OPTIONS)
            numpy_step(
                theirs[k], sign * g, states[k], o["lr"], o["betas"], o["alpha"],
                o["t_alpha"], o["t_beta3"], 1e-8, o["weight_decay"],
            )  # fmt: skip
        opt.step()
    for k, p in enumerate(ours):
        np.testing.assert_allclose(p, theirs[k], rtol=1e-12, atol=1e-12)
        state = opt.state[p]
        assert state["step"] == STEPS and state["step"].dtype == np.float32
        for key, name in (("exp_avg_fast", "m1"), ("exp_avg_slow", "m2"), ("exp_avg_sq", "nu")):
            np.testing.assert_allclose(state[key], states[k][name], rtol=1e-12, atol=1e-12)


def test_schedulers_reach_their_ends():
    """alpha_t rises linearly to alpha; beta3_t rises from beta1 to beta3, then stays."""
    alphas = [schedules(t, 5.0, 0.9, 0.9999, 10, None)[0] for t in range(1, 13)]
    assert alphas[0] == 0.5 and alphas[9:] == [5.0, 5.0, 5.0]
    betas3 = [schedules(t, 5.0, 0.9, 0.9999, None, 15)[1] for t in range(1, 17)]
    assert 0.9 < betas3[0] < betas3[1] < betas3[13] < 0.9999
    assert betas3[14] == betas3[15] == 0.9999
    # And numoptim's native step applies them: t_alpha changes the result, t_alpha=0 not.
    results = {}
    for t_alpha in (None, 0, 3):
        p = Parameter(np.linspace(-1, 1, 9))
        opt = numoptim.AdEMAMix([p], lr=0.1, t_alpha=t_alpha, t_beta3=t_alpha)
        for _ in range(4):
            p.grad = np.linspace(1, -2, 9)
            opt.step()
        results[t_alpha] = np.array(p)
    np.testing.assert_array_equal(bits(results[None]), bits(results[0]))
    assert not np.array_equal(results[None], results[3])


def test_state_dict_layout_and_bit_exact_resume(tmp_path):
    rng = np.random.default_rng(4)
    values = make_values(np.float32, rng)
    grads = [make_values(np.float32, rng) for _ in range(6)]
    kwargs = {"lr": 0.01, "t_alpha": 4, "t_beta3": 5}

    def run(params, opt, steps):
        for gs in steps:
            for p, g in zip(params, gs):
                p.grad = g
            opt.step()

    straight = [Parameter(v.copy()) for v in values]
    opt = numoptim.AdEMAMix(*groups_of(straight, {})[:1], **kwargs)
    run(straight, opt, grads)

    first = [Parameter(v.copy()) for v in values]
    opt1 = numoptim.AdEMAMix(*groups_of(first, {})[:1], **kwargs)
    run(first, opt1, grads[:3])
    sd = opt1.state_dict()
    assert set(sd["state"][0]) == {"step", "exp_avg_fast", "exp_avg_slow", "exp_avg_sq"}
    assert list(sd["param_groups"][0])[:7] == [
        "lr", "betas", "eps", "weight_decay", "alpha", "t_alpha", "t_beta3",
    ]  # fmt: skip
    numoptim.save(sd, tmp_path / "ademamix.ckpt")
    resumed = [Parameter(np.array(p)) for p in first]
    opt2 = numoptim.AdEMAMix(*groups_of(resumed, {})[:1], **kwargs)
    opt2.load_state_dict(numoptim.load(tmp_path / "ademamix.ckpt"))
    run(resumed, opt2, grads[3:])
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(bits(a), bits(b))
        for key in ("exp_avg_fast", "exp_avg_slow", "exp_avg_sq"):
            np.testing.assert_array_equal(bits(opt.state[a][key]), bits(opt2.state[b][key]))


def test_beta3_scheduler_with_beta1_zero_raises_and_writes_nothing():
    """bitsandbytes takes log(beta1) at the step: math domain error. With two groups and
    the second one bad, the first is not written either."""
    a, b = Parameter(np.ones(5)), Parameter(np.ones(3))
    opt = numoptim.AdEMAMix(
        [{"params": [a]}, {"params": [b], "betas": (0.0, 0.999, 0.9999)}], t_beta3=10
    )
    a.grad, b.grad = np.ones(5), np.ones(3)
    with pytest.raises(ValueError, match="math domain error"):
        opt.step()
    assert opt.state == {} and np.all(a == 1) and np.all(b == 1)
    opt.param_groups[1]["t_beta3"] = None  # without the scheduler, beta1 = 0 is fine
    opt.step()
    assert opt.state[b]["step"] == 1


def test_a_bitsandbytes_state_is_checked_before_it_loads():
    p = Parameter(np.ones(4, np.float32))
    opt = numoptim.AdEMAMix([p])
    groups = opt.state_dict()["param_groups"]
    for state1, message in (
        (np.zeros((2, 4), np.uint8), "8-bit AdEMAMix state"),
        (np.zeros((3, 4), np.float32), "stacks m1 and m2"),
        (np.zeros((2, 5), np.float32), "of shape"),
    ):
        entry = {"step": 2, "state1": state1, "state2": np.zeros(4, np.float32)}
        with pytest.raises(ValueError, match=message):
            opt.load_state_dict({"state": {0: entry}, "param_groups": groups})
        assert opt.state == {}


@pytest.mark.parametrize("lr", [np.array(0.01), np.array([0.01], np.float32)])
def test_an_array_lr_steps_as_its_float(lr):
    rng = np.random.default_rng(3)
    start = rng.standard_normal(100)
    a, b = Parameter(start.copy()), Parameter(start.copy())
    opt_a = numoptim.AdEMAMix([a], lr=lr, t_alpha=5)
    opt_b = numoptim.AdEMAMix([b], lr=float(lr.reshape(())), t_alpha=5)
    for _ in range(5):
        a.grad = b.grad = rng.standard_normal(100)
        opt_a.step()
        opt_b.step()
    np.testing.assert_array_equal(bits(a), bits(b))


def test_signature_and_repr_are_bitsandbytes():
    import inspect

    params = list(inspect.signature(numoptim.AdEMAMix).parameters.values())
    names = [p.name for p in params[:11]]
    assert names == [
        "params", "lr", "betas", "alpha", "t_alpha", "t_beta3", "eps", "weight_decay",
        "optim_bits", "min_8bit_size", "is_paged",
    ]  # fmt: skip
    defaults = [p.default for p in params[1:11]]
    assert defaults == [1e-3, (0.9, 0.999, 0.9999), 5.0, None, None, 1e-8, 1e-2, 32, 4096, False]
    opt = numoptim.AdEMAMix([Parameter(np.zeros(3))])
    assert repr(opt) == (
        "AdEMAMix (\nParameter Group 0\n    alpha: 5.0\n    betas: (0.9, 0.999, 0.9999)\n"
        "    eps: 1e-08\n    lr: 0.001\n    t_alpha: None\n    t_beta3: None\n"
        "    weight_decay: 0.01\n)"
    )


# ------------------------------------------------------------ live, with bitsandbytes


def bnb():
    torch = pytest.importorskip("torch")
    pytest.importorskip("bitsandbytes")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from bitsandbytes.optim import AdEMAMix
        from bitsandbytes.optim.ademamix import _ReferenceAdEMAMix
    return torch, AdEMAMix, _ReferenceAdEMAMix


def run_both(torch, cls, dtype, kwargs, sizes=SIZES, steps=STEPS, threads=None):
    """numoptim and `cls` on the same inputs (two groups); maximize as negated grads."""
    rng = np.random.default_rng(7)
    values = [rng.standard_normal(n).astype(dtype) for n in sizes]
    ours = [Parameter(v.copy()) for v in values]
    theirs = [torch.nn.Parameter(torch.tensor(v.copy())) for v in values]
    split = min(3, len(sizes) - 1) or 1
    opt_n = numoptim.AdEMAMix(
        [{"params": ours[:split]}, {"params": ours[split:], **GROUP_OPTIONS}], **kwargs
    )
    options = {k: v for k, v in kwargs.items() if k != "maximize"}
    sign = -1.0 if kwargs.get("maximize") else 1.0
    opt_t = cls(
        [{"params": theirs[:split]}, {"params": theirs[split:], **GROUP_OPTIONS}], **options
    )
    for _ in range(steps):
        grads = [rng.standard_normal(n).astype(dtype) for n in sizes]
        for p, q, g in zip(ours, theirs, grads):
            p.grad = g.copy()
            q.grad = torch.tensor(sign * g)
        opt_n.step()
        opt_t.step()
    return opt_n, ours, opt_t, theirs


@pytest.mark.torch
@pytest.mark.parametrize("options", COMBINATIONS, ids=lambda o: "-".join(map(str, o.values())))
def test_float32_state_is_bitsandbytes_bit_for_bit(options):
    torch, AdEMAMix, _ = bnb()
    opt_n, ours, opt_t, theirs = run_both(torch, AdEMAMix, np.float32, {"lr": 0.01, **options})
    same = total = 0
    for p, q in zip(ours, theirs):
        expected = q.detach().numpy()
        assert_close(p, expected)
        same += int((bits(p) == bits(expected)).sum())
        total += p.size
        s, t = opt_n.state[p], opt_t.state[q]
        assert s["step"] == t["step"] == STEPS
        np.testing.assert_array_equal(bits(s["exp_avg_fast"]), bits(t["state1"][0].numpy()))
        np.testing.assert_array_equal(bits(s["exp_avg_slow"]), bits(t["state1"][1].numpy()))
        np.testing.assert_array_equal(bits(s["exp_avg_sq"]), bits(t["state2"].numpy()))
    # torch's float32 sqrt is one ulp off on some inputs; most parameters still agree.
    assert same / total > 0.9, f"{same} of {total} parameters bit-identical"


@pytest.mark.torch
@pytest.mark.parametrize("options", COMBINATIONS, ids=lambda o: "-".join(map(str, o.values())))
def test_float64_matches_the_bitsandbytes_reference(options):
    """_ReferenceAdEMAMix, one group per parameter: with several parameters in a group its
    schedulers overwrite alpha and beta3 for the next parameter (alpha_t of alpha_t)."""
    torch, _, Reference = bnb()
    kwargs = {"lr": 0.01, **options}
    rng = np.random.default_rng(7)
    values = [rng.standard_normal(n) for n in SIZES]
    ours = [Parameter(v.copy()) for v in values]
    theirs = [torch.nn.Parameter(torch.tensor(v.copy())) for v in values]
    opt_n = numoptim.AdEMAMix(ours, **kwargs)
    options = {k: v for k, v in kwargs.items() if k != "maximize"}
    refs = [Reference([q], **options) for q in theirs]
    sign = -1.0 if kwargs["maximize"] else 1.0
    for _ in range(STEPS):
        for p, q, ref in zip(ours, theirs, refs):
            g = rng.standard_normal(p.size)
            p.grad = g
            q.grad = torch.tensor(sign * g)
            ref.step()
        opt_n.step()
    for p, q, ref in zip(ours, theirs, refs):
        assert_close(p, q.detach().numpy())
        m1_m2 = ref.state[q]["m1_m2"].numpy()
        assert_close(opt_n.state[p]["exp_avg_fast"], m1_m2[0])
        assert_close(opt_n.state[p]["exp_avg_slow"], m1_m2[1])
        assert_close(opt_n.state[p]["exp_avg_sq"], ref.state[q]["nu"].numpy())


@pytest.mark.torch
def test_a_bitsandbytes_state_loads_and_continues_alike():
    torch, AdEMAMix, _ = bnb()
    kwargs = {"lr": 0.01, "t_alpha": 8, "t_beta3": 6}
    _, _, opt_t, theirs = run_both(torch, AdEMAMix, np.float32, kwargs, steps=4)
    # bitsandbytes' own state under torch's layout, tensors as arrays.
    numbered = [q for group in opt_t.param_groups for q in group["params"]]
    state = {
        i: {
            k: v.numpy().copy() if isinstance(v, torch.Tensor) else v
            for k, v in opt_t.state[q].items()
        }
        for i, q in enumerate(numbered)
    }
    groups = [
        {
            **{k: v for k, v in g.items() if k != "params"},
            "params": [next(i for i, r in enumerate(numbered) if r is q) for q in g["params"]],
        }
        for g in opt_t.param_groups
    ]
    assert set(state[0]) == {"step", "state1", "state2"} and state[0]["state1"].shape[0] == 2
    fresh = [Parameter(q.detach().numpy().copy()) for q in theirs]
    loaded = numoptim.AdEMAMix([{"params": fresh[:3]}, {"params": fresh[3:]}], **kwargs)
    loaded.load_state_dict({"state": state, "param_groups": groups})
    assert loaded.state[fresh[0]]["step"].dtype == np.float32
    rng = np.random.default_rng(11)
    for _ in range(5):
        for p, q in zip(fresh, theirs):
            g = rng.standard_normal(p.size).astype(np.float32)
            p.grad = g
            q.grad = torch.tensor(g)
        loaded.step()
        opt_t.step()
    for p, q in zip(fresh, theirs):
        assert_close(p, q.detach().numpy())
        t = opt_t.state[q]
        np.testing.assert_array_equal(
            bits(loaded.state[p]["exp_avg_slow"]), bits(t["state1"][1].numpy())
        )
        np.testing.assert_array_equal(
            bits(loaded.state[p]["exp_avg_sq"]), bits(t["state2"].numpy())
        )
        assert loaded.state[p]["step"] == t["step"] == 9


@pytest.mark.torch
def test_a_large_threaded_tensor_as_bitsandbytes(restore_threads):
    torch, AdEMAMix, _ = bnb()
    numoptim.set_num_threads(4)
    kwargs = {"lr": 0.01, "t_alpha": 3, "t_beta3": 4}
    opt_n, ours, opt_t, theirs = run_both(
        torch, AdEMAMix, np.float32, kwargs, sizes=[2**20 + 3, 5], steps=5
    )
    for p, q in zip(ours, theirs):
        expected = q.detach().numpy()
        assert_close(p, expected)
        assert (ulps(p, expected) == 0).mean() > 0.9
        np.testing.assert_array_equal(
            bits(opt_n.state[p]["exp_avg_sq"]), bits(opt_t.state[q]["state2"].numpy())
        )
