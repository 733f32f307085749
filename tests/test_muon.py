"""Muon against torch 2.13 (golden fixtures and live), and its contract.

torch runs the Newton-Schulz iteration in bfloat16; numoptim runs it in float32 by
default, or in the parameter's dtype, or in emulated bfloat16 (see Muon's docstring).
Tolerances, from measurements over the 20 steps of the layout (every element compared,
relative to max(1, |p|)):

- ``ns_dtype="param"`` against torch's own iteration run in the parameter's dtype
  (torch with the bfloat16 cast removed; fixtures prefix "param/"): measured 2.4e-7
  (float32) and 6.7e-16 (float64), so conftest's 2e-6 / 1e-12.
- ``ns_dtype="bfloat16"`` against real torch: measured 1.2e-4. A bfloat16 ulp is 2^-8
  of an update element; where float32 sums accumulated in another order (OpenBLAS vs
  torch's kernel) fall on the other side of a rounding boundary, that element moves by
  lr * |O_ij| / 256 per step, and such flips add up over 20 steps. Tested at 5e-4;
  a wrong coefficient, sign or lr adjustment moves elements by 1e-2 or more.
- ``ns_dtype="float32"`` (the default) against real torch: measured 2.1e-3, the
  accumulated effect of the bfloat16 rounding torch does and numoptim does not. Tested
  at 5e-3, which still fails for any wrong update (1e-2 and more).
"""

from __future__ import annotations

import copy
import pickle

import numoptim
import numpy as np
import pytest
from conftest import TOLERANCE, load_golden
from harness_structured import MUON_CASES, MUON_SHAPES, NumpyBackend, TorchBackend, run_matrix_case
from registry import INVALID

CASES = list(enumerate(MUON_CASES))
IDS = [f"Muon-{i}" for i, _ in CASES]
# ns_dtype -> (fixture prefix, tolerance or None for conftest's)
MODES = {"param": ("param", None), "bfloat16": ("bf16", 5e-4), "float32": ("bf16", 5e-3)}


class MuonBackend(NumpyBackend):
    def __init__(self, ns_dtype: str):
        super().__init__()
        self.ns_dtype = ns_dtype

    def optimizer(self, name, groups, kwargs):
        return self.lib.Muon(groups, ns_dtype=self.ns_dtype, **kwargs)


def results(opt, params, to_numpy) -> dict:
    out = {}
    for g, group in enumerate(params):
        for j, p in enumerate(group):
            out[f"p{g}.{j}"] = to_numpy(p)
    for index, entries in opt.state_dict()["state"].items():
        for key, value in entries.items():
            out[f"s{index}/{key}"] = to_numpy(value)
    return out


def compare(actual: dict, expected: dict, dtype, tol) -> None:
    assert actual.keys() == expected.keys(), "parameters or state keys differ from torch's"
    for key in sorted(expected):
        a, e = np.asarray(actual[key]), np.asarray(expected[key])
        assert a.shape == e.shape and a.dtype == e.dtype, key
        # The momentum buffer does not pass through Newton-Schulz: conftest's tolerance.
        t = TOLERANCE[np.dtype(dtype)] if tol is None or "momentum_buffer" in key else tol
        np.testing.assert_allclose(a, e, rtol=t, atol=t, err_msg=key)


@pytest.fixture(scope="module")
def golden():
    return load_golden("golden_Muon.npz")


@pytest.mark.parametrize("ns_dtype", list(MODES))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("index,kwargs", CASES, ids=IDS)
def test_matches_torch_fixture(index, kwargs, dtype, ns_dtype, golden):
    source, tol = MODES[ns_dtype]
    prefix = f"{source}/{index}/{dtype}/"
    expected = {k[len(prefix) :]: v for k, v in golden.items() if k.startswith(prefix)}
    ours = run_matrix_case(MuonBackend(ns_dtype), "Muon", kwargs, np.dtype(dtype), MUON_SHAPES)
    compare(results(*ours, np.array), expected, dtype, tol)


@pytest.mark.torch
@pytest.mark.parametrize("ns_dtype", ["bfloat16", "float32"])
@pytest.mark.parametrize("dtype", ["float32"])  # float64 is covered by the fixtures
@pytest.mark.parametrize("index,kwargs", CASES, ids=IDS)
def test_matches_torch_live(index, kwargs, dtype, ns_dtype):
    pytest.importorskip("torch")
    theirs = run_matrix_case(TorchBackend(), "Muon", kwargs, np.dtype(dtype), MUON_SHAPES)
    expected = results(*theirs, lambda t: t.detach().numpy().copy())
    ours = run_matrix_case(MuonBackend(ns_dtype), "Muon", kwargs, np.dtype(dtype), MUON_SHAPES)
    compare(results(*ours, np.array), expected, dtype, MODES[ns_dtype][1])


