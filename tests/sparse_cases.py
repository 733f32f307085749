"""Deterministic row-sparse scenarios, run with numoptim or with torch.

Shared by tests/test_sparse.py and tests/fixtures/make_sparse_fixtures.py. Each step
gives every parameter a row-sparse gradient with unsorted and repeated row indices
(torch's uncoalesced sparse COO tensor, as nn.Embedding(sparse=True) produces); some
steps give a gradient with no rows or no gradient at all. SGD scenarios also have one
parameter with dense gradients in the same group.
"""

from __future__ import annotations

import numpy as np
from harness import hashed_values

# Parameter shapes by group: 1-D and 2-D, row widths that are not vector multiples.
SHAPES = [[(7, 3), (1, 5), (20,)], [(16, 4), (33, 17)]]
STEPS = 21
EMPTY_GRAD = {2: (0, 0), 9: (1, 1), 14: (0, 2)}  # step -> (group, index): grad with 0 rows
NONE_GRAD = {5: (1, 0), 12: (0, 1)}  # step -> (group, index): grad is None
DENSE = (0, 1)  # SGD only: this parameter gets dense gradients
# Rows no gradient ever touches, so they must stay bit-identical: (group, index) -> rows.
UNTOUCHED = {(0, 0): [5, 6], (1, 0): [0, 15], (1, 1): [30, 31, 32]}

CASES = {
    "SparseAdam": [
        {"lr": 0.01},
        {"lr": 0.02, "betas": (0.5, 0.9), "eps": 1e-3, "maximize": True},
        {"lr": 0.05, "betas": (0.0, 0.99)},
    ],
    "SGD": [
        {"lr": 0.05, "momentum": m, "dampening": d, "nesterov": n, "maximize": x}
        for m in (0, 0.9)
        for d in (0, 0.25)
        for n in (False, True)
        for x in (False, True)
        if not (n and (m == 0 or d != 0))
    ],
}


def row_choice(step: int, g: int, i: int, rows: int) -> np.ndarray:
    """The touched rows of a step: 0 to 2*rows entries, repeats and any order."""
    if EMPTY_GRAD.get(step) == (g, i):
        return np.zeros(0, dtype=np.int64)
    count = 1 + (step * 7 + g * 3 + i) % (2 * rows)
    unit = (hashed_values(5000 + 97 * step + 10 * g + i, count, np.float64) + 1.0) / 2.0
    chosen = np.minimum((unit * rows).astype(np.int64), rows - 1)
    allowed = np.setdiff1d(np.arange(rows), UNTOUCHED.get((g, i), []))
    return allowed[chosen % allowed.size]


def sparse_gradient(step, g, i, shape, dtype):
    """(indices, values) of the step's gradient of parameter (g, i)."""
    rows = row_choice(step, g, i, shape[0])
    width = int(np.prod(shape[1:], dtype=np.int64))
    values = hashed_values(10**6 + 7919 * step + 100 * g + i, rows.size * width, dtype, 2.0)
    return rows, values.reshape((rows.size,) + tuple(shape[1:]))


class NumoptimSparse:
    def __init__(self):
        import numoptim

        self.lib = numoptim

    def parameter(self, values):
        return self.lib.Parameter(values.copy())

    def sparse_grad(self, indices, values, shape):
        return self.lib.RowSparseGrad(indices, values, shape)

    def dense_grad(self, values):
        return values.copy()

    def optimizer(self, name, groups, kwargs):
        return getattr(self.lib, name)(groups, **kwargs)

    def to_numpy(self, p):
        return np.array(p)

    def state_arrays(self, opt):
        out = {}
        for index, entries in opt.state_dict()["state"].items():
            for key, value in entries.items():
                out[f"s{index}/{key}"] = np.array(value)
        return out


class TorchSparse:
    def __init__(self):
        import torch

        self.torch = torch

    def parameter(self, values):
        return self.torch.nn.Parameter(self.torch.from_numpy(values.copy()))

    def sparse_grad(self, indices, values, shape):
        t = self.torch
        return t.sparse_coo_tensor(
            t.from_numpy(indices.copy())[None],
            t.from_numpy(values.copy()),
            shape,
            check_invariants=True,
        )

    def dense_grad(self, values):
        return self.torch.from_numpy(values.copy())

    def optimizer(self, name, groups, kwargs):
        return getattr(self.torch.optim, name)(groups, **kwargs)

    def to_numpy(self, p):
        return p.detach().numpy().copy()

    def state_arrays(self, opt):
        out = {}
        for index, entries in opt.state_dict()["state"].items():
            for key, value in entries.items():
                if isinstance(value, self.torch.Tensor):
                    value = value.to_dense() if value.is_sparse else value
                    value = value.detach().numpy().copy()
                out[f"s{index}/{key}"] = np.array(value)
        return out


def initial(shape, g, i, dtype):
    return hashed_values(1000 * g + i + 1, int(np.prod(shape)), dtype).reshape(shape)


def build(backend, name, kwargs, dtype):
    params = [
        [backend.parameter(initial(s, g, i, dtype)) for i, s in enumerate(shapes)]
        for g, shapes in enumerate(SHAPES)
    ]
    second = {"lr": float(kwargs.get("lr", 1e-3)) * 0.5}
    groups = [{"params": params[0]}, {"params": params[1], **second}]
    return backend.optimizer(name, groups, kwargs), params


def set_grads(backend, name, params, step, dtype):
    for g, group in enumerate(params):
        for i, p in enumerate(group):
            shape = tuple(p.shape)
            if NONE_GRAD.get(step) == (g, i):
                p.grad = None
            elif name == "SGD" and (g, i) == DENSE:
                values = hashed_values(3 * 10**6 + 31 * step, int(np.prod(shape)), dtype, 2.0)
                p.grad = backend.dense_grad(values.reshape(shape))
            else:
                p.grad = backend.sparse_grad(*sparse_gradient(step, g, i, shape, dtype), shape)


def run(backend, name, kwargs, dtype, steps=STEPS, start=0, opt=None, params=None):
    """Runs steps [start, steps) and returns (optimizer, params by group)."""
    if opt is None:
        opt, params = build(backend, name, kwargs, dtype)
    for step in range(start, steps):
        set_grads(backend, name, params, step, dtype)
        opt.step()
    return opt, params
