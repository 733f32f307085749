"""numoptim.lr_scheduler against torch 2.13: golden traces, live parity, warnings, errors."""

from __future__ import annotations

import copy
import math
import re
import types
import warnings

import numoptim
import numpy as np
import pytest
from numoptim import lr_scheduler as L
from scheduler_cases import CASES, Factor, Wave, make_optimizer, numoptim_lib, run, torch_lib

GOLDEN = np.load(__file__.rsplit("/", 1)[0] + "/fixtures/schedulers.npz")
RTOL = 1e-12  # the schedules do torch's float64 operations in torch's order

ORDER_MSG = "Detected call of `lr_scheduler.step()` before `optimizer.step()`."
OVERRIDDEN_MSG = "Seems like `optimizer.step()` has been overridden after learning rate"
GET_LR_MSG = "To get the last learning rate computed by the scheduler, please use `get_last_lr()`."


def sgd(lrs=(0.1, 0.03)):
    return (
        make_optimizer("numoptim", "sgd")
        if lrs == (0.1, 0.03)
        else numoptim.SGD([numoptim.Parameter(np.zeros(2))], lr=lrs[0], momentum=0.9)
    )


def compare_traces(actual: dict, expected_of, what: str) -> None:
    for key, value in actual.items():
        expected = expected_of(key)
        if key == "build_warnings":
            assert list(value) == list(expected), f"{what}: {key}"
            continue
        np.testing.assert_allclose(value, expected, rtol=RTOL, atol=0, err_msg=f"{what}: {key}")


# ---------------------------------------------------------------------------- parity


@pytest.mark.parametrize("name", list(CASES))
def test_golden(name):
    out = run(CASES[name], "numoptim", numoptim_lib())
    assert f"{name}/lr" in GOLDEN.files
    expected_keys = {k.split("/", 2)[-1] for k in GOLDEN.files if k.startswith(name + "/")}
    assert set(out) == expected_keys
    compare_traces(out, lambda key: GOLDEN[f"{name}/{key}"], name)


@pytest.mark.torch
@pytest.mark.parametrize("name", list(CASES))
def test_live_torch(name):
    pytest.importorskip("torch")
    expected = run(CASES[name], "torch", torch_lib())
    out = run(CASES[name], "numoptim", numoptim_lib())
    assert set(out) == set(expected)
    compare_traces(out, expected.__getitem__, name)


def _keys(state: dict) -> list:
    """The state_dict's keys in order, with the children's keys nested."""
    return [
        (k, [_keys(child) for child in v] if k == "_schedulers" else None) for k, v in state.items()
    ]


@pytest.mark.torch
@pytest.mark.parametrize("name", [n for n in CASES if not n.endswith("step_epoch")])
def test_state_dict_layout_and_cross_load(name):
    """Same state_dict keys as torch; torch's state_dict, loaded into numoptim, continues
    the schedule exactly as torch does."""
    pytest.importorskip("torch")
    case = CASES[name]

    def drive(opt, sched, steps, start):
        trace = []
        for i in range(start, start + steps):
            opt.step()
            if case.driver == "metrics":
                from scheduler_cases import METRICS

                sched.step(METRICS[i])
            elif case.driver == "float_epoch":
                sched.step(i / 3 + 0.25 * (i % 3))
            else:
                sched.step()
            trace.append([float(g["lr"]) for g in opt.param_groups])
        return trace

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # SequentialLR/chain_first warns
        t_opt = make_optimizer("torch", case.optimizer, case.array_lr, case.preset_initial_lr)
        t_sched = case.build(torch_lib(), t_opt)
        n_opt = make_optimizer("numoptim", case.optimizer, case.array_lr, case.preset_initial_lr)
        n_sched = case.build(numoptim_lib(), n_opt)
    drive(t_opt, t_sched, 10, 0)
    drive(n_opt, n_sched, 10, 0)
    t_state, n_state = t_sched.state_dict(), n_sched.state_dict()
    assert _keys(n_state) == _keys(t_state)

    # Load torch's scheduler state (tensors as arrays) and groups into a fresh numoptim pair.
    def to_numpy(v):
        if hasattr(v, "numpy"):
            return v.detach().numpy().copy()
        if isinstance(v, dict):
            return type(v)({k: to_numpy(x) for k, x in v.items()})  # keeps a Counter
        if isinstance(v, list):
            return [to_numpy(x) for x in v]
        return v

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        n2_opt = make_optimizer("numoptim", case.optimizer, case.array_lr, case.preset_initial_lr)
        n2_sched = case.build(numoptim_lib(), n2_opt)
    for group, t_group in zip(n2_opt.param_groups, t_opt.param_groups):
        for k, v in t_group.items():
            if k != "params":
                v = to_numpy(v)
                if isinstance(group.get(k), np.ndarray):
                    group[k][...] = v
                else:
                    group[k] = v
    n2_sched.load_state_dict(to_numpy(copy.deepcopy(t_state)))
    expected = drive(t_opt, t_sched, 20, 10)
    np.testing.assert_allclose(drive(n2_opt, n2_sched, 20, 10), expected, rtol=RTOL, atol=0)


