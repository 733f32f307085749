"""Step plans (cpp/src/step_plan.hpp): a group's checked arrays kept between steps.

Each case steps two identical optimizers, one whose ``state`` keeps plans (numoptim's
own) and one whose ``state`` is a plain ``defaultdict`` (which keeps none, so every step
looks everything up and checks it again), changes both in the same way, and steps
again: the results must be the same bit for bit, or the same error, raised before
anything is written. The planned one must have served steps from its plan, so that
each case checks a plan that was in use when the change came.
"""

import copy
import gc
import pickle
import warnings
import weakref
from collections import defaultdict

import numoptim
import numpy as np
import pytest
from numoptim.utils import flat_parameters

SHAPES = [(3, 5), (256,), (1,), (7, 11), (40,)]

# Parameters from numoptim.utils.flat_parameters, or separate arrays.
flat_or_not = pytest.mark.parametrize("flat", [True, False], ids=["flat", "ordinary"])


def make_params(flat, dtype, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    if flat:
        params = flat_parameters(arrays)
    else:
        params = [numoptim.Parameter(a) for a in arrays]
        for p in params:
            p.grad = np.zeros_like(p)
    return params


def set_grads(params, step):
    rng = np.random.default_rng(100 + step)
    for p in params:
        if p.grad is not None:
            p.grad[...] = rng.standard_normal(p.shape).astype(p.dtype)


def adam(params):
    return numoptim.Adam(params, lr=0.01, weight_decay=0.1)


def twins(flat, make=adam, dtype=np.float32, steps=3):
    """A planned optimizer and an unplanned one, after `steps` identical steps."""
    out = []
    for planned in (True, False):
        params = make_params(flat, dtype=dtype)
        opt = make(params)
        if not planned:
            opt.state = defaultdict(dict)  # not numoptim's _State: no plans
        for s in range(steps):
            set_grads(params, s)
            opt.step()
        out.append((opt, params))
    (planned, _), (plain, _) = out
    assert planned.state._native_plans.hits > 0
    assert not hasattr(plain.state, "_native_plans")
    return out


def assert_same(a, b):
    (opt_a, params_a), (opt_b, params_b) = a, b
    for p, q in zip(params_a, params_b):
        np.testing.assert_array_equal(p, q, strict=True)
        assert (p in opt_a.state) == (q in opt_b.state)
        if p in opt_a.state:
            sa, sb = opt_a.state[p], opt_b.state[q]
            if not isinstance(sa, dict):
                assert sa == sb
                continue
            assert sa.keys() == sb.keys()
            for key in sa:
                np.testing.assert_array_equal(sa[key], sb[key], strict=True)


def step_both(a, b, steps=3):
    for s in range(steps):
        for opt, params in (a, b):
            set_grads(params, 10 + s)
            opt.step()
        assert_same(a, b)


def index_of(opt, p):
    return next(i for i, q in enumerate(opt.param_groups[0]["params"]) if q is p)


# Changes that a step must see, each applied to (optimizer, params) of both twins.
def new_grad_array(opt, params):
    params[1].grad = np.full(params[1].shape, 0.5, np.float32)


def grad_to_none(opt, params):
    params[2].grad = None


def grad_in_place(opt, params):
    params[0].grad[...] = 7.0


def replace_state_buffer(opt, params):
    opt.state[params[3]]["exp_avg"] = np.full(params[3].shape, 0.25, np.float32)


def delete_state_buffer(opt, params):
    del opt.state[params[3]]["exp_avg_sq"]


def delete_state(opt, params):
    del opt.state[params[1]]


def replace_state_dict(opt, params):
    opt.state[params[4]] = {k: np.copy(v) for k, v in opt.state[params[4]].items()}


def clear_state(opt, params):
    opt.state.clear()


def step_count_in_place(opt, params):
    opt.state[params[0]]["step"][...] = 1


def replace_step(opt, params):
    opt.state[params[0]]["step"] = np.array(5.0, np.float32)


def replace_parameter_in_list(opt, params):
    new = numoptim.Parameter(np.ones(7, np.float32))
    new.grad = np.ones(7, np.float32)
    opt.param_groups[0]["params"][2] = new
    params[2] = new


def append_parameter(opt, params):
    new = numoptim.Parameter(np.ones(9, np.float32))
    new.grad = np.ones(9, np.float32)
    opt.param_groups[0]["params"].append(new)
    params.append(new)


def new_params_list(opt, params):
    opt.param_groups[0]["params"] = list(reversed(opt.param_groups[0]["params"]))
    params.reverse()


def replace_instance_dict(opt, params):
    params[1].__dict__ = {"_grad": np.full(params[1].shape, -1.0, np.float32)}


def grads_share_memory(opt, params):
    params[4].grad = params[1].grad[:40]  # two grads on the same bytes: allowed


def grad_is_another_parameters_memory(opt, params):
    # The step then runs tensor after tensor (shares_memory), as torch's for-loop.
    params[4].grad = np.asarray(params[1])[:40]


def hyperparameters(opt, params):
    opt.param_groups[0]["lr"] = 0.5
    opt.param_groups[0]["betas"] = (0.5, 0.6)


def amsgrad_on(opt, params):
    opt.param_groups[0]["amsgrad"] = True


def load_state_dict(opt, params):
    opt.load_state_dict(copy.deepcopy(opt.state_dict()))


def threads(opt, params):
    numoptim.set_num_threads(1)


CHANGES = [
    new_grad_array,
    grad_to_none,
    grad_in_place,
    replace_state_buffer,
    delete_state_buffer,
    delete_state,
    replace_state_dict,
    clear_state,
    step_count_in_place,
    replace_step,
    replace_parameter_in_list,
    append_parameter,
    new_params_list,
    replace_instance_dict,
    grads_share_memory,
    grad_is_another_parameters_memory,
    hyperparameters,
    amsgrad_on,
    load_state_dict,
    threads,
]


@flat_or_not
@pytest.mark.parametrize("change", CHANGES, ids=lambda f: f.__name__)
def test_a_planned_step_sees_every_change(change, flat):
    before = numoptim.get_num_threads()
    try:
        a, b = twins(flat)
        for opt, params in (a, b):
            change(opt, params)
        step_both(a, b)
    finally:
        numoptim.set_num_threads(before)


# Changes that make the next step raise, before it writes anything.
def read_only_state(opt, params):
    opt.state[params[3]]["exp_avg"].flags.writeable = False


def read_only_parameter(opt, params):
    params[4].flags.writeable = False


def set_in_place(array, **fields):
    """Changes an array's shape or dtype in place (deprecated since NumPy 2.5, still done)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for name, value in fields.items():
            setattr(array, name, value)


def reshaped_state(opt, params):
    set_in_place(opt.state[params[1]]["exp_avg"], shape=(16, 16))


def retyped_grad(opt, params):
    set_in_place(params[1].grad, dtype=np.int32)  # the same memory, seen as another dtype


def retyped_step(opt, params):
    set_in_place(opt.state[params[0]]["step"], dtype=np.int32)


def wrong_state_dtype(opt, params):
    opt.state[params[3]]["exp_avg"] = np.zeros(params[3].shape, np.float64)


def state_not_a_dict(opt, params):
    opt.state[params[2]] = [1, 2]


def grad_of_other_shape(opt, params):
    params[0].__dict__["_grad"] = np.zeros(3, np.float32)  # past the setter's checks


def grad_not_an_array(opt, params):
    params[2].__dict__["_grad"] = [0.5]


def sparse_grad(opt, params):
    params[1].grad = numoptim.RowSparseGrad(
        np.array([0, 3]), np.ones(2, np.float32), params[1].shape
    )


ERRORS = [
    grad_not_an_array,
    sparse_grad,
    read_only_state,
    read_only_parameter,
    reshaped_state,
    retyped_grad,
    retyped_step,
    wrong_state_dtype,
    state_not_a_dict,
    grad_of_other_shape,
]


@flat_or_not
@pytest.mark.parametrize("change", ERRORS, ids=lambda f: f.__name__)
def test_a_planned_step_raises_as_an_unplanned_one(change, flat):
    a, b = twins(flat)
    errors = []
    for opt, params in (a, b):
        change(opt, params)
        with pytest.raises((TypeError, ValueError, RuntimeError)) as error:
            opt.step()
        errors.append((error.type, str(error.value)))
    assert errors[0] == errors[1]
    assert_same(a, b)  # nothing written by either


@flat_or_not
def test_fresh_gradient_arrays_every_step(flat):
    a, b = twins(flat)
    served = a[0].state._native_plans.hits
    for s in range(12):
        rng = np.random.default_rng(s)
        grads = [rng.standard_normal(p.shape).astype(np.float32) for p in a[1]]
        for opt, params in (a, b):
            for p, g in zip(params, grads):
                p.grad = g.copy()
            opt.step()
        assert_same(a, b)
    # New gradients are checked and put in the plan; the rest of it still serves.
    assert a[0].state._native_plans.hits == served + 12


@flat_or_not
def test_parameters_losing_and_gaining_gradients(flat):
    a, b = twins(flat)
    kept = {}
    for s in range(8):
        for opt, params in (a, b):
            for i in (s % 5, (s + 2) % 5):
                p = params[i]
                if p.grad is not None:
                    kept[id(p)] = p.grad
                    p.grad = None
                else:
                    p.grad = kept[id(p)]
            set_grads(params, 20 + s)
            opt.step()
        assert_same(a, b)


def test_several_groups_and_optimizers_with_plans():
    def make(params):
        return numoptim.AdamW(
            [{"params": params[:2]}, {"params": params[2:], "lr": 0.1, "amsgrad": True}], lr=0.01
        )

    a, b = twins(False, make)
    assert len(a[0].state._native_plans) == 2
    step_both(a, b)
    for opt, params in (a, b):
        params[3].grad = np.ones(params[3].shape, np.float32)
    step_both(a, b)


@pytest.mark.parametrize(
    ("make", "dtype"),
    [
        (lambda ps: numoptim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True), np.float32),
        (lambda ps: numoptim.RMSprop(ps, lr=0.01, momentum=0.5, centered=True), np.float64),
        (lambda ps: numoptim.Lamb(ps, lr=0.01), np.float32),
        (lambda ps: numoptim.Adam(ps, lr=0.01, master_weights=True), np.float16),
        (lambda ps: numoptim.Adagrad(ps, lr=0.1), np.complex64),
    ],
    ids=["SGD", "RMSprop-float64", "Lamb", "Adam-float16-master", "Adagrad-complex64"],
)
def test_other_rules_with_plans(make, dtype):
    a, b = twins(False, make, dtype)
    step_both(a, b)
    for opt, params in (a, b):
        opt.state[params[0]][next(iter(opt.state[params[0]]))] = copy.deepcopy(
            opt.state[params[0]][next(iter(opt.state[params[0]]))]
        )
    step_both(a, b)


def test_state_prints_pickles_and_copies_as_a_defaultdict():
    (opt, params), _ = twins(True)
    assert repr(opt.state).startswith("defaultdict(<class 'dict'>, {")
    assert repr(opt.state) == repr(defaultdict(dict, opt.state))
    assert type(copy.deepcopy(opt.state)) is defaultdict
    assert type(pickle.loads(pickle.dumps(opt.state))) is defaultdict
    for duplicate in (lambda x: pickle.loads(pickle.dumps(x)), copy.deepcopy):
        twin = duplicate((opt, params))
        assert type(twin[0].state) is type(opt.state)
        assert twin[0].state._native_plans is not opt.state._native_plans
        assert len(twin[0].state._native_plans) == 0
        step_both((opt, params), twin)
        assert twin[0].state._native_plans.hits > 0


@pytest.mark.parametrize("deferred", [False, True], ids=["one group", "two groups"])
def test_a_plan_keeps_no_gradient_alive(deferred):
    # zero_grad(set_to_none=True) frees the gradients' memory before the next forward
    # pass: a plan must not hold them.
    params = make_params(False, np.float32)
    groups = [{"params": params[:2]}, {"params": params[2:]}] if deferred else params
    opt = numoptim.Adam(groups, lr=0.01)
    for s in range(4):
        set_grads(params, s)
        opt.step()
    assert opt.state._native_plans.hits > 0
    grads = [weakref.ref(p.grad) for p in params]
    opt.zero_grad(set_to_none=True)
    gc.collect()
    assert all(g() is None for g in grads)
    for p in params:
        p.grad = np.ones_like(p)
    opt.step()  # the plan sees the new grads
