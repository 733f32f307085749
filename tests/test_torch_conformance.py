"""Behaviours and messages that match torch 2.13 exactly, each checked against torch live.

Every behaviour has a torch-free test (the expected messages are torch's, copied) and a
torch-marked one that runs the same cases on torch, so the copies cannot drift.
"""

from __future__ import annotations

import inspect
import re

import numoptim
import numpy as np
import pytest
from harness import make_optimizer, reference_available, reference_class
from numoptim import Parameter
from numoptim.lr_scheduler import OneCycleLR
from registry import ELEMENTWISE

# --------------------------------------------------------------------------------------
# A params argument that is a single array, not an iterable of them.
# --------------------------------------------------------------------------------------

PARAMS_PREFIX = (
    "params argument given to the optimizer should be an iterable of Tensors or dicts, but got "
)


@pytest.mark.parametrize(
    "bad,typename",
    [
        (Parameter(np.zeros(3)), "numoptim.parameter.Parameter"),
        (np.zeros(3), "numpy.ndarray"),
    ],
)
def test_single_array_params_raise_torchs_type_error(bad, typename):
    with pytest.raises(TypeError, match=f"^{re.escape(PARAMS_PREFIX + typename)}$"):
        numoptim.SGD(bad, lr=0.1)


@pytest.mark.torch
def test_single_array_params_message_is_torchs():
    torch = pytest.importorskip("torch")
    for bad in (torch.zeros(3), torch.nn.Parameter(torch.zeros(3))):
        with pytest.raises(TypeError) as info:
            torch.optim.SGD(bad, lr=0.1)
        assert str(info.value) == PARAMS_PREFIX + "torch.FloatTensor"
    # A set of params is an iterable, accepted at the top level by both (only a group's
    # "params" set is refused); an int fails on iteration with Python's own message.
    p_t, p_n = torch.nn.Parameter(torch.zeros(3)), Parameter(np.zeros(3))
    torch.optim.SGD({p_t}, lr=0.1)
    numoptim.SGD({p_n}, lr=0.1)
    with pytest.raises(TypeError, match="^'int' object is not iterable$"):
        torch.optim.SGD(3, lr=0.1)
    with pytest.raises(TypeError, match="^'int' object is not iterable$"):
        numoptim.SGD(3, lr=0.1)


# --------------------------------------------------------------------------------------
# Adam and AdamW: an array lr or betas with foreach=True.
# --------------------------------------------------------------------------------------


class A:
    """A value to pass as an array (numpy) or a tensor (torch)."""

    def __init__(self, value):
        self.value = value


def convert(value, to_array):
    if isinstance(value, A):
        return to_array(value.value)
    if isinstance(value, tuple):
        return tuple(convert(v, to_array) for v in value)
    if isinstance(value, dict):
        return {k: convert(v, to_array) for k, v in value.items()}
    return value


LR_FOREACH = "lr as a Tensor is not supported for capturable=False and foreach=True"
BETA0_FOREACH = "betas[0] as a Tensor is not supported for capturable=False and foreach=True"

# (kwargs, exception type or None when accepted, torch's message); torch checks the
# array lr with foreach before anything else, and array betas after every range check.
ADAM_ARRAY_CASES = [
    ({"lr": A([0.01]), "foreach": True}, ValueError, LR_FOREACH),
    ({"lr": A(0.01), "foreach": True}, ValueError, LR_FOREACH),
    ({"lr": A([0.01, 0.02]), "foreach": True}, ValueError, LR_FOREACH),
    ({"lr": A([-0.01]), "foreach": True}, ValueError, LR_FOREACH),
    ({"lr": A([0.01]), "foreach": True, "eps": -1.0}, ValueError, LR_FOREACH),
    ({"lr": A([0.01]), "foreach": True, "fused": True}, ValueError, LR_FOREACH),
    ({"lr": A([0.01, 0.02])}, ValueError, "Tensor lr must be 1-element"),
    ({"betas": (A(0.9), A(0.99)), "foreach": True}, ValueError, BETA0_FOREACH),
    ({"betas": (A([0.9]), A([0.99])), "foreach": True}, ValueError, BETA0_FOREACH),
    (
        {"betas": (A(0.9), A(0.99)), "foreach": True, "lr": A(0.01)},
        ValueError,
        LR_FOREACH,
    ),
    (
        {"betas": (A(0.9), A(0.99)), "foreach": True, "eps": -1.0},
        ValueError,
        "Invalid epsilon value: -1.0",
    ),
    (
        {"betas": (A(1.5), A(0.99)), "foreach": True},
        ValueError,
        "Invalid beta parameter at index 0: 1.5",
    ),
    (
        {"betas": (A(0.9), 0.99), "foreach": True},
        ValueError,
        "betas must be either both floats or both Tensors",
    ),
    ({"lr": A([0.01]), "foreach": False}, None, None),
    ({"lr": A([0.01])}, None, None),
    ({"lr": A([0.01]), "fused": True}, None, None),
    ({"lr": A(0.01), "fused": True}, None, None),
    ({"betas": (A([0.9]), A([0.99]))}, None, None),
    ({"betas": (A(0.9), A(0.99)), "fused": True}, None, None),
]
ADAM_IDS = [f"case{i}" for i in range(len(ADAM_ARRAY_CASES))]