@pytest.mark.parametrize(
    "kwargs,error,message", [(k, e, m) for name, k, e, m in INVALID if name == "Muon"]
)
def test_invalid_hyperparameters(kwargs, error, message):
    with pytest.raises(error) as info:
        numoptim.Muon([numoptim.Parameter(np.zeros((2, 3)))], **kwargs)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize("shape", [(3,), (2, 3, 4), ()])
def test_only_2d_parameters(shape):
    with pytest.raises(ValueError) as info:
        numoptim.Muon(
            [numoptim.Parameter(np.zeros((2, 2)))] + [numoptim.Parameter(np.zeros(shape))]
        )
    dims = ", ".join(str(n) for n in shape)
    assert str(info.value) == (
        f"Muon only supports 2D parameters whereas we found a parameter with size: "
        f"torch.Size([{dims}])"
    )


def test_invalid_ns_dtype():
    with pytest.raises(ValueError, match="ns_dtype must be one of"):
        numoptim.Muon([numoptim.Parameter(np.zeros((2, 2)))], ns_dtype="float16")


def test_too_many_ns_steps_raise_at_step_before_any_change():
    p = numoptim.Parameter(np.ones((2, 3)))
    opt = numoptim.Muon([p], ns_steps=100)
    p.grad = np.ones((2, 3))
    with pytest.raises(ValueError, match="^Number of steps must be less than 100"):
        opt.step()
    np.testing.assert_array_equal(p, np.ones((2, 3)))


def test_defaults_group_keys_and_state():
    p, q = numoptim.Parameter(np.ones((3, 2))), numoptim.Parameter(np.ones((2, 2)))
    opt = numoptim.Muon([p, q])
    assert opt.defaults == {
        "lr": 1e-3,
        "weight_decay": 0.1,
        "momentum": 0.95,
        "nesterov": True,
        "ns_coefficients": (3.4445, -4.775, 2.0315),
        "eps": 1e-7,
        "ns_steps": 5,
        "adjust_lr_fn": None,
    }
    assert opt.ns_dtype == "float32"
    g = np.arange(6.0).reshape(3, 2)
    p.grad = g.copy()
    opt.step()
    # No `step`; the buffer starts at zeros, so after one step it is (1 - momentum) * g.
    assert set(opt.state[p]) == {"momentum_buffer"}
    np.testing.assert_array_equal(opt.state[p]["momentum_buffer"], (1 - 0.95) * g)
    assert not opt.state.get(q)  # None grad: skipped, no state
    np.testing.assert_array_equal(q, np.ones((2, 2)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_state_dict_round_trip_resumes_bit_identically(dtype):
    kwargs = MUON_CASES[2]
    opt, params = run_matrix_case(
        MuonBackend("float32"), "Muon", kwargs, dtype, MUON_SHAPES, steps=6
    )
    saved = copy.deepcopy(opt.state_dict())
    copies = [[numoptim.Parameter(np.array(p)) for p in group] for group in params]
    resumed = numoptim.Muon([{"params": copies[0]}, {"params": copies[1]}], **kwargs)
    resumed.load_state_dict(saved)
    for o, ps in ((opt, params), (resumed, copies)):
        run_matrix_case(
            NumpyBackend(),
            "Muon",
            kwargs,
            dtype,
            MUON_SHAPES,
            steps=5,
            optimizer=o,
            params=ps,
            first_step=6,
        )
    for group, copied in zip(params, copies):
        for p, q in zip(group, copied):
            np.testing.assert_array_equal(p, q)


def test_pickle_keeps_ns_dtype():
    opt = numoptim.Muon([numoptim.Parameter(np.zeros((2, 2)))], ns_dtype="bfloat16")
    clone = pickle.loads(pickle.dumps(opt))
    assert clone.ns_dtype == "bfloat16" and repr(clone) == repr(opt)


@pytest.mark.torch
def test_repr_matches_torch():
    torch = pytest.importorskip("torch")
    ours = numoptim.Muon(
        [
            {"params": [numoptim.Parameter(np.zeros((2, 2)))]},
            {"params": [numoptim.Parameter(np.zeros((3, 2)))], "lr": 0.5},
        ],
        lr=0.02,
        adjust_lr_fn="match_rms_adamw",
        ns_dtype="bfloat16",
    )
    theirs = torch.optim.Muon(
        [
            {"params": [torch.nn.Parameter(torch.zeros(2, 2))]},
            {"params": [torch.nn.Parameter(torch.zeros(3, 2))], "lr": 0.5},
        ],
        lr=0.02,
        adjust_lr_fn="match_rms_adamw",
    )
    assert repr(ours) == repr(theirs)