def test_reference_traces():
    """The example traces of the reference (values after init, then after each step)."""
    opt = sgd((0.1,))
    sched = L.CosineAnnealingLR(opt, 4)
    trace = [opt.param_groups[0]["lr"]]
    for _ in range(8):
        opt.step()
        sched.step()
        trace.append(opt.param_groups[0]["lr"])
    expected = [0.1, 0.0854, 0.05, 0.0146, 0, 0.0146, 0.05, 0.0854, 0.1]
    np.testing.assert_allclose(trace, expected, atol=1e-4)
    assert L.StepLR(sgd((0.1,)), 3).state_dict() == {
        "step_size": 3,
        "gamma": 0.1,
        "base_lrs": [0.1],
        "last_epoch": 0,
        "_step_count": 1,
        "_is_initial": False,
        "_get_lr_called_within_step": False,
        "_last_lr": [0.1],
    }


def test_pure_schedules():
    assert L.step_lr(1.0, 7, 3, 0.5) == 0.25
    assert L.multistep_lr(1.0, 5, [5, 2, 5], 0.5) == 0.125
    assert L.constant_lr(0.3, 4, 0.5, 5) == 0.15 and L.constant_lr(0.3, 5, 0.5, 5) == 0.3
    assert L.linear_lr(1.0, 2, 0.5, 1.0, 4) == 0.75 and L.linear_lr(1.0, 9, 0.5, 1.0, 4) == 1.0
    assert L.exponential_lr(2.0, 3, 0.5) == 0.25
    assert L.polynomial_lr(1.0, 2, 4, 2.0) == 0.25 and L.polynomial_lr(1.0, 6, 4) == 0.0
    assert L.cosine_annealing_lr(1.0, 4, 4, 0.1) == pytest.approx(0.1, abs=1e-15)
    assert L.cosine_annealing_lr(1.0, 8, 4, 0.1) == 1.0  # periodic
    assert L._cyclic_scale(3, 4.0, 0.5) == (1, 0.5)
    assert L._anneal_cos(1.0, 0.0, 0.5) == pytest.approx(0.5)
    assert L._anneal_linear(1.0, 0.0, 0.25) == 0.75


def test_public_names_are_exactly_all():
    # Every class and function the module defines without a leading underscore is in
    # __all__ (the schedulers and their closed forms), and everything there exists.
    defined = {
        name
        for name, value in vars(L).items()
        if not name.startswith("_")
        and getattr(value, "__module__", None) == L.__name__
        and callable(value)
    }
    assert defined == set(L.__all__)


def test_array_lr_updated_in_place():
    lr = np.array(0.1)
    opt = numoptim.SGD([numoptim.Parameter(np.zeros(2))], lr=lr)
    sched = L.StepLR(opt, 1, 0.5)
    assert opt.param_groups[0]["initial_lr"] is not lr  # a copy, as torch's clone
    opt.step()
    sched.step()
    assert opt.param_groups[0]["lr"] is lr and lr == 0.05
    last = sched.get_last_lr()[0]
    assert isinstance(last, np.ndarray) and last == 0.05 and last is not lr
    assert sched.base_lrs[0] == 0.1


# -------------------------------------------------------------------------- warnings


def test_no_warning_in_the_right_order():
    opt = sgd()
    sched = L.ExponentialLR(opt, 0.9)
    for _ in range(3):  # filterwarnings=error makes any warning fail here
        opt.step()
        sched.step()


def test_warns_scheduler_step_before_optimizer_step():
    sched = L.StepLR(sgd(), 2)
    with pytest.warns(UserWarning, match=re.escape(ORDER_MSG)) as record:
        sched.step()
    assert len(record) == 1
    assert str(record[0].message).endswith("#how-to-adjust-learning-rate")
    sched.step()  # warns only on the first call


