"""The averaging configurations of swa_utils, run with numoptim or with torch.

A "model" of three arrays (sizes 7, 16, 33) takes seeded values at each of UPDATES
steps and is folded into an AveragedModel; the run returns the concatenated average
after every update, for float32 and float64.
"""

from __future__ import annotations

import numpy as np
from harness import hashed_values

SIZES = (7, 16, 33)
UPDATES = 6
DTYPES = {"float32": np.float32, "float64": np.float64}

# name -> (keyword arguments of AveragedModel built from lib's functions)
AVERAGING = {
    "swa_default": lambda lib: {},
    "swa_avg_fn": lambda lib: {"avg_fn": lib.get_swa_avg_fn()},
    "swa_multi": lambda lib: {"multi_avg_fn": lib.get_swa_multi_avg_fn()},
    "ema_avg_fn": lambda lib: {"avg_fn": lib.get_ema_avg_fn(0.9)},
    "ema_multi": lambda lib: {"multi_avg_fn": lib.get_ema_multi_avg_fn(0.9)},
    "ema_multi_big_weight": lambda lib: {"multi_avg_fn": lib.get_ema_multi_avg_fn(0.3)},
}


def model_values(step: int, dtype) -> list[np.ndarray]:
    """The model's arrays at ``step``."""
    return [hashed_values(1000 + 10 * step + i, n, dtype) for i, n in enumerate(SIZES)]


def run_averaging(name: str, backend: str) -> dict[str, np.ndarray]:
    """Returns ``{dtype name: array (UPDATES, sum(SIZES))}`` of the averages."""
    out = {}
    for dname, dtype in DTYPES.items():
        if backend == "torch":
            import torch
            from torch.optim import swa_utils as lib

            model = torch.nn.ParameterList(
                [torch.nn.Parameter(torch.from_numpy(v)) for v in model_values(0, dtype)]
            )
            averaged = lib.AveragedModel(model, **AVERAGING[name](lib))
            rows = []
            for step in range(UPDATES):
                with torch.no_grad():
                    for p, v in zip(model, model_values(step, dtype)):
                        p.copy_(torch.from_numpy(v))
                averaged.update_parameters(model)
                rows.append(np.concatenate([p.detach().numpy() for p in averaged.parameters()]))
        else:
            import numoptim
            from numoptim import swa_utils as lib

            model = [numoptim.Parameter(v) for v in model_values(0, dtype)]
            averaged = lib.AveragedModel(model, **AVERAGING[name](lib))
            rows = []
            for step in range(UPDATES):
                for p, v in zip(model, model_values(step, dtype)):
                    p[...] = v
                averaged.update_parameters(model)
                rows.append(np.concatenate(averaged.parameters()))
        out[dname] = np.stack(rows)
    return out
