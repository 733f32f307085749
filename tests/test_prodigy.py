"""Prodigy against prodigyopt 1.1.2, live, beyond the generic battery (registry.py).

The estimate of d couples every parameter of every group, so these tests step groups
with odd sizes, a parameter of all zeros (prodigyopt keeps a 0-d p0 for it), a group
with lr 0 and parameters without gradients, and compare parameters, state and the
groups' d values step by step. They also check what numoptim does differently: the
gradients are never modified, and ZeroRedundancyOptimizer refuses Prodigy.
"""

from __future__ import annotations

import numoptim
import numpy as np
import pytest
from conftest import assert_close
from numoptim import Parameter
from registry import OPTIMIZERS

SIZES = [(3, 5), (17,), (1,), (40_000,)]
STEPS = 20
GROUP_KEYS = ("d", "d_max", "d_numerator", "d_denom", "d_hat", "k")


def start_values(rng, dtype):
    values = [rng.standard_normal(s).astype(dtype) for s in SIZES]
    return [*values, np.zeros(6, dtype=dtype)]  # all zeros: prodigyopt's p0 is 0-d


def prodigyopt():
    pytest.importorskip("torch")
    module = pytest.importorskip("prodigyopt")
    return module.Prodigy


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("index", range(len(OPTIMIZERS["Prodigy"])))
def test_matches_prodigyopt_with_an_idle_group(index, dtype):
    prodigyopt()
    import torch
    from harness import reference_class

    kwargs = OPTIMIZERS["Prodigy"][index]
    rng = np.random.default_rng(index)
    start = start_values(rng, dtype)
    ours = [Parameter(v.copy()) for v in start]
    theirs = [torch.nn.Parameter(torch.from_numpy(v.copy())) for v in start]
    idle = {"lr": 0.0}  # a group with lr 0: no moments, but it still moves by d * lr
    opt = numoptim.Prodigy([{"params": ours[:3]}, {"params": ours[3:], **idle}], **kwargs)
    ref = reference_class(torch, "Prodigy")(
        [{"params": theirs[:3]}, {"params": theirs[3:], **idle}], **kwargs
    )
    for step in range(STEPS):
        for k, (p, t) in enumerate(zip(ours, theirs)):
            if k == 1 and step % 3 == 0:
                p.grad = t.grad = None  # no gradient this step
                continue
            g = rng.standard_normal(p.shape).astype(dtype)
            p.grad = g
            t.grad = torch.from_numpy(g.copy())
        opt.step()
        ref.step()
        for p, t in zip(ours, theirs):
            assert_close(p, t.detach().numpy(), what=f"step {step}")
        for ours_group, ref_group in zip(opt.param_groups, ref.param_groups):
            for key in GROUP_KEYS:
                if key in ref_group:
                    # In float32, prodigyopt's d_numerator is a sum of float32 dot
                    # products (torch's sdot) of terms that mostly cancel: its relative
                    # error is far above float32's epsilon (5e-5 measured against
                    # numoptim's, which sums in double). The parameters above are what
                    # the estimate moves, and they agree to the usual tolerance.
                    rtol = 1e-12 if dtype == "float64" else 1e-3
                    np.testing.assert_allclose(ours_group[key], ref_group[key], rtol=rtol)
    for p, t in zip(ours, theirs):
        state, ref_state = opt.state[p], ref.state[t]
        assert state["step"] == ref_state["step"]
        for key in ("s", "exp_avg", "exp_avg_sq"):
            if key in ref_state:
                assert_close(state[key], ref_state[key].numpy(), what=key)
        np.testing.assert_array_equal(
            state["p0"], np.broadcast_to(ref_state["p0"].numpy(), (p.size,))
        )


def test_gradients_are_not_modified():
    rng = np.random.default_rng(0)
    params = [Parameter(rng.standard_normal(9)) for _ in range(2)]
    opt = numoptim.Prodigy(params, weight_decay=0.1, decouple=False)
    for _ in range(3):
        grads = [rng.standard_normal(9) for _ in params]
        for p, g in zip(params, grads):
            p.grad = g.copy()
        opt.step()
        for p, g in zip(params, grads):
            np.testing.assert_array_equal(p.grad, g)


def test_zero_gradients_end_the_step_after_the_moments():
    p = Parameter(np.arange(4.0))
    opt = numoptim.Prodigy([p])
    p.grad = np.zeros(4)
    opt.step()
    np.testing.assert_array_equal(p, np.arange(4.0))
    assert opt.param_groups[0]["k"] == 0 and "d_hat" not in opt.param_groups[0]
    assert opt.state[p]["step"] == 0  # counted by the second pass only, as prodigyopt


def test_different_learning_rates_raise_before_anything_is_written():
    a, b = Parameter(np.ones(3)), Parameter(np.ones(3))
    opt = numoptim.Prodigy([{"params": [a]}, {"params": [b], "lr": 0.5}])
    a.grad = b.grad = np.ones(3)
    with pytest.raises(RuntimeError, match="only supported for values of 0"):
        opt.step()
    assert not opt.state
    np.testing.assert_array_equal(a, np.ones(3))


def test_zero_redundancy_optimizer_refuses_prodigy():
    from numoptim.distributed import ZeroRedundancyOptimizer

    with pytest.raises(TypeError, match="cannot shard Prodigy"):
        ZeroRedundancyOptimizer([Parameter(np.ones(3))], numoptim.Prodigy)


