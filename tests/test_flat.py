"""Flat parameter storage: numoptim.utils.flat_parameters and the flat state and step."""

import itertools

import numoptim
import numpy as np
import pytest
from harness import make_optimizer
from numoptim.utils import flat_parameters
from registry import ELEMENTWISE, OPTIMIZERS, SHARED_LR

SHAPES = [(3, 5), (256,), (1,), (7, 11), (1000,)]


def address(a):
    return a.__array_interface__["data"][0]


def values(seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


def test_flat_parameters_are_consecutive_views_with_gradient_views():
    arrays = values() + [np.ones(4)]  # a float64 one: its own buffer
    params = flat_parameters(arrays)
    for a, p in zip(arrays, params):
        assert isinstance(p, numoptim.Parameter) and p.shape == a.shape and p.dtype == a.dtype
        np.testing.assert_array_equal(p, a)
        assert not np.shares_memory(p, a)
        assert p.grad is not None and not p.grad.any() and p.grad.dtype == p.dtype
    float32 = params[:-1]
    for before, after in itertools.pairwise(float32):
        assert address(before) + before.nbytes == address(after)
        assert address(before.grad) + before.grad.nbytes == address(after.grad)
    opt = numoptim.SGD(params, lr=0.1)
    grads = [p.grad for p in params]
    for p in params:
        p.grad[...] = 1
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is g and not g.any() for p, g in zip(params, grads))


def run(name, kwargs, params, grads_by_step):
    # Where every group must share the lr (SHARED_LR), the second one idles at lr 0.
    second = {"lr": 0.0 if name in SHARED_LR else 0.05}
    opt = make_optimizer(name, [{"params": params[:3]}, {"params": params[3:], **second}], **kwargs)
    for step, grads in enumerate(grads_by_step):
        for p, g in zip(params, grads):
            if g is None:
                p.grad = None  # this parameter skips the step: its step count falls behind
            elif p.grad is None:
                p.grad = g.copy()
            else:
                p.grad[...] = g
        opt.step()
    return opt


CASES = [(name, kwargs) for name in ELEMENTWISE for kwargs in OPTIMIZERS[name][:4]]


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_flat_steps_are_bit_identical_to_ordinary_ones(name, kwargs):
    rng = np.random.default_rng(1)
    grads_by_step = [[rng.standard_normal(s).astype(np.float32) for s in SHAPES] for _ in range(6)]
    grads_by_step[2][1] = None
    ordinary = [numoptim.Parameter(v) for v in values()]
    flat = flat_parameters(values())
    opt_ordinary = run(name, kwargs, ordinary, grads_by_step)
    opt_flat = run(name, kwargs, flat, grads_by_step)
    for a, b in zip(ordinary, flat):
        np.testing.assert_array_equal(a, b)
    sd_a, sd_b = opt_ordinary.state_dict(), opt_flat.state_dict()
    assert sd_a["param_groups"] == sd_b["param_groups"]
    for index, state in sd_a["state"].items():
        assert state.keys() == sd_b["state"][index].keys()
        for key, value in state.items():
            np.testing.assert_array_equal(value, sd_b["state"][index][key])


@pytest.mark.parametrize("name,kwargs", [("Adam", {}), ("SGD", {"momentum": 0.9}),
                                         ("RMSprop", {"centered": True})])  # fmt: skip
def test_flat_group_state_is_views_into_one_buffer(name, kwargs):
    params = flat_parameters(values())
    opt = make_optimizer(name, params, lr=1e-3, **kwargs)
    opt.step()
    keys = [k for k, v in opt.state[params[0]].items() if v.ndim > 0]
    assert keys
    for key in keys:
        arrays = [opt.state[p][key] for p in params]
        for before, after in itertools.pairwise(arrays):
            assert address(before) + before.nbytes == address(after)
        assert all(a.shape == p.shape for a, p in zip(arrays, params))


def test_flat_state_survives_a_checkpoint(tmp_path):
    rng = np.random.default_rng(2)
    grads = [[rng.standard_normal(s).astype(np.float32) for s in SHAPES] for _ in range(4)]
    straight = flat_parameters(values())
    run("AdamW", {}, straight, grads)
    first = flat_parameters(values())
    opt = run("AdamW", {}, first, grads[:2])
    numoptim.save(opt.state_dict(), tmp_path / "ckpt")
    resumed = flat_parameters([np.array(p) for p in first])
    opt2 = numoptim.AdamW([{"params": resumed[:3]}, {"params": resumed[3:], "lr": 0.05}])
    opt2.load_state_dict(numoptim.load(tmp_path / "ckpt"))
    for g_step in grads[2:]:
        for p, g in zip(resumed, g_step):
            p.grad[...] = g
        opt2.step()
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a, b)
