"""Adafactor against torch 2.13 (golden fixtures and live), and its contract.

Every element of every parameter and state entry is compared at conftest's
tolerances: measured worst differences are 2e-16 (float64) and 2e-7 (float32).
"""

from __future__ import annotations

import copy
import pickle

import numoptim
import numpy as np
import pytest
from conftest import assert_close, load_golden
from harness_structured import (
    ADAFACTOR_CASES,
    ADAFACTOR_SHAPES,
    NumpyBackend,
    TorchBackend,
    matrix_gradient,
    run_matrix_case,
)
from registry import INVALID

CASES = list(enumerate(ADAFACTOR_CASES))


@pytest.fixture(scope="module")
def golden():
    return load_golden("golden_Adafactor.npz")


def results(opt, params, to_numpy) -> dict:
    out = {}
    for g, group in enumerate(params):
        for j, p in enumerate(group):
            out[f"p{g}.{j}"] = to_numpy(p)
    for index, entries in opt.state_dict()["state"].items():
        for key, value in entries.items():
            out[f"s{index}/{key}"] = to_numpy(value)
    return out


def compare(actual: dict, expected: dict, dtype) -> None:
    assert actual.keys() == expected.keys(), "parameters or state keys differ from torch's"
    for key in sorted(expected):
        if key.endswith("/step"):
            assert actual[key].dtype == np.float32 and actual[key].shape == ()
            assert actual[key] == expected[key], key
        else:
            assert_close(actual[key], expected[key], dtype=np.dtype(dtype), what=key)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("index,kwargs", CASES, ids=[f"Adafactor-{i}" for i, _ in CASES])
def test_matches_torch_fixture(index, kwargs, dtype, golden):
    opt, params = run_matrix_case(
        NumpyBackend(), "Adafactor", kwargs, np.dtype(dtype), ADAFACTOR_SHAPES
    )
    prefix = f"{index}/{dtype}/"
    expected = {k[len(prefix) :]: v for k, v in golden.items() if k.startswith(prefix)}
    compare(results(opt, params, np.array), expected, dtype)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("index,kwargs", CASES, ids=[f"Adafactor-{i}" for i, _ in CASES])
def test_matches_torch_live(index, kwargs, dtype):
    torch = pytest.importorskip("torch")
    theirs = run_matrix_case(TorchBackend(), "Adafactor", kwargs, np.dtype(dtype), ADAFACTOR_SHAPES)
    expected = results(
        *theirs, lambda t: t.detach().numpy().copy() if isinstance(t, torch.Tensor) else np.array(t)
    )
    ours = run_matrix_case(NumpyBackend(), "Adafactor", kwargs, np.dtype(dtype), ADAFACTOR_SHAPES)
    compare(results(*ours, np.array), expected, dtype)


@pytest.mark.parametrize(
    "kwargs,error,message", [(k, e, m) for name, k, e, m in INVALID if name == "Adafactor"]
)
def test_invalid_hyperparameters(kwargs, error, message):
    with pytest.raises(error) as info:
        numoptim.Adafactor([numoptim.Parameter(np.zeros((2, 3)))], **kwargs)
    assert str(info.value).startswith(message)


def test_defaults_and_group_keys():
    opt = numoptim.Adafactor([numoptim.Parameter(np.zeros(3))])
    assert opt.defaults == {
        "lr": 1e-2,
        "beta2_decay": -0.8,
        "eps": (None, 1e-3),
        "d": 1.0,
        "weight_decay": 0.0,
        "foreach": None,
        "maximize": False,
    }


