"""Schedule-Free SGD, AdamW and RAdam: what the generic battery does not cover (the
train and eval modes, eval_params, state dicts shared with schedulefree, master weights).

Every step of every configuration is compared with schedulefree 1.4.1 by the generic
battery (golden fixtures and live parity, through registry.py); here the live checks
need schedulefree and torch and skip without them.
"""

from __future__ import annotations

import numoptim
import numpy as np
import pytest
from harness import gradient, hashed_values
from numoptim import AdamWScheduleFree, Parameter, RAdamScheduleFree, SGDScheduleFree

NAMES = ["AdamWScheduleFree", "SGDScheduleFree", "RAdamScheduleFree"]
SIZES = (7, 33, 1)
KWARGS = {
    "AdamWScheduleFree": {"lr": 0.01, "weight_decay": 0.1, "warmup_steps": 3},
    "SGDScheduleFree": {"lr": 0.01, "momentum": 0.8, "weight_decay": 0.1},
    "RAdamScheduleFree": {"lr": 0.01, "betas": (0.8, 0.99)},
}


def params(dtype=np.float64, seed=0):
    return [Parameter(hashed_values(seed + i, n, dtype)) for i, n in enumerate(SIZES)]


def groups(ps, name):
    return [{"params": ps[:2]}, {"params": ps[2:], "lr": KWARGS[name]["lr"] / 2}]


def set_grads(ps, step, dtype=np.float64):
    for i, p in enumerate(ps):
        p.grad = gradient(step, 0, i, p.size, dtype)


def trained(name, steps, dtype=np.float64, **extra):
    ps = params(dtype)
    opt = getattr(numoptim, name)(groups(ps, name), **KWARGS[name], **extra)
    opt.train()
    for step in range(steps):
        set_grads(ps, step, dtype)
        opt.step()
    return opt, ps


def snapshot(opt):
    arrays = [np.array(p) for g in opt.param_groups for p in g["params"]]
    state = {id(p): {k: np.array(v) for k, v in s.items()} for p, s in opt.state.items()}
    scalars = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    return arrays, state, scalars


def assert_same(a, b):
    for x, y in zip(a[0], b[0]):
        np.testing.assert_array_equal(x, y)
    assert a[1].keys() == b[1].keys()
    for key in a[1]:
        for k in a[1][key]:
            np.testing.assert_array_equal(a[1][key][k], b[1][key][k])
    assert a[2] == b[2]


@pytest.mark.parametrize("name", NAMES)
def test_a_new_optimizer_is_in_eval_mode_and_refuses_to_step(name):
    ps = params()
    opt = getattr(numoptim, name)(groups(ps, name), **KWARGS[name])
    assert [g["train_mode"] for g in opt.param_groups] == [False, False]
    set_grads(ps, 0)
    before = snapshot(opt)
    with pytest.raises(RuntimeError, match="Optimizer was not in train mode when step is called"):
        opt.step()
    assert_same(snapshot(opt), before)


@pytest.mark.parametrize("name", NAMES)
def test_any_group_in_eval_mode_refuses_the_step_before_anything_moves(name):
    # schedulefree checks the first group only; every group is checked here.
    opt, ps = trained(name, 3)
    opt.param_groups[1]["train_mode"] = False
    set_grads(ps, 3)
    before = snapshot(opt)
    calls = []
    with pytest.raises(RuntimeError, match="not in train mode"):
        opt.step(lambda: calls.append(1))
    assert calls == []  # checked before the closure runs, as schedulefree
    assert_same(snapshot(opt), before)


