"""LBFGS against torch 2.13 (golden fixtures and live), and its contract.

Tolerances. Least squares in float64 agrees with torch to rounding (measured 7e-16),
so it uses conftest's 1e-12. Elsewhere the comparison is of whole trajectories, and
the problem amplifies last-bit differences (torch fuses p + t*d into one FMA and sums
dot products in MKL's order, numoptim in NumPy's pairwise order): through Rosenbrock's
curved valley a 1e-16 difference at the first closure call grows to 1.3e-10 after 25 calls
with the strong-Wolfe search (measured), so Rosenbrock float64 runs use 1e-9. In
float32 the same growth starts from 6e-8: measured worst 3e-6 (loss) and 3e-5 relative
(a parameter near 0.001) over the runs of LBFGS_RUNS, so float32 uses 1e-4 relative
with a 1e-5 absolute floor. The float32 torch run is as far from the float64 one as
numoptim's is, and both are 10 to 30 times farther than they are from each other.
"""

from __future__ import annotations

import copy

import numoptim
import numpy as np
import pytest
from conftest import TOLERANCE, load_golden
from harness_structured import (
    LBFGS_CASES,
    LBFGS_RUNS,
    NumpyBackend,
    TorchBackend,
    lbfgs_problem,
    lbfgs_run_id,
    run_lbfgs,
)
from registry import INVALID

RUN_IDS = [lbfgs_run_id(*run) for run in LBFGS_RUNS]


def tolerance(problem: str, dtype: str) -> tuple[float, float]:
    """(rtol, atol) of a run, as justified in the module docstring."""
    if dtype == "float32":
        return 1e-4, 1e-5
    if problem == "rosenbrock":
        return 1e-9, 1e-12
    return TOLERANCE[np.dtype(np.float64)], TOLERANCE[np.dtype(np.float64)]


@pytest.fixture(scope="module")
def golden():
    return load_golden("golden_LBFGS.npz")


def state_as_arrays(state: dict) -> dict:
    """numoptim's LBFGS state as stored in the fixtures (lists stacked, None as NaN)."""
    out = {}
    for key, value in state.items():
        if isinstance(value, list):
            if key == "al":
                out[key] = np.array([np.nan if v is None else float(v) for v in value])
            elif value:
                out[key] = np.stack([np.asarray(v) for v in value])
            else:
                out[key] = np.zeros((0,))
        elif hasattr(value, "numpy"):
            out[key] = value.numpy()
        else:
            out[key] = np.array(value)
    return out


# State entries compared by value only while a run is away from the solution: once
# the least-squares runs converge (within their first step), y = g - g_prev and
# s = t * d are rounding noise and ro = 1 / (y . s) reaches 1e7, in torch as here.
NOISE_AT_CONVERGENCE = (
    "state/d",
    "state/prev_flat_grad",
    "state/old_dirs",
    "state/old_stps",
    "state/ro",
    "state/al",
    "state/H_diag",
    "state/t",
)


def compare_runs(
    actual: dict, expected: dict, rtol: float, atol: float, converged: bool = False
) -> None:
    """Every closure loss, returned loss, parameter and state entry; counters exactly."""
    assert actual.keys() == expected.keys()
    for key in sorted(expected):
        a, e = np.asarray(actual[key]), np.asarray(expected[key])
        assert a.shape == e.shape, f"{key}: shape {a.shape} != {e.shape}"
        if key.endswith(("func_evals", "n_iter")):
            assert a == e, key
        elif converged and key in NOISE_AT_CONVERGENCE:
            continue
        elif key.startswith("state/"):
            # The state is made of differences (y = g - g_prev, s = t d near the
            # solution), their dot products (ro = 1/(y.s), al) and the gradient where it
            # is near zero: quantities whose relative error cancellation magnifies. Each
            # element is compared at the scale of its array's largest element.
            scale = np.nanmax(np.abs(e)) if np.any(np.isfinite(e)) else 0.0
            np.testing.assert_allclose(
                a, e, rtol=rtol, atol=atol + rtol * scale, err_msg=key, equal_nan=True
            )
        else:
            np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, err_msg=key, equal_nan=True)


def numoptim_results(problem, case, dtype, steps) -> dict:
    opt, params, calls, returned = run_lbfgs(
        NumpyBackend(), problem, LBFGS_CASES[case], np.dtype(dtype), steps=steps
    )
    out = {"calls": calls, "returned": returned}
    out.update({f"p{j}": np.array(p) for j, p in enumerate(params)})
    out.update({f"state/{k}": v for k, v in state_as_arrays(opt.state_dict()["state"][0]).items()})
    return out


