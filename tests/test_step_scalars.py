"""NAdam, RAdam, ASGD and Rprop beyond the registry's golden runs.

Their step-dependent scalars (NAdam's mu_t and mu_product, RAdam's rectification, ASGD's
eta and mu) belong to each tensor, so tensors of one group that started at different
steps must each follow their own schedule; the 0-d float32 state must survive a
state_dict round trip as 0-d float32; special values must behave as in torch.
"""

from __future__ import annotations

import copy

import numoptim
import numpy as np
import pytest
from conftest import assert_close
from harness import hashed_values, make_optimizer
from registry import ELEMENTWISE, GROUP_STEP

# One configuration each whose per-tensor scalars change within the steps run here:
# RAdam's rho_t passes 5 at step 6, ASGD averages from step 7 (t0 = 5).
CONFIGS = {
    "NAdam": {"lr": 0.01, "weight_decay": 0.1},
    "RAdam": {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True},
    "ASGD": {"lr": 0.05, "lambd": 0.1, "t0": 5, "weight_decay": 0.05},
    "Rprop": {"lr": 0.01, "step_sizes": (1e-3, 0.02)},
}
SCALAR_STATE = {
    "NAdam": ("step", "mu_product"),
    "RAdam": ("step",),
    "ASGD": ("step", "eta", "mu"),
    "Rprop": ("step",),
}
SIZES = (37, 20, 9)
STEPS = 16
LATE_GRAD = 4  # the second tensor has no gradient before this step
APPENDED_AT = 7  # the third tensor joins the group at this step


def _grad(step, index, n, dtype):
    return hashed_values(50_000 + 101 * step + index, n, dtype, scale=2.0)


def _staggered_run(make_param, make_optimizer, set_grad, dtype, on_step=None):
    """Steps a group whose tensors start at three different steps; returns the params."""
    values = [hashed_values(700 + i, n, dtype) for i, n in enumerate(SIZES)]
    params = [make_param(v) for v in values]
    opt = make_optimizer(params[:2])
    for step in range(STEPS):
        if step == APPENDED_AT:
            opt.param_groups[0]["params"].append(params[2])
        live = params if step >= APPENDED_AT else params[:2]
        for i, p in enumerate(live):
            late = i == 1 and step < LATE_GRAD
            set_grad(p, None if late else _grad(step, i, SIZES[i], dtype))
        opt.step()
        if on_step is not None:
            on_step(step, opt, params)
    return opt, params


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_tensors_at_different_steps_in_one_group_match_torch(name, dtype):
    torch = pytest.importorskip("torch")
    kwargs = CONFIGS[name]

    def torch_grad(p, g):
        p.grad = None if g is None else torch.from_numpy(g)

    expected_params = []

    def record(step, opt, params):
        expected_params.append([p.detach().numpy().copy() for p in params])

    t_opt, _ = _staggered_run(
        lambda v: torch.nn.Parameter(torch.from_numpy(v.copy())),
        lambda ps: getattr(torch.optim, name)(ps, **kwargs),
        torch_grad,
        dtype,
        on_step=record,
    )

    def numpy_grad(p, g):
        p.grad = g

    def compare(step, opt, params):
        for i, (p, e) in enumerate(zip(params, expected_params[step])):
            assert_close(p, e, what=f"step {step} param {i}")

    n_opt, _ = _staggered_run(
        lambda v: numoptim.Parameter(v.copy()),
        lambda ps: make_optimizer(name, ps, **kwargs),
        numpy_grad,
        dtype,
        on_step=compare,
    )
    t_state = t_opt.state_dict()["state"]
    n_state = n_opt.state_dict()["state"]
    assert sorted(n_state) == sorted(t_state)
    for index, entries in t_state.items():
        assert sorted(n_state[index]) == sorted(entries)
        for key, value in entries.items():
            expected = value.numpy()
            actual = n_state[index][key]
            if key in SCALAR_STATE[name]:
                # 0-d float32 state is computed in double and rounded as torch does.
                assert actual.dtype == np.float32 and actual.shape == ()
                assert actual == expected, f"state {index} {key}: {actual} != {expected}"
            else:
                assert_close(actual, expected, what=f"state {index} {key}")
    # The tensors really were at different steps.
    steps = [float(n_state[i]["step"]) for i in range(3)]
    assert steps == [STEPS, STEPS - LATE_GRAD, STEPS - APPENDED_AT]