@pytest.mark.parametrize("name", NAMES)
def test_eval_and_train_move_the_users_arrays_in_place_and_back(name):
    opt, ps = trained(name, 8)  # RAdam: silent 4 steps, then y = z after its first
    addresses = [p.__array_interface__["data"][0] for p in opt.param_groups[0]["params"]]
    y = [p.copy() for p in ps]
    opt.eval()
    assert all(g["train_mode"] is False for g in opt.param_groups)
    assert [p.__array_interface__["data"][0] for p in opt.param_groups[0]["params"]] == addresses
    assert any(not np.array_equal(a, b) for a, b in zip(y, ps))
    opt.eval()  # a second eval() changes nothing
    x = [p.copy() for p in ps]
    opt.eval()
    for a, b in zip(x, ps):
        np.testing.assert_array_equal(a, b)
    opt.train()
    for a, b in zip(y, ps):  # back to y, up to rounding
        np.testing.assert_allclose(b, a, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name", NAMES)
def test_eval_params_is_what_eval_gives_without_moving_anything(name):
    opt, ps = trained(name, 6)
    before = snapshot(opt)
    x = opt.eval_params()
    assert_same(snapshot(opt), before)
    assert all(not np.shares_memory(a, p) for a, p in zip(x, ps))
    opt.eval()
    for a, p in zip(x, ps):
        assert a.dtype == p.dtype
        np.testing.assert_array_equal(a, p)
    # In eval mode: copies of the parameters.
    for a, p in zip(opt.eval_params(), ps):
        np.testing.assert_array_equal(a, p)
        assert not np.shares_memory(a, p)


def test_parameters_never_stepped_stay_where_they_are():
    ps = params()
    opt = AdamWScheduleFree(ps, lr=0.01)
    opt.train()
    ps[0].grad = gradient(0, 0, 0, ps[0].size, np.float64)
    opt.step()
    untouched = [p.copy() for p in ps[1:]]
    opt.eval()
    for a, p in zip(untouched, ps[1:]):
        np.testing.assert_array_equal(a, p)
    assert set(opt.state) == {ps[0]}


@pytest.mark.parametrize("name", NAMES)
def test_gradients_are_not_modified(name):
    opt, ps = trained(name, 2)
    set_grads(ps, 2)
    grads = [p.grad.copy() for p in ps]
    opt.step()
    for g, p in zip(grads, ps):
        np.testing.assert_array_equal(g, p.grad)


@pytest.mark.parametrize("name", NAMES)
def test_a_checkpoint_keeps_the_mode_and_resumes_bit_exactly(name, tmp_path):
    full, _ = trained(name, 8)
    first, ps = trained(name, 4)
    path = tmp_path / "sf.ckpt"
    numoptim.save(first.state_dict(), path)
    copies = [Parameter(np.array(p)) for p in ps]
    resumed = getattr(numoptim, name)(groups(copies, name), **KWARGS[name])
    resumed.load_state_dict(numoptim.load(path))
    assert [g["train_mode"] for g in resumed.param_groups] == [True, True]
    assert repr(resumed) == repr(first)
    for step in range(4, 8):
        set_grads(copies, step)
        resumed.step()
    for a, b in zip(copies, [p for g in full.param_groups for p in g["params"]]):
        np.testing.assert_array_equal(a, b)
    # And the mode of a checkpoint saved in eval mode, as schedulefree recommends.
    first.eval()
    resumed.load_state_dict(first.state_dict())
    assert [g["train_mode"] for g in resumed.param_groups] == [False, False]


def test_sgd_has_z_only_and_the_adaptive_ones_z_and_exp_avg_sq():
    for name, keys in [
        ("SGDScheduleFree", ["z"]),
        ("AdamWScheduleFree", ["z", "exp_avg_sq"]),
        ("RAdamScheduleFree", ["z", "exp_avg_sq"]),
    ]:
        opt, ps = trained(name, 1)
        assert list(opt.state[ps[0]]) == keys


def test_radam_is_silent_until_rectified_unless_asked_for_sgd():
    # beta2 = 0.999: rho_t <= 4 for the first 4 steps.
    for silent in (True, False):
        ps = params()
        start = [p.copy() for p in ps]
        opt = RAdamScheduleFree(ps, lr=0.01, silent_sgd_phase=silent)
        opt.train()
        for step in range(4):
            set_grads(ps, step)
            opt.step()
        moved = [not np.array_equal(a, p) for a, p in zip(start, ps)]
        assert moved == [not silent] * len(ps)
        assert opt.param_groups[0]["weight_sum"] == (0.0 if silent else pytest.approx(4e-4))


@pytest.mark.parametrize("name", NAMES)
def test_an_array_lr_steps_as_the_same_float(name):
    _, pa = trained(name, 5)
    ps = params()
    kwargs = dict(KWARGS[name], lr=np.array(KWARGS[name]["lr"]))
    b = getattr(numoptim, name)([{"params": ps[:2]}, {"params": ps[2:], "lr": 0.005}], **kwargs)
    b.train()
    for step in range(5):
        set_grads(ps, step)
        b.step()
    for x, y in zip(pa, ps):
        np.testing.assert_array_equal(x, y)


def test_beta1_zero_is_refused_because_eval_divides_by_it():
    with pytest.raises(ValueError, match="Invalid beta parameter at index 0: 0"):
        AdamWScheduleFree(params(), betas=(0.0, 0.999))
    with pytest.raises(ValueError, match="Momentum must be between 0 and 1 exclusive"):
        SGDScheduleFree(params(), momentum=0.0)


@pytest.mark.parametrize("name", NAMES)
def test_master_weights_move_the_master_and_round_the_parameter_once(name):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    bf16 = ml_dtypes.bfloat16
    low = [Parameter(np.asarray(p).astype(bf16)) for p in params(np.float32)]
    ps = [Parameter(np.asarray(p).astype(np.float32)) for p in low]
    opt = getattr(numoptim, name)(low, **KWARGS[name], master_weights=True)
    ref = getattr(numoptim, name)(ps, **KWARGS[name])  # float32, fed the upcast grads
    opt.train()
    ref.train()
    for step in range(4):
        for p, q in zip(low, ps):
            p.grad = gradient(step, 0, 0, p.size, np.float32).astype(bf16)
            q.grad = p.grad.astype(np.float32)
        opt.step()
        ref.step()
    for mode in ("train", "eval"):
        if mode == "eval":
            x = opt.eval_params()
            opt.eval()
            ref.eval()
            for a, p in zip(x, low):
                np.testing.assert_array_equal(a, p)
        for p, q in zip(low, ps):
            master = opt.state[p]["master_param"]
            np.testing.assert_array_equal(master, q)  # the float32 run, exactly
            np.testing.assert_array_equal(p, master.astype(bf16))


# ------------------------------------------------------------------ against schedulefree


def _oracle():
    torch = pytest.importorskip("torch")
    schedulefree = pytest.importorskip("schedulefree")
    return torch, schedulefree


def _theirs(torch, schedulefree, name, dtype=np.float64):
    ps = [torch.nn.Parameter(torch.from_numpy(np.array(p))) for p in params(dtype)]
    opt = getattr(schedulefree, name)(groups(ps, name), **KWARGS[name])
    return opt, ps


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", NAMES)
def test_train_eval_and_steps_follow_schedulefree(name, dtype):
    torch, schedulefree = _oracle()
    rtol = 1e-13 if dtype == np.float64 else 2e-6
    theirs, tp = _theirs(torch, schedulefree, name, dtype)
    ps = params(dtype)
    ours = getattr(numoptim, name)(groups(ps, name), **KWARGS[name])
    for cycle in range(3):  # train 4 steps, eval, repeatedly
        theirs.train()
        ours.train()
        for step in range(4 * cycle, 4 * cycle + 4):
            set_grads(ps, step, dtype)
            for t, p in zip(tp, ps):
                t.grad = torch.from_numpy(p.grad.copy())
            theirs.step()
            ours.step()
        theirs.eval()
        ours.eval()
        for t, p in zip(tp, ps):
            np.testing.assert_allclose(p, t.detach().numpy(), rtol=rtol, atol=rtol)
    for g_t, g_o in zip(theirs.param_groups, ours.param_groups):
        for key, value in g_t.items():
            if key != "params":
                assert g_o[key] == pytest.approx(value, rel=1e-15), key


@pytest.mark.torch
@pytest.mark.parametrize("name", NAMES)
def test_state_dicts_load_both_ways_with_schedulefree(name):
    torch, schedulefree = _oracle()
    theirs, tp = _theirs(torch, schedulefree, name)
    theirs.train()
    ps = params()
    for step in range(3):
        set_grads(ps, step)
        for t, p in zip(tp, ps):
            t.grad = torch.from_numpy(p.grad.copy())
        theirs.step()
    # schedulefree -> numoptim: tensors become arrays; the two continue alike.
    saved = theirs.state_dict()
    converted = {
        "state": {
            i: {k: v.numpy().copy() for k, v in s.items()} for i, s in saved["state"].items()
        },
        "param_groups": saved["param_groups"],
    }
    for t, p in zip(tp, ps):
        p[...] = t.detach().numpy()
    ours = getattr(numoptim, name)(groups(ps, name), **KWARGS[name])
    ours.load_state_dict(converted)
    assert [g["train_mode"] for g in ours.param_groups] == [True, True]
    for step in range(3, 6):
        set_grads(ps, step)
        for t, p in zip(tp, ps):
            t.grad = torch.from_numpy(p.grad.copy())
        theirs.step()
        ours.step()
    for t, p in zip(tp, ps):
        np.testing.assert_allclose(p, t.detach().numpy(), rtol=1e-13, atol=1e-15)
    # numoptim -> schedulefree.
    mine = ours.state_dict()
    back = {
        "state": {
            i: {k: torch.from_numpy(np.array(v)) for k, v in s.items()}
            for i, s in mine["state"].items()
        },
        "param_groups": mine["param_groups"],
    }
    other, op = _theirs(torch, schedulefree, name)
    other.load_state_dict(back)
    for t, p in zip(op, ps):
        t.data.copy_(torch.from_numpy(np.array(p)))
    other.eval()
    ours.eval()
    for t, p in zip(op, ps):
        np.testing.assert_allclose(p, t.detach().numpy(), rtol=1e-13, atol=1e-15)