def test_a_prodigyopt_state_dict_with_a_0d_p0_loads_and_resumes():
    cls = prodigyopt()
    import torch
    from harness import tensors_to_numpy

    rng = np.random.default_rng(5)
    start = start_values(rng, "float64")
    theirs = [torch.nn.Parameter(torch.from_numpy(v.copy())) for v in start]
    ref = cls(theirs, weight_decay=0.01)
    for _ in range(3):
        for t in theirs:
            t.grad = torch.from_numpy(rng.standard_normal(t.shape))
        ref.step()
    assert ref.state[theirs[-1]]["p0"].ndim == 0
    ours = [Parameter(t.detach().numpy().copy()) for t in theirs]
    opt = numoptim.Prodigy(ours, weight_decay=0.01)
    opt.load_state_dict(tensors_to_numpy(ref.state_dict()))
    for _ in range(3):
        for p, t in zip(ours, theirs):
            g = rng.standard_normal(p.shape)
            p.grad = g
            t.grad = torch.from_numpy(g.copy())
        opt.step()
        ref.step()
    for p, t in zip(ours, theirs):
        assert_close(p, t.detach().numpy())


def fma32(a, b, c):
    """float32 fused multiply-add: the product of two float32 is exact in float64, and
    one rounding of the sum to float64 then to float32 differs from a single rounding
    with a probability near 2^-29 per element."""
    return (a.astype(np.float64) * b + c).astype(np.float32)


def prodigy_low_precision_reference(params, grads, state, group, dtype):
    """One step of prodigyopt's rule with decoupled decay on one group (state: the
    parameters' by position, updated), in float32 with
    every stored value rounded to `dtype` once: pass 1 stores the moments and s, the
    sums give d, pass 2 reads the stored moments (numoptim's order of operations)."""
    f32 = np.float32
    beta1, beta2 = group["betas"]
    beta3 = f32(np.sqrt(beta2))
    d, lr, wd = group["d"], group["lr"], group["weight_decay"]
    dlr = d * lr
    numerator, denominator = 0.0, 0.0
    for k, (p, g) in enumerate(zip(params, grads)):
        st = state.setdefault(k, {})
        if not st:
            st.update(s=np.zeros(p.size, dtype), p0=p.reshape(-1).copy(),
                      exp_avg=np.zeros_like(p), exp_avg_sq=np.zeros_like(p))  # fmt: skip
        x, g = p.astype(f32), g.astype(f32)
        dot = np.sum(g.reshape(-1).astype(np.float64) * (st["p0"].astype(f32) - x.reshape(-1)))
        st["exp_avg"] = fma32(g, f32(d * (1 - beta1)), st["exp_avg"].astype(f32) * f32(beta1))
        st["exp_avg"] = st["exp_avg"].astype(dtype)
        v = fma32(f32(d * d * (1 - beta2)) * g, g, st["exp_avg_sq"].astype(f32) * f32(beta2))
        st["exp_avg_sq"] = v.astype(dtype)
        s = fma32(g.reshape(-1), f32((d / group["d0"]) * dlr), st["s"].astype(f32) * beta3)
        st["s"] = s.astype(dtype)
        numerator += (d / group["d0"]) * dlr * float(f32(dot))
        denominator += float(f32(np.sum(np.abs(st["s"].astype(np.float64)))))
    d_numerator = group["d_numerator"] * np.sqrt(beta2) + numerator  # in double
    d_hat = group["d_coef"] * d_numerator / denominator
    d_max = max(group["d_max"], d_hat)
    if d == group["d0"]:
        d = max(d, d_hat)
    d = min(d_max, d * group["growth_rate"])
    group.update(d=d, d_max=d_max, d_numerator=d_numerator)
    out = []
    for k, p in enumerate(params):
        st = state[k]
        x = p.astype(f32)
        denom = np.sqrt(st["exp_avg_sq"].astype(f32)) + f32(d * group["eps"])
        x = fma32(x, f32(-wd * dlr), x)
        out.append((x + (f32(-dlr) * st["exp_avg"].astype(f32)) / denom).astype(dtype))
    return out


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_steps_store_each_value_rounded_once(dtype):
    """16-bit parameters without master weights keep prodigyopt's state in their dtype:
    pass 1 stores the moments rounded once, pass 2 reads them back. Every parameter and
    state element equals the float32 rule with those roundings (checked by a NumPy
    version of it), step after step. float16 needs d0 and gradients large enough that
    d^2 * g^2 stays in its range: where exp_avg_sq underflows to 0, the step divides by
    d * eps alone and overflows (in prodigyopt too, whose state has the same dtype)."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    dtype = np.dtype(ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype)
    rng = np.random.default_rng(3)
    shapes = [(3, 5), (17,), (1,), (300,)]
    start = [rng.standard_normal(s).astype(dtype) for s in shapes]
    params = [Parameter(v.copy()) for v in start]
    kwargs = {"d0": 0.1, "weight_decay": 0.01}
    opt = numoptim.Prodigy(params, **kwargs)
    group = {k: v for k, v in opt.param_groups[0].items() if k != "params"}
    expected, state = [v.copy() for v in start], {}
    grew = False
    for step in range(8):
        # Towards zero (so that d grows), at least 0.5 in magnitude.
        grads = [
            (np.where(x < 0, -1, 1) * (np.abs(x) + rng.uniform(0.5, 1, x.shape))).astype(dtype)
            for x in (p.astype(np.float32) for p in params)
        ]
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
        expected = prodigy_low_precision_reference(expected, grads, state, group, dtype)
        assert opt.param_groups[0]["d"] == group["d"], step
        grew = grew or group["d"] > kwargs["d0"]
        for k, (p, e) in enumerate(zip(params, expected)):
            assert p.dtype == dtype
            np.testing.assert_array_equal(p.view(np.uint16), e.view(np.uint16), f"{step} {k}")
            for key in ("s", "exp_avg", "exp_avg_sq"):
                np.testing.assert_array_equal(
                    opt.state[p][key].view(np.uint16), state[k][key].view(np.uint16), key
                )
    assert grew