def test_warns_overridden_optimizer_step():
    opt = sgd()
    sched = L.StepLR(opt, 2)
    opt.step = types.MethodType(type(opt).step, opt)
    with pytest.warns(UserWarning, match=re.escape(OVERRIDDEN_MSG)):
        sched.step()


def test_step_wrapper_installed_once_and_records_the_call():
    opt = sgd()
    L.StepLR(opt, 2)
    wrapper = opt.step
    assert wrapper._wrapped_by_lr_sched
    L.ExponentialLR(opt, 0.9)
    assert opt.step is wrapper
    assert not getattr(opt, "_opt_called", False)
    opt.step()
    assert opt._opt_called


def test_get_lr_outside_step_warns():
    sched = L.StepLR(sgd(), 2)
    with pytest.warns(UserWarning, match=re.escape(GET_LR_MSG)):
        sched.get_lr()


def test_epoch_argument_warns_and_uses_closed_form():
    opt = sgd((0.1,))
    sched = L.StepLR(opt, 3)
    opt.step()
    with pytest.warns(UserWarning, match=re.escape(L.EPOCH_DEPRECATION_WARNING)):
        sched.step(7)
    assert sched.get_last_lr() == [0.1 * 0.1**2]
    rlrop = L.ReduceLROnPlateau(opt)
    with pytest.warns(UserWarning, match="The epoch parameter in `scheduler.step\\(\\)`"):
        rlrop.step(1.0, 5)
    assert rlrop.last_epoch == 5


def test_cosine_warm_restarts_float_epoch_does_not_warn():
    opt = sgd((0.1,))
    sched = L.CosineAnnealingWarmRestarts(opt, 10)
    opt.step()
    sched.step(2.5)
    assert sched.get_last_lr()[0] == pytest.approx(0.05 * (1 + math.cos(math.pi * 0.25)))
    assert sched.last_epoch == 2


# ---------------------------------------------------------------------------- errors


class NoMomentum(numoptim.Optimizer):
    def __init__(self, params):
        super().__init__(params, {"lr": 0.1})