def floats_of(kwargs):
    """The same kwargs with every array as a plain float (a 1-element one)."""
    return convert(kwargs, lambda v: float(np.reshape(v, ())))


def adam_step(cls, kwargs):
    p = Parameter(np.linspace(-1.0, 1.0, 5))
    p.grad = np.linspace(0.5, -0.3, 5)
    opt = cls([p], weight_decay=0.1, **kwargs)
    opt.step()
    opt.step()
    return np.asarray(p)


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
@pytest.mark.parametrize("kwargs,exc,message", ADAM_ARRAY_CASES, ids=ADAM_IDS)
def test_adam_array_hyperparameters(name, kwargs, exc, message):
    cls = getattr(numoptim, name)
    numpy_kwargs = convert(kwargs, np.array)
    if exc is not None:
        with pytest.raises(exc, match=f"^{re.escape(message)}$"):
            adam_step(cls, numpy_kwargs)
    else:
        # Accepted, and a 1-element lr or betas steps as the same float does.
        np.testing.assert_array_equal(
            adam_step(cls, numpy_kwargs), adam_step(cls, floats_of(kwargs))
        )


@pytest.mark.torch
@pytest.mark.parametrize("name", ["Adam", "AdamW"])
@pytest.mark.parametrize("kwargs,exc,message", ADAM_ARRAY_CASES, ids=ADAM_IDS)
def test_adam_array_hyperparameters_as_torch(name, kwargs, exc, message):
    torch = pytest.importorskip("torch")
    p = torch.nn.Parameter(torch.linspace(-1.0, 1.0, 5, dtype=torch.float64))
    p.grad = torch.linspace(0.5, -0.3, 5, dtype=torch.float64)
    torch_kwargs = convert(kwargs, lambda v: torch.tensor(v, dtype=torch.float64))
    if exc is not None:
        with pytest.raises(exc, match=f"^{re.escape(message)}$"):
            getattr(torch.optim, name)([p], weight_decay=0.1, **torch_kwargs)
        return
    opt = getattr(torch.optim, name)([p], weight_decay=0.1, **torch_kwargs)
    opt.step()
    opt.step()
    ours = adam_step(getattr(numoptim, name), convert(kwargs, np.array))
    np.testing.assert_allclose(ours, p.detach().numpy(), rtol=1e-12, atol=1e-15)


def _adam_with_late_array_lr(lib, to_array, with_grad):
    """Adam(foreach=True) whose group's lr is made an array after construction."""
    p = lib.nn.Parameter(lib.zeros(3)) if hasattr(lib, "nn") else Parameter(np.zeros(3))
    if with_grad:
        p.grad = lib.ones(3) if hasattr(lib, "nn") else np.ones(3)
    opt = (lib.optim if hasattr(lib, "optim") else lib).Adam([p], foreach=True)
    opt.param_groups[0]["lr"] = to_array(0.01)
    return opt


def test_adam_array_lr_with_foreach_is_refused_at_step_too():
    opt = _adam_with_late_array_lr(numoptim, np.array, with_grad=True)
    with pytest.raises(RuntimeError, match=f"^{re.escape(LR_FOREACH)}$"):
        opt.step()
    # As in torch, a group without gradients has nothing to step and passes.
    _adam_with_late_array_lr(numoptim, np.array, with_grad=False).step()


@pytest.mark.torch
def test_adam_array_lr_with_foreach_at_step_as_torch():
    torch = pytest.importorskip("torch")
    opt = _adam_with_late_array_lr(torch, torch.tensor, with_grad=True)
    with pytest.raises(RuntimeError, match=f"^{re.escape(LR_FOREACH)}$"):
        opt.step()
    _adam_with_late_array_lr(torch, torch.tensor, with_grad=False).step()


# --------------------------------------------------------------------------------------
# LBFGS: a closure whose loss is a 1-element array of any shape.
# --------------------------------------------------------------------------------------

LBFGS_A = np.array([[3.0, 1.0], [1.0, 2.0]])
LBFGS_B = np.array([1.0, -1.0])


