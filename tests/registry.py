"""The one registry every generic test runs over: each optimizer and its configurations.

Adding an optimizer to the test suite is one entry here. Each configuration is the
keyword arguments of its constructor; the generic battery (test_optimizers.py), the
golden fixtures (fixtures/make_fixtures.py) and the live torch parity tests all read it.
"""

from __future__ import annotations

import itertools

import numpy as np


def _product(**options):
    """Every combination of the given option values, as a list of kwargs dicts."""
    keys = list(options)
    return [dict(zip(keys, values)) for values in itertools.product(*options.values())]


def _sgd_cases():
    cases = []
    for c in _product(
        momentum=[0, 0.9],
        dampening=[0, 0.25],
        nesterov=[False, True],
        weight_decay=[0, 0.05],
        maximize=[False, True],
    ):
        if c["nesterov"] and (c["momentum"] == 0 or c["dampening"] != 0):
            continue
        cases.append({"lr": 0.05, **c})
    cases.append({"lr": np.array(0.05), "momentum": 0.9})
    return cases


def _adam_cases(decoupled_default: bool):
    cases = []
    for c in _product(
        amsgrad=[False, True],
        weight_decay=[0, 0.1],
        maximize=[False, True],
        decoupled_weight_decay=[False, True],
    ):
        if decoupled_default:
            if not c.pop("decoupled_weight_decay"):
                continue
        cases.append({"lr": 0.01, **c})
    cases.append({"lr": 0.02, "betas": (0.5, 0.9), "eps": 1e-3})
    cases.append({"lr": np.array(0.01), "amsgrad": True})  # a 0-d array lr, as a tensor lr
    return cases


# name -> list of constructor kwargs (params excluded).
OPTIMIZERS: dict[str, list[dict]] = {
    "SGD": _sgd_cases(),
    "Adam": _adam_cases(decoupled_default=False),
    "AdamW": _adam_cases(decoupled_default=True),
}

# Configurations (by index) also checked on one tensor of 2^20+3 elements.
LARGE: dict[str, list[int]] = {"SGD": [14], "Adam": [15], "AdamW": [3]}

# Optimizers whose update is elementwise, so that every element can be compared and
# results must be bit-identical across threads and SIMD levels.
ELEMENTWISE = ["SGD", "Adam", "AdamW"]

# Configurations that must be rejected: (name, kwargs, exception type, message start).
INVALID: list[tuple[str, dict, type, str]] = [
    ("SGD", {"lr": -0.1}, ValueError, "Invalid learning rate: -0.1"),
    ("SGD", {"lr": np.array([0.1, 0.2])}, ValueError, "Tensor lr must be 1-element"),
    ("SGD", {"momentum": -0.5}, ValueError, "Invalid momentum value: -0.5"),
    ("SGD", {"weight_decay": -1.0}, ValueError, "Invalid weight_decay value: -1.0"),
    ("SGD", {"nesterov": True}, ValueError, "Nesterov momentum requires a momentum and zero dampening"),
    ("SGD", {"nesterov": True, "momentum": 0.9, "dampening": 0.1}, ValueError, "Nesterov momentum requires"),
    ("SGD", {"differentiable": True}, ValueError, "differentiable=True is not supported"),
    ("SGD", {"fused": True, "foreach": True}, RuntimeError, "`fused` and `foreach` cannot be `True` together."),
    ("Adam", {"lr": -1e-3}, ValueError, "Invalid learning rate: -0.001"),
    ("Adam", {"eps": -1.0}, ValueError, "Invalid epsilon value: -1.0"),
    ("Adam", {"betas": (1.0, 0.999)}, ValueError, "Invalid beta parameter at index 0: 1.0"),
    ("Adam", {"betas": (0.9, -0.1)}, ValueError, "Invalid beta parameter at index 1: -0.1"),
    ("Adam", {"weight_decay": -0.1}, ValueError, "Invalid weight_decay value: -0.1"),
    ("Adam", {"betas": (0, 0.99)}, ValueError, "betas must be either both floats or both Tensors"),
    ("Adam", {"capturable": True}, ValueError, "capturable=True is not supported"),
    ("Adam", {"differentiable": True}, ValueError, "differentiable=True is not supported"),
    ("AdamW", {"lr": -1.0}, ValueError, "Invalid learning rate: -1.0"),
    ("AdamW", {"betas": (0.9, 1.5)}, ValueError, "Invalid beta parameter at index 1: 1.5"),
    ("AdamW", {"capturable": True}, ValueError, "capturable=True is not supported"),
    ("LBFGS", {"lr": -1.0}, ValueError, "Invalid learning rate: -1.0"),
    ("LBFGS", {"lr": np.array([1.0, 2.0])}, ValueError, "Tensor lr must be 1-element"),
    ("Adafactor", {"lr": -0.01}, ValueError, "Learning rate should be >= 0 but is: -0.01"),
    ("Adafactor", {"lr": np.array([0.1, 0.2])}, ValueError, "Tensor lr must be 1-element"),
    ("Adafactor", {"beta2_decay": 0.5}, ValueError, "beta2_decay should be <= 0 but is: 0.5"),
    ("Adafactor", {"eps": (-1e-30, 1e-3)}, ValueError, "epsilon1 should be >= 0 but is: -1e-30"),
    ("Adafactor", {"eps": (None, -1e-3)}, ValueError, "epsilon2 should be >= 0 but is: -0.001"),
    ("Adafactor", {"d": 0.5}, ValueError, "Clipping threshold d should be >= 1 but is: 0.5"),
    ("Adafactor", {"weight_decay": -0.1}, ValueError, "weight_decay should be >= 0 but is: -0.1"),
    ("Muon", {"lr": -0.02}, ValueError, "Learning rate should be >= 0 but is: -0.02"),
    ("Muon", {"lr": np.array([0.1, 0.2])}, ValueError, "Tensor lr must be 1-element"),
    ("Muon", {"momentum": -0.9}, ValueError, "momentum should be >= 0 but is: -0.9"),
    ("Muon", {"weight_decay": -0.1}, ValueError, "weight decay should be >= 0 but is: -0.1"),
    ("Muon", {"adjust_lr_fn": "adam"}, ValueError, "Adjust learning rate function adam is not supported"),
]


def case_ids(name: str) -> list[str]:
    """Stable ids of an optimizer's configurations: "Adam-0", "Adam-1", ..."""
    return [f"{name}-{i}" for i in range(len(OPTIMIZERS[name]))]


def all_cases():
    """(case id, name, kwargs) for every configuration of every optimizer."""
    for name, configs in OPTIMIZERS.items():
        for i, kwargs in enumerate(configs):
            yield f"{name}-{i}", name, kwargs