ERRORS = {
    "not_optimizer": (
        lambda lib, o: lib.StepLR(object(), 2),
        TypeError,
        "object is not an Optimizer",
    ),
    "constant_factor": (
        lambda lib, o: lib.ConstantLR(o, factor=1.5),
        ValueError,
        "Constant multiplicative factor expected to be between 0 and 1.",
    ),
    "linear_start": (
        lambda lib, o: lib.LinearLR(o, start_factor=0),
        ValueError,
        "Starting multiplicative factor expected to be greater than 0 and less or equal to 1.",
    ),
    "linear_end": (
        lambda lib, o: lib.LinearLR(o, end_factor=2),
        ValueError,
        "Ending multiplicative factor expected to be between 0 and 1.",
    ),
    "lambda_count": (
        lambda lib, o: lib.LambdaLR(o, [lambda e: 1.0]),
        ValueError,
        "Expected 2 lr_lambdas, but got 1",
    ),
    "multiplicative_callable": (
        lambda lib, o: lib.MultiplicativeLR(o, 0.9),
        TypeError,
        "lr_lambda should be a function, but got float",
    ),
    "warm_T_0": (
        lambda lib, o: lib.CosineAnnealingWarmRestarts(o, 0),
        ValueError,
        "Expected positive integer T_0, but got 0",
    ),
    "warm_T_mult": (
        lambda lib, o: lib.CosineAnnealingWarmRestarts(o, 2, 1.5),
        ValueError,
        "Expected integer T_mult >= 1, but got 1.5",
    ),
    "warm_eta_min": (
        lambda lib, o: lib.CosineAnnealingWarmRestarts(o, 2, eta_min="0"),
        ValueError,
        "Expected float or int eta_min, but got 0 of type <class 'str'>",
    ),
    "cyclic_mode": (
        lambda lib, o: lib.CyclicLR(o, 0.01, 0.1, mode="square"),
        ValueError,
        "mode is invalid and scale_fn is None",
    ),
    "cyclic_length": (
        lambda lib, o: lib.CyclicLR(o, [0.01], 0.1),
        ValueError,
        (
            "base_lr must have the same length as optimizer.param_groups. base_lr has 1 values, "
            "param_groups has 2."
        ),
    ),
    "one_cycle_total": (
        lambda lib, o: lib.OneCycleLR(o, 0.1, total_steps=0),
        ValueError,
        "Expected positive integer total_steps, but got 0",
    ),
    "one_cycle_missing": (
        lambda lib, o: lib.OneCycleLR(o, 0.1),
        ValueError,
        "You must define either total_steps OR (epochs AND steps_per_epoch)",
    ),
    "one_cycle_epochs": (
        lambda lib, o: lib.OneCycleLR(o, 0.1, epochs=0, steps_per_epoch=2),
        ValueError,
        "Expected positive integer epochs, but got 0",
    ),
    "one_cycle_pct": (
        lambda lib, o: lib.OneCycleLR(o, 0.1, 10, pct_start=1),
        ValueError,
        "Expected float between 0 and 1 pct_start, but got 1",
    ),
    "one_cycle_anneal": (
        lambda lib, o: lib.OneCycleLR(o, 0.1, 10, anneal_strategy="exp"),
        ValueError,
        "anneal_strategy must be one of 'cos' or 'linear', instead got exp",
    ),
    "sequential_empty": (
        lambda lib, o: lib.SequentialLR(o, [], []),
        ValueError,
        "SequentialLR expects at least one scheduler, but got no scheduler.",
    ),
    "sequential_milestones": (
        lambda lib, o: lib.SequentialLR(o, [lib.StepLR(o, 2), lib.StepLR(o, 3)], [1, 2]),
        ValueError,
        (
            "Sequential Schedulers expects number of schedulers provided to be one more than the "
            "number of milestone points, but got number of schedulers 2 and the number of "
            "milestones to be equal to 2"
        ),
    ),
    "sequential_plateau": (
        lambda lib, o: lib.SequentialLR(o, [lib.ReduceLROnPlateau(o)], []),
        ValueError,
        (
            "SequentialLR does not support `ReduceLROnPlateau` scheduler as it requires "
            "additional kwargs to be specified when calling `step`, but got one at index 0 in "
            "the given schedulers sequence."
        ),
    ),
    "chained_empty": (
        lambda lib, o: lib.ChainedScheduler([]),
        ValueError,
        "ChainedScheduler expects at least one scheduler to be chained, but got no scheduler.",
    ),
    "chained_no_optimizer": (
        lambda lib, o: lib.ChainedScheduler([lib.StepLR(o, 2), object()]),
        TypeError,
        "ChainedScheduler at index 1 should have `optimizer` as its attribute.",
    ),
    "plateau_factor": (
        lambda lib, o: lib.ReduceLROnPlateau(o, factor=1.0),
        ValueError,
        "Factor should be < 1.0.",
    ),
    "plateau_mode": (
        lambda lib, o: lib.ReduceLROnPlateau(o, mode="up"),
        ValueError,
        "mode up is unknown!",
    ),
    "plateau_threshold_mode": (
        lambda lib, o: lib.ReduceLROnPlateau(o, threshold_mode="log"),
        ValueError,
        "threshold mode log is unknown!",
    ),
    "plateau_min_lr": (
        lambda lib, o: lib.ReduceLROnPlateau(o, min_lr=[0.1]),
        ValueError,
        "expected 2 min_lrs, got 1",
    ),
    "swalr_strategy": (
        lambda lib, o: lib.SWALR(o, 0.1, anneal_strategy="exp"),
        ValueError,
        "anneal_strategy must be one of 'cos' or 'linear', instead got exp",
    ),
    "swalr_epochs": (
        lambda lib, o: lib.SWALR(o, 0.1, anneal_epochs=-1),
        ValueError,
        "anneal_epochs must be equal or greater than 0, got -1",
    ),
    "resume_without_initial_lr": (
        lambda lib, o: lib.StepLR(o, 2, last_epoch=3),
        KeyError,
        (
            "param 'initial_lr' is not specified in param_groups[0] when resuming scheduler with "
            "last_epoch >= 0.\nThis typically happens when:\n1. You're trying to resume training "
            "from a checkpoint but haven't properly loaded the optimizer state\n2. You're using "
            "last_epoch >= 0 for a fresh training run (not recommended)"
        ),
    ),
}


def _message(exc: BaseException) -> str:
    return exc.args[0] if isinstance(exc, KeyError) else str(exc)


@pytest.mark.parametrize("name", list(ERRORS))
def test_errors(name):
    build, kind, message = ERRORS[name]
    with pytest.raises(kind) as info:
        build(numoptim_lib(), sgd())
    assert type(info.value) is kind
    assert _message(info.value) == message