def lbfgs_run(shape, line_search_fn):
    """Two LBFGS steps on least squares; the closure returns its loss with ``shape``."""
    x = Parameter(np.zeros(2))
    opt = numoptim.LBFGS([x], max_iter=5, line_search_fn=line_search_fn)
    returned = []

    def closure():
        r = LBFGS_A @ x - LBFGS_B
        x.grad = LBFGS_A.T @ r
        loss = 0.5 * float(r @ r)
        loss = loss if shape is None else np.full(shape, loss)
        returned.append(loss)
        return loss

    first = opt.step(closure)
    assert first is returned[0]  # the closure's own object, as torch returns it
    opt.step(closure)
    return np.asarray(x)


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
@pytest.mark.parametrize("shape", [(1,), (1, 1), ()])
def test_lbfgs_closure_may_return_any_one_element_array(shape, line_search_fn):
    np.testing.assert_array_equal(lbfgs_run(shape, line_search_fn), lbfgs_run(None, line_search_fn))


def test_lbfgs_closure_with_several_elements_raises_torchs_error():
    x = Parameter(np.zeros(2))
    x.grad = np.ones(2)
    opt = numoptim.LBFGS([x])
    with pytest.raises(
        ValueError, match="^only one element tensors can be converted to Python scalars$"
    ):
        opt.step(lambda: np.ones(2))


@pytest.mark.torch
@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_lbfgs_one_element_loss_as_torch(line_search_fn):
    torch = pytest.importorskip("torch")
    a, b = torch.tensor(LBFGS_A), torch.tensor(LBFGS_B)
    x = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    opt = torch.optim.LBFGS([x], max_iter=5, line_search_fn=line_search_fn)

    def closure():
        opt.zero_grad()
        r = a @ x - b
        loss = (0.5 * (r @ r)).reshape(1)
        loss.backward()
        return loss

    opt.step(closure)
    opt.step(closure)
    np.testing.assert_allclose(
        lbfgs_run((1,), line_search_fn), x.detach().numpy(), rtol=1e-12, atol=1e-15
    )
    with pytest.raises(
        ValueError, match="^only one element tensors can be converted to Python scalars$"
    ):
        opt.step(lambda: torch.ones(2))


# --------------------------------------------------------------------------------------
# The keys of param_groups after load_state_dict.
# --------------------------------------------------------------------------------------

NATIVE = [*ELEMENTWISE, "SparseAdam"]


def test_sparse_adam_groups_keep_their_keys_after_a_load():
    opt = numoptim.SparseAdam([Parameter(np.zeros(3))], lr=0.01)
    opt.load_state_dict(opt.state_dict())
    assert list(opt.param_groups[0]) == ["lr", "betas", "eps", "maximize", "params"]
    # torch's base class adds it to defaults, not to the groups.
    assert opt.defaults["differentiable"] is False


def test_a_load_fills_what_torch_fills_with_torchs_values():
    # An SGD state dict from before nesterov and fused existed; torch fills them with
    # its fixed values (fused False, not the constructor's None), and a hyperparameter
    # torch does not fill stays missing.
    opt = numoptim.SGD([Parameter(np.zeros(3))], lr=0.1, nesterov=False, maximize=True)
    state = opt.state_dict()
    for key in ("nesterov", "fused", "maximize", "dampening"):
        del state["param_groups"][0][key]
    opt.load_state_dict(state)
    group = opt.param_groups[0]
    assert list(group) == [
        "lr",
        "momentum",
        "weight_decay",
        "foreach",
        "differentiable",
        "params",
        "nesterov",
        "maximize",
        "fused",
    ]
    assert (group["nesterov"], group["maximize"], group["fused"]) == (False, False, False)


def _loaded_groups(lib, name, drop):
    # maximize=True where the optimizer has it (Schedule-Free has none).
    kwargs = {"lr": 0.01}
    if "maximize" in inspect.signature(getattr(numoptim, name)).parameters:
        kwargs["maximize"] = True
    if lib.__name__ == "torch":
        p = lib.nn.Parameter(lib.zeros(3))
        opt = reference_class(lib, name)([p], **kwargs)
    else:
        opt = getattr(lib, name)([Parameter(np.zeros(3))], **kwargs)
    state = opt.state_dict()
    if drop is not None:
        del state["param_groups"][0][drop]
    opt.load_state_dict(state)
    return opt.param_groups[0]


@pytest.mark.torch
@pytest.mark.parametrize("name", NATIVE)
def test_group_keys_after_a_load_as_torch(name):
    torch = pytest.importorskip("torch")
    if not reference_available(name):
        pytest.skip(f"the reference of {name} is not installed")
    saved = _loaded_groups(torch, name, None)
    # A round trip, then each key missing in turn (a state dict from an older torch).
    for drop in [None, *(key for key in saved if key != "params")]:
        if drop == "lr" and name == "LaProp":
            continue  # timm's LaProp.load_state_dict reads each group's lr (KeyError)
        theirs = _loaded_groups(torch, name, drop)
        ours = _loaded_groups(numoptim, name, drop)
        assert list(ours) == list(theirs), drop
        for key, value in theirs.items():
            if key != "params" and not isinstance(value, torch.Tensor):
                assert ours[key] == value, (drop, key)


