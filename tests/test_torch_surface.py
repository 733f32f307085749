"""Constructor signatures and __repr__ equal to torch's, live (skipped without torch).

Only the optimizers listed here; each engineer adds the ones they own.
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
}


@pytest.mark.parametrize("name", list(NAMES))
def test_signature_matches_torch(name):
    torch = pytest.importorskip("torch")
    ours = inspect.signature(getattr(numoptim, name).__init__).parameters
    theirs = inspect.signature(getattr(torch.optim, name).__init__).parameters
    assert list(ours) == list(theirs)
    for key in theirs:
        assert ours[key].kind == theirs[key].kind, key
        assert ours[key].default == theirs[key].default, key


@pytest.mark.parametrize("name", list(NAMES))
def test_repr_matches_torch(name):
    torch = pytest.importorskip("torch")
    kwargs = NAMES[name]
    ours = [numoptim.Parameter(np.zeros(3, np.float32)) for _ in range(2)]
    theirs = [torch.nn.Parameter(torch.zeros(3)) for _ in range(2)]
    opt = getattr(numoptim, name)([{"params": ours[:1]}, {"params": ours[1:], "lr": 0.5}], **kwargs)
    topt = getattr(torch.optim, name)(
        [{"params": theirs[:1]}, {"params": theirs[1:], "lr": 0.5}], **kwargs
    )
    assert repr(opt) == repr(topt)
    assert opt.defaults == topt.defaults
    assert [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups] == [
        {k: v for k, v in g.items() if k != "params"} for g in topt.param_groups
    ]
