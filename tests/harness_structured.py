"""Deterministic drivers for the optimizers that are not elementwise: LBFGS, Adafactor, Muon.

LBFGS runs on whole objectives through a closure: the Rosenbrock function and a
least-squares problem, whose loss and gradient are computed by the same NumPy code
for numoptim and for torch, so that only the optimizers differ.

Adafactor and Muon factor or orthogonalize matrices, so they run on a layout of
matrix parameters (and, for Adafactor, vectors and a 3-D tensor) instead of the 1-D
standard layout of harness.py. Inputs come from harness.hashed_values.
"""

from __future__ import annotations

import numpy as np
from harness import NumpyBackend, TorchBackend, hashed_values  # noqa: F401

# ------------------------------------------------------------------ LBFGS problems


def rosenbrock(x: np.ndarray):
    """The n-D Rosenbrock function and its gradient (minimum 0 at all ones)."""
    a, b = x[:-1], x[1:]
    loss = np.sum(100.0 * (b - a * a) ** 2 + (1.0 - a) ** 2)
    grad = np.zeros_like(x)
    grad[:-1] = -400.0 * a * (b - a * a) - 2.0 * (1.0 - a)
    grad[1:] += 200.0 * (b - a * a)
    return loss, grad


def least_squares_data(dtype):
    """A (40, 12) system; the unknowns are split into a (3, 3) matrix and a 3-vector."""
    A = hashed_values(501, 40 * 12, dtype).reshape(40, 12)
    b = hashed_values(502, 40, dtype)
    return A, b


# name -> (initial values of each parameter, loss-and-grads function of the values)
def lbfgs_problem(problem: str, dtype):
    """Initial parameter values and f(values) -> (loss, [grad per parameter])."""
    if problem == "rosenbrock":
        # Two parameters so that the flat concatenation is exercised: x[:3], x[3:].
        x0 = np.array([-1.2, 1.0, -0.8, 1.1, 0.3], dtype=dtype)

        def f(values):
            x = np.concatenate([v.reshape(-1) for v in values])
            loss, grad = rosenbrock(x)
            return float(loss), [grad[:3].copy(), grad[3:].copy()]

        return [x0[:3].copy(), x0[3:].copy()], f
    if problem == "least_squares":
        A, b = least_squares_data(dtype)
        init = [hashed_values(503, 9, dtype).reshape(3, 3), hashed_values(504, 3, dtype)]

        # Sums in NumPy's own order rather than BLAS's (`A @ x`), whose order depends on
        # the kernel OpenBLAS picks for the CPU: float32 runs are then the same on every
        # machine.
        def f(values):
            x = np.concatenate([v.reshape(-1) for v in values])
            r = (A * x).sum(axis=1) - b
            grad = (A * r[:, None]).sum(axis=0)
            return float(0.5 * (r * r).sum()), [grad[:9].reshape(3, 3).copy(), grad[9:].copy()]

        return init, f
    raise ValueError(problem)


LBFGS_PROBLEMS = ["rosenbrock", "least_squares"]
LBFGS_STEPS = 4


def run_lbfgs(
    backend,
    problem: str,
    kwargs: dict,
    dtype,
    steps: int = LBFGS_STEPS,
    optimizer=None,
    params=None,
):
    """Runs `steps` LBFGS steps; returns (optimizer, params, losses of every closure call).

    The first returned loss of each step is recorded too, as the last element of
    each step's list is the step's return value.
    """
    init, f = lbfgs_problem(problem, dtype)
    if params is None:
        params = [backend.parameter(v, False) for v in init]
    opt = optimizer or backend.optimizer("LBFGS", params, kwargs)
    calls: list[float] = []
    returned: list[float] = []

    def closure():
        loss, grads = f([backend.to_numpy(p) for p in params])
        for p, g in zip(params, grads):
            backend.set_grad(p, g)
        calls.append(loss)
        return loss

    for _ in range(steps):
        returned.append(float(opt.step(closure)))
    return opt, params, np.array(calls), np.array(returned)


LBFGS_CASES = [
    {},
    {"line_search_fn": "strong_wolfe"},
    {"lr": 0.5, "max_iter": 7, "history_size": 3},
    {"lr": 0.8, "max_iter": 9, "history_size": 4, "line_search_fn": "strong_wolfe"},
    {"max_iter": 30, "max_eval": 12, "tolerance_change": 1e-5, "line_search_fn": "strong_wolfe"},
    {"max_iter": 10},
]

