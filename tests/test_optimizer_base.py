"""The Optimizer base class: construction, groups, zero_grad, hooks, repr, pickling.

Includes the examples of torch.optim's tutorial, as tests.
"""

from __future__ import annotations

import copy
import pickle

import numoptim
import numpy as np
import pytest
from numoptim import SGD, Adam, Optimizer, Parameter
from numoptim.optimizer import (
    register_optimizer_step_post_hook,
    register_optimizer_step_pre_hook,
    required,
)


def params(*shapes, dtype=np.float32):
    return [Parameter(np.full(s, i + 1.0, dtype=dtype)) for i, s in enumerate(shapes)]


# ---------------------------------------------------------------- tutorial examples


def test_tutorial_param_groups_keys():
    opt = SGD(params((2, 2)), lr=0.1, momentum=0.9)
    assert sorted(opt.param_groups[0]) == sorted(
        [
            "params",
            "lr",
            "momentum",
            "dampening",
            "weight_decay",
            "nesterov",
            "maximize",
            "foreach",
            "differentiable",
            "fused",
        ]
    )


def test_tutorial_parameter_identity():
    weight = Parameter(np.zeros((2, 2), np.float32))
    opt = SGD([weight], lr=0.1)
    assert opt.param_groups[0]["params"][0] is weight
    assert id(opt.param_groups[0]["params"][0]) == id(weight)


def test_tutorial_sgd_step_subtracts_grad():
    data = np.arange(4, dtype=np.float32).reshape(2, 2)
    weight = Parameter(data)
    weight.grad = np.ones((2, 2), np.float32)
    SGD([weight], lr=1).step()
    np.testing.assert_array_equal(weight, np.arange(4, dtype=np.float32).reshape(2, 2) - 1)
    assert np.shares_memory(weight, data)  # updated in place, in the caller's memory


def test_tutorial_zero_grad_sets_none():
    weight = Parameter(np.zeros((2, 2), np.float32))
    weight.grad = np.ones((2, 2), np.float32)
    opt = SGD([weight], lr=0.1)
    opt.zero_grad()
    assert weight.grad is None


def test_zero_grad_set_to_none_false_zeros_in_place():
    weight = Parameter(np.zeros((2, 2), np.float32))
    grad = np.ones((2, 2), np.float32)
    weight.grad = grad
    SGD([weight], lr=0.1).zero_grad(set_to_none=False)
    assert weight.grad is grad
    np.testing.assert_array_equal(grad, 0)


def test_tutorial_add_param_group():
    w1, w2 = params((2, 2), (3,))
    opt = SGD([w1], lr=0.1, momentum=0.9)
    opt.add_param_group({"params": w2, "lr": 0.0001})
    assert len(opt.param_groups) == 2
    assert opt.param_groups[1]["params"] == [w2] or opt.param_groups[1]["params"][0] is w2
    assert opt.param_groups[1]["lr"] == 0.0001
    assert opt.param_groups[1]["momentum"] == 0.9
    assert sorted(opt.param_groups[1]) == sorted(opt.param_groups[0])


def test_tutorial_load_state_dict_restores_lr():
    w = params((2, 2))
    saved = SGD(w, lr=0.1).state_dict()
    opt = SGD(w, lr=0.2)
    opt.load_state_dict(saved)
    assert opt.param_groups[0]["lr"] == 0.1


def test_tutorial_repr_after_training_loop():
    w = params((3,))
    opt = SGD(w, lr=0.1, momentum=0.9)
    for _ in range(3):
        w[0].grad = np.ones(3, np.float32)
        opt.step()
        opt.zero_grad()
    assert repr(opt) == (
        "SGD (\nParameter Group 0\n    dampening: 0\n    differentiable: False\n"
        "    foreach: None\n    fused: None\n    lr: 0.1\n    maximize: False\n"
        "    momentum: 0.9\n    nesterov: False\n    weight_decay: 0\n)"
    )


# ------------------------------------------------------------------- construction


def test_named_parameters_give_param_names():
    w, b = params((2, 2), (2,))
    opt = SGD([("weight", w), ("bias", b)], lr=0.1)
    assert opt.param_groups[0]["param_names"] == ["weight", "bias"]
    assert opt.param_groups[0]["params"][0] is w
    assert opt.state_dict()["param_groups"][0]["param_names"] == ["weight", "bias"]


def test_group_dicts_with_own_hyperparameters():
    w, b = params((2, 2), (2,))
    opt = Adam([{"params": [w]}, {"params": [b], "lr": 0.5, "betas": (0.8, 0.9)}], lr=0.1)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[1]["lr"] == 0.5
    assert opt.param_groups[1]["betas"] == (0.8, 0.9)


