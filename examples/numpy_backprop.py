"""Hand-written NumPy backpropagation, stepped by numoptim.SGD and a cosine schedule.

A two-layer MLP learns two interleaved spirals. The forward and backward passes are
plain NumPy; numoptim only updates the parameters, as torch.optim would.

    python examples/numpy_backprop.py
"""

import numoptim
import numpy as np
import numpy.typing as npt
from numoptim.lr_scheduler import CosineAnnealingLR


def spirals(
    n: int, rng: np.random.Generator
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int_]]:
    """Two interleaved spirals of n points each, with labels 0 and 1."""
    t = np.sqrt(rng.uniform(0.05, 1.0, n)) * 3 * np.pi
    arm = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / (3 * np.pi)
    x = np.concatenate([arm, -arm]) + rng.normal(0.0, 0.02, (2 * n, 2))
    y = np.concatenate([np.zeros(n, int), np.ones(n, int)])
    return x.astype(np.float32), y


def main() -> None:
    rng = np.random.default_rng(0)
    x, y = spirals(500, rng)
    hidden = 64
    w1 = numoptim.Parameter(rng.normal(0, 1.0, (2, hidden)).astype(np.float32))
    b1 = numoptim.Parameter(np.zeros(hidden, np.float32))
    w2 = numoptim.Parameter(rng.normal(0, hidden**-0.5, (hidden, 2)).astype(np.float32))
    b2 = numoptim.Parameter(np.zeros(2, np.float32))
    optimizer = numoptim.SGD([w1, b1, w2, b2], lr=0.5, momentum=0.9)
    epochs = 300
    scheduler = CosineAnnealingLR(optimizer, T_max=epochs)

    for epoch in range(epochs):
        # Forward: tanh hidden layer, softmax cross-entropy.
        h = np.tanh(x @ w1 + b1)
        logits = h @ w2 + b2
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        loss = -np.log(probs[np.arange(len(y)), y]).mean()

        # Backward, by hand.
        d_logits = probs
        d_logits[np.arange(len(y)), y] -= 1
        d_logits /= len(y)
        d_h = (d_logits @ w2.T) * (1 - h**2)
        w2.grad, b2.grad = h.T @ d_logits, d_logits.sum(axis=0)
        w1.grad, b1.grad = x.T @ d_h, d_h.sum(axis=0)

        optimizer.step()
        scheduler.step()
        if epoch % 100 == 0:
            print(f"epoch {epoch:3d}  loss {loss:.3f}  lr {scheduler.get_last_lr()[0]:.3f}")

    accuracy = ((np.tanh(x @ w1 + b1) @ w2 + b2).argmax(axis=1) == y).mean()
    print(f"training accuracy {accuracy:.1%}")
    assert accuracy > 0.95, accuracy


if __name__ == "__main__":
    main()
