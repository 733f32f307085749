"""Scheduler configurations and the driver that runs them with numoptim or with torch.

One registry (CASES) feeds the golden fixture generator and the tests, so both run
exactly the same construction and the same sequence of calls. A case builds its
scheduler from ``lib``, a namespace holding the scheduler classes of one library
(``numoptim.lr_scheduler`` + ``SWALR``, or torch's), so one lambda serves both.

Every run uses two parameter groups with different base lrs (0.1 and 0.03), SGD with
momentum (or Adam, for the cases that cycle ``betas[0]``), and records after
construction and after each step: each group's lr, each group's momentum (or beta1),
and ``get_last_lr()``. The same case is also run with a state_dict resume half-way:
fresh optimizer and scheduler, then both ``load_state_dict`` calls.
"""

from __future__ import annotations

import copy
import math
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

STEPS = 64
RESUME_AT = 32
LRS = (0.1, 0.03)

# A fixed metric sequence for ReduceLROnPlateau: improvements, plateaus, small
# (sub-threshold) changes and a rise, so every branch of its logic is taken.
METRICS = [
    1.0 / (1 + i // 9) + 1e-5 * ((i * 37) % 7) + (0.05 if 40 <= i < 44 else 0.0)
    for i in range(STEPS)
]

# The epochs handed to the deprecated step(epoch): forwards, repeated, and back.
EPOCHS = [1, 2, 3, 5, 8, 8, 13, 21, 20, 34, 35, 36, 50, 49, 60, 64] + list(range(16, 64))


class Factor:
    """A callable object lr_lambda with state (saved in state_dict, unlike a lambda)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate

    def __call__(self, epoch: int) -> float:
        return self.rate**epoch


class Wave:
    """A callable object scale_fn for CyclicLR."""

    def __init__(self, depth: float) -> None:
        self.depth = depth

    def __call__(self, x: float) -> float:
        return 1.0 - self.depth * (1 - math.cos(x)) / 2


@dataclass
class Case:
    """One scheduler configuration and how it is driven."""

    build: Callable[[Any, Any], Any]
    optimizer: str = "sgd"  # "sgd" (momentum 0.9) or "adam" (betas (0.9, 0.999))
    driver: str = "plain"  # plain | epoch | float_epoch | metrics
    array_lr: bool = False  # lrs as 0-d float64 arrays (torch: float64 Tensors)
    preset_initial_lr: bool = False  # groups carry initial_lr (for last_epoch resumes)
    resume: bool = True
    steps: int = STEPS
    extra: dict = field(default_factory=dict)


def _seq_build(lib, opt):
    return lib.SequentialLR(
        opt,
        [lib.LinearLR(opt, 0.1, total_iters=10), lib.CosineAnnealingLR(opt, T_max=50)],
        milestones=[10],
    )


CASES: dict[str, Case] = {
    # LambdaLR / MultiplicativeLR: a lambda, one per group, a callable object.
    "LambdaLR/lambda": Case(lambda lib, o: lib.LambdaLR(o, lambda e: 0.95**e)),
    "LambdaLR/per_group": Case(
        lambda lib, o: lib.LambdaLR(o, [lambda e: 1 / (1 + e), lambda e: 0.5 ** (e // 10)])
    ),
    "LambdaLR/object": Case(lambda lib, o: lib.LambdaLR(o, Factor(0.97))),
    "MultiplicativeLR/lambda": Case(lambda lib, o: lib.MultiplicativeLR(o, lambda e: 0.97)),
    "MultiplicativeLR/per_group": Case(
        lambda lib, o: lib.MultiplicativeLR(o, [lambda e: 0.99, Factor(0.999)])
    ),
    "StepLR/7_0.5": Case(lambda lib, o: lib.StepLR(o, 7, 0.5)),
    "StepLR/default_gamma": Case(lambda lib, o: lib.StepLR(o, step_size=10)),
    "StepLR/array_lr": Case(lambda lib, o: lib.StepLR(o, 5, 0.7), array_lr=True),
    "StepLR/last_epoch": Case(
        lambda lib, o: lib.StepLR(o, 7, 0.5, last_epoch=12), preset_initial_lr=True
    ),
    "MultiStepLR/repeated": Case(lambda lib, o: lib.MultiStepLR(o, [5, 20, 20, 41], 0.5)),
    "MultiStepLR/unsorted": Case(lambda lib, o: lib.MultiStepLR(o, [30, 10])),
    "ConstantLR/default": Case(lambda lib, o: lib.ConstantLR(o)),
    "ConstantLR/0.5_10": Case(lambda lib, o: lib.ConstantLR(o, factor=0.5, total_iters=10)),
    "LinearLR/default": Case(lambda lib, o: lib.LinearLR(o)),
    "LinearLR/up": Case(lambda lib, o: lib.LinearLR(o, 0.1, 0.9, total_iters=30)),
    "LinearLR/down": Case(lambda lib, o: lib.LinearLR(o, 1.0, 0.0, total_iters=40)),
    "ExponentialLR/0.95": Case(lambda lib, o: lib.ExponentialLR(o, 0.95)),
    "ExponentialLR/last_epoch": Case(
        lambda lib, o: lib.ExponentialLR(o, 0.9, last_epoch=5), preset_initial_lr=True
    ),
    "PolynomialLR/default": Case(lambda lib, o: lib.PolynomialLR(o)),
    "PolynomialLR/40_2": Case(lambda lib, o: lib.PolynomialLR(o, total_iters=40, power=2.0)),
    "PolynomialLR/30_0.5": Case(lambda lib, o: lib.PolynomialLR(o, 30, 0.5)),
    "CosineAnnealingLR/periodic": Case(lambda lib, o: lib.CosineAnnealingLR(o, T_max=10)),
    "CosineAnnealingLR/eta_min": Case(lambda lib, o: lib.CosineAnnealingLR(o, 25, 0.001)),
    "CosineAnnealingLR/array_lr": Case(
        lambda lib, o: lib.CosineAnnealingLR(o, 12, 0.002), array_lr=True
    ),
    "CosineAnnealingLR/last_epoch": Case(
        lambda lib, o: lib.CosineAnnealingLR(o, 20, 0.001, last_epoch=7), preset_initial_lr=True
    ),
    "CosineAnnealingWarmRestarts/10": Case(lambda lib, o: lib.CosineAnnealingWarmRestarts(o, 10)),
    "CosineAnnealingWarmRestarts/5_2": Case(
        lambda lib, o: lib.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=2, eta_min=0.001)
    ),
    "CosineAnnealingWarmRestarts/float_epoch": Case(
        lambda lib, o: lib.CosineAnnealingWarmRestarts(o, 3, 2, 0.0005), driver="float_epoch"
    ),
    "CosineAnnealingWarmRestarts/float_epoch_T1": Case(
        lambda lib, o: lib.CosineAnnealingWarmRestarts(o, 4), driver="float_epoch"
    ),
    "CyclicLR/triangular": Case(lambda lib, o: lib.CyclicLR(o, 0.01, 0.1, step_size_up=5)),
    "CyclicLR/triangular2": Case(
        lambda lib, o: lib.CyclicLR(o, 0.001, [0.1, 0.05], 4, 6, mode="triangular2")
    ),
    "CyclicLR/exp_range": Case(
        lambda lib, o: lib.CyclicLR(
            o, [0.01, 0.003], 0.2, 3, mode="exp_range", gamma=0.97, base_momentum=[0.8, 0.7]
        )
    ),
    "CyclicLR/scale_fn_cycle": Case(
        lambda lib, o: lib.CyclicLR(o, 0.01, 0.1, 5, scale_fn=lambda x: 1 / (1 + x))
    ),
    "CyclicLR/scale_fn_iterations": Case(
        lambda lib, o: lib.CyclicLR(o, 0.01, 0.1, 4, scale_fn=Wave(0.5), scale_mode="iterations")
    ),
    "CyclicLR/adam_betas": Case(
        lambda lib, o: lib.CyclicLR(o, 0.001, 0.01, 6, base_momentum=0.85, max_momentum=0.95),
        optimizer="adam",
    ),
    "CyclicLR/no_momentum": Case(
        lambda lib, o: lib.CyclicLR(o, 0.001, 0.01, 6, cycle_momentum=False), optimizer="adam"
    ),
    "OneCycleLR/cos": Case(lambda lib, o: lib.OneCycleLR(o, [0.5, 0.2], total_steps=STEPS)),
    "OneCycleLR/linear": Case(
        lambda lib, o: lib.OneCycleLR(o, 0.4, STEPS, anneal_strategy="linear", pct_start=0.25)
    ),
    "OneCycleLR/three_phase_cos": Case(
        lambda lib, o: lib.OneCycleLR(o, 0.3, epochs=8, steps_per_epoch=8, three_phase=True)
    ),
    "OneCycleLR/three_phase_linear_adam": Case(
        lambda lib, o: lib.OneCycleLR(
            o, 0.01, 70, anneal_strategy="linear", three_phase=True, base_momentum=[0.8, 0.85]
        ),
        optimizer="adam",
    ),
    "OneCycleLR/no_momentum": Case(
        lambda lib, o: lib.OneCycleLR(
            o, 0.2, 100, cycle_momentum=False, div_factor=10.0, final_div_factor=100.0
        )
    ),
    "SequentialLR/warmup_cosine": Case(_seq_build),
    "SequentialLR/three": Case(
        lambda lib, o: lib.SequentialLR(
            o,
            [lib.ConstantLR(o, 0.5, 5), lib.ExponentialLR(o, 0.95), lib.StepLR(o, 10, 0.5)],
            milestones=[8, 30],
        )
    ),
    "SequentialLR/chain_first": Case(
        lambda lib, o: lib.SequentialLR(
            o,
            [
                lib.ChainedScheduler(
                    [lib.LinearLR(o, 0.2, total_iters=6), lib.ExponentialLR(o, 0.98)]
                ),
                lib.MultiStepLR(o, [10, 30], 0.3),
            ],
            milestones=[12],
        )
    ),
    "ChainedScheduler/const_exp": Case(
        lambda lib, o: lib.ChainedScheduler([lib.ConstantLR(o, 0.5, 4), lib.ExponentialLR(o, 0.97)])
    ),
    "ChainedScheduler/three": Case(
        lambda lib, o: lib.ChainedScheduler(
            [
                lib.LinearLR(o, 0.25, total_iters=8),
                lib.CosineAnnealingLR(o, 20),
                lib.MultiStepLR(o, [40], 0.5),
            ],
            optimizer=o,
        )
    ),
    "ReduceLROnPlateau/min_rel": Case(
        lambda lib, o: lib.ReduceLROnPlateau(o, patience=3), driver="metrics"
    ),
    "ReduceLROnPlateau/min_abs_cooldown": Case(
        lambda lib, o: lib.ReduceLROnPlateau(
            o,
            factor=0.5,
            patience=2,
            threshold=1e-3,
            threshold_mode="abs",
            cooldown=3,
            min_lr=[0.01, 0.001],
        ),
        driver="metrics",
    ),
    "ReduceLROnPlateau/max_rel": Case(
        lambda lib, o: lib.ReduceLROnPlateau(o, "max", 0.3, 1, threshold=0.01), driver="metrics"
    ),
    "ReduceLROnPlateau/max_abs_eps": Case(
        lambda lib, o: lib.ReduceLROnPlateau(
            o, mode="max", patience=0, threshold_mode="abs", min_lr=0.002, eps=1e-3
        ),
        driver="metrics",
    ),
    "SWALR/cos": Case(lambda lib, o: lib.SWALR(o, swa_lr=0.05, anneal_epochs=5)),
    "SWALR/linear_per_group": Case(
        lambda lib, o: lib.SWALR(o, [0.01, 0.02], anneal_epochs=20, anneal_strategy="linear")
    ),
    "SWALR/no_anneal": Case(lambda lib, o: lib.SWALR(o, 0.02, anneal_epochs=0)),
}

# The deprecated step(epoch) path (closed forms, or get_lr where there is none).
for _name, _build in {
    "StepLR": lambda lib, o: lib.StepLR(o, 7, 0.5),
    "MultiStepLR": lambda lib, o: lib.MultiStepLR(o, [5, 20, 20, 41], 0.5),
    "ConstantLR": lambda lib, o: lib.ConstantLR(o, 0.5, 10),
    "LinearLR": lambda lib, o: lib.LinearLR(o, 0.1, 0.9, 30),
    "ExponentialLR": lambda lib, o: lib.ExponentialLR(o, 0.95),
    "PolynomialLR": lambda lib, o: lib.PolynomialLR(o, 40, 2.0),
    "CosineAnnealingLR": lambda lib, o: lib.CosineAnnealingLR(o, 10, 0.001),
    "LambdaLR": lambda lib, o: lib.LambdaLR(o, lambda e: 0.95**e),
    "ReduceLROnPlateau": lambda lib, o: lib.ReduceLROnPlateau(o, patience=2),
}.items():
    CASES[f"{_name}/step_epoch"] = Case(
        _build,
        driver="metrics_epoch" if _name == "ReduceLROnPlateau" else "epoch",
        resume=False,
        steps=len(EPOCHS),
    )


# ------------------------------------------------------------------------ backends


def numoptim_lib():
    """The numoptim namespace of scheduler classes."""
    from numoptim import lr_scheduler, swa_utils

    return types.SimpleNamespace(**vars(lr_scheduler), SWALR=swa_utils.SWALR)


def torch_lib():
    """torch's namespace of scheduler classes."""
    from torch.optim import lr_scheduler
    from torch.optim.swa_utils import SWALR

    return types.SimpleNamespace(**vars(lr_scheduler), SWALR=SWALR)


def make_optimizer(backend: str, kind: str, array_lr: bool = False, preset: bool = False):
    """Two groups (lr 0.1 and 0.03) of one 2-element parameter each, for one backend."""
    if backend == "torch":
        import torch

        def lr(v):
            return torch.tensor(v, dtype=torch.float64) if array_lr else v

        params = [torch.nn.Parameter(torch.zeros(2, dtype=torch.float64)) for _ in LRS]
        groups = [{"params": [p], "lr": lr(v)} for p, v in zip(params, LRS)]
        cls = torch.optim.SGD if kind == "sgd" else torch.optim.Adam
    else:
        import numoptim

        def lr(v):
            return np.array(v, dtype=np.float64) if array_lr else v

        params = [numoptim.Parameter(np.zeros(2)) for _ in LRS]
        groups = [{"params": [p], "lr": lr(v)} for p, v in zip(params, LRS)]
        cls = numoptim.SGD if kind == "sgd" else numoptim.Adam
    opt = cls(groups, lr=LRS[0], momentum=0.9) if kind == "sgd" else cls(groups, lr=LRS[0])
    if preset:
        for group, initial_lr in zip(opt.param_groups, LRS):
            group["initial_lr"] = initial_lr
    return opt


def _momentum(group: dict) -> float:
    return float(group["betas"][0]) if "betas" in group else float(group["momentum"])


def _record(opt, sched, rows: dict[str, list]) -> None:
    rows["lr"].append([float(g["lr"]) for g in opt.param_groups])
    rows["momentum"].append([_momentum(g) for g in opt.param_groups])
    rows["last_lr"].append([float(v) for v in sched.get_last_lr()])


def _advance(case: Case, opt, sched, i: int) -> None:
    opt.step()
    with warnings.catch_warnings():
        # The deprecated step(epoch) warns; the tests check that warning separately.
        warnings.simplefilter("ignore", UserWarning)
        if case.driver == "plain":
            sched.step()
        elif case.driver == "metrics":
            sched.step(METRICS[i])
        elif case.driver == "metrics_epoch":
            sched.step(METRICS[i], EPOCHS[i])
        elif case.driver == "epoch":
            sched.step(EPOCHS[i])
        elif case.driver == "float_epoch":
            sched.step(i / 3 + 0.25 * (i % 3))  # fractional, not monotonic within a batch
        else:
            raise ValueError(case.driver)


def run(case: Case, backend: str, lib) -> dict[str, np.ndarray]:
    """Runs a case; returns the traces as float64 arrays of shape (steps + 1, 2).

    Keys: ``lr``, ``momentum``, ``last_lr`` (uninterrupted), ``build_warnings`` (the
    warnings the constructor gave, as "Category: message"), and, for resumable cases,
    ``resume_lr``, ``resume_momentum``, ``resume_last_lr``: the steps after a
    state_dict round trip at step RESUME_AT (shape (steps - RESUME_AT, 2)).
    """

    def fresh():
        opt = make_optimizer(backend, case.optimizer, case.array_lr, case.preset_initial_lr)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sched = case.build(lib, opt)
        return opt, sched, [f"{w.category.__name__}: {w.message}" for w in caught]

    opt, sched, build_warnings = fresh()
    rows: dict[str, list] = {"lr": [], "momentum": [], "last_lr": []}
    _record(opt, sched, rows)
    saved = None
    for i in range(case.steps):
        _advance(case, opt, sched, i)
        _record(opt, sched, rows)
        if i + 1 == RESUME_AT and case.resume:
            saved = copy.deepcopy(opt.state_dict()), copy.deepcopy(sched.state_dict())
    out = {k: np.array(v, dtype=np.float64) for k, v in rows.items()}
    out["build_warnings"] = np.array(build_warnings, dtype=str)
    if saved is not None:
        opt, sched, _ = fresh()
        opt.load_state_dict(saved[0])
        sched.load_state_dict(saved[1])
        resumed: dict[str, list] = {"lr": [], "momentum": [], "last_lr": []}
        for i in range(RESUME_AT, case.steps):
            _advance(case, opt, sched, i)
            _record(opt, sched, resumed)
        out.update({f"resume_{k}": np.array(v, dtype=np.float64) for k, v in resumed.items()})
    return out