@pytest.mark.parametrize(
    "bad,exc,message",
    [
        (
            Parameter(np.zeros(3)),
            TypeError,
            (
                "params argument given to the optimizer should be an iterable of Tensors or dicts, "
                "but got numoptim.parameter.Parameter"
            ),
        ),
        ([], ValueError, "optimizer got an empty parameter list"),
        (
            [np.zeros(3)],
            TypeError,
            "optimizer can only optimize Parameters, but one of the params is numpy.ndarray",
        ),
        ({"params": set()}, TypeError, None),
    ],
)
def test_bad_params(bad, exc, message):
    if isinstance(bad, dict):
        w = params((2,))[0]
        opt = SGD([w])
        with pytest.raises(
            TypeError, match="optimizer parameters need to be organized in ordered collections"
        ):
            opt.add_param_group({"params": {w}})
        return
    with pytest.raises(exc) as info:
        SGD(bad)
    assert str(info.value) == message


def test_add_param_group_errors_leave_groups_unchanged():
    w1, w2, w3 = params((2,), (3,), (4,))
    opt = SGD([w1], lr=0.1)
    with pytest.raises(
        ValueError, match="^some parameters appear in more than one parameter group$"
    ):
        opt.add_param_group({"params": [w2, w1]})
    with pytest.raises(TypeError, match="^param_group must be a dict, but got <class 'list'>$"):
        opt.add_param_group([w2])
    with pytest.raises(
        ValueError,
        match="^all optimizer param groups should be with/without names. "
        "cannot add param group with names to the optimizer$",
    ):
        opt.add_param_group({"params": [("w2", w2)]})
    with pytest.raises(
        ValueError,
        match="^all optimizer params should be with/without names. Some param names are missing$",
    ):
        SGD([("a", w2), w3])
    assert len(opt.param_groups) == 1 and opt.param_groups[0]["params"][0] is w1


def test_required_hyperparameter():
    class Custom(Optimizer):
        def __init__(self, params, lr=required):
            super().__init__(params, {"lr": lr})

    w1, _w2 = params((2,), (3,))
    with pytest.raises(
        ValueError,
        match="^parameter group didn't specify a value of required optimization parameter lr$",
    ):
        Custom([w1])
    opt = Custom([{"params": [w1], "lr": 0.1}])
    assert opt.param_groups[0]["lr"] == 0.1
    assert repr(required) == "<required parameter>"


def test_duplicate_parameter_warns():
    (w,) = params((2,))
    with pytest.warns(
        UserWarning, match="optimizer contains a parameter group with duplicate parameters"
    ):
        SGD([w, w])


def test_single_parameter_in_group_becomes_list():
    (w,) = params((2,))
    opt = SGD([{"params": w}])
    assert isinstance(opt.param_groups[0]["params"], list)


# --------------------------------------------------------------- custom optimizer


class PlainGD(Optimizer):
    """The README's custom optimizer: plain gradient descent in pure Python."""

    def __init__(self, params, lr=0.1):
        super().__init__(params, {"lr": lr})

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p -= group["lr"] * p.grad
                    self.state[p]["steps"] = self.state[p].get("steps", 0) + 1
        return loss


def test_custom_pure_python_optimizer():
    w = Parameter(np.array([1.0, 2.0]))
    opt = PlainGD([w], lr=0.5)
    calls = []
    opt.register_step_pre_hook(lambda o, a, k: calls.append("pre"))
    w.grad = np.array([1.0, -1.0])
    assert opt.step(lambda: 3.0) == 3.0
    np.testing.assert_array_equal(w, [0.5, 2.5])
    assert calls == ["pre"]
    assert opt.state[w]["steps"] == 1
    assert opt.state_dict()["state"] == {0: {"steps": 1}}
    assert repr(opt) == "PlainGD (\nParameter Group 0\n    lr: 0.5\n)"


# -------------------------------------------------------------------- closure


def test_step_returns_closure_loss():
    (w,) = params((3,))
    w.grad = np.ones(3, np.float32)
    assert Adam([w]).step(lambda: 1.25) == 1.25
    assert Adam([w]).step() is None


def test_none_grad_parameters_are_skipped_and_get_no_state():
    w1, w2 = params((3,), (4,))
    w1.grad = np.ones(3, np.float32)
    before = np.array(w2)
    opt = Adam([w1, w2], lr=0.1)
    opt.step()
    np.testing.assert_array_equal(w2, before)
    assert w2 not in opt.state and len(opt.state) == 1