@pytest.mark.torch
@pytest.mark.parametrize("name", list(ERRORS))
def test_errors_match_torch(name):
    pytest.importorskip("torch")
    build, kind, message = ERRORS[name]
    with pytest.raises(kind) as info:
        build(torch_lib(), make_optimizer("torch", "sgd"))
    assert type(info.value) is kind
    assert _message(info.value) == message


def test_cycle_momentum_needs_momentum():
    opt = NoMomentum([numoptim.Parameter(np.zeros(1))])
    msg = "optimizer must support momentum or beta1 with `cycle_momentum` option enabled"
    with pytest.raises(ValueError, match=re.escape(msg)):
        L.CyclicLR(opt, 0.01, 0.1)
    with pytest.raises(ValueError, match=re.escape(msg)):
        L.OneCycleLR(opt, 0.1, 10)
    L.OneCycleLR(opt, 0.1, 10, cycle_momentum=False)


def test_sequential_rejects_other_optimizer():
    a, b = sgd(), sgd()
    with pytest.raises(ValueError, match="expects all schedulers to belong to the same optimizer"):
        L.SequentialLR(a, [L.StepLR(a, 2), L.StepLR(b, 2)], [3])


def test_one_cycle_past_total_steps():
    opt = sgd()
    sched = L.OneCycleLR(opt, 0.1, total_steps=4)
    for _ in range(4):
        opt.step()
        sched.step()
    with pytest.raises(
        ValueError, match="Tried to step 5 times. The specified number of total steps is 4"
    ):
        sched.step()


def test_plateau_new_group_with_min_lr_list():
    opt = sgd()
    sched = L.ReduceLROnPlateau(opt, patience=0, min_lr=[0.0, 0.0])
    opt.add_param_group({"params": [numoptim.Parameter(np.zeros(1))]})
    sched.step(1.0)
    with pytest.raises(
        RuntimeError,
        match="The number of param groups in the `optimizer` "
        r"\(3\) differs from when `ReduceLROnPlateau` was initialized \(2\)",
    ):
        sched.step(2.0)


def test_type_of_alias():
    assert issubclass(L._LRScheduler, L.LRScheduler)
    assert L._LRScheduler.__name__ == "_LRScheduler"


# ----------------------------------------------------------------------- state dicts


def test_lambdas_are_not_saved_but_callable_objects_are():
    opt = sgd()
    fn = Factor(0.9)
    sched = L.LambdaLR(opt, [lambda e: 1.0, fn])
    state = sched.state_dict()
    assert state["lr_lambdas"] == [None, {"rate": 0.9}]
    assert "optimizer" not in state
    state["lr_lambdas"][1]["rate"] = 0.5
    sched.load_state_dict(state)
    assert fn.rate == 0.5
    assert "lr_lambdas" in state  # the caller's dict is left as it was
    assert sched.lr_lambdas[1] is fn


def test_multiplicative_state_dict():
    fn = Factor(0.8)
    sched = L.MultiplicativeLR(sgd(), [fn, lambda e: 0.9])
    assert sched.state_dict()["lr_lambdas"] == [{"rate": 0.8}, None]


def test_cyclic_scale_fn_state_dict():
    opt = sgd()
    assert (
        L.CyclicLR(opt, 0.01, 0.1, scale_fn=lambda x: 1.0).state_dict()["_scale_fn_custom"] is None
    )
    wave = Wave(0.5)
    sched = L.CyclicLR(sgd(), 0.01, 0.1, scale_fn=wave)
    state = sched.state_dict()
    assert state["_scale_fn_custom"] == {"depth": 0.5}
    assert "_scale_fn_ref" not in state
    state["_scale_fn_custom"] = {"depth": 0.25}
    sched.load_state_dict(state)
    assert wave.depth == 0.25
    plain = L.CyclicLR(sgd(), 0.01, 0.1, mode="exp_range", gamma=0.9)
    assert "_scale_fn_ref" not in plain.state_dict()
    plain.load_state_dict(plain.state_dict())
    assert plain.scale_fn(2) == pytest.approx(0.81)


def test_nested_state_dict():
    opt = sgd()
    sched = L.SequentialLR(opt, [L.ConstantLR(opt, 0.5, 2), L.ExponentialLR(opt, 0.9)], [3])
    state = sched.state_dict()
    assert [s["last_epoch"] for s in state["_schedulers"]] == [0, -1]
    assert "optimizer" not in state and "_milestones" in state