@pytest.mark.parametrize("run", LBFGS_RUNS, ids=RUN_IDS)
def test_matches_torch_fixture(run, golden):
    prefix = lbfgs_run_id(*run) + "/"
    expected = {k[len(prefix) :]: v for k, v in golden.items() if k.startswith(prefix)}
    assert expected, "missing fixture; run tests/fixtures/make_structured_fixtures.py"
    compare_runs(
        numoptim_results(*run),
        expected,
        *tolerance(run[0], run[2]),
        converged=run[0] == "least_squares",
    )


@pytest.mark.torch
@pytest.mark.parametrize("run", LBFGS_RUNS, ids=RUN_IDS)
def test_matches_torch_live(run):
    pytest.importorskip("torch")
    problem, case, dtype, steps = run
    opt, params, calls, returned = run_lbfgs(
        TorchBackend(), problem, LBFGS_CASES[case], np.dtype(dtype), steps=steps
    )
    expected = {"calls": calls, "returned": returned}
    expected.update({f"p{j}": p.detach().numpy() for j, p in enumerate(params)})
    state = state_as_arrays(opt.state_dict()["state"][0])
    expected.update({f"state/{k}": v for k, v in state.items()})
    compare_runs(
        numoptim_results(*run),
        expected,
        *tolerance(problem, dtype),
        converged=problem == "least_squares",
    )


def make(problem="rosenbrock", dtype=np.float64, **kwargs):
    init, f = lbfgs_problem(problem, dtype)
    params = [numoptim.Parameter(v.copy()) for v in init]

    def closure():
        loss, grads = f([np.array(p) for p in params])
        for p, g in zip(params, grads):
            p.grad = g
        return loss

    return numoptim.LBFGS(params, **kwargs), params, closure


# ------------------------------------------------------------------- contract


@pytest.mark.parametrize(
    "kwargs,error,message",
    [(k, e, m) for name, k, e, m in INVALID if name == "LBFGS"],
)
def test_invalid_hyperparameters(kwargs, error, message):
    with pytest.raises(error) as info:
        numoptim.LBFGS([numoptim.Parameter(np.zeros(3))], **kwargs)
    assert str(info.value).startswith(message)


def test_one_group_only():
    a, b = numoptim.Parameter(np.zeros(2)), numoptim.Parameter(np.zeros(2))
    with pytest.raises(
        ValueError,
        match=r"^LBFGS doesn't support per-parameter options "
        r"\(parameter groups\)$",
    ):
        numoptim.LBFGS([{"params": [a]}, {"params": [b], "lr": 0.1}])


def test_defaults_and_group_keys():
    opt, _, _ = make()
    assert opt.defaults == {
        "lr": 1,
        "max_iter": 20,
        "max_eval": 25,
        "tolerance_grad": 1e-7,
        "tolerance_change": 1e-9,
        "history_size": 100,
        "line_search_fn": None,
    }
    # torch's LBFGS groups carry no 'differentiable', 'foreach' or 'maximize' key.
    assert set(opt.param_groups[0]) == set(opt.defaults) | {"params"}
    assert make(max_iter=9)[0].defaults["max_eval"] == 11


def test_unknown_line_search_raises_at_step_and_leaves_params():
    opt, params, closure = make(line_search_fn="backtracking")
    before = [np.array(p) for p in params]
    with pytest.raises(RuntimeError, match=r"^only 'strong_wolfe' is supported$"):
        opt.step(closure)
    for p, b in zip(params, before):
        np.testing.assert_array_equal(p, b)


def test_closure_is_required():
    opt, _, _ = make()
    with pytest.raises(TypeError):
        opt.step()


def test_returns_the_first_loss_object():
    opt, _, closure = make()
    first = []

    def recording():
        loss = np.array(closure())  # a 0-d array is returned unchanged
        first.append(loss)
        return loss

    assert opt.step(recording) is first[0]
    assert len(first) > 1


def test_state_lives_under_the_first_parameter_with_torch_keys():
    opt, params, closure = make(history_size=3, max_iter=7)
    opt.step(closure)
    opt.step(closure)
    assert list(opt.state) == [params[0]]
    state = opt.state[params[0]]
    assert set(state) == {
        "func_evals",
        "n_iter",
        "d",
        "t",
        "old_dirs",
        "old_stps",
        "ro",
        "H_diag",
        "prev_flat_grad",
        "prev_loss",
        "al",
    }
    assert isinstance(state["func_evals"], int) and isinstance(state["n_iter"], int)
    assert state["n_iter"] == 14
    assert len(state["old_dirs"]) == len(state["old_stps"]) == len(state["ro"]) == 3
    assert len(state["al"]) == 3 and isinstance(state["prev_loss"], float)
    assert state["d"].shape == (5,) and state["prev_flat_grad"].shape == (5,)