# ---------------------------------------------------------------------- hooks


def test_step_hooks_order_and_removal():
    (w,) = params((2,))
    w.grad = np.ones(2, np.float32)
    opt = SGD([w], lr=0.1)
    order = []
    g_pre = register_optimizer_step_pre_hook(lambda o, a, k: order.append("global pre"))
    g_post = register_optimizer_step_post_hook(lambda o, a, k: order.append("global post"))
    pre = opt.register_step_pre_hook(lambda o, a, k: order.append("pre"))
    post = opt.register_step_post_hook(lambda o, a, k: order.append("post"))
    try:
        opt.step()
        assert order == ["global pre", "pre", "post", "global post"]
    finally:
        g_pre.remove()
        g_post.remove()
    pre.remove()
    post.remove()
    order.clear()
    opt.step()
    assert order == []


def test_step_pre_hook_may_replace_args_and_must_return_pair():
    (w,) = params((2,))
    opt = SGD([w], lr=0.1)
    opt.register_step_pre_hook(lambda o, a, k: ((), {"closure": lambda: 7.0}))
    assert opt.step() == 7.0
    opt2 = SGD([w], lr=0.1)
    opt2.register_step_pre_hook(lambda o, a, k: 5)
    with pytest.raises(
        RuntimeError, match="must return None or a tuple of \\(new_args, new_kwargs\\), but got 5"
    ):
        opt2.step()


def test_state_dict_hooks():
    (w,) = params((2,))
    w.grad = np.ones(2, np.float32)
    opt = SGD([w], lr=0.1, momentum=0.9)
    opt.step()
    seen = []
    opt.register_state_dict_pre_hook(lambda o: seen.append("pre"))
    opt.register_state_dict_pre_hook(lambda o: seen.append("first"), prepend=True)

    def post(o, sd):
        sd["extra"] = 1
        return sd

    handle = opt.register_state_dict_post_hook(post)
    sd = opt.state_dict()
    assert seen == ["first", "pre"] and sd["extra"] == 1
    handle.remove()
    assert "extra" not in opt.state_dict()

    loaded = []

    def load_pre(o, sd):
        sd = dict(sd)
        sd["param_groups"] = [dict(g, lr=0.01) for g in sd["param_groups"]]
        return sd

    opt.register_load_state_dict_pre_hook(load_pre)
    opt.register_load_state_dict_post_hook(lambda o: loaded.append(o.param_groups[0]["lr"]))
    opt.load_state_dict(opt.state_dict())
    assert loaded == [0.01]


# --------------------------------------------------------- repr and pickling


def test_repr_several_groups_and_array_lr():
    w1, w2 = params((2,), (3,))
    opt = Adam([{"params": [w1]}, {"params": [w2], "lr": np.array(0.01, dtype=np.float32)}])
    text = repr(opt)
    assert text.startswith("Adam (\nParameter Group 0\n    amsgrad: False\n")
    assert "\nParameter Group 1\n" in text
    assert "    lr: 0.009999999776482582\n" in text  # as torch prints a float32 tensor lr
    assert text.endswith("    weight_decay: 0\n)")


@pytest.mark.parametrize("clone", [pickle.loads, copy.deepcopy])
def test_pickle_and_deepcopy_round_trip(clone):
    w1, w2 = params((5,), (3,))
    opt = Adam([w1, w2], lr=0.1)
    for _ in range(3):
        w1.grad = np.linspace(-1, 1, 5).astype(np.float32)
        w2.grad = np.ones(3, np.float32)
        opt.step()
    opt.register_step_pre_hook(lambda *a: None)
    data = pickle.dumps(opt) if clone is pickle.loads else opt
    other = clone(data)
    assert repr(other) == repr(opt)
    assert len(other._optimizer_step_pre_hooks) == 0  # hooks are not pickled, as torch
    p1, p2 = other.param_groups[0]["params"]
    np.testing.assert_array_equal(p1, w1)
    assert p1 is not w1 and other.state[p1]["exp_avg"] is not opt.state[w1]["exp_avg"]
    for key in ("step", "exp_avg", "exp_avg_sq"):
        np.testing.assert_array_equal(other.state[p1][key], opt.state[w1][key])
    # Both continue identically.
    for o, (a, b) in ((opt, (w1, w2)), (other, (p1, p2))):
        a.grad = np.full(5, 0.5, np.float32)
        b.grad = np.full(3, -0.5, np.float32)
        o.step()
    np.testing.assert_array_equal(p1, w1)
    np.testing.assert_array_equal(p2, w2)


