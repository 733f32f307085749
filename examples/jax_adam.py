"""Gradients from JAX, updates from numoptim.Adam.

``jax.grad`` returns JAX arrays; assigned to ``.grad`` they are viewed as NumPy arrays
without a copy (through DLPack), so a jitted JAX loss drives numoptim directly. The
parameters stay NumPy arrays that numoptim updates in place.

    pip install jax
    python examples/jax_adam.py
"""

from typing import Any

import jax
import jax.numpy as jnp
import numoptim
import numpy as np


@jax.jit
def loss_fn(params: list[Any], x: Any, y: Any) -> Any:
    w, b = params
    return jnp.mean((jnp.tanh(x @ w) @ b - y) ** 2)


grad_fn = jax.jit(jax.grad(loss_fn))


def main() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, (512, 1)).astype(np.float32)
    y = np.sin(2 * x[:, 0]).astype(np.float32)
    params = [
        numoptim.Parameter(rng.normal(0, 1, (1, 32)).astype(np.float32)),
        numoptim.Parameter(rng.normal(0, 32**-0.5, 32).astype(np.float32)),
    ]
    optimizer = numoptim.Adam(params, lr=1e-2)
    first = float(loss_fn(params, x, y))
    for step in range(1000):
        for p, g in zip(params, grad_fn(params, x, y)):
            p.grad = g  # a jax.Array, viewed without a copy
        optimizer.step()
        if step % 250 == 0:
            print(f"step {step:4d}  loss {float(loss_fn(params, x, y)):.5f}")
    last = float(loss_fn(params, x, y))
    print(f"loss {first:.4f} -> {last:.5f}")
    assert last < 0.01 * first, (first, last)


if __name__ == "__main__":
    main()