# --------------------------------------------------------------------------------------
# OneCycleLR restored from an older torch's state (anneal_func, no _anneal_func_type).
# --------------------------------------------------------------------------------------


def one_cycle(lib, strategy):
    if lib.__name__ == "torch":
        opt = lib.optim.SGD([lib.nn.Parameter(lib.zeros(2))], lr=0.1, momentum=0.9)
        cls = lib.optim.lr_scheduler.OneCycleLR
    else:
        opt = lib.SGD([Parameter(np.zeros(2))], lr=0.1, momentum=0.9)
        cls = lib.lr_scheduler.OneCycleLR
    return opt, cls(opt, max_lr=1.0, total_steps=12, anneal_strategy=strategy)


def trajectory(opt, sched, steps=6):
    out = []
    for _ in range(steps):
        opt.step()
        sched.step()
        out.append((sched.get_last_lr()[0], opt.param_groups[0]["momentum"]))
    return out


def old_style_restore(lib, strategy, onto_bare):
    """A linear schedule stepped 3 times, saved as a torch before 2.4 saved it, restored.

    ``onto_bare`` restores onto an object that never ran ``__init__``, as unpickling
    does; otherwise onto a freshly constructed ``strategy`` scheduler.
    """
    opt, sched = one_cycle(lib, "linear")
    trajectory(opt, sched, 3)
    state = sched.state_dict()
    del state["_anneal_func_type"]
    state["anneal_func"] = type(sched)._annealing_linear
    new_opt, new_sched = one_cycle(lib, strategy)
    if onto_bare:
        new_sched = type(sched).__new__(type(sched))
        new_sched.optimizer = new_opt
    new_opt.load_state_dict(opt.state_dict())
    new_sched.load_state_dict(state)
    return new_opt, new_sched


def test_one_cycle_annealing_functions_have_torchs_names():
    assert OneCycleLR._annealing_cos(1.0, 0.0, 0.25) == pytest.approx(0.5 + 0.5 * 2**-0.5)
    assert OneCycleLR._annealing_linear(1.0, 0.0, 0.25) == 0.75


def test_one_cycle_restored_from_an_older_state_follows_its_anneal_func():
    opt, sched = one_cycle(numoptim, "linear")
    expected = trajectory(opt, sched, 9)[3:]
    restored = trajectory(*old_style_restore(numoptim, "cos", onto_bare=True))
    np.testing.assert_allclose(restored, expected, rtol=1e-14)


@pytest.mark.torch
@pytest.mark.parametrize("onto_bare", [True, False])
def test_one_cycle_older_state_as_torch(onto_bare):
    torch = pytest.importorskip("torch")
    theirs = trajectory(*old_style_restore(torch, "cos", onto_bare))
    ours = trajectory(*old_style_restore(numoptim, "cos", onto_bare))
    np.testing.assert_allclose(ours, theirs, rtol=1e-14)


# Not LaProp: timm's LaProp keeps exp_avg_lr_1 as a tensor of a tensor lr's dtype and
# then multiplies and adds apart where a float lr fuses them (an array lr follows that,
# checked against timm in the registry's cases).
@pytest.mark.parametrize("name", [n for n in [*ELEMENTWISE, "Adafactor", "Muon"] if n != "LaProp"])
@pytest.mark.parametrize("lr", [np.array([0.01]), np.array([[0.01]]), np.array(0.01)])
def test_a_one_element_array_lr_steps_as_the_same_float(name, lr):
    # torch takes any one-element tensor as lr; NumPy 2's float() takes only 0-d arrays.
    def run(lr):
        p = numoptim.Parameter(np.linspace(-1, 1, 12).reshape(3, 4))
        optimizer = make_optimizer(name, [p], lr=lr)
        for k in range(3):
            p.grad = np.cos(np.arange(12.0) + k).reshape(3, 4)
            optimizer.step()
        return np.array(p)

    np.testing.assert_array_equal(run(lr), run(0.01))


def test_lbfgs_one_element_array_lr_steps_as_the_same_float():
    def run(lr):
        x = numoptim.Parameter(np.array([1.0, -2.0, 3.0]))

        def closure():
            x.grad = 2 * np.array(x)
            return float((x**2).sum())

        numoptim.LBFGS([x], lr=lr).step(closure)
        return np.array(x)

    np.testing.assert_array_equal(run(np.array([0.5])), run(0.5))