@pytest.mark.parametrize("name", list(CONFIGS))
def test_state_dict_round_trip_keeps_float32_scalars(name):
    """Resuming from a state_dict continues exactly as an uninterrupted run."""
    kwargs = CONFIGS[name]
    dtype = np.float64

    def run(resume_at=None):
        values = [hashed_values(900 + i, n, dtype) for i, n in enumerate(SIZES[:2])]
        params = [numoptim.Parameter(v) for v in values]
        opt = make_optimizer(name, params, **kwargs)
        for step in range(12):
            if step == resume_at:
                saved = copy.deepcopy(opt.state_dict())
                params = [numoptim.Parameter(np.array(p)) for p in params]
                opt = make_optimizer(name, params, **kwargs)
                opt.load_state_dict(saved)
                for entries in opt.state.values():
                    for key in SCALAR_STATE[name]:
                        assert entries[key].dtype == np.float32 and entries[key].shape == ()
            for i, p in enumerate(params):
                p.grad = _grad(step, i, p.size, dtype)
            opt.step()
        return params

    for resumed, straight in zip(run(resume_at=7), run()):
        np.testing.assert_array_equal(resumed, straight)


@pytest.mark.parametrize("name", ["NAdam", "ASGD"])
def test_python_float_scalar_state_loads_as_float32_array(name):
    """A state dict with Python floats for the 0-d state (older torch) loads and steps."""
    p = numoptim.Parameter(np.ones(5))
    opt = make_optimizer(name, [p], **CONFIGS[name])
    p.grad = np.full(5, 0.5)
    opt.step()
    saved = copy.deepcopy(opt.state_dict())
    for key in SCALAR_STATE[name]:
        saved["state"][0][key] = float(saved["state"][0][key])
    opt.load_state_dict(saved)
    for key in SCALAR_STATE[name]:
        value = opt.state[p][key]
        assert isinstance(value, np.ndarray) and value.dtype == np.float32 and value.ndim == 0
    opt.step()
    assert float(opt.state[p]["step"]) == 2.0


def test_rprop_step_size_starts_at_the_lr_of_the_first_step():
    p = numoptim.Parameter(np.zeros(3, dtype=np.float32))
    opt = numoptim.Rprop([p], lr=0.1)
    opt.param_groups[0]["lr"] = 0.3  # before any state exists: this lr is used
    p.grad = np.array([1.0, -1.0, 0.0], dtype=np.float32)
    opt.step()
    np.testing.assert_array_equal(opt.state[p]["step_size"], np.float32(0.3))
    np.testing.assert_array_equal(p, np.array([-0.3, 0.3, 0.0], dtype=np.float32))
    opt.param_groups[0]["lr"] = 5.0  # afterwards lr changes nothing
    opt.step()  # same gradient: the step sizes grow, except where the gradient is 0
    grown = np.float32(0.3) * np.float32(1.2)
    np.testing.assert_array_equal(
        opt.state[p]["step_size"], np.array([grown, grown, 0.3], dtype=np.float32)
    )


SPECIAL = [0.0, -0.0, np.nan, np.inf, -np.inf, 1e-30, -1e-30, 1e30, 3.0, -2.0]


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_special_values_match_torch(name, dtype):
    """NaN, infinities, signed zeros and tiny/huge gradients give torch's results."""
    torch = pytest.importorskip("torch")
    # Every pair of special values meets as (previous grad, grad), so Rprop sees NaN and
    # infinite products, sign changes and zero products.
    k = len(SPECIAL)
    prev = np.repeat(np.array(SPECIAL, dtype=dtype), k)
    grad = np.tile(np.array(SPECIAL, dtype=dtype), k)
    start = hashed_values(31, k * k, dtype)
    t_p = torch.nn.Parameter(torch.from_numpy(start.copy()))
    n_p = numoptim.Parameter(start.copy())
    t_opt = getattr(torch.optim, name)([t_p], **CONFIGS[name])
    n_opt = make_optimizer(name, [n_p], **CONFIGS[name])
    with np.errstate(all="ignore"):
        for g in (prev, grad, grad[::-1].copy()):
            t_p.grad = torch.from_numpy(g.copy())
            n_p.grad = g.copy()
            t_opt.step()
            n_opt.step()
            expected = t_p.detach().numpy()
            np.testing.assert_array_equal(np.isnan(n_p), np.isnan(expected))
            assert_close(n_p, expected, what=name)


