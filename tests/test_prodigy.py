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

    def to_numpy(value):
        if isinstance(value, torch.Tensor):
            return value.detach().numpy().copy()
        if isinstance(value, dict):
            return {k: to_numpy(v) for k, v in value.items()}
        if isinstance(value, list):
            return [to_numpy(v) for v in value]
        return value

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
    opt.load_state_dict(to_numpy(ref.state_dict()))
    for _ in range(3):
        for p, t in zip(ours, theirs):
            g = rng.standard_normal(p.shape)
            p.grad = g
            t.grad = torch.from_numpy(g.copy())
        opt.step()
        ref.step()
    for p, t in zip(ours, theirs):
        assert_close(p, t.detach().numpy())