# (problem, case index, dtype, steps) of every run compared with torch. Horizons are
# chosen so that a run ends before its loss reaches the rounding floor, where the last
# bits decide when to stop and runs no longer compare element by element.
# float32 Rosenbrock with the default max_iter=20 is left out: over its 20 to 26 closure
# calls the valley amplifies ulp differences to 1e-4 (no line search) and 3e-3
# (strong Wolfe) relative in one step, and torch's own float32 run is as far from the
# float64 one as numoptim's is (measured), so no element-wise tolerance is meaningful.
# float32 least squares with the default tolerances stops at that floor: within 14
# calls its loss changes by single ulps, and whether two calls return the same float32
# loss (the stop test, |change| < 1e-9) depends on the last bit of the dot products,
# which differs between torch's BLAS and NumPy's pairwise sums (13 iterations against
# 15). It runs with max_iter=10 instead (case 5), ending 1e-5 above the floor; that
# numoptim's own float32 counts do not depend on the CPU even at the floor is tested in
# test_process.py.
LBFGS_RUNS = (
    [
        ("rosenbrock", 0, "float64", 2),
        ("rosenbrock", 1, "float64", 1),
        ("rosenbrock", 2, "float64", 4),
        ("rosenbrock", 3, "float64", 4),
        ("rosenbrock", 4, "float64", 2),
        ("rosenbrock", 2, "float32", 2),
        ("rosenbrock", 3, "float32", 1),
        ("rosenbrock", 4, "float32", 1),
    ]
    + [("least_squares", i, "float64", 4) for i in range(5)]
    + [
        ("least_squares", 5, "float32", 1),
        ("least_squares", 2, "float32", 2),
        ("least_squares", 3, "float32", 1),
        ("least_squares", 4, "float32", 2),
    ]
)


def lbfgs_run_id(problem: str, case: int, dtype: str, steps: int) -> str:
    return f"{problem}-{case}-{dtype}-{steps}"


# ------------------------------------------------------- Adafactor / Muon layout

# Shapes by group. Adafactor also gets vectors, a 3-D tensor and a 0-d scalar; Muon
# only matrices (wide, tall, square, a single row and a single column).
ADAFACTOR_SHAPES = [[(7, 5), (17,), (3, 4, 6)], [(1, 9), (16, 1), (), (33, 20)]]
MUON_SHAPES = [[(7, 5), (5, 9), (16, 16)], [(1, 9), (12, 1), (33, 20)]]
MATRIX_STEPS = 20
MATRIX_NONE_GRAD_STEPS = {3: (0, 1), 10: (1, 0)}  # step -> (group, index) with grad None


def matrix_gradient(step: int, g: int, i: int, shape, dtype) -> np.ndarray:
    n = int(np.prod(shape, dtype=np.int64))
    return hashed_values(10**6 + 7919 * step + 1000 * g + i, n, dtype, scale=2.0).reshape(shape)


def run_matrix_case(
    backend,
    name: str,
    kwargs: dict,
    dtype,
    shapes_by_group,
    steps: int = MATRIX_STEPS,
    none_grads=None,
    second_group=None,
    optimizer=None,
    params=None,
    first_step: int = 0,
):
    """Runs `steps` steps of `name` on the given shapes; returns (optimizer, params).

    The second group gets `second_group` options (by default lr halved).
    """
    none_grads = MATRIX_NONE_GRAD_STEPS if none_grads is None else none_grads
    if params is None:
        params = [
            [
                backend.parameter(
                    hashed_values(1000 * g + i + 1, int(np.prod(s, dtype=np.int64)), dtype).reshape(
                        s
                    ),
                    False,
                )
                for i, s in enumerate(shapes)
            ]
            for g, shapes in enumerate(shapes_by_group)
        ]
    if optimizer is None:
        groups = [{"params": params[0]}]
        if len(params) > 1:
            extra = second_group
            if extra is None:
                extra = {"lr": float(kwargs.get("lr", 1e-2)) * 0.5}
            groups.append({"params": params[1], **extra})
        optimizer = backend.optimizer(name, groups, kwargs)
    for step in range(first_step, first_step + steps):
        for g, group in enumerate(params):
            for i, p in enumerate(group):
                skip = none_grads.get(step) == (g, i)
                grad = None if skip else matrix_gradient(step, g, i, p.shape, dtype)
                backend.set_grad(p, grad)
        optimizer.step()
    return optimizer, params


ADAFACTOR_CASES = [
    {},
    {"lr": 0.05, "weight_decay": 0.1},
    {"maximize": True, "d": 1.5},
    {"lr": 2e-3, "beta2_decay": -0.5, "eps": (1e-20, 1e-2), "weight_decay": 0.02},
    {"lr": np.array(0.01), "eps": (None, 0.0)},
]


MUON_CASES = [
    {"lr": 0.02},
    {"lr": 0.02, "nesterov": False, "weight_decay": 0.0},
    {"lr": 0.01, "momentum": 0.9, "adjust_lr_fn": "match_rms_adamw", "weight_decay": 0.05},
    {
        "lr": 0.02,
        "adjust_lr_fn": "original",
        "ns_steps": 3,
        "eps": 1e-3,
        "ns_coefficients": (2.0, -1.5, 0.5),
    },
    {"lr": np.array(0.02), "momentum": 0.0, "nesterov": False},
]