def test_state_dict_layout_matches_torch():
    w, b = params((1, 2), (1,))
    opt = Adam([w, b], lr=0.1, amsgrad=True)
    w.grad = np.ones((1, 2), np.float32)
    b.grad = np.ones(1, np.float32)
    opt.step()
    opt.step()
    sd = opt.state_dict()
    assert list(sd) == ["state", "param_groups"]
    assert sorted(sd["state"]) == [0, 1]
    assert sorted(sd["state"][0]) == ["exp_avg", "exp_avg_sq", "max_exp_avg_sq", "step"]
    step = sd["state"][0]["step"]
    assert (
        isinstance(step, np.ndarray) and step.dtype == np.float32 and step.shape == () and step == 2
    )
    assert sd["state"][0]["exp_avg"] is opt.state[w]["exp_avg"]  # live arrays, as torch
    assert sd["param_groups"] == [
        {
            "lr": 0.1,
            "betas": (0.9, 0.999),
            "eps": 1e-08,
            "weight_decay": 0,
            "amsgrad": True,
            "maximize": False,
            "foreach": None,
            "capturable": False,
            "differentiable": False,
            "fused": None,
            "decoupled_weight_decay": False,
            "params": [0, 1],
        }
    ]


def test_state_dict_ids_continue_across_groups():
    w1, w2, w3 = params((2,), (2,), (2,))
    opt = SGD([{"params": [w1, w2]}, {"params": [w3]}], lr=0.1)
    assert [g["params"] for g in opt.state_dict()["param_groups"]] == [[0, 1], [2]]


def test_load_state_dict_casts_to_param_dtype_and_copies():
    w64 = Parameter(np.zeros(3))
    opt = SGD([w64], lr=0.1, momentum=0.9)
    saved = {
        "state": {0: {"momentum_buffer": np.ones(3, np.float32)}},
        "param_groups": [dict(opt.state_dict()["param_groups"][0])],
    }
    opt.load_state_dict(saved)
    buf = opt.state[w64]["momentum_buffer"]
    assert buf.dtype == np.float64 and buf.flags.c_contiguous and buf.flags.writeable
    assert buf is not saved["state"][0]["momentum_buffer"]


def test_load_state_dict_converts_python_step():
    (w,) = params((3,))
    opt = Adam([w])
    sd = {
        "state": {0: {"step": 5, "exp_avg": np.zeros(3), "exp_avg_sq": np.zeros(3)}},
        "param_groups": opt.state_dict()["param_groups"],
    }
    opt.load_state_dict(sd)
    step = opt.state[w]["step"]
    assert step.dtype == np.float32 and step.shape == () and step == 5


@pytest.mark.parametrize(
    "mutate,message",
    [
        (
            lambda sd: sd["param_groups"].append(dict(sd["param_groups"][0])),
            "loaded state dict has a different number of parameter groups",
        ),
        (
            lambda sd: sd["param_groups"][0]["params"].append(9),
            "loaded state dict contains a parameter group that doesn't match the size of optimizer's group",
        ),
        (
            lambda sd: sd["state"][0].__setitem__("exp_avg", np.zeros(4, np.float32)),
            "loaded state dict has a 'exp_avg' of shape (4,) for a parameter of shape (3,)",
        ),
    ],
)
def test_bad_state_dict_raises_and_leaves_optimizer_unchanged(mutate, message):
    (w,) = params((3,))
    w.grad = np.ones(3, np.float32)
    opt = Adam([w], lr=0.1)
    opt.step()
    sd = copy.deepcopy(opt.state_dict())
    mutate(sd)
    groups_before = copy.deepcopy(
        [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    )
    state_before = {k: np.array(v) for k, v in opt.state[w].items()}
    sd["param_groups"][0]["lr"] = 123.0
    with pytest.raises(ValueError) as info:
        opt.load_state_dict(sd)
    assert str(info.value) == message
    assert [
        {k: v for k, v in g.items() if k != "params"} for g in opt.param_groups
    ] == groups_before
    for k, v in state_before.items():
        np.testing.assert_array_equal(opt.state[w][k], v)


def test_load_state_dict_missing_param_groups_is_key_error():
    (w,) = params((3,))
    with pytest.raises(KeyError):
        SGD([w]).load_state_dict({"state": {}})


def test_package_exports_torch_names():
    for name in [
        "SGD",
        "Adam",
        "AdamW",
        "Optimizer",
        "Parameter",
        "save",
        "load",
        "set_num_threads",
        "get_num_threads",
        "show_config",
    ]:
        assert hasattr(numoptim, name), name
    assert numoptim.optimizer.required is required