def test_optimal_start_returns_at_once():
    x = numoptim.Parameter(np.ones(4))

    def closure():
        x.grad = np.zeros(4)
        return 0.0

    opt = numoptim.LBFGS([x])
    assert opt.step(closure) == 0.0
    np.testing.assert_array_equal(x, np.ones(4))
    assert opt.state[x] == {"func_evals": 1, "n_iter": 0}


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_none_grad_counts_as_zero(line_search_fn):
    # A parameter without a gradient keeps its place in the flat vector and never moves.
    init, f = lbfgs_problem("least_squares", np.float64)
    params = [numoptim.Parameter(v.copy()) for v in init]
    idle = numoptim.Parameter(np.arange(4.0))
    opt = numoptim.LBFGS([params[0], idle, params[1]], line_search_fn=line_search_fn)

    def closure():
        loss, grads = f([np.array(p) for p in params])
        params[0].grad, params[1].grad = grads
        return loss

    reference, ref_params, ref_closure = make("least_squares", line_search_fn=line_search_fn)
    # The inserted zeros only change how BLAS blocks its sums: agreement to rounding.
    for _ in range(2):
        np.testing.assert_allclose(opt.step(closure), reference.step(ref_closure), rtol=1e-12)
    np.testing.assert_array_equal(idle, np.arange(4.0))
    assert opt.state[params[0]]["d"].shape == (16,)
    np.testing.assert_array_equal(opt.state[params[0]]["d"][9:13], 0.0)
    for p, r in zip(params, ref_params):
        np.testing.assert_allclose(p, r, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", [0, 1, 3])
def test_state_dict_round_trip_resumes_bit_identically(case, dtype):
    opt, params, closure = make(dtype=dtype, **LBFGS_CASES[case])
    opt.step(closure)
    saved = copy.deepcopy(opt.state_dict())

    resumed, resumed_params, resumed_closure = make(dtype=dtype, **LBFGS_CASES[case])
    for p, q in zip(resumed_params, params):
        p[...] = q
    resumed.load_state_dict(saved)
    for _ in range(2):
        assert resumed.step(resumed_closure) == opt.step(closure)
    for p, q in zip(resumed_params, params):
        np.testing.assert_array_equal(p, q)
    a, b = opt.state[params[0]], resumed.state[resumed_params[0]]
    assert a.keys() == b.keys()
    np.testing.assert_array_equal(a["d"], b["d"])
    assert a["func_evals"] == b["func_evals"] and a["n_iter"] == b["n_iter"]


def test_pickle_round_trip():
    import pickle

    opt, params, closure = make(history_size=4)
    opt.step(closure)
    clone = pickle.loads(pickle.dumps(opt))
    assert repr(clone) == repr(opt)
    assert (
        clone.state[clone.param_groups[0]["params"][0]]["n_iter"] == opt.state[params[0]]["n_iter"]
    )


def test_array_lr_counts_as_its_value():
    a, pa, ca = make(lr=np.array(0.5), max_iter=7)
    b, pb, cb = make(lr=0.5, max_iter=7)
    assert a.step(ca) == b.step(cb)
    for p, q in zip(pa, pb):
        np.testing.assert_array_equal(p, q)


@pytest.mark.torch
def test_repr_matches_torch():
    torch = pytest.importorskip("torch")
    kwargs = {"lr": 0.5, "history_size": 7, "line_search_fn": "strong_wolfe"}
    ours, _, _ = make(**kwargs)
    theirs = torch.optim.LBFGS([torch.nn.Parameter(torch.zeros(3))], **kwargs)
    assert repr(ours) == repr(theirs)
    assert repr(make()[0]) == repr(torch.optim.LBFGS([torch.nn.Parameter(torch.zeros(3))]))


@pytest.mark.torch
@pytest.mark.parametrize("case", [0, 1])
def test_loads_torch_state_dict_and_continues_like_torch(case):
    # A torch state dict with its tensors turned into arrays loads, and the next step
    # matches torch's next step.
    torch = pytest.importorskip("torch")
    kwargs = LBFGS_CASES[case]
    theirs, their_params, _, _ = run_lbfgs(
        TorchBackend(), "rosenbrock", kwargs, np.float64, steps=1
    )

    def to_numpy(value):
        if isinstance(value, torch.Tensor):
            return value.detach().numpy().copy()
        if isinstance(value, list):
            return [to_numpy(v) for v in value]
        return value

    sd = theirs.state_dict()
    converted = {
        "state": {i: {k: to_numpy(v) for k, v in s.items()} for i, s in sd["state"].items()},
        "param_groups": copy.deepcopy(sd["param_groups"]),
    }
    ours, params, closure = make("rosenbrock", **kwargs)
    for p, q in zip(params, their_params):
        p[...] = q.detach().numpy()
    ours.load_state_dict(converted)
    _, their_params, _, _ = run_lbfgs(
        TorchBackend(),
        "rosenbrock",
        kwargs,
        np.float64,
        steps=1,
        optimizer=theirs,
        params=their_params,
    )
    ours.step(closure)
    for p, q in zip(params, their_params):
        np.testing.assert_allclose(p, q.detach().numpy(), rtol=1e-9, atol=1e-12)