def test_state_shapes_factor_the_last_two_dimensions():
    shapes = [(4, 5), (2, 3, 6), (7,), ()]
    params = [numoptim.Parameter(np.ones(s)) for s in shapes]
    opt = numoptim.Adafactor(params)
    for p in params:
        p.grad = np.ones(p.shape)
    opt.step()
    assert opt.state[params[0]]["row_var"].shape == (4, 1)
    assert opt.state[params[0]]["col_var"].shape == (1, 5)
    assert opt.state[params[1]]["row_var"].shape == (2, 3, 1)
    assert opt.state[params[1]]["col_var"].shape == (2, 1, 6)
    assert set(opt.state[params[2]]) == {"step", "variance"}
    assert opt.state[params[2]]["variance"].shape == (7,)
    assert opt.state[params[3]]["variance"].shape == ()
    assert set(opt.state[params[0]]) == {"step", "row_var", "col_var"}


def test_none_grad_is_skipped_and_gets_no_state():
    a, b = numoptim.Parameter(np.ones((3, 2))), numoptim.Parameter(np.ones((2, 2)))
    opt = numoptim.Adafactor([a, b])
    a.grad = np.full((3, 2), 0.5)
    opt.step()
    assert not opt.state.get(b)
    np.testing.assert_array_equal(b, np.ones((2, 2)))
    assert opt.state[a]["step"] == 1


def test_maximize_is_minimizing_the_negated_gradient():
    runs = []
    for maximize in (False, True):
        p = numoptim.Parameter(np.linspace(-1, 1, 12).reshape(3, 4))
        opt = numoptim.Adafactor([p], lr=0.05, maximize=maximize)
        for step in range(5):
            g = matrix_gradient(step, 0, 0, (3, 4), np.float64)
            p.grad = -g if maximize else g
            opt.step()
        runs.append(np.array(p))
    np.testing.assert_array_equal(runs[0], runs[1])


def test_sparse_gradient_is_rejected_before_any_change():
    p = numoptim.Parameter(np.ones((4, 2)))
    opt = numoptim.Adafactor([p])
    p.grad = numoptim.RowSparseGrad([1], np.ones((1, 2)), (4, 2))
    with pytest.raises(RuntimeError, match="^Adafactor does not support sparse gradients$"):
        opt.step()
    np.testing.assert_array_equal(p, np.ones((4, 2)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_state_dict_round_trip_resumes_bit_identically(dtype):
    kwargs = ADAFACTOR_CASES[1]
    opt, params = run_matrix_case(
        NumpyBackend(), "Adafactor", kwargs, dtype, ADAFACTOR_SHAPES, steps=6
    )
    saved = copy.deepcopy(opt.state_dict())
    copies = [[numoptim.Parameter(np.array(p)) for p in group] for group in params]
    resumed = numoptim.Adafactor(
        [{"params": copies[0]}, {"params": copies[1], "lr": 0.3}], **kwargs
    )
    resumed.load_state_dict(saved)
    assert resumed.param_groups[1]["lr"] == opt.param_groups[1]["lr"]
    for o, ps in ((opt, params), (resumed, copies)):
        run_matrix_case(
            NumpyBackend(),
            "Adafactor",
            kwargs,
            dtype,
            ADAFACTOR_SHAPES,
            steps=5,
            optimizer=o,
            params=ps,
            first_step=6,
        )
    for group, copied in zip(params, copies):
        for p, q in zip(group, copied):
            np.testing.assert_array_equal(p, q)
    clone = pickle.loads(pickle.dumps(resumed))
    assert repr(clone) == repr(resumed)


@pytest.mark.torch
def test_repr_matches_torch():
    torch = pytest.importorskip("torch")
    groups = [
        {"params": [numoptim.Parameter(np.zeros((2, 2)))]},
        {"params": [numoptim.Parameter(np.zeros(3))], "lr": 0.5, "eps": (1e-30, 1e-3)},
    ]
    their_groups = [
        {"params": [torch.nn.Parameter(torch.zeros(2, 2))]},
        {"params": [torch.nn.Parameter(torch.zeros(3))], "lr": 0.5, "eps": (1e-30, 1e-3)},
    ]
    kwargs = {"weight_decay": 0.1, "maximize": True}
    assert repr(numoptim.Adafactor(groups, **kwargs)) == repr(
        torch.optim.Adafactor(their_groups, **kwargs)
    )
