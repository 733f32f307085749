"""Parameter groups: weight decay on weights, none on biases and normalization scales.

The usual recipe for AdamW (the seed tutorial's ``set_weight_decay``): split a model's
named parameters into two groups by name and shape and give each its own options.
Groups of ``(name, parameter)`` pairs keep the names in ``group["param_names"]`` and in
the state dict, as torch 2.13 does. Everything else, the scheduler included, works per
group as in torch.

    python examples/weight_decay_groups.py
"""

from typing import Any

import numoptim
import numpy as np
from numoptim.lr_scheduler import LinearLR


def make_model(rng: np.random.Generator) -> dict[str, numoptim.Parameter]:
    """A small residual MLP's parameters by name, as a framework's named_parameters()."""
    return {
        "embed.weight": numoptim.Parameter(rng.normal(0, 0.1, (16, 32)).astype(np.float32)),
        "embed.bias": numoptim.Parameter(np.zeros(32, np.float32)),
        "norm.weight": numoptim.Parameter(np.ones(32, np.float32)),
        "norm.bias": numoptim.Parameter(np.zeros(32, np.float32)),
        "head.weight": numoptim.Parameter(rng.normal(0, 0.1, (32, 4)).astype(np.float32)),
        "head.bias": numoptim.Parameter(np.zeros(4, np.float32)),
    }


def set_weight_decay(
    named_parameters: dict[str, numoptim.Parameter],
    weight_decay: float,
    skip: tuple[str, ...] = ("bias", "norm"),
) -> list[dict[str, Any]]:
    """Two groups: decayed matrices, and undecayed biases, norms and other vectors."""
    decay: list[tuple[str, numoptim.Parameter]] = []
    no_decay: list[tuple[str, numoptim.Parameter]] = []
    for name, p in named_parameters.items():
        undecayed = p.ndim <= 1 or any(word in name for word in skip)
        (no_decay if undecayed else decay).append((name, p))
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def main() -> None:
    rng = np.random.default_rng(0)
    model = make_model(rng)
    optimizer = numoptim.AdamW(set_weight_decay(model, weight_decay=0.1), lr=1e-2)
    scheduler = LinearLR(optimizer, start_factor=0.1, total_iters=10)
    for group in optimizer.param_groups:
        print(f"weight_decay={group['weight_decay']}: {', '.join(group['param_names'])}")

    before = {name: np.array(p) for name, p in model.items()}
    for _ in range(20):
        for p in model.values():
            p.grad = np.zeros_like(p)  # no signal: only weight decay moves anything
        optimizer.step()
        scheduler.step()

    for name, p in model.items():
        moved = not np.array_equal(p, before[name])
        print(f"{name:12s} {'decayed' if moved else 'unchanged'}")
        assert moved == (name in optimizer.param_groups[0]["param_names"]), name
    saved_groups = optimizer.state_dict()["param_groups"]
    assert [g["param_names"] for g in saved_groups] == [
        g["param_names"] for g in optimizer.param_groups
    ]


if __name__ == "__main__":
    main()
