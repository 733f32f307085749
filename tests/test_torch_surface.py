"""Constructor signatures and __repr__ equal to torch's, live (skipped without torch).

Every optimizer class of torch.optim 2.13, including the base class's signature.
"""

from __future__ import annotations

import inspect

import numoptim
import numpy as np
import pytest

pytestmark = pytest.mark.torch

# name -> constructor kwargs used for the repr comparison (several groups are added).
NAMES = {
    "Adagrad": {"lr": 0.05, "lr_decay": 0.1, "initial_accumulator_value": 0.2, "fused": True},
    "RMSprop": {"lr": 0.02, "momentum": 0.9, "centered": True},
    "Adadelta": {"rho": 0.8, "weight_decay": 0.01},
    "Adamax": {"betas": (0.8, 0.99), "maximize": True},
    "SGD": {"lr": 0.1, "momentum": 0.9, "nesterov": True},
    "Adam": {"lr": 0.01, "amsgrad": True},
    "AdamW": {"lr": 0.01, "weight_decay": 0.1},
    "NAdam": {"lr": 0.01, "momentum_decay": 0.01, "decoupled_weight_decay": True},
    "RAdam": {"lr": 0.01, "weight_decay": 0.1},
    "ASGD": {"lr": 0.01, "t0": 10},
    "Rprop": {"lr": 0.01, "etas": (0.4, 1.3)},
    "SparseAdam": {"lr": 0.01},
    "LBFGS": {"lr": 0.5, "history_size": 5},
    "Adafactor": {"lr": 0.01, "d": 2.0},
    "Muon": {"lr": 0.01, "nesterov": False},
}


def test_every_torch_optimizer_exists():
    torch = pytest.importorskip("torch")
    theirs = {
        name
        for name in torch.optim.__all__
        if isinstance(getattr(torch.optim, name), type)
        and issubclass(getattr(torch.optim, name), torch.optim.Optimizer)
    }
    assert theirs <= set(NAMES) | {"Optimizer"}
    for name in theirs:
        assert issubclass(getattr(numoptim, name), numoptim.Optimizer), name


@pytest.mark.parametrize("name", list(NAMES))
def test_signature_matches_torch(name):
    torch = pytest.importorskip("torch")
    ours = inspect.signature(getattr(numoptim, name).__init__).parameters
    theirs = inspect.signature(getattr(torch.optim, name).__init__).parameters
    # numoptim may add keyword-only options after torch's (Muon's ns_dtype), nothing else.
    assert list(ours)[: len(theirs)] == list(theirs)
    for extra in list(ours)[len(theirs) :]:
        assert ours[extra].kind == inspect.Parameter.KEYWORD_ONLY, extra
    for key in theirs:
        assert ours[key].kind == theirs[key].kind, key
        assert ours[key].default == theirs[key].default, key


@pytest.mark.parametrize("name", list(NAMES))
def test_repr_matches_torch(name):
    torch = pytest.importorskip("torch")
    kwargs = NAMES[name]
    ours = [numoptim.Parameter(np.zeros((3, 2), np.float32)) for _ in range(2)]
    theirs = [torch.nn.Parameter(torch.zeros(3, 2)) for _ in range(2)]
    if name == "LBFGS":  # one parameter group only
        opt, topt = numoptim.LBFGS(ours, **kwargs), torch.optim.LBFGS(theirs, **kwargs)
    else:
        opt = getattr(numoptim, name)(
            [{"params": ours[:1]}, {"params": ours[1:], "lr": 0.5}], **kwargs
        )
        topt = getattr(torch.optim, name)(
            [{"params": theirs[:1]}, {"params": theirs[1:], "lr": 0.5}], **kwargs
        )
    assert repr(opt) == repr(topt)
    assert opt.defaults == topt.defaults
    assert [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups] == [
        {k: v for k, v in g.items() if k != "params"} for g in topt.param_groups
    ]