@pytest.mark.torch
@pytest.mark.parametrize("name", list(CONFIGS))
def test_repr_matches_torch(name):
    torch = pytest.importorskip("torch")
    t_params = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(3))]
    n_params = [numoptim.Parameter(np.zeros(2)), numoptim.Parameter(np.zeros(3))]
    assert repr(make_optimizer(name, n_params)) == repr(getattr(torch.optim, name)(t_params))
    kwargs = CONFIGS[name]
    t_opt = getattr(torch.optim, name)(
        [{"params": t_params[:1]}, {"params": t_params[1:], "lr": 0.5}], **kwargs
    )
    n_opt = make_optimizer(
        name, [{"params": n_params[:1]}, {"params": n_params[1:], "lr": 0.5}], **kwargs
    )
    assert repr(n_opt) == repr(t_opt)
    assert list(n_opt.param_groups[0]) == list(t_opt.param_groups[0])  # key order too


@pytest.mark.parametrize("name", list(CONFIGS))
def test_pickled_optimizer_continues_as_the_original(name):
    """An unpickled optimizer (whose arrays carry their own dtype objects) steps on."""
    import pickle

    p = numoptim.Parameter(hashed_values(5, 33, np.float64))
    opt = make_optimizer(name, [p], **CONFIGS[name])
    p.grad = _grad(0, 0, 33, np.float64)
    opt.step()
    clone = pickle.loads(pickle.dumps(opt))
    q = clone.param_groups[0]["params"][0]
    for step in range(1, 9):
        p.grad = _grad(step, 0, 33, np.float64)
        q.grad = p.grad.copy()
        opt.step()
        clone.step()
    np.testing.assert_array_equal(q, p)
    for key, value in opt.state[p].items():
        np.testing.assert_array_equal(clone.state[q][key], value)
        assert clone.state[q][key].dtype == value.dtype


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_one_group_at_interleaved_steps_steps_each_tensor_as_alone(name):
    # The native step reuses one tensor's step constants for the next tensor whose
    # scalar state is the same: tensors at steps 3, 3, 1, 3, 1, 1, listed in that order,
    # must each step exactly as in an optimizer of their own.
    kwargs = {"momentum": 0.9} if name == "SGD" else {}
    if name == "Lamb":
        # Its default clipping divides every gradient by the norm of all of them: a
        # tensor alone is clipped by its own norm. The step constants are what this
        # test is about.
        kwargs = {"max_grad_norm": None}
    sizes = (5, 3, 4, 6, 2, 7)
    first_steps = (3, 3, 1, 3, 1, 1)
    values = [hashed_values(900 + i, n, np.float32) for i, n in enumerate(sizes)]
    together = [numoptim.Parameter(v.copy()) for v in values]
    alone = [numoptim.Parameter(v.copy()) for v in values]
    group = make_optimizer(name, together, **kwargs)
    singles = [make_optimizer(name, [p], **kwargs) for p in alone]
    for step in range(4):
        for i, (a, b) in enumerate(zip(together, alone)):
            # Tensor i gets gradients from step 3 - first_steps[i] on: the group's
            # tensors then sit at different steps in an interleaved order.
            g = _grad(step, i, sizes[i], np.float32) if step >= 3 - first_steps[i] else None
            a.grad = b.grad = g
        group.step()
        for single, p in zip(singles, alone):
            # A group's step count (GROUP_STEP) advances at every step, with or without
            # gradients, so its single optimizers step every time too.
            if p.grad is not None or name in GROUP_STEP:
                single.step()
        for i, (a, b) in enumerate(zip(together, alone)):
            np.testing.assert_array_equal(a, b, err_msg=f"{name} step {step} param {i}")
            for key, value in singles[i].state.get(b, {}).items():
                np.testing.assert_array_equal(group.state[a][key], value, err_msg=key)
